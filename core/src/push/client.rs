//! Push-token registration: the app hands over the token the OS gave it (at
//! sign-in, and whenever the OS rotates it); the core keeps it and makes
//! sure the server has it, also after being offline.

use pieper_wire::{PushProvider, PushTokenRegistration};

use crate::client::Client;
use crate::error::{Error, Result};

fn check(token: &PushTokenRegistration) -> Result<()> {
    if token.token.is_empty() || token.token.len() > 4096 {
        return Err(Error::invalid("token", "must be 1 to 4096 characters"));
    }
    if (token.provider == PushProvider::Apns) != token.apns_environment.is_some() {
        return Err(Error::invalid(
            "apns_environment",
            "required for APNs tokens, and for them only",
        ));
    }
    Ok(())
}

impl Client {
    /// Registers a kept token the server did not get yet.
    pub(crate) async fn register_pending_push_token(&self) -> Result<()> {
        match self.store(|d| d.stored_push_token()).await? {
            Some((token, false)) => self.send_push_token(token).await,
            _ => Ok(()),
        }
    }

    async fn send_push_token(&self, token: PushTokenRegistration) -> Result<()> {
        let result = self.api()?.set_push_token(&token).await;
        self.server(result).await?;
        self.store(move |d| d.store_push_token(&token, true)).await
    }
}

/// What the app's notification service shows for a push.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct Notification {
    /// The conversation (to open when tapped).
    pub conversation: String,
    /// Its title, or empty when this device does not know it yet.
    pub conversation_title: String,
    /// The message's id.
    pub message: String,
    /// Who sent it: a display name when the directory answered in time,
    /// else the user id; empty when the message could not be read in time.
    pub sender: String,
    /// The start of the text; empty when the message could not be read in
    /// time (show a generic "new message" then).
    pub preview: String,
    /// Whether to alert as urgent.
    pub urgent: bool,
    /// Whether the message was decrypted (false: show the generic text).
    pub decrypted: bool,
}

/// How much of the text a notification shows.
const PREVIEW_CHARS: usize = 120;

/// Which way a notification reached the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotificationPath {
    /// The OS push service (FCM, APNs), through the app's notification
    /// service.
    Push,
    /// The live connection, while the app is open.
    Live,
}

/// One arrival of a self-test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SelfTestArrival {
    /// Which way.
    pub path: NotificationPath,
    /// From the server's send to arrival here (ms; clocks may differ a little).
    pub latency_ms: i64,
}

/// What a notification self-test found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelfTestReport {
    /// Asked as urgent.
    pub urgent: bool,
    /// The device's push service, if it has a token.
    pub provider: Option<PushProvider>,
    /// What the push service did: `delivered`, `token_gone`, `failed`,
    /// `no_token`, `no_provider`.
    pub provider_outcome: String,
    /// The provider's reason, when it failed.
    pub detail: Option<String>,
    /// What arrived, by which way, how late.
    pub arrivals: Vec<SelfTestArrival>,
    /// What to fix, in words for the user (empty: all is well).
    pub advice: Vec<String>,
}

/// A push arriving later than this is reported as slow.
const SLOW_MS: i64 = 10_000;

impl Client {
    /// A self-test push reached the app's notification service.
    fn self_test_arrived(&self, data: &std::collections::HashMap<String, String>) -> Notification {
        let id = data.get("message").cloned().unwrap_or_default();
        let sent_at = data
            .get("sent_at")
            .and_then(|s| s.parse().ok())
            .unwrap_or_default();
        self.emit(crate::client::Event::SelfTestArrived {
            id: id.clone(),
            path: NotificationPath::Push,
            sent_at,
            at: crate::store::queries::now_ms(),
        });
        Notification {
            conversation: String::new(),
            conversation_title: "Pieper".into(),
            message: id,
            sender: "Pieper".into(),
            preview: "Testmelding: meldingen komen aan.".into(),
            urgent: data.get("priority").is_some_and(|p| p == "urgent"),
            decrypted: true,
        }
    }
}

