//! Enrolment codes: a colleague invited (or whose login was reset) sets
//! their own password and authenticator with a one-time code.

use pieper_wire::EnrolmentCode;
use rand::Rng;
use sha2::{Digest, Sha256};
use sqlx::Row;

use super::{Db, now_ms};
use crate::error::{AppError, AppResult};

/// How long a code works: a week to get to the practice.
const CODE_VALID_MS: i64 = 7 * 24 * 60 * 60 * 1000;
/// The letters a code is made of: no 0/O, 1/I/L, U to misread.
const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTVWXYZ23456789";

/// A new code: 16 characters (about 78 bits) in groups of four.
fn new_code() -> String {
    let chars: Vec<char> = (0..16)
        .map(|_| CODE_ALPHABET[rand::rngs::OsRng.gen_range(0..CODE_ALPHABET.len())] as char)
        .collect();
    chars
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

/// How a code is stored and compared: its SHA-256, read as typed (case,
/// dashes and spaces do not matter).
fn code_hash(code: &str) -> String {
    let normal: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    hex::encode(Sha256::digest(normal.as_bytes()))
}

/// A password hash no password matches: the account waits for its
/// enrolment code.
const NO_PASSWORD: &str = "!enrolment-pending";

impl Db {
    /// Gives a user of the practice a new one-time enrolment code (stored
    /// hashed, valid for a week), replacing any earlier one. With `reset`,
    /// their password and authenticator stop working at once.
    pub async fn issue_enrolment_code(
        &self,
        practice: &str,
        user: &str,
        reset: bool,
    ) -> AppResult<EnrolmentCode> {
        let code = new_code();
        let expires_at = now_ms() + CODE_VALID_MS;
        let mut w = self.begin_write().await?;
        let found = sqlx::query("SELECT 1 AS one FROM users WHERE id = $1 AND practice_id = $2")
            .bind(user)
            .bind(practice)
            .fetch_optional(&mut *w.tx)
            .await?;
        if found.is_none() {
            return Err(AppError::NotFound("user"));
        }
        if reset {
            let secret = crate::auth::new_totp_secret();
            sqlx::query("UPDATE users SET password_hash = $1, totp_secret = $2 WHERE id = $3")
                .bind(NO_PASSWORD)
                .bind(
                    self.sealer
                        .seal(&crate::secrets::totp_context(user), secret.as_bytes())?,
                )
                .bind(user)
                .execute(&mut *w.tx)
                .await?;
        }
        sqlx::query("DELETE FROM enrolment_codes WHERE user_id = $1")
            .bind(user)
            .execute(&mut *w.tx)
            .await?;
        sqlx::query(
            "INSERT INTO enrolment_codes (user_id, code_hash, expires_at) VALUES ($1, $2, $3)",
        )
        .bind(user)
        .bind(code_hash(&code))
        .bind(expires_at)
        .execute(&mut *w.tx)
        .await?;
        w.tx.commit().await?;
        Ok(EnrolmentCode {
            user_id: user.to_owned(),
            code,
            expires_at,
        })
    }

    /// Creates an invited user: no password yet, waiting for their code.
    pub async fn invite_user(
        &self,
        practice: &str,
        username: &str,
        display_name: &str,
        role: pieper_wire::Role,
    ) -> AppResult<String> {
        self.create_user(
            practice,
            username,
            display_name,
            role,
            NO_PASSWORD,
            &crate::auth::new_totp_secret(),
        )
        .await
    }

    /// Uses a user's enrolment code: if `code` (as typed) is theirs and not
    /// expired, sets their new password and TOTP secret and drops the code.
    /// False (nothing changed) otherwise.
    pub async fn use_enrolment_code(
        &self,
        user: &str,
        code: &str,
        password_hash: &str,
        totp_secret: &str,
    ) -> AppResult<bool> {
        let mut w = self.begin_write().await?;
        let row =
            sqlx::query("SELECT code_hash, expires_at FROM enrolment_codes WHERE user_id = $1")
                .bind(user)
                .fetch_optional(&mut *w.tx)
                .await?;
        let Some(row) = row else {
            return Ok(false);
        };
        // Hashes are compared: how long that takes tells nothing of the code.
        let stored: String = row.try_get("code_hash")?;
        let expires_at: i64 = row.try_get("expires_at")?;
        if stored != code_hash(code) || expires_at <= now_ms() {
            return Ok(false);
        }
        sqlx::query("DELETE FROM enrolment_codes WHERE user_id = $1")
            .bind(user)
            .execute(&mut *w.tx)
            .await?;
        sqlx::query("UPDATE users SET password_hash = $1, totp_secret = $2, last_totp_step = 0 WHERE id = $3")
            .bind(password_hash)
            .bind(
                self.sealer
                    .seal(&crate::secrets::totp_context(user), totp_secret.as_bytes())?,
            )
            .bind(user)
            .execute(&mut *w.tx)
            .await?;
        w.tx.commit().await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_read_as_typed_and_differ() {
        let code = new_code();
        assert_eq!(code.len(), 19);
        assert_eq!(
            code_hash(&code),
            code_hash(&code.to_lowercase().replace('-', " "))
        );
        assert_ne!(new_code(), code);
    }
}
