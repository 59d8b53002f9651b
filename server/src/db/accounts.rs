//! Practices, users, devices and KeyPackages.

use pieper_wire::{DeviceInfo, Role, UserInfo};
use sqlx::Row;

use super::{Db, now_ms};
use pieper_authority::Authority;

use crate::error::{AppError, AppResult};

/// A user as needed to check a login.
pub struct UserRow {
    /// The id.
    pub id: String,
    /// The practice.
    pub practice_id: String,
    /// The role.
    pub role: Role,
    /// The Argon2id hash (PHC string).
    pub password_hash: String,
    /// The TOTP secret (base32).
    pub totp_secret: String,
    /// Disabled by the practice manager: no login.
    pub disabled: bool,
}

/// The device behind a bearer token.
#[derive(Clone, Debug)]
pub struct DeviceRow {
    /// The id.
    pub id: String,
    /// Its user.
    pub user_id: String,
    /// The practice.
    pub practice_id: String,
    /// The role.
    pub role: Role,
    /// When it was revoked (ms since the Unix epoch), if it was.
    pub revoked_at: Option<i64>,
    /// On whose behalf its user acts (for the audit trail): the huisarts
    /// the manager set, or the practice for its connector.
    pub on_behalf_of: Option<String>,
}

use crate::secrets::{authority_context, totp_context};

fn registrations_of(r: &sqlx::any::AnyRow) -> AppResult<pieper_wire::Registrations> {
    Ok(pieper_wire::Registrations {
        agb: r.try_get("agb")?,
        big: r.try_get("big")?,
        uzi: r.try_get("uzi")?,
    })
}

/// An update meant for one user of the practice: `NotFound` if it found
/// none (another practice's user, or a made-up id).
fn one_user(changed: u64) -> AppResult<()> {
    if changed == 0 {
        return Err(AppError::NotFound("user"));
    }
    Ok(())
}

fn role(text: &str) -> AppResult<Role> {
    Role::parse(text).ok_or_else(|| AppError::Internal(format!("stored role {text:?} unknown")))
}

