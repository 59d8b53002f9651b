//! [`AccountsClient`]: the practice manager's side of people coming and
//! going — the staff list, disabling a leaver (their login refused, every
//! device of theirs revoked and removed from this device's conversations)
//! and enabling them again.

use crate::{client::Client, error::Result};

/// The practice's accounts: `client.accounts()`.
pub struct AccountsClient<'c> {
    client: &'c Client,
}

impl Client {
    /// The practice's accounts (changing them takes the practice manager).
    pub fn accounts(&self) -> AccountsClient<'_> {
        AccountsClient { client: self }
    }
}

impl AccountsClient<'_> {
    /// The practice's staff, disabled ones marked.
    pub async fn list(&self) -> Result<Vec<pieper_wire::UserInfo>> {
        self.client.colleagues().await
    }

    /// Disables a user (a leaver, a suspension): the server refuses their
    /// login and revokes every device of theirs at once; this device then
    /// removes those devices from its conversations, and every member's
    /// device does the same at its next check. Checked here first: only the
    /// practice manager may.
    pub async fn disable(&self, user: &str) -> Result<()> {
        self.client.read(|d| d.check_manages_practice())?;
        let result = self.client.api()?.disable_user(user).await;
        self.client.server(result).await?;
        self.client.devices().remove_revoked().await.map(|_| ())
    }

    /// Enables a disabled user again: they sign in on a device anew (their
    /// revoked devices stay revoked).
    pub async fn enable(&self, user: &str) -> Result<()> {
        self.client.read(|d| d.check_manages_practice())?;
        let result = self.client.api()?.enable_user(user).await;
        self.client.server(result).await
    }
}
