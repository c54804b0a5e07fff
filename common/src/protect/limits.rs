//! Rate limiting: per client address (a stricter class for sign-in, a looser one for the
//! internal routes), and per signed-in user. Limits are per instance (in memory, `governor`);
//! with several instances behind a balancer each enforces its own share.
//!
//! A request's class is read from its path as Rocket's router reads it (percent-decoded
//! segments, empty ones dropped), so `//api/v1/auth/refresh` and `/api/v1/%61uth/refresh`,
//! which reach the sign-in routes, also count against the sign-in limit. Each limiter tracks a
//! bounded number of keys ([`RateLimitConfig::max_tracked_keys`]).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::{Quota, RateLimiter};
use rocket::fairing::{Fairing, Info, Kind};
use rocket::http::uri::Origin;
use rocket::http::{Header, Method, Status};
use rocket::{get, routes, Data, Request, Response, Route};
use serde::{Deserialize, Serialize};

use super::address::{client_address, limit_key, via_trusted_proxy};
use super::store::BoundedStore;
use crate::error::{ErrorMessage, ErrorResponse};
use crate::RequestId;

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
    /// The most keys (addresses or users) each limiter tracks. When one is full, clients it
    /// does not know share a single budget until the once-a-minute sweep frees room.
    pub max_tracked_keys: usize,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            per_ip_per_minute: 600,
            internal_per_ip_per_minute: 120_000,
            auth_per_ip_per_minute: 30,
            per_user_per_minute: 600,
            auth_prefix: "/api/v1/auth".into(),
            max_tracked_keys: 100_000,
        }
    }
}

fn quota(per_minute: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN))
}

type Gcra<K> = RateLimiter<K, BoundedStore<K>, DefaultClock, NoOpMiddleware<<DefaultClock as Clock>::Instant>>;

/// One limit: the limiter, and a handle on its store to report its size.
struct Limiter<K: std::hash::Hash + Eq + Clone> {
    gcra: Gcra<K>,
    store: BoundedStore<K>,
}

impl<K: std::hash::Hash + Eq + Clone> Limiter<K> {
    fn new(per_minute: u32, capacity: usize) -> Self {
        let store = BoundedStore::new(capacity);
        Self { gcra: RateLimiter::new(quota(per_minute), store.clone(), DefaultClock::default()), store }
    }
}

/// The limiters, shared by the fairing, the auth guard and the sweeper.
#[derive(Clone)]
pub struct RateLimits(Arc<Limiters>);

pub struct Limiters {
    per_ip: Limiter<IpAddr>,
    internal_per_ip: Limiter<IpAddr>,
    auth_per_ip: Limiter<IpAddr>,
    per_user: Limiter<String>,
    /// `auth_prefix`, as decoded segments.
    auth_prefix: Vec<String>,
    /// `max_tracked_keys`.
    capacity: usize,
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

/// Which per-address limits a request counts against, by the route it can reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// `/internal/...`: the internal limit only.
    Internal,
    /// Under the sign-in prefix: the per-address limit and the sign-in limit.
    SignIn,
    Other,
}

impl RateLimits {
    pub fn new(config: RateLimitConfig) -> Self {
        let keys = config.max_tracked_keys;
        Self(Arc::new(Limiters {
            per_ip: Limiter::new(config.per_ip_per_minute, keys),
            internal_per_ip: Limiter::new(config.internal_per_ip_per_minute, keys),
            auth_per_ip: Limiter::new(config.auth_per_ip_per_minute, keys),
            per_user: Limiter::new(config.per_user_per_minute, keys),
            auth_prefix: config.auth_prefix.split('/').filter(|s| !s.is_empty()).map(str::to_owned).collect(),
            capacity: keys,
        }))
    }

