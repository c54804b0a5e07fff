//! Need-to-know: who may touch a subject's records, decided from the caller's verified assertion
//! alone. Default deny.
//!
//! - the subject, acting as a beneficiary (their own access token vouches for it);
//! - a caseworker on the subject's care team (internal program use), for reads;
//! - a caseworker in a medical emergency (`purpose = "break_glass"`) with a written reason: reads
//!   only, and every such access is flagged for compliance review;
//! - a recipient outside the program (`partner`, `insurer`): reads only, and only when the consent
//!   service permits that recipient, category and purpose; any other answer, or none, is deny;
//! - compliance officers see access metadata (the access-log route), never contents;
//! - anyone else: denied.
//!
//! A permitted read is then counted against the caller's read volume ([`crate::volume`]).
//!
//! The rules themselves are pure (`rules.rs`); `decide.rs` gathers what they need: the care
//! team (`crate::care_team`) and the consent service's answer.

mod decide;
mod rules;

pub use decide::{decide, grant};
pub use rules::{counted, throttled, Decision, Disclosure, Intent, BREAK_GLASS, MEDICAL_EMERGENCY, OUTSIDE_PROGRAM};
