//! Users' encrypted history backups: ciphertext the server cannot open.

use sqlx::Row;

use super::{Db, now_ms};
use crate::error::{AppError, AppResult};

impl Db {
    /// Keeps a user's backup, replacing the one before.
    pub async fn put_backup(&self, user: &str, data: &[u8]) -> AppResult<()> {
        let mut w = self.begin_write().await?;
        sqlx::query("DELETE FROM backups WHERE user_id = $1")
            .bind(user)
            .execute(&mut *w.tx)
            .await?;
        sqlx::query("INSERT INTO backups (user_id, data, updated_at) VALUES ($1, $2, $3)")
            .bind(user)
            .bind(data)
            .bind(now_ms())
            .execute(&mut *w.tx)
            .await?;
        w.tx.commit().await?;
        Ok(())
    }

    /// A user's backup.
    pub async fn backup(&self, user: &str) -> AppResult<Vec<u8>> {
        Ok(sqlx::query("SELECT data FROM backups WHERE user_id = $1")
            .bind(user)
            .fetch_optional(self.pool())
            .await?
            .ok_or(AppError::NotFound("backup"))?
            .try_get("data")?)
    }
}