    /// Sweeps idle keys every ten seconds until the server shuts down (a full store makes room
    /// for newcomers that soon).
    pub async fn sweep_until(self, shutdown: rocket::Shutdown) {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep(Duration::from_secs(10)) => self.sweep(),
            }
        }
    }

    fn wait<K: std::hash::Hash + Eq + Clone>(limiter: &Limiter<K>, key: &K) -> Option<Duration> {
        limiter.gcra.check_key(key).err().map(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
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

    /// Forgets keys idle long enough to be full again (bounds memory), then logs each limiter
    /// that is still full.
    pub fn sweep(&self) {
        self.per_ip.gcra.retain_recent();
        self.internal_per_ip.gcra.retain_recent();
        self.auth_per_ip.gcra.retain_recent();
        self.per_user.gcra.retain_recent();
        for (limit, keys, bytes) in self.tracked() {
            if keys >= self.capacity {
                tracing::warn!(limit, keys, bytes, "rate limiter still full after its sweep");
            }
        }
    }

    /// Each limiter's name, the keys it tracks and the bytes its map has allocated.
    pub fn tracked(&self) -> [(&'static str, usize, usize); 4] {
        [
            ("address", self.per_ip.store.len(), self.per_ip.store.allocated_bytes()),
            ("internal", self.internal_per_ip.store.len(), self.internal_per_ip.store.allocated_bytes()),
            ("sign-in", self.auth_per_ip.store.len(), self.auth_per_ip.store.allocated_bytes()),
            ("user", self.per_user.store.len(), self.per_user.store.allocated_bytes()),
        ]
    }

    /// The class of a path given as decoded segments without empty ones, as the router matches.
    fn class<'a>(&self, mut segments: impl Iterator<Item = &'a str>) -> Class {
        let mut prefix = self.auth_prefix.iter();
        let first = segments.next();
        if first == Some("internal") {
            return Class::Internal;
        }
        let mut next = first;
        for expected in prefix.by_ref() {
            if next != Some(expected.as_str()) {
                return Class::Other;
            }
            next = segments.next();
        }
        Class::SignIn
    }

    /// The per-address limits, for a request from `ip` to `class`: the wait before the next
    /// request is allowed, if this one is over.
    fn check_address(&self, ip: IpAddr, class: Class) -> Option<Duration> {
        let key = limit_key(ip);
        match class {
            Class::Internal => Self::wait(&self.internal_per_ip, &key),
            Class::SignIn => Self::wait(&self.per_ip, &key).or_else(|| Self::wait(&self.auth_per_ip, &key)),
            Class::Other => Self::wait(&self.per_ip, &key),
        }
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
        let Some(ip) = client_address(request) else { return };
        let mut class = limits.class(request.uri().path().segments());
        // The services call each other directly: an internal path that came through a front
        // proxy comes from outside and gets no service-sized budget.
        if class == Class::Internal && via_trusted_proxy(request) {
            class = Class::Other;
        }
        if let Some(wait) = limits.check_address(ip, class) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(config: RateLimitConfig) -> RateLimits {
        RateLimits::new(config)
    }

    fn flood(limits: &RateLimits, addresses: u32) {
        for n in 0..addresses {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n));
            let _ = limits.check_address(ip, Class::Other);
        }
    }

    fn class_of(limits: &RateLimits, uri: &str) -> Class {
        let origin = Origin::parse(uri).expect("origin");
        limits.class(origin.path().segments())
    }

    #[test]
    fn the_class_follows_the_path_the_router_sees() {
        let limits = limits(RateLimitConfig::default());
        for uri in [
            "/api/v1/auth/refresh",
            "//api/v1/auth/refresh",
            "/api//v1/auth/refresh",
            "/api/v1/%61uth/refresh",
            "/%61pi/v%31/auth//dev-login",
            "/api/v1/auth",
            "/api/v1/auth/",
        ] {
            assert_eq!(class_of(&limits, uri), Class::SignIn, "{uri}");
        }
        for uri in ["/api/v1/users/me", "/api/v1/authx/refresh", "/api/v1", "/", "/api/v1/a%2Futh/x"] {
            assert_eq!(class_of(&limits, uri), Class::Other, "{uri}");
        }
        for uri in ["/internal/decisions", "//internal/decisions", "/%69nternal/x"] {
            assert_eq!(class_of(&limits, uri), Class::Internal, "{uri}");
        }
    }

    #[test]
    fn a_sign_in_path_counts_against_both_address_limits() {
        let config = RateLimitConfig { auth_per_ip_per_minute: 2, per_ip_per_minute: 5, ..Default::default() };
        let limits = limits(config);
        let ip: IpAddr = "203.0.113.9".parse().expect("ip");
        assert!(limits.check_address(ip, Class::SignIn).is_none());
        assert!(limits.check_address(ip, Class::SignIn).is_none());
        assert!(limits.check_address(ip, Class::SignIn).is_some(), "the third sign-in is over");
        // Two requests left of the general budget of 5: two sign-ins spent it down to 3, one
        // refused sign-in spent another.
        assert!(limits.check_address(ip, Class::Other).is_none());
        assert!(limits.check_address(ip, Class::Other).is_none());
        assert!(limits.check_address(ip, Class::Other).is_some());
        // Internal routes have their own budget.
        assert!(limits.check_address(ip, Class::Internal).is_none());
    }

    #[test]
    fn one_ipv6_network_shares_one_budget() {
        let limits = limits(RateLimitConfig { per_ip_per_minute: 2, ..Default::default() });
        let a: IpAddr = "2001:db8:1:2::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:ffff:ffff:ffff:ffff".parse().expect("ip");
        let elsewhere: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert!(limits.check_address(a, Class::Other).is_none());
        assert!(limits.check_address(b, Class::Other).is_none());
        assert!(limits.check_address(a, Class::Other).is_some(), "the /64 has spent its two");
        assert!(limits.check_address(elsewhere, Class::Other).is_none());
    }

    /// What 100,000 distinct addresses cost: the map stops at its capacity (the overflow has its
    /// own, fixed, buckets) and its allocation stays under the figure docs/configuration.md gives.
    #[test]
    fn a_flood_of_distinct_addresses_costs_bounded_memory() {
        let small = limits(RateLimitConfig { max_tracked_keys: 10_000, per_ip_per_minute: 600, ..Default::default() });
        let known: IpAddr = "198.51.100.1".parse().expect("ip");
        assert!(small.check_address(known, Class::Other).is_none());
        flood(&small, 100_000);
        let (_, keys, _) = small.tracked()[0];
        assert!(keys <= 10_000, "{keys} keys");
        // A client known before the flood keeps its own budget, and a newcomer shares a bucket
        // with the few flood keys that hash there: 90,000 single requests spread over the
        // buckets spend none of them.
        assert!(small.check_address(known, Class::Other).is_none());
        assert!(small.check_address("198.51.100.2".parse().expect("ip"), Class::Other).is_none());

        // At the default capacity, 100,000 addresses fit, and a flood twice as large takes no
        // more: under 8 MiB for the limiter.
        let full = limits(RateLimitConfig::default());
        flood(&full, 200_000);
        let (_, keys, bytes) = full.tracked()[0];
        assert!(keys <= 100_000, "{keys} keys");
        assert!(bytes < 8 << 20, "{bytes} bytes");
    }
}
