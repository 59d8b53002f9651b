//! SQL over the store's own tables (the `openmls_*` tables belong to OpenMLS).

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::{
    device::{Delivery, Outgoing, OutgoingKind},
    error::{Error, Result},
    identity::MemberId,
    model::{
        AttachmentRef, Conversation, ConversationKind, Member, Message, MessageKind, MessageState,
        PatientRef, Priority, SpoedPost,
    },
    record::{DocProgress, DocState},
    spoed::Triage,
    store::StoreError,
};

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn record_err(e: impl std::fmt::Display) -> Error {
    StoreError::Record(e.to_string()).into()
}

// --- identity ---------------------------------------------------------------

/// This device's identity as stored.
pub(crate) struct Identity {
    pub id: MemberId,
    pub public_key: Vec<u8>,
    /// Its certificate; `None` for a device from before certificates.
    pub certificate: Option<Vec<u8>>,
    /// The practice authority's certificate it pinned at enrolment.
    pub authority: Option<Vec<u8>>,
}

pub(crate) fn insert_identity(conn: &Connection, identity: &Identity) -> Result<()> {
    let id = &identity.id;
    conn.execute(
        "INSERT INTO device_identity (id, practice_id, user_id, device_id, signature_public_key, created_at, certificate, authority)
         VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![id.practice, id.user, id.device, identity.public_key, now_ms(), identity.certificate, identity.authority],
    )?;
    Ok(())
}

/// Replaces this device's certificate (a renewal).
pub(crate) fn set_certificate(conn: &Connection, certificate: &[u8]) -> Result<()> {
    conn.execute(
        "UPDATE device_identity SET certificate = ?1 WHERE id = 1",
        [certificate],
    )?;
    Ok(())
}

