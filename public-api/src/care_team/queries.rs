//! The care teams' SQL: the accounts an assignment names.

use sqlx::PgPool;
use uuid::Uuid;

/// Whether `user` is a live account holding the caseworker role.
pub async fn is_caseworker(pool: &PgPool, user: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM users WHERE id = $1 AND deleted_at IS NULL AND 'caseworker' = ANY(roles)) AS "exists!""#,
        user
    )
    .fetch_one(pool)
    .await
}

/// Whether `user` is a live beneficiary's account.
pub async fn is_beneficiary(pool: &PgPool, user: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM users WHERE id = $1 AND deleted_at IS NULL AND user_type = 'beneficiary') AS "exists!""#,
        user
    )
    .fetch_one(pool)
    .await
}
