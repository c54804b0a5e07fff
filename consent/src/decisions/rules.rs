//! The decision's rules: the values a consent and a question may hold, a question's checks, the
//! answer's reason, and the canonical bytes each decision is chained under.

use serde::Serialize;
use uuid::Uuid;

use common::chain;
use common::client::DisclosureQuestion;
use common::ApiError;

use super::queries::DecisionChainRow;

/// The categories records are kept under (phi-vault's `record_category`).
pub const CATEGORIES: [&str; 6] =
    ["intake_conversation", "coach_conversation", "application_details", "insurance", "identity", "document"];
/// The purposes a consent naming one recipient may give (the disclosure purposes of
/// `policies/internal-calls.toml`).
pub const PURPOSES: [&str; 4] = ["housing_placement", "care_coordination", "benefits_eligibility", "payment"];
/// The purpose of a single consent for treatment, payment and health care operations (TPO).
pub const TPO_PURPOSE: &str = "treatment_payment_operations";
/// The disclosure purposes a TPO consent covers: treatment (care coordination) and payment.
pub const TPO_COVERS: [&str; 2] = ["care_coordination", "payment"];
/// The classes of recipient a TPO consent may name: (class, the role acting for its members,
/// what the patient reads). A class's members are the directory's entries of that kind.
pub const CLASSES: [(&str, &str, &str); 2] = [
    ("health_plans", "insurer", "Health plans and insurers in the SecondWind directory paying for my care"),
    ("recovery_residences", "partner", "Recovery residences in the SecondWind directory providing my care"),
];
/// Events that may end a consent (§2.31(a)(6)), as staff record them.
pub const EXPIRY_EVENTS: [&str; 3] = ["program_exit", "placement_end", "coverage_end"];

/// The reason of every refusal: the same whether or not any consent exists.
pub(crate) const REFUSED: &str = "no standing consent names this recipient, purpose and every category";

/// A decision's content as its chain hashes it (JSON, in this field order).
#[derive(Serialize)]
pub(crate) struct Canonical<'a> {
    pub decided_at_us: i128,
    pub subject_id: Uuid,
    pub recipient: &'a str,
    pub categories: &'a [String],
    pub purpose: &'a str,
    pub permitted: bool,
    pub consent_id: Option<Uuid>,
    pub reason: &'a str,
    pub asked_by: &'a str,
    pub request_id: Option<&'a str>,
    /// Hex; left out when absent, so decisions made before terms were hashed hash as they did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub terms_sha256: Option<String>,
}

impl Canonical<'_> {
    pub fn bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// The hashed content of a stored decision.
pub(crate) fn canonical_of(row: &DecisionChainRow) -> Vec<u8> {
    Canonical {
        decided_at_us: chain::micros(row.decided_at),
        subject_id: row.subject_id,
        recipient: &row.recipient,
        categories: &row.categories,
        purpose: &row.purpose,
        permitted: row.permitted,
        consent_id: row.consent_id,
        reason: &row.reason,
        asked_by: &row.asked_by,
        request_id: row.request_id.as_deref(),
        terms_sha256: row.terms_sha256.as_deref().map(chain::hex),
    }
    .bytes()
}

pub(crate) fn validate(q: &DisclosureQuestion) -> Result<(), ApiError> {
    common::json::printable("recipient", &q.recipient, 1..=200, false)?;
    common::json::printable("purpose", &q.purpose, 1..=100, false)?;
    if q.categories.is_empty() || q.categories.iter().any(|c| !CATEGORIES.contains(&c.as_str())) {
        return Err(ApiError::Unprocessable(format!("categories: one or more of {}", CATEGORIES.join(", "))));
    }
    Ok(())
}

/// The name a class consent (TPO) gives the recipient's class: `class:` and the role acting for
/// its members (`partner:…` asks as a member of `class:partner`).
pub(crate) fn class_of(recipient: &str) -> Option<String> {
    recipient.split_once(':').map(|(role, _)| format!("class:{role}"))
}

