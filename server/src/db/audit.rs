//! The append-only audit log (NEN 7513 fields), one hash chain per practice.
//!
//! Each event stores its place in its practice's chain, the hash of the event
//! before it and its own hash over both and every field; the chain's head
//! (last place and hash) is kept apart. [`Db::verify_audit`] walks a chain
//! and reports a changed, removed or reordered record. The database refuses
//! updates, and deletes of records younger than five years (triggers in the
//! migrations); every insert runs inside a serialized write transaction, so
//! a chain never forks.
//!
//! Patients appear only as the pseudonym the practice's devices compute (a
//! keyed hash under a key the server never sees).

use pieper_wire::{AuditEvent, BreachEntry, ChainRecord};
use serde::Serialize;
use sqlx::{Any, Row, any::AnyRow};

use super::{Db, now_ms};
use crate::error::{AppError, AppResult};

/// The hash before a chain's first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// How long audit records are kept: five years (1826 days), in ms.
pub const KEEP_MS: i64 = 1826 * 24 * 60 * 60 * 1000;

/// An access event to record.
#[derive(Clone, Debug, Default)]
pub struct NewAuditEvent {
    /// The practice whose log it joins.
    pub practice_id: String,
    /// Who acted, if a user did.
    pub user_id: Option<String>,
    /// In which role.
    pub role: Option<String>,
    /// On whose behalf (a huisarts's user id, or `practice:<id>`).
    pub on_behalf_of: Option<String>,
    /// From which device.
    pub device_id: Option<String>,
    /// What was done (a fixed list).
    pub action: &'static str,
    /// How it ended.
    pub outcome: &'static str,
    /// The patient, as the practice's pseudonym.
    pub patient: Option<String>,
    /// The client's address.
    pub source: Option<String>,
    /// Anything more, without content.
    pub detail: Option<String>,
    /// A device-reported event's id on that device (recorded once).
    pub client_event: Option<String>,
    /// When the server recorded it, if not now (tests).
    pub at: Option<i64>,
    /// When the device says it happened (a device-reported event).
    pub reported_at: Option<i64>,
}

type Chained<'a> = pieper_wire::ChainedFields<'a>;

impl NewAuditEvent {
    /// Records the event inside a write transaction (with the action it
    /// records; see [`Db::begin_write`]). Returns false for a device event
    /// already recorded.
    pub async fn insert(&self, tx: &mut sqlx::Transaction<'static, Any>) -> AppResult<bool> {
        if let (Some(device), Some(id)) = (&self.device_id, &self.client_event) {
            let seen = sqlx::query(
                "SELECT 1 AS one FROM audit_events WHERE device_id = $1 AND client_event = $2",
            )
            .bind(device)
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?;
            if seen.is_some() {
                return Ok(false);
            }
        }
        let head = sqlx::query("SELECT seq, hash FROM audit_heads WHERE practice_id = $1")
            .bind(&self.practice_id)
            .fetch_optional(&mut **tx)
            .await?;
        let (seq, prev) = match &head {
            Some(r) => (r.try_get::<i64, _>("seq")?, r.try_get::<String, _>("hash")?),
            None => (0, GENESIS.to_owned()),
        };
        let chained = Chained {
            chain_seq: seq + 1,
            prev_hash: &prev,
            at: self.at.unwrap_or_else(now_ms),
            practice_id: &self.practice_id,
            user_id: self.user_id.as_deref(),
            role: self.role.as_deref(),
            device_id: self.device_id.as_deref(),
            action: self.action,
            outcome: self.outcome,
            patient: self.patient.as_deref(),
            source: self.source.as_deref(),
            detail: self.detail.as_deref(),
            client_event: self.client_event.as_deref(),
            reported_at: self.reported_at,
            on_behalf_of: self.on_behalf_of.as_deref(),
        };
        let hash = chained.hash();
        sqlx::query(
            "INSERT INTO audit_events (at, practice_id, user_id, role, device_id, action, outcome,
                 patient, source, detail, client_event, chain_seq, prev_hash, hash, reported_at,
                 on_behalf_of)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        )
        .bind(chained.at)
        .bind(chained.practice_id)
        .bind(chained.user_id)
        .bind(chained.role)
        .bind(chained.device_id)
        .bind(chained.action)
        .bind(chained.outcome)
        .bind(chained.patient)
        .bind(chained.source)
        .bind(chained.detail)
        .bind(chained.client_event)
        .bind(chained.chain_seq)
        .bind(&prev)
        .bind(&hash)
        .bind(chained.reported_at)
        .bind(chained.on_behalf_of)
        .execute(&mut **tx)
        .await?;
        if head.is_some() {
            sqlx::query("UPDATE audit_heads SET seq = $1, hash = $2 WHERE practice_id = $3")
                .bind(chained.chain_seq)
                .bind(&hash)
                .bind(&self.practice_id)
                .execute(&mut **tx)
                .await?;
        } else {
            sqlx::query(
                "INSERT INTO audit_heads (practice_id, seq, hash, pruned_hash) VALUES ($1, $2, $3, $4)",
            )
            .bind(&self.practice_id)
            .bind(chained.chain_seq)
            .bind(&hash)
            .bind(GENESIS)
            .execute(&mut **tx)
            .await?;
        }
        Ok(true)
    }
}

