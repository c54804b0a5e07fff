//! Every statement the document routes and the sweep run, one function each, and the rows they
//! read.

use std::time::Duration;

use sqlx::{FromRow, PgConnection, PgPool};
use uuid::Uuid;

/// Stages a document's content row; false if the id is taken.
pub(super) async fn insert_content(
    pool: &PgPool,
    id: Uuid,
    subject: Uuid,
    created_by: &str,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query!(
        "INSERT INTO document_contents (id, subject_id, created_by) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING",
        id,
        subject,
        created_by
    )
    .execute(pool)
    .await?;
    Ok(inserted.rows_affected() != 0)
}

/// Waits at most `5s` for a lock for the rest of the transaction.
pub(super) async fn short_lock_timeout(tx: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query!("SET LOCAL lock_timeout = '5s'").execute(&mut *tx).await?;
    Ok(())
}

/// Deletes a staged document's content (its pieces go with it), unless it was accepted.
pub(super) async fn delete_staged(tx: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!("DELETE FROM document_contents WHERE id = $1 AND record_id IS NULL", id).execute(&mut *tx).await?;
    Ok(())
}

/// Lets the rest of the transaction commit without waiting for its flush.
pub(super) async fn asynchronous_commit(tx: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query!("SET LOCAL synchronous_commit = off").execute(&mut *tx).await?;
    Ok(())
}

/// Stores piece `seq` of a staged document.
pub(super) async fn insert_piece(
    tx: &mut PgConnection,
    id: Uuid,
    seq: i32,
    (nonce, ciphertext): (Vec<u8>, Vec<u8>),
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO document_chunks (content_id, seq, nonce, ciphertext) VALUES ($1, $2, $3, $4)",
        id,
        seq,
        nonce,
        ciphertext
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// How many pieces a document has, and the number of its last.
#[derive(FromRow)]
pub(super) struct PieceCount {
    pub count: i64,
    pub last: Option<i32>,
}

pub(super) async fn piece_count(tx: &mut PgConnection, id: Uuid) -> Result<PieceCount, sqlx::Error> {
    sqlx::query_as!(
        PieceCount,
        r#"SELECT count(*) AS "count!", max(seq) AS last FROM document_chunks WHERE content_id = $1"#,
        id
    )
    .fetch_one(&mut *tx)
    .await
}

/// Links staged content to its record; false if it was swept meanwhile.
pub(super) async fn link_content(tx: &mut PgConnection, id: Uuid) -> Result<bool, sqlx::Error> {
    let linked = sqlx::query!("UPDATE document_contents SET record_id = id WHERE id = $1 AND record_id IS NULL", id)
        .execute(&mut *tx)
        .await?;
    Ok(linked.rows_affected() != 0)
}

/// A sealed piece of a document.
#[derive(FromRow)]
pub(super) struct Piece {
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

pub(super) async fn piece(pool: &PgPool, id: Uuid, seq: i32) -> Result<Option<Piece>, sqlx::Error> {
    sqlx::query_as!(Piece, "SELECT nonce, ciphertext FROM document_chunks WHERE content_id = $1 AND seq = $2", id, seq)
        .fetch_optional(pool)
        .await
}

/// `Some` while the document's content is there.
pub(super) async fn content_exists(pool: &PgPool, id: Uuid) -> Result<Option<i32>, sqlx::Error> {
    sqlx::query_scalar!(r#"SELECT 1 AS "one!" FROM document_contents WHERE id = $1"#, id).fetch_optional(pool).await
}

/// Deletes staged documents never accepted and older than `age`; returns how many.
pub(super) async fn delete_abandoned(pool: &PgPool, age: Duration) -> Result<u64, sqlx::Error> {
    let swept = sqlx::query!(
        "DELETE FROM document_contents WHERE record_id IS NULL AND started_at < now() - make_interval(secs => $1)",
        age.as_secs_f64()
    )
    .execute(pool)
    .await?;
    Ok(swept.rows_affected())
}
