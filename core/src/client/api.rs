//! The server's HTTP API as the client uses it, with its problems mapped to
//! [`Error`].

use std::time::Duration;

use pieper_wire::{
    ClaimKeyPackages, ClaimedKeyPackages, CreateConversation, DeviceInfo, LoginRequest,
    LoginResponse, Problem, SendRequest, SendResponse, SyncResponse, UploadKeyPackages, UserInfo,
    codes,
};
use reqwest::{Method, StatusCode};
use serde::{Serialize, de::DeserializeOwned};

use crate::error::{Error, Result};

/// An HTTP client for one server.
#[derive(Clone)]
pub(crate) struct Api {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Api {
    pub(crate) fn new(base: &str) -> Result<Self> {
        let base = base.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Error::invalid(
                "server",
                "must start with http:// or https://",
            ));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| Error::Network(e.to_string()))?;
        Ok(Self {
            http,
            base,
            token: None,
        })
    }

    pub(crate) fn with_token(mut self, token: String) -> Self {
        self.token = Some(token);
        self
    }

    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// The WebSocket URL of the live channel.
    pub(crate) fn ws_url(&self) -> String {
        let url = format!("{}{}/ws", self.base, pieper_wire::API_PREFIX);
        url.replacen("http", "ws", 1)
    }

    pub(crate) fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    async fn call<B: Serialize, R: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<R> {
        let url = format!("{}{}{path}", self.base, pieper_wire::API_PREFIX);
        let mut request = self.http.request(method, url);
        if let Some(body) = body {
            request = request.json(body);
        }
        let bytes = self.exchange(request).await?;
        let bytes: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
        serde_json::from_slice(bytes).map_err(|e| Error::Network(format!("unreadable answer: {e}")))
    }

    /// Sends a request with the device's token; the answer's body, or the
    /// problem it reports as an error.
    async fn exchange(&self, mut request: reqwest::RequestBuilder) -> Result<Vec<u8>> {
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .map_err(|e| Error::Network(e.without_url().to_string()))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| Error::Network(e.without_url().to_string()))?;
        if status.is_success() {
            return Ok(bytes.to_vec());
        }
        match problem_error(status, &bytes) {
            // With a token, "unauthorized" means the session is gone.
            Error::Rejected { code, .. } if code == codes::UNAUTHORIZED && self.token.is_some() => {
                Err(Error::SignedOut)
            }
            other => Err(other),
        }
    }

    pub(crate) async fn login(&self, req: &LoginRequest) -> Result<LoginResponse> {
        self.call(Method::POST, "/login", Some(req)).await
    }

    pub(crate) async fn upload_key_packages(&self, req: &UploadKeyPackages) -> Result<()> {
        self.call(Method::POST, "/key-packages", Some(req)).await
    }

    pub(crate) async fn key_package_count(&self) -> Result<pieper_wire::KeyPackageCount> {
        self.call::<(), _>(Method::GET, "/key-packages", None).await
    }

    pub(crate) async fn claim(
        &self,
        users: Vec<String>,
        missing_from: Option<String>,
    ) -> Result<ClaimedKeyPackages> {
        self.call(
            Method::POST,
            "/key-packages/claim",
            Some(&ClaimKeyPackages {
                user_ids: users,
                missing_from,
            }),
        )
        .await
    }

    pub(crate) async fn set_push_token(
        &self,
        token: &pieper_wire::PushTokenRegistration,
    ) -> Result<()> {
        self.call(Method::PUT, "/devices/me/push-token", Some(token))
            .await
    }

    pub(crate) async fn remove_push_token(&self) -> Result<()> {
        self.call::<(), _>(Method::DELETE, "/devices/me/push-token", None)
            .await
    }

    pub(crate) async fn users(&self) -> Result<Vec<UserInfo>> {
        self.call::<(), _>(Method::GET, "/users", None).await
    }

    pub(crate) async fn devices(&self) -> Result<Vec<DeviceInfo>> {
        self.call::<(), _>(Method::GET, "/devices", None).await
    }

    pub(crate) async fn enrol(
        &self,
        req: &pieper_wire::EnrolRequest,
    ) -> Result<pieper_wire::EnrolResponse> {
        self.call(Method::POST, "/enrol", Some(req)).await
    }

    pub(crate) async fn invite(
        &self,
        invite: &pieper_wire::Invite,
    ) -> Result<pieper_wire::EnrolmentCode> {
        self.call(Method::POST, "/users", Some(invite)).await
    }

    pub(crate) async fn reset_login(&self, user: &str) -> Result<pieper_wire::EnrolmentCode> {
        self.call::<(), _>(Method::POST, &format!("/users/{user}/reset"), None)
            .await
    }

    pub(crate) async fn disable_user(&self, user: &str) -> Result<()> {
        self.call::<(), _>(Method::POST, &format!("/users/{user}/disable"), None)
            .await
    }

    pub(crate) async fn set_on_behalf_of(&self, user: &str, huisarts: Option<&str>) -> Result<()> {
        let body = pieper_wire::OnBehalfOf {
            user: huisarts.map(str::to_owned),
        };
        self.call(
            Method::PUT,
            &format!("/users/{user}/on-behalf-of"),
            Some(&body),
        )
        .await
    }

    pub(crate) async fn set_registrations(
        &self,
        user: &str,
        registrations: &pieper_wire::Registrations,
    ) -> Result<()> {
        self.call(
            Method::PUT,
            &format!("/users/{user}/registrations"),
            Some(registrations),
        )
        .await
    }

    pub(crate) async fn enable_user(&self, user: &str) -> Result<()> {
        self.call::<(), _>(Method::POST, &format!("/users/{user}/enable"), None)
            .await
    }

    pub(crate) async fn revoke(&self, device: &str) -> Result<()> {
        self.call::<(), _>(Method::DELETE, &format!("/devices/{device}"), None)
            .await
    }

    pub(crate) async fn renew_certificate(&self) -> Result<pieper_wire::RenewedCertificate> {
        self.call::<(), _>(Method::POST, "/devices/me/certificate", None)
            .await
    }

    pub(crate) async fn approve(
        &self,
        device: &str,
        approval: &pieper_wire::Approval,
    ) -> Result<()> {
        self.call(
            Method::POST,
            &format!("/devices/{device}/approval"),
            Some(approval),
        )
        .await
    }

    pub(crate) async fn create_conversation(&self, id: &str) -> Result<()> {
        self.call(
            Method::POST,
            "/conversations",
            Some(&CreateConversation { id: id.to_owned() }),
        )
        .await
    }

    pub(crate) async fn mark_read(&self, conversation: &str, message: &str) -> Result<()> {
        self.call(
            Method::POST,
            &format!("/conversations/{conversation}/read"),
            Some(&pieper_wire::MarkRead {
                message: message.to_owned(),
            }),
        )
        .await
    }

    pub(crate) async fn send(&self, conversation: &str, req: &SendRequest) -> Result<SendResponse> {
        self.call(
            Method::POST,
            &format!("/conversations/{conversation}/envelopes"),
            Some(req),
        )
        .await
    }

    pub(crate) async fn sync(&self, after: u64, limit: u32) -> Result<SyncResponse> {
        self.call::<(), _>(
            Method::GET,
            &format!("/sync?after={after}&limit={limit}"),
            None,
        )
        .await
    }

    pub(crate) async fn unlock_audit(&self, totp: &str) -> Result<pieper_wire::AuditUnlocked> {
        self.call(
            Method::POST,
            "/audit/unlock",
            Some(&pieper_wire::AuditUnlock { totp: totp.into() }),
        )
        .await
    }

    pub(crate) async fn report_accesses(
        &self,
        events: Vec<pieper_wire::ReportedAccess>,
    ) -> Result<()> {
        self.call(
            Method::POST,
            "/audit/events",
            Some(&pieper_wire::ReportAccesses { events }),
        )
        .await
    }

    pub(crate) async fn audit(
        &self,
        query: &[(&str, String)],
    ) -> Result<Vec<pieper_wire::AuditEvent>> {
        self.call::<(), _>(Method::GET, &format!("/audit?{}", encode(query)), None)
            .await
    }

    pub(crate) async fn audit_head(&self) -> Result<pieper_wire::AuditHead> {
        self.call::<(), _>(Method::GET, "/audit/head", None).await
    }

    pub(crate) async fn audit_chain(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<pieper_wire::ChainRecord>> {
        self.call::<(), _>(
            Method::GET,
            &format!("/audit/chain?after={after}&limit={limit}"),
            None,
        )
        .await
    }

    pub(crate) async fn breach(
        &self,
        query: &[(&str, String)],
    ) -> Result<Vec<pieper_wire::BreachEntry>> {
        self.call::<(), _>(
            Method::GET,
            &format!("/audit/breach?{}", encode(query)),
            None,
        )
        .await
    }

    pub(crate) async fn practice_settings(&self) -> Result<pieper_wire::PracticeSettings> {
        self.call::<(), _>(Method::GET, "/practice/settings", None)
            .await
    }

    pub(crate) async fn set_practice_settings(
        &self,
        settings: &pieper_wire::PracticeSettings,
    ) -> Result<pieper_wire::PracticeSettings> {
        self.call(Method::PUT, "/practice/settings", Some(settings))
            .await
    }

    pub(crate) async fn erase(
        &self,
        req: &pieper_wire::EraseRequest,
    ) -> Result<pieper_wire::Erased> {
        self.call(Method::POST, "/patients/erase", Some(req)).await
    }

    /// Uploads a sealed attachment; it goes from the server at `expires_at`.
    pub(crate) async fn upload_blob(
        &self,
        conversation: &str,
        sealed: Vec<u8>,
        expires_at: Option<i64>,
    ) -> Result<pieper_wire::BlobCreated> {
        let mut url = format!(
            "{}{}/conversations/{conversation}/blobs",
            self.base,
            pieper_wire::API_PREFIX
        );
        if let Some(at) = expires_at {
            url.push_str(&format!("?expires_at={at}"));
        }
        let request = self
            .http
            .post(url)
            .header("content-type", "application/octet-stream")
            .body(sealed);
        let bytes = self.exchange(request).await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::Network(format!("unreadable answer: {e}")))
    }

    /// A sealed attachment.
    pub(crate) async fn download_blob(&self, id: &str) -> Result<Vec<u8>> {
        let url = format!("{}{}/blobs/{id}", self.base, pieper_wire::API_PREFIX);
        self.exchange(self.http.get(url)).await
    }

    pub(crate) async fn push_test(&self, urgent: bool) -> Result<pieper_wire::PushTestResult> {
        self.call(
            Method::POST,
            "/devices/me/push-test",
            Some(&pieper_wire::PushTest { urgent }),
        )
        .await
    }

    pub(crate) async fn put_backup(&self, sealed: Vec<u8>) -> Result<()> {
        let url = format!("{}{}/backups/me", self.base, pieper_wire::API_PREFIX);
        let request = self
            .http
            .put(url)
            .header("content-type", "application/octet-stream")
            .body(sealed);
        self.exchange(request).await.map(|_| ())
    }

    pub(crate) async fn get_backup(&self) -> Result<Vec<u8>> {
        let url = format!("{}{}/backups/me", self.base, pieper_wire::API_PREFIX);
        self.exchange(self.http.get(url)).await
    }

    pub(crate) async fn heal(&self, conversation: &str, undecryptable: u32) -> Result<()> {
        self.call(
            Method::POST,
            &format!("/conversations/{conversation}/heal"),
            Some(&pieper_wire::HealAsk { undecryptable }),
        )
        .await
    }

    pub(crate) async fn heal_requests(&self) -> Result<Vec<pieper_wire::HealRequest>> {
        self.call::<(), _>(Method::GET, "/heal-requests", None)
            .await
    }

    pub(crate) async fn revoked_devices(&self) -> Result<Vec<String>> {
        self.call::<(), _>(Method::GET, "/devices/revoked", None)
            .await
    }

    pub(crate) async fn ack(&self, position: u64) -> Result<()> {
        self.call(
            Method::POST,
            "/ack",
            Some(&serde_json::json!({ "position": position })),
        )
        .await
    }
}

