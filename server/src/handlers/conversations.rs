//! Conversations, sending envelopes, and attachment blobs.

use std::net::SocketAddr;

use axum::{
    Json,
    body::Bytes,
    extract::{ConnectInfo, Path, State, rejection::BytesRejection},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use pieper_wire::{
    BlobCreated, ConversationInfo, CreateConversation, EnvelopeKind, KnownGroup, MarkRead,
    Priority, SendRequest, SendResponse,
};

use super::audit_by;
use crate::{
    auth::DeviceAuth,
    db::audit::NewAuditEvent,
    error::{AppError, AppResult, JsonBody, QueryParams},
    push::PushPayload,
    state::AppState,
};

/// A conversation or message id: 1 to 64 of [A-Za-z0-9_-].
fn check_id(field: &str, id: &str) -> AppResult<()> {
    crate::auth::check_plain(field, id, "-_")
}

/// `POST /api/v1/conversations`: register a conversation the device created.
#[utoipa::path(post, path = "/conversations", request_body = pieper_wire::CreateConversation, responses((status = 201, description = "Registered."), (status = "default", description = "A problem (RFC 9457) with a stable `code`.", body = pieper_wire::Problem, content_type = "application/problem+json")), security(("deviceToken" = [])))]
pub async fn create(
    State(state): State<AppState>,
    auth: DeviceAuth,
    JsonBody(req): JsonBody<CreateConversation>,
) -> AppResult<StatusCode> {
    check_id("id", &req.id)?;
    // A well-known group's id is derived from its practice (and user): a
    // device makes only its own, so nobody can take another's first.
    if let Some(which) = KnownGroup::claimed_by(&req.id)
        && which.id(&auth.0.practice_id, &auth.0.user_id) != req.id
    {
        tracing::warn!(device = %auth.0.id, id = %req.id, "a well-known group id of another practice or user");
        return Err(AppError::NotYours);
    }
    state
        .db
        .create_conversation(&auth.0.practice_id, &auth.0.user_id, &auth.0.id, &req.id)
        .await?;
    Ok(StatusCode::CREATED)
}

/// `GET /api/v1/conversations/{id}`: its epoch and member devices.
#[utoipa::path(get, path = "/conversations/{id}", params(("id" = String, Path, description = "Its id.")), responses((status = 200, description = "Success.", body = pieper_wire::ConversationInfo), (status = "default", description = "A problem (RFC 9457) with a stable `code`.", body = pieper_wire::Problem, content_type = "application/problem+json")), security(("deviceToken" = [])))]
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

/// What storing an envelope is in the audit trail: a message a person
/// sends (with its patient), or machine traffic that is no access to a
/// patient's data — receipts, details, documentation states, notices and
/// work notes go `silent` (a work note's device logs it, with its patient),
/// commits change a group.
fn send_action(req: &SendRequest) -> &'static str {
    match (req.kind, req.silent) {
        (EnvelopeKind::Application, false) => "message.send",
        (EnvelopeKind::Application, true) => "message.system",
        (EnvelopeKind::Commit | EnvelopeKind::Welcome, _) => "group.change",
    }
}

