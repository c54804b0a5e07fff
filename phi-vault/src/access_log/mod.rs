//! The PHI access log: every read, write and delete, permitted or denied, with who asked, in
//! which role, for what purpose, the decision and its reason. Hash-chained like the public audit
//! log (`common::chain`); record contents never enter it. Compliance reviews of flagged entries
//! form a second chained trail, `access_reviews`; nobody reviews an access they made.
//!
//! Only a compliance officer reads the log (metadata only, never contents) or reviews an entry,
//! and each reading and review is itself logged. An entry is appended last in its transaction,
//! just before commit: the chain lock is the last lock taken (`crate::records` module docs).

mod queries;
mod routes;
mod rules;
mod trail;

pub use queries::REVIEWS_SELECT;
pub use routes::routes;
pub(crate) use rules::access;
pub use rules::{Access, Entry, LoggedDecision, ReviewOutcome, ReviewRefusal, MAX_PAGE};
pub(crate) use trail::log_alone;
pub use trail::{append, append_all, append_alone, page, review, review_canonical_of, verify, verify_reviews};
