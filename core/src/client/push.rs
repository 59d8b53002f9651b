//! Push-token registration: the app hands over the token the OS gave it (at
//! sign-in, and whenever the OS rotates it); the core keeps it and makes
//! sure the server has it, also after being offline.

use pieper_wire::{PushProvider, PushTokenRegistration};

use super::Client;
use crate::error::{Error, Result};

fn check(token: &PushTokenRegistration) -> Result<()> {
    if token.token.is_empty() || token.token.len() > 4096 {
        return Err(Error::invalid("token", "must be 1 to 4096 characters"));
    }
    if (token.provider == PushProvider::Apns) != token.apns_environment.is_some() {
        return Err(Error::invalid(
            "apns_environment",
            "required for APNs tokens, and for them only",
        ));
    }
    Ok(())
}

impl Client {
    /// Registers this device's push token, or a rotated one in its place.
    /// Offline, it is kept and registered at the next sync.
    pub async fn register_push_token(&self, token: PushTokenRegistration) -> Result<()> {
        check(&token)?;
        let kept = token.clone();
        self.store(move |d| d.store_push_token(&kept, false))
            .await?;
        match self.send_push_token(token).await {
            Ok(()) | Err(Error::Network(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Stops pushes to this device (notifications turned off).
    pub async fn remove_push_token(&self) -> Result<()> {
        self.store(|d| d.forget_push_token()).await?;
        let result = self.api().remove_push_token().await;
        self.server(result).await
    }

    /// The token this device has, and whether the server has it.
    pub fn push_token(&self) -> Result<Option<(PushTokenRegistration, bool)>> {
        self.device().stored_push_token()
    }

    /// Registers a kept token the server did not get yet.
    pub(super) async fn register_pending_push_token(&self) -> Result<()> {
        match self.store(|d| d.stored_push_token()).await? {
            Some((token, false)) => self.send_push_token(token).await,
            _ => Ok(()),
        }
    }

    async fn send_push_token(&self, token: PushTokenRegistration) -> Result<()> {
        let result = self.api().set_push_token(&token).await;
        self.server(result).await?;
        self.store(move |d| d.store_push_token(&token, true)).await
    }
}
