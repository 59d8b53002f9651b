//! `pieper privacy ...`: receipts, the audit trail, disappearing messages,
//! retention and the patient's AVG rights from the command line.

use clap::Subcommand;
use pieper_core::{AuditQuery, Client, PatientRef, PracticeRules, TtlPolicy};

type CliResult = Result<(), Box<dyn std::error::Error>>;

#[derive(Debug, Subcommand)]
pub(crate) enum PrivacyCommand {
    /// Who has received and read a message.
    Receipts {
        /// The message id.
        message: String,
    },
    /// Give a conversation a time-to-live for new messages.
    Ttl {
        /// The conversation id.
        conversation: String,
        /// Seconds, or "off".
        ttl: String,
    },
    /// The practice's rules (retention, disappearing messages); managers
    /// change them with the flags.
    Rules {
        /// Days chat history is kept.
        #[arg(long)]
        retention_days: Option<u32>,
        /// allowed, forbidden or enforced.
        #[arg(long)]
        ttl_policy: Option<String>,
        /// With enforced: the longest time-to-live (seconds).
        #[arg(long)]
        ttl_secs: Option<u64>,
        /// How many of each conversation's newest messages a new device gets.
        #[arg(long)]
        history_messages: Option<u32>,
        /// Days with activity a device may go without updating its keys in
        /// a conversation.
        #[arg(long)]
        key_update_days: Option<u32>,
    },
    /// Remove what expired or passed retention on this device now, and
    /// report what housekeeping removed.
    Housekeeping,
    /// Read the practice's audit log (needs a fresh TOTP code).
    Audit {
        /// The code from your authenticator app.
        #[arg(long)]
        totp: String,
        /// Only this patient (HIS reference, e.g. bsn:123456782).
        #[arg(long)]
        patient: Option<String>,
        /// Only this user id.
        #[arg(long)]
        user: Option<String>,
        /// Write the CSV export here.
        #[arg(long)]
        csv: Option<std::path::PathBuf>,
        /// Write the FHIR AuditEvent Bundle here.
        #[arg(long)]
        fhir: Option<std::path::PathBuf>,
    },
    /// Check the audit log the server shows today against the anchors this
    /// device holds (needs a fresh TOTP code); fails if it was rewritten.
    VerifyAudit {
        /// The code from your authenticator app.
        totp: String,
    },
    /// Manager: anchor the audit log's head in the practice group now
    /// (your devices do it every hour as they sync).
    AnchorAudit,
    /// For a data breach: which patients a device or user accessed.
    Breach {
        /// The code from your authenticator app.
        #[arg(long)]
        totp: String,
        /// The lost or misused device id.
        #[arg(long, required_unless_present = "user")]
        device: Option<String>,
        /// The misused account's user id.
        #[arg(long)]
        user: Option<String>,
        /// From (ms since the Unix epoch; default: 30 days ago).
        #[arg(long)]
        from: Option<i64>,
        /// Until (ms since the Unix epoch; default: now).
        #[arg(long)]
        to: Option<i64>,
    },
    /// Inzage: export everything the chat holds about a patient.
    Inzage {
        /// The code from your authenticator app (for the access log).
        #[arg(long)]
        totp: String,
        /// The patient (HIS reference).
        #[arg(long)]
        patient: String,
        /// Write the PDF here.
        #[arg(long)]
        pdf: std::path::PathBuf,
        /// Write the FHIR R4 Bundle here.
        #[arg(long)]
        fhir: std::path::PathBuf,
    },
    /// Erase the chat content about a patient on their request.
    Erase {
        /// The patient (HIS reference).
        #[arg(long)]
        patient: String,
    },
    /// Your own account data, as JSON.
    MyData,
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub(crate) async fn run(client: &Client, command: PrivacyCommand) -> CliResult {
    client.sync().await?;
    match command {
        PrivacyCommand::Receipts { message } => {
            for r in client.privacy().receipts(&message).await? {
                println!(
                    "{}\t{}\tdelivered={}\tread={}",
                    r.user,
                    r.device,
                    r.delivered_at.map_or("-".into(), |t| t.to_string()),
                    r.read_at.map_or("-".into(), |t| t.to_string())
                );
            }
        }
        PrivacyCommand::Ttl { conversation, ttl } => {
            let secs = if ttl == "off" {
                None
            } else {
                Some(ttl.parse::<u64>().map_err(|_| "ttl: seconds or off")?)
            };
            client
                .privacy()
                .set_conversation_ttl(&conversation, secs)
                .await?;
            println!(
                "time-to-live {}",
                secs.map_or("off".into(), |s| format!("{s} s"))
            );
        }
        PrivacyCommand::Rules {
            retention_days,
            ttl_policy,
            ttl_secs,
            history_messages,
            key_update_days,
        } => {
            let mut rules = client.privacy().refresh_rules().await?;
            if retention_days.is_some()
                || ttl_policy.is_some()
                || history_messages.is_some()
                || key_update_days.is_some()
            {
                rules = PracticeRules {
                    retention_days: retention_days.unwrap_or(rules.retention_days),
                    history_messages: history_messages.unwrap_or(rules.history_messages),
                    key_update_days: key_update_days.unwrap_or(rules.key_update_days),
                    ttl: match ttl_policy.as_deref() {
                        None => rules.ttl,
                        Some("allowed") => TtlPolicy::Allowed,
                        Some("forbidden") => TtlPolicy::Forbidden,
                        Some("enforced") => TtlPolicy::Enforced {
                            secs: ttl_secs.ok_or("enforced needs --ttl-secs")?,
                        },
                        Some(other) => return Err(format!("ttl policy {other:?}").into()),
                    },
                };
                rules = client.privacy().set_rules(rules).await?;
            }
            println!(
                "retention: {} days\ndisappearing messages: {:?}\nhistory for a new device: {} messages per conversation\nkey updates: at least every {} days with activity",
                rules.retention_days, rules.ttl, rules.history_messages, rules.key_update_days
            );
        }
        PrivacyCommand::Housekeeping => {
            let r = client.privacy().housekeeping().await?;
            println!(
                "now: {} expired, {} past retention, {} held until documented\n\
                 in total on this device: {} expired, {} past retention, {} erased on request\n\
                 rules: retention {} days, disappearing messages {:?}",
                r.expired,
                r.past_retention,
                r.held_for_record,
                r.expired_total,
                r.retention_total,
                r.erased_total,
                r.rules.retention_days,
                r.rules.ttl
            );
        }
        PrivacyCommand::Audit {
            totp,
            patient,
            user,
            csv,
            fhir,
        } => {
            client.privacy().unlock_audit(&totp).await?;
            let query = AuditQuery {
                patient: patient.as_deref().map(PatientRef::new).transpose()?,
                user,
                ..AuditQuery::default()
            };
            if csv.is_some() || fhir.is_some() {
                let (csv_text, fhir_text) = client.privacy().export_audit(&query).await?;
                if let Some(path) = csv {
                    std::fs::write(&path, csv_text)?;
                    println!("CSV: {}", path.display());
                }
                if let Some(path) = fhir {
                    std::fs::write(&path, fhir_text)?;
                    println!("FHIR: {}", path.display());
                }
            } else {
                for e in client.privacy().audit_log(&query).await? {
                    let ev = e.event;
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{}",
                        ev.at,
                        ev.user_id.unwrap_or_default(),
                        ev.device_id.unwrap_or_default(),
                        ev.action,
                        ev.outcome,
                        e.patient
                            .map(|p| p.as_str().to_owned())
                            .or(ev.patient)
                            .unwrap_or_default()
                    );
                }
            }
        }
        PrivacyCommand::VerifyAudit { totp } => {
            client.privacy().unlock_audit(&totp).await?;
            let check = client.privacy().verify_audit().await?;
            println!(
                "{} records checked against {} anchors",
                check.records, check.anchors
            );
            if !check.problems.is_empty() {
                for problem in &check.problems {
                    println!("PROBLEM\t{problem}");
                }
                return Err("the audit log does not extend its anchors".into());
            }
            println!("the audit log extends every anchor");
        }
        PrivacyCommand::AnchorAudit => {
            let seq = client.privacy().anchor_audit().await?;
            println!("anchored the audit log at place {seq}");
        }
        PrivacyCommand::Breach {
            totp,
            device,
            user,
            from,
            to,
        } => {
            client.privacy().unlock_audit(&totp).await?;
            let to = to.unwrap_or_else(now_ms);
            let from = from.unwrap_or(to - 30 * 86_400_000);
            let rows = client
                .privacy()
                .breach_report(device.as_deref(), user.as_deref(), from, to)
                .await?;
            println!("{} patients", rows.len());
            for r in rows {
                println!(
                    "{}\t{} events\t{}..{}\t{}",
                    r.patient
                        .map(|p| p.as_str().to_owned())
                        .unwrap_or(r.pseudonym),
                    r.events,
                    r.first,
                    r.last,
                    r.actions
                );
            }
        }
        PrivacyCommand::Inzage {
            totp,
            patient,
            pdf,
            fhir,
        } => {
            client.privacy().unlock_audit(&totp).await?;
            let export = client
                .privacy()
                .export_patient(&PatientRef::new(&patient)?)
                .await?;
            std::fs::write(&pdf, &export.pdf)?;
            std::fs::write(&fhir, &export.fhir_bundle)?;
            println!(
                "{} conversations, {} messages, {} attachments, {} tasks, {} consent changes, {} access events\nPDF: {}\nFHIR: {}",
                export.conversations,
                export.messages,
                export.attachments,
                export.tasks,
                export.consent_changes,
                export.access_events,
                pdf.display(),
                fhir.display()
            );
        }
        PrivacyCommand::Erase { patient } => {
            let report = client
                .privacy()
                .erase_patient(&PatientRef::new(&patient)?)
                .await?;
            println!(
                "erased: {} conversations, {} messages, {} tasks, {} documentation items",
                report.conversations, report.messages, report.tasks, report.documentation_items
            );
            if let Some(task) = report.his_task {
                println!("task for the huisarts (handle the request in the HIS): {task}");
            }
            println!("kept:");
            for k in report.kept {
                println!("  {} — {}", k.what, k.why);
            }
        }
        PrivacyCommand::MyData => println!("{}", client.privacy().export_my_account().await?),
    }
    Ok(())
}
