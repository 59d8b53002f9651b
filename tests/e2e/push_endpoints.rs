//! Local stand-ins for Google's OAuth2 token endpoint, FCM HTTP v1
//! `messages:send` and APNs (HTTP/2), speaking their wire formats and
//! recording every request, so the push tests can assert exactly what left
//! the server. They check what the real services check: the signed JWT
//! grant, the bearer token, the ES256 provider token, HTTP/2.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Form, Json, Router,
    extract::{Path, Request, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};

pub(crate) use pieper_e2e::BoxError;

pub(crate) const FCM_SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
pub(crate) const FCM_CLIENT_EMAIL: &str = "pieper-push@pieper-test.iam.gserviceaccount.com";
pub(crate) const APNS_KEY_ID: &str = "ABC123DEFG";
pub(crate) const APNS_TEAM_ID: &str = "TEAM123456";
pub(crate) const APNS_TOPIC: &str = "nl.pieper.app";

/// One request as it arrived.
#[derive(Clone, Debug)]
pub(crate) struct Recorded {
    pub path: String,
    pub version: String,
    pub headers: HashMap<String, String>,
    pub body: Value,
    /// The status the endpoint answered.
    pub status: u16,
}

#[derive(Clone, Default)]
pub(crate) struct Log(Arc<Mutex<Vec<Recorded>>>);

impl Log {
    fn push(&self, r: Recorded) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(r);
    }

    pub(crate) fn all(&self) -> Vec<Recorded> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits until `count` recorded requests match `pick`.
    pub(crate) async fn wait_for(
        &self,
        count: usize,
        pick: impl Fn(&Recorded) -> bool,
    ) -> Result<Vec<Recorded>, BoxError> {
        for _ in 0..200 {
            let found: Vec<Recorded> = self.all().into_iter().filter(|r| pick(r)).collect();
            if found.len() >= count {
                return Ok(found);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!(
            "timed out waiting for {count} requests; have {:#?}",
            self.all()
        )
        .into())
    }
}

fn headers_of(headers: &HeaderMap) -> HashMap<String, String> {
    headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect()
}

/// A request's HTTP version, headers and JSON body, as recorded.
async fn read(request: Request) -> (String, HashMap<String, String>, Value) {
    let version = format!("{:?}", request.version());
    let headers = headers_of(request.headers());
    let bytes = axum::body::to_bytes(request.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (version, headers, body)
}

#[derive(Clone)]
struct Fcm {
    log: Log,
    grants: Log,
    public_key: DecodingKey,
    token_uri: Arc<Mutex<String>>,
    issued: Arc<Mutex<HashSet<String>>>,
    /// Tokens that get one 503 before they are taken.
    flaky: Arc<Mutex<HashSet<String>>>,
}

/// The fake Google: `POST /token` and `POST /v1/projects/{p}/messages:send`.
pub(crate) struct FakeFcm {
    pub base: String,
    /// messages:send requests.
    pub log: Log,
    /// Token-endpoint requests (grants).
    pub grants: Log,
}

async fn token(
    State(s): State<Fcm>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let token_uri = s
        .token_uri
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[token_uri]);
    validation.set_issuer(&[FCM_CLIENT_EMAIL]);
    let claims = form
        .get("assertion")
        .and_then(|a| jsonwebtoken::decode::<Value>(a, &s.public_key, &validation).ok())
        .map(|d| d.claims);
    let ok = form.get("grant_type").map(String::as_str)
        == Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
        && claims.as_ref().is_some_and(|c| c["scope"] == FCM_SCOPE);
    let status = if ok { 200 } else { 400 };
    s.grants.push(Recorded {
        path: "/token".into(),
        version: String::new(),
        headers: headers_of(&headers),
        body: claims.unwrap_or(Value::Null),
        status,
    });
    if !ok {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_grant"})),
        )
            .into_response();
    }
    let access = format!("ya29.test-{}", s.grants.all().len());
    s.issued
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(access.clone());
    Json(json!({"access_token": access, "expires_in": 3599, "token_type": "Bearer"}))
        .into_response()
}

