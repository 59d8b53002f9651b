//! Disappearing messages and retention on the device. A message goes when
//! its time-to-live passes (a "message expired" marker without content
//! stays) or when it is older than the practice keeps chat (it goes
//! entirely) — but a message marked for the record stays until the record
//! has it: the dossier is the legal copy. What goes leaves the store, its
//! search index and its attachment files; the store overwrites freed pages
//! (`secure_delete`) and the index is rebuilt without it.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use crate::{
    error::{Error, Result},
    store::{StoreError, queries},
};

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// Whether the practice allows disappearing messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum TtlPolicy {
    /// A sender may give a message or conversation a time-to-live.
    Allowed,
    /// No message disappears.
    Forbidden,
    /// Every message disappears, at the latest after the practice's time.
    Enforced {
        /// The longest time-to-live (seconds).
        secs: u64,
    },
}

/// The practice's rules for chat content (from the server; kept here so
/// they hold offline too).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct PracticeRules {
    /// How long chat history is kept (days).
    pub retention_days: u32,
    /// Disappearing messages.
    pub ttl: TtlPolicy,
    /// How many of each conversation's newest messages a user's new device
    /// gets from their other devices.
    pub history_messages: u32,
    /// How many days with activity a device may go without updating its
    /// keys in a conversation (MLS post-compromise security).
    pub key_update_days: u32,
}

impl Default for PracticeRules {
    fn default() -> Self {
        Self {
            retention_days: 90,
            ttl: TtlPolicy::Allowed,
            history_messages: 50,
            key_update_days: DEFAULT_KEY_UPDATE_DAYS,
        }
    }
}

/// A week, as the messengers we measure against update on a schedule.
const DEFAULT_KEY_UPDATE_DAYS: u32 = 7;

impl PracticeRules {
    pub(crate) fn from_wire(s: &pieper_wire::PracticeSettings) -> Result<Self> {
        let ttl = match (s.ttl_policy.as_str(), s.ttl_secs) {
            ("allowed", _) => TtlPolicy::Allowed,
            ("forbidden", _) => TtlPolicy::Forbidden,
            ("enforced", Some(secs)) => TtlPolicy::Enforced { secs },
            (other, _) => {
                return Err(Error::invalid(
                    "ttl_policy",
                    format!("{other:?} from the server"),
                ));
            }
        };
        Ok(Self {
            retention_days: s.retention_days,
            ttl,
            history_messages: s.history_messages,
            key_update_days: s.key_update_days.unwrap_or(DEFAULT_KEY_UPDATE_DAYS),
        })
    }

    pub(crate) fn to_wire(self) -> pieper_wire::PracticeSettings {
        let (policy, secs) = match self.ttl {
            TtlPolicy::Allowed => ("allowed", None),
            TtlPolicy::Forbidden => ("forbidden", None),
            TtlPolicy::Enforced { secs } => ("enforced", Some(secs)),
        };
        pieper_wire::PracticeSettings {
            retention_days: self.retention_days,
            ttl_policy: policy.into(),
            ttl_secs: secs,
            history_messages: self.history_messages,
            // The server's to keep: a device leaves it as it is.
            devices_per_user: None,
            key_update_days: Some(self.key_update_days),
        }
    }
}

/// What housekeeping removed on this device, in total and in the last run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HousekeepingReport {
    /// Messages whose time-to-live passed, this run.
    pub expired: u32,
    /// Messages older than the retention period, this run.
    pub past_retention: u32,
    /// Messages kept past their time because the record does not have them yet.
    pub held_for_record: u32,
    /// Totals on this device.
    pub expired_total: u64,
    /// Totals on this device.
    pub retention_total: u64,
    /// Messages removed on a patient's erasure request, in total.
    pub erased_total: u64,
    /// The practice's rules this ran under.
    pub rules: PracticeRules,
}

