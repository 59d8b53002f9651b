//! `PieperTablet`: the shared front-desk tablet, forwarded to
//! `pieper_core::SharedTablet`: a profile per staff member, and switching
//! locks the one before.

use std::sync::Arc;

use pieper_core::SharedTablet;

use crate::{
    client::PieperClient,
    error::PieperError,
    keystore::{KeyStore, KeyStoreShim, UserCheck, UserCheckShim},
    types::LoginCredentials,
};

/// A tablet shared by several staff members.
#[derive(uniffi::Object)]
pub struct PieperTablet {
    inner: SharedTablet,
}

#[uniffi::export(async_runtime = "tokio")]
impl PieperTablet {
    /// The tablet whose profiles live under `root`.
    #[uniffi::constructor]
    pub fn new(root: String, keystore: Arc<dyn KeyStore>) -> Arc<Self> {
        Arc::new(PieperTablet {
            inner: SharedTablet::new(root, Arc::new(KeyStoreShim(keystore))),
        })
    }

    /// The profiles on this tablet (`practice+username`).
    pub fn profiles(&self) -> Result<Vec<String>, PieperError> {
        Ok(self.inner.profiles()?)
    }

    /// The active profile's client, if any.
    pub fn active(&self) -> Option<Arc<PieperClient>> {
        self.inner
            .active()
            .map(|inner| Arc::new(PieperClient { inner }))
    }

    /// Signs a staff member in as a profile of their own; the profile
    /// before is locked.
    pub async fn sign_in(
        &self,
        server: String,
        credentials: LoginCredentials,
    ) -> Result<Arc<PieperClient>, PieperError> {
        let inner = self.inner.sign_in(&server, credentials.into()).await?;
        Ok(Arc::new(PieperClient { inner }))
    }

    /// Switches to a profile after the platform's check of that user; the
    /// profile before is locked first.
    pub async fn switch_to(
        &self,
        profile: String,
        check: Arc<dyn UserCheck>,
    ) -> Result<Arc<PieperClient>, PieperError> {
        let inner = self
            .inner
            .switch_to(&profile, Arc::new(UserCheckShim(check)))
            .await?;
        Ok(Arc::new(PieperClient { inner }))
    }
}
