//! The accounting of disclosures (42 CFR §2.24 / HIPAA §164.528): every consented read served to
//! a recipient outside the program, entered in the read's transaction, so a disclosure is on
//! record exactly when the contents were served. Append-only for the runtime role and
//! hash-chained (`common::chain`, length-prefixed fields, as the migration that chained the rows
//! already present computed them).

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use common::chain::{self, Fields, Verification};

use crate::policy::Disclosure;

const CHAIN_LOCK: i64 = 0x5357_5048_4944_4953;

fn canonical(row: &Entry<'_>) -> Vec<u8> {
    Fields::new("disclosures-v1")
        .uuid(row.id)
        .time(row.disclosed_at)
        .uuid(row.subject_id)
        .text(row.recipient)
        .text(row.purpose)
        .list(row.categories)
        .opt_uuid(row.consent_id)
        .text(row.notice_version)
        .opt_text(row.request_id)
        .into_bytes()
}

struct Entry<'a> {
    id: Uuid,
    disclosed_at: time::OffsetDateTime,
    subject_id: Uuid,
    recipient: &'a str,
    purpose: &'a str,
    categories: &'a [String],
    consent_id: Option<Uuid>,
    notice_version: &'a str,
    request_id: Option<&'a str>,
}

/// Enters a consented read in the accounting of disclosures, in the read's transaction. Takes
/// the trail's chain lock, so call it last, just before commit.
pub async fn record_disclosure(
    tx: &mut PgConnection,
    subject: Uuid,
    d: &Disclosure,
    request_id: &str,
) -> Result<(), sqlx::Error> {
    let categories = [d.category.clone()];
    let entry = Entry {
        id: Uuid::new_v4(),
        disclosed_at: chain::now(),
        subject_id: subject,
        recipient: &d.recipient,
        purpose: &d.purpose,
        categories: &categories,
        consent_id: d.consent_id,
        notice_version: &d.notice_version,
        request_id: Some(request_id),
    };
    let prev = chain::head(tx, CHAIN_LOCK, "disclosures").await?;
    let row_hash = chain::link(&prev, &canonical(&entry));
    sqlx::query(
        "INSERT INTO disclosures (id, disclosed_at, subject_id, recipient, purpose, categories, consent_id, \
         notice_version, request_id, prev_hash, row_hash) \
         VALUES ($1, $2, $3, $4, $5, $6::record_category[], $7, $8, $9, $10, $11)",
    )
    .bind(entry.id)
    .bind(entry.disclosed_at)
    .bind(subject)
    .bind(entry.recipient)
    .bind(entry.purpose)
    .bind(entry.categories)
    .bind(entry.consent_id)
    .bind(entry.notice_version)
    .bind(request_id)
    .bind(prev)
    .bind(&row_hash[..])
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The hashed content of a stored row (also how a test recomputes a tampered chain).
pub fn canonical_of(row: &PgRow) -> Result<Vec<u8>, sqlx::Error> {
    let text = |name: &str| row.try_get::<String, _>(name);
    let (recipient, purpose, notice_version) = (text("recipient")?, text("purpose")?, text("notice_version")?);
    let categories: Vec<String> = row.try_get("categories")?;
    let request_id: Option<String> = row.try_get("request_id")?;
    Ok(canonical(&Entry {
        id: row.try_get("id")?,
        disclosed_at: row.try_get("disclosed_at")?,
        subject_id: row.try_get("subject_id")?,
        recipient: &recipient,
        purpose: &purpose,
        categories: &categories,
        consent_id: row.try_get("consent_id")?,
        notice_version: &notice_version,
        request_id: request_id.as_deref(),
    }))
}

/// Every column [`canonical_of`] reads, in chain order.
pub const SELECT: &str =
    "SELECT seq, id, disclosed_at, subject_id, recipient, purpose, categories::text[] AS categories, \
                          consent_id, notice_version, request_id, prev_hash, row_hash FROM disclosures ORDER BY seq";

/// Verifies the trail (`secondwind-admin audit verify --trail disclosures`).
pub async fn verify(pool: &PgPool, limit: usize) -> Result<Verification, sqlx::Error> {
    chain::verify_table(pool, SELECT, limit, canonical_of).await
}