pub(crate) fn rules(conn: &Connection) -> Result<PracticeRules> {
    let row: Option<(u32, String, Option<i64>, u32, u32)> = conn
        .query_row(
            "SELECT retention_days, ttl_policy, ttl_secs, history_messages, key_update_days
             FROM practice_settings WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .optional()
        .map_err(StoreError::from)?;
    let Some((retention_days, policy, secs, history_messages, key_update_days)) = row else {
        return Ok(PracticeRules::default());
    };
    PracticeRules::from_wire(&pieper_wire::PracticeSettings {
        retention_days,
        ttl_policy: policy,
        ttl_secs: secs.map(|s| s as u64),
        history_messages,
        devices_per_user: None,
        key_update_days: Some(key_update_days),
    })
}

pub(crate) fn set_rules(conn: &Connection, rules: PracticeRules) -> Result<()> {
    let wire = rules.to_wire();
    conn.execute(
        "INSERT INTO practice_settings
             (id, retention_days, ttl_policy, ttl_secs, history_messages, key_update_days,
              fetched_at)
         VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (id) DO UPDATE SET retention_days = excluded.retention_days,
             ttl_policy = excluded.ttl_policy, ttl_secs = excluded.ttl_secs,
             history_messages = excluded.history_messages,
             key_update_days = excluded.key_update_days, fetched_at = excluded.fetched_at",
        params![
            wire.retention_days,
            wire.ttl_policy,
            wire.ttl_secs.map(|s| s as i64),
            wire.history_messages,
            rules.key_update_days,
            queries::now_ms()
        ],
    )
    .map_err(StoreError::from)?;
    Ok(())
}

/// When a new message in `conversation` goes: its own time-to-live, else
/// the conversation's, held to the practice's rule.
pub(crate) fn expiry_for(
    conn: &Connection,
    conversation: &str,
    requested: Option<u64>,
    sent_at: i64,
) -> Result<Option<i64>> {
    let conversation_ttl: Option<i64> = conn
        .query_row(
            "SELECT ttl_secs FROM conversations WHERE id = ?1",
            [conversation],
            |r| r.get(0),
        )
        .optional()
        .map_err(StoreError::from)?
        .flatten();
    let wanted = requested.or(conversation_ttl.map(|s| s as u64));
    if wanted == Some(0) {
        return Err(Error::invalid("ttl", "a time-to-live is at least a second"));
    }
    let ttl = match (rules(conn)?.ttl, wanted) {
        (TtlPolicy::Forbidden, Some(_)) => {
            return Err(Error::invalid(
                "ttl",
                "the practice does not allow disappearing messages",
            ));
        }
        (TtlPolicy::Enforced { secs }, wanted) => Some(wanted.map_or(secs, |w| w.min(secs))),
        (_, wanted) => wanted,
    };
    Ok(ttl.map(|secs| sent_at.saturating_add((secs as i64).saturating_mul(1000))))
}

/// A message to purge: its id, its attachments (JSON), and whether it goes
/// entirely (past retention) rather than leaving a marker.
type Due = (String, String, bool);

/// The messages to purge at `now`, and how many the record holds back.
fn due(conn: &Connection, now: i64, retention_days: u32) -> Result<(Vec<Due>, u32)> {
    let cutoff = now.saturating_sub(i64::from(retention_days).saturating_mul(DAY_MS));
    // Each branch uses its own index; a message for the record stays until
    // the record has it (`held`).
    let mut stmt = conn
        .prepare_cached(
            "WITH candidates (id) AS (
                 SELECT id FROM messages
                 WHERE expires_at IS NOT NULL AND expired = 0 AND expires_at <= ?1
                 UNION SELECT id FROM messages WHERE sent_at < ?2
                 UNION SELECT s.id FROM messages m JOIN messages s ON s.spoed_of_message = m.id
                 WHERE m.expires_at IS NOT NULL AND m.expired = 0 AND m.expires_at <= ?1
             )
             SELECT m.id, m.attachments, m.sent_at < ?2,
                    m.kind = 'documenteer' AND COALESCE(m.doc_state, '') <> 'documented'
             FROM candidates c JOIN messages m ON m.id = c.id",
        )
        .map_err(StoreError::from)?;
    let rows = stmt
        .query_map(params![now, cutoff], |r| {
            Ok((
                (
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, bool>(2)?,
                ),
                r.get::<_, bool>(3)?,
            ))
        })
        .map_err(StoreError::from)?;
    let mut due = Vec::new();
    let mut held = 0;
    for row in rows {
        let (message, on_hold) = row.map_err(StoreError::from)?;
        if on_hold {
            held += 1;
        } else {
            due.push(message);
        }
    }
    Ok((due, held))
}

