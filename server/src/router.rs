//! The routes, apart from `main` so tests can build them.

use axum::{
    Extension, Router,
    body::Body,
    extract::{DefaultBodyLimit, MatchedPath},
    http::{HeaderValue, Request, StatusCode},
    middleware,
    response::{IntoResponse, Response},
};
use tower_http::{catch_panic::CatchPanicLayer, trace::TraceLayer};
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, router::UtoipaMethodRouterExt, routes};

use crate::{
    error::AppError,
    handlers::{accounts, audit, conversations, enrolment, ops, sync},
    openapi,
    state::AppState,
};

/// The API over `state`, with its OpenAPI document generated from the
/// handlers' annotations and the wire types (served at `/openapi.json`).
pub fn router(state: AppState) -> Router {
    let max_json = state.settings.max_json_bytes;
    let max_blob = DefaultBodyLimit::max(state.settings.max_blob_bytes);
    let api = OpenApiRouter::new()
        .routes(routes!(accounts::login))
        .routes(routes!(accounts::list_users, enrolment::invite))
        .routes(routes!(enrolment::reset))
        .routes(routes!(enrolment::enrol))
        .routes(routes!(accounts::disable_user))
        .routes(routes!(accounts::enable_user))
        .routes(routes!(accounts::set_on_behalf_of))
        .routes(routes!(accounts::set_registrations))
        .routes(routes!(accounts::list_devices))
        .routes(routes!(
            accounts::set_push_token,
            accounts::remove_push_token
        ))
        .routes(routes!(accounts::revoked_members))
        .routes(routes!(accounts::put_backup, accounts::get_backup).layer(max_blob))
        .routes(routes!(accounts::push_test))
        .routes(routes!(accounts::revoke_device))
        .routes(routes!(accounts::approve_device))
        .routes(routes!(accounts::renew_certificate))
        .routes(routes!(
            accounts::upload_key_packages,
            accounts::count_key_packages
        ))
        .routes(routes!(accounts::claim_key_packages))
        .routes(routes!(conversations::create))
        .routes(routes!(conversations::info))
        .routes(routes!(conversations::send))
        .routes(routes!(conversations::read))
        .routes(routes!(conversations::heal))
        .routes(routes!(conversations::heal_requests))
        .routes(routes!(conversations::upload_blob).layer(max_blob))
        .routes(routes!(conversations::download_blob))
        .routes(routes!(sync::pull))
        .routes(routes!(sync::ack))
        .routes(routes!(sync::websocket))
        .routes(routes!(audit::query))
        .routes(routes!(audit::unlock))
        .routes(routes!(audit::report))
        .routes(routes!(audit::breach))
        .routes(routes!(audit::head))
        .routes(routes!(audit::chain))
        .routes(routes!(audit::settings, audit::set_settings))
        .routes(routes!(audit::erase));
    let (router, document) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(ops::health))
        .routes(routes!(ops::metrics))
        .routes(routes!(ops::openapi))
        .nest(pieper_wire::API_PREFIX, api)
        .split_for_parts();
    router
        .fallback(|| async { AppError::NotFound("route") })
        .layer(Extension(std::sync::Arc::new(document)))
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
