//! Who may be put on whose care team.

use uuid::Uuid;

/// Nobody joins their own care team, and no admin puts themselves on one.
pub fn may_assign(admin: Uuid, caseworker: Uuid, beneficiary: Uuid) -> bool {
    caseworker != beneficiary && caseworker != admin
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nobody_is_on_their_own_care_team_or_puts_themselves_on_one() {
        let (admin, caseworker, beneficiary) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        assert!(may_assign(admin, caseworker, beneficiary));
        assert!(!may_assign(admin, beneficiary, beneficiary));
        assert!(!may_assign(admin, admin, beneficiary));
    }
}