/// Removes the attachment files of a message (sealed copies this device
/// keeps under `dir/attachments`).
pub(crate) fn remove_attachment_files(dir: &Path, attachments_json: &str) {
    let Ok(refs) = serde_json::from_str::<Vec<crate::model::AttachmentRef>>(attachments_json)
    else {
        return;
    };
    for r in refs {
        if let Some(path) = crate::privacy::subject::attachment_path(dir, &r.blob_id) {
            // Gone already is fine.
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Purges what is due at `now`; returns what it did.
pub(crate) fn purge(conn: &Connection, dir: &Path, now: i64) -> Result<HousekeepingReport> {
    let rules = rules(conn)?;
    let (due, held) = due(conn, now, rules.retention_days)?;
    let mut report = HousekeepingReport {
        held_for_record: held,
        rules,
        ..HousekeepingReport::default()
    };
    let mut gone = Vec::new();
    for (id, attachments, past_retention) in &due {
        remove_attachment_files(dir, attachments);
        if *past_retention {
            conn.execute("DELETE FROM messages WHERE id = ?1", [id])
                .map_err(StoreError::from)?;
            report.past_retention += 1;
        } else {
            // The marker stays: who sent what kind of message when, no content.
            conn.execute(
                "UPDATE messages SET body = '', attachments = '[]', reply_to = NULL, expired = 1
                 WHERE id = ?1",
                [id],
            )
            .map_err(StoreError::from)?;
            report.expired += 1;
        }
        gone.push(id.clone());
    }
    // Nothing due (the usual case, at every open): nothing is written.
    if !gone.is_empty() {
        super::receipts::forget(conn, &gone)?;
        conn.execute(
            "UPDATE housekeeping SET expired_total = expired_total + ?1,
                 retention_total = retention_total + ?2, last_run = ?3 WHERE id = 1",
            params![report.expired, report.past_retention, now],
        )
        .map_err(StoreError::from)?;
    }
    let totals: (i64, i64, i64) = conn
        .query_row(
            "SELECT expired_total, retention_total, erased_total FROM housekeeping WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .map_err(StoreError::from)?;
    report.expired_total = totals.0 as u64;
    report.retention_total = totals.1 as u64;
    report.erased_total = totals.2 as u64;
    Ok(report)
}

/// After content was removed: the search index is merged so no segment
/// still holds its words, and the log is folded into the file (where freed
/// pages were overwritten).
pub(crate) fn scrub(conn: &Connection) -> Result<()> {
    conn.execute_batch("INSERT INTO messages_fts (messages_fts) VALUES ('optimize');")
        .map_err(StoreError::from)?;
    Ok(())
}

/// Folds the write-ahead log into the store file (outside a transaction).
pub(crate) fn checkpoint(conn: &Connection) -> Result<()> {
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .map_err(StoreError::from)?;
    Ok(())
}

/// The next time something expires here (ms), if anything will.
pub(crate) fn next_expiry(conn: &Connection) -> Result<Option<i64>> {
    Ok(conn
        .query_row(
            "SELECT min(expires_at) FROM messages WHERE expires_at IS NOT NULL AND expired = 0
               AND NOT (kind = 'documenteer' AND COALESCE(doc_state, '') <> 'documented')",
            [],
            |r| r.get(0),
        )
        .map_err(StoreError::from)?)
}
