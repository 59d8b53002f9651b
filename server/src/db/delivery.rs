//! Conversations, the envelope log, membership, and blobs.

use pieper_wire::{ConversationInfo, Envelope, EnvelopeKind, Priority, SendRequest, SendResponse};
use sqlx::{Any, Row, any::AnyRow};

use super::{Db, now_ms};
use crate::{
    db::audit::NewAuditEvent,
    error::{AppError, AppResult},
};

fn kind_str(kind: EnvelopeKind) -> &'static str {
    match kind {
        EnvelopeKind::Application => "application",
        EnvelopeKind::Commit => "commit",
        EnvelopeKind::Welcome => "welcome",
    }
}

fn parse_kind(s: &str) -> AppResult<EnvelopeKind> {
    Ok(match s {
        "application" => EnvelopeKind::Application,
        "commit" => EnvelopeKind::Commit,
        "welcome" => EnvelopeKind::Welcome,
        other => return Err(AppError::Internal(format!("stored kind {other:?}"))),
    })
}

fn priority_str(p: Priority) -> &'static str {
    match p {
        Priority::Routine => "routine",
        Priority::Urgent => "urgent",
    }
}

macro_rules! envelope_columns {
    () => {
        "e.position, e.conversation_id, e.seq, e.kind, e.epoch, e.client_id, \
         e.sender_device, e.priority, e.stored_at, e.payload"
    };
}

fn envelope(r: &AnyRow) -> AppResult<Envelope> {
    Ok(Envelope {
        position: r.try_get::<i64, _>("position")? as u64,
        conversation: r.try_get("conversation_id")?,
        seq: r.try_get::<i64, _>("seq")? as u64,
        kind: parse_kind(&r.try_get::<String, _>("kind")?)?,
        epoch: r.try_get::<i64, _>("epoch")? as u64,
        id: r.try_get("client_id")?,
        sender_device: r.try_get("sender_device")?,
        priority: if r.try_get::<String, _>("priority")? == "urgent" {
            Priority::Urgent
        } else {
            Priority::Routine
        },
        stored_at: r.try_get("stored_at")?,
        payload: r.try_get::<Vec<u8>, _>("payload")?.into(),
    })
}

/// What a stored envelope needs for live delivery.
pub struct Stored {
    /// The answer to the sender.
    pub response: SendResponse,
    /// Envelopes to fan out and the devices each goes to (empty for a resend).
    pub deliveries: Vec<(Envelope, Vec<String>)>,
    /// The conversation's declared patient, for the audit trail.
    pub patient: Option<String>,
}

/// Checks a send request on its own, before any database work.
fn check_send(req: &SendRequest) -> AppResult<()> {
    if req.kind == EnvelopeKind::Welcome {
        return Err(AppError::Invalid(
            "a Welcome travels with its commit".into(),
        ));
    }
    if req.kind == EnvelopeKind::Application
        && (req.welcome.is_some() || !req.add_devices.is_empty() || !req.remove_devices.is_empty())
    {
        return Err(AppError::Invalid("only a commit changes members".into()));
    }
    if req.welcome.is_some() == req.add_devices.is_empty() {
        return Err(AppError::Invalid(
            "a Welcome goes with added devices, and only then".into(),
        ));
    }
    if req.expires_at.is_some() && req.kind != EnvelopeKind::Application {
        return Err(AppError::Invalid("only a message can expire".into()));
    }
    Ok(())
}

/// Grace for a sender's clock and the time a message waited in its outbox.
const TTL_GRACE_MS: i64 = 10 * 60 * 1000;

