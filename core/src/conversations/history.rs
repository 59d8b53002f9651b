//! History for a new device: when a user enrols another device and
//! approves it on one they have (the code on both screens), their devices
//! add it to their conversations and send it, end-to-end through the
//! user's personal group, the newest messages of each (as many as the
//! practice allows).

use openmls::prelude::OpenMlsProvider;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::device::{Device, KnownGroup, Received};
use crate::{
    error::{Error, Result},
    identity::MemberId,
    model::{AttachmentRef, Content, Message, MessageKind, MessageState, Priority},
    store::{StoreError, queries},
};

/// One message of the history, as it travels.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct HistoryMessage {
    id: String,
    sender_practice: String,
    sender_user: String,
    sender_device: String,
    body: String,
    priority: Priority,
    sent_at: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    attachments: Vec<AttachmentRef>,
    #[serde(default, skip_serializing_if = "MessageKind::is_overleg")]
    kind: MessageKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<i64>,
}

impl HistoryMessage {
    /// A stored message as history.
    pub(crate) fn from_message(m: Message) -> Self {
        Self {
            id: m.id,
            sender_practice: m.sender.practice,
            sender_user: m.sender.user,
            sender_device: m.sender.device,
            body: m.body,
            priority: m.priority,
            sent_at: m.sent_at,
            attachments: m.attachments,
            kind: m.kind,
            expires_at: m.expires_at,
        }
    }
}

/// How long after asking to be added again a device takes history sent
/// into the conversation.
const HEAL_HISTORY_WINDOW_MS: i64 = 24 * 60 * 60 * 1000;

/// Most messages in one history envelope.
const PER_ENVELOPE: usize = 100;

impl Device {
    /// Queues the newest `per_conversation` messages of each of
    /// `conversations` for this user's other devices (the personal group).
    /// Returns how many messages were queued; none when this device is not
    /// in the personal group yet.
    pub(crate) fn share_history(
        &self,
        conversations: &[String],
        per_conversation: u32,
    ) -> Result<usize> {
        let now = queries::now_ms();
        let queued = self.queue_in(KnownGroup::Personal, |s, group| {
            let mut count = 0;
            for conversation in conversations {
                let messages: Vec<HistoryMessage> =
                    queries::recent_messages(s.conn(), conversation, per_conversation)?
                        .into_iter()
                        .filter(|m| !m.expired && m.expires_at.is_none_or(|at| at > now))
                        .filter(|m| m.state != MessageState::Pending)
                        .map(HistoryMessage::from_message)
                        .collect();
                for chunk in messages.chunks(PER_ENVELOPE) {
                    let content = Content::History {
                        conversation: conversation.clone(),
                        messages: chunk.to_vec(),
                    };
                    let id = uuid::Uuid::new_v4().to_string();
                    self.encrypt(s, group, &id, &content)?;
                    count += chunk.len();
                }
            }
            Ok(count)
        })?;
        Ok(queued.unwrap_or_default())
    }

    /// Queues the newest `per_conversation` messages of a conversation in
    /// the conversation itself, for a member device that was added again
    /// after it fell behind (the others already have them and skip them).
    pub(crate) fn share_history_in(
        &self,
        conversation: &str,
        per_conversation: u32,
    ) -> Result<usize> {
        if per_conversation == 0 {
            return Ok(0);
        }
        let now = queries::now_ms();
        self.transact(|s| {
            let messages: Vec<HistoryMessage> =
                queries::recent_messages(s.conn(), conversation, per_conversation)?
                    .into_iter()
                    .filter(|m| !m.expired && m.expires_at.is_none_or(|at| at > now))
                    .filter(|m| {
                        m.state != MessageState::Pending && m.kind != MessageKind::Werkaantekening
                    })
                    .map(HistoryMessage::from_message)
                    .collect();
            for chunk in messages.chunks(PER_ENVELOPE) {
                let content = Content::History {
                    conversation: conversation.to_owned(),
                    messages: chunk.to_vec(),
                };
                let id = uuid::Uuid::new_v4().to_string();
                self.encrypt(s, conversation, &id, &content)?;
            }
            Ok(messages.len())
        })
    }

