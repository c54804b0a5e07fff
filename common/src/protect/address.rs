//! Who the client is: the socket's peer, or, when that peer is one of the configured trusted
//! proxies, the address the proxies report in `X-Forwarded-For`.
//!
//! Each proxy appends the address it received the request from, so the header reads left to
//! right from the (claimed) client to the last proxy. Only the entries the trusted proxies wrote
//! can be believed: reading from the right and skipping every trusted proxy, the first address
//! that is not one is the client. Anything left of it was written by the client and is ignored,
//! so a client cannot choose its address by sending the header itself.

use std::net::{IpAddr, Ipv6Addr};

use ipnet::IpNet;
use rocket::Request;

/// The header the trusted proxies append to (`deploy/` configures the front proxy to).
pub const FORWARDED_FOR: &str = "x-forwarded-for";

/// The reverse proxies whose `X-Forwarded-For` is believed (managed state; empty believes none).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(pub Vec<IpNet>);

impl TrustedProxies {
    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }
}

/// The client address of a request, as [`resolve`] finds it; computed once per request.
#[derive(Debug, Clone, Copy)]
struct ClientAddress(Option<IpAddr>);

/// The client address as a request guard (never fails; `None` without a socket peer).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<IpAddr>);

#[rocket::async_trait]
impl<'r> rocket::request::FromRequest<'r> for ClientIp {
    type Error = std::convert::Infallible;

    async fn from_request(request: &'r Request<'_>) -> rocket::request::Outcome<Self, Self::Error> {
        rocket::request::Outcome::Success(ClientIp(client_address(request)))
    }
}

/// The client address of `request` (see the module documentation).
pub fn client_address(request: &Request<'_>) -> Option<IpAddr> {
    request
        .local_cache(|| {
            let trusted = request.rocket().state::<TrustedProxies>();
            let peer = request.remote().map(|socket| socket.ip());
            let empty = TrustedProxies::default();
            ClientAddress(resolve(peer, request.headers().get(FORWARDED_FOR), trusted.unwrap_or(&empty)))
        })
        .0
}

/// Whether `request` came through one of the trusted proxies (its socket peer is one).
pub fn via_trusted_proxy(request: &Request<'_>) -> bool {
    let Some(trusted) = request.rocket().state::<TrustedProxies>() else { return false };
    request.remote().is_some_and(|socket| trusted.trusts(canonical(socket.ip())))
}

/// The client address, from the socket's `peer` and the `X-Forwarded-For` header values in the
/// order they arrived (several headers read as one list).
///
/// - A peer that is not a trusted proxy is the client, whatever the header says.
/// - Otherwise the entries are read from the right; trusted proxies are skipped, and the first
///   entry that is not one is the client.
/// - An entry that is not an address (a proxy that forwards garbage, or a port or obfuscated
///   name where an address belongs) stops the walk: the last trusted hop before it is used,
///   so nothing a client wrote is believed.
/// - When every entry is a trusted proxy, the left-most is used.
pub fn resolve<'h>(
    peer: Option<IpAddr>,
    forwarded_for: impl Iterator<Item = &'h str>,
    trusted: &TrustedProxies,
) -> Option<IpAddr> {
    let peer = canonical(peer?);
    if !trusted.trusts(peer) {
        return Some(peer);
    }
    let entries: Vec<&str> = forwarded_for.flat_map(|value| value.split(',')).map(str::trim).collect();
    let mut nearest = peer;
    for entry in entries.iter().rev() {
        let Ok(ip) = entry.parse::<IpAddr>() else { return Some(nearest) };
        let ip = canonical(ip);
        if !trusted.trusts(ip) {
            return Some(ip);
        }
        nearest = ip;
    }
    Some(nearest)
}

