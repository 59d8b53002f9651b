//! Test support shared by the server's tests and the end-to-end tests: a
//! database per test (a temporary directory for SQLite, or a fresh database
//! on the PostgreSQL named by `PIEPER_TEST_POSTGRES_URL`), the real
//! `pieper-server` process on a free loopback port, users made with its admin
//! command, and their TOTP codes.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
};

use sqlx::{Connection, Executor};
use tempfile::TempDir;

/// What a test returns.
pub type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;
/// Any error a test helper gives.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Which database a server runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The embedded SQLite.
    Sqlite,
    /// PostgreSQL (needs `PIEPER_TEST_POSTGRES_URL`).
    Postgres,
}

/// A database for one test: a data directory, or a fresh PostgreSQL database.
pub struct TestDatabase {
    /// The server's data directory.
    pub dir: TempDir,
    /// The PostgreSQL database's URL, when on PostgreSQL.
    pub url: Option<String>,
}

impl TestDatabase {
    /// A fresh database on `backend`.
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

    /// A connection to the server's database, as whoever controls it has:
    /// for tests that change it behind the server's back.
    pub async fn connect(&self) -> Result<sqlx::AnyConnection, BoxError> {
        sqlx::any::install_default_drivers();
        let url = self.url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}",
                self.dir.path().join("pieper.sqlite3").display()
            )
        });
        Ok(sqlx::AnyConnection::connect(&url).await?)
    }

    /// Everything the server wrote to its data directory (SQLite database,
    /// WAL, blobs), as text: to prove what never reaches the server.
    pub fn dump_server_text(&self) -> Result<String, BoxError> {
        if self.url.is_some() {
            return Err("dump_server_text reads the SQLite data directory only".into());
        }
        fn walk(dir: &std::path::Path, out: &mut String) -> std::io::Result<()> {
            for entry in std::fs::read_dir(dir)? {
                let path = entry?.path();
                if path.is_dir() {
                    walk(&path, out)?;
                } else {
                    out.push_str(&String::from_utf8_lossy(&std::fs::read(&path)?));
                }
            }
            Ok(())
        }
        let mut out = String::new();
        walk(self.dir.path(), &mut out)?;
        if out.is_empty() {
            return Err("the server wrote nothing".into());
        }
        Ok(out)
    }

    /// The flags that point a server at this database.
    pub fn args(&self) -> Vec<String> {
        let mut args = vec!["--data-dir".into(), self.dir.path().display().to_string()];
        if let Some(url) = &self.url {
            args.extend(["--database-url".into(), url.clone()]);
        }
        args
    }

    /// Runs `pieper-server admin ...` on this database; returns stdout.
    pub fn admin(&self, args: &[&str]) -> Result<String, BoxError> {
        let out = Command::new(server_binary()?)
            .args(self.args())
            .arg("admin")
            .args(args)
            .env("PIEPER_NEW_PASSWORD", PASSWORD)
            .output()?;
        if !out.status.success() {
            return Err(format!(
                "admin {args:?}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
        Ok(String::from_utf8(out.stdout)?)
    }
}

/// Every test user's password.
pub const PASSWORD: &str = "correct horse battery staple";

/// A running server process.
pub struct Server {
    child: Child,
    /// The server's base URL.
    pub base: String,
    /// Where the server process writes its log.
    pub log: std::path::PathBuf,
}

impl Server {
    /// The server process's id (for what a harness measures of it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts the binary on a free loopback port over `db`, with the test
    /// server setting that takes each TOTP code twice (so one account signs
    /// in on several devices without waiting for the next 30-second step).
    pub fn start(db: &TestDatabase, extra: &[&str]) -> Result<Self, BoxError> {
        Self::start_at(db, "127.0.0.1:0", extra)
    }

    /// Starts the binary as a practice runs it: each TOTP code once.
    pub fn start_strict(db: &TestDatabase, extra: &[&str]) -> Result<Self, BoxError> {
        Self::launch(db, "127.0.0.1:0", extra)
    }

    /// Starts the binary on `address` (to restart a server where its
    /// clients expect it), with the test TOTP setting of [`Server::start`].
    pub fn start_at(db: &TestDatabase, address: &str, extra: &[&str]) -> Result<Self, BoxError> {
        let mut args = vec!["--insecure-test-totp-reuse"];
        args.extend_from_slice(extra);
        Self::launch(db, address, &args)
    }

    fn launch(db: &TestDatabase, address: &str, extra: &[&str]) -> Result<Self, BoxError> {
        let log = db
            .dir
            .path()
            .join(format!("server-{}.log", uuid::Uuid::new_v4().simple()));
        let mut child = Command::new(server_binary()?)
            .args(db.args())
            .args(["--listen", address])
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

    /// The WebSocket URL of the live channel.
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
        // For debugging a failure: PIEPER_TEST_SHOW_LOG=1 prints the log.
        if std::env::var_os("PIEPER_TEST_SHOW_LOG").is_some() {
            eprintln!("--- server log ---\n{}", self.log_text());
        }
    }
}

/// A user made with the admin command.
#[derive(Clone, Debug)]
pub struct User {
    /// The practice id.
    pub practice: String,
    /// The user name.
    pub username: String,
    /// The user id.
    pub id: String,
    /// The TOTP secret (base32).
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

/// The current 30-second TOTP time step.
pub fn current_step() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() / 30)
        .unwrap_or(0)
}

/// The `pieper-server` binary built beside the tests (`PIEPER_SERVER_BIN`
/// overrides it).
pub fn server_binary() -> Result<std::path::PathBuf, BoxError> {
    if let Ok(path) = std::env::var("PIEPER_SERVER_BIN") {
        return Ok(path.into());
    }
    // Beside a binary in <target>/<profile>, or one level up from a test
    // executable in <target>/<profile>/deps.
    let exe = std::env::current_exe()?;
    let beside = exe.with_file_name("pieper-server");
    let bin = if beside.exists() {
        beside
    } else {
        exe.parent()
            .and_then(|deps| deps.parent())
            .ok_or("test binary has no target directory")?
            .join("pieper-server")
    };
    if !bin.exists() {
        return Err(format!(
            "{} is missing: build it first (cargo build -p pieper-server)",
            bin.display()
        )
        .into());
    }
    Ok(bin)
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Signs in with a TOTP code no earlier login used up (a practice's server
/// takes each code once, a test server twice): tries this step's code and
/// the next's, and when both were used up waits for a fresh step. `attempt` answers `Ok(None)` when the server
/// said the code was used already.
pub async fn with_fresh_totp<T, F, Fut>(user: &User, mut attempt: F) -> Result<T, BoxError>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, BoxError>>,
{
    for _ in 0..3 {
        let step = current_step();
        for s in [step, step + 1] {
            if let Some(done) = attempt(totp_at(user, s)?).await? {
                return Ok(done);
            }
        }
        tokio::time::sleep(std::time::Duration::from_secs(31 - now_secs() % 30)).await;
    }
    Err("no fresh TOTP step".into())
}

/// Waits, if needed, until at least `needed` seconds remain in the current
/// TOTP step, so a test that reasons about "this step" and "the one before"
/// does not cross a step boundary half-way.
pub async fn early_in_a_step(needed: u64) {
    let left = 30 - now_secs() % 30;
    if left < needed.min(29) {
        tokio::time::sleep(std::time::Duration::from_secs(left + 1)).await;
    }
}
