//! The dashboard's SQL, checked against the schema at build time (`.sqlx/`). Each runs inside the
//! one read-only snapshot the route opens.

use sqlx::PgConnection;
use uuid::Uuid;

use common::applications::{ApplicationStatus, ApplicationView};
use common::db::Text;

use crate::applications::queries::ApplicationRow;

/// Opens the snapshot every later read of the dashboard sees.
pub async fn snapshot(tx: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query!("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
    Ok(())
}

/// How many of the beneficiary's applications are in each status (absent: none).
pub async fn counts(tx: &mut PgConnection, beneficiary: Uuid) -> Result<Vec<(ApplicationStatus, i64)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT status AS "status: Text<ApplicationStatus>", count(*) AS "count!" FROM applications
           WHERE beneficiary_id = $1 GROUP BY status"#,
        beneficiary,
    )
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows.into_iter().map(|r| (r.status.0, r.count)).collect())
}

/// The first 20 applications still open (reviewing, action_needed or approved), oldest first.
pub async fn open(tx: &mut PgConnection, beneficiary: Uuid) -> Result<Vec<ApplicationView>, sqlx::Error> {
    let rows = sqlx::query_as!(
        ApplicationRow,
        r#"SELECT id, seq, beneficiary_id, kind, amount_cents, status AS "status: Text<ApplicationStatus>", caseworker_id, version,
           created_at, updated_at, details_record_id FROM applications
           WHERE beneficiary_id = $1 AND status IN ('reviewing', 'action_needed', 'approved') ORDER BY seq LIMIT 20"#,
        beneficiary,
    )
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows.iter().map(ApplicationRow::view).collect())
}

/// Days since the sobriety date, if one is set, and whether the identity profile is missing.
pub async fn standing(tx: &mut PgConnection, beneficiary: Uuid) -> Result<(Option<i32>, bool), sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT (now() AT TIME ZONE 'UTC')::date - sobriety_date AS days_sober,
           identity_record_id IS NULL AS "no_profile!" FROM users WHERE id = $1"#,
        beneficiary,
    )
    .fetch_one(&mut *tx)
    .await?;
    Ok((row.days_sober, row.no_profile))
}

/// The applications waiting on the beneficiary, each with the note of the move that made it wait.
pub async fn waiting(tx: &mut PgConnection, beneficiary: Uuid) -> Result<Vec<(Uuid, Option<String>)>, sqlx::Error> {
    let rows = sqlx::query!(
        "SELECT DISTINCT ON (a.seq) a.id, e.note FROM applications a \
         JOIN application_events e ON e.application_id = a.id AND e.to_status = 'action_needed' \
         WHERE a.beneficiary_id = $1 AND a.status = 'action_needed' ORDER BY a.seq, e.seq DESC",
        beneficiary,
    )
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows.into_iter().map(|r| (r.id, r.note)).collect())
}
