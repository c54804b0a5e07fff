//! The accounting's entries as values: the bytes each format's chain hashes, the kind of a
//! disclosure, the range and page an accounting covers, and who reads it. No database here.

use time::Date;
use uuid::Uuid;

use common::assertion::Claims;
use common::chain::Fields;
use common::client::{AccountingQuery, EmergencyDisclosure};
use common::Role;

use crate::policy::{Decision, Disclosure, MEDICAL_EMERGENCY};

pub(super) const V1: &str = "disclosures-v1";
pub(super) const V2: &str = "disclosures-v2";

/// The bytes a row's chain hashes, in the row's format.
pub(super) fn canonical(row: &Entry<'_>) -> Vec<u8> {
    let Some(v2) = &row.v2 else {
        return Fields::new(V1)
            .uuid(row.id)
            .time(row.disclosed_at)
            .uuid(row.subject_id)
            .text(row.recipient)
            .text(row.purpose)
            .list(row.categories)
            .opt_uuid(row.consent_id)
            .text(row.notice_version)
            .opt_text(row.request_id)
            .into_bytes();
    };
    Fields::new(V2)
        .uuid(row.id)
        .time(row.disclosed_at)
        .uuid(row.subject_id)
        .text(row.recipient)
        .opt_text(v2.recipient_name)
        .text(row.purpose)
        .list(row.categories)
        .opt_uuid(row.consent_id)
        .text(row.notice_version)
        .text(v2.kind)
        .opt_text(v2.emergency)
        .opt_text(row.request_id)
        .into_bytes()
}

/// A disclosure as its chain hashes it.
pub(super) struct Entry<'a> {
    pub id: Uuid,
    pub disclosed_at: time::OffsetDateTime,
    pub subject_id: Uuid,
    pub recipient: &'a str,
    pub purpose: &'a str,
    pub categories: &'a [String],
    pub consent_id: Option<Uuid>,
    pub notice_version: &'a str,
    pub request_id: Option<&'a str>,
    /// What disclosures-v2 adds; `None` for a row written before.
    pub v2: Option<V2Fields<'a>>,
}

/// What disclosures-v2 adds to a row.
#[derive(Clone, Copy)]
pub(super) struct V2Fields<'a> {
    pub recipient_name: Option<&'a str>,
    /// `consent` or `medical_emergency`.
    pub kind: &'a str,
    pub emergency: Option<&'a str>,
}

/// Why a disclosure was made: the `kind` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum DisclosureKind {
    /// Under the subject's consent.
    Consent,
    /// Without consent, in a medical emergency (§2.51).
    MedicalEmergency,
}

impl DisclosureKind {
    pub fn of(disclosure: &Disclosure) -> Self {
        if disclosure.emergency.is_some() {
            Self::MedicalEmergency
        } else {
            Self::Consent
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Consent => "consent",
            Self::MedicalEmergency => "medical_emergency",
        }
    }
}

/// The disclosure a medical-emergency read makes of a record of `category`: to medical
/// personnel, named by the caseworker, with the nature of the emergency, without a consent.
pub(crate) fn emergency(EmergencyDisclosure { recipient, nature }: EmergencyDisclosure, category: &str) -> Disclosure {
    Disclosure {
        recipient: "medical_personnel".into(),
        recipient_name: Some(recipient.trim().to_owned()),
        purpose: MEDICAL_EMERGENCY.into(),
        category: category.to_owned(),
        consent_id: None,
        emergency: Some(nature.trim().to_owned()),
    }
}

/// How far back an accounting reaches unless asked otherwise (§2.24: six years).
pub const ACCOUNTING_YEARS: i32 = 6;

/// The days an accounting covers, both included: as asked, or the last [`ACCOUNTING_YEARS`]
/// years up to `today`.
pub(super) fn range(query: &AccountingQuery, today: Date) -> (Date, Date) {
    let to = query.to.unwrap_or(today);
    let from = query.from.unwrap_or_else(|| {
        today.replace_year(today.year() - ACCOUNTING_YEARS).unwrap_or(today - time::Duration::days(6 * 365 + 2))
    });
    (from, to)
}

