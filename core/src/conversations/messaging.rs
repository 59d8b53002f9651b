//! Messages: send through the outbox, and receive envelopes one by one or a
//! batch per transaction.

use openmls::prelude::*;
use rusqlite::Connection;

use crate::device::{Device, KnownGroup, Outgoing, OutgoingKind, Received, Session, record_epoch};
use crate::devices::vouching::{self, CommitApprovals, Trust, Verdict};
use crate::{
    consent,
    error::{Error, Refusal, Result},
    identity::{Certified, MemberId},
    mls,
    model::{
        Content, Message, MessageKind, MessageState, NewMessage, validate_new_message,
        validate_title,
    },
    store::queries,
    tasks,
};

impl Device {
    /// Encrypts and stores a message (state pending) and queues it for the
    /// server, in one transaction.
    pub fn send(&self, conversation: &str, message: NewMessage) -> Result<Outgoing> {
        validate_new_message(&message)?;
        if message.kind == MessageKind::Werkaantekening {
            return Err(Error::invalid(
                "kind",
                "a work note is written with write_note: it never goes to the conversation",
            ));
        }
        let id = uuid::Uuid::new_v4().to_string();
        let sent_at = queries::now_ms();
        self.transact(|s| {
            s.operational_group(conversation)?;
            let expires_at =
                crate::privacy::expiry_for(s.conn(), conversation, message.ttl_secs, sent_at)?;
            let stored = Message {
                id: id.clone(),
                conversation: conversation.to_owned(),
                sender: self.me.clone(),
                body: message.body,
                priority: message.priority,
                sent_at,
                reply_to: message.reply_to,
                attachments: message.attachments,
                state: MessageState::Pending,
                kind: message.kind,
                triage: message.triage,
                spoed: None,
                documentation: None,
                expires_at,
                expired: false,
                resent_by: None,
            };
            let outgoing = self.encrypt(s, conversation, &id, &stored.to_content())?;
            queries::insert_message(s.conn(), &stored, outgoing.epoch)?;
            if stored.triage.is_some_and(crate::spoed::Triage::is_spoed) {
                self.post_spoed(s, &stored)?;
            }
            Ok(outgoing)
        })
    }

    /// Posts a spoed message into the practice's spoed channel (if this
    /// device is in it), routed to whoever is on duty now.
    pub(crate) fn post_spoed(&self, s: &mut Session<'_, '_>, original: &Message) -> Result<()> {
        let channel = self.known_group_id(KnownGroup::Spoed);
        if original.conversation == channel
            || !queries::conversation(s.conn(), &channel)?.is_some_and(|c| c.active)
        {
            return Ok(());
        }
        let routed_to = crate::spoed::route(s.conn(), original.sent_at)?;
        let patient =
            queries::conversation(s.conn(), &original.conversation)?.and_then(|c| c.patient);
        let post = Message {
            id: uuid::Uuid::new_v4().to_string(),
            conversation: channel.clone(),
            priority: crate::model::Priority::Urgent,
            reply_to: None,
            attachments: Vec::new(),
            kind: MessageKind::Overleg,
            spoed: Some(crate::model::SpoedPost {
                of_conversation: original.conversation.clone(),
                of_message: original.id.clone(),
                routed_to,
                taken_by: None,
                patient,
            }),
            ..original.clone()
        };
        let out = self.encrypt(s, &channel, &post.id, &post.to_content())?;
        queries::insert_message(s.conn(), &post, out.epoch)?;
        Ok(())
    }

    /// Writes a work note about a conversation: stored here (pending) and
    /// shared only with this user's other devices, through their personal
    /// group, once this device is in it.
    pub fn write_note(&self, conversation: &str, body: &str) -> Result<Message> {
        let note = NewMessage::note(body);
        validate_new_message(&note)?;
        if !self.conversation(conversation)?.active {
            return Err(Error::NotMember);
        }
        let message = Message::note(
            uuid::Uuid::new_v4().to_string(),
            conversation.to_owned(),
            self.me.clone(),
            note.body,
            queries::now_ms(),
            MessageState::Pending,
        );
        let patient = self.conversation(conversation)?.patient;
        self.store.write(|tx| {
            queries::insert_message(tx, &message, 0)?;
            if let Some(patient) = &patient {
                crate::privacy::audit::record(
                    tx,
                    crate::privacy::AccessAction::NoteWrite,
                    Some(patient),
                    &format!("conversation={conversation} note={}", message.id),
                )?;
            }
            Ok(())
        })?;
        Ok(message)
    }

