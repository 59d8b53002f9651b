//! [`SpoedClient`]: the practice's spoed channel and duty roster as this
//! device knows them, read through the client's gate.

use super::DutyRoster;
use crate::{client::Client, error::Result};

/// The spoed channel and duty roster: `client.spoed()`.
pub struct SpoedClient<'c> {
    pub(crate) client: &'c Client,
}

impl Client {
    /// The spoed channel and duty roster.
    pub fn spoed(&self) -> SpoedClient<'_> {
        SpoedClient { client: self }
    }
}

impl SpoedClient<'_> {
    /// The id of the practice's spoed channel.
    pub fn channel_id(&self) -> Result<String> {
        self.client.read(|d| Ok(d.spoed_channel_id()))
    }

    /// The duty roster with backup and do-not-disturb.
    pub fn duty_roster(&self) -> Result<DutyRoster> {
        self.client.read(|d| d.duty_roster())
    }

    /// Who a spoed post made now is routed to (None: everyone).
    pub fn route_now(&self) -> Result<Option<String>> {
        self.client.read(|d| d.spoed_route_now())
    }
}
