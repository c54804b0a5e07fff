//! Staged pieces: a document's content before it is accepted, deleted unless it is (at once,
//! when its handler is dropped, or by the sweep when its process died).

use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;

use common::assertion::Claims;
use common::ApiError;

use super::queries;

/// A document's staged pieces: deleted unless it is accepted. [`Staged::discard`] deletes them
/// at once; a handler dropped mid-way (its caller gone) deletes them from `Drop`, and a crashed
/// process leaves them to the sweep.
pub(super) struct Staged {
    pool: PgPool,
    id: Uuid,
    kept: bool,
}

impl Staged {
    pub(super) async fn begin(pool: &PgPool, id: Uuid, subject: Uuid, claims: &Claims) -> Result<Self, ApiError> {
        if !queries::insert_content(pool, id, subject, &claims.sub).await? {
            return Err(ApiError::Conflict("a document with this id already exists".into()));
        }
        Ok(Self { pool: pool.clone(), id, kept: false })
    }

    /// The document was accepted: its pieces stay.
    pub(super) fn keep(mut self) {
        self.kept = true;
    }

    pub(super) async fn discard(mut self) {
        self.kept = true;
        if let Err(e) = delete_staged(&self.pool, self.id).await {
            tracing::warn!(error = %e, "a refused document's pieces are left to the sweep");
        }
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.kept {
            let (pool, id) = (self.pool.clone(), self.id);
            tokio::spawn(async move {
                if let Err(e) = delete_staged(&pool, id).await {
                    tracing::warn!(error = %e, "an abandoned document's pieces are left to the sweep");
                }
            });
        }
    }
}

async fn delete_staged(pool: &PgPool, id: Uuid) -> Result<(), sqlx::Error> {
    // A piece's insert dropped mid-transaction (a timed-out handler) holds its lock until its
    // rollback reaches the server: wait a little, then leave the pieces to the sweep.
    let mut tx = pool.begin().await?;
    queries::short_lock_timeout(&mut tx).await?;
    queries::delete_staged(&mut tx, id).await?;
    tx.commit().await
}

/// Deletes staged pieces never accepted (their upload ended with the process that took it)
/// once they are older than `age`, every `interval`, until shutdown.
pub async fn sweep_until(pool: PgPool, age: Duration, interval: Duration, shutdown: rocket::Shutdown) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tokio::time::sleep(interval) => {
                match sweep_pending(&pool, age).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(swept = n, "abandoned document uploads deleted"),
                    Err(e) => tracing::warn!(error = %e, "document upload sweep failed; will retry"),
                }
            }
        }
    }
}

/// Deletes staged documents never accepted and older than `age`; returns how many.
pub async fn sweep_pending(pool: &PgPool, age: Duration) -> Result<u64, sqlx::Error> {
    queries::delete_abandoned(pool, age).await
}
