//! The compliance officer's wire types: the PHI access log, its reviews, and a patient's
//! accounting of disclosures. Plain data, shared by phi-vault, public-api and the staff CLI.

use serde::{Deserialize, Serialize};

/// One disclosure in a patient's accounting.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct AccountedDisclosure {
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub disclosed_at: time::OffsetDateTime,
    /// Who received the records, by name where known.
    pub recipient: String,
    /// The categories of records disclosed.
    pub categories: Vec<String>,
    pub purpose: String,
    /// The consent relied on; none for a medical emergency.
    pub consent_id: Option<uuid::Uuid>,
    /// The redisclosure notice version sent with the records.
    pub notice_version: String,
    /// `consent`, or `medical_emergency` (42 CFR §2.51).
    pub kind: String,
    /// The nature of the emergency, for a medical emergency.
    pub emergency: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct AccountingPage {
    pub subject_id: uuid::Uuid,
    /// The range covered, inclusive (`YYYY-MM-DD`).
    pub from: String,
    pub to: String,
    pub disclosures: Vec<AccountedDisclosure>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<i64>,
}

/// One access-log entry: who, in which role, why, what, and the decision. Never contents.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct AccessEntry {
    pub seq: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub occurred_at: time::OffsetDateTime,
    pub actor: String,
    pub actor_role: String,
    pub purpose: String,
    pub subject_id: Option<uuid::Uuid>,
    pub record_id: Option<uuid::Uuid>,
    /// `record.read`, `record.create`, `record.list`, `subject.shred`, `key.rewrap`, ...
    pub action: String,
    /// `permit` or `deny`.
    pub decision: String,
    pub reason: Option<String>,
    /// Flagged for compliance review (break-glass).
    pub flagged: bool,
    pub request_id: Option<String>,
    /// The compliance review, once made.
    pub review: Option<AccessReview>,
}

/// A compliance officer's finding on a flagged access. Final once made.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct AccessReview {
    /// `justified` or `unjustified`.
    pub outcome: String,
    pub note: String,
    pub reviewed_by: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub reviewed_at: time::OffsetDateTime,
}

/// What a compliance officer submits about a flagged access.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewRequest {
    /// `justified` or `unjustified`.
    pub outcome: String,
    /// 1 to 2000 characters: what was checked and concluded.
    pub note: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct AccessLogPage {
    pub entries: Vec<AccessEntry>,
    /// Pass as `after_seq` for the next page; absent on the last page.
    pub next_after_seq: Option<i64>,
}

/// One row of the public audit log, as a compliance officer reads it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct AuditLogEntry {
    pub seq: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub occurred_at: time::OffsetDateTime,
    /// The user the server proved, when a user acted.
    pub actor_id: Option<uuid::Uuid>,
    /// The operating-system account, when an operator acted (no user).
    pub operator: Option<String>,
    /// Dotted verb, e.g. `application.status`, `user.role_grant`, `auth.login`.
    pub action: String,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    /// `success`, `failure` or `denied`.
    pub outcome: String,
    pub reason: Option<String>,
    /// Only when asked for (`include_ip=true`): an address is an identifier.
    pub ip: Option<String>,
    pub request_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct AuditLogPage {
    pub entries: Vec<AuditLogEntry>,
    /// Pass as `after_seq` for the next page; absent on the last page.
    pub next_after_seq: Option<i64>,
    /// The trail's last row when this page was read: pass it as `until_seq` on the following
    /// pages so that reading the trail (itself audited) does not keep lengthening it.
    pub head_seq: i64,
}

/// One break in a hash-chained trail.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct TrailBreak {
    pub seq: i64,
    /// `content_changed` (a row was edited) or `link_broken` (removed, inserted or reordered).
    pub problem: String,
}

/// A trail's verification: every row's hash recomputed and every link followed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct TrailVerification {
    /// `public` (the public audit log).
    pub trail: String,
    pub intact: bool,
    pub rows_checked: u64,
    /// The first breaks, in order (at most 100).
    pub breaks: Vec<TrailBreak>,
    pub first_bad_seq: Option<i64>,
}
