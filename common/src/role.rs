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
