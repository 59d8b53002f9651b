//! What the app opens with: one query over the store.

use crate::device::Device;
use crate::{
    error::Result,
    model::{Conversation, Message, PatientRef},
    store::queries,
    tasks::Task,
};

/// A conversation with what is unread in it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct ConversationSummary {
    /// The conversation.
    pub conversation: Conversation,
    /// Messages from others not yet read here.
    pub unread: u32,
    /// When the newest of them was sent (ms).
    pub last_at: i64,
}

/// Conversations with unread messages about one patient, or one topic.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct DashboardGroup {
    /// The patient, for patient conversations.
    pub patient: Option<PatientRef>,
    /// The topic (the conversation's title) for the others.
    pub topic: Option<String>,
    /// Newest first.
    pub conversations: Vec<ConversationSummary>,
}

/// The opening screen, most pressing first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dashboard {
    /// Spoed posts nobody took yet.
    pub spoed: Vec<Message>,
    /// Other unread urgent messages.
    pub urgent: Vec<Message>,
    /// Open tasks for me or my role, by due date.
    pub tasks: Vec<Task>,
    /// My messages marked for the record and not yet documented.
    pub to_document: Vec<Message>,
    /// Conversations with unread messages, grouped by patient or topic,
    /// the group with the newest unread first.
    pub unread: Vec<DashboardGroup>,
}

impl Device {
    /// Marks the messages of a conversation that arrived up to and with
    /// `message` as read here.
    pub fn mark_read_here(&self, conversation: &str, message: &str) -> Result<u32> {
        self.store.write(|tx| {
            let read = queries::mark_read(tx, conversation, message, queries::now_ms())?;
            crate::privacy::after_read(tx, conversation, &read)?;
            Ok(read.len() as u32)
        })
    }

    /// My messages marked for the record that are not documented yet.
    pub fn to_document(&self) -> Result<Vec<Message>> {
        let me = self.me.user.clone();
        self.store.read(|c| queries::to_document(c, &me))
    }

    /// The opening screen: unread spoed, unread urgent, my open tasks, what
    /// I still have to document, then conversations with unread messages.
    pub fn dashboard(&self) -> Result<Dashboard> {
        let conversations: Vec<Conversation> = self.conversations()?;
        let by_id = |id: &str| conversations.iter().find(|c| c.id == id);
        // Spoed posts nobody took come first; urgent messages after, the
        // spoed channel's own among them only if not posts (those are above).
        let spoed = self.store.read(queries::untaken_spoed)?;
        let urgent: Vec<Message> = self
            .store
            .read(queries::unread_urgent)?
            .into_iter()
            .filter(|m| m.spoed.is_none())
            .collect();
        let mut groups: Vec<DashboardGroup> = Vec::new();
        for (id, unread, last_at) in self.store.read(queries::unread_counts)? {
            let Some(conversation) = by_id(&id).cloned() else {
                continue; // the practice or personal group
            };
            let (patient, topic) = match &conversation.patient {
                Some(p) => (Some(p.clone()), None),
                None => (None, Some(conversation.title.clone())),
            };
            let summary = ConversationSummary {
                conversation,
                unread,
                last_at,
            };
            match groups
                .iter_mut()
                .find(|g| g.patient == patient && g.topic == topic)
            {
                Some(group) => group.conversations.push(summary),
                None => groups.push(DashboardGroup {
                    patient,
                    topic,
                    conversations: vec![summary],
                }),
            }
        }
        // unread_counts is newest first, so groups and their members are too.
        Ok(Dashboard {
            spoed,
            urgent,
            tasks: self.my_open_tasks()?,
            to_document: self.to_document()?,
            unread: groups,
        })
    }
}
