//! The clinical message model: conversations, members, messages, and the
//! payload that travels encrypted inside MLS application messages.

use serde::{Deserialize, Serialize};

use crate::{
    error::{Error, Result},
    identity::MemberId,
};

/// What a conversation is for.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
)]
#[strum(serialize_all = "snake_case")]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum ConversationKind {
    /// Two people.
    Direct,
    /// A team or topic.
    Group,
    /// The staff on duty for urgent matters.
    Spoed,
    /// The practice group: all staff devices, carrying practice-wide data
    /// (roster, consent); not a chat.
    Practice,
    /// One user's own devices: work notes and what they documented.
    Personal,
}

named!(ConversationKind, "kind");

/// The HIS reference of the patient a conversation is about.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PatientRef(String);

// To Kotlin and Swift as text; what comes back is checked like any input.
#[cfg(feature = "uniffi")]
uniffi::custom_type!(PatientRef, String, {
    lower: |patient| patient.0,
    try_lift: |text| Ok(PatientRef::new(&text)?),
});

impl PatientRef {
    /// Takes a HIS patient reference (1 to 128 printable characters).
    pub fn new(reference: &str) -> Result<Self> {
        let trimmed = reference.trim();
        if trimmed.is_empty() || trimmed.len() > 128 {
            return Err(Error::invalid("patient", "must be 1 to 128 characters"));
        }
        if trimmed.chars().any(char::is_control) {
            return Err(Error::invalid("patient", "control characters"));
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The reference as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How urgent a message is.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
)]
#[strum(serialize_all = "snake_case")]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum Priority {
    /// Ordinary.
    Routine,
    /// Wakes the recipients' phones.
    Urgent,
}

named!(Priority, "priority");

/// What a message in a patient conversation is for, chosen by its author.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
)]
#[strum(serialize_all = "snake_case")]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum MessageKind {
    /// Discussion: stays in the chat, follows the retention rules.
    #[default]
    Overleg,
    /// To be documented into the patient's record.
    Documenteer,
    /// A personal work note: only on its author's own devices, never
    /// shared, exported or shown to anyone else.
    Werkaantekening,
}

named!(MessageKind, "kind");

impl MessageKind {
    pub(crate) fn is_overleg(&self) -> bool {
        *self == Self::Overleg
    }
}

/// Where a message is on its way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, strum::IntoStaticStr, strum::EnumString)]
#[strum(serialize_all = "snake_case")]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum MessageState {
    /// Written on this device, not yet accepted by the server.
    Pending,
    /// Accepted by the server.
    Sent,
    /// Delivered to a recipient device.
    Delivered,
    /// Read by a recipient.
    Read,
    /// Received from another device.
    Received,
}

named!(MessageState, "state");

/// A conversation as this device knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct Conversation {
    /// Its id; also the MLS group id.
    pub id: String,
    /// Its title (empty until the conversation's details arrive after a join).
    pub title: String,
    /// What it is for.
    pub kind: ConversationKind,
    /// The patient it is about, if any.
    pub patient: Option<PatientRef>,
    /// The MLS epoch this device is in.
    pub epoch: u64,
    /// False once this device was removed from it.
    pub active: bool,
}

/// A member device of a conversation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Who the device is.
    pub id: MemberId,
    /// Its position in the MLS tree.
    pub leaf_index: u32,
}

/// A reference to an encrypted attachment: where its blob is and how to open it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentRef {
    /// The id under which the server keeps the sealed blob.
    pub blob_id: String,
    /// The file name shown to the user.
    pub name: String,
    /// Its media type.
    pub mime_type: String,
    /// The key, digest and size needed to open the blob.
    pub key: crate::attachments::AttachmentKey,
}

/// A message to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewMessage {
    /// The text.
    pub body: String,
    /// Routine or urgent.
    pub priority: Priority,
    /// The message this one answers.
    pub reply_to: Option<String>,
    /// Sealed attachments already uploaded.
    pub attachments: Vec<AttachmentRef>,
    /// Discussion (the default), for the record, or a work note.
    pub kind: MessageKind,
    /// NTS triage urgency; U1 and U2 make it spoed (urgent, and posted in
    /// the spoed channel).
    pub triage: Option<crate::spoed::Triage>,
    /// A disappearing message: its time-to-live in seconds (none: the
    /// conversation's, if it has one; the practice may forbid or enforce).
    pub ttl_secs: Option<u64>,
}

