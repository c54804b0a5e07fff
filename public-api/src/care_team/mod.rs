//! Care teams: an admin puts a caseworker on a beneficiary's care team, which lets the
//! caseworker read that beneficiary's records for treatment (`crate::phi_access`). phi-vault
//! keeps the care teams and makes every access decision itself; public-api checks the two
//! accounts are what they claim to be, asserts who is asking, and audits the assignment.

mod queries;
pub mod routes;
mod rules;

pub use routes::routes;
