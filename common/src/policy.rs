//! The internal-call allowlist (`policies/internal-calls.toml`): for each callee, which callers
//! may use which route. A route is written as Rocket mounts it: `"GET /internal/v1/ready"`.
//! Anything not listed is refused.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::ServiceName;

#[derive(Debug, Clone, Default)]
pub struct CallPolicy {
    rules: BTreeMap<ServiceName, BTreeMap<String, BTreeSet<ServiceName>>>,
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
        let rules: BTreeMap<ServiceName, BTreeMap<String, BTreeSet<ServiceName>>> =
            toml::from_str(text).map_err(|e| e.to_string())?;
        for routes in rules.values() {
            for route in routes.keys() {
                let (method, path) =
                    route.split_once(' ').ok_or_else(|| format!("route `{route}` must be `METHOD /path`"))?;
                if !matches!(method, "GET" | "POST" | "PUT" | "PATCH" | "DELETE") || !path.starts_with("/internal/") {
                    return Err(format!("route `{route}` must be `METHOD /internal/...`"));
                }
            }
        }
        Ok(Self { rules })
    }

    pub fn allows(&self, callee: ServiceName, caller: ServiceName, method: &str, route: &str) -> bool {
        self.rules
            .get(&callee)
            .and_then(|routes| routes.get(&format!("{method} {route}")))
            .is_some_and(|callers| callers.contains(&caller))
    }

    /// Every route listed for `callee`, for the test that each internal route is covered.
    pub fn routes_of(&self, callee: ServiceName) -> impl Iterator<Item = &str> {
        self.rules.get(&callee).into_iter().flat_map(|r| r.keys().map(String::as_str))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_decides() {
        let p = CallPolicy::parse(
            r#"
            [phi-vault]
            "GET /internal/v1/ready" = ["public-api"]
            "#,
        )
        .expect("valid");
        assert!(p.allows(ServiceName::PhiVault, ServiceName::PublicApi, "GET", "/internal/v1/ready"));
        assert!(!p.allows(ServiceName::PhiVault, ServiceName::Consent, "GET", "/internal/v1/ready"));
        assert!(!p.allows(ServiceName::PhiVault, ServiceName::PublicApi, "POST", "/internal/v1/ready"));
        assert!(!p.allows(ServiceName::Consent, ServiceName::PublicApi, "GET", "/internal/v1/ready"));
    }

    #[test]
    fn rejects_bad_entries() {
        assert!(CallPolicy::parse("[nobody]\n\"GET /internal/x\" = [\"public-api\"]").is_err());
        assert!(CallPolicy::parse("[consent]\n\"GET /public\" = [\"public-api\"]").is_err());
        assert!(CallPolicy::parse("[consent]\n\"GET /internal/x\" = [\"mallory\"]").is_err());
    }

    #[test]
    fn the_shipped_policy_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/internal-calls.toml");
        CallPolicy::load(&path).expect("policies/internal-calls.toml is valid");
    }
}
