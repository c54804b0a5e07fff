//! The compliance officer's wire types: the PHI access log, its reviews, and a patient's
//! accounting of disclosures. Plain data, shared by phi-vault, public-api and the staff CLI.

use serde::{Deserialize, Serialize};

/// How a disclosure was allowed: the schema of `AccountedDisclosure::kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DisclosureKind {
    Consent,
    MedicalEmergency,
}

/// An access-log decision: the schema of `AccessEntry::decision` and of the `decision` filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccessDecision {
    Permit,
    Deny,
}

/// A compliance finding: the schema of the reviews' `outcome` (the field stays text; phi-vault
/// checks it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReviewOutcome {
    Justified,
    Unjustified,
}

/// How an audited action ended: the schema of `AuditLogEntry::outcome` and the `outcome` filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    Success,
    Failure,
    Denied,
}

/// A break in a hash chain: the schema of `TrailBreak::problem`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TrailProblem {
    ContentChanged,
    LinkBroken,
}

/// A checkpoint problem: the schema of `CheckpointProblem::kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckpointProblemKind {
    Truncated,
    Rewritten,
    MissingCheckpoint,
    BadSignature,
    UnverifiableCheckpoints,
    ConflictingCheckpoints,
    Backwards,
    MalformedCheckpoint,
    UnreadablePlace,
}

/// A hash-chained trail, by its table: the schema of `TrailReport::trail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TrailName {
    AuditLogs,
    AccessLog,
    AccessReviews,
    Disclosures,
    Decisions,
    Consents,
    Revocations,
}

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
    #[schema(value_type = DisclosureKind)]
    pub kind: String,
    /// The nature of the emergency, for a medical emergency.
    pub emergency: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct AccountingPage {
    pub subject_id: uuid::Uuid,
    /// The range covered, inclusive (`YYYY-MM-DD`).
    #[schema(format = Date)]
    pub from: String,
    #[schema(format = Date)]
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
    #[schema(value_type = AccessDecision)]
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
    #[schema(value_type = ReviewOutcome)]
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
    #[schema(value_type = ReviewOutcome)]
    pub outcome: String,
    /// 1 to 2000 characters: what was checked and concluded.
    #[schema(min_length = 1, max_length = 2000)]
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
    #[schema(value_type = AuditOutcome)]
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
    #[schema(value_type = TrailProblem)]
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

/// One entry of the consent service's decision log: a disclosure question and its answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct DecisionEntry {
    pub seq: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub decided_at: time::OffsetDateTime,
    /// Whose records were asked for.
    pub subject_id: uuid::Uuid,
    /// Who would receive them, as `role:user id` (`partner:…`, `insurer:…`).
    pub recipient: String,
    pub categories: Vec<String>,
    pub purpose: String,
    pub permitted: bool,
    /// The consent relied on, when permitted.
    pub consent_id: Option<uuid::Uuid>,
    pub reason: String,
    /// The service that asked, for whom: `phi-vault for partner:…`.
    pub asked_by: String,
    pub request_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct DecisionPage {
    pub entries: Vec<DecisionEntry>,
    /// Pass as `after_seq` for the next page; absent on the last page.
    pub next_after_seq: Option<i64>,
    /// The log's last row when this page was read: pass it as `until_seq` on the following pages.
    pub head_seq: i64,
}

/// Filters for the decision log, parsed strictly (a malformed value is a 422 naming it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecisionQuery {
    pub subject_id: Option<uuid::Uuid>,
    /// The user a decision was asked for (the recipient acting).
    pub actor_id: Option<uuid::Uuid>,
    /// `role:user id`, exactly.
    pub recipient: Option<String>,
    pub purpose: Option<String>,
    pub permitted: Option<bool>,
    pub from: Option<time::Date>,
    pub to: Option<time::Date>,
    pub after_seq: i64,
    pub until_seq: Option<i64>,
    pub limit: i64,
}

