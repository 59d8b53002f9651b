//! `pieper document …` and `pieper connector`: documentation into the HIS.

use std::time::Duration;

use clap::Args;
use pieper_core::{
    Client, HisEndpoint,
    record::{Clinician, DocumentDraft, Icpc, PractitionerId, SoepKind, SoepLine},
};

/// A SOEP entry for the record from the command line.
#[derive(Debug, Args)]
pub struct DocumentArgs {
    /// The conversation (about the patient).
    pub conversation: String,
    /// The problem it is about.
    #[arg(long)]
    pub title: String,
    /// S: what the patient tells.
    #[arg(long)]
    pub s: Option<String>,
    /// O: what was found.
    #[arg(long)]
    pub o: Option<String>,
    /// E: the assessment (the patient reads it online).
    #[arg(long)]
    pub e: Option<String>,
    /// P: the plan (the patient reads it online).
    #[arg(long)]
    pub p: Option<String>,
    /// ICPC code for the E line, as CODE:Name (e.g. "R05:Hoesten").
    #[arg(long)]
    pub icpc: Option<String>,
    /// The messages it documents (comma separated ids).
    #[arg(long, value_delimiter = ',')]
    pub messages: Vec<String>,
    /// The confirming clinician's name.
    #[arg(long)]
    pub name: String,
    /// Their AGB code.
    #[arg(long)]
    pub agb: String,
    /// Confirm that E and P lines go to the patient's online record.
    #[arg(long)]
    pub patient_visible: bool,
    /// The HIS takes neither push nor pull: print the text to copy, and
    /// confirm it was entered by hand.
    #[arg(long)]
    pub by_hand: bool,
}

pub async fn document(client: &Client, a: DocumentArgs) -> Result<(), Box<dyn std::error::Error>> {
    let icpc = match a.icpc.as_deref() {
        Some(text) => {
            let (code, display) = text.split_once(':').ok_or("--icpc is CODE:Name")?;
            Some(Icpc {
                code: code.trim().into(),
                display: display.trim().into(),
            })
        }
        None => None,
    };
    let mut lines = Vec::new();
    for (kind, text) in [
        (SoepKind::S, a.s),
        (SoepKind::O, a.o),
        (SoepKind::E, a.e),
        (SoepKind::P, a.p),
    ] {
        if let Some(text) = text {
            let icpc = if kind == SoepKind::E {
                icpc.clone()
            } else {
                None
            };
            lines.push(SoepLine { kind, text, icpc });
        }
    }
    let draft = DocumentDraft {
        title: a.title,
        lines,
        messages: a.messages,
        author: Clinician {
            name: a.name,
            ids: vec![PractitionerId::Agb(a.agb)],
        },
        patient_visible_confirmed: a.patient_visible,
    };
    client.sync().await?;
    let status = if a.by_hand {
        let status = client.document_by_hand(&a.conversation, draft).await?;
        println!("{}", status.item.entry()?.as_text());
        status
    } else {
        client.document(&a.conversation, draft).await?
    };
    println!("{}\t{}", status.item.id, status.state.as_str());
    Ok(())
}

/// Runs the practice's HIS connector until interrupted: live on the server,
/// delivering documentation to the HIS's FHIR base URL every `interval`.
pub async fn connector(
    client: &Client,
    his_url: &str,
    interval: Duration,
) -> Result<(), Box<dyn std::error::Error>> {
    let his = HisEndpoint::new(his_url)?;
    let _live = client.start_live();
    println!("connector for {his_url} running");
    let mut tick = tokio::time::interval(interval);
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = tick.tick() => match client.deliver_documentation(&his).await {
                Ok(r) if r.documented + r.failed + r.postponed > 0 => println!(
                    "documented {}, failed {}, postponed {}",
                    r.documented, r.failed, r.postponed
                ),
                Ok(_) => {}
                Err(e) => eprintln!("connector round failed: {e}"),
            },
        }
    }
}
