//! Consent forms as versioned files: `policies/consent-forms/<version>.txt` holds the exact text
//! a patient reads and signs, `<version>.toml` its metadata (title, the kind of recipient it
//! names, the publication date). The service loads them at start and records each in
//! `consent_forms` with the SHA-256 of the text's bytes. A version already recorded must hash as
//! it did: the service refuses to start if a form in use was edited (a new wording is a new
//! version), so every consent points at the exact words its subject signed.
//!
//! Forms are immutable for the runtime role. The forms offered for signing are those recorded
//! from files (with a recipient kind); a beneficiary reads them, and every value a consent may
//! hold, before signing.

mod files;
pub(crate) mod queries;
mod routes;
pub(crate) mod rules;

pub use files::load_dir;
pub use queries::{publish, publish_form};
pub use routes::routes;
pub use rules::{Form, PublishError, RecipientKind};
