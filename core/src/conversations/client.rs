//! [`ConversationsClient`]: the conversations on this device, read through
//! the client's gate.

use crate::{
    client::Client,
    error::Result,
    model::{Conversation, Member, Message, PatientRef},
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

    /// The `limit` newest messages of a conversation, oldest first.
    pub fn messages(&self, conversation: &str, limit: u32) -> Result<Vec<Message>> {
        self.client.read(|d| d.messages(conversation, limit))
    }

    /// The `limit` messages just before message `before`, oldest first:
    /// paging back without loading the whole conversation.
    pub fn messages_before(
        &self,
        conversation: &str,
        before: &str,
        limit: u32,
    ) -> Result<Vec<Message>> {
        self.client
            .read(|d| d.messages_before(conversation, before, limit))
    }

    /// One message by id.
    pub fn message(&self, id: &str) -> Result<Message> {
        self.client.read(|d| d.message(id))
    }

    /// Searches this device's messages; every word must match (as a prefix).
    pub fn search(&self, query: &str, limit: u32) -> Result<Vec<Message>> {
        self.client.read(|d| d.search(query, limit))
    }

    /// How many envelopes wait in the outbox for the server.
    pub fn waiting(&self) -> Result<usize> {
        self.client.read(|d| Ok(d.outbox()?.len()))
    }
}
