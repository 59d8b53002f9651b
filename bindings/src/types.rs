//! Records and enums as the apps see them, converted from the core's.

use pieper_core::{
    ConnectionState as CoreConnectionState, Conversation as CoreConversation,
    ConversationKind as CoreKind, Event as CoreEvent, Message as CoreMessage,
    MessageState as CoreState, Priority as CorePriority,
};

/// What a conversation is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum ConversationKind {
    /// Two people.
    Direct,
    /// A team or topic.
    Group,
    /// The staff on duty for urgent matters.
    Spoed,
    /// The practice group (practice-wide data, not a chat).
    Practice,
    /// The user's own devices (work notes).
    Personal,
}

impl From<ConversationKind> for CoreKind {
    fn from(k: ConversationKind) -> Self {
        match k {
            ConversationKind::Direct => CoreKind::Direct,
            ConversationKind::Group => CoreKind::Group,
            ConversationKind::Spoed => CoreKind::Spoed,
            ConversationKind::Practice => CoreKind::Practice,
            ConversationKind::Personal => CoreKind::Personal,
        }
    }
}

impl From<CoreKind> for ConversationKind {
    fn from(k: CoreKind) -> Self {
        match k {
            CoreKind::Direct => ConversationKind::Direct,
            CoreKind::Group => ConversationKind::Group,
            CoreKind::Spoed => ConversationKind::Spoed,
            CoreKind::Practice => ConversationKind::Practice,
            CoreKind::Personal => ConversationKind::Personal,
        }
    }
}

/// A conversation on this device.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Conversation {
    /// Its id.
    pub id: String,
    /// Its title.
    pub title: String,
    /// What it is for.
    pub kind: ConversationKind,
    /// The HIS reference of the patient it is about.
    pub patient: Option<String>,
    /// False once this device was removed.
    pub active: bool,
}

impl From<CoreConversation> for Conversation {
    fn from(c: CoreConversation) -> Self {
        Conversation {
            id: c.id,
            title: c.title,
            kind: c.kind.into(),
            patient: c.patient.map(|p| p.as_str().to_owned()),
            active: c.active,
        }
    }
}

/// Routine or urgent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum Priority {
    /// Ordinary.
    Routine,
    /// Wakes the recipients' phones.
    Urgent,
}

impl From<CorePriority> for Priority {
    fn from(p: CorePriority) -> Self {
        match p {
            CorePriority::Routine => Priority::Routine,
            CorePriority::Urgent => Priority::Urgent,
        }
    }
}

/// Where a message is on its way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum MessageState {
    /// Written here, not yet on the server.
    Pending,
    /// On the server.
    Sent,
    /// On a recipient's device.
    Delivered,
    /// Read by a recipient.
    Read,
    /// From another device.
    Received,
}

impl From<CoreState> for MessageState {
    fn from(s: CoreState) -> Self {
        match s {
            CoreState::Pending => MessageState::Pending,
            CoreState::Sent => MessageState::Sent,
            CoreState::Delivered => MessageState::Delivered,
            CoreState::Read => MessageState::Read,
            CoreState::Received => MessageState::Received,
        }
    }
}

/// A message on this device.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Message {
    /// Its id.
    pub id: String,
    /// Its conversation.
    pub conversation: String,
    /// The sending user.
    pub sender_user: String,
    /// The sending device.
    pub sender_device: String,
    /// The text.
    pub body: String,
    /// Routine or urgent.
    pub priority: Priority,
    /// When it was sent (ms since the Unix epoch).
    pub sent_at: i64,
    /// The message it answers.
    pub reply_to: Option<String>,
    /// Where it is on its way.
    pub state: MessageState,
    /// Discussion, for the record, or a work note.
    pub kind: MessageKind,
    /// Where it is on its way into the record (none: not documented).
    pub doc_state: Option<crate::record::DocState>,
    /// Why documenting failed, or where it went.
    pub doc_detail: Option<String>,
    /// A disappearing message: when it goes (ms since the Unix epoch).
    pub expires_at: Option<i64>,
    /// It went: a "message expired" marker without content.
    pub expired: bool,
    /// Its files (open one with `attachment(message, index)`).
    pub attachments: Vec<AttachmentInfo>,
}

/// A file sent with a message.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct AttachmentInfo {
    /// The file name shown to the user.
    pub name: String,
    /// Its media type.
    pub mime_type: String,
    /// Its size in bytes.
    pub size: u64,
}

/// A member device of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct MemberEntry {
    /// The user.
    pub user: String,
    /// The device.
    pub device: String,
}

impl From<pieper_core::Member> for MemberEntry {
    fn from(m: pieper_core::Member) -> Self {
        MemberEntry {
            user: m.id.user,
            device: m.id.device,
        }
    }
}