pub(crate) fn load_identity(conn: &Connection) -> Result<Identity> {
    let row = conn
        .query_row(
            "SELECT practice_id, user_id, device_id, signature_public_key, certificate, authority FROM device_identity WHERE id = 1",
            [],
            |r| {
                Ok((
                    (r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?),
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            },
        )
        .optional()?
        .ok_or(Error::NotFound { what: "device identity" })?;
    let ((practice, user, device), public_key, certificate, authority) = row;
    Ok(Identity {
        id: MemberId::new(&practice, &user, &device)?,
        public_key,
        certificate,
        authority,
    })
}

/// Counts one refusal of `kind`.
pub(crate) fn count_refusal(conn: &Connection, kind: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO refusals (kind, count) VALUES (?1, 1)
         ON CONFLICT (kind) DO UPDATE SET count = count + 1",
        [kind],
    )?;
    Ok(())
}

/// How often this device refused what members sent, by kind.
pub(crate) fn refusals(conn: &Connection) -> Result<Vec<crate::error::RefusalCount>> {
    let mut statement = conn.prepare("SELECT kind, count FROM refusals ORDER BY kind")?;
    let rows = statement.query_map([], |r| {
        Ok(crate::error::RefusalCount {
            kind: r.get(0)?,
            count: r.get::<_, i64>(1)? as u64,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

// --- session -----------------------------------------------------------------

/// The signed-in session with the server.
#[derive(Clone, Debug)]
pub(crate) struct Session {
    pub server_url: String,
    pub token: String,
    pub role: String,
    pub cursor: u64,
    pub signed_out: bool,
}

pub(crate) fn save_session(conn: &Connection, s: &Session) -> Result<()> {
    conn.execute(
        "INSERT INTO session (id, server_url, token, role, cursor, signed_out) VALUES (1, ?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (id) DO UPDATE SET server_url = ?1, token = ?2, role = ?3, cursor = ?4, signed_out = ?5",
        params![s.server_url, s.token, s.role, s.cursor as i64, s.signed_out],
    )?;
    Ok(())
}

pub(crate) fn session(conn: &Connection) -> Result<Option<Session>> {
    Ok(conn
        .query_row(
            "SELECT server_url, token, role, cursor, signed_out FROM session WHERE id = 1",
            [],
            |r| {
                Ok(Session {
                    server_url: r.get(0)?,
                    token: r.get(1)?,
                    role: r.get(2)?,
                    cursor: r.get::<_, i64>(3)? as u64,
                    signed_out: r.get(4)?,
                })
            },
        )
        .optional()?)
}

/// Whether this device published the KeyPackages it starts with.
pub(crate) fn key_packages_published(conn: &Connection) -> Result<bool> {
    Ok(conn
        .query_row(
            "SELECT key_packages_published FROM session WHERE id = 1",
            [],
            |r| r.get(0),
        )
        .optional()?
        // No session: nothing to publish for.
        .unwrap_or(true))
}

/// When this device last replaced all its KeyPackages on the server (ms;
/// 0 never, or no session).
pub(crate) fn key_packages_rotated_at(conn: &Connection) -> Result<i64> {
    Ok(conn
        .query_row(
            "SELECT key_packages_rotated_at FROM session WHERE id = 1",
            [],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(0))
}

pub(crate) fn set_key_packages_rotated_at(conn: &Connection, at: i64) -> Result<()> {
    conn.execute(
        "UPDATE session SET key_packages_rotated_at = ?1 WHERE id = 1",
        [at],
    )?;
    Ok(())
}

pub(crate) fn set_key_packages_published(conn: &Connection, published: bool) -> Result<()> {
    conn.execute(
        "UPDATE session SET key_packages_published = ?1 WHERE id = 1",
        [published],
    )?;
    Ok(())
}

pub(crate) fn set_cursor(conn: &Connection, cursor: u64) -> Result<()> {
    conn.execute(
        "UPDATE session SET cursor = ?1 WHERE id = 1 AND cursor < ?1",
        [cursor as i64],
    )?;
    Ok(())
}

pub(crate) fn set_signed_out(conn: &Connection) -> Result<()> {
    conn.execute("UPDATE session SET signed_out = 1 WHERE id = 1", [])?;
    Ok(())
}

// --- conversations ------------------------------------------------------------

pub(crate) fn insert_conversation(conn: &Connection, c: &Conversation) -> Result<()> {
    conn.execute(
        "INSERT INTO conversations
             (id, title, kind, patient_ref, epoch, active, created_at, leaf_updated_at,
              leaf_activity)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, 0)
         -- Joining a conversation restored from a backup: it becomes active,
         -- with the fresh leaf it joined with.
         ON CONFLICT (id) DO UPDATE SET epoch = excluded.epoch, active = excluded.active,
             leaf_updated_at = excluded.leaf_updated_at, leaf_activity = 0,
             leaf_update_due = 0",
        params![
            c.id,
            c.title,
            c.kind.as_str(),
            c.patient.as_ref().map(PatientRef::as_str),
            c.epoch as i64,
            c.active,
            now_ms()
        ],
    )?;
    Ok(())
}

pub(crate) fn update_details(
    conn: &Connection,
    id: &str,
    title: &str,
    kind: ConversationKind,
    patient: Option<&PatientRef>,
) -> Result<()> {
    conn.execute(
        "UPDATE conversations SET title = ?2, kind = ?3, patient_ref = ?4 WHERE id = ?1",
        params![id, title, kind.as_str(), patient.map(PatientRef::as_str)],
    )?;
    Ok(())
}

pub(crate) fn set_epoch(conn: &Connection, id: &str, epoch: u64, active: bool) -> Result<()> {
    conn.execute(
        "UPDATE conversations SET epoch = ?2, active = ?3 WHERE id = ?1",
        params![id, epoch as i64, active],
    )?;
    Ok(())
}

const CONVERSATION_COLUMNS: &str = "id, title, kind, patient_ref, epoch, active";

fn conversation_from_row(
    r: &Row<'_>,
) -> rusqlite::Result<(String, String, String, Option<String>, i64, bool)> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
    ))
}

fn to_conversation(
    row: (String, String, String, Option<String>, i64, bool),
) -> Result<Conversation> {
    let (id, title, kind, patient, epoch, active) = row;
    Ok(Conversation {
        id,
        title,
        kind: ConversationKind::parse(&kind)?,
        patient: patient.as_deref().map(PatientRef::new).transpose()?,
        epoch: epoch as u64,
        active,
    })
}

pub(crate) fn conversation(conn: &Connection, id: &str) -> Result<Option<Conversation>> {
    conn.query_row(
        &format!("SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = ?1"),
        [id],
        conversation_from_row,
    )
    .optional()?
    .map(to_conversation)
    .transpose()
}

pub(crate) fn conversations(conn: &Connection) -> Result<Vec<Conversation>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {CONVERSATION_COLUMNS} FROM conversations ORDER BY created_at, id"
    ))?;
    let rows = stmt.query_map([], conversation_from_row)?;
    rows.map(|r| to_conversation(r?)).collect()
}

// --- members ---------------------------------------------------------------------