/// What to tell the user to fix, from what the self-test saw.
fn advise(sent: &pieper_wire::PushTestResult, arrivals: &[SelfTestArrival]) -> Vec<String> {
    let mut advice = Vec::new();
    let platform = match sent.provider {
        Some(PushProvider::Apns) => "iOS",
        _ => "Android",
    };
    match sent.outcome.as_str() {
        "no_token" => advice.push(
            "Dit toestel heeft geen pushtoken bij de server: sta meldingen toe voor Pieper en open de app opnieuw."
                .to_owned(),
        ),
        "token_gone" => advice.push(
            "De pushdienst kent dit toestel niet meer (token verlopen): start Pieper opnieuw zodat het een nieuw token aanvraagt; helpt dat niet, installeer de app opnieuw."
                .to_owned(),
        ),
        "no_provider" => advice.push(format!(
            "De server kan geen {platform}-meldingen versturen (niet ingesteld): meld het aan de beheerder."
        )),
        "failed" => advice.push(format!(
            "De pushdienst weigerde de melding ({}): probeer het later opnieuw of meld het aan de beheerder.",
            sent.detail.as_deref().unwrap_or("onbekend")
        )),
        _ => {}
    }
    let push = arrivals.iter().find(|a| a.path == NotificationPath::Push);
    if sent.outcome == "delivered" {
        match push {
            None if platform == "Android" => advice.push(
                "De melding kwam niet aan: zet batterijoptimalisatie uit voor Pieper (Instellingen > Apps > Pieper > Batterij: niet beperkt) en sta meldingen toe, ook voor het kanaal Spoed."
                    .to_owned(),
            ),
            None => advice.push(
                "De melding kwam niet aan: sta meldingen toe voor Pieper (Instellingen > Meldingen) en zet Pieper bij de uitzonderingen van je Focus-modus."
                    .to_owned(),
            ),
            Some(a) if a.latency_ms > SLOW_MS => advice.push(format!(
                "De melding kwam pas na {} s aan: batterijbesparing of een zwak netwerk houdt meldingen op; zet batterijoptimalisatie uit voor Pieper.",
                a.latency_ms / 1000
            )),
            Some(_) => {}
        }
    }
    advice
}

/// Push: `client.push()`.
pub struct PushClient<'c> {
    pub(crate) client: &'c Client,
}

impl Client {
    /// Push: the token, notifications and the self-test.
    pub fn push(&self) -> PushClient<'_> {
        PushClient { client: self }
    }
}

