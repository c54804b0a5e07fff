//! The retention policy: expiry dates and consent-bound categories, and the figure that caps
//! a day's consent purges. No database here.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::access_log::Access;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionPolicy {
    #[serde(default)]
    categories: BTreeMap<String, CategoryRule>,
    /// The most subjects whose records may be purged in 24 hours because their consent no
    /// longer stands (counted from the access log, so across runs; one instance runs at a
    /// time). More is what a compromised or broken consent service would order: a run that
    /// would pass the figure purges nothing, alarms, and an operator looks (raising it if the
    /// mass expiry is real).
    #[serde(default = "default_max_consent_purges")]
    pub(super) max_consent_purges_per_day: usize,
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
pub(super) const JOB: &str = "retention-job";
/// Why records whose consent ended were purged (also how the day's purges are counted).
pub(super) const CONSENT_ENDED: &str = "the subject's consent to keep these records no longer stands";
/// Why expired records were purged.
pub(super) const EXPIRED: &str = "retention period ended";

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

    pub(super) fn consent_bound(&self) -> impl Iterator<Item = (&str, &str)> {
        self.categories.iter().filter_map(|(c, r)| r.while_consented.as_deref().map(|p| (c.as_str(), p)))
    }

    /// Whether a run that takes the day's purged subjects from `before` to `after` would pass
    /// the day's figure (a run that adds nobody never does).
    pub(super) fn over_daily_figure(&self, before: usize, after: usize) -> bool {
        after > before && after > self.max_consent_purges_per_day
    }
}

impl RetentionPolicy {
    /// The same policy with another daily purge figure (tests).
    pub fn with_max_consent_purges(mut self, max: usize) -> Self {
        self.max_consent_purges_per_day = max;
        self
    }
}

/// The access-log entry of one purged record.
pub(super) fn purge_entry<'a>((record, subject): (Uuid, Uuid), reason: &'a str, request_id: &'a str) -> Access<'a> {
    Access {
        actor: JOB,
        actor_role: "system",
        purpose: "retention",
        subject_id: Some(subject),
        record_id: Some(record),
        action: "record.purge",
        permitted: true,
        reason,
        flagged: false,
        request_id,
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

    #[test]
    fn a_day_of_consent_purges_stops_at_its_figure() {
        let policy = RetentionPolicy::default().with_max_consent_purges(3);
        assert!(!policy.over_daily_figure(0, 3));
        assert!(policy.over_daily_figure(0, 4));
        assert!(policy.over_daily_figure(3, 4));
        assert!(!policy.over_daily_figure(5, 5), "a run that adds nobody purges what it may");
    }
}
