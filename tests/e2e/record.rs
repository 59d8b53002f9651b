//! Documentation into the HIS: a real server, the real connector process
//! (`pieper connector`) and a test HIS that is a real FHIR R4 server (HAPI
//! FHIR plain server, `tests/his`) validating against the Nictiz profiles.

use std::{
    io::{BufRead, BufReader, Read, Seek, SeekFrom},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use pieper_core::{
    ConversationKind, NewMessage, PatientRef, RosterFormat,
    record::{Clinician, DocState, DocumentDraft, PractitionerId, SoepKind, SoepLine},
};
use pieper_e2e::{
    Backend, BoxError, PASSWORD, Server, TestDatabase, TestResult, approve, create_user,
    current_step, server_binary, sign_in, totp_at,
};
use serde_json::{Value, json};

/// A child process stopped when the test lets go of it.
struct Stopped(Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The test HIS process.
struct TestHis {
    _process: Stopped,
    base: String,
    http: reqwest::Client,
}

impl TestHis {
    fn start() -> Result<Self, BoxError> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("his/run");
        // Its build and JVM output, kept to say why it did not start.
        let log = tempfile::tempfile()?;
        let mut child = Stopped(
            Command::new(script)
                .arg("0")
                .stdout(Stdio::piped())
                .stderr(log.try_clone()?)
                .spawn()?,
        );
        let stdout = child.0.stdout.take().ok_or("no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let Some(port) = line.trim().strip_prefix("listening on ").map(str::to_owned) else {
            drop(child);
            let mut output = String::new();
            let mut log = log;
            log.seek(SeekFrom::Start(0))?;
            log.read_to_string(&mut output)?;
            return Err(format!("the test HIS did not start: {line:?}\n{output}").into());
        };
        Ok(Self {
            _process: child,
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
    _process: Stopped,
    /// Its device store; removed after the process stopped (fields drop in
    /// order).
    _dir: tempfile::TempDir,
}

fn pieper_binary() -> Result<PathBuf, BoxError> {
    let bin = server_binary()?.with_file_name("pieper");
    if !bin.exists() {
        return Err(format!("{} is missing: cargo build -p pieper-cli", bin.display()).into());
    }
    Ok(bin)
}

/// Signs the connector user in through the CLI and starts `pieper
/// connector` with `mode` (its flags); returns the process and, for pull
/// mode, the address it serves on.
fn start_connector(
    server: &Server,
    user: &pieper_e2e::User,
    mode: &[&str],
) -> Result<(Connector, Option<String>), BoxError> {
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
    let mut child = Command::new(&bin)
        .args(["--dir", &dir.path().display().to_string(), "connector"])
        .args(mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
    let mut line = String::new();
    stdout.read_line(&mut line)?;
    // Keep reading what it reports, so it never writes into a closed pipe.
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let address = line
        .trim()
        .strip_prefix("connector pull endpoint on ")
        .map(str::to_owned);
    Ok((
        Connector {
            _process: Stopped(child),
            _dir: dir,
        },
        address,
    ))
}

/// A SOEP draft by a huisarts with an AGB-code, about `messages`.
pub(crate) fn draft(title: &str, s: &str, messages: Vec<String>) -> DocumentDraft {
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
        let status = client.record().item(id)?;
        if status.state == want {
            return Ok(status);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err(format!(
        "item {id} never became {want:?}: {:?}",
        client.record().item(id)?
    )
    .into())
}

/// A practice with a test HIS, the sync server, its connector (started with
/// `mode`), a huisarts's desktop with the patient on the roster, and a
/// conversation about the patient.
struct Practice {
    his: TestHis,
    db: TestDatabase,
    server: Server,
    /// Kept running for the test's length.
    _connector: Connector,
    /// The pull endpoint, in pull mode.
    pull: Option<String>,
    huisarts: pieper_e2e::User,
    desktop: pieper_e2e::TestClient,
    conversation: pieper_core::Conversation,
}

async fn practice(mode: impl Fn(&TestHis) -> Vec<String>) -> Result<Practice, BoxError> {
    let his = TestHis::start()?;
    let db = TestDatabase::new(Backend::Sqlite).await?;
    let huisarts = create_user(&db, "linde", "jansen", "huisarts")?;
    let connector_user = create_user(&db, "linde", "his", "connector")?;
    let server = Server::start(&db, &[])?;
    let args = mode(&his);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (connector, pull) = start_connector(&server, &connector_user, &args)?;
    let desktop = sign_in(&server, &huisarts, "desktop").await?;
    desktop
        .consent()
        .import_roster(
            "reference,name,birth_date,enrolled\nbsn:999911120,Mw. J. de Vries,1951-04-12,yes\n"
                .into(),
            RosterFormat::Csv,
            true,
        )
        .await?;
    let conversation = desktop
        .conversations()
        .create(
            "Mw. De Vries — hoest",
            ConversationKind::Group,
            Some(PatientRef::new("bsn:999911120")?),
            &[],
        )
        .await?;
    Ok(Practice {
        his,
        db,
        server,
        _connector: connector,
        pull: pull.map(|a| format!("http://{a}/fhir")),
        huisarts,
        desktop,
        conversation,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documentation_reaches_the_his_exactly_once_through_the_connector() -> TestResult {
    let p = practice(|his| {
        ["--his-url", &his.base, "--interval-ms", "300"]
            .map(str::to_owned)
            .to_vec()
    })
    .await?;
    let (his, db, server, desktop, conversation) =
        (&p.his, &p.db, &p.server, &p.desktop, &p.conversation);
    const MARKER: &str = "DOSSIERTEKST-8K4 droge hoest sinds enalapril";
    let message = desktop
        .conversations()
        .send(&conversation.id, NewMessage::for_record(MARKER))
        .await?;
    // Without the E/P confirmation it is refused, and nothing is sent.
    let mut unconfirmed = draft("Hoesten", MARKER, vec![message.clone()]);
    unconfirmed.patient_visible_confirmed = false;
    assert!(matches!(
        desktop
            .record()
            .document(&conversation.id, unconfirmed)
            .await,
        Err(pieper_core::Error::Invalid {
            field: "patient_visible",
            ..
        })
    ));

    let first = desktop
        .record()
        .document(
            &conversation.id,
            draft("Hoesten", MARKER, vec![message.clone()]),
        )
        .await?;
    assert_eq!(first.state, DocState::Pending);
    assert_eq!(
        desktop.conversations().message(&message)?.kind,
        pieper_core::MessageKind::Documenteer
    );
    // The connector is a visible member of the conversation.
    assert_eq!(desktop.conversations().members(&conversation.id)?.len(), 2);
    let documented = wait_state(desktop, &first.item.id, DocState::Documented).await?;
    assert_eq!(documented.detail.as_deref(), Some("in the HIS"));
    assert!(desktop.record().to_document()?.is_empty());
    let progress = desktop
        .conversations()
        .message(&message)?
        .documentation
        .ok_or("the message shows no documentation state")?;
    assert_eq!(progress.state, DocState::Documented);
    // The launch link from the HIS opens this conversation.
    let patient = pieper_core::record::parse_launch_link("pieper://patient/bsn:999911120")?;
    let about = desktop.conversations().about(&patient)?;
    assert_eq!(
        about.first().map(|c| c.id.as_str()),
        Some(conversation.id.as_str())
    );
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
        .record()
        .document(
            &conversation.id,
            draft("Hoesten tweede", "Nog steeds hoest.", vec![]),
        )
        .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    desktop.sync().await?;
    assert_eq!(
        desktop.record().item(&second.item.id)?.state,
        DocState::Pending
    );
    his.toggle("outage", false).await?;
    wait_state(desktop, &second.item.id, DocState::Documented).await?;
    assert_eq!(his.compositions("Hoesten tweede").await?, 1);

    // The HIS refuses: the user sees why; after the fix a retry succeeds.
    his.toggle("reject", true).await?;
    let third = desktop
        .record()
        .document(
            &conversation.id,
            draft("Hoesten derde", "Hoest minder.", vec![]),
        )
        .await?;
    let failed = wait_state(desktop, &third.item.id, DocState::Failed).await?;
    assert!(
        failed
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("422") && d.contains("patient unknown")),
        "{failed:?}"
    );
    his.toggle("reject", false).await?;
    desktop.record().retry(&third.item.id).await?;
    wait_state(desktop, &third.item.id, DocState::Documented).await?;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_polling_his_takes_the_items_and_its_receipt_reaches_the_author() -> TestResult {
    const TOKEN: &str = "pull-token-0123456789abcdef";
    let p = practice(|_| {
        ["--pull-listen", "127.0.0.1:0", "--pull-token", TOKEN]
            .map(str::to_owned)
            .to_vec()
    })
    .await?;
    let (his, desktop, conversation) = (&p.his, &p.desktop, &p.conversation);
    let pull = p.pull.clone().ok_or("no pull address")?;
    let phone = sign_in(&p.server, &p.huisarts, "phone").await?;
    // The huisarts's desktop approves their new phone and adds it to their
    // conversations.
    approve(desktop, &phone).await?;
    desktop.devices().add_my_new_devices().await?;
    phone.sync().await?;
    let message = desktop
        .conversations()
        .send(
            &conversation.id,
            NewMessage::for_record("Hoest sinds enalapril"),
        )
        .await?;
    let item = desktop
        .record()
        .document(
            &conversation.id,
            draft(
                "Hoesten (pull)",
                "Hoest sinds enalapril",
                vec![message.clone()],
            ),
        )
        .await?;

    let http = reqwest::Client::new();
    let unauthorized = http
        .get(format!("{pull}/Task?status=requested"))
        .send()
        .await?;
    assert_eq!(unauthorized.status(), 401);
    let tasks: Value = http
        .get(format!("{pull}/Task?status=requested"))
        .bearer_auth(TOKEN)
        .send()
        .await?
        .json()
        .await?;
    let task = tasks["entry"][0]["resource"].clone();
    assert_eq!(tasks["total"], 1, "{tasks}");
    assert_eq!(task["status"], "requested");
    let focus = task["focus"]["reference"].as_str().ok_or("no focus")?;
    assert_eq!(focus, format!("Bundle/{}", item.item.id));
    let bundle: Value = http
        .get(format!("{pull}/{focus}"))
        .bearer_auth(TOKEN)
        .send()
        .await?
        .json()
        .await?;
    // What the HIS pulled is accepted by a real FHIR server that validates
    // it (the SOEP entry against the Nictiz profiles, the Task against R4).
    let task_bundle = json!({
        "resourceType": "Bundle", "type": "transaction",
        "entry": [{ "fullUrl": format!("urn:uuid:{}", task["id"].as_str().unwrap_or_default()),
                    "resource": task.clone(),
                    "request": { "method": "POST", "url": "Task", "ifNoneExist": format!("identifier=urn:ietf:rfc:3986|urn:uuid:{}", task["id"].as_str().unwrap_or_default()) } }],
    });
    for b in [&bundle, &task_bundle] {
        let status = http
            .post(&his.base)
            .header("content-type", "application/fhir+json")
            .json(b)
            .send()
            .await?
            .status();
        assert!(
            status.is_success(),
            "the HIS refused a pulled resource: {status}"
        );
    }
    assert_eq!(his.compositions("Hoesten (pull)").await?, 1);

    // The receipt: the HIS completes the Task.
    let mut done = task.clone();
    done["status"] = json!("completed");
    let answer = http
        .put(format!(
            "{pull}/Task/{}",
            task["id"].as_str().unwrap_or_default()
        ))
        .bearer_auth(TOKEN)
        .json(&done)
        .send()
        .await?;
    assert!(answer.status().is_success(), "{}", answer.status());
    // Every device of the author sees it documented.
    for device in [desktop, &phone] {
        let status = wait_state(device, &item.item.id, DocState::Documented).await?;
        assert_eq!(status.detail.as_deref(), Some("taken by the HIS"));
    }
    assert_eq!(
        desktop.conversations().message(&message)?.kind,
        pieper_core::MessageKind::Documenteer
    );
    // Nothing is left to pull.
    let tasks: Value = http
        .get(format!("{pull}/Task?status=requested"))
        .bearer_auth(TOKEN)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(tasks["total"], 0);
    Ok(())
}
