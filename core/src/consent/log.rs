//! The roster and consent logs in the device store, and the batches that
//! carry them through the practice group.
//!
//! Every change has its own id, so a batch applied twice (or a snapshot that
//! repeats what a device has) changes nothing. The order of the logs is the
//! practice group's: `(seq, item)` of the envelope that first carried a
//! change, which a snapshot passes on, so a device that joined late folds
//! the same log in the same order as the others.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::{ConsentChange, ConsentKind, ConsentMethod, ConsentStatus, RosterPatient};
use crate::{
    error::{Error, Refusal, Result},
    identity::Certified,
    model::PatientRef,
};

/// Changes per envelope: a 10,000-patient import goes out as 50 messages
/// of some 30 KiB rather than one of 1.5 MiB.
pub(crate) const BATCH_ITEMS: usize = 200;

/// One version of a patient on the roster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RosterItem {
    pub id: String,
    #[serde(flatten)]
    pub patient: RosterPatient,
    pub recorded_at: i64,
    /// Where the change stands in the group's order, when a snapshot repeats
    /// it; absent for a new change (it takes the envelope's place).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<(u64, u32)>,
}

/// One consent change as carried in a batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ConsentItem {
    #[serde(flatten)]
    pub change: ConsentChange,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<(u64, u32)>,
}

/// Practice data in one application message of the practice group.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PracticeBatch {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roster: Vec<RosterItem>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consents: Vec<ConsentItem>,
}

impl PracticeBatch {
    fn len(&self) -> usize {
        self.roster.len() + self.consents.len()
    }
}

/// The log order: changes the server took, in its order; then this device's
/// own, in the order they were made.
const LOG_ORDER: &str = "ORDER BY seq IS NULL, seq, item, rowid";

/// Writes a new change made on this device (not yet shared).
pub(crate) fn insert_local_consent(conn: &Connection, c: &ConsentChange) -> Result<()> {
    insert_consent(conn, c, None)?;
    Ok(())
}

/// Writes a change; one already known keeps its data, and only learns its
/// place in the log if it had none. Returns whether it was new.
fn insert_consent(conn: &Connection, c: &ConsentChange, at: Option<(u64, u32)>) -> Result<bool> {
    let (seq, item) = split(at);
    let inserted = conn.execute(
        "INSERT INTO consent_changes (id, patient, kind, status, method, note, recorded_by, role,
                                      recorded_at, withdrawal, seq, item, shared)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
         ON CONFLICT (id) DO NOTHING",
        params![
            c.id,
            c.patient.as_str(),
            ConsentKind::as_str(c.kind),
            ConsentStatus::as_str(c.status),
            ConsentMethod::as_str(c.method),
            c.note,
            c.recorded_by,
            c.role,
            c.recorded_at,
            c.withdrawal,
            seq,
            item,
            at.is_some(),
        ],
    )? == 1;
    if !inserted {
        learn_place(conn, "consent_changes", &c.id, at)?;
    }
    Ok(inserted)
}

/// A change already here learns its place in the log, if it had none.
fn learn_place(conn: &Connection, table: &str, id: &str, at: Option<(u64, u32)>) -> Result<()> {
    if at.is_some() {
        let (seq, item) = split(at);
        conn.execute(
            &format!(
                "UPDATE {table} SET seq = ?2, item = ?3, shared = 1 WHERE id = ?1 AND seq IS NULL"
            ),
            params![id, seq, item],
        )?;
    }
    Ok(())
}

fn split(at: Option<(u64, u32)>) -> (Option<i64>, Option<i64>) {
    match at {
        Some((seq, item)) => (Some(seq as i64), Some(i64::from(item))),
        None => (None, None),
    }
}

fn consent_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<ConsentChange>> {
    let patient: String = r.get("patient")?;
    let kind: String = r.get("kind")?;
    let status: String = r.get("status")?;
    let method: String = r.get("method")?;
    let build = || -> Result<ConsentChange> {
        Ok(ConsentChange {
            id: r.get("id")?,
            patient: PatientRef::new(&patient)?,
            kind: ConsentKind::parse(&kind)?,
            status: ConsentStatus::parse(&status)?,
            method: ConsentMethod::parse(&method)?,
            note: r.get("note")?,
            recorded_by: r.get("recorded_by")?,
            role: r.get("role")?,
            recorded_at: r.get("recorded_at")?,
            withdrawal: r.get("withdrawal")?,
        })
    };
    Ok(build())
}

/// The whole consent history in log order; with `patient`, only theirs.
pub(crate) fn consent_history(
    conn: &Connection,
    patient: Option<&PatientRef>,
) -> Result<Vec<ConsentChange>> {
    let sql = format!("SELECT * FROM consent_changes WHERE ?1 IS NULL OR patient = ?1 {LOG_ORDER}");
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map([patient.map(PatientRef::as_str)], consent_from_row)?;
    let mut history = Vec::new();
    for row in rows {
        history.push(row??);
    }
    Ok(history)
}

