//! Sign-in throttling: too many attempts that failed for a key (an account,
//! a source address) within a window, and further attempts are refused
//! until the window moves. An attempt takes its slot before the password
//! is checked ([`Throttle::take`]), so a burst of parallel guesses cannot
//! all pass the check before any of them counts; a success gives it back.
//! The slots live in the database, so every instance on it counts them
//! together, and a restart forgets nothing.

use sqlx::Row;

use crate::{
    db::{Db, now_ms},
    error::AppResult,
};

/// Failure counts per key (an account, an address).
pub struct Throttle {
    db: Db,
    limit: i64,
    window_ms: i64,
}

/// An attempt's slot on a key, to give back if the attempt succeeds.
#[derive(Debug)]
pub struct Slot(i64);

impl Throttle {
    /// Allows `limit` failures per key within `window`.
    pub fn new(db: Db, limit: u32, window: std::time::Duration) -> Self {
        Self {
            db,
            limit: i64::from(limit.max(1)),
            window_ms: i64::try_from(window.as_millis()).unwrap_or(i64::MAX / 2),
        }
    }

    /// Takes an attempt's slot on `key`, counted as a failure until
    /// [`Throttle::give_back`]: `Err(seconds to wait)` (and nothing taken)
    /// if the key is at its limit. Slots past the window go on the way, of
    /// every key (made-up user names leave nothing behind for long).
    pub async fn take(&self, key: &str) -> AppResult<Result<Slot, u64>> {
        let now = now_ms();
        let since = now - self.window_ms;
        let mut w = self.db.begin_write().await?;
        sqlx::query("DELETE FROM throttle_slots WHERE at < $1")
            .bind(since)
            .execute(&mut *w.tx)
            .await?;
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, MIN(at) AS oldest FROM throttle_slots WHERE key = $1",
        )
        .bind(key)
        .fetch_one(&mut *w.tx)
        .await?;
        let (taken, oldest): (i64, Option<i64>) = (row.try_get("n")?, row.try_get("oldest")?);
        if taken >= self.limit {
            let left_ms = oldest.unwrap_or(now) + self.window_ms - now;
            return Ok(Err(u64::try_from(left_ms / 1000).unwrap_or(0).max(1)));
        }
        let id: i64 =
            sqlx::query_scalar("INSERT INTO throttle_slots (key, at) VALUES ($1, $2) RETURNING id")
                .bind(key)
                .bind(now)
                .fetch_one(&mut *w.tx)
                .await?;
        w.tx.commit().await?;
        Ok(Ok(Slot(id)))
    }

    /// Gives back the slot of an attempt that succeeded.
    pub async fn give_back(&self, slot: Slot) -> AppResult<()> {
        sqlx::query("DELETE FROM throttle_slots WHERE id = $1")
            .bind(slot.0)
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    /// Forgets the failures of a key (after a successful sign-in).
    pub async fn clear(&self, key: &str) -> AppResult<()> {
        sqlx::query("DELETE FROM throttle_slots WHERE key = $1")
            .bind(key)
            .execute(self.db.pool())
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn db() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("t.sqlite3").display()
        );
        let db = Db::connect(&url, crate::secrets::Sealer::new(&[1; 32]))
            .await
            .expect("database");
        (dir, db)
    }

    async fn count(db: &Db) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM throttle_slots")
            .fetch_one(db.pool())
            .await
            .expect("count")
    }

    #[tokio::test]
    async fn throttles_after_the_limit_per_key_and_a_success_starts_afresh() {
        let (_dir, db) = db().await;
        let t = Throttle::new(db.clone(), 3, Duration::from_secs(60));
        for _ in 0..3 {
            assert!(t.take("acct").await.expect("db").is_ok());
        }
        let wait = t.take("acct").await.expect("db").expect_err("throttled");
        assert!((1..=60).contains(&wait), "{wait}");
        assert!(t.take("other").await.expect("db").is_ok());
        t.clear("acct").await.expect("db");
        assert!(t.take("acct").await.expect("db").is_ok());
    }

    #[tokio::test]
    async fn a_slot_is_taken_before_the_outcome_and_a_success_gives_it_back() {
        let (_dir, db) = db().await;
        let t = Throttle::new(db.clone(), 2, Duration::from_secs(60));
        let first = t.take("ip").await.expect("db").expect("slot");
        assert!(t.take("ip").await.expect("db").is_ok());
        // Two attempts in flight use up the limit.
        assert!(t.take("ip").await.expect("db").is_err());
        t.give_back(first).await.expect("db");
        assert!(t.take("ip").await.expect("db").is_ok());
    }

    #[tokio::test]
    async fn slots_past_the_window_go_for_every_key() {
        let (_dir, db) = db().await;
        let t = Throttle::new(db.clone(), 3, Duration::from_millis(1));
        for i in 0..50 {
            assert!(t.take(&format!("made-up:{i}")).await.expect("db").is_ok());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(t.take("fresh").await.expect("db").is_ok());
        assert_eq!(count(&db).await, 1);
    }
}
