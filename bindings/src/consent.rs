//! Patient consent and the roster, as the apps see them.

pub use pieper_core::{
    ConsentChange, ConsentKind, ConsentMethod, ConsentStatus, PatientConsent, RosterFormat,
    RosterPatient, consent::RosterChanges,
};
use pieper_core::{Figures as CoreFigures, NewConsent, PatientRef, consent};

use crate::{client::PieperClient, error::PieperError};

/// The practice's consent figures.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct ConsentFigures {
    /// The month (`YYYY-MM`) for a monthly entry; empty for the figures now.
    pub month: String,
    /// Enrolled patients.
    pub enrolled: u32,
    /// Consent given.
    pub given: u32,
    /// Consent refused.
    pub refused: u32,
    /// Not asked.
    pub not_asked: u32,
    /// Given ÷ enrolled.
    pub rate: f64,
    /// Whether the rate reaches 75 %.
    pub meets_target: bool,
}

fn figures(month: String, f: CoreFigures) -> ConsentFigures {
    ConsentFigures {
        month,
        enrolled: f.enrolled,
        given: f.given,
        refused: f.refused,
        not_asked: f.not_asked,
        rate: f.rate,
        meets_target: f.meets_target,
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl PieperClient {
    /// Imports the roster from CSV or a FHIR Bundle; `full` marks enrolled
    /// patients the file lacks as left.
    pub async fn import_roster(
        &self,
        text: String,
        format: RosterFormat,
        full: bool,
    ) -> Result<RosterChanges, PieperError> {
        Ok(self
            .inner
            .consent()
            .import_roster(text, format, full)
            .await?)
    }

    /// The practice's patients.
    pub fn roster(&self) -> Result<Vec<RosterPatient>, PieperError> {
        Ok(self.inner.consent().roster()?.into_iter().collect())
    }

    /// Records a consent answer; `obtained_at` (ms) defaults to now.
    pub async fn record_consent(
        &self,
        patient: String,
        kind: ConsentKind,
        status: ConsentStatus,
        method: ConsentMethod,
        note: Option<String>,
        obtained_at: Option<i64>,
    ) -> Result<ConsentChange, PieperError> {
        let consent = NewConsent {
            patient: PatientRef::new(&patient)?,
            kind,
            status,
            method,
            note,
            obtained_at,
        };
        Ok(self.inner.consent().record(consent).await?)
    }

    /// Withdraws given consent.
    pub async fn withdraw_consent(
        &self,
        patient: String,
        kind: ConsentKind,
        method: ConsentMethod,
        note: Option<String>,
    ) -> Result<ConsentChange, PieperError> {
        let patient = PatientRef::new(&patient)?;
        Ok(self
            .inner
            .consent()
            .withdraw(patient, kind, method, note)
            .await?)
    }

    /// One patient's consent history (all patients' with none), oldest first.
    pub fn consent_history(
        &self,
        patient: Option<String>,
    ) -> Result<Vec<ConsentChange>, PieperError> {
        let patient = patient.as_deref().map(PatientRef::new).transpose()?;
        Ok(self
            .inner
            .consent()
            .history(patient.as_ref())?
            .into_iter()
            .collect())
    }

    /// A patient's consent as it stands.
    pub fn patient_consent(&self, patient: String) -> Result<PatientConsent, PieperError> {
        Ok(self
            .inner
            .consent()
            .of_patient(&PatientRef::new(&patient)?)?)
    }

    /// The consent of the patient a conversation is about.
    pub fn conversation_consent(
        &self,
        conversation: String,
    ) -> Result<Option<PatientConsent>, PieperError> {
        Ok(self.inner.consent().of_conversation(&conversation)?)
    }

    /// The figures now against the 75 % target.
    pub fn consent_figures(&self, kind: ConsentKind) -> Result<ConsentFigures, PieperError> {
        let f = self.inner.consent().figures(kind)?;
        Ok(figures(String::new(), f))
    }

    /// The figures month by month.
    pub fn consent_monthly(&self, kind: ConsentKind) -> Result<Vec<ConsentFigures>, PieperError> {
        Ok(self
            .inner
            .consent()
            .monthly(kind)?
            .into_iter()
            .map(|(month, f)| figures(month, f))
            .collect())
    }

    /// The patients still to ask, most urgent first.
    pub fn consent_worklist(&self, kind: ConsentKind) -> Result<Vec<RosterPatient>, PieperError> {
        Ok(self.inner.consent().worklist(kind)?.into_iter().collect())
    }

    /// The worklist as CSV for the front desk.
    pub fn consent_worklist_csv(&self, kind: ConsentKind) -> Result<String, PieperError> {
        let list = self.inner.consent().worklist(kind)?;
        Ok(consent::worklist_csv(&list.iter().collect::<Vec<_>>()))
    }

    /// Imports consent from FHIR R4 Consent resources; returns how many
    /// changes were new.
    pub async fn import_consent_fhir(&self, json: String) -> Result<u32, PieperError> {
        Ok(self.inner.consent().import_fhir(json).await? as u32)
    }

    /// The consent history as a FHIR R4 Bundle of Consent resources.
    pub fn export_consent_fhir(&self) -> Result<String, PieperError> {
        let history = self.inner.consent().history(None)?;
        Ok(consent::consent_to_fhir_bundle(&history)?)
    }

    /// Brings the practice group up to date (normally the live channel
    /// does this); returns whether this device is in it.
    pub async fn sync_practice(&self) -> Result<bool, PieperError> {
        Ok(self.inner.consent().sync_practice().await?)
    }
}
