//! Group commit for the envelope log. Every send waits in a queue; one writer
//! takes all that wait into a single transaction, each under its own
//! savepoint (a failing envelope is rolled back alone and answered with its
//! error), and commits once: one disk flush for the batch, not one per
//! envelope. Each sender is answered only after the commit, so an envelope
//! is durable before it is acknowledged.

use pieper_wire::SendRequest;
use tokio::sync::{mpsc, oneshot};

use crate::{
    db::{Db, audit::NewAuditEvent, delivery::Stored},
    error::{AppError, AppResult},
};

/// Most envelopes in one transaction.
const MAX_BATCH: usize = 256;

/// One envelope to store.
pub struct Job {
    /// The sender's practice.
    pub practice: String,
    /// The sending device.
    pub sender: String,
    /// The conversation.
    pub conversation: String,
    /// What it sends.
    pub request: SendRequest,
    /// The audit record written with it.
    pub audit: NewAuditEvent,
    reply: oneshot::Sender<AppResult<Stored>>,
}

/// The queue in front of the writer.
#[derive(Clone)]
pub struct Writer {
    queue: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer task for `db`; `instance` names this server in
    /// notifications to other instances.
    pub fn start(db: Db, instance: String) -> Self {
        let (queue, jobs) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(run(db, instance, jobs));
        Self { queue }
    }

    /// Stores an envelope; answers once its batch is committed.
    pub async fn store(
        &self,
        practice: &str,
        sender: &str,
        conversation: &str,
        request: SendRequest,
        audit: NewAuditEvent,
    ) -> AppResult<Stored> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            practice: practice.to_owned(),
            sender: sender.to_owned(),
            conversation: conversation.to_owned(),
            request,
            audit,
            reply,
        };
        self.queue
            .send(job)
            .await
            .map_err(|_| AppError::Internal("the writer stopped".into()))?;
        answer
            .await
            .map_err(|_| AppError::Internal("the writer dropped a job".into()))?
    }
}

async fn run(db: Db, instance: String, mut jobs: mpsc::Receiver<Job>) {
    while let Some(first) = jobs.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let results = match store_batch(&db, &instance, &batch).await {
            Ok(results) => results,
            Err(e) => {
                tracing::error!(error = %e, envelopes = batch.len(), "batch not stored");
                batch
                    .iter()
                    .map(|_| Err(AppError::Internal("the batch was not stored".into())))
                    .collect()
            }
        };
        for (job, result) in batch.into_iter().zip(results) {
            // A sender that gave up waiting is fine: its envelope is stored.
            let _ = job.reply.send(result);
        }
    }
}

/// Stores every job in one transaction; `Err` if the transaction itself
/// failed (then nothing was stored).
async fn store_batch(db: &Db, instance: &str, batch: &[Job]) -> AppResult<Vec<AppResult<Stored>>> {
    let mut w = db.begin_write().await?;
    let mut results = Vec::with_capacity(batch.len());
    for job in batch {
        sqlx::query("SAVEPOINT envelope")
            .execute(&mut *w.tx)
            .await?;
        let result = db
            .store_envelope_in(
                &mut w.tx,
                &job.practice,
                &job.sender,
                &job.conversation,
                &job.request,
                job.audit.clone(),
                instance,
            )
            .await;
        if result.is_err() {
            sqlx::query("ROLLBACK TO SAVEPOINT envelope")
                .execute(&mut *w.tx)
                .await?;
        }
        sqlx::query("RELEASE SAVEPOINT envelope")
            .execute(&mut *w.tx)
            .await?;
        results.push(result);
    }
    w.tx.commit().await?;
    Ok(results)
}