pub(crate) fn replace_members(
    conn: &Connection,
    conversation: &str,
    members: &[Member],
) -> Result<()> {
    conn.execute(
        "DELETE FROM members WHERE conversation_id = ?1",
        [conversation],
    )?;
    let mut stmt = conn.prepare(
        "INSERT INTO members (conversation_id, leaf_index, practice_id, user_id, device_id)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for m in members {
        stmt.execute(params![
            conversation,
            m.leaf_index,
            m.id.practice,
            m.id.user,
            m.id.device
        ])?;
    }
    Ok(())
}

pub(crate) fn members(conn: &Connection, conversation: &str) -> Result<Vec<Member>> {
    let mut stmt = conn.prepare(
        "SELECT leaf_index, practice_id, user_id, device_id FROM members
         WHERE conversation_id = ?1 ORDER BY leaf_index",
    )?;
    let rows = stmt.query_map([conversation], |r| {
        Ok((
            r.get::<_, u32>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
        ))
    })?;
    rows.map(|r| {
        let (leaf_index, p, u, d) = r?;
        Ok(Member {
            id: MemberId::new(&p, &u, &d)?,
            leaf_index,
        })
    })
    .collect()
}

// --- messages ---------------------------------------------------------------------

/// The conversation of the message that carries attachment `blob`.
pub(crate) fn conversation_of_blob(conn: &Connection, blob: &str) -> Result<Option<String>> {
    Ok(conn
        .query_row(
            "SELECT m.conversation_id FROM messages m, json_each(m.attachments) a
             WHERE json_extract(a.value, '$.blob_id') = ?1 LIMIT 1",
            [blob],
            |r| r.get(0),
        )
        .optional()?)
}

/// Stores a message; `false` if a message with its id is already stored.
pub(crate) fn insert_message(conn: &Connection, m: &Message, epoch: u64) -> Result<bool> {
    let attachments = serde_json::to_string(&m.attachments).map_err(record_err)?;
    let inserted = conn.execute(
        "INSERT INTO messages (id, conversation_id, sender_practice, sender_user, sender_device,
                               body, priority, sent_at, received_at, reply_to, attachments, state, epoch,
                               kind, shared, triage, spoed_of_conversation, spoed_of_message, routed_to,
                               expires_at, resent_by_practice, resent_by_user, resent_by_device,
                               spoed_patient)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20,
                 ?21, ?22, ?23, ?24)
         ON CONFLICT (id) DO NOTHING",
        params![
            m.id,
            m.conversation,
            m.sender.practice,
            m.sender.user,
            m.sender.device,
            m.body,
            m.priority.as_str(),
            m.sent_at,
            now_ms(),
            m.reply_to,
            attachments,
            m.state.as_str(),
            epoch as i64,
            m.kind.as_str(),
            // A work note written here is shared with the author's other
            // devices separately; everything else went out with its envelope.
            !(m.kind == MessageKind::Werkaantekening && m.state == MessageState::Pending),
            m.triage.map(Triage::as_str),
            m.spoed.as_ref().map(|s| s.of_conversation.as_str()),
            m.spoed.as_ref().map(|s| s.of_message.as_str()),
            m.spoed.as_ref().and_then(|s| s.routed_to.as_deref()),
            m.expires_at,
            m.resent_by.as_ref().map(|r| r.practice.as_str()),
            m.resent_by.as_ref().map(|r| r.user.as_str()),
            m.resent_by.as_ref().map(|r| r.device.as_str()),
            m.spoed
                .as_ref()
                .and_then(|s| s.patient.as_ref())
                .map(PatientRef::as_str),
        ],
    )?;
    Ok(inserted == 1)
}

pub(crate) fn set_message_state(conn: &Connection, id: &str, state: MessageState) -> Result<()> {
    let changed = conn.execute(
        "UPDATE messages SET state = ?2 WHERE id = ?1",
        params![id, state.as_str()],
    )?;
    if changed == 0 {
        return Err(Error::NotFound { what: "message" });
    }
    Ok(())
}

const MESSAGE_COLUMNS: &str =
    "m.id, m.conversation_id, m.sender_practice, m.sender_user, m.sender_device,
     m.body, m.priority, m.sent_at, m.reply_to, m.attachments, m.state, m.kind,
     m.triage, m.spoed_of_conversation, m.spoed_of_message, m.routed_to, m.taken_by,
     m.doc_state, m.doc_detail, m.expires_at, m.expired,
     m.resent_by_practice, m.resent_by_user, m.resent_by_device, m.spoed_patient";

