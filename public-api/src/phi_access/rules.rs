//! What this trail says about a read outside the care team: the vault keeps the reason in its
//! access log, and the audit row here points to that entry, or says why it cannot.

/// No profile on file: the vault was never asked.
pub const NO_PROFILE: &str = "no profile on file; the vault was not asked and holds no entry";
/// The public database failed before the vault was asked.
pub const DATABASE_FAILED: &str = "the public database failed before the vault was asked";
/// The vault was asked but not reached: it may or may not have logged the request.
pub const VAULT_UNREACHED: &str = "the vault could not be reached; it may hold no entry for this request";

/// The least time a partner's refused read takes. Without a profile on file the answer needs one
/// query; with a profile but no consent it takes a round through phi-vault and consent. Padding
/// every refusal to this floor (well above the slower path) gives a partner the same 404 in the
/// same time either way, so timing does not tell who has a profile here.
pub const PARTNER_REFUSAL_FLOOR: std::time::Duration = std::time::Duration::from_millis(250);

/// How long to wait, `elapsed` into a refused read, before answering at the floor.
pub fn padding(elapsed: std::time::Duration, floor: std::time::Duration) -> std::time::Duration {
    floor.saturating_sub(elapsed)
}

/// Where the reason is kept: the vault's access-log entry when the vault named it, else its
/// entry under this request id.
pub fn reason_reference(access_seq: Option<i64>) -> String {
    match access_seq {
        Some(seq) => format!("reason in phi-vault access log entry {seq}"),
        None => "reason in phi-vault's access log, under this request id".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_waits_out_the_rest_of_the_floor_and_never_more() {
        use std::time::Duration;
        let floor = Duration::from_millis(250);
        assert_eq!(padding(Duration::from_millis(3), floor), Duration::from_millis(247));
        assert_eq!(padding(Duration::from_millis(250), floor), Duration::ZERO);
        assert_eq!(padding(Duration::from_millis(900), floor), Duration::ZERO);
    }

    #[test]
    fn the_trail_names_the_vaults_entry_when_it_is_known() {
        assert_eq!(reason_reference(Some(42)), "reason in phi-vault access log entry 42");
        assert_eq!(reason_reference(None), "reason in phi-vault's access log, under this request id");
    }
}