    /// Queues the work notes not yet shared for this user's other devices,
    /// if this device is in their personal group.
    pub(crate) fn share_notes(&self) -> Result<usize> {
        let queued = self.queue_in(KnownGroup::Personal, |s, group| {
            let notes = queries::unshared_notes(s.conn())?;
            for note in &notes {
                let content = Content::Note {
                    conversation: note.conversation.clone(),
                    id: note.id.clone(),
                    body: note.body.clone(),
                    sent_at: note.sent_at,
                };
                self.encrypt(s, group, &note.id, &content)?;
                queries::set_shared(s.conn(), &note.id)?;
            }
            Ok(notes.len())
        })?;
        Ok(queued.unwrap_or_default())
    }

    /// Encrypts `content` for the conversation and puts it in the outbox.
    pub(crate) fn encrypt(
        &self,
        s: &mut Session<'_, '_>,
        conversation: &str,
        id: &str,
        content: &Content,
    ) -> Result<Outgoing> {
        self.encrypt_bytes(s, conversation, id, &content.to_bytes()?, Some(content))
    }

    /// Encrypts application bytes and puts them in the outbox; `content`,
    /// when the bytes are one, decides how the server delivers them.
    fn encrypt_bytes(
        &self,
        s: &mut Session<'_, '_>,
        conversation: &str,
        id: &str,
        bytes: &[u8],
        content: Option<&Content>,
    ) -> Result<Outgoing> {
        let conn = s.conn();
        let (provider, group) = s.group(conversation)?;
        let out = group
            .create_message(provider, &self.signer, bytes)
            .map_err(|e| match e {
                CreateMessageError::GroupStateError(MlsGroupStateError::PendingCommit) => {
                    Error::PendingCommit
                }
                CreateMessageError::GroupStateError(MlsGroupStateError::UseAfterEviction) => {
                    Error::NotMember
                }
                other => mls::mls_err(other),
            })?;
        let outgoing = Outgoing {
            id: id.to_owned(),
            conversation: conversation.to_owned(),
            kind: OutgoingKind::Application,
            epoch: group.epoch().as_u64(),
            payload: mls::to_bytes(&out)?,
            welcome: None,
            add_devices: Vec::new(),
            remove_devices: Vec::new(),
            delivery: delivery(conn, conversation, content)?,
        };
        queries::push_outbox(conn, &outgoing)?;
        crate::keys::note_activity(conn, conversation)?;
        Ok(outgoing)
    }

    /// Encrypts any bytes as application content (see
    /// `Client::send_raw_content`): tests only.
    #[cfg(feature = "testing")]
    pub fn send_raw(&self, conversation: &str, bytes: &[u8]) -> Result<Outgoing> {
        let id = uuid::Uuid::new_v4().to_string();
        self.transact(|s| {
            s.operational_group(conversation)?;
            self.encrypt_bytes(s, conversation, &id, bytes, None)
        })
    }

    // Used by the core's own tests and benchmarks only.
    #[cfg(any(test, feature = "testing"))]
    /// The server stored an application envelope: take it off the outbox and
    /// mark its message sent.
    pub fn mark_sent(&self, id: &str) -> Result<()> {
        self.sent(id, None)
    }

    /// [`Device::mark_sent`] with the sequence number the server gave it,
    /// which places practice data it carried in the practice log.
    pub(crate) fn sent(&self, id: &str, seq: Option<u64>) -> Result<()> {
        self.store.write(|tx| {
            queries::remove_message_from_outbox(tx, id)?;
            if let Some(seq) = seq {
                crate::privacy::key_sent(tx, id, seq)?;
                consent::log::batch_sent(tx, id, seq)?;
                tasks::change_sent(tx, id, seq)?;
                crate::spoed::setting_sent(tx, id, seq)?;
            }
            match queries::set_message_state(tx, id, MessageState::Sent) {
                // Details and practice data have no message.
                Err(Error::NotFound { .. }) => Ok(()),
                other => other,
            }
        })
    }

