//! Anchors of the practice's audit chain: its head as the server signed it,
//! fetched every hour by a manager's device and sent into the practice
//! group, so that every device holds them. Checking the log the server
//! shows today against them proves it extends what it showed before: a
//! chain rewritten in the database (hashes recomputed and all) no longer
//! holds the anchored record at the anchored place.

use pieper_wire::{AuditHead, ChainRecord};
use rusqlite::{Connection, params};

use crate::{
    error::Result,
    store::{StoreError, queries},
};

/// How long the server keeps audit records (five years, as its pruning):
/// only an anchor older than this may point before what is left.
const RECORDS_KEPT_MS: i64 = 1826 * 24 * 60 * 60 * 1000;

/// How often a manager's device anchors the head.
pub(crate) const ANCHOR_EVERY_MS: i64 = 60 * 60 * 1000;

/// Keeps an anchor (the first one for a place stands).
pub(crate) fn keep(conn: &Connection, head: &AuditHead, by_user: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO audit_anchors (seq, hash, at, signature, by_user)
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (seq) DO NOTHING",
        params![
            head.seq as i64,
            head.hash,
            head.at,
            head.signature.0,
            by_user
        ],
    )
    .map_err(StoreError::from)?;
    Ok(())
}

/// The anchors this device holds, by place: (place, hash, when).
pub(crate) fn all(conn: &Connection) -> Result<Vec<(u64, String, i64)>> {
    let mut stmt = conn
        .prepare("SELECT seq, hash, at FROM audit_anchors ORDER BY seq")
        .map_err(StoreError::from)?;
    let rows = stmt
        .query_map([], |r| {
            Ok((r.get::<_, i64>(0)? as u64, r.get(1)?, r.get(2)?))
        })
        .map_err(StoreError::from)?;
    Ok(rows
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(StoreError::from)?)
}

/// Whether an anchor is due (none in the last hour).
pub(crate) fn due(conn: &Connection) -> Result<bool> {
    let last: Option<i64> = conn
        .query_row("SELECT MAX(at) FROM audit_anchors", [], |r| r.get(0))
        .map_err(StoreError::from)?;
    Ok(last.is_none_or(|at| at + ANCHOR_EVERY_MS <= queries::now_ms()))
}

/// What checking the log against this device's anchors found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct AuditCheck {
    /// Anchors the log was held to.
    pub anchors: u32,
    /// Records checked.
    pub records: u64,
    /// What does not hold (empty: the log extends every anchor).
    pub problems: Vec<String>,
}

/// Checks `records` (the chain from the first anchor on, in order) for
/// their own hashes and links, and against `anchors`, at `now` (ms).
pub(crate) fn check(
    anchors: &[(u64, String, i64)],
    records: &[ChainRecord],
    head: &AuditHead,
    now: i64,
) -> AuditCheck {
    let mut report = AuditCheck {
        records: records.len() as u64,
        ..AuditCheck::default()
    };
    for pair in records.windows(2) {
        if pair[1].chain_seq != pair[0].chain_seq + 1 || pair[1].prev_hash != pair[0].hash {
            report.problems.push(format!(
                "place {} does not follow place {}",
                pair[1].chain_seq, pair[0].chain_seq
            ));
        }
    }
    for r in records {
        if r.computed_hash() != r.hash {
            report
                .problems
                .push(format!("the record at place {} was changed", r.chain_seq));
        }
    }
    if let Some(last) = records.last()
        && (last.chain_seq as u64 != head.seq || last.hash != head.hash)
    {
        report.problems.push(format!(
            "the chain ends at place {} but the signed head is place {}",
            last.chain_seq, head.seq
        ));
    }
    let first = records.first().map_or(head.seq + 1, |r| r.chain_seq as u64);
    for (seq, hash, at) in anchors {
        // Records go after five years, from the chain's start: an anchor
        // that old may point before what is left; a younger one may not (a
        // server that "pruned" young records cut the log).
        if *seq < first && at.saturating_add(RECORDS_KEPT_MS) < now {
            continue;
        }
        report.anchors += 1;
        match records.iter().find(|r| r.chain_seq as u64 == *seq) {
            Some(r) if r.hash == *hash => {}
            Some(_) => report.problems.push(format!(
                "the record at place {seq} is not the one anchored at {}: the log was rewritten",
                crate::fhir::rfc3339(*at).unwrap_or_else(|_| at.to_string())
            )),
            None => report.problems.push(format!(
                "place {seq}, anchored at {}, is gone: the log was cut",
                crate::fhir::rfc3339(*at).unwrap_or_else(|_| at.to_string())
            )),
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A chain of `n` records from place `from`, linked and hashed.
    fn chain(from: i64, n: i64) -> Vec<ChainRecord> {
        let mut prev = "0".repeat(64);
        (from..from + n)
            .map(|seq| {
                let mut r = ChainRecord {
                    chain_seq: seq,
                    prev_hash: prev.clone(),
                    hash: String::new(),
                    at: seq,
                    practice_id: "linde".into(),
                    user_id: None,
                    role: None,
                    device_id: None,
                    action: "login".into(),
                    outcome: "success".into(),
                    patient: None,
                    source: None,
                    detail: None,
                    client_event: None,
                    reported_at: None,
                    on_behalf_of: None,
                };
                r.hash = r.computed_hash();
                prev = r.hash.clone();
                r
            })
            .collect()
    }

    fn head_of(records: &[ChainRecord]) -> AuditHead {
        let last = records.last().expect("records");
        AuditHead {
            practice_id: "linde".into(),
            seq: last.chain_seq as u64,
            hash: last.hash.clone(),
            at: 0,
            signature: Vec::new().into(),
        }
    }

    const DAY: i64 = 24 * 60 * 60 * 1000;

    #[test]
    fn a_chain_that_holds_its_anchors_passes() {
        let records = chain(1, 10);
        let anchors = vec![(4, records[3].hash.clone(), DAY)];
        let check = super::check(&anchors, &records, &head_of(&records), 2 * DAY);
        assert!(check.problems.is_empty(), "{check:?}");
        assert_eq!((check.anchors, check.records), (1, 10));
    }

    /// A hostile server hands out the chain from a later place, as if the
    /// anchored records had been pruned: only an anchor older than five
    /// years may point before what is left.
    #[test]
    fn young_records_cut_from_the_start_are_reported() {
        let full = chain(1, 10);
        let anchor = vec![(4, full[3].hash.clone(), DAY)];
        let rest = &full[5..];
        let young = super::check(&anchor, rest, &head_of(rest), 2 * DAY);
        assert!(
            young.problems.iter().any(|p| p.contains("the log was cut")),
            "{young:?}"
        );
        let old = super::check(&anchor, rest, &head_of(rest), DAY + RECORDS_KEPT_MS + 1);
        assert!(old.problems.is_empty(), "{old:?}");
    }

    #[test]
    fn a_changed_or_unlinked_record_is_reported() {
        let mut records = chain(1, 5);
        records[2].detail = Some("rewritten".into());
        let check = super::check(&[], &records, &head_of(&records), DAY);
        assert!(
            check
                .problems
                .iter()
                .any(|p| p.contains("place 3 was changed")),
            "{check:?}"
        );
        let mut records = chain(1, 5);
        records.remove(2);
        let check = super::check(&[], &records, &head_of(&records), DAY);
        assert!(
            check.problems.iter().any(|p| p.contains("does not follow")),
            "{check:?}"
        );
    }
}
