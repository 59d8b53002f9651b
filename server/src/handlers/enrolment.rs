//! Invitations and enrolment codes: the practice manager invites a
//! colleague or resets their login and hands over a one-time code; with it
//! the person sets their own password and authenticator on their first
//! device. The server never makes up, prints or sends a password.

use std::net::SocketAddr;

use axum::{
    Json,
    extract::{ConnectInfo, Path, State},
    http::StatusCode,
};
use pieper_wire::{EnrolRequest, EnrolResponse, EnrolmentCode, Invite, Role};

use super::accounts::{Attempt, enrol_device, hashing};
use super::audit_by;
use crate::{
    auth::{self, DeviceAuth},
    db::audit::NewAuditEvent,
    error::{AppError, AppResult, JsonBody},
    state::AppState,
};

/// `POST /api/v1/users`: the practice manager invites a colleague; the
/// answer holds their one-time enrolment code, to hand over in person.
#[utoipa::path(post, path = "/users", request_body = pieper_wire::Invite, responses((status = 201, description = "Invited.", body = pieper_wire::EnrolmentCode), (status = "default", description = "A problem (RFC 9457) with a stable `code`.", body = pieper_wire::Problem, content_type = "application/problem+json")), security(("deviceToken" = [])))]
pub async fn invite(
    State(state): State<AppState>,
    ConnectInfo(source): ConnectInfo<SocketAddr>,
    auth: DeviceAuth,
    JsonBody(req): JsonBody<Invite>,
) -> AppResult<(StatusCode, Json<EnrolmentCode>)> {
    if !auth.0.role.manages_practice() {
        return Err(AppError::Forbidden);
    }
    auth::check_name("username", &req.username)?;
    let name = req.display_name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(AppError::Invalid(
            "display_name must be 1 to 100 characters".into(),
        ));
    }
    if req.role == Role::Admin {
        return Err(AppError::Invalid(
            "the operator makes admin accounts".into(),
        ));
    }
    let practice = &auth.0.practice_id;
    req.registrations.check().map_err(AppError::Invalid)?;
    let user = state
        .db
        .invite_user(practice, &req.username, name, req.role)
        .await?;
    state
        .db
        .set_registrations(practice, &user, &req.registrations)
        .await?;
    let code = state
        .db
        .issue_enrolment_code(practice, &user, false)
        .await?;
    state
        .db
        .audit(NewAuditEvent {
            detail: Some(format!("invited user {user} as {}", req.role.as_str())),
            ..audit_by(&auth, source, "user.invite")
        })
        .await?;
    Ok((StatusCode::CREATED, Json(code)))
}

/// `POST /api/v1/users/{id}/reset`: the practice manager resets a
/// colleague's login (a forgotten password, a lost authenticator): their
/// password and authenticator stop working at once, and the answer holds
/// the one-time code with which they set new ones.
#[utoipa::path(post, path = "/users/{id}/reset", params(("id" = String, Path, description = "The user.")), responses((status = 200, description = "Success.", body = pieper_wire::EnrolmentCode), (status = "default", description = "A problem (RFC 9457) with a stable `code`.", body = pieper_wire::Problem, content_type = "application/problem+json")), security(("deviceToken" = [])))]
pub async fn reset(
    State(state): State<AppState>,
    ConnectInfo(source): ConnectInfo<SocketAddr>,
    auth: DeviceAuth,
    Path(id): Path<String>,
) -> AppResult<Json<EnrolmentCode>> {
    if !auth.0.role.manages_practice() {
        return Err(AppError::Forbidden);
    }
    let code = state
        .db
        .issue_enrolment_code(&auth.0.practice_id, &id, true)
        .await?;
    state
        .db
        .audit(NewAuditEvent {
            detail: Some(format!("reset the login of user {id}")),
            ..audit_by(&auth, source, "user.reset")
        })
        .await?;
    Ok(Json(code))
}

/// `POST /api/v1/enrol`: with their enrolment code, a person sets their own
/// password and gets their authenticator secret, enrolling this device.
/// Throttled like a login; a wrong, used or expired code gets the answer a
/// wrong login gets.
#[utoipa::path(post, path = "/enrol", request_body = pieper_wire::EnrolRequest, responses((status = 200, description = "Success.", body = pieper_wire::EnrolResponse), (status = "default", description = "A problem (RFC 9457) with a stable `code`.", body = pieper_wire::Problem, content_type = "application/problem+json")))]
pub async fn enrol(
    State(state): State<AppState>,
    ConnectInfo(source): ConnectInfo<SocketAddr>,
    JsonBody(req): JsonBody<EnrolRequest>,
) -> AppResult<Json<EnrolResponse>> {
    let device_name = req.device_name.trim();
    if device_name.is_empty() || device_name.len() > 100 {
        return Err(AppError::Invalid(
            "device_name must be 1 to 100 characters".into(),
        ));
    }
    if req.signature_key.0.len() != 32 || req.code.len() > 64 {
        return Err(AppError::Invalid(
            "a 32-byte signature key and a code of at most 64 characters".into(),
        ));
    }
    let attempt =
        Attempt::take(&state, &req.practice, &req.username, &req.password, source).await?;
    // Hashed first: a password that is too short does not use the code up.
    let password = req.password.clone();
    let password_hash = hashing(&state, move || auth::hash_password(&password)).await??;
    let totp_secret = auth::new_totp_secret();
    let user = state.db.find_user(&req.practice, &req.username).await?;
    let used = match &user {
        Some(u) if !u.disabled => {
            state
                .db
                .use_enrolment_code(&u.id, &req.code, &password_hash, &totp_secret)
                .await?
        }
        _ => false,
    };
    let (Some(user), true) = (user, used) else {
        state
            .metrics
            .logins_failed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if state.db.practice_exists(&req.practice).await? {
            state
                .db
                .audit(NewAuditEvent {
                    practice_id: req.practice.clone(),
                    action: "user.enrol",
                    outcome: "failure",
                    source: Some(source.ip().to_string()),
                    detail: Some("wrong, used or expired code".into()),
                    ..NewAuditEvent::default()
                })
                .await?;
        }
        return Err(AppError::Unauthorized);
    };
    attempt.succeeded(&state).await?;
    let login = enrol_device(&state, &user, device_name, Some(&req.signature_key), source).await?;
    Ok(Json(EnrolResponse {
        otpauth_url: auth::otpauth_url(&user.practice_id, &req.username, &totp_secret),
        totp_secret,
        login,
    }))
}
