//! The audit log: devices report the accesses that happen on them; the
//! practice's manager reads, exports and queries it (a huisarts one
//! patient's part, for an access request) after unlocking it with a fresh
//! second factor; every reading is itself logged.

use std::net::SocketAddr;

use axum::{
    Json,
    extract::{ConnectInfo, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use pieper_wire::{
    AuditUnlock, AuditUnlocked, BreachEntry, EraseRequest, Erased, PracticeSettings,
    ReportAccesses, ReportedAccess,
};

use super::audit_by;
use crate::{
    auth::{self, DeviceAuth},
    db::audit::{AuditFilter, NewAuditEvent, to_csv},
    error::{AppError, AppResult, JsonBody, QueryParams},
    state::AppState,
};

/// How long one unlock keeps the audit log open: 15 minutes.
const UNLOCK_MS: i64 = 15 * 60 * 1000;
/// Most events in one report.
const MAX_REPORTED: usize = 500;

/// Who may open the log: the practice's managers (the privacy officer),
/// and a huisarts handling a patient's access request.
fn may_unlock(auth: &DeviceAuth) -> bool {
    auth.0.role.manages_practice() || auth.0.role == pieper_wire::Role::Huisarts
}

/// The caller may read this part of the log and unlocked it recently: a
/// manager all of it, a huisarts one patient's events.
async fn may_read(state: &AppState, auth: &DeviceAuth, one_patient: bool) -> AppResult<()> {
    if !(auth.0.role.manages_practice() || (one_patient && may_unlock(auth))) {
        return Err(AppError::Forbidden);
    }
    if !state.db.audit_unlocked(&auth.0.id).await? {
        return Err(AppError::AuditLocked);
    }
    Ok(())
}

/// `POST /api/v1/audit/unlock`: a fresh TOTP code opens the log to this
/// device for 15 minutes.
#[utoipa::path(post, path = "/audit/unlock", request_body = pieper_wire::AuditUnlock, responses((status = 200, description = "Success.", body = pieper_wire::AuditUnlocked), (status = "default", description = "A problem (RFC 9457) with a stable `code`.", body = pieper_wire::Problem, content_type = "application/problem+json")), security(("deviceToken" = [])))]
pub async fn unlock(
    State(state): State<AppState>,
    ConnectInfo(source): ConnectInfo<SocketAddr>,
    auth: DeviceAuth,
    JsonBody(req): JsonBody<AuditUnlock>,
) -> AppResult<Json<AuditUnlocked>> {
    if !may_unlock(&auth) {
        return Err(AppError::Forbidden);
    }
    // Second-factor guesses count against the account like a login's do.
    let account_key = format!("second-factor:{}", auth.0.user_id);
    state
        .account_throttle
        .take(&account_key)
        .await?
        .map_err(|retry_after| super::accounts::throttled_error(&state, retry_after))?;
    let secret = state.db.totp_secret(&auth.0.user_id).await?;
    let now = crate::db::now_ms();
    let failed = |detail: &str| NewAuditEvent {
        outcome: "failure",
        detail: Some(detail.to_owned()),
        ..audit_by(&auth, source, "audit.unlock")
    };
    let Some(step) = auth::totp_step(&secret, &req.totp, (now / 1000) as u64)? else {
        state.db.audit(failed("wrong TOTP code")).await?;
        return Err(AppError::TotpInvalid);
    };
    if !state
        .db
        .consume_totp_step(&auth.0.user_id, step, state.settings.totp_uses_per_step())
        .await?
    {
        state.db.audit(failed("TOTP code reused")).await?;
        return Err(AppError::TotpReused);
    }
    state.account_throttle.clear(&account_key).await?;
    let until = now + UNLOCK_MS;
    state.db.unlock_audit(&auth.0.id, until).await?;
    state
        .db
        .audit(audit_by(&auth, source, "audit.unlock"))
        .await?;
    Ok(Json(AuditUnlocked { until }))
}

/// `GET /api/v1/audit?from&to&user&device&patient&action&format=json|csv`.
#[utoipa::path(get, path = "/audit", params(crate::db::audit::AuditFilter), responses((status = 200, description = "The events, as JSON or CSV.", content((Vec<pieper_wire::AuditEvent> = "application/json"), (String = "text/csv"))), (status = "default", description = "A problem (RFC 9457) with a stable `code`.", body = pieper_wire::Problem, content_type = "application/problem+json")), security(("deviceToken" = [])))]
pub async fn query(
    State(state): State<AppState>,
    ConnectInfo(source): ConnectInfo<SocketAddr>,
    auth: DeviceAuth,
    QueryParams(filter): QueryParams<AuditFilter>,
) -> AppResult<Response> {
    may_read(&state, &auth, filter.patient.is_some()).await?;
    let csv = match filter.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => return Err(AppError::Invalid(format!("unknown format {other:?}"))),
    };
    // Read for an export: recorded as that export, under the device's own
    // id for it (its later report of it is then the same record).
    let action = match (filter.export_action.as_deref(), &filter.export) {
        (None, None) => "audit.read",
        (Some("audit.export"), Some(_)) => "audit.export",
        (Some("patient.export"), Some(_)) if filter.patient.is_some() => "patient.export",
        _ => {
            return Err(AppError::Invalid(
                "export and export_action (audit.export, or patient.export with a patient) go together"
                    .into(),
            ));
        }
    };
    if filter
        .export
        .as_deref()
        .is_some_and(|id| id.is_empty() || id.len() > 64)
    {
        return Err(AppError::Invalid("export: 1 to 64 characters".into()));
    }
    let events = state.db.audit_events(&auth.0.practice_id, &filter).await?;
    state
        .db
        .audit(NewAuditEvent {
            patient: filter.patient.clone(),
            detail: Some(format!(
                "events={} user={} device={}",
                events.len(),
                filter.user.as_deref().unwrap_or("-"),
                filter.device.as_deref().unwrap_or("-")
            )),
            client_event: filter.export.clone(),
            ..audit_by(&auth, source, action)
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

/// `GET /api/v1/audit/head`: the chain's head signed by the practice's
/// authority, for a manager's device to anchor in the practice group (a
/// hash, no patient data: no second factor needed).
#[utoipa::path(get, path = "/audit/head", responses((status = 200, description = "Success.", body = pieper_wire::AuditHead), (status = "default", description = "A problem (RFC 9457) with a stable `code`.", body = pieper_wire::Problem, content_type = "application/problem+json")), security(("deviceToken" = [])))]
pub async fn head(
    State(state): State<AppState>,
    auth: DeviceAuth,
) -> AppResult<Json<pieper_wire::AuditHead>> {
    if !auth.0.role.manages_practice() {
        return Err(AppError::Forbidden);
    }
    let practice = &auth.0.practice_id;
    let (seq, hash) = state.db.audit_head(practice).await?;
    let at = crate::db::now_ms();
    let signature = state
        .db
        .authority(practice)
        .await?
        .sign_audit_head(seq, &hash, at)
        .map_err(|e| AppError::Internal(e.to_string()))?;
    Ok(Json(pieper_wire::AuditHead {
        practice_id: practice.clone(),
        seq,
        hash,
        at,
        signature: signature.into(),
    }))
}

/// Query of `GET /api/v1/audit/chain`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChainQuery {
    /// Records after this place.
    pub after: i64,
    /// At most this many (1 to 1000; 500 if absent).
    pub limit: Option<i64>,
}

/// `GET /api/v1/audit/chain?after&limit`: the chain's records with what
/// their hashes cover, for a device to check them against its anchors.
#[utoipa::path(get, path = "/audit/chain", params(ChainQuery), responses((status = 200, description = "Success.", body = Vec<pieper_wire::ChainRecord>), (status = "default", description = "A problem (RFC 9457) with a stable `code`.", body = pieper_wire::Problem, content_type = "application/problem+json")), security(("deviceToken" = [])))]
pub async fn chain(
    State(state): State<AppState>,
    ConnectInfo(source): ConnectInfo<SocketAddr>,
    auth: DeviceAuth,
    QueryParams(q): QueryParams<ChainQuery>,
) -> AppResult<Json<Vec<pieper_wire::ChainRecord>>> {
    may_read(&state, &auth, false).await?;
    let limit = q.limit.unwrap_or(500);
    if !(1..=1000).contains(&limit) {
        return Err(AppError::Invalid("limit must be 1 to 1000".into()));
    }
    let records = state
        .db
        .audit_chain(&auth.0.practice_id, q.after, limit)
        .await?;
    state
        .db
        .audit(NewAuditEvent {
            detail: Some(format!("chain after={} records={}", q.after, records.len())),
            ..audit_by(&auth, source, "audit.read")
        })
        .await?;
    Ok(Json(records))
}

/// Query of `GET /api/v1/audit/breach`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BreachQuery {
    /// The device (lost or stolen)...
    pub device: Option<String>,
    /// ...or the user (a misused account).
    pub user: Option<String>,
    /// From (ms), inclusive.
    pub from: i64,
    /// Until (ms), exclusive.
    pub to: i64,
}

/// `GET /api/v1/audit/breach?device|user&from&to`: which patients a device
/// or user accessed in the window, one row per patient pseudonym.
#[utoipa::path(get, path = "/audit/breach", params(BreachQuery), responses((status = 200, description = "Success.", body = Vec<pieper_wire::BreachEntry>), (status = "default", description = "A problem (RFC 9457) with a stable `code`.", body = pieper_wire::Problem, content_type = "application/problem+json")), security(("deviceToken" = [])))]
pub async fn breach(
    State(state): State<AppState>,
    ConnectInfo(source): ConnectInfo<SocketAddr>,
    auth: DeviceAuth,
    QueryParams(q): QueryParams<BreachQuery>,
) -> AppResult<Json<Vec<BreachEntry>>> {
    may_read(&state, &auth, false).await?;
    let rows = state
        .db
        .breach(
            &auth.0.practice_id,
            q.device.as_deref(),
            q.user.as_deref(),
            q.from,
            q.to,
        )
        .await?;
    state
        .db
        .audit(NewAuditEvent {
            detail: Some(format!(
                "breach query device={} user={} from={} to={} patients={}",
                q.device.as_deref().unwrap_or("-"),
                q.user.as_deref().unwrap_or("-"),
                q.from,
                q.to,
                rows.len()
            )),
            ..audit_by(&auth, source, "audit.read")
        })
        .await?;
    Ok(Json(rows))
}

fn check_reported(e: &ReportedAccess) -> AppResult<&'static str> {
    let action: &'static str = e
        .action
        .parse::<pieper_wire::AccessAction>()
        .map_err(|_| AppError::Invalid(format!("action {:?} cannot be reported", e.action)))?
        .into();
    let short = |v: &str, max: usize| !v.is_empty() && v.len() <= max;
    if !short(&e.id, 64)
        || e.patient.as_deref().is_some_and(|p| !short(p, 128))
        || e.detail.as_deref().is_some_and(|d| d.len() > 500)
    {
        return Err(AppError::Invalid(
            "id 1-64, patient 1-128, detail up to 500 characters".into(),
        ));
    }
    if !matches!(e.outcome.as_str(), "success" | "failure") {
        return Err(AppError::Invalid("outcome: success or failure".into()));
    }
    Ok(action)
}

/// `POST /api/v1/audit/events`: accesses that happened on the device.
#[utoipa::path(post, path = "/audit/events", request_body = pieper_wire::ReportAccesses, responses((status = 204, description = "Done."), (status = "default", description = "A problem (RFC 9457) with a stable `code`.", body = pieper_wire::Problem, content_type = "application/problem+json")), security(("deviceToken" = [])))]
pub async fn report(
    State(state): State<AppState>,
    ConnectInfo(source): ConnectInfo<SocketAddr>,
    auth: DeviceAuth,
    JsonBody(req): JsonBody<ReportAccesses>,
) -> AppResult<StatusCode> {
    if req.events.len() > MAX_REPORTED {
        return Err(AppError::Invalid(format!(
            "at most {MAX_REPORTED} events at once"
        )));
    }
    let now = crate::db::now_ms();
    let mut events = Vec::with_capacity(req.events.len());
    for e in &req.events {
        let action = check_reported(e)?;
        events.push(NewAuditEvent {
            outcome: if e.outcome == "success" {
                "success"
            } else {
                "failure"
            },
            patient: e.patient.clone(),
            detail: e.detail.clone(),
            client_event: Some(e.id.clone()),
            // Beside the server's own time; a device clock ahead of the
            // server's is not believed.
            reported_at: Some(e.at.min(now)),
            ..audit_by(&auth, source, action)
        });
    }
    state.db.audit_many(events).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/practice/settings`: the practice's rules for chat content.
#[utoipa::path(get, path = "/practice/settings", responses((status = 200, description = "Success.", body = pieper_wire::PracticeSettings), (status = "default", description = "A problem (RFC 9457) with a stable `code`.", body = pieper_wire::Problem, content_type = "application/problem+json")), security(("deviceToken" = [])))]
pub async fn settings(
    State(state): State<AppState>,
    auth: DeviceAuth,
) -> AppResult<Json<PracticeSettings>> {
    Ok(Json(state.db.practice_settings(&auth.0.practice_id).await?))
}

/// `PUT /api/v1/practice/settings` (managers).
#[utoipa::path(put, path = "/practice/settings", request_body = pieper_wire::PracticeSettings, responses((status = 200, description = "Success.", body = pieper_wire::PracticeSettings), (status = "default", description = "A problem (RFC 9457) with a stable `code`.", body = pieper_wire::Problem, content_type = "application/problem+json")), security(("deviceToken" = [])))]
pub async fn set_settings(
    State(state): State<AppState>,
    ConnectInfo(source): ConnectInfo<SocketAddr>,
    auth: DeviceAuth,
    JsonBody(req): JsonBody<PracticeSettings>,
) -> AppResult<Json<PracticeSettings>> {
    if !auth.0.role.manages_practice() {
        return Err(AppError::Forbidden);
    }
    state
        .db
        .set_practice_settings(&auth.0.practice_id, &req)
        .await?;
    state
        .db
        .audit(NewAuditEvent {
            detail: Some(format!(
                "retention_days={} ttl_policy={} ttl_secs={:?}",
                req.retention_days, req.ttl_policy, req.ttl_secs
            )),
            ..audit_by(&auth, source, "practice.settings")
        })
        .await?;
    Ok(Json(state.db.practice_settings(&auth.0.practice_id).await?))
}

/// `POST /api/v1/patients/erase`: on a patient's request, the server drops
/// what it keeps of conversations about them (ciphertext). A huisarts or
/// the practice's manager may ask.
#[utoipa::path(post, path = "/patients/erase", request_body = pieper_wire::EraseRequest, responses((status = 200, description = "Success.", body = pieper_wire::Erased), (status = "default", description = "A problem (RFC 9457) with a stable `code`.", body = pieper_wire::Problem, content_type = "application/problem+json")), security(("deviceToken" = [])))]
pub async fn erase(
    State(state): State<AppState>,
    ConnectInfo(source): ConnectInfo<SocketAddr>,
    auth: DeviceAuth,
    JsonBody(req): JsonBody<EraseRequest>,
) -> AppResult<Json<Erased>> {
    use pieper_wire::Role;
    if !matches!(auth.0.role, Role::Huisarts | Role::Manager | Role::Admin) {
        return Err(AppError::Forbidden);
    }
    if req.patient.is_empty() || req.patient.len() > 128 || req.conversations.len() > 10_000 {
        return Err(AppError::Invalid(
            "a patient pseudonym and at most 10000 conversations".into(),
        ));
    }
    let erased = state
        .db
        .erase_conversations(&auth.0.practice_id, &req.patient, &req.conversations)
        .await?;
    state
        .db
        .audit(NewAuditEvent {
            patient: Some(req.patient.clone()),
            detail: Some(format!(
                "server copy erased: conversations={} envelopes={} blobs={}",
                erased.conversations, erased.envelopes, erased.blobs
            )),
            // The device's own record of this erasure, reported later, is
            // this one.
            client_event: req.audit_event.clone(),
            ..audit_by(&auth, source, "patient.erase")
        })
        .await?;
    Ok(Json(erased))
}
