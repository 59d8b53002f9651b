//! Reading and exporting the audit log (practice managers only).

use std::net::SocketAddr;

use axum::{
    Json,
    extract::{ConnectInfo, State},
    http::header,
    response::{IntoResponse, Response},
};

use super::audit_by;
use crate::{
    auth::DeviceAuth,
    db::audit::{AuditFilter, NewAuditEvent, to_csv},
    error::{AppError, AppResult, QueryParams},
    state::AppState,
};

/// `GET /api/v1/audit?from&to&user&device&patient&action&format=json|csv`.
/// Reading the log is itself logged.
pub async fn query(
    State(state): State<AppState>,
    ConnectInfo(source): ConnectInfo<SocketAddr>,
    auth: DeviceAuth,
    QueryParams(filter): QueryParams<AuditFilter>,
) -> AppResult<Response> {
    if !auth.0.role.manages_practice() {
        return Err(AppError::Forbidden);
    }
    let csv = match filter.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => return Err(AppError::Invalid(format!("unknown format {other:?}"))),
    };
    let events = state.db.audit_events(&auth.0.practice_id, &filter).await?;
    state
        .db
        .audit(NewAuditEvent {
            patient: filter.patient.clone(),
            detail: Some(format!("events={}", events.len())),
            ..audit_by(&auth, source, "audit.read")
        })
        .await?;
    Ok(if csv {
        (
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            to_csv(&events),
        )
            .into_response()
    } else {
        Json(events).into_response()
    })
}
