//! Receipts, the audit trail, disappearing messages, retention and the
//! patient's AVG rights, as the apps call them.

use pieper_core::{AuditQuery as CoreQuery, PatientRef, PracticeRules as CoreRules, TtlPolicy};

use crate::{client::PieperClient, error::PieperError};

/// Who has a message, per member device.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Receipt {
    /// The user.
    pub user: String,
    /// Their device.
    pub device: String,
    /// When it reached the device (ms).
    pub delivered_at: Option<i64>,
    /// When it was read there (ms).
    pub read_at: Option<i64>,
}

/// What must stay after an erasure, and why.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Kept {
    /// What is kept.
    pub what: String,
    /// The legal reason.
    pub why: String,
}

/// What an erasure removed, and what it keeps.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ErasureReport {
    /// The request's id.
    pub request: String,
    /// Conversations emptied.
    pub conversations: u32,
    /// Messages removed.
    pub messages: u32,
    /// Tasks removed.
    pub tasks: u32,
    /// What stays, and why.
    pub kept: Vec<Kept>,
    /// The task raised for the huisarts (in the HIS).
    pub his_task: Option<String>,
}

impl From<pieper_core::ErasureReport> for ErasureReport {
    fn from(r: pieper_core::ErasureReport) -> Self {
        Self {
            request: r.request,
            conversations: r.conversations,
            messages: r.messages,
            tasks: r.tasks,
            kept: r
                .kept
                .into_iter()
                .map(|k| Kept {
                    what: k.what,
                    why: k.why,
                })
                .collect(),
            his_task: r.his_task,
        }
    }
}

/// An access export (inzage).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PatientExport {
    /// The readable document (PDF).
    pub pdf: Vec<u8>,
    /// The FHIR R4 Bundle (JSON).
    pub fhir_bundle: String,
    /// Messages in it.
    pub messages: u32,
    /// Access log events in it.
    pub access_events: u32,
}

/// The practice's rules for chat content.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PracticeRules {
    /// Days chat history is kept.
    pub retention_days: u32,
    /// `allowed`, `forbidden` or `enforced`.
    pub ttl_policy: String,
    /// With `enforced`: the longest time-to-live (s).
    pub ttl_secs: Option<u64>,
    /// How many of each conversation's newest messages a new device gets.
    pub history_messages: u32,
}

impl From<CoreRules> for PracticeRules {
    fn from(r: CoreRules) -> Self {
        let (policy, secs) = match r.ttl {
            TtlPolicy::Allowed => ("allowed", None),
            TtlPolicy::Forbidden => ("forbidden", None),
            TtlPolicy::Enforced { secs } => ("enforced", Some(secs)),
        };
        Self {
            retention_days: r.retention_days,
            ttl_policy: policy.into(),
            ttl_secs: secs,
            history_messages: r.history_messages,
        }
    }
}

/// One event of the practice's audit log.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct AuditEntry {
    /// When (ms).
    pub at: i64,
    /// Who.
    pub user: Option<String>,
    /// In which role.
    pub role: Option<String>,
    /// From which device.
    pub device: Option<String>,
    /// What was done.
    pub action: String,
    /// success or failure.
    pub outcome: String,
    /// The patient, when this device knows who the pseudonym is.
    pub patient: Option<String>,
}

#[uniffi::export(async_runtime = "tokio")]
impl PieperClient {
    /// Who has received and read a message, per member device.
    pub async fn receipts(&self, message: String) -> Result<Vec<Receipt>, PieperError> {
        Ok(self
            .inner
            .privacy()
            .receipts(&message)
            .await?
            .into_iter()
            .map(|r| Receipt {
                user: r.user,
                device: r.device,
                delivered_at: r.delivered_at,
                read_at: r.read_at,
            })
            .collect())
    }

    /// Gives a conversation a time-to-live for new messages (none: none).
    pub async fn set_conversation_ttl(
        &self,
        conversation: String,
        ttl_secs: Option<u64>,
    ) -> Result<(), PieperError> {
        Ok(self
            .inner
            .privacy()
            .set_conversation_ttl(&conversation, ttl_secs)
            .await?)
    }

    /// The practice's rules, fresh from the server (offline: as last known).
    pub async fn practice_rules(&self) -> Result<PracticeRules, PieperError> {
        Ok(self.inner.privacy().refresh_rules().await?.into())
    }

    /// Opens the audit log for 15 minutes with a fresh TOTP code.
    pub async fn unlock_audit(&self, totp: String) -> Result<i64, PieperError> {
        Ok(self.inner.privacy().unlock_audit(&totp).await?)
    }

    /// The audit log about one patient (after `unlock_audit`).
    pub async fn patient_access_log(
        &self,
        patient: String,
    ) -> Result<Vec<AuditEntry>, PieperError> {
        let query = CoreQuery {
            patient: Some(PatientRef::new(&patient)?),
            ..CoreQuery::default()
        };
        Ok(self
            .inner
            .privacy()
            .audit_log(&query)
            .await?
            .into_iter()
            .map(|e| AuditEntry {
                at: e.event.at,
                user: e.event.user_id,
                role: e.event.role,
                device: e.event.device_id,
                action: e.event.action,
                outcome: e.event.outcome,
                patient: e.patient.map(|p| p.as_str().to_owned()),
            })
            .collect())
    }

    /// Inzage: everything this device's chat holds about a patient, as PDF
    /// and FHIR (after `unlock_audit`, for the access log in it).
    pub async fn export_patient(&self, patient: String) -> Result<PatientExport, PieperError> {
        let export = self
            .inner
            .privacy()
            .export_patient(&PatientRef::new(&patient)?)
            .await?;
        Ok(PatientExport {
            pdf: export.pdf,
            fhir_bundle: export.fhir_bundle,
            messages: export.messages,
            access_events: export.access_events,
        })
    }

    /// Erases the chat content about a patient everywhere, on request.
    pub async fn erase_patient(&self, patient: String) -> Result<ErasureReport, PieperError> {
        Ok(self
            .inner
            .privacy()
            .erase_patient(&PatientRef::new(&patient)?)
            .await?
            .into())
    }

    /// Backs up the chat history (the newest `per_conversation` messages of
    /// each conversation), sealed with a recovery code only the user holds.
    /// Returns the number of messages in it.
    pub async fn create_backup(
        &self,
        recovery_code: String,
        per_conversation: u32,
    ) -> Result<u32, PieperError> {
        Ok(self
            .inner
            .devices()
            .create_backup(&recovery_code, per_conversation)
            .await?
            .messages)
    }

    /// Restores the user's backup onto this device; a wrong code is
    /// `WrongKey` and changes nothing. Returns the number of messages.
    pub async fn restore_backup(&self, recovery_code: String) -> Result<u32, PieperError> {
        Ok(self
            .inner
            .devices()
            .restore_backup(&recovery_code)
            .await?
            .messages)
    }

    /// This staff member's own account data, as JSON.
    pub async fn export_my_account(&self) -> Result<String, PieperError> {
        Ok(self.inner.privacy().export_my_account().await?)
    }
}

/// A new recovery code for the history backup (24 characters, grouped): the
/// user writes it down; it is never stored.
#[uniffi::export]
pub fn new_recovery_code() -> String {
    pieper_core::new_recovery_code()
}