    /// Drops a queued envelope the server refused for good; practice data
    /// it carried goes out again with the next batch.
    pub(crate) fn discard_outgoing(&self, id: &str) -> Result<()> {
        self.store.write(|tx| {
            queries::remove_message_from_outbox(tx, id)?;
            consent::log::batch_refused(tx, id)
        })
    }

    /// What still has to go to the server, oldest first.
    pub fn outbox(&self) -> Result<Vec<Outgoing>> {
        self.queued(None)
    }

    /// The oldest envelope waiting for the server, if any.
    pub fn next_outgoing(&self) -> Result<Option<Outgoing>> {
        Ok(self.queued(Some(1))?.into_iter().next())
    }

    pub(crate) fn queued(&self, limit: Option<u32>) -> Result<Vec<Outgoing>> {
        self.store.read(|c| queries::outbox(c, limit))
    }

    // Used by the core's own tests and benchmarks only.
    #[cfg(any(test, feature = "testing"))]
    /// Applies an envelope from the server: a Welcome, a commit, a proposal
    /// or an application message. On any error nothing is stored.
    pub fn receive(&self, bytes: &[u8]) -> Result<Received> {
        self.transact(|s| self.apply_envelope(s, &Arrived::bare(bytes)))
    }

    // Used by the core's own tests and benchmarks only.
    #[cfg(any(test, feature = "testing"))]
    /// Applies envelopes in server order in one transaction, each under its
    /// own savepoint: one that fails is rolled back alone and reported in its
    /// place, the others are applied. Catching up this way writes the group
    /// state once per batch instead of once per message.
    pub fn receive_batch(&self, envelopes: &[Vec<u8>]) -> Result<Vec<Result<Received>>> {
        let unnumbered: Vec<Arrived<'_>> = envelopes.iter().map(|e| Arrived::bare(e)).collect();
        self.receive_page(&unnumbered, None)
    }

