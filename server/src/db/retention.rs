//! What the server stops keeping: envelopes every recipient device has
//! acknowledged, and whatever is older than the practice's retention period.

use pieper_wire::{Erased, PracticeSettings};
use serde::Serialize;
use sqlx::Row;

use super::{Db, now_ms};
use crate::error::{AppError, AppResult};

const DAY_MS: i64 = 24 * 60 * 60 * 1000;
/// The longest enforced time-to-live: a year.
const MAX_TTL_SECS: u64 = 365 * 24 * 60 * 60;

/// What one collection removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Collected {
    /// Envelopes every recipient had acknowledged.
    pub delivered: u64,
    /// Envelopes past the retention period (delivered or not).
    pub expired: u64,
    /// Blobs past the retention period.
    pub expired_blobs: u64,
    /// Disappearing messages and their blobs past their time-to-live.
    pub disappeared: u64,
    /// Audit records past their five years.
    pub audit_pruned: u64,
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

    /// The practice's rules for chat content.
    pub async fn practice_settings(&self, practice: &str) -> AppResult<PracticeSettings> {
        let row = sqlx::query(
            "SELECT retention_days, ttl_policy, ttl_secs, history_messages, devices_per_user,
                 key_update_days
             FROM practices WHERE id = $1",
        )
        .bind(practice)
        .fetch_optional(self.pool())
        .await?
        .ok_or(AppError::NotFound("practice"))?;
        Ok(PracticeSettings {
            retention_days: u32::try_from(row.try_get::<i64, _>("retention_days")?).unwrap_or(0),
            ttl_policy: row.try_get("ttl_policy")?,
            ttl_secs: row
                .try_get::<Option<i64>, _>("ttl_secs")?
                .and_then(|s| u64::try_from(s).ok()),
            history_messages: u32::try_from(row.try_get::<i64, _>("history_messages")?)
                .unwrap_or(0),
            devices_per_user: u32::try_from(row.try_get::<i64, _>("devices_per_user")?).ok(),
            key_update_days: u32::try_from(row.try_get::<i64, _>("key_update_days")?).ok(),
        })
    }

    /// Changes the practice's rules for chat content.
    pub async fn set_practice_settings(
        &self,
        practice: &str,
        settings: &PracticeSettings,
    ) -> AppResult<()> {
        match (settings.ttl_policy.as_str(), settings.ttl_secs) {
            ("allowed" | "forbidden", _) => {}
            ("enforced", Some(secs)) if (1..=MAX_TTL_SECS).contains(&secs) => {}
            ("enforced", _) => {
                return Err(AppError::Invalid(format!(
                    "an enforced time-to-live takes ttl_secs from 1 to {MAX_TTL_SECS}"
                )));
            }
            (other, _) => {
                return Err(AppError::Invalid(format!(
                    "ttl_policy {other:?}: allowed, forbidden or enforced"
                )));
            }
        }
        if settings.history_messages > 1_000 {
            return Err(AppError::Invalid(
                "history_messages must be 0 to 1000".into(),
            ));
        }
        if settings
            .devices_per_user
            .is_some_and(|n| !(1..=100).contains(&n))
        {
            return Err(AppError::Invalid(
                "devices_per_user must be 1 to 100".into(),
            ));
        }
        if settings
            .key_update_days
            .is_some_and(|n| !(1..=90).contains(&n))
        {
            return Err(AppError::Invalid("key_update_days must be 1 to 90".into()));
        }
        if settings.retention_days == 0 || settings.retention_days > 36_500 {
            return Err(AppError::Invalid(
                "retention_days must be 1 to 36500".into(),
            ));
        }
        let done = sqlx::query(
            "UPDATE practices SET retention_days = $1, ttl_policy = $2, ttl_secs = $3,
                 history_messages = $4, devices_per_user = COALESCE($5, devices_per_user),
                 key_update_days = COALESCE($6, key_update_days)
             WHERE id = $7",
        )
        .bind(i64::from(settings.retention_days))
        .bind(&settings.ttl_policy)
        .bind(settings.ttl_secs.map(|s| s as i64))
        .bind(i64::from(settings.history_messages))
        .bind(settings.devices_per_user.map(i64::from))
        .bind(settings.key_update_days.map(i64::from))
        .bind(practice)
        .execute(self.pool())
        .await?;
        if done.rows_affected() == 0 {
            return Err(AppError::NotFound("practice"));
        }
        Ok(())
    }

    /// Removes what the server keeps of conversations about a patient
    /// (their envelopes and blobs: ciphertext), on the patient's request.
    /// Only conversations of the practice are touched.
    pub async fn erase_conversations(
        &self,
        practice: &str,
        patient: &str,
        conversations: &[String],
    ) -> AppResult<Erased> {
        let mut w = self.begin_write().await?;
        let mut ids: Vec<String> =
            sqlx::query("SELECT id FROM conversations WHERE practice_id = $1 AND patient = $2")
                .bind(practice)
                .bind(patient)
                .fetch_all(&mut *w.tx)
                .await?
                .iter()
                .map(|r| r.try_get("id"))
                .collect::<Result<_, _>>()?;
        for id in conversations {
            let ours = sqlx::query(
                "SELECT 1 AS one FROM conversations WHERE id = $1 AND practice_id = $2",
            )
            .bind(id)
            .bind(practice)
            .fetch_optional(&mut *w.tx)
            .await?;
            if ours.is_some() && !ids.contains(id) {
                ids.push(id.clone());
            }
        }
        let mut erased = Erased {
            conversations: ids.len() as u64,
            envelopes: 0,
            blobs: 0,
        };
        for id in &ids {
            erased.envelopes += sqlx::query("DELETE FROM envelopes WHERE conversation_id = $1")
                .bind(id)
                .execute(&mut *w.tx)
                .await?
                .rows_affected();
            erased.blobs += sqlx::query("DELETE FROM blobs WHERE conversation_id = $1")
                .bind(id)
                .execute(&mut *w.tx)
                .await?
                .rows_affected();
            sqlx::query("DELETE FROM urgent_messages WHERE conversation_id = $1")
                .bind(id)
                .execute(&mut *w.tx)
                .await?;
        }
        w.tx.commit().await?;
        self.scrub().await;
        Ok(erased)
    }

    /// Removes disappearing messages and their blobs whose time-to-live
    /// passed (delivered or not).
    pub async fn remove_expired(&self) -> AppResult<u64> {
        let now = now_ms();
        let mut w = self.begin_write().await?;
        let mut removed = 0;
        for delete in [
            "DELETE FROM envelopes WHERE expires_at IS NOT NULL AND expires_at <= $1",
            "DELETE FROM blobs WHERE expires_at IS NOT NULL AND expires_at <= $1",
        ] {
            removed += sqlx::query(delete)
                .bind(now)
                .execute(&mut *w.tx)
                .await?
                .rows_affected();
        }
        w.tx.commit().await?;
        if removed > 0 {
            self.scrub().await;
        }
        Ok(removed)
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
        // The write gate is released before the next steps take it again.
        drop(w._gate);
        let disappeared = self.remove_expired().await?;
        let audit_pruned = self.prune_audit().await?;
        Ok(Collected {
            delivered: conversation_envelopes + welcomes,
            expired,
            expired_blobs,
            disappeared,
            audit_pruned,
        })
    }
}
