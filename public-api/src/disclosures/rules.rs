//! How a request for the accounting reads its query string.

use common::client::AccountingQuery;
use common::ApiError;

/// The accounting's date range and page, as the query string sends them.
#[derive(Debug, Default, rocket::FromForm)]
pub struct AccountingFilter<'r> {
    pub from: Option<&'r str>,
    pub to: Option<&'r str>,
    pub after: Option<&'r str>,
    pub limit: Option<&'r str>,
}

impl AccountingFilter<'_> {
    /// Checked strictly, in that order: a malformed value is a 422 naming it.
    pub fn parse(&self) -> Result<AccountingQuery, ApiError> {
        AccountingQuery::parse(self.from, self.to, self.after, self.limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(filter: AccountingFilter<'_>) -> String {
        match filter.parse() {
            Err(ApiError::Unprocessable(message)) => message,
            other => panic!("expected a 422, got {other:?}"),
        }
    }

    #[test]
    fn absent_values_leave_the_vault_its_defaults() {
        assert_eq!(AccountingFilter::default().parse().expect("parse"), AccountingQuery::default());
    }

    #[test]
    fn malformed_values_are_named_in_order() {
        assert_eq!(
            refused(AccountingFilter { from: Some("May 1"), limit: Some("0"), ..Default::default() }),
            "from: a date, YYYY-MM-DD"
        );
        assert_eq!(
            refused(AccountingFilter { from: Some("2026-05-02"), to: Some("2026-05-01"), ..Default::default() }),
            "from: on or before to"
        );
        assert_eq!(refused(AccountingFilter { after: Some("x"), ..Default::default() }), "after: an integer");
        assert_eq!(
            refused(AccountingFilter { limit: Some("101"), ..Default::default() }),
            "limit: an integer from 1 to 100"
        );
    }
}
