//! [`TasksClient`]: the tasks on this device, read through the client's gate.

use super::Task;
use crate::{client::Client, error::Result};

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
        self.client.read(|d| d.task(id))
    }

    /// The tasks of a conversation.
    pub fn of_conversation(&self, conversation: &str) -> Result<Vec<Task>> {
        self.client.read(|d| d.tasks(conversation))
    }

    /// This user's open tasks (and those for their role), by due date.
    pub fn my_open(&self) -> Result<Vec<Task>> {
        self.client.read(|d| d.my_open_tasks())
    }
}
