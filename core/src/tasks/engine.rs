//! Tasks on this device: made and moved here, shared in the conversation.

use crate::device::Device;
use crate::{
    error::Result,
    model::Content,
    privacy::{AccessAction, audit},
    store::queries,
    tasks::{self, NewTask, Task, TaskChange, TaskOp, TaskState},
};

impl Device {
    /// Makes a task in a conversation (about its patient, if it has one);
    /// it goes to every member with the next flush.
    pub fn create_task(&self, conversation: &str, task: NewTask) -> Result<Task> {
        tasks::check_new(&task)?;
        let patient = self.conversation(conversation)?.patient;
        let id = uuid::Uuid::new_v4().to_string();
        self.task_change(conversation, &id, TaskOp::Create { task, patient })
    }

    /// Takes a task on.
    pub fn accept_task(&self, id: &str) -> Result<Task> {
        self.step(id, TaskState::Accepted, TaskOp::Accept)
    }

    /// Marks a task done.
    pub fn complete_task(&self, id: &str) -> Result<Task> {
        self.step(id, TaskState::Completed, TaskOp::Complete)
    }

    /// Calls a task off.
    pub fn cancel_task(&self, id: &str) -> Result<Task> {
        self.step(id, TaskState::Cancelled, TaskOp::Cancel)
    }

    fn step(&self, id: &str, to: TaskState, op: TaskOp) -> Result<Task> {
        let task = self.task(id)?;
        tasks::check_step(&task, to)?;
        self.task_change(&task.conversation, id, op)
    }

    fn task_change(&self, conversation: &str, task: &str, op: TaskOp) -> Result<Task> {
        let detail = format!("task={task} op={}", op.name());
        let change = TaskChange {
            id: uuid::Uuid::new_v4().to_string(),
            task: task.to_owned(),
            at: queries::now_ms(),
            op,
        };
        self.transact(|s| {
            s.operational_group(conversation)?;
            self.encrypt(s, conversation, &change.id, &Content::Task(change.clone()))?;
            tasks::insert_change(s.conn(), conversation, &change, &self.me.user, None)?;
            let task = tasks::task(s.conn(), task)?;
            if let Some(patient) = &task.patient {
                audit::record(s.conn(), AccessAction::TaskChange, Some(patient), &detail)?;
            }
            Ok(task)
        })
    }

    /// One task.
    pub fn task(&self, id: &str) -> Result<Task> {
        self.store.read(|c| tasks::task(c, id))
    }

    /// A conversation's tasks, oldest first.
    pub fn tasks(&self, conversation: &str) -> Result<Vec<Task>> {
        self.store.read(|c| tasks::tasks_of(c, conversation))
    }

    /// The open tasks for this user or their role, by due date (undated
    /// last), then oldest first.
    pub fn my_open_tasks(&self) -> Result<Vec<Task>> {
        // Without a session (not signed in) only tasks for this user count.
        let role = self.session()?.map(|s| s.role);
        let mut mine: Vec<Task> = self
            .store
            .read(tasks::all_tasks)?
            .into_iter()
            .filter(|t| t.is_open())
            .filter(|t| match &t.assignee {
                tasks::Assignee::User(u) => *u == self.me.user,
                tasks::Assignee::Role(r) => role.as_ref() == Some(r),
            })
            .collect();
        mine.sort_by(|a, b| {
            (a.due.is_none(), &a.due, a.history[0].at).cmp(&(
                b.due.is_none(),
                &b.due,
                b.history[0].at,
            ))
        });
        Ok(mine)
    }
}
