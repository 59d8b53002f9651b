//! End-to-end support: real `Client`s of the core signed in to a real server
//! process, each in its own directory with its own keystore.

use std::{sync::Arc, time::Duration};

use pieper_core::{Client, Credentials, Event, FileKeyStore, KeyStore};
pub use pieper_testkit::*;
use tempfile::TempDir;
use tokio::sync::broadcast;

/// A signed-in device and where it keeps its store.
pub struct TestClient {
    /// The signed-in client.
    pub client: Client,
    /// Where its store lives.
    pub dir: TempDir,
    /// Whose device it is.
    pub user: User,
}

impl std::ops::Deref for TestClient {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

/// The file keystore a test device in `dir` keeps its wrapping key in.
pub fn keystore_in(dir: &std::path::Path) -> Result<Arc<dyn KeyStore>, BoxError> {
    Ok(Arc::new(FileKeyStore::in_dir(dir)?))
}

fn keystore(dir: &TempDir) -> Result<Arc<dyn KeyStore>, BoxError> {
    keystore_in(dir.path())
}

/// Signs `user` in on a new device, with a TOTP code not used before.
pub async fn sign_in(server: &Server, user: &User, device: &str) -> Result<TestClient, BoxError> {
    let dir = tempfile::tempdir()?;
    let keystore = keystore(&dir)?;
    let client = with_fresh_totp(user, |totp| {
        let keystore = Arc::clone(&keystore);
        let credentials = Credentials {
            practice: user.practice.clone(),
            username: user.username.clone(),
            password: PASSWORD.into(),
            totp,
            device_name: device.into(),
        };
        let dir = dir.path().to_owned();
        async move {
            match Client::login(&server.base, dir, keystore, credentials).await {
                Ok(client) => Ok(Some(client)),
                Err(pieper_core::Error::Rejected { code, .. }) if code == "totp_reused" => Ok(None),
                Err(e) => Err(e.into()),
            }
        }
    })
    .await?;
    Ok(TestClient {
        client,
        dir,
        user: user.clone(),
    })
}

/// A huisarts (jansen, on a phone) and an assistent (bakker, on a desktop)
/// of one practice, signed in to a fresh server.
pub async fn colleagues() -> Result<(TestDatabase, Server, TestClient, TestClient), BoxError> {
    let db = TestDatabase::new(Backend::Sqlite).await?;
    let jansen = create_user(&db, "linde", "jansen", "huisarts")?;
    let bakker = create_user(&db, "linde", "bakker", "assistent")?;
    let server = Server::start(&db, &[])?;
    let huisarts = sign_in(&server, &jansen, "phone").await?;
    let assistent = sign_in(&server, &bakker, "desktop").await?;
    Ok((db, server, huisarts, assistent))
}

/// `by` approves `new`, another device of the same user, with the code
/// `new` shows (what the person compares on both screens).
pub async fn approve(by: &TestClient, new: &TestClient) -> Result<(), BoxError> {
    let code = new.devices().approval_code()?;
    by.devices().approve(&new.id().device, &code).await?;
    Ok(())
}

impl TestClient {
    /// Closes the client and opens the device again from disk (a restart).
    pub async fn reopen(self) -> Result<TestClient, BoxError> {
        let TestClient { client, dir, user } = self;
        drop(client);
        let client = Client::open(dir.path(), keystore(&dir)?).await?;
        Ok(TestClient { client, dir, user })
    }

    /// Copies the device's folder while it is closed (a backup someone took
    /// away: store, wrapped key and keystore) and opens the device again.
    /// Returns it and the copy, opened as a client of its own.
    pub async fn copied(self) -> Result<(TestClient, Client, TempDir), BoxError> {
        let TestClient { client, dir, user } = self;
        drop(client);
        let copy = tempfile::tempdir()?;
        copy_files(dir.path(), copy.path())?;
        let client = Client::open(dir.path(), keystore(&dir)?).await?;
        let copied = Client::open(copy.path(), keystore(&copy)?).await?;
        Ok((TestClient { client, dir, user }, copied, copy))
    }
}

/// Copies the files of a device folder (a store, its key, its keystore).
pub fn copy_files(from: &std::path::Path, to: &std::path::Path) -> Result<(), BoxError> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if entry.path().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name()))?;
        }
    }
    Ok(())
}

/// Two colleagues (users `a`, a huisarts, and `b`, a POH) on their own
/// devices in one conversation, on a fresh server over SQLite.
pub struct Pair {
    /// The server's database.
    pub db: TestDatabase,
    /// The server process.
    pub server: Server,
    /// `a`'s device, which started the conversation.
    pub a: TestClient,
    /// `b`'s device.
    pub b: TestClient,
    /// The conversation.
    pub conversation: pieper_core::Conversation,
}

/// Sets up a [`Pair`] with devices named `a_device` and `b_device`.
pub async fn pair(title: &str, a_device: &str, b_device: &str) -> Result<Pair, BoxError> {
    pair_of_kind(
        title,
        pieper_core::ConversationKind::Group,
        a_device,
        b_device,
    )
    .await
}

