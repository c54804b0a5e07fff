//! PHI records: create, read, replace and delete, each encrypted under its subject's data key
//! and each decided by the access policy from the caller's verified assertion. Every access —
//! permitted or denied — is written to the access log in the same transaction as what it
//! records. A record the caller may not see answers 404, exactly like a missing one.
//!
//! # No lock is held across the network
//!
//! Each route works in two phases.
//!
//! 1. **Outside any transaction**: the record's metadata is looked up, the access policy decides
//!    (it may ask the consent service), and the subject's data key is taken from the cache or
//!    unwrapped by the key provider (Vault); a subject's first key is generated and wrapped here
//!    too. No transaction is open, so no row or advisory lock is held, during any network call.
//! 2. **One short transaction with no network call in it**, which re-checks what phase 1 found
//!    (the record may have been deleted, the subject erased), writes, appends to the access log
//!    and commits.
//!
//! Phase 2 takes its locks in one order, everywhere in phi-vault (here, in `crate::keys` for
//! rewrap and shred, and in `crate::retention`):
//!
//! 1. the subject's row in `subjects` (`FOR SHARE` when a record is created, the row update of
//!    a rewrap or a shred);
//! 2. record rows in `records` (update, delete; several rows are locked in `id` order);
//! 3. the chain locks of other trails written with the access (the accounting of disclosures);
//! 4. the access log's chain lock, taken by [`crate::access_log::append`]: always last, just before
//!    commit, so it is held for the few statements that append one entry.
//!
//! Nothing takes a lock earlier in this list while holding one later in it, so these
//! transactions cannot deadlock one another, and the access log, which every PHI access on every
//! instance appends to, is never held while anything waits on the network.
//!
//! # Files
//!
//! `routes.rs` holds the handlers; `actions.rs` what each route does, both phases through;
//! `phases.rs` the steps the routes (and documents) share; `vault.rs` the subject's data key in
//! each phase; `queries.rs` every statement; `rules.rs` the checks and values that need no
//! database.

mod actions;
mod phases;
mod queries;
mod routes;
mod rules;
mod vault;

pub(crate) use actions::serve_read;
pub(crate) use phases::{authorized, commit_read, decide_new};
pub(crate) use queries::insert_record;
pub use routes::routes;
pub(crate) use rules::FIELD;
pub use rules::{Category, CATEGORIES, UNREADABLE_CONTENT};
pub use vault::Vault;
pub(crate) use vault::{crypto_error, existing_key, lock_subject, subject_live, writable_key, SubjectKey, SubjectRow};
