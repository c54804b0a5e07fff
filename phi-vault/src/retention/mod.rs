//! Retention: expiry dates and consent-bound categories from `policies/retention.toml`, and the
//! job that purges expired records and records whose subject's consent to keep them ended.
//! Safe with several instances running it at once: rows are claimed with
//! `FOR UPDATE SKIP LOCKED`, so each record is purged (and logged) exactly once. The consent
//! service is asked before any transaction begins; locks follow the order in the
//! `crate::records` module docs.

mod purge;
mod queries;
mod rules;

pub use purge::{consent_stands, purge_expired, purge_unconsented, run};
pub use rules::{RetentionPolicy, PROGRAM, RETENTION_LOCK};