/// A query string, each value percent-encoded.
fn encode(query: &[(&str, String)]) -> String {
    query
        .iter()
        .map(|(k, v)| {
            let value: String = v
                .bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                        (b as char).to_string()
                    }
                    other => format!("%{other:02X}"),
                })
                .collect();
            format!("{k}={value}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Maps a failed response to an error a caller can act on.
fn problem_error(status: StatusCode, body: &[u8]) -> Error {
    if status.is_server_error() {
        return Error::Network(format!("server error {}", status.as_u16()));
    }
    let Ok(problem) = serde_json::from_slice::<Problem>(body) else {
        return Error::Network(format!("unexpected answer {}", status.as_u16()));
    };
    match problem.code.as_str() {
        codes::DEVICE_REVOKED => Error::Revoked,
        codes::STALE_EPOCH => Error::StaleEpoch {
            message: 0,
            current: problem.current_epoch.unwrap_or(0),
        },
        _ => Error::Rejected {
            code: problem.code,
            detail: problem.detail,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_map_to_actionable_errors() {
        let body = |code: &str| {
            serde_json::to_vec(&Problem {
                type_uri: String::new(),
                title: String::new(),
                status: 401,
                code: code.into(),
                detail: Some("x".into()),
                current_epoch: Some(4),
                retry_after: None,
            })
            .unwrap_or_default()
        };
        assert!(matches!(
            problem_error(StatusCode::UNAUTHORIZED, &body("device_revoked")),
            Error::Revoked
        ));
        assert!(matches!(
            problem_error(StatusCode::CONFLICT, &body("stale_epoch")),
            Error::StaleEpoch { current: 4, .. }
        ));
        assert!(matches!(
            problem_error(StatusCode::UNAUTHORIZED, &body("totp_reused")),
            Error::Rejected { code, .. } if code == "totp_reused"
        ));
        assert!(matches!(
            problem_error(StatusCode::BAD_GATEWAY, b"<html>"),
            Error::Network(_)
        ));
        assert!(matches!(
            problem_error(StatusCode::BAD_REQUEST, b"<html>"),
            Error::Network(_)
        ));
    }
}