/// Which audit events to read.
#[derive(Clone, Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditFilter {
    /// From this time (ms), inclusive.
    pub from: Option<i64>,
    /// Until this time (ms), exclusive.
    pub to: Option<i64>,
    /// Only this user.
    pub user: Option<String>,
    /// Only this device.
    pub device: Option<String>,
    /// Only this patient (pseudonym).
    pub patient: Option<String>,
    /// Only this action.
    pub action: Option<String>,
    /// `json` (default) or `csv`.
    pub format: Option<String>,
    /// For a device's export of the log (`audit.export`) or of a patient
    /// (`patient.export`): the id of its own record of it, under which
    /// this read is recorded, once (one export, one record).
    pub export: Option<String>,
    /// Which export: `audit.export` or `patient.export`.
    pub export_action: Option<String>,
}

/// What a chain check found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ChainReport {
    /// The practice.
    pub practice_id: String,
    /// Records checked.
    pub records: u64,
    /// Problems found, in chain order (empty: the chain holds).
    pub problems: Vec<String>,
}

impl ChainReport {
    /// Whether the chain holds.
    pub fn intact(&self) -> bool {
        self.problems.is_empty()
    }
}

/// A chain record from a row with its columns (see [`Db::audit_chain`]).
fn chain_record(r: &AnyRow) -> AppResult<ChainRecord> {
    Ok(ChainRecord {
        chain_seq: r.try_get("chain_seq")?,
        prev_hash: r.try_get("prev_hash")?,
        hash: r.try_get("hash")?,
        at: r.try_get("at")?,
        practice_id: r.try_get("practice_id")?,
        user_id: r.try_get("user_id")?,
        role: r.try_get("role")?,
        device_id: r.try_get("device_id")?,
        action: r.try_get("action")?,
        outcome: r.try_get("outcome")?,
        patient: r.try_get("patient")?,
        source: r.try_get("source")?,
        detail: r.try_get("detail")?,
        client_event: r.try_get("client_event")?,
        reported_at: r.try_get("reported_at")?,
        on_behalf_of: r.try_get("on_behalf_of")?,
    })
}

fn event(r: &AnyRow) -> AppResult<AuditEvent> {
    Ok(AuditEvent {
        id: r.try_get::<i64, _>("id")? as u64,
        at: r.try_get("at")?,
        reported_at: r.try_get("reported_at")?,
        practice_id: r.try_get("practice_id")?,
        user_id: r.try_get("user_id")?,
        role: r.try_get("role")?,
        on_behalf_of: r.try_get("on_behalf_of")?,
        device_id: r.try_get("device_id")?,
        action: r.try_get("action")?,
        outcome: r.try_get("outcome")?,
        patient: r.try_get("patient")?,
        source: r.try_get("source")?,
        detail: r.try_get("detail")?,
    })
}

impl Db {
    /// Records an event on its own (in a write transaction of its own).
    /// Returns false for a device event already recorded.
    pub async fn audit(&self, event: NewAuditEvent) -> AppResult<bool> {
        let mut w = self.begin_write().await?;
        let new = event.insert(&mut w.tx).await?;
        w.tx.commit().await?;
        Ok(new)
    }

