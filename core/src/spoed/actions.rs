//! The spoed channel from the client.

use super::client::SpoedClient;
use crate::client::Client;
use crate::{device::KnownGroup, error::Result, spoed::DutyRoster};

impl Client {
    /// Makes sure the practice's spoed channel exists with every staff
    /// device in it; returns whether this device is in it.
    pub async fn sync_spoed_channel(&self) -> Result<bool> {
        if !self.ensure_known_group(KnownGroup::Spoed).await? {
            return Ok(false);
        }
        let users: Vec<String> = self.colleagues().await?.into_iter().map(|u| u.id).collect();
        self.top_up(KnownGroup::Spoed, &users).await?;
        Ok(true)
    }
}

impl SpoedClient<'_> {
    /// Sets the duty roster for the practice.
    pub async fn set_duty_roster(&self, roster: DutyRoster) -> Result<()> {
        self.client.sync_spoed_channel().await?;
        self.client
            .store(move |d| d.set_duty_roster(roster))
            .await?;
        self.client.flush_quietly().await
    }

    /// Turns this user's do-not-disturb on or off.
    pub async fn set_do_not_disturb(&self, on: bool) -> Result<()> {
        self.client.sync_spoed_channel().await?;
        self.client.store(move |d| d.set_do_not_disturb(on)).await?;
        self.client.flush_quietly().await
    }

    /// "Ik pak het op": takes a spoed post; everyone sees who, and its
    /// urgent escalation stops.
    pub async fn take(&self, post: &str) -> Result<()> {
        let id = post.to_owned();
        self.client.store(move |d| d.take_spoed(&id)).await?;
        self.client.flush_quietly().await?;
        let channel = self.client.inner.device.spoed_channel_id();
        self.client.conversations().mark_read(&channel, post).await
    }
}