    /// [`Device::receive_batch`] for envelopes with the server's sequence
    /// number in their conversation, moving the sync cursor to `cursor` in
    /// the same transaction: a crash never applies a page twice or skips one.
    pub(crate) fn receive_page(
        &self,
        envelopes: &[Arrived<'_>],
        cursor: Option<u64>,
    ) -> Result<Vec<Result<Received>>> {
        self.transact(|s| {
            if let Some(cursor) = cursor {
                queries::set_cursor(s.conn(), cursor)?;
            }
            let mut results = Vec::with_capacity(envelopes.len());
            for arrived in envelopes {
                s.conn().execute_batch("SAVEPOINT envelope")?;
                let result = self.apply_envelope(s, arrived);
                if result.is_err() {
                    s.conn()
                        .execute_batch("ROLLBACK TO envelope; RELEASE envelope")?;
                    // The failed envelope may have changed a group in memory
                    // before failing; reload from the rolled-back state.
                    s.groups.clear();
                } else {
                    s.conn().execute_batch("RELEASE envelope")?;
                }
                results.push(result);
            }
            Ok(results)
        })
    }

    pub(crate) fn apply_envelope(
        &self,
        s: &mut Session<'_, '_>,
        arrived: &Arrived<'_>,
    ) -> Result<Received> {
        match mls::parse(arrived.bytes)?.extract() {
            MlsMessageBodyIn::Welcome(welcome) => self.join(s, welcome, arrived.sender_device),
            MlsMessageBodyIn::PrivateMessage(m) => self.process(s, m.into(), arrived),
            MlsMessageBodyIn::PublicMessage(m) => self.process(s, m.into(), arrived),
            _ => Err(Error::invalid("message", "not for a conversation")),
        }
    }

    pub(crate) fn process(
        &self,
        s: &mut Session<'_, '_>,
        message: ProtocolMessage,
        arrived: &Arrived<'_>,
    ) -> Result<Received> {
        let seq = arrived.seq;
        let conversation = String::from_utf8(message.group_id().as_slice().to_vec())
            .map_err(|_| Error::NotMember)?;
        let message_epoch = message.epoch().as_u64();
        let conn = s.conn();
        match queries::conversation(conn, &conversation)? {
            Some(c) if c.active => {}
            _ => return Err(Error::NotMember),
        }
        let (provider, group) = s.group(&conversation)?;
        let current_epoch = group.epoch().as_u64();
        let processed = group
            .process_message(provider, message)
            .map_err(|e| mls::map_process_error(e, message_epoch, current_epoch))?;
        // Who sent it comes from the verified certificate of its leaf, and
        // must be the device the server says sent it.
        let sender = self.certified_sender(group, processed.sender(), arrived.sender_device)?;
        let resets = match processed.content() {
            ProcessedMessageContent::StagedCommitMessage(staged) => {
                self.check_commit(conn, group, &sender, staged, processed.aad())?
            }
            _ => Vec::new(),
        };
        match processed.into_content() {
            ProcessedMessageContent::ApplicationMessage(app) => {
                crate::keys::note_activity(conn, &conversation)?;
                let content = Content::from_bytes(&app.into_bytes())?;
                self.dispatch(conn, &conversation, sender, content, seq, message_epoch)
            }
            ProcessedMessageContent::ProposalMessage(proposal) => {
                group
                    .store_pending_proposal(provider.storage(), *proposal)
                    .map_err(Error::from)?;
                Ok(Received::Proposal { conversation })
            }
            ProcessedMessageContent::ExternalJoinProposalMessage(_) => Err(Error::invalid(
                "message",
                "external join proposals are not accepted",
            )),
            ProcessedMessageContent::StagedCommitMessage(staged) => {
                let removed = staged.self_removed();
                group
                    .merge_staged_commit(provider, *staged)
                    .map_err(mls::mls_err)?;
                if removed {
                    queries::set_epoch(conn, &conversation, group.epoch().as_u64(), false)?;
                    return Ok(Received::Removed { conversation });
                }
                let epoch = record_epoch(conn, group, &conversation)?;
                Ok(Received::Commit {
                    conversation,
                    epoch,
                    resets,
                })
            }
            ProcessedMessageContent::OwnPendingCommit
            | ProcessedMessageContent::OwnPrivateMessage => Ok(Received::Own),
        }
    }

    /// The one place incoming content goes to its feature: the verified
    /// sender (from the MLS credential, never the content) and the
    /// conversation it arrived in decide what a kind may do.
    fn dispatch(
        &self,
        conn: &Connection,
        conversation: &str,
        sender: Certified,
        content: Content,
        seq: Option<u64>,
        epoch: u64,
    ) -> Result<Received> {
        match content {
            Content::Text { .. } | Content::Details { .. } | Content::Unsupported { .. } => {
                apply_content(conn, conversation, &sender, content, epoch)
            }
            Content::Note {
                conversation: about,
                id,
                body,
                sent_at,
            } => self.apply_note(
                conn,
                conversation,
                sender.id,
                about,
                id,
                body,
                sent_at,
                epoch,
            ),
            Content::Practice(batch) => {
                // Practice data is taken from the practice group only.
                if conversation != self.practice_group_id() {
                    return Err(Error::invalid(
                        "message",
                        "practice data outside the practice group",
                    ));
                }
                let new = consent::log::apply_batch(conn, &batch, &sender, seq)?;
                Ok(Received::PracticeData { new })
            }
            Content::Task(change) => apply_task(conn, conversation, &sender.id, &change, seq),
            Content::Receipt { .. } | Content::PracticeKey { .. } | Content::Erase { .. } => {
                self.apply_privacy(conn, conversation, &sender, &content, seq)
            }
            Content::History {
                conversation: about,
                messages,
            } => self.apply_history(conn, conversation, &sender.id, &about, &messages),
            Content::Document(_) | Content::DocStatus { .. } | Content::DocRetry { .. } => {
                apply_documentation(conn, conversation, &sender, &content)
            }
            Content::RecoveryKey { public_key } => {
                if conversation != self.practice_group_id() || public_key.len() != 32 {
                    return Err(Error::invalid(
                        "message",
                        "a recovery key outside the practice group",
                    ));
                }
                vouching::set_recovery_key(conn, &sender.id.user, &public_key, true)?;
                Ok(Received::RecoveryKey {
                    user: sender.id.user,
                })
            }
            Content::AuditAnchor {
                seq,
                hash,
                at,
                signature,
            } => {
                if conversation != self.practice_group_id() {
                    return Err(Error::invalid(
                        "message",
                        "an audit anchor outside the practice group",
                    ));
                }
                if !sender.roles.iter().any(|r| r.manages_practice()) {
                    return Err(Error::Refused {
                        reason: Refusal::Role,
                    });
                }
                let head = pieper_wire::AuditHead {
                    practice_id: self.me.practice.clone(),
                    seq,
                    hash,
                    at,
                    signature: signature.into(),
                };
                self.check_audit_head(&head)?;
                crate::privacy::anchors::keep(conn, &head, &sender.id.user)?;
                Ok(Received::AuditAnchor { seq })
            }
            Content::SpoedTaken { message } => {
                let by = sender.id.user;
                queries::take_spoed(conn, &message, &by)?;
                Ok(Received::SpoedTaken { message, by })
            }
            Content::SpoedSetting(setting) => {
                if matches!(setting, crate::spoed::SpoedSetting::Roster { .. })
                    && !crate::identity::decides_for_practice(&sender.roles)
                {
                    return Err(Error::Refused {
                        reason: Refusal::Role,
                    });
                }
                let by = sender.id.user;
                if !crate::spoed::insert_setting(conn, &setting, &by, seq)? {
                    return Err(Error::Replay);
                }
                Ok(Received::SpoedSettingChanged)
            }
        }
    }

    /// A work note from this user's own devices, in their personal group
    /// and nowhere else.
    #[allow(clippy::too_many_arguments)]
    fn apply_note(
        &self,
        conn: &Connection,
        conversation: &str,
        sender: MemberId,
        about: String,
        id: String,
        body: String,
        sent_at: i64,
        epoch: u64,
    ) -> Result<Received> {
        if conversation != self.known_group_id(KnownGroup::Personal) || sender.user != self.me.user
        {
            return Err(Error::invalid("message", "a work note from elsewhere"));
        }
        let note = Message::note(id, about, sender, body, sent_at, MessageState::Received);
        if queries::conversation(conn, &note.conversation)?.is_none() {
            return Err(Error::NotFound {
                what: "conversation",
            });
        }
        if !queries::insert_message(conn, &note, epoch)? {
            return Err(Error::Replay);
        }
        Ok(Received::Message(note))
    }
}

/// An envelope as it arrived: its MLS bytes and what the server says about
/// it.
pub(crate) struct Arrived<'a> {
    /// Its sequence number in the conversation.
    pub seq: Option<u64>,
    /// The device the server says sent it.
    pub sender_device: Option<&'a str>,
    /// The MLS message.
    pub bytes: &'a [u8],
}

