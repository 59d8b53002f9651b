//! This device's keys over time. A leaf key that leaked (a copied backup, a
//! phone briefly in the wrong hands) opens every later message of a
//! conversation until this device commits an MLS update of its own leaf
//! (RFC 9420, 8: post-compromise security). So each device updates its leaf
//! in every conversation with activity at the latest after the practice's
//! period (`key_update_days`, a week unless set), spread over the last fifth
//! of the period so conversations started together do not all update in the
//! same minute; and at once after a restore from backup or an unlock that
//! followed a wipe warning. An update is a commit like any other: one that
//! lost its epoch to another member's commit is dropped and made again.

mod client;

pub use client::{KEY_PACKAGE_MAX_AGE_DAYS, KeysClient, RENEW_BEFORE_DAYS};

use openmls::prelude::*;
use rusqlite::{Connection, params};
use sha2::{Digest, Sha256};

use crate::{
    conversations::membership::queue_commit,
    device::{CommitOut, Device},
    error::Result,
    mls,
    store::{StoreError, queries},
};

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// When this device last replaced its own keys in one conversation.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct KeyUpdate {
    /// The conversation.
    pub conversation: String,
    /// Its title (empty for a conversation without details yet).
    pub title: String,
    /// When this device's leaf got new keys here (ms since the Unix epoch):
    /// its last update, or when it created or joined the conversation.
    pub updated_at: i64,
    /// Whether messages went or came since.
    pub activity_since: bool,
    /// Whether an update is due at once (after a restore, an unlock after a
    /// wipe warning).
    pub due_now: bool,
}

/// A message went or came in `conversation`: its next update counts from
/// the last one.
pub(crate) fn note_activity(conn: &Connection, conversation: &str) -> Result<()> {
    conn.execute(
        "UPDATE conversations SET leaf_activity = 1 WHERE id = ?1 AND leaf_activity = 0",
        [conversation],
    )
    .map_err(StoreError::from)?;
    Ok(())
}

/// This device's commit with an update path was accepted: its leaf has new
/// keys in `conversation`.
pub(crate) fn leaf_updated(conn: &Connection, conversation: &str) -> Result<()> {
    conn.execute(
        "UPDATE conversations SET leaf_updated_at = ?2, leaf_activity = 0, leaf_update_due = 0
         WHERE id = ?1",
        params![conversation, queries::now_ms()],
    )
    .map_err(StoreError::from)?;
    Ok(())
}

/// Whether a certificate valid until `expiry` (ms) is renewed at `now`:
/// within [`RENEW_BEFORE_DAYS`] of its end, or after it.
pub(crate) fn renewal_due(expiry: Option<i64>, now: i64) -> bool {
    expiry.is_some_and(|at| at - now < i64::from(RENEW_BEFORE_DAYS) * DAY_MS)
}

/// How far before the end of the period a conversation's update may come:
/// a fixed share of the last fifth, from this device and the conversation,
/// so that updates spread out and a device's choice is stable across runs.
fn spread(device: &str, conversation: &str, period: i64) -> i64 {
    let digest = Sha256::new()
        .chain_update(b"pieper leaf update spread v1")
        .chain_update(device.as_bytes())
        .chain_update([0])
        .chain_update(conversation.as_bytes())
        .finalize();
    let n = u64::from_be_bytes([
        digest[0], digest[1], digest[2], digest[3], digest[4], digest[5], digest[6], digest[7],
    ]);
    let window = (period / 5).max(1) as u64;
    (n % window) as i64
}

