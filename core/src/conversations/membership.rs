//! Conversations and their members: create, add, remove, the two-phase
//! commit with the server, and joining from a Welcome.

use openmls::prelude::*;

use crate::device::{
    CommitOut, Device, KnownGroup, Outgoing, OutgoingKind, Received, Session, record_epoch,
};
use crate::devices::vouching::{self, CommitApprovals, Trust, Verdict};
use crate::{
    error::{Error, Result},
    identity::{Certified, MemberId},
    mls,
    model::{Content, Conversation, ConversationKind, PatientRef, validate_title},
    store::{StoreError, queries},
};

impl Device {
    /// Starts a conversation with this device as its only member.
    pub fn create_conversation(
        &self,
        title: &str,
        kind: ConversationKind,
        patient: Option<PatientRef>,
    ) -> Result<Conversation> {
        validate_title(title)?;
        let id = uuid::Uuid::new_v4().to_string();
        self.new_group(&id, title.trim(), kind, patient)
    }

    /// Creates a group with any id, as a changed app could: for the tests
    /// that prove a well-known group cannot be squatted.
    #[cfg(feature = "testing")]
    pub fn create_group_with_id(&self, id: &str) -> Result<Conversation> {
        self.new_group(id, "squatted", ConversationKind::Group, None)
    }

    /// Creates the MLS group `id` with this device as its only member.
    pub(crate) fn new_group(
        &self,
        id: &str,
        title: &str,
        kind: ConversationKind,
        patient: Option<PatientRef>,
    ) -> Result<Conversation> {
        self.transact(|s| {
            let group = MlsGroup::new_with_group_id(
                &s.provider,
                &self.signer,
                &mls::create_config(),
                GroupId::from_slice(id.as_bytes()),
                self.credential(),
            )
            .map_err(mls::mls_err)?;
            let conversation = Conversation {
                id: id.to_owned(),
                title: title.to_owned(),
                kind,
                patient,
                epoch: group.epoch().as_u64(),
                active: true,
            };
            queries::insert_conversation(s.conn(), &conversation)?;
            queries::replace_members(s.conn(), id, &mls::members(&group)?)?;
            s.groups.insert(id.to_owned(), group);
            Ok(conversation)
        })
    }

    /// Commits adding the devices whose KeyPackages are given. The commit
    /// waits for [`Device::commit_accepted`] or [`Device::commit_refused`].
    #[cfg(any(test, feature = "testing"))]
    pub fn add_members(&self, conversation: &str, key_packages: &[Vec<u8>]) -> Result<CommitOut> {
        self.add_approved_members(conversation, key_packages, CommitApprovals::default())
    }

    /// Commits adding devices, with the approvals that vouch for them (see
    /// [`crate::devices::vouching`]) in the commit's authenticated data, so
    /// every member checks them too. A device this device cannot accept as
    /// vouched for is [`Error::Untrusted`] and nothing changes.
    pub(crate) fn add_approved_members(
        &self,
        conversation: &str,
        key_packages: &[Vec<u8>],
        approvals: CommitApprovals,
    ) -> Result<CommitOut> {
        self.commit_adds(conversation, key_packages, approvals, true)
    }

    /// Commits adding devices without judging them, with any approvals, as
    /// a changed app of a hostile member could: for the tests that prove
    /// every other member refuses such a commit.
    #[cfg(feature = "testing")]
    pub fn add_members_unjudged(
        &self,
        conversation: &str,
        key_packages: &[Vec<u8>],
        approvals: Vec<(String, pieper_wire::Approval)>,
    ) -> Result<CommitOut> {
        self.commit_adds(
            conversation,
            key_packages,
            CommitApprovals { approvals },
            false,
        )
    }

