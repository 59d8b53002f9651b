//! [`TasksClient`]: the tasks on this device, read through the client's gate.

use super::Task;
use crate::{
    client::Client,
    error::Result,
    privacy::{AccessAction, client::Access},
};

/// The tasks on this device: `client.tasks()`.
pub struct TasksClient<'c> {
    pub(crate) client: &'c Client,
}

impl Client {
    /// The tasks on this device.
    pub fn tasks(&self) -> TasksClient<'_> {
        TasksClient { client: self }
    }
}

impl TasksClient<'_> {
    /// A task by id.
    pub fn get(&self, id: &str) -> Result<Task> {
        self.client.read_audited(
            |d| d.task(id),
            |_, task| Ok(viewed(std::slice::from_ref(task))),
        )
    }

    /// The tasks of a conversation.
    pub fn of_conversation(&self, conversation: &str) -> Result<Vec<Task>> {
        self.client
            .read_audited(|d| d.tasks(conversation), |_, tasks| Ok(viewed(tasks)))
    }

    /// This user's open tasks (and those for their role), by due date.
    pub fn my_open(&self) -> Result<Vec<Task>> {
        self.client
            .read_audited(|d| d.my_open_tasks(), |_, tasks| Ok(viewed(tasks)))
    }
}

/// Showing tasks is one access per patient they are about.
pub(crate) fn viewed(tasks: &[Task]) -> Vec<Access> {
    Access::per_patient(
        AccessAction::TaskView,
        "tasks",
        tasks.iter().map(|t| t.patient.as_ref()),
    )
}