/// `POST /api/v1/conversations/{id}/envelopes`: store and fan out.
#[tracing::instrument(skip_all, err(level = "info"))]
#[utoipa::path(post, path = "/conversations/{id}/envelopes", params(("id" = String, Path, description = "Its id.")), request_body = pieper_wire::SendRequest, responses((status = 200, description = "Success.", body = pieper_wire::SendResponse), (status = "default", description = "A problem (RFC 9457) with a stable `code`.", body = pieper_wire::Problem, content_type = "application/problem+json")), security(("deviceToken" = [])))]
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
    let wakes = req.kind == EnvelopeKind::Application && !req.silent;
    // A commit that adds and removes nobody renews its sender's keys (the
    // server sees no more than that: the commit itself is encrypted).
    let key_update = req.kind == EnvelopeKind::Commit
        && req.add_devices.is_empty()
        && req.remove_devices.is_empty();
    let (message, urgent) = (req.id.clone(), req.priority == Priority::Urgent);
    let urgent_for = req.urgent_for.clone();
    let action = send_action(&req);
    let stored = state
        .writer
        .store(
            &auth.0.practice_id,
            &auth.0.id,
            &conversation,
            req,
            audit_by(&auth, source, action),
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
        if key_update {
            state.metrics.count_key_update(crate::db::now_ms());
        }
    }
    if wakes && urgent && !stored.deliveries.is_empty() {
        let due = crate::db::now_ms()
            + i64::try_from(
                state
                    .settings
                    .push
                    .urgent_escalation_secs
                    .saturating_mul(1000),
            )
            .unwrap_or(i64::MAX / 2);
        state
            .db
            .track_urgent(
                &conversation,
                &message,
                stored.response.seq,
                (&auth.0.id, &auth.0.user_id),
                due,
            )
            .await?;
    }
    // Durable first, then fanned out from memory; devices not connected
    // here are woken by a push.
    for (envelope, devices) in &stored.deliveries {
        let live = state.hub.deliver(envelope, devices, &state.metrics);
        if wakes {
            let asleep: Vec<String> = devices
                .iter()
                .filter(|d| !live.contains(d))
                .cloned()
                .collect();
            let payload = PushPayload {
                conversation: conversation.clone(),
                message: message.clone(),
                seq: stored.response.seq,
                urgent,
                escalation: 0,
                self_test: None,
            };
            tokio::spawn(push_to(state.clone(), asleep, payload, urgent_for.clone()));
        }
    }
    Ok(Json(stored.response))
}

/// `POST /api/v1/conversations/{id}/read`: a member read a message; an
/// urgent one stops escalating once someone other than its sender read it.
#[utoipa::path(post, path = "/conversations/{id}/read", params(("id" = String, Path, description = "Its id.")), request_body = pieper_wire::MarkRead, responses((status = 204, description = "Done."), (status = "default", description = "A problem (RFC 9457) with a stable `code`.", body = pieper_wire::Problem, content_type = "application/problem+json")), security(("deviceToken" = [])))]
pub async fn read(
    State(state): State<AppState>,
    ConnectInfo(source): ConnectInfo<SocketAddr>,
    auth: DeviceAuth,
    Path(conversation): Path<String>,
    JsonBody(req): JsonBody<MarkRead>,
) -> AppResult<StatusCode> {
    check_id("message", &req.message)?;
    let stopped = state
        .db
        .mark_read(
            &auth.0.practice_id,
            (&auth.0.id, &auth.0.user_id),
            &conversation,
            &req.message,
        )
        .await?;
    if stopped {
        state
            .db
            .audit(NewAuditEvent {
                // The reader's device logs the reading itself; this is the
                // server stopping the escalation.
                detail: Some(format!("urgent message={} read", req.message)),
                ..audit_by(&auth, source, "urgent.stop")
            })
            .await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Looks up the devices' tokens and queues their pushes; with `urgent_for`,
/// an urgent push goes as urgent only to those users' devices.
pub(crate) async fn push_to(
    state: AppState,
    devices: Vec<String>,
    payload: PushPayload,
    urgent_for: Vec<String>,
) {
    if devices.is_empty() {
        return;
    }
    let targets = match state.db.push_targets(&devices).await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "push targets could not be read");
            return;
        }
    };
    if !payload.urgent || urgent_for.is_empty() {
        state.push.enqueue(targets, payload, &state.metrics);
        return;
    }
    let (urgent, routine): (Vec<_>, Vec<_>) = targets
        .into_iter()
        .partition(|t| urgent_for.contains(&t.user_id));
    let calm = PushPayload {
        urgent: false,
        ..payload.clone()
    };
    state.push.enqueue(urgent, payload, &state.metrics);
    state.push.enqueue(routine, calm, &state.metrics);
}

/// Query of a blob upload.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BlobQuery {
    /// The attachment of a disappearing message goes when it does (ms).
    pub expires_at: Option<i64>,
}