/// What a message is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum MessageKind {
    /// Overleg: discussion, stays in the chat.
    Overleg,
    /// Documenteer: goes into the patient's record.
    Documenteer,
    /// Werkaantekening: a work note on the author's own devices only.
    Werkaantekening,
}

impl From<pieper_core::MessageKind> for MessageKind {
    fn from(k: pieper_core::MessageKind) -> Self {
        match k {
            pieper_core::MessageKind::Overleg => MessageKind::Overleg,
            pieper_core::MessageKind::Documenteer => MessageKind::Documenteer,
            pieper_core::MessageKind::Werkaantekening => MessageKind::Werkaantekening,
        }
    }
}

impl From<MessageKind> for pieper_core::MessageKind {
    fn from(k: MessageKind) -> Self {
        match k {
            MessageKind::Overleg => pieper_core::MessageKind::Overleg,
            MessageKind::Documenteer => pieper_core::MessageKind::Documenteer,
            MessageKind::Werkaantekening => pieper_core::MessageKind::Werkaantekening,
        }
    }
}

impl From<CoreMessage> for Message {
    fn from(m: CoreMessage) -> Self {
        Message {
            id: m.id,
            conversation: m.conversation,
            sender_user: m.sender.user,
            sender_device: m.sender.device,
            body: m.body,
            priority: m.priority.into(),
            sent_at: m.sent_at,
            reply_to: m.reply_to,
            state: m.state.into(),
            kind: m.kind.into(),
            doc_state: m.documentation.as_ref().map(|d| d.state.into()),
            doc_detail: m.documentation.and_then(|d| d.detail),
            expires_at: m.expires_at,
            expired: m.expired,
            attachments: m
                .attachments
                .into_iter()
                .map(|a| AttachmentInfo {
                    name: a.name,
                    mime_type: a.mime_type,
                    size: a.key.size,
                })
                .collect(),
        }
    }
}

/// A colleague in the practice.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Colleague {
    /// The user id.
    pub id: String,
    /// The user name.
    pub username: String,
    /// The name shown.
    pub display_name: String,
    /// huisarts, poh, assistent, manager or admin.
    pub role: String,
}

impl From<pieper_wire::UserInfo> for Colleague {
    fn from(u: pieper_wire::UserInfo) -> Self {
        Colleague {
            id: u.id,
            username: u.username,
            display_name: u.display_name,
            role: u.role.as_str().to_owned(),
        }
    }
}

/// A device of this user (a manager: of the practice).
#[derive(Debug, Clone, uniffi::Record)]
pub struct DeviceEntry {
    /// Its id.
    pub id: String,
    /// Its user.
    pub user_id: String,
    /// Its name.
    pub name: String,
    /// When it was enrolled (ms since the Unix epoch).
    pub created_at: i64,
    /// When it was revoked, if it was.
    pub revoked_at: Option<i64>,
}

impl From<pieper_wire::DeviceInfo> for DeviceEntry {
    fn from(d: pieper_wire::DeviceInfo) -> Self {
        DeviceEntry {
            id: d.id,
            user_id: d.user_id,
            name: d.name,
            created_at: d.created_at,
            revoked_at: d.revoked_at,
        }
    }
}

impl From<LoginCredentials> for pieper_core::Credentials {
    fn from(c: LoginCredentials) -> Self {
        pieper_core::Credentials {
            practice: c.practice,
            username: c.username,
            password: c.password,
            totp: c.totp,
            device_name: c.device_name,
        }
    }
}

/// How to sign in.
#[derive(Debug, Clone, uniffi::Record)]
pub struct LoginCredentials {
    /// The practice's id.
    pub practice: String,
    /// The user name.
    pub username: String,
    /// The password.
    pub password: String,
    /// The current TOTP code.
    pub totp: String,
    /// A name for this device.
    pub device_name: String,
}

/// What one sync applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct SyncReport {
    /// Envelopes applied.
    pub applied: u32,
    /// Envelopes skipped (could not be applied).
    pub skipped: u32,
}

/// The live connection's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum ConnectionState {
    /// Connected.
    Online,
    /// Retrying after `retry_in_ms`.
    Offline {
        /// Milliseconds until the next attempt.
        retry_in_ms: u64,
    },
    /// Signed out: sign in again.
    SignedOut,
}

