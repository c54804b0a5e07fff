//! The retention job: purges records whose subject's consent to keep them ended, and expired
//! records, each purge logged in the access log.

use std::time::Duration;

use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

use common::assertion::CallContext;
use common::client::{ClientError, ConsentClient, DisclosureQuestion};

use super::queries::{self, Purged};
use super::rules::{purge_entry, RetentionPolicy, CONSENT_ENDED, EXPIRED, PROGRAM};
use crate::access_log;

/// Whether the subject's consent to keep `category` records stands: `Ok(false)` only on the
/// consent service's clear refusal; an error when it cannot be asked (callers keep the records).
pub async fn consent_stands(
    consent: &ConsentClient,
    ctx: &CallContext,
    subject: Uuid,
    category: &str,
    purpose: &str,
) -> Result<bool, ClientError> {
    let question = DisclosureQuestion {
        subject_id: subject,
        recipient: PROGRAM.into(),
        categories: vec![category.to_owned()],
        purpose: purpose.to_owned(),
    };
    consent.decide(ctx, &question).await.map(|answer| answer.permitted)
}

/// Purges the records of every consent-bound category whose subject's consent no longer stands
/// (revoked or expired); returns how many. A subject the consent service cannot be asked about
/// keeps its records until a later run. Safe with several instances: the delete claims rows,
/// so each purge is logged once.
pub async fn purge_unconsented(
    pool: &PgPool,
    consent: &ConsentClient,
    policy: &RetentionPolicy,
) -> Result<u64, sqlx::Error> {
    // One instance at a time: the day's count and the purge must not interleave with another
    // run's. The lock is a session lock on a connection of its own, so it ends with the
    // connection (and with a crashed process); no request ever waits on it.
    let mut lock = PgConnection::connect_with(&pool.connect_options()).await?;
    let mine = queries::try_lock(&mut lock).await?;
    if !mine {
        return Ok(0); // another instance is running it
    }
    let purged = purge_unconsented_locked(pool, consent, policy).await;
    let _ = lock.close().await;
    purged
}

async fn purge_unconsented_locked(
    pool: &PgPool,
    consent: &ConsentClient,
    policy: &RetentionPolicy,
) -> Result<u64, sqlx::Error> {
    let request_id = format!("retention-{}", Uuid::new_v4());
    let ctx = CallContext::system("retention_check", common::RequestId(request_id.clone()));
    // Records stored or changed after the questions were asked are not purged on their answers.
    let asked_from = queries::now(pool).await?;
    // First ask about every subject, then purge: a run that would take the day past the
    // policy's figure purges nothing.
    let mut due = Vec::new();
    for (category, purpose) in policy.consent_bound() {
        let subjects = queries::subjects_with(pool, category).await?;
        for subject in subjects {
            match consent_stands(consent, &ctx, subject, category, purpose).await {
                Ok(true) => continue,
                Ok(false) => due.push((subject, category, purpose)),
                Err(e) => {
                    tracing::warn!(error = %e, %subject, "retention: consent unknown; records kept for now");
                    continue;
                }
            }
        }
    }
    // The day's subjects: those already purged in the last 24 hours, and these.
    let mut day = queries::purged_today(pool).await?;
    let before = day.len();
    day.extend(due.iter().map(|(subject, _, _)| *subject));
    if policy.over_daily_figure(before, day.len()) {
        tracing::error!(
            subjects = day.len() - before,
            purged_today = before,
            limit = policy.max_consent_purges_per_day,
            alarm = "retention_volume",
            "RETENTION ALARM: the consent service says more subjects' consents ended than may be purged in a day; \
             nothing purged (check the consent service; raise max_consent_purges_per_day if this is real)"
        );
        return Ok(0);
    }
    let mut purged = 0;
    for (subject, category, purpose) in due {
        // Asked again just before the irreversible delete: a consent renewed during the run
        // keeps the records.
        if !matches!(consent_stands(consent, &ctx, subject, category, purpose).await, Ok(false)) {
            continue;
        }
        // Locks in the order of the record routes: record rows in id order, the access log last.
        let mut tx = pool.begin().await?;
        let rows = queries::delete_unconsented(&mut tx, subject, category, asked_from).await?;
        log_purges(&mut tx, &rows, CONSENT_ENDED, &request_id).await?;
        tx.commit().await?;
        purged += rows.len() as u64;
    }
    Ok(purged)
}

/// Logs each purged record in the access log.
async fn log_purges(tx: &mut PgConnection, rows: &[Purged], reason: &str, request_id: &str) -> Result<(), sqlx::Error> {
    for row in rows {
        access_log::append(tx, &purge_entry((row.id, row.subject_id), reason, request_id)).await?;
    }
    Ok(())
}

/// Purges up to `batch` expired records; returns how many.
pub async fn purge_expired(pool: &PgPool, batch: i64) -> Result<u64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let rows = queries::delete_expired(&mut tx, batch).await?;
    let request_id = format!("retention-{}", Uuid::new_v4());
    log_purges(&mut tx, &rows, EXPIRED, &request_id).await?;
    tx.commit().await?;
    Ok(rows.len() as u64)
}

/// Runs both purges every `interval` until shutdown.
pub async fn run(
    pool: PgPool,
    consent: ConsentClient,
    policy: RetentionPolicy,
    interval: Duration,
    shutdown: rocket::Shutdown,
) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tokio::time::sleep(interval) => {
                match purge_unconsented(&pool, &consent, &policy).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(purged = n, "retention: records without standing consent purged"),
                    Err(e) => tracing::warn!(error = %e, "retention: consent purge failed; will retry"),
                }
                loop {
                    match purge_expired(&pool, 500).await {
                        Ok(0) => break,
                        Ok(n) => tracing::info!(purged = n, "retention: expired records purged"),
                        Err(e) => {
                            tracing::warn!(error = %e, "retention: purge failed; will retry");
                            break;
                        }
                    }
                }
            }
        }
    }
}
