//! The consent and revocation records: what each must hold, and the canonical bytes each trail
//! is chained under (`common::chain`, length-prefixed fields). A stored row's bytes are
//! recomputed from its columns, so an edit of any of them breaks its chain.

use time::OffsetDateTime;
use uuid::Uuid;

use common::chain::Fields;

use super::queries::{ConsentChainRow, RevocationChainRow};
use crate::decisions::rules::CATEGORIES;

const TERMS_V1: &str = "consent-terms-v1";
pub(crate) const TERMS_V2: &str = "consent-terms-v2";

/// How a consent names its recipient (`consents.recipient_kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub(crate) enum ConsentRecipientKind {
    /// One person or organisation.
    Named,
    /// A class of recipients (a TPO consent).
    Class,
}

impl ConsentRecipientKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Named => "named",
            Self::Class => "class",
        }
    }
}

/// A consent as its subject signed it.
#[derive(Debug, Clone)]
pub struct NewConsent<'a> {
    pub subject_id: Uuid,
    /// Who discloses (the program).
    pub discloser: &'a str,
    /// Who may receive, as `role:id`.
    pub recipient: &'a str,
    pub categories: &'a [String],
    pub purpose: &'a str,
    pub expires_at: Option<OffsetDateTime>,
    /// Or the event that ends it (§2.31(a)(6)); one of the two is required.
    pub expiry_event: Option<&'a str>,
    pub form_version: &'a str,
    pub signed_name: &'a str,
    pub signed_at: OffsetDateTime,
    /// The elements terms-v2 adds. Every consent recorded now has them; `None` only describes
    /// a row recorded before they were kept (terms-v1), when verifying its chain.
    pub elements: Option<Elements<'a>>,
}

/// The §2.31 elements of a terms-v2 consent beyond the v1 ones: the recipient as copied at
/// signing, and how and from where it was signed.
#[derive(Debug, Clone, Copy)]
pub struct Elements<'a> {
    /// `named` or `class`.
    pub recipient_kind: &'a str,
    pub recipient_name: &'a str,
    pub recipient_directory_id: Option<Uuid>,
    pub recipient_address: Option<&'a str>,
    pub signature_method: &'a str,
    pub signed_from: &'a str,
}

#[derive(Debug, thiserror::Error)]
pub enum ConsentError {
    #[error("no consent form {0}")]
    UnknownForm(String),
    /// The text the subject was shown is not the form on file (or the form on file was altered).
    #[error("the form text signed does not match form {0} on file")]
    FormMismatch(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}

/// The terms a consent grants, as hashed into `terms_sha256`.
pub(crate) fn terms(c: &NewConsent<'_>, form_sha256: &[u8]) -> Vec<u8> {
    let Some(e) = &c.elements else { return terms_v1(c, form_sha256) };
    Fields::new(TERMS_V2)
        .uuid(c.subject_id)
        .text(c.discloser)
        .text(c.recipient)
        .text(e.recipient_kind)
        .text(e.recipient_name)
        .opt_uuid(e.recipient_directory_id)
        .opt_text(e.recipient_address)
        .list(c.categories)
        .text(c.purpose)
        .opt_time(c.expires_at)
        .opt_text(c.expiry_event)
        .text(c.form_version)
        .opt_bytes(Some(form_sha256))
        .text(c.signed_name)
        .text(e.signature_method)
        .time(c.signed_at)
        .text(e.signed_from)
        .into_bytes()
}

fn terms_v1(c: &NewConsent<'_>, form_sha256: &[u8]) -> Vec<u8> {
    Fields::new(TERMS_V1)
        .uuid(c.subject_id)
        .text(c.discloser)
        .text(c.recipient)
        .list(c.categories)
        .text(c.purpose)
        .opt_time(c.expires_at)
        .opt_text(c.expiry_event)
        .text(c.form_version)
        .opt_bytes(Some(form_sha256))
        .text(c.signed_name)
        .time(c.signed_at)
        .into_bytes()
}

pub(crate) fn row_canonical(id: Uuid, terms: &[u8], terms_sha256: &[u8], created_at: OffsetDateTime) -> Vec<u8> {
    Fields::new("consents-v1").uuid(id).nested(terms).opt_bytes(Some(terms_sha256)).time(created_at).into_bytes()
}

/// Checks a consent before it is recorded; returns its elements (every consent recorded has
/// them).
pub(crate) fn validate<'a>(c: &NewConsent<'a>) -> Result<Elements<'a>, ConsentError> {
    let invalid = |e: common::ApiError| match e {
        common::ApiError::Unprocessable(message) => ConsentError::Invalid(message),
        other => ConsentError::Invalid(other.to_string()),
    };
    common::json::printable("discloser", c.discloser, 1..=200, false).map_err(invalid)?;
    common::json::printable("recipient", c.recipient, 1..=200, false).map_err(invalid)?;
    common::json::printable("purpose", c.purpose, 1..=100, false).map_err(invalid)?;
    common::json::printable("signed_name", c.signed_name, 1..=200, false).map_err(invalid)?;
    if c.categories.is_empty() || c.categories.iter().any(|k| !CATEGORIES.contains(&k.as_str())) {
        return Err(ConsentError::Invalid(format!("categories: one or more of {}", CATEGORIES.join(", "))));
    }
    if c.expires_at.is_none() && c.expiry_event.is_none() {
        return Err(ConsentError::Invalid("an expiry date or an expiry event is required".into()));
    }
    let Some(e) = c.elements else {
        return Err(ConsentError::Invalid("a consent records its recipient and signature elements".into()));
    };
    if !["named", "class"].contains(&e.recipient_kind) {
        return Err(ConsentError::Invalid("recipient kind: named or class".into()));
    }
    common::json::printable("recipient.name", e.recipient_name, 1..=200, false).map_err(invalid)?;
    if let Some(address) = e.recipient_address {
        common::json::printable("recipient.address", address, 1..=300, false).map_err(invalid)?;
    }
    common::json::printable("signature.method", e.signature_method, 1..=50, false).map_err(invalid)?;
    common::json::printable("signed_from", e.signed_from, 1..=100, false).map_err(invalid)?;
    Ok(e)
}

