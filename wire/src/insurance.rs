//! Insurance verification: the wire types. The member details are PHI and travel to and from
//! phi-vault only; the public database keeps the request's status, who decided and when.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// The phi-vault category the member details are kept under.
pub const DETAILS_CATEGORY: &str = "insurance";

/// The member details a beneficiary gives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InsuranceDetails {
    /// The plan, e.g. "Health First Colorado (Medicaid)": 2 to 200 characters.
    #[schema(min_length = 2, max_length = 200)]
    pub payer: String,
    /// The member id on the card: 3 to 40 letters, digits and dashes.
    #[schema(min_length = 3, max_length = 40, pattern = "^[A-Za-z0-9-]+$")]
    pub member_id: String,
    /// The group number, where the card has one: 1 to 40 letters, digits and dashes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 40, pattern = "^[A-Za-z0-9-]+$")]
    pub group_number: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InsuranceStatus {
    Pending,
    Verified,
    Rejected,
}

impl InsuranceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Verified => "verified",
            Self::Rejected => "rejected",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Pending, Self::Verified, Self::Rejected].into_iter().find(|s| s.as_str() == text)
    }
}

/// What a caseworker may decide: the schema of `InsuranceDecision::status` (`pending` is refused
/// there by the handler, with its own 422).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DecisionStatus {
    Verified,
    Rejected,
}

/// A verification request as the public database keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InsuranceView {
    pub id: Uuid,
    pub beneficiary_id: Uuid,
    pub status: InsuranceStatus,
    /// `manual`: a caseworker decides.
    pub provider: String,
    #[serde(with = "time::serde::rfc3339")]
    pub submitted_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub decided_at: Option<OffsetDateTime>,
    /// The staff member who decided.
    pub decided_by: Option<Uuid>,
    /// Why, for a rejection (shown to the beneficiary).
    pub reason: Option<String>,
}

/// A request with its member details, for the caseworker who decides it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InsuranceDetail {
    pub verification: InsuranceView,
    /// Absent once the beneficiary's records were erased.
    pub details: Option<InsuranceDetails>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InsurancePage {
    pub verifications: Vec<InsuranceView>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<i64>,
}

/// A caseworker's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InsuranceDecision {
    /// `verified` or `rejected`.
    #[schema(value_type = DecisionStatus)]
    pub status: InsuranceStatus,
    /// Required for a rejection (3 to 1,000 characters, shown to the beneficiary); optional otherwise.
    #[serde(default)]
    #[schema(min_length = 3, max_length = 1000)]
    pub reason: Option<String>,
}
