//! Tasks from the client: made or moved on this device, then sent.

use super::client::TasksClient;
use crate::client::Client;
use crate::{
    error::Result,
    tasks::{NewTask, Task},
};

impl Client {
    async fn sent_task(&self, task: Task) -> Result<Task> {
        self.flush_quietly().await?;
        Ok(task)
    }
}

impl TasksClient<'_> {
    /// Makes a task in a conversation and shares it with its members.
    pub async fn create(&self, conversation: &str, task: NewTask) -> Result<Task> {
        let conversation = conversation.to_owned();
        let made = self
            .client
            .store(move |d| d.create_task(&conversation, task))
            .await?;
        self.client.sent_task(made).await
    }

    /// Takes a task on.
    pub async fn accept(&self, id: &str) -> Result<Task> {
        let id = id.to_owned();
        let task = self.client.store(move |d| d.accept_task(&id)).await?;
        self.client.sent_task(task).await
    }

    /// Marks a task done.
    pub async fn complete(&self, id: &str) -> Result<Task> {
        let id = id.to_owned();
        let task = self.client.store(move |d| d.complete_task(&id)).await?;
        self.client.sent_task(task).await
    }

    /// Calls a task off.
    pub async fn cancel(&self, id: &str) -> Result<Task> {
        let id = id.to_owned();
        let task = self.client.store(move |d| d.cancel_task(&id)).await?;
        self.client.sent_task(task).await
    }
}
