//! The push gateway: wakes member devices that are not connected live when
//! a message arrives, through FCM or APNs. A push carries opaque ids and the
//! priority only. Pushing never blocks delivery: jobs go to a bounded queue
//! and are sent in the background, retried with back-off on 429/5xx, and a
//! token the provider reports as gone is removed.

mod apns;
mod fcm;

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use pieper_wire::{ApnsEnvironment, PushProvider};
use serde_json::{Map, Value};
use tokio::sync::{Semaphore, mpsc};

use crate::{
    db::{Db, push::PushTarget},
    metrics::Metrics,
    settings::PushSettings,
};

/// Jobs waiting for the senders; beyond this, pushes are dropped (counted).
const QUEUE: usize = 4096;
/// Pushes in flight at once.
const IN_FLIGHT: usize = 32;

/// What a push says: which message, and how urgent. Nothing else.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushPayload {
    /// The conversation.
    pub conversation: String,
    /// The message.
    pub message: String,
    /// Its sequence number.
    pub seq: u64,
    /// Whether it is urgent.
    pub urgent: bool,
    /// 0 for the first push; n for the n-th escalation.
    pub escalation: u32,
    /// A notification self-test: when the server sent it (ms); `message`
    /// is then the test's id.
    pub self_test: Option<i64>,
}

impl PushPayload {
    /// The custom data, all strings (FCM data values must be).
    fn data(&self) -> Map<String, Value> {
        let mut data = Map::new();
        data.insert("conversation".into(), self.conversation.clone().into());
        data.insert("message".into(), self.message.clone().into());
        data.insert("seq".into(), self.seq.to_string().into());
        let priority = if self.urgent { "urgent" } else { "routine" };
        data.insert("priority".into(), priority.into());
        if self.escalation > 0 {
            data.insert("escalation".into(), self.escalation.to_string().into());
        }
        if let Some(sent_at) = self.self_test {
            data.insert("self_test".into(), "1".into());
            data.insert("sent_at".into(), sent_at.to_string().into());
        }
        data
    }
}

/// How one attempt went.
#[derive(Debug)]
pub enum Outcome {
    /// The provider took it.
    Delivered,
    /// The token is no longer valid: remove it.
    Gone,
    /// Try again (after the provider's Retry-After, if it gave one).
    Retry(Option<Duration>, String),
    /// Failed for good, with why.
    Failed(String),
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(|s| Duration::from_secs(s.min(60)))
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

struct Job {
    targets: Vec<PushTarget>,
    payload: Arc<PushPayload>,
}

struct Senders {
    fcm: Option<fcm::Fcm>,
    apns: Option<apns::Apns>,
    db: Db,
    metrics: Arc<Metrics>,
    retry: Duration,
    attempts: u32,
}

/// What became of one push, after retries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PushResult {
    /// The provider took it.
    Delivered,
    /// The provider says the token is dead; it was removed.
    TokenGone,
    /// It failed, with the provider's reason.
    Failed(String),
    /// No provider is configured for the token's platform.
    NoProvider,
}

/// The gateway's queue.
#[derive(Clone)]
pub struct Push {
    tx: mpsc::Sender<Job>,
    senders: Arc<Senders>,
}

impl Push {
    /// Reads the providers' credentials and starts the senders.
    pub fn start(settings: &PushSettings, db: Db, metrics: Arc<Metrics>) -> Result<Self, String> {
        let fcm = match &settings.fcm_service_account {
            Some(path) => {
                let json = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
                Some(fcm::Fcm::new(&json, &settings.fcm_endpoint)?)
            }
            None => None,
        };
        let apns = match (
            &settings.apns_key,
            &settings.apns_key_id,
            &settings.apns_team_id,
            &settings.apns_topic,
        ) {
            (Some(path), Some(key_id), Some(team_id), Some(topic)) => {
                let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
                Some(apns::Apns::new(apns::ApnsConfig {
                    key_pem: &pem,
                    key_id,
                    team_id,
                    topic,
                    production: &settings.apns_endpoint,
                    sandbox: &settings.apns_sandbox_endpoint,
                })?)
            }
            _ => None,
        };
        let senders = Arc::new(Senders {
            fcm,
            apns,
            db,
            metrics,
            retry: Duration::from_millis(settings.push_retry_ms.max(1)),
            attempts: settings.push_attempts.max(1),
        });
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(Arc::clone(&senders), rx));
        Ok(Self { tx, senders })
    }

    /// Sends one push now and says what became of it (the notification
    /// self-test).
    pub async fn send_now(&self, target: &PushTarget, payload: &PushPayload) -> PushResult {
        self.senders.deliver(target, payload).await
    }

    /// Queues pushes for `targets`; never waits.
    pub fn enqueue(&self, targets: Vec<PushTarget>, payload: PushPayload, metrics: &Metrics) {
        if targets.is_empty() {
            return;
        }
        let count = targets.len() as u64;
        let job = Job {
            targets,
            payload: Arc::new(payload),
        };
        if self.tx.try_send(job).is_err() {
            metrics.pushes_dropped.fetch_add(count, Ordering::Relaxed);
            tracing::warn!(pushes = count, "push queue full: pushes dropped");
        }
    }
}

async fn run(senders: Arc<Senders>, mut rx: mpsc::Receiver<Job>) {
    let in_flight = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some(job) = rx.recv().await {
        for target in job.targets {
            let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
                return;
            };
            let (senders, payload) = (Arc::clone(&senders), Arc::clone(&job.payload));
            tokio::spawn(async move {
                let _ = senders.deliver(&target, &payload).await;
                drop(permit);
            });
        }
    }
}

impl Senders {
    async fn attempt(&self, target: &PushTarget, payload: &PushPayload) -> Option<Outcome> {
        match target.provider {
            PushProvider::Fcm => Some(self.fcm.as_ref()?.send(&target.token, payload).await),
            PushProvider::Apns => {
                let environment = target
                    .apns_environment
                    .unwrap_or(ApnsEnvironment::Production);
                Some(
                    self.apns
                        .as_ref()?
                        .send(&target.token, environment, payload)
                        .await,
                )
            }
        }
    }

    /// Sends one push, retrying what the provider could not take now.
    async fn deliver(&self, target: &PushTarget, payload: &PushPayload) -> PushResult {
        let mut wait = self.retry;
        for attempt in 1..=self.attempts {
            let Some(outcome) = self.attempt(target, payload).await else {
                tracing::debug!(device = %target.device_id, "no push provider configured for it");
                return PushResult::NoProvider;
            };
            match outcome {
                Outcome::Delivered => {
                    self.metrics.pushes_sent.fetch_add(1, Ordering::Relaxed);
                    return PushResult::Delivered;
                }
                Outcome::Gone => {
                    self.metrics
                        .push_tokens_removed
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::info!(device = %target.device_id, "push token gone: removed");
                    if let Err(e) = self.db.remove_dead_token(&target.token).await {
                        tracing::warn!(error = %e, "removing a dead push token failed");
                    }
                    return PushResult::TokenGone;
                }
                Outcome::Retry(after, reason) if attempt < self.attempts => {
                    tracing::debug!(device = %target.device_id, %reason, attempt, "push retried");
                    tokio::time::sleep(after.unwrap_or(wait)).await;
                    wait = wait.saturating_mul(2).min(Duration::from_secs(60));
                }
                Outcome::Retry(_, reason) | Outcome::Failed(reason) => {
                    self.metrics.pushes_failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(device = %target.device_id, %reason, "push failed");
                    return PushResult::Failed(reason);
                }
            }
        }
        PushResult::Failed("no attempts".into())
    }
}