/// A message row as read; checked into a [`Message`] by [`to_message`].
struct MessageRow {
    id: String,
    conversation: String,
    sender: (String, String, String),
    body: String,
    priority: String,
    sent_at: i64,
    reply_to: Option<String>,
    attachments: String,
    state: String,
    kind: String,
    triage: Option<String>,
    spoed: Option<(String, String, Option<String>, Option<String>)>,
    spoed_patient: Option<String>,
    documentation: Option<(String, Option<String>)>,
    expires_at: Option<i64>,
    expired: bool,
    resent_by: Option<(String, String, String)>,
}

fn message_from_row(r: &Row<'_>) -> rusqlite::Result<MessageRow> {
    Ok(MessageRow {
        id: r.get(0)?,
        conversation: r.get(1)?,
        sender: (r.get(2)?, r.get(3)?, r.get(4)?),
        body: r.get(5)?,
        priority: r.get(6)?,
        sent_at: r.get(7)?,
        reply_to: r.get(8)?,
        attachments: r.get(9)?,
        state: r.get(10)?,
        kind: r.get(11)?,
        triage: r.get(12)?,
        spoed: match (
            r.get::<_, Option<String>>(13)?,
            r.get::<_, Option<String>>(14)?,
        ) {
            (Some(c), Some(m)) => Some((c, m, r.get(15)?, r.get(16)?)),
            _ => None,
        },
        spoed_patient: r.get(24)?,
        documentation: r
            .get::<_, Option<String>>(17)?
            .map(|state| Ok::<_, rusqlite::Error>((state, r.get(18)?)))
            .transpose()?,
        expires_at: r.get(19)?,
        expired: r.get(20)?,
        resent_by: match (
            r.get::<_, Option<String>>(21)?,
            r.get::<_, Option<String>>(22)?,
            r.get::<_, Option<String>>(23)?,
        ) {
            (Some(p), Some(u), Some(d)) => Some((p, u, d)),
            _ => None,
        },
    })
}

fn to_message(row: MessageRow) -> Result<Message> {
    let attachments: Vec<AttachmentRef> =
        serde_json::from_str(&row.attachments).map_err(record_err)?;
    let (practice, user, device) = row.sender;
    Ok(Message {
        id: row.id,
        conversation: row.conversation,
        sender: MemberId::new(&practice, &user, &device)?,
        body: row.body,
        priority: Priority::parse(&row.priority)?,
        sent_at: row.sent_at,
        reply_to: row.reply_to,
        attachments,
        state: MessageState::parse(&row.state)?,
        kind: MessageKind::parse(&row.kind)?,
        triage: row.triage.as_deref().map(Triage::parse).transpose()?,
        spoed: row.spoed.map(
            |(of_conversation, of_message, routed_to, taken_by)| SpoedPost {
                of_conversation,
                of_message,
                routed_to,
                taken_by,
                patient: row
                    .spoed_patient
                    .as_deref()
                    .and_then(|p| PatientRef::new(p).ok()),
            },
        ),
        documentation: row
            .documentation
            .map(|(state, detail)| {
                Ok::<_, Error>(DocProgress {
                    state: DocState::parse(&state)?,
                    detail,
                })
            })
            .transpose()?,
        expires_at: row.expires_at,
        expired: row.expired,
        resent_by: row
            .resent_by
            .map(|(p, u, d)| MemberId::new(&p, &u, &d))
            .transpose()?,
    })
}

pub(crate) fn message(conn: &Connection, id: &str) -> Result<Option<Message>> {
    conn.query_row(
        &format!("SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.id = ?1"),
        [id],
        message_from_row,
    )
    .optional()?
    .map(to_message)
    .transpose()
}

/// Marks messages from others in a conversation as read, up to and with
/// `message` in the order they are shown (sent time, then arrival).
pub(crate) fn mark_read(
    conn: &Connection,
    conversation: &str,
    message: &str,
    at: i64,
) -> Result<Vec<String>> {
    let (sent_at, seq): (i64, i64) = conn
        .query_row(
            "SELECT sent_at, seq FROM messages WHERE id = ?1 AND conversation_id = ?2",
            params![message, conversation],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?
        .ok_or(Error::NotFound { what: "message" })?;
    let mut stmt = conn.prepare_cached(
        "UPDATE messages SET read_at = ?4
         WHERE conversation_id = ?1 AND read_at IS NULL AND state = 'received'
           AND (sent_at < ?2 OR (sent_at = ?2 AND seq <= ?3))
         RETURNING id",
    )?;
    let rows = stmt.query_map(params![conversation, sent_at, seq, at], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<Vec<String>>>()?)
}

/// Unread urgent messages from others, newest first.
pub(crate) fn unread_urgent(conn: &Connection) -> Result<Vec<Message>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages m
         WHERE m.read_at IS NULL AND m.state = 'received' AND m.priority = 'urgent'
           AND m.kind <> 'werkaantekening'
         ORDER BY m.sent_at DESC LIMIT 200"
    ))?;
    let rows = stmt.query_map([], message_from_row)?;
    rows.map(|r| to_message(r?)).collect()
}

