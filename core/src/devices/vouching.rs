//! Devices vouched for by their owner: every device of the practice this
//! device met, and why it accepts it as who its certificate says. The
//! server certifies a device's account, but whoever controls the server can
//! certify a device of its own for any user; so a user's second and later
//! devices are taken in only with an approval that this device can check:
//! by another device of the user, by the user's recovery key, or by a
//! practice manager who reset the user's identity (shown to everyone). The
//! first device of a user this device meets is taken on the server's
//! certificate alone, and shown as such (trust on first use).

use pieper_wire::{Approval, ApprovalKind};
use rusqlite::{Connection, OptionalExtension, params};

use crate::{
    device::Device,
    error::{Error, Result},
    identity::{Certified, check_approval},
    store::queries::now_ms,
};

/// Why this device accepts another device as who its certificate says.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum Trust {
    /// The first device of its user that this device met: taken on the
    /// server's certificate alone (trust on first use).
    FirstUse,
    /// Approved by another device of its user.
    Vouched {
        /// The approving device.
        by_device: String,
    },
    /// Approved with its user's recovery code.
    Recovered,
    /// Its user lost every device and their recovery code; a practice
    /// manager reset the identity. Shown to every member, as a changed
    /// safety number is.
    Reset {
        /// The manager (user id).
        by_user: String,
    },
    /// Brought in by a member with an approval this device could not check
    /// (it never met the approver).
    Introduced {
        /// The member who brought it in (user id).
        by_user: String,
    },
}

impl Trust {
    fn to_row(&self) -> (&'static str, Option<&str>) {
        match self {
            Trust::FirstUse => ("first_use", None),
            Trust::Vouched { by_device } => ("vouched", Some(by_device)),
            Trust::Recovered => ("recovered", None),
            Trust::Reset { by_user } => ("reset", Some(by_user)),
            Trust::Introduced { by_user } => ("introduced", Some(by_user)),
        }
    }

    fn from_row(kind: &str, by: Option<String>) -> Self {
        let by = by.unwrap_or_default();
        match kind {
            "vouched" => Trust::Vouched { by_device: by },
            "recovered" => Trust::Recovered,
            "reset" => Trust::Reset { by_user: by },
            "introduced" => Trust::Introduced { by_user: by },
            _ => Trust::FirstUse,
        }
    }
}

/// A device of the practice this device met.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct KnownDevice {
    /// Its user.
    pub user: String,
    /// The device.
    pub device: String,
    /// Why it is accepted.
    pub trust: Trust,
    /// Since when (ms since the Unix epoch).
    pub since: i64,
    /// Removed from the practice (revoked): it vouches for nobody.
    pub gone: bool,
}

/// A device a commit or a Welcome brings in, as its certificate says.
pub(crate) struct Newcomer {
    pub certified: Certified,
    pub certificate: Vec<u8>,
    pub signature_key: Vec<u8>,
}

/// What this device makes of a newcomer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Met before, with this key.
    Known,
    /// Accepted now, for this reason.
    Accept(Trust),
    /// Approved by a voucher this device never met: it cannot check.
    Unchecked,
    /// A user this device knows, without any approval.
    Unvouched,
}

/// Approvals for the devices a commit adds, carried in the commit's
/// authenticated data: each member checks them itself.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct CommitApprovals {
    pub approvals: Vec<(String, Approval)>,
}

impl CommitApprovals {
    pub(crate) fn to_bytes(&self) -> Result<Vec<u8>> {
        if self.approvals.is_empty() {
            return Ok(Vec::new());
        }
        serde_json::to_vec(self).map_err(|e| Error::internal("commit approvals", e))
    }

    /// What a commit carries: nothing readable is no approval.
    pub(crate) fn from_bytes(bytes: &[u8]) -> Self {
        serde_json::from_slice(bytes).unwrap_or_default()
    }

