//! Revocations of consents (42 CFR §2.31(a)(6)): final once recorded, append-only for the
//! runtime role, and hash-chained (`common::chain`, length-prefixed fields).

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use common::chain::{self, Fields, Verification};

const CHAIN_LOCK: i64 = 0x5357_434f_5245_564b;

fn canonical(consent_id: Uuid, revoked_at: time::OffsetDateTime, revoked_by: &str, reason: Option<&str>) -> Vec<u8> {
    Fields::new("revocations-v1").uuid(consent_id).time(revoked_at).text(revoked_by).opt_text(reason).into_bytes()
}

#[derive(Debug, thiserror::Error)]
pub enum RevokeError {
    #[error("no consent {0}")]
    UnknownConsent(Uuid),
    #[error("consent {0} is already revoked")]
    AlreadyRevoked(Uuid),
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}

/// Revokes a consent, in the caller's transaction. `revoked_by` is who revoked it (the subject's
/// id, or the staff member acting on their written revocation).
pub async fn revoke(
    tx: &mut PgConnection,
    consent_id: Uuid,
    revoked_by: &str,
    reason: Option<&str>,
) -> Result<(), RevokeError> {
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM consents WHERE id = $1)")
        .bind(consent_id)
        .fetch_one(&mut *tx)
        .await?;
    if !exists {
        return Err(RevokeError::UnknownConsent(consent_id));
    }
    let revoked_at = chain::now();
    let prev = chain::head(tx, CHAIN_LOCK, "revocations").await?;
    let row_hash = chain::link(&prev, &canonical(consent_id, revoked_at, revoked_by, reason));
    let inserted = sqlx::query(
        "INSERT INTO revocations (consent_id, revoked_at, revoked_by, reason, prev_hash, row_hash) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (consent_id) DO NOTHING",
    )
    .bind(consent_id)
    .bind(revoked_at)
    .bind(revoked_by)
    .bind(reason)
    .bind(prev)
    .bind(&row_hash[..])
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(RevokeError::AlreadyRevoked(consent_id));
    }
    Ok(())
}

/// Every column [`canonical_of`] reads, in chain order.
pub const SELECT: &str =
    "SELECT seq, consent_id, revoked_at, revoked_by, reason, prev_hash, row_hash FROM revocations ORDER BY seq";

/// The hashed content of a stored revocation (also how a test recomputes a tampered chain).
pub fn canonical_of(row: &PgRow) -> Result<Vec<u8>, sqlx::Error> {
    let revoked_by: String = row.try_get("revoked_by")?;
    let reason: Option<String> = row.try_get("reason")?;
    Ok(canonical(row.try_get("consent_id")?, row.try_get("revoked_at")?, &revoked_by, reason.as_deref()))
}

/// Verifies the revocations trail (`secondwind-admin audit verify --trail revocations`).
pub async fn verify(pool: &PgPool, limit: usize) -> Result<Verification, sqlx::Error> {
    chain::verify_table(pool, SELECT, limit, canonical_of).await
}
