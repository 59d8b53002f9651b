//! Health, metrics and the API description.

use axum::{
    Extension, Json,
    extract::{ConnectInfo, State},
    http::header,
    response::IntoResponse,
};
use serde_json::{Value, json};

use crate::{error::AppResult, state::AppState};

/// `GET /health`: the database answers.
#[utoipa::path(get, path = "/health", responses((status = 200, description = "The server and its database answer.", body = Object), (status = "default", description = "A problem (RFC 9457) with a stable `code`.", body = pieper_wire::Problem, content_type = "application/problem+json")))]
pub async fn health(State(state): State<AppState>) -> AppResult<Json<Value>> {
    sqlx::query("SELECT 1").execute(state.db.pool()).await?;
    Ok(Json(json!({ "status": "ok" })))
}

/// `GET /metrics`: Prometheus text format.
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus counters.", body = String, content_type = "text/plain"), (status = "default", description = "A problem (RFC 9457) with a stable `code`.", body = pieper_wire::Problem, content_type = "application/problem+json")))]
pub async fn metrics(
    State(state): State<AppState>,
    ConnectInfo(source): ConnectInfo<std::net::SocketAddr>,
    headers: axum::http::HeaderMap,
) -> crate::error::AppResult<impl IntoResponse> {
    // Counters tell an outsider how busy a practice is: behind a token, or
    // only for a scraper on this machine.
    let allowed = match &state.settings.metrics_token {
        Some(token) => headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|given| {
                bool::from(subtle::ConstantTimeEq::ct_eq(
                    given.as_bytes(),
                    token.as_bytes(),
                ))
            }),
        None => source.ip().is_loopback(),
    };
    if !allowed {
        return Err(crate::error::AppError::Unauthorized);
    }
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(state.hub.connection_count()),
    ))
}

/// `GET /openapi.json`.
#[utoipa::path(get, path = "/openapi.json", responses((status = 200, description = "This document.", body = Object), (status = "default", description = "A problem (RFC 9457) with a stable `code`.", body = pieper_wire::Problem, content_type = "application/problem+json")))]
pub async fn openapi(
    Extension(document): Extension<std::sync::Arc<utoipa::openapi::OpenApi>>,
) -> Json<utoipa::openapi::OpenApi> {
    Json(document.as_ref().clone())
}