/// [`pair`] with a conversation of `kind` (a one-to-one: `Direct`).
pub async fn pair_of_kind(
    title: &str,
    kind: pieper_core::ConversationKind,
    a_device: &str,
    b_device: &str,
) -> Result<Pair, BoxError> {
    let db = TestDatabase::new(Backend::Sqlite).await?;
    let (a, b) = (
        create_user(&db, "linde", "a", "huisarts")?,
        create_user(&db, "linde", "b", "poh")?,
    );
    let server = Server::start(&db, &[])?;
    let a = sign_in(&server, &a, a_device).await?;
    let b = sign_in(&server, &b, b_device).await?;
    let conversation = a
        .conversations()
        .create(title, kind, None, std::slice::from_ref(&b.user.id))
        .await?;
    Ok(Pair {
        db,
        server,
        a,
        b,
        conversation,
    })
}

/// Waits until `events` yields one that `pick` accepts.
pub async fn wait_for<T>(
    events: &mut broadcast::Receiver<Event>,
    timeout: Duration,
    mut pick: impl FnMut(&Event) -> Option<T>,
) -> Result<T, BoxError> {
    tokio::time::timeout(timeout, async {
        loop {
            match events.recv().await {
                Ok(event) => {
                    if let Some(found) = pick(&event) {
                        return Ok(found);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => return Err(BoxError::from(e)),
            }
        }
    })
    .await
    .map_err(|_| BoxError::from("timed out waiting for an event"))?
}

/// Polls `check` every 200 ms until it holds or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> Result<(), BoxError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool, BoxError>>,
{
    let until = tokio::time::Instant::now() + timeout;
    loop {
        if check().await? {
            return Ok(());
        }
        if tokio::time::Instant::now() > until {
            return Err("condition not reached in time".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Proves an absence by a presence: waits until `marker` (a message that
/// keeps escalating) is escalated `rounds` more times, and returns the
/// escalation counts `watched` got meanwhile (empty: it escalated no more).
pub async fn escalations_meanwhile(
    events: &mut broadcast::Receiver<Event>,
    watched: &str,
    marker: &str,
    rounds: u32,
) -> Result<Vec<u32>, BoxError> {
    let mut watched_rounds = Vec::new();
    let mut marker_rounds = 0;
    wait_for(events, Duration::from_secs(15), |e| match e {
        Event::Escalated {
            id, escalations, ..
        } if id == watched => {
            watched_rounds.push(*escalations);
            None
        }
        Event::Escalated { id, .. } if id == marker => {
            marker_rounds += 1;
            (marker_rounds >= rounds).then_some(())
        }
        _ => None,
    })
    .await?;
    Ok(watched_rounds)
}

/// Runs the `pieper` CLI on a device directory.
pub fn pieper(dir: &std::path::Path, args: &[&str]) -> Result<std::process::Output, BoxError> {
    Ok(std::process::Command::new(cli_binary()?)
        .arg("--dir")
        .arg(dir)
        .args(args)
        .output()?)
}

/// The `pieper` CLI binary, built beside the server's.
pub fn cli_binary() -> Result<std::path::PathBuf, BoxError> {
    let cli = server_binary()?.with_file_name("pieper");
    if !cli.exists() {
        return Err(format!("{} is missing: cargo build -p pieper-cli", cli.display()).into());
    }
    Ok(cli)
}

/// Runs the `pieper` CLI and returns what it printed; a failed command is
/// an error with what it said.
pub fn pieper_ok(dir: &std::path::Path, args: &[&str]) -> Result<String, BoxError> {
    let out = pieper(dir, args)?;
    if !out.status.success() {
        return Err(format!("pieper {args:?}: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// Signs `user` in with the CLI on the device in `dir`, with TOTP `code`.
pub fn cli_login(
    dir: &std::path::Path,
    server: &Server,
    user: &User,
    code: &str,
    device: &str,
) -> Result<String, BoxError> {
    pieper_ok(
        dir,
        &[
            "login",
            "--server",
            &server.base,
            "--practice",
            &user.practice,
            "--username",
            &user.username,
            "--password",
            PASSWORD,
            "--totp",
            code,
            "--device-name",
            device,
        ],
    )
}

/// A duty roster for the day part it is now: `on_duty` on duty, `backup`
/// behind them (user ids).
pub fn duty_roster_now(
    on_duty: &str,
    backup: &str,
) -> Result<pieper_core::spoed::DutyRoster, BoxError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let (date, part) = pieper_core::spoed::local_date_and_part(now).ok_or("no day part")?;
    Ok(pieper_core::spoed::DutyRoster {
        slots: vec![pieper_core::spoed::DutySlot {
            date,
            part,
            on_duty: on_duty.to_owned(),
            backup: backup.to_owned(),
        }],
    })
}
