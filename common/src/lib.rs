//! Shared plumbing for the SecondWind services. Deliberately small: configuration, telemetry,
//! the error body, the request id, metrics and operational routes, database connection and
//! migrations, internal-call assertions with their allowlist, typed clients for the internal
//! services, and the signed checkpoints that anchor every trail outside its database. No
//! business logic lives here.

#[cfg(feature = "server")]
pub mod anchor;
pub mod applications;
#[cfg(feature = "server")]
pub mod assertion;
#[cfg(feature = "server")]
pub mod chain;
#[cfg(feature = "server")]
pub mod checkpoint;
#[cfg(feature = "server")]
pub mod clamd;
#[cfg(feature = "server")]
pub mod client;
pub mod compliance;
#[cfg(feature = "server")]
pub mod config;
pub mod consents;
#[cfg(feature = "server")]
pub mod db;
pub mod documents;
pub mod error;
pub mod insurance;
#[cfg(feature = "server")]
pub mod json;
#[cfg(feature = "server")]
pub mod keys;
#[cfg(feature = "server")]
pub mod metrics;
#[cfg(feature = "server")]
pub mod ops;
#[cfg(feature = "server")]
pub mod policy;
#[cfg(feature = "server")]
pub mod protect;
#[cfg(feature = "server")]
pub mod request_id;
pub mod secret;
#[cfg(feature = "server")]
pub mod service;
#[cfg(feature = "server")]
pub mod telemetry;
#[cfg(feature = "server")]
pub mod user_token;

#[cfg(feature = "server")]
pub use assertion::Role;
#[cfg(feature = "server")]
pub use error::ApiError;
pub use error::ErrorBody;
#[cfg(feature = "server")]
pub use request_id::RequestId;
pub use secret::Secret;

/// Installs the process-wide rustls crypto provider (ring). Call first thing in every `main`
/// and in test set-up: the first TLS-capable client panics without it.
#[cfg(feature = "server")]
pub fn install_crypto_provider() {
    // Already installed is fine (tests call this more than once).
    let _ = rustls::crypto::ring::default_provider().install_default();
}

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

    /// The database this service owns.
    #[cfg(feature = "server")]
    pub fn database(self) -> db::Database {
        match self {
            Self::PublicApi => db::Database::Public,
            Self::PhiVault => db::Database::Phi,
            Self::Consent => db::Database::Consent,
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