/// Per conversation with unread messages from others: (id, how many, the
/// newest's time), newest first.
pub(crate) fn unread_counts(conn: &Connection) -> Result<Vec<(String, u32, i64)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT conversation_id, count(*), max(sent_at) FROM messages
         WHERE read_at IS NULL AND state = 'received' AND kind <> 'werkaantekening'
         GROUP BY conversation_id ORDER BY max(sent_at) DESC",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// My messages for the record that are not documented yet, oldest first.
pub(crate) fn to_document(conn: &Connection, me: &str) -> Result<Vec<Message>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages m
         WHERE m.kind = 'documenteer' AND m.sender_user = ?1
           AND (m.doc_state IS NULL OR m.doc_state <> 'documented')
         ORDER BY m.sent_at"
    ))?;
    let rows = stmt.query_map([me], message_from_row)?;
    rows.map(|r| to_message(r?)).collect()
}

/// A spoed post was taken; the first to take it counts. Returns whether
/// this take was the first.
pub(crate) fn take_spoed(conn: &Connection, message: &str, by: &str) -> Result<bool> {
    Ok(conn.execute(
        "UPDATE messages SET taken_by = ?2 WHERE id = ?1 AND spoed_of_message IS NOT NULL AND taken_by IS NULL",
        params![message, by],
    )? == 1)
}

/// Spoed posts nobody took yet, newest first.
pub(crate) fn untaken_spoed(conn: &Connection) -> Result<Vec<Message>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages m
         WHERE m.spoed_of_message IS NOT NULL AND m.taken_by IS NULL
         ORDER BY m.sent_at DESC LIMIT 200"
    ))?;
    let rows = stmt.query_map([], message_from_row)?;
    rows.map(|r| to_message(r?)).collect()
}

/// Work notes written here and not yet queued for the author's devices.
pub(crate) fn unshared_notes(conn: &Connection) -> Result<Vec<Message>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.shared = 0 ORDER BY m.seq"
    ))?;
    let rows = stmt.query_map([], message_from_row)?;
    rows.map(|r| to_message(r?)).collect()
}

/// A work note was queued for the author's devices.
pub(crate) fn set_shared(conn: &Connection, id: &str) -> Result<()> {
    conn.execute("UPDATE messages SET shared = 1 WHERE id = ?1", [id])?;
    Ok(())
}

/// The `limit` newest messages of a conversation, oldest first.
pub(crate) fn recent_messages(
    conn: &Connection,
    conversation: &str,
    limit: u32,
) -> Result<Vec<Message>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.conversation_id = ?1
         ORDER BY m.sent_at DESC, m.seq DESC LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![conversation, limit], message_from_row)?;
    let mut out = rows.map(|r| to_message(r?)).collect::<Result<Vec<_>>>()?;
    out.reverse();
    Ok(out)
}

/// The `limit` messages of a conversation just before message `before`
/// (in the order messages are shown), oldest first: paging back.
pub(crate) fn messages_before(
    conn: &Connection,
    conversation: &str,
    before: &str,
    limit: u32,
) -> Result<Vec<Message>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages m, messages b
         WHERE b.id = ?2 AND b.conversation_id = ?1 AND m.conversation_id = ?1
           AND (m.sent_at, m.seq) < (b.sent_at, b.seq)
         ORDER BY m.sent_at DESC, m.seq DESC LIMIT ?3"
    ))?;
    let rows = stmt.query_map(params![conversation, before, limit], message_from_row)?;
    let mut out = rows.map(|r| to_message(r?)).collect::<Result<Vec<_>>>()?;
    out.reverse();
    Ok(out)
}

