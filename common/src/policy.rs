//! The internal-call allowlist (`policies/internal-calls.toml`): which roles may act for each
//! purpose (`[purposes]`), and for each callee, each route as Rocket mounts it
//! (`"GET /internal/v1/records/<id>"`), the callers that may use it and the purposes it serves.
//! Anything not listed is refused with 403: an unknown caller or route, a purpose the route does
//! not serve, a purpose claimed in a role it is not for. So the purpose the access log records is
//! one the acting role can have.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Deserialize;

use crate::{Role, ServiceName};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteRule {
    callers: BTreeSet<ServiceName>,
    purposes: BTreeSet<String>,
    /// Callers that relay a person's call they verified themselves (phi-vault asking the consent
    /// service about a disclosure it serves): their calls in a person's role carry no delegation
    /// token, since only public-api mints those. Every other call in a person's role must.
    #[serde(default)]
    relayed_by: BTreeSet<ServiceName>,
}

#[derive(Debug, Clone, Default)]
pub struct CallPolicy {
    rules: BTreeMap<ServiceName, BTreeMap<String, RouteRule>>,
    /// Each purpose and the roles that may act for it.
    purposes: BTreeMap<String, BTreeSet<Role>>,
}

/// Why the allowlist refused a verified caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// The route is not listed, or not for this caller.
    Caller,
    /// The route does not serve the asserted purpose.
    Purpose,
    /// The purpose is not one the asserted role acts for.
    Role,
}

#[derive(Debug, thiserror::Error)]
#[error("policy {path}: {message}")]
pub struct PolicyError {
    path: String,
    message: String,
}

