//! The server's storage: one code path over SQLite (embedded, the default)
//! and PostgreSQL (a care group on several instances), through sqlx's `Any`
//! driver with runtime queries. Each backend has its own migrations
//! (`migrations/<backend>`), run by `sqlx::migrate!`.
//!
//! Writes to the log are serialized so that positions become visible in
//! order (a cursor never skips an envelope that commits later): a process
//! lock on SQLite, a transaction-scoped advisory lock on PostgreSQL.

pub mod accounts;
pub mod audit;
pub mod backup;
pub mod delivery;
pub mod enrolment;
pub mod heal;
pub mod push;
pub mod retention;

use std::time::Duration;

use sqlx::{
    Any, AnyPool, Executor, Row, Transaction,
    any::{AnyPoolOptions, install_default_drivers},
    migrate::Migrator,
};

use crate::error::AppResult;

/// Which database is behind the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The embedded file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// Each backend's migrations, embedded in the binary.
static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// The database, shared by all handlers.
#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    /// Serializes log writes on SQLite (one writer at a time anyway).
    write_gate: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// Seals the secrets kept in the database.
    pub(crate) sealer: crate::secrets::Sealer,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Db {
    /// Connects and brings the schema up to date.
    pub async fn connect(url: &str, sealer: crate::secrets::Sealer) -> AppResult<Self> {
        install_default_drivers();
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            Backend::Sqlite
        };
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 16 })
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // FULL: an acknowledged message survives a power cut.
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                             PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; \
                             PRAGMA secure_delete = ON;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        let db = Self {
            pool,
            backend,
            write_gate: Default::default(),
            sealer,
        };
        db.migrate().await?;
        db.seal_plaintext_secrets().await?;
        Ok(db)
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool, for queries outside a transaction.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Brings the schema up to date with sqlx's migrator (its table records
    /// each migration's checksum; on PostgreSQL it holds an advisory lock, so
    /// instances starting together migrate one after the other).
    async fn migrate(&self) -> AppResult<()> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        // A database from before the migrator counted its steps in
        // `schema_version`: those are recorded as applied, without running
        // them again, and the old table goes.
        if let Some(applied) = self.legacy_schema_version().await? {
            migrator
                .skip(&self.pool, Some(applied))
                .await
                .map_err(sqlx::Error::from)?;
            sqlx::query("DROP TABLE IF EXISTS schema_version")
                .execute(&self.pool)
                .await?;
        }
        // PostgreSQL: the migrator's advisory lock serializes instances.
        // SQLite has no such lock, and an admin command may start while the
        // server migrates the same file: a step the other process applied
        // meanwhile fails here and rolls back, so look again.
        let mut attempt = 0;
        loop {
            match migrator.run(&self.pool).await {
                Ok(()) => return Ok(()),
                // Only a step (or the migrator's table) failing to execute
                // can be the other process's doing; a changed or missing
                // migration is reported at once.
                Err(
                    e @ (sqlx::migrate::MigrateError::Execute(_)
                    | sqlx::migrate::MigrateError::ExecuteMigration(..)),
                ) if self.backend == Backend::Sqlite && attempt < 50 => {
                    tracing::debug!(error = %e, "migrating: another process is at it, again");
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(sqlx::Error::from(e).into()),
            }
        }
    }

    /// The step a pre-migrator database reached, if this is one.
    async fn legacy_schema_version(&self) -> AppResult<Option<i64>> {
        let exists = match self.backend {
            Backend::Sqlite => {
                "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
            }
            Backend::Postgres => {
                "SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'schema_version'"
            }
        };
        let n: i64 = sqlx::query(exists)
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?;
        if n == 0 {
            return Ok(None);
        }
        let version: i64 = sqlx::query("SELECT COALESCE(MAX(version), 0) AS v FROM schema_version")
            .fetch_one(&self.pool)
            .await?
            .try_get("v")?;
        Ok(Some(version))
    }

    /// After removing content (disappearing messages, an erasure): folds
    /// the SQLite write-ahead log into the file and empties it, so the old
    /// page images go too (`secure_delete` zeroed the freed ones). Best
    /// effort: a busy log is folded next time.
    pub async fn scrub(&self) {
        if self.backend == Backend::Sqlite
            && let Err(e) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&self.pool)
                .await
        {
            tracing::debug!(error = %e, "checkpoint after removal failed");
        }
    }

    /// Begins a write transaction; writes are serialized so log positions commit in order.
    pub async fn begin_write(&self) -> AppResult<Write<'_>> {
        let gate = match self.backend {
            Backend::Sqlite => Some(self.write_gate.lock().await),
            Backend::Postgres => None,
        };
        let tx = match self.backend {
            // IMMEDIATE takes the write lock now (waiting out busy_timeout),
            // instead of failing to upgrade a read snapshot that another
            // connection's write made stale (SQLITE_BUSY_SNAPSHOT).
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => {
                let mut tx = self.pool.begin().await?;
                tx.execute("SELECT pg_advisory_xact_lock(734002)").await?;
                tx
            }
        };
        Ok(Write { tx, _gate: gate })
    }
}

/// A write transaction (see [`Db::begin_write`]).
pub struct Write<'a> {
    /// The transaction.
    pub tx: Transaction<'static, Any>,
    _gate: Option<tokio::sync::MutexGuard<'a, ()>>,
}
