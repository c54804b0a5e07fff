//! The roles a call is made in, which are also the user roles of `policies/roles.toml` a
//! person's token must carry to act in them.

use serde::{Deserialize, Serialize};

/// The role a call is made in. On the wire it is the snake_case name, which is also the name of
/// the user role (`policies/roles.toml`) a user's token must carry for a call in that role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Beneficiary,
    Donor,
    Partner,
    Insurer,
    Caseworker,
    Admin,
    ComplianceOfficer,
    /// A service acting on its own behalf (health checks, background jobs); `sub` is `system`.
    Service,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Beneficiary => "beneficiary",
            Self::Donor => "donor",
            Self::Partner => "partner",
            Self::Insurer => "insurer",
            Self::Caseworker => "caseworker",
            Self::Admin => "admin",
            Self::ComplianceOfficer => "compliance_officer",
            Self::Service => "service",
        }
    }

    /// Whether a person acts in this role (and so must show their own token where asked).
    pub fn is_user(self) -> bool {
        self != Self::Service
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role a person holds in public-api (`policies/roles.toml`): their account type (donor,
/// beneficiary, partner, staff) and any staff role an admin granted (caseworker, admin,
/// compliance officer). Access tokens carry these; on the wire each is its snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserRole {
    Donor,
    Beneficiary,
    Partner,
    Staff,
    Caseworker,
    Admin,
    ComplianceOfficer,
}

impl UserRole {
    pub const ALL: [UserRole; 7] = [
        Self::Donor,
        Self::Beneficiary,
        Self::Partner,
        Self::Staff,
        Self::Caseworker,
        Self::Admin,
        Self::ComplianceOfficer,
    ];
    /// The roles an admin grants (the rest are account types).
    pub const STAFF: [UserRole; 3] = [Self::Caseworker, Self::Admin, Self::ComplianceOfficer];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Donor => "donor",
            Self::Beneficiary => "beneficiary",
            Self::Partner => "partner",
            Self::Staff => "staff",
            Self::Caseworker => "caseworker",
            Self::Admin => "admin",
            Self::ComplianceOfficer => "compliance_officer",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == text)
    }

    /// The role a person holding this one acts in on an internal call, where there is one.
    pub fn acting(self) -> Option<Role> {
        match self {
            Self::Donor => Some(Role::Donor),
            Self::Beneficiary => Some(Role::Beneficiary),
            Self::Partner => Some(Role::Partner),
            Self::Caseworker => Some(Role::Caseworker),
            Self::Admin => Some(Role::Admin),
            Self::ComplianceOfficer => Some(Role::ComplianceOfficer),
            Self::Staff => None,
        }
    }
}

impl std::fmt::Display for UserRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_roles_round_trip_by_name_and_on_the_wire() {
        for role in UserRole::ALL {
            assert_eq!(UserRole::parse(role.as_str()), Some(role));
            let json = serde_json::to_string(&role).expect("serialises");
            assert_eq!(json, format!("\"{}\"", role.as_str()));
        }
        assert_eq!(UserRole::parse("root"), None);
        assert!(serde_json::from_str::<UserRole>("\"root\"").is_err());
        assert_eq!(UserRole::Caseworker.acting(), Some(Role::Caseworker));
        assert_eq!(UserRole::Staff.acting(), None);
    }
}