impl<'a> Arrived<'a> {
    /// Bytes without the server's word on them (the core's own tests).
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn bare(bytes: &'a [u8]) -> Self {
        Self {
            seq: None,
            sender_device: None,
            bytes,
        }
    }
}

impl Device {
    /// The verified sender of a message: a member leaf whose certificate
    /// checks out, from the device the server names.
    fn certified_sender(
        &self,
        group: &MlsGroup,
        sender: &Sender,
        sender_device: Option<&str>,
    ) -> Result<Certified> {
        let Sender::Member(leaf) = sender else {
            return Err(Error::Untrusted {
                reason: "not sent by a member".into(),
            });
        };
        let member = group.member_at(*leaf).ok_or_else(|| Error::Untrusted {
            reason: "no member at the sender's leaf".into(),
        })?;
        let certified = self.certified(&member.credential, &member.signature_key)?;
        check_sender_device(&certified, sender_device)?;
        Ok(certified)
    }

    /// Every identity a commit brings in must check out: the devices it
    /// adds, and the leaves it replaces (which keep their member).
    /// A device it adds must be vouched for, by the approvals the commit
    /// carries, as this device knows the device's user (see
    /// [`crate::devices::vouching`]).
    fn check_commit(
        &self,
        conn: &Connection,
        group: &MlsGroup,
        committer: &Certified,
        staged: &StagedCommit,
        aad: &[u8],
    ) -> Result<Vec<(String, String)>> {
        let group_id = String::from_utf8_lossy(group.group_id().as_slice()).into_owned();
        let approvals = CommitApprovals::from_bytes(aad);
        let added = staged
            .add_proposals()
            .map(|add| {
                let leaf = add.add_proposal().key_package().leaf_node();
                let newcomer = self.meet(leaf.credential(), leaf.signature_key().as_slice())?;
                self.check_member_of(&group_id, &newcomer.certified)?;
                Ok(newcomer)
            })
            .collect::<Result<Vec<_>>>()?;
        // A device approved by a voucher this device never met was brought
        // in on the committer's word; one of a known user without any
        // approval refuses the commit.
        let resets = self.admit(
            conn,
            &added,
            &approvals,
            |certified, verdict| match verdict {
                Verdict::Unchecked => Ok(Trust::Introduced {
                    by_user: committer.id.user.clone(),
                }),
                _ => Err(super::membership::unvouched(&certified.id)),
            },
        )?;
        for update in staged.update_proposals() {
            let leaf = update.update_proposal().leaf_node();
            let now = self.certified(leaf.credential(), leaf.signature_key().as_slice())?;
            let before = self.certified_sender(group, update.sender(), None)?;
            if now.id != before.id {
                return Err(Error::Untrusted {
                    reason: "an update names another member".into(),
                });
            }
        }
        if let Some(leaf) = staged.update_path_leaf_node() {
            let now = self.certified(leaf.credential(), leaf.signature_key().as_slice())?;
            if now.id != committer.id {
                return Err(Error::Untrusted {
                    reason: "a commit renames its sender".into(),
                });
            }
        }
        Ok(resets)
    }
}

