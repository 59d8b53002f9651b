//! `PieperClient`: the signed-in device, forwarded to `pieper_core::Client`.

use std::sync::Arc;

use pieper_core::{Client, KeyUpdate, KnownDevice, NewMessage, PatientRef};

use crate::{
    error::PieperError,
    events::{EventListener, TaskHandle},
    keystore::{KeyStore, KeyStoreShim},
    runtime,
    types::{
        Colleague, Conversation, ConversationKind, DeviceEntry, EnrolmentCode,
        EnrolmentCredentials, LoginCredentials, MemberEntry, Message, MessageKind, SyncReport,
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
    let inner = Client::login(
        &server,
        dir,
        Arc::new(KeyStoreShim(keystore)),
        credentials.into(),
    )
    .await?;
    Ok(Arc::new(PieperClient { inner }))
}

/// A device enrolled with an enrolment code, and the authenticator secret
/// to show once (as text and as a QR code of the URL).
#[derive(uniffi::Record)]
pub struct Enrolled {
    /// The signed-in device.
    pub client: Arc<PieperClient>,
    /// The TOTP secret (base32).
    pub authenticator_secret: String,
    /// The `otpauth://` URL for the authenticator app.
    pub otpauth_url: String,
}

/// Enrols this device with the code the practice manager gave: the person
/// sets their own password and gets their authenticator secret.
#[uniffi::export(async_runtime = "tokio")]
pub async fn enrol(
    server: String,
    dir: String,
    keystore: Arc<dyn KeyStore>,
    credentials: EnrolmentCredentials,
) -> Result<Enrolled, PieperError> {
    let (inner, authenticator) = Client::enrol(
        &server,
        dir,
        Arc::new(KeyStoreShim(keystore)),
        credentials.into(),
    )
    .await?;
    Ok(Enrolled {
        client: Arc::new(PieperClient { inner }),
        authenticator_secret: authenticator.secret,
        otpauth_url: authenticator.otpauth_url,
    })
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

    /// The code this device shows while another device of its user
    /// approves it.
    pub fn approval_code(&self) -> Result<String, PieperError> {
        Ok(self.inner.devices().approval_code()?)
    }

    /// Approves the user's new `device` after the person compared `code`
    /// with the one it shows, and adds it to this device's conversations.
    pub async fn approve_device(&self, device: String, code: String) -> Result<u32, PieperError> {
        let devices = self.inner.devices();
        devices.approve(&device, &code).await?;
        Ok(devices.add_my_new_devices().await? as u32)
    }

    /// A practice manager resets a colleague's identity: the colleague lost
    /// every device and their recovery code, and the manager, having seen
    /// them in person, compared `code` with the one their new `device`
    /// shows. Every member is told.
    pub async fn reset_identity(&self, device: String, code: String) -> Result<(), PieperError> {
        Ok(self.inner.devices().reset_identity(&device, &code).await?)
    }

    /// Every device of the practice this device met, and why it trusts it.
    pub fn known_devices(&self) -> Result<Vec<KnownDevice>, PieperError> {
        Ok(self.inner.devices().known()?)
    }

    /// When this device last replaced its keys (an MLS update of its leaf),
    /// per conversation.
    pub fn key_updates(&self) -> Result<Vec<KeyUpdate>, PieperError> {
        Ok(self.inner.keys().updates()?)
    }

    /// Updates this device's keys in a conversation now; true when the
    /// update landed (otherwise a later sync makes it).
    pub async fn update_keys(&self, conversation: String) -> Result<bool, PieperError> {
        Ok(self.inner.keys().update(&conversation).await?)
    }

    /// The practice manager invites a colleague (`role`: huisarts, poh,
    /// assistent, manager or connector); hand the code over in person.
    pub async fn invite(
        &self,
        username: String,
        display_name: String,
        role: String,
    ) -> Result<EnrolmentCode, PieperError> {
        let role = pieper_core::Role::parse(&role).ok_or(PieperError::Invalid {
            field: "role".into(),
            reason: "huisarts, poh, assistent, manager or connector".into(),
        })?;
        Ok(self
            .inner
            .accounts()
            .invite(&username, &display_name, role)
            .await?
            .into())
    }

    /// The practice manager resets a colleague's login (a forgotten
    /// password, a lost authenticator): the old ones stop at once.
    pub async fn reset_login(&self, user: String) -> Result<EnrolmentCode, PieperError> {
        Ok(self.inner.accounts().reset_login(&user).await?.into())
    }

    /// The practice manager disables a user (a leaver, a suspension): their
    /// login is refused and every device of theirs revoked and removed from
    /// every conversation.
    pub async fn disable_user(&self, user: String) -> Result<(), PieperError> {
        Ok(self.inner.accounts().disable(&user).await?)
    }

    /// The practice manager names the huisarts a user works for (the audit
    /// trail's "on whose behalf"), or clears it with `None`.
    pub async fn set_on_behalf_of(
        &self,
        user: String,
        huisarts: Option<String>,
    ) -> Result<(), PieperError> {
        Ok(self
            .inner
            .accounts()
            .set_on_behalf_of(&user, huisarts.as_deref())
            .await?)
    }

    /// The practice manager enters or corrects a user's registrations
    /// (AGB, BIG, UZI; `None` for one not held): their devices' next
    /// certificates carry them.
    pub async fn set_registrations(
        &self,
        user: String,
        agb: Option<String>,
        big: Option<String>,
        uzi: Option<String>,
    ) -> Result<(), PieperError> {
        Ok(self
            .inner
            .accounts()
            .set_registrations(&user, pieper_core::Registrations { agb, big, uzi })
            .await?)
    }

    /// The practice manager enables a disabled user again.
    pub async fn enable_user(&self, user: String) -> Result<(), PieperError> {
        Ok(self.inner.accounts().enable(&user).await?)
    }

    /// Revokes a device (lost or replaced): it stops at once and is removed
    /// from every conversation; it wipes itself when it hears of it.
    pub async fn revoke_device(&self, device: String) -> Result<(), PieperError> {
        Ok(self.inner.devices().revoke(&device).await?)
    }

    /// This device's conversations.
    pub fn conversations(&self) -> Result<Vec<Conversation>, PieperError> {
        Ok(self.inner.conversations().list()?.into_iter().collect())
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
            .create(&title, kind, patient, &with_users)
            .await?)
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
        message.kind = kind;
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

    /// The `limit` messages just before message `before`, oldest first:
    /// paging back through a conversation.
    pub fn messages_before(
        &self,
        conversation: String,
        before: String,
        limit: u32,
    ) -> Result<Vec<Message>, PieperError> {
        Ok(self
            .inner
            .conversations()
            .messages_before(&conversation, &before, limit)?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// Sends a reply to message `reply_to`; returns its id.
    pub async fn send_reply(
        &self,
        conversation: String,
        body: String,
        reply_to: String,
    ) -> Result<String, PieperError> {
        let mut message = NewMessage::text(body);
        message.reply_to = Some(reply_to);
        Ok(self
            .inner
            .conversations()
            .send(&conversation, message)
            .await?)
    }

    /// Sends a message with a file, sealed on this device before it is
    /// uploaded; returns the message's id.
    pub async fn send_attachment(
        &self,
        conversation: String,
        body: String,
        name: String,
        mime_type: String,
        data: Vec<u8>,
    ) -> Result<String, PieperError> {
        Ok(self
            .inner
            .conversations()
            .send_with_attachment(
                &conversation,
                NewMessage::text(body),
                &name,
                &mime_type,
                data,
            )
            .await?)
    }

    /// The file `index` of a message, decrypted.
    pub async fn attachment(&self, message: String, index: u32) -> Result<Vec<u8>, PieperError> {
        Ok(self
            .inner
            .conversations()
            .attachment_of(&message, index)
            .await?)
    }

    /// Writes the file `index` of a message, decrypted, to a new file at
    /// `path` (readable by this user only), for the platform's viewer.
    pub async fn save_attachment(
        &self,
        message: String,
        index: u32,
        path: String,
    ) -> Result<(), PieperError> {
        Ok(self
            .inner
            .conversations()
            .save_attachment(&message, index, path)
            .await?)
    }

    /// The member devices of a conversation.
    pub fn members(&self, conversation: String) -> Result<Vec<MemberEntry>, PieperError> {
        Ok(self
            .inner
            .conversations()
            .members(&conversation)?
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// Adds colleagues (user ids) to a conversation: all their devices.
    pub async fn add_users(
        &self,
        conversation: String,
        users: Vec<String>,
    ) -> Result<(), PieperError> {
        Ok(self
            .inner
            .conversations()
            .add_users(&conversation, &users)
            .await?)
    }

    /// Removes colleagues (user ids) from a conversation: all their
    /// devices. Returns how many devices went.
    pub async fn remove_users(
        &self,
        conversation: String,
        users: Vec<String>,
    ) -> Result<u32, PieperError> {
        let removed = self
            .inner
            .conversations()
            .remove_users(&conversation, &users)
            .await?;
        Ok(removed as u32)
    }

    /// How often this device refused what members' devices sent (an
    /// identity that did not check out, an operation their role does not
    /// allow), by kind.
    pub fn refusals(&self) -> Result<Vec<pieper_core::RefusalCount>, PieperError> {
        Ok(self.inner.refusals()?)
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
