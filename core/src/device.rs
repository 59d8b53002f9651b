//! [`Device`]: the in-transaction engine of one user's device: its
//! identity, store and MLS groups. Each feature adds its part of the engine
//! in its own folder (`conversations/membership.rs`, `tasks/engine.rs`, ...).
//!
//! Every call that changes MLS state does so inside one store transaction. The
//! loaded groups are kept in memory between calls, but only what a committed
//! transaction produced: an error anywhere rolls the transaction back and
//! drops the in-memory groups, so neither disk nor memory keeps a
//! half-applied change.

pub use crate::consent::engine::{KnownGroup, NewConsent, PatientConsent};
pub use crate::conversations::dashboard::{ConversationSummary, Dashboard, DashboardGroup};

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Mutex,
};

use openmls::prelude::{tls_codec::Serialize as _, *};
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::RustCrypto;
use pieper_wire::ApprovalKind;
use rusqlite::Connection;

use crate::{
    error::{Error, Result},
    identity::{Authority, Certified, MemberId},
    keystore::{DbKey, KeyStore, KeyStoreError, write_private},
    mls::{self, Provider},
    model::{Conversation, Message},
    store::{Store, StoreError, queries},
};

const DB_FILE: &str = "pieper.db";
const WRAPPED_KEY_FILE: &str = "pieper.db.key";
/// Left by a wipe, so that opening the device again says it was wiped
/// rather than that there is none (no secret: it holds nothing).
const WIPED_FILE: &str = "wiped";

/// The database key, unwrapped by the platform keystore.
fn unwrap_db_key(dir: &Path, keystore: &dyn KeyStore) -> Result<DbKey> {
    let wrapped = match std::fs::read(dir.join(WRAPPED_KEY_FILE)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if dir.join(WIPED_FILE).exists() {
                return Err(Error::Wiped);
            }
            return Err(Error::NotFound {
                what: "device store",
            });
        }
        Err(e) => return Err(StoreError::Io(e.to_string()).into()),
    };
    keystore
        .unwrap_key(&wrapped)
        .and_then(|bytes| DbKey::from_bytes(&bytes))
        .map_err(|e| match e {
            KeyStoreError::CannotUnwrap => Error::WrongKey,
            other => other.into(),
        })
}

/// What kind of envelope goes to the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutgoingKind {
    /// An encrypted application message.
    Application,
    /// An encrypted commit (a membership change); its Welcome, if any, goes
    /// out only after the server accepted the commit.
    Commit,
}

/// An encrypted envelope for the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// Unique id of this envelope (for a text message, the message id).
    pub id: String,
    /// The conversation it is for.
    pub conversation: String,
    /// Application message or commit.
    pub kind: OutgoingKind,
    /// The epoch it was made in.
    pub epoch: u64,
    /// The MLS message (TLS-encoded ciphertext).
    pub payload: Vec<u8>,
    /// For a commit that adds members: their Welcome.
    pub welcome: Option<Vec<u8>>,
    /// For a commit: the server ids of the devices it adds.
    pub add_devices: Vec<String>,
    /// For a commit: the server ids of the devices it removes.
    pub remove_devices: Vec<String>,
    /// How the server delivers it.
    pub delivery: Delivery,
}

/// How the server delivers an envelope, fixed when it is queued.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Delivery {
    /// The push it makes; `None` goes out silent (nobody else reads it:
    /// details, practice data, tasks, work notes, commits).
    pub priority: Option<crate::model::Priority>,
    /// For a routed spoed post: the user it wakes as urgent.
    pub urgent_for: Option<String>,
    /// A disappearing message: when the server drops it.
    pub expires_at: Option<i64>,
    /// The patient as the practice's pseudonym, for the server's audit trail.
    pub patient: Option<String>,
    /// The pseudonym was not known when queued (the practice key came
    /// later): it is looked up when sending.
    pub patient_pending: bool,
}

/// A membership change awaiting the server's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitOut {
    /// The conversation it changes.
    pub conversation: String,
    /// The epoch the commit was made in (the server accepts one per epoch).
    pub epoch: u64,
    /// The commit, for every current member.
    pub commit: Vec<u8>,
    /// The Welcome for added members; send only once the commit is accepted.
    pub welcome: Option<Vec<u8>>,
    /// The server ids of the devices it adds.
    pub add_devices: Vec<String>,
    /// The server ids of the devices it removes.
    pub remove_devices: Vec<String>,
    /// Users whose identity a manager reset, among those it adds, and the
    /// manager: (user, by user).
    pub resets: Vec<(String, String)>,
}

