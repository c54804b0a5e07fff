//! The outbox's SQL, checked against the schema at build time (`.sqlx/`). Every update of a
//! claimed row settles it only while it is still its sender's claim: not settled, and not
//! claimed again since (its attempt count unchanged).

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::rules::{EMAILED, LEASE_SECS};

/// Queues an email about notification `id` for `user`, in the caller's transaction, if its
/// kind is emailed and the person has not turned email off.
pub async fn enqueue(tx: &mut PgConnection, user: Uuid, id: Uuid, kind: &str) -> Result<(), sqlx::Error> {
    if !EMAILED.contains(&kind) {
        return Ok(());
    }
    sqlx::query!(
        "INSERT INTO email_outbox (user_id, notification_id) SELECT $1, $2 \
         WHERE NOT EXISTS (SELECT 1 FROM notification_preferences WHERE user_id = $1 AND NOT email)",
        user,
        id,
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// A claimed row.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct Job {
    pub id: i64,
    pub user_id: Uuid,
    pub notification_id: Uuid,
    pub attempts: i32,
}

/// Claims the next due row, leasing it. A due row whose attempts are used up (its sender died
/// on the last one) is given up instead.
pub(super) async fn claim(pool: &PgPool, max_attempts: i32) -> Result<Option<Job>, sqlx::Error> {
    sqlx::query!(
        "UPDATE email_outbox SET given_up_at = now(), last_error = 'attempts used up' \
         WHERE sent_at IS NULL AND given_up_at IS NULL AND next_attempt_at <= now() AND attempts >= $1",
        max_attempts,
    )
    .execute(pool)
    .await?;
    sqlx::query_as!(
        Job,
        "UPDATE email_outbox SET attempts = attempts + 1, next_attempt_at = now() + make_interval(secs => $1) \
         WHERE id = (SELECT id FROM email_outbox WHERE sent_at IS NULL AND given_up_at IS NULL \
         AND next_attempt_at <= now() ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) \
         RETURNING id, user_id, notification_id, attempts",
        LEASE_SECS as f64,
    )
    .fetch_optional(pool)
    .await
}

/// Where a job's email would go, as it stands when it is sent. No `Debug`: the address is
/// personal.
#[derive(sqlx::FromRow)]
pub(super) struct Recipient {
    pub email: String,
    /// The account is closed.
    pub gone: bool,
    /// Email is on (no preference row: on).
    pub wanted: bool,
}

/// The recipient of a job, or `None` when its notification is gone.
pub(super) async fn recipient(pool: &PgPool, job: &Job) -> Result<Option<Recipient>, sqlx::Error> {
    sqlx::query_as!(
        Recipient,
        r#"SELECT u.email, (u.deleted_at IS NOT NULL) AS "gone!",
           COALESCE((SELECT p.email FROM notification_preferences p WHERE p.user_id = u.id), true) AS "wanted!"
           FROM users u JOIN notifications n ON n.id = $2 AND n.user_id = u.id WHERE u.id = $1"#,
        job.user_id,
        job.notification_id,
    )
    .fetch_optional(pool)
    .await
}

pub(super) async fn mark_sent(pool: &PgPool, job: &Job) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE email_outbox SET sent_at = now(), last_error = NULL \
         WHERE id = $1 AND attempts = $2 AND sent_at IS NULL AND given_up_at IS NULL",
        job.id,
        job.attempts,
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Moves the next attempt `delay_secs` ahead, keeping why this one failed.
pub(super) async fn retry_later(pool: &PgPool, job: &Job, why: &str, delay_secs: f64) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE email_outbox SET next_attempt_at = now() + make_interval(secs => $4), last_error = $3 \
         WHERE id = $1 AND attempts = $2 AND sent_at IS NULL AND given_up_at IS NULL",
        job.id,
        job.attempts,
        why,
        delay_secs,
    )
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn give_up(pool: &PgPool, job: &Job, why: &str) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE email_outbox SET given_up_at = now(), last_error = $3 \
         WHERE id = $1 AND attempts = $2 AND sent_at IS NULL AND given_up_at IS NULL",
        job.id,
        job.attempts,
        why,
    )
    .execute(pool)
    .await?;
    Ok(())
}
