//! Tasks as the apps see them.

use pieper_core::NewTask;
pub use pieper_core::{
    Assignee, ConversationSummary, DashboardGroup, Task, TaskState,
    spoed::{DayPart, DutySlot, Triage},
};

use crate::{client::PieperClient, error::PieperError};

#[uniffi::export(async_runtime = "tokio")]
impl PieperClient {
    /// Makes a task in a conversation.
    pub async fn create_task(
        &self,
        conversation: String,
        what: String,
        assignee: Assignee,
        due: Option<String>,
        from_message: Option<String>,
    ) -> Result<Task, PieperError> {
        let task = NewTask {
            what,
            assignee,
            due,
            from_message,
            follow_up: None,
        };
        Ok(self.inner.tasks().create(&conversation, task).await?)
    }

    /// Asks the assistants to plan an appointment for the conversation's
    /// patient (with whom, by when), or to call them back.
    pub async fn request_follow_up(
        &self,
        conversation: String,
        what: String,
        call_back: bool,
        with: Option<String>,
        due: Option<String>,
    ) -> Result<Task, PieperError> {
        let task = if call_back {
            NewTask::call_back(what, due)
        } else {
            NewTask::appointment(what, with, due)
        };
        Ok(self.inner.tasks().create(&conversation, task).await?)
    }

    /// Takes a task on.
    pub async fn accept_task(&self, id: String) -> Result<Task, PieperError> {
        Ok(self.inner.tasks().accept(&id).await?)
    }

    /// Marks a task done.
    pub async fn complete_task(&self, id: String) -> Result<Task, PieperError> {
        Ok(self.inner.tasks().complete(&id).await?)
    }

    /// Calls a task off.
    pub async fn cancel_task(&self, id: String) -> Result<Task, PieperError> {
        Ok(self.inner.tasks().cancel(&id).await?)
    }

    /// A conversation's tasks.
    pub fn tasks(&self, conversation: String) -> Result<Vec<Task>, PieperError> {
        Ok(self
            .inner
            .tasks()
            .of_conversation(&conversation)?
            .into_iter()
            .collect())
    }

    /// My open tasks (mine or my role's), by due date.
    pub fn my_open_tasks(&self) -> Result<Vec<Task>, PieperError> {
        Ok(self.inner.tasks().my_open()?.into_iter().collect())
    }
}

/// The opening screen, most pressing first.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Dashboard {
    /// Unread urgent messages in the spoed channel.
    pub spoed: Vec<crate::types::Message>,
    /// Other unread urgent messages.
    pub urgent: Vec<crate::types::Message>,
    /// My open tasks by due date.
    pub tasks: Vec<Task>,
    /// My messages for the record not yet documented.
    pub to_document: Vec<crate::types::Message>,
    /// Conversations with unread messages, grouped.
    pub unread: Vec<DashboardGroup>,
}

#[uniffi::export]
impl PieperClient {
    /// What the app opens with (refresh it on events).
    pub fn dashboard(&self) -> Result<Dashboard, PieperError> {
        let d = self.inner.dashboard()?;
        let messages = |v: Vec<pieper_core::Message>| v.into_iter().map(Into::into).collect();
        Ok(Dashboard {
            spoed: messages(d.spoed),
            urgent: messages(d.urgent),
            tasks: d.tasks,
            to_document: messages(d.to_document),
            unread: d.unread,
        })
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl PieperClient {
    /// Sends a message with an NTS triage urgency; U1/U2 also go to the
    /// spoed channel, routed to whoever is on duty. Returns its id.
    pub async fn send_triaged(
        &self,
        conversation: String,
        body: String,
        triage: Triage,
    ) -> Result<String, PieperError> {
        let message = pieper_core::NewMessage::triaged(body, triage);
        Ok(self
            .inner
            .conversations()
            .send(&conversation, message)
            .await?)
    }

    /// "Ik pak het op": takes a spoed post.
    pub async fn take_spoed(&self, post: String) -> Result<(), PieperError> {
        Ok(self.inner.spoed().take(&post).await?)
    }

    /// Turns do-not-disturb on or off (spoed then goes to the backup).
    pub async fn set_do_not_disturb(&self, on: bool) -> Result<(), PieperError> {
        Ok(self.inner.spoed().set_do_not_disturb(on).await?)
    }

    /// Sets the practice's duty roster.
    pub async fn set_duty_roster(&self, slots: Vec<DutySlot>) -> Result<(), PieperError> {
        let roster = pieper_core::spoed::DutyRoster { slots };
        Ok(self.inner.spoed().set_duty_roster(roster).await?)
    }
}