/// Holds a message to the practice's rule for disappearing messages.
async fn check_ttl(
    tx: &mut sqlx::Transaction<'static, Any>,
    practice: &str,
    req: &SendRequest,
    now: i64,
) -> AppResult<()> {
    if req.kind != EnvelopeKind::Application {
        return Ok(());
    }
    let row = sqlx::query("SELECT ttl_policy, ttl_secs FROM practices WHERE id = $1")
        .bind(practice)
        .fetch_one(&mut **tx)
        .await?;
    let policy: String = row.try_get("ttl_policy")?;
    let ttl_secs: Option<i64> = row.try_get("ttl_secs")?;
    match (policy.as_str(), req.expires_at) {
        ("forbidden", Some(_)) => Err(AppError::Invalid(
            "the practice does not allow disappearing messages".into(),
        )),
        // Silent envelopes (receipts, practice data) are not messages.
        ("enforced", expires) if !req.silent => {
            let limit = now + ttl_secs.unwrap_or(0).saturating_mul(1000) + TTL_GRACE_MS;
            match expires {
                Some(at) if at <= limit => Ok(()),
                _ => Err(AppError::Invalid(
                    "the practice makes every message disappear: set its time-to-live".into(),
                )),
            }
        }
        _ => Ok(()),
    }
}

/// A conversation's row.
struct ConversationRow {
    epoch: i64,
    next_seq: i64,
    patient: Option<String>,
}

async fn conversation_row(
    tx: &mut sqlx::Transaction<'static, Any>,
    practice: &str,
    id: &str,
) -> AppResult<ConversationRow> {
    // Another practice's conversation is "not found": its existence does not leak.
    let row = sqlx::query(
        "SELECT epoch, next_seq, patient FROM conversations WHERE id = $1 AND practice_id = $2",
    )
    .bind(id)
    .bind(practice)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(AppError::NotFound("conversation"))?;
    Ok(ConversationRow {
        epoch: row.try_get("epoch")?,
        next_seq: row.try_get("next_seq")?,
        patient: row.try_get("patient")?,
    })
}

pub(crate) async fn is_member(
    executor: impl sqlx::Executor<'_, Database = Any>,
    conversation: &str,
    device: &str,
) -> AppResult<bool> {
    Ok(sqlx::query(
        "SELECT 1 AS one FROM memberships WHERE conversation_id = $1 AND device_id = $2 AND until_position IS NULL",
    )
    .bind(conversation)
    .bind(device)
    .fetch_optional(executor)
    .await?
    .is_some())
}

impl Db {
    /// Registers a conversation with its creating device (of `user`) as the
    /// only member. A well-known group that exists already is a conflict
    /// when one of the caller's practice (or, a personal group, of the
    /// caller) made it: a member will add the caller. Made by anyone else
    /// (before the server checked who makes one), it is never the caller's
    /// to wait for: [`AppError::NotYours`], and the practice's audit log
    /// and the server's log say so.
    pub async fn create_conversation(
        &self,
        practice: &str,
        user: &str,
        device: &str,
        id: &str,
    ) -> AppResult<()> {
        let mut w = self.begin_write().await?;
        let existing = sqlx::query(
            "SELECT c.practice_id, d.user_id FROM conversations c
             LEFT JOIN memberships m ON m.conversation_id = c.id
              AND m.from_position = (SELECT MIN(from_position) FROM memberships WHERE conversation_id = c.id)
             LEFT JOIN devices d ON d.id = m.device_id
             WHERE c.id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *w.tx)
        .await?;
        if let Some(existing) = existing {
            let Some(which) = pieper_wire::KnownGroup::claimed_by(id) else {
                return Err(AppError::Conflict("conversation"));
            };
            let holder_practice: String = existing.try_get("practice_id")?;
            let holder_user: Option<String> = existing.try_get("user_id")?;
            let ours = holder_practice == practice
                && (which != pieper_wire::KnownGroup::Personal
                    || holder_user.as_deref() == Some(user));
            if ours {
                return Err(AppError::Conflict("conversation"));
            }
            drop(w);
            tracing::error!(
                id,
                practice,
                holder_practice,
                "a well-known group held by someone else"
            );
            self.audit(NewAuditEvent {
                practice_id: practice.to_owned(),
                user_id: Some(user.to_owned()),
                device_id: Some(device.to_owned()),
                action: "conversation.held_elsewhere",
                outcome: "alarm",
                detail: Some(format!("conversation={id}")),
                ..NewAuditEvent::default()
            })
            .await?;
            return Err(AppError::NotYours);
        }
        sqlx::query(
            "INSERT INTO conversations (id, practice_id, epoch, next_seq, patient, created_at)
             VALUES ($1, $2, 0, 1, NULL, $3)",
        )
        .bind(id)
        .bind(practice)
        .bind(now_ms())
        .execute(&mut *w.tx)
        .await?;
        let head: i64 = sqlx::query("SELECT COALESCE(MAX(position), 0) AS head FROM envelopes")
            .fetch_one(&mut *w.tx)
            .await?
            .try_get("head")?;
        sqlx::query(
            "INSERT INTO memberships (conversation_id, device_id, from_position) VALUES ($1, $2, $3)",
        )
        .bind(id)
        .bind(device)
        .bind(head)
        .execute(&mut *w.tx)
        .await?;
        w.tx.commit().await?;
        Ok(())
    }