/// What an incoming envelope did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Received {
    /// A new message, now stored.
    Message(Message),
    /// This device joined a conversation from a Welcome.
    Joined(Conversation),
    /// A conversation's details (title, kind, patient) arrived or changed.
    ConversationUpdated(Conversation),
    /// The conversation moved to a new epoch (members changed).
    Commit {
        /// The conversation.
        conversation: String,
        /// Its new epoch.
        epoch: u64,
        /// Devices it brought in whose user's identity a practice manager
        /// reset: (user, manager), each shown once.
        resets: Vec<(String, String)>,
    },
    /// This device was removed from the conversation.
    Removed {
        /// The conversation.
        conversation: String,
    },
    /// Receipts arrived for these messages.
    Receipts {
        /// The messages whose receipts changed.
        messages: Vec<String>,
    },
    /// A patient's chat content was erased on request.
    Erased(crate::privacy::ErasureReport),
    /// History arrived from another device of this user.
    History {
        /// The conversation.
        conversation: String,
        /// Messages that were new here.
        added: usize,
    },
    /// A proposal was queued for the next commit.
    Proposal {
        /// The conversation.
        conversation: String,
    },
    /// A task was made or moved.
    TaskChanged(crate::tasks::Task),
    /// A documentation item arrived or moved on.
    Documentation(crate::record::DocStatus),
    /// A member took a spoed post.
    SpoedTaken {
        /// The post.
        message: String,
        /// Who took it (user id).
        by: String,
    },
    /// The duty roster or someone's do-not-disturb changed.
    SpoedSettingChanged,
    /// Practice data (roster, consent) arrived in the practice group.
    PracticeData {
        /// How many of its changes were new here.
        new: usize,
    },
    /// A user's recovery key arrived (it vouches for a device that
    /// restores their backup).
    RecoveryKey {
        /// The user.
        user: String,
    },
    /// A manager's device anchored the audit chain's head here.
    AuditAnchor {
        /// The chain's place.
        seq: u64,
    },
    /// An envelope this device sent itself, echoed back; nothing to apply.
    Own,
}

/// A new device's signature key, generated before sign-in so that the
/// server can certify it for the account.
pub struct Enrolment {
    signer: SignatureKeyPair,
}

impl Enrolment {
    /// A fresh Ed25519 signature key.
    pub fn new() -> Result<Self> {
        Ok(Self {
            signer: SignatureKeyPair::new(SignatureScheme::ED25519).map_err(mls::mls_err)?,
        })
    }

    /// The public key the server is asked to certify.
    pub fn signature_key(&self) -> Vec<u8> {
        self.signer.public().to_vec()
    }
}

/// What the server gave a device at enrolment.
pub(crate) struct Enrolled<'a> {
    pub enrolment: Enrolment,
    pub certificate: &'a [u8],
    pub authority: &'a [u8],
    pub session: Option<&'a queries::Session>,
}

/// The steps of creating a device, in order (see `Device::create_steps`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(any(test, feature = "testing")), allow(dead_code, unreachable_pub))]
pub enum EnrolmentStep {
    /// Making the folder.
    Folder,
    /// Clearing what an earlier, crashed attempt left.
    Leftovers,
    /// Creating the encrypted store.
    Store,
    /// Writing identity, signature key and session.
    Identity,
    /// Writing the wrapped key beside its final name.
    WrappedKey,
    /// Linking it to its final name: from here the device exists.
    Publish,
    /// Removing the extra name.
    Tidy,
}

#[cfg(any(test, feature = "testing"))]
impl EnrolmentStep {
    /// Every step, in order.
    pub const ALL: [EnrolmentStep; 7] = [
        EnrolmentStep::Folder,
        EnrolmentStep::Leftovers,
        EnrolmentStep::Store,
        EnrolmentStep::Identity,
        EnrolmentStep::WrappedKey,
        EnrolmentStep::Publish,
        EnrolmentStep::Tidy,
    ];
}