/// Writes a new roster version made on this device (not yet shared).
pub(crate) fn insert_local_roster(
    conn: &Connection,
    id: &str,
    p: &RosterPatient,
    recorded_at: i64,
) -> Result<()> {
    insert_roster(
        conn,
        &RosterItem {
            id: id.to_owned(),
            patient: p.clone(),
            recorded_at,
            at: None,
        },
        None,
    )?;
    Ok(())
}

fn insert_roster(conn: &Connection, r: &RosterItem, at: Option<(u64, u32)>) -> Result<bool> {
    let (seq, item) = split(at);
    let inserted = conn.execute(
        "INSERT INTO roster_changes (id, reference, name, birth_date, enrolled, recorded_at, seq, item, shared)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (id) DO NOTHING",
        params![
            r.id,
            r.patient.reference.as_str(),
            r.patient.name,
            r.patient.birth_date,
            r.patient.enrolled,
            r.recorded_at,
            seq,
            item,
            at.is_some(),
        ],
    )? == 1;
    if !inserted {
        learn_place(conn, "roster_changes", &r.id, at)?;
    }
    Ok(inserted)
}

/// The roster as of the log: the last version of every patient, in the
/// order patients first appeared.
pub(crate) fn roster(conn: &Connection) -> Result<Vec<RosterPatient>> {
    let sql =
        format!("SELECT reference, name, birth_date, enrolled FROM roster_changes {LOG_ORDER}");
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query([])?;
    let mut roster: Vec<RosterPatient> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    while let Some(r) = rows.next()? {
        let reference: String = r.get(0)?;
        let patient = RosterPatient {
            reference: PatientRef::new(&reference)?,
            name: r.get(1)?,
            birth_date: r.get(2)?,
            enrolled: r.get(3)?,
        };
        match index.get(&reference) {
            Some(&i) => roster[i] = patient,
            None => {
                index.insert(reference, roster.len());
                roster.push(patient);
            }
        }
    }
    Ok(roster)
}

/// Whether `patient` is on the roster (enrolled or not).
pub(crate) fn on_roster(conn: &Connection, patient: &PatientRef) -> Result<bool> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM roster_changes WHERE reference = ?1 LIMIT 1",
            [patient.as_str()],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// Applies a batch that arrived as envelope `seq` of the practice group.
/// Returns how many changes were new here.
pub(crate) fn apply_batch(
    conn: &Connection,
    batch: &PracticeBatch,
    sender: &Certified,
    seq: Option<u64>,
) -> Result<usize> {
    check_batch(batch, sender, seq)?;
    let mut new = 0;
    let mut place = 0u32;
    // A change without a place takes the envelope's (unknown when the
    // envelope came without its sequence number: then it sorts as pending).
    let mut next_place = |given: Option<(u64, u32)>| {
        let at = given.or(seq.map(|s| (s, place)));
        place += 1;
        at
    };
    for r in &batch.roster {
        let at = next_place(r.at);
        new += usize::from(insert_roster(conn, r, at)?);
    }
    for c in &batch.consents {
        super::check_change(&c.change)?;
        let at = next_place(c.at);
        new += usize::from(insert_consent(conn, &c.change, at)?);
    }
    Ok(new)
}

/// What a member may put in the practice log. A new change (no place yet)
/// is the sender's own: recorded by their user, in one of their
/// certificate's roles. A change repeated from the log (a snapshot for a
/// device that joined later) keeps its author, but its place must lie
/// below the envelope that carries it: no member can sort a change ahead
/// of everything still to come.
fn check_batch(batch: &PracticeBatch, sender: &Certified, seq: Option<u64>) -> Result<()> {
    let places = batch
        .roster
        .iter()
        .filter_map(|r| r.at)
        .chain(batch.consents.iter().filter_map(|c| c.at));
    for (place, _) in places {
        if seq.is_none_or(|carrying| place >= carrying) {
            return Err(Error::Refused {
                reason: Refusal::LogPlace,
            });
        }
    }
    for c in batch.consents.iter().filter(|c| c.at.is_none()) {
        let role = pieper_wire::Role::parse(&c.change.role);
        if c.change.recorded_by != sender.id.user || !role.is_some_and(|r| sender.has(r)) {
            return Err(Error::Refused {
                reason: Refusal::NotAuthor,
            });
        }
    }
    Ok(())
}

