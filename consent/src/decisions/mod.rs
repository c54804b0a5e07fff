//! Disclosure decisions: may this recipient see these categories of the subject's records, for
//! this purpose? Yes only under a standing consent (42 CFR §2.31) naming that recipient and
//! purpose, or naming the recipient's class for treatment, payment and health care operations
//! when the purpose is one of those, and covering every category asked: signed, not revoked, not
//! expired by date or by an event recorded since. Anything else is no, and the answer's reason
//! is the same whether or not any consent exists. Every question and its answer is appended to
//! the hash-chained `decisions` trail; a yes carries the hash of the consent terms it relied on
//! (`consents.terms_sha256`).
//!
//! Compliance officers read the trail as the decision log, oldest first, filtered and paged.
//! The values a consent may hold (categories, purposes, recipient classes, expiry events) are
//! defined here, in `rules`, and shared with signing.

pub(crate) mod queries;
mod routes;
pub(crate) mod rules;

pub use queries::{append, verify};
pub use routes::routes;
pub use rules::{Answer, CATEGORIES, CLASSES, EXPIRY_EVENTS, PURPOSES, TPO_COVERS, TPO_PURPOSE};
