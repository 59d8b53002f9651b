//! Login with 2FA, devices, KeyPackages.

use std::net::SocketAddr;

use axum::{
    Json,
    extract::{ConnectInfo, Path, State},
    http::StatusCode,
};
use pieper_wire::{
    ClaimKeyPackages, ClaimedKeyPackage, ClaimedKeyPackages, DeviceInfo, KeyPackageCount,
    LoginRequest, LoginResponse, PushProvider, PushTokenRegistration, UploadKeyPackages, UserInfo,
};

use super::audit_by;
use crate::{
    auth::{self, DeviceAuth},
    db::audit::NewAuditEvent,
    error::{AppError, AppResult, JsonBody},
    state::AppState,
};

/// Most KeyPackages one upload may hold.
const MAX_KEY_PACKAGES: usize = 200;
/// The largest KeyPackage taken: ours (an X.509 credential, one
/// ciphersuite) are about 1 KiB.
const MAX_KEY_PACKAGE_BYTES: usize = 16 * 1024;

/// `POST /api/v1/login`: password + TOTP; enrols a device.
#[tracing::instrument(skip_all, err(level = "info"))]
#[utoipa::path(post, path = "/login", request_body = pieper_wire::LoginRequest, responses((status = 200, description = "Success.", body = pieper_wire::LoginResponse), (status = "default", description = "A problem (RFC 9457) with a stable `code`.", body = pieper_wire::Problem, content_type = "application/problem+json")))]
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(source): ConnectInfo<SocketAddr>,
    JsonBody(req): JsonBody<LoginRequest>,
) -> AppResult<Json<LoginResponse>> {
    let device_name = req.device_name.trim();
    if device_name.is_empty() || device_name.len() > 100 {
        return Err(AppError::Invalid(
            "device_name must be 1 to 100 characters".into(),
        ));
    }
    if req.signature_key.as_ref().is_some_and(|k| k.0.len() != 32) {
        return Err(AppError::Invalid(
            "signature_key must be an Ed25519 public key (32 bytes)".into(),
        ));
    }
    let attempt =
        Attempt::take(&state, &req.practice, &req.username, &req.password, source).await?;
    let count_failure = || {
        state
            .metrics
            .logins_failed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    };
    // (user id, role) once the user is known.
    let failure = |user: Option<&(String, String)>, detail: &str| NewAuditEvent {
        practice_id: req.practice.clone(),
        user_id: user.map(|u| u.0.clone()),
        role: user.map(|u| u.1.clone()),
        action: "login",
        outcome: "failure",
        source: Some(source.ip().to_string()),
        detail: Some(detail.to_owned()),
        ..NewAuditEvent::default()
    };

    let user = state.db.find_user(&req.practice, &req.username).await?;
    let hash = user
        .as_ref()
        .map(|u| u.password_hash.clone())
        .unwrap_or_else(|| auth::dummy_hash().to_owned());
    let password = req.password.clone();
    let password_ok = hashing(&state, move || auth::verify_password(&password, &hash)).await?;
    let (Some(user), true) = (user, password_ok) else {
        count_failure();
        // A practice that does not exist has no log to write to: made-up
        // names must not fill the audit chain, kept for years.
        if state.db.practice_exists(&req.practice).await? {
            state
                .db
                .audit(failure(None, "wrong user or password"))
                .await?;
        }
        return Err(AppError::Unauthorized);
    };
    let who = (user.id.clone(), user.role.as_str().to_owned());
    if user.disabled {
        count_failure();
        state
            .db
            .audit(failure(Some(&who), "account disabled"))
            .await?;
        // The answer any wrong login gets.
        return Err(AppError::Unauthorized);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let Some(step) = auth::totp_step(&user.totp_secret, &req.totp, now)? else {
        count_failure();
        state
            .db
            .audit(failure(Some(&who), "wrong TOTP code"))
            .await?;
        // The same answer as a wrong password: it must not tell a guesser
        // that the password was right.
        return Err(AppError::Unauthorized);
    };
    if !state
        .db
        .consume_totp_step(&user.id, step, state.settings.totp_uses_per_step())
        .await?
    {
        count_failure();
        state
            .db
            .audit(failure(Some(&who), "TOTP code reused"))
            .await?;
        return Err(AppError::TotpReused);
    }

    attempt.succeeded(&state).await?;
    Ok(Json(
        enrol_device(
            &state,
            &user,
            device_name,
            req.signature_key.as_ref(),
            source,
        )
        .await?,
    ))
}

/// A sign-in attempt (a login, an enrolment) that took its throttle slots.
pub(crate) struct Attempt {
    account_key: String,
    address_slot: crate::throttle::Slot,
}

impl Attempt {
    /// Checks the names and the password's length before anything else
    /// (nothing unbounded reaches the throttle's keys, the hash or the audit
    /// log), then takes the attempt's slots before the password is checked:
    /// a burst of parallel guesses gets no more checks than the limit.
    pub(crate) async fn take(
        state: &AppState,
        practice: &str,
        username: &str,
        password: &str,
        source: SocketAddr,
    ) -> AppResult<Self> {
        auth::check_name("practice", practice)?;
        auth::check_name("username", username)?;
        if password.len() > auth::MAX_PASSWORD_BYTES {
            return Err(AppError::Invalid(format!(
                "password must be at most {} bytes",
                auth::MAX_PASSWORD_BYTES
            )));
        }
        let account_key = format!("account:{practice}/{username}");
        let account_slot = state
            .account_throttle
            .take(&account_key)
            .await?
            .map_err(|retry_after| throttled_error(state, retry_after))?;
        let address = format!("address:{}", source.ip());
        let address_slot = match state.address_throttle.take(&address).await? {
            Ok(slot) => slot,
            Err(retry_after) => {
                state.account_throttle.give_back(account_slot).await?;
                return Err(throttled_error(state, retry_after));
            }
        };
        Ok(Attempt {
            account_key,
            address_slot,
        })
    }

    /// The attempt succeeded: the account starts afresh, the address gets
    /// its slot back.
    pub(crate) async fn succeeded(self, state: &AppState) -> AppResult<()> {
        state.account_throttle.clear(&self.account_key).await?;
        state.address_throttle.give_back(self.address_slot).await
    }
}

/// A sign-in or second-factor attempt refused by the throttle (counted).
pub(crate) fn throttled_error(state: &AppState, retry_after: u64) -> AppError {
    state
        .metrics
        .logins_throttled
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    AppError::Throttled { retry_after }
}

/// Runs a password hash or check (argon2id, about 19 MiB each) off the
/// async threads, one per core at a time: the rest wait their turn.
pub(crate) async fn hashing<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce() -> T + Send + 'static,
) -> AppResult<T> {
    let _permit = state
        .hashing
        .acquire()
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| AppError::Internal(e.to_string()))
}

