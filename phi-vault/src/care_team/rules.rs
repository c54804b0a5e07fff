//! Who assigns care teams. No database here.

use common::assertion::Claims;
use common::Role;

use crate::policy::Decision;

/// The action of an assignment, as the access log names it.
pub(super) const ASSIGN: &str = "care_team.assign";

/// Only an admin assigns care teams.
pub(super) fn assigning(claims: &Claims) -> Decision {
    if claims.role == Role::Admin {
        Decision::permit("admin")
    } else {
        Decision::deny("only an admin assigns care teams")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_admin_assigns_care_teams() {
        let claims = |role| crate::volume::tests::claims(role, "u", "care_team_assignment");
        assert_eq!(assigning(&claims(Role::Admin)), Decision::permit("admin"));
        for role in [Role::Caseworker, Role::ComplianceOfficer, Role::Beneficiary] {
            assert_eq!(assigning(&claims(role)), Decision::deny("only an admin assigns care teams"));
        }
    }
}
