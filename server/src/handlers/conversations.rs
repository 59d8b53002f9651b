//! Conversations, sending envelopes, and attachment blobs.

use std::net::SocketAddr;

use axum::{
    Json,
    body::Bytes,
    extract::{ConnectInfo, Path, State, rejection::BytesRejection},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use pieper_wire::{BlobCreated, ConversationInfo, CreateConversation, SendRequest, SendResponse};

use super::audit_by;
use crate::{
    auth::DeviceAuth,
    db::audit::NewAuditEvent,
    error::{AppError, AppResult, JsonBody},
    state::AppState,
};

fn check_id(field: &str, id: &str) -> AppResult<()> {
    if id.is_empty()
        || id.len() > 64
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(AppError::Invalid(format!(
            "{field} must be 1 to 64 of [A-Za-z0-9_-]"
        )));
    }
    Ok(())
}

/// `POST /api/v1/conversations`: register a conversation the device created.
pub async fn create(
    State(state): State<AppState>,
    auth: DeviceAuth,
    JsonBody(req): JsonBody<CreateConversation>,
) -> AppResult<StatusCode> {
    check_id("id", &req.id)?;
    state
        .db
        .create_conversation(&auth.0.practice_id, &auth.0.id, &req.id, None)
        .await?;
    Ok(StatusCode::CREATED)
}

/// `GET /api/v1/conversations/{id}`: its epoch and member devices.
pub async fn info(
    State(state): State<AppState>,
    auth: DeviceAuth,
    Path(id): Path<String>,
) -> AppResult<Json<ConversationInfo>> {
    Ok(Json(
        state
            .db
            .conversation_info(&auth.0.practice_id, &auth.0.id, &id)
            .await?,
    ))
}

/// `POST /api/v1/conversations/{id}/envelopes`: store and fan out.
#[tracing::instrument(skip_all, err(level = "info"))]
pub async fn send(
    State(state): State<AppState>,
    ConnectInfo(source): ConnectInfo<SocketAddr>,
    auth: DeviceAuth,
    Path(conversation): Path<String>,
    JsonBody(req): JsonBody<SendRequest>,
) -> AppResult<Json<SendResponse>> {
    check_id("id", &req.id)?;
    if req.payload.0.is_empty() {
        return Err(AppError::Invalid("empty payload".into()));
    }
    if req
        .patient
        .as_ref()
        .is_some_and(|p| p.is_empty() || p.len() > 128)
    {
        return Err(AppError::Invalid(
            "patient must be 1 to 128 characters".into(),
        ));
    }
    let stored = state
        .writer
        .store(
            &auth.0.practice_id,
            &auth.0.id,
            &conversation,
            req,
            audit_by(&auth, source, "message.send"),
        )
        .await
        .inspect_err(|e| {
            if matches!(e, AppError::StaleEpoch { .. }) {
                state
                    .metrics
                    .stale_commits
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        })?;
    if !stored.deliveries.is_empty() {
        state
            .metrics
            .envelopes_stored
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    // Durable first, then fanned out from memory.
    for (envelope, devices) in &stored.deliveries {
        state.hub.deliver(envelope, devices, &state.metrics);
    }
    Ok(Json(stored.response))
}

/// `POST /api/v1/conversations/{id}/blobs`: a sealed attachment.
pub async fn upload_blob(
    State(state): State<AppState>,
    ConnectInfo(source): ConnectInfo<SocketAddr>,
    auth: DeviceAuth,
    Path(conversation): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> AppResult<(StatusCode, Json<BlobCreated>)> {
    let body = body.map_err(|_| AppError::TooLarge)?;
    if body.is_empty() {
        return Err(AppError::Invalid("empty blob".into()));
    }
    let id = state
        .db
        .store_blob(&auth.0.practice_id, &auth.0.id, &conversation, &body)
        .await?;
    state
        .metrics
        .blobs_stored
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let patient = state.db.patients_of(&conversation).await?;
    state
        .db
        .audit(NewAuditEvent {
            patient,
            detail: Some(format!("blob={id} size={}", body.len())),
            ..audit_by(&auth, source, "attachment.upload")
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(BlobCreated {
            id,
            size: body.len() as u64,
        }),
    ))
}

/// `GET /api/v1/blobs/{id}`: for members of its conversation only.
pub async fn download_blob(
    State(state): State<AppState>,
    ConnectInfo(source): ConnectInfo<SocketAddr>,
    auth: DeviceAuth,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let (conversation, data) = state.db.blob(&auth.0.practice_id, &auth.0.id, &id).await?;
    let patient = state.db.patients_of(&conversation).await?;
    state
        .db
        .audit(NewAuditEvent {
            patient,
            detail: Some(format!("blob={id}")),
            ..audit_by(&auth, source, "attachment.fetch")
        })
        .await?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], data).into_response())
}