/// Takes every change not yet shared, in batches to send, and marks each
/// with the batch (`id`) that carries it.
pub(crate) fn take_unshared(
    conn: &Connection,
    mut new_id: impl FnMut() -> String,
) -> Result<Vec<(String, PracticeBatch)>> {
    let roster_rows: Vec<RosterItem> = {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT id, reference, name, birth_date, enrolled, recorded_at FROM roster_changes
             WHERE shared = 0 {LOG_ORDER}"
        ))?;
        let rows = stmt.query_map([], |r| {
            let reference: String = r.get(1)?;
            Ok((
                r.get::<_, String>(0)?,
                reference,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, reference, name, birth_date, enrolled, recorded_at) = row?;
            out.push(RosterItem {
                id,
                patient: RosterPatient {
                    reference: PatientRef::new(&reference)?,
                    name,
                    birth_date,
                    enrolled,
                },
                recorded_at,
                at: None,
            });
        }
        out
    };
    let consent_rows: Vec<ConsentChange> = {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT * FROM consent_changes WHERE shared = 0 {LOG_ORDER}"
        ))?;
        let rows = stmt.query_map([], consent_from_row)?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row??);
        }
        out
    };
    let mut batches: Vec<(String, PracticeBatch)> = Vec::new();
    let mut current = PracticeBatch::default();
    let mut flush = |batch: &mut PracticeBatch, batches: &mut Vec<(String, PracticeBatch)>| {
        if batch.len() > 0 {
            batches.push((new_id(), std::mem::take(batch)));
        }
    };
    for r in roster_rows {
        current.roster.push(r);
        if current.len() == BATCH_ITEMS {
            flush(&mut current, &mut batches);
        }
    }
    for c in consent_rows {
        current.consents.push(ConsentItem {
            change: c,
            at: None,
        });
        if current.len() == BATCH_ITEMS {
            flush(&mut current, &mut batches);
        }
    }
    flush(&mut current, &mut batches);
    for (id, batch) in &batches {
        for r in &batch.roster {
            conn.execute(
                "UPDATE roster_changes SET shared = 1, batch = ?2 WHERE id = ?1",
                params![r.id, id],
            )?;
        }
        for c in &batch.consents {
            conn.execute(
                "UPDATE consent_changes SET shared = 1, batch = ?2 WHERE id = ?1",
                params![c.change.id, id],
            )?;
        }
    }
    Ok(batches)
}

/// Everything whose place in the log is known, in batches: what a device
/// that joined the practice group missed.
pub(crate) fn snapshot(conn: &Connection) -> Result<Vec<PracticeBatch>> {
    let mut batches = Vec::new();
    let mut current = PracticeBatch::default();
    {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT id, reference, name, birth_date, enrolled, recorded_at, seq, item
             FROM roster_changes WHERE seq IS NOT NULL {LOG_ORDER}"
        ))?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let reference: String = r.get(1)?;
            current.roster.push(RosterItem {
                id: r.get(0)?,
                patient: RosterPatient {
                    reference: PatientRef::new(&reference)?,
                    name: r.get(2)?,
                    birth_date: r.get(3)?,
                    enrolled: r.get(4)?,
                },
                recorded_at: r.get(5)?,
                at: Some(place(r.get(6)?, r.get(7)?)),
            });
            if current.len() == BATCH_ITEMS {
                batches.push(std::mem::take(&mut current));
            }
        }
    }
    {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT * FROM consent_changes WHERE seq IS NOT NULL {LOG_ORDER}"
        ))?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let change = consent_from_row(r)??;
            current.consents.push(ConsentItem {
                change,
                at: Some(place(r.get("seq")?, r.get("item")?)),
            });
            if current.len() == BATCH_ITEMS {
                batches.push(std::mem::take(&mut current));
            }
        }
    }
    if current.len() > 0 {
        batches.push(current);
    }
    Ok(batches)
}

fn place(seq: i64, item: Option<i64>) -> (u64, u32) {
    (
        u64::try_from(seq).unwrap_or_default(),
        u32::try_from(item.unwrap_or_default()).unwrap_or_default(),
    )
}

/// The server took batch `id` as envelope `seq`: its changes take their
/// place in the log.
pub(crate) fn batch_sent(conn: &Connection, id: &str, seq: u64) -> Result<()> {
    for table in ["roster_changes", "consent_changes"] {
        // Items are numbered in the order the batch listed them.
        let ids: Vec<String> = {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT id FROM {table} WHERE batch = ?1 AND seq IS NULL {LOG_ORDER}"
            ))?;
            let rows = stmt.query_map([id], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let offset: i64 = if table == "consent_changes" {
            conn.query_row(
                "SELECT count(*) FROM roster_changes WHERE batch = ?1",
                [id],
                |r| r.get(0),
            )?
        } else {
            0
        };
        for (i, item) in ids.iter().enumerate() {
            conn.execute(
                &format!("UPDATE {table} SET seq = ?2, item = ?3 WHERE id = ?1"),
                params![item, seq as i64, offset + i as i64],
            )?;
        }
    }
    Ok(())
}

/// The batch the server refused for good: its changes go out again with
/// the next one (they are still this device's record).
pub(crate) fn batch_refused(conn: &Connection, id: &str) -> Result<()> {
    for table in ["roster_changes", "consent_changes"] {
        conn.execute(
            &format!(
                "UPDATE {table} SET shared = 0, batch = NULL WHERE batch = ?1 AND seq IS NULL"
            ),
            [id],
        )?;
    }
    Ok(())
}
