//! Care teams: which caseworkers serve which subjects. Only an admin (as asserted by
//! public-api, which checked the caller's role) assigns a caseworker to a subject's care team,
//! and the assignment is logged. A caseworker on the team reads the subject's records for
//! internal program use, and never changes them (`crate::policy`).
//!
//! A subject may be assigned before it has records: it is given its data key then, as a record
//! write would (`crate::records` module docs).

mod assign;
mod queries;
mod routes;
mod rules;

pub(crate) use queries::on_team;
pub use routes::routes;
