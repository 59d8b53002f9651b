//! `pieper document …` and `pieper connector`: documentation into the HIS.

use std::time::Duration;

use clap::Args;
use pieper_core::{
    Client, HisEndpoint,
    record::{Clinician, DocumentDraft, Icpc, PractitionerId, SoepKind, SoepLine},
};

/// A SOEP entry for the record from the command line.
#[derive(Debug, Args)]
pub(crate) struct DocumentArgs {
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

pub(crate) async fn document(
    client: &Client,
    a: DocumentArgs,
) -> Result<(), Box<dyn std::error::Error>> {
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
        let status = client
            .record()
            .document_by_hand(&a.conversation, draft)
            .await?;
        println!("{}", status.item.entry()?.as_text());
        status
    } else {
        client.record().document(&a.conversation, draft).await?
    };
    println!("{}\t{}", status.item.id, status.state.as_str());
    Ok(())
}

/// Runs the practice's HIS connector until interrupted: live on the server,
/// delivering documentation to the HIS's FHIR base URL every `interval`.
pub(crate) async fn connector(
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
            _ = tick.tick() => match client.record().deliver(&his).await {
                Ok(r) if r.documented + r.failed + r.postponed > 0 => {
                    // A connector runs unattended: a closed stdout must not stop it.
                    use std::io::Write;
                    let _ = writeln!(
                        std::io::stdout(),
                        "documented {}, failed {}, postponed {}",
                        r.documented, r.failed, r.postponed
                    );
                }
                Ok(_) => {}
                Err(e) => eprintln!("connector round failed: {e}"),
            },
        }
    }
}

/// The pull endpoint's state: the connector's client and the token a HIS
/// must present.
#[derive(Clone)]
struct Pull {
    client: Client,
    token: std::sync::Arc<str>,
}

fn authorized(pull: &Pull, headers: &axum::http::HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        // In time that does not tell how much of a guess was right.
        .is_some_and(|t| subtle::ConstantTimeEq::ct_eq(t.as_bytes(), pull.token.as_bytes()).into())
}

fn fhir(status: axum::http::StatusCode, body: serde_json::Value) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        status,
        [("content-type", "application/fhir+json")],
        body.to_string(),
    )
        .into_response()
}

fn outcome(status: axum::http::StatusCode, text: &str) -> axum::response::Response {
    fhir(
        status,
        serde_json::json!({
            "resourceType": "OperationOutcome",
            "issue": [{ "severity": "error", "code": "processing", "diagnostics": text }],
        }),
    )
}

/// The FHIR Task that announces an item to a polling HIS.
fn task_for(
    status: &pieper_core::record::DocStatus,
) -> Result<serde_json::Value, pieper_core::Error> {
    let entry = status.item.entry()?;
    let (system, value) =
        pieper_core::record::identifiers::patient_identifier(&entry.patient.reference)?;
    let id = pieper_core::record::stable_uuid(&format!("{}/task", status.item.id));
    Ok(serde_json::json!({
        "resourceType": "Task",
        "id": id,
        "text": pieper_core::record::narrative(&format!("SOEP: {}", status.item.title)),
        "identifier": [{ "system": "urn:ietf:rfc:3986", "value": format!("urn:uuid:{id}") }],
        "status": "requested",
        "intent": "order",
        "description": status.item.title,
        "focus": { "reference": format!("Bundle/{}", status.item.id) },
        "for": { "identifier": { "system": system, "value": value } },
        "authoredOn": pieper_core::record::fhir_date(status.item.date)?,
    }))
}

