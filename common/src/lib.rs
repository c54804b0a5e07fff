//! What the three services share, in three parts (no module of one part is imported by a
//! module of a part listed before it, and no two modules import each other):
//!
//! - **The server kit:** configuration ([`config`]), start-up ([`start`], [`service`], which wires
//!   the rest), telemetry, the error body ([`error`]) and strict JSON ([`json`]), request ids,
//!   metrics and operational routes ([`ops`]), protection ([`protect`]), database connection and
//!   provisioning ([`db`]), key files ([`keys`]) and the clamd client ([`clamd`]).
//! - **Internal-call authentication:** the roles ([`role`]), assertions ([`assertion`]), the
//!   allowlist ([`policy`]), delegation and access tokens ([`user_token`]), and the typed clients
//!   of phi-vault and consent ([`client`]).
//! - **The trails:** hash chains ([`chain`]), signed checkpoints ([`checkpoint`]) and the check of a
//!   trail against them ([`anchor`]), with the reports' types ([`compliance`]).
//!
//! The rules of each feature live in its service, never here; what the staff CLI needs (the
//! wire types and the error body) is the `wire` crate, re-exported below.

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
pub mod routing;
pub mod service;
pub mod start;
pub mod telemetry;
pub mod tls;
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
