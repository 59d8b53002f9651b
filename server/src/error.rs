//! Every failure leaves the server as a problem-details body (RFC 9457) with
//! a stable code; nothing panics on bad input.

use axum::{
    Json,
    extract::rejection::{JsonRejection, QueryRejection},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use pieper_wire::{Problem, codes};

/// A failure a handler reports.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Missing or unknown credentials.
    #[error("not authenticated")]
    Unauthorized,
    /// The TOTP code is wrong.
    #[error("the one-time code is wrong")]
    TotpInvalid,
    /// The TOTP code was used before.
    #[error("the one-time code was already used")]
    TotpReused,
    /// The device was revoked.
    #[error("this device was revoked")]
    DeviceRevoked,
    /// Not allowed for this caller.
    #[error("not allowed")]
    Forbidden,
    /// The audit log is read only after a fresh second factor.
    #[error("unlock the audit log with a fresh one-time code first")]
    AuditLocked,
    /// No such thing, or not visible to the caller.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A commit for an epoch the conversation has left.
    #[error("the conversation is at epoch {current}")]
    StaleEpoch {
        /// The conversation's epoch.
        current: u64,
    },
    /// Malformed input.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The body is not JSON (by its content type).
    #[error("the request body must be application/json")]
    NotJson,
    /// The body is too large.
    #[error("the request body is too large")]
    TooLarge,
    /// Too many failures.
    #[error("too many attempts")]
    Throttled {
        /// Seconds until a retry may succeed.
        retry_after: u64,
    },
    /// It exists already.
    #[error("{0} exists already")]
    Conflict(&'static str),
    /// The practice's attachment storage is full.
    #[error("the practice's attachment storage is full: ask the operator for more room")]
    QuotaFull,
    /// The user has as many devices as the practice allows.
    #[error("you have as many devices as the practice allows: revoke one first")]
    DeviceLimit,
    /// A well-known group id of another practice or user: never this
    /// caller's to make, nor to wait for.
    #[error("this well-known group belongs to another practice or user")]
    NotYours,
    /// A database failure.
    #[error("database failure")]
    Database(#[from] sqlx::Error),
    /// Any other fault on the server.
    #[error("internal error: {0}")]
    Internal(String),
}

impl AppError {
    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            AppError::Unauthorized => (StatusCode::UNAUTHORIZED, codes::UNAUTHORIZED),
            AppError::TotpInvalid => (StatusCode::UNAUTHORIZED, codes::TOTP_INVALID),
            AppError::TotpReused => (StatusCode::UNAUTHORIZED, codes::TOTP_REUSED),
            AppError::DeviceRevoked => (StatusCode::UNAUTHORIZED, codes::DEVICE_REVOKED),
            AppError::Forbidden => (StatusCode::FORBIDDEN, codes::FORBIDDEN),
            AppError::AuditLocked => (StatusCode::FORBIDDEN, codes::AUDIT_LOCKED),
            AppError::NotFound(_) => (StatusCode::NOT_FOUND, codes::NOT_FOUND),
            AppError::StaleEpoch { .. } => (StatusCode::CONFLICT, codes::STALE_EPOCH),
            AppError::Invalid(_) => (StatusCode::BAD_REQUEST, codes::INVALID),
            AppError::NotJson => (StatusCode::UNSUPPORTED_MEDIA_TYPE, codes::INVALID),
            AppError::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, codes::TOO_LARGE),
            AppError::Throttled { .. } => (StatusCode::TOO_MANY_REQUESTS, codes::THROTTLED),
            AppError::Conflict(_) => (StatusCode::CONFLICT, codes::CONFLICT),
            AppError::NotYours => (StatusCode::FORBIDDEN, codes::NOT_YOURS),
            AppError::DeviceLimit => (StatusCode::FORBIDDEN, codes::DEVICE_LIMIT),
            AppError::QuotaFull => (StatusCode::INSUFFICIENT_STORAGE, codes::QUOTA_FULL),
            AppError::Database(_) | AppError::Internal(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, codes::INTERNAL)
            }
        }
    }

    /// The problem body for this error.
    pub fn problem(&self) -> Problem {
        let (status, code) = self.parts();
        let detail = match self {
            // Internal details go to the log, not to the client.
            AppError::Database(_) | AppError::Internal(_) => None,
            other => Some(other.to_string()),
        };
        Problem {
            type_uri: format!("https://pieper.nl/problems/{code}"),
            title: status.canonical_reason().unwrap_or("error").to_owned(),
            status: status.as_u16(),
            code: code.to_owned(),
            detail,
            current_epoch: match self {
                AppError::StaleEpoch { current } => Some(*current),
                _ => None,
            },
            retry_after: match self {
                AppError::Throttled { retry_after } => Some(*retry_after),
                _ => None,
            },
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if let AppError::Database(e) = &self {
            tracing::error!(error = %e, "database failure");
        }
        if let AppError::Internal(e) = &self {
            tracing::error!(error = %e, "internal failure");
        }
        let problem = self.problem();
        let status =
            StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, Json(problem)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let AppError::Throttled { retry_after } = self
            && let Ok(v) = HeaderValue::from_str(&retry_after.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response
    }
}

impl From<JsonRejection> for AppError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::BytesRejection(_) => AppError::TooLarge,
            JsonRejection::MissingJsonContentType(_) => AppError::NotJson,
            other => AppError::Invalid(other.body_text()),
        }
    }
}

impl From<QueryRejection> for AppError {
    fn from(rejection: QueryRejection) -> Self {
        AppError::Invalid(rejection.body_text())
    }
}

/// Query parameters whose rejections are problem details too.
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(AppError))]
pub struct QueryParams<T>(pub T);

/// A JSON body whose rejections are problem details too.
#[derive(axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(AppError))]
pub struct JsonBody<T>(pub T);

/// Result of a handler.
pub type AppResult<T> = Result<T, AppError>;

impl From<pieper_authority::Error> for AppError {
    fn from(e: pieper_authority::Error) -> Self {
        match e {
            pieper_authority::Error::NotEd25519 => AppError::Invalid(e.to_string()),
            other => AppError::Internal(other.to_string()),
        }
    }
}
