//! The access log's entries and reviews as values: what an entry holds, the bytes its chain
//! hashes, and who may read or review the log. No database here.

use serde::Serialize;
use uuid::Uuid;

use common::assertion::Claims;
use common::chain::Fields;
use common::Role;

use crate::policy::Decision;

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
    /// For compliance review (break-glass).
    pub flagged: bool,
    pub request_id: &'a str,
}

/// The entry of an access by the caller of `call`: who, in which role, for what purpose, and
/// what was decided.
pub(crate) fn access<'a>(
    call: &'a Claims,
    subject: Option<Uuid>,
    record: Option<Uuid>,
    action: &'a str,
    decision: &'a Decision,
) -> Access<'a> {
    Access {
        actor: &call.sub,
        actor_role: call.role.as_str(),
        purpose: &call.purpose,
        subject_id: subject,
        record_id: record,
        action,
        permitted: decision.permitted,
        reason: &decision.reason,
        flagged: decision.flagged,
        request_id: &call.request_id,
    }
}

/// An access-log entry that owns its fields, for work that outlives the request's borrows (the
/// group commit's steps, which may run twice).
#[derive(Debug, Clone)]
pub struct Entry {
    pub actor: String,
    pub actor_role: String,
    pub purpose: String,
    pub subject_id: Option<Uuid>,
    pub record_id: Option<Uuid>,
    pub action: String,
    pub permitted: bool,
    pub reason: String,
    pub flagged: bool,
    pub request_id: String,
}

impl Entry {
    pub fn access(&self) -> Access<'_> {
        Access {
            actor: &self.actor,
            actor_role: &self.actor_role,
            purpose: &self.purpose,
            subject_id: self.subject_id,
            record_id: self.record_id,
            action: &self.action,
            permitted: self.permitted,
            reason: &self.reason,
            flagged: self.flagged,
            request_id: &self.request_id,
        }
    }
}

impl Access<'_> {
    pub fn to_entry(&self) -> Entry {
        Entry {
            actor: self.actor.into(),
            actor_role: self.actor_role.into(),
            purpose: self.purpose.into(),
            subject_id: self.subject_id,
            record_id: self.record_id,
            action: self.action.into(),
            permitted: self.permitted,
            reason: self.reason.into(),
            flagged: self.flagged,
            request_id: self.request_id.into(),
        }
    }
}

/// The `decision` column: `permit` or `deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum LoggedDecision {
    Permit,
    Deny,
}

impl LoggedDecision {
    pub fn of(permitted: bool) -> Self {
        if permitted {
            Self::Permit
        } else {
            Self::Deny
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Permit => "permit",
            Self::Deny => "deny",
        }
    }
}

/// A review's finding, the `outcome` column of `access_reviews`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum ReviewOutcome {
    Justified,
    Unjustified,
}

impl ReviewOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Justified => "justified",
            Self::Unjustified => "unjustified",
        }
    }
}

/// An entry as its chain hashes it.
#[derive(Serialize)]
pub(super) struct Canonical<'a> {
    pub occurred_at_us: i128,
    pub actor: &'a str,
    pub actor_role: &'a str,
    pub purpose: &'a str,
    pub subject_id: Option<Uuid>,
    pub record_id: Option<Uuid>,
    pub action: &'a str,
    pub decision: &'a str,
    pub reason: Option<&'a str>,
    pub request_id: Option<&'a str>,
    /// Left out when false, so rows from before the flag existed hash as they always did.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub flagged: bool,
}

impl Canonical<'_> {
    pub fn bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// The most entries one page returns.
pub const MAX_PAGE: i64 = 500;

/// The action of reading the log, as the log names it.
pub(super) const READ: &str = "access_log.read";
/// The action of reviewing an entry.
pub(super) const REVIEW: &str = "access_log.review";

/// How many entries a page asked for returns: 100 unless asked, 1 to [`MAX_PAGE`].
pub(super) fn page_limit(asked: Option<i64>) -> i64 {
    asked.unwrap_or(100).clamp(1, MAX_PAGE)
}

