//! What this device shows of its conversations: the list, members,
//! messages (paged back), search. Reads purge what expired first.

use crate::{
    device::Device,
    error::{Error, Result},
    model::{Conversation, ConversationKind, Member, Message, PatientRef},
    store::queries,
};

impl Device {
    /// A conversation by id.
    pub fn conversation(&self, id: &str) -> Result<Conversation> {
        self.store
            .read(|c| queries::conversation(c, id))?
            .ok_or(Error::NotFound {
                what: "conversation",
            })
    }

    /// The conversations on this device (the practice group and the user's
    /// personal group, which carry data rather than talk, are not among them).
    pub fn conversations(&self) -> Result<Vec<Conversation>> {
        Ok(self
            .all_conversations()?
            .into_iter()
            .filter(|c| {
                !matches!(
                    c.kind,
                    ConversationKind::Practice | ConversationKind::Personal
                )
            })
            .collect())
    }

    /// The conversations about a patient (what a launch link from the HIS
    /// opens), newest first.
    pub fn conversations_about(&self, patient: &PatientRef) -> Result<Vec<Conversation>> {
        let mut found: Vec<Conversation> = self
            .conversations()?
            .into_iter()
            .filter(|c| c.patient.as_ref() == Some(patient))
            .collect();
        found.reverse();
        Ok(found)
    }

    /// Every group this device is or was in, the practice group included.
    pub(crate) fn all_conversations(&self) -> Result<Vec<Conversation>> {
        self.store.read(queries::conversations)
    }

    /// The member devices of a conversation.
    pub fn members(&self, conversation: &str) -> Result<Vec<Member>> {
        self.store.read(|c| queries::members(c, conversation))
    }

    /// The member devices of a conversation as their certificates say,
    /// each checked here against the practice's authority: who they are,
    /// their roles and registrations.
    pub fn certified_members(&self, conversation: &str) -> Result<Vec<crate::identity::Certified>> {
        self.store.read(|conn| {
            let provider = crate::mls::Provider::new(&self.crypto, conn);
            let group = crate::mls::load_group(&provider, conversation)?;
            group
                .members()
                .map(|m| self.certified(&m.credential, &m.signature_key))
                .collect()
        })
    }

    /// The `limit` newest messages of a conversation, oldest first.
    pub fn messages(&self, conversation: &str, limit: u32) -> Result<Vec<Message>> {
        self.purge_if_due()?;
        self.store
            .read(|c| queries::recent_messages(c, conversation, limit))
    }

    /// The `limit` messages just before message `before`, oldest first.
    pub fn messages_before(
        &self,
        conversation: &str,
        before: &str,
        limit: u32,
    ) -> Result<Vec<Message>> {
        // The anchor must be a message of this conversation: paging from
        // one elsewhere would quietly show an empty page.
        if self.message(before)?.conversation != conversation {
            return Err(Error::NotFound { what: "message" });
        }
        self.store
            .read(|c| queries::messages_before(c, conversation, before, limit))
    }

    /// One message by id.
    pub fn message(&self, id: &str) -> Result<Message> {
        self.purge_if_due()?;
        self.store
            .read(|c| queries::message(c, id))?
            .ok_or(Error::NotFound { what: "message" })
    }

    /// Searches this device's messages; every word must match (as a prefix).
    pub fn search(&self, query: &str, limit: u32) -> Result<Vec<Message>> {
        self.purge_if_due()?;
        self.store.read(|c| queries::search(c, query, limit))
    }
}
