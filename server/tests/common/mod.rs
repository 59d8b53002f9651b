//! The real `pieper-server` binary on loopback, and a small client for it.
//! Every scenario runs on the embedded SQLite and on PostgreSQL (a fresh
//! database per test on the server named by `PIEPER_TEST_POSTGRES_URL`).

#![allow(dead_code)]

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::Duration,
};

use pieper_wire::{LoginRequest, LoginResponse, Problem, SendRequest, SendResponse};
use reqwest::StatusCode;
use serde::{Serialize, de::DeserializeOwned};
use sqlx::{Connection, Executor};
use tempfile::TempDir;

pub type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Which database a server runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs a scenario once per backend, as two tests.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() -> $crate::common::TestResult {
                    super::$name($crate::common::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() -> $crate::common::TestResult {
                    super::$name($crate::common::Backend::Postgres).await
                }
            )*
        }
    };
}

/// A database for one test: a data directory, or a fresh PostgreSQL database.
pub struct TestDatabase {
    pub dir: TempDir,
    pub url: Option<String>,
}

impl TestDatabase {
    pub async fn new(backend: Backend) -> Result<Self, BoxError> {
        let dir = tempfile::tempdir()?;
        let url = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                let admin_url = std::env::var("PIEPER_TEST_POSTGRES_URL").map_err(|_| {
                    "PIEPER_TEST_POSTGRES_URL is not set: run ./scripts/test-all, which starts a PostgreSQL"
                })?;
                let name = format!("pieper_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = sqlx::PgConnection::connect(&admin_url).await?;
                conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .await?;
                let base = admin_url
                    .rsplit_once('/')
                    .map_or(admin_url.as_str(), |(b, _)| b);
                Some(format!("{base}/{name}"))
            }
        };
        Ok(Self { dir, url })
    }

    fn args(&self) -> Vec<String> {
        let mut args = vec!["--data-dir".into(), self.dir.path().display().to_string()];
        if let Some(url) = &self.url {
            args.extend(["--database-url".into(), url.clone()]);
        }
        args
    }

    /// Runs `pieper-server admin ...` on this database; returns stdout.
    pub fn admin(&self, args: &[&str]) -> Result<String, BoxError> {
        let out = Command::new(env!("CARGO_BIN_EXE_pieper-server"))
            .args(self.args())
            .arg("admin")
            .args(args)
            .env("PIEPER_NEW_PASSWORD", PASSWORD)
            .output()?;
        if !out.status.success() {
            return Err(format!("admin {args:?}: {}", String::from_utf8_lossy(&out.stderr)).into());
        }
        Ok(String::from_utf8(out.stdout)?)
    }
}

/// Every test user's password.
pub const PASSWORD: &str = "correct horse battery staple";

/// A running server process.
pub struct Server {
    child: Child,
    pub base: String,
    pub log: std::path::PathBuf,
}

impl Server {
    /// Starts the binary on a free loopback port over `db`.
    pub fn start(db: &TestDatabase, extra: &[&str]) -> Result<Self, BoxError> {
        let log = db
            .dir
            .path()
            .join(format!("server-{}.log", uuid::Uuid::new_v4().simple()));
        let mut child = Command::new(env!("CARGO_BIN_EXE_pieper-server"))
            .args(db.args())
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .env("PIEPER_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?)
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let address = line
            .trim()
            .strip_prefix("listening on ")
            .ok_or_else(|| format!("unexpected first line {line:?}"))?
            .to_owned();
        Ok(Self {
            child,
            base: format!("http://{address}"),
            log,
        })
    }

    pub fn ws_url(&self) -> String {
        format!("{}/api/v1/ws", self.base.replacen("http://", "ws://", 1))
    }

    /// The server's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills the process at once (like `kill -9`).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A user made with the admin command.
#[derive(Clone, Debug)]
pub struct User {
    pub practice: String,
    pub username: String,
    pub id: String,
    pub totp_secret: String,
}

/// Creates a practice (if new) and a user in it.
pub fn create_user(
    db: &TestDatabase,
    practice: &str,
    username: &str,
    role: &str,
) -> Result<User, BoxError> {
    let _ = db.admin(&["create-practice", "--id", practice, "--name", practice]);
    let out = db.admin(&[
        "create-user",
        "--practice",
        practice,
        "--username",
        username,
        "--display-name",
        username,
        "--role",
        role,
        "--json",
    ])?;
    let v: serde_json::Value = serde_json::from_str(out.trim())?;
    Ok(User {
        practice: practice.into(),
        username: username.into(),
        id: v["user_id"].as_str().ok_or("user_id")?.into(),
        totp_secret: v["totp_secret"].as_str().ok_or("totp_secret")?.into(),
    })
}

/// The TOTP code of `user` for the time step `step`.
pub fn totp_at(user: &User, step: u64) -> Result<String, BoxError> {
    let bytes = totp_rs::Secret::Encoded(user.totp_secret.clone())
        .to_bytes()
        .map_err(|e| format!("{e:?}"))?;
    let totp = totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 0, 30, bytes)?;
    Ok(totp.generate(step * 30))
}

pub fn current_step() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() / 30)
        .unwrap_or(0)
}

/// An HTTP client for one server.
#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    pub token: Option<String>,
}