/// The most disclosures one page holds: as asked, or 50.
pub(super) fn limit(query: &AccountingQuery) -> i64 {
    query.limit.unwrap_or(50)
}

/// The action of reading an accounting, as the access log names it.
pub(super) const READ: &str = "disclosures.read";

/// Who reads a subject's accounting: the subject, or a compliance officer.
pub(super) fn reader(claims: &Claims, subject: Uuid) -> Decision {
    match claims.role {
        Role::Beneficiary if claims.sub == subject.to_string() => Decision::permit("subject"),
        Role::ComplianceOfficer => Decision::permit("compliance review"),
        _ => Decision::deny("only the subject or a compliance officer reads the accounting of disclosures"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry<'a>(categories: &'a [String], v2: Option<V2Fields<'a>>) -> Entry<'a> {
        Entry {
            id: Uuid::nil(),
            disclosed_at: time::OffsetDateTime::UNIX_EPOCH,
            subject_id: Uuid::nil(),
            recipient: "partner:p",
            purpose: "housing_placement",
            categories,
            consent_id: Some(Uuid::nil()),
            notice_version: "part2-2024",
            request_id: Some("r"),
            v2,
        }
    }

    /// A row written before disclosures-v2 hashes as it did: its format tag and no v2 fields.
    #[test]
    fn each_format_hashes_its_own_fields() {
        let categories = ["identity".to_owned()];
        let v1 = canonical(&entry(&categories, None));
        let v2 = canonical(&entry(
            &categories,
            Some(V2Fields { recipient_name: None, kind: DisclosureKind::Consent.as_str(), emergency: None }),
        ));
        assert!(v1.windows(V1.len()).any(|w| w == V1.as_bytes()));
        assert!(v2.windows(V2.len()).any(|w| w == V2.as_bytes()));
        assert!(!v1.windows(b"consent".len()).any(|w| w == b"consent"), "no kind in a v1 row");
        assert!(v2.windows(b"consent".len()).any(|w| w == b"consent"));
    }

    #[test]
    fn an_emergency_is_a_disclosure_to_medical_personnel_without_consent() {
        let asked = EmergencyDisclosure { recipient: " County ER ".into(), nature: " overdose, unresponsive ".into() };
        let made = emergency(asked, "identity");
        assert_eq!(DisclosureKind::of(&made), DisclosureKind::MedicalEmergency);
        assert_eq!((made.recipient.as_str(), made.purpose.as_str()), ("medical_personnel", MEDICAL_EMERGENCY));
        assert_eq!(made.recipient_name.as_deref(), Some("County ER"));
        assert_eq!(made.emergency.as_deref(), Some("overdose, unresponsive"));
        assert_eq!(made.consent_id, None);
        assert_eq!(DisclosureKind::MedicalEmergency.as_str(), "medical_emergency");
        assert_eq!(DisclosureKind::Consent.as_str(), "consent");
    }

    #[test]
    fn an_accounting_reaches_six_years_back_unless_asked() {
        let today = time::macros::date!(2030 - 05 - 17);
        assert_eq!(range(&AccountingQuery::default(), today), (time::macros::date!(2024 - 05 - 17), today));
        let leap = time::macros::date!(2028 - 02 - 29);
        assert_eq!(range(&AccountingQuery::default(), leap).0, leap - time::Duration::days(6 * 365 + 2));
        let asked = AccountingQuery { from: Some(today), to: Some(today), ..AccountingQuery::default() };
        assert_eq!(range(&asked, leap), (today, today));
        assert_eq!(limit(&AccountingQuery::default()), 50);
    }

    #[test]
    fn the_subject_or_a_compliance_officer_reads_the_accounting() {
        let subject = Uuid::new_v4();
        let claims = |role, sub: &str| crate::volume::tests::claims(role, sub, "self_service");
        assert!(reader(&claims(Role::Beneficiary, &subject.to_string()), subject).permitted);
        assert!(reader(&claims(Role::ComplianceOfficer, "officer"), subject).permitted);
        assert!(!reader(&claims(Role::Beneficiary, &Uuid::new_v4().to_string()), subject).permitted);
        assert!(!reader(&claims(Role::Caseworker, &subject.to_string()), subject).permitted);
    }
}
