//! What this trail says about a read outside the care team: the vault keeps the reason in its
//! access log, and the audit row here points to that entry, or says why it cannot.

/// No profile on file: the vault was never asked.
pub const NO_PROFILE: &str = "no profile on file; the vault was not asked and holds no entry";
/// The public database failed before the vault was asked.
pub const DATABASE_FAILED: &str = "the public database failed before the vault was asked";
/// The vault was asked but not reached: it may or may not have logged the request.
pub const VAULT_UNREACHED: &str = "the vault could not be reached; it may hold no entry for this request";

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
    fn the_trail_names_the_vaults_entry_when_it_is_known() {
        assert_eq!(reason_reference(Some(42)), "reason in phi-vault access log entry 42");
        assert_eq!(reason_reference(None), "reason in phi-vault's access log, under this request id");
    }
}
