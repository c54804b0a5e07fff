//! The account as the API shows it, and the checks a change to it must pass.

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use common::ApiError;

/// `YYYY-MM-DD`, the sobriety date's format on the wire.
pub(super) const DATE: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]");

#[derive(Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UserView {
    pub id: Uuid,
    /// donor, beneficiary, partner or staff.
    pub user_type: String,
    pub email: String,
    pub display_name: String,
    /// Staff roles granted by an admin.
    pub roles: Vec<String>,
    /// `YYYY-MM-DD`.
    #[schema(format = Date)]
    pub sobriety_date: Option<String>,
    pub notification_preferences: serde_json::Value,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// The signed-in user's account, as the request's session check read it
/// (`auth::sessions::live_account`), so a route that needs the account asks nothing more.
#[derive(Clone)]
pub struct Account {
    pub view: UserView,
    /// The PHI vault record holding the beneficiary's profile.
    pub identity_record_id: Option<Uuid>,
}

/// Only the id: the rest is personal.
impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account").field("id", &self.view.id).finish_non_exhaustive()
    }
}

/// A change's fields once checked: the trimmed name, and the sobriety date (`Some(None)` clears
/// it). `None`: left as it is.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Checked {
    pub display_name: Option<String>,
    pub sobriety_date: Option<Option<Date>>,
}

/// Checks a change: a name of 1 to 100 printable characters, a sobriety date in the past (not
/// before 1900, not after `today`), at most 20 notification preferences, each a boolean.
pub(super) fn check(
    display_name: Option<&str>,
    sobriety_date: Option<Option<&str>>,
    preferences: Option<&serde_json::Map<String, serde_json::Value>>,
    today: Date,
) -> Result<Checked, ApiError> {
    let display_name = match display_name {
        Some(n) => {
            let n = n.trim();
            common::json::printable("display_name", n, 1..=100, false)?;
            Some(n.to_owned())
        }
        None => None,
    };
    let sobriety_date = match sobriety_date {
        Some(Some(s)) => {
            let d = Date::parse(s, DATE)
                .map_err(|_| ApiError::Unprocessable("sobriety_date: expected YYYY-MM-DD".into()))?;
            if d > today || d.year() < 1900 {
                return Err(ApiError::Unprocessable("sobriety_date: must be a past date".into()));
            }
            Some(Some(d))
        }
        Some(None) => Some(None),
        None => None,
    };
    if let Some(prefs) = preferences {
        if prefs.len() > 20 || prefs.values().any(|v| !v.is_boolean()) {
            return Err(ApiError::Unprocessable("notification_preferences: at most 20 boolean settings".into()));
        }
    }
    Ok(Checked { display_name, sobriety_date })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TODAY: Date = time::macros::date!(2026 - 06 - 15);

    #[test]
    fn a_change_is_trimmed_and_a_null_date_clears() {
        let checked = check(Some("  Pat  "), Some(None), None, TODAY).expect("valid");
        assert_eq!(checked, Checked { display_name: Some("Pat".into()), sobriety_date: Some(None) });
        let nothing = check(None, None, None, TODAY).expect("valid");
        assert_eq!(nothing, Checked { display_name: None, sobriety_date: None });
        let today = check(None, Some(Some("2026-06-15")), None, TODAY).expect("today is past enough");
        assert_eq!(today.sobriety_date, Some(Some(TODAY)));
    }

    #[test]
    fn a_sobriety_date_is_a_past_date() {
        for bad in ["2026-06-16", "1899-12-31", "15/06/2026", ""] {
            assert!(matches!(check(None, Some(Some(bad)), None, TODAY), Err(ApiError::Unprocessable(_))), "{bad}");
        }
    }

    #[test]
    fn preferences_are_a_few_booleans() {
        let prefs = |value: serde_json::Value| value.as_object().cloned().expect("an object");
        assert!(check(None, None, Some(&prefs(serde_json::json!({"email": true, "sms": false}))), TODAY).is_ok());
        let text = prefs(serde_json::json!({"email": "yes"}));
        assert!(matches!(check(None, None, Some(&text), TODAY), Err(ApiError::Unprocessable(_))));
        let many: serde_json::Map<_, _> = (0..21).map(|i| (format!("k{i}"), serde_json::Value::Bool(true))).collect();
        assert!(matches!(check(None, None, Some(&many), TODAY), Err(ApiError::Unprocessable(_))));
    }

    #[test]
    fn a_name_is_printable_and_not_empty() {
        for bad in ["", "   ", "a\nb"] {
            assert!(matches!(check(Some(bad), None, None, TODAY), Err(ApiError::Unprocessable(_))), "{bad:?}");
        }
        assert!(check(Some(&"x".repeat(101)), None, None, TODAY).is_err());
    }
}