/// `POST /api/v1/conversations/{id}/blobs?expires_at=`: a sealed attachment.
#[utoipa::path(post, path = "/conversations/{id}/blobs", params(("id" = String, Path, description = "Its id."), BlobQuery), request_body(content = Vec<u8>, content_type = "application/octet-stream"), responses((status = 201, description = "Stored.", body = pieper_wire::BlobCreated), (status = "default", description = "A problem (RFC 9457) with a stable `code`.", body = pieper_wire::Problem, content_type = "application/problem+json")), security(("deviceToken" = [])))]
pub async fn upload_blob(
    State(state): State<AppState>,
    ConnectInfo(source): ConnectInfo<SocketAddr>,
    auth: DeviceAuth,
    Path(conversation): Path<String>,
    QueryParams(query): QueryParams<BlobQuery>,
    body: Result<Bytes, BytesRejection>,
) -> AppResult<(StatusCode, Json<BlobCreated>)> {
    let body = body.map_err(|_| AppError::TooLarge)?;
    if body.is_empty() {
        return Err(AppError::Invalid("empty blob".into()));
    }
    let id = state
        .db
        .store_blob(
            &auth.0.practice_id,
            &auth.0.id,
            &conversation,
            &body,
            query.expires_at,
            state.settings.blob_quota_bytes,
        )
        .await?;
    state
        .metrics
        .blobs_stored
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let patient = state.db.patient_of(&conversation).await?;
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
#[utoipa::path(get, path = "/blobs/{id}", params(("id" = String, Path, description = "Its id.")), responses((status = 200, description = "The sealed blob.", body = Vec<u8>, content_type = "application/octet-stream"), (status = "default", description = "A problem (RFC 9457) with a stable `code`.", body = pieper_wire::Problem, content_type = "application/problem+json")), security(("deviceToken" = [])))]
pub async fn download_blob(
    State(state): State<AppState>,
    ConnectInfo(source): ConnectInfo<SocketAddr>,
    auth: DeviceAuth,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let (conversation, data) = state.db.blob(&auth.0.practice_id, &auth.0.id, &id).await?;
    let patient = state.db.patient_of(&conversation).await?;
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

/// `POST /api/v1/conversations/{id}/heal`: the device cannot decrypt the
/// conversation any more; counted, and a member's device adds it again.
#[utoipa::path(post, path = "/conversations/{id}/heal", params(("id" = String, Path, description = "Its id.")), request_body = pieper_wire::HealAsk, responses((status = 204, description = "Done."), (status = "default", description = "A problem (RFC 9457) with a stable `code`.", body = pieper_wire::Problem, content_type = "application/problem+json")), security(("deviceToken" = [])))]
pub async fn heal(
    State(state): State<AppState>,
    ConnectInfo(source): ConnectInfo<SocketAddr>,
    auth: DeviceAuth,
    Path(conversation): Path<String>,
    JsonBody(req): JsonBody<pieper_wire::HealAsk>,
) -> AppResult<StatusCode> {
    state
        .db
        .request_heal(&auth.0.practice_id, &auth.0.id, &conversation)
        .await?;
    state.metrics.undecryptable_messages.fetch_add(
        u64::from(req.undecryptable.min(10_000)),
        std::sync::atomic::Ordering::Relaxed,
    );
    state
        .db
        .audit(NewAuditEvent {
            detail: Some(format!(
                "conversation={conversation} undecryptable={}",
                req.undecryptable
            )),
            ..audit_by(&auth, source, "device.heal")
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/heal-requests`: member devices to add again, in the
/// caller's conversations.
#[utoipa::path(get, path = "/heal-requests", responses((status = 200, description = "Success.", body = Vec<pieper_wire::HealRequest>), (status = "default", description = "A problem (RFC 9457) with a stable `code`.", body = pieper_wire::Problem, content_type = "application/problem+json")), security(("deviceToken" = [])))]
pub async fn heal_requests(
    State(state): State<AppState>,
    auth: DeviceAuth,
) -> AppResult<Json<Vec<pieper_wire::HealRequest>>> {
    Ok(Json(state.db.heal_requests(&auth.0.id).await?))
}