impl NewMessage {
    /// A routine text message.
    pub fn text(body: impl Into<String>) -> Self {
        Self {
            body: body.into(),
            priority: Priority::Routine,
            reply_to: None,
            attachments: Vec::new(),
            kind: MessageKind::Overleg,
            triage: None,
            ttl_secs: None,
        }
    }

    /// This message disappears `secs` seconds after it was sent.
    pub fn disappearing(self, secs: u64) -> Self {
        Self {
            ttl_secs: Some(secs),
            ..self
        }
    }

    /// A message with an NTS triage urgency (U1/U2: spoed).
    pub fn triaged(body: impl Into<String>, triage: crate::spoed::Triage) -> Self {
        let priority = if triage.is_spoed() {
            Priority::Urgent
        } else {
            Priority::Routine
        };
        Self {
            priority,
            triage: Some(triage),
            ..Self::text(body)
        }
    }

    /// A work note: stays on this user's devices.
    pub fn note(body: impl Into<String>) -> Self {
        Self {
            kind: MessageKind::Werkaantekening,
            ..Self::text(body)
        }
    }

    /// A message meant for the patient's record.
    pub fn for_record(body: impl Into<String>) -> Self {
        Self {
            kind: MessageKind::Documenteer,
            ..Self::text(body)
        }
    }

    /// An urgent text message.
    pub fn urgent(body: impl Into<String>) -> Self {
        Self {
            priority: Priority::Urgent,
            ..Self::text(body)
        }
    }
}

/// A message as stored on this device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The client-generated unique id.
    pub id: String,
    /// The conversation it belongs to.
    pub conversation: String,
    /// The sending user and device, as authenticated by MLS.
    pub sender: MemberId,
    /// The text.
    pub body: String,
    /// Routine or urgent.
    pub priority: Priority,
    /// When the sender sent it (milliseconds since the Unix epoch).
    pub sent_at: i64,
    /// The message this one answers.
    pub reply_to: Option<String>,
    /// Its attachments.
    pub attachments: Vec<AttachmentRef>,
    /// Where it is on its way.
    pub state: MessageState,
    /// Discussion, for the record, or a work note.
    pub kind: MessageKind,
    /// NTS triage urgency, if given.
    pub triage: Option<crate::spoed::Triage>,
    /// For a post in the spoed channel: what it repeats, who it went to,
    /// who took it.
    pub spoed: Option<SpoedPost>,
    /// Where it is on its way into the record (none: not documented).
    pub documentation: Option<crate::record::DocProgress>,
    /// A disappearing message: when it goes (ms since the Unix epoch).
    pub expires_at: Option<i64>,
    /// It went: this is the "message expired" marker, without content.
    pub expired: bool,
    /// History a member re-sent to heal this device: who re-sent it. Show
    /// it as "re-sent by" them: the sender above is their word for it.
    pub resent_by: Option<MemberId>,
}

/// A post in the spoed channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpoedPost {
    /// The conversation of the message it repeats.
    pub of_conversation: String,
    /// That message.
    pub of_message: String,
    /// Who it was routed to (none: everyone).
    pub routed_to: Option<String>,
    /// Who took it ("ik pak het op").
    #[serde(skip)]
    pub taken_by: Option<String>,
    /// The patient of the conversation it repeats, if any: showing the
    /// post is an access to them (absent from older apps' posts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<PatientRef>,
}

/// The most a message body may hold.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

impl Message {
    /// The one way between a message and the content that carries it:
    /// what a `Content::Text` in `conversation` from the (MLS-verified)
    /// `sender` makes here. Who took a spoed post is this device's own
    /// knowledge, never the sender's claim.
    pub(crate) fn from_content(
        content: Content,
        conversation: &str,
        sender: MemberId,
        state: MessageState,
    ) -> Result<Message> {
        let Content::Text {
            id,
            body,
            priority,
            sent_at,
            reply_to,
            attachments,
            kind,
            triage,
            spoed,
            expires_at,
        } = content
        else {
            return Err(Error::invalid("message", "not a message"));
        };
        Ok(Message {
            id,
            conversation: conversation.to_owned(),
            sender,
            body,
            priority,
            sent_at,
            reply_to,
            attachments,
            state,
            kind,
            triage,
            spoed: spoed.map(|p| SpoedPost {
                taken_by: None,
                // Checked like any reference from outside.
                patient: p.patient.and_then(|r| PatientRef::new(r.as_str()).ok()),
                ..p
            }),
            documentation: None,
            expires_at,
            expired: false,
            resent_by: None,
        })
    }

