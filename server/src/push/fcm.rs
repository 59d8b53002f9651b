//! FCM HTTP v1: an OAuth2 access token from the service account (a signed
//! JWT grant, RFC 7523), cached until shortly before it expires, and
//! `messages:send` with a data-only message.

use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::Mutex;

use super::{Outcome, PushPayload, retry_after};

const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
/// A token is renewed this long before Google says it expires.
const RENEW_BEFORE: Duration = Duration::from_secs(300);

#[derive(Deserialize)]
struct ServiceAccount {
    client_email: String,
    private_key: String,
    token_uri: String,
    project_id: String,
}

#[derive(Serialize)]
struct Grant<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
}

#[derive(Deserialize)]
struct AccessToken {
    access_token: String,
    expires_in: u64,
}

/// An FCM sender for one Firebase project.
pub(super) struct Fcm {
    account: ServiceAccount,
    key: EncodingKey,
    endpoint: String,
    http: reqwest::Client,
    token: Mutex<Option<(String, Instant)>>,
}

impl Fcm {
    /// Reads the service-account JSON.
    pub(super) fn new(service_account: &[u8], endpoint: &str) -> Result<Self, String> {
        let account: ServiceAccount = serde_json::from_slice(service_account)
            .map_err(|e| format!("FCM service account: {e}"))?;
        let key = EncodingKey::from_rsa_pem(account.private_key.as_bytes())
            .map_err(|e| format!("FCM service account key: {e}"))?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            account,
            key,
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            http,
            token: Mutex::new(None),
        })
    }

    /// A valid access token: the cached one, or a new one from the grant.
    async fn access_token(&self, renew: bool) -> Result<String, String> {
        let mut cached = self.token.lock().await;
        if let Some((token, until)) = cached.as_ref()
            && !renew
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        let iat = super::unix_now();
        let grant = Grant {
            iss: &self.account.client_email,
            scope: SCOPE,
            aud: &self.account.token_uri,
            iat,
            exp: iat + 3600,
        };
        let assertion = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &grant, &self.key)
            .map_err(|e| format!("signing the grant: {e}"))?;
        let response = self
            .http
            .post(&self.account.token_uri)
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", assertion.as_str()),
            ])
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        if !response.status().is_success() {
            return Err(format!("token endpoint answered {}", response.status()));
        }
        let token: AccessToken = response.json().await.map_err(|e| e.to_string())?;
        let lifetime = Duration::from_secs(token.expires_in).saturating_sub(RENEW_BEFORE);
        *cached = Some((token.access_token.clone(), Instant::now() + lifetime));
        Ok(token.access_token)
    }

    /// Sends one data-only message.
    pub(super) async fn send(&self, device_token: &str, payload: &PushPayload) -> Outcome {
        let mut renewed = false;
        loop {
            let access = match self.access_token(renewed).await {
                Ok(t) => t,
                Err(e) => return Outcome::Retry(None, e),
            };
            let body = json!({
                "message": {
                    "token": device_token,
                    // Data only: the app decrypts and shows; FCM shows nothing.
                    "data": payload.data(),
                    "android": {
                        "priority": if payload.urgent { "HIGH" } else { "NORMAL" },
                    },
                }
            });
            let url = format!(
                "{}/v1/projects/{}/messages:send",
                self.endpoint, self.account.project_id
            );
            let response = match self
                .http
                .post(url)
                .bearer_auth(&access)
                .json(&body)
                .send()
                .await
            {
                Ok(r) => r,
                Err(e) => return Outcome::Retry(None, e.without_url().to_string()),
            };
            let status = response.status();
            let wait = retry_after(response.headers());
            let text = response.text().await.unwrap_or_default();
            return match status.as_u16() {
                200 => Outcome::Delivered,
                401 if !renewed => {
                    renewed = true;
                    continue;
                }
                404 => Outcome::Gone,
                400 | 403
                    if text.contains("UNREGISTERED") || text.contains("SENDER_ID_MISMATCH") =>
                {
                    Outcome::Gone
                }
                429 | 500..=599 => Outcome::Retry(wait, format!("FCM answered {status}")),
                _ => Outcome::Failed(format!("FCM answered {status}")),
            };
        }
    }
}
