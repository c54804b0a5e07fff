//! Access to a beneficiary's PHI by anyone but the beneficiary, and its review.
//!
//! - A caseworker on the beneficiary's care team (`crate::care_team`) reads their profile for
//!   treatment.
//! - A partner residence reads it only under the beneficiary's consent naming that partner and
//!   purpose; the profile comes with the redisclosure notice (42 CFR §2.32).
//! - Break-glass: in a medical emergency a caseworker reads any beneficiary's profile with a
//!   written reason, which the vault keeps and flags for review.
//! - A caseworker discloses a profile to medical personnel in a medical emergency (§2.51).
//! - A compliance officer reads the vault's PHI access log and records a finding on each
//!   flagged access (`review_routes`).
//!
//! phi-vault makes every access decision itself (it keeps the care teams and asks the consent
//! service); public-api only asserts who is asking, in which verified role and for what
//! purpose, and audits the attempt here. Disclosures outside the program are entered in the
//! accounting (`crate::disclosures`).

mod queries;
pub mod review_routes;
pub mod routes;
pub mod rules;

use rocket::Route;

/// Every route: the reads, and the officer's log and review.
pub fn routes() -> Vec<Route> {
    [routes::routes(), review_routes::routes()].concat()
}
