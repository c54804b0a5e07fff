//! The consent wire types (from `wire::consents`), and how a service reads a consent list's
//! query string.

pub use wire::consents::*;

/// Parses a consent list's raw query parameters strictly (422 naming the field).
pub fn parse_query(
    state: Option<&str>,
    after: Option<&str>,
    limit: Option<&str>,
) -> Result<ConsentQuery, crate::ApiError> {
    if let Some(s) = state {
        if !STATES.contains(&s) {
            return Err(crate::ApiError::Unprocessable(format!("state: one of {}", STATES.join(", "))));
        }
    }
    Ok(ConsentQuery {
        state: state.map(str::to_owned),
        after: crate::json::query_param("after", after, "an integer")?,
        limit: crate::json::page_limit(limit)?,
    })
}