    /// Records device-reported events in one transaction; returns how many
    /// were new.
    pub async fn audit_many(&self, events: Vec<NewAuditEvent>) -> AppResult<usize> {
        let mut w = self.begin_write().await?;
        let mut new = 0;
        for event in &events {
            new += usize::from(event.insert(&mut w.tx).await?);
        }
        w.tx.commit().await?;
        Ok(new)
    }

    /// A practice's events matching `filter`, oldest first.
    pub async fn audit_events(
        &self,
        practice: &str,
        filter: &AuditFilter,
    ) -> AppResult<Vec<AuditEvent>> {
        let rows = sqlx::query(
            "SELECT id, at, reported_at, practice_id, user_id, role, on_behalf_of, device_id,
                    action, outcome, patient, source, detail
             FROM audit_events WHERE practice_id = $1
               AND COALESCE(reported_at, at) >= $2 AND COALESCE(reported_at, at) < $3
               AND ($4 IS NULL OR user_id = $4)
               AND ($5 IS NULL OR device_id = $5)
               AND ($6 IS NULL OR patient = $6)
               AND ($7 IS NULL OR action = $7)
             ORDER BY id",
        )
        .bind(practice)
        .bind(filter.from.unwrap_or(0))
        .bind(filter.to.unwrap_or(i64::MAX))
        .bind(filter.user.as_deref())
        .bind(filter.device.as_deref())
        .bind(filter.patient.as_deref())
        .bind(filter.action.as_deref())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(event).collect()
    }

    /// Which patients (pseudonyms) a device or a user accessed in
    /// [from, to): the question a data breach report must answer.
    pub async fn breach(
        &self,
        practice: &str,
        device: Option<&str>,
        user: Option<&str>,
        from: i64,
        to: i64,
    ) -> AppResult<Vec<BreachEntry>> {
        if device.is_none() && user.is_none() {
            return Err(AppError::Invalid("name a device or a user".into()));
        }
        let rows = sqlx::query(
            "SELECT patient, action, COALESCE(reported_at, at) AS at FROM audit_events
             WHERE practice_id = $1 AND patient IS NOT NULL
               AND COALESCE(reported_at, at) >= $2 AND COALESCE(reported_at, at) < $3
               AND ($4 IS NULL OR device_id = $4) AND ($5 IS NULL OR user_id = $5)
             ORDER BY patient, at",
        )
        .bind(practice)
        .bind(from)
        .bind(to)
        .bind(device)
        .bind(user)
        .fetch_all(self.pool())
        .await?;
        let mut out: Vec<BreachEntry> = Vec::new();
        for r in &rows {
            let (patient, action, at): (String, String, i64) = (
                r.try_get("patient")?,
                r.try_get("action")?,
                r.try_get("at")?,
            );
            match out.last_mut() {
                Some(row) if row.patient == patient => {
                    row.events += 1;
                    row.last = at;
                    if !row.actions.split(',').any(|a| a == action) {
                        row.actions.push(',');
                        row.actions.push_str(&action);
                    }
                }
                _ => out.push(BreachEntry {
                    patient,
                    events: 1,
                    first: at,
                    last: at,
                    actions: action,
                }),
            }
        }
        Ok(out)
    }

    /// A practice's chain head: its last place and that record's hash
    /// (0 and the genesis hash for an empty chain).
    pub async fn audit_head(&self, practice: &str) -> AppResult<(u64, String)> {
        let head = sqlx::query("SELECT seq, hash FROM audit_heads WHERE practice_id = $1")
            .bind(practice)
            .fetch_optional(self.pool())
            .await?;
        Ok(match head {
            Some(r) => (r.try_get::<i64, _>("seq")? as u64, r.try_get("hash")?),
            None => (0, GENESIS.to_owned()),
        })
    }

    /// Up to `limit` records of a practice's chain after place `after`,
    /// with everything their hashes cover (for a device to recompute).
    pub async fn audit_chain(
        &self,
        practice: &str,
        after: i64,
        limit: i64,
    ) -> AppResult<Vec<ChainRecord>> {
        let rows = sqlx::query(
            "SELECT chain_seq, prev_hash, hash, at, practice_id, user_id, role, device_id, action,
                    outcome, patient, source, detail, client_event, reported_at, on_behalf_of
             FROM audit_events WHERE practice_id = $1 AND chain_seq > $2
             ORDER BY chain_seq LIMIT $3",
        )
        .bind(practice)
        .bind(after)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(chain_record).collect()
    }

