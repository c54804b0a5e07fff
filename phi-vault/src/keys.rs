//! Key lifecycle: rewrapping every subject's data key under the current KEK version (records are
//! never decrypted), and crypto-shredding a subject: its data key is destroyed and its
//! ciphertext rows deleted.
//!
//! Locks follow the order written in `records.rs`: the subject's row, then record rows (in `id`
//! order), then the access log's chain lock last. No lock is held across a key-provider call:
//! rewrap unwraps and wraps outside any transaction, then writes each key back in its own short
//! transaction, only if the stored wrapping is still the one it unwrapped.

use rocket::http::Status;
use rocket::{delete, routes, Route, State};
use sqlx::{PgPool, Row};
use uuid::Uuid;

use common::assertion::InternalCall;
use common::{ApiError, Role};

use crate::access_log::{self, Access};
use crate::crypto::{CryptoError, KeyCache, KeyProvider, WrappedKey};
use crate::policy::{self, Decision};
use crate::records;
use crate::records::Vault;
use crate::volume::Activity;

#[derive(Debug, thiserror::Error)]
pub enum KeyOpError {
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Rewraps up to `batch` data keys still under an older KEK version; returns (rewrapped now,
/// still remaining).
///
/// Each key is unwrapped and wrapped again outside any transaction, then written back in a
/// transaction of its own (with its access-log entry) only if the stored wrapping is still the
/// one unwrapped: a subject shredded or rewrapped meanwhile is skipped. Reads never wait on it,
/// and it never waits on them. Safe to interrupt and run again, and to run from several
/// processes at once: each batch starts at a random subject, so concurrent runs mostly take
/// different rows, and a row two runs both take is written by one of them only.
pub async fn rewrap_batch(
    pool: &PgPool,
    provider: &dyn KeyProvider,
    batch: i64,
    actor: &str,
    request_id: &str,
) -> Result<(u64, i64), KeyOpError> {
    let target = provider.current_version().await?;
    let candidates = sqlx::query(
        "(SELECT id, wrapped_data_key, kek_id, kek_version FROM subjects \
          WHERE wrapped_data_key IS NOT NULL AND kek_version < $1 AND id >= $3 ORDER BY id LIMIT $2) \
         UNION ALL \
         (SELECT id, wrapped_data_key, kek_id, kek_version FROM subjects \
          WHERE wrapped_data_key IS NOT NULL AND kek_version < $1 AND id < $3 ORDER BY id LIMIT $2) \
         LIMIT $2",
    )
    .bind(target)
    .bind(batch)
    .bind(Uuid::new_v4())
    .fetch_all(pool)
    .await?;
    let mut done = 0;
    for row in candidates {
        let subject: Uuid = row.try_get("id")?;
        let old = WrappedKey {
            ciphertext: row.try_get("wrapped_data_key")?,
            kek_id: row.try_get::<Option<String>, _>("kek_id")?.unwrap_or_default(),
            kek_version: row.try_get::<Option<i32>, _>("kek_version")?.unwrap_or(1),
        };
        // Outside any transaction: the provider calls hold no lock.
        let new = {
            let key = provider.unwrap(subject, &old).await?;
            provider.wrap(subject, &key).await?
        };
        // Locks: the subject's row, then the access log's chain lock, for two statements.
        let mut tx = pool.begin().await?;
        let written = sqlx::query(
            "UPDATE subjects SET wrapped_data_key = $2, kek_id = $3, kek_version = $4 \
             WHERE id = $1 AND wrapped_data_key = $5",
        )
        .bind(subject)
        .bind(&new.ciphertext)
        .bind(&new.kek_id)
        .bind(new.kek_version)
        .bind(&old.ciphertext)
        .execute(&mut *tx)
        .await?;
        if written.rows_affected() == 0 {
            // Shredded, or rewrapped by another run, since it was read.
            tx.rollback().await?;
            continue;
        }
        let reason = format!("kek v{} -> v{}", old.kek_version, new.kek_version);
        let entry = Access {
            actor,
            actor_role: "operator",
            purpose: "key_rotation",
            subject_id: Some(subject),
            record_id: None,
            action: "key.rewrap",
            permitted: true,
            reason: &reason,
            flagged: false,
            request_id,
        };
        access_log::append(&mut tx, &entry).await?;
        tx.commit().await?;
        done += 1;
    }
    let remaining: i64 =
        sqlx::query_scalar("SELECT count(*) FROM subjects WHERE wrapped_data_key IS NOT NULL AND kek_version < $1")
            .bind(target)
            .fetch_one(pool)
            .await?;
    Ok((done, remaining))
}

/// Crypto-shreds a subject: its data key is destroyed and its ciphertext rows (`records`, and
/// with them `documents`) are deleted, so nothing of the subject can be read again. What the
/// accounting of disclosures needs stays: the subject's row (with `shredded_at`), its
/// `disclosures` and the access log. Only an admin may.
#[delete("/internal/v1/subjects/<subject>/key")]
async fn shred(
    call: InternalCall,
    subject: Uuid,
    pool: &State<PgPool>,
    vault: &State<Vault>,
) -> Result<Status, ApiError> {
    let claims = &call.0;
    if claims.role != Role::Admin {
        access_log::append_alone(
            pool,
            &records::access(claims, Some(subject), None, SHRED, &Decision::deny("only an admin erases a subject")),
        )
        .await?;
        return Err(ApiError::Forbidden);
    }
    let mut tx = pool.begin().await?;
    // Locks, in the order of records.rs: the subject's row, its record rows in id order, then
    // the access log's chain lock last.
    let shredded = sqlx::query(
        "UPDATE subjects SET wrapped_data_key = NULL, kek_id = NULL, kek_version = NULL, shredded_at = now() \
         WHERE id = $1 AND wrapped_data_key IS NOT NULL",
    )
    .bind(subject)
    .execute(&mut *tx)
    .await?;
    if shredded.rows_affected() == 0 {
        let missing = Decision::deny("no key to destroy: no such subject, or already erased");
        access_log::append(&mut tx, &records::access(claims, Some(subject), None, SHRED, &missing)).await?;
        tx.commit().await?;
        return Err(ApiError::NotFound);
    }
    // Erasure is irreversible: a caller erasing many subjects is stopped, and compliance told.
    // Counted only for a subject that is there to erase, so misses cannot use the figure up.
    if let Err(over) = vault.watch.observe(claims, Activity::Erasure, subject) {
        tx.rollback().await?;
        let refused = policy::throttled(claims, Activity::Erasure, &over);
        access_log::append_alone(pool, &records::access(claims, Some(subject), None, SHRED, &refused)).await?;
        return Err(refused.refusal());
    }
    let deleted = sqlx::query(
        "DELETE FROM records WHERE id IN (SELECT id FROM records WHERE subject_id = $1 ORDER BY id FOR UPDATE)",
    )
    .bind(subject)
    .execute(&mut *tx)
    .await?;
    // Documents still being uploaded (accepted ones went with their records).
    sqlx::query("DELETE FROM document_contents WHERE subject_id = $1").bind(subject).execute(&mut *tx).await?;
    // Delivered at commit to every instance, which drops its cached copy of the key.
    sqlx::query("SELECT pg_notify($1, $2)").bind(SHRED_CHANNEL).bind(subject.to_string()).execute(&mut *tx).await?;
    access_log::append(
        &mut tx,
        &records::access(claims, Some(subject), None, SHRED, &Decision::permit("admin erasure")),
    )
    .await?;
    tx.commit().await?;
    vault.cache.forget(subject);
    tracing::warn!(request_id = %claims.request_id, %subject, records_deleted = deleted.rows_affected(), "subject crypto-shredded");
    Ok(Status::NoContent)
}

/// The access-log action of a shred.
const SHRED: &str = "subject.shred";

/// The channel a shred is announced on.
pub const SHRED_CHANNEL: &str = "phi_subject_shredded";

/// Listens for shreds made by any instance and evicts those subjects' keys from this
/// instance's cache, so destroyed key material does not linger in memory until the cache
/// expires. (Reads are refused regardless: each checks the subject's key state.) If the
/// connection drops, notices may have been missed, so the whole cache is cleared.
pub async fn evict_shredded(
    pool: PgPool,
    cache: std::sync::Arc<KeyCache>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let Some(mut listener) = common::db::listen_on(&pool, SHRED_CHANNEL, shutdown.as_mut()).await else { return };
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            notice = listener.try_recv() => match notice {
                Ok(Some(n)) => match n.payload().parse::<Uuid>() {
                    Ok(subject) => cache.forget(subject),
                    Err(_) => tracing::warn!("unreadable shred notice"),
                },
                // The connection was lost (and is re-established on the next call).
                Ok(None) => cache.clear(),
                Err(e) => {
                    cache.clear();
                    tracing::warn!(error = %e, "shred listener failed; retrying");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            },
        }
    }
}

pub fn routes() -> Vec<Route> {
    routes![shred]
}