async fn pull_tasks(
    axum::extract::State(pull): axum::extract::State<Pull>,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    use axum::http::StatusCode;
    if !authorized(&pull, &headers) {
        return outcome(StatusCode::UNAUTHORIZED, "a bearer token is needed");
    }
    if let Err(e) = pull.client.sync().await {
        return outcome(StatusCode::SERVICE_UNAVAILABLE, &e.to_string());
    }
    let pending = match pull.client.record().pending() {
        Ok(p) => p,
        Err(e) => return outcome(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let mut entries = Vec::new();
    for status in &pending {
        match task_for(status) {
            Ok(task) => entries.push(serde_json::json!({ "resource": task })),
            Err(e) => return outcome(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        }
    }
    fhir(
        StatusCode::OK,
        serde_json::json!({ "resourceType": "Bundle", "type": "searchset", "total": entries.len(), "entry": entries }),
    )
}

async fn pull_bundle(
    axum::extract::State(pull): axum::extract::State<Pull>,
    axum::extract::Path(id): axum::extract::Path<String>,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    use axum::http::StatusCode;
    if !authorized(&pull, &headers) {
        return outcome(StatusCode::UNAUTHORIZED, "a bearer token is needed");
    }
    let bundle = pull
        .client
        .record()
        .item(&id)
        .and_then(|s| s.item.entry())
        .and_then(|e| e.transaction_bundle());
    match bundle {
        Ok(mut b) => {
            b["id"] = serde_json::json!(id);
            fhir(StatusCode::OK, b)
        }
        Err(pieper_core::Error::NotFound { .. }) => outcome(StatusCode::NOT_FOUND, "no such item"),
        Err(e) => outcome(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// The HIS's receipt: the Task completed (documented) or failed/rejected
/// (with `statusReason.text`).
async fn pull_receipt(
    axum::extract::State(pull): axum::extract::State<Pull>,
    axum::extract::Path(task_id): axum::extract::Path<String>,
    headers: axum::http::HeaderMap,
    body: String,
) -> axum::response::Response {
    use axum::http::StatusCode;
    use pieper_core::record::DocState;
    if !authorized(&pull, &headers) {
        return outcome(StatusCode::UNAUTHORIZED, "a bearer token is needed");
    }
    let Ok(task) = serde_json::from_str::<serde_json::Value>(&body) else {
        return outcome(StatusCode::BAD_REQUEST, "not JSON");
    };
    let item = task["focus"]["reference"]
        .as_str()
        .and_then(|r| r.strip_prefix("Bundle/"))
        .map(str::to_owned);
    let Some(item) = item else {
        return outcome(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Task.focus must name the Bundle",
        );
    };
    let matches_task = pull
        .client
        .record()
        .item(&item)
        .ok()
        .and_then(|s| task_for(&s).ok())
        .is_some_and(|t| t["id"] == task_id);
    if !matches_task {
        return outcome(StatusCode::NOT_FOUND, "no such Task");
    }
    let (state, detail) = match task["status"].as_str() {
        Some("completed") => (DocState::Documented, "taken by the HIS".to_owned()),
        Some("failed" | "rejected") => (
            DocState::Failed,
            format!(
                "the HIS refused it: {}",
                task["statusReason"]["text"]
                    .as_str()
                    .unwrap_or("no reason given")
            ),
        ),
        _ => {
            return outcome(
                StatusCode::UNPROCESSABLE_ENTITY,
                "status must be completed, failed or rejected",
            );
        }
    };
    match pull
        .client
        .record()
        .report(&item, state, Some(detail))
        .await
    {
        Ok(_) => fhir(StatusCode::OK, task),
        Err(e) => outcome(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

/// Runs the connector for a HIS that polls: serves the pending items as
/// FHIR Tasks (`GET /fhir/Task?status=requested`), their Bundles
/// (`GET /fhir/Bundle/{id}`), and takes the receipt (`PUT /fhir/Task/{id}`).
pub(crate) async fn serve_pull(
    client: &Client,
    listen: &str,
    token: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    use axum::routing::{get, put};
    if token.len() < 16 {
        return Err("--pull-token must be at least 16 characters".into());
    }
    let _live = client.start_live();
    let state = Pull {
        client: client.clone(),
        token: token.into(),
    };
    let app = axum::Router::new()
        .route("/fhir/Task", get(pull_tasks))
        .route("/fhir/Task/{id}", put(pull_receipt))
        .route("/fhir/Bundle/{id}", get(pull_bundle))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!("connector pull endpoint on {}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
