//! [`ConsentClient`]: the roster and the patients' consent as this device
//! knows them, read through the client's gate.

use super::{ConsentChange, ConsentKind, Figures, RosterPatient};
use crate::{
    client::Client,
    device::PatientConsent,
    error::Result,
    model::PatientRef,
    privacy::{AccessAction, client::Access},
};

/// The roster and consent: `client.consent()`.
pub struct ConsentClient<'c> {
    pub(crate) client: &'c Client,
}

impl Client {
    /// The roster and the patients' consent.
    pub fn consent(&self) -> ConsentClient<'_> {
        ConsentClient { client: self }
    }
}

impl ConsentClient<'_> {
    /// Whether this device is in the practice group (it has the roster and
    /// the consent log).
    pub fn in_practice_group(&self) -> Result<bool> {
        self.client.read(|d| d.in_practice_group())
    }

    /// The id of the practice group.
    pub fn practice_group_id(&self) -> Result<String> {
        self.client.read(|d| Ok(d.practice_group_id()))
    }

    /// The enrolled patients.
    pub fn roster(&self) -> Result<Vec<RosterPatient>> {
        self.client
            .read_audited(|d| d.roster(), |_, all| Ok(listed("roster", all.len())))
    }

    /// The consent history in log order: one patient's, or the practice's.
    pub fn history(&self, patient: Option<&PatientRef>) -> Result<Vec<ConsentChange>> {
        self.client.read_audited(
            |d| d.consent_history(patient),
            |_, changes| {
                Ok(match patient {
                    Some(p) => vec![Access::to(
                        AccessAction::ConsentView,
                        p,
                        format!("history changes={}", changes.len()),
                    )],
                    None => listed("consent history", changes.len()),
                })
            },
        )
    }

    /// A patient's consent as it stands.
    pub fn of_patient(&self, patient: &PatientRef) -> Result<PatientConsent> {
        self.client.read_audited(
            |d| d.patient_consent(patient),
            |_, _| {
                Ok(vec![Access::to(
                    AccessAction::ConsentView,
                    patient,
                    "as it stands".into(),
                )])
            },
        )
    }

    /// The consent of the patient a conversation is about (none if it is
    /// about no patient).
    pub fn of_conversation(&self, conversation: &str) -> Result<Option<PatientConsent>> {
        self.client.read_audited(
            |d| d.conversation_consent(conversation),
            |d, consent| {
                Ok(match (consent, d.conversation(conversation)?.patient) {
                    (Some(_), Some(p)) => vec![Access::to(
                        AccessAction::ConsentView,
                        &p,
                        format!("conversation={conversation}"),
                    )],
                    _ => Vec::new(),
                })
            },
        )
    }

    /// Refuses with [`crate::Error::ConsentRequired`] unless the patient's
    /// LSP consent is given.
    pub fn require_lsp(&self, patient: &PatientRef) -> Result<()> {
        self.client.read(|d| d.require_lsp_consent(patient))
    }

    /// The practice's figures for one kind of consent, now.
    pub fn figures(&self, kind: ConsentKind) -> Result<Figures> {
        self.client.read(|d| d.consent_figures(kind))
    }

    /// How the figures developed, month by month.
    pub fn monthly(&self, kind: ConsentKind) -> Result<Vec<(String, Figures)>> {
        self.client.read(|d| d.consent_monthly(kind))
    }

    /// The enrolled patients not yet asked, those with an open conversation
    /// here first.
    pub fn worklist(&self, kind: ConsentKind) -> Result<Vec<RosterPatient>> {
        self.client.read_audited(
            |d| d.consent_worklist(kind),
            |_, all| Ok(listed("consent worklist", all.len())),
        )
    }
}

/// A list over the whole practice: one access, without a patient.
fn listed(what: &str, patients: usize) -> Vec<Access> {
    vec![Access {
        action: AccessAction::RosterView,
        patient: None,
        detail: format!("{what} entries={patients}"),
    }]
}
