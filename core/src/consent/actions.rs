//! The practice group on the client: made once per practice, kept complete
//! (every staff device in it), and the channel for the roster and consent.

use super::client::ConsentClient;
use crate::client::Client;
use crate::{
    consent::{self, ConsentChange, ConsentKind, ConsentMethod, RosterChanges},
    device::{KnownGroup, NewConsent},
    error::{Error, Result},
    model::PatientRef,
};

/// The roster file formats the import reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum RosterFormat {
    /// `reference,name,birth_date,enrolled`.
    Csv,
    /// A FHIR R4 Bundle of Patient resources.
    FhirBundle,
}

impl Client {
    /// Shares what was just recorded, if the server is there to take it.
    async fn share_now(&self) -> Result<()> {
        match self.consent().sync_practice().await {
            Ok(_) | Err(Error::Network(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl ConsentClient<'_> {
    /// Brings the practice group up to date: makes it if the practice has
    /// none, adds staff devices that are not in it yet (and gives them what
    /// the practice recorded so far), and sends this device's unshared
    /// roster and consent changes. Returns whether this device is in it; a
    /// device that is not waits for a member to add it.
    pub async fn sync_practice(&self) -> Result<bool> {
        if !self.client.ensure_known_group(KnownGroup::Practice).await? {
            return Ok(false);
        }
        let users: Vec<String> = self
            .client
            .colleagues()
            .await?
            .into_iter()
            .map(|u| u.id)
            .collect();
        if self.client.top_up(KnownGroup::Practice, &users).await? {
            // Everything before the commit is applied here first, so the
            // snapshot holds what the new devices cannot read.
            self.client.sync().await?;
            self.client.store(|d| d.share_practice_snapshot()).await?;
        }
        self.client.store(|d| d.share_practice_data()).await?;
        self.client.flush_quietly().await?;
        // The spoed channel has the same members (last: a spoed channel
        // held elsewhere holds up none of the above).
        if self.client.ensure_known_group(KnownGroup::Spoed).await? {
            self.client.top_up(KnownGroup::Spoed, &users).await?;
        }
        Ok(true)
    }

    /// Imports the roster from a CSV or FHIR file's text (later imports add
    /// and change, and with `full` mark leavers, never duplicate) and shares
    /// it in the practice group.
    pub async fn import_roster(
        &self,
        text: String,
        format: RosterFormat,
        full: bool,
    ) -> Result<RosterChanges> {
        let changes = self
            .client
            .store(move |d| {
                let patients = match format {
                    RosterFormat::Csv => consent::roster_from_csv(&text)?,
                    RosterFormat::FhirBundle => consent::roster_from_fhir_bundle(&text)?,
                };
                d.import_roster(patients, full)
            })
            .await?;
        self.client.share_now().await?;
        Ok(changes)
    }

    /// Records a consent answer and shares it with the practice.
    pub async fn record(&self, consent: NewConsent) -> Result<ConsentChange> {
        let change = self
            .client
            .store(move |d| d.record_consent(consent))
            .await?;
        self.client.share_now().await?;
        Ok(change)
    }

    /// Withdraws given consent and shares the withdrawal.
    pub async fn withdraw(
        &self,
        patient: PatientRef,
        kind: ConsentKind,
        method: ConsentMethod,
        note: Option<String>,
    ) -> Result<ConsentChange> {
        let change = self
            .client
            .store(move |d| d.withdraw_consent(patient, kind, method, note))
            .await?;
        self.client.share_now().await?;
        Ok(change)
    }

    /// Imports consent from FHIR R4 Consent resources and shares it.
    pub async fn import_fhir(&self, json: String) -> Result<usize> {
        let role = self
            .client
            .store(|d| Ok(d.session()?.map(|s| s.role)))
            .await?;
        let role = role.ok_or(Error::SignedOut)?;
        let user = self.client.id().user.clone();
        let new = self
            .client
            .store(move |d| d.import_consent(consent::consent_from_fhir(&json, &user, &role)?))
            .await?;
        self.client.share_now().await?;
        Ok(new)
    }
}