impl Device {
    /// The conversations whose update is due at `now`: those marked due at
    /// once first, then those with activity whose period (less their
    /// spread) ran out, oldest first; at most `limit` of the latter.
    pub(crate) fn leaf_updates_due(&self, now: i64, limit: usize) -> Result<Vec<String>> {
        let days = self.practice_rules()?.key_update_days.max(1);
        let period = i64::from(days).saturating_mul(DAY_MS);
        self.store.read(|conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT id, leaf_updated_at, leaf_update_due FROM conversations
                     WHERE active = 1
                       AND (leaf_update_due = 1 OR (leaf_activity = 1 AND leaf_updated_at <= ?1))
                     ORDER BY leaf_update_due DESC, leaf_updated_at, id",
                )
                .map_err(StoreError::from)?;
            let earliest = now.saturating_sub(period - period / 5);
            let rows = stmt
                .query_map([earliest], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, bool>(2)?,
                    ))
                })
                .map_err(StoreError::from)?;
            let mut now_due = Vec::new();
            let mut scheduled = Vec::new();
            for row in rows {
                let (id, updated_at, due_now) = row.map_err(StoreError::from)?;
                if due_now {
                    now_due.push(id);
                } else if scheduled.len() < limit
                    && now >= updated_at + period - spread(&self.me.device, &id, period)
                {
                    scheduled.push(id);
                }
            }
            now_due.extend(scheduled);
            Ok(now_due)
        })
    }

    /// Commits an update of this device's own leaf in `conversation`: new
    /// encryption keys along its path, so a copy of its old state reads
    /// nothing sent after the commit. It waits for the server's answer like
    /// any commit ([`Device::commit_accepted`], [`Device::commit_refused`]).
    pub(crate) fn update_leaf(&self, conversation: &str) -> Result<CommitOut> {
        self.transact(|s| {
            let (provider, group) = s.operational_group(conversation)?;
            // Nothing in the authenticated data: an update carries no
            // approvals.
            group.set_aad(Vec::new());
            // Only this device's own leaf: proposals another member sent
            // are not committed on its word (an Add in there would bring in
            // a device nobody vouched for).
            // A renewed certificate goes out with the new keys.
            let credential = self.credential();
            let leaf = match group.own_leaf_node() {
                Some(own) if own.credential() != &credential.credential => {
                    LeafNodeParameters::builder()
                        .with_credential_with_key(credential)
                        .build()
                }
                _ => LeafNodeParameters::default(),
            };
            let bundle = group
                .commit_builder()
                .consume_proposal_store(false)
                .force_self_update(true)
                .leaf_node_parameters(leaf)
                .load_psks(provider.storage())
                .map_err(mls::mls_err)?
                .build(provider.rand(), provider.crypto(), &self.signer, |_| true)
                .map_err(mls::mls_err)?
                .stage_commit(provider)
                .map_err(mls::mls_err)?;
            let epoch = group.epoch().as_u64();
            queue_commit(
                s,
                conversation,
                epoch,
                bundle.commit(),
                None,
                Vec::new(),
                Vec::new(),
            )
        })
    }

    /// Marks every active conversation due for an update at once; returns
    /// how many.
    pub(crate) fn leaf_updates_due_now(&self) -> Result<usize> {
        self.store.write(|tx| {
            Ok(tx
                .execute(
                    "UPDATE conversations SET leaf_update_due = 1 WHERE active = 1",
                    [],
                )
                .map_err(StoreError::from)?)
        })
    }

    /// When this device last replaced its keys, per active conversation.
    pub(crate) fn key_updates(&self) -> Result<Vec<KeyUpdate>> {
        self.store.read(|conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT id, title, leaf_updated_at, leaf_activity, leaf_update_due
                     FROM conversations WHERE active = 1 ORDER BY leaf_updated_at, id",
                )
                .map_err(StoreError::from)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(KeyUpdate {
                        conversation: r.get(0)?,
                        title: r.get(1)?,
                        updated_at: r.get(2)?,
                        activity_since: r.get(3)?,
                        due_now: r.get(4)?,
                    })
                })
                .map_err(StoreError::from)?;
            Ok(rows
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(StoreError::from)?)
        })
    }

    /// When this device's leaf got new keys in `conversation` (ms).
    pub(crate) fn leaf_updated_at(&self, conversation: &str) -> Result<i64> {
        self.store.read(|conn| {
            Ok(conn
                .query_row(
                    "SELECT leaf_updated_at FROM conversations WHERE id = ?1",
                    [conversation],
                    |r| r.get(0),
                )
                .map_err(StoreError::from)?)
        })
    }
}

#[cfg(test)]
mod tests;
