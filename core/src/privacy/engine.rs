//! Privacy on this device: patient pseudonyms, receipts, reported
//! accesses, the practice's rules and housekeeping, in the store.

use super::*;

impl Device {
    /// Applies receipts, the practice key and erasure requests from a
    /// member.
    pub(crate) fn apply_privacy(
        &self,
        conn: &Connection,
        conversation: &str,
        sender: &Certified,
        content: &Content,
        seq: Option<u64>,
    ) -> Result<Received> {
        let practice = conversation == self.practice_group_id();
        match content {
            Content::Receipt { messages, read, at } => (|| {
                let changed =
                    receipts::apply(conn, conversation, &sender.id, messages, *read, *at)?;
                Ok(Received::Receipts { messages: changed })
            })(),
            Content::PracticeKey {
                id,
                key,
                seq: first,
            } if practice => (|| {
                let key = PracticeKey::from_bytes(key)?;
                pseudonym::insert(conn, id, &key, first.or(seq))?;
                Ok(Received::Own)
            })(),
            Content::Erase { request, patient } if practice => (|| {
                // Only a huisarts or the practice manager may erase a
                // patient's chat, whatever a member's app sends.
                if !crate::identity::decides_for_practice(&sender.roles) {
                    return Err(Error::Refused {
                        reason: Refusal::Role,
                    });
                }
                if subject::erased_before(conn, request)? {
                    return Err(Error::Replay);
                }
                let pseudonym = pseudonym::current(conn)?
                    .map(|k| k.pseudonym(patient))
                    .unwrap_or_default();
                let report = subject::erase(
                    conn,
                    &self.dir,
                    request,
                    patient,
                    &pseudonym,
                    &sender.id.user,
                )?;
                expiry::scrub(conn)?;
                Ok(Received::Erased(report))
            })(),
            Content::PracticeKey { .. } | Content::Erase { .. } => Err(Error::invalid(
                "message",
                "practice data outside the practice group",
            )),
            _ => Err(Error::invalid("message", "not privacy content")),
        }
    }

    /// The pseudonym of a conversation's patient, when it has one and the
    /// practice key is known.
    pub fn patient_pseudonym(&self, conversation: &str) -> Result<Option<String>> {
        self.store.read(|conn| {
            let Some(patient) = queries::conversation(conn, conversation)?.and_then(|c| c.patient)
            else {
                return Ok(None);
            };
            Ok(pseudonym::current(conn)?.map(|k| k.pseudonym(&patient)))
        })
    }

    /// The pseudonym of a patient under the practice key (`None` until this
    /// device knows the key).
    pub fn pseudonym(&self, patient: &PatientRef) -> Result<Option<String>> {
        self.store
            .read(|conn| Ok(pseudonym::current(conn)?.map(|k| k.pseudonym(patient))))
    }

    /// Makes the practice key when the practice group has none yet (this
    /// device is in the group and caught up): queued in `group`.
    pub(crate) fn make_practice_key(
        &self,
        s: &mut crate::device::Session<'_, '_>,
        group: &str,
    ) -> Result<()> {
        if pseudonym::any(s.conn())? {
            return Ok(());
        }
        let id = uuid::Uuid::new_v4().to_string();
        let key = PracticeKey::random();
        pseudonym::insert(s.conn(), &id, &key, None)?;
        let content = Content::PracticeKey {
            id: id.clone(),
            key: key.as_bytes().to_vec(),
            seq: None,
        };
        self.encrypt(s, group, &id, &content)?;
        Ok(())
    }

    /// The known practice keys as content, for devices joining the group.
    pub(crate) fn practice_key_snapshot(conn: &Connection) -> Result<Vec<Content>> {
        Ok(pseudonym::all(conn)?
            .into_iter()
            .map(|(id, key, seq)| Content::PracticeKey {
                id,
                key: key.as_bytes().to_vec(),
                seq,
            })
            .collect())
    }

