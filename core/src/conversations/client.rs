//! [`ConversationsClient`]: the conversations on this device, read through
//! the client's gate.

use crate::{
    client::Client,
    device::Device,
    error::Result,
    model::{Conversation, Member, Message, MessageState, PatientRef},
    privacy::{AccessAction, client::Access},
};

/// The conversations on this device: `client.conversations()`.
pub struct ConversationsClient<'c> {
    pub(crate) client: &'c Client,
}

impl Client {
    /// The conversations on this device.
    pub fn conversations(&self) -> ConversationsClient<'_> {
        ConversationsClient { client: self }
    }
}

impl ConversationsClient<'_> {
    /// The conversations (the practice group and the user's personal group,
    /// which carry data rather than talk, are not among them).
    pub fn list(&self) -> Result<Vec<Conversation>> {
        self.client.read(|d| d.conversations())
    }

    /// A conversation by id.
    pub fn get(&self, id: &str) -> Result<Conversation> {
        self.client.read(|d| d.conversation(id))
    }

    /// The conversations about a patient (what a launch link from the HIS
    /// opens), newest first.
    pub fn about(&self, patient: &PatientRef) -> Result<Vec<Conversation>> {
        self.client.read(|d| d.conversations_about(patient))
    }

    /// The member devices of a conversation.
    pub fn members(&self, conversation: &str) -> Result<Vec<Member>> {
        self.client.read(|d| d.members(conversation))
    }

    /// The member devices as their certificates say (checked here): who
    /// they are, in which roles, with which registrations (AGB, BIG, UZI).
    pub fn certified_members(&self, conversation: &str) -> Result<Vec<crate::identity::Certified>> {
        self.client.read(|d| d.certified_members(conversation))
    }

    /// The `limit` newest messages of a conversation, oldest first.
    pub fn messages(&self, conversation: &str, limit: u32) -> Result<Vec<Message>> {
        self.client.read_audited(
            |d| d.messages(conversation, limit),
            |d, shown| opened(d, conversation, shown),
        )
    }

    /// The `limit` messages just before message `before`, oldest first:
    /// paging back without loading the whole conversation.
    pub fn messages_before(
        &self,
        conversation: &str,
        before: &str,
        limit: u32,
    ) -> Result<Vec<Message>> {
        self.client.read_audited(
            |d| d.messages_before(conversation, before, limit),
            |d, shown| opened(d, conversation, shown),
        )
    }

    /// One message by id.
    pub fn message(&self, id: &str) -> Result<Message> {
        self.client.read_audited(
            |d| d.message(id),
            |d, shown| opened(d, &shown.conversation, std::slice::from_ref(shown)),
        )
    }

    /// A message's delivery state only (no content, so no access to log).
    pub fn state(&self, id: &str) -> Result<MessageState> {
        self.client.read(|d| Ok(d.message(id)?.state))
    }

    /// Searches this device's messages; every word must match (as a prefix).
    pub fn search(&self, query: &str, limit: u32) -> Result<Vec<Message>> {
        self.client.read_audited(
            |d| d.search(query, limit),
            |d, found| {
                let patients = crate::privacy::client::patients_of_messages(d, found)?;
                Ok(Access::per_patient(
                    AccessAction::Search,
                    "results",
                    patients.iter().map(Option::as_ref),
                ))
            },
        )
    }

    /// How many envelopes wait in the outbox for the server.
    pub fn waiting(&self) -> Result<usize> {
        self.client.read(|d| Ok(d.outbox()?.len()))
    }
}

/// Showing a patient conversation's messages is one access to its patient;
/// showing the spoed channel, one per patient of its posts.
fn opened(d: &Device, conversation: &str, shown: &[Message]) -> Result<Vec<Access>> {
    Ok(match d.conversation(conversation)?.patient {
        Some(p) => vec![Access::to(
            AccessAction::Open,
            &p,
            format!("conversation={conversation} messages={}", shown.len()),
        )],
        None => Access::per_patient(
            AccessAction::Open,
            &format!("conversation={conversation} spoed posts"),
            shown
                .iter()
                .map(|m| m.spoed.as_ref().and_then(|s| s.patient.as_ref())),
        ),
    })
}
