//! The routes, apart from `main` so tests can build them.

use axum::{
    Router,
    body::Body,
    extract::{DefaultBodyLimit, MatchedPath},
    http::{HeaderValue, Request, StatusCode},
    middleware,
    response::{IntoResponse, Response},
    routing::{delete, get, post, put},
};
use tower_http::{catch_panic::CatchPanicLayer, trace::TraceLayer};

use crate::{
    error::AppError,
    handlers::{accounts, audit, conversations, ops, sync},
    state::AppState,
};

/// The API over `state`.
pub fn router(state: AppState) -> Router {
    let max_json = state.settings.max_json_bytes;
    let max_blob = state.settings.max_blob_bytes;
    let api = Router::new()
        .route("/login", post(accounts::login))
        .route("/users", get(accounts::list_users))
        .route("/devices", get(accounts::list_devices))
        .route(
            "/devices/me/push-token",
            put(accounts::set_push_token).delete(accounts::remove_push_token),
        )
        .route("/devices/revoked", get(accounts::revoked_members))
        .route(
            "/backups/me",
            put(accounts::put_backup)
                .get(accounts::get_backup)
                .layer(DefaultBodyLimit::max(max_blob)),
        )
        .route("/devices/me/push-test", post(accounts::push_test))
        .route("/devices/{id}", delete(accounts::revoke_device))
        .route(
            "/key-packages",
            post(accounts::upload_key_packages).get(accounts::count_key_packages),
        )
        .route("/key-packages/claim", post(accounts::claim_key_packages))
        .route("/conversations", post(conversations::create))
        .route("/conversations/{id}", get(conversations::info))
        .route("/conversations/{id}/envelopes", post(conversations::send))
        .route("/conversations/{id}/read", post(conversations::read))
        .route("/conversations/{id}/heal", post(conversations::heal))
        .route("/heal-requests", get(conversations::heal_requests))
        .route(
            "/conversations/{id}/blobs",
            post(conversations::upload_blob).layer(DefaultBodyLimit::max(max_blob)),
        )
        .route("/blobs/{id}", get(conversations::download_blob))
        .route("/sync", get(sync::pull))
        .route("/ack", post(sync::ack))
        .route("/ws", get(sync::websocket))
        .route("/audit", get(audit::query))
        .route("/audit/unlock", post(audit::unlock))
        .route("/audit/events", post(audit::report))
        .route("/audit/breach", get(audit::breach))
        .route(
            "/practice/settings",
            get(audit::settings).put(audit::set_settings),
        )
        .route("/patients/erase", post(audit::erase));
    Router::new()
        .route("/health", get(ops::health))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi))
        .nest(pieper_wire::API_PREFIX, api)
        .fallback(|| async { AppError::NotFound("route") })
        .layer(DefaultBodyLimit::max(max_json))
        .layer(middleware::map_response(protocol_header))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(CatchPanicLayer::custom(|_| {
            AppError::Internal("a handler panicked".into()).into_response()
        }))
        .with_state(state)
}

/// A request's log span: method and route template only. The URI itself may
/// carry a patient reference in its query, so it is never logged.
fn request_span(request: &Request<Body>) -> tracing::Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    tracing::info_span!("request", method = %request.method(), route)
}

async fn protocol_header(mut response: Response) -> Response {
    response.headers_mut().insert(
        pieper_wire::PROTOCOL_HEADER,
        HeaderValue::from(pieper_wire::PROTOCOL_VERSION),
    );
    if response.status() == StatusCode::METHOD_NOT_ALLOWED {
        return AppError::Invalid("method not allowed".into()).into_response();
    }
    response
}