    fn commit_adds(
        &self,
        conversation: &str,
        key_packages: &[Vec<u8>],
        approvals: CommitApprovals,
        judge: bool,
    ) -> Result<CommitOut> {
        if key_packages.is_empty() {
            return Err(Error::invalid("key_packages", "none given"));
        }
        let key_packages = key_packages
            .iter()
            .map(|kp| mls::parse_key_package(&self.crypto, kp))
            .collect::<Result<Vec<_>>>()?;
        // Only devices whose certificate checks out are added.
        let newcomers = key_packages
            .iter()
            .map(|kp| {
                let leaf = kp.leaf_node();
                self.meet(leaf.credential(), leaf.signature_key().as_slice())
            })
            .collect::<Result<Vec<_>>>()?;
        let added = newcomers
            .iter()
            .map(|n| n.certified.id.device.clone())
            .collect();
        let aad = approvals.to_bytes()?;
        self.transact(|s| {
            let resets = if judge {
                self.admit(s.conn(), &newcomers, &approvals, |certified, _| {
                    Err(unvouched(&certified.id))
                })?
            } else {
                Vec::new()
            };
            let (provider, group) = s.operational_group(conversation)?;
            group.set_aad(aad.clone());
            let (commit, welcome, _) = group
                .add_members(provider, &self.signer, &key_packages)
                .map_err(mls::mls_err)?;
            let epoch = group.epoch().as_u64();
            let mut out = queue_commit(
                s,
                conversation,
                epoch,
                &commit,
                Some(&welcome),
                added,
                Vec::new(),
            )?;
            out.resets = resets;
            Ok(out)
        })
    }

    /// Commits removing the given member devices.
    pub fn remove_members(&self, conversation: &str, devices: &[MemberId]) -> Result<CommitOut> {
        if devices.is_empty() {
            return Err(Error::invalid("devices", "none given"));
        }
        if devices.contains(&self.me) {
            return Err(Error::invalid("devices", "a device cannot remove itself"));
        }
        self.transact(|s| {
            let (provider, group) = s.operational_group(conversation)?;
            let members = mls::members(group)?;
            let leaves = devices
                .iter()
                .map(|d| {
                    members
                        .iter()
                        .find(|m| &m.id == d)
                        .map(|m| LeafNodeIndex::new(m.leaf_index))
                        .ok_or(Error::NotFound { what: "member" })
                })
                .collect::<Result<Vec<_>>>()?;
            let (commit, welcome, _) = group
                .remove_members(provider, &self.signer, &leaves)
                .map_err(mls::mls_err)?;
            let epoch = group.epoch().as_u64();
            let removed = devices.iter().map(|d| d.device.clone()).collect();
            queue_commit(
                s,
                conversation,
                epoch,
                &commit,
                welcome.as_ref(),
                Vec::new(),
                removed,
            )
        })
    }

    /// The server accepted this device's pending commit: apply it. After an
    /// add, returns the conversation's details for the new members, to send.
    pub fn commit_accepted(&self, conversation: &str) -> Result<Vec<Outgoing>> {
        self.transact(|s| {
            let conn = s.conn();
            let (provider, group) = s.group(conversation)?;
            let pending = group.pending_commit().ok_or(Error::NotFound {
                what: "pending commit",
            })?;
            let had_adds = pending.add_proposals().next().is_some();
            // A commit with an update path (an update, and OpenMLS puts one
            // in every add and removal) gave this device's leaf new keys;
            // it counts as the update once it carries the current
            // certificate too (after a renewal, only an update does).
            let credential = self.credential();
            let renewed_leaf = pending
                .update_path_leaf_node()
                .is_some_and(|leaf| leaf.credential() == &credential.credential);
            group.merge_pending_commit(provider).map_err(mls::mls_err)?;
            queries::remove_commit_from_outbox(conn, conversation)?;
            record_epoch(conn, group, conversation)?;
            if renewed_leaf {
                crate::keys::leaf_updated(conn, conversation)?;
            }
            if !had_adds {
                return Ok(Vec::new());
            }
            let c = queries::conversation(s.conn(), conversation)?.ok_or(Error::NotFound {
                what: "conversation",
            })?;
            let details = Content::Details {
                title: c.title,
                kind: c.kind,
                patient: c.patient,
                ttl_secs: crate::privacy::conversation_ttl(s.conn(), conversation)?,
            };
            let id = uuid::Uuid::new_v4().to_string();
            Ok(vec![self.encrypt(s, conversation, &id, &details)?])
        })
    }

