//! The public audit log: every authenticated state change and every auth event, appended in the
//! same transaction as the change it records, hash-chained (see `common::chain`). The runtime
//! role may only SELECT and INSERT it.

use std::net::IpAddr;

use serde::Serialize;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use common::chain::{self, Verification};

/// Serialises appends to `audit_logs` across every instance.
const CHAIN_LOCK: i64 = 0x5357_4155_4449_5401;
const MAX_USER_AGENT: usize = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success,
    Failure,
    Denied,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Denied => "denied",
        }
    }
}

/// What happened, by whom, to what. Never holds tokens, PHI or record contents.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub actor_id: Option<Uuid>,
    /// Dotted verb, e.g. `auth.login`, `auth.refresh_reuse_detected`, `user.update`.
    pub action: &'static str,
    pub resource_type: Option<&'static str>,
    pub resource_id: Option<String>,
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub outcome: Outcome,
    /// Why, for staff actions (e.g. a role grant's justification). Never PHI.
    pub reason: Option<String>,
    /// For an operator's action (no user acted): the operating-system account that ran the
    /// operator command (`secondwind-operator`), read from the process's uid. The role is `operator`.
    pub operator: Option<String>,
}

/// The hashed form of a row: fixed field order, times in microseconds.
#[derive(Serialize)]
struct Canonical<'a> {
    id: Uuid,
    occurred_at_us: i128,
    actor_id: Option<Uuid>,
    action: &'a str,
    resource_type: Option<&'a str>,
    resource_id: Option<&'a str>,
    ip: Option<&'a str>,
    user_agent: Option<&'a str>,
    request_id: Option<&'a str>,
    outcome: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    operator: Option<&'a str>,
}

impl Canonical<'_> {
    fn bytes(&self) -> Vec<u8> {
        // Serialising a struct of plain fields cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

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
    sqlx::query(
        "INSERT INTO audit_logs (id, occurred_at, actor_id, action, resource_type, resource_id, ip, user_agent, \
         request_id, outcome, reason, operator, prev_hash, row_hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7::inet, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(id)
    .bind(occurred_at)
    .bind(event.actor_id)
    .bind(event.action)
    .bind(event.resource_type)
    .bind(event.resource_id.as_deref())
    .bind(ip.as_deref())
    .bind(user_agent.as_deref())
    .bind(event.request_id.as_deref())
    .bind(event.outcome.as_str())
    .bind(event.reason.as_deref())
    .bind(event.operator.as_deref())
    .bind(prev)
    .bind(&row_hash[..])
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

/// The whole trail in chain order, with every column [`canonical_of`] reads.
pub const SELECT: &str = "SELECT seq, id, occurred_at, actor_id, action, resource_type, resource_id, host(ip) AS ip, \
                          user_agent, request_id, outcome, reason, operator, prev_hash, row_hash FROM audit_logs ORDER BY seq";

/// The hashed content of a stored row (also how a test recomputes a tampered chain).
pub fn canonical_of(row: &sqlx::postgres::PgRow) -> Result<Vec<u8>, sqlx::Error> {
    let text = |name: &str| row.try_get::<Option<String>, _>(name);
    let (ip, resource_id, resource_type, user_agent, request_id, reason, operator) = (
        text("ip")?,
        text("resource_id")?,
        text("resource_type")?,
        text("user_agent")?,
        text("request_id")?,
        text("reason")?,
        text("operator")?,
    );
    let (action, outcome): (String, String) = (row.try_get("action")?, row.try_get("outcome")?);
    Ok(Canonical {
        id: row.try_get("id")?,
        occurred_at_us: chain::micros(row.try_get("occurred_at")?),
        actor_id: row.try_get("actor_id")?,
        action: &action,
        resource_type: resource_type.as_deref(),
        resource_id: resource_id.as_deref(),
        ip: ip.as_deref(),
        user_agent: user_agent.as_deref(),
        request_id: request_id.as_deref(),
        outcome: &outcome,
        reason: reason.as_deref(),
        operator: operator.as_deref(),
    }
    .bytes())
}

/// Streams the whole trail in order and reports every break (up to `limit`).
pub async fn verify(pool: &PgPool, limit: usize) -> Result<Verification, sqlx::Error> {
    chain::verify_table(pool, SELECT, limit, canonical_of).await
}
