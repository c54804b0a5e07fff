//! The profile reads' SQL: public-api knows only where a beneficiary's profile is kept.

use sqlx::PgPool;
use uuid::Uuid;

/// The live beneficiary's identity record id; `None` when there is no such beneficiary or they
/// have no profile.
pub async fn identity_record(pool: &PgPool, beneficiary_id: Uuid) -> Result<Option<Uuid>, sqlx::Error> {
    let record = sqlx::query_scalar!(
        "SELECT identity_record_id FROM users WHERE id = $1 AND user_type = 'beneficiary' AND deleted_at IS NULL",
        beneficiary_id
    )
    .fetch_optional(pool)
    .await?;
    Ok(record.flatten())
}