/// Enrols a device for a user who proved who they are (a login, an
/// enrolment code): its token, its certified signature key, the audit
/// records.
pub(crate) async fn enrol_device(
    state: &AppState,
    user: &crate::db::accounts::UserRow,
    device_name: &str,
    signature_key: Option<&pieper_wire::Bytes>,
    source: SocketAddr,
) -> AppResult<LoginResponse> {
    let (token, token_hash) = auth::new_device_token();
    let device_id = match state.db.create_device(user, device_name, &token_hash).await {
        Err(AppError::DeviceLimit) => {
            state
                .db
                .audit(NewAuditEvent {
                    practice_id: user.practice_id.clone(),
                    user_id: Some(user.id.clone()),
                    role: Some(user.role.as_str().to_owned()),
                    action: "device.enrol",
                    outcome: "failure",
                    source: Some(source.ip().to_string()),
                    detail: Some("the practice's device limit per user".into()),
                    ..NewAuditEvent::default()
                })
                .await?;
            return Err(AppError::DeviceLimit);
        }
        other => other?,
    };
    // The device's signature key, certified for this account and role.
    let (certificate, authority) = match signature_key {
        Some(key) => {
            let authority = state.db.authority(&user.practice_id).await?;
            let registrations = state.db.registrations(&user.id).await?;
            let certificate = authority.certify(
                &pieper_authority::Subject {
                    practice: &user.practice_id,
                    user: &user.id,
                    device: &device_id,
                    role: user.role,
                    registrations: &registrations,
                },
                &key.0,
            )?;
            state
                .db
                .set_device_certificate(&device_id, &key.0, &certificate)
                .await?;
            (Some(certificate.into()), Some(authority.certificate.into()))
        }
        None => (None, None),
    };
    state
        .metrics
        .logins_succeeded
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    for action in ["login", "device.enrol"] {
        state
            .db
            .audit(NewAuditEvent {
                practice_id: user.practice_id.clone(),
                user_id: Some(user.id.clone()),
                role: Some(user.role.as_str().to_owned()),
                device_id: Some(device_id.clone()),
                action,
                outcome: "success",
                source: Some(source.ip().to_string()),
                ..NewAuditEvent::default()
            })
            .await?;
    }
    Ok(LoginResponse {
        practice: user.practice_id.clone(),
        user_id: user.id.clone(),
        role: user.role,
        device_id,
        device_token: token,
        certificate,
        authority,
    })
}