impl Db {
    /// Creates a practice.
    pub async fn create_practice(&self, id: &str, name: &str) -> AppResult<()> {
        let result =
            sqlx::query("INSERT INTO practices (id, name, created_at) VALUES ($1, $2, $3)")
                .bind(id)
                .bind(name)
                .bind(now_ms())
                .execute(self.pool())
                .await;
        match result {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(AppError::Conflict("practice"))
            }
            other => other.map(|_| ()).map_err(Into::into),
        }
    }

    /// Creates a user; returns its id.
    pub async fn create_user(
        &self,
        practice: &str,
        username: &str,
        display_name: &str,
        role: Role,
        password_hash: &str,
        totp_secret: &str,
    ) -> AppResult<String> {
        let id = uuid::Uuid::new_v4().to_string();
        let result = sqlx::query(
            "INSERT INTO users (id, practice_id, username, display_name, role, password_hash, totp_secret, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&id)
        .bind(practice)
        .bind(username)
        .bind(display_name)
        .bind(role.as_str())
        .bind(password_hash)
        .bind(self.sealer.seal(&totp_context(&id), totp_secret.as_bytes())?)
        .bind(now_ms())
        .execute(self.pool())
        .await;
        match result {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(AppError::Conflict("user"))
            }
            Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
                Err(AppError::NotFound("practice"))
            }
            other => other.map(|_| id).map_err(Into::into),
        }
    }

    /// Whether a practice of this id exists.
    pub async fn practice_exists(&self, practice: &str) -> AppResult<bool> {
        Ok(sqlx::query("SELECT 1 AS one FROM practices WHERE id = $1")
            .bind(practice)
            .fetch_optional(self.pool())
            .await?
            .is_some())
    }

    /// A user by practice and user name.
    pub async fn find_user(&self, practice: &str, username: &str) -> AppResult<Option<UserRow>> {
        let row = sqlx::query(
            "SELECT id, practice_id, role, password_hash, totp_secret, disabled_at FROM users
             WHERE practice_id = $1 AND username = $2",
        )
        .bind(practice)
        .bind(username)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| {
            let id: String = r.try_get("id")?;
            let totp_secret = self
                .sealer
                .open_text(&totp_context(&id), &r.try_get::<String, _>("totp_secret")?)?;
            Ok(UserRow {
                id,
                practice_id: r.try_get("practice_id")?,
                role: role(&r.try_get::<String, _>("role")?)?,
                password_hash: r.try_get("password_hash")?,
                totp_secret,
                disabled: r.try_get::<Option<i64>, _>("disabled_at")?.is_some(),
            })
        })
        .transpose()
    }

    /// Disables a user of the practice (a leaver, a suspension): their
    /// login is refused and every device of theirs revoked, in one
    /// transaction. Returns the devices it revoked.
    pub async fn disable_user(&self, practice: &str, user: &str) -> AppResult<Vec<String>> {
        let mut w = self.begin_write().await?;
        let now = now_ms();
        let changed = sqlx::query(
            "UPDATE users SET disabled_at = COALESCE(disabled_at, $1) WHERE id = $2 AND practice_id = $3",
        )
        .bind(now)
        .bind(user)
        .bind(practice)
        .execute(&mut *w.tx)
        .await?
        .rows_affected();
        one_user(changed)?;
        let devices: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM devices WHERE user_id = $1 AND revoked_at IS NULL ORDER BY id",
        )
        .bind(user)
        .fetch_all(&mut *w.tx)
        .await?;
        sqlx::query("UPDATE devices SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(user)
            .execute(&mut *w.tx)
            .await?;
        // Their devices are woken no more.
        sqlx::query("DELETE FROM push_tokens WHERE device_id IN (SELECT id FROM devices WHERE user_id = $1)")
            .bind(user)
            .execute(&mut *w.tx)
            .await?;
        // A pending enrolment code would let them in again.
        sqlx::query("DELETE FROM enrolment_codes WHERE user_id = $1")
            .bind(user)
            .execute(&mut *w.tx)
            .await?;
        w.tx.commit().await?;
        Ok(devices)
    }

    /// Enables a disabled user of the practice again: they log in (on new
    /// devices: the revoked ones stay revoked).
    pub async fn enable_user(&self, practice: &str, user: &str) -> AppResult<()> {
        let changed =
            sqlx::query("UPDATE users SET disabled_at = NULL WHERE id = $1 AND practice_id = $2")
                .bind(user)
                .bind(practice)
                .execute(self.pool())
                .await?
                .rows_affected();
        one_user(changed)
    }

    /// A user's id by practice and user name.
    pub async fn user_id(&self, practice: &str, username: &str) -> AppResult<String> {
        sqlx::query_scalar("SELECT id FROM users WHERE practice_id = $1 AND username = $2")
            .bind(practice)
            .bind(username)
            .fetch_optional(self.pool())
            .await?
            .ok_or(AppError::NotFound("user"))
    }

    /// Sets (or clears) the huisarts a user works for. The huisarts must be
    /// an enabled huisarts of the same practice, and not the user.
    pub async fn set_on_behalf_of(
        &self,
        practice: &str,
        user: &str,
        huisarts: Option<&str>,
    ) -> AppResult<()> {
        if let Some(h) = huisarts {
            if h == user {
                return Err(AppError::Invalid("a user works for themselves".into()));
            }
            let row = sqlx::query(
                "SELECT role, disabled_at FROM users WHERE practice_id = $1 AND id = $2",
            )
            .bind(practice)
            .bind(h)
            .fetch_optional(self.pool())
            .await?
            .ok_or(AppError::NotFound("user"))?;
            if role(&row.try_get::<String, _>("role")?)? != Role::Huisarts
                || row.try_get::<Option<i64>, _>("disabled_at")?.is_some()
            {
                return Err(AppError::Invalid(
                    "on behalf of: an enabled huisarts of the practice".into(),
                ));
            }
        }
        let changed =
            sqlx::query("UPDATE users SET on_behalf_of = $1 WHERE practice_id = $2 AND id = $3")
                .bind(huisarts)
                .bind(practice)
                .bind(user)
                .execute(self.pool())
                .await?
                .rows_affected();
        one_user(changed)
    }

    /// Sets a user's professional registrations (checked by the caller).
    pub async fn set_registrations(
        &self,
        practice: &str,
        user: &str,
        registrations: &pieper_wire::Registrations,
    ) -> AppResult<()> {
        let changed = sqlx::query(
            "UPDATE users SET agb = $1, big = $2, uzi = $3 WHERE practice_id = $4 AND id = $5",
        )
        .bind(registrations.agb.as_deref())
        .bind(registrations.big.as_deref())
        .bind(registrations.uzi.as_deref())
        .bind(practice)
        .bind(user)
        .execute(self.pool())
        .await?
        .rows_affected();
        one_user(changed)
    }

    /// A user's professional registrations, for their certificates.
    pub async fn registrations(&self, user: &str) -> AppResult<pieper_wire::Registrations> {
        let row = sqlx::query("SELECT agb, big, uzi FROM users WHERE id = $1")
            .bind(user)
            .fetch_optional(self.pool())
            .await?
            .ok_or(AppError::NotFound("user"))?;
        registrations_of(&row)
    }

    /// The practice's staff.
    pub async fn list_users(&self, practice: &str) -> AppResult<Vec<UserInfo>> {
        let rows = sqlx::query(
            "SELECT id, username, display_name, role, disabled_at, on_behalf_of, agb, big, uzi
             FROM users WHERE practice_id = $1 ORDER BY username",
        )
        .bind(practice)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(UserInfo {
                    id: r.try_get("id")?,
                    username: r.try_get("username")?,
                    display_name: r.try_get("display_name")?,
                    role: role(&r.try_get::<String, _>("role")?)?,
                    disabled: r.try_get::<Option<i64>, _>("disabled_at")?.is_some(),
                    on_behalf_of: r.try_get("on_behalf_of")?,
                    registrations: registrations_of(r)?,
                })
            })
            .collect()
    }

    /// Records that TOTP time step `step` was used; `false` if it was used
    /// `uses_per_step` times already, or a later step was, so a code works
    /// once (a test server may allow a step twice: see the settings).
    pub async fn consume_totp_step(
        &self,
        user_id: &str,
        step: i64,
        uses_per_step: u32,
    ) -> AppResult<bool> {
        // SET reads the row as it was, so the count restarts on a new step.
        let done = sqlx::query(
            "UPDATE users SET
                 totp_step_uses = CASE WHEN last_totp_step = $1 THEN totp_step_uses + 1 ELSE 1 END,
                 last_totp_step = $1
             WHERE id = $2
               AND (last_totp_step < $1 OR (last_totp_step = $1 AND totp_step_uses < $3))",
        )
        .bind(step)
        .bind(user_id)
        .bind(i64::from(uses_per_step))
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Enrols a device; returns its id.
    pub async fn create_device(
        &self,
        user: &UserRow,
        name: &str,
        token_hash: &str,
    ) -> AppResult<String> {
        let id = uuid::Uuid::new_v4().to_string();
        // Counted and added in one write: parallel logins cannot pass the
        // practice's limit together.
        let mut w = self.begin_write().await?;
        let (held, limit): (i64, i64) = {
            let row = sqlx::query(
                "SELECT (SELECT COUNT(*) FROM devices WHERE user_id = $1 AND revoked_at IS NULL) AS held,
                        devices_per_user FROM practices WHERE id = $2",
            )
            .bind(&user.id)
            .bind(&user.practice_id)
            .fetch_one(&mut *w.tx)
            .await?;
            (row.try_get("held")?, row.try_get("devices_per_user")?)
        };
        if held >= limit {
            return Err(AppError::DeviceLimit);
        }
        sqlx::query(
            "INSERT INTO devices (id, user_id, practice_id, name, token_hash, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(&user.id)
        .bind(&user.practice_id)
        .bind(name)
        .bind(token_hash)
        .bind(now_ms())
        .execute(&mut *w.tx)
        .await?;
        w.tx.commit().await?;
        Ok(id)
    }

    /// The practice's certificate authority, made on first use. Two servers
    /// making it at once: the first insert wins, both use that one.
    pub async fn authority(&self, practice: &str) -> AppResult<Authority> {
        if let Some(found) = self.find_authority(practice).await? {
            return Ok(found);
        }
        let made = Authority::generate(practice)?;
        sqlx::query(
            "INSERT INTO practice_authorities (practice_id, key_der, certificate, created_at)
             VALUES ($1, $2, $3, $4) ON CONFLICT (practice_id) DO NOTHING",
        )
        .bind(practice)
        .bind(
            self.sealer
                .seal(&authority_context(practice), &made.key_der)?
                .into_bytes(),
        )
        .bind(&made.certificate)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        self.find_authority(practice)
            .await?
            .ok_or_else(|| AppError::Internal("practice authority not stored".into()))
    }

    async fn find_authority(&self, practice: &str) -> AppResult<Option<Authority>> {
        let row = sqlx::query(
            "SELECT key_der, certificate FROM practice_authorities WHERE practice_id = $1",
        )
        .bind(practice)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| {
            Ok(Authority {
                practice: practice.to_owned(),
                key_der: self
                    .sealer
                    .open_bytes(&authority_context(practice), &r.get::<Vec<u8>, _>(0))?,
                certificate: r.get(1),
            })
        })
        .transpose()
    }

    /// Records the signature key certified for a device, and its
    /// certificate.
    pub async fn set_device_certificate(
        &self,
        device: &str,
        signature_key: &[u8],
        certificate: &[u8],
    ) -> AppResult<()> {
        sqlx::query("UPDATE devices SET signature_key = $1, certificate = $2 WHERE id = $3")
            .bind(signature_key)
            .bind(certificate)
            .bind(device)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The signature key a device was certified for at enrolment.
    pub async fn device_signature_key(&self, device: &str) -> AppResult<Option<Vec<u8>>> {
        Ok(
            sqlx::query_scalar("SELECT signature_key FROM devices WHERE id = $1")
                .bind(device)
                .fetch_optional(self.pool())
                .await?
                .flatten(),
        )
    }

    /// Changes a user's role; their devices' certificates name it once they
    /// renew them.
    pub async fn set_role(&self, practice: &str, user: &str, role: Role) -> AppResult<()> {
        let changed = sqlx::query("UPDATE users SET role = $1 WHERE id = $2 AND practice_id = $3")
            .bind(role.as_str())
            .bind(user)
            .bind(practice)
            .execute(self.pool())
            .await?
            .rows_affected();
        one_user(changed)
    }

    /// Records that `by` vouched for `device`, and how.
    pub async fn approve_device(
        &self,
        device: &str,
        by: &str,
        kind: pieper_wire::ApprovalKind,
        signature: &[u8],
    ) -> AppResult<()> {
        sqlx::query(
            "UPDATE devices SET approved_by = $1, approval_kind = $2, approval = $3 WHERE id = $4",
        )
        .bind(by)
        .bind(approval_kind_name(kind))
        .bind(signature)
        .bind(device)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// How a device was approved, if it was.
    pub async fn approval(&self, device: &str) -> AppResult<Option<pieper_wire::Approval>> {
        let row = sqlx::query(
            "SELECT approved_by, approval_kind, approval FROM devices WHERE id = $1 AND approved_by IS NOT NULL",
        )
        .bind(device)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| {
            Ok(pieper_wire::Approval {
                by_device: r.try_get("approved_by")?,
                kind: match r.try_get::<Option<String>, _>("approval_kind")?.as_deref() {
                    Some("recovery") => pieper_wire::ApprovalKind::Recovery,
                    Some("reset") => pieper_wire::ApprovalKind::Reset,
                    _ => pieper_wire::ApprovalKind::Own,
                },
                signature: r.try_get::<Vec<u8>, _>("approval")?.into(),
            })
        })
        .transpose()
    }

    /// The device a token hash belongs to.
    pub async fn device_by_token_hash(&self, token_hash: &str) -> AppResult<Option<DeviceRow>> {
        let row = sqlx::query(
            "SELECT d.id, d.user_id, d.practice_id, d.revoked_at, u.role, u.on_behalf_of
             FROM devices d JOIN users u ON u.id = d.user_id WHERE d.token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| {
            let role = role(&r.try_get::<String, _>("role")?)?;
            let practice_id: String = r.try_get("practice_id")?;
            Ok(DeviceRow {
                id: r.try_get("id")?,
                user_id: r.try_get("user_id")?,
                on_behalf_of: if role == Role::Connector {
                    Some(format!("practice:{practice_id}"))
                } else {
                    r.try_get("on_behalf_of")?
                },
                practice_id,
                revoked_at: r.try_get("revoked_at")?,
                role,
            })
        })
        .transpose()
    }

    /// A device's certificate and MLS signature key, as enrolment or the
    /// last renewal stored them.
    pub async fn device_keys(&self, device: &str) -> AppResult<(Vec<u8>, Vec<u8>)> {
        let row = sqlx::query("SELECT certificate, signature_key FROM devices WHERE id = $1")
            .bind(device)
            .fetch_optional(self.pool())
            .await?
            .ok_or(AppError::NotFound("device"))?;
        match (
            row.try_get::<Option<Vec<u8>>, _>("certificate")?,
            row.try_get::<Option<Vec<u8>>, _>("signature_key")?,
        ) {
            (Some(certificate), Some(key)) => Ok((certificate, key)),
            _ => Err(AppError::Invalid(
                "this device has no certificate: sign in again".into(),
            )),
        }
    }

    /// Devices of a practice, or of one user in it.
    pub async fn list_devices(
        &self,
        practice: &str,
        user: Option<&str>,
    ) -> AppResult<Vec<DeviceInfo>> {
        let rows = sqlx::query(
            "SELECT id, user_id, name, created_at, revoked_at, certificate, approved_by FROM devices
             WHERE practice_id = $1 AND ($2 IS NULL OR user_id = $2) ORDER BY created_at, id",
        )
        .bind(practice)
        .bind(user)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(DeviceInfo {
                    id: r.try_get("id")?,
                    user_id: r.try_get("user_id")?,
                    name: r.try_get("name")?,
                    created_at: r.try_get("created_at")?,
                    revoked_at: r.try_get("revoked_at")?,
                    certificate: r
                        .try_get::<Option<Vec<u8>>, _>("certificate")?
                        .map(Into::into),
                    approved_by: r.try_get("approved_by")?,
                })
            })
            .collect()
    }

    /// A device of the practice, by id.
    pub async fn device_in_practice(
        &self,
        practice: &str,
        id: &str,
    ) -> AppResult<Option<DeviceInfo>> {
        Ok(self
            .list_devices(practice, None)
            .await?
            .into_iter()
            .find(|d| d.id == id))
    }

    /// Whether a device is revoked (or unknown).
    pub async fn is_revoked(&self, id: &str) -> AppResult<bool> {
        let row = sqlx::query("SELECT revoked_at FROM devices WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        Ok(match row {
            Some(r) => r.try_get::<Option<i64>, _>("revoked_at")?.is_some(),
            None => true,
        })
    }

    /// Revokes a device: its token stops working at once.
    pub async fn revoke_device(&self, id: &str) -> AppResult<()> {
        let mut w = self.begin_write().await?;
        sqlx::query("UPDATE devices SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now_ms())
            .bind(id)
            .execute(&mut *w.tx)
            .await?;
        // A revoked device is woken no more.
        sqlx::query("DELETE FROM push_tokens WHERE device_id = $1")
            .bind(id)
            .execute(&mut *w.tx)
            .await?;
        w.tx.commit().await?;
        Ok(())
    }

    /// Stores a device's KeyPackages; a new last-resort one replaces the old,
    /// and with `replace` the new one-time ones replace the unclaimed. A
    /// device holds at most `max_held` one-time packages.
    pub async fn add_key_packages(
        &self,
        device: &str,
        key_packages: &[Vec<u8>],
        last_resort: Option<&[u8]>,
        replace: bool,
        max_held: u64,
    ) -> AppResult<()> {
        let mut w = self.begin_write().await?;
        if replace {
            sqlx::query("DELETE FROM key_packages WHERE device_id = $1 AND last_resort = 0")
                .bind(device)
                .execute(&mut *w.tx)
                .await?;
        }
        let held = one_time_key_packages(&mut w.tx, device).await?;
        if held + key_packages.len() as u64 > max_held {
            return Err(AppError::Invalid(format!(
                "a device holds at most {max_held} one-time KeyPackages ({held} held)"
            )));
        }
        for kp in key_packages {
            sqlx::query(
                "INSERT INTO key_packages (device_id, data, last_resort) VALUES ($1, $2, 0)",
            )
            .bind(device)
            .bind(kp.as_slice())
            .execute(&mut *w.tx)
            .await?;
        }
        if let Some(kp) = last_resort {
            sqlx::query("DELETE FROM key_packages WHERE device_id = $1 AND last_resort = 1")
                .bind(device)
                .execute(&mut *w.tx)
                .await?;
            sqlx::query(
                "INSERT INTO key_packages (device_id, data, last_resort) VALUES ($1, $2, 1)",
            )
            .bind(device)
            .bind(kp)
            .execute(&mut *w.tx)
            .await?;
        }
        w.tx.commit().await?;
        Ok(())
    }

    /// How many one-time KeyPackages the server holds for `device`.
    pub async fn key_package_count(&self, device: &str) -> AppResult<u64> {
        let mut conn = self.pool().acquire().await?;
        one_time_key_packages(&mut conn, device).await
    }

    /// Claims one KeyPackage of every active device of `users` (all in
    /// `practice`): a one-time package, which is then gone, or else the
    /// last-resort one, which stays. Returns (device, user, package) and the
    /// devices that had none.
    /// With `missing_from`, only devices not yet in that conversation (of
    /// which `claimant` must be a member) are claimed for, and users without
    /// such devices are skipped.
    pub async fn claim_key_packages(
        &self,
        practice: &str,
        claimant: &str,
        users: &[String],
        missing_from: Option<&str>,
    ) -> AppResult<(Vec<(String, String, Vec<u8>)>, Vec<String>)> {
        let mut w = self.begin_write().await?;
        if let Some(conversation) = missing_from {
            let known = sqlx::query(
                "SELECT 1 AS one FROM conversations WHERE id = $1 AND practice_id = $2",
            )
            .bind(conversation)
            .bind(practice)
            .fetch_optional(&mut *w.tx)
            .await?
            .is_some();
            if !known || !super::delivery::is_member(&mut *w.tx, conversation, claimant).await? {
                return Err(AppError::NotFound("conversation"));
            }
        }
        let mut claimed = Vec::new();
        let mut exhausted = Vec::new();
        for user in users {
            let devices = sqlx::query(
                "SELECT id FROM devices d WHERE practice_id = $1 AND user_id = $2 AND revoked_at IS NULL
                   AND NOT EXISTS (SELECT 1 FROM memberships m WHERE m.conversation_id = $3
                                   AND m.device_id = d.id AND m.until_position IS NULL)
                 ORDER BY id",
            )
            .bind(practice)
            .bind(user)
            .bind(missing_from.unwrap_or(""))
            .fetch_all(&mut *w.tx)
            .await?;
            if devices.is_empty() && missing_from.is_none() {
                return Err(AppError::NotFound("user"));
            }
            for d in devices {
                let device: String = d.try_get("id")?;
                let kp = sqlx::query(
                    "SELECT id, data, last_resort FROM key_packages WHERE device_id = $1
                     ORDER BY last_resort, id LIMIT 1",
                )
                .bind(&device)
                .fetch_optional(&mut *w.tx)
                .await?;
                let Some(kp) = kp else {
                    exhausted.push(device);
                    continue;
                };
                if kp.try_get::<i64, _>("last_resort")? == 0 {
                    sqlx::query("DELETE FROM key_packages WHERE id = $1")
                        .bind(kp.try_get::<i64, _>("id")?)
                        .execute(&mut *w.tx)
                        .await?;
                }
                claimed.push((device, user.clone(), kp.try_get("data")?));
            }
        }
        w.tx.commit().await?;
        Ok((claimed, exhausted))
    }

    /// Seals the TOTP secrets and authority keys stored before sealing;
    /// each only if it is still as read (processes starting together seal
    /// it once).
    pub(crate) async fn seal_plaintext_secrets(&self) -> AppResult<()> {
        let users = sqlx::query(
            "SELECT id, totp_secret FROM users WHERE totp_secret NOT LIKE 'sealed:v1:%'",
        )
        .fetch_all(self.pool())
        .await?;
        for row in users {
            let (id, plain): (String, String) = (row.try_get("id")?, row.try_get("totp_secret")?);
            sqlx::query("UPDATE users SET totp_secret = $1 WHERE id = $2 AND totp_secret = $3")
                .bind(self.sealer.seal(&totp_context(&id), plain.as_bytes())?)
                .bind(&id)
                .bind(&plain)
                .execute(self.pool())
                .await?;
        }
        let authorities = sqlx::query("SELECT practice_id, key_der FROM practice_authorities")
            .fetch_all(self.pool())
            .await?;
        for row in authorities {
            let (practice, key): (String, Vec<u8>) =
                (row.try_get("practice_id")?, row.try_get("key_der")?);
            if key.starts_with(crate::secrets::SEALED_PREFIX.as_bytes()) {
                continue;
            }
            sqlx::query(
                "UPDATE practice_authorities SET key_der = $1 WHERE practice_id = $2 AND key_der = $3",
            )
            .bind(
                self.sealer
                    .seal(&authority_context(&practice), &key)?
                    .into_bytes(),
            )
            .bind(&practice)
            .bind(&key)
            .execute(self.pool())
            .await?;
        }
        Ok(())
    }

    /// A user's TOTP secret.
    pub async fn totp_secret(&self, user_id: &str) -> AppResult<String> {
        let stored: String = sqlx::query("SELECT totp_secret FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(self.pool())
            .await?
            .ok_or(AppError::NotFound("user"))?
            .try_get("totp_secret")?;
        self.sealer.open_text(&totp_context(user_id), &stored)
    }

    /// Opens the audit log to a device until `until` (ms).
    pub async fn unlock_audit(&self, device: &str, until: i64) -> AppResult<()> {
        sqlx::query("UPDATE devices SET audit_unlocked_until = $1 WHERE id = $2")
            .bind(until)
            .bind(device)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Whether the audit log is open to the device now.
    pub async fn audit_unlocked(&self, device: &str) -> AppResult<bool> {
        let until: Option<i64> =
            sqlx::query("SELECT audit_unlocked_until FROM devices WHERE id = $1")
                .bind(device)
                .fetch_optional(self.pool())
                .await?
                .map(|r| r.try_get::<Option<i64>, _>("audit_unlocked_until"))
                .transpose()?
                .flatten();
        Ok(until.is_some_and(|u| u > super::now_ms()))
    }

    /// The practice's revoked devices that are still a member somewhere:
    /// the members of those conversations remove them.
    pub async fn revoked_members(&self, practice: &str) -> AppResult<Vec<String>> {
        sqlx::query(
            "SELECT DISTINCT d.id FROM devices d JOIN memberships m ON m.device_id = d.id
             WHERE d.practice_id = $1 AND d.revoked_at IS NOT NULL AND m.until_position IS NULL
             ORDER BY d.id",
        )
        .bind(practice)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| Ok(r.try_get("id")?))
        .collect()
    }

    /// A device's practice and user.
    pub async fn device_owner(&self, device: &str) -> AppResult<Option<(String, String)>> {
        sqlx::query("SELECT practice_id, user_id FROM devices WHERE id = $1")
            .bind(device)
            .fetch_optional(self.pool())
            .await?
            .map(|r| Ok((r.try_get("practice_id")?, r.try_get("user_id")?)))
            .transpose()
    }
}

/// The unclaimed one-time KeyPackages of `device`.
async fn one_time_key_packages(conn: &mut sqlx::AnyConnection, device: &str) -> AppResult<u64> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n FROM key_packages WHERE device_id = $1 AND last_resort = 0",
    )
    .bind(device)
    .fetch_one(conn)
    .await?;
    Ok(row.try_get::<i64, _>("n")?.max(0) as u64)
}

fn approval_kind_name(kind: pieper_wire::ApprovalKind) -> &'static str {
    match kind {
        pieper_wire::ApprovalKind::Own => "own",
        pieper_wire::ApprovalKind::Recovery => "recovery",
        pieper_wire::ApprovalKind::Reset => "reset",
    }
}