    /// A work note (its author's own, never in the conversation) about
    /// `conversation`.
    pub(crate) fn note(
        id: String,
        conversation: String,
        author: MemberId,
        body: String,
        sent_at: i64,
        state: MessageState,
    ) -> Message {
        Message {
            id,
            conversation,
            sender: author,
            body,
            priority: Priority::Routine,
            sent_at,
            reply_to: None,
            attachments: Vec::new(),
            state,
            kind: MessageKind::Werkaantekening,
            triage: None,
            spoed: None,
            documentation: None,
            expires_at: None,
            expired: false,
            resent_by: None,
        }
    }

    /// What a member sees for content a newer app made: the kind is
    /// unknown here, so it is shown as a placeholder, never as tampering.
    pub(crate) fn unsupported(conversation: String, sender: MemberId, sent_at: i64) -> Message {
        Message {
            id: format!("unsupported-{}", uuid::Uuid::new_v4()),
            conversation,
            sender,
            body: UNSUPPORTED_BODY.to_owned(),
            priority: Priority::Routine,
            sent_at,
            reply_to: None,
            attachments: Vec::new(),
            state: MessageState::Received,
            kind: MessageKind::Overleg,
            triage: None,
            spoed: None,
            documentation: None,
            expires_at: None,
            expired: false,
            resent_by: None,
        }
    }

    /// The content that carries this message to the other members.
    pub(crate) fn to_content(&self) -> Content {
        Content::Text {
            id: self.id.clone(),
            body: self.body.clone(),
            priority: self.priority,
            sent_at: self.sent_at,
            reply_to: self.reply_to.clone(),
            attachments: self.attachments.clone(),
            kind: self.kind,
            triage: self.triage,
            spoed: self.spoed.clone(),
            expires_at: self.expires_at,
        }
    }
}

/// What an MLS application message carries, serialized as JSON inside the
/// encryption. The sender is not in here: MLS authenticates it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Content {
    /// A text message.
    Text {
        id: String,
        body: String,
        priority: Priority,
        sent_at: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_to: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        attachments: Vec<AttachmentRef>,
        #[serde(default, skip_serializing_if = "MessageKind::is_overleg")]
        kind: MessageKind,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        triage: Option<crate::spoed::Triage>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        spoed: Option<SpoedPost>,
        /// A disappearing message: when it goes (ms).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires_at: Option<i64>,
    },
    /// Delivered or read receipts for messages of the conversation.
    Receipt {
        messages: Vec<String>,
        read: bool,
        at: i64,
    },
    /// The practice's pseudonym key for the audit trail (practice group
    /// only); `seq` where the server first took it, when shared again.
    PracticeKey {
        id: String,
        #[serde(with = "hex_key")]
        key: Vec<u8>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seq: Option<u64>,
    },
    /// Recent messages of a conversation for this user's new device (in
    /// the user's personal group only).
    History {
        conversation: String,
        messages: Vec<crate::conversations::history::HistoryMessage>,
    },
    /// On a patient's request, every device removes the chat content about
    /// them (practice group only).
    Erase {
        request: String,
        patient: PatientRef,
    },
    /// "Ik pak het op": a member takes a spoed post.
    SpoedTaken { message: String },
    /// A spoed-channel setting: the duty roster or do-not-disturb.
    SpoedSetting(crate::spoed::SpoedSetting),
    /// A work note, in the author's personal group, for a conversation.
    Note {
        conversation: String,
        id: String,
        body: String,
        sent_at: i64,
    },
    /// The conversation's details, sent to members after they join.
    Details {
        title: String,
        kind: ConversationKind,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        patient: Option<PatientRef>,
        /// The time-to-live of new messages (seconds).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ttl_secs: Option<u64>,
    },
    /// Roster and consent changes, in the practice group.
    Practice(crate::consent::log::PracticeBatch),
    /// A task change, in the task's conversation.
    Task(crate::tasks::TaskChange),
    /// A documentation item for the record (the connector delivers it).
    Document(crate::record::DocItem),
    /// Where a documentation item now stands.
    DocStatus {
        item: String,
        state: crate::record::DocState,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    /// A failed documentation item goes again.
    DocRetry { item: String },
    /// The sender's user's recovery key (Ed25519 public key), derived from
    /// the recovery code of their backup; it vouches for a device that
    /// restores the backup. Taken from the practice group only, for the
    /// sender's own user.
    RecoveryKey {
        #[serde(with = "hex_key")]
        public_key: Vec<u8>,
    },
    /// The head of the practice's audit chain, signed by its authority, as
    /// a manager's device fetched it: an anchor every device keeps. Taken
    /// from the practice group only, from a manager.
    AuditAnchor {
        seq: u64,
        hash: String,
        at: i64,
        #[serde(with = "hex_key")]
        signature: Vec<u8>,
    },
    /// Content this version cannot read: made by a newer app. Only ever
    /// decoded (see [`Content::from_bytes`]), never sent.
    #[serde(skip)]
    Unsupported { kind: String, sent_at: Option<i64> },
}

