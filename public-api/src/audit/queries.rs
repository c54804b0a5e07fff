//! The trail's SQL: appends under the chain lock, the officer's pages, and the chain's
//! verification.

use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use common::chain::{self, Verification};
use common::checkpoint::Trail;
use common::compliance::AuditLogEntry;

use super::rules::{AuditEvent, AuditLogQuery, Canonical};

/// Serialises appends to `audit_logs` across every instance.
const CHAIN_LOCK: i64 = 0x5357_4155_4449_5401;
const MAX_USER_AGENT: usize = 512;

/// Appends `event` inside the caller's transaction; returns the row id.
pub async fn record(tx: &mut PgConnection, event: &AuditEvent) -> Result<Uuid, sqlx::Error> {
    let id = Uuid::new_v4();
    let occurred_at = chain::now();
    let ip = event.ip.map(|ip| ip.to_string());
    let user_agent = event.user_agent.as_deref().map(|ua| ua.chars().take(MAX_USER_AGENT).collect::<String>());
    let canonical = Canonical {
        id,
        occurred_at_us: chain::micros(occurred_at),
        actor_id: event.actor_id,
        action: event.action,
        resource_type: event.resource_type,
        resource_id: event.resource_id.as_deref(),
        ip: ip.as_deref(),
        user_agent: user_agent.as_deref(),
        request_id: event.request_id.as_deref(),
        outcome: event.outcome.as_str(),
        reason: event.reason.as_deref(),
        operator: event.operator.as_deref(),
    };
    let prev = chain::head(tx, CHAIN_LOCK, "audit_logs").await?;
    let row_hash = chain::link(&prev, &canonical.bytes());
    // The address arrives as text and is cast, so the stored `inet` is what was hashed.
    sqlx::query!(
        "INSERT INTO audit_logs (id, occurred_at, actor_id, action, resource_type, resource_id, ip, user_agent, \
         request_id, outcome, reason, operator, prev_hash, row_hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7::text::inet, $8, $9, $10, $11, $12, $13, $14)",
        id,
        occurred_at,
        event.actor_id,
        event.action,
        event.resource_type,
        event.resource_id.as_deref(),
        ip.as_deref(),
        user_agent.as_deref(),
        event.request_id.as_deref(),
        event.outcome.as_str(),
        event.reason.as_deref(),
        event.operator.as_deref(),
        prev,
        &row_hash[..],
    )
    .execute(&mut *tx)
    .await?;
    Ok(id)
}

/// Appends `event` in a transaction of its own (auth failures, where nothing else is written).
/// Tried again on a lost connection ([`common::db::retry_if_lost`]): the event often records
/// work already done elsewhere (in the PHI vault), which must not stay unaudited.
pub async fn record_alone(pool: &PgPool, event: &AuditEvent) -> Result<Uuid, sqlx::Error> {
    common::db::retry_if_lost(|| async {
        let mut tx = pool.begin().await?;
        let id = record(&mut tx, event).await?;
        tx.commit().await?;
        Ok(id)
    })
    .await
}

/// A row of the audit log as a compliance officer reads it.
#[derive(Debug, FromRow)]
pub struct AuditLogRow {
    pub seq: i64,
    pub occurred_at: OffsetDateTime,
    pub actor_id: Option<Uuid>,
    pub operator: Option<String>,
    pub action: String,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub outcome: String,
    pub reason: Option<String>,
    pub ip: Option<String>,
    pub request_id: Option<String>,
}

impl AuditLogRow {
    /// The entry shown; its address only when asked for.
    pub fn entry(self, include_ip: bool) -> AuditLogEntry {
        AuditLogEntry {
            seq: self.seq,
            occurred_at: self.occurred_at,
            actor_id: self.actor_id,
            operator: self.operator,
            action: self.action,
            resource_type: self.resource_type,
            resource_id: self.resource_id,
            outcome: self.outcome,
            reason: self.reason,
            ip: if include_ip { self.ip } else { None },
            request_id: self.request_id,
        }
    }
}

