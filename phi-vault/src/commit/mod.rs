//! Group commit of the record routes' phase 2.
//!
//! Every PHI access appends to one hash chain, and an append holds the chain's lock until its
//! transaction commits, fsync included: one access at a time, so without grouping the access
//! log, not the service, is the limit of every PHI path (about a thousand commits a second here,
//! whatever the CPU). Here the phase 2 of many concurrent reads and replaces runs in one
//! transaction: each access's statements, then all their access-log entries under one take of
//! the lock, then one commit and one fsync for the batch. What each access promises is what it
//! would be alone:
//!
//! - its entry is written in the same transaction as the read or write it records: both commit,
//!   or neither does;
//! - nothing is answered before that commit is durable (`synchronous_commit` is untouched);
//! - a step's failure sinks only its own access: when a batch fails, each of its accesses runs
//!   again in a transaction of its own and gets its own outcome (a lone access is run again
//!   only when its connection was lost; a commit whose acknowledgement was lost may then leave
//!   a second entry for one access, never none).
//!
//! A batch is what arrived while the previous one was committing (no added wait), at most
//! [`MAX_BATCH`] accesses; an access whose caller has gone is dropped unrun, one that waited more
//! than `MAX_WAIT` (5 s) is answered 503 unrun, and a step waits at most 5 s for a lock. A read
//! that discloses outside the program writes the accounting of disclosures, another trail with
//! its own lock, and runs alone ([`Committer::run_alone`]). A batch's steps run in record-id
//! order, so the rows its writes lock are locked in `id` order, as every other transaction in
//! phi-vault locks them (`crate::records` module docs), and the access log's lock is taken last.

mod committer;
mod queries;

pub use committer::{step, Committer, StepFn, MAX_BATCH};
