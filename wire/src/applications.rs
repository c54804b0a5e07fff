//! Applications for help (rent, transport, tech, other) and notifications: the wire types
//! public-api answers with and the staff CLI will read. The status machine lives here so that
//! every caller names the same transitions.
//!
//! An application's details are PHI: they travel to and from phi-vault and never rest in the
//! public database, which keeps the kind, the amount, the status and a reference to the record.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// What help an application asks for.
pub const KINDS: [&str; 4] = ["rent", "transport", "tech", "other"];
/// The largest amount one application may ask for, in cents ($10,000).
pub const MAX_AMOUNT_CENTS: i64 = 1_000_000;
/// The phi-vault category an application's details are kept under.
pub const DETAILS_CATEGORY: &str = "application_details";

/// Where an application stands.
///
/// `reviewing` → `approved` | `action_needed` | `rejected` (staff, with a note);
/// `action_needed` → `reviewing` (the beneficiary updates it); `approved` → `funded` (staff).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApplicationStatus {
    Reviewing,
    ActionNeeded,
    Approved,
    Rejected,
    Funded,
}

impl ApplicationStatus {
    pub const ALL: [ApplicationStatus; 5] =
        [Self::Reviewing, Self::ActionNeeded, Self::Approved, Self::Rejected, Self::Funded];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reviewing => "reviewing",
            Self::ActionNeeded => "action_needed",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Funded => "funded",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// The statuses staff may move an application to from this one.
    pub fn staff_next(self) -> &'static [ApplicationStatus] {
        match self {
            Self::Reviewing => &[Self::Approved, Self::ActionNeeded, Self::Rejected],
            Self::Approved => &[Self::Funded],
            Self::ActionNeeded | Self::Rejected | Self::Funded => &[],
        }
    }

    /// The beneficiary may change the application (its amount, its details) only while it is
    /// under review or waiting on them.
    pub fn editable(self) -> bool {
        matches!(self, Self::Reviewing | Self::ActionNeeded)
    }

    /// Where a beneficiary's update leaves it: an application waiting on them goes back to review.
    pub fn after_update(self) -> Self {
        match self {
            Self::ActionNeeded => Self::Reviewing,
            other => other,
        }
    }

    /// The names, for a 409 or 422 message.
    pub fn names(statuses: &[ApplicationStatus]) -> String {
        if statuses.is_empty() {
            return "none".into();
        }
        statuses.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
    }
}

/// What help an application asks for: one of [`KINDS`]. The schema of the `kind` fields, which
/// stay text: the handler checks them and names the kinds in its 422.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApplicationKind {
    Rent,
    Transport,
    Tech,
    Other,
}
/// Who moved an application: the schema of `StatusEvent::by_role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActorRole {
    Beneficiary,
    Caseworker,
    Admin,
}
/// What an action item asks: the schema of `ActionItem::kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    CompleteProfile,
    UpdateApplication,
    ResubmitInsurance,
}

/// The details a beneficiary gives: PHI, kept by phi-vault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplicationDetails {
    /// What the help is for and why, in the beneficiary's words: 10 to 5,000 characters.
    #[schema(min_length = 10, max_length = 5000)]
    pub description: String,
    /// `YYYY-MM-DD`, when the help is needed by, if it must come by a date: today or later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Date)]
    pub needed_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApplication {
    /// `rent`, `transport`, `tech` or `other`.
    #[schema(value_type = ApplicationKind)]
    pub kind: String,
    /// In US cents, 1 to 1,000,000.
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub amount_cents: i64,
    pub details: ApplicationDetails,
}

/// A beneficiary's change to their application: either or both fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplicationUpdate {
    /// In US cents, 1 to 1,000,000.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub amount_cents: Option<i64>,
    #[serde(default)]
    pub details: Option<ApplicationDetails>,
}