/// The test authority of `practice`: one per practice and process.
#[cfg(feature = "testing")]
fn test_authority(practice: &str) -> Result<pieper_authority::Authority> {
    use std::sync::OnceLock;
    static AUTHORITIES: OnceLock<Mutex<HashMap<String, pieper_authority::Authority>>> =
        OnceLock::new();
    let mut all = AUTHORITIES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(found) = all.get(practice) {
        return Ok(found.clone());
    }
    let made = pieper_authority::Authority::generate(practice)
        .map_err(|e| Error::internal("test authority", e))?;
    all.insert(practice.to_owned(), made.clone());
    Ok(made)
}

/// Makes a folder's entries (a new name, a removed one) durable.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// A member's credential as checked: certificate and signature key.
type CredentialKey = (Vec<u8>, Vec<u8>);

/// One device of one user: identity, encrypted store and conversations.
pub struct Device {
    pub(crate) store: Store,
    /// Groups as of the last committed transaction, loaded on first use.
    groups: Mutex<HashMap<String, MlsGroup>>,
    pub(crate) crypto: RustCrypto,
    pub(crate) signer: SignatureKeyPair,
    /// Its MLS credential (the certificate); replaced by a renewal.
    credential: std::sync::RwLock<CredentialWithKey>,
    pub(crate) me: MemberId,
    /// This user's roles, from this device's certificate.
    roles: std::sync::RwLock<Vec<pieper_wire::Role>>,
    /// The practice's authority, pinned at enrolment; `None` for a device
    /// from before certificates, which trusts nobody until it signs in again.
    authority: Option<Authority>,
    /// Credentials already checked (certificate and key → who), so a
    /// member's certificate is verified once per run, not per message.
    verified: Mutex<HashMap<CredentialKey, Certified>>,
    pub(crate) dir: PathBuf,
    /// Set once the device was wiped: nothing is read or written after.
    wiped: std::sync::atomic::AtomicBool,
}

impl Device {
    /// Creates a new device store in `dir` for the device the server
    /// certified: `certificate` binds the enrolment's signature key to
    /// practice, user and device, signed by the practice's `authority`,
    /// which this device pins. A random database key is wrapped by
    /// `keystore`. (Apps sign in through the client, which also keeps the
    /// session; this is for the core's own tests and benchmarks.)
    #[cfg(any(test, feature = "testing"))]
    pub fn create(
        dir: impl AsRef<Path>,
        keystore: &dyn KeyStore,
        enrolment: Enrolment,
        certificate: &[u8],
        authority: &[u8],
    ) -> Result<Self> {
        let enrolled = Enrolled {
            enrolment,
            certificate,
            authority,
            session: None,
        };
        Self::create_steps(dir.as_ref(), keystore, enrolled, None)
    }

    /// [`Device::create`] with the server's session, written in the same
    /// transaction as the identity.
    pub(crate) fn create_signed_in(
        dir: &Path,
        keystore: &dyn KeyStore,
        enrolled: Enrolled<'_>,
    ) -> Result<Self> {
        Self::create_steps(dir, keystore, enrolled, None)
    }

    /// [`Device::create`] that stops (as a crash would, with nothing tidied
    /// up) just before `step`: for the tests that prove every crash leaves
    /// either a working device or a folder that creating takes again.
    #[cfg(any(test, feature = "testing"))]
    pub fn create_crashing_before(
        dir: impl AsRef<Path>,
        keystore: &dyn KeyStore,
        enrolment: Enrolment,
        certificate: &[u8],
        authority: &[u8],
        step: EnrolmentStep,
    ) -> Result<Self> {
        let enrolled = Enrolled {
            enrolment,
            certificate,
            authority,
            session: None,
        };
        Self::create_steps(dir.as_ref(), keystore, enrolled, Some(step))
    }

