//! The live channel: a WebSocket whose frames trigger a sync by cursor,
//! reconnecting with exponential back-off and jitter.

use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use rand::Rng;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};

use pieper_wire::ServerEvent;

use super::{Client, ConnectionState, Event};
use crate::error::{Error, Result};

const BACKOFF_START: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How often a live device looks for its user's newly enrolled devices.
const MEMBERSHIP_EVERY: Duration = Duration::from_secs(30);

/// Keeps the live channel running; dropping it stops the channel.
pub struct LiveHandle {
    task: JoinHandle<()>,
}

impl LiveHandle {
    /// Whether the channel has stopped for good (signed out).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

impl Drop for LiveHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub(crate) fn start(client: Client) -> LiveHandle {
    LiveHandle {
        task: tokio::spawn(run(client)),
    }
}

/// The wait before reconnect attempt `attempt` (1, 2, ...): exponential,
/// capped, with "equal jitter" so a practice's devices do not return at once.
pub(crate) fn backoff(attempt: u32) -> Duration {
    let exp = BACKOFF_START.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let ceiling = exp.min(BACKOFF_MAX);
    let half = ceiling / 2;
    half + half.mul_f64(rand::thread_rng().gen_range(0.0..=1.0))
}

async fn run(client: Client) {
    let mut attempt = 0u32;
    loop {
        match super::BACKGROUND.scope((), session(&client)).await {
            Err(Error::SignedOut | Error::Revoked | Error::Wiped) => return,
            Ok(()) => attempt = 0,
            Err(e) => tracing::debug!(error = %e, "live channel down"),
        }
        attempt += 1;
        let wait = backoff(attempt);
        client.emit(Event::Connection(ConnectionState::Offline {
            retry_in_ms: wait.as_millis() as u64,
        }));
        tokio::time::sleep(wait).await;
    }
}

/// One connection: catch up, then sync whenever the server says there is more.
async fn session(client: &Client) -> Result<()> {
    let mut request = client
        .api()?
        .ws_url()
        .into_client_request()
        .map_err(|e| Error::Network(e.to_string()))?;
    if let Some(token) = client.api()?.token() {
        let value = format!("Bearer {token}")
            .parse()
            .map_err(|_| Error::invalid("token", "not a header value"))?;
        request.headers_mut().insert("authorization", value);
    }
    let mut socket = match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => socket,
        Err(tungstenite::Error::Http(response)) if response.status() == 401 => {
            // Let the API say why (revoked or unknown), and record it.
            client.sync().await?;
            return Err(Error::Network("live channel refused".into()));
        }
        Err(e) => return Err(Error::Network(e.to_string())),
    };
    client.sync().await?;
    client.emit(Event::Connection(ConnectionState::Online));
    // Membership checks talk to the server for a while: they run beside the
    // loop, one at a time, so arriving messages are never held up by them.
    let mut membership: Option<JoinHandle<()>> = None;
    let mut own_devices = tokio::time::interval(MEMBERSHIP_EVERY);
    let outcome = loop {
        // Disappearing messages go on time, also when nothing arrives.
        let expiry = until_next_expiry(client);
        tokio::select! {
            () = tokio::time::sleep(expiry) => {
                if let Err(e) = client.privacy().housekeeping().await {
                    break Err(e);
                }
            }
            frame = socket.next() => match frame {
                Some(Ok(tungstenite::Message::Text(text))) => {
                    // Several pokes in a row need one sync; escalations are
                    // told to the app as they come.
                    let mut envelopes = announce(client, &text);
                    while let Some(Some(Ok(frame))) = socket.next().now_or_never() {
                        if let tungstenite::Message::Text(text) = frame {
                            envelopes |= announce(client, &text);
                        }
                    }
                    if envelopes && let Err(e) = client.sync().await {
                        break Err(e);
                    }
                }
                Some(Ok(tungstenite::Message::Close(_)) | Err(_)) | None => break Ok(()),
                Some(Ok(_)) => {}
            },
            _ = own_devices.tick() => {
                if membership.as_ref().is_none_or(JoinHandle::is_finished) {
                    let client = client.clone();
                    membership = Some(tokio::spawn(super::BACKGROUND.scope((), async move {
                        check_membership(&client).await;
                    })));
                }
            }
        }
    };
    if let Some(task) = membership {
        task.abort();
    }
    outcome?;
    // The server may have dropped a slow reader: what was missed comes by cursor.
    client.sync().await?;
    Err(Error::Network("live channel closed".into()))
}

/// How long until the next message here expires (at most a minute: the
/// retention period moves on too).
fn until_next_expiry(client: &Client) -> std::time::Duration {
    const AT_MOST: std::time::Duration = std::time::Duration::from_secs(60);
    match client.inner.device.next_expiry() {
        Ok(Some(at)) => {
            let wait = at.saturating_sub(crate::store::queries::now_ms()).max(0) as u64;
            std::time::Duration::from_millis(wait).min(AT_MOST)
        }
        _ => AT_MOST,
    }
}

/// Handles a frame's event; returns whether it says an envelope waits.
fn announce(client: &Client, text: &str) -> bool {
    match serde_json::from_str::<ServerEvent>(text) {
        Ok(ServerEvent::Escalated {
            conversation,
            message,
            escalations,
        }) => {
            client.emit(Event::Escalated {
                conversation,
                id: message,
                escalations,
            });
            false
        }
        Ok(ServerEvent::SelfTest { id, sent_at }) => {
            client.emit(Event::SelfTestArrived {
                id,
                path: crate::push::NotificationPath::Live,
                sent_at,
                at: crate::store::queries::now_ms(),
            });
            false
        }
        // An envelope, or an event this version does not know: sync.
        _ => true,
    }
}

/// Adds this user's new devices to their conversations, and new staff
/// devices to the practice group.
async fn check_membership(client: &Client) {
    if let Err(e) = client.devices().remove_revoked().await {
        tracing::debug!(error = %e, "removing revoked devices failed");
    }
    if let Err(e) = client.devices().top_up_key_packages().await {
        tracing::debug!(error = %e, "topping up KeyPackages failed");
    }
    if let Err(e) = client.devices().heal_others().await {
        tracing::debug!(error = %e, "healing members failed");
    }
    if let Err(e) = client.devices().add_my_new_devices().await {
        tracing::debug!(error = %e, "adding own devices failed");
    }
    if let Err(e) = client.consent().sync_practice().await {
        tracing::debug!(error = %e, "practice group check failed");
    }
    // The personal group is made by the first work note; once it exists,
    // this user's devices that are missing are added.
    if matches!(
        client
            .inner
            .device
            .in_known_group(crate::device::KnownGroup::Personal),
        Ok(true)
    ) && let Err(e) = client.sync_personal().await
    {
        tracing::debug!(error = %e, "personal group check failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(crate) fn backoff_grows_with_jitter_and_is_capped() {
        for attempt in 1..40 {
            let wait = backoff(attempt);
            let ceiling = BACKOFF_START
                .saturating_mul(1u32 << (attempt - 1).min(16))
                .min(BACKOFF_MAX);
            assert!(
                wait >= ceiling / 2 && wait <= ceiling,
                "attempt {attempt}: {wait:?}"
            );
        }
        let samples: std::collections::HashSet<u128> =
            (0..20).map(|_| backoff(5).as_micros()).collect();
        assert!(samples.len() > 1, "no jitter");
    }
}