/// Something the app shows or acts on.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum PieperEvent {
    /// A message from another device.
    MessageReceived {
        /// It.
        message: Message,
    },
    /// An urgent message (also reported as `MessageReceived`).
    UrgentMessage {
        /// It.
        message: Message,
    },
    /// A message of this device moved on.
    MessageStateChanged {
        /// The message.
        id: String,
        /// Its new state.
        state: MessageState,
    },
    /// A conversation was joined or changed.
    ConversationChanged {
        /// It.
        conversation: Conversation,
    },
    /// The connection changed.
    Connection {
        /// The new state.
        state: ConnectionState,
    },
    /// An envelope could not be applied and was skipped.
    Undecryptable {
        /// Its position.
        position: u64,
        /// Its conversation.
        conversation: String,
    },
    /// A task was made or moved by another device.
    TaskChanged {
        /// The task as it now stands.
        task: crate::tasks::Task,
    },
    /// A documentation item arrived or moved on.
    Documentation {
        /// The item and where it stands.
        status: crate::record::DocStatus,
    },
    /// A member took a spoed post.
    SpoedTaken {
        /// The post.
        message: String,
        /// Who (user id).
        by: String,
    },
    /// The duty roster or someone's do-not-disturb changed.
    SpoedSettingChanged,
    /// Roster or consent changes arrived from the practice.
    PracticeDataChanged,
    /// An urgent message nobody read in time was pushed again to everyone.
    Escalated {
        /// The conversation.
        conversation: String,
        /// The message.
        id: String,
        /// How many times so far.
        escalations: u32,
    },
    /// Receipts (delivered, read) arrived for these messages.
    ReceiptsChanged {
        /// The messages.
        messages: Vec<String>,
    },
    /// Messages expired or passed retention and were removed here.
    MessagesExpired {
        /// How many.
        count: u32,
    },
    /// A patient's chat content was erased on request.
    PatientErased {
        /// What went and what stays.
        report: crate::privacy::ErasureReport,
    },
    /// History arrived for a conversation (on a new device of this user).
    HistoryArrived {
        /// The conversation.
        conversation: String,
        /// Messages added.
        added: u32,
    },
    /// A notification self-test arrived.
    SelfTestArrived {
        /// The test's id.
        id: String,
        /// By the live connection (else by push).
        live: bool,
        /// From the server's send to arrival (ms).
        latency_ms: i64,
    },
    /// The server refused a queued envelope for good.
    SendFailed {
        /// The envelope.
        id: String,
        /// The server's code.
        code: String,
    },
}

impl From<CoreEvent> for PieperEvent {
    fn from(e: CoreEvent) -> Self {
        match e {
            CoreEvent::MessageReceived(m) => PieperEvent::MessageReceived { message: m.into() },
            CoreEvent::UrgentMessage(m) => PieperEvent::UrgentMessage { message: m.into() },
            CoreEvent::MessageStateChanged { id, state } => PieperEvent::MessageStateChanged {
                id,
                state: state.into(),
            },
            CoreEvent::ConversationChanged(c) => PieperEvent::ConversationChanged {
                conversation: c.into(),
            },
            CoreEvent::Connection(s) => PieperEvent::Connection {
                state: match s {
                    CoreConnectionState::Online => ConnectionState::Online,
                    CoreConnectionState::Offline { retry_in_ms } => {
                        ConnectionState::Offline { retry_in_ms }
                    }
                    CoreConnectionState::SignedOut => ConnectionState::SignedOut,
                },
            },
            CoreEvent::Undecryptable {
                position,
                conversation,
                ..
            } => PieperEvent::Undecryptable {
                position,
                conversation,
            },
            CoreEvent::SendFailed { id, code } => PieperEvent::SendFailed { id, code },
            CoreEvent::ReceiptsChanged { messages } => PieperEvent::ReceiptsChanged { messages },
            CoreEvent::HistoryArrived {
                conversation,
                added,
            } => PieperEvent::HistoryArrived {
                conversation,
                added: u32::try_from(added).unwrap_or(u32::MAX),
            },
            CoreEvent::SelfTestArrived {
                id,
                path,
                sent_at,
                at,
            } => PieperEvent::SelfTestArrived {
                id,
                live: path == pieper_core::NotificationPath::Live,
                latency_ms: at - sent_at,
            },
            CoreEvent::MessagesExpired { count } => PieperEvent::MessagesExpired { count },
            CoreEvent::PatientErased(report) => PieperEvent::PatientErased {
                report: report.into(),
            },
            CoreEvent::PracticeDataChanged => PieperEvent::PracticeDataChanged,
            CoreEvent::SpoedTaken { message, by } => PieperEvent::SpoedTaken { message, by },
            CoreEvent::SpoedSettingChanged => PieperEvent::SpoedSettingChanged,
            CoreEvent::Documentation(status) => PieperEvent::Documentation {
                status: status.into(),
            },
            CoreEvent::TaskChanged(task) => PieperEvent::TaskChanged { task: task.into() },
            CoreEvent::Escalated {
                conversation,
                id,
                escalations,
            } => PieperEvent::Escalated {
                conversation,
                id,
                escalations,
            },
        }
    }
}
