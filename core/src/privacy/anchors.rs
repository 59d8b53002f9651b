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

/// Checks `records` (the chain from just after `from` on, in order) for
/// their own hashes and links, and against `anchors`.
pub(crate) fn check(
    anchors: &[(u64, String, i64)],
    records: &[ChainRecord],
    head: &AuditHead,
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
        if *seq < first {
            // Pruned after five years, or before the place asked from.
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