    /// The server refused this device's pending commit (another commit won
    /// the epoch): drop it, so the conversation can change again.
    pub fn commit_refused(&self, conversation: &str) -> Result<()> {
        self.transact(|s| {
            let (provider, group) = s.group(conversation)?;
            group
                .clear_pending_commit(provider.storage())
                .map_err(Error::from)?;
            queries::remove_commit_from_outbox(s.conn(), conversation)
        })
    }

    /// Joins a conversation from a Welcome addressed to this device.
    /// A well-known group holds only who belongs there: this user's
    /// personal group only this user's devices (a colleague who made it
    /// first would read their work notes). The practice and spoed groups
    /// hold only the practice's devices, which every certificate check
    /// already ensures.
    pub(crate) fn check_member_of(&self, group: &str, member: &Certified) -> Result<()> {
        if group == self.known_group_id(KnownGroup::Personal) && member.id.user != self.me.user {
            return Err(Error::Untrusted {
                reason: "another user's device in this user's personal group".into(),
            });
        }
        Ok(())
    }

    /// Whether to add a KeyPackage the server claimed for a device: its
    /// certificate must check out and name the user and device it was
    /// claimed for ([`Error::Untrusted`] if not, or if its approval is
    /// forged). A device is added only once this device can check who
    /// vouches for it (`false` until then): the first device of a user this
    /// device meets, or one approved by a voucher it knows. The server
    /// alone cannot add one.
    pub(crate) fn check_claimed(&self, claimed: &pieper_wire::ClaimedKeyPackage) -> Result<bool> {
        let key_package = mls::parse_key_package(&self.crypto, &claimed.key_package.0)?;
        let leaf = key_package.leaf_node();
        let newcomer = self.meet(leaf.credential(), leaf.signature_key().as_slice())?;
        let owner = &newcomer.certified.id;
        if owner.user != claimed.user_id || owner.device != claimed.device_id {
            return Err(Error::Untrusted {
                reason: format!(
                    "a KeyPackage claimed for device {} names {owner}",
                    claimed.device_id
                ),
            });
        }
        self.store.read(|conn| {
            Ok(
                match self.judge(conn, &newcomer, claimed.approval.as_ref())? {
                    Verdict::Known => !vouching::is_gone(conn, &owner.device)?,
                    Verdict::Accept(_) => true,
                    Verdict::Unchecked | Verdict::Unvouched => false,
                },
            )
        })
    }

