//! [`PrivacyClient`]: the practice's rules and patient pseudonyms as this
//! device knows them, read through the client's gate.

use super::PracticeRules;
use crate::{client::Client, error::Result, model::PatientRef};

/// Privacy rules and pseudonyms: `client.privacy()`.
pub struct PrivacyClient<'c> {
    pub(crate) client: &'c Client,
}

impl Client {
    /// Privacy rules and pseudonyms.
    pub fn privacy(&self) -> PrivacyClient<'_> {
        PrivacyClient { client: self }
    }
}

impl PrivacyClient<'_> {
    /// The practice's rules (time-to-live, retention, history) as last seen.
    pub fn rules(&self) -> Result<PracticeRules> {
        self.client.read(|d| d.practice_rules())
    }

    /// The patient's pseudonym under the practice key (what the server's
    /// audit trail shows), once this device has the key.
    pub fn pseudonym(&self, patient: &PatientRef) -> Result<Option<String>> {
        self.client.read(|d| d.pseudonym(patient))
    }
}