    /// Stores history from another device of this user, in the personal
    /// group, for a conversation this device is in; what it has already
    /// stays as it is. History counts as read.
    pub(crate) fn apply_history(
        &self,
        conn: &Connection,
        group: &str,
        sender: &MemberId,
        conversation: &str,
        messages: &[HistoryMessage],
    ) -> Result<Received> {
        // From this user's devices in their personal group, or from any
        // member in the conversation itself (after this device was re-added).
        let own = group == self.known_group_id(KnownGroup::Personal) && sender.user == self.me.user;
        if !own && group != conversation {
            return Err(Error::invalid("message", "history from elsewhere"));
        }
        // In the conversation itself only when this device asked to be
        // added again, lately: otherwise a member could slip back-dated,
        // already-read messages "from" anyone into everyone's view.
        if !own {
            let asked: Option<i64> = conn
                .query_row(
                    "SELECT asked_at FROM heal_asks WHERE conversation_id = ?1",
                    [conversation],
                    |r| r.get(0),
                )
                .optional()
                .map_err(StoreError::from)?;
            if asked.is_none_or(|at| queries::now_ms() - at >= HEAL_HISTORY_WINDOW_MS) {
                return Err(Error::Refused {
                    reason: crate::error::Refusal::Unasked,
                });
            }
        }
        if !queries::conversation(conn, conversation)?.is_some_and(|c| c.active) {
            // Not (yet) in it: nothing to show the history in.
            return Ok(Received::Own);
        }
        // Healing history shows who re-sent it; the user's own devices'
        // history is their own word.
        let resent_by = (!own).then(|| sender.clone());
        let added = insert_history(conn, &self.me, conversation, messages, resent_by.as_ref())?;
        Ok(Received::History {
            conversation: conversation.to_owned(),
            added,
        })
    }
}

impl Device {
    /// Puts a conversation from a backup back on this device: readable, not
    /// active until a member adds this device (its MLS group comes then).
    pub(crate) fn restore_conversation(
        &self,
        id: &str,
        title: &str,
        kind: crate::model::ConversationKind,
        patient: Option<&crate::model::PatientRef>,
        messages: &[HistoryMessage],
    ) -> Result<usize> {
        self.store.write(|tx| {
            if queries::conversation(tx, id)?.is_none() {
                queries::insert_conversation(
                    tx,
                    &crate::model::Conversation {
                        id: id.to_owned(),
                        title: title.to_owned(),
                        kind,
                        patient: patient.cloned(),
                        epoch: 0,
                        active: false,
                    },
                )?;
            }
            insert_history(tx, &self.me, id, messages, None)
        })
    }
}

/// Stores history messages in a conversation (what is there stays);
/// returns how many were new. History counts as read.
fn insert_history(
    conn: &Connection,
    me: &MemberId,
    conversation: &str,
    messages: &[HistoryMessage],
    resent_by: Option<&MemberId>,
) -> Result<usize> {
    let now = queries::now_ms();
    let mut added = 0;
    for h in messages {
        if h.expires_at.is_some_and(|at| at <= now) {
            continue;
        }
        let message = Message {
            id: h.id.clone(),
            conversation: conversation.to_owned(),
            sender: MemberId::new(&h.sender_practice, &h.sender_user, &h.sender_device)?,
            body: h.body.clone(),
            priority: h.priority,
            sent_at: h.sent_at,
            reply_to: None,
            attachments: h.attachments.clone(),
            state: if h.sender_user == me.user {
                MessageState::Sent
            } else {
                MessageState::Received
            },
            kind: h.kind,
            triage: None,
            spoed: None,
            documentation: None,
            expires_at: h.expires_at,
            expired: false,
            resent_by: resent_by.cloned(),
        };
        if queries::insert_message(conn, &message, 0)? {
            conn.execute(
                "UPDATE messages SET read_at = ?2 WHERE id = ?1",
                params![message.id, now],
            )
            .map_err(StoreError::from)?;
            added += 1;
        }
    }
    Ok(added)
}

impl Device {
    /// Drops this device's MLS state of a conversation it fell behind in
    /// (it cannot decrypt with it any more), so that the Welcome of the
    /// member who adds it again can take its place.
    pub(crate) fn forget_stale_group(&self, conversation: &str) -> Result<()> {
        self.transact(|s| {
            s.groups.remove(conversation);
            if let Ok(mut stale) = crate::mls::load_group(&s.provider, conversation) {
                stale.delete(s.provider.storage()).map_err(Error::from)?;
            }
            // The member who adds it again sends the history it missed.
            s.conn().execute(
                "INSERT INTO heal_asks (conversation_id, asked_at) VALUES (?1, ?2)
                 ON CONFLICT (conversation_id) DO UPDATE SET asked_at = ?2",
                params![conversation, queries::now_ms()],
            )?;
            Ok(())
        })
    }
}
