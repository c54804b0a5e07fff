//! `Body<T>`: the strict JSON request body every route uses. It requires
//! `Content-Type: application/json` (415 otherwise) and obeys the configured size limit (413).
//! Malformed JSON gets 400. A body that does not fit `T` gets 422 whose message names the field
//! and the problem (declare `T` with `#[serde(deny_unknown_fields)]` so unknown fields are
//! refused too).

use rocket::data::{self, Data, FromData};
use rocket::http::{ContentType, Status};
use rocket::serde::json::{Error as JsonError, Json};
use rocket::Request;
use serde::de::DeserializeOwned;

use crate::error::ErrorMessage;

#[derive(Debug)]
pub struct Body<T>(pub T);

impl<T> Body<T> {
    pub fn into_inner(self) -> T {
        self.0
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
        match Json::<T>::from_data(req, data).await {
            data::Outcome::Success(json) => data::Outcome::Success(Body(json.into_inner())),
            data::Outcome::Forward(f) => data::Outcome::Forward(f),
            data::Outcome::Error((status, error)) => {
                let message = match (&error, status) {
                    (_, Status::PayloadTooLarge) => "request body too large".to_owned(),
                    // serde's own words name the field: "unknown field `roles`, expected one of
                    // ...", "invalid type: string \"x\", expected u64 at line 1 column 12".
                    (JsonError::Parse(_, e), Status::UnprocessableEntity) => format!("invalid body: {e}"),
                    (JsonError::Parse(_, e), _) => format!("malformed JSON: {e}"),
                    (JsonError::Io(_), _) => "the body could not be read".to_owned(),
                };
                fail(status, message)
            }
        }
    }
}
