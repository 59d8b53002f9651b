//! The error a caller of the core acts on.

use crate::{attachments::AttachmentError, keystore::KeyStoreError, store::StoreError};

/// Result of a core call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, in terms a caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store could not be opened with the key the keystore gave: another
    /// device's key, or a keystore that lost its key. Nothing was changed.
    #[error("the database key does not open this store")]
    WrongKey,
    /// The ciphertext was altered or is corrupt; it was not applied.
    #[error("the message was tampered with or is corrupt")]
    Tampered,
    /// The message was already processed (or is older than the ratchet keeps).
    #[error("the message was already processed")]
    Replay,
    /// The message or commit belongs to another epoch than the conversation's.
    /// Fetch what is missing, re-apply, then retry.
    #[error("message of epoch {message}, conversation is at epoch {current}")]
    StaleEpoch {
        /// The epoch the message was made in.
        message: u64,
        /// The epoch this device's copy of the conversation is in.
        current: u64,
    },
    /// This device is not (or no longer) a member of the conversation, or a
    /// Welcome was not addressed to it.
    #[error("this device is not a member of the conversation")]
    NotMember,
    /// A membership change of this device awaits the server's answer; call
    /// `commit_accepted` or `commit_refused` first.
    #[error("a commit is waiting for the server's answer")]
    PendingCommit,
    /// Something the caller named does not exist.
    #[error("{what} not found")]
    NotFound {
        /// What was looked for.
        what: &'static str,
    },
    /// A member's identity did not check out: a certificate not from the
    /// practice's authority, expired, for another key, or naming another
    /// account than the server says. Nothing was changed.
    #[error("untrusted member: {reason}")]
    Untrusted {
        /// What did not match.
        reason: String,
    },
    /// A member (this device's own user included) may not do this: the
    /// verified sender's role or identity does not allow it. Nothing was
    /// changed.
    #[error("refused: {reason}")]
    Refused {
        /// Why.
        reason: Refusal,
    },
    /// Input that the core refuses, with the field and why.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The offending field.
        field: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// Sharing the patient's data outside the practice needs the patient's
    /// consent of this kind, and it is not given.
    #[error("the patient has not given consent ({})", kind.as_str())]
    ConsentRequired {
        /// The consent that is missing.
        kind: crate::consent::ConsentKind,
    },
    /// The local store failed (full disk, corruption, I/O).
    #[error(transparent)]
    Storage(#[from] StoreError),
    /// The platform keystore failed.
    #[error(transparent)]
    KeyStore(#[from] KeyStoreError),
    /// An attachment could not be sealed or opened.
    #[error(transparent)]
    Attachment(#[from] AttachmentError),
    /// The server could not be reached, timed out or failed (5xx): what was
    /// written stays queued and goes out when it answers again.
    #[error("the server is unreachable: {0}")]
    Network(String),
    /// This device's session ended (its token was revoked or is unknown):
    /// sign in again.
    #[error("this device is signed out")]
    SignedOut,
    /// The app is locked (idle, or locked by the user): the database key is
    /// not in memory. Unlock with the platform's check first.
    #[error("locked: unlock first")]
    Locked,
    /// This device wiped its store and keys (it was revoked, or too many
    /// unlocks failed); every call after the wipe answers this. Sign in
    /// again as a new device.
    #[error("this device was wiped")]
    Wiped,
    /// This device was revoked (lost or stolen): its store and keys were
    /// wiped as it heard of it (the call that heard it answers this, later
    /// ones [`Error::Wiped`]). Sign in again as a new device.
    #[error("this device was revoked and its data wiped")]
    Revoked,
    /// The server refused the request, with its stable code
    /// (`unauthorized`, `totp_reused`, `throttled`, `not_found`, ...).
    #[error("the server refused: {code}")]
    Rejected {
        /// The problem code.
        code: String,
        /// The server's explanation, for people.
        detail: Option<String>,
    },
    /// A failure inside the core that no caller action fixes (a library
    /// bug, a background task that died); `context` says where, `source`
    /// keeps the cause for the logs.
    #[error("internal failure in {context}")]
    Internal {
        /// Where it happened.
        context: &'static str,
        /// What failed underneath.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl Error {
    /// For content a member's device sent that this device refused: the
    /// kind it is counted under (`untrusted_member`, or the refusal's name).
    pub fn refusal_kind(&self) -> Option<&'static str> {
        match self {
            Error::Untrusted { .. } => Some(UNTRUSTED_MEMBER),
            Error::Refused { reason } => Some(reason.into()),
            _ => None,
        }
    }

    /// An internal failure in `context`, keeping its cause.
    pub(crate) fn internal(
        context: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Error::Internal {
            context,
            source: source.into(),
        }
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Error::Invalid {
            field,
            reason: reason.into(),
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Storage(e.into())
    }
}

/// The kind a refused identity (a certificate or KeyPackage that did not
/// check out) is counted under.
pub(crate) const UNTRUSTED_MEMBER: &str = "untrusted_member";

/// Why a member's operation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, strum::IntoStaticStr, strum::EnumString)]
#[strum(serialize_all = "snake_case")]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum Refusal {
    /// The sender's role does not allow it (erasing a patient's chat or
    /// changing the duty roster takes a huisarts or the practice manager;
    /// relinking a conversation to another patient a huisarts; marking
    /// documentation done the HIS connector).
    Role,
    /// It names another member as its author (a consent change recorded
    /// "by" someone else, a retry of someone else's documentation).
    NotAuthor,
    /// It claims a place in the practice's log that it cannot have (a place
    /// not below the envelope that carries it).
    LogPlace,
    /// History sent into a conversation this device did not ask to be
    /// added to again.
    Unasked,
}

/// How often this device refused something of one kind.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct RefusalCount {
    /// `untrusted_member`, or a [`Refusal`]'s name.
    pub kind: String,
    /// How often.
    pub count: u64,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refusal::Role => "the sender's role does not allow this",
            Refusal::NotAuthor => "it names another member as its author",
            Refusal::LogPlace => "it claims a place in the practice log it cannot have",
            Refusal::Unasked => "history this device did not ask for",
        })
    }
}
