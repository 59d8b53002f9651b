//! Errors of the local store.

/// Why the local store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The disk is full; nothing was written.
    #[error("the disk is full")]
    Full,
    /// The store's file is damaged.
    #[error("the store is corrupt")]
    Corrupt,
    /// Another process holds the store.
    #[error("the store is busy")]
    Busy,
    /// The file could not be read or written.
    #[error("store I/O failure: {0}")]
    Io(String),
    /// The store was written by a newer version of Pieper.
    #[error("store schema {found} is newer than this build's {known}")]
    TooNew {
        /// The schema version on disk.
        found: u32,
        /// The newest schema this build knows.
        known: u32,
    },
    /// A stored record could not be read back.
    #[error("stored record unreadable: {0}")]
    Record(String),
    /// Any other SQLite failure.
    #[error("SQLite: {0}")]
    Sqlite(rusqlite::Error),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode as C;
        match e.sqlite_error_code() {
            Some(C::DiskFull) => StoreError::Full,
            Some(C::DatabaseCorrupt | C::NotADatabase) => StoreError::Corrupt,
            Some(C::DatabaseBusy | C::DatabaseLocked) => StoreError::Busy,
            Some(C::CannotOpen | C::SystemIoFailure | C::ReadOnly) => StoreError::Io(e.to_string()),
            _ => StoreError::Sqlite(e),
        }
    }
}