    /// The practices that have an audit chain.
    pub async fn audit_practices(&self) -> AppResult<Vec<String>> {
        sqlx::query("SELECT practice_id FROM audit_heads ORDER BY practice_id")
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|r| Ok(r.try_get("practice_id")?))
            .collect()
    }

    /// Walks a practice's chain and reports every record whose hash does not
    /// match its fields (changed), whose place does not follow the one
    /// before (removed, reordered or inserted), and a head the chain does not
    /// reach (records removed from the end).
    pub async fn verify_audit(&self, practice: &str) -> AppResult<ChainReport> {
        let mut report = ChainReport {
            practice_id: practice.to_owned(),
            ..ChainReport::default()
        };
        let Some(head) = sqlx::query(
            "SELECT seq, hash, pruned_seq, pruned_hash FROM audit_heads WHERE practice_id = $1",
        )
        .bind(practice)
        .fetch_optional(self.pool())
        .await?
        else {
            return Ok(report);
        };
        let rows = sqlx::query(
            "SELECT id, at, practice_id, user_id, role, device_id, action, outcome, patient,
                    source, detail, client_event, chain_seq, prev_hash, hash, reported_at,
                    on_behalf_of
             FROM audit_events WHERE practice_id = $1 AND chain_seq IS NOT NULL ORDER BY id",
        )
        .bind(practice)
        .fetch_all(self.pool())
        .await?;
        let mut expected_seq: i64 = head.try_get::<i64, _>("pruned_seq")? + 1;
        let mut expected_prev: String = head.try_get("pruned_hash")?;
        for r in &rows {
            report.records += 1;
            let id: i64 = r.try_get("id")?;
            let record = chain_record(r)?;
            let (seq, prev, stored) = (record.chain_seq, &record.prev_hash, &record.hash);
            let computed = record.computed_hash();
            if computed != *stored {
                report
                    .problems
                    .push(format!("record {id} (place {seq}) was changed"));
            }
            if seq > expected_seq {
                report.problems.push(format!(
                    "places {expected_seq} to {} are missing before record {id}",
                    seq - 1
                ));
            } else if seq < expected_seq {
                report.problems.push(format!(
                    "record {id} (place {seq}) is out of order: place {expected_seq} expected"
                ));
            } else if *prev != expected_prev {
                report.problems.push(format!(
                    "record {id} (place {seq}) does not follow the record before it"
                ));
            }
            expected_seq = seq + 1;
            expected_prev = stored.clone();
        }
        let head_seq: i64 = head.try_get("seq")?;
        let head_hash: String = head.try_get("hash")?;
        if expected_seq - 1 != head_seq || expected_prev != head_hash {
            report.problems.push(format!(
                "the chain ends at place {} but its head is place {head_seq}: records were removed from the end",
                expected_seq - 1
            ));
        }
        Ok(report)
    }

    /// Removes audit records older than five years from the start of each
    /// chain; the last removed record anchors what remains.
    pub async fn prune_audit(&self) -> AppResult<u64> {
        let cutoff = now_ms() - KEEP_MS;
        let mut w = self.begin_write().await?;
        // Per practice, the last record of the run from the chain's start
        // in which every record is older than the cutoff.
        let old = sqlx::query(
            "SELECT e.practice_id, MAX(e.chain_seq) AS seq FROM audit_events e
             WHERE e.at < $1 AND e.chain_seq IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM audit_events y
                   WHERE y.practice_id = e.practice_id AND y.chain_seq IS NOT NULL
                     AND y.chain_seq < e.chain_seq AND y.at >= $1)
             GROUP BY e.practice_id",
        )
        .bind(cutoff)
        .fetch_all(&mut *w.tx)
        .await?;
        let mut removed = 0;
        for r in &old {
            let practice: String = r.try_get("practice_id")?;
            let seq: i64 = r.try_get("seq")?;
            // Only the unbroken run from the start: a younger record in
            // between keeps everything after it.
            let hash: Option<String> = sqlx::query(
                "SELECT hash FROM audit_events WHERE practice_id = $1 AND chain_seq = $2",
            )
            .bind(&practice)
            .bind(seq)
            .fetch_optional(&mut *w.tx)
            .await?
            .map(|r| r.try_get("hash"))
            .transpose()?;
            let Some(hash) = hash else { continue };
            removed += sqlx::query(
                "DELETE FROM audit_events WHERE practice_id = $1 AND chain_seq <= $2 AND at < $3",
            )
            .bind(&practice)
            .bind(seq)
            .bind(cutoff)
            .execute(&mut *w.tx)
            .await?
            .rows_affected();
            sqlx::query(
                "UPDATE audit_heads SET pruned_seq = $1, pruned_hash = $2 WHERE practice_id = $3",
            )
            .bind(seq)
            .bind(&hash)
            .bind(&practice)
            .execute(&mut *w.tx)
            .await?;
        }
        w.tx.commit().await?;
        Ok(removed)
    }
}

