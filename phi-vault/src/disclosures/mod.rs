//! The accounting of disclosures (42 CFR §2.24 / HIPAA §164.528): every consented read served to
//! a recipient outside the program, entered in the read's transaction, so a disclosure is on
//! record exactly when the contents were served. Append-only for the runtime role and
//! hash-chained (`common::chain`, length-prefixed fields, as the migration that chained the rows
//! already present computed them).//!
//! A disclosure is made under a consent the consent service names, or without one in a medical
//! emergency (42 CFR §2.51): a caseworker with a written reason names the recipient and the
//! nature of the emergency (`POST /internal/v1/records/<id>/emergency-disclosure`, served as a
//! record read). Either way the records go with the redisclosure notice ([`notice`]), and the
//! accounting names the notice's version.
//!
//! The subject reads their own accounting, a compliance officer anyone's; each reading is logged
//! in the access log.

mod accounting;
pub mod notice;
mod queries;
mod routes;
mod rules;

pub use accounting::{accounting, canonical_of, record_disclosure, verify};
pub use queries::SELECT;
pub use routes::routes;
pub(crate) use rules::emergency;
pub use rules::{DisclosureKind, ACCOUNTING_YEARS};
