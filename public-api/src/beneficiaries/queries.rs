//! The profile's SQL: the account keeps only the id of its identity record in the vault.

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// Points `user`'s account at `record`, inside the caller's transaction, unless it already
/// points at another record; whether it now points at `record`.
pub async fn link_identity_record(tx: &mut PgConnection, user: Uuid, record: Uuid) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query!(
        "UPDATE users SET identity_record_id = $2 \
         WHERE id = $1 AND (identity_record_id IS NULL OR identity_record_id = $2)",
        user,
        record,
    )
    .execute(&mut *tx)
    .await?;
    Ok(updated.rows_affected() > 0)
}

/// The record `user`'s account points at, read under the row's lock (so a link still
/// committing is waited for) in a transaction that ends on return.
pub async fn identity_record_locked(pool: &PgPool, user: Uuid) -> Result<Option<Uuid>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query_scalar!("SELECT identity_record_id FROM users WHERE id = $1 FOR UPDATE", user).fetch_one(&mut *tx).await
}