/// The events as CSV (RFC 4180 quoting), the columns of a device's export
/// (the server cannot name the patient: the pseudonym only).
pub fn to_csv(events: &[AuditEvent]) -> String {
    pieper_wire::audit_csv(events.iter().map(|e| (e, None)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh SQLite database (kept while the folder lives).
    async fn test_db() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("s.sqlite3").display()
        );
        let sealer = crate::secrets::Sealer::new(&[1; 32]);
        let db = Db::connect(&url, sealer).await.expect("database");
        (dir, db)
    }

    fn event(at: i64, action: &'static str) -> NewAuditEvent {
        NewAuditEvent {
            practice_id: "linde".into(),
            action,
            outcome: "success",
            at: Some(at),
            ..NewAuditEvent::default()
        }
    }

    #[tokio::test]
    async fn records_older_than_five_years_are_pruned_from_the_chain_start() {
        let (_dir, db) = test_db().await;
        let now = now_ms();
        let six_years = now - KEEP_MS - 365 * 86_400_000;
        for at in [six_years, six_years + 1, now - 1000, now] {
            db.audit(event(at, "login")).await.expect("insert");
        }
        assert!(db.verify_audit("linde").await.expect("verify").intact());
        assert_eq!(db.prune_audit().await.expect("prune"), 2);
        let report = db.verify_audit("linde").await.expect("verify");
        assert!(report.intact(), "{report:?}");
        assert_eq!(report.records, 2);
        // The chain goes on from there.
        db.audit(event(now, "logout")).await.expect("insert");
        assert!(db.verify_audit("linde").await.expect("verify").intact());
    }

    /// A device whose clock says 1970 (reset, or hostile) reports an
    /// access: it is recorded at the server's time beside the device's, so
    /// pruning leaves it and the chain holds; and pruning never cuts past a
    /// young record, whatever its neighbours' times.
    #[tokio::test]
    async fn a_back_dated_report_changes_nothing_in_the_chain() {
        let (_dir, db) = test_db().await;
        let now = now_ms();
        let six_years = now - KEEP_MS - 365 * 86_400_000;
        db.audit(event(six_years, "login")).await.expect("insert");
        db.audit(NewAuditEvent {
            reported_at: Some(0),
            ..event(now, "message.read")
        })
        .await
        .expect("insert");
        // An old record after a young one (a server clock set back): it stays.
        db.audit(event(six_years, "logout")).await.expect("insert");
        assert_eq!(db.prune_audit().await.expect("prune"), 1);
        let report = db.verify_audit("linde").await.expect("verify");
        assert!(report.intact(), "{report:?}");
        assert_eq!(report.records, 2);
        let events = db
            .audit_events("linde", &AuditFilter::default())
            .await
            .expect("events");
        assert_eq!(events[0].reported_at, Some(0));
        assert!(events[0].at >= now);
    }

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let e = AuditEvent {
            id: 1,
            at: 2,
            reported_at: None,
            practice_id: "p".into(),
            user_id: None,
            role: None,
            on_behalf_of: None,
            device_id: None,
            action: "login".into(),
            outcome: "failure".into(),
            patient: None,
            source: Some("127.0.0.1".into()),
            detail: Some("a,\"b\"".into()),
        };
        let csv = to_csv(&[e]);
        assert!(
            csv.ends_with(
                "1,1970-01-01T00:00:00.002Z,1970-01-01T00:00:00.002Z,p,,,,,login,failure,,,\
                 127.0.0.1,\"a,\"\"b\"\"\"\r\n"
            ),
            "{csv}"
        );
    }
}
