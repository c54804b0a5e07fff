//! Rewrapping data keys under the current KEK version, crypto-shredding a subject, and
//! evicting shredded subjects' keys from every instance's cache.

use sqlx::PgPool;
use uuid::Uuid;

use common::assertion::Claims;
use common::ApiError;

use super::crypto::{CryptoError, KeyCache, KeyProvider};
use super::queries;
use super::rules::{self, rewrap_entry, wrapped_key, SHRED, SHRED_CHANNEL};
use crate::access_log::{self, access, log_alone};
use crate::policy::{self, Decision};
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
    let candidates = queries::rewrap_candidates(pool, target, batch, Uuid::new_v4()).await?;
    let mut done = 0;
    for row in candidates {
        let subject = row.id;
        let old = wrapped_key(row.wrapped_data_key, row.kek_id, row.kek_version);
        // Outside any transaction: the provider calls hold no lock.
        let new = {
            let key = provider.unwrap(subject, &old).await?;
            provider.wrap(subject, &key).await?
        };
        // Locks: the subject's row, then the access log's chain lock, for two statements.
        let mut tx = pool.begin().await?;
        if !queries::rewrite_wrapping(&mut tx, subject, &new, &old).await? {
            // Shredded, or rewrapped by another run, since it was read.
            tx.rollback().await?;
            continue;
        }
        let reason = rules::rewrap_reason(&old, &new);
        access_log::append(&mut tx, &rewrap_entry(actor, subject, &reason, request_id)).await?;
        tx.commit().await?;
        done += 1;
    }
    let remaining = queries::remaining(pool, target).await?;
    Ok((done, remaining))
}

/// Crypto-shreds `subject` for an admin (the route's docs say what goes and what stays), the
/// erasure or its refusal logged.
pub(super) async fn shred(pool: &PgPool, vault: &Vault, claims: &Claims, subject: Uuid) -> Result<(), ApiError> {
    if let Some(refused) = rules::shred_refusal(claims) {
        log_alone(pool, &access(claims, Some(subject), None, SHRED, &refused)).await?;
        return Err(ApiError::Forbidden);
    }
    let mut tx = pool.begin().await?;
    // Locks, in the order of the record routes: the subject's row, its record rows in id order,
    // then the access log's chain lock last.
    if !queries::destroy_key(&mut tx, subject).await? {
        let missing = Decision::deny("no key to destroy: no such subject, or already erased");
        access_log::append(&mut tx, &access(claims, Some(subject), None, SHRED, &missing)).await?;
        tx.commit().await?;
        return Err(ApiError::NotFound);
    }
    // Erasure is irreversible: a caller erasing many subjects is stopped, and compliance told.
    // Counted only for a subject that is there to erase, so misses cannot use the figure up.
    if let Err(over) = vault.watch.observe(claims, Activity::Erasure, subject) {
        tx.rollback().await?;
        let refused = policy::throttled(claims, Activity::Erasure, &over);
        log_alone(pool, &access(claims, Some(subject), None, SHRED, &refused)).await?;
        return Err(refused.refusal());
    }
    let deleted = queries::delete_records(&mut tx, subject).await?;
    // Documents still being uploaded (accepted ones went with their records).
    queries::delete_staged_documents(&mut tx, subject).await?;
    // Delivered at commit to every instance, which drops its cached copy of the key.
    queries::announce_shred(&mut tx, subject).await?;
    access_log::append(&mut tx, &access(claims, Some(subject), None, SHRED, &Decision::permit("admin erasure")))
        .await?;
    tx.commit().await?;
    vault.cache.forget(subject);
    tracing::warn!(request_id = %claims.request_id, %subject, records_deleted = deleted, "subject crypto-shredded");
    Ok(())
}

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