/// The hashed content of a stored consent: its terms recomputed from the columns, and the
/// stored terms hash, so an edit of either breaks the chain.
pub(crate) fn canonical_of(row: &ConsentChainRow) -> Vec<u8> {
    let elements = match row.terms_format.as_str() {
        TERMS_V1 => None,
        // The table's check guarantees these on a terms-v2 row; a missing one breaks the chain.
        _ => Some(Elements {
            recipient_kind: row.recipient_kind.as_deref().unwrap_or_default(),
            recipient_name: row.recipient_name.as_deref().unwrap_or_default(),
            recipient_directory_id: row.recipient_directory_id,
            recipient_address: row.recipient_address.as_deref(),
            signature_method: row.signature_method.as_deref().unwrap_or_default(),
            signed_from: row.signed_from.as_deref().unwrap_or_default(),
        }),
    };
    let consent = NewConsent {
        subject_id: row.subject_id,
        discloser: &row.discloser,
        recipient: &row.recipient,
        categories: &row.categories,
        purpose: &row.purpose,
        expires_at: row.expires_at,
        expiry_event: row.expiry_event.as_deref(),
        form_version: &row.form_version,
        signed_name: &row.signed_name,
        signed_at: row.signed_at,
        elements,
    };
    row_canonical(row.id, &terms(&consent, &row.form_sha256), &row.terms_sha256, row.created_at)
}

pub(crate) const REVOCATIONS_V1: &str = "revocations-v1";
pub(crate) const REVOCATIONS_V2: &str = "revocations-v2";

/// A revocation signed by its subject (revocations-v2): typed name, method, and the address it
/// came from. Staff recording a written revocation give none (revocations-v1).
#[derive(Debug, Clone, Copy)]
pub struct RevocationSignature<'a> {
    pub signed_name: &'a str,
    pub method: &'a str,
    pub signed_from: &'a str,
}

#[derive(Debug, thiserror::Error)]
pub enum RevokeError {
    #[error("no consent {0}")]
    UnknownConsent(Uuid),
    #[error("consent {0} is already revoked")]
    AlreadyRevoked(Uuid),
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}

pub(crate) fn revocation_canonical(
    consent_id: Uuid,
    revoked_at: OffsetDateTime,
    revoked_by: &str,
    reason: Option<&str>,
    signature: Option<&RevocationSignature<'_>>,
) -> Vec<u8> {
    let fields = Fields::new(if signature.is_some() { REVOCATIONS_V2 } else { REVOCATIONS_V1 })
        .uuid(consent_id)
        .time(revoked_at)
        .text(revoked_by)
        .opt_text(reason);
    match signature {
        Some(s) => fields.text(s.signed_name).text(s.method).text(s.signed_from).into_bytes(),
        None => fields.into_bytes(),
    }
}

