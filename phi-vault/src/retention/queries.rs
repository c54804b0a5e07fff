//! Every statement the retention job runs, one function each, and the rows they read.

use std::collections::HashSet;

use sqlx::{FromRow, PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use super::rules::{CONSENT_ENDED, JOB, RETENTION_LOCK};

/// Takes [`RETENTION_LOCK`] for the session of `lock`, if no other session holds it.
pub(super) async fn try_lock(lock: &mut PgConnection) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(r#"SELECT pg_try_advisory_lock($1) AS "locked!""#, RETENTION_LOCK).fetch_one(&mut *lock).await
}

/// The database's clock.
pub(super) async fn now(pool: &PgPool) -> Result<OffsetDateTime, sqlx::Error> {
    sqlx::query_scalar!(r#"SELECT now() AS "now!""#).fetch_one(pool).await
}

/// Every subject with records of `category`.
pub(super) async fn subjects_with(pool: &PgPool, category: &str) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar!("SELECT DISTINCT subject_id FROM records WHERE category::text = $1", category)
        .fetch_all(pool)
        .await
}

/// The subjects whose records the job purged in the last 24 hours because their consent ended.
pub(super) async fn purged_today(pool: &PgPool) -> Result<HashSet<Uuid>, sqlx::Error> {
    let subjects: Vec<Uuid> = sqlx::query_scalar!(
        r#"SELECT DISTINCT subject_id AS "subject_id!" FROM access_log WHERE action = 'record.purge' AND actor = $1
         AND reason = $2 AND occurred_at > now() - interval '1 day' AND subject_id IS NOT NULL"#,
        JOB,
        CONSENT_ENDED
    )
    .fetch_all(pool)
    .await?;
    Ok(subjects.into_iter().collect())
}

/// A purged record.
#[derive(FromRow)]
pub(super) struct Purged {
    pub id: Uuid,
    pub subject_id: Uuid,
}

/// Deletes a subject's records of `category` stored and last changed before `asked_from`, their
/// rows locked in `id` order.
pub(super) async fn delete_unconsented(
    tx: &mut PgConnection,
    subject: Uuid,
    category: &str,
    asked_from: OffsetDateTime,
) -> Result<Vec<Purged>, sqlx::Error> {
    sqlx::query_as!(
        Purged,
        "DELETE FROM records WHERE id IN (SELECT id FROM records WHERE subject_id = $1 AND category::text = $2 \
         AND created_at < $3 AND updated_at < $3 ORDER BY id FOR UPDATE) RETURNING id, subject_id",
        subject,
        category,
        asked_from
    )
    .fetch_all(&mut *tx)
    .await
}

/// Deletes up to `batch` expired records no other run has claimed.
pub(super) async fn delete_expired(tx: &mut PgConnection, batch: i64) -> Result<Vec<Purged>, sqlx::Error> {
    sqlx::query_as!(
        Purged,
        "DELETE FROM records WHERE id IN (SELECT id FROM records WHERE expires_at <= now() ORDER BY expires_at \
         LIMIT $1 FOR UPDATE SKIP LOCKED) RETURNING id, subject_id",
        batch
    )
    .fetch_all(&mut *tx)
    .await
}
