//! The key hierarchy and its lifecycle.
//!
//! - A key-encryption key (KEK), held by a key provider: HashiCorp Vault's Transit engine in
//!   production (`vault_transit`), or a local key file in the dev profile only (`crypto`).
//! - Under it, one data key per subject, stored only wrapped (`subjects.wrapped_data_key`, with
//!   the KEK's id and version), unwrapped into a bounded, time-limited cache (`crypto`).
//! - Under that, every record field, sealed with the subject's data key (`crypto`).
//!
//! Key lifecycle: rewrapping every subject's data key under the current KEK version (records are
//! never decrypted), and crypto-shredding a subject: its data key is destroyed and its
//! ciphertext rows deleted.
//!
//! Locks follow the order written in the `crate::records` module docs: the subject's row, then
//! record rows (in `id` order), then the access log's chain lock last. No lock is held across a
//! key-provider call: rewrap unwraps and wraps outside any transaction, then writes each key back
//! in its own short transaction, only if the stored wrapping is still the one it unwrapped.

pub mod crypto;
mod lifecycle;
mod queries;
mod routes;
mod rules;
pub mod vault_transit;

pub use lifecycle::{evict_shredded, rewrap_batch, KeyOpError};
pub use routes::routes;
pub(crate) use rules::wrapped_key;
pub use rules::SHRED_CHANNEL;