impl DecisionQuery {
    /// The query string that asks for this (every value is from the checked alphabet).
    pub fn query_string(&self) -> String {
        crate::query_of(&[
            ("subject_id", self.subject_id.map(|v| v.to_string())),
            ("actor_id", self.actor_id.map(|v| v.to_string())),
            ("recipient", self.recipient.clone()),
            ("purpose", self.purpose.clone()),
            ("permitted", self.permitted.map(|v| v.to_string())),
            ("from", self.from.map(|v| v.to_string())),
            ("to", self.to.map(|v| v.to_string())),
            ("after_seq", Some(self.after_seq.to_string())),
            ("until_seq", self.until_seq.map(|v| v.to_string())),
            ("limit", Some(self.limit.to_string())),
        ])
    }

    /// `k=v` for each filter given, for an audit row's reason.
    pub fn describe(&self) -> String {
        let asked = [
            ("subject_id", self.subject_id.map(|v| v.to_string())),
            ("actor_id", self.actor_id.map(|v| v.to_string())),
            ("recipient", self.recipient.clone()),
            ("purpose", self.purpose.clone()),
            ("permitted", self.permitted.map(|v| v.to_string())),
            ("from", self.from.map(|v| v.to_string())),
            ("to", self.to.map(|v| v.to_string())),
        ];
        asked.into_iter().filter_map(|(k, v)| v.map(|v| format!("{k}={v}"))).collect::<Vec<_>>().join(" ")
    }
}

/// A problem with a trail's signed checkpoints (a cut-off tail, a rewritten stretch, a missing
/// or forged checkpoint), as `secondwind-operator audit verify` names them too.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct CheckpointProblem {
    /// `truncated`, `rewritten`, `missing_checkpoint`, `bad_signature`,
    /// `unverifiable_checkpoints`, `conflicting_checkpoints`, `backwards`,
    /// `malformed_checkpoint` or `unreadable_place`.
    #[schema(value_type = CheckpointProblemKind)]
    pub kind: String,
    /// One line for people.
    pub description: String,
    /// The first sequence number it shows to be bad, when it names one.
    pub first_bad_seq: Option<i64>,
}

/// Where a trail's checkpoints were found and how many.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct CheckpointPlace {
    /// `consent database`, `phi-vault checkpoint file`, …
    pub place: String,
    pub checkpoints: usize,
}

/// A trail checked end to end: its hash chain, and its signed checkpoints wherever they are
/// kept (the origin's database and file, and the database of each service receiving them).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct TrailReport {
    /// The trail's table: `audit_logs`, `access_log`, `access_reviews`, `disclosures`,
    /// `decisions`, `consents` or `revocations`.
    #[schema(value_type = TrailName)]
    pub trail: String,
    /// The service that writes it.
    pub origin: String,
    /// No chain break and no checkpoint problem.
    pub intact: bool,
    pub rows_checked: u64,
    pub last_seq: Option<i64>,
    /// The first chain breaks, in order (at most 100).
    pub breaks: Vec<TrailBreak>,
    /// The first 100 checkpoint problems.
    pub problems: Vec<CheckpointProblem>,
    /// How many more there were.
    pub problems_omitted: usize,
    /// The first sequence number shown to be bad, by the chain or a checkpoint.
    pub first_bad_seq: Option<i64>,
    /// Verified checkpoints (distinct numbers) across every place.
    pub checkpoints_verified: usize,
    pub places: Vec<CheckpointPlace>,
    /// The newest verified checkpoint's number and the sequence number it vouches for.
    pub latest_checkpoint: Option<(i64, i64)>,
    /// Checkpoints not delivered to a receiver yet (its origin retries): (number, place); the
    /// first 100.
    pub pending_delivery: Vec<(i64, String)>,
    pub pending_omitted: usize,
}

/// Every trail of every service, checked.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct TrailsVerification {
    pub intact: bool,
    pub trails: Vec<TrailReport>,
}