/// The hashed content of a stored revocation.
pub(crate) fn revocation_canonical_of(row: &RevocationChainRow) -> Vec<u8> {
    // The table's check guarantees the three on a v2 row; a missing one breaks the chain.
    let signature = (row.format != REVOCATIONS_V1).then(|| RevocationSignature {
        signed_name: row.signed_name.as_deref().unwrap_or_default(),
        method: row.signature_method.as_deref().unwrap_or_default(),
        signed_from: row.signed_from.as_deref().unwrap_or_default(),
    });
    revocation_canonical(row.consent_id, row.revoked_at, &row.revoked_by, row.reason.as_deref(), signature.as_ref())
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::consents::rules::DISCLOSER;

    const SUBJECT: Uuid = Uuid::from_u128(1);
    const ENTRY: Uuid = Uuid::from_u128(2);
    const CONSENT: Uuid = Uuid::from_u128(3);

    fn categories() -> Vec<String> {
        vec!["identity".into(), "insurance".into()]
    }

    fn consent(categories: &[String]) -> NewConsent<'_> {
        NewConsent {
            subject_id: SUBJECT,
            discloser: DISCLOSER,
            recipient: "partner:r1",
            categories,
            purpose: "housing_placement",
            expires_at: Some(datetime!(2027-01-02 03:04:05.123456 UTC)),
            expiry_event: None,
            form_version: "2026-11",
            signed_name: "Jordan Q. Example",
            signed_at: datetime!(2026-12-01 00:00:00 UTC),
            elements: Some(Elements {
                recipient_kind: "named",
                recipient_name: "Mile High House",
                recipient_directory_id: Some(ENTRY),
                recipient_address: None,
                signature_method: "typed_name",
                signed_from: "127.0.0.1",
            }),
        }
    }

    fn text(bytes: Vec<u8>) -> String {
        String::from_utf8(bytes).unwrap_or_default()
    }

    const TERMS_V2_BYTES: &str = "16:consent-terms-v236:00000000-0000-0000-0000-00000000000110:SecondWind\
        10:partner:r15:named15:Mile High House36:00000000-0000-0000-0000-000000000002-21:8:identity9:insurance\
        17:housing_placement16:1798859045123456-7:2026-114:abcd17:Jordan Q. Example10:typed_name\
        16:17960832000000009:127.0.0.1";

    /// The bytes consents are hashed and chained under; a change here breaks every stored chain.
    #[test]
    fn the_terms_and_row_bytes_are_stable() {
        let categories = categories();
        let mut c = consent(&categories);
        assert_eq!(text(terms(&c, &[0xab, 0xcd])), TERMS_V2_BYTES);
        let row = row_canonical(CONSENT, TERMS_V2_BYTES.as_bytes(), &[0xef, 0x01], datetime!(2026-12-01 00:00:01 UTC));
        assert_eq!(
            text(row),
            format!(
                "11:consents-v136:00000000-0000-0000-0000-000000000003291:{TERMS_V2_BYTES}4:ef0116:1796083201000000"
            )
        );
        c.elements = None;
        assert_eq!(
            text(terms(&c, &[0xab, 0xcd])),
            "16:consent-terms-v136:00000000-0000-0000-0000-00000000000110:SecondWind10:partner:r1\
             21:8:identity9:insurance17:housing_placement16:1798859045123456-7:2026-114:abcd\
             17:Jordan Q. Example16:1796083200000000"
        );
    }

    fn chain_row(categories: Vec<String>) -> ConsentChainRow {
        ConsentChainRow {
            id: CONSENT,
            subject_id: SUBJECT,
            discloser: DISCLOSER.into(),
            recipient: "partner:r1".into(),
            categories,
            purpose: "housing_placement".into(),
            expires_at: Some(datetime!(2027-01-02 03:04:05.123456 UTC)),
            expiry_event: None,
            form_version: "2026-11".into(),
            form_sha256: vec![0xab, 0xcd],
            signed_name: "Jordan Q. Example".into(),
            signed_at: datetime!(2026-12-01 00:00:00 UTC),
            created_at: datetime!(2026-12-01 00:00:01 UTC),
            terms_sha256: vec![0xef, 0x01],
            terms_format: TERMS_V2.into(),
            recipient_kind: Some("named".into()),
            recipient_name: Some("Mile High House".into()),
            recipient_directory_id: Some(ENTRY),
            recipient_address: None,
            signature_method: Some("typed_name".into()),
            signed_from: Some("127.0.0.1".into()),
        }
    }

    #[test]
    fn a_stored_consent_hashes_as_it_was_recorded() {
        let categories = categories();
        let recorded = consent(&categories);
        let terms_sha256 = [0xef, 0x01];
        let created_at = datetime!(2026-12-01 00:00:01 UTC);
        let expected = row_canonical(CONSENT, &terms(&recorded, &[0xab, 0xcd]), &terms_sha256, created_at);
        assert_eq!(canonical_of(&chain_row(categories.clone())), expected);

        let mut v1 = recorded.clone();
        v1.elements = None;
        let mut row = chain_row(categories.clone());
        (row.terms_format, row.recipient_kind, row.recipient_name, row.recipient_directory_id) =
            (TERMS_V1.into(), None, None, None);
        (row.signature_method, row.signed_from) = (None, None);
        assert_eq!(canonical_of(&row), row_canonical(CONSENT, &terms(&v1, &[0xab, 0xcd]), &terms_sha256, created_at));
    }

    fn refusal(c: &NewConsent<'_>) -> String {
        match validate(c) {
            Err(ConsentError::Invalid(message)) => message,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_consent_holds_every_element() {
        let categories = categories();
        assert!(validate(&consent(&categories)).is_ok());
        let unknown = vec!["diary".to_owned()];
        assert!(refusal(&consent(&unknown)).starts_with("categories: one or more of"));
        assert!(refusal(&consent(&[])).starts_with("categories: one or more of"));
        let mut c = consent(&categories);
        c.expires_at = None;
        assert_eq!(refusal(&c), "an expiry date or an expiry event is required");
        c.expiry_event = Some("program_exit");
        assert!(validate(&c).is_ok());
        c.elements = None;
        assert_eq!(refusal(&c), "a consent records its recipient and signature elements");
        let mut c = consent(&categories);
        c.elements = c.elements.map(|e| Elements { recipient_kind: "everyone", ..e });
        assert_eq!(refusal(&c), "recipient kind: named or class");
        let mut c = consent(&categories);
        c.signed_name = " ";
        assert!(refusal(&c).starts_with("signed_name: "));
    }

    /// The bytes revocations are chained under; a change here breaks every stored chain.
    #[test]
    fn the_revocation_bytes_are_stable() {
        let at = datetime!(2026-12-01 00:00:01 UTC);
        let by = "beneficiary:00000000-0000-0000-0000-000000000001";
        assert_eq!(
            text(revocation_canonical(CONSENT, at, by, None, None)),
            "14:revocations-v136:00000000-0000-0000-0000-00000000000316:1796083201000000\
             48:beneficiary:00000000-0000-0000-0000-000000000001-"
        );
        let signature =
            RevocationSignature { signed_name: "Jordan Q. Example", method: "typed_name", signed_from: "127.0.0.1" };
        let signed = revocation_canonical(CONSENT, at, by, Some("changed my mind"), Some(&signature));
        assert_eq!(
            text(signed.clone()),
            "14:revocations-v236:00000000-0000-0000-0000-00000000000316:1796083201000000\
             48:beneficiary:00000000-0000-0000-0000-00000000000115:changed my mind17:Jordan Q. Example\
             10:typed_name9:127.0.0.1"
        );
        let mut row = RevocationChainRow {
            consent_id: CONSENT,
            revoked_at: at,
            revoked_by: by.into(),
            reason: Some("changed my mind".into()),
            format: REVOCATIONS_V2.into(),
            signed_name: Some("Jordan Q. Example".into()),
            signature_method: Some("typed_name".into()),
            signed_from: Some("127.0.0.1".into()),
        };
        assert_eq!(revocation_canonical_of(&row), signed);
        (row.format, row.reason, row.signed_name, row.signature_method, row.signed_from) =
            (REVOCATIONS_V1.into(), None, None, None, None);
        assert_eq!(revocation_canonical_of(&row), revocation_canonical(CONSENT, at, by, None, None));
    }
}
