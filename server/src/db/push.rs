//! Devices' push tokens.

use pieper_wire::{ApnsEnvironment, PushProvider, PushTokenRegistration};
use sqlx::Row;

use super::{Db, now_ms};
use crate::error::{AppError, AppResult};

/// A device's token, as the push gateway needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushTarget {
    pub device_id: String,
    pub provider: PushProvider,
    pub token: String,
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
                "SELECT provider, token, apns_environment FROM push_tokens WHERE device_id = $1",
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
                provider,
                token: row.try_get("token")?,
                apns_environment,
            });
        }
        Ok(targets)
    }
}
