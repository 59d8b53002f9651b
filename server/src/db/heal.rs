//! Heal requests: a member device that cannot decrypt a conversation any
//! more asks to be removed and added again by another member's device.

use sqlx::Row;

use super::{Db, delivery::is_member, now_ms};
use crate::error::{AppError, AppResult};

impl Db {
    /// Records that `device` needs to be added to `conversation` again.
    pub async fn request_heal(
        &self,
        practice: &str,
        device: &str,
        conversation: &str,
    ) -> AppResult<()> {
        let ours =
            sqlx::query("SELECT 1 AS one FROM conversations WHERE id = $1 AND practice_id = $2")
                .bind(conversation)
                .bind(practice)
                .fetch_optional(self.pool())
                .await?;
        if ours.is_none() || !is_member(self.pool(), conversation, device).await? {
            return Err(AppError::NotFound("conversation"));
        }
        let mut w = self.begin_write().await?;
        sqlx::query("DELETE FROM heal_requests WHERE conversation_id = $1 AND device_id = $2")
            .bind(conversation)
            .bind(device)
            .execute(&mut *w.tx)
            .await?;
        sqlx::query(
            "INSERT INTO heal_requests (conversation_id, device_id, requested_at) VALUES ($1, $2, $3)",
        )
        .bind(conversation)
        .bind(device)
        .bind(now_ms())
        .execute(&mut *w.tx)
        .await?;
        w.tx.commit().await?;
        Ok(())
    }

    /// Heal requests in the conversations `device` is a member of (not its own).
    pub async fn heal_requests(&self, device: &str) -> AppResult<Vec<pieper_wire::HealRequest>> {
        sqlx::query(
            "SELECT h.conversation_id, h.device_id FROM heal_requests h
             JOIN memberships m ON m.conversation_id = h.conversation_id
             WHERE m.device_id = $1 AND m.until_position IS NULL AND h.device_id <> $1
             ORDER BY h.requested_at",
        )
        .bind(device)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| {
            Ok(pieper_wire::HealRequest {
                conversation: r.try_get("conversation_id")?,
                device: r.try_get("device_id")?,
            })
        })
        .collect()
    }
}
