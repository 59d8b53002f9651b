//! The device's local store: one SQLCipher database holding conversations,
//! members, messages, their full-text index, the outbox and all MLS state.
//!
//! The whole file (and its WAL) is encrypted with a raw 32-byte key, so the
//! search index and every MLS secret are covered too, with no per-field
//! scheme to get wrong. A raw key, not a passphrase: the passphrase KDF would
//! cost ~0.1 s per open and adds nothing to a random key.

mod error;
pub(crate) mod queries;

use std::{
    path::Path,
    sync::{Mutex, MutexGuard},
};

pub use error::StoreError;
use openmls_sqlite_storage::SqliteStorageProvider;
use rusqlite::{Connection, ErrorCode, OptionalExtension, Transaction};

use crate::{
    error::{Error, Result},
    keystore::DbKey,
    mls::StateCodec,
};

/// Schema steps, in order; the index + 1 is the `user_version` after the step.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/001_initial.sql"),
    include_str!("../../migrations/002_session.sql"),
    include_str!("../../migrations/003_practice_data.sql"),
    include_str!("../../migrations/004_push.sql"),
    include_str!("../../migrations/005_tasks.sql"),
    include_str!("../../migrations/006_message_kinds.sql"),
    include_str!("../../migrations/007_read.sql"),
    include_str!("../../migrations/008_documentation.sql"),
    include_str!("../../migrations/009_spoed.sql"),
    include_str!("../../migrations/010_privacy.sql"),
    include_str!("../../migrations/011_history.sql"),
    include_str!("../../migrations/012_outbox_delivery.sql"),
    include_str!("../../migrations/013_certificates.sql"),
    include_str!("../../migrations/014_known_devices.sql"),
    include_str!("../../migrations/015_resent_by.sql"),
    include_str!("../../migrations/016_key_updates.sql"),
    include_str!("../../migrations/017_first_key_packages.sql"),
    include_str!("../../migrations/018_key_package_rotation.sql"),
    include_str!("../../migrations/019_spoed_patient.sql"),
    include_str!("../../migrations/020_audit_anchors.sql"),
];

/// An open, keyed store; closed (its key gone from memory) while the app
/// is locked.
pub(crate) struct Store {
    conn: Mutex<Option<Connection>>,
    path: std::path::PathBuf,
}

impl Store {
    /// Opens (or creates) the store at `path` with `key`, and brings its
    /// schema up to date. A wrong key gives [`Error::WrongKey`] and writes
    /// nothing.
    pub(crate) fn open(path: &Path, key: &DbKey) -> Result<Self> {
        Ok(Self {
            conn: Mutex::new(Some(connect(path, key)?)),
            path: path.to_owned(),
        })
    }

    /// Closes the connection: SQLCipher forgets the key. Every call answers
    /// [`Error::Locked`] until [`Store::reopen`].
    pub(crate) fn close(&self) {
        *self.guard() = None;
    }

    /// Opens the store again with its key (after an unlock).
    pub(crate) fn reopen(&self, key: &DbKey) -> Result<()> {
        let conn = connect(&self.path, key)?;
        *self.guard() = Some(conn);
        Ok(())
    }

    /// Whether the store is closed (locked).
    pub(crate) fn is_closed(&self) -> bool {
        self.guard().is_none()
    }

    fn guard(&self) -> MutexGuard<'_, Option<Connection>> {
        // A panic while holding the lock rolled its transaction back, so the
        // connection itself is still sound.
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `f` in one transaction: committed if it returns `Ok`, rolled
    /// back (nothing written) if it returns `Err`.
    pub(crate) fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut guard = self.guard();
        let conn = guard.as_mut().ok_or(Error::Locked)?;
        let tx = conn.transaction().map_err(StoreError::from)?;
        let value = f(&tx)?;
        tx.commit().map_err(StoreError::from)?;
        Ok(value)
    }

    /// Runs a read-only `f` on the connection.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let guard = self.guard();
        let conn = guard.as_ref().ok_or(Error::Locked)?;
        f(conn)
    }
}