impl PushClient<'_> {
    /// Registers this device's push token, or a rotated one in its place.
    /// Offline, it is kept and registered at the next sync.
    pub async fn register_token(&self, token: PushTokenRegistration) -> Result<()> {
        check(&token)?;
        let kept = token.clone();
        self.client
            .store(move |d| d.store_push_token(&kept, false))
            .await?;
        match self.client.send_push_token(token).await {
            Ok(()) | Err(Error::Network(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Stops pushes to this device (notifications turned off).
    pub async fn remove_token(&self) -> Result<()> {
        self.client.store(|d| d.forget_push_token()).await?;
        let result = self.client.api()?.remove_push_token().await;
        self.client.server(result).await
    }

    /// The token this device has, and whether the server has it.
    pub fn token(&self) -> Result<Option<(PushTokenRegistration, bool)>> {
        self.client.read(|d| d.stored_push_token())
    }

    /// The notification entry point (iOS Notification Service Extension,
    /// Android FirebaseMessagingService): given a push's data, fetches and
    /// decrypts what arrived within `budget`, and says what to show. Past
    /// the budget (or with the store busy in the app) it answers with what
    /// the payload alone tells: the conversation and the urgency.
    pub async fn notification(
        &self,
        data: &std::collections::HashMap<String, String>,
        budget: std::time::Duration,
    ) -> Result<Notification> {
        let started = std::time::Instant::now();
        if data.get("self_test").is_some_and(|v| v == "1") {
            return Ok(self.client.self_test_arrived(data));
        }
        let field = |name: &'static str| {
            data.get(name)
                .filter(|v| !v.is_empty() && v.len() <= 128)
                .cloned()
                .ok_or(Error::invalid(name, "missing from the push"))
        };
        let (conversation, message) = (field("conversation")?, field("message")?);
        let urgent = data.get("priority").is_some_and(|p| p == "urgent");
        let content_free = |conversation, message| Notification {
            conversation,
            conversation_title: String::new(),
            message,
            sender: String::new(),
            preview: String::new(),
            urgent,
            decrypted: false,
        };
        // Locked, the key is not in memory: the alert shows no content (and
        // does not count as activity).
        if self.client.inner.device.is_locked() && !self.client.inner.device.is_wiped() {
            return Ok(content_free(conversation, message));
        }
        let id = message.clone();
        let mut found = self.client.store(move |d| Ok(d.message(&id).ok())).await?;
        if found.is_none() {
            // Fetch just what waits for this device, within the budget.
            let _ = tokio::time::timeout(budget, self.client.sync()).await;
            let id = message.clone();
            found = self.client.store(move |d| Ok(d.message(&id).ok())).await?;
        }
        let conv = conversation.clone();
        let conversation_title = self
            .client
            .store(move |d| Ok(d.conversation(&conv).map(|c| c.title).unwrap_or_default()))
            .await?;
        let Some(found) = found else {
            return Ok(Notification {
                conversation_title,
                ..content_free(conversation, message)
            });
        };
        let left = budget.saturating_sub(started.elapsed());
        let sender = match tokio::time::timeout(left, self.client.colleagues()).await {
            Ok(Ok(users)) => users
                .into_iter()
                .find(|u| u.id == found.sender.user)
                .map(|u| u.display_name),
            _ => None,
        }
        .unwrap_or_else(|| found.sender.user.clone());
        let mut preview: String = found.body.chars().take(PREVIEW_CHARS).collect();
        if found.body.chars().count() > PREVIEW_CHARS {
            preview.push('…');
        }
        // A preview of a patient's message on the screen is an access too.
        let (conv, id) = (conversation.clone(), message.clone());
        self.client
            .store(move |d| {
                let patient = match d.conversation(&conv) {
                    Ok(c) => c.patient,
                    Err(Error::NotFound { .. }) => None,
                    Err(e) => return Err(e),
                };
                let Some(patient) = patient else {
                    return Ok(());
                };
                d.record_access(
                    crate::privacy::AccessAction::Open,
                    Some(&patient),
                    &format!("conversation={conv} notification message={id}"),
                )
            })
            .await?;
        Ok(Notification {
            conversation,
            conversation_title,
            message,
            sender,
            preview,
            urgent: urgent || found.priority == crate::model::Priority::Urgent,
            decrypted: true,
        })
    }

    /// The notification self-test: asks the server for a test push
    /// (routine or urgent) and waits up to `wait` for it to arrive here, by
    /// push (the app's notification service hands it to
    /// [`PushClient::notification`]) or over the live connection. Reports what
    /// the push service did, what arrived how late, and what to fix.
    pub async fn self_test(
        &self,
        urgent: bool,
        wait: std::time::Duration,
    ) -> Result<SelfTestReport> {
        let mut events = self.client.events();
        let result = self.client.api()?.push_test(urgent).await;
        let sent = self.client.server(result).await?;
        let mut arrivals: Vec<SelfTestArrival> = Vec::new();
        let expect_push = sent.outcome == "delivered";
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let push_arrived = arrivals.iter().any(|a| a.path == NotificationPath::Push);
            let live_done = !sent.live || arrivals.iter().any(|a| a.path == NotificationPath::Live);
            if (push_arrived || !expect_push) && live_done {
                break;
            }
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Ok(crate::client::Event::SelfTestArrived {
                    id,
                    path,
                    sent_at,
                    at,
                })) if id == sent.id => {
                    if !arrivals.iter().any(|a| a.path == path) {
                        arrivals.push(SelfTestArrival {
                            path,
                            latency_ms: at - sent_at,
                        });
                    }
                }
                Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
                Ok(Err(_)) | Err(_) => break,
            }
        }
        let advice = advise(&sent, &arrivals);
        Ok(SelfTestReport {
            urgent,
            provider: sent.provider,
            provider_outcome: sent.outcome,
            detail: sent.detail,
            arrivals,
            advice,
        })
    }
}
