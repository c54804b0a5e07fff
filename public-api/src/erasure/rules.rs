//! What an erasure must be given.

use common::ApiError;

/// The reason for an erasure, trimmed: required, at most 500 bytes.
pub fn checked_reason(reason: Option<&str>) -> Result<&str, ApiError> {
    reason
        .map(str::trim)
        .filter(|r| !r.is_empty() && r.len() <= 500)
        .ok_or_else(|| ApiError::Unprocessable("reason: required, up to 500 characters".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_is_required_trimmed_and_bounded() {
        assert_eq!(checked_reason(Some("  asked by the person  ")).expect("reason"), "asked by the person");
        for bad in [None, Some(""), Some("   ")] {
            assert!(matches!(checked_reason(bad), Err(ApiError::Unprocessable(_))));
        }
        assert!(checked_reason(Some(&"a".repeat(500))).is_ok());
        assert!(checked_reason(Some(&"a".repeat(501))).is_err());
    }
}
