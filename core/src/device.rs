//! [`Device`]: one user's device, its identity, store and conversations.
//!
//! Every call that changes MLS state does so inside one store transaction,
//! with a freshly loaded group: an error anywhere rolls the transaction back,
//! so neither disk nor memory keeps a half-applied change.

use std::path::{Path, PathBuf};

use openmls::prelude::{tls_codec::Serialize as _, *};
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::RustCrypto;
use rusqlite::Connection;

use crate::{
    error::{Error, Result},
    identity::MemberId,
    keystore::{DbKey, KeyStore, KeyStoreError, write_private},
    mls::{self, Provider},
    model::{
        Content, Conversation, ConversationKind, Member, Message, MessageState, NewMessage,
        PatientRef, validate_new_message, validate_title,
    },
    store::{Store, StoreError, queries},
};

const DB_FILE: &str = "pieper.db";
const WRAPPED_KEY_FILE: &str = "pieper.db.key";

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
    },
    /// This device was removed from the conversation.
    Removed {
        /// The conversation.
        conversation: String,
    },
    /// A proposal was queued for the next commit.
    Proposal {
        /// The conversation.
        conversation: String,
    },
    /// An envelope this device sent itself, echoed back; nothing to apply.
    Own,
}

/// One device of one user: identity, encrypted store and conversations.
pub struct Device {
    store: Store,
    crypto: RustCrypto,
    signer: SignatureKeyPair,
    credential: CredentialWithKey,
    me: MemberId,
    dir: PathBuf,
}

