//! Documentation into the HIS: a real server, the real connector process
//! (`pieper connector`) and a test HIS that is a real FHIR R4 server (HAPI
//! FHIR plain server, `tests/his`) validating against the Nictiz profiles.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use pieper_core::{
    ConversationKind, NewMessage, PatientRef, RosterFormat,
    record::{Clinician, DocState, DocumentDraft, PractitionerId, SoepKind, SoepLine},
};
use pieper_e2e::{
    Backend, BoxError, PASSWORD, Server, TestDatabase, TestResult, create_user, current_step,
    server_binary, sign_in, totp_at,
};
use serde_json::{Value, json};

/// The test HIS process.
struct TestHis {
    child: Child,
    base: String,
    http: reqwest::Client,
}

impl Drop for TestHis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TestHis {
    fn start() -> Result<Self, BoxError> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("his/run");
        let mut child = Command::new(script)
            .arg("0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let port = line
            .trim()
            .strip_prefix("listening on ")
            .ok_or_else(|| format!("the test HIS did not start: {line:?}"))?
            .to_owned();
        Ok(Self {
            child,
            base: format!("http://127.0.0.1:{port}/fhir"),
            http: reqwest::Client::new(),
        })
    }

    async fn received(&self) -> Result<Value, BoxError> {
        Ok(self
            .http
            .get(format!("{}/$received", self.base))
            .send()
            .await?
            .json()
            .await?)
    }

    async fn toggle(&self, operation: &str, on: bool) -> TestResult {
        let body = json!({"resourceType": "Parameters", "parameter": [{"name": "on", "valueBoolean": on}]});
        let status = self
            .http
            .post(format!("{}/${operation}", self.base))
            .header("content-type", "application/fhir+json")
            .json(&body)
            .send()
            .await?
            .status();
        if !status.is_success() {
            return Err(format!("${operation}: {status}").into());
        }
        Ok(())
    }

    /// The Compositions the HIS holds with this title.
    async fn compositions(&self, title: &str) -> Result<usize, BoxError> {
        let received = self.received().await?;
        Ok(received["entry"]
            .as_array()
            .map(|e| {
                e.iter()
                    .filter(|e| {
                        e["resource"]["resourceType"] == "Composition"
                            && e["resource"]["title"] == title
                    })
                    .count()
            })
            .unwrap_or(0))
    }
}

/// `pieper connector` signed in as the practice's connector.
struct Connector {
    process: Child,
    /// Its device store; removed after the process stopped.
    _dir: tempfile::TempDir,
}

