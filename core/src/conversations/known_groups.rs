//! The well-known groups on the client: the practice group and the user's
//! personal group, made by the first device that needs one and topped up
//! by their members.

use crate::client::Client;
use crate::{
    device::KnownGroup,
    error::{Error, Result},
};

/// How the claim endpoint takes users: at most this many per call.
const USERS_PER_CLAIM: usize = 100;

impl Client {
    /// Makes sure the group exists and this device is in it: registers it
    /// at the server if there is none. False if another device has it (a
    /// member will add this one) or this device was removed from it.
    pub(crate) async fn ensure_known_group(&self, which: KnownGroup) -> Result<bool> {
        if self.store(move |d| d.in_known_group(which)).await? {
            return Ok(true);
        }
        let group = self.inner.device.known_group_id(which);
        let known = self.store(|d| d.all_conversations()).await?;
        if known.iter().any(|c| c.id == group) {
            // Removed from it earlier: not ours to make again.
            return Ok(false);
        }
        self.store(move |d| d.create_known_group(which)).await?;
        let registered = self
            .server(self.api()?.create_conversation(&group).await)
            .await;
        if registered.is_err() {
            let id = group.clone();
            self.store(move |d| d.forget_new_conversation(&id)).await?;
        }
        match registered {
            Ok(()) => Ok(true),
            // Made by a device of this practice (or user): one of them
            // adds this device.
            Err(Error::Rejected { code, .. }) if code == pieper_wire::codes::CONFLICT => Ok(false),
            // Held by someone else: nobody will ever add this device, so
            // this is an alarm, not a wait.
            Err(Error::Rejected { code, .. }) if code == pieper_wire::codes::NOT_YOURS => {
                tracing::error!(%group, "a well-known group held by another practice or user");
                Err(Error::Untrusted {
                    reason: format!(
                        "the group {group} is held by another practice or user: tell the practice manager"
                    ),
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Adds the devices of `users` that are missing from a group this
    /// device is in; returns whether any was added.
    pub(crate) async fn top_up(&self, which: KnownGroup, users: &[String]) -> Result<bool> {
        let group = self.inner.device.known_group_id(which);
        let mut added = false;
        for chunk in users.chunks(USERS_PER_CLAIM) {
            added |= self.add_devices(&group, chunk, true).await?;
        }
        Ok(added)
    }
}

impl Client {
    /// Brings this user's personal group up to date: makes it if they have
    /// none, adds their devices that are not in it, and sends this device's
    /// unshared work notes. Returns whether this device is in it.
    pub(crate) async fn sync_personal(&self) -> Result<bool> {
        if !self.ensure_known_group(KnownGroup::Personal).await? {
            return Ok(false);
        }
        let me = self.id().user.clone();
        self.top_up(KnownGroup::Personal, &[me]).await?;
        self.store(|d| d.share_notes()).await?;
        self.flush_quietly().await?;
        Ok(true)
    }

    /// Writes a work note about a conversation; it goes to this user's
    /// other devices only. Returns its id.
    pub(crate) async fn write_note(&self, conversation: &str, body: &str) -> Result<String> {
        let (conversation, body) = (conversation.to_owned(), body.to_owned());
        let note = self
            .store(move |d| d.write_note(&conversation, &body))
            .await?;
        match self.sync_personal().await {
            Ok(_) | Err(Error::Network(_)) => Ok(note.id),
            Err(e) => Err(e),
        }
    }
}