    /// Queues the receipts owed, one per conversation and kind (silent
    /// envelopes); a conversation this device cannot send in now keeps them.
    pub(crate) fn share_receipts(&self) -> Result<usize> {
        let owed = self.store.read(receipts::owed)?;
        let mut sent = 0;
        for (conversation, read, messages, at) in owed {
            let result = self.transact(|s| {
                let content = Content::Receipt {
                    messages: messages.clone(),
                    read,
                    at,
                };
                let id = uuid::Uuid::new_v4().to_string();
                self.encrypt(s, &conversation, &id, &content)?;
                // This device's own receipt never comes back through MLS.
                receipts::apply(s.conn(), &conversation, &self.me, &messages, read, at)?;
                receipts::paid(s.conn(), read, &messages)
            });
            match result {
                Ok(()) => sent += 1,
                Err(Error::PendingCommit) => {}
                // Left or gone: nobody to tell.
                Err(Error::NotMember | Error::NotFound { .. }) => {
                    self.store.write(|tx| receipts::paid(tx, read, &messages))?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(sent)
    }

    /// Who has received and read a message, per member device.
    pub fn receipts(&self, message: &str) -> Result<Vec<Receipt>> {
        self.store.read(|c| receipts::of(c, message))
    }

    /// Notes an access to a patient's data for the audit trail.
    pub fn record_access(
        &self,
        action: AccessAction,
        patient: Option<&PatientRef>,
        detail: &str,
    ) -> Result<()> {
        self.store
            .write(|tx| audit::record(tx, action, patient, detail).map(|_| ()))
    }

    /// An attachment was opened: an access, if its conversation is about a
    /// patient.
    pub(crate) fn attachment_opened(&self, blob: &str) -> Result<()> {
        self.store.write(|tx| {
            let Some(conversation) = queries::conversation_of_blob(tx, blob)? else {
                return Ok(());
            };
            if let Some(patient) = queries::conversation(tx, &conversation)?.and_then(|c| c.patient)
            {
                audit::record(
                    tx,
                    AccessAction::AttachmentOpen,
                    Some(&patient),
                    &format!("conversation={conversation} blob={blob}"),
                )?;
            }
            Ok(())
        })
    }

    /// Keeps a head of the audit chain this (manager's) device fetched, and
    /// sends it into the practice group.
    pub(crate) fn anchor_audit_head(&self, head: &pieper_wire::AuditHead) -> Result<()> {
        self.check_audit_head(head)?;
        let sent = self.queue_in(crate::device::KnownGroup::Practice, |s, group| {
            super::anchors::keep(s.conn(), head, &self.me.user)?;
            let id = uuid::Uuid::new_v4().to_string();
            self.encrypt(
                s,
                group,
                &id,
                &crate::model::Content::AuditAnchor {
                    seq: head.seq,
                    hash: head.hash.clone(),
                    at: head.at,
                    signature: head.signature.0.clone(),
                },
            )?;
            Ok(())
        })?;
        sent.ok_or(Error::NotMember)
    }

    /// The audit anchors this device holds: (place, hash, when).
    pub(crate) fn audit_anchors(&self) -> Result<Vec<(u64, String, i64)>> {
        self.store.read(super::anchors::all)
    }

    /// Whether this (manager's) device should anchor the head now.
    pub(crate) fn audit_anchor_due(&self) -> Result<bool> {
        self.store.read(super::anchors::due)
    }

    /// Notes accesses for the audit trail, all or none.
    pub(crate) fn record_accesses(&self, accesses: &[super::client::Access]) -> Result<()> {
        self.store.write(|tx| {
            for a in accesses {
                audit::record(tx, a.action, a.patient.as_ref(), &a.detail)?;
            }
            Ok(())
        })
    }

    /// Accesses waiting to be reported (with pseudonyms); empty until the
    /// practice key is known.
    pub(crate) fn pending_accesses(&self) -> Result<Vec<pieper_wire::ReportedAccess>> {
        self.store.read(|conn| match pseudonym::current(conn)? {
            Some(key) => audit::pending(conn, &key),
            None => Ok(Vec::new()),
        })
    }

    pub(crate) fn accesses_reported(&self, ids: &[String]) -> Result<()> {
        self.store.write(|tx| audit::reported(tx, ids))
    }

    /// The practice's rules as this device last had them.
    pub fn practice_rules(&self) -> Result<PracticeRules> {
        self.store.read(expiry::rules)
    }

    /// Keeps the practice's rules as the server last gave them.
    pub fn set_practice_rules(&self, rules: PracticeRules) -> Result<()> {
        self.store.write(|tx| expiry::set_rules(tx, rules))
    }

    /// Removes what expired or passed retention now (and scrubs the search
    /// index when anything went). Runs when the store opens, before anything
    /// is shown, and in the background.
    pub fn housekeeping(&self) -> Result<HousekeepingReport> {
        let report = self.store.write(|tx| {
            let report = expiry::purge(tx, &self.dir, queries::now_ms())?;
            if report.expired + report.past_retention > 0 {
                expiry::scrub(tx)?;
            }
            Ok(report)
        })?;
        if report.expired + report.past_retention > 0 {
            self.store.read(expiry::checkpoint)?;
        }
        Ok(report)
    }

    /// Purges first when a message is past its time: what is shown never
    /// includes content that should be gone, even between housekeeping runs.
    pub(crate) fn purge_if_due(&self) -> Result<()> {
        if self
            .next_expiry()?
            .is_some_and(|at| at <= queries::now_ms())
        {
            self.housekeeping()?;
        }
        Ok(())
    }

    /// When the next message here expires (ms), if any will.
    pub fn next_expiry(&self) -> Result<Option<i64>> {
        self.store.read(expiry::next_expiry)
    }

    /// Sets a conversation's time-to-live for new messages and tells its
    /// members (with the conversation's details).
    pub fn set_conversation_ttl_here(
        &self,
        conversation: &str,
        ttl_secs: Option<u64>,
    ) -> Result<()> {
        self.transact(|s| {
            if ttl_secs == Some(0) {
                return Err(Error::invalid("ttl", "a time-to-live is at least a second"));
            }
            if ttl_secs.is_some() && expiry::rules(s.conn())?.ttl == TtlPolicy::Forbidden {
                return Err(Error::invalid(
                    "ttl",
                    "the practice does not allow disappearing messages",
                ));
            }
            let c = queries::conversation(s.conn(), conversation)?.ok_or(Error::NotFound {
                what: "conversation",
            })?;
            set_conversation_ttl(s.conn(), conversation, ttl_secs)?;
            let details = Content::Details {
                title: c.title,
                kind: c.kind,
                patient: c.patient,
                ttl_secs,
            };
            let id = uuid::Uuid::new_v4().to_string();
            self.encrypt(s, conversation, &id, &details)?;
            Ok(())
        })
    }

    /// Erases the chat content about `patient` here and asks every device
    /// of the practice to do the same (through the practice group).
    pub(crate) fn erase_patient_here(
        &self,
        patient: &PatientRef,
    ) -> Result<(ErasureReport, Vec<String>, Option<String>, String)> {
        // Checked here before anything changes; every receiving device
        // checks it again against this device's certificate.
        if !crate::identity::decides_for_practice(&self.roles()) {
            return Err(Error::Refused {
                reason: Refusal::Role,
            });
        }
        let request = uuid::Uuid::new_v4().to_string();
        let group = self.known_group_id(KnownGroup::Practice);
        let in_group = self.in_known_group(KnownGroup::Practice)?;
        self.transact(|s| {
            let conn = s.conn();
            let pseudonym = pseudonym::current(conn)?.map(|k| k.pseudonym(patient));
            let conversations: Vec<String> = subject::conversations_of(conn, patient)?
                .into_iter()
                .map(|(id, _)| id)
                .collect();
            let report = subject::erase(
                conn,
                &self.dir,
                &request,
                patient,
                pseudonym.as_deref().unwrap_or_default(),
                &self.me.user,
            )?;
            expiry::scrub(conn)?;
            let audit_event = audit::record(
                conn,
                AccessAction::Erase,
                Some(patient),
                &format!(
                    "request={request} conversations={} messages={} tasks={}",
                    report.conversations, report.messages, report.tasks
                ),
            )?;
            if in_group {
                let content = Content::Erase {
                    request: request.clone(),
                    patient: patient.clone(),
                };
                self.encrypt(s, &group, &request, &content)?;
            }
            Ok((report, conversations, pseudonym, audit_event))
        })
    }

    /// What this device holds about a patient, for an access export.
    #[allow(clippy::type_complexity)]
    pub(crate) fn patient_holdings(
        &self,
        patient: &PatientRef,
    ) -> Result<(
        Vec<(String, String, Vec<Message>)>,
        Vec<crate::tasks::Task>,
        Vec<crate::consent::ConsentChange>,
    )> {
        let conversations = self.store.read(|conn| {
            subject::conversations_of(conn, patient)?
                .into_iter()
                .map(|(id, title)| {
                    let messages = subject::all_messages(conn, &id)?;
                    Ok((id, title, messages))
                })
                .collect::<Result<Vec<_>>>()
        })?;
        let tasks = self
            .store
            .read(crate::tasks::all_tasks)?
            .into_iter()
            .filter(|t| t.patient.as_ref() == Some(patient))
            .collect();
        let consent = self.consent_history(Some(patient))?;
        Ok((conversations, tasks, consent))
    }

    /// Where this device keeps sealed attachment copies.
    pub(crate) fn attachments_dir(&self) -> std::path::PathBuf {
        self.dir.join("attachments")
    }

    /// The path of a sealed attachment copy here.
    pub(crate) fn attachment_file(&self, blob_id: &str) -> Result<std::path::PathBuf> {
        subject::attachment_path(&self.dir, blob_id)
            .ok_or_else(|| Error::invalid("blob_id", "not a blob id"))
    }

    /// Every patient this device knows of (to turn pseudonyms back).
    pub(crate) fn known_patients(&self) -> Result<Vec<PatientRef>> {
        self.store.read(audit::known_patients)
    }
}
