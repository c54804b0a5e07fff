//! Every statement rewrap and shred run, one function each, and the rows they read.

use sqlx::{FromRow, PgConnection, PgPool};
use uuid::Uuid;

use super::crypto::WrappedKey;
use super::rules::SHRED_CHANNEL;

/// A subject whose data key is wrapped under an older KEK version.
#[derive(FromRow)]
pub(super) struct Candidate {
    pub id: Uuid,
    pub wrapped_data_key: Vec<u8>,
    pub kek_id: Option<String>,
    pub kek_version: Option<i32>,
}

/// Up to `batch` subjects whose keys are wrapped under a version older than `target`, from
/// `start` on (then from the first).
pub(super) async fn rewrap_candidates(
    pool: &PgPool,
    target: i32,
    batch: i64,
    start: Uuid,
) -> Result<Vec<Candidate>, sqlx::Error> {
    sqlx::query_as!(
        Candidate,
        r#"(SELECT id AS "id!", wrapped_data_key AS "wrapped_data_key!", kek_id, kek_version FROM subjects
          WHERE wrapped_data_key IS NOT NULL AND kek_version < $1 AND id >= $3 ORDER BY id LIMIT $2)
         UNION ALL
         (SELECT id, wrapped_data_key, kek_id, kek_version FROM subjects
          WHERE wrapped_data_key IS NOT NULL AND kek_version < $1 AND id < $3 ORDER BY id LIMIT $2)
         LIMIT $2"#,
        target,
        batch,
        start
    )
    .fetch_all(pool)
    .await
}

/// Writes a subject's new wrapping, if the stored one is still `old`; false otherwise.
pub(super) async fn rewrite_wrapping(
    tx: &mut PgConnection,
    subject: Uuid,
    new: &WrappedKey,
    old: &WrappedKey,
) -> Result<bool, sqlx::Error> {
    let written = sqlx::query!(
        "UPDATE subjects SET wrapped_data_key = $2, kek_id = $3, kek_version = $4 \
         WHERE id = $1 AND wrapped_data_key = $5",
        subject,
        &new.ciphertext,
        &new.kek_id,
        new.kek_version,
        &old.ciphertext
    )
    .execute(&mut *tx)
    .await?;
    Ok(written.rows_affected() != 0)
}

/// How many keys are still wrapped under a version older than `target`.
pub(super) async fn remaining(pool: &PgPool, target: i32) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM subjects WHERE wrapped_data_key IS NOT NULL AND kek_version < $1"#,
        target
    )
    .fetch_one(pool)
    .await
}

/// Destroys a subject's data key; false if there was none to destroy.
pub(super) async fn destroy_key(tx: &mut PgConnection, subject: Uuid) -> Result<bool, sqlx::Error> {
    let shredded = sqlx::query!(
        "UPDATE subjects SET wrapped_data_key = NULL, kek_id = NULL, kek_version = NULL, shredded_at = now() \
         WHERE id = $1 AND wrapped_data_key IS NOT NULL",
        subject
    )
    .execute(&mut *tx)
    .await?;
    Ok(shredded.rows_affected() != 0)
}

/// Deletes every record of a subject, its rows locked in `id` order; returns how many.
pub(super) async fn delete_records(tx: &mut PgConnection, subject: Uuid) -> Result<u64, sqlx::Error> {
    let deleted = sqlx::query!(
        "DELETE FROM records WHERE id IN (SELECT id FROM records WHERE subject_id = $1 ORDER BY id FOR UPDATE)",
        subject
    )
    .execute(&mut *tx)
    .await?;
    Ok(deleted.rows_affected())
}

/// Deletes a subject's documents still being uploaded.
pub(super) async fn delete_staged_documents(tx: &mut PgConnection, subject: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!("DELETE FROM document_contents WHERE subject_id = $1", subject).execute(&mut *tx).await?;
    Ok(())
}

/// Announces a shred on [`SHRED_CHANNEL`], delivered at commit.
pub(super) async fn announce_shred(tx: &mut PgConnection, subject: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!("SELECT pg_notify($1, $2)", SHRED_CHANNEL, subject.to_string()).execute(&mut *tx).await?;
    Ok(())
}
