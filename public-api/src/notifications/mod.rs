//! Notifications: a row for each event a person should hear of, written in the transaction of
//! the change it announces, announced on PostgreSQL's `notifications` channel by a trigger (the
//! user's id only), listed newest first and marked read; some are emailed too (`crate::mail`).
//! The text never carries PHI: it says that something changed and where to look, never what.

pub mod queries;
pub mod routes;
mod rules;

pub use queries::{add, unread};
pub use routes::routes;
pub use rules::Notice;