/// The reason a permitted answer gives: the consent relied on.
pub(crate) fn permitted_reason(consent_id: Uuid) -> String {
    format!("consent {consent_id}")
}

/// A decision as the trail keeps it.
pub struct Answer<'a> {
    pub permitted: bool,
    pub consent_id: Option<Uuid>,
    /// The hash of the consent terms relied on (required with a consent).
    pub terms_sha256: Option<&'a [u8]>,
    pub reason: &'a str,
    pub asked_by: &'a str,
    pub request_id: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn question(categories: &[&str]) -> DisclosureQuestion {
        DisclosureQuestion {
            subject_id: Uuid::nil(),
            recipient: "partner:r1".into(),
            categories: categories.iter().map(|c| (*c).to_owned()).collect(),
            purpose: "housing_placement".into(),
        }
    }

    #[test]
    fn a_question_names_known_categories_only() {
        assert!(validate(&question(&["identity", "insurance"])).is_ok());
        for categories in [&[][..], &["identity", "diary"][..]] {
            match validate(&question(categories)) {
                Err(ApiError::Unprocessable(m)) => assert!(m.starts_with("categories: one or more of"), "{m}"),
                other => panic!("{categories:?}: {other:?}"),
            }
        }
        let mut blank = question(&["identity"]);
        blank.purpose = String::new();
        assert!(validate(&blank).is_err());
    }

    #[test]
    fn a_recipient_asks_as_a_member_of_its_role_class() {
        assert_eq!(class_of("partner:0e6c").as_deref(), Some("class:partner"));
        assert_eq!(class_of("insurer:a:b").as_deref(), Some("class:insurer"));
        assert_eq!(class_of("nobody"), None);
        assert!(CLASSES.iter().all(|(class, role, _)| !class.is_empty() && !role.contains(':')));
    }

    /// The bytes a decision is chained under; a change here breaks every stored chain.
    #[test]
    fn the_canonical_bytes_are_stable() {
        let categories = vec!["identity".to_owned(), "insurance".to_owned()];
        let consent = Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        let mut canonical = Canonical {
            decided_at_us: 1_790_000_000_123_456,
            subject_id: Uuid::nil(),
            recipient: "partner:r1",
            categories: &categories,
            purpose: "housing_placement",
            permitted: true,
            consent_id: Some(consent),
            reason: "consent 01234567-89ab-cdef-0123-456789abcdef",
            asked_by: "phi-vault for partner:r1",
            request_id: Some("req-1"),
            terms_sha256: Some(chain::hex(&[0xab; 2])),
        };
        assert_eq!(
            String::from_utf8(canonical.bytes()).ok().as_deref(),
            Some(
                "{\"decided_at_us\":1790000000123456,\"subject_id\":\"00000000-0000-0000-0000-000000000000\",\
                 \"recipient\":\"partner:r1\",\"categories\":[\"identity\",\"insurance\"],\
                 \"purpose\":\"housing_placement\",\"permitted\":true,\
                 \"consent_id\":\"01234567-89ab-cdef-0123-456789abcdef\",\
                 \"reason\":\"consent 01234567-89ab-cdef-0123-456789abcdef\",\
                 \"asked_by\":\"phi-vault for partner:r1\",\"request_id\":\"req-1\",\"terms_sha256\":\"abab\"}"
            )
        );
        (canonical.terms_sha256, canonical.request_id, canonical.consent_id) = (None, None, None);
        let bytes = String::from_utf8(canonical.bytes()).unwrap_or_default();
        assert!(bytes.ends_with("\"consent_id\":null,\"reason\":\"consent 01234567-89ab-cdef-0123-456789abcdef\",\"asked_by\":\"phi-vault for partner:r1\",\"request_id\":null}"), "{bytes}");
        assert_eq!(permitted_reason(consent), canonical.reason);
    }
}
