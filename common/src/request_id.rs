//! The request id: taken from `x-request-id` when the caller sent a sane one, generated
//! otherwise; returned on every response and forwarded on every internal call.

use rocket::fairing::{Fairing, Info, Kind};
use rocket::http::Header;
use rocket::request::{FromRequest, Outcome};
use rocket::{Data, Request, Response};

pub const HEADER: &str = "x-request-id";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl RequestId {
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    /// Accepts at most 128 characters of `[A-Za-z0-9._:-]`: anything else could smuggle text
    /// into logs, so it is replaced.
    pub fn parse(value: &str) -> Option<Self> {
        let ok = !value.is_empty()
            && value.len() <= 128
            && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
        ok.then(|| Self(value.to_owned()))
    }

    /// The id of this request (set by the fairing before any guard runs).
    pub fn of<'r>(request: &'r Request<'_>) -> &'r RequestId {
        request.local_cache(|| {
            request.headers().get_one(HEADER).and_then(RequestId::parse).unwrap_or_else(RequestId::generate)
        })
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for RequestId {
    type Error = std::convert::Infallible;
    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        Outcome::Success(RequestId::of(request).clone())
    }
}

pub struct RequestIdFairing;

#[rocket::async_trait]
impl Fairing for RequestIdFairing {
    fn info(&self) -> Info {
        Info { name: "request id", kind: Kind::Request | Kind::Response }
    }

    async fn on_request(&self, request: &mut Request<'_>, _: &mut Data<'_>) {
        let _ = RequestId::of(request);
    }

    async fn on_response<'r>(&self, request: &'r Request<'_>, response: &mut Response<'r>) {
        response.set_header(Header::new(HEADER, RequestId::of(request).0.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::RequestId;

    #[test]
    fn rejects_log_injection() {
        assert!(RequestId::parse("abc-123_x.y:z").is_some());
        assert!(RequestId::parse("").is_none());
        assert!(RequestId::parse("a\nb").is_none());
        assert!(RequestId::parse("a b").is_none());
        assert!(RequestId::parse(&"a".repeat(129)).is_none());
    }
}
