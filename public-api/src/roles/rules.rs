//! What a role change is: the staff roles, the reason it needs, the refusals, and the roles a
//! user holds after it.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use common::{ApiError, UserRole};

/// A staff role by name: one of [`UserRole::STAFF`], else [`RoleError::UnknownRole`].
pub fn staff_role(name: &str) -> Result<UserRole, RoleError> {
    UserRole::parse(name).filter(|r| UserRole::STAFF.contains(r)).ok_or_else(|| RoleError::UnknownRole(name.to_owned()))
}
const MAX_REASON: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    #[error("`{0}` is not a staff role (caseworker, admin, compliance_officer)")]
    UnknownRole(String),
    #[error("no such user: {0}")]
    NoUser(String),
    #[error("nobody changes their own roles: ask another admin")]
    OwnRoles,
    #[error("an admin already exists: grant roles as a signed-in admin (secondwind-admin users grant-role)")]
    AdminExists,
    #[error("the acting user is no longer an admin")]
    NotAdmin,
    #[error("that would leave no admin")]
    LastAdmin,
    #[error("a reason is required (at most {MAX_REASON} characters)")]
    BadReason,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl From<RoleError> for ApiError {
    fn from(e: RoleError) -> Self {
        match e {
            RoleError::UnknownRole(_) | RoleError::BadReason => ApiError::Unprocessable(e.to_string()),
            RoleError::NoUser(_) => ApiError::NotFound,
            RoleError::OwnRoles | RoleError::AdminExists | RoleError::NotAdmin => ApiError::Forbidden,
            RoleError::LastAdmin => ApiError::Conflict(e.to_string()),
            RoleError::Database(e) => e.into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RoleChange {
    pub user_id: Uuid,
    pub role: String,
    pub granted: bool,
    /// False when the user already had (or already lacked) the role. On a dry run: whether it
    /// would change.
    pub changed: bool,
    /// The user's staff roles after the change (as they would be, on a dry run).
    pub roles: Vec<String>,
    pub sessions_ended: u64,
    pub dry_run: bool,
}

/// A role change asked for by an admin.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleChangeRequest {
    /// The user: id or email.
    pub user: String,
    /// `caseworker`, `admin` or `compliance_officer`.
    #[schema(value_type = GrantableRole)]
    pub role: String,
    /// True to grant, false to revoke.
    pub grant: bool,
    /// Why; kept in the audit log. Required: 1 to 500 characters.
    #[schema(min_length = 1, max_length = 500)]
    pub reason: String,
    /// Report what would change and change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// A staff role an admin grants or revokes: the schema of `RoleChangeRequest::role`, which stays
/// text so an unknown role keeps its own 422.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GrantableRole {
    Caseworker,
    Admin,
    ComplianceOfficer,
}

/// The reason given, trimmed: 1 to 500 characters.
pub fn checked_reason(reason: &str) -> Result<String, RoleError> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > MAX_REASON {
        return Err(RoleError::BadReason);
    }
    Ok(reason.to_owned())
}

/// The roles after granting (or revoking) `role` from `current`, and whether that changes them.
pub fn after_change(current: Vec<String>, role: &str, grant: bool) -> (bool, Vec<String>) {
    let has = current.iter().any(|r| r == role);
    let mut roles = current;
    if grant && !has {
        roles.push(role.to_owned());
    } else if !grant {
        roles.retain(|r| r != role);
    }
    (has != grant, roles)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn a_grant_appends_once_and_a_revoke_removes() {
        assert_eq!(after_change(roles(&["caseworker"]), "admin", true), (true, roles(&["caseworker", "admin"])));
        assert_eq!(after_change(roles(&["admin"]), "admin", true), (false, roles(&["admin"])));
        assert_eq!(after_change(roles(&["caseworker", "admin"]), "admin", false), (true, roles(&["caseworker"])));
        assert_eq!(after_change(roles(&["caseworker"]), "admin", false), (false, roles(&["caseworker"])));
    }

    #[test]
    fn a_reason_is_trimmed_and_bounded() {
        assert_eq!(checked_reason("  on call  ").expect("reason"), "on call");
        assert!(matches!(checked_reason("   "), Err(RoleError::BadReason)));
        assert!(checked_reason(&"é".repeat(500)).is_ok());
        assert!(matches!(checked_reason(&"é".repeat(501)), Err(RoleError::BadReason)));
    }

    #[test]
    fn refusals_answer_as_the_api_says() {
        assert!(matches!(ApiError::from(RoleError::OwnRoles), ApiError::Forbidden));
        assert!(matches!(ApiError::from(RoleError::NoUser("x".into())), ApiError::NotFound));
        assert!(matches!(ApiError::from(RoleError::LastAdmin), ApiError::Conflict(_)));
        assert!(matches!(ApiError::from(RoleError::UnknownRole("x".into())), ApiError::Unprocessable(_)));
    }
}