/// Who reads the access log: compliance officers only.
pub(super) fn reading(claims: &Claims) -> Decision {
    if claims.role == Role::ComplianceOfficer {
        Decision::permit("compliance review")
    } else {
        Decision::deny("only compliance officers read the access log")
    }
}

/// Who reviews a flagged entry: compliance officers only (and never their own access, which
/// the review itself finds out).
pub(super) fn reviewing(claims: &Claims) -> Decision {
    if claims.role == Role::ComplianceOfficer {
        Decision::permit("compliance review")
    } else {
        Decision::deny("only compliance officers review")
    }
}

/// The refusal logged when a reviewer made the access under review.
pub(super) fn own_access() -> Decision {
    Decision::deny("separation of duties: the reviewer made this access")
}

/// Why a review could not be recorded.
#[derive(Debug)]
pub enum ReviewRefusal {
    /// No such entry, or not one flagged for review.
    NotFlagged,
    AlreadyReviewed,
    /// Separation of duties: the reviewer made the access under review, whatever roles they hold.
    OwnAccess,
}

/// A review as its chain hashes it.
pub(super) struct Review<'a> {
    pub seq: i64,
    pub outcome: &'a str,
    pub note: &'a str,
    pub reviewed_by: &'a str,
    pub reviewed_at: time::OffsetDateTime,
}

impl Review<'_> {
    pub fn canonical(&self) -> Vec<u8> {
        Fields::new("access_reviews-v1")
            .int(self.seq)
            .text(self.outcome)
            .text(self.note)
            .text(self.reviewed_by)
            .time(self.reviewed_at)
            .into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(flagged: bool) -> Vec<u8> {
        Canonical {
            occurred_at_us: 1,
            actor: "a",
            actor_role: "caseworker",
            purpose: "treatment",
            subject_id: None,
            record_id: None,
            action: "record.read",
            decision: LoggedDecision::of(true).as_str(),
            reason: Some("care_team"),
            request_id: Some("r"),
            flagged,
        }
        .bytes()
    }

    /// The bytes an entry's chain hashes: any change here breaks every stored chain.
    #[test]
    fn an_entry_hashes_as_its_json_with_the_flag_only_when_set() {
        let bare = r#"{"occurred_at_us":1,"actor":"a","actor_role":"caseworker","purpose":"treatment","subject_id":null,"record_id":null,"action":"record.read","decision":"permit","reason":"care_team","request_id":"r"}"#;
        assert_eq!(String::from_utf8(canonical(false)).expect("utf-8"), bare);
        let flagged = format!("{},\"flagged\":true}}", &bare[..bare.len() - 1]);
        assert_eq!(String::from_utf8(canonical(true)).expect("utf-8"), flagged);
    }

    #[test]
    fn decisions_are_logged_as_permit_or_deny() {
        assert_eq!(LoggedDecision::of(true).as_str(), "permit");
        assert_eq!(LoggedDecision::of(false).as_str(), "deny");
        assert_eq!(ReviewOutcome::Justified.as_str(), "justified");
        assert_eq!(ReviewOutcome::Unjustified.as_str(), "unjustified");
    }

    #[test]
    fn a_page_holds_one_to_five_hundred_entries() {
        assert_eq!(page_limit(None), 100);
        assert_eq!(page_limit(Some(0)), 1);
        assert_eq!(page_limit(Some(10_000)), MAX_PAGE);
    }

    #[test]
    fn only_compliance_officers_read_and_review_the_log() {
        let claims = |role| crate::volume::tests::claims(role, "u", "compliance_review");
        assert!(reading(&claims(Role::ComplianceOfficer)).permitted);
        assert!(reviewing(&claims(Role::ComplianceOfficer)).permitted);
        for role in [Role::Admin, Role::Caseworker, Role::Beneficiary] {
            assert_eq!(reading(&claims(role)), Decision::deny("only compliance officers read the access log"));
            assert_eq!(reviewing(&claims(role)), Decision::deny("only compliance officers review"));
        }
    }
}