/// The rows `q` selects, oldest first: one more than `q.limit`, which tells that another page
/// follows.
pub async fn page(pool: &PgPool, q: &AuditLogQuery) -> Result<Vec<AuditLogRow>, sqlx::Error> {
    let (action_exact, action_prefix) = q.action_match();
    sqlx::query_as!(
        AuditLogRow,
        "SELECT seq, occurred_at, actor_id, operator, action, resource_type, resource_id, outcome, reason, \
         host(ip) AS ip, request_id FROM audit_logs WHERE seq > $1 \
         AND ($2::uuid IS NULL OR actor_id = $2) AND ($3::text IS NULL OR action = $3) \
         AND ($4::text IS NULL OR starts_with(action, $4)) AND ($5::text IS NULL OR resource_type = $5) \
         AND ($6::text IS NULL OR resource_id = $6) AND ($7::text IS NULL OR outcome = $7) \
         AND ($8::date IS NULL OR occurred_at >= ($8::date)::timestamp AT TIME ZONE 'UTC') \
         AND ($9::date IS NULL OR occurred_at < ($9::date + 1)::timestamp AT TIME ZONE 'UTC') \
         AND ($11::bigint IS NULL OR seq <= $11) \
         ORDER BY seq LIMIT $10",
        q.after,
        q.actor,
        action_exact,
        action_prefix,
        q.resource_type,
        q.resource_id,
        q.outcome,
        q.from,
        q.to,
        q.limit + 1,
        q.until,
    )
    .fetch_all(pool)
    .await
}

/// The trail's last sequence number (0 for an empty trail).
pub async fn head_seq(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(r#"SELECT coalesce(max(seq), 0) AS "head!" FROM audit_logs"#).fetch_one(pool).await
}

/// The whole trail in chain order, with every column [`canonical_of`] reads.
///
/// Run as runtime SQL, not a checked macro: [`chain::verify_table`] streams any trail's rows
/// generically (it reads `seq` and the hashes itself and hands each row to `canonical_of`), and
/// tests use the same text to recompute a tampered chain.
pub const SELECT: &str = "SELECT seq, id, occurred_at, actor_id, action, resource_type, resource_id, host(ip) AS ip, \
                          user_agent, request_id, outcome, reason, operator, prev_hash, row_hash FROM audit_logs ORDER BY seq";

/// A stored row's hashed content, as [`SELECT`] reads it.
#[derive(Debug, FromRow)]
struct ChainRow {
    id: Uuid,
    occurred_at: OffsetDateTime,
    actor_id: Option<Uuid>,
    action: String,
    resource_type: Option<String>,
    resource_id: Option<String>,
    ip: Option<String>,
    user_agent: Option<String>,
    request_id: Option<String>,
    outcome: String,
    reason: Option<String>,
    operator: Option<String>,
}

/// The hashed content of a stored row (also how a test recomputes a tampered chain). The text
/// columns are hashed as stored, never re-parsed: a changed value must show as a changed hash.
pub fn canonical_of(row: &PgRow) -> Result<Vec<u8>, sqlx::Error> {
    let row = ChainRow::from_row(row)?;
    Ok(Canonical {
        id: row.id,
        occurred_at_us: chain::micros(row.occurred_at),
        actor_id: row.actor_id,
        action: &row.action,
        resource_type: row.resource_type.as_deref(),
        resource_id: row.resource_id.as_deref(),
        ip: row.ip.as_deref(),
        user_agent: row.user_agent.as_deref(),
        request_id: row.request_id.as_deref(),
        outcome: &row.outcome,
        reason: row.reason.as_deref(),
        operator: row.operator.as_deref(),
    }
    .bytes())
}

/// Streams the whole trail in order and reports every break (up to `limit`).
pub async fn verify(pool: &PgPool, limit: usize) -> Result<Verification, sqlx::Error> {
    chain::verify_table(pool, SELECT, limit, canonical_of).await
}

/// Verifies public-api's trail's hash chain (`common::anchor::VerifyChain`).
pub fn verify_chain(
    trail: Trail,
    pool: PgPool,
    limit: usize,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Verification, sqlx::Error>> + Send>> {
    Box::pin(async move {
        match trail {
            Trail::AuditLogs => verify(&pool, limit).await,
            other => Err(sqlx::Error::Protocol(format!("{} is not a public-api trail", other.as_str()))),
        }
    })
}
