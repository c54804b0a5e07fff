//! Email about notifications, sent from a PostgreSQL outbox, never inside a request.
//!
//! [`crate::notifications::add`] writes an `email_outbox` row in the transaction of the change
//! it announces, for the kinds in [`EMAILED`] and unless the person turned email off
//! (`notification_preferences`). The row names the notification and the person, never an
//! address or any content. A worker in each public-api instance ([`run`]) claims due rows with
//! `FOR UPDATE SKIP LOCKED`, leasing them for a while by moving their next attempt ahead, so
//! instances never take the same row and a row whose sender died is taken again when its lease
//! ends. Sending happens outside any transaction: the address is read then (an erased or
//! opted-out person gets nothing), the message is fixed text that says something changed and to
//! sign in (no PHI), and the row is marked sent, retried later with a growing delay, or given up
//! after [`MailSettings::max_attempts`] or on a permanent refusal. Delivery is at least once: a
//! process that dies between the relay's acceptance and marking the row sends it again.
//!
//! `queries.rs` holds the outbox's SQL, `sender.rs` the relay and the one message, `rules.rs`
//! what is emailed and how retries back off, `worker.rs` the loop that ties them together.

mod queries;
mod rules;
mod sender;
mod worker;

pub use queries::enqueue;
pub use rules::{backoff, EMAILED};
pub use sender::{MailSettings, Mailer, SUBJECT};
pub use worker::run;
