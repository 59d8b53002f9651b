//! The server's tests: the shared test kit, a client for the API, and a
//! macro that runs each scenario on both backends.

#![allow(dead_code)]

use std::time::Duration;

pub(crate) use pieper_testkit::*;
use pieper_wire::{LoginRequest, LoginResponse, Problem, SendRequest, SendResponse};
use reqwest::StatusCode;
use serde::{Serialize, de::DeserializeOwned};

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

/// An HTTP client for one server.
#[derive(Clone)]
pub(crate) struct Client {
    pub http: reqwest::Client,
    pub base: String,
    pub token: Option<String>,
}

/// A logged-in device.
#[derive(Clone)]
pub(crate) struct Device {
    pub client: Client,
    pub login: LoginResponse,
    pub user: User,
    /// Its MLS signature key, the one the server certified.
    pub signer: std::sync::Arc<openmls_basic_credential::SignatureKeyPair>,
}

/// A fresh Ed25519 signature key, as a device makes one before sign-in.
pub(crate) fn new_signer() -> std::sync::Arc<openmls_basic_credential::SignatureKeyPair> {
    std::sync::Arc::new(
        openmls_basic_credential::SignatureKeyPair::new(openmls::prelude::SignatureScheme::ED25519)
            .expect("an Ed25519 key"),
    )
}

impl Client {
    pub(crate) fn new(server: &Server) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap_or_default(),
            base: server.base.clone(),
            token: None,
        }
    }

    pub(crate) fn with_token(&self, token: &str) -> Self {
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
    pub(crate) async fn raw(
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
    pub(crate) async fn call<B: Serialize, R: DeserializeOwned>(
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

    pub(crate) async fn login(
        &self,
        user: &User,
        totp: &str,
        device: &str,
    ) -> Result<Result<LoginResponse, Problem>, BoxError> {
        self.login_signed(user, totp, device, &new_signer()).await
    }

    /// Logs in with `signer`'s public key for the server to certify.
    pub(crate) async fn login_signed(
        &self,
        user: &User,
        totp: &str,
        device: &str,
        signer: &openmls_basic_credential::SignatureKeyPair,
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
                signature_key: Some(signer.public().to_vec().into()),
            }),
        )
        .await
    }
}

/// Logs `user` in on a new device, with a TOTP code not used before (steps
/// now and next are accepted; waits for a new step when both are used).
pub(crate) async fn enrol(server: &Server, user: &User, device: &str) -> Result<Device, BoxError> {
    let client = Client::new(server);
    let signer = new_signer();
    with_fresh_totp(user, |code| {
        let (client, signer) = (client.clone(), signer.clone());
        async move {
            match client.login_signed(user, &code, device, &signer).await? {
                Ok(login) => Ok(Some(Device {
                    client: client.with_token(&login.device_token),
                    login,
                    user: user.clone(),
                    signer,
                })),
                Err(p) if p.code == "totp_reused" => Ok(None),
                Err(p) => Err(format!("login failed: {p:?}").into()),
            }
        }
    })
    .await
}

impl Device {
    pub(crate) fn id(&self) -> &str {
        &self.login.device_id
    }

    /// A real KeyPackage of this device (its certificate, its key), as
    /// the core makes them.
    pub(crate) fn key_package(&self, last_resort: bool) -> Result<Vec<u8>, BoxError> {
        use openmls::prelude::{tls_codec::Serialize as _, *};
        let provider = openmls_rust_crypto::OpenMlsRustCrypto::default();
        let certificate = self.login.certificate.clone().ok_or("not certified")?.0;
        let credential = CredentialWithKey {
            credential: BasicCredential::new(certificate).into(),
            signature_key: self.signer.public().into(),
        };
        let mut builder = KeyPackage::builder();
        if last_resort {
            builder = builder.mark_as_last_resort().leaf_node_capabilities(
                Capabilities::builder()
                    .extensions(vec![ExtensionType::LastResort])
                    .build(),
            );
        }
        let bundle = builder.build(
            Ciphersuite::MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519,
            &provider,
            self.signer.as_ref(),
            credential,
        )?;
        Ok(bundle.key_package().tls_serialize_detached()?)
    }

    /// Registers a conversation.
    pub(crate) async fn create_conversation(&self) -> Result<String, BoxError> {
        let id = uuid::Uuid::new_v4().to_string();
        self.create_conversation_named(&id)
            .await?
            .map_err(|p| format!("create conversation: {p:?}"))?;
        Ok(id)
    }

    /// Registers a conversation by the id given: the server's answer.
    pub(crate) async fn create_conversation_named(
        &self,
        id: &str,
    ) -> Result<Result<(), Problem>, BoxError> {
        let r: Result<serde_json::Value, Problem> = self
            .client
            .call(
                reqwest::Method::POST,
                "/api/v1/conversations",
                Some(&pieper_wire::CreateConversation { id: id.to_owned() }),
            )
            .await?;
        Ok(r.map(drop))
    }

    /// Registers a conversation and adds `other` at epoch 0 (a commit).
    pub(crate) async fn conversation_with(&self, other: &Device) -> Result<String, BoxError> {
        let conversation = self.create_conversation().await?;
        self.send(&conversation, &commit("add", 0, &[other.id()], &[]))
            .await?
            .map_err(|p| format!("add {}: {p:?}", other.id()))?;
        Ok(conversation)
    }

    pub(crate) async fn send(
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

    pub(crate) async fn sync(&self, after: u64) -> Result<pieper_wire::SyncResponse, BoxError> {
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

/// Creates users in the practice "linde" and enrols one device for each:
/// (user name, role, device name).
pub(crate) async fn staff<const N: usize>(
    db: &TestDatabase,
    server: &Server,
    people: [(&str, &str, &str); N],
) -> Result<[Device; N], BoxError> {
    let mut devices = Vec::with_capacity(N);
    for (name, role, device) in people {
        devices.push(enrol(server, &create_user(db, "linde", name, role)?, device).await?);
    }
    devices
        .try_into()
        .map_err(|_| BoxError::from("wrong number of devices"))
}

/// An application envelope with an opaque payload.
pub(crate) fn application(id: &str, epoch: u64, payload: &[u8]) -> SendRequest {
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
        silent: false,
        urgent_for: Vec::new(),
        expires_at: None,
    }
}

/// A commit (opaque) that adds and removes devices.
pub(crate) fn commit(id: &str, epoch: u64, add: &[&str], remove: &[&str]) -> SendRequest {
    SendRequest {
        kind: pieper_wire::EnvelopeKind::Commit,
        welcome: (!add.is_empty()).then(|| b"welcome".to_vec().into()),
        add_devices: add.iter().map(|s| (*s).to_owned()).collect(),
        remove_devices: remove.iter().map(|s| (*s).to_owned()).collect(),
        ..application(id, epoch, format!("commit {id}").as_bytes())
    }
}