/// The certificate must name the device the server says sent the envelope.
pub(crate) fn check_sender_device(
    certified: &Certified,
    sender_device: Option<&str>,
) -> Result<()> {
    match sender_device {
        Some(device) if device != certified.id.device => Err(Error::Untrusted {
            reason: format!(
                "sent by device {device}, signed as device {}",
                certified.id.device
            ),
        }),
        _ => Ok(()),
    }
}

/// How the server is to deliver `content`, decided when it is queued: only
/// a message someone else reads may wake phones (a spoed post wakes whom it
/// was routed to as urgent); the patient goes to the server only as the
/// practice's pseudonym, for the audit trail.
/// `content` is `None` for a commit.
pub(crate) fn delivery(
    conn: &Connection,
    conversation: &str,
    content: Option<&Content>,
) -> Result<crate::device::Delivery> {
    let mut delivery = crate::device::Delivery::default();
    let mut patient = queries::conversation(conn, conversation)?.and_then(|c| c.patient);
    if let Some(Content::Text {
        priority,
        kind,
        spoed,
        expires_at,
        ..
    }) = content
        && *kind != MessageKind::Werkaantekening
    {
        delivery.priority = Some(*priority);
        delivery.urgent_for = spoed.as_ref().and_then(|s| s.routed_to.clone());
        // A spoed post is about the patient of the message it repeats.
        if patient.is_none() {
            patient = spoed.as_ref().and_then(|s| s.patient.clone());
        }
        delivery.expires_at = *expires_at;
    }
    if let Some(patient) = patient {
        match crate::privacy::pseudonym::current(conn)? {
            Some(key) => delivery.patient = Some(key.pseudonym(&patient)),
            None => delivery.patient_pending = true,
        }
    }
    Ok(delivery)
}