/// `POST /api/v1/users/{id}/disable`: the practice manager disables a user
/// (a leaver, a suspension): their login is refused at once and every
/// device of theirs revoked (signed out, and removed from every group by
/// the members' devices at their next check).
#[utoipa::path(post, path = "/users/{id}/disable", params(("id" = String, Path, description = "The user.")), responses((status = 204, description = "Done."), (status = "default", description = "A problem (RFC 9457) with a stable `code`.", body = pieper_wire::Problem, content_type = "application/problem+json")), security(("deviceToken" = [])))]
pub async fn disable_user(
    State(state): State<AppState>,
    ConnectInfo(source): ConnectInfo<SocketAddr>,
    auth: DeviceAuth,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    if !auth.0.role.manages_practice() {
        return Err(AppError::Forbidden);
    }
    if id == auth.0.user_id {
        return Err(AppError::Invalid(
            "a manager does not disable themselves".into(),
        ));
    }
    let revoked = state.db.disable_user(&auth.0.practice_id, &id).await?;
    for device in &revoked {
        state.hub.disconnect(device);
    }
    state
        .db
        .audit(NewAuditEvent {
            detail: Some(format!(
                "disabled user {id}; revoked devices: {}",
                revoked.join(",")
            )),
            ..audit_by(&auth, source, "user.disable")
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/users/{id}/enable`: the practice manager enables a
/// disabled user again; they sign in on a device anew.
#[utoipa::path(post, path = "/users/{id}/enable", params(("id" = String, Path, description = "The user.")), responses((status = 204, description = "Done."), (status = "default", description = "A problem (RFC 9457) with a stable `code`.", body = pieper_wire::Problem, content_type = "application/problem+json")), security(("deviceToken" = [])))]
pub async fn enable_user(
    State(state): State<AppState>,
    ConnectInfo(source): ConnectInfo<SocketAddr>,
    auth: DeviceAuth,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    if !auth.0.role.manages_practice() {
        return Err(AppError::Forbidden);
    }
    state.db.enable_user(&auth.0.practice_id, &id).await?;
    state
        .db
        .audit(NewAuditEvent {
            detail: Some(format!("enabled user {id}")),
            ..audit_by(&auth, source, "user.enable")
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /api/v1/users/{id}/on-behalf-of`: the practice manager sets the
/// huisarts a user works for (an assistent for her GP), or clears it; the
/// user's audit records name them from the next request on.
#[utoipa::path(put, path = "/users/{id}/on-behalf-of", params(("id" = String, Path, description = "The user.")), request_body = pieper_wire::OnBehalfOf, responses((status = 204, description = "Done."), (status = "default", description = "A problem (RFC 9457) with a stable `code`.", body = pieper_wire::Problem, content_type = "application/problem+json")), security(("deviceToken" = [])))]
pub async fn set_on_behalf_of(
    State(state): State<AppState>,
    ConnectInfo(source): ConnectInfo<SocketAddr>,
    auth: DeviceAuth,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<pieper_wire::OnBehalfOf>,
) -> AppResult<StatusCode> {
    if !auth.0.role.manages_practice() {
        return Err(AppError::Forbidden);
    }
    state
        .db
        .set_on_behalf_of(&auth.0.practice_id, &id, req.user.as_deref())
        .await?;
    state
        .db
        .audit(NewAuditEvent {
            detail: Some(format!(
                "user {id} on behalf of {}",
                req.user.as_deref().unwrap_or("-")
            )),
            ..audit_by(&auth, source, "user.on_behalf_of")
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /api/v1/users/{id}/registrations`: the practice manager enters or
/// corrects a user's registrations (AGB, BIG, UZI); their devices' next
/// certificates carry them (`POST /devices/me/certificate`).
#[utoipa::path(put, path = "/users/{id}/registrations", params(("id" = String, Path, description = "The user.")), request_body = pieper_wire::Registrations, responses((status = 204, description = "Done."), (status = "default", description = "A problem (RFC 9457) with a stable `code`.", body = pieper_wire::Problem, content_type = "application/problem+json")), security(("deviceToken" = [])))]
pub async fn set_registrations(
    State(state): State<AppState>,
    ConnectInfo(source): ConnectInfo<SocketAddr>,
    auth: DeviceAuth,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<pieper_wire::Registrations>,
) -> AppResult<StatusCode> {
    if !auth.0.role.manages_practice() {
        return Err(AppError::Forbidden);
    }
    req.check().map_err(AppError::Invalid)?;
    state
        .db
        .set_registrations(&auth.0.practice_id, &id, &req)
        .await?;
    state
        .db
        .audit(NewAuditEvent {
            detail: Some(format!(
                "registrations of user {id}: {}",
                req.uris().join(" ")
            )),
            ..audit_by(&auth, source, "user.registrations")
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/users`: the practice's staff directory.
#[utoipa::path(get, path = "/users", responses((status = 200, description = "Success.", body = Vec<pieper_wire::UserInfo>), (status = "default", description = "A problem (RFC 9457) with a stable `code`.", body = pieper_wire::Problem, content_type = "application/problem+json")), security(("deviceToken" = [])))]
pub async fn list_users(
    State(state): State<AppState>,
    auth: DeviceAuth,
) -> AppResult<Json<Vec<UserInfo>>> {
    Ok(Json(state.db.list_users(&auth.0.practice_id).await?))
}

/// `GET /api/v1/devices`: the caller's devices; a manager sees the practice's.
#[utoipa::path(get, path = "/devices", responses((status = 200, description = "Success.", body = Vec<pieper_wire::DeviceInfo>), (status = "default", description = "A problem (RFC 9457) with a stable `code`.", body = pieper_wire::Problem, content_type = "application/problem+json")), security(("deviceToken" = [])))]
pub async fn list_devices(
    State(state): State<AppState>,
    auth: DeviceAuth,
) -> AppResult<Json<Vec<DeviceInfo>>> {
    let user = (!auth.0.role.manages_practice()).then_some(auth.0.user_id.as_str());
    Ok(Json(
        state.db.list_devices(&auth.0.practice_id, user).await?,
    ))
}

/// `GET /api/v1/devices/revoked`: the practice's revoked devices that are
/// still members of a conversation; member devices remove them (an MLS
/// commit), so they cannot read what is sent afterwards.
#[utoipa::path(get, path = "/devices/revoked", responses((status = 200, description = "Success.", body = Vec<String>), (status = "default", description = "A problem (RFC 9457) with a stable `code`.", body = pieper_wire::Problem, content_type = "application/problem+json")), security(("deviceToken" = [])))]
pub async fn revoked_members(
    State(state): State<AppState>,
    auth: DeviceAuth,
) -> AppResult<Json<Vec<String>>> {
    Ok(Json(state.db.revoked_members(&auth.0.practice_id).await?))
}

/// `DELETE /api/v1/devices/{id}`: revoke one of the caller's devices (a
/// manager: any of the practice's). Its token stops working at once.
#[utoipa::path(delete, path = "/devices/{id}", params(("id" = String, Path, description = "Its id.")), responses((status = 204, description = "Done."), (status = "default", description = "A problem (RFC 9457) with a stable `code`.", body = pieper_wire::Problem, content_type = "application/problem+json")), security(("deviceToken" = [])))]
pub async fn revoke_device(
    State(state): State<AppState>,
    ConnectInfo(source): ConnectInfo<SocketAddr>,
    auth: DeviceAuth,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    let device = state
        .db
        .device_in_practice(&auth.0.practice_id, &id)
        .await?
        .ok_or(AppError::NotFound("device"))?;
    if device.user_id != auth.0.user_id && !auth.0.role.manages_practice() {
        return Err(AppError::NotFound("device"));
    }
    state.db.revoke_device(&id).await?;
    state.hub.disconnect(&id);
    state
        .db
        .audit(NewAuditEvent {
            detail: Some(format!("revoked device {id}")),
            ..audit_by(&auth, source, "device.revoke")
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/key-packages`: the caller's KeyPackages.
#[utoipa::path(post, path = "/key-packages", request_body = pieper_wire::UploadKeyPackages, responses((status = 204, description = "Done."), (status = "default", description = "A problem (RFC 9457) with a stable `code`.", body = pieper_wire::Problem, content_type = "application/problem+json")), security(("deviceToken" = [])))]
pub async fn upload_key_packages(
    State(state): State<AppState>,
    auth: DeviceAuth,
    JsonBody(req): JsonBody<UploadKeyPackages>,
) -> AppResult<StatusCode> {
    if req.key_packages.len() > MAX_KEY_PACKAGES {
        return Err(AppError::Invalid(format!(
            "at most {MAX_KEY_PACKAGES} KeyPackages"
        )));
    }
    if req
        .key_packages
        .iter()
        .chain(&req.last_resort)
        .any(|kp| kp.0.is_empty() || kp.0.len() > MAX_KEY_PACKAGE_BYTES)
    {
        return Err(AppError::Invalid(format!(
            "a KeyPackage is 1 to {MAX_KEY_PACKAGE_BYTES} bytes"
        )));
    }
    // Each must be this device's own, as it was certified.
    let (certificate, signature_key) = state.db.device_keys(&auth.0.id).await?;
    for kp in req.key_packages.iter().chain(&req.last_resort) {
        crate::key_packages::check(&kp.0, &certificate, &signature_key)?;
    }
    let packages: Vec<Vec<u8>> = req.key_packages.into_iter().map(|b| b.0).collect();
    state
        .db
        .add_key_packages(
            &auth.0.id,
            &packages,
            req.last_resort.as_ref().map(|b| b.0.as_slice()),
            req.replace,
            MAX_KEY_PACKAGES as u64,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/key-packages`: how many one-time KeyPackages the server
/// holds for the caller.
#[utoipa::path(get, path = "/key-packages", responses((status = 200, description = "Success.", body = pieper_wire::KeyPackageCount), (status = "default", description = "A problem (RFC 9457) with a stable `code`.", body = pieper_wire::Problem, content_type = "application/problem+json")), security(("deviceToken" = [])))]
pub async fn count_key_packages(
    State(state): State<AppState>,
    auth: DeviceAuth,
) -> AppResult<Json<KeyPackageCount>> {
    let held = state.db.key_package_count(&auth.0.id).await?;
    Ok(Json(KeyPackageCount {
        one_time: u32::try_from(held).unwrap_or(u32::MAX),
    }))
}

/// `POST /api/v1/key-packages/claim`: one KeyPackage per device of the users.
#[utoipa::path(post, path = "/key-packages/claim", request_body = pieper_wire::ClaimKeyPackages, responses((status = 200, description = "Success.", body = pieper_wire::ClaimedKeyPackages), (status = "default", description = "A problem (RFC 9457) with a stable `code`.", body = pieper_wire::Problem, content_type = "application/problem+json")), security(("deviceToken" = [])))]
pub async fn claim_key_packages(
    State(state): State<AppState>,
    auth: DeviceAuth,
    JsonBody(req): JsonBody<ClaimKeyPackages>,
) -> AppResult<Json<ClaimedKeyPackages>> {
    if req.user_ids.is_empty() || req.user_ids.len() > 100 {
        return Err(AppError::Invalid("claim for 1 to 100 users".into()));
    }
    let (claimed, exhausted) = state
        .db
        .claim_key_packages(
            &auth.0.practice_id,
            &auth.0.id,
            &req.user_ids,
            req.missing_from.as_deref(),
        )
        .await?;
    let mut key_packages = Vec::with_capacity(claimed.len());
    for (device_id, user_id, kp) in claimed {
        key_packages.push(ClaimedKeyPackage {
            approval: state.db.approval(&device_id).await?,
            device_id,
            user_id,
            key_package: kp.into(),
        });
    }
    Ok(Json(ClaimedKeyPackages {
        key_packages,
        exhausted_devices: exhausted,
    }))
}

/// `POST /api/v1/devices/me/certificate`: renews the calling device's
/// certificate before it expires, for the signature key it enrolled with
/// and the user's current role (a role change reaches members' devices this
/// way). The device then updates its leaf in every conversation.
#[utoipa::path(post, path = "/devices/me/certificate", responses((status = 200, description = "The renewed certificate.", body = pieper_wire::RenewedCertificate), (status = "default", description = "A problem (RFC 9457) with a stable `code`.", body = pieper_wire::Problem, content_type = "application/problem+json")), security(("deviceToken" = [])))]
pub async fn renew_certificate(
    State(state): State<AppState>,
    ConnectInfo(source): ConnectInfo<SocketAddr>,
    auth: DeviceAuth,
) -> AppResult<Json<pieper_wire::RenewedCertificate>> {
    // A device from before certificates has none to renew: it signs in again.
    let key = state
        .db
        .device_signature_key(&auth.0.id)
        .await?
        .ok_or(AppError::NotFound("certificate"))?;
    let authority = state.db.authority(&auth.0.practice_id).await?;
    // The user's role and registrations as they are now: a correction
    // reaches their devices with the renewal.
    let registrations = state.db.registrations(&auth.0.user_id).await?;
    let certificate = authority.certify(
        &pieper_authority::Subject {
            practice: &auth.0.practice_id,
            user: &auth.0.user_id,
            device: &auth.0.id,
            role: auth.0.role,
            registrations: &registrations,
        },
        &key,
    )?;
    state
        .db
        .set_device_certificate(&auth.0.id, &key, &certificate)
        .await?;
    state
        .db
        .audit(NewAuditEvent {
            detail: Some(format!("role={}", auth.0.role.as_str())),
            ..audit_by(&auth, source, "device.certificate_renew")
        })
        .await?;
    Ok(Json(pieper_wire::RenewedCertificate {
        certificate: certificate.into(),
        authority: authority.certificate.into(),
    }))
}

/// `POST /api/v1/devices/{id}/approval`: another device of the caller's
/// user approves this one (its signature over the device's certificate,
/// which the user's devices check before they add it).
#[utoipa::path(post, path = "/devices/{id}/approval", params(("id" = String, Path, description = "The device approved.")), request_body = pieper_wire::Approval, responses((status = 204, description = "Done."), (status = "default", description = "A problem (RFC 9457) with a stable `code`.", body = pieper_wire::Problem, content_type = "application/problem+json")), security(("deviceToken" = [])))]
pub async fn approve_device(
    State(state): State<AppState>,
    ConnectInfo(source): ConnectInfo<SocketAddr>,
    auth: DeviceAuth,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<pieper_wire::Approval>,
) -> AppResult<StatusCode> {
    use pieper_wire::ApprovalKind;
    let device = state
        .db
        .device_in_practice(&auth.0.practice_id, &id)
        .await?
        .filter(|d| d.revoked_at.is_none())
        .ok_or(AppError::NotFound("device"))?;
    // The server only keeps the approval; members' devices check its
    // signature. What it checks is who may hand one in.
    let (allowed, rule) = match req.kind {
        ApprovalKind::Own => (
            device.user_id == auth.0.user_id && device.id != auth.0.id,
            "a device is approved by another device of its user",
        ),
        ApprovalKind::Recovery => (
            device.id == auth.0.id,
            "a device hands in its own recovery approval",
        ),
        ApprovalKind::Reset => (
            auth.0.role.manages_practice() && device.user_id != auth.0.user_id,
            "a practice manager resets another user's identity",
        ),
    };
    if !allowed {
        return Err(
            if device.user_id == auth.0.user_id || auth.0.role.manages_practice() {
                AppError::Invalid(rule.into())
            } else {
                AppError::NotFound("device")
            },
        );
    }
    if req.by_device != auth.0.id {
        return Err(AppError::Invalid(
            "the approving device signs as itself".into(),
        ));
    }
    if req.signature.0.len() != 64 {
        return Err(AppError::Invalid(
            "signature must be Ed25519 (64 bytes)".into(),
        ));
    }
    state
        .db
        .approve_device(&device.id, &auth.0.id, req.kind, &req.signature.0)
        .await?;
    let action = match req.kind {
        ApprovalKind::Reset => "identity.reset",
        ApprovalKind::Own | ApprovalKind::Recovery => "device.approve",
    };
    state
        .db
        .audit(NewAuditEvent {
            detail: Some(format!("approved={} kind={:?}", device.id, req.kind)),
            ..audit_by(&auth, source, action)
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /api/v1/devices/me/push-token`: register or rotate this device's
/// push token.
#[utoipa::path(put, path = "/devices/me/push-token", request_body = pieper_wire::PushTokenRegistration, responses((status = 204, description = "Done."), (status = "default", description = "A problem (RFC 9457) with a stable `code`.", body = pieper_wire::Problem, content_type = "application/problem+json")), security(("deviceToken" = [])))]
pub async fn set_push_token(
    State(state): State<AppState>,
    ConnectInfo(source): ConnectInfo<SocketAddr>,
    auth: DeviceAuth,
    JsonBody(req): JsonBody<PushTokenRegistration>,
) -> AppResult<StatusCode> {
    if req.token.is_empty()
        || req.token.len() > 4096
        || !req.token.chars().all(|c| c.is_ascii_graphic())
    {
        return Err(AppError::Invalid(
            "token must be 1 to 4096 printable ASCII characters".into(),
        ));
    }
    match (req.provider, req.apns_environment) {
        (PushProvider::Apns, None) => {
            return Err(AppError::Invalid(
                "an APNs token needs its apns_environment".into(),
            ));
        }
        (PushProvider::Fcm, Some(_)) => {
            return Err(AppError::Invalid(
                "apns_environment is for APNs tokens only".into(),
            ));
        }
        _ => {}
    }
    state.db.set_push_token(&auth.0.id, &req).await?;
    state
        .db
        .audit(audit_by(&auth, source, "device.push_token"))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/v1/devices/me/push-token`: this device wants no pushes.
#[utoipa::path(delete, path = "/devices/me/push-token", responses((status = 204, description = "Done."), (status = "default", description = "A problem (RFC 9457) with a stable `code`.", body = pieper_wire::Problem, content_type = "application/problem+json")), security(("deviceToken" = [])))]
pub async fn remove_push_token(
    State(state): State<AppState>,
    auth: DeviceAuth,
) -> AppResult<StatusCode> {
    state.db.remove_push_token(&auth.0.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/devices/me/push-test`: the notification self-test. Sends
/// this device a test push now (and over its live channel, if connected)
/// and says what the provider did with it.
#[utoipa::path(post, path = "/devices/me/push-test", request_body = pieper_wire::PushTest, responses((status = 200, description = "Success.", body = pieper_wire::PushTestResult), (status = "default", description = "A problem (RFC 9457) with a stable `code`.", body = pieper_wire::Problem, content_type = "application/problem+json")), security(("deviceToken" = [])))]
pub async fn push_test(
    State(state): State<AppState>,
    ConnectInfo(source): ConnectInfo<SocketAddr>,
    auth: DeviceAuth,
    JsonBody(req): JsonBody<pieper_wire::PushTest>,
) -> AppResult<Json<pieper_wire::PushTestResult>> {
    use crate::push::{PushPayload, PushResult};
    let id = uuid::Uuid::new_v4().to_string();
    let sent_at = crate::db::now_ms();
    let device = auth.0.id.clone();
    let live = state.hub.is_connected(&device);
    if live {
        state.hub.notify(
            &pieper_wire::ServerEvent::SelfTest {
                id: id.clone(),
                sent_at,
            },
            std::slice::from_ref(&device),
        );
    }
    let target = state.db.push_targets(std::slice::from_ref(&device)).await?;
    let (provider, outcome, detail) = match target.first() {
        None => (None, "no_token", None),
        Some(target) => {
            let payload = PushPayload {
                conversation: "self-test".into(),
                message: id.clone(),
                seq: 0,
                urgent: req.urgent,
                escalation: 0,
                self_test: Some(sent_at),
            };
            let (outcome, detail) = match state.push.send_now(target, &payload).await {
                PushResult::Delivered => ("delivered", None),
                PushResult::TokenGone => ("token_gone", None),
                PushResult::Failed(reason) => ("failed", Some(reason)),
                PushResult::NoProvider => ("no_provider", None),
            };
            (Some(target.provider), outcome, detail)
        }
    };
    state
        .db
        .audit(NewAuditEvent {
            outcome: if outcome == "delivered" {
                "success"
            } else {
                "failure"
            },
            detail: Some(format!("push self-test {outcome} live={live}")),
            ..audit_by(&auth, source, "device.push_test")
        })
        .await?;
    Ok(Json(pieper_wire::PushTestResult {
        id,
        sent_at,
        provider,
        outcome: outcome.into(),
        detail,
        live,
    }))
}

/// `PUT /api/v1/backups/me`: the user's encrypted history backup
/// (ciphertext; the server cannot open it), replacing the one before.
#[utoipa::path(put, path = "/backups/me", request_body(content = Vec<u8>, content_type = "application/octet-stream"), responses((status = 204, description = "Done."), (status = "default", description = "A problem (RFC 9457) with a stable `code`.", body = pieper_wire::Problem, content_type = "application/problem+json")), security(("deviceToken" = [])))]
pub async fn put_backup(
    State(state): State<AppState>,
    ConnectInfo(source): ConnectInfo<SocketAddr>,
    auth: DeviceAuth,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> AppResult<StatusCode> {
    let body = body.map_err(|_| AppError::TooLarge)?;
    if body.is_empty() {
        return Err(AppError::Invalid("empty backup".into()));
    }
    state.db.put_backup(&auth.0.user_id, &body).await?;
    state
        .db
        .audit(NewAuditEvent {
            detail: Some(format!("size={}", body.len())),
            ..audit_by(&auth, source, "backup.store")
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/backups/me`: the user's encrypted history backup.
#[utoipa::path(get, path = "/backups/me", responses((status = 200, description = "The sealed backup.", body = Vec<u8>, content_type = "application/octet-stream"), (status = "default", description = "A problem (RFC 9457) with a stable `code`.", body = pieper_wire::Problem, content_type = "application/problem+json")), security(("deviceToken" = [])))]
pub async fn get_backup(
    State(state): State<AppState>,
    ConnectInfo(source): ConnectInfo<SocketAddr>,
    auth: DeviceAuth,
) -> AppResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let data = state.db.backup(&auth.0.user_id).await?;
    state
        .db
        .audit(audit_by(&auth, source, "backup.fetch"))
        .await?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/octet-stream")],
        data,
    )
        .into_response())
}
