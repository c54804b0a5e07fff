//! Protective middleware every service shares: security headers and no-store caching on every
//! response, and rate limiting. Limits are per instance (in memory, `governor`); with several
//! instances behind a balancer each enforces its own share.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use rocket::fairing::{Fairing, Info, Kind};
use rocket::http::uri::Origin;
use rocket::http::{Header, Method, Status};
use rocket::{get, routes, Data, Request, Response, Route};
use serde::{Deserialize, Serialize};

use crate::error::{ErrorMessage, ErrorResponse};
use crate::RequestId;

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

/// `[rate_limits]`: requests per minute.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Every request, per client address (except internal routes).
    pub per_ip_per_minute: u32,
    /// Internal routes (`/internal/...`), per calling address. Their callers are the other
    /// services, each carrying every user's traffic from one address, so this is a flood guard
    /// sized for a whole service, not for one person.
    pub internal_per_ip_per_minute: u32,
    /// Requests to sign-in and token endpoints (paths under `auth_prefix`), per address.
    pub auth_per_ip_per_minute: u32,
    /// Authenticated requests, per user.
    pub per_user_per_minute: u32,
    pub auth_prefix: String,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            per_ip_per_minute: 600,
            internal_per_ip_per_minute: 120_000,
            auth_per_ip_per_minute: 30,
            per_user_per_minute: 600,
            auth_prefix: "/api/v1/auth".into(),
        }
    }
}

fn quota(per_minute: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN))
}

/// The limiters, shared by the fairing, the auth guard and the sweeper.
#[derive(Clone)]
pub struct RateLimits(Arc<Limiters>);

pub struct Limiters {
    config: RateLimitConfig,
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    internal_per_ip: DefaultKeyedRateLimiter<IpAddr>,
    auth_per_ip: DefaultKeyedRateLimiter<IpAddr>,
    per_user: DefaultKeyedRateLimiter<String>,
}

impl std::ops::Deref for RateLimits {
    type Target = Limiters;
    fn deref(&self) -> &Limiters {
        &self.0
    }
}

/// How long the client should wait; stored for the catcher's `Retry-After`.
#[derive(Debug, Clone, Copy)]
pub struct RetryAfter(pub Option<u64>);

const LIMITED_PATH: &str = "/__rate_limited";

impl RateLimits {
    pub fn new(config: RateLimitConfig) -> Self {
        Self(Arc::new(Limiters {
            per_ip: RateLimiter::keyed(quota(config.per_ip_per_minute)),
            internal_per_ip: RateLimiter::keyed(quota(config.internal_per_ip_per_minute)),
            auth_per_ip: RateLimiter::keyed(quota(config.auth_per_ip_per_minute)),
            per_user: RateLimiter::keyed(quota(config.per_user_per_minute)),
            config,
        }))
    }

    /// Sweeps idle keys once a minute until the server shuts down.
    pub async fn sweep_until(self, shutdown: rocket::Shutdown) {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep(Duration::from_secs(60)) => self.sweep(),
            }
        }
    }

    fn wait<K: std::hash::Hash + Eq + Clone>(limiter: &DefaultKeyedRateLimiter<K>, key: &K) -> Option<Duration> {
        limiter.check_key(key).err().map(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// Checks the per-user limit; on refusal records `Retry-After` for the 429.
    pub fn check_user(&self, request: &Request<'_>, user: &str) -> Result<(), Status> {
        match Self::wait(&self.per_user, &user.to_owned()) {
            None => Ok(()),
            Some(wait) => {
                refused(request, wait, "user");
                Err(Status::TooManyRequests)
            }
        }
    }

    /// Forgets keys idle long enough to be full again (bounds memory).
    pub fn sweep(&self) {
        self.per_ip.retain_recent();
        self.internal_per_ip.retain_recent();
        self.auth_per_ip.retain_recent();
        self.per_user.retain_recent();
    }
}

fn refused(request: &Request<'_>, wait: Duration, scope: &'static str) {
    let secs = wait.as_secs() + 1;
    request.local_cache(|| RetryAfter(Some(secs)));
    request.local_cache(|| ErrorMessage(Some(format!("too many requests; retry in {secs} s"))));
    tracing::warn!(request_id = %RequestId::of(request), scope, retry_after = secs, "rate limit reached");
}

/// Checks the per-address limits before routing; an over-limit request is routed to a handler
/// that answers 429 with `Retry-After` and never reaches the real route.
pub struct RateLimitFairing;

#[rocket::async_trait]
impl Fairing for RateLimitFairing {
    fn info(&self) -> Info {
        Info { name: "rate limits", kind: Kind::Request | Kind::Response }
    }

    async fn on_request(&self, request: &mut Request<'_>, _: &mut Data<'_>) {
        let Some(limits) = request.rocket().state::<RateLimits>() else { return };
        let Some(ip) = request.client_ip() else { return };
        let path = request.uri().path();
        let per_ip = if path.as_str().starts_with("/internal/") { &limits.internal_per_ip } else { &limits.per_ip };
        let mut wait = RateLimits::wait(per_ip, &ip);
        if wait.is_none() && path.as_str().starts_with(&limits.config.auth_prefix) {
            wait = RateLimits::wait(&limits.auth_per_ip, &ip);
        }
        if let Some(wait) = wait {
            refused(request, wait, "address");
            request.set_method(Method::Get);
            request.set_uri(Origin::parse(LIMITED_PATH).unwrap_or(Origin::ROOT));
        }
    }

    async fn on_response<'r>(&self, request: &'r Request<'_>, response: &mut Response<'r>) {
        if let RetryAfter(Some(secs)) = request.local_cache(|| RetryAfter(None)) {
            if response.status() == Status::TooManyRequests {
                response.set_header(Header::new("retry-after", secs.to_string()));
            }
        }
    }
}

#[get("/__rate_limited")]
fn rate_limited() -> ErrorResponse {
    ErrorResponse(Status::TooManyRequests)
}

/// The route over-limit requests are sent to.
pub fn routes() -> Vec<Route> {
    routes![rate_limited]
}
