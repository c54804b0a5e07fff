//! `Body<T>`: the strict JSON request body every route uses.
//!
//! - `Content-Type` must be JSON (415).
//! - The body must fit the configured limit, `server.json_limit_bytes` (413).
//! - It must be well-formed JSON (400).
//! - On `/internal/` routes, its SHA-256 must be the one the verified assertion covers (401).
//! - It must fit `T` (422). The message lists each bad field with its problem, e.g.
//!   `invalid body: roles: unknown field …; sobriety_date: invalid type …`. Declare `T` with
//!   `#[serde(deny_unknown_fields)]` so unknown fields are refused too.

use rocket::data::{self, Data, FromData, ToByteUnit};
use rocket::http::{ContentType, Status};
use rocket::Request;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::ErrorMessage;

/// At most this many problems are reported at once.
const MAX_PROBLEMS: usize = 10;

#[derive(Debug)]
pub struct Body<T>(pub T);

impl<T> Body<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

/// Deserialises `value` as `T`, or lists every top-level field that stops it.
pub fn from_value<T: DeserializeOwned>(mut value: Value) -> Result<T, Vec<String>> {
    let mut problems = Vec::new();
    loop {
        let error = match serde_path_to_error::deserialize::<_, T>(value.clone()) {
            Ok(parsed) if problems.is_empty() => return Ok(parsed),
            Ok(_) => return Err(problems),
            Err(e) => e,
        };
        let inner = error.inner().to_string();
        // An unknown field is reported at the parent's path; name the field itself.
        let field = inner
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split('`').next())
            .map(str::to_owned)
            .or_else(|| {
                error.path().iter().next().map(|segment| segment.to_string().trim_start_matches('.').to_owned())
            })
            .filter(|f| !f.is_empty() && f != ".");
        match field {
            Some(field) => {
                problems.push(format!("{field}: {inner}"));
                let removed = value.as_object_mut().and_then(|o| o.remove(&field));
                if removed.is_none() || problems.len() >= MAX_PROBLEMS {
                    return Err(problems);
                }
            }
            None => {
                problems.push(inner);
                return Err(problems);
            }
        }
    }
}

#[rocket::async_trait]
impl<'r, T: DeserializeOwned> FromData<'r> for Body<T> {
    type Error = String;

    async fn from_data(req: &'r Request<'_>, data: Data<'r>) -> data::Outcome<'r, Self> {
        let fail = |status: Status, message: String| {
            req.local_cache(|| ErrorMessage(Some(message.clone())));
            data::Outcome::Error((status, message))
        };
        if req.content_type().is_none_or(|ct| !ct.is_json()) {
            return fail(Status::UnsupportedMediaType, format!("send the body as {}", ContentType::JSON));
        }
        let limit = req.limits().get("json").unwrap_or_else(|| 1.mebibytes());
        let text = match data.open(limit).into_string().await {
            Ok(text) if text.is_complete() => text.into_inner(),
            Ok(_) => return fail(Status::PayloadTooLarge, "request body too large".into()),
            Err(_) => return fail(Status::BadRequest, "the body could not be read".into()),
        };
        // On internal routes the bytes must be the ones the caller's assertion was made for.
        // Decided by the matched route's pattern, not the raw path (`//internal/...` routes the same).
        if req.route().is_some_and(|r| r.uri.path().starts_with("/internal/")) {
            if let Err(status) = crate::assertion::check_body(req, text.as_bytes()) {
                return data::Outcome::Error((status, "body not covered by the assertion".into()));
            }
        }
        let value: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => return fail(Status::BadRequest, format!("malformed JSON: {e}")),
        };
        match from_value::<T>(value) {
            Ok(parsed) => data::Outcome::Success(Body(parsed)),
            Err(problems) => fail(Status::UnprocessableEntity, format!("invalid body: {}", problems.join("; "))),
        }
    }
}

/// The `Idempotency-Key` request header, if sent: 1 to 255 visible ASCII characters, else 422
/// naming the header. A route that takes it makes a repeat of a request with the same key answer
/// what the first one did, once, instead of acting twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(pub Option<String>);

