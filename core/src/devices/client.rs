//! [`DevicesClient`]: this user's devices (a manager: the practice's) —
//! the list, revoking a lost one, adding new ones to every conversation,
//! healing members that fell behind, KeyPackages, and the history backup.

use std::collections::HashSet;

use crate::{
    client::{Client, KEY_PACKAGES_AT_LOGIN, KEY_PACKAGES_LOW},
    error::{Error, Result},
    identity::MemberId,
    model::ConversationKind,
};

/// This user's devices: `client.devices()`.
pub struct DevicesClient<'c> {
    pub(crate) client: &'c Client,
}

impl Client {
    /// This user's devices.
    pub fn devices(&self) -> DevicesClient<'_> {
        DevicesClient { client: self }
    }
}

impl DevicesClient<'_> {
    /// Adds again the member devices that asked for it (they fell behind
    /// and cannot decrypt): removes each from the conversation, adds it
    /// back with a fresh KeyPackage, and sends the conversation's recent
    /// history so it sees what it missed. Returns how many were healed.
    pub async fn heal_others(&self) -> Result<usize> {
        let result = self.client.api()?.heal_requests().await;
        let requests = self.client.server(result).await?;
        let mut healed = 0;
        for request in requests {
            let conv = request.conversation.clone();
            let stuck: Option<MemberId> = self
                .client
                .store(move |d| d.members(&conv))
                .await?
                .into_iter()
                .map(|m| m.id)
                .find(|id| id.device == request.device);
            let Some(stuck) = stuck else { continue };
            match self
                .client
                .conversations()
                .remove_devices(&request.conversation, std::slice::from_ref(&stuck))
                .await
            {
                Ok(()) => {}
                Err(Error::NotMember | Error::Rejected { .. }) => continue,
                Err(e) => return Err(e),
            }
            self.client
                .add_devices(
                    &request.conversation,
                    std::slice::from_ref(&stuck.user),
                    true,
                )
                .await?;
            let per_conversation = self
                .client
                .store(|d| d.practice_rules())
                .await?
                .history_messages;
            let conv = request.conversation.clone();
            self.client
                .store(move |d| d.share_history_in(&conv, per_conversation))
                .await?;
            self.client.flush_quietly().await?;
            healed += 1;
        }
        Ok(healed)
    }

    /// Removes the practice's revoked devices from every conversation this
    /// device is in (an MLS commit each), so they cannot read what is sent
    /// after. Returns in how many conversations a device was removed.
    pub async fn remove_revoked(&self) -> Result<usize> {
        let result = self.client.api()?.revoked_devices().await;
        let revoked: HashSet<String> = self.client.server(result).await?.into_iter().collect();
        if revoked.is_empty() {
            return Ok(0);
        }
        let gone: Vec<String> = revoked.iter().cloned().collect();
        self.client.store(move |d| d.forget_revoked(&gone)).await?;
        let conversations = self.client.store(|d| d.all_conversations()).await?;
        let mut removed = 0;
        for conversation in conversations.iter().filter(|c| c.active) {
            let conv = conversation.id.clone();
            let gone: Vec<MemberId> = self
                .client
                .store(move |d| d.members(&conv))
                .await?
                .into_iter()
                .map(|m| m.id)
                .filter(|id| revoked.contains(&id.device))
                .collect();
            if gone.is_empty() {
                continue;
            }
            match self
                .client
                .conversations()
                .remove_devices(&conversation.id, &gone)
                .await
            {
                Ok(()) => removed += 1,
                // Another member removed it first, or this device left.
                Err(Error::NotMember | Error::Rejected { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(removed)
    }

    /// Uploads `count` one-time KeyPackages and a fresh last-resort one.
    pub async fn publish_key_packages(&self, count: usize) -> Result<()> {
        self.client.upload_key_packages(count, true, false).await
    }

    /// How many one-time KeyPackages the server still holds for this device.
    pub async fn key_packages_left(&self) -> Result<u32> {
        let result = self.client.api()?.key_package_count().await;
        Ok(self.client.server(result).await?.one_time)
    }

    /// Uploads one-time KeyPackages when the server holds fewer than five,
    /// back up to the twenty a sign-in uploads; without
    /// this every add would use the last-resort package, whose private key
    /// is kept. Returns how many it uploaded.
    pub async fn top_up_key_packages(&self) -> Result<usize> {
        let left = self.key_packages_left().await? as usize;
        if left >= KEY_PACKAGES_LOW {
            return Ok(0);
        }
        let count = KEY_PACKAGES_AT_LOGIN - left;
        self.client.upload_key_packages(count, false, false).await?;
        Ok(count)
    }

    /// This user's devices (a manager: the practice's).
    pub async fn list(&self) -> Result<Vec<pieper_wire::DeviceInfo>> {
        let result = self.client.api()?.devices().await;
        self.client.server(result).await
    }

    /// Revokes a device (lost or replaced): its token stops at once, and
    /// this device removes it from its conversations (the others' devices do
    /// the same within their next membership check).
    pub async fn revoke(&self, device: &str) -> Result<()> {
        let result = self.client.api()?.revoke(device).await;
        self.client.server(result).await?;
        self.remove_revoked().await.map(|_| ())
    }

    /// The code this device shows while another device of this user
    /// approves it ("is this the code on your new device?").
    pub fn approval_code(&self) -> Result<String> {
        self.client.read(|d| Ok(d.approval_code()))
    }

    /// Approves `device`, another device of this user, after the person
    /// compared `code` with the one it shows. Only approved devices are
    /// added by this user's devices, so one that the server slipped in is
    /// never given this user's conversations or history.
    pub async fn approve(&self, device: &str, code: &str) -> Result<()> {
        self.vouch(device, code, pieper_wire::ApprovalKind::Own)
            .await
    }

    /// A practice manager resets the identity of a user who lost every
    /// device and their recovery code: vouches for the user's new `device`
    /// after comparing `code` with the one it shows, in person. Every
    /// member's device takes it in and shows that the identity was reset
    /// ([`crate::Event::IdentityReset`]).
    pub async fn reset_identity(&self, device: &str, code: &str) -> Result<()> {
        self.client.read(|d| d.check_manages_practice())?;
        self.vouch(device, code, pieper_wire::ApprovalKind::Reset)
            .await
    }

    async fn vouch(&self, device: &str, code: &str, kind: pieper_wire::ApprovalKind) -> Result<()> {
        let own = kind == pieper_wire::ApprovalKind::Own;
        let me = self.client.id().clone();
        let listed = self
            .list()
            .await?
            .into_iter()
            .find(|d| d.id == device && (d.user_id == me.user) == own && d.revoked_at.is_none())
            .ok_or(Error::NotFound { what: "device" })?;
        let certificate = listed.certificate.ok_or_else(|| Error::Untrusted {
            reason: "the device has no certificate".into(),
        })?;
        let code = code.to_owned();
        let signature = self
            .client
            .store(move |d| match kind {
                pieper_wire::ApprovalKind::Reset => d.reset_identity(&certificate.0, &code),
                _ => d.approve(&certificate.0, &code),
            })
            .await?;
        let approval = pieper_wire::Approval {
            by_device: me.device,
            kind,
            signature: signature.into(),
        };
        let result = self.client.api()?.approve(device, &approval).await;
        self.client.server(result).await
    }

    /// Every device of the practice this device met, and why it accepts
    /// it: the first device of a user on the server's word, later ones
    /// approved by the user's devices or recovery code, or an identity a
    /// manager reset.
    pub fn known(&self) -> Result<Vec<crate::devices::KnownDevice>> {
        self.client.read(|d| d.known_devices())
    }

    /// Adds this user's devices that enrolled since to every conversation
    /// this device is in (they read from their enrolment on).
    pub async fn add_my_new_devices(&self) -> Result<usize> {
        let mine: Vec<String> = self
            .client
            .devices()
            .list()
            .await?
            .into_iter()
            .filter(|d| {
                d.user_id == self.client.id().user
                    && d.revoked_at.is_none()
                    && (d.approved_by.is_some() || d.id == self.client.id().device)
            })
            .map(|d| d.id)
            .collect();
        let fresh: Vec<String> = {
            let known = self
                .client
                .inner
                .known_devices
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            mine.iter()
                .filter(|d| !known.contains(*d))
                .cloned()
                .collect()
        };
        if fresh.is_empty() {
            return Ok(0);
        }
        let conversations = self.client.store(|d| d.all_conversations()).await?;
        let mut added = 0;
        let mut joined: Vec<String> = Vec::new();
        for conversation in conversations.iter().filter(|c| c.active) {
            let conv = conversation.id.clone();
            let members: HashSet<String> = self
                .client
                .store(move |d| d.members(&conv))
                .await?
                .into_iter()
                .map(|m| m.id.device)
                .collect();
            if fresh.iter().any(|d| !members.contains(d)) {
                self.client
                    .conversations()
                    .add_users(
                        &conversation.id,
                        std::slice::from_ref(&self.client.id().user),
                    )
                    .await?;
                added += 1;
                if !matches!(
                    conversation.kind,
                    ConversationKind::Practice | ConversationKind::Personal
                ) {
                    joined.push(conversation.id.clone());
                }
            }
        }
        if !joined.is_empty() {
            self.client.send_history(joined).await?;
        }
        self.client
            .inner
            .known_devices
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(mine);
        Ok(added)
    }
}