/// A logged-in device.
#[derive(Clone)]
pub struct Device {
    pub client: Client,
    pub login: LoginResponse,
    pub user: User,
}

impl Client {
    pub fn new(server: &Server) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap_or_default(),
            base: server.base.clone(),
            token: None,
        }
    }

    pub fn with_token(&self, token: &str) -> Self {
        Self {
            token: Some(token.to_owned()),
            ..self.clone()
        }
    }

    fn auth(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    /// A request, its status and body as text.
    pub async fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Vec<u8>>,
        content_type: &str,
    ) -> Result<(StatusCode, String), BoxError> {
        let mut rb = self.auth(self.http.request(method, format!("{}{path}", self.base)));
        if let Some(body) = body {
            rb = rb.header("content-type", content_type).body(body);
        }
        let response = rb.send().await?;
        let status = response.status();
        Ok((status, response.text().await?))
    }

    /// A JSON request; `Ok(Ok(body))` on success, `Ok(Err(problem))` on a problem.
    pub async fn call<B: Serialize, R: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<Result<R, Problem>, BoxError> {
        let payload = body.map(serde_json::to_vec).transpose()?;
        let (status, text) = self.raw(method, path, payload, "application/json").await?;
        if status.is_success() {
            let text = if text.is_empty() {
                "null".to_owned()
            } else {
                text
            };
            Ok(Ok(serde_json::from_str(&text)?))
        } else {
            let problem: Problem = serde_json::from_str(&text)
                .map_err(|e| format!("status {status}, not a problem body ({e}): {text}"))?;
            assert_eq!(problem.status, status.as_u16());
            Ok(Err(problem))
        }
    }

    pub async fn login(
        &self,
        user: &User,
        totp: &str,
        device: &str,
    ) -> Result<Result<LoginResponse, Problem>, BoxError> {
        self.call(
            reqwest::Method::POST,
            "/api/v1/login",
            Some(&LoginRequest {
                practice: user.practice.clone(),
                username: user.username.clone(),
                password: PASSWORD.into(),
                totp: totp.into(),
                device_name: device.into(),
            }),
        )
        .await
    }
}

/// Logs `user` in on a new device, with a TOTP code not used before (steps
/// now and next are accepted; waits for a new step when both are used).
pub async fn enrol(server: &Server, user: &User, device: &str) -> Result<Device, BoxError> {
    let client = Client::new(server);
    for _ in 0..3 {
        let step = current_step();
        for s in [step, step + 1] {
            match client.login(user, &totp_at(user, s)?, device).await? {
                Ok(login) => {
                    return Ok(Device {
                        client: client.with_token(&login.device_token),
                        login,
                        user: user.clone(),
                    });
                }
                Err(p) if p.code == "totp_reused" => continue,
                Err(p) => return Err(format!("login failed: {p:?}").into()),
            }
        }
        tokio::time::sleep(Duration::from_secs(31 - (now_secs() % 30))).await;
    }
    Err("no fresh TOTP step".into())
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Device {
    pub fn id(&self) -> &str {
        &self.login.device_id
    }

    /// Registers a conversation.
    pub async fn create_conversation(&self) -> Result<String, BoxError> {
        let id = uuid::Uuid::new_v4().to_string();
        let r: Result<serde_json::Value, Problem> = self
            .client
            .call(
                reqwest::Method::POST,
                "/api/v1/conversations",
                Some(&pieper_wire::CreateConversation { id: id.clone() }),
            )
            .await?;
        r.map_err(|p| format!("create conversation: {p:?}"))?;
        Ok(id)
    }

    pub async fn send(
        &self,
        conversation: &str,
        req: &SendRequest,
    ) -> Result<Result<SendResponse, Problem>, BoxError> {
        self.client
            .call(
                reqwest::Method::POST,
                &format!("/api/v1/conversations/{conversation}/envelopes"),
                Some(req),
            )
            .await
    }

    pub async fn sync(&self, after: u64) -> Result<pieper_wire::SyncResponse, BoxError> {
        let r: Result<pieper_wire::SyncResponse, Problem> = self
            .client
            .call::<(), _>(
                reqwest::Method::GET,
                &format!("/api/v1/sync?after={after}"),
                None,
            )
            .await?;
        Ok(r.map_err(|p| format!("sync: {p:?}"))?)
    }
}

/// An application envelope with an opaque payload.
pub fn application(id: &str, epoch: u64, payload: &[u8]) -> SendRequest {
    SendRequest {
        id: id.into(),
        kind: pieper_wire::EnvelopeKind::Application,
        epoch,
        payload: payload.to_vec().into(),
        welcome: None,
        add_devices: vec![],
        remove_devices: vec![],
        patient: None,
        priority: pieper_wire::Priority::Routine,
    }
}

/// A commit (opaque) that adds and removes devices.
pub fn commit(id: &str, epoch: u64, add: &[&str], remove: &[&str]) -> SendRequest {
    SendRequest {
        kind: pieper_wire::EnvelopeKind::Commit,
        welcome: (!add.is_empty()).then(|| b"welcome".to_vec().into()),
        add_devices: add.iter().map(|s| (*s).to_owned()).collect(),
        remove_devices: remove.iter().map(|s| (*s).to_owned()).collect(),
        ..application(id, epoch, format!("commit {id}").as_bytes())
    }
}