impl IdempotencyKey {
    pub const HEADER: &'static str = "Idempotency-Key";

    pub fn parse(raw: Option<&str>) -> Result<Self, String> {
        match raw {
            None => Ok(IdempotencyKey(None)),
            Some(key) if (1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic()) => {
                Ok(IdempotencyKey(Some(key.to_owned())))
            }
            Some(_) => Err(format!("{}: 1 to 255 visible ASCII characters", Self::HEADER)),
        }
    }
}

#[rocket::async_trait]
impl<'r> rocket::request::FromRequest<'r> for IdempotencyKey {
    type Error = String;

    async fn from_request(req: &'r Request<'_>) -> rocket::request::Outcome<Self, Self::Error> {
        let mut values = req.headers().get(Self::HEADER);
        let first = values.next();
        let parsed =
            if values.next().is_some() { Err(format!("{}: send it once", Self::HEADER)) } else { Self::parse(first) };
        match parsed {
            Ok(key) => rocket::request::Outcome::Success(key),
            Err(message) => {
                req.local_cache(|| ErrorMessage(Some(message.clone())));
                rocket::request::Outcome::Error((Status::UnprocessableEntity, message))
            }
        }
    }
}

/// Parses an optional query parameter strictly. Rocket turns a malformed `Option<T>` parameter
/// into `None` silently; routes take the raw text instead and call this, so `?limit=ten` is a
/// 422 naming the field rather than a default.
pub fn query_param<T: std::str::FromStr>(
    field: &str,
    raw: Option<&str>,
    expected: &str,
) -> Result<Option<T>, crate::ApiError> {
    raw.map(|value| value.parse::<T>().map_err(|_| crate::ApiError::Unprocessable(format!("{field}: {expected}"))))
        .transpose()
}

/// The `after` and `limit` query parameters of a list, as sent: a route takes this (or a filter
/// struct holding the same two fields beside its own) as `?<page..>` and calls [`Page::keyset`],
/// which checks them strictly.
#[derive(Debug, Default, rocket::FromForm)]
pub struct Page<'r> {
    pub after: Option<&'r str>,
    pub limit: Option<&'r str>,
}

impl Page<'_> {
    /// The checked page: `after` an integer, `limit` 1 to 100 (`default_limit` when absent).
    pub fn keyset(&self, default_limit: i64) -> Result<Keyset, crate::ApiError> {
        Keyset::parse(self.after, self.limit, default_limit)
    }
}

/// Where a keyset page starts and how long it is, from the `after` and `limit` query parameters:
/// `after` is the `next_after` of the previous page (absent for the first), `limit` 1 to 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keyset {
    pub after: Option<i64>,
    pub limit: i64,
}

impl Keyset {
    pub fn parse(after: Option<&str>, limit: Option<&str>, default_limit: i64) -> Result<Self, crate::ApiError> {
        Ok(Keyset {
            after: query_param("after", after, "an integer")?,
            limit: page_limit(limit)?.unwrap_or(default_limit),
        })
    }

    /// `after`, or 0 for a page oldest first from the start.
    pub fn after_or_start(&self) -> i64 {
        self.after.unwrap_or(0)
    }
}

/// A calendar date, `YYYY-MM-DD`, from a field or query parameter named `field`; 422 naming it.
pub fn date(field: &str, text: &str) -> Result<time::Date, crate::ApiError> {
    time::Date::parse(text, time::macros::format_description!("[year]-[month]-[day]"))
        .map_err(|_| crate::ApiError::Unprocessable(format!("{field}: a date, YYYY-MM-DD")))
}

/// As [`date`], for an optional query parameter.
pub fn date_param(field: &str, raw: Option<&str>) -> Result<Option<time::Date>, crate::ApiError> {
    raw.map(|text| date(field, text)).transpose()
}

