//! Insurance verification. A beneficiary submits their member details (PHI, to phi-vault); the
//! request waits `pending` until it is decided, `verified` or `rejected`, with the date and the
//! staff member who decided. One request may be pending at a time.
//!
//! Who decides is an [`EligibilityProvider`] (`provider`). The one provider is the manual
//! review: a caseworker on the beneficiary's care team decides through the staff routes after
//! reading the details (phi-vault checks the care team and logs the read).

pub mod provider;
pub mod queries;
pub mod routes;
pub mod rules;

pub use provider::{provider, EligibilityProvider, ManualReview, Provider};

pub fn routes() -> Vec<rocket::Route> {
    rocket::routes![routes::submit, routes::mine, routes::queue, routes::read_for_caseworker, routes::decision]
}
