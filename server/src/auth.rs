//! Passwords (argon2id), TOTP second factor (RFC 6238, each code once),
//! device bearer tokens (stored as SHA-256), and the extractor that turns a
//! token into the calling device.

use argon2::{
    Argon2, PasswordHash, PasswordHasher, PasswordVerifier,
    password_hash::{SaltString, rand_core::OsRng},
};
use axum::{extract::FromRequestParts, http::request::Parts};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngCore;
use sha2::{Digest, Sha256};
use totp_rs::{Algorithm, Secret, TOTP};

use crate::{
    db::accounts::DeviceRow,
    error::{AppError, AppResult},
    state::AppState,
};

/// TOTP parameters: SHA-1, 6 digits, 30 s steps (what authenticator apps use).
const TOTP_STEP: u64 = 30;
const TOTP_DIGITS: usize = 6;

/// Hashes a password with argon2id and a random salt.
pub fn hash_password(password: &str) -> AppResult<String> {
    if password.chars().count() < 12 {
        return Err(AppError::Invalid(
            "a password has at least 12 characters".into(),
        ));
    }
    Argon2::default()
        .hash_password(password.as_bytes(), &SaltString::generate(&mut OsRng))
        .map(|h| h.to_string())
        .map_err(|e| AppError::Internal(format!("hashing: {e}")))
}

/// The longest password taken (bytes): longer ones are refused before
/// they are hashed.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// A practice id or user name: 1 to 64 of letters, digits, '-', '_', '.'
/// and '@'. Checked at login before anything else, and when an account
/// is made, so every account can log in.
pub fn check_name(field: &str, value: &str) -> crate::error::AppResult<()> {
    check_plain(field, value, "-_.@")
}

/// A value of 1 to 64 ASCII letters and digits and the `extra` characters:
/// names and ids that go into paths, logs and queries as they are.
pub fn check_plain(field: &str, value: &str, extra: &str) -> crate::error::AppResult<()> {
    if value.is_empty()
        || value.len() > 64
        || !value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
    {
        return Err(crate::error::AppError::Invalid(format!(
            "{field} must be 1 to 64 letters, digits or characters of {extra:?}"
        )));
    }
    Ok(())
}

/// Checks a password against its stored hash.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A hash no password matches, verified for unknown users so that a login's
/// timing does not tell whether the account exists.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        let mut random = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut random);
        Argon2::default()
            .hash_password(&random, &SaltString::generate(&mut OsRng))
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

/// A new random TOTP secret, base32 as authenticator apps take it.
pub fn new_totp_secret() -> String {
    let mut secret = [0u8; 20];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    match Secret::Raw(secret.to_vec()).to_encoded() {
        Secret::Encoded(s) => s,
        Secret::Raw(_) => String::new(),
    }
}

/// The `otpauth://` URL to enrol the secret in an authenticator app.
pub fn otpauth_url(practice: &str, username: &str, secret: &str) -> String {
    format!(
        "otpauth://totp/Pieper:{username}%40{practice}?secret={secret}&issuer=Pieper&algorithm=SHA1&digits={TOTP_DIGITS}&period={TOTP_STEP}"
    )
}

/// The time step (now, or a neighbour for clock skew) whose code `code` is,
/// if any.
pub fn totp_step(secret: &str, code: &str, now_secs: u64) -> AppResult<Option<i64>> {
    let bytes = Secret::Encoded(secret.to_owned())
        .to_bytes()
        .map_err(|_| AppError::Internal("stored TOTP secret unreadable".into()))?;
    let totp = TOTP::new(Algorithm::SHA1, TOTP_DIGITS, 0, TOTP_STEP, bytes)
        .map_err(|e| AppError::Internal(format!("TOTP: {e}")))?;
    let now = now_secs / TOTP_STEP;
    for step in [now.saturating_sub(1), now, now + 1] {
        let expected = totp.generate(step * TOTP_STEP);
        if constant_time_eq(expected.as_bytes(), code.trim().as_bytes()) {
            return Ok(Some(step as i64));
        }
    }
    Ok(None)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A new device token and the hash the server keeps of it.
pub fn new_device_token() -> (String, String) {
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    let token = format!("pdt_{}", URL_SAFE_NO_PAD.encode(raw));
    let hash = token_hash(&token);
    (token, hash)
}

/// The stored form of a token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The authenticated calling device.
#[derive(Clone, Debug)]
pub struct DeviceAuth(pub DeviceRow);

impl FromRequestParts<AppState> for DeviceAuth {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> AppResult<Self> {
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(AppError::Unauthorized)?;
        let device = state
            .db
            .device_by_token_hash(&token_hash(token.trim()))
            .await?
            .ok_or(AppError::Unauthorized)?;
        if device.revoked_at.is_some() {
            return Err(AppError::DeviceRevoked);
        }
        Ok(DeviceAuth(device))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_and_short_ones_are_refused() -> AppResult<()> {
        let hash = hash_password("correct horse battery")?;
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("wrong horse battery", &hash));
        assert!(!verify_password("anything", dummy_hash()));
        assert!(hash_password("short").is_err());
        Ok(())
    }

    #[test]
    fn totp_accepts_neighbouring_steps_only() -> AppResult<()> {
        let secret = new_totp_secret();
        let bytes = Secret::Encoded(secret.clone())
            .to_bytes()
            .map_err(|_| AppError::Unauthorized)?;
        let totp =
            TOTP::new(Algorithm::SHA1, 6, 0, 30, bytes).map_err(|_| AppError::Unauthorized)?;
        let now = 1_800_000_000u64;
        let step = (now / 30) as i64;
        assert_eq!(totp_step(&secret, &totp.generate(now), now)?, Some(step));
        assert_eq!(
            totp_step(&secret, &totp.generate(now + 30), now)?,
            Some(step + 1)
        );
        assert_eq!(totp_step(&secret, &totp.generate(now - 90), now)?, None);
        assert_eq!(totp_step(&secret, "000000x", now)?, None);
        Ok(())
    }

    #[test]
    fn tokens_are_random_and_hashed() {
        let (a, ha) = new_device_token();
        let (b, _) = new_device_token();
        assert_ne!(a, b);
        assert_eq!(token_hash(&a), ha);
        assert!(!ha.contains(&a));
    }
}
