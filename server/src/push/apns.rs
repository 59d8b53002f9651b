//! APNs over HTTP/2 with token authentication: an ES256 provider token
//! (renewed every 40 minutes: Apple accepts one between 20 and 60 minutes
//! old), `apns-push-type`, `apns-topic` and `apns-priority` headers, and an
//! alert the app's Notification Service Extension replaces after decrypting.

use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use pieper_wire::ApnsEnvironment;
use serde::Serialize;
use serde_json::json;
use tokio::sync::Mutex;

use super::{Outcome, PushPayload, retry_after};

const TOKEN_LIFETIME: Duration = Duration::from_secs(40 * 60);

#[derive(Serialize)]
struct ProviderClaims<'a> {
    iss: &'a str,
    iat: u64,
}

/// An APNs sender for one app.
pub(super) struct Apns {
    key: EncodingKey,
    key_id: String,
    team_id: String,
    topic: String,
    production: String,
    sandbox: String,
    http: reqwest::Client,
    token: Mutex<Option<(String, Instant)>>,
}

/// What configures an [`Apns`] sender.
pub(super) struct ApnsConfig<'a> {
    pub key_pem: &'a [u8],
    pub key_id: &'a str,
    pub team_id: &'a str,
    pub topic: &'a str,
    pub production: &'a str,
    pub sandbox: &'a str,
}

impl Apns {
    /// Reads the `.p8` signing key.
    pub(super) fn new(c: ApnsConfig<'_>) -> Result<Self, String> {
        let key = EncodingKey::from_ec_pem(c.key_pem).map_err(|e| format!("APNs key: {e}"))?;
        // APNs speaks HTTP/2 only.
        let http = reqwest::Client::builder()
            .http2_prior_knowledge()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            key,
            key_id: c.key_id.to_owned(),
            team_id: c.team_id.to_owned(),
            topic: c.topic.to_owned(),
            production: c.production.trim_end_matches('/').to_owned(),
            sandbox: c.sandbox.trim_end_matches('/').to_owned(),
            http,
            token: Mutex::new(None),
        })
    }

    async fn provider_token(&self, renew: bool) -> Result<String, String> {
        let mut cached = self.token.lock().await;
        if let Some((token, made)) = cached.as_ref()
            && !renew
            && made.elapsed() < TOKEN_LIFETIME
        {
            return Ok(token.clone());
        }
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.key_id.clone());
        let claims = ProviderClaims {
            iss: &self.team_id,
            iat: super::unix_now(),
        };
        let token = jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| format!("signing the provider token: {e}"))?;
        *cached = Some((token.clone(), Instant::now()));
        Ok(token)
    }

    /// Sends one notification.
    pub(super) async fn send(
        &self,
        device_token: &str,
        environment: ApnsEnvironment,
        payload: &PushPayload,
    ) -> Outcome {
        let base = match environment {
            ApnsEnvironment::Production => &self.production,
            ApnsEnvironment::Sandbox => &self.sandbox,
        };
        let mut data = payload.data();
        // A placeholder the extension replaces with the decrypted message;
        // no sender, title or text ever passes through Apple.
        let aps = json!({
            "alert": { "loc-key": "PIEPER_NEW_MESSAGE" },
            "sound": "default",
            "mutable-content": 1,
            "interruption-level": if payload.urgent { "time-sensitive" } else { "active" },
        });
        data.insert("aps".into(), aps);
        let body = serde_json::Value::Object(data);
        let mut renewed = false;
        loop {
            let token = match self.provider_token(renewed).await {
                Ok(t) => t,
                Err(e) => return Outcome::Failed(e),
            };
            let response = match self
                .http
                .post(format!("{base}/3/device/{device_token}"))
                .header("authorization", format!("bearer {token}"))
                .header("apns-push-type", "alert")
                .header("apns-topic", &self.topic)
                .header("apns-priority", if payload.urgent { "10" } else { "5" })
                .json(&body)
                .send()
                .await
            {
                Ok(r) => r,
                Err(e) => return Outcome::Retry(None, e.without_url().to_string()),
            };
            let status = response.status();
            let wait = retry_after(response.headers());
            let reason = response
                .json::<serde_json::Value>()
                .await
                .ok()
                .and_then(|v| v["reason"].as_str().map(str::to_owned))
                .unwrap_or_default();
            return match (status.as_u16(), reason.as_str()) {
                (200, _) => Outcome::Delivered,
                (410, _) | (400, "BadDeviceToken" | "DeviceTokenNotForTopic") => Outcome::Gone,
                (403, "ExpiredProviderToken" | "InvalidProviderToken") if !renewed => {
                    renewed = true;
                    continue;
                }
                (429 | 500..=599, _) => Outcome::Retry(wait, format!("APNs answered {status}")),
                _ => Outcome::Failed(format!("APNs answered {status} {reason}")),
            };
        }
    }
}