    /// Joins a conversation from a Welcome: every member's certificate must
    /// check out, and its sender must be the device the server names.
    pub(crate) fn join(
        &self,
        s: &mut Session<'_, '_>,
        welcome: Welcome,
        sender_device: Option<&str>,
    ) -> Result<Received> {
        let staged =
            StagedWelcome::new_from_welcome(&s.provider, &mls::join_config(), welcome, None)
                .map_err(|e| match e {
                    WelcomeError::NoMatchingKeyPackage | WelcomeError::NoMatchingEncryptionKey => {
                        Error::NotMember
                    }
                    WelcomeError::StorageError(e) => StoreError::from(e).into(),
                    other => mls::mls_err(other),
                })?;
        let id = String::from_utf8(staged.group_context().group_id().as_slice().to_vec())
            .map_err(|_| Error::invalid("welcome", "group id is not a Pieper conversation"))?;
        let group_id =
            String::from_utf8_lossy(staged.group_context().group_id().as_slice()).into_owned();
        let sender = staged.welcome_sender().map_err(mls::mls_err)?;
        let sender = self.certified(sender.credential(), sender.signature_key().as_slice())?;
        super::messaging::check_sender_device(&sender, sender_device)?;
        // Every member is met now: the first devices of users this device
        // never met on their certificate; a new device of a user it knows
        // as brought in by whoever sent the Welcome (a Welcome carries no
        // approvals).
        let met = staged
            .members()
            .map(|member| {
                let newcomer = self.meet(&member.credential, &member.signature_key)?;
                self.check_member_of(&group_id, &newcomer.certified)?;
                Ok(newcomer)
            })
            .collect::<Result<Vec<_>>>()?;
        self.admit(s.conn(), &met, &CommitApprovals::default(), |_, _| {
            Ok(Trust::Introduced {
                by_user: sender.id.user.clone(),
            })
        })?;
        let welcome_epoch = staged.group_context().epoch().as_u64();
        // A conversation this device is in already is a replay, unless this
        // device fell behind in it (it asked to be added again): then its
        // stale group state makes way. One it has only from a backup becomes
        // active again, keeping its details.
        let restored = match queries::conversation(s.conn(), &id)? {
            Some(c) if c.active && c.epoch >= welcome_epoch => return Err(Error::Replay),
            // Its stale group was dropped when it asked (see
            // `forget_stale_group`).
            Some(c) if c.active => Some(c),
            other => other,
        };
        let group = staged.into_group(&s.provider).map_err(mls::mls_err)?;
        // The well-known groups are named by their id; others by the
        // details that follow the Welcome.
        let (title, kind) =
            self.known_group(&id)
                .map_or((String::new(), ConversationKind::Group), |k| {
                    let (title, kind) = crate::consent::engine::known_group_look(k);
                    (title.to_owned(), kind)
                });
        let conversation = Conversation {
            id: id.clone(),
            title,
            kind,
            patient: None,
            epoch: group.epoch().as_u64(),
            active: true,
        };
        queries::insert_conversation(s.conn(), &conversation)?;
        queries::replace_members(s.conn(), &id, &mls::members(&group)?)?;
        s.groups.insert(id, group);
        let conversation = match restored {
            Some(c) => Conversation {
                epoch: conversation.epoch,
                active: true,
                ..c
            },
            None => conversation,
        };
        Ok(Received::Joined(conversation))
    }
}

/// Puts a new commit (and its Welcome) in the outbox.
pub(crate) fn queue_commit(
    s: &Session<'_, '_>,
    conversation: &str,
    epoch: u64,
    commit: &MlsMessageOut,
    welcome: Option<&MlsMessageOut>,
    add_devices: Vec<String>,
    remove_devices: Vec<String>,
) -> Result<CommitOut> {
    let out = CommitOut {
        conversation: conversation.to_owned(),
        epoch,
        commit: mls::to_bytes(commit)?,
        welcome: welcome.map(mls::to_bytes).transpose()?,
        add_devices,
        remove_devices,
        resets: Vec::new(),
    };
    queries::push_outbox(
        s.conn(),
        &Outgoing {
            id: uuid::Uuid::new_v4().to_string(),
            conversation: conversation.to_owned(),
            kind: OutgoingKind::Commit,
            epoch: out.epoch,
            payload: out.commit.clone(),
            welcome: out.welcome.clone(),
            add_devices: out.add_devices.clone(),
            remove_devices: out.remove_devices.clone(),
            delivery: super::messaging::delivery(s.conn(), conversation, None)?,
        },
    )?;
    Ok(out)
}

/// A device whose user this device knows, that none of the user's devices
/// (nor their recovery key, nor a manager's reset) vouched for.
pub(crate) fn unvouched(id: &MemberId) -> Error {
    Error::Untrusted {
        reason: format!(
            "device {} of {} was approved by none of their devices",
            id.device, id.user
        ),
    }
}
