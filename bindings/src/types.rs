//! Records and enums as the apps see them, converted from the core's.

pub use pieper_core::{
    ConnectionState, Conversation, ConversationKind, MessageKind, MessageState, Priority,
};
use pieper_core::{Event as CoreEvent, Message as CoreMessage};

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
    /// History a member re-sent to heal this device: the member (user and
    /// device) who re-sent it. Show it as "re-sent by" them.
    pub resent_by: Option<MemberEntry>,
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

impl From<CoreMessage> for Message {
    fn from(m: CoreMessage) -> Self {
        Message {
            id: m.id,
            conversation: m.conversation,
            sender_user: m.sender.user,
            sender_device: m.sender.device,
            body: m.body,
            priority: m.priority,
            sent_at: m.sent_at,
            reply_to: m.reply_to,
            state: m.state,
            kind: m.kind,
            doc_state: m.documentation.as_ref().map(|d| d.state),
            doc_detail: m.documentation.and_then(|d| d.detail),
            expires_at: m.expires_at,
            expired: m.expired,
            resent_by: m.resent_by.map(|r| MemberEntry {
                user: r.user,
                device: r.device,
            }),
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
    /// Disabled by the practice manager (a leaver, a suspension).
    pub disabled: bool,
    /// The huisarts (user id) they work for, if the manager named one.
    pub on_behalf_of: Option<String>,
}

impl From<pieper_wire::UserInfo> for Colleague {
    fn from(u: pieper_wire::UserInfo) -> Self {
        Colleague {
            id: u.id,
            username: u.username,
            display_name: u.display_name,
            role: u.role.as_str().to_owned(),
            disabled: u.disabled,
            on_behalf_of: u.on_behalf_of,
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
    /// Which of its user's devices approved it, if one did.
    pub approved_by: Option<String>,
}

impl From<pieper_wire::DeviceInfo> for DeviceEntry {
    fn from(d: pieper_wire::DeviceInfo) -> Self {
        DeviceEntry {
            id: d.id,
            user_id: d.user_id,
            name: d.name,
            created_at: d.created_at,
            revoked_at: d.revoked_at,
            approved_by: d.approved_by,
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

/// What a person types to enrol their first device with the code the
/// practice manager gave them.
#[derive(Clone, uniffi::Record)]
pub struct EnrolmentCredentials {
    /// The practice's id.
    pub practice: String,
    /// The user name.
    pub username: String,
    /// The enrolment code.
    pub code: String,
    /// The password they choose (at least 12 characters).
    pub password: String,
    /// A name for this device.
    pub device_name: String,
}

impl From<EnrolmentCredentials> for pieper_core::EnrolmentCredentials {
    fn from(c: EnrolmentCredentials) -> Self {
        Self {
            practice: c.practice,
            username: c.username,
            code: c.code,
            password: c.password,
            device_name: c.device_name,
        }
    }
}

/// A one-time enrolment code for a colleague (hand it over in person).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct EnrolmentCode {
    /// The user it is for.
    pub user_id: String,
    /// The code.
    pub code: String,
    /// Until when it works (ms since the Unix epoch).
    pub expires_at: i64,
}

impl From<pieper_wire::EnrolmentCode> for EnrolmentCode {
    fn from(c: pieper_wire::EnrolmentCode) -> Self {
        Self {
            user_id: c.user_id,
            code: c.code,
            expires_at: c.expires_at,
        }
    }
}

/// What one sync applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct SyncReport {
    /// Envelopes applied.
    pub applied: u32,
    /// Envelopes skipped (could not be applied).
    pub skipped: u32,
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
    /// A member's device sent something this device refused (an identity
    /// that did not check out, or what the sender's role does not allow);
    /// nothing changed.
    Refused {
        /// Its conversation.
        conversation: String,
        /// The device the server says sent it.
        sender_device: String,
        /// The kind it is counted under.
        kind: String,
        /// Why, to show.
        reason: String,
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
    /// A practice manager reset a user's identity (they lost every device
    /// and their recovery code); show it as a changed safety number.
    IdentityReset {
        /// The user.
        user: String,
        /// The manager (user id).
        by: String,
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
            CoreEvent::MessageStateChanged { id, state } => {
                PieperEvent::MessageStateChanged { id, state }
            }
            CoreEvent::ConversationChanged(c) => {
                PieperEvent::ConversationChanged { conversation: c }
            }
            CoreEvent::Connection(state) => PieperEvent::Connection { state },
            CoreEvent::Undecryptable {
                position,
                conversation,
                ..
            } => PieperEvent::Undecryptable {
                position,
                conversation,
            },
            CoreEvent::Refused {
                conversation,
                sender_device,
                kind,
                reason,
                ..
            } => PieperEvent::Refused {
                conversation,
                sender_device,
                kind,
                reason,
            },
            CoreEvent::SendFailed { id, code } => PieperEvent::SendFailed { id, code },
            CoreEvent::IdentityReset { user, by } => PieperEvent::IdentityReset { user, by },
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
            CoreEvent::PatientErased(report) => PieperEvent::PatientErased { report },
            CoreEvent::PracticeDataChanged => PieperEvent::PracticeDataChanged,
            CoreEvent::SpoedTaken { message, by } => PieperEvent::SpoedTaken { message, by },
            CoreEvent::SpoedSettingChanged => PieperEvent::SpoedSettingChanged,
            CoreEvent::Documentation(status) => PieperEvent::Documentation {
                status: status.into(),
            },
            CoreEvent::TaskChanged(task) => PieperEvent::TaskChanged { task },
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
