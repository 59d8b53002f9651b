//! Documentation items: a SOEP entry made from one or more messages, on its
//! way into the HIS through the practice's connector. Every member device
//! keeps the item and its state (pending, documented, failed and why), so
//! the author sees per message where it stands.

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::{
    identifiers::PractitionerId,
    soep::{Clinician, SoepEntry, SoepLine},
};
use crate::{
    consent::RosterPatient,
    error::{Error, Result},
};

/// Where an item is on its way into the record.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
)]
#[strum(serialize_all = "snake_case")]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum DocState {
    /// Sent to the connector, not yet in the HIS.
    Pending,
    /// In the HIS.
    Documented,
    /// The HIS refused it (see the detail); it can be tried again.
    Failed,
}

named!(DocState, "doc_state");

/// Where a message is on its way into the record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocProgress {
    /// Pending, documented or failed.
    pub state: DocState,
    /// Why it failed, or where it went.
    pub detail: Option<String>,
}

/// What a user confirms for the record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocumentDraft {
    /// The problem (the entry's title).
    pub title: String,
    /// The SOEP lines.
    pub lines: Vec<SoepLine>,
    /// The messages it documents.
    pub messages: Vec<String>,
    /// The clinician who confirms it.
    pub author: Clinician,
    /// The user saw that E and P lines go to the patient's online record.
    pub patient_visible_confirmed: bool,
}

/// A documentation item as it travels (encrypted) to the connector.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocItem {
    /// Its id; also the SOEP entry's, so the HIS writes it once.
    pub id: String,
    /// The problem.
    pub title: String,
    /// The lines.
    pub lines: Vec<SoepLine>,
    /// The messages it documents.
    pub messages: Vec<String>,
    /// The patient, as the roster has them.
    pub patient: RosterPatient,
    /// The confirming clinician's name.
    pub author_name: String,
    /// And their AGB / UZI / BIG numbers, as (system, value).
    pub author_ids: Vec<(String, String)>,
    /// When it was confirmed (ms).
    pub date: i64,
}

impl DocItem {
    /// The SOEP entry it is.
    pub fn entry(&self) -> Result<SoepEntry> {
        let ids = self
            .author_ids
            .iter()
            .map(|(system, value)| PractitionerId::from_identifier(system, value))
            .collect::<Result<Vec<_>>>()?;
        Ok(SoepEntry {
            id: self.id.clone(),
            title: self.title.clone(),
            lines: self.lines.clone(),
            patient: self.patient.clone(),
            author: Clinician {
                name: self.author_name.clone(),
                ids,
            },
            date: self.date,
        })
    }
}

/// An item with its state, as a device knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocStatus {
    /// The item.
    pub item: DocItem,
    /// The conversation it came from.
    pub conversation: String,
    /// Who asked for it (user id).
    pub requested_by: String,
    /// Where it is.
    pub state: DocState,
    /// Why it failed, or where it went.
    pub detail: Option<String>,
}

pub(crate) fn insert_item(
    conn: &Connection,
    conversation: &str,
    item: &DocItem,
    requested_by: &str,
    now: i64,
) -> Result<bool> {
    let json = serde_json::to_string(item).map_err(|e| Error::invalid("item", e.to_string()))?;
    let inserted = conn.execute(
        "INSERT INTO doc_items (id, conversation_id, item, requested_by, state, updated_at)
         VALUES (?1, ?2, ?3, ?4, 'pending', ?5) ON CONFLICT (id) DO NOTHING",
        params![item.id, conversation, json, requested_by, now],
    )? == 1;
    if inserted {
        for message in &item.messages {
            conn.execute(
                "UPDATE messages SET doc_state = 'pending', doc_detail = NULL
                 WHERE id = ?1 AND conversation_id = ?2",
                params![message, conversation],
            )?;
        }
    }
    Ok(inserted)
}

/// Sets an item's state (and its messages'). An item documented stays so.
pub(crate) fn set_state(
    conn: &Connection,
    id: &str,
    state: DocState,
    detail: Option<&str>,
    now: i64,
) -> Result<DocStatus> {
    let status = item(conn, id)?.ok_or(Error::NotFound {
        what: "documentation item",
    })?;
    if status.state == DocState::Documented {
        return Ok(status);
    }
    conn.execute(
        "UPDATE doc_items SET state = ?2, detail = ?3, updated_at = ?4 WHERE id = ?1",
        params![id, state.as_str(), detail, now],
    )?;
    for message in &status.item.messages {
        conn.execute(
            "UPDATE messages SET doc_state = ?2, doc_detail = ?3 WHERE id = ?1 AND conversation_id = ?4",
            params![message, state.as_str(), detail, status.conversation],
        )?;
    }
    item(conn, id)?.ok_or(Error::NotFound {
        what: "documentation item",
    })
}

fn status_from_row(
    r: &rusqlite::Row<'_>,
) -> rusqlite::Result<(String, String, String, String, Option<String>)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

fn to_status(row: (String, String, String, String, Option<String>)) -> Result<DocStatus> {
    let (conversation, json, requested_by, state, detail) = row;
    Ok(DocStatus {
        item: serde_json::from_str(&json).map_err(|e| Error::invalid("item", e.to_string()))?,
        conversation,
        requested_by,
        state: DocState::parse(&state)?,
        detail,
    })
}

const COLUMNS: &str = "conversation_id, item, requested_by, state, detail";

pub(crate) fn item(conn: &Connection, id: &str) -> Result<Option<DocStatus>> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM doc_items WHERE id = ?1"),
        [id],
        status_from_row,
    )
    .optional()?
    .map(to_status)
    .transpose()
}

pub(crate) fn items_of(conn: &Connection, conversation: &str) -> Result<Vec<DocStatus>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM doc_items WHERE conversation_id = ?1 ORDER BY rowid"
    ))?;
    let rows = stmt.query_map([conversation], status_from_row)?;
    rows.map(|r| to_status(r?)).collect()
}

/// Pending items due for a (new) attempt at `now`, oldest first.
pub(crate) fn due(conn: &Connection, now: i64) -> Result<Vec<DocStatus>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM doc_items WHERE state = 'pending' AND next_attempt_at <= ?1 ORDER BY rowid"
    ))?;
    let rows = stmt.query_map([now], status_from_row)?;
    rows.map(|r| to_status(r?)).collect()
}

/// An attempt failed for now: try again after `wait_ms` (doubling).
pub(crate) fn postpone(conn: &Connection, id: &str, now: i64, base_ms: i64) -> Result<()> {
    conn.execute(
        "UPDATE doc_items SET attempts = attempts + 1,
             next_attempt_at = ?2 + min(?3 * (1 << min(attempts, 8)), 300000)
         WHERE id = ?1",
        params![id, now, base_ms],
    )?;
    Ok(())
}

/// A failed item goes again.
pub(crate) fn retry(conn: &Connection, id: &str, now: i64) -> Result<DocStatus> {
    conn.execute(
        "UPDATE doc_items SET attempts = 0, next_attempt_at = 0 WHERE id = ?1",
        [id],
    )?;
    set_state(conn, id, DocState::Pending, None, now)
}
