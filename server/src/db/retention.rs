//! What the server stops keeping: envelopes every recipient device has
//! acknowledged, and whatever is older than the practice's retention period.

use serde::Serialize;

use super::{Db, now_ms};
use crate::error::{AppError, AppResult};

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// What one collection removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Collected {
    /// Envelopes every recipient had acknowledged.
    pub delivered: u64,
    /// Envelopes past the retention period (delivered or not).
    pub expired: u64,
    /// Blobs past the retention period.
    pub expired_blobs: u64,
}

impl Db {
    /// Sets how many days a practice's undelivered data is kept.
    pub async fn set_retention_days(&self, practice: &str, days: u32) -> AppResult<()> {
        let done = sqlx::query("UPDATE practices SET retention_days = $1 WHERE id = $2")
            .bind(i64::from(days))
            .bind(practice)
            .execute(self.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(AppError::NotFound("practice"));
        }
        Ok(())
    }

    /// Removes what no device needs any more and what retention ends.
    pub async fn collect(&self) -> AppResult<Collected> {
        let now = now_ms();
        let mut w = self.begin_write().await?;
        // A conversation envelope is needed while a recipient device (member
        // at its position, not its sender, not revoked) has not acknowledged it.
        let conversation_envelopes = sqlx::query(
            "DELETE FROM envelopes WHERE recipient_device IS NULL AND NOT EXISTS (
                SELECT 1 FROM memberships m JOIN devices d ON d.id = m.device_id
                WHERE m.conversation_id = envelopes.conversation_id
                  AND envelopes.position > m.from_position
                  AND (m.until_position IS NULL OR envelopes.position <= m.until_position)
                  AND m.device_id <> envelopes.sender_device
                  AND d.revoked_at IS NULL
                  AND d.acked_position < envelopes.position)",
        )
        .execute(&mut *w.tx)
        .await?
        .rows_affected();
        // Urgent messages are watched for a day at most.
        sqlx::query("DELETE FROM urgent_messages WHERE read_at IS NOT NULL OR stored_at < $1")
            .bind(now - 86_400_000)
            .execute(&mut *w.tx)
            .await?;
        let welcomes = sqlx::query(
            "DELETE FROM envelopes WHERE recipient_device IS NOT NULL AND EXISTS (
                SELECT 1 FROM devices d WHERE d.id = envelopes.recipient_device
                  AND (d.acked_position >= envelopes.position OR d.revoked_at IS NOT NULL))",
        )
        .execute(&mut *w.tx)
        .await?
        .rows_affected();
        let expired = sqlx::query(
            "DELETE FROM envelopes WHERE stored_at < (
                SELECT $1 - p.retention_days * $2 FROM conversations c
                JOIN practices p ON p.id = c.practice_id WHERE c.id = envelopes.conversation_id)",
        )
        .bind(now)
        .bind(DAY_MS)
        .execute(&mut *w.tx)
        .await?
        .rows_affected();
        let expired_blobs = sqlx::query(
            "DELETE FROM blobs WHERE created_at < (
                SELECT $1 - p.retention_days * $2 FROM conversations c
                JOIN practices p ON p.id = c.practice_id WHERE c.id = blobs.conversation_id)",
        )
        .bind(now)
        .bind(DAY_MS)
        .execute(&mut *w.tx)
        .await?
        .rows_affected();
        w.tx.commit().await?;
        Ok(Collected {
            delivered: conversation_envelopes + welcomes,
            expired,
            expired_blobs,
        })
    }
}
