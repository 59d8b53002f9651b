//! Catch-up by cursor, acknowledgements, and the live WebSocket.

use std::{collections::BTreeSet, net::SocketAddr};

use axum::{
    Json,
    extract::{
        ConnectInfo, State,
        ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade},
    },
    http::StatusCode,
    response::Response,
};
use futures_util::{SinkExt, StreamExt};
use pieper_wire::SyncResponse;
use serde::Deserialize;

use super::audit_by;
use crate::{
    auth::DeviceAuth,
    db::audit::NewAuditEvent,
    error::{AppError, AppResult, JsonBody, QueryParams},
    state::AppState,
};

/// Query of `GET /api/v1/sync`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SyncQuery {
    /// The cursor: envelopes after this position.
    #[serde(default)]
    pub after: u64,
    /// Page size (1 to 1000, default 500).
    pub limit: Option<u32>,
}

/// `GET /api/v1/sync?after=N`: the device's envelopes after its cursor.
#[utoipa::path(get, path = "/sync", params(SyncQuery), responses((status = 200, description = "Success.", body = pieper_wire::SyncResponse), (status = "default", description = "A problem (RFC 9457) with a stable `code`.", body = pieper_wire::Problem, content_type = "application/problem+json")), security(("deviceToken" = [])))]
pub async fn pull(
    State(state): State<AppState>,
    ConnectInfo(source): ConnectInfo<SocketAddr>,
    auth: DeviceAuth,
    QueryParams(q): QueryParams<SyncQuery>,
) -> AppResult<Json<SyncResponse>> {
    let limit = q.limit.unwrap_or(500);
    if !(1..=1000).contains(&limit) {
        return Err(AppError::Invalid("limit must be 1 to 1000".into()));
    }
    let (envelopes, more) = state
        .db
        .envelopes_after(&auth.0.id, q.after, limit, state.settings.sync_page_bytes)
        .await?;
    // One fetch event per conversation in the page, with its patient.
    let conversations: BTreeSet<&str> = envelopes.iter().map(|e| e.conversation.as_str()).collect();
    for conversation in conversations {
        let count = envelopes
            .iter()
            .filter(|e| e.conversation == conversation)
            .count();
        state
            .db
            .audit(NewAuditEvent {
                patient: state.db.patient_of(conversation).await?,
                detail: Some(format!("conversation={conversation} envelopes={count}")),
                ..audit_by(&auth, source, "message.fetch")
            })
            .await?;
    }
    let next = envelopes.last().map_or(q.after, |e| e.position);
    Ok(Json(SyncResponse {
        envelopes,
        next,
        more,
    }))
}

/// Body of `POST /api/v1/ack`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct Ack {
    /// The device has everything up to here.
    pub position: u64,
}

/// `POST /api/v1/ack`: how far the device has everything.
#[utoipa::path(post, path = "/ack", request_body = Ack, responses((status = 204, description = "Done."), (status = "default", description = "A problem (RFC 9457) with a stable `code`.", body = pieper_wire::Problem, content_type = "application/problem+json")), security(("deviceToken" = [])))]
pub async fn ack(
    State(state): State<AppState>,
    auth: DeviceAuth,
    JsonBody(req): JsonBody<Ack>,
) -> AppResult<StatusCode> {
    state.db.ack(&auth.0.id, req.position).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/ws`: live envelopes for the device. It should first catch
/// up by cursor; what arrives here may overlap that (positions tell).
#[utoipa::path(get, path = "/ws", responses((status = 101, description = "A WebSocket of `ServerEvent` frames.", body = pieper_wire::ServerEvent), (status = "default", description = "A problem (RFC 9457) with a stable `code`.", body = pieper_wire::Problem, content_type = "application/problem+json")), security(("deviceToken" = [])))]
pub async fn websocket(
    State(state): State<AppState>,
    auth: DeviceAuth,
    ws: WebSocketUpgrade,
) -> Response {
    // A small read buffer: idle devices cost little memory. A device sends
    // nothing but pings and a close here: anything larger ends the socket.
    ws.read_buffer_size(4096)
        .max_message_size(MAX_INCOMING_WS_BYTES)
        .max_frame_size(MAX_INCOMING_WS_BYTES)
        .on_upgrade(move |socket| live(state, auth, socket))
}

/// The largest message a device may send on its live socket.
const MAX_INCOMING_WS_BYTES: usize = 4096;
/// How long a write to a device may take before the socket is dropped (the
/// device catches up by cursor when it is back).
const WS_WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

async fn live(state: AppState, auth: DeviceAuth, socket: WebSocket) {
    let device = auth.0.id.clone();
    let (id, mut queue) = state.hub.register(&device);
    let (mut sink, mut stream) = socket.split();
    // A revocation between the upgrade and the registration found nothing to
    // close: look again now that this connection can be found.
    if state.db.is_revoked(&device).await.unwrap_or(true) {
        state.hub.unregister(&device, id);
        let _ = sink
            .send(Message::Close(Some(CloseFrame {
                code: 1008,
                reason: "revoked".into(),
            })))
            .await;
        return;
    }
    loop {
        tokio::select! {
            next = queue.recv() => {
                let Some(text) = next else {
                    // Dropped by the hub (too slow, or revoked): tell the
                    // device to catch up by cursor.
                    let _ = sink.send(Message::Close(Some(CloseFrame {
                        code: 1008,
                        reason: "resync".into(),
                    }))).await;
                    break;
                };
                // Batch: everything queued now, one flush.
                if sink.feed(Message::Text(text)).await.is_err() {
                    break;
                }
                let mut failed = false;
                while let Ok(more) = queue.try_recv() {
                    if sink.feed(Message::Text(more)).await.is_err() {
                        failed = true;
                        break;
                    }
                }
                if failed
                    || !matches!(
                        tokio::time::timeout(WS_WRITE_TIMEOUT, sink.flush()).await,
                        Ok(Ok(()))
                    )
                {
                    break;
                }
            }
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {} // pings are answered by the library
            },
        }
    }
    state.hub.unregister(&device, id);
}