async fn messages_send(
    State(s): State<Fcm>,
    Path(project): Path<String>,
    request: Request,
) -> Response {
    let (version, headers, body) = read(request).await;
    let bearer = headers
        .get("authorization")
        .and_then(|a| a.strip_prefix("Bearer "))
        .unwrap_or("");
    let authorized = s
        .issued
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .contains(bearer);
    let device = body["message"]["token"].as_str().unwrap_or("").to_owned();
    let flaky = s
        .flaky
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&device);
    let (status, answer) = if !authorized {
        (
            401,
            json!({"error": {"code": 401, "status": "UNAUTHENTICATED"}}),
        )
    } else if project != "pieper-test" {
        (
            403,
            json!({"error": {"code": 403, "status": "PERMISSION_DENIED"}}),
        )
    } else if device == "fcm-dead" {
        (
            404,
            json!({"error": {"code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND",
            "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNREGISTERED"}]}}),
        )
    } else if flaky {
        (
            503,
            json!({"error": {"code": 503, "status": "UNAVAILABLE"}}),
        )
    } else {
        (
            200,
            json!({"name": format!("projects/{project}/messages/0:{}", s.log.all().len())}),
        )
    };
    s.log.push(Recorded {
        path: format!("/v1/projects/{project}/messages:send"),
        version,
        headers,
        body,
        status,
    });
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        Json(answer),
    )
        .into_response()
}

impl FakeFcm {
    /// Starts it; tokens in `flaky` answer 503 once.
    pub(crate) async fn start(public_key_pem: &[u8], flaky: &[&str]) -> Result<Self, BoxError> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let state = Fcm {
            log: Log::default(),
            grants: Log::default(),
            public_key: DecodingKey::from_rsa_pem(public_key_pem)?,
            token_uri: Arc::new(Mutex::new(format!("{base}/token"))),
            issued: Arc::default(),
            flaky: Arc::new(Mutex::new(flaky.iter().map(|s| (*s).to_owned()).collect())),
        };
        let app = Router::new()
            .route("/token", post(token))
            .route("/v1/projects/{project}/messages:send", post(messages_send))
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Self {
            base,
            log: state.log,
            grants: state.grants,
        })
    }
}

#[derive(Clone)]
struct Apns {
    log: Log,
    public_key: DecodingKey,
}

/// The fake APNs: `POST /3/device/{token}` (production) and
/// `POST /sandbox/3/device/{token}` (development), HTTP/2 only.
pub(crate) struct FakeApns {
    pub base: String,
    pub log: Log,
}

async fn apns_device(
    State(s): State<Apns>,
    path: axum::extract::OriginalUri,
    request: Request,
) -> Response {
    let (version, headers, body) = read(request).await;
    let device = path.path().rsplit('/').next().unwrap_or("").to_owned();
    let jwt = headers
        .get("authorization")
        .and_then(|a| a.strip_prefix("bearer "))
        .unwrap_or("");
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_issuer(&[APNS_TEAM_ID]);
    validation.set_required_spec_claims(&["iss"]);
    validation.validate_exp = false;
    let header_ok =
        jsonwebtoken::decode_header(jwt).is_ok_and(|h| h.kid.as_deref() == Some(APNS_KEY_ID));
    let valid = header_ok
        && jsonwebtoken::decode::<Value>(jwt, &s.public_key, &validation)
            .is_ok_and(|d| d.claims["iat"].as_u64().is_some());
    let (status, reason) = if version != "HTTP/2.0" {
        (400, "BadRequest")
    } else if !valid {
        (403, "InvalidProviderToken")
    } else if headers.get("apns-topic").map(String::as_str) != Some(APNS_TOPIC) {
        (400, "DeviceTokenNotForTopic")
    } else if device == "apns-gone" {
        (410, "Unregistered")
    } else {
        (200, "")
    };
    s.log.push(Recorded {
        path: path.path().to_owned(),
        version,
        headers,
        body,
        status,
    });
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status == 200 {
        (code, [("apns-id", "00000000-0000-4000-8000-000000000000")]).into_response()
    } else {
        (code, Json(json!({"reason": reason}))).into_response()
    }
}

impl FakeApns {
    /// Starts it (plain-text HTTP/2, which the server's client speaks with
    /// prior knowledge, as it does over TLS to Apple).
    pub(crate) async fn start(public_key_pem: &[u8]) -> Result<Self, BoxError> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let state = Apns {
            log: Log::default(),
            public_key: DecodingKey::from_ec_pem(public_key_pem)?,
        };
        let app = Router::new()
            .route("/3/device/{token}", post(apns_device))
            .route("/sandbox/3/device/{token}", post(apns_device))
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Self {
            base,
            log: state.log,
        })
    }
}
