//! Retention: expiry dates and consent-bound categories from `policies/retention.toml`, and the
//! job that purges expired records and records whose subject's consent to keep them ended. Safe with several instances running it at once: rows are claimed with
//! `FOR UPDATE SKIP LOCKED`, so each record is purged (and logged) exactly once. The consent
//! service is asked before any transaction begins; locks follow the order in `records.rs`.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use sqlx::{Connection, PgConnection, PgPool, Row};
use time::OffsetDateTime;
use uuid::Uuid;

use common::assertion::CallContext;
use common::client::{ClientError, ConsentClient, DisclosureQuestion};

use crate::access_log::{self, Access};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionPolicy {
    #[serde(default)]
    categories: BTreeMap<String, CategoryRule>,
    /// The most subjects whose records may be purged in 24 hours because their consent no
    /// longer stands (counted from the access log, so across runs; one instance runs at a time). More is what a
    /// compromised or broken consent service would order: a run that would pass the figure
    /// purges nothing, alarms, and an operator looks (raising it if the mass expiry is real).
    #[serde(default = "default_max_consent_purges")]
    max_consent_purges_per_day: usize,
}

fn default_max_consent_purges() -> usize {
    100
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        Self { categories: BTreeMap::new(), max_consent_purges_per_day: default_max_consent_purges() }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CategoryRule {
    /// The record expires this many days after it is written.
    #[serde(default)]
    max_age_days: Option<u32>,
    /// The record is kept only while the subject's consent with this purpose, to the program
    /// itself ([`PROGRAM`]), stands: refused at creation without it, purged once it ends.
    #[serde(default)]
    while_consented: Option<String>,
}

/// The advisory lock one instance's consent-ended purge run holds.
pub const RETENTION_LOCK: i64 = 0x5357_5245_5445_4e54;

/// The actor the retention job's access-log entries name.
const JOB: &str = "retention-job";
/// Why records whose consent ended were purged (also how the day's purges are counted).
const CONSENT_ENDED: &str = "the subject's consent to keep these records no longer stands";

/// The recipient named by a consent to keep records: the program itself.
pub const PROGRAM: &str = "secondwind";

impl RetentionPolicy {
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let policy: Self = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        for (name, rule) in &policy.categories {
            if !crate::records::CATEGORIES.contains(&name.as_str()) {
                return Err(format!("{}: unknown category `{name}`", path.display()));
            }
            if rule.max_age_days.is_none() && rule.while_consented.is_none() {
                return Err(format!("{}: `{name}` needs max_age_days or while_consented", path.display()));
            }
        }
        Ok(policy)
    }

    /// The expiry a new record gets: the earlier of what the caller asked for and the policy's.
    pub fn expiry(
        &self,
        category: &str,
        requested: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Option<OffsetDateTime> {
        let limit = self
            .categories
            .get(category)
            .and_then(|r| r.max_age_days)
            .map(|days| now + time::Duration::days(days.into()));
        match (requested, limit) {
            (Some(r), Some(l)) => Some(r.min(l)),
            (r, l) => r.or(l),
        }
    }
}

impl RetentionPolicy {
    /// The consent purpose a category's records are kept under, if any.
    pub fn consent_purpose(&self, category: &str) -> Option<&str> {
        self.categories.get(category).and_then(|r| r.while_consented.as_deref())
    }

    fn consent_bound(&self) -> impl Iterator<Item = (&str, &str)> {
        self.categories.iter().filter_map(|(c, r)| r.while_consented.as_deref().map(|p| (c.as_str(), p)))
    }
}

/// Whether the subject's consent to keep `category` records stands: `Ok(false)` only on the
/// consent service's clear refusal; an error when it cannot be asked (callers keep the records).
pub async fn consent_stands(
    consent: &ConsentClient,
    ctx: &CallContext,
    subject: Uuid,
    category: &str,
    purpose: &str,
) -> Result<bool, ClientError> {
    let question = DisclosureQuestion {
        subject_id: subject,
        recipient: PROGRAM.into(),
        categories: vec![category.to_owned()],
        purpose: purpose.to_owned(),
    };
    consent.decide(ctx, &question).await.map(|answer| answer.permitted)
}

/// Purges the records of every consent-bound category whose subject's consent no longer stands
/// (revoked or expired); returns how many. A subject the consent service cannot be asked about
/// keeps its records until a later run. Safe with several instances: the delete claims rows,
/// so each purge is logged once.
pub async fn purge_unconsented(
    pool: &PgPool,
    consent: &ConsentClient,
    policy: &RetentionPolicy,
) -> Result<u64, sqlx::Error> {
    // One instance at a time: the day's count and the purge must not interleave with another
    // run's. The lock is a session lock on a connection of its own, so it ends with the
    // connection (and with a crashed process); no request ever waits on it.
    let mut lock = PgConnection::connect_with(&pool.connect_options()).await?;
    let mine: bool =
        sqlx::query_scalar("SELECT pg_try_advisory_lock($1)").bind(RETENTION_LOCK).fetch_one(&mut lock).await?;
    if !mine {
        return Ok(0); // another instance is running it
    }
    let purged = purge_unconsented_locked(pool, consent, policy).await;
    let _ = lock.close().await;
    purged
}

async fn purge_unconsented_locked(
    pool: &PgPool,
    consent: &ConsentClient,
    policy: &RetentionPolicy,
) -> Result<u64, sqlx::Error> {
    let request_id = format!("retention-{}", Uuid::new_v4());
    let ctx = CallContext::system("retention_check", common::RequestId(request_id.clone()));
    // Records stored or changed after the questions were asked are not purged on their answers.
    let asked_from: time::OffsetDateTime = sqlx::query_scalar("SELECT now()").fetch_one(pool).await?;
    // First ask about every subject, then purge: a run that would take the day past the
    // policy's figure purges nothing.
    let mut due = Vec::new();
    for (category, purpose) in policy.consent_bound() {
        let subjects: Vec<Uuid> =
            sqlx::query_scalar("SELECT DISTINCT subject_id FROM records WHERE category::text = $1")
                .bind(category)
                .fetch_all(pool)
                .await?;
        for subject in subjects {
            match consent_stands(consent, &ctx, subject, category, purpose).await {
                Ok(true) => continue,
                Ok(false) => due.push((subject, category, purpose)),
                Err(e) => {
                    tracing::warn!(error = %e, %subject, "retention: consent unknown; records kept for now");
                    continue;
                }
            }
        }
    }
    // The day's subjects: those already purged in the last 24 hours, and these.
    let mut day: HashSet<Uuid> = sqlx::query_scalar(
        "SELECT DISTINCT subject_id FROM access_log WHERE action = 'record.purge' AND actor = $1 \
         AND reason = $2 AND occurred_at > now() - interval '1 day' AND subject_id IS NOT NULL",
    )
    .bind(JOB)
    .bind(CONSENT_ENDED)
    .fetch_all(pool)
    .await?
    .into_iter()
    .collect();
    let before = day.len();
    day.extend(due.iter().map(|(subject, _, _)| *subject));
    if day.len() > before && day.len() > policy.max_consent_purges_per_day {
        tracing::error!(
            subjects = day.len() - before,
            purged_today = before,
            limit = policy.max_consent_purges_per_day,
            alarm = "retention_volume",
            "RETENTION ALARM: the consent service says more subjects' consents ended than may be purged in a day; \
             nothing purged (check the consent service; raise max_consent_purges_per_day if this is real)"
        );
        return Ok(0);
    }
    let mut purged = 0;
    for (subject, category, purpose) in due {
        // Asked again just before the irreversible delete: a consent renewed during the run
        // keeps the records.
        if !matches!(consent_stands(consent, &ctx, subject, category, purpose).await, Ok(false)) {
            continue;
        }
        // Locks in the order of records.rs: record rows in id order, the access log last.
        let mut tx = pool.begin().await?;
        let rows = sqlx::query(
            "DELETE FROM records WHERE id IN (SELECT id FROM records WHERE subject_id = $1 AND category::text = $2 \
             AND created_at < $3 AND updated_at < $3 ORDER BY id FOR UPDATE) RETURNING id, subject_id",
        )
        .bind(subject)
        .bind(category)
        .bind(asked_from)
        .fetch_all(&mut *tx)
        .await?;
        log_purges(&mut tx, &rows, CONSENT_ENDED, &request_id).await?;
        tx.commit().await?;
        purged += rows.len() as u64;
    }
    Ok(purged)
}

impl RetentionPolicy {
    /// The same policy with another daily purge figure (tests).
    pub fn with_max_consent_purges(mut self, max: usize) -> Self {
        self.max_consent_purges_per_day = max;
        self
    }
}

/// Logs each purged record (rows carry `id` and `subject_id`) in the access log.
async fn log_purges(
    tx: &mut sqlx::PgConnection,
    rows: &[sqlx::postgres::PgRow],
    reason: &str,
    request_id: &str,
) -> Result<(), sqlx::Error> {
    for row in rows {
        let entry = Access {
            actor: JOB,
            actor_role: "system",
            purpose: "retention",
            subject_id: Some(row.try_get("subject_id")?),
            record_id: Some(row.try_get("id")?),
            action: "record.purge",
            permitted: true,
            reason,
            flagged: false,
            request_id,
        };
        access_log::append(tx, &entry).await?;
    }
    Ok(())
}

/// Purges up to `batch` expired records; returns how many.
pub async fn purge_expired(pool: &PgPool, batch: i64) -> Result<u64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let rows = sqlx::query(
        "DELETE FROM records WHERE id IN (SELECT id FROM records WHERE expires_at <= now() ORDER BY expires_at \
         LIMIT $1 FOR UPDATE SKIP LOCKED) RETURNING id, subject_id",
    )
    .bind(batch)
    .fetch_all(&mut *tx)
    .await?;
    let request_id = format!("retention-{}", Uuid::new_v4());
    log_purges(&mut tx, &rows, "retention period ended", &request_id).await?;
    tx.commit().await?;
    Ok(rows.len() as u64)
}

