//! Receipts, the audit trail, disappearing messages, retention and the
//! patient's AVG rights, as the apps call them.

pub use pieper_core::{
    AuditCheck, ErasureReport, Kept, PatientExport, PracticeRules, Receipt, TtlPolicy,
};
use pieper_core::{AuditQuery as CoreQuery, PatientRef};

use crate::{client::PieperClient, error::PieperError};

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
        Ok(self.inner.privacy().receipts(&message).await?)
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
        Ok(self.inner.privacy().refresh_rules().await?)
    }

    /// Opens the audit log for 15 minutes with a fresh TOTP code.
    pub async fn unlock_audit(&self, totp: String) -> Result<i64, PieperError> {
        Ok(self.inner.privacy().unlock_audit(&totp).await?)
    }

    /// Checks the audit log the server shows today against the anchors this
    /// device holds (after `unlock_audit`): problems if it was rewritten.
    pub async fn verify_audit(&self) -> Result<AuditCheck, PieperError> {
        Ok(self.inner.privacy().verify_audit().await?)
    }

    /// A manager's device: anchors the audit log's head in the practice
    /// group now (it also does so every hour as it syncs).
    pub async fn anchor_audit(&self) -> Result<u64, PieperError> {
        Ok(self.inner.privacy().anchor_audit().await?)
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
        Ok(self
            .inner
            .privacy()
            .export_patient(&PatientRef::new(&patient)?)
            .await?)
    }

    /// Erases the chat content about a patient everywhere, on request.
    pub async fn erase_patient(&self, patient: String) -> Result<ErasureReport, PieperError> {
        Ok(self
            .inner
            .privacy()
            .erase_patient(&PatientRef::new(&patient)?)
            .await?)
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
