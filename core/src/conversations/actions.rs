//! The conversation actions that talk to the server: start one, add and
//! remove members, send (with attachments), and mark read.

use super::ConversationsClient;
use crate::{
    attachments::{self},
    error::{Error, Result},
    identity::MemberId,
    model::{AttachmentRef, Conversation, ConversationKind, MessageKind, NewMessage, PatientRef},
};

impl ConversationsClient<'_> {
    /// Starts a conversation with the given colleagues (user ids); all
    /// their devices and this user's other devices join it.
    pub async fn create(
        &self,
        title: &str,
        kind: ConversationKind,
        patient: Option<PatientRef>,
        with_users: &[String],
    ) -> Result<Conversation> {
        let title = title.to_owned();
        let conversation = self
            .client
            .store(move |d| d.create_conversation(&title, kind, patient))
            .await?;
        let result = self
            .client
            .inner
            .api
            .create_conversation(&conversation.id)
            .await;
        self.client.server(result).await?;
        let mut users: Vec<String> = with_users.to_vec();
        users.push(self.client.id().user.clone());
        self.add_users(&conversation.id, &users).await?;
        let id = conversation.id.clone();
        self.client.store(move |d| d.conversation(&id)).await
    }

    /// Adds every active device of `users` that is not yet a member.
    pub async fn add_users(&self, conversation: &str, users: &[String]) -> Result<()> {
        self.client
            .add_devices(conversation, users, false)
            .await
            .map(|_| ())
    }

    /// Removes member devices from a conversation.
    pub async fn remove_devices(&self, conversation: &str, devices: &[MemberId]) -> Result<()> {
        let (conversation, devices) = (conversation.to_owned(), devices.to_vec());
        self.client
            .change_members(move |client| {
                let (conversation, devices) = (conversation.clone(), devices.clone());
                async move {
                    client
                        .store(move |d| d.remove_members(&conversation, &devices))
                        .await?;
                    Ok(true)
                }
            })
            .await
    }

    /// Writes a message (pending) and sends it when the server answers;
    /// returns its id. Offline, it waits in the outbox.
    pub async fn send(&self, conversation: &str, message: NewMessage) -> Result<String> {
        if message.kind == MessageKind::Werkaantekening {
            return self.client.write_note(conversation, &message.body).await;
        }
        let (conv, first) = (conversation.to_owned(), message.clone());
        let out = match self.client.store(move |d| d.send(&conv, first)).await {
            // A commit of this device (a key update, a membership change)
            // waits for the server's answer: once it has one, the message
            // goes in the new epoch.
            Err(Error::PendingCommit) => {
                match self.client.flush_outbox().await {
                    Ok(()) | Err(Error::StaleEpoch { .. }) => {}
                    Err(e) => return Err(e),
                }
                let conv = conversation.to_owned();
                self.client.store(move |d| d.send(&conv, message)).await?
            }
            other => other?,
        };
        self.client.flush_quietly().await?;
        Ok(out.id)
    }

    /// Marks a conversation read up to this message (on this device, for
    /// the unread counts) and tells the server a person read it: an urgent
    /// one stops being pushed again. Call it when the message is shown.
    pub async fn mark_read(&self, conversation: &str, message: &str) -> Result<()> {
        let (conv, id) = (conversation.to_owned(), message.to_owned());
        match self
            .client
            .store(move |d| d.mark_read_here(&conv, &id))
            .await
        {
            // Read elsewhere (a notification) before this device synced it:
            // the server's marker still counts.
            Ok(_) | Err(Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        let result = self.client.api()?.mark_read(conversation, message).await;
        self.client.server(result).await
    }

    /// Seals a file, uploads it for the conversation and keeps the sealed
    /// copy here; put the returned reference in a message. With
    /// `expires_at`, the server removes it then.
    pub async fn attach(
        &self,
        conversation: &str,
        name: &str,
        mime_type: &str,
        data: Vec<u8>,
        expires_at: Option<i64>,
    ) -> Result<AttachmentRef> {
        // It writes to this device's files: through the gate like the store.
        self.client.gate()?;
        let (sealed, key) =
            attachments::seal(&data).map_err(|e| Error::invalid("attachment", e.to_string()))?;
        let result = self
            .client
            .api()?
            .upload_blob(conversation, sealed.clone(), expires_at)
            .await;
        let created = self.client.server(result).await?;
        let path = self.client.inner.device.attachment_file(&created.id)?;
        std::fs::create_dir_all(self.client.inner.device.attachments_dir())
            .and_then(|()| std::fs::write(&path, &sealed))
            .map_err(|e| crate::store::StoreError::Io(e.to_string()))?;
        Ok(AttachmentRef {
            blob_id: created.id,
            name: name.to_owned(),
            mime_type: mime_type.to_owned(),
            key,
        })
    }

    /// Opens an attachment: the sealed copy here, or fetched and kept. In a
    /// patient's conversation, opening it is an access (noted before the
    /// file is handed out).
    pub async fn open_attachment(&self, attachment: &AttachmentRef) -> Result<Vec<u8>> {
        let file = self.open_sealed(attachment).await?;
        let blob = attachment.blob_id.clone();
        self.client
            .store(move |d| d.attachment_opened(&blob))
            .await?;
        Ok(file)
    }

    /// [`Self::open_attachment`] without the access record: for what logs
    /// itself as a whole (an inzage export).
    pub(crate) async fn open_sealed(&self, attachment: &AttachmentRef) -> Result<Vec<u8>> {
        // A locked or wiped device decrypts nothing, also from its files.
        self.client.gate()?;
        let path = self
            .client
            .inner
            .device
            .attachment_file(&attachment.blob_id)?;
        let sealed = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(_) => {
                let result = self.client.api()?.download_blob(&attachment.blob_id).await;
                let bytes = self.client.server(result).await?;
                std::fs::create_dir_all(self.client.inner.device.attachments_dir())
                    .and_then(|()| std::fs::write(&path, &bytes))
                    .map_err(|e| crate::store::StoreError::Io(e.to_string()))?;
                bytes
            }
        };
        attachments::open(&sealed, &attachment.key).map_err(|_| Error::Tampered)
    }

    /// Removes every device of `users` from a conversation (a colleague
    /// who should no longer follow it). Returns how many devices went.
    pub async fn remove_users(&self, conversation: &str, users: &[String]) -> Result<usize> {
        let gone: Vec<MemberId> = self
            .members(conversation)?
            .into_iter()
            .map(|m| m.id)
            .filter(|id| users.contains(&id.user))
            .collect();
        if gone.is_empty() {
            return Ok(0);
        }
        self.remove_devices(conversation, &gone).await?;
        Ok(gone.len())
    }

    /// Seals and uploads a file, then sends `message` with it; a
    /// disappearing message's file goes at the same time. Returns the
    /// message's id.
    pub async fn send_with_attachment(
        &self,
        conversation: &str,
        mut message: NewMessage,
        name: &str,
        mime_type: &str,
        data: Vec<u8>,
    ) -> Result<String> {
        let expires_at = message
            .ttl_secs
            .map(|secs| crate::store::queries::now_ms() + (secs as i64).saturating_mul(1000));
        let attachment = self
            .attach(conversation, name, mime_type, data, expires_at)
            .await?;
        message.attachments.push(attachment);
        self.send(conversation, message).await
    }

    /// The file `index` of a message, decrypted (fetched from the server
    /// the first time, then kept sealed on this device).
    pub async fn attachment_of(&self, message: &str, index: u32) -> Result<Vec<u8>> {
        // Not the message's content: only where its file is.
        let id = message.to_owned();
        let found = self.client.read(|d| d.message(&id))?;
        let attachment = found
            .attachments
            .get(index as usize)
            .ok_or(Error::NotFound { what: "attachment" })?;
        self.open_attachment(attachment).await
    }

    /// Writes the file `index` of a message, decrypted, to `path` (readable
    /// by this user only): for the platform's viewer.
    pub async fn save_attachment(
        &self,
        message: &str,
        index: u32,
        path: impl AsRef<std::path::Path>,
    ) -> Result<()> {
        let bytes = self.attachment_of(message, index).await?;
        crate::keystore::write_private(path.as_ref(), &bytes)
            .map_err(|e| crate::store::StoreError::Io(e.to_string()).into())
    }
}
