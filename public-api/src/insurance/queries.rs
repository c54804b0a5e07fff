//! Insurance verification's SQL, checked against the schema at build time (`.sqlx/`).

use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use common::db::Text;
use common::insurance::{InsuranceStatus, InsuranceView};

/// A verification request as stored (its member details are the phi-vault record it names).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InsuranceRow {
    pub id: Uuid,
    pub seq: i64,
    pub beneficiary_id: Uuid,
    pub status: InsuranceStatus,
    pub provider: String,
    pub submitted_at: OffsetDateTime,
    pub decided_at: Option<OffsetDateTime>,
    pub decided_by: Option<Uuid>,
    pub reason: Option<String>,
    pub details_record_id: Option<Uuid>,
}

impl InsuranceRow {
    pub fn view(&self) -> InsuranceView {
        InsuranceView {
            id: self.id,
            beneficiary_id: self.beneficiary_id,
            status: self.status,
            provider: self.provider.clone(),
            submitted_at: self.submitted_at,
            decided_at: self.decided_at,
            decided_by: self.decided_by,
            reason: self.reason.clone(),
        }
    }
}

/// Decides a pending request; `None` when it was no longer pending.
pub async fn decide(
    tx: &mut PgConnection,
    id: Uuid,
    status: InsuranceStatus,
    by: Option<Uuid>,
    reason: Option<&str>,
) -> Result<Option<InsuranceRow>, sqlx::Error> {
    sqlx::query_as!(
        InsuranceRow,
        r#"UPDATE insurance_verifications SET status = $2, decided_at = now(), decided_by = $3, reason = $4
           WHERE id = $1 AND status = 'pending'
           RETURNING id, seq, beneficiary_id, status AS "status: Text<InsuranceStatus>", provider, submitted_at, decided_at, decided_by,
           reason, details_record_id"#,
        id,
        status.as_str(),
        by,
        reason,
    )
    .fetch_optional(&mut *tx)
    .await
}

/// Whether a request of the beneficiary is pending.
pub async fn pending(pool: &PgPool, beneficiary: Uuid) -> Result<bool, sqlx::Error> {
    let found = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM insurance_verifications WHERE beneficiary_id = $1 AND status = 'pending')
           AS "found!""#,
        beneficiary,
    )
    .fetch_one(pool)
    .await?;
    Ok(found)
}

/// A new pending request; `None` when one of the beneficiary's is pending already.
pub async fn insert(
    tx: &mut PgConnection,
    beneficiary: Uuid,
    details_record: Uuid,
    provider: &str,
) -> Result<Option<InsuranceRow>, sqlx::Error> {
    sqlx::query_as!(
        InsuranceRow,
        r#"INSERT INTO insurance_verifications (id, beneficiary_id, details_record_id, provider)
           VALUES ($1, $2, $3, $4) ON CONFLICT (beneficiary_id) WHERE status = 'pending' DO NOTHING
           RETURNING id, seq, beneficiary_id, status AS "status: Text<InsuranceStatus>", provider, submitted_at, decided_at, decided_by,
           reason, details_record_id"#,
        Uuid::new_v4(),
        beneficiary,
        details_record,
        provider,
    )
    .fetch_optional(&mut *tx)
    .await
}

/// A beneficiary's latest request, if any.
pub async fn latest(conn: &mut PgConnection, beneficiary: Uuid) -> Result<Option<InsuranceView>, sqlx::Error> {
    let row = sqlx::query_as!(
        InsuranceRow,
        r#"SELECT id, seq, beneficiary_id, status AS "status: Text<InsuranceStatus>", provider, submitted_at, decided_at, decided_by,
           reason, details_record_id FROM insurance_verifications WHERE beneficiary_id = $1
           ORDER BY seq DESC LIMIT 1"#,
        beneficiary,
    )
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.as_ref().map(InsuranceRow::view))
}

/// Requests in `status`, oldest first, after `after` (`limit` rows).
pub async fn queue(
    pool: &PgPool,
    status: InsuranceStatus,
    after: i64,
    limit: i64,
) -> Result<Vec<InsuranceRow>, sqlx::Error> {
    sqlx::query_as!(
        InsuranceRow,
        r#"SELECT id, seq, beneficiary_id, status AS "status: Text<InsuranceStatus>", provider, submitted_at, decided_at, decided_by,
           reason, details_record_id FROM insurance_verifications WHERE status = $1 AND seq > $2
           ORDER BY seq LIMIT $3"#,
        status.as_str(),
        after,
        limit,
    )
    .fetch_all(pool)
    .await
}

pub async fn by_id(pool: &PgPool, id: Uuid) -> Result<Option<InsuranceRow>, sqlx::Error> {
    sqlx::query_as!(
        InsuranceRow,
        r#"SELECT id, seq, beneficiary_id, status AS "status: Text<InsuranceStatus>", provider, submitted_at, decided_at, decided_by,
           reason, details_record_id FROM insurance_verifications WHERE id = $1"#,
        id,
    )
    .fetch_optional(pool)
    .await
}
