//! Every statement the accounting of disclosures and the notices run, one function each, and
//! the rows they read.

use sqlx::{FromRow, PgConnection, PgPool};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use common::client::AccountedDisclosure;

use super::rules::{DisclosureKind, Entry, V2Fields, V2};

/// Enters a disclosure, in the disclosures-v2 format, after the row whose hash is `prev`.
pub(super) async fn insert(
    tx: &mut PgConnection,
    entry: &Entry<'_>,
    v2: V2Fields<'_>,
    (prev, row_hash): (Vec<u8>, &[u8]),
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO disclosures (id, disclosed_at, subject_id, recipient, purpose, categories, consent_id, \
         notice_version, request_id, prev_hash, row_hash, format, recipient_name, kind, emergency) \
         VALUES ($1, $2, $3, $4, $5, $6::text[]::record_category[], $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        entry.id,
        entry.disclosed_at,
        entry.subject_id,
        entry.recipient,
        entry.purpose,
        entry.categories,
        entry.consent_id,
        entry.notice_version,
        entry.request_id,
        prev,
        row_hash,
        V2,
        v2.recipient_name,
        v2.kind,
        v2.emergency
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Every column [`super::canonical_of`] reads, in chain order.
/// Runtime SQL: `common::chain::verify_table` runs it, generic over every trail's columns.
pub const SELECT: &str = "SELECT seq, id, disclosed_at, subject_id, recipient, purpose, \
                          categories::text[] AS categories, consent_id, notice_version, request_id, prev_hash, \
                          row_hash, format, recipient_name, kind, emergency FROM disclosures ORDER BY seq";

/// A stored disclosure as its chain hashed it. Text, not [`DisclosureKind`]: the verifier hashes
/// what is stored, whatever it is.
#[derive(FromRow)]
pub(super) struct ChainRow {
    pub id: Uuid,
    pub disclosed_at: OffsetDateTime,
    pub subject_id: Uuid,
    pub recipient: String,
    pub purpose: String,
    pub categories: Vec<String>,
    pub consent_id: Option<Uuid>,
    pub notice_version: String,
    pub request_id: Option<String>,
    pub format: String,
    pub recipient_name: Option<String>,
    pub kind: String,
    pub emergency: Option<String>,
}

/// Up to `limit` of a subject's disclosures made on days `from` to `to`, oldest first after
/// `after`.
pub(super) async fn accounting(
    conn: &mut PgConnection,
    subject: Uuid,
    after: i64,
    (from, to): (Date, Date),
    limit: i64,
) -> Result<Vec<AccountedRow>, sqlx::Error> {
    sqlx::query_as!(
        AccountedRow,
        r#"SELECT seq, disclosed_at, coalesce(recipient_name, recipient) AS "recipient!",
         categories::text[] AS "categories!", purpose, consent_id, notice_version, kind AS "kind: _", emergency
         FROM disclosures WHERE subject_id = $1 AND seq > $2
         AND disclosed_at >= $3::date AND disclosed_at < $4::date + 1 ORDER BY seq LIMIT $5"#,
        subject,
        after,
        from,
        to,
        limit
    )
    .fetch_all(&mut *conn)
    .await
}

/// A disclosure as an accounting shows it.
#[derive(FromRow)]
pub(super) struct AccountedRow {
    pub seq: i64,
    pub disclosed_at: OffsetDateTime,
    /// The recipient's name where known, else as it acted.
    pub recipient: String,
    pub categories: Vec<String>,
    pub purpose: String,
    pub consent_id: Option<Uuid>,
    pub notice_version: String,
    pub kind: DisclosureKind,
    pub emergency: Option<String>,
}

impl From<AccountedRow> for AccountedDisclosure {
    fn from(row: AccountedRow) -> Self {
        Self {
            disclosed_at: row.disclosed_at,
            recipient: row.recipient,
            categories: row.categories,
            purpose: row.purpose,
            consent_id: row.consent_id,
            notice_version: row.notice_version,
            kind: row.kind.as_str().to_owned(),
            emergency: row.emergency,
        }
    }
}

/// Records a notice version and its text's hash, unless that version is recorded already.
pub(super) async fn insert_notice(pool: &PgPool, version: &str, text: &str, sha256: &[u8]) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO notices (version, body, body_sha256) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        version,
        text,
        sha256
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// The hash recorded with a notice version.
pub(super) async fn notice_sha256(pool: &PgPool, version: &str) -> Result<Vec<u8>, sqlx::Error> {
    sqlx::query_scalar!("SELECT body_sha256 FROM notices WHERE version = $1", version).fetch_one(pool).await
}
