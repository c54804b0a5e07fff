//! Protective middleware every service shares: security headers and no-store caching on every
//! response ([`SecurityHeaders`]), who the client is ([`address`]) and rate limiting
//! ([`limits`]).

pub mod address;
pub mod limits;
mod store;

pub use address::{client_address, TrustedProxies};
pub use limits::{RateLimitConfig, RateLimitFairing, RateLimits, RetryAfter};

/// The plumbing routes refused requests are sent to: over a rate limit, or with a query
/// parameter sent twice ([`crate::routing::SingleQueryParameters`]).
pub fn routes() -> Vec<rocket::Route> {
    let mut routes = limits::routes();
    routes.extend(crate::routing::routes());
    routes
}

use rocket::fairing::{Fairing, Info, Kind};
use rocket::http::Header;
use rocket::{Request, Response};

/// Sets the API's security headers on every response, and `Cache-Control: no-store` unless a
/// handler chose otherwise (responses carry personal data; nothing should keep a copy).
pub struct SecurityHeaders;

#[rocket::async_trait]
impl Fairing for SecurityHeaders {
    fn info(&self) -> Info {
        Info { name: "security headers", kind: Kind::Response }
    }

    async fn on_response<'r>(&self, _: &'r Request<'_>, response: &mut Response<'r>) {
        for (name, value) in [
            ("content-security-policy", "default-src 'none'; frame-ancestors 'none'"),
            ("strict-transport-security", "max-age=63072000; includeSubDomains"),
            ("x-content-type-options", "nosniff"),
            ("x-frame-options", "DENY"),
            ("referrer-policy", "no-referrer"),
            ("permissions-policy", "camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()"),
            ("cross-origin-opener-policy", "same-origin"),
            ("cross-origin-resource-policy", "same-site"),
        ] {
            response.set_header(Header::new(name, value));
        }
        if !response.headers().contains("cache-control") {
            response.set_header(Header::new("cache-control", "no-store"));
        }
    }
}
