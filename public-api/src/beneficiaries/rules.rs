//! The profile's shape and what a valid one holds. Its contents are PHI: no message here quotes
//! them.

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};

use common::ApiError;

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmergencyContact {
    /// 1 to 200 characters.
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// 7 to 20 characters of digits, spaces, `+`, `-`, `(`, `)`, at least 7 of them digits.
    #[schema(min_length = 7, max_length = 20, pattern = "^[0-9 +()-]+$")]
    pub phone: String,
    /// 1 to 50 characters.
    #[schema(min_length = 1, max_length = 50)]
    pub relationship: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BeneficiaryProfile {
    /// 1 to 200 characters.
    #[schema(min_length = 1, max_length = 200)]
    pub legal_name: String,
    /// `YYYY-MM-DD`, in the past (1900 or later).
    #[schema(format = Date)]
    pub date_of_birth: String,
    /// 7 to 20 characters of digits, spaces, `+`, `-`, `(`, `)`, at least 7 of them digits.
    #[schema(min_length = 7, max_length = 20, pattern = "^[0-9 +()-]+$")]
    pub phone: String,
    pub emergency_contact: EmergencyContact,
}

impl BeneficiaryProfile {
    /// The profile in a decrypted record. A record of the wrong shape is a 500 whose logged cause
    /// is fixed text: serde's own message would quote the record's contents.
    pub fn from_record(content: serde_json::Value) -> Result<Self, ApiError> {
        serde_json::from_value(content)
            .map_err(|_| ApiError::internal("a stored identity record does not have the profile's shape"))
    }
}

fn text(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    common::json::printable(field, value, 1..=max, false)
}

fn phone(field: &str, value: &str) -> Result<(), ApiError> {
    let ok = (7..=20).contains(&value.len())
        && value.chars().all(|c| c.is_ascii_digit() || " +-()".contains(c))
        && value.chars().filter(char::is_ascii_digit).count() >= 7;
    ok.then_some(()).ok_or_else(|| ApiError::Unprocessable(format!("{field}: a phone number of 7 to 20 characters")))
}

/// Checks the fields in order; the first bad one is named in the 422.
pub fn validate(p: &BeneficiaryProfile) -> Result<(), ApiError> {
    text("legal_name", &p.legal_name, 200)?;
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    let dob = Date::parse(&p.date_of_birth, fmt)
        .map_err(|_| ApiError::Unprocessable("date_of_birth: expected YYYY-MM-DD".into()))?;
    if dob >= OffsetDateTime::now_utc().date() || dob.year() < 1900 {
        return Err(ApiError::Unprocessable("date_of_birth: must be a past date".into()));
    }
    phone("phone", &p.phone)?;
    text("emergency_contact.name", &p.emergency_contact.name, 200)?;
    phone("emergency_contact.phone", &p.emergency_contact.phone)?;
    if let Some(r) = &p.emergency_contact.relationship {
        text("emergency_contact.relationship", r, 50)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile() -> BeneficiaryProfile {
        BeneficiaryProfile {
            legal_name: "Sam Rivera".into(),
            date_of_birth: "1990-04-01".into(),
            phone: "+1 (555) 010-2000".into(),
            emergency_contact: EmergencyContact {
                name: "Alex Rivera".into(),
                phone: "555 010 3000".into(),
                relationship: Some("sibling".into()),
            },
        }
    }

    fn refused(p: &BeneficiaryProfile) -> String {
        match validate(p) {
            Err(ApiError::Unprocessable(message)) => message,
            other => panic!("expected a 422, got {other:?}"),
        }
    }

    #[test]
    fn a_complete_profile_passes() {
        assert!(validate(&profile()).is_ok());
    }

    #[test]
    fn each_bad_field_is_named() {
        let mut p = profile();
        p.legal_name = " ".into();
        assert_eq!(refused(&p), "legal_name: 1 to 200 printable characters");
        let mut p = profile();
        p.date_of_birth = "01/04/1990".into();
        assert_eq!(refused(&p), "date_of_birth: expected YYYY-MM-DD");
        p.date_of_birth = "1899-12-31".into();
        assert_eq!(refused(&p), "date_of_birth: must be a past date");
        p.date_of_birth = "2999-01-01".into();
        assert_eq!(refused(&p), "date_of_birth: must be a past date");
        let mut p = profile();
        p.phone = "555-01".into();
        assert_eq!(refused(&p), "phone: a phone number of 7 to 20 characters");
        p.phone = "555-010-abcd".into();
        assert_eq!(refused(&p), "phone: a phone number of 7 to 20 characters");
        let mut p = profile();
        p.emergency_contact.phone = "(((((((".into();
        assert_eq!(refused(&p), "emergency_contact.phone: a phone number of 7 to 20 characters");
        let mut p = profile();
        p.emergency_contact.relationship = Some("x".repeat(51));
        assert_eq!(refused(&p), "emergency_contact.relationship: 1 to 50 printable characters");
    }

    #[test]
    fn a_record_of_another_shape_is_refused_without_quoting_it() {
        let wrong = serde_json::json!({"legal_name": "Sam Rivera"});
        match BeneficiaryProfile::from_record(wrong) {
            Err(e) => assert!(!format!("{e:?}").contains("Sam")),
            Ok(_) => panic!("a partial record was read as a profile"),
        }
    }
}
