//! Erasure: an admin erases a beneficiary's PHI by crypto-shredding. The vault destroys their
//! data key (and their ciphertext), so every record of theirs is gone at once; public-api then
//! clears what its own database keeps that reveals their recovery or points at the erased
//! records, and ends what cannot go on without them (`queries::erase_public_traces`). The
//! account itself stays. Irreversible; the reason is audited in the transaction that clears the
//! traces.

mod queries;
pub mod routes;
mod rules;

pub use routes::routes;
