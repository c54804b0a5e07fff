//! Retention: expiry dates from `policies/retention.toml`, and the job that purges expired
//! records. Safe with several instances running it at once: rows are claimed with
//! `FOR UPDATE SKIP LOCKED`, so each record is purged (and logged) exactly once.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use sqlx::{PgPool, Row};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::access_log::{self, Access};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionPolicy {
    #[serde(default)]
    categories: BTreeMap<String, CategoryRule>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CategoryRule {
    max_age_days: u32,
}

impl RetentionPolicy {
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let policy: Self = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        for name in policy.categories.keys() {
            if !crate::records::CATEGORIES.contains(&name.as_str()) {
                return Err(format!("{}: unknown category `{name}`", path.display()));
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
        let limit = self.categories.get(category).map(|r| now + time::Duration::days(r.max_age_days.into()));
        match (requested, limit) {
            (Some(r), Some(l)) => Some(r.min(l)),
            (r, l) => r.or(l),
        }
    }
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
    for row in &rows {
        let entry = Access {
            actor: "retention-job",
            actor_role: "system",
            purpose: "retention",
            subject_id: Some(row.try_get("subject_id")?),
            record_id: Some(row.try_get("id")?),
            action: "record.purge",
            permitted: true,
            reason: "retention period ended",
            flagged: false,
            request_id: &request_id,
        };
        access_log::append(&mut tx, &entry).await?;
    }
    tx.commit().await?;
    Ok(rows.len() as u64)
}

/// Runs the purge every `interval` until shutdown.
pub async fn run(pool: PgPool, interval: Duration, shutdown: rocket::Shutdown) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tokio::time::sleep(interval) => {
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
    }
}
