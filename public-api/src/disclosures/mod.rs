//! The accounting of disclosures (42 CFR §2.24; HIPAA §164.528): every time a beneficiary's
//! records left the program, under a consent or in a medical emergency: when, to whom, what,
//! why, the consent and the notice sent with them. phi-vault keeps it; public-api reads it for
//! the two people entitled to it, the beneficiary themselves and a compliance officer, with the
//! same filter. Both reads are here, whoever asks, so the accounting has one home; the
//! disclosures it lists are made in `crate::phi_access` (a partner's read under consent, a
//! caseworker's emergency disclosure).

pub mod routes;
mod rules;

pub use routes::routes;
