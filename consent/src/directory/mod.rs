//! The recipient directory: partner residences and insurers a beneficiary may name in a consent.
//! Admins add and retire entries (through public-api's staff routes); beneficiaries list the
//! entries in use. An entry's details are copied into each consent naming it, so an edit or a
//! retirement never changes a consent already signed. The account acting for an entry
//! (`principal`) is set when it is added and never changed: relinking would hand existing
//! consents to another account.

pub(crate) mod queries;
mod routes;
pub(crate) mod rules;

pub use routes::routes;