/// Applies documentation content from a member.
fn apply_documentation(
    conn: &Connection,
    conversation: &str,
    sender: &Certified,
    content: &Content,
) -> Result<Received> {
    use crate::record::documentation as doc;
    let now = queries::now_ms();
    let refused = |reason| Err(Error::Refused { reason });
    let result = match content {
        Content::Document(item) => (|| {
            item.entry()?.validate()?;
            if !doc::insert_item(conn, conversation, item, &sender.id.user, now)? {
                return Err(Error::Replay);
            }
            doc::item(conn, &item.id)?.ok_or(Error::NotFound {
                what: "documentation item",
            })
        })(),
        // Only the HIS connector knows what the HIS took.
        Content::DocStatus { .. } if !sender.has(pieper_wire::Role::Connector) => {
            refused(Refusal::Role)
        }
        Content::DocStatus {
            item,
            state,
            detail,
        } => doc::set_state(conn, item, *state, detail.as_deref(), now),
        // A failed item goes again when its author says so.
        Content::DocRetry { item } => match doc::item(conn, item)? {
            Some(status) if status.requested_by != sender.id.user => refused(Refusal::NotAuthor),
            _ => doc::retry(conn, item, now),
        },
        _ => Err(Error::invalid("message", "not documentation")),
    };
    result.map(Received::Documentation)
}

/// Stores a task change from a member; a replayed one is refused.
fn apply_task(
    conn: &Connection,
    conversation: &str,
    sender: &MemberId,
    change: &tasks::TaskChange,
    seq: Option<u64>,
) -> Result<Received> {
    if let tasks::TaskOp::Create { task, .. } = &change.op {
        tasks::check_new(task)?;
    }
    if !tasks::insert_change(
        conn,
        conversation,
        change,
        &sender.user,
        seq.map(|s| (s, 0)),
    )? {
        return Err(Error::Replay);
    }
    match tasks::task(conn, &change.task) {
        Ok(task) => Ok(Received::TaskChanged(task)),
        // A step whose task this device never saw made (joined later).
        Err(Error::NotFound { .. }) => Ok(Received::Own),
        Err(e) => Err(e),
    }
}

/// Stores what a decrypted application message carries.
fn apply_content(
    conn: &Connection,
    conversation: &str,
    sender: &Certified,
    content: Content,
    epoch: u64,
) -> Result<Received> {
    match content {
        Content::Text { kind, .. } => {
            if kind == MessageKind::Werkaantekening {
                // Never in a conversation: a member who sends one is broken.
                return Err(Error::invalid("kind", "a work note in a conversation"));
            }
            let message = Message::from_content(
                content,
                conversation,
                sender.id.clone(),
                MessageState::Received,
            )?;
            if !queries::insert_message(conn, &message, epoch)? {
                // Same id again: a replay. The error rolls back the ratchet
                // step too.
                return Err(Error::Replay);
            }
            crate::privacy::after_receive(conn, conversation, &message)?;
            Ok(Received::Message(message))
        }
        Content::Details {
            title,
            kind,
            patient,
            ttl_secs,
        } => {
            validate_title(&title)?;
            // The patient link is set at creation; moving a conversation to
            // another patient (or off one) takes a huisarts.
            let linked = queries::conversation(conn, conversation)?.and_then(|c| c.patient);
            if linked.is_some() && linked != patient && !sender.has(pieper_wire::Role::Huisarts) {
                return Err(Error::Refused {
                    reason: Refusal::Role,
                });
            }
            queries::update_details(conn, conversation, &title, kind, patient.as_ref())?;
            crate::privacy::set_conversation_ttl(conn, conversation, ttl_secs)?;
            let updated = queries::conversation(conn, conversation)?.ok_or(Error::NotFound {
                what: "conversation",
            })?;
            Ok(Received::ConversationUpdated(updated))
        }
        Content::Unsupported { kind, sent_at } => {
            tracing::info!(conversation, kind, "shown as a placeholder");
            let message = Message::unsupported(
                conversation.to_owned(),
                sender.id.clone(),
                sent_at.unwrap_or_else(queries::now_ms),
            );
            queries::insert_message(conn, &message, epoch)?;
            crate::privacy::after_receive(conn, conversation, &message)?;
            Ok(Received::Message(message))
        }
        // Everything else was handed to its feature by `dispatch`.
        _ => Err(Error::invalid("message", "not a message")),
    }
}