/// A key as hex in the JSON content.
mod hex_key {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        hex::decode(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl Content {
    pub(crate) fn to_bytes(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self).map_err(|e| Error::internal("encoding content", e))
    }

    /// Decodes decrypted content. A JSON object with a `type` this version
    /// cannot read (a new kind, or a new value in a known one) was made by
    /// a newer app: it becomes [`Content::Unsupported`]. Anything else that
    /// fails to parse is refused as tampered.
    pub(crate) fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let error = match serde_json::from_slice(bytes) {
            Ok(content) => return Ok(content),
            Err(e) => e,
        };
        let serde_json::Value::Object(object) =
            serde_json::from_slice(bytes).map_err(|_| Error::Tampered)?
        else {
            return Err(Error::Tampered);
        };
        let Some(kind) = object.get("type").and_then(|t| t.as_str()) else {
            return Err(Error::Tampered);
        };
        tracing::info!(kind, %error, "content this version cannot read");
        Ok(Content::Unsupported {
            kind: kind.chars().take(64).collect(),
            sent_at: object.get("sent_at").and_then(|t| t.as_i64()),
        })
    }
}

/// The body of a message a newer app made, shown in its place.
pub const UNSUPPORTED_BODY: &str =
    "Dit bericht vraagt een nieuwere versie van Pieper: werk de app bij om het te zien.";

pub(crate) fn validate_new_message(message: &NewMessage) -> Result<()> {
    if message.body.trim().is_empty() && message.attachments.is_empty() {
        return Err(Error::invalid("body", "empty message"));
    }
    if message.body.len() > MAX_BODY_BYTES {
        return Err(Error::invalid("body", "longer than 64 KiB"));
    }
    Ok(())
}

