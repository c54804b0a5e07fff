//! The PHI access log: every read, write and delete, permitted or denied, with who asked, in
//! which role, for what purpose, the decision and its reason. Hash-chained like the public audit
//! log (`common::chain`); record contents never enter it.

use serde::Serialize;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use common::chain::{self, Verification};

const CHAIN_LOCK: i64 = 0x5357_5048_4941_4343;

#[derive(Debug, Clone)]
pub struct Access<'a> {
    pub actor: &'a str,
    pub actor_role: &'a str,
    pub purpose: &'a str,
    pub subject_id: Option<Uuid>,
    pub record_id: Option<Uuid>,
    /// `record.create`, `record.read`, `record.update`, `record.delete`.
    pub action: &'a str,
    pub permitted: bool,
    pub reason: &'a str,
    pub request_id: &'a str,
}

#[derive(Serialize)]
struct Canonical<'a> {
    occurred_at_us: i128,
    actor: &'a str,
    actor_role: &'a str,
    purpose: &'a str,
    subject_id: Option<Uuid>,
    record_id: Option<Uuid>,
    action: &'a str,
    decision: &'a str,
    reason: Option<&'a str>,
    request_id: Option<&'a str>,
}

impl Canonical<'_> {
    fn bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

pub async fn append(tx: &mut PgConnection, a: &Access<'_>) -> Result<(), sqlx::Error> {
    let at = chain::now();
    let decision = if a.permitted { "permit" } else { "deny" };
    let canonical = Canonical {
        occurred_at_us: chain::micros(at),
        actor: a.actor,
        actor_role: a.actor_role,
        purpose: a.purpose,
        subject_id: a.subject_id,
        record_id: a.record_id,
        action: a.action,
        decision,
        reason: Some(a.reason),
        request_id: Some(a.request_id),
    };
    let prev = chain::head(tx, CHAIN_LOCK, "access_log").await?;
    let row_hash = chain::link(&prev, &canonical.bytes());
    sqlx::query(
        "INSERT INTO access_log (occurred_at, actor, actor_role, purpose, subject_id, record_id, action, decision, reason, \
         request_id, prev_hash, row_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(at)
    .bind(a.actor)
    .bind(a.actor_role)
    .bind(a.purpose)
    .bind(a.subject_id)
    .bind(a.record_id)
    .bind(a.action)
    .bind(decision)
    .bind(a.reason)
    .bind(a.request_id)
    .bind(prev)
    .bind(&row_hash[..])
    .execute(&mut *tx)
    .await?;
    Ok(())
}

pub async fn append_alone(pool: &PgPool, a: &Access<'_>) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    append(&mut tx, a).await?;
    tx.commit().await
}

pub async fn verify(pool: &PgPool, limit: usize) -> Result<Verification, sqlx::Error> {
    let sql = "SELECT seq, occurred_at, actor, actor_role, purpose, subject_id, record_id, action, decision, reason, \
               request_id, prev_hash, row_hash FROM access_log ORDER BY seq";
    chain::verify_table(pool, sql, limit, |row| {
        let text = |name: &str| row.try_get::<String, _>(name);
        let (actor, role, purpose, action, decision) =
            (text("actor")?, text("actor_role")?, text("purpose")?, text("action")?, text("decision")?);
        let reason: Option<String> = row.try_get("reason")?;
        let request_id: Option<String> = row.try_get("request_id")?;
        Ok(Canonical {
            occurred_at_us: chain::micros(row.try_get("occurred_at")?),
            actor: &actor,
            actor_role: &role,
            purpose: &purpose,
            subject_id: row.try_get("subject_id")?,
            record_id: row.try_get("record_id")?,
            action: &action,
            decision: &decision,
            reason: reason.as_deref(),
            request_id: request_id.as_deref(),
        }
        .bytes())
    })
    .await
}
