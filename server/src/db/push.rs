//! Devices' push tokens.

use pieper_wire::{ApnsEnvironment, PushProvider, PushTokenRegistration};
use sqlx::Row;

use super::{Db, now_ms};
use crate::error::{AppError, AppResult};

/// A device's token, as the push gateway needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushTarget {
    /// The device.
    pub device_id: String,
    /// Its user.
    pub user_id: String,
    /// FCM or APNs.
    pub provider: PushProvider,
    /// The provider's token.
    pub token: String,
    /// For APNs: production or sandbox.
    pub apns_environment: Option<ApnsEnvironment>,
}

fn provider_str(p: PushProvider) -> &'static str {
    match p {
        PushProvider::Fcm => "fcm",
        PushProvider::Apns => "apns",
    }
}

fn environment_str(e: ApnsEnvironment) -> &'static str {
    match e {
        ApnsEnvironment::Sandbox => "sandbox",
        ApnsEnvironment::Production => "production",
    }
}

impl Db {
    /// Registers (or replaces) a device's token. A token moves with the app:
    /// if another device of this server had it (reinstall), it is taken
    /// from that one.
    pub async fn set_push_token(&self, device: &str, t: &PushTokenRegistration) -> AppResult<()> {
        let mut w = self.begin_write().await?;
        sqlx::query("DELETE FROM push_tokens WHERE token = $1 OR device_id = $2")
            .bind(&t.token)
            .bind(device)
            .execute(&mut *w.tx)
            .await?;
        sqlx::query(
            "INSERT INTO push_tokens (device_id, provider, token, apns_environment, updated_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(device)
        .bind(provider_str(t.provider))
        .bind(&t.token)
        .bind(t.apns_environment.map(environment_str))
        .bind(now_ms())
        .execute(&mut *w.tx)
        .await?;
        w.tx.commit().await?;
        Ok(())
    }

    /// Removes a device's token (signed out, notifications turned off,
    /// revoked).
    pub async fn remove_push_token(&self, device: &str) -> AppResult<()> {
        sqlx::query("DELETE FROM push_tokens WHERE device_id = $1")
            .bind(device)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Removes a token the provider reported as gone.
    pub async fn remove_dead_token(&self, token: &str) -> AppResult<()> {
        sqlx::query("DELETE FROM push_tokens WHERE token = $1")
            .bind(token)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The tokens of these devices (those that have one).
    pub async fn push_targets(&self, devices: &[String]) -> AppResult<Vec<PushTarget>> {
        let mut targets = Vec::new();
        for device in devices {
            let row = sqlx::query(
                "SELECT t.provider, t.token, t.apns_environment, d.user_id FROM push_tokens t
                 JOIN devices d ON d.id = t.device_id WHERE t.device_id = $1",
            )
            .bind(device)
            .fetch_optional(self.pool())
            .await?;
            let Some(row) = row else { continue };
            let provider = match row.try_get::<String, _>("provider")?.as_str() {
                "fcm" => PushProvider::Fcm,
                "apns" => PushProvider::Apns,
                other => return Err(AppError::Internal(format!("stored provider {other:?}"))),
            };
            let apns_environment = match row.try_get::<Option<String>, _>("apns_environment")? {
                Some(e) if e == "sandbox" => Some(ApnsEnvironment::Sandbox),
                Some(_) => Some(ApnsEnvironment::Production),
                None => None,
            };
            targets.push(PushTarget {
                device_id: device.clone(),
                user_id: row.try_get("user_id")?,
                provider,
                token: row.try_get("token")?,
                apns_environment,
            });
        }
        Ok(targets)
    }
}

/// An urgent message due to be pushed again.
#[derive(Clone, Debug)]
pub struct DueUrgent {
    /// The conversation.
    pub conversation: String,
    /// The message.
    pub message: String,
    /// Its sequence number in the conversation.
    pub seq: u64,
    /// Who sent it.
    pub sender_device: String,
    /// When it is pushed again (ms since the Unix epoch).
    pub next_at: i64,
    /// How often it was pushed again so far.
    pub escalations: u32,
}

impl Db {
    /// Starts watching an urgent message: unread at `due_at`, it escalates.
    pub async fn track_urgent(
        &self,
        conversation: &str,
        message: &str,
        seq: u64,
        sender: (&str, &str),
        due_at: i64,
    ) -> AppResult<()> {
        sqlx::query(
            "INSERT INTO urgent_messages (conversation_id, client_id, seq, sender_device, sender_user, stored_at, next_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (conversation_id, client_id) DO NOTHING",
        )
        .bind(conversation)
        .bind(message)
        .bind(seq as i64)
        .bind(sender.0)
        .bind(sender.1)
        .bind(now_ms())
        .bind(due_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// A member read a message; an urgent one stops escalating when the
    /// reader is not its sender. Returns whether it was an unread urgent one.
    pub async fn mark_read(
        &self,
        practice: &str,
        reader: (&str, &str),
        conversation: &str,
        message: &str,
    ) -> AppResult<bool> {
        let member = sqlx::query(
            "SELECT 1 AS one FROM memberships m JOIN conversations c ON c.id = m.conversation_id
             WHERE m.conversation_id = $1 AND m.device_id = $2 AND m.until_position IS NULL AND c.practice_id = $3",
        )
        .bind(conversation)
        .bind(reader.0)
        .bind(practice)
        .fetch_optional(self.pool())
        .await?;
        if member.is_none() {
            return Err(AppError::NotFound("conversation"));
        }
        let updated = sqlx::query(
            "UPDATE urgent_messages SET read_at = $1
             WHERE conversation_id = $2 AND client_id = $3 AND sender_user <> $4 AND read_at IS NULL",
        )
        .bind(now_ms())
        .bind(conversation)
        .bind(message)
        .bind(reader.1)
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(updated == 1)
    }

    /// Unread urgent messages due now that have escalations left.
    pub async fn due_urgent(&self, now: i64, max_escalations: u32) -> AppResult<Vec<DueUrgent>> {
        let rows = sqlx::query(
            "SELECT conversation_id, client_id, seq, sender_device, next_at, escalations FROM urgent_messages
             WHERE read_at IS NULL AND next_at <= $1 AND escalations < $2 ORDER BY next_at LIMIT 100",
        )
        .bind(now)
        .bind(i64::from(max_escalations))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DueUrgent {
                    conversation: r.try_get("conversation_id")?,
                    message: r.try_get("client_id")?,
                    seq: r.try_get::<i64, _>("seq")? as u64,
                    sender_device: r.try_get("sender_device")?,
                    next_at: r.try_get("next_at")?,
                    escalations: r.try_get::<i64, _>("escalations")? as u32,
                })
            })
            .collect()
    }

    /// Takes a due escalation for this instance (another instance that took
    /// it first moved `next_at`); returns whether it is ours.
    pub async fn claim_escalation(&self, due: &DueUrgent, next_at: i64) -> AppResult<bool> {
        let updated = sqlx::query(
            "UPDATE urgent_messages SET next_at = $1, escalations = escalations + 1
             WHERE conversation_id = $2 AND client_id = $3 AND next_at = $4 AND read_at IS NULL",
        )
        .bind(next_at)
        .bind(&due.conversation)
        .bind(&due.message)
        .bind(due.next_at)
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(updated == 1)
    }

    /// The devices currently in a conversation.
    pub async fn member_devices(&self, conversation: &str) -> AppResult<Vec<String>> {
        let rows = sqlx::query(
            "SELECT device_id FROM memberships WHERE conversation_id = $1 AND until_position IS NULL",
        )
        .bind(conversation)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(|r| Ok(r.try_get("device_id")?)).collect()
    }
}
