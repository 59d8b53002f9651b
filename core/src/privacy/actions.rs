//! The client's side of receipts, the audit trail, disappearing messages,
//! retention, attachments and the patient's AVG rights.

use super::client::PrivacyClient;
use crate::client::{Client, Event};
use crate::{
    error::{Error, Result},
    model::PatientRef,
    privacy::{
        self, AccessAction, AuditEntry, ErasureReport, HousekeepingReport, PatientExport,
        PracticeRules, Receipt,
    },
    store::queries,
    tasks::{Assignee, NewTask},
};

/// Which part of the practice's audit log to read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only events about this patient.
    pub patient: Option<PatientRef>,
    /// Only this user.
    pub user: Option<String>,
    /// Only this device.
    pub device: Option<String>,
    /// Only this action.
    pub action: Option<String>,
    /// From (ms), inclusive.
    pub from: Option<i64>,
    /// Until (ms), exclusive.
    pub to: Option<i64>,
}

/// One patient a device or user accessed in a time window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BreachPatient {
    /// The patient, when this device knows who the pseudonym is.
    pub patient: Option<PatientRef>,
    /// The pseudonym as the server keeps it.
    pub pseudonym: String,
    /// Access events in the window.
    pub events: u64,
    /// First and last access (ms).
    pub first: i64,
    /// Last access (ms).
    pub last: i64,
    /// What was done, comma-separated.
    pub actions: String,
}

/// Chain records asked for at once when checking the log.
const CHAIN_PAGE: u32 = 1000;

impl Client {
    /// A manager's device anchors the audit chain's head once an hour (run
    /// with each sync; a failure waits for the next).
    pub(crate) async fn anchor_if_due(&self) {
        let due = self.store(|d| {
            Ok(d.check_manages_practice().is_ok()
                && d.in_practice_group()?
                && d.audit_anchor_due()?)
        });
        if !matches!(due.await, Ok(true)) {
            return;
        }
        if let Err(e) = self.privacy().anchor_audit().await {
            tracing::debug!(error = %e, "the audit head waits for the next sync");
        }
    }

    /// Reports the accesses to patient data made on this device (once the
    /// practice's pseudonym key is known); the server records each once.
    pub(crate) async fn report_accesses(&self) -> Result<usize> {
        let mut reported = 0;
        loop {
            let pending = self.store(|d| d.pending_accesses()).await?;
            if pending.is_empty() {
                return Ok(reported);
            }
            let ids: Vec<String> = pending.iter().map(|e| e.id.clone()).collect();
            let result = self.api()?.report_accesses(pending).await;
            self.server(result).await?;
            reported += ids.len();
            self.store(move |d| d.accesses_reported(&ids)).await?;
        }
    }

    /// Maps pseudonyms back to the patients this device knows.
    async fn pseudonym_resolver(&self) -> Result<impl Fn(&str) -> Option<PatientRef>> {
        let pairs: Vec<(String, PatientRef)> = self
            .store(|d| {
                let patients = d.known_patients()?;
                let mut out = Vec::new();
                for p in patients {
                    if let Some(pseudonym) = d.pseudonym(&p)? {
                        out.push((pseudonym, p));
                    }
                }
                Ok(out)
            })
            .await?;
        let map: std::collections::HashMap<String, PatientRef> = pairs.into_iter().collect();
        Ok(move |pseudonym: &str| map.get(pseudonym).cloned())
    }

    /// Reports accesses now if possible (offline they wait).
    async fn flush_accesses(&self) {
        if let Err(e) = self.report_accesses().await {
            tracing::debug!(error = %e, "accesses wait for the next sync");
        }
    }
}

