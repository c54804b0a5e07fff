//! The compliance wire types (from `wire::compliance`), and how a service reads the decision
//! log's filters from a query string.

pub use wire::compliance::*;

/// The decision log's filters as they arrive in a query string.
#[derive(Debug, rocket::FromForm, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DecisionFilter<'r> {
    /// Only decisions about this beneficiary's records.
    #[param(value_type = Option<uuid::Uuid>)]
    pub subject_id: Option<&'r str>,
    /// Only decisions asked for this user (the recipient acting).
    #[param(value_type = Option<uuid::Uuid>)]
    pub actor_id: Option<&'r str>,
    /// Only this recipient, `role:user id`.
    #[param(min_length = 1, max_length = 200, pattern = "^[A-Za-z0-9:_.-]+$")]
    pub recipient: Option<&'r str>,
    /// Only this purpose (`housing_placement`, `payment`, …).
    #[param(min_length = 1, max_length = 200, pattern = "^[A-Za-z0-9:_.-]+$")]
    pub purpose: Option<&'r str>,
    /// `true` for permitted disclosures only, `false` for refusals only.
    #[param(value_type = Option<bool>)]
    pub permitted: Option<&'r str>,
    /// On or after this day (YYYY-MM-DD, UTC).
    #[param(value_type = Option<String>, format = Date)]
    pub from: Option<&'r str>,
    /// On or before this day (YYYY-MM-DD, UTC).
    #[param(value_type = Option<String>, format = Date)]
    pub to: Option<&'r str>,
    /// Rows after this sequence number (the previous page's `next_after_seq`).
    #[param(value_type = Option<i64>)]
    pub after_seq: Option<&'r str>,
    /// Rows up to this sequence number (the first page's `head_seq`).
    #[param(value_type = Option<i64>)]
    pub until_seq: Option<&'r str>,
    /// 1 to 500; 100 when absent.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 500)]
    pub limit: Option<&'r str>,
}

impl DecisionFilter<'_> {
    pub fn parse(&self) -> Result<DecisionQuery, crate::ApiError> {
        use crate::json::{date_param, query_param};
        let bad = |m: &str| crate::ApiError::Unprocessable(m.to_owned());
        let name = crate::json::log_name;
        let query = DecisionQuery {
            subject_id: query_param("subject_id", self.subject_id, "a UUID")?,
            actor_id: query_param("actor_id", self.actor_id, "a UUID")?,
            recipient: name("recipient", self.recipient)?,
            purpose: name("purpose", self.purpose)?,
            permitted: query_param("permitted", self.permitted, "true or false")?,
            from: date_param("from", self.from)?,
            to: date_param("to", self.to)?,
            after_seq: query_param("after_seq", self.after_seq, "an integer")?.unwrap_or(0),
            until_seq: query_param("until_seq", self.until_seq, "an integer")?,
            limit: query_param("limit", self.limit, "an integer from 1 to 500")?.unwrap_or(100),
        };
        if !(1..=500).contains(&query.limit) {
            return Err(bad("limit: an integer from 1 to 500"));
        }
        if let (Some(f), Some(t)) = (query.from, query.to) {
            if f > t {
                return Err(bad("from: on or before to"));
            }
        }
        Ok(query)
    }
}