/// Opens the SQLCipher file with `key` and brings its schema up to date. A
/// wrong key gives [`Error::WrongKey`] and writes nothing.
fn connect(path: &Path, key: &DbKey) -> Result<Connection> {
    let mut conn = Connection::open(path).map_err(StoreError::from)?;
    let pragma = zeroize::Zeroizing::new(format!("PRAGMA key = \"{}\";", *key.sqlcipher_pragma()));
    conn.execute_batch(&pragma).map_err(StoreError::from)?;
    // SQLCipher would log a wrong key to stderr; the caller gets a typed
    // error instead.
    conn.execute_batch("PRAGMA cipher_log_level = NONE;")
        .map_err(StoreError::from)?;
    // The first read tells whether the key fits; it writes nothing.
    match conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    }) {
        Ok(_) => {}
        Err(e) if e.sqlite_error_code() == Some(ErrorCode::NotADatabase) => {
            return Err(Error::WrongKey);
        }
        Err(e) => return Err(StoreError::from(e).into()),
    }
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             PRAGMA secure_delete = ON;
             PRAGMA busy_timeout = 2000;",
    )
    .map_err(StoreError::from)?;
    SqliteStorageProvider::<StateCodec, &mut Connection>::new(&mut conn)
        .run_migrations()
        .map_err(|e| StoreError::Record(format!("OpenMLS storage migration: {e}")))?;
    // Foreign keys are enforced once the schema is current: a step that
    // rebuilds a table must not cascade into its children.
    run_migrations(&mut conn)?;
    conn.execute_batch("PRAGMA foreign_keys = ON;")
        .map_err(StoreError::from)?;
    Ok(conn)
}

/// Brings the schema to the newest version, one transaction per step.
fn run_migrations(conn: &mut Connection) -> Result<()> {
    let known = MIGRATIONS.len() as u32;
    let current: u32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(StoreError::from)?;
    if current > known {
        return Err(StoreError::TooNew {
            found: current,
            known,
        }
        .into());
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction().map_err(StoreError::from)?;
        tx.execute_batch(sql).map_err(StoreError::from)?;
        let broken: Option<String> = tx
            .query_row("PRAGMA foreign_key_check", [], |r| r.get(0))
            .optional()
            .map_err(StoreError::from)?;
        if let Some(table) = broken {
            return Err(
                StoreError::Record(format!("migration broke references in {table}")).into(),
            );
        }
        tx.pragma_update(None, "user_version", index as u32 + 1)
            .map_err(StoreError::from)?;
        tx.commit().map_err(StoreError::from)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_once_and_refuses_newer_schema() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::Io(e.to_string()))?;
        let path = dir.path().join("t.db");
        let key = DbKey::random();
        let store = Store::open(&path, &key)?;
        let version: u32 =
            store.read(|c| Ok(c.query_row("PRAGMA user_version", [], |r| r.get(0))?))?;
        assert_eq!(version, MIGRATIONS.len() as u32);
        store.write(|tx| Ok(tx.pragma_update(None, "user_version", 99)?))?;
        drop(store);
        assert!(matches!(
            Store::open(&path, &key),
            Err(Error::Storage(StoreError::TooNew { found: 99, .. }))
        ));
        Ok(())
    }

    #[test]
    fn write_rolls_back_on_error() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::Io(e.to_string()))?;
        let store = Store::open(&dir.path().join("t.db"), &DbKey::random())?;
        let result: Result<()> = store.write(|tx| {
            tx.execute(
                "INSERT INTO conversations (id, title, kind, epoch, created_at) VALUES ('c', 't', 'group', 0, 0)",
                [],
            )?;
            Err(Error::invalid("test", "abort"))
        });
        assert!(result.is_err());
        let count: i64 = store
            .read(|c| Ok(c.query_row("SELECT count(*) FROM conversations", [], |r| r.get(0))?))?;
        assert_eq!(count, 0);
        Ok(())
    }

    /// A full disk (SQLite cannot grow the file) is a typed error and loses
    /// what was stored before.
    #[test]
    fn full_disk_is_typed_and_loses_nothing() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::Io(e.to_string()))?;
        let store = Store::open(&dir.path().join("t.db"), &DbKey::random())?;
        let insert = |id: &str, title: &str| {
            store.write(|tx| {
                tx.execute(
                    "INSERT INTO conversations (id, title, kind, epoch, created_at) VALUES (?1, ?2, 'group', 0, 0)",
                    [id, title],
                )?;
                Ok(())
            })
        };
        insert("kept", "before the disk filled up")?;
        store.read(|c| {
            let pages: i64 = c.query_row("PRAGMA page_count", [], |r| r.get(0))?;
            c.pragma_update(None, "max_page_count", pages)?;
            Ok(())
        })?;
        let result = insert("lost", &"x".repeat(1 << 20));
        assert!(
            matches!(result, Err(Error::Storage(StoreError::Full))),
            "{result:?}"
        );
        let titles: Vec<String> = store.read(|c| {
            let mut stmt = c.prepare("SELECT title FROM conversations")?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })?;
        assert_eq!(titles, ["before the disk filled up"]);
        Ok(())
    }
}
