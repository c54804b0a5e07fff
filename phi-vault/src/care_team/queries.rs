//! Every statement the care team runs, one function each.

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// Puts `caseworker` on `subject`'s care team (once: a second assignment changes nothing).
pub(super) async fn insert(
    tx: &mut PgConnection,
    caseworker: Uuid,
    subject: Uuid,
    assigned_by: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO care_team (caseworker_id, subject_id, assigned_by) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        caseworker,
        subject,
        assigned_by
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Whether `caseworker` is on `subject`'s care team.
pub(crate) async fn on_team(pool: &PgPool, caseworker: Uuid, subject: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM care_team WHERE caseworker_id = $1 AND subject_id = $2) AS "exists!""#,
        caseworker,
        subject
    )
    .fetch_one(pool)
    .await
}