/// An IPv4 address carried as IPv6 (`::ffff:a.b.c.d`) is the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// The key a per-address limit counts against: an IPv4 address, or the /64 network an IPv6
/// address is in (one subscriber usually holds a whole /64, so counting single IPv6 addresses
/// would give each person 2^64 budgets).
pub fn limit_key(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    fn proxies(nets: &[&str]) -> TrustedProxies {
        TrustedProxies(nets.iter().map(|n| n.parse().expect("network")).collect())
    }

    #[test]
    fn a_peer_that_is_not_a_trusted_proxy_is_the_client_whatever_it_claims() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let got = resolve(Some(ip("198.51.100.7")), ["203.0.113.9"].into_iter(), &trusted);
        assert_eq!(got, Some(ip("198.51.100.7")));
        let got = resolve(Some(ip("198.51.100.7")), ["203.0.113.9"].into_iter(), &TrustedProxies::default());
        assert_eq!(got, Some(ip("198.51.100.7")), "no trusted proxies: the header is never read");
        assert_eq!(resolve(None, std::iter::empty(), &trusted), None);
    }

    #[test]
    fn behind_a_trusted_proxy_the_address_it_appended_is_the_client() {
        let trusted = proxies(&["10.0.0.0/8"]);
        assert_eq!(resolve(Some(ip("10.0.0.2")), ["203.0.113.9"].into_iter(), &trusted), Some(ip("203.0.113.9")));
        // No header from a proxy: the proxy itself is the client.
        assert_eq!(resolve(Some(ip("10.0.0.2")), std::iter::empty(), &trusted), Some(ip("10.0.0.2")));
    }

    #[test]
    fn a_forged_entry_the_client_sent_is_left_of_the_real_one_and_ignored() {
        let trusted = proxies(&["10.0.0.0/8"]);
        // The client sent "X-Forwarded-For: 1.2.3.4"; the proxy appended the real address.
        let got = resolve(Some(ip("10.0.0.2")), ["1.2.3.4, 203.0.113.9"].into_iter(), &trusted);
        assert_eq!(got, Some(ip("203.0.113.9")));
        // A client pretending to be a trusted proxy gains nothing: its real address is still right of it.
        let got = resolve(Some(ip("10.0.0.2")), ["10.9.9.9, 203.0.113.9"].into_iter(), &trusted);
        assert_eq!(got, Some(ip("203.0.113.9")));
    }

    #[test]
    fn chains_of_trusted_proxies_are_skipped_from_the_right() {
        let trusted = proxies(&["10.0.0.0/8", "192.168.1.1/32"]);
        let got =
            resolve(Some(ip("10.0.0.2")), ["1.2.3.4, 203.0.113.9, 192.168.1.1", "10.1.1.1"].into_iter(), &trusted);
        assert_eq!(got, Some(ip("203.0.113.9")), "several headers read as one list");
        let got = resolve(Some(ip("10.0.0.2")), ["10.3.3.3, 10.1.1.1"].into_iter(), &trusted);
        assert_eq!(got, Some(ip("10.3.3.3")), "all trusted: the left-most");
    }

    #[test]
    fn a_malformed_entry_stops_at_the_nearest_trusted_hop() {
        let trusted = proxies(&["10.0.0.0/8"]);
        for header in ["not-an-address", "203.0.113.9:443", "", "unknown", "[2001:db8::1]"] {
            let got = resolve(Some(ip("10.0.0.2")), [header].into_iter(), &trusted);
            assert_eq!(got, Some(ip("10.0.0.2")), "{header:?}");
        }
        let got = resolve(Some(ip("10.0.0.2")), ["203.0.113.9, garbage, 10.1.1.1"].into_iter(), &trusted);
        assert_eq!(got, Some(ip("10.1.1.1")), "garbage after a trusted hop: that hop");
        // Garbage left of the client is never reached.
        let got = resolve(Some(ip("10.0.0.2")), ["garbage, 203.0.113.9"].into_iter(), &trusted);
        assert_eq!(got, Some(ip("203.0.113.9")));
    }

    #[test]
    fn ipv4_mapped_addresses_are_ipv4() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let got = resolve(Some(ip("::ffff:10.0.0.2")), ["::ffff:203.0.113.9"].into_iter(), &trusted);
        assert_eq!(got, Some(ip("203.0.113.9")));
    }

    #[test]
    fn ipv6_clients_count_per_64_and_ipv4_per_address() {
        assert_eq!(limit_key(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")), ip("2001:db8:1:2::"));
        assert_eq!(limit_key(ip("2001:db8:1:2::1")), limit_key(ip("2001:db8:1:2:ffff::9")));
        assert_ne!(limit_key(ip("2001:db8:1:2::1")), limit_key(ip("2001:db8:1:3::1")));
        assert_eq!(limit_key(ip("203.0.113.9")), ip("203.0.113.9"));
        assert_ne!(limit_key(ip("203.0.113.9")), limit_key(ip("203.0.113.10")));
        assert_eq!(limit_key(ip("::ffff:203.0.113.9")), ip("203.0.113.9"));
    }
}