/// Messages whose body matches every word of `query` (word prefixes count),
/// best match first.
pub(crate) fn search(conn: &Connection, query: &str, limit: u32) -> Result<Vec<Message>> {
    let Some(fts_query) = fts_query(query) else {
        return Err(Error::invalid("query", "no words to search for"));
    };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages_fts f JOIN messages m ON m.seq = f.rowid
         WHERE messages_fts MATCH ?1 ORDER BY f.rank LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![fts_query, limit], message_from_row)?;
    rows.map(|r| to_message(r?)).collect()
}

/// Turns user input into an FTS5 query of quoted prefix terms, so no input
/// can be FTS syntax.
fn fts_query(input: &str) -> Option<String> {
    let terms: Vec<String> = input
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| format!("\"{w}\"*"))
        .collect();
    (!terms.is_empty()).then(|| terms.join(" "))
}

// --- outbox -------------------------------------------------------------------------

/// Queues an envelope with how it is to be delivered.
pub(crate) fn push_outbox(conn: &Connection, out: &Outgoing) -> Result<i64> {
    let add = serde_json::to_string(&out.add_devices).map_err(record_err)?;
    let remove = serde_json::to_string(&out.remove_devices).map_err(record_err)?;
    let d = &out.delivery;
    conn.execute(
        "INSERT INTO outbox (conversation_id, kind, message_id, epoch, payload, welcome,
                             add_devices, remove_devices, created_at, priority, urgent_for,
                             expires_at, patient, patient_pending)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        params![
            out.conversation,
            match out.kind {
                OutgoingKind::Application => "application",
                OutgoingKind::Commit => "commit",
            },
            out.id,
            out.epoch as i64,
            out.payload,
            out.welcome,
            add,
            remove,
            now_ms(),
            d.priority.map(Priority::as_str),
            d.urgent_for,
            d.expires_at,
            d.patient,
            d.patient_pending,
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// The oldest `limit` queued envelopes (all with `None`), oldest first.
pub(crate) fn outbox(conn: &Connection, limit: Option<u32>) -> Result<Vec<Outgoing>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, conversation_id, kind, message_id, epoch, payload, welcome, add_devices,
                remove_devices, priority, urgent_for, expires_at, patient, patient_pending
         FROM outbox ORDER BY id LIMIT ?1",
    )?;
    // SQLite reads a negative limit as "no limit".
    let limit = limit.map_or(-1, i64::from);
    let rows = stmt.query_map([limit], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, Option<String>>(3)?,
            r.get::<_, i64>(4)?,
            r.get::<_, Vec<u8>>(5)?,
            r.get::<_, Option<Vec<u8>>>(6)?,
            r.get::<_, String>(7)?,
            r.get::<_, String>(8)?,
            r.get::<_, Option<String>>(9)?,
            r.get::<_, Option<String>>(10)?,
            r.get::<_, Option<i64>>(11)?,
            r.get::<_, Option<String>>(12)?,
            r.get::<_, bool>(13)?,
        ))
    })?;
    rows.map(|row| {
        let (
            rowid,
            conversation,
            kind,
            message_id,
            epoch,
            payload,
            welcome,
            add,
            remove,
            priority,
            urgent_for,
            expires_at,
            patient,
            patient_pending,
        ) = row?;
        Ok(Outgoing {
            id: message_id.unwrap_or_else(|| rowid.to_string()),
            conversation,
            kind: if kind == "commit" {
                OutgoingKind::Commit
            } else {
                OutgoingKind::Application
            },
            epoch: epoch as u64,
            payload,
            welcome,
            add_devices: serde_json::from_str(&add).map_err(record_err)?,
            remove_devices: serde_json::from_str(&remove).map_err(record_err)?,
            delivery: Delivery {
                priority: priority.as_deref().map(Priority::parse).transpose()?,
                urgent_for,
                expires_at,
                patient,
                patient_pending,
            },
        })
    })
    .collect()
}

pub(crate) fn remove_message_from_outbox(conn: &Connection, message_id: &str) -> Result<()> {
    conn.execute("DELETE FROM outbox WHERE message_id = ?1", [message_id])?;
    Ok(())
}

pub(crate) fn remove_commit_from_outbox(conn: &Connection, conversation: &str) -> Result<()> {
    conn.execute(
        "DELETE FROM outbox WHERE conversation_id = ?1 AND kind = 'commit'",
        [conversation],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_input_cannot_be_fts_syntax() {
        assert_eq!(
            fts_query("bloed* NEAR(druk) \"x"),
            Some("\"bloed\"* \"NEAR\"* \"druk\"* \"x\"*".into())
        );
        assert_eq!(fts_query(" -- "), None);
    }
}
