//! Mapping OpenMLS errors to the core's [`Error`], so a caller can tell a
//! tampered message from a replay or a stale epoch.

use openmls::{
    error::LibraryError,
    framing::errors::{MessageDecryptionError, SecretTreeError},
    prelude::{MlsGroupStateError, ProcessMessageError, StageCommitError, ValidationError},
};

use crate::{error::Error, store::StoreError};

/// An MLS failure no caller action fixes.
pub(crate) fn mls_err(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::internal("MLS", e)
}

impl From<LibraryError> for Error {
    fn from(e: LibraryError) -> Self {
        mls_err(e)
    }
}

/// Maps a failure to process an incoming message. `message_epoch` and
/// `current_epoch` let a wrong epoch be reported with both numbers.
pub(crate) fn map_process_error(
    e: ProcessMessageError<rusqlite::Error>,
    message_epoch: u64,
    current_epoch: u64,
) -> Error {
    let stale = Error::StaleEpoch {
        message: message_epoch,
        current: current_epoch,
    };
    match e {
        ProcessMessageError::StorageError(e) => Error::Storage(StoreError::from(e)),
        ProcessMessageError::ValidationError(v) => match v {
            ValidationError::WrongEpoch | ValidationError::NoPastEpochData => stale,
            ValidationError::UnableToDecrypt(d) => match d {
                MessageDecryptionError::SecretTreeError(
                    SecretTreeError::SecretReuseError | SecretTreeError::TooDistantInThePast,
                ) => Error::Replay,
                MessageDecryptionError::GenerationOutOfBound
                | MessageDecryptionError::AeadError
                | MessageDecryptionError::MalformedContent
                | MessageDecryptionError::SecretTreeError(_) => Error::Tampered,
                other => mls_err(other),
            },
            ValidationError::InvalidSignature
            | ValidationError::InvalidMembershipTag
            | ValidationError::MissingMembershipTag
            | ValidationError::WrongGroupId
            | ValidationError::UnknownMember
            | ValidationError::InvalidLeafNodeSignature => Error::Tampered,
            ValidationError::NonMemberApplicationMessage => Error::NotMember,
            other => mls_err(other),
        },
        ProcessMessageError::GroupStateError(MlsGroupStateError::UseAfterEviction) => {
            Error::NotMember
        }
        ProcessMessageError::InvalidCommit(StageCommitError::EpochMismatch) => stale,
        ProcessMessageError::IncompatibleWireFormat => Error::Tampered,
        other => mls_err(other),
    }
}
