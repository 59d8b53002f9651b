//! What the client tells the app, as a stream.

use crate::model::{Conversation, Message, MessageState};

/// Something the app shows or acts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A message from another device arrived.
    MessageReceived(Message),
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
    PatientErased(crate::privacy::ErasureReport),
    /// History arrived for a conversation (on a new device of this user).
    HistoryArrived {
        /// The conversation.
        conversation: String,
        /// Messages added.
        added: usize,
    },
    /// A notification self-test arrived (see `Client::notification_self_test`).
    SelfTestArrived {
        /// The test's id.
        id: String,
        /// Which way it came.
        path: crate::push::NotificationPath,
        /// When the server sent it (ms).
        sent_at: i64,
        /// When it arrived here (ms).
        at: i64,
    },
    /// An urgent message arrived (also reported as `MessageReceived`).
    UrgentMessage(Message),
    /// A message of this device moved on (pending → sent → ...).
    MessageStateChanged {
        /// The message.
        id: String,
        /// Its new state.
        state: MessageState,
    },
    /// A conversation was joined, changed, or this device was removed.
    ConversationChanged(Conversation),
    /// A task was made or moved by another device.
    TaskChanged(crate::tasks::Task),
    /// A documentation item arrived or moved on (documented, failed).
    Documentation(crate::record::DocStatus),
    /// A member took a spoed post ("ik pak het op").
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
    /// An urgent message nobody read in time was pushed again to every
    /// member device.
    Escalated {
        /// The conversation.
        conversation: String,
        /// The message.
        id: String,
        /// How many times so far.
        escalations: u32,
    },
    /// The connection to the server changed.
    Connection(ConnectionState),
    /// An envelope could not be applied; it was skipped (never blocks).
    Undecryptable {
        /// Its position in the server's log.
        position: u64,
        /// Its conversation.
        conversation: String,
        /// Why, for logs (no content).
        reason: String,
    },
    /// A member's device sent something this device refused: an identity
    /// that did not check out, or an operation the sender's role does not
    /// allow. Nothing changed; it is counted (`Client::refusals`).
    Refused {
        /// Its position in the server's log.
        position: u64,
        /// Its conversation.
        conversation: String,
        /// The device the server says sent it.
        sender_device: String,
        /// The kind it is counted under.
        kind: String,
        /// Why, for the person and the logs.
        reason: String,
    },
    /// A practice manager reset a user's identity (they lost every device
    /// and their recovery code): their new device was taken in on the
    /// manager's word. Shown the way a changed safety number is.
    IdentityReset {
        /// The user.
        user: String,
        /// The manager (user id).
        by: String,
    },
    /// The server refused a queued envelope for good; it left the outbox.
    SendFailed {
        /// The envelope (for a message, the message id).
        id: String,
        /// The server's code.
        code: String,
    },
}

/// The live connection's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum ConnectionState {
    /// Connected and caught up.
    Online,
    /// Not connected; retrying after the given back-off.
    Offline {
        /// Milliseconds until the next attempt.
        retry_in_ms: u64,
    },
    /// The session ended (device revoked): sign in again.
    SignedOut,
}