impl CallPolicy {
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let err = |message: String| PolicyError { path: path.display().to_string(), message };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        Self::parse(&text).map_err(err)
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let mut table: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
        let purposes: BTreeMap<String, BTreeSet<Role>> = table
            .remove("purposes")
            .ok_or("a [purposes] table is required: which roles act for which purpose")?
            .try_into()
            .map_err(|e: toml::de::Error| format!("[purposes]: {e}"))?;
        let rules: BTreeMap<ServiceName, BTreeMap<String, RouteRule>> =
            toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| e.to_string())?;
        if let Some((bad, _)) = purposes.iter().find(|(p, roles)| !is_purpose(p) || roles.is_empty()) {
            return Err(format!("[purposes] `{bad}`: a purpose name and at least one role"));
        }
        for (route, rule) in rules.values().flat_map(|routes| routes.iter()) {
            let (method, path) =
                route.split_once(' ').ok_or_else(|| format!("route `{route}` must be `METHOD /path`"))?;
            if !matches!(method, "GET" | "POST" | "PUT" | "PATCH" | "DELETE") || !path.starts_with("/internal/") {
                return Err(format!("route `{route}` must be `METHOD /internal/...`"));
            }
            if rule.callers.is_empty() || rule.purposes.is_empty() {
                return Err(format!("route `{route}` must list at least one caller and one purpose"));
            }
            if let Some(bad) = rule.purposes.iter().find(|p| !purposes.contains_key(*p)) {
                return Err(format!("route `{route}`: purpose `{bad}` is not in [purposes]"));
            }
            if let Some(bad) = rule.relayed_by.iter().find(|c| !rule.callers.contains(*c)) {
                return Err(format!("route `{route}`: relaying caller `{bad}` is not one of its callers"));
            }
        }
        Ok(Self { rules, purposes })
    }

    fn rule(&self, callee: ServiceName, route: &str) -> Option<&RouteRule> {
        self.rules.get(&callee).and_then(|routes| routes.get(route))
    }

    /// Does `caller` relay people's calls to `route` of `callee` (no delegation token of its own)?
    pub fn relays(&self, callee: ServiceName, caller: ServiceName, route: &str) -> bool {
        self.rule(callee, route).is_some_and(|r| r.relayed_by.contains(&caller))
    }

    /// May `caller` use `route` (`"METHOD /internal/..."`) of `callee` for `purpose`, acting in
    /// `role`?
    pub fn decide(
        &self,
        callee: ServiceName,
        caller: ServiceName,
        route: &str,
        purpose: &str,
        role: Role,
    ) -> Result<(), Denied> {
        let rule = self.rule(callee, route).filter(|r| r.callers.contains(&caller)).ok_or(Denied::Caller)?;
        if !rule.purposes.contains(purpose) {
            return Err(Denied::Purpose);
        }
        if !self.purposes.get(purpose).is_some_and(|roles| roles.contains(&role)) {
            return Err(Denied::Role);
        }
        Ok(())
    }

    /// The purposes `route` of `callee` serves for `role`, for a caller that tells its own
    /// client what it may ask.
    pub fn purposes_for(&self, callee: ServiceName, route: &str, role: Role) -> Vec<&str> {
        self.rule(callee, route)
            .map(|r| {
                r.purposes
                    .iter()
                    .filter(|p| self.purposes.get(*p).is_some_and(|roles| roles.contains(&role)))
                    .map(String::as_str)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every route listed for `callee`, for the test that each internal route is covered.
    pub fn routes_of(&self, callee: ServiceName) -> impl Iterator<Item = &str> {
        self.rules.get(&callee).into_iter().flat_map(|r| r.keys().map(String::as_str))
    }
}

/// A purpose name: 1 to 100 lowercase ASCII letters, digits and underscores.
pub fn is_purpose(p: &str) -> bool {
    (1..=100).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_decides() {
        let p = CallPolicy::parse(
            r#"
            [purposes]
            health_check = ["service"]
            treatment = ["caseworker"]

            [phi-vault."GET /internal/v1/ready"]
            callers = ["public-api"]
            purposes = ["health_check", "treatment"]
            "#,
        )
        .expect("valid");
        let ready = "GET /internal/v1/ready";
        let (phi, public, consent, svc) =
            (ServiceName::PhiVault, ServiceName::PublicApi, ServiceName::Consent, Role::Service);
        assert_eq!(p.decide(phi, public, ready, "health_check", svc), Ok(()));
        assert_eq!(p.decide(phi, public, ready, "erasure", svc), Err(Denied::Purpose));
        assert_eq!(p.decide(phi, public, ready, "treatment", svc), Err(Denied::Role));
        assert_eq!(p.decide(phi, public, ready, "treatment", Role::Caseworker), Ok(()));
        assert_eq!(p.decide(phi, consent, ready, "health_check", svc), Err(Denied::Caller));
        assert_eq!(p.decide(phi, public, "POST /internal/v1/ready", "health_check", svc), Err(Denied::Caller));
        assert_eq!(p.decide(consent, public, ready, "health_check", svc), Err(Denied::Caller));
        assert_eq!(p.purposes_for(phi, ready, svc), ["health_check"]);
        assert_eq!(p.purposes_for(phi, ready, Role::Caseworker), ["treatment"]);
    }

    #[test]
    fn rejects_bad_entries() {
        let rule = |callee: &str, route: &str, callers: &str, purposes: &str| {
            format!("[purposes]\na = [\"service\"]\nhealth_check = [\"service\"]\n[{callee}.\"{route}\"]\ncallers = {callers}\npurposes = {purposes}\n")
        };
        let ok = rule("consent", "GET /internal/x", r#"["public-api"]"#, r#"["health_check"]"#);
        assert!(CallPolicy::parse(&ok).is_ok());
        assert!(CallPolicy::parse(&rule("nobody", "GET /internal/x", r#"["public-api"]"#, r#"["a"]"#)).is_err());
        assert!(CallPolicy::parse(&rule("consent", "GET /public", r#"["public-api"]"#, r#"["a"]"#)).is_err());
        assert!(CallPolicy::parse(&rule("consent", "GET /internal/x", r#"["mallory"]"#, r#"["a"]"#)).is_err());
        assert!(CallPolicy::parse(&rule("consent", "GET /internal/x", r#"["public-api"]"#, "[]")).is_err());
        assert!(
            CallPolicy::parse(&rule("consent", "GET /internal/x", r#"["public-api"]"#, r#"["Bad Purpose"]"#)).is_err()
        );
        assert!(CallPolicy::parse(&rule("consent", "GET /internal/x", r#"["public-api"]"#, r#"["unlisted"]"#)).is_err());
        assert!(CallPolicy::parse("[consent.\"GET /internal/x\"]\ncallers = [\"public-api\"]\npurposes = [\"a\"]\n")
            .is_err());
        assert!(CallPolicy::parse("[purposes]\na = [\"wizard\"]\n").is_err());
        // A purpose needs a well-formed name and at least one role.
        assert!(CallPolicy::parse("[purposes]\na = [\"service\"]\n").is_ok());
        assert!(CallPolicy::parse("[purposes]\n\"Bad Purpose\" = [\"service\"]\n").is_err());
        assert!(CallPolicy::parse("[purposes]\na = []\n").is_err());
    }

    #[test]
    fn purpose_names_are_short_lowercase_words() {
        for good in ["a", "break_glass", "step2", &"p".repeat(100)] {
            assert!(is_purpose(good), "{good}");
        }
        for bad in ["", "Treatment", "break-glass", "two words", "é", &"p".repeat(101)] {
            assert!(!is_purpose(bad), "{bad}");
        }
    }

    #[test]
    fn the_shipped_policy_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/internal-calls.toml");
        let policy = CallPolicy::load(&path).expect("policies/internal-calls.toml is valid");
        // The one relay: phi-vault asking the consent service about a disclosure it serves.
        let mut relays = Vec::new();
        for callee in ServiceName::ALL {
            for route in policy.routes_of(callee) {
                for caller in ServiceName::ALL.into_iter().filter(|c| policy.relays(callee, *c, route)) {
                    relays.push((callee, route, caller));
                }
            }
        }
        assert_eq!(relays, [(ServiceName::Consent, "POST /internal/v1/decisions", ServiceName::PhiVault)]);
    }

    #[test]
    fn a_relay_must_be_a_caller() {
        let policy = |relayed: &str| {
            format!(
                "[purposes]
a = [\"partner\"]\n[consent.\"POST /internal/x\"]\ncallers = [\"phi-vault\"]\npurposes = [\"a\"]\nrelayed_by = {relayed}\n"
            )
        };
        let ok = CallPolicy::parse(&policy(r#"["phi-vault"]"#)).expect("valid");
        assert!(ok.relays(ServiceName::Consent, ServiceName::PhiVault, "POST /internal/x"));
        assert!(!ok.relays(ServiceName::Consent, ServiceName::PublicApi, "POST /internal/x"));
        assert!(!ok.relays(ServiceName::Consent, ServiceName::PhiVault, "GET /internal/x"));
        assert!(CallPolicy::parse(&policy(r#"["public-api"]"#)).is_err());
    }
}
