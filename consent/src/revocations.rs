//! Revocations of consents (42 CFR §2.31(a)(6)): final once recorded, append-only for the
//! runtime role, and hash-chained (`common::chain`, length-prefixed fields).

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use common::chain::{self, Fields, Verification};

const CHAIN_LOCK: i64 = 0x5357_434f_5245_564b;

const V1: &str = "revocations-v1";
const V2: &str = "revocations-v2";

/// A revocation signed by its subject (revocations-v2): typed name, method, and the address it
/// came from. Staff recording a written revocation give none (revocations-v1).
#[derive(Debug, Clone, Copy)]
pub struct RevocationSignature<'a> {
    pub signed_name: &'a str,
    pub method: &'a str,
    pub signed_from: &'a str,
}

fn canonical(
    consent_id: Uuid,
    revoked_at: time::OffsetDateTime,
    revoked_by: &str,
    reason: Option<&str>,
    signature: Option<&RevocationSignature<'_>>,
) -> Vec<u8> {
    let fields = Fields::new(if signature.is_some() { V2 } else { V1 })
        .uuid(consent_id)
        .time(revoked_at)
        .text(revoked_by)
        .opt_text(reason);
    match signature {
        Some(s) => fields.text(s.signed_name).text(s.method).text(s.signed_from).into_bytes(),
        None => fields.into_bytes(),
    }
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
    signature: Option<RevocationSignature<'_>>,
) -> Result<time::OffsetDateTime, RevokeError> {
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM consents WHERE id = $1)")
        .bind(consent_id)
        .fetch_one(&mut *tx)
        .await?;
    if !exists {
        return Err(RevokeError::UnknownConsent(consent_id));
    }
    let revoked_at = chain::now();
    let prev = chain::head(tx, CHAIN_LOCK, "revocations").await?;
    let row_hash = chain::link(&prev, &canonical(consent_id, revoked_at, revoked_by, reason, signature.as_ref()));
    let inserted = sqlx::query(
        "INSERT INTO revocations (consent_id, revoked_at, revoked_by, reason, prev_hash, row_hash, format, \
         signed_name, signature_method, signed_from) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (consent_id) DO NOTHING",
    )
    .bind(consent_id)
    .bind(revoked_at)
    .bind(revoked_by)
    .bind(reason)
    .bind(prev)
    .bind(&row_hash[..])
    .bind(if signature.is_some() { V2 } else { V1 })
    .bind(signature.map(|s| s.signed_name))
    .bind(signature.map(|s| s.method))
    .bind(signature.map(|s| s.signed_from))
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(RevokeError::AlreadyRevoked(consent_id));
    }
    Ok(revoked_at)
}

/// Every column [`canonical_of`] reads, in chain order.
pub const SELECT: &str = "SELECT seq, consent_id, revoked_at, revoked_by, reason, prev_hash, row_hash, format, \
                          signed_name, signature_method, signed_from FROM revocations ORDER BY seq";

/// The hashed content of a stored revocation (also how a test recomputes a tampered chain).
pub fn canonical_of(row: &PgRow) -> Result<Vec<u8>, sqlx::Error> {
    let revoked_by: String = row.try_get("revoked_by")?;
    let reason: Option<String> = row.try_get("reason")?;
    let format: String = row.try_get("format")?;
    let opt = |name: &str| row.try_get::<Option<String>, _>(name);
    let (name, method, from) = (opt("signed_name")?, opt("signature_method")?, opt("signed_from")?);
    // The table's check guarantees the three on a v2 row; a missing one breaks the chain.
    let signature = (format != V1).then(|| RevocationSignature {
        signed_name: name.as_deref().unwrap_or_default(),
        method: method.as_deref().unwrap_or_default(),
        signed_from: from.as_deref().unwrap_or_default(),
    });
    let (consent_id, revoked_at) = (row.try_get("consent_id")?, row.try_get("revoked_at")?);
    Ok(canonical(consent_id, revoked_at, &revoked_by, reason.as_deref(), signature.as_ref()))
}

/// Verifies the revocations trail (`secondwind-operator audit verify --trail revocations`).
pub async fn verify(pool: &PgPool, limit: usize) -> Result<Verification, sqlx::Error> {
    chain::verify_table(pool, SELECT, limit, canonical_of).await
}