/// An application as the public database keeps it: no details.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApplicationView {
    pub id: Uuid,
    pub beneficiary_id: Uuid,
    #[schema(value_type = ApplicationKind)]
    pub kind: String,
    pub amount_cents: i64,
    pub status: ApplicationStatus,
    /// The caseworker assigned to review it, once an admin assigned one.
    pub caseworker_id: Option<Uuid>,
    /// Bumped by every change.
    pub version: i32,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// One status change, with the note staff gave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StatusEvent {
    /// Absent for the submission itself.
    pub from_status: Option<ApplicationStatus>,
    pub to_status: ApplicationStatus,
    /// `beneficiary`, `caseworker` or `admin`.
    #[schema(value_type = ActorRole)]
    pub by_role: String,
    /// The amount asked for after this event. An event whose `from_status` equals its
    /// `to_status` is an edit by the beneficiary.
    pub amount_cents: i64,
    pub note: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// An application with its details (from phi-vault) and its history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApplicationDetail {
    pub application: ApplicationView,
    /// Absent once the beneficiary's records were erased.
    pub details: Option<ApplicationDetails>,
    pub history: Vec<StatusEvent>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApplicationPage {
    pub applications: Vec<ApplicationView>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<i64>,
}

/// A staff decision on an application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusChange {
    pub status: ApplicationStatus,
    /// The application's `version` as the decider read it: a decision on an application changed
    /// since (its amount, its details) is refused with 409.
    pub version: i32,
    /// Why, shown to the beneficiary: 3 to 1,000 characters, no clinical detail.
    #[schema(min_length = 3, max_length = 1000)]
    pub note: String,
}

/// An admin's choice of reviewer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Assignment {
    pub caseworker_id: Uuid,
}

/// A notification: what happened, never PHI ("your application was updated").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NotificationView {
    pub id: Uuid,
    /// e.g. `application.status`, `application.assigned`, `application.updated`.
    pub kind: String,
    pub title: String,
    pub body: String,
    /// What it is about, e.g. `application` and its id.
    pub resource_type: Option<String>,
    pub resource_id: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub read_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NotificationPage {
    pub notifications: Vec<NotificationView>,
    /// Pass as `after` for the next page (newest first); absent on the last page.
    pub next_after: Option<i64>,
}

/// How a person hears of changes besides their notifications.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NotificationPreferences {
    /// Email when an application or insurance request of mine is decided (the email says only
    /// that something changed, and to sign in).
    pub email: bool,
}

/// Something the beneficiary should do next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ActionItem {
    /// `complete_profile`, `update_application` (staff asked for something) or `resubmit_insurance`.
    #[schema(value_type = ActionKind)]
    pub kind: String,
    /// The application or verification request it is about.
    pub resource_id: Option<Uuid>,
    /// What staff said, where they said something.
    pub note: Option<String>,
}

/// How many of my applications are in each status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StatusCounts {
    pub reviewing: i64,
    pub action_needed: i64,
    pub approved: i64,
    pub rejected: i64,
    pub funded: i64,
}

/// The beneficiary's dashboard, in one request, from the rows as they are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Dashboard {
    pub applications: StatusCounts,
    /// Applications not yet finished (reviewing, action needed, approved), oldest first; at most 20.
    pub open_applications: Vec<ApplicationView>,
    /// Whole days since the sobriety date in my account, when I gave one.
    pub days_sober: Option<i64>,
    /// My latest insurance verification request, if any.
    pub insurance: Option<crate::insurance::InsuranceView>,
    pub unread_notifications: i64,
    pub action_items: Vec<ActionItem>,
}

#[cfg(test)]
mod tests {
    use super::ApplicationStatus::{self, *};

    #[test]
    fn the_status_machine_allows_only_its_transitions() {
        assert_eq!(Reviewing.staff_next(), [Approved, ActionNeeded, Rejected]);
        assert_eq!(Approved.staff_next(), [Funded]);
        for done in [ActionNeeded, Rejected, Funded] {
            assert!(done.staff_next().is_empty(), "{done:?}");
        }
        assert!(Reviewing.editable() && ActionNeeded.editable());
        assert!(!Approved.editable() && !Rejected.editable() && !Funded.editable());
        assert_eq!(ActionNeeded.after_update(), Reviewing);
        assert_eq!(Reviewing.after_update(), Reviewing);
        for status in ApplicationStatus::ALL {
            assert_eq!(ApplicationStatus::parse(status.as_str()), Some(status));
            assert_eq!(serde_json::to_value(status).ok(), Some(serde_json::json!(status.as_str())));
        }
        assert_eq!(ApplicationStatus::names(&[]), "none");
    }
}