    pub(crate) fn for_device(&self, device: &str) -> Option<&Approval> {
        self.approvals
            .iter()
            .find(|(d, _)| d == device)
            .map(|(_, a)| a)
    }
}

struct Row {
    signature_key: Vec<u8>,
    manager: bool,
    gone: bool,
}

fn row(conn: &Connection, user: &str, device: &str) -> Result<Option<Row>> {
    Ok(conn
        .query_row(
            "SELECT signature_key, manager, gone FROM known_devices
             WHERE user_id = ?1 AND device_id = ?2",
            params![user, device],
            |r| {
                Ok(Row {
                    signature_key: r.get(0)?,
                    manager: r.get(1)?,
                    gone: r.get(2)?,
                })
            },
        )
        .optional()?)
}

/// A device's row by its id alone (device ids are unique on the server).
fn row_of_device(conn: &Connection, device: &str) -> Result<Option<(String, Row)>> {
    Ok(conn
        .query_row(
            "SELECT user_id, signature_key, manager, gone FROM known_devices WHERE device_id = ?1",
            [device],
            |r| {
                Ok((
                    r.get(0)?,
                    Row {
                        signature_key: r.get(1)?,
                        manager: r.get(2)?,
                        gone: r.get(3)?,
                    },
                ))
            },
        )
        .optional()?)
}

fn knows_user(conn: &Connection, user: &str) -> Result<bool> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM known_devices WHERE user_id = ?1 LIMIT 1",
            [user],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// A user's recovery key, as their device sent it.
fn recovery_key(conn: &Connection, user: &str) -> Result<Option<Vec<u8>>> {
    Ok(conn
        .query_row(
            "SELECT public_key FROM recovery_keys WHERE user_id = ?1",
            [user],
            |r| r.get(0),
        )
        .optional()?)
}

/// Records a user's recovery key (`shared`: it came from the practice
/// group; this user's own waits to be sent).
pub(crate) fn set_recovery_key(
    conn: &Connection,
    user: &str,
    public_key: &[u8],
    shared: bool,
) -> Result<()> {
    conn.execute(
        "INSERT INTO recovery_keys (user_id, public_key, shared) VALUES (?1, ?2, ?3)
         ON CONFLICT (user_id) DO UPDATE SET public_key = ?2, shared = ?3",
        params![user, public_key, shared],
    )?;
    Ok(())
}

/// This user's recovery key if it still waits to be sent; marked sent.
pub(crate) fn take_unshared_recovery_key(conn: &Connection, user: &str) -> Result<Option<Vec<u8>>> {
    let key: Option<Vec<u8>> = conn
        .query_row(
            "SELECT public_key FROM recovery_keys WHERE user_id = ?1 AND shared = 0",
            [user],
            |r| r.get(0),
        )
        .optional()?;
    if key.is_some() {
        conn.execute(
            "UPDATE recovery_keys SET shared = 1 WHERE user_id = ?1",
            [user],
        )?;
    }
    Ok(key)
}

/// Records a newcomer this device accepted; a device met again keeps the
/// reason it was first accepted for, unless it was only introduced.
pub(crate) fn remember(conn: &Connection, newcomer: &Newcomer, trust: &Trust) -> Result<()> {
    let (kind, by) = trust.to_row();
    let manager = newcomer
        .certified
        .roles
        .iter()
        .any(|r| r.manages_practice());
    conn.execute(
        "INSERT INTO known_devices
             (user_id, device_id, signature_key, manager, trust, trusted_by, since)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (user_id, device_id) DO UPDATE SET
             manager = ?4,
             trust = CASE WHEN trust = 'introduced' THEN ?5 ELSE trust END,
             trusted_by = CASE WHEN trust = 'introduced' THEN ?6 ELSE trusted_by END",
        params![
            newcomer.certified.id.user,
            newcomer.certified.id.device,
            newcomer.signature_key,
            manager,
            kind,
            by,
            now_ms()
        ],
    )?;
    Ok(())
}

