//! The accounting of disclosures as a trail: entering a disclosure under the chain lock,
//! verifying the chain, and reading a subject's accounting a page at a time.

use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgConnection, PgPool};
use uuid::Uuid;

use common::chain::{self, Verification};
use common::client::{AccountingPage, AccountingQuery};
use common::ApiError;

use super::queries::{self, ChainRow, SELECT};
use super::rules::{self, canonical, DisclosureKind, Entry, V2Fields, V1};
use crate::access_log::{self, Access};
use crate::policy::Disclosure;

const CHAIN_LOCK: i64 = 0x5357_5048_4944_4953;

/// Enters a disclosure in the accounting, in the read's transaction, with the notice version
/// sent along. Takes the trail's chain lock, so call it last, just before commit.
pub async fn record_disclosure(
    tx: &mut PgConnection,
    subject: Uuid,
    d: &Disclosure,
    notice_version: &str,
    request_id: &str,
) -> Result<(), sqlx::Error> {
    let categories = [d.category.clone()];
    let v2 = V2Fields {
        recipient_name: d.recipient_name.as_deref(),
        kind: DisclosureKind::of(d).as_str(),
        emergency: d.emergency.as_deref(),
    };
    let entry = Entry {
        id: Uuid::new_v4(),
        disclosed_at: chain::now(),
        subject_id: subject,
        recipient: &d.recipient,
        purpose: &d.purpose,
        categories: &categories,
        consent_id: d.consent_id,
        notice_version,
        request_id: Some(request_id),
        v2: Some(v2),
    };
    let prev = chain::head(tx, CHAIN_LOCK, "disclosures").await?;
    let row_hash = chain::link(&prev, &canonical(&entry));
    queries::insert(tx, &entry, v2, (prev, &row_hash[..])).await
}

/// The hashed content of a stored row (also how a test recomputes a tampered chain).
pub fn canonical_of(row: &PgRow) -> Result<Vec<u8>, sqlx::Error> {
    let row = ChainRow::from_row(row)?;
    let v2 = (row.format != V1).then(|| V2Fields {
        recipient_name: row.recipient_name.as_deref(),
        kind: &row.kind,
        emergency: row.emergency.as_deref(),
    });
    Ok(canonical(&Entry {
        id: row.id,
        disclosed_at: row.disclosed_at,
        subject_id: row.subject_id,
        recipient: &row.recipient,
        purpose: &row.purpose,
        categories: &row.categories,
        consent_id: row.consent_id,
        notice_version: &row.notice_version,
        request_id: row.request_id.as_deref(),
        v2,
    }))
}

/// Verifies the trail (`secondwind-operator audit verify --trail disclosures`).
pub async fn verify(pool: &PgPool, limit: usize) -> Result<Verification, sqlx::Error> {
    chain::verify_table(pool, SELECT, limit, canonical_of).await
}

/// A subject's accounting of disclosures over a date range, oldest first, a page at a time:
/// every disclosure outside the program, under a consent or in a medical emergency. For the
/// subject's own route, the staff CLI and compliance officers alike.
pub async fn accounting(
    conn: &mut PgConnection,
    subject: Uuid,
    query: &AccountingQuery,
) -> Result<AccountingPage, sqlx::Error> {
    let today = time::OffsetDateTime::now_utc().date();
    let (from, to) = rules::range(query, today);
    let limit = rules::limit(query);
    let rows = queries::accounting(conn, subject, query.after.unwrap_or(0), (from, to), limit + 1).await?;
    let (rows, next_after) = common::db::keyset_page(rows, limit, |row| row.seq);
    let disclosures = rows.into_iter().map(Into::into).collect();
    Ok(AccountingPage { subject_id: subject, from: from.to_string(), to: to.to_string(), disclosures, next_after })
}

/// An accounting read, and the reading logged with it (`reading`): the page, then the access
/// log's chain lock last.
pub(super) async fn read(
    pool: &PgPool,
    subject: Uuid,
    query: &AccountingQuery,
    reading: &Access<'_>,
) -> Result<AccountingPage, ApiError> {
    let mut tx = pool.begin().await?;
    let page = accounting(&mut tx, subject, query).await?;
    access_log::append(&mut tx, reading).await?;
    tx.commit().await?;
    Ok(page)
}
