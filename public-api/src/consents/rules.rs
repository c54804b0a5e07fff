//! How the consent lists' query strings are read: raw text, checked strictly, so a malformed
//! value is a 422 naming it rather than a silent default.

use common::consents::ConsentQuery;
use common::ApiError;

/// A consent list's query string, as it arrives.
#[derive(Debug, Default, rocket::FromForm)]
pub struct ConsentFilter<'r> {
    pub state: Option<&'r str>,
    pub after: Option<&'r str>,
    pub limit: Option<&'r str>,
}

impl ConsentFilter<'_> {
    pub fn parse(&self) -> Result<ConsentQuery, ApiError> {
        common::consents::parse_query(self.state, self.after, self.limit)
    }
}

/// The recipient directory's query string, as an admin sends it.
#[derive(Debug, Default, rocket::FromForm)]
pub struct DirectoryFilter<'r> {
    pub after: Option<&'r str>,
    pub limit: Option<&'r str>,
    pub include_retired: Option<&'r str>,
}

impl DirectoryFilter<'_> {
    pub fn parse(&self) -> Result<DirectoryQuery, ApiError> {
        directory_query(self.after, self.limit, self.include_retired)
    }
}

/// A page of the recipient directory, checked: `limit` absent leaves the consent service's
/// default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirectoryQuery {
    pub after: Option<i64>,
    pub limit: Option<i64>,
    pub include_retired: bool,
}

/// Checks a directory page's `after`, `limit` (1 to 100) and `include_retired`, in that order.
pub fn directory_query(
    after: Option<&str>,
    limit: Option<&str>,
    include_retired: Option<&str>,
) -> Result<DirectoryQuery, ApiError> {
    let after = common::json::query_param("after", after, "an integer")?;
    let limit: Option<i64> = common::json::query_param("limit", limit, "an integer from 1 to 100")?;
    if limit.is_some_and(|l| !(1..=100).contains(&l)) {
        return Err(ApiError::Unprocessable("limit: an integer from 1 to 100".into()));
    }
    let retired = common::json::query_param("include_retired", include_retired, "true or false")?;
    Ok(DirectoryQuery { after, limit, include_retired: retired.unwrap_or(false) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(result: Result<DirectoryQuery, ApiError>) -> String {
        match result {
            Err(ApiError::Unprocessable(message)) => message,
            other => panic!("expected a 422, got {other:?}"),
        }
    }

    #[test]
    fn a_directory_page_is_checked_in_order_and_absent_values_stay_absent() {
        let empty = DirectoryFilter::default().parse().expect("parse");
        assert_eq!(empty, DirectoryQuery { after: None, limit: None, include_retired: false });
        let full = DirectoryFilter { after: Some("7"), limit: Some("100"), include_retired: Some("true") };
        assert_eq!(
            full.parse().expect("parse"),
            DirectoryQuery { after: Some(7), limit: Some(100), include_retired: true }
        );
        assert_eq!(refused(directory_query(Some("x"), Some("0"), None)), "after: an integer");
        assert_eq!(refused(directory_query(None, Some("0"), None)), "limit: an integer from 1 to 100");
        assert_eq!(refused(directory_query(None, Some("ten"), None)), "limit: an integer from 1 to 100");
        assert_eq!(refused(directory_query(None, None, Some("1"))), "include_retired: true or false");
    }

    #[test]
    fn a_consent_list_names_a_bad_state() {
        let bad = ConsentFilter { state: Some("pending"), ..Default::default() };
        assert!(matches!(bad.parse(), Err(ApiError::Unprocessable(m)) if m.starts_with("state: one of ")));
        let page = ConsentFilter { state: Some("signed"), after: Some("3"), limit: None }.parse().expect("parse");
        assert_eq!((page.state.as_deref(), page.after, page.limit), (Some("signed"), Some(3), None));
    }
}
