//! Push-token registration, as the apps call it.

pub use pieper_core::Notification;
use pieper_core::{ApnsEnvironment as CoreEnvironment, PushProvider as CoreProvider, PushToken};

use crate::{client::PieperClient, error::PieperError};

/// The push service of this device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum PushProvider {
    /// Firebase Cloud Messaging (Android).
    Fcm,
    /// Apple Push Notification service (iOS).
    Apns,
}

/// The APNs environment that issued a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum ApnsEnvironment {
    /// Development builds.
    Sandbox,
    /// App Store and TestFlight builds.
    Production,
}

/// What a notification self-test found.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SelfTestReport {
    /// `delivered`, `token_gone`, `failed`, `no_token` or `no_provider`.
    pub provider_outcome: String,
    /// The provider's reason, when it failed.
    pub detail: Option<String>,
    /// Latency by push (ms), if it arrived that way.
    pub push_latency_ms: Option<i64>,
    /// Latency over the live connection (ms), if it arrived that way.
    pub live_latency_ms: Option<i64>,
    /// What to fix, for the user.
    pub advice: Vec<String>,
}

#[uniffi::export(async_runtime = "tokio")]
impl PieperClient {
    /// Sets the app lock: lock after `idle_ms` without a call; wipe after
    /// `max_failed_unlocks` failed unlocks in a row.
    pub async fn set_lock_policy(&self, idle_ms: u64, max_failed_unlocks: u32) {
        self.inner.set_lock_policy(pieper_core::LockPolicy {
            idle: std::time::Duration::from_millis(idle_ms),
            max_failed_unlocks,
        });
    }

    /// Locks now (the app went to the background, or the user asked).
    pub fn lock(&self) {
        self.inner.lock();
    }

    /// Whether the app is locked.
    pub fn is_locked(&self) -> bool {
        self.inner.is_locked()
    }

    /// Unlocks after the platform's check of the user.
    pub async fn unlock(
        &self,
        check: std::sync::Arc<dyn crate::keystore::UserCheck>,
    ) -> Result<(), PieperError> {
        Ok(self
            .inner
            .unlock(std::sync::Arc::new(crate::keystore::UserCheckShim(check)))
            .await?)
    }

    /// The notification self-test: a test push, routine or urgent; waits up
    /// to `wait_ms` for it (the app's notification service hands pushes to
    /// `notification`).
    pub async fn notification_self_test(
        &self,
        urgent: bool,
        wait_ms: u32,
    ) -> Result<SelfTestReport, PieperError> {
        let r = self
            .inner
            .push()
            .self_test(urgent, std::time::Duration::from_millis(u64::from(wait_ms)))
            .await?;
        let latency = |path| {
            r.arrivals
                .iter()
                .find(|a| a.path == path)
                .map(|a| a.latency_ms)
        };
        Ok(SelfTestReport {
            push_latency_ms: latency(pieper_core::NotificationPath::Push),
            live_latency_ms: latency(pieper_core::NotificationPath::Live),
            provider_outcome: r.provider_outcome,
            detail: r.detail,
            advice: r.advice,
        })
    }

    /// The notification service's entry point: the push's data in, what to
    /// show out, within `budget_ms`.
    pub async fn notification(
        &self,
        data: std::collections::HashMap<String, String>,
        budget_ms: u32,
    ) -> Result<Notification, PieperError> {
        Ok(self
            .inner
            .push()
            .notification(
                &data,
                std::time::Duration::from_millis(u64::from(budget_ms)),
            )
            .await?)
    }

    /// A person read this message (stops the escalation of an urgent one).
    pub async fn mark_read(
        &self,
        conversation: String,
        message: String,
    ) -> Result<(), PieperError> {
        Ok(self
            .inner
            .conversations()
            .mark_read(&conversation, &message)
            .await?)
    }

    /// Registers this device's push token (call at sign-in and whenever the
    /// OS rotates it); `apns_environment` is for APNs tokens. Offline, it is
    /// registered at the next sync.
    pub async fn register_push_token(
        &self,
        provider: PushProvider,
        token: String,
        apns_environment: Option<ApnsEnvironment>,
    ) -> Result<(), PieperError> {
        let token = PushToken {
            provider: match provider {
                PushProvider::Fcm => CoreProvider::Fcm,
                PushProvider::Apns => CoreProvider::Apns,
            },
            token,
            apns_environment: apns_environment.map(|e| match e {
                ApnsEnvironment::Sandbox => CoreEnvironment::Sandbox,
                ApnsEnvironment::Production => CoreEnvironment::Production,
            }),
        };
        Ok(self.inner.push().register_token(token).await?)
    }

    /// Stops pushes to this device.
    pub async fn remove_push_token(&self) -> Result<(), PieperError> {
        Ok(self.inner.push().remove_token().await?)
    }
}