impl Drop for Connector {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

fn pieper_binary() -> Result<PathBuf, BoxError> {
    let bin = server_binary()?.with_file_name("pieper");
    if !bin.exists() {
        return Err(format!("{} is missing: cargo build -p pieper-cli", bin.display()).into());
    }
    Ok(bin)
}

fn start_connector(
    server: &Server,
    user: &pieper_e2e::User,
    his: &TestHis,
) -> Result<Connector, BoxError> {
    let dir = tempfile::tempdir()?;
    let bin = pieper_binary()?;
    let login = Command::new(&bin)
        .args(["--dir", &dir.path().display().to_string(), "login"])
        .args(["--server", &server.base, "--practice", &user.practice])
        .args([
            "--username",
            &user.username,
            "--device-name",
            "his-connector",
        ])
        .args(["--totp", &totp_at(user, current_step())?])
        .env("PIEPER_PASSWORD", PASSWORD)
        .output()?;
    if !login.status.success() {
        return Err(format!(
            "connector login: {}",
            String::from_utf8_lossy(&login.stderr)
        )
        .into());
    }
    let child = Command::new(&bin)
        .args(["--dir", &dir.path().display().to_string(), "connector"])
        .args(["--his-url", &his.base, "--interval-ms", "300"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    Ok(Connector {
        process: child,
        _dir: dir,
    })
}

fn draft(title: &str, s: &str, messages: Vec<String>) -> DocumentDraft {
    DocumentDraft {
        title: title.into(),
        lines: vec![
            SoepLine {
                kind: SoepKind::S,
                text: s.into(),
                icpc: None,
            },
            SoepLine {
                kind: SoepKind::P,
                text: "Controle over 2 weken bij de POH.".into(),
                icpc: None,
            },
        ],
        messages,
        author: Clinician {
            name: "H.A. Janszens".into(),
            ids: vec![PractitionerId::Agb("01999999".into())],
        },
        patient_visible_confirmed: true,
    }
}

async fn wait_state(
    client: &pieper_core::Client,
    id: &str,
    want: DocState,
) -> Result<pieper_core::record::DocStatus, BoxError> {
    for _ in 0..240 {
        client.sync().await?;
        let status = client.device().doc_item(id)?;
        if status.state == want {
            return Ok(status);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err(format!(
        "item {id} never became {want:?}: {:?}",
        client.device().doc_item(id)?
    )
    .into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documentation_reaches_the_his_exactly_once_through_the_connector() -> TestResult {
    let his = TestHis::start()?;
    let db = TestDatabase::new(Backend::Sqlite).await?;
    let huisarts = create_user(&db, "linde", "jansen", "huisarts")?;
    let connector_user = create_user(&db, "linde", "his", "connector")?;
    let server = Server::start(&db, &[])?;
    let _connector = start_connector(&server, &connector_user, &his)?;
    let desktop = sign_in(&server, &huisarts, "desktop").await?;

    desktop
        .import_roster(
            "reference,name,birth_date,enrolled\nbsn:999911120,Mw. J. de Vries,1951-04-12,yes\n"
                .into(),
            RosterFormat::Csv,
            true,
        )
        .await?;
    let conversation = desktop
        .create_conversation(
            "Mw. De Vries — hoest",
            ConversationKind::Group,
            Some(PatientRef::new("bsn:999911120")?),
            &[],
        )
        .await?;
    const MARKER: &str = "DOSSIERTEKST-8K4 droge hoest sinds enalapril";
    let message = desktop
        .send(&conversation.id, NewMessage::for_record(MARKER))
        .await?;
    // Without the E/P confirmation it is refused, and nothing is sent.
    let mut unconfirmed = draft("Hoesten", MARKER, vec![message.clone()]);
    unconfirmed.patient_visible_confirmed = false;
    assert!(matches!(
        desktop.document(&conversation.id, unconfirmed).await,
        Err(pieper_core::Error::Invalid {
            field: "patient_visible",
            ..
        })
    ));

    let first = desktop
        .document(
            &conversation.id,
            draft("Hoesten", MARKER, vec![message.clone()]),
        )
        .await?;
    assert_eq!(first.state, DocState::Pending);
    assert_eq!(
        desktop.device().message(&message)?.kind,
        pieper_core::MessageKind::Documenteer
    );
    // The connector is a visible member of the conversation.
    assert_eq!(desktop.device().members(&conversation.id)?.len(), 2);
    let documented = wait_state(&desktop, &first.item.id, DocState::Documented).await?;
    assert_eq!(documented.detail.as_deref(), Some("in the HIS"));
    assert!(desktop.device().to_document()?.is_empty());
    assert_eq!(his.compositions("Hoesten").await?, 1);
    let received = his.received().await?;
    assert!(
        received.to_string().contains(MARKER),
        "the text reached the HIS"
    );
    assert_eq!(
        received["link"][0]["url"], "0",
        "no validation errors at the HIS"
    );

    // The HIS is down, then back: the item arrives once.
    his.toggle("outage", true).await?;
    let second = desktop
        .document(
            &conversation.id,
            draft("Hoesten tweede", "Nog steeds hoest.", vec![]),
        )
        .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    desktop.sync().await?;
    assert_eq!(
        desktop.device().doc_item(&second.item.id)?.state,
        DocState::Pending
    );
    his.toggle("outage", false).await?;
    wait_state(&desktop, &second.item.id, DocState::Documented).await?;
    assert_eq!(his.compositions("Hoesten tweede").await?, 1);

    // The HIS refuses: the user sees why; after the fix a retry succeeds.
    his.toggle("reject", true).await?;
    let third = desktop
        .document(
            &conversation.id,
            draft("Hoesten derde", "Hoest minder.", vec![]),
        )
        .await?;
    let failed = wait_state(&desktop, &third.item.id, DocState::Failed).await?;
    assert!(
        failed
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("422") && d.contains("patient unknown")),
        "{failed:?}"
    );
    his.toggle("reject", false).await?;
    desktop.retry_document(&third.item.id).await?;
    wait_state(&desktop, &third.item.id, DocState::Documented).await?;
    assert_eq!(his.compositions("Hoesten derde").await?, 1);
    assert_eq!(
        his.compositions("Hoesten").await?,
        1,
        "nothing written twice"
    );

    // The sync server never saw the text.
    assert!(!db.dump_server_text()?.contains("DOSSIERTEKST-8K4"));
    assert!(!server.log_text().contains("DOSSIERTEKST-8K4"));
    Ok(())
}
