//! The public audit log: every authenticated state change and every auth event, appended in the
//! same transaction as the change it records, hash-chained (see `common::chain`). The runtime
//! role may only SELECT and INSERT it.
//!
//! Every feature writes it through [`record`] (inside its own transaction) or [`record_alone`].
//! A compliance officer reads it filtered and paged, and verifies it, through `routes`: that
//! verification also asks phi-vault and the consent service for theirs, so one request checks
//! every trail of the system. `secondwind-operator audit verify` runs [`verify`] directly.

pub mod queries;
pub mod routes;
mod rules;

pub use queries::{canonical_of, record, record_alone, verify, SELECT};
pub use routes::routes;
pub use rules::{AuditEvent, Outcome};
