//! End-to-end support: real `Client`s of the core signed in to a real server
//! process, each in its own directory with its own keystore.

use std::{sync::Arc, time::Duration};

use pieper_core::{Client, Credentials, Event, FileKeyStore, KeyStore};
pub use pieper_testkit::*;
use tempfile::TempDir;
use tokio::sync::broadcast;

/// A signed-in device and where it keeps its store.
pub struct TestClient {
    pub client: Client,
    pub dir: TempDir,
    pub user: User,
}

impl std::ops::Deref for TestClient {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

fn keystore(dir: &TempDir) -> Result<Arc<dyn KeyStore>, BoxError> {
    Ok(Arc::new(FileKeyStore::in_dir(dir.path())?))
}

/// Signs `user` in on a new device, with a TOTP code not used before.
pub async fn sign_in(server: &Server, user: &User, device: &str) -> Result<TestClient, BoxError> {
    let dir = tempfile::tempdir()?;
    for _ in 0..3 {
        let step = current_step();
        for s in [step, step + 1] {
            let credentials = Credentials {
                practice: user.practice.clone(),
                username: user.username.clone(),
                password: PASSWORD.into(),
                totp: totp_at(user, s)?,
                device_name: device.into(),
            };
            match Client::login(&server.base, dir.path(), keystore(&dir)?, credentials).await {
                Ok(client) => {
                    return Ok(TestClient {
                        client,
                        dir,
                        user: user.clone(),
                    });
                }
                Err(pieper_core::Error::Rejected { code, .. }) if code == "totp_reused" => {}
                Err(e) => return Err(e.into()),
            }
        }
        tokio::time::sleep(Duration::from_secs(31 - now_secs() % 30)).await;
    }
    Err("no fresh TOTP step".into())
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl TestClient {
    /// Closes the client and opens the device again from disk (a restart).
    pub async fn reopen(self) -> Result<TestClient, BoxError> {
        let TestClient { client, dir, user } = self;
        drop(client);
        let client = Client::open(dir.path(), keystore(&dir)?).await?;
        Ok(TestClient { client, dir, user })
    }
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
