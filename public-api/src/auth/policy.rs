//! `policies/roles.toml`: roles → permissions, and routes → the access each needs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Deserialize;

use common::UserRole;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// No login.
    Public,
    /// Any signed-in user with a live session.
    Authenticated,
    /// A signed-in user one of whose roles grants this permission.
    Permission(String),
}

#[derive(Debug, Clone)]
pub struct AccessPolicy {
    roles: BTreeMap<UserRole, BTreeSet<String>>,
    routes: BTreeMap<String, Access>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    roles: BTreeMap<String, BTreeSet<String>>,
    routes: BTreeMap<String, String>,
}

impl AccessPolicy {
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        let known: BTreeSet<&String> = file.roles.values().flatten().collect();
        let mut routes = BTreeMap::new();
        for (route, access) in file.routes {
            let access = match access.as_str() {
                "public" => Access::Public,
                "authenticated" => Access::Authenticated,
                p if known.contains(&p.to_owned()) => Access::Permission(p.to_owned()),
                p => return Err(format!("route `{route}` needs permission `{p}`, which no role has")),
            };
            routes.insert(route, access);
        }
        let mut roles = BTreeMap::new();
        for (name, permissions) in file.roles {
            let role = UserRole::parse(&name).ok_or_else(|| format!("`{name}` is not a role"))?;
            roles.insert(role, permissions);
        }
        Ok(Self { roles, routes })
    }

    /// The declared access of a route (`"METHOD /path/<param>"`); `None` if undeclared.
    pub fn access(&self, route: &str) -> Option<&Access> {
        self.routes.get(route)
    }

    /// Fails closed: an undeclared route, or roles without the permission, are refused.
    pub fn permits(&self, route: &str, roles: &[UserRole]) -> bool {
        match self.routes.get(route) {
            Some(Access::Public | Access::Authenticated) => true,
            Some(Access::Permission(p)) => roles.iter().any(|r| self.roles.get(r).is_some_and(|ps| ps.contains(p))),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_policy_parses_and_fails_closed() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/roles.toml");
        let p = AccessPolicy::load(&path).expect("valid");
        assert!(p.permits("GET /api/v1/users/me", &[UserRole::Donor]));
        assert!(!p.permits("GET /api/v1/users/me", &[]));
        assert!(!p.permits("GET /api/v1/undeclared", &[UserRole::Admin]));
        assert!(
            AccessPolicy::parse("[roles]\nroot = [\"x\"]\n[routes]\n\"GET /y\" = \"x\"").is_err(),
            "an unknown role"
        );
        let needs = |permission: &str| format!("[roles]\ndonor = [\"x\"]\n[routes]\n\"GET /y\" = \"{permission}\"");
        assert!(AccessPolicy::parse(&needs("z")).is_err(), "a permission no role has");
        let declared = AccessPolicy::parse(&needs("x")).expect("a permission a role has");
        assert_eq!(declared.access("GET /y"), Some(&Access::Permission("x".into())));
        assert_eq!(p.access("GET /api/v1/users/me"), Some(&Access::Permission("self.read".into())));
    }
}
