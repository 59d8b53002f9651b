//! The append-only audit log (NEN 7513 fields). The database refuses updates
//! and deletes of it (triggers in the migrations).

use pieper_wire::AuditEvent;
use sqlx::{Any, Row};

use super::{Db, now_ms};
use crate::error::AppResult;

/// An access event to record.
#[derive(Clone, Debug, Default)]
pub struct NewAuditEvent {
    pub practice_id: String,
    pub user_id: Option<String>,
    pub role: Option<String>,
    pub device_id: Option<String>,
    pub action: &'static str,
    pub outcome: &'static str,
    pub patient: Option<String>,
    pub source: Option<String>,
    pub detail: Option<String>,
}

impl NewAuditEvent {
    /// Records the event inside a transaction (with the action it records).
    pub async fn insert(&self, tx: &mut sqlx::Transaction<'static, Any>) -> AppResult<()> {
        self.query().execute(&mut **tx).await?;
        Ok(())
    }

    fn query(&self) -> sqlx::query::Query<'_, Any, sqlx::any::AnyArguments> {
        sqlx::query(
            "INSERT INTO audit_events (at, practice_id, user_id, role, device_id, action, outcome, patient, source, detail)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(now_ms())
        .bind(&self.practice_id)
        .bind(self.user_id.as_deref())
        .bind(self.role.as_deref())
        .bind(self.device_id.as_deref())
        .bind(self.action)
        .bind(self.outcome)
        .bind(self.patient.as_deref())
        .bind(self.source.as_deref())
        .bind(self.detail.as_deref())
    }
}

/// Which audit events to read.
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct AuditFilter {
    /// From this time (ms), inclusive.
    pub from: Option<i64>,
    /// Until this time (ms), exclusive.
    pub to: Option<i64>,
    /// Only this user.
    pub user: Option<String>,
    /// Only this device.
    pub device: Option<String>,
    /// Only this patient.
    pub patient: Option<String>,
    /// Only this action.
    pub action: Option<String>,
    /// `json` (default) or `csv`.
    pub format: Option<String>,
}

impl Db {
    /// Records an event on its own.
    pub async fn audit(&self, event: NewAuditEvent) -> AppResult<()> {
        event.query().execute(self.pool()).await?;
        Ok(())
    }

    /// A practice's events matching `filter`, oldest first.
    pub async fn audit_events(
        &self,
        practice: &str,
        filter: &AuditFilter,
    ) -> AppResult<Vec<AuditEvent>> {
        let rows = sqlx::query(
            "SELECT id, at, practice_id, user_id, role, device_id, action, outcome, patient, source, detail
             FROM audit_events WHERE practice_id = $1
               AND at >= $2 AND at < $3
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
        rows.iter()
            .map(|r| {
                Ok(AuditEvent {
                    id: r.try_get::<i64, _>("id")? as u64,
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
                })
            })
            .collect()
    }
}

/// The events as CSV (RFC 4180 quoting).
pub fn to_csv(events: &[AuditEvent]) -> String {
    fn field(out: &mut String, value: &str) {
        if value.contains([',', '"', '\n', '\r']) {
            out.push('"');
            out.push_str(&value.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(value);
        }
    }
    let mut out = String::from(
        "id,at,practice_id,user_id,role,device_id,action,outcome,patient,source,detail\r\n",
    );
    for e in events {
        let cells = [
            e.id.to_string(),
            e.at.to_string(),
            e.practice_id.clone(),
            e.user_id.clone().unwrap_or_default(),
            e.role.clone().unwrap_or_default(),
            e.device_id.clone().unwrap_or_default(),
            e.action.clone(),
            e.outcome.clone(),
            e.patient.clone().unwrap_or_default(),
            e.source.clone().unwrap_or_default(),
            e.detail.clone().unwrap_or_default(),
        ];
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            field(&mut out, cell);
        }
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let e = AuditEvent {
            id: 1,
            at: 2,
            practice_id: "p".into(),
            user_id: None,
            role: None,
            device_id: None,
            action: "login".into(),
            outcome: "failure".into(),
            patient: None,
            source: Some("127.0.0.1".into()),
            detail: Some("a,\"b\"".into()),
        };
        let csv = to_csv(&[e]);
        assert!(
            csv.ends_with("1,2,p,,,,login,failure,,127.0.0.1,\"a,\"\"b\"\"\"\r\n"),
            "{csv}"
        );
    }
}