    /// Creates the device in an order that a crash at any point leaves
    /// either nothing of a device (no wrapped key: `create` clears what a
    /// crashed attempt left and starts again) or a complete one: the
    /// wrapped key appears last, in one atomic link, once the store holds
    /// the identity.
    fn create_steps(
        dir: &Path,
        keystore: &dyn KeyStore,
        enrolled: Enrolled<'_>,
        crash_before: Option<EnrolmentStep>,
    ) -> Result<Self> {
        let step = |s: EnrolmentStep| match crash_before {
            Some(at) if at == s => Err(Error::internal("enrolment", "a crash before this step")),
            _ => Ok(()),
        };
        let io = |e: std::io::Error| -> Error { StoreError::Io(e.to_string()).into() };
        let Enrolled {
            enrolment,
            certificate,
            authority,
            session,
        } = enrolled;
        let claimed = MemberId::from_credential_bytes(certificate)?;
        let pinned = Authority::from_der(authority, &claimed.practice)?;
        let signer = enrolment.signer;
        let certified = pinned.verify(certificate, signer.public(), queries::now_ms())?;
        step(EnrolmentStep::Folder)?;
        std::fs::create_dir_all(dir).map_err(io)?;
        // A device is there once its wrapped key is: a second `create` in
        // the same place fails here and destroys nothing.
        if dir.join(WRAPPED_KEY_FILE).exists() {
            return Err(Error::invalid("dir", "a device store already exists there"));
        }
        step(EnrolmentStep::Leftovers)?;
        // Without a wrapped key nothing here opens: what a crashed attempt
        // left (a store nobody can unlock, a half-written key) goes, and so
        // does the mark of a wiped device (a new sign-in is a new device).
        for name in [
            DB_FILE.to_owned(),
            format!("{DB_FILE}-wal"),
            format!("{DB_FILE}-shm"),
            format!("{WRAPPED_KEY_FILE}.new"),
            WIPED_FILE.to_owned(),
        ] {
            match std::fs::remove_file(dir.join(name)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(e)),
            }
        }
        step(EnrolmentStep::Store)?;
        let key = DbKey::random();
        let wrapped = keystore.wrap_key(key.as_bytes())?;
        let store = Store::open(&dir.join(DB_FILE), &key)?;
        let crypto = RustCrypto::default();
        let identity = queries::Identity {
            id: certified.id,
            public_key: signer.public().to_vec(),
            certificate: Some(certificate.to_vec()),
            authority: Some(authority.to_vec()),
        };
        step(EnrolmentStep::Identity)?;
        store.write(|tx| {
            signer
                .store(Provider::new(&crypto, &**tx).storage())
                .map_err(Error::from)?;
            queries::insert_identity(tx, &identity)?;
            if let Some(session) = session {
                queries::save_session(tx, session)?;
                queries::set_key_packages_published(tx, false)?;
            }
            Ok(())
        })?;
        step(EnrolmentStep::WrappedKey)?;
        let pending = dir.join(format!("{WRAPPED_KEY_FILE}.new"));
        write_private(&pending, &wrapped).map_err(io)?;
        step(EnrolmentStep::Publish)?;
        // A link fails if the name exists: two creates at once, one wins.
        std::fs::hard_link(&pending, dir.join(WRAPPED_KEY_FILE)).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Error::invalid("dir", "a device store already exists there")
            } else {
                io(e)
            }
        })?;
        sync_dir(dir).map_err(io)?;
        step(EnrolmentStep::Tidy)?;
        std::fs::remove_file(&pending).map_err(io)?;
        Ok(Self::assemble(
            store,
            crypto,
            signer,
            identity,
            Some(pinned),
            dir,
        ))
    }

    /// Creates a device certified as the server does at enrolment, by a
    /// test authority of its practice (one per practice and process): for
    /// the core's own tests and benchmarks.
    #[cfg(feature = "testing")]
    pub fn create_for_tests(
        dir: impl AsRef<Path>,
        keystore: &dyn KeyStore,
        id: MemberId,
        role: pieper_wire::Role,
    ) -> Result<Self> {
        let authority = test_authority(&id.practice)?;
        let enrolment = Enrolment::new()?;
        let certificate = authority
            .certify(
                &pieper_authority::Subject {
                    practice: &id.practice,
                    user: &id.user,
                    device: &id.device,
                    role,
                    registrations: &pieper_wire::Registrations::default(),
                },
                &enrolment.signature_key(),
            )
            .map_err(|e| Error::internal("test certificate", e))?;
        Self::create(
            dir,
            keystore,
            enrolment,
            &certificate,
            &authority.certificate,
        )
    }

    /// A new certificate of this device's key by the test authority of its
    /// practice, naming `who` (this device, as a renewal by the server would;
    /// or another member, as a hostile server could) with `role`, and the
    /// authority's certificate: for the core's own tests.
    #[cfg(feature = "testing")]
    pub fn renewal_for_tests(
        &self,
        who: &MemberId,
        role: pieper_wire::Role,
    ) -> Result<(Vec<u8>, Vec<u8>)> {
        let authority = test_authority(&who.practice)?;
        let certificate = authority
            .certify(
                &pieper_authority::Subject {
                    practice: &who.practice,
                    user: &who.user,
                    device: &who.device,
                    role,
                    registrations: &pieper_wire::Registrations::default(),
                },
                self.signer.public(),
            )
            .map_err(|e| Error::internal("test certificate", e))?;
        Ok((certificate, authority.certificate))
    }

    /// Opens the device store in `dir`, unwrapping its key with `keystore`.
    /// A keystore that cannot unwrap it gives [`Error::WrongKey`]; nothing on
    /// disk changes.
    pub fn open(dir: impl AsRef<Path>, keystore: &dyn KeyStore) -> Result<Self> {
        let dir = dir.as_ref();
        Self::open_with_key(dir, &unwrap_db_key(dir, keystore)?)
    }

    /// Locks the device: the store closes (SQLCipher forgets the key) and
    /// the loaded MLS groups are dropped; calls answer [`Error::Locked`].
    pub fn lock(&self) {
        self.store.close();
        self.groups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Unlocks the device with the keystore's help (after the platform's
    /// check of the user).
    pub fn unlock(&self, keystore: &dyn KeyStore) -> Result<()> {
        if !self.store.is_closed() {
            return Ok(());
        }
        self.store.reopen(&unwrap_db_key(&self.dir, keystore)?)
    }

    /// Whether the device is locked.
    pub fn is_locked(&self) -> bool {
        self.store.is_closed()
    }

    /// Opens the device store in `dir` with the raw database key.
    pub fn open_with_key(dir: impl AsRef<Path>, key: &DbKey) -> Result<Self> {
        let dir = dir.as_ref();
        let store = Store::open(&dir.join(DB_FILE), key)?;
        let crypto = RustCrypto::default();
        let identity = store.read(queries::load_identity)?;
        let authority = identity
            .authority
            .as_deref()
            .map(|der| Authority::from_der(der, &identity.id.practice))
            .transpose()?;
        let signer = store.read(|conn| {
            SignatureKeyPair::read(
                Provider::new(&crypto, conn).storage(),
                &identity.public_key,
                SignatureScheme::ED25519,
            )
            .ok_or(Error::NotFound {
                what: "signature key",
            })
        })?;
        let device = Self::assemble(store, crypto, signer, identity, authority, dir);
        // What expired while this device was off goes before anything is shown.
        device.housekeeping()?;
        Ok(device)
    }

    pub(crate) fn assemble(
        store: Store,
        crypto: RustCrypto,
        signer: SignatureKeyPair,
        identity: queries::Identity,
        authority: Option<Authority>,
        dir: &Path,
    ) -> Self {
        let roles = identity
            .certificate
            .as_deref()
            .map(crate::identity::own_roles)
            .unwrap_or_default();
        // The certificate is the credential; a device from before
        // certificates still names itself by its member URI.
        let credential_bytes = identity
            .certificate
            .unwrap_or_else(|| identity.id.to_credential_bytes());
        let credential = CredentialWithKey {
            credential: BasicCredential::new(credential_bytes).into(),
            signature_key: signer.to_public_vec().into(),
        };
        Self {
            store,
            groups: Mutex::new(HashMap::new()),
            crypto,
            signer,
            credential: std::sync::RwLock::new(credential),
            me: identity.id,
            roles: std::sync::RwLock::new(roles),
            authority,
            verified: Mutex::new(HashMap::new()),
            dir: dir.to_owned(),
            wiped: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// This device's MLS credential (its current certificate).
    pub(crate) fn credential(&self) -> CredentialWithKey {
        self.credential
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// This user's roles, from this device's current certificate.
    pub(crate) fn roles(&self) -> Vec<pieper_wire::Role> {
        self.roles.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Takes a renewed certificate of this device in use: checked against
    /// the pinned authority, for this device's own key and identity. Every
    /// conversation is marked for an update, which carries it to the
    /// members. Returns what it certifies.
    pub(crate) fn take_certificate(
        &self,
        certificate: &[u8],
        authority: &[u8],
    ) -> Result<Certified> {
        let identity = self.store.read(queries::load_identity)?;
        let pinned = self.authority.as_ref().ok_or_else(|| Error::Untrusted {
            reason: "a device from before certificates signs in again".into(),
        })?;
        // The practice's authority stays the one pinned at enrolment.
        if identity.authority.as_deref() != Some(authority) {
            return Err(Error::Untrusted {
                reason: "a renewal from another authority".into(),
            });
        }
        let certified = pinned.verify(certificate, self.signer.public(), queries::now_ms())?;
        if certified.id != self.me {
            return Err(Error::Untrusted {
                reason: "a renewed certificate names another device".into(),
            });
        }
        self.store.write(|tx| {
            queries::set_certificate(tx, certificate)?;
            tx.execute(
                "UPDATE conversations SET leaf_update_due = 1 WHERE active = 1",
                [],
            )
            .map_err(StoreError::from)?;
            Ok(())
        })?;
        *self.credential.write().unwrap_or_else(|p| p.into_inner()) = CredentialWithKey {
            credential: BasicCredential::new(certificate.to_vec()).into(),
            signature_key: self.signer.to_public_vec().into(),
        };
        *self.roles.write().unwrap_or_else(|p| p.into_inner()) = certified.roles.clone();
        Ok(certified)
    }

    /// When this device's certificate expires (ms), if it has one: read from
    /// the credential in memory, which is the certificate.
    pub(crate) fn certificate_expiry(&self) -> Result<Option<i64>> {
        let certificate = mls::credential_identity(&self.credential().credential)?;
        Ok(crate::identity::not_after(&certificate))
    }

    /// Puts any certificate in this device's credential without a check, as
    /// a changed app could: for the tests that prove members refuse it.
    #[cfg(test)]
    pub(crate) fn set_credential_for_tests(&self, certificate: &[u8]) {
        *self.credential.write().unwrap_or_else(|p| p.into_inner()) = CredentialWithKey {
            credential: BasicCredential::new(certificate.to_vec()).into(),
            signature_key: self.signer.to_public_vec().into(),
        };
    }

    /// Who this device is.
    pub fn id(&self) -> &MemberId {
        &self.me
    }

    /// The code this device shows while another device of its user
    /// approves it.
    pub fn approval_code(&self) -> String {
        crate::identity::approval_code(self.signer.public())
    }

    /// Approves another device of this user: checks its certificate and
    /// that `code` is the one it shows, then signs it. Returns the
    /// signature for the server.
    pub fn approve(&self, certificate: &[u8], code: &str) -> Result<Vec<u8>> {
        self.vouch(ApprovalKind::Own, certificate, code)
    }

    /// A practice manager resets the identity of a user who lost every
    /// device and their recovery code: vouches for the user's new device
    /// (`code` as it shows). Every member is shown that it happened.
    pub fn reset_identity(&self, certificate: &[u8], code: &str) -> Result<Vec<u8>> {
        self.check_manages_practice()?;
        self.vouch(ApprovalKind::Reset, certificate, code)
    }

    /// Signs an approval of any kind for any certificate, without the role
    /// or the code, as a hostile member's changed app could: for the tests
    /// that prove every other device refuses it.
    #[cfg(feature = "testing")]
    pub fn sign_approval_unchecked(
        &self,
        kind: ApprovalKind,
        certificate: &[u8],
    ) -> Result<Vec<u8>> {
        self.sign_approval(kind, certificate)
    }

    fn sign_approval(&self, kind: ApprovalKind, certificate: &[u8]) -> Result<Vec<u8>> {
        use openmls_traits::signatures::Signer as _;
        self.signer
            .sign(&crate::identity::approval_content(kind, certificate)?)
            .map_err(|e| Error::internal("approval", format!("{e:?}")))
    }

    /// [`Error::Refused`] unless this device's user manages the practice.
    pub(crate) fn check_manages_practice(&self) -> Result<()> {
        if self.roles().iter().any(|r| r.manages_practice()) {
            Ok(())
        } else {
            Err(Error::Refused {
                reason: crate::error::Refusal::Role,
            })
        }
    }

    fn vouch(&self, kind: ApprovalKind, certificate: &[u8], code: &str) -> Result<Vec<u8>> {
        let key = crate::identity::certified_key(certificate)?;
        let authority = self.authority.as_ref().ok_or_else(|| Error::Untrusted {
            reason: "this device has no certificate: sign in again".into(),
        })?;
        let device = authority.verify(certificate, &key, queries::now_ms())?;
        let own = device.id.user == self.me.user;
        if device.id.device == self.me.device || own != (kind == ApprovalKind::Own) {
            return Err(Error::invalid(
                "device",
                match kind {
                    ApprovalKind::Reset => "not a device of another user",
                    _ => "not another device of yours",
                },
            ));
        }
        let typed: String = code.chars().filter(char::is_ascii_digit).collect();
        let shown: String = crate::identity::approval_code(&key)
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        if typed != shown {
            return Err(Error::invalid(
                "code",
                "not the code the new device shows: do not approve it",
            ));
        }
        let signature = self.sign_approval(kind, certificate)?;
        // This device checked it in person: it knows it from now on.
        let trust = match kind {
            ApprovalKind::Reset => crate::devices::Trust::Reset {
                by_user: self.me.user.clone(),
            },
            _ => crate::devices::Trust::Vouched {
                by_device: self.me.device.clone(),
            },
        };
        let newcomer = crate::devices::vouching::Newcomer {
            certified: device,
            certificate: certificate.to_vec(),
            signature_key: key,
        };
        self.store
            .write(|tx| crate::devices::vouching::remember(tx, &newcomer, &trust))?;
        Ok(signature)
    }

    /// Checks a member's credential against the practice's authority: who
    /// it is and in which roles, or [`Error::Untrusted`].
    /// Checks an audit chain head against the practice's authority.
    pub(crate) fn check_audit_head(&self, head: &pieper_wire::AuditHead) -> Result<()> {
        self.authority
            .as_ref()
            .ok_or_else(|| Error::Untrusted {
                reason: "this device has no certificate: sign in again".into(),
            })?
            .check_audit_head(head)
    }

    pub(crate) fn certified(
        &self,
        credential: &Credential,
        signature_key: &[u8],
    ) -> Result<Certified> {
        let authority = self.authority.as_ref().ok_or_else(|| Error::Untrusted {
            reason: "this device has no certificate: sign in again".into(),
        })?;
        let basic =
            BasicCredential::try_from(credential.clone()).map_err(|_| Error::Untrusted {
                reason: "not a basic credential".into(),
            })?;
        let key = (basic.identity().to_vec(), signature_key.to_vec());
        let mut verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(found) = verified.get(&key) {
            // Checked before; only the validity period can have run out.
            if found.not_after >= queries::now_ms() {
                return Ok(found.clone());
            }
        }
        let certified = authority.verify(&key.0, &key.1, queries::now_ms())?;
        verified.insert(key, certified.clone());
        Ok(certified)
    }

    /// Wipes this device (it was revoked): the store closes (its key and
    /// the loaded groups leave memory, so an open handle reads nothing
    /// more), the wrapped database key goes — without it the encrypted store
    /// is unreadable — then the store's files and the attachment copies.
    /// Every later call fails.
    pub fn wipe(&self) -> Result<()> {
        self.wiped.store(true, std::sync::atomic::Ordering::SeqCst);
        self.lock();
        let remove = |name: &str| match std::fs::remove_file(self.dir.join(name)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::Io(e.to_string())),
        };
        remove(WRAPPED_KEY_FILE)?;
        for suffix in ["", "-wal", "-shm"] {
            remove(&format!("{DB_FILE}{suffix}"))?;
        }
        match std::fs::remove_dir_all(self.attachments_dir()) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::Io(e.to_string()).into()),
        }
        std::fs::write(self.dir.join(WIPED_FILE), b"")
            .map_err(|e| StoreError::Io(e.to_string()).into())
    }

    /// Whether this device was wiped.
    pub fn is_wiped(&self) -> bool {
        self.wiped.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The directory holding this device's store.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    // Used by the core's own tests and benchmarks only.
    #[cfg(any(test, feature = "testing"))]
    /// This device's Ed25519 public signature key.
    pub fn signature_public_key(&self) -> &[u8] {
        self.signer.public()
    }

    /// Makes `count` one-time KeyPackages for others to add this device with.
    pub fn key_packages(&self, count: usize) -> Result<Vec<Vec<u8>>> {
        self.transact(|s| {
            (0..count)
                .map(|_| self.key_package(&s.provider, false))
                .collect()
        })
    }

    /// Makes a last-resort KeyPackage, used when the one-time ones run out.
    pub fn last_resort_key_package(&self) -> Result<Vec<u8>> {
        self.transact(|s| self.key_package(&s.provider, true))
    }

    /// Runs an MLS operation in one store transaction. The groups it changes
    /// are kept for the next call only if the transaction commits.
    pub(crate) fn transact<T>(
        &self,
        f: impl FnOnce(&mut Session<'_, '_>) -> Result<T>,
    ) -> Result<T> {
        let mut cache = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        let mut working = std::mem::take(&mut *cache);
        let result = self.store.write(|tx| {
            f(&mut Session {
                provider: Provider::new(&self.crypto, &**tx),
                groups: &mut working,
            })
        });
        if result.is_ok() {
            *cache = working;
        }
        result
    }

    pub(crate) fn key_package(
        &self,
        provider: &Provider<'_, &Connection>,
        last_resort: bool,
    ) -> Result<Vec<u8>> {
        let mut builder = KeyPackage::builder();
        if last_resort {
            // A KeyPackage's extensions must be in its leaf's capabilities,
            // or adding the device with it fails validation.
            builder = builder.mark_as_last_resort().leaf_node_capabilities(
                Capabilities::builder()
                    .extensions(vec![ExtensionType::LastResort])
                    .build(),
            );
        }
        let bundle = builder
            .build(mls::CIPHERSUITE, provider, &self.signer, self.credential())
            .map_err(mls::mls_err)?;
        bundle
            .key_package()
            .tls_serialize_detached()
            .map_err(mls::mls_err)
    }

    /// The session with the server, if this device signed in.
    pub(crate) fn session(&self) -> Result<Option<queries::Session>> {
        self.store.read(queries::session)
    }

    pub(crate) fn key_packages_published(&self) -> Result<bool> {
        self.store.read(queries::key_packages_published)
    }

    #[cfg(test)]
    pub(crate) fn save_session(&self, session: &queries::Session) -> Result<()> {
        self.store.write(|tx| queries::save_session(tx, session))
    }

    pub(crate) fn set_signed_out(&self) -> Result<()> {
        self.store.write(|tx| queries::set_signed_out(tx))
    }
}

/// One transaction's view: the provider writing to it, and the groups it has
/// loaded or changed so far.
pub(crate) struct Session<'c, 'g> {
    pub(crate) provider: Provider<'c, &'c Connection>,
    pub(crate) groups: &'g mut HashMap<String, MlsGroup>,
}

impl<'c> Session<'c, '_> {
    /// The transaction's connection.
    pub(crate) fn conn(&self) -> &'c Connection {
        self.provider.connection()
    }

    /// The provider and a conversation's group, loading it on first use.
    pub(crate) fn group(
        &mut self,
        conversation: &str,
    ) -> Result<(&Provider<'c, &'c Connection>, &mut MlsGroup)> {
        if !self.groups.contains_key(conversation) {
            let group = mls::load_group(&self.provider, conversation)?;
            self.groups.insert(conversation.to_owned(), group);
        }
        let group = self.groups.get_mut(conversation).ok_or(Error::NotFound {
            what: "conversation",
        })?;
        Ok((&self.provider, group))
    }

    /// A group that can take a new message or commit.
    pub(crate) fn operational_group(
        &mut self,
        conversation: &str,
    ) -> Result<(&Provider<'c, &'c Connection>, &mut MlsGroup)> {
        let (provider, group) = self.group(conversation)?;
        if !group.is_active() {
            return Err(Error::NotMember);
        }
        if group.pending_commit().is_some() {
            return Err(Error::PendingCommit);
        }
        Ok((provider, group))
    }
}

/// Stores a group's new epoch and member list; returns the epoch.
pub(crate) fn record_epoch(conn: &Connection, group: &MlsGroup, conversation: &str) -> Result<u64> {
    let epoch = group.epoch().as_u64();
    queries::set_epoch(conn, conversation, epoch, group.is_active())?;
    queries::replace_members(conn, conversation, &mls::members(group)?)?;
    Ok(epoch)
}