    /// A conversation the device is a member of.
    pub async fn conversation_info(
        &self,
        practice: &str,
        device: &str,
        id: &str,
    ) -> AppResult<ConversationInfo> {
        let row = sqlx::query("SELECT epoch FROM conversations WHERE id = $1 AND practice_id = $2")
            .bind(id)
            .bind(practice)
            .fetch_optional(self.pool())
            .await?
            .ok_or(AppError::NotFound("conversation"))?;
        if !is_member(self.pool(), id, device).await? {
            return Err(AppError::NotFound("conversation"));
        }
        let members = sqlx::query(
            "SELECT device_id FROM memberships WHERE conversation_id = $1 AND until_position IS NULL ORDER BY device_id",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        Ok(ConversationInfo {
            id: id.to_owned(),
            epoch: row.try_get::<i64, _>("epoch")? as u64,
            member_devices: members
                .iter()
                .map(|r| r.try_get("device_id"))
                .collect::<Result<_, _>>()?,
        })
    }

    /// Stores an envelope from a member device inside `tx` (with its audit
    /// event). A commit must be for the conversation's current epoch (one
    /// commit per epoch); a resend with the same id gets the first answer and
    /// is stored once. The caller commits (see [`crate::writer`]).
    #[allow(clippy::too_many_arguments)]
    pub async fn store_envelope_in(
        &self,
        tx: &mut sqlx::Transaction<'static, Any>,
        practice: &str,
        sender: &str,
        conversation: &str,
        req: &SendRequest,
        audit: NewAuditEvent,
        instance: &str,
    ) -> AppResult<Stored> {
        check_send(req)?;
        let conv = conversation_row(tx, practice, conversation).await?;
        if !is_member(&mut **tx, conversation, sender).await? {
            return Err(AppError::NotFound("conversation"));
        }

        // A resend: the same answer, nothing stored again.
        let previous = sqlx::query(
            "SELECT position, seq FROM envelopes
             WHERE conversation_id = $1 AND client_id = $2 AND kind = $3 AND recipient_device IS NULL",
        )
        .bind(conversation)
        .bind(&req.id)
        .bind(kind_str(req.kind))
        .fetch_optional(&mut **tx)
        .await?;
        if let Some(p) = previous {
            return Ok(Stored {
                response: SendResponse {
                    seq: p.try_get::<i64, _>("seq")? as u64,
                    position: p.try_get::<i64, _>("position")? as u64,
                },
                deliveries: Vec::new(),
                patient: conv.patient,
            });
        }

        let epoch = req.epoch as i64;
        match req.kind {
            EnvelopeKind::Commit if epoch != conv.epoch => {
                return Err(AppError::StaleEpoch {
                    current: conv.epoch as u64,
                });
            }
            EnvelopeKind::Application if epoch > conv.epoch => {
                return Err(AppError::Invalid(format!(
                    "epoch {epoch} is ahead of the conversation's {}",
                    conv.epoch
                )));
            }
            _ => {}
        }
        // Devices come from this practice; only active ones can be added (a
        // revoked device may still be removed).
        for (device, adding) in req
            .add_devices
            .iter()
            .map(|d| (d, true))
            .chain(req.remove_devices.iter().map(|d| (d, false)))
        {
            let ok = sqlx::query(
                "SELECT 1 AS one FROM devices WHERE id = $1 AND practice_id = $2
                 AND ($3 = 0 OR revoked_at IS NULL)",
            )
            .bind(device)
            .bind(practice)
            .bind(i64::from(adding))
            .fetch_optional(&mut **tx)
            .await?;
            if ok.is_none() {
                return Err(AppError::NotFound("device"));
            }
        }

        let seq = conv.next_seq;
        let stored_at = now_ms();
        check_ttl(tx, practice, req, stored_at).await?;
        let position = insert_envelope(
            tx,
            conversation,
            seq,
            req,
            sender,
            None,
            &req.payload.0,
            stored_at,
        )
        .await?;
        let mut new_epoch = conv.epoch;
        if req.kind == EnvelopeKind::Commit {
            new_epoch += 1;
            for device in &req.remove_devices {
                sqlx::query(
                    "UPDATE memberships SET until_position = $1
                     WHERE conversation_id = $2 AND device_id = $3 AND until_position IS NULL",
                )
                .bind(position)
                .bind(conversation)
                .bind(device)
                .execute(&mut **tx)
                .await?;
            }
        }
        sqlx::query("UPDATE conversations SET epoch = $1, next_seq = $2, patient = COALESCE($3, patient) WHERE id = $4")
            .bind(new_epoch)
            .bind(seq + 1)
            .bind(req.patient.as_deref())
            .bind(conversation)
            .execute(&mut **tx)
            .await?;

        let recipients = recipients(tx, conversation, position, sender).await?;
        let mut deliveries = vec![(
            Envelope {
                position: position as u64,
                conversation: conversation.to_owned(),
                seq: seq as u64,
                kind: req.kind,
                epoch: req.epoch,
                id: req.id.clone(),
                sender_device: sender.to_owned(),
                priority: req.priority,
                stored_at,
                payload: req.payload.clone(),
            },
            recipients,
        )];

        if let Some(welcome) = &req.welcome {
            for device in &req.add_devices {
                let welcome_position = insert_envelope(
                    tx,
                    conversation,
                    seq,
                    req,
                    sender,
                    Some(device),
                    &welcome.0,
                    stored_at,
                )
                .await?;
                // Members from the commit on: the Welcome and what follows.
                sqlx::query(
                    "INSERT INTO memberships (conversation_id, device_id, from_position) VALUES ($1, $2, $3)",
                )
                .bind(conversation)
                .bind(device)
                .bind(position)
                .execute(&mut **tx)
                .await?;
                // Added again: a heal request of the device is answered.
                sqlx::query(
                    "DELETE FROM heal_requests WHERE conversation_id = $1 AND device_id = $2",
                )
                .bind(conversation)
                .bind(device)
                .execute(&mut **tx)
                .await?;
                deliveries.push((
                    Envelope {
                        position: welcome_position as u64,
                        conversation: conversation.to_owned(),
                        seq: seq as u64,
                        kind: EnvelopeKind::Welcome,
                        epoch: req.epoch,
                        id: req.id.clone(),
                        sender_device: sender.to_owned(),
                        priority: req.priority,
                        stored_at,
                        payload: welcome.clone(),
                    },
                    vec![device.clone()],
                ));
            }
        }

        // Only a message a person sends is an access to the patient's data.
        let about_patient = audit.action == "message.send";
        let audit = NewAuditEvent {
            patient: about_patient
                .then(|| req.patient.clone().or(conv.patient.clone()))
                .flatten(),
            detail: Some(format!(
                "conversation={conversation} seq={seq} kind={}",
                kind_str(req.kind)
            )),
            ..audit
        };
        audit.insert(tx).await?;
        if self.backend() == super::Backend::Postgres {
            // Other instances deliver to the devices connected to them.
            sqlx::query("SELECT pg_notify('pieper_envelopes', $1)")
                .bind(format!("{instance}:{position}:{}", deliveries.len()))
                .execute(&mut **tx)
                .await?;
        }
        Ok(Stored {
            response: SendResponse {
                seq: seq as u64,
                position: position as u64,
            },
            deliveries,
            patient: audit.patient,
        })
    }

    /// The envelopes at `position` and after it that one store produced
    /// (`count` of them: the envelope and its Welcomes), with recipients.
    pub async fn deliveries_at(
        &self,
        position: i64,
        count: i64,
    ) -> AppResult<Vec<(Envelope, Vec<String>)>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            envelope_columns!(),
            ", e.recipient_device FROM envelopes e
             WHERE e.position >= $1 ORDER BY e.position LIMIT $2"
        ))
        .bind(position)
        .bind(count)
        .fetch_all(self.pool())
        .await?;
        let mut out = Vec::new();
        let mut tx = self.pool().begin().await?;
        for r in &rows {
            let e = envelope(r)?;
            let to = match r.try_get::<Option<String>, _>("recipient_device")? {
                Some(device) => vec![device],
                None => {
                    recipients(
                        &mut tx,
                        &e.conversation,
                        e.position as i64,
                        &e.sender_device,
                    )
                    .await?
                }
            };
            out.push((e, to));
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Envelopes for `device` after `after`, in server order.
    pub async fn envelopes_after(
        &self,
        device: &str,
        after: u64,
        limit: u32,
        max_bytes: usize,
    ) -> AppResult<(Vec<Envelope>, bool)> {
        use futures_util::TryStreamExt;
        let mut rows = sqlx::query(concat!(
            "SELECT ",
            envelope_columns!(),
            " FROM envelopes e
             WHERE e.position > $1 AND e.sender_device <> $2 AND (
               e.recipient_device = $2 OR (e.recipient_device IS NULL AND EXISTS (
                 SELECT 1 FROM memberships m WHERE m.conversation_id = e.conversation_id AND m.device_id = $2
                   AND e.position > m.from_position
                   AND (m.until_position IS NULL OR e.position <= m.until_position))))
             ORDER BY e.position LIMIT $3"
        ))
        .bind(after as i64)
        .bind(device)
        .bind(i64::from(limit) + 1)
        .fetch(self.pool());
        // Row by row, so a page of large envelopes is never all in memory
        // at once; it ends at `limit` envelopes or `max_bytes` of payload.
        let (mut envelopes, mut bytes) = (Vec::new(), 0usize);
        while let Some(row) = rows.try_next().await? {
            let next = envelope(&row)?;
            bytes = bytes.saturating_add(next.payload.0.len());
            if envelopes.len() == limit as usize || (!envelopes.is_empty() && bytes > max_bytes) {
                return Ok((envelopes, true));
            }
            envelopes.push(next);
        }
        Ok((envelopes, false))
    }

    /// The patients declared for these conversations (for the audit trail).
    pub async fn patient_of(&self, conversation: &str) -> AppResult<Option<String>> {
        Ok(
            sqlx::query("SELECT patient FROM conversations WHERE id = $1")
                .bind(conversation)
                .fetch_optional(self.pool())
                .await?
                .map(|r| r.try_get::<Option<String>, _>("patient"))
                .transpose()?
                .flatten(),
        )
    }

    /// Records how far a device has everything.
    pub async fn ack(&self, device: &str, position: u64) -> AppResult<()> {
        sqlx::query("UPDATE devices SET acked_position = $1 WHERE id = $2 AND acked_position < $1")
            .bind(position as i64)
            .bind(device)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Stores a sealed attachment for a conversation the device is in.
    pub async fn store_blob(
        &self,
        practice: &str,
        device: &str,
        conversation: &str,
        data: &[u8],
        expires_at: Option<i64>,
        quota: u64,
    ) -> AppResult<String> {
        let mut w = self.begin_write().await?;
        conversation_row(&mut w.tx, practice, conversation).await?;
        if !is_member(&mut *w.tx, conversation, device).await? {
            return Err(AppError::NotFound("conversation"));
        }
        // Read and added in one write: parallel uploads cannot pass the
        // practice's quota together. The running total is the database's
        // (triggers on blobs, migration 020).
        let held: i64 = sqlx::query("SELECT blob_bytes FROM practices WHERE id = $1")
            .bind(practice)
            .fetch_optional(&mut *w.tx)
            .await?
            .map(|r| r.try_get("blob_bytes"))
            .transpose()?
            .unwrap_or(0);
        if u64::try_from(held).unwrap_or(0) + data.len() as u64 > quota {
            return Err(AppError::QuotaFull);
        }
        let id = uuid::Uuid::new_v4().to_string();
        sqlx::query(
            "INSERT INTO blobs (id, conversation_id, uploader_device, size, data, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&id)
        .bind(conversation)
        .bind(device)
        .bind(data.len() as i64)
        .bind(data)
        .bind(now_ms())
        .bind(expires_at)
        .execute(&mut *w.tx)
        .await?;
        w.tx.commit().await?;
        Ok(id)
    }

    /// A blob, for a current member of its conversation; with that
    /// conversation's id.
    pub async fn blob(
        &self,
        practice: &str,
        device: &str,
        id: &str,
    ) -> AppResult<(String, Vec<u8>)> {
        let row = sqlx::query(
            "SELECT b.conversation_id, b.data FROM blobs b JOIN conversations c ON c.id = b.conversation_id
             WHERE b.id = $1 AND c.practice_id = $2",
        )
        .bind(id)
        .bind(practice)
        .fetch_optional(self.pool())
        .await?
        .ok_or(AppError::NotFound("blob"))?;
        let conversation: String = row.try_get("conversation_id")?;
        if !is_member(self.pool(), &conversation, device).await? {
            return Err(AppError::NotFound("blob"));
        }
        Ok((conversation, row.try_get("data")?))
    }
}

#[allow(clippy::too_many_arguments)]
async fn insert_envelope(
    tx: &mut sqlx::Transaction<'static, Any>,
    conversation: &str,
    seq: i64,
    req: &SendRequest,
    sender: &str,
    recipient: Option<&str>,
    payload: &[u8],
    stored_at: i64,
) -> AppResult<i64> {
    let kind = if recipient.is_some() {
        EnvelopeKind::Welcome
    } else {
        req.kind
    };
    let row = sqlx::query(
        "INSERT INTO envelopes (conversation_id, seq, client_id, kind, epoch, sender_device,
                                recipient_device, priority, payload, stored_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING position",
    )
    .bind(conversation)
    .bind(seq)
    .bind(&req.id)
    .bind(kind_str(kind))
    .bind(req.epoch as i64)
    .bind(sender)
    .bind(recipient)
    .bind(priority_str(req.priority))
    .bind(payload)
    .bind(stored_at)
    .bind(req.expires_at.filter(|_| recipient.is_none()))
    .fetch_one(&mut **tx)
    .await?;
    Ok(row.try_get("position")?)
}

/// Devices that receive a conversation envelope at `position`, but its sender
/// and revoked devices: a revoked device stays a member until a member's
/// device commits its removal, and its live connection may be held by
/// another process than the one that revoked it (the operator's command).
async fn recipients(
    tx: &mut sqlx::Transaction<'static, Any>,
    conversation: &str,
    position: i64,
    sender: &str,
) -> AppResult<Vec<String>> {
    let rows = sqlx::query(
        "SELECT DISTINCT m.device_id FROM memberships m JOIN devices d ON d.id = m.device_id
         WHERE m.conversation_id = $1 AND m.from_position < $2
           AND (m.until_position IS NULL OR m.until_position >= $2) AND m.device_id <> $3
           AND d.revoked_at IS NULL",
    )
    .bind(conversation)
    .bind(position)
    .bind(sender)
    .fetch_all(&mut **tx)
    .await?;
    rows.iter()
        .map(|r| r.try_get("device_id").map_err(Into::into))
        .collect()
}
