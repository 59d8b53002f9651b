//! Push-token registration, as the apps call it.

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

#[uniffi::export(async_runtime = "tokio")]
impl PieperClient {
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
        Ok(self.inner.register_push_token(token).await?)
    }

    /// Stops pushes to this device.
    pub async fn remove_push_token(&self) -> Result<(), PieperError> {
        Ok(self.inner.remove_push_token().await?)
    }
}
