//! Delivered and read receipts, end-to-end: a device that received or showed
//! messages of others sends one receipt per conversation (silent: it wakes
//! nobody), and every member keeps who has what.

use rusqlite::{Connection, params};

use crate::{
    error::Result,
    identity::MemberId,
    store::{StoreError, queries},
};

/// Who has a message: one member device.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct Receipt {
    /// The user.
    pub user: String,
    /// Their device.
    pub device: String,
    /// When it reached the device (ms).
    pub delivered_at: Option<i64>,
    /// When its user read it there (ms).
    pub read_at: Option<i64>,
}

/// Notes that receipts are owed for these messages.
pub(crate) fn owe(
    conn: &Connection,
    conversation: &str,
    messages: &[String],
    read: bool,
) -> Result<()> {
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO receipts_pending (conversation_id, message_id, read, at)
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
        )
        .map_err(StoreError::from)?;
    let now = queries::now_ms();
    for id in messages {
        stmt.execute(params![conversation, id, read, now])
            .map_err(StoreError::from)?;
    }
    Ok(())
}

/// Receipts owed in one conversation, of one kind: (conversation, read,
/// message ids, the latest time).
pub(crate) type Owed = (String, bool, Vec<String>, i64);

/// Receipts owed, per conversation and kind.
pub(crate) fn owed(conn: &Connection) -> Result<Vec<Owed>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT conversation_id, read, message_id, at FROM receipts_pending
             ORDER BY conversation_id, read, at LIMIT 2000",
        )
        .map_err(StoreError::from)?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, bool>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })
        .map_err(StoreError::from)?;
    let mut out: Vec<Owed> = Vec::new();
    for row in rows {
        let (conversation, read, id, at) = row.map_err(StoreError::from)?;
        match out.last_mut() {
            Some(last) if last.0 == conversation && last.1 == read => {
                last.2.push(id);
                last.3 = last.3.max(at);
            }
            _ => out.push((conversation, read, vec![id], at)),
        }
    }
    Ok(out)
}

/// The owed receipts went out (or their conversation cannot take them).
pub(crate) fn paid(conn: &Connection, read: bool, messages: &[String]) -> Result<()> {
    let mut stmt = conn
        .prepare_cached("DELETE FROM receipts_pending WHERE message_id = ?1 AND read = ?2")
        .map_err(StoreError::from)?;
    for id in messages {
        stmt.execute(params![id, read]).map_err(StoreError::from)?;
    }
    Ok(())
}

/// A member's receipt arrived: only for messages of this conversation.
pub(crate) fn apply(
    conn: &Connection,
    conversation: &str,
    from: &MemberId,
    messages: &[String],
    read: bool,
    at: i64,
) -> Result<Vec<String>> {
    let mut known = conn
        .prepare_cached("SELECT 1 FROM messages WHERE id = ?1 AND conversation_id = ?2")
        .map_err(StoreError::from)?;
    let mut upsert = conn
        .prepare_cached(
            "INSERT INTO receipts (message_id, user_id, device_id, delivered_at, read_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (message_id, device_id) DO UPDATE SET
                 delivered_at = COALESCE(receipts.delivered_at, excluded.delivered_at),
                 read_at = COALESCE(receipts.read_at, excluded.read_at)",
        )
        .map_err(StoreError::from)?;
    let mut changed = Vec::new();
    for id in messages {
        if !known
            .exists(params![id, conversation])
            .map_err(StoreError::from)?
        {
            continue;
        }
        // Read implies delivered.
        upsert
            .execute(params![id, from.user, from.device, at, read.then_some(at)])
            .map_err(StoreError::from)?;
        changed.push(id.clone());
    }
    Ok(changed)
}

/// A message's receipts, by device.
pub(crate) fn of(conn: &Connection, message: &str) -> Result<Vec<Receipt>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT user_id, device_id, delivered_at, read_at FROM receipts
             WHERE message_id = ?1 ORDER BY user_id, device_id",
        )
        .map_err(StoreError::from)?;
    let rows = stmt
        .query_map([message], |r| {
            Ok(Receipt {
                user: r.get(0)?,
                device: r.get(1)?,
                delivered_at: r.get(2)?,
                read_at: r.get(3)?,
            })
        })
        .map_err(StoreError::from)?;
    Ok(rows
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(StoreError::from)?)
}

/// Forgets the receipts of messages that are gone.
pub(crate) fn forget(conn: &Connection, messages: &[String]) -> Result<()> {
    let mut stmt = conn
        .prepare_cached("DELETE FROM receipts WHERE message_id = ?1")
        .map_err(StoreError::from)?;
    for id in messages {
        stmt.execute([id]).map_err(StoreError::from)?;
    }
    Ok(())
}
