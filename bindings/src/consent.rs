//! Patient consent and the roster, as the apps see them.

use pieper_core::{
    ConsentChange as CoreChange, ConsentKind as CoreKind, ConsentMethod as CoreMethod,
    ConsentStatus as CoreStatus, Figures as CoreFigures, NewConsent, PatientRef,
    RosterFormat as CoreFormat, RosterPatient as CorePatient, consent,
};

use crate::{client::PieperClient, error::PieperError};

/// What a consent is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum ConsentKind {
    /// Sharing through the national exchange (LSP).
    LspSharing,
    /// Electronic communication about the patient.
    ECommunication,
}

/// The patient's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum ConsentStatus {
    /// Agreed.
    Given,
    /// Declined or withdrew.
    Refused,
    /// Not asked yet.
    NotAsked,
}

/// How the answer was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum ConsentMethod {
    /// In person.
    InPerson,
    /// On the paper form.
    PaperForm,
    /// Through a digital channel.
    Digital,
}

/// The roster file's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum RosterFormat {
    /// `reference,name,birth_date,enrolled`.
    Csv,
    /// A FHIR R4 Bundle of Patient resources.
    FhirBundle,
}

macro_rules! same_enum {
    ($ours:ident, $core:ident, $($v:ident),+) => {
        impl From<$ours> for $core {
            fn from(v: $ours) -> Self {
                match v { $($ours::$v => $core::$v),+ }
            }
        }
        impl From<$core> for $ours {
            fn from(v: $core) -> Self {
                match v { $($core::$v => $ours::$v),+ }
            }
        }
    };
}
same_enum!(ConsentKind, CoreKind, LspSharing, ECommunication);
same_enum!(ConsentStatus, CoreStatus, Given, Refused, NotAsked);
same_enum!(ConsentMethod, CoreMethod, InPerson, PaperForm, Digital);
same_enum!(RosterFormat, CoreFormat, Csv, FhirBundle);

/// One recorded consent change.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ConsentChange {
    /// Its id.
    pub id: String,
    /// The patient's HIS reference.
    pub patient: String,
    /// What it is about.
    pub kind: ConsentKind,
    /// The answer.
    pub status: ConsentStatus,
    /// How it was obtained.
    pub method: ConsentMethod,
    /// A note.
    pub note: Option<String>,
    /// Who recorded it (user id).
    pub recorded_by: String,
    /// In which role.
    pub role: String,
    /// When (ms since the Unix epoch).
    pub recorded_at: i64,
    /// Whether it withdrew given consent.
    pub withdrawal: bool,
}

impl From<CoreChange> for ConsentChange {
    fn from(c: CoreChange) -> Self {
        ConsentChange {
            id: c.id,
            patient: c.patient.as_str().to_owned(),
            kind: c.kind.into(),
            status: c.status.into(),
            method: c.method.into(),
            note: c.note,
            recorded_by: c.recorded_by,
            role: c.role,
            recorded_at: c.recorded_at,
            withdrawal: c.withdrawal,
        }
    }
}

/// A patient on the roster.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct RosterPatient {
    /// The HIS reference.
    pub reference: String,
    /// The name.
    pub name: String,
    /// Date of birth, `YYYY-MM-DD`.
    pub birth_date: String,
    /// Enrolled in the practice.
    pub enrolled: bool,
}

impl From<CorePatient> for RosterPatient {
    fn from(p: CorePatient) -> Self {
        RosterPatient {
            reference: p.reference.as_str().to_owned(),
            name: p.name,
            birth_date: p.birth_date,
            enrolled: p.enrolled,
        }
    }
}

/// What a roster import changed (HIS references).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct RosterChanges {
    /// New patients.
    pub added: Vec<String>,
    /// Changed patients.
    pub changed: Vec<String>,
    /// Patients who left the practice.
    pub left: Vec<String>,
}

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

/// A patient's consent as it stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct PatientConsent {
    /// Sharing through the LSP.
    pub lsp_sharing: ConsentStatus,
    /// Electronic communication.
    pub e_communication: ConsentStatus,
}

impl From<pieper_core::PatientConsent> for PatientConsent {
    fn from(c: pieper_core::PatientConsent) -> Self {
        PatientConsent {
            lsp_sharing: c.lsp_sharing.into(),
            e_communication: c.e_communication.into(),
        }
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
        let changes = self
            .inner
            .consent()
            .import_roster(text, format.into(), full)
            .await?;
        let refs = |v: Vec<PatientRef>| v.into_iter().map(|p| p.as_str().to_owned()).collect();
        Ok(RosterChanges {
            added: refs(changes.added),
            changed: refs(changes.changed),
            left: refs(changes.left),
        })
    }

    /// The practice's patients.
    pub fn roster(&self) -> Result<Vec<RosterPatient>, PieperError> {
        Ok(self
            .inner
            .consent()
            .roster()?
            .into_iter()
            .map(Into::into)
            .collect())
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
            kind: kind.into(),
            status: status.into(),
            method: method.into(),
            note,
            obtained_at,
        };
        Ok(self.inner.consent().record(consent).await?.into())
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
            .withdraw(patient, kind.into(), method.into(), note)
            .await?
            .into())
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
            .map(Into::into)
            .collect())
    }

    /// A patient's consent as it stands.
    pub fn patient_consent(&self, patient: String) -> Result<PatientConsent, PieperError> {
        Ok(self
            .inner
            .consent()
            .of_patient(&PatientRef::new(&patient)?)?
            .into())
    }

    /// The consent of the patient a conversation is about.
    pub fn conversation_consent(
        &self,
        conversation: String,
    ) -> Result<Option<PatientConsent>, PieperError> {
        Ok(self
            .inner
            .consent()
            .of_conversation(&conversation)?
            .map(Into::into))
    }

    /// The figures now against the 75 % target.
    pub fn consent_figures(&self, kind: ConsentKind) -> Result<ConsentFigures, PieperError> {
        let f = self.inner.consent().figures(kind.into())?;
        Ok(figures(String::new(), f))
    }

    /// The figures month by month.
    pub fn consent_monthly(&self, kind: ConsentKind) -> Result<Vec<ConsentFigures>, PieperError> {
        Ok(self
            .inner
            .consent()
            .monthly(kind.into())?
            .into_iter()
            .map(|(month, f)| figures(month, f))
            .collect())
    }

    /// The patients still to ask, most urgent first.
    pub fn consent_worklist(&self, kind: ConsentKind) -> Result<Vec<RosterPatient>, PieperError> {
        Ok(self
            .inner
            .consent()
            .worklist(kind.into())?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// The worklist as CSV for the front desk.
    pub fn consent_worklist_csv(&self, kind: ConsentKind) -> Result<String, PieperError> {
        let list = self.inner.consent().worklist(kind.into())?;
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
