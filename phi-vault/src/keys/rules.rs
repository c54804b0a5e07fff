//! The key lifecycle's values: a stored wrapping as a key, the entries rewrap and shred leave,
//! and who may shred. No database here.

use uuid::Uuid;

use common::assertion::Claims;
use common::Role;

use super::crypto::WrappedKey;
use crate::access_log::Access;
use crate::policy::Decision;

/// A data key's wrapping as stored: a wrapping stored without its KEK's id or version is
/// taken as the local file's version 1.
pub(crate) fn wrapped_key(ciphertext: Vec<u8>, kek_id: Option<String>, kek_version: Option<i32>) -> WrappedKey {
    WrappedKey { ciphertext, kek_id: kek_id.unwrap_or_default(), kek_version: kek_version.unwrap_or(1) }
}

/// Why a key was rewrapped, for the access log.
pub(super) fn rewrap_reason(old: &WrappedKey, new: &WrappedKey) -> String {
    format!("kek v{} -> v{}", old.kek_version, new.kek_version)
}

/// The access-log entry of a rewrap, by the operator `actor`.
pub(super) fn rewrap_entry<'a>(actor: &'a str, subject: Uuid, reason: &'a str, request_id: &'a str) -> Access<'a> {
    Access {
        actor,
        actor_role: "operator",
        purpose: "key_rotation",
        subject_id: Some(subject),
        record_id: None,
        action: "key.rewrap",
        permitted: true,
        reason,
        flagged: false,
        request_id,
    }
}

/// The access-log action of a shred.
pub(super) const SHRED: &str = "subject.shred";

/// The channel a shred is announced on.
pub const SHRED_CHANNEL: &str = "phi_subject_shredded";

/// Only an admin erases a subject: the refusal of anyone else.
pub(super) fn shred_refusal(claims: &Claims) -> Option<Decision> {
    (claims.role != Role::Admin).then(|| Decision::deny("only an admin erases a subject"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrapping_without_its_kek_is_the_local_files_first() {
        let bare = wrapped_key(vec![1], None, None);
        assert_eq!((bare.kek_id.as_str(), bare.kek_version), ("", 1));
        let named = wrapped_key(vec![1], Some("vault:transit/k".into()), Some(3));
        assert_eq!((named.kek_id.as_str(), named.kek_version), ("vault:transit/k", 3));
        assert_eq!(rewrap_reason(&bare, &named), "kek v1 -> v3");
    }

    #[test]
    fn only_an_admin_shreds() {
        let claims = |role| crate::volume::tests::claims(role, "u", "erasure");
        assert!(shred_refusal(&claims(Role::Admin)).is_none());
        for role in [Role::Caseworker, Role::ComplianceOfficer, Role::Beneficiary] {
            assert_eq!(shred_refusal(&claims(role)), Some(Decision::deny("only an admin erases a subject")));
        }
    }
}