/// A name as a trail records it (`partner:…`, `record.read`, `care_coordination`, a user id):
/// 1 to 200 letters, digits, `:`, `_`, `-` or `.`, else 422 naming the field. Nothing else can be
/// asked, and what passes needs no escaping in a query string.
pub fn log_name(field: &str, value: Option<&str>) -> Result<Option<String>, crate::ApiError> {
    match value {
        Some(v)
            if v.is_empty()
                || v.len() > 200
                || !v.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-' | '.')) =>
        {
            Err(crate::ApiError::Unprocessable(format!("{field}: 1 to 200 letters, digits, `:`, `_`, `-` or `.`")))
        }
        other => Ok(other.map(str::to_owned)),
    }
}

/// A page size from the `limit` query parameter: 1 to 100, else 422 naming it; `None` when absent.
pub fn page_limit(raw: Option<&str>) -> Result<Option<i64>, crate::ApiError> {
    const EXPECTED: &str = "an integer from 1 to 100";
    match query_param::<i64>("limit", raw, EXPECTED)? {
        Some(limit) if !(1..=100).contains(&limit) => Err(crate::ApiError::Unprocessable(format!("limit: {EXPECTED}"))),
        limit => Ok(limit),
    }
}

/// Checks free text a person typed: `chars` characters once trimmed, and no control
/// characters (newlines only where `multiline`). The 422 names the field and the bounds.
pub fn printable(
    field: &str,
    value: &str,
    chars: std::ops::RangeInclusive<usize>,
    multiline: bool,
) -> Result<(), crate::ApiError> {
    let n = value.trim().chars().count();
    let bad_char = value.chars().any(|c| c.is_control() && !(multiline && c == '\n'));
    if !chars.contains(&n) || bad_char {
        return Err(crate::ApiError::Unprocessable(format!(
            "{field}: {} to {} printable characters",
            chars.start(),
            chars.end()
        )));
    }
    Ok(())
}

pub use wire::text::is_invisible;

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Patch {
        name: Option<String>,
        amount: Option<u32>,
    }

    #[test]
    fn idempotency_keys_are_visible_ascii_of_bounded_length() {
        use super::IdempotencyKey;
        assert_eq!(IdempotencyKey::parse(None), Ok(IdempotencyKey(None)));
        assert_eq!(IdempotencyKey::parse(Some("a-1_B.")), Ok(IdempotencyKey(Some("a-1_B.".into()))));
        assert!(IdempotencyKey::parse(Some(&"k".repeat(255))).is_ok());
        for bad in ["", "has space", "tab\t", "é", &"k".repeat(256)] {
            assert!(IdempotencyKey::parse(Some(bad)).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn printable_text_has_bounds_and_no_control_characters() {
        use super::printable;
        assert!(printable("note", "two\nlines", 1..=20, true).is_ok());
        assert!(printable("name", "two\nlines", 1..=20, false).is_err(), "newline in a one-line field");
        assert!(printable("note", "bell\u{7}", 1..=20, true).is_err());
        assert!(printable("reason", "  short  ", 10..=500, false).is_err(), "counted once trimmed");
        assert!(printable("reason", "long enough now", 10..=500, false).is_ok());
        let Err(common_error) = printable("name", "", 1..=200, false) else { panic!("empty accepted") };
        assert!(format!("{common_error:?}").contains("name: 1 to 200 printable characters"));
    }

    #[test]
    fn lists_every_bad_field() {
        let problems =
            super::from_value::<Patch>(json!({"name": 5, "roles": ["admin"], "amount": "x", "user_type": "p"}))
                .expect_err("invalid");
        let fields: Vec<&str> = problems.iter().map(|p| p.split(':').next().unwrap_or_default()).collect();
        assert_eq!(fields.len(), 4, "{problems:?}");
        for f in ["name", "roles", "amount", "user_type"] {
            assert!(fields.contains(&f), "{f} missing from {problems:?}");
        }
        assert!(super::from_value::<Patch>(json!({"name": "ok", "amount": 3})).is_ok());
        assert_eq!(super::from_value::<Patch>(json!([1])).expect_err("not an object").len(), 1);
    }
}