/// Runs both purges every `interval` until shutdown.
pub async fn run(
    pool: PgPool,
    consent: ConsentClient,
    policy: RetentionPolicy,
    interval: Duration,
    shutdown: rocket::Shutdown,
) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tokio::time::sleep(interval) => {
                match purge_unconsented(&pool, &consent, &policy).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(purged = n, "retention: records without standing consent purged"),
                    Err(e) => tracing::warn!(error = %e, "retention: consent purge failed; will retry"),
                }
                loop {
                    match purge_expired(&pool, 500).await {
                        Ok(0) => break,
                        Ok(n) => tracing::info!(purged = n, "retention: expired records purged"),
                        Err(e) => {
                            tracing::warn!(error = %e, "retention: purge failed; will retry");
                            break;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_policy_caps_intake_at_30_days() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/retention.toml");
        let policy = RetentionPolicy::load(&path).expect("valid");
        let now = OffsetDateTime::now_utc();
        assert_eq!(policy.expiry("intake_conversation", None, now), Some(now + time::Duration::days(30)));
        let sooner = now + time::Duration::days(2);
        assert_eq!(policy.expiry("intake_conversation", Some(sooner), now), Some(sooner));
        assert_eq!(
            policy.expiry("intake_conversation", Some(now + time::Duration::days(90)), now),
            Some(now + time::Duration::days(30))
        );
        assert_eq!(policy.expiry("identity", None, now), None);
        assert!(toml::from_str::<RetentionPolicy>("[categories.diary]\nmax_age_days = 1").is_ok());
        assert_eq!(policy.consent_purpose("coach_conversation"), Some("coach_retention"));
        assert_eq!(policy.expiry("coach_conversation", None, now), None, "kept while consent stands");
    }
}
