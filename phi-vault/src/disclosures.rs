//! The accounting of disclosures (42 CFR §2.24 / HIPAA §164.528): every consented read served to
//! a recipient outside the program, entered in the read's transaction, so a disclosure is on
//! record exactly when the contents were served. Append-only for the runtime role and
//! hash-chained (`common::chain`, length-prefixed fields, as the migration that chained the rows
//! already present computed them).

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use common::chain::{self, Fields, Verification};
use common::client::{AccountedDisclosure, AccountingPage, AccountingQuery};

use crate::policy::Disclosure;

const CHAIN_LOCK: i64 = 0x5357_5048_4944_4953;

const V1: &str = "disclosures-v1";
const V2: &str = "disclosures-v2";

fn canonical(row: &Entry<'_>) -> Vec<u8> {
    let Some(v2) = &row.v2 else {
        return Fields::new(V1)
            .uuid(row.id)
            .time(row.disclosed_at)
            .uuid(row.subject_id)
            .text(row.recipient)
            .text(row.purpose)
            .list(row.categories)
            .opt_uuid(row.consent_id)
            .text(row.notice_version)
            .opt_text(row.request_id)
            .into_bytes();
    };
    Fields::new(V2)
        .uuid(row.id)
        .time(row.disclosed_at)
        .uuid(row.subject_id)
        .text(row.recipient)
        .opt_text(v2.recipient_name)
        .text(row.purpose)
        .list(row.categories)
        .opt_uuid(row.consent_id)
        .text(row.notice_version)
        .text(v2.kind)
        .opt_text(v2.emergency)
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
    /// What disclosures-v2 adds; `None` for a row written before.
    v2: Option<V2Fields<'a>>,
}

struct V2Fields<'a> {
    recipient_name: Option<&'a str>,
    /// `consent` or `medical_emergency`.
    kind: &'a str,
    emergency: Option<&'a str>,
}

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
    let kind = if d.emergency.is_some() { "medical_emergency" } else { "consent" };
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
        v2: Some(V2Fields { recipient_name: d.recipient_name.as_deref(), kind, emergency: d.emergency.as_deref() }),
    };
    let prev = chain::head(tx, CHAIN_LOCK, "disclosures").await?;
    let row_hash = chain::link(&prev, &canonical(&entry));
    sqlx::query(
        "INSERT INTO disclosures (id, disclosed_at, subject_id, recipient, purpose, categories, consent_id, \
         notice_version, request_id, prev_hash, row_hash, format, recipient_name, kind, emergency) \
         VALUES ($1, $2, $3, $4, $5, $6::record_category[], $7, $8, $9, $10, $11, $12, $13, $14, $15)",
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
    .bind(V2)
    .bind(d.recipient_name.as_deref())
    .bind(kind)
    .bind(d.emergency.as_deref())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The hashed content of a stored row (also how a test recomputes a tampered chain).
pub fn canonical_of(row: &PgRow) -> Result<Vec<u8>, sqlx::Error> {
    let text = |name: &str| row.try_get::<String, _>(name);
    let (recipient, purpose, notice_version) = (text("recipient")?, text("purpose")?, text("notice_version")?);
    let (format, kind) = (text("format")?, text("kind")?);
    let categories: Vec<String> = row.try_get("categories")?;
    let opt = |name: &str| row.try_get::<Option<String>, _>(name);
    let (request_id, recipient_name, emergency) = (opt("request_id")?, opt("recipient_name")?, opt("emergency")?);
    let v2 = (format != V1).then(|| V2Fields {
        recipient_name: recipient_name.as_deref(),
        kind: &kind,
        emergency: emergency.as_deref(),
    });
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
        v2,
    }))
}

/// Every column [`canonical_of`] reads, in chain order.
pub const SELECT: &str = "SELECT seq, id, disclosed_at, subject_id, recipient, purpose, \
                          categories::text[] AS categories, consent_id, notice_version, request_id, prev_hash, \
                          row_hash, format, recipient_name, kind, emergency FROM disclosures ORDER BY seq";

/// Verifies the trail (`secondwind-operator audit verify --trail disclosures`).
pub async fn verify(pool: &PgPool, limit: usize) -> Result<Verification, sqlx::Error> {
    chain::verify_table(pool, SELECT, limit, canonical_of).await
}

/// How far back an accounting reaches unless asked otherwise (§2.24: six years).
pub const ACCOUNTING_YEARS: i32 = 6;

/// A subject's accounting of disclosures over a date range, oldest first, a page at a time:
/// every disclosure outside the program, under a consent or in a medical emergency. For the
/// subject's own route, the staff CLI and compliance officers alike.
pub async fn accounting(
    conn: &mut PgConnection,
    subject: Uuid,
    query: &AccountingQuery,
) -> Result<AccountingPage, sqlx::Error> {
    let today = time::OffsetDateTime::now_utc().date();
    let to = query.to.unwrap_or(today);
    let from = query.from.unwrap_or_else(|| {
        today.replace_year(today.year() - ACCOUNTING_YEARS).unwrap_or(today - time::Duration::days(6 * 365 + 2))
    });
    let limit = query.limit.unwrap_or(50);
    let rows = sqlx::query(
        "SELECT seq, disclosed_at, coalesce(recipient_name, recipient) AS recipient, \
         categories::text[] AS categories, purpose, consent_id, notice_version, kind, emergency \
         FROM disclosures WHERE subject_id = $1 AND seq > $2 \
         AND disclosed_at >= $3::date AND disclosed_at < $4::date + 1 ORDER BY seq LIMIT $5",
    )
    .bind(subject)
    .bind(query.after.unwrap_or(0))
    .bind(from)
    .bind(to)
    .bind(limit + 1)
    .fetch_all(&mut *conn)
    .await?;
    let (rows, next_after) = common::db::page_after(rows, limit, "seq")?;
    let disclosures = rows
        .iter()
        .map(|row| {
            Ok(AccountedDisclosure {
                disclosed_at: row.try_get("disclosed_at")?,
                recipient: row.try_get("recipient")?,
                categories: row.try_get("categories")?,
                purpose: row.try_get("purpose")?,
                consent_id: row.try_get("consent_id")?,
                notice_version: row.try_get("notice_version")?,
                kind: row.try_get("kind")?,
                emergency: row.try_get("emergency")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(AccountingPage { subject_id: subject, from: from.to_string(), to: to.to_string(), disclosures, next_after })
}
