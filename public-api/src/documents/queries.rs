//! The documents' SQL, checked against the schema at build time (`.sqlx/`): the rows of
//! `application_documents` and their states (`uploading`, `stored`, `deleting`), and the reads
//! and edits of the application they belong to.

use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use common::db::Text;

use common::applications::ApplicationStatus;

/// My application's status, its row locked until the transaction ends; `None` if it is not mine.
pub(super) async fn lock_mine(
    tx: &mut PgConnection,
    me: Uuid,
    application: Uuid,
) -> Result<Option<ApplicationStatus>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT status AS "status: Text<ApplicationStatus>" FROM applications
           WHERE id = $1 AND beneficiary_id = $2 FOR UPDATE"#,
        application,
        me,
    )
    .fetch_optional(&mut *tx)
    .await
    .map(|status| status.map(|s| s.0))
}

/// How many documents an application holds, in any state.
pub(super) async fn held_by_application(tx: &mut PgConnection, application: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "held!" FROM application_documents WHERE application_id = $1"#,
        application,
    )
    .fetch_one(&mut *tx)
    .await
}

/// How many documents a person holds across their applications, in any state.
pub(super) async fn held_by_beneficiary(tx: &mut PgConnection, me: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(r#"SELECT count(*) AS "held!" FROM application_documents WHERE beneficiary_id = $1"#, me)
        .fetch_one(&mut *tx)
        .await
}

/// A new row, `uploading`.
pub(super) async fn add(tx: &mut PgConnection, id: Uuid, application: Uuid, me: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO application_documents (id, application_id, beneficiary_id) VALUES ($1, $2, $3)",
        id,
        application,
        me,
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Counts a change of an application's documents as an edit of the application (its `version`),
/// if it can still be changed; false when it cannot.
pub(super) async fn edited(tx: &mut PgConnection, application: Uuid) -> Result<bool, sqlx::Error> {
    let changed = sqlx::query!(
        "UPDATE applications SET version = version + 1, updated_at = now() \
         WHERE id = $1 AND status IN ('reviewing', 'action_needed')",
        application,
    )
    .execute(&mut *tx)
    .await?;
    Ok(changed.rows_affected() == 1)
}

/// Removes a document's row, whatever its state.
pub(super) async fn forget(pool: &PgPool, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!("DELETE FROM application_documents WHERE id = $1", id).execute(pool).await?;
    Ok(())
}

/// Marks an `uploading` row `stored`; its creation time, or `None` when it is no longer
/// `uploading` (its owner's listing finished it meanwhile).
pub(super) async fn mark_stored(tx: &mut PgConnection, document: Uuid) -> Result<Option<OffsetDateTime>, sqlx::Error> {
    sqlx::query_scalar!(
        "UPDATE application_documents SET state = 'stored', updated_at = now() \
         WHERE id = $1 AND state = 'uploading' RETURNING created_at",
        document,
    )
    .fetch_optional(&mut *tx)
    .await
}

/// Marks a row `deleting`, whatever its state: hidden, and finished by its owner's next listing.
pub(super) async fn mark_deleting(pool: &PgPool, document: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!("UPDATE application_documents SET state = 'deleting', updated_at = now() WHERE id = $1", document)
        .execute(pool)
        .await?;
    Ok(())
}

/// Marks a `stored` document of `application` `deleting`; false when there is none.
pub(super) async fn mark_stored_deleting(
    tx: &mut PgConnection,
    document: Uuid,
    application: Uuid,
) -> Result<bool, sqlx::Error> {
    let marked = sqlx::query!(
        "UPDATE application_documents SET state = 'deleting', updated_at = now() \
         WHERE id = $1 AND application_id = $2 AND state = 'stored'",
        document,
        application,
    )
    .execute(&mut *tx)
    .await?;
    Ok(marked.rows_affected() > 0)
}

/// The application's rows left between states (`uploading` or `deleting`) for longer than
/// `stale_after_secs`.
pub(super) async fn leftovers(
    pool: &PgPool,
    application: Uuid,
    stale_after_secs: u64,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT id FROM application_documents WHERE application_id = $1 AND state <> 'stored' \
         AND updated_at < now() - make_interval(secs => $2)",
        application,
        stale_after_secs as f64,
    )
    .fetch_all(pool)
    .await
}

/// A stored document's row.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct StoredRow {
    pub id: Uuid,
    pub created_at: OffsetDateTime,
}

/// The application's stored documents, oldest first.
pub(super) async fn stored_of(pool: &PgPool, application: Uuid) -> Result<Vec<StoredRow>, sqlx::Error> {
    sqlx::query_as!(
        StoredRow,
        "SELECT id, created_at FROM application_documents WHERE application_id = $1 AND state = 'stored' \
         ORDER BY created_at, id",
        application,
    )
    .fetch_all(pool)
    .await
}

/// Whether the application is mine.
pub(super) async fn is_mine(pool: &PgPool, me: Uuid, application: Uuid) -> Result<bool, sqlx::Error> {
    let found = sqlx::query_scalar!(
        r#"SELECT 1 AS "found!" FROM applications WHERE id = $1 AND beneficiary_id = $2"#,
        application,
        me,
    )
    .fetch_optional(pool)
    .await?;
    Ok(found.is_some())
}

/// Whether `document` is a stored document of `application`.
pub(super) async fn is_stored(pool: &PgPool, application: Uuid, document: Uuid) -> Result<bool, sqlx::Error> {
    let found = sqlx::query_scalar!(
        r#"SELECT 1 AS "found!" FROM application_documents WHERE id = $1 AND application_id = $2 AND state = 'stored'"#,
        document,
        application,
    )
    .fetch_optional(pool)
    .await?;
    Ok(found.is_some())
}

/// The beneficiary an application belongs to.
pub(super) async fn beneficiary_of(pool: &PgPool, application: Uuid) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar!("SELECT beneficiary_id FROM applications WHERE id = $1", application).fetch_optional(pool).await
}