/// A device the server says was revoked: it vouches for nobody from now
/// on (a server that lies about it can only make fewer vouchers).
pub(crate) fn mark_gone(conn: &Connection, device: &str) -> Result<()> {
    conn.execute(
        "UPDATE known_devices SET gone = 1 WHERE device_id = ?1",
        [device],
    )?;
    Ok(())
}

/// Whether a device left the practice (revoked).
pub(crate) fn is_gone(conn: &Connection, device: &str) -> Result<bool> {
    Ok(row_of_device(conn, device)?.is_some_and(|(_, r)| r.gone))
}

/// Every device this device met, by user.
pub(crate) fn known_devices(conn: &Connection) -> Result<Vec<KnownDevice>> {
    let mut statement = conn.prepare(
        "SELECT user_id, device_id, trust, trusted_by, since, gone FROM known_devices
         ORDER BY user_id, since, device_id",
    )?;
    let rows = statement.query_map([], |r| {
        Ok(KnownDevice {
            user: r.get(0)?,
            device: r.get(1)?,
            trust: Trust::from_row(&r.get::<_, String>(2)?, r.get(3)?),
            since: r.get(4)?,
            gone: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

impl Device {
    /// A device met in a KeyPackage, commit or Welcome: its certificate
    /// must check out.
    pub(crate) fn meet(
        &self,
        credential: &openmls::prelude::Credential,
        signature_key: &[u8],
    ) -> Result<Newcomer> {
        Ok(Newcomer {
            certified: self.certified(credential, signature_key)?,
            certificate: crate::mls::credential_identity(credential)?,
            signature_key: signature_key.to_vec(),
        })
    }

    /// Judges every newcomer against what this device knew before (two
    /// devices of a user met together are both first met), then remembers
    /// those it accepts. `otherwise` decides for one without an approval
    /// this device can check ([`Verdict::Unchecked`] or
    /// [`Verdict::Unvouched`]): the trust to record, or the error that
    /// refuses them all. Returns the identity resets among them: (user,
    /// by manager).
    pub(crate) fn admit(
        &self,
        conn: &Connection,
        newcomers: &[Newcomer],
        approvals: &CommitApprovals,
        otherwise: impl Fn(&Certified, Verdict) -> Result<Trust>,
    ) -> Result<Vec<(String, String)>> {
        let mut accepted = Vec::new();
        for newcomer in newcomers {
            let id = &newcomer.certified.id;
            match self.judge(conn, newcomer, approvals.for_device(&id.device))? {
                Verdict::Known => {}
                Verdict::Accept(trust) => accepted.push((newcomer, trust)),
                verdict => accepted.push((newcomer, otherwise(&newcomer.certified, verdict)?)),
            }
        }
        let mut resets = Vec::new();
        for (newcomer, trust) in &accepted {
            remember(conn, newcomer, trust)?;
            if let Trust::Reset { by_user } = trust {
                resets.push((newcomer.certified.id.user.clone(), by_user.clone()));
            }
        }
        Ok(resets)
    }

    /// What this device makes of `newcomer` with `approval`: a device met
    /// before must keep its key; the first device of a user this device
    /// meets is taken on its certificate; any other needs an approval that
    /// checks out against a voucher this device knows. A forged approval
    /// is [`Error::Untrusted`].
    pub(crate) fn judge(
        &self,
        conn: &Connection,
        newcomer: &Newcomer,
        approval: Option<&Approval>,
    ) -> Result<Verdict> {
        let id = &newcomer.certified.id;
        if *id == self.me {
            return Ok(Verdict::Known);
        }
        if let Some(known) = row(conn, &id.user, &id.device)? {
            return if known.signature_key == newcomer.signature_key {
                Ok(Verdict::Known)
            } else {
                Err(Error::Untrusted {
                    reason: format!(
                        "device {} of {} came back with another key",
                        id.device, id.user
                    ),
                })
            };
        }
        if id.user != self.me.user && !knows_user(conn, &id.user)? {
            return Ok(Verdict::Accept(Trust::FirstUse));
        }
        let Some(approval) = approval else {
            return Ok(Verdict::Unvouched);
        };
        let (voucher_key, trust) = match approval.kind {
            ApprovalKind::Own => {
                let key = if approval.by_device == self.me.device && id.user == self.me.user {
                    Some(self.signer.public().to_vec())
                } else {
                    row(conn, &id.user, &approval.by_device)?
                        .filter(|r| !r.gone)
                        .map(|r| r.signature_key)
                };
                let trust = Trust::Vouched {
                    by_device: approval.by_device.clone(),
                };
                (key, trust)
            }
            ApprovalKind::Recovery => (recovery_key(conn, &id.user)?, Trust::Recovered),
            ApprovalKind::Reset => {
                let voucher = if approval.by_device == self.me.device {
                    self.check_manages_practice()
                        .is_ok()
                        .then(|| (self.me.user.clone(), self.signer.public().to_vec()))
                } else {
                    match row_of_device(conn, &approval.by_device)? {
                        Some((_, r)) if r.gone => None,
                        Some((_, r)) if !r.manager => {
                            return Err(Error::Untrusted {
                                reason: "an identity reset by someone who is no manager".into(),
                            });
                        }
                        Some((user, r)) => Some((user, r.signature_key)),
                        None => None,
                    }
                };
                match voucher {
                    Some((user, _)) if user == id.user => {
                        return Err(Error::Untrusted {
                            reason: "a manager cannot reset their own identity".into(),
                        });
                    }
                    Some((user, key)) => (Some(key), Trust::Reset { by_user: user }),
                    None => return Ok(Verdict::Unchecked),
                }
            }
        };
        let Some(voucher_key) = voucher_key else {
            return Ok(Verdict::Unchecked);
        };
        check_approval(
            approval.kind,
            &newcomer.certificate,
            &approval.signature.0,
            &voucher_key,
        )?;
        Ok(Verdict::Accept(trust))
    }

    /// Every device of the practice this device met, and why it accepts it.
    pub(crate) fn known_devices(&self) -> Result<Vec<KnownDevice>> {
        self.store.read(known_devices)
    }

    /// Keeps this user's recovery key (from the recovery code of a new
    /// backup) to send into the practice group.
    pub(crate) fn set_own_recovery_key(&self, public_key: &[u8]) -> Result<()> {
        self.store
            .write(|tx| set_recovery_key(tx, &self.me.user, public_key, false))
    }

    /// Sends this user's new recovery key into the practice group, once
    /// this device is in it.
    pub(crate) fn share_recovery_key(&self) -> Result<bool> {
        let shared = self.queue_in(crate::device::KnownGroup::Practice, |s, group| {
            let Some(public_key) = take_unshared_recovery_key(s.conn(), &self.me.user)? else {
                return Ok(false);
            };
            let id = uuid::Uuid::new_v4().to_string();
            self.encrypt(
                s,
                group,
                &id,
                &crate::model::Content::RecoveryKey { public_key },
            )?;
            Ok(true)
        })?;
        Ok(shared.unwrap_or_default())
    }

    /// This device's approval of itself by the user's recovery key: the
    /// key's signature over this device's certificate.
    pub(crate) fn recovery_approval(&self, key: &ed25519_dalek::SigningKey) -> Result<Vec<u8>> {
        use ed25519_dalek::Signer as _;
        let certificate = crate::mls::credential_identity(&self.credential().credential)?;
        let content = crate::identity::approval_content(ApprovalKind::Recovery, &certificate)?;
        Ok(key.sign(&content).to_bytes().to_vec())
    }

    /// Marks the devices the server says were revoked: they vouch for
    /// nobody any more.
    pub(crate) fn forget_revoked(&self, devices: &[String]) -> Result<()> {
        self.store.write(|tx| {
            for device in devices {
                mark_gone(tx, device)?;
            }
            Ok(())
        })
    }
}