impl Device {
    /// Creates a new device store in `dir` for `id`, with a fresh signature
    /// key and a random database key wrapped by `keystore`.
    pub fn create(dir: impl AsRef<Path>, keystore: &dyn KeyStore, id: MemberId) -> Result<Self> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Io(e.to_string()))?;
        let key = DbKey::random();
        let wrapped = keystore.wrap_key(key.as_bytes())?;
        // The wrapped key is written first and never overwritten: a second
        // `create` in the same place fails here and destroys nothing.
        write_private(&dir.join(WRAPPED_KEY_FILE), &wrapped).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Error::invalid("dir", "a device store already exists there")
            } else {
                StoreError::Io(e.to_string()).into()
            }
        })?;
        let store = Store::open(&dir.join(DB_FILE), &key)?;
        let crypto = RustCrypto::default();
        let signer = SignatureKeyPair::new(SignatureScheme::ED25519).map_err(mls::mls_err)?;
        store.write(|tx| {
            signer
                .store(Provider::new(&crypto, &**tx).storage())
                .map_err(Error::from)?;
            queries::insert_identity(tx, &id, signer.public())
        })?;
        Ok(Self::assemble(store, crypto, signer, id, dir))
    }

    /// Opens the device store in `dir`, unwrapping its key with `keystore`.
    /// A keystore that cannot unwrap it gives [`Error::WrongKey`]; nothing on
    /// disk changes.
    pub fn open(dir: impl AsRef<Path>, keystore: &dyn KeyStore) -> Result<Self> {
        let dir = dir.as_ref();
        let wrapped = match std::fs::read(dir.join(WRAPPED_KEY_FILE)) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound {
                    what: "device store",
                });
            }
            Err(e) => return Err(StoreError::Io(e.to_string()).into()),
        };
        let key = keystore
            .unwrap_key(&wrapped)
            .and_then(|bytes| DbKey::from_bytes(&bytes))
            .map_err(|e| match e {
                KeyStoreError::CannotUnwrap => Error::WrongKey,
                other => other.into(),
            })?;
        Self::open_with_key(dir, &key)
    }

    /// Opens the device store in `dir` with the raw database key.
    pub fn open_with_key(dir: impl AsRef<Path>, key: &DbKey) -> Result<Self> {
        let dir = dir.as_ref();
        let store = Store::open(&dir.join(DB_FILE), key)?;
        let crypto = RustCrypto::default();
        let (id, public_key) = store.read(queries::load_identity)?;
        let signer = store.read(|conn| {
            SignatureKeyPair::read(
                Provider::new(&crypto, conn).storage(),
                &public_key,
                SignatureScheme::ED25519,
            )
            .ok_or(Error::NotFound {
                what: "signature key",
            })
        })?;
        Ok(Self::assemble(store, crypto, signer, id, dir))
    }

    fn assemble(
        store: Store,
        crypto: RustCrypto,
        signer: SignatureKeyPair,
        me: MemberId,
        dir: &Path,
    ) -> Self {
        let credential = CredentialWithKey {
            credential: BasicCredential::new(me.to_credential_bytes()).into(),
            signature_key: signer.to_public_vec().into(),
        };
        Self {
            store,
            crypto,
            signer,
            credential,
            me,
            dir: dir.to_owned(),
        }
    }

    /// Who this device is.
    pub fn id(&self) -> &MemberId {
        &self.me
    }

    /// The directory holding this device's store.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// This device's Ed25519 public signature key.
    pub fn signature_public_key(&self) -> &[u8] {
        self.signer.public()
    }

    /// Makes `count` one-time KeyPackages for others to add this device with.
    pub fn key_packages(&self, count: usize) -> Result<Vec<Vec<u8>>> {
        self.write_mls(|provider| {
            (0..count)
                .map(|_| self.key_package(provider, false))
                .collect()
        })
    }

    /// Makes a last-resort KeyPackage, used when the one-time ones run out.
    pub fn last_resort_key_package(&self) -> Result<Vec<u8>> {
        self.write_mls(|provider| self.key_package(provider, true))
    }

    fn key_package(
        &self,
        provider: &Provider<'_, &Connection>,
        last_resort: bool,
    ) -> Result<Vec<u8>> {
        let mut builder = KeyPackage::builder();
        if last_resort {
            builder = builder.mark_as_last_resort();
        }
        let bundle = builder
            .build(
                mls::CIPHERSUITE,
                provider,
                &self.signer,
                self.credential.clone(),
            )
            .map_err(mls::mls_err)?;
        bundle
            .key_package()
            .tls_serialize_detached()
            .map_err(mls::mls_err)
    }

    /// Starts a conversation with this device as its only member.
    pub fn create_conversation(
        &self,
        title: &str,
        kind: ConversationKind,
        patient: Option<PatientRef>,
    ) -> Result<Conversation> {
        validate_title(title)?;
        let id = uuid::Uuid::new_v4().to_string();
        self.write_mls(|provider| {
            let group = MlsGroup::new_with_group_id(
                provider,
                &self.signer,
                &mls::create_config(),
                GroupId::from_slice(id.as_bytes()),
                self.credential.clone(),
            )
            .map_err(mls::mls_err)?;
            let conversation = Conversation {
                id: id.clone(),
                title: title.trim().to_owned(),
                kind,
                patient,
                epoch: group.epoch().as_u64(),
                active: true,
            };
            let conn = provider_conn(provider);
            queries::insert_conversation(conn, &conversation)?;
            queries::replace_members(conn, &id, &mls::members(&group)?)?;
            Ok(conversation)
        })
    }

    /// Proposes and commits adding the devices whose KeyPackages are given.
    /// The commit waits for [`Device::commit_accepted`] or
    /// [`Device::commit_refused`].
    pub fn add_members(&self, conversation: &str, key_packages: &[Vec<u8>]) -> Result<CommitOut> {
        if key_packages.is_empty() {
            return Err(Error::invalid("key_packages", "none given"));
        }
        let key_packages = key_packages
            .iter()
            .map(|kp| mls::parse_key_package(&self.crypto, kp))
            .collect::<Result<Vec<_>>>()?;
        self.write_mls(|provider| {
            let mut group = self.operational_group(provider, conversation)?;
            let (commit, welcome, _) = group
                .add_members(provider, &self.signer, &key_packages)
                .map_err(mls::mls_err)?;
            self.queue_commit(provider, &group, conversation, &commit, Some(&welcome))
        })
    }

    /// Proposes and commits removing the given member devices.
    pub fn remove_members(&self, conversation: &str, devices: &[MemberId]) -> Result<CommitOut> {
        if devices.is_empty() {
            return Err(Error::invalid("devices", "none given"));
        }
        if devices.contains(&self.me) {
            return Err(Error::invalid("devices", "a device cannot remove itself"));
        }
        self.write_mls(|provider| {
            let mut group = self.operational_group(provider, conversation)?;
            let members = mls::members(&group)?;
            let leaves = devices
                .iter()
                .map(|d| {
                    members
                        .iter()
                        .find(|m| &m.id == d)
                        .map(|m| LeafNodeIndex::new(m.leaf_index))
                        .ok_or(Error::NotFound { what: "member" })
                })
                .collect::<Result<Vec<_>>>()?;
            let (commit, welcome, _) = group
                .remove_members(provider, &self.signer, &leaves)
                .map_err(mls::mls_err)?;
            self.queue_commit(provider, &group, conversation, &commit, welcome.as_ref())
        })
    }

    fn queue_commit(
        &self,
        provider: &Provider<'_, &Connection>,
        group: &MlsGroup,
        conversation: &str,
        commit: &MlsMessageOut,
        welcome: Option<&MlsMessageOut>,
    ) -> Result<CommitOut> {
        let out = CommitOut {
            conversation: conversation.to_owned(),
            epoch: group.epoch().as_u64(),
            commit: mls::to_bytes(commit)?,
            welcome: welcome.map(mls::to_bytes).transpose()?,
        };
        queries::push_outbox(
            provider_conn(provider),
            conversation,
            "commit",
            Some(&uuid::Uuid::new_v4().to_string()),
            out.epoch,
            &out.commit,
            out.welcome.as_deref(),
        )?;
        Ok(out)
    }

    /// The server accepted this device's pending commit: apply it. After an
    /// add, returns the conversation's details for the new members, to send.
    pub fn commit_accepted(&self, conversation: &str) -> Result<Vec<Outgoing>> {
        self.write_mls(|provider| {
            let mut group = mls::load_group(provider, conversation)?;
            let had_adds = group
                .pending_commit()
                .ok_or(Error::NotFound {
                    what: "pending commit",
                })?
                .add_proposals()
                .next()
                .is_some();
            group.merge_pending_commit(provider).map_err(mls::mls_err)?;
            let conn = provider_conn(provider);
            queries::remove_commit_from_outbox(conn, conversation)?;
            self.record_epoch(conn, &group, conversation)?;
            if !had_adds {
                return Ok(Vec::new());
            }
            let c = queries::conversation(conn, conversation)?.ok_or(Error::NotFound {
                what: "conversation",
            })?;
            let details = Content::Details {
                title: c.title,
                kind: c.kind,
                patient: c.patient,
            };
            let id = uuid::Uuid::new_v4().to_string();
            Ok(vec![self.encrypt(
                provider,
                &mut group,
                conversation,
                &id,
                &details,
            )?])
        })
    }

    /// The server refused this device's pending commit (another commit won
    /// the epoch): drop it, so the conversation can change again.
    pub fn commit_refused(&self, conversation: &str) -> Result<()> {
        self.write_mls(|provider| {
            let mut group = mls::load_group(provider, conversation)?;
            group
                .clear_pending_commit(provider.storage())
                .map_err(Error::from)?;
            queries::remove_commit_from_outbox(provider_conn(provider), conversation)
        })
    }

    /// Encrypts and stores a message (state pending) and queues it for the
    /// server, in one transaction.
    pub fn send(&self, conversation: &str, message: NewMessage) -> Result<Outgoing> {
        validate_new_message(&message)?;
        let id = uuid::Uuid::new_v4().to_string();
        let sent_at = queries::now_ms();
        self.write_mls(|provider| {
            let mut group = self.operational_group(provider, conversation)?;
            let content = Content::Text {
                id: id.clone(),
                body: message.body.clone(),
                priority: message.priority,
                sent_at,
                reply_to: message.reply_to.clone(),
                attachments: message.attachments.clone(),
            };
            let outgoing = self.encrypt(provider, &mut group, conversation, &id, &content)?;
            let stored = Message {
                id: id.clone(),
                conversation: conversation.to_owned(),
                sender: self.me.clone(),
                body: message.body,
                priority: message.priority,
                sent_at,
                reply_to: message.reply_to,
                attachments: message.attachments,
                state: MessageState::Pending,
            };
            queries::insert_message(provider_conn(provider), &stored, outgoing.epoch)?;
            Ok(outgoing)
        })
    }

    fn encrypt(
        &self,
        provider: &Provider<'_, &Connection>,
        group: &mut MlsGroup,
        conversation: &str,
        id: &str,
        content: &Content,
    ) -> Result<Outgoing> {
        let out = group
            .create_message(provider, &self.signer, &content.to_bytes()?)
            .map_err(mls::mls_err)?;
        let outgoing = Outgoing {
            id: id.to_owned(),
            conversation: conversation.to_owned(),
            kind: OutgoingKind::Application,
            epoch: group.epoch().as_u64(),
            payload: mls::to_bytes(&out)?,
            welcome: None,
        };
        queries::push_outbox(
            provider_conn(provider),
            conversation,
            "application",
            Some(id),
            outgoing.epoch,
            &outgoing.payload,
            None,
        )?;
        Ok(outgoing)
    }

    /// The server stored an application envelope: take it off the outbox and
    /// mark its message sent.
    pub fn mark_sent(&self, id: &str) -> Result<()> {
        self.store.write(|tx| {
            queries::remove_message_from_outbox(tx, id)?;
            match queries::set_message_state(tx, id, MessageState::Sent) {
                Err(Error::NotFound { .. }) => Ok(()), // a details envelope has no message
                other => other,
            }
        })
    }

    /// What still has to go to the server, oldest first.
    pub fn outbox(&self) -> Result<Vec<Outgoing>> {
        let rows = self.store.read(queries::outbox)?;
        Ok(rows
            .into_iter()
            .map(|r| Outgoing {
                id: r.message_id.unwrap_or_else(|| r.id.to_string()),
                conversation: r.conversation,
                kind: if r.kind == "commit" {
                    OutgoingKind::Commit
                } else {
                    OutgoingKind::Application
                },
                epoch: r.epoch,
                payload: r.payload,
                welcome: r.welcome,
            })
            .collect())
    }

    /// Applies an envelope from the server: a Welcome, a commit, a proposal
    /// or an application message. On any error nothing is stored.
    pub fn receive(&self, bytes: &[u8]) -> Result<Received> {
        match mls::parse(bytes)?.extract() {
            MlsMessageBodyIn::Welcome(welcome) => self.join(welcome),
            MlsMessageBodyIn::PrivateMessage(m) => self.process(m.into()),
            MlsMessageBodyIn::PublicMessage(m) => self.process(m.into()),
            _ => Err(Error::invalid("message", "not for a conversation")),
        }
    }

    fn join(&self, welcome: Welcome) -> Result<Received> {
        self.write_mls(|provider| {
            let staged =
                StagedWelcome::new_from_welcome(provider, &mls::join_config(), welcome, None)
                    .map_err(|e| match e {
                        WelcomeError::NoMatchingKeyPackage
                        | WelcomeError::NoMatchingEncryptionKey => Error::NotMember,
                        WelcomeError::StorageError(e) => StoreError::from(e).into(),
                        other => mls::mls_err(other),
                    })?;
            let group = staged.into_group(provider).map_err(mls::mls_err)?;
            let id = String::from_utf8(group.group_id().as_slice().to_vec())
                .map_err(|_| Error::invalid("welcome", "group id is not a Pieper conversation"))?;
            let conn = provider_conn(provider);
            if queries::conversation(conn, &id)?.is_some() {
                return Err(Error::Replay);
            }
            let conversation = Conversation {
                id: id.clone(),
                title: String::new(),
                kind: ConversationKind::Group,
                patient: None,
                epoch: group.epoch().as_u64(),
                active: true,
            };
            queries::insert_conversation(conn, &conversation)?;
            queries::replace_members(conn, &id, &mls::members(&group)?)?;
            Ok(Received::Joined(conversation))
        })
    }

    fn process(&self, message: ProtocolMessage) -> Result<Received> {
        let conversation = String::from_utf8(message.group_id().as_slice().to_vec())
            .map_err(|_| Error::NotMember)?;
        let message_epoch = message.epoch().as_u64();
        self.write_mls(|provider| {
            let conn = provider_conn(provider);
            match queries::conversation(conn, &conversation)? {
                Some(c) if c.active => {}
                _ => return Err(Error::NotMember),
            }
            let mut group = mls::load_group(provider, &conversation)?;
            let current_epoch = group.epoch().as_u64();
            let processed = group
                .process_message(provider, message)
                .map_err(|e| mls::map_process_error(e, message_epoch, current_epoch))?;
            let sender = mls::member_id(processed.credential());
            match processed.into_content() {
                ProcessedMessageContent::ApplicationMessage(app) => self.apply_content(
                    conn,
                    &conversation,
                    sender?,
                    &app.into_bytes(),
                    message_epoch,
                ),
                ProcessedMessageContent::ProposalMessage(proposal) => {
                    group
                        .store_pending_proposal(provider.storage(), *proposal)
                        .map_err(Error::from)?;
                    Ok(Received::Proposal { conversation })
                }
                ProcessedMessageContent::ExternalJoinProposalMessage(_) => Err(Error::invalid(
                    "message",
                    "external join proposals are not accepted",
                )),
                ProcessedMessageContent::StagedCommitMessage(staged) => {
                    let removed = staged.self_removed();
                    group
                        .merge_staged_commit(provider, *staged)
                        .map_err(mls::mls_err)?;
                    if removed {
                        queries::set_epoch(conn, &conversation, group.epoch().as_u64(), false)?;
                        return Ok(Received::Removed { conversation });
                    }
                    let epoch = self.record_epoch(conn, &group, &conversation)?;
                    Ok(Received::Commit {
                        conversation,
                        epoch,
                    })
                }
                ProcessedMessageContent::OwnPendingCommit
                | ProcessedMessageContent::OwnPrivateMessage => Ok(Received::Own),
            }
        })
    }

    fn apply_content(
        &self,
        conn: &Connection,
        conversation: &str,
        sender: MemberId,
        bytes: &[u8],
        epoch: u64,
    ) -> Result<Received> {
        match Content::from_bytes(bytes)? {
            Content::Text {
                id,
                body,
                priority,
                sent_at,
                reply_to,
                attachments,
            } => {
                let message = Message {
                    id,
                    conversation: conversation.to_owned(),
                    sender,
                    body,
                    priority,
                    sent_at,
                    reply_to,
                    attachments,
                    state: MessageState::Received,
                };
                if !queries::insert_message(conn, &message, epoch)? {
                    // Same id again: a replay. Returning an error rolls back
                    // the ratchet step too.
                    return Err(Error::Replay);
                }
                Ok(Received::Message(message))
            }
            Content::Details {
                title,
                kind,
                patient,
            } => {
                validate_title(&title)?;
                queries::update_details(conn, conversation, &title, kind, patient.as_ref())?;
                let updated =
                    queries::conversation(conn, conversation)?.ok_or(Error::NotFound {
                        what: "conversation",
                    })?;
                Ok(Received::ConversationUpdated(updated))
            }
        }
    }

    /// Stores a group's new epoch and member list; returns the epoch.
    fn record_epoch(&self, conn: &Connection, group: &MlsGroup, conversation: &str) -> Result<u64> {
        let epoch = group.epoch().as_u64();
        queries::set_epoch(conn, conversation, epoch, group.is_active())?;
        queries::replace_members(conn, conversation, &mls::members(group)?)?;
        Ok(epoch)
    }

    /// Loads a group that can take a new message or commit.
    fn operational_group(
        &self,
        provider: &Provider<'_, &Connection>,
        conversation: &str,
    ) -> Result<MlsGroup> {
        let group = mls::load_group(provider, conversation)?;
        if !group.is_active() {
            return Err(Error::NotMember);
        }
        if group.pending_commit().is_some() {
            return Err(Error::PendingCommit);
        }
        Ok(group)
    }

    /// Runs an MLS operation in one store transaction.
    fn write_mls<T>(&self, f: impl FnOnce(&Provider<'_, &Connection>) -> Result<T>) -> Result<T> {
        self.store
            .write(|tx| f(&Provider::new(&self.crypto, &**tx)))
    }

    /// A conversation by id.
    pub fn conversation(&self, id: &str) -> Result<Conversation> {
        self.store
            .read(|c| queries::conversation(c, id))?
            .ok_or(Error::NotFound {
                what: "conversation",
            })
    }

    /// All conversations on this device.
    pub fn conversations(&self) -> Result<Vec<Conversation>> {
        self.store.read(queries::conversations)
    }

    /// The member devices of a conversation.
    pub fn members(&self, conversation: &str) -> Result<Vec<Member>> {
        self.store.read(|c| queries::members(c, conversation))
    }

    /// The `limit` newest messages of a conversation, oldest first.
    pub fn messages(&self, conversation: &str, limit: u32) -> Result<Vec<Message>> {
        self.store
            .read(|c| queries::recent_messages(c, conversation, limit))
    }

    /// One message by id.
    pub fn message(&self, id: &str) -> Result<Message> {
        self.store
            .read(|c| queries::message(c, id))?
            .ok_or(Error::NotFound { what: "message" })
    }

    /// Searches this device's messages; every word must match (as a prefix).
    pub fn search(&self, query: &str, limit: u32) -> Result<Vec<Message>> {
        self.store.read(|c| queries::search(c, query, limit))
    }
}

fn provider_conn<'a>(provider: &Provider<'a, &'a Connection>) -> &'a Connection {
    provider.connection()
}
