//! `PieperClient`: the signed-in device, forwarded to `pieper_core::Client`.

use std::sync::Arc;

use pieper_core::{Client, Credentials, NewMessage, PatientRef};

use crate::{
    error::PieperError,
    events::{EventListener, TaskHandle},
    keystore::{KeyStore, KeyStoreShim},
    runtime,
    types::{
        Colleague, Conversation, ConversationKind, DeviceEntry, LoginCredentials, Message,
        MessageKind, SyncReport,
    },
};

/// A signed-in device.
#[derive(uniffi::Object)]
pub struct PieperClient {
    pub(crate) inner: Client,
}

/// Signs in with password and TOTP, enrolling this device; its encrypted
/// store is created in `dir`, its key wrapped by `keystore`.
#[uniffi::export(async_runtime = "tokio")]
pub async fn login(
    server: String,
    dir: String,
    keystore: Arc<dyn KeyStore>,
    credentials: LoginCredentials,
) -> Result<Arc<PieperClient>, PieperError> {
    let credentials = Credentials {
        practice: credentials.practice,
        username: credentials.username,
        password: credentials.password,
        totp: credentials.totp,
        device_name: credentials.device_name,
    };
    let inner = Client::login(&server, dir, Arc::new(KeyStoreShim(keystore)), credentials).await?;
    Ok(Arc::new(PieperClient { inner }))
}

/// Opens the device that signed in before in `dir`.
#[uniffi::export(async_runtime = "tokio")]
pub async fn open_device(
    dir: String,
    keystore: Arc<dyn KeyStore>,
) -> Result<Arc<PieperClient>, PieperError> {
    let inner = Client::open(dir, Arc::new(KeyStoreShim(keystore))).await?;
    Ok(Arc::new(PieperClient { inner }))
}

#[uniffi::export(async_runtime = "tokio")]
impl PieperClient {
    /// This device's user id.
    pub fn user_id(&self) -> String {
        self.inner.id().user.clone()
    }

    /// This device's id.
    pub fn device_id(&self) -> String {
        self.inner.id().device.clone()
    }

    /// The practice's staff.
    pub async fn colleagues(&self) -> Result<Vec<Colleague>, PieperError> {
        Ok(self
            .inner
            .colleagues()
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// This user's devices (a manager: the practice's).
    pub async fn devices(&self) -> Result<Vec<DeviceEntry>, PieperError> {
        Ok(self
            .inner
            .devices()
            .list()
            .await?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// Revokes a device (lost or replaced): it stops at once and is removed
    /// from every conversation; it wipes itself when it hears of it.
    pub async fn revoke_device(&self, device: String) -> Result<(), PieperError> {
        Ok(self.inner.devices().revoke(&device).await?)
    }

    /// This device's conversations.
    pub fn conversations(&self) -> Result<Vec<Conversation>, PieperError> {
        Ok(self
            .inner
            .conversations()
            .list()?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// Starts a conversation with colleagues (user ids), optionally about a
    /// patient (HIS reference).
    pub async fn create_conversation(
        &self,
        title: String,
        kind: ConversationKind,
        patient: Option<String>,
        with_users: Vec<String>,
    ) -> Result<Conversation, PieperError> {
        let patient = patient.as_deref().map(PatientRef::new).transpose()?;
        Ok(self
            .inner
            .conversations()
            .create(&title, kind.into(), patient, &with_users)
            .await?
            .into())
    }

    /// Sends a message of a kind (a work note goes to this user's other
    /// devices only); returns its id. Offline, it waits in the outbox.
    pub async fn send(
        &self,
        conversation: String,
        body: String,
        urgent: bool,
        kind: MessageKind,
    ) -> Result<String, PieperError> {
        let mut message = if urgent {
            NewMessage::urgent(body)
        } else {
            NewMessage::text(body)
        };
        message.kind = kind.into();
        Ok(self
            .inner
            .conversations()
            .send(&conversation, message)
            .await?)
    }

    /// Sends a disappearing message: it goes from every device and the
    /// server `ttl_secs` after it was sent (the practice may forbid or cap).
    pub async fn send_disappearing(
        &self,
        conversation: String,
        body: String,
        ttl_secs: u64,
    ) -> Result<String, PieperError> {
        Ok(self
            .inner
            .conversations()
            .send(&conversation, NewMessage::text(body).disappearing(ttl_secs))
            .await?)
    }

    /// The `limit` newest messages of a conversation, oldest first.
    pub fn messages(&self, conversation: String, limit: u32) -> Result<Vec<Message>, PieperError> {
        Ok(self
            .inner
            .conversations()
            .messages(&conversation, limit)?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// Searches this device's messages.
    pub fn search(&self, query: String, limit: u32) -> Result<Vec<Message>, PieperError> {
        Ok(self
            .inner
            .conversations()
            .search(&query, limit)?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// Fetches what arrived and sends what waits.
    pub async fn sync(&self) -> Result<SyncReport, PieperError> {
        let report = self.inner.sync().await?;
        Ok(SyncReport {
            applied: report.applied as u32,
            skipped: report.skipped as u32,
        })
    }

    /// Delivers every event from now on to `listener` until the handle is
    /// cancelled or released.
    pub fn subscribe(&self, listener: Arc<dyn EventListener>) -> Arc<TaskHandle> {
        let mut events = self.inner.events();
        TaskHandle::task(runtime().spawn(async move {
            loop {
                match events.recv().await {
                    Ok(event) => listener.on_event(event.into()),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        }))
    }

    /// Keeps the device live (WebSocket, reconnecting) until the handle is
    /// cancelled or released.
    pub fn start_live(&self) -> Arc<TaskHandle> {
        let _inside = runtime().enter();
        TaskHandle::live(self.inner.start_live())
    }
}
