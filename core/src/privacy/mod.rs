//! Privacy on the device: receipts, the audit trail's patient pseudonyms,
//! disappearing messages, retention, and the patient's AVG rights (access
//! export and erasure).

mod actions;
pub(crate) mod anchors;
pub mod audit;
pub mod client;
// Public for the core's own tests and benchmarks (feature `testing`).
#[cfg_attr(not(feature = "testing"), allow(unreachable_pub))]
mod engine;
mod expiry;
pub(crate) mod pseudonym;
mod receipts;
mod subject;

pub use actions::{AuditQuery, BreachPatient};
pub use anchors::AuditCheck;
pub use audit::{AccessAction, AuditEntry};
pub use expiry::{HousekeepingReport, PracticeRules, TtlPolicy};
pub use receipts::Receipt;
pub use subject::{ErasureReport, Kept, PatientExport};

pub(crate) use pseudonym::PracticeKey;

use rusqlite::{Connection, OptionalExtension, params};

pub(crate) use expiry::expiry_for;

use crate::{
    device::{Device, KnownGroup, Received},
    error::{Error, Refusal, Result},
    identity::Certified,
    model::{Content, ConversationKind, Message, PatientRef},
    store::{StoreError, queries},
};

/// A conversation's time-to-live for new messages (seconds).
pub(crate) fn conversation_ttl(conn: &Connection, conversation: &str) -> Result<Option<u64>> {
    Ok(conn
        .query_row(
            "SELECT ttl_secs FROM conversations WHERE id = ?1",
            [conversation],
            |r| r.get::<_, Option<i64>>(0),
        )
        .optional()
        .map_err(StoreError::from)?
        .flatten()
        .map(|s| s as u64))
}

pub(crate) fn set_conversation_ttl(
    conn: &Connection,
    conversation: &str,
    ttl_secs: Option<u64>,
) -> Result<()> {
    conn.execute(
        "UPDATE conversations SET ttl_secs = ?2 WHERE id = ?1",
        params![conversation, ttl_secs.map(|s| s as i64)],
    )
    .map_err(StoreError::from)?;
    Ok(())
}

/// Receipts go in conversations people read, not in the well-known groups.
fn is_chat(kind: ConversationKind) -> bool {
    !matches!(
        kind,
        ConversationKind::Practice | ConversationKind::Personal
    )
}

/// This device's user read `read` (ids) in a conversation: read receipts
/// are owed, and each read of a patient-linked message is an access.
pub(crate) fn after_read(conn: &Connection, conversation: &str, read: &[String]) -> Result<()> {
    if read.is_empty() {
        return Ok(());
    }
    let Some(c) = queries::conversation(conn, conversation)? else {
        return Ok(());
    };
    if is_chat(c.kind) {
        receipts::owe(conn, conversation, read, true)?;
    }
    if let Some(patient) = &c.patient {
        // One reading, one record, however many messages it covered.
        audit::record(
            conn,
            AccessAction::Read,
            Some(patient),
            &format!("conversation={conversation} messages={}", read.len()),
        )?;
    }
    Ok(())
}

/// A message of someone else arrived: a delivered receipt is owed.
pub(crate) fn after_receive(
    conn: &Connection,
    conversation: &str,
    message: &Message,
) -> Result<()> {
    let Some(c) = queries::conversation(conn, conversation)? else {
        return Ok(());
    };
    if is_chat(c.kind) {
        receipts::owe(conn, conversation, std::slice::from_ref(&message.id), false)?;
    }
    Ok(())
}

/// The server took this device's practice key (if `id` is one) at `seq`.
pub(crate) fn key_sent(conn: &Connection, id: &str, seq: u64) -> Result<()> {
    pseudonym::key_sent(conn, id, seq)
}

/// Builds an access export from what was gathered.
pub(crate) fn build_export(input: &subject::ExportInput<'_>) -> Result<PatientExport> {
    subject::build(input)
}

pub(crate) use subject::ExportInput;

#[cfg(test)]
mod tests;
