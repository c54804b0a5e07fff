//! Shared plumbing for the SecondWind services. Deliberately small: configuration, telemetry,
//! the error body, the request id, metrics and operational routes, database connection and
//! migrations, internal-call assertions with their allowlist, typed clients for the internal
//! services, and the signed checkpoints that anchor every trail outside its database. No
//! business logic lives here.

pub mod anchor;
pub mod assertion;
pub mod chain;
pub mod checkpoint;
pub mod clamd;
pub mod client;
pub mod compliance;
pub mod config;
pub mod consents;
pub mod db;
pub mod error;
pub mod json;
pub mod keys;
pub mod metrics;
pub mod ops;
pub mod policy;
pub mod protect;
pub mod request_id;
pub mod role;
pub mod service;
pub mod start;
pub mod telemetry;
pub mod user_token;

pub use error::ApiError;
pub use error::ErrorBody;
pub use request_id::RequestId;
pub use role::{Role, UserRole};
pub use wire::{applications, documents, insurance, secret, Secret, ServiceName};

/// Installs the process-wide rustls crypto provider (ring). Call first thing in every `main`
/// and in test set-up: the first TLS-capable client panics without it.
pub fn install_crypto_provider() {
    // Already installed is fine (tests call this more than once).
    let _ = rustls::crypto::ring::default_provider().install_default();
}
