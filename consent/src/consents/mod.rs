//! A beneficiary's own consents (42 CFR §2.31): signing one, reading and listing theirs with
//! their state, and revoking one; a compliance officer reads them for a review, and staff record
//! the events that end them. Every beneficiary route acts for the person public-api's
//! delegation token proves (role `beneficiary`, `sub` their user id); the subject in the path
//! must be that person, so nobody signs, reads or revokes for someone else.
//!
//! Consents are immutable for the runtime role: a consent is recorded once and ends only by
//! revocation or expiry (by its date, or by an event staff record for its subject at or after
//! its signing).
//!
//! Signing resolves the recipient and copies its details into the consent (a directory entry's
//! name and address as they are now), so later directory edits change nothing consented; the
//! consent's terms, hashed and chained, cover those copies.
//!
//! Recording a consent checks that the form text the subject was shown (its SHA-256, as the
//! signing client computed it) is the form on file, and that the form on file still hashes to
//! its recorded `body_sha256`; the database checks the same through a foreign key on
//! `(form_version, form_sha256)` and a check on each form. The consent's terms (who discloses
//! what to whom, why, until when, on which form, signed by whom and when) are hashed into
//! `terms_sha256`, which every decision relying on the consent carries. Consents are
//! hash-chained (`common::chain`, length-prefixed fields).
//!
//! Revocations (42 CFR §2.31(a)(6)) are final once recorded, append-only for the runtime role,
//! and hash-chained (`common::chain`, length-prefixed fields).

pub(crate) mod queries;
pub(crate) mod records;
mod routes;
pub(crate) mod rules;

pub use queries::{record, revoke, verify, verify_revocations};
pub use records::{ConsentError, Elements, NewConsent, RevocationSignature, RevokeError};
pub use routes::routes;
pub use rules::DISCLOSER;