impl PrivacyClient<'_> {
    /// Fetches the practice's rules (retention, disappearing messages) and
    /// keeps them for offline use; offline, the kept ones hold.
    pub async fn refresh_rules(&self) -> Result<PracticeRules> {
        match self.client.api()?.practice_settings().await {
            Ok(settings) => {
                let rules = PracticeRules::from_wire(&settings)?;
                self.client
                    .store(move |d| d.set_practice_rules(rules))
                    .await?;
                Ok(rules)
            }
            Err(Error::Network(_)) => self.client.store(|d| d.practice_rules()).await,
            Err(e) => self.client.server(Err(e)).await,
        }
    }

    /// Changes the practice's rules (practice managers).
    pub async fn set_rules(&self, rules: PracticeRules) -> Result<PracticeRules> {
        let result = self
            .client
            .api()?
            .set_practice_settings(&rules.to_wire())
            .await;
        let settings = self.client.server(result).await?;
        let rules = PracticeRules::from_wire(&settings)?;
        self.client
            .store(move |d| d.set_practice_rules(rules))
            .await?;
        Ok(rules)
    }

    /// Removes what expired or passed retention on this device now.
    pub async fn housekeeping(&self) -> Result<HousekeepingReport> {
        let report = self.client.store(|d| d.housekeeping()).await?;
        if report.expired + report.past_retention > 0 {
            self.client.emit(Event::MessagesExpired {
                count: report.expired + report.past_retention,
            });
        }
        Ok(report)
    }

    /// Gives a conversation a time-to-live for new messages (`None`: none).
    pub async fn set_conversation_ttl(
        &self,
        conversation: &str,
        ttl_secs: Option<u64>,
    ) -> Result<()> {
        let conv = conversation.to_owned();
        self.client
            .store(move |d| d.set_conversation_ttl_here(&conv, ttl_secs))
            .await?;
        self.client.flush_quietly().await
    }

    /// Who has received and read a message, per member device.
    pub async fn receipts(&self, message: &str) -> Result<Vec<Receipt>> {
        let id = message.to_owned();
        self.client.store(move |d| d.receipts(&id)).await
    }

    /// Opens the practice's audit log to this device for 15 minutes with a
    /// fresh TOTP code (practice managers; a huisarts for one patient).
    pub async fn unlock_audit(&self, totp: &str) -> Result<i64> {
        let result = self.client.api()?.unlock_audit(totp).await;
        Ok(self.client.server(result).await?.until)
    }

    /// Reads the practice's audit log (after [`PrivacyClient::unlock_audit`]), with
    /// the patients this device knows in place of their pseudonyms.
    pub async fn audit_log(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        self.read_log(query, None).await
    }

    /// Reads the log; for an export, the server records the read as that
    /// export (`action`), once: one export, one record.
    async fn read_log(
        &self,
        query: &AuditQuery,
        export: Option<AccessAction>,
    ) -> Result<Vec<AuditEntry>> {
        let mut params: Vec<(&str, String)> = Vec::new();
        if let Some(action) = export {
            params.push(("export", uuid::Uuid::new_v4().to_string()));
            params.push(("export_action", action.as_str().to_owned()));
        }
        let mut asked: Option<(String, PatientRef)> = None;
        if let Some(patient) = &query.patient {
            let p = patient.clone();
            let pseudonym =
                self.client
                    .store(move |d| d.pseudonym(&p))
                    .await?
                    .ok_or(Error::invalid(
                        "patient",
                        "the practice key is not known here yet",
                    ))?;
            params.push(("patient", pseudonym.clone()));
            asked = Some((pseudonym, patient.clone()));
        }
        for (name, value) in [
            ("user", &query.user),
            ("device", &query.device),
            ("action", &query.action),
        ] {
            if let Some(v) = value {
                params.push((name, v.clone()));
            }
        }
        if let Some(from) = query.from {
            params.push(("from", from.to_string()));
        }
        if let Some(to) = query.to {
            params.push(("to", to.to_string()));
        }
        let result = self.client.api()?.audit(&params).await;
        let events = self.client.server(result).await?;
        let resolve = self.client.pseudonym_resolver().await?;
        Ok(events
            .into_iter()
            .map(|event| AuditEntry {
                // The patient asked about is known even if this device has
                // nothing else of them.
                patient: event.patient.as_ref().and_then(|p| match &asked {
                    Some((pseudonym, patient)) if pseudonym == p => Some(patient.clone()),
                    _ => resolve(p),
                }),
                event,
            })
            .collect())
    }

    /// Exports part of the audit log for the privacy officer: CSV and a
    /// FHIR R4 Bundle of `AuditEvent`s. The export is itself logged.
    pub async fn export_audit(&self, query: &AuditQuery) -> Result<(String, String)> {
        // The server records the export as it hands out the log.
        let entries = self
            .read_log(query, Some(AccessAction::AuditExport))
            .await?;
        let csv = privacy::audit::to_csv(&entries);
        let bundle = privacy::audit::to_fhir_bundle(&entries, queries::now_ms())?;
        let json = serde_json::to_string_pretty(&bundle)
            .map_err(|e| Error::invalid("bundle", e.to_string()))?;
        Ok((csv, json))
    }

    /// A manager's device: fetches the audit chain's head as the server
    /// signs it, checks the signature against the practice's authority,
    /// keeps it and sends it into the practice group, where every device
    /// keeps it too. Returns the anchored place.
    pub async fn anchor_audit(&self) -> Result<u64> {
        self.client.read(|d| d.check_manages_practice())?;
        let result = self.client.api()?.audit_head().await;
        let head = self.client.server(result).await?;
        let seq = head.seq;
        self.client
            .store(move |d| d.anchor_audit_head(&head))
            .await?;
        self.client.flush_quietly().await?;
        Ok(seq)
    }

    /// Checks the log the server shows today against every anchor this
    /// device holds (after [`PrivacyClient::unlock_audit`]): each record's
    /// hash and link recomputed here, the signed head reached, and each
    /// anchored place still holding the anchored record. A chain rewritten
    /// in the server's database is reported, however well its hashes were
    /// redone.
    pub async fn verify_audit(&self) -> Result<privacy::AuditCheck> {
        let result = self.client.api()?.audit_head().await;
        let head = self.client.server(result).await?;
        let anchors = self
            .client
            .store(move |d| {
                d.check_audit_head(&head)?;
                Ok((d.audit_anchors()?, head))
            })
            .await?;
        let (anchors, head) = anchors;
        let mut after = anchors
            .first()
            .map_or(0, |(seq, _, _)| *seq as i64 - 1)
            .max(0);
        let mut records = Vec::new();
        loop {
            let result = self.client.api()?.audit_chain(after, CHAIN_PAGE).await;
            let page = self.client.server(result).await?;
            let Some(last) = page.last() else { break };
            after = last.chain_seq;
            let full = page.len() == CHAIN_PAGE as usize;
            records.extend(page);
            if !full || after as u64 >= head.seq {
                break;
            }
        }
        Ok(privacy::anchors::check(
            &anchors,
            &records,
            &head,
            queries::now_ms(),
        ))
    }

    /// For a data breach: which patients a device or user accessed between
    /// `from` and `to` (ms), with the patients this device knows named.
    pub async fn breach_report(
        &self,
        device: Option<&str>,
        user: Option<&str>,
        from: i64,
        to: i64,
    ) -> Result<Vec<BreachPatient>> {
        let mut params: Vec<(&str, String)> =
            vec![("from", from.to_string()), ("to", to.to_string())];
        if let Some(d) = device {
            params.push(("device", d.to_owned()));
        }
        if let Some(u) = user {
            params.push(("user", u.to_owned()));
        }
        let result = self.client.api()?.breach(&params).await;
        let rows = self.client.server(result).await?;
        let resolve = self.client.pseudonym_resolver().await?;
        Ok(rows
            .into_iter()
            .map(|r| BreachPatient {
                patient: resolve(&r.patient),
                pseudonym: r.patient,
                events: r.events,
                first: r.first,
                last: r.last,
                actions: r.actions,
            })
            .collect())
    }

    /// Inzage: everything this device's chat holds about `patient` — its
    /// conversations, messages, attachments, tasks, consent history and the
    /// access log about them (the log needs [`PrivacyClient::unlock_audit`]) — as
    /// a PDF and a FHIR R4 Bundle. Nothing of other patients is in it. The
    /// export is itself logged.
    pub async fn export_patient(&self, patient: &PatientRef) -> Result<PatientExport> {
        let p = patient.clone();
        let (conversations, tasks, consent) =
            self.client.store(move |d| d.patient_holdings(&p)).await?;
        let mut files = Vec::new();
        for (_, _, messages) in &conversations {
            for m in messages.iter().filter(|m| !m.expired) {
                for a in &m.attachments {
                    files.push((
                        m.id.clone(),
                        a.clone(),
                        self.client.conversations().open_sealed(a).await?,
                    ));
                }
            }
        }
        // The server records the export as it hands out the patient's
        // access log (the export needs it, so no export goes unrecorded).
        let access = self
            .read_log(
                &AuditQuery {
                    patient: Some(patient.clone()),
                    ..AuditQuery::default()
                },
                Some(AccessAction::Export),
            )
            .await?;
        let me = self.client.id().user.clone();
        let export = privacy::build_export(&privacy::ExportInput {
            patient,
            conversations,
            attachments: files,
            tasks,
            consent,
            access,
            made_by: &me,
            at: queries::now_ms(),
        })?;
        Ok(export)
    }

    /// Erasure on the patient's request (WGBO art. 7:455): the chat content
    /// about `patient` goes from this device, every device of the practice
    /// (through the practice group) and the server; the audit trail records
    /// it without content; a task asks the huisarts to handle the request in
    /// the HIS; the report names what must be kept and why.
    pub async fn erase_patient(&self, patient: &PatientRef) -> Result<ErasureReport> {
        let p = patient.clone();
        let (mut report, conversations, pseudonym, audit_event) =
            self.client.store(move |d| d.erase_patient_here(&p)).await?;
        self.client.flush_quietly().await?;
        if let Some(pseudonym) = pseudonym {
            let result = self
                .client
                .api()?
                .erase(&pieper_wire::EraseRequest {
                    patient: pseudonym,
                    conversations,
                    // One erasure, one record: the server's is this device's.
                    audit_event: Some(audit_event),
                })
                .await;
            self.client.server(result).await?;
        }
        let practice_group = self.client.inner.device.practice_group_id();
        let task = NewTask {
            what: format!(
                "AVG-verzoek tot verwijdering (WGBO 7:455) van patiënt {}: beoordeel en verwerk in het HIS; \
                 chatinhoud is verwijderd (verzoek {}).",
                patient.as_str(),
                report.request
            ),
            assignee: Assignee::Role("huisarts".into()),
            due: None,
            from_message: None,
            follow_up: None,
        };
        match self.client.tasks().create(&practice_group, task).await {
            Ok(task) => report.his_task = Some(task.id),
            Err(e) => tracing::warn!(error = %e, "the erasure task could not be made"),
        }
        self.client.flush_accesses().await;
        Ok(report)
    }

    /// A staff member's own account data: who they are, their devices, and
    /// what they sent from this device, as JSON.
    pub async fn export_my_account(&self) -> Result<String> {
        let me = self.client.id().clone();
        let users = self.client.colleagues().await?;
        let devices = self.client.devices().list().await?;
        let mine: Vec<_> = devices
            .into_iter()
            .filter(|d| d.user_id == me.user)
            .collect();
        let user = users.into_iter().find(|u| u.id == me.user);
        let sent = self
            .client
            .store(move |d| {
                let mut out = Vec::new();
                for c in d.all_conversations()? {
                    for m in d.messages(&c.id, u32::MAX)? {
                        if m.sender.user == d.id().user && !m.expired {
                            out.push(serde_json::json!({
                                "conversation": c.title,
                                "sent_at": m.sent_at,
                                "body": m.body,
                            }));
                        }
                    }
                }
                Ok(out)
            })
            .await?;
        let json = serde_json::json!({
            "user": user.map(|u| serde_json::json!({ "id": u.id, "name": u.display_name, "role": u.role.as_str() })),
            "devices": mine.iter().map(|d| serde_json::json!({ "id": d.id, "name": d.name, "revoked_at": d.revoked_at })).collect::<Vec<_>>(),
            "messages_sent": sent,
        });
        let detail = format!("devices={}", mine.len());
        self.client
            .store(move |d| d.record_access(AccessAction::AccountExport, None, &detail))
            .await?;
        serde_json::to_string_pretty(&json).map_err(|e| Error::invalid("export", e.to_string()))
    }
}
