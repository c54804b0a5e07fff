//! The consents' SQL: public-api keeps no consent, only the accounts a consent request names.

use sqlx::PgPool;
use uuid::Uuid;

/// Whether `id` is a live partner account (one a residence in the directory may act through).
pub async fn is_partner(pool: &PgPool, id: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM users WHERE id = $1 AND user_type = 'partner' AND deleted_at IS NULL) AS "exists!""#,
        id
    )
    .fetch_one(pool)
    .await
}

/// Whether `id` is a live beneficiary's account.
pub async fn is_beneficiary(pool: &PgPool, id: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM users WHERE id = $1 AND user_type = 'beneficiary' AND deleted_at IS NULL) AS "exists!""#,
        id
    )
    .fetch_one(pool)
    .await
}
