//! Tasks as the apps see them.

use pieper_core::{Assignee as CoreAssignee, NewTask, Task as CoreTask, TaskState as CoreState};

use crate::{client::PieperClient, error::PieperError};

/// Where a task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum TaskState {
    /// Asked for.
    Requested,
    /// Taken on.
    Accepted,
    /// Done.
    Completed,
    /// Called off.
    Cancelled,
}

impl From<CoreState> for TaskState {
    fn from(s: CoreState) -> Self {
        match s {
            CoreState::Requested => TaskState::Requested,
            CoreState::Accepted => TaskState::Accepted,
            CoreState::Completed => TaskState::Completed,
            CoreState::Cancelled => TaskState::Cancelled,
        }
    }
}

/// Who a task is for.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum Assignee {
    /// A person (user id).
    User {
        /// The user id.
        id: String,
    },
    /// Whoever has the role (`poh`, `assistent`, ...).
    Role {
        /// The role.
        role: String,
    },
}

/// A task as it stands.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Task {
    /// Its id.
    pub id: String,
    /// Its conversation.
    pub conversation: String,
    /// What is to be done.
    pub what: String,
    /// The patient's reference, if any.
    pub patient: Option<String>,
    /// For whom.
    pub assignee: Assignee,
    /// By when (`YYYY-MM-DD`).
    pub due: Option<String>,
    /// The message it came from.
    pub from_message: Option<String>,
    /// Where it stands.
    pub state: TaskState,
    /// Who asked for it.
    pub requested_by: String,
}

impl From<CoreTask> for Task {
    fn from(t: CoreTask) -> Self {
        Task {
            id: t.id,
            conversation: t.conversation,
            what: t.what,
            patient: t.patient.map(|p| p.as_str().to_owned()),
            assignee: match t.assignee {
                CoreAssignee::User(id) => Assignee::User { id },
                CoreAssignee::Role(role) => Assignee::Role { role },
            },
            due: t.due,
            from_message: t.from_message,
            state: t.state.into(),
            requested_by: t.requested_by,
        }
    }
}

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
            assignee: match assignee {
                Assignee::User { id } => CoreAssignee::User(id),
                Assignee::Role { role } => CoreAssignee::Role(role),
            },
            due,
            from_message,
            follow_up: None,
        };
        Ok(self.inner.tasks().create(&conversation, task).await?.into())
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
        Ok(self.inner.tasks().create(&conversation, task).await?.into())
    }

    /// Takes a task on.
    pub async fn accept_task(&self, id: String) -> Result<Task, PieperError> {
        Ok(self.inner.tasks().accept(&id).await?.into())
    }

    /// Marks a task done.
    pub async fn complete_task(&self, id: String) -> Result<Task, PieperError> {
        Ok(self.inner.tasks().complete(&id).await?.into())
    }

    /// Calls a task off.
    pub async fn cancel_task(&self, id: String) -> Result<Task, PieperError> {
        Ok(self.inner.tasks().cancel(&id).await?.into())
    }

    /// A conversation's tasks.
    pub fn tasks(&self, conversation: String) -> Result<Vec<Task>, PieperError> {
        Ok(self
            .inner
            .tasks()
            .of_conversation(&conversation)?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// My open tasks (mine or my role's), by due date.
    pub fn my_open_tasks(&self) -> Result<Vec<Task>, PieperError> {
        Ok(self
            .inner
            .tasks()
            .my_open()?
            .into_iter()
            .map(Into::into)
            .collect())
    }
}

/// A conversation with unread messages.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ConversationSummary {
    /// The conversation.
    pub conversation: crate::types::Conversation,
    /// How many messages are unread.
    pub unread: u32,
    /// When the newest unread one was sent (ms).
    pub last_at: i64,
}

/// Conversations with unread messages about one patient or one topic.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct DashboardGroup {
    /// The patient's reference, for patient conversations.
    pub patient: Option<String>,
    /// The topic, for the others.
    pub topic: Option<String>,
    /// Newest first.
    pub conversations: Vec<ConversationSummary>,
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
            tasks: d.tasks.into_iter().map(Into::into).collect(),
            to_document: messages(d.to_document),
            unread: d
                .unread
                .into_iter()
                .map(|g| DashboardGroup {
                    patient: g.patient.map(|p| p.as_str().to_owned()),
                    topic: g.topic,
                    conversations: g
                        .conversations
                        .into_iter()
                        .map(|c| ConversationSummary {
                            conversation: c.conversation.into(),
                            unread: c.unread,
                            last_at: c.last_at,
                        })
                        .collect(),
                })
                .collect(),
        })
    }
}

/// NTS triage urgency (U1 and U2 are spoed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum Triage {
    /// Life-threatening.
    U1,
    /// Emergency.
    U2,
    /// Urgent.
    U3,
    /// Not urgent.
    U4,
    /// Advice.
    U5,
}

/// A part of the day on the duty roster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum DayPart {
    /// 08:00–12:00.
    Morning,
    /// 12:00–17:00.
    Afternoon,
    /// 17:00–08:00.
    Evening,
}

/// One slot of the duty roster.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct DutySlot {
    /// `YYYY-MM-DD`.
    pub date: String,
    /// The day part.
    pub part: DayPart,
    /// The user on duty.
    pub on_duty: String,
    /// The backup.
    pub backup: String,
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
        use pieper_core::spoed::Triage as T;
        let triage = match triage {
            Triage::U1 => T::U1,
            Triage::U2 => T::U2,
            Triage::U3 => T::U3,
            Triage::U4 => T::U4,
            Triage::U5 => T::U5,
        };
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
        use pieper_core::spoed::{DayPart as P, DutyRoster, DutySlot as S};
        let roster = DutyRoster {
            slots: slots
                .into_iter()
                .map(|s| S {
                    date: s.date,
                    part: match s.part {
                        DayPart::Morning => P::Morning,
                        DayPart::Afternoon => P::Afternoon,
                        DayPart::Evening => P::Evening,
                    },
                    on_duty: s.on_duty,
                    backup: s.backup,
                })
                .collect(),
        };
        Ok(self.inner.spoed().set_duty_roster(roster).await?)
    }
}
