//! What valid member details and a valid decision are: pure, checked without a database.

use common::insurance::{InsuranceDetails, InsuranceStatus};
use common::ApiError;

fn code(field: &str, value: &str, chars: std::ops::RangeInclusive<usize>) -> Result<(), ApiError> {
    let ok = chars.contains(&value.len()) && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    ok.then_some(()).ok_or_else(|| {
        ApiError::Unprocessable(format!("{field}: {} to {} letters, digits and dashes", chars.start(), chars.end()))
    })
}

/// The payer is printable text; the member id and group number are codes.
pub fn check(details: &InsuranceDetails) -> Result<(), ApiError> {
    common::json::printable("payer", &details.payer, 2..=200, false)?;
    code("member_id", &details.member_id, 3..=40)?;
    if let Some(group) = &details.group_number {
        code("group_number", group, 1..=40)?;
    }
    Ok(())
}

/// A decision is `verified`, or `rejected` with a reason the beneficiary sees (3 to 1,000
/// printable characters); the reason, trimmed.
pub fn check_decision(status: InsuranceStatus, reason: Option<&str>) -> Result<Option<&str>, ApiError> {
    let reason = reason.map(str::trim);
    match (status, reason) {
        (InsuranceStatus::Pending, _) => Err(ApiError::Unprocessable("status: verified or rejected".into())),
        (InsuranceStatus::Rejected, None) => Err(ApiError::Unprocessable("reason: required for a rejection".into())),
        (_, Some(reason)) => common::json::printable("reason", reason, 3..=1000, true).map(|()| Some(reason)),
        (InsuranceStatus::Verified, None) => Ok(None),
    }
}

/// A `status` filter of the queue: `pending` when absent.
pub fn status_filter(status: Option<&str>) -> Result<InsuranceStatus, ApiError> {
    match status {
        None => Ok(InsuranceStatus::Pending),
        Some(s) => InsuranceStatus::parse(s)
            .ok_or_else(|| ApiError::Unprocessable("status: pending, verified or rejected".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn details(member_id: &str, group: Option<&str>) -> InsuranceDetails {
        InsuranceDetails {
            payer: "Colorado Medicaid".into(),
            member_id: member_id.into(),
            group_number: group.map(Into::into),
        }
    }

    #[test]
    fn member_codes_are_letters_digits_and_dashes() {
        assert!(check(&details("A12-345", Some("G1"))).is_ok());
        assert!(check(&details("A1", None)).is_err());
        assert!(check(&details("A12 345", None)).is_err());
        assert!(check(&details("A12345", Some(""))).is_err());
    }

    #[test]
    fn a_rejection_needs_a_reason_and_pending_is_no_decision() {
        assert!(check_decision(InsuranceStatus::Pending, None).is_err());
        assert!(check_decision(InsuranceStatus::Rejected, None).is_err());
        assert_eq!(
            check_decision(InsuranceStatus::Rejected, Some("  expired card ")).expect("accepted"),
            Some("expired card")
        );
        assert_eq!(check_decision(InsuranceStatus::Verified, None).expect("accepted"), None);
        assert!(check_decision(InsuranceStatus::Verified, Some("x")).is_err());
    }

    #[test]
    fn the_queue_shows_pending_unless_asked() {
        assert_eq!(status_filter(None).expect("accepted"), InsuranceStatus::Pending);
        assert_eq!(status_filter(Some("rejected")).expect("accepted"), InsuranceStatus::Rejected);
        assert!(status_filter(Some("open")).is_err());
    }
}
