//! `pieper consent ...`: the roster and patient consent from the command line.

use clap::Subcommand;
use pieper_core::{
    Client, ConsentChange, ConsentKind, ConsentMethod, ConsentStatus, NewConsent, PatientRef,
    RosterFormat, consent,
};

#[derive(Debug, Subcommand)]
pub(crate) enum ConsentCommand {
    /// Import the roster from CSV (reference,name,birth_date,enrolled) or a
    /// FHIR Bundle of Patients (a file ending in .json).
    ImportRoster {
        /// The file.
        file: std::path::PathBuf,
        /// The file is the whole practice: enrolled patients it lacks left.
        #[arg(long)]
        full: bool,
    },
    /// Record a patient's answer.
    Record {
        /// The patient's HIS reference.
        patient: String,
        /// given, refused or not_asked.
        status: String,
        /// lsp_sharing or e_communication.
        #[arg(long, default_value = "lsp_sharing")]
        kind: String,
        /// in_person, paper_form or digital.
        #[arg(long, default_value = "in_person")]
        method: String,
        /// A note.
        #[arg(long)]
        note: Option<String>,
    },
    /// Withdraw given consent.
    Withdraw {
        /// The patient's HIS reference.
        patient: String,
        /// lsp_sharing or e_communication.
        #[arg(long, default_value = "lsp_sharing")]
        kind: String,
        /// in_person, paper_form or digital.
        #[arg(long, default_value = "in_person")]
        method: String,
        /// A note.
        #[arg(long)]
        note: Option<String>,
    },
    /// The history of one patient, or of all.
    History {
        /// The patient's HIS reference.
        patient: Option<String>,
    },
    /// The practice's figures against the 75 % target, month by month.
    Figures {
        /// lsp_sharing or e_communication.
        #[arg(long, default_value = "lsp_sharing")]
        kind: String,
    },
    /// The patients still to ask, as CSV for the front desk.
    Worklist {
        /// lsp_sharing or e_communication.
        #[arg(long, default_value = "lsp_sharing")]
        kind: String,
    },
    /// Import consent from FHIR R4 Consent resources.
    ImportFhir {
        /// The JSON file (a Bundle or one Consent).
        file: std::path::PathBuf,
    },
    /// Print the consent history as a FHIR R4 Bundle of Consents.
    ExportFhir,
}

fn line(c: &ConsentChange) -> String {
    let withdrawal = if c.withdrawal { " (withdrawal)" } else { "" };
    format!(
        "{}\t{}\t{}\t{}{withdrawal}\t{}\t{} ({})\t{}",
        c.recorded_at,
        c.patient.as_str(),
        c.kind.as_str(),
        c.status.as_str(),
        c.method.as_str(),
        c.recorded_by,
        c.role,
        c.note.as_deref().unwrap_or("")
    )
}

pub(crate) async fn run(
    client: &Client,
    command: ConsentCommand,
) -> Result<(), Box<dyn std::error::Error>> {
    // Catch up first, so what is shown and checked is the practice's;
    // offline, work from what this device has.
    let caught_up = match client.sync().await {
        Ok(_) => client.consent().sync_practice().await.map(|_| ()),
        Err(e) => Err(e),
    };
    match caught_up {
        Ok(()) | Err(pieper_core::Error::Network(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let consent = client.consent();
    match command {
        ConsentCommand::ImportRoster { file, full } => {
            let format = if file.extension().is_some_and(|e| e == "json") {
                RosterFormat::FhirBundle
            } else {
                RosterFormat::Csv
            };
            let text = std::fs::read_to_string(&file)?;
            let changes = client.consent().import_roster(text, format, full).await?;
            println!(
                "added {}, changed {}, left {}",
                changes.added.len(),
                changes.changed.len(),
                changes.left.len()
            );
        }
        ConsentCommand::Record {
            patient,
            status,
            kind,
            method,
            note,
        } => {
            let change = client
                .consent()
                .record(NewConsent {
                    patient: PatientRef::new(&patient)?,
                    kind: ConsentKind::parse(&kind)?,
                    status: ConsentStatus::parse(&status)?,
                    method: ConsentMethod::parse(&method)?,
                    note,
                    obtained_at: None,
                })
                .await?;
            println!("{}", line(&change));
        }
        ConsentCommand::Withdraw {
            patient,
            kind,
            method,
            note,
        } => {
            let change = client
                .consent()
                .withdraw(
                    PatientRef::new(&patient)?,
                    ConsentKind::parse(&kind)?,
                    ConsentMethod::parse(&method)?,
                    note,
                )
                .await?;
            println!("{}", line(&change));
        }
        ConsentCommand::History { patient } => {
            let patient = patient.as_deref().map(PatientRef::new).transpose()?;
            for c in consent.history(patient.as_ref())? {
                println!("{}", line(&c));
            }
        }
        ConsentCommand::Figures { kind } => {
            let kind = ConsentKind::parse(&kind)?;
            let f = consent.figures(kind)?;
            println!(
                "enrolled {}, given {}, refused {}, not asked {}: {:.1} % ({} the 75 % target)",
                f.enrolled,
                f.given,
                f.refused,
                f.not_asked,
                f.rate * 100.0,
                if f.meets_target { "meets" } else { "below" }
            );
            for (month, f) in consent.monthly(kind)? {
                println!(
                    "{month}\t{:.1} %\t{}/{}",
                    f.rate * 100.0,
                    f.given,
                    f.enrolled
                );
            }
        }
        ConsentCommand::Worklist { kind } => {
            let list = consent.worklist(ConsentKind::parse(&kind)?)?;
            print!(
                "{}",
                consent::worklist_csv(&list.iter().collect::<Vec<_>>())
            );
        }
        ConsentCommand::ImportFhir { file } => {
            let new = client
                .consent()
                .import_fhir(std::fs::read_to_string(&file)?)
                .await?;
            println!("imported {new} new changes");
        }
        ConsentCommand::ExportFhir => {
            println!(
                "{}",
                consent::consent_to_fhir_bundle(&consent.history(None)?)?
            );
        }
    }
    Ok(())
}
