//! The types on the wire between SecondWind's services and its clients: request and answer
//! bodies, the one error body, the service names. No server, database or key code: the staff
//! CLI links this crate alone.

pub mod applications;
pub mod compliance;
pub mod consents;
pub mod documents;
mod error;
pub mod insurance;
pub mod secret;
pub mod text;

pub use error::{ErrorBody, ErrorDetail};
pub use secret::Secret;

/// The three services, by the name used in assertions (`iss`/`aud`), policies and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceName {
    PublicApi,
    PhiVault,
    Consent,
}

impl ServiceName {
    pub const ALL: [ServiceName; 3] = [Self::PublicApi, Self::PhiVault, Self::Consent];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::PublicApi => "public-api",
            Self::PhiVault => "phi-vault",
            Self::Consent => "consent",
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            Self::PublicApi => 8000,
            Self::PhiVault => 8101,
            Self::Consent => 8102,
        }
    }
}

impl std::fmt::Display for ServiceName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ServiceName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|n| n.as_str() == s)
            .ok_or_else(|| format!("unknown service `{s}` (expected public-api, phi-vault or consent)"))
    }
}

/// `?name=value&…` of the pairs that have a value (values are numbers, dates, UUIDs or fixed
/// words, so none needs escaping); empty when none has.
pub fn query_of(pairs: &[(&str, Option<String>)]) -> String {
    let set: Vec<String> =
        pairs.iter().filter_map(|(name, value)| value.as_ref().map(|v| format!("{name}={v}"))).collect();
    if set.is_empty() {
        String::new()
    } else {
        format!("?{}", set.join("&"))
    }
}