pub(crate) fn validate_title(title: &str) -> Result<()> {
    if title.trim().is_empty() || title.len() > 200 {
        return Err(Error::invalid("title", "must be 1 to 200 characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Locks the encrypted payload format: devices of different versions must
    /// keep reading each other.
    #[test]
    fn content_format_is_stable() -> Result<()> {
        let text = Content::Text {
            id: "m-1".into(),
            body: "Bel mw. De Vries terug".into(),
            priority: Priority::Urgent,
            sent_at: 1_790_000_000_000,
            reply_to: None,
            attachments: vec![],
            kind: MessageKind::Overleg,
            triage: None,
            spoed: None,
            expires_at: None,
        };
        let json = String::from_utf8(text.to_bytes()?).map_err(|e| Error::internal("test", e))?;
        assert_eq!(
            json,
            r#"{"type":"text","id":"m-1","body":"Bel mw. De Vries terug","priority":"urgent","sent_at":1790000000000}"#
        );
        assert_eq!(Content::from_bytes(json.as_bytes())?, text);

        let details = Content::Details {
            title: "Overleg".into(),
            kind: ConversationKind::Group,
            patient: Some(PatientRef::new("his:12345")?),
            ttl_secs: None,
        };
        let json =
            String::from_utf8(details.to_bytes()?).map_err(|e| Error::internal("test", e))?;
        assert_eq!(
            json,
            r#"{"type":"details","title":"Overleg","kind":"group","patient":"his:12345"}"#
        );

        // Receipts and the practice key, as devices of this version write them.
        let receipt = Content::Receipt {
            messages: vec!["m-1".into()],
            read: true,
            at: 5,
        };
        assert_eq!(
            String::from_utf8(receipt.to_bytes()?).map_err(|e| Error::internal("test", e))?,
            r#"{"type":"receipt","messages":["m-1"],"read":true,"at":5}"#
        );
        let key = Content::PracticeKey {
            id: "k".into(),
            key: vec![0xab; 2],
            seq: Some(3),
        };
        let json = String::from_utf8(key.to_bytes()?).map_err(|e| Error::internal("test", e))?;
        assert_eq!(
            json,
            r#"{"type":"practice_key","id":"k","key":"abab","seq":3}"#
        );
        assert_eq!(Content::from_bytes(json.as_bytes())?, key);
        Ok(())
    }

    #[test]
    fn garbage_content_is_tampered() {
        for garbage in [
            &b"not json"[..],
            b"[1,2]",
            b"{\"body\":\"no type\"}",
            b"{\"type\":7}",
        ] {
            assert!(matches!(Content::from_bytes(garbage), Err(Error::Tampered)));
        }
    }

    /// Newer apps add kinds and values: this version reads them as
    /// unsupported, not as tampering.
    #[test]
    fn content_of_a_newer_app_is_unsupported() -> Result<()> {
        assert_eq!(
            Content::from_bytes(br#"{"type":"reaction","emoji":"+1","sent_at":9}"#)?,
            Content::Unsupported {
                kind: "reaction".into(),
                sent_at: Some(9)
            }
        );
        // A known kind with a value only a newer app knows.
        assert_eq!(
            Content::from_bytes(
                br#"{"type":"text","id":"m","body":"b","priority":"critical","sent_at":1}"#
            )?,
            Content::Unsupported {
                kind: "text".into(),
                sent_at: Some(1)
            }
        );
        // A field it does not know is simply skipped.
        assert!(matches!(
            Content::from_bytes(
                br#"{"type":"text","id":"m","body":"b","priority":"routine","sent_at":1,"mentions":["u"]}"#
            )?,
            Content::Text { .. }
        ));
        // Never sent.
        assert!(
            Content::Unsupported {
                kind: "x".into(),
                sent_at: None
            }
            .to_bytes()
            .is_err()
        );
        Ok(())
    }

    #[test]
    fn validation() {
        assert!(PatientRef::new("  ").is_err());
        assert!(PatientRef::new("a\nb").is_err());
        assert!(validate_new_message(&NewMessage::text("   ")).is_err());
        assert!(validate_new_message(&NewMessage::text("x".repeat(MAX_BODY_BYTES + 1))).is_err());
        assert!(validate_title("").is_err());
    }
}

#[cfg(test)]
mod stable_names {
    use super::*;
    use crate::{
        consent::{ConsentKind, ConsentMethod, ConsentStatus},
        privacy::AccessAction,
        record::DocState,
        spoed::Triage,
        tasks::TaskState,
    };

    /// The names stores and exports already hold: derived now, they must
    /// not change.
    #[test]
    fn derived_names_are_the_ones_stores_already_hold() -> Result<()> {
        let names: Vec<&str> = vec![
            ConversationKind::Direct.as_str(),
            ConversationKind::Personal.as_str(),
            Priority::Urgent.as_str(),
            MessageKind::Werkaantekening.as_str(),
            MessageState::Delivered.as_str(),
            Triage::U1.as_str(),
            TaskState::Cancelled.as_str(),
            DocState::Documented.as_str(),
            ConsentKind::LspSharing.as_str(),
            ConsentKind::ECommunication.as_str(),
            ConsentStatus::NotAsked.as_str(),
            ConsentMethod::PaperForm.as_str(),
            AccessAction::AuditExport.into(),
            pieper_wire::Role::Assistent.as_str(),
        ];
        assert_eq!(
            names,
            [
                "direct",
                "personal",
                "urgent",
                "werkaantekening",
                "delivered",
                "u1",
                "cancelled",
                "documented",
                "lsp_sharing",
                "e_communication",
                "not_asked",
                "paper_form",
                "audit.export",
                "assistent",
            ]
        );
        // Parsing is the inverse, ignores surrounding spaces, and names
        // the field of an unknown value.
        assert_eq!(
            ConsentStatus::parse(" not_asked ")?,
            ConsentStatus::NotAsked
        );
        assert_eq!(Triage::parse("U2")?, Triage::U2);
        assert_eq!(MessageState::parse("read")?, MessageState::Read);
        match ConsentMethod::parse("fax") {
            Err(Error::Invalid { field, .. }) => assert_eq!(field, "method"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            pieper_wire::Role::parse("poh"),
            Some(pieper_wire::Role::Poh)
        );
        assert_eq!(pieper_wire::Role::parse("patient"), None);
        Ok(())
    }
}
