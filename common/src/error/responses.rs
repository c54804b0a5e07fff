//! [`ApiError`] and the responders and catchers that answer with [`ErrorBody`].

use rocket::http::{ContentType, Header, Status};
use rocket::response::{self, Responder, Response};
use rocket::{catch, Request};

use super::{ErrorBody, ErrorDetail};
use crate::RequestId;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("unauthorized")]
    Unauthorized,
    #[error("forbidden")]
    Forbidden,
    #[error("not found")]
    NotFound,
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("too large: {0}")]
    TooLarge(String),
    #[error("unprocessable: {0}")]
    Unprocessable(String),
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    #[error("too many requests: {0}")]
    TooManyRequests(String),
    #[error("service unavailable: {0}")]
    Unavailable(String),
    #[error("internal: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self::Internal(cause.to_string())
    }

    pub fn status(&self) -> Status {
        match self {
            Self::BadRequest(_) => Status::BadRequest,
            Self::Unauthorized => Status::Unauthorized,
            Self::Forbidden => Status::Forbidden,
            Self::NotFound => Status::NotFound,
            Self::Conflict(_) => Status::Conflict,
            Self::TooLarge(_) => Status::PayloadTooLarge,
            Self::Unprocessable(_) => Status::UnprocessableEntity,
            Self::UnsupportedMediaType(_) => Status::UnsupportedMediaType,
            Self::TooManyRequests(_) => Status::TooManyRequests,
            Self::Unavailable(_) => Status::ServiceUnavailable,
            Self::Internal(_) => Status::InternalServerError,
        }
    }

    /// What the client may read: the detail only for errors that are about its own input.
    fn public_message(&self) -> String {
        match self {
            Self::BadRequest(m)
            | Self::Unprocessable(m)
            | Self::Conflict(m)
            | Self::TooLarge(m)
            | Self::UnsupportedMediaType(m)
            | Self::TooManyRequests(m) => m.clone(),
            other => default_message(other.status()).to_owned(),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                Self::Unavailable(format!("database: {e}"))
            }
            other => Self::Internal(format!("database: {other}")),
        }
    }
}

/// The stable code for a status.
pub fn code_for(status: Status) -> &'static str {
    match status.code {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        406 => "not_acceptable",
        409 => "conflict",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        422 => "unprocessable_entity",
        429 => "too_many_requests",
        503 => "service_unavailable",
        500..=599 => "internal_error",
        _ => "error",
    }
}

pub fn default_message(status: Status) -> &'static str {
    match status.code {
        400 => "the request could not be understood",
        401 => "authentication required",
        403 => "not permitted",
        404 => "not found",
        405 => "method not allowed",
        406 => "not acceptable",
        409 => "conflict",
        413 => "request body too large",
        415 => "unsupported media type",
        422 => "the request body is invalid",
        429 => "too many requests",
        503 => "service unavailable",
        500..=599 => "internal error",
        _ => "error",
    }
}

/// The error body for `status`, with its code, the message and the request's id.
pub fn body_for(status: Status, message: impl Into<String>, request_id: &RequestId) -> ErrorBody {
    ErrorBody {
        error: ErrorDetail {
            code: code_for(status).to_owned(),
            message: message.into(),
            request_id: request_id.0.clone(),
        },
    }
}

/// Writes an error body with `status`. Shared by [`ApiError`] and the catchers.
pub fn respond(status: Status, message: String, request: &Request<'_>) -> response::Result<'static> {
    let body = body_for(status, message, RequestId::of(request));
    let json = serde_json::to_string(&body).map_err(|_| Status::InternalServerError)?;
    Response::build()
        .status(status)
        .header(ContentType::JSON)
        .header(Header::new("cache-control", "no-store"))
        .sized_body(json.len(), std::io::Cursor::new(json))
        .ok()
}

impl<'r> Responder<'r, 'static> for ApiError {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'static> {
        let request_id = RequestId::of(request);
        match &self {
            Self::Internal(cause) => tracing::error!(request_id = %request_id, error = %cause, "internal error"),
            Self::Unavailable(cause) => {
                tracing::warn!(request_id = %request_id, error = %cause, "dependency unavailable")
            }
            _ => {}
        }
        respond(self.status(), self.public_message(), request)
    }
}

/// Every status Rocket produces without a handler (404, 422 from a bad body, 413, 500 from a
/// panic, guard failures) answers with the same body. A 404 for a path that exists under other
/// methods only is a 405 with `Allow` naming them.
#[catch(default)]
pub fn default_catcher(status: Status, request: &Request<'_>) -> Result<ErrorResponse, MethodNotAllowed> {
    match status {
        Status::NotFound => crate::routing::allowed_methods(request)
            .map_or(Ok(ErrorResponse(status)), |allow| Err(MethodNotAllowed { allow })),
        _ => Ok(ErrorResponse(status)),
    }
}

/// 405 in the one body shape, with `Allow` listing the methods the path has.
#[derive(Debug)]
pub struct MethodNotAllowed {
    pub allow: String,
}

impl<'r> Responder<'r, 'static> for MethodNotAllowed {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'static> {
        let status = Status::MethodNotAllowed;
        let mut response = respond(status, default_message(status).to_owned(), request)?;
        response.set_header(Header::new("allow", self.allow));
        Ok(response)
    }
}

/// The catcher's responder: the status it carries, in the one body shape.
pub struct ErrorResponse(pub Status);

impl<'r> Responder<'r, 'static> for ErrorResponse {
    fn respond_to(self, request: &'r Request<'_>) -> response::Result<'static> {
        let message =
            request.local_cache(|| ErrorMessage(None)).0.clone().unwrap_or_else(|| default_message(self.0).to_owned());
        if self.0.code >= 500 {
            tracing::error!(request_id = %RequestId::of(request), status = self.0.code, "request failed");
        }
        respond(self.0, message, request)
    }
}

/// A message a guard leaves for the catcher (e.g. what was wrong with a body). Must be safe to
/// show the client.
#[derive(Debug, Clone)]
pub struct ErrorMessage(pub Option<String>);

pub fn catchers() -> Vec<rocket::Catcher> {
    rocket::catchers![default_catcher]
}
