//! Consents (42 CFR §2.31) through the public API: a beneficiary reads the forms, signs a
//! consent naming a recipient from the directory (or outside it, or a class of recipients on the
//! TPO form), lists and reads theirs, and revokes one (`routes`); an admin keeps the recipient
//! directory and a caseworker records the events that end consents (`staff_routes`); a
//! compliance officer reads anyone's consents and the consent service's decision log
//! (`compliance_routes`).
//!
//! public-api stores none of it: each request goes to the consent service as the signed-in
//! person (their delegation token rides along), which checks the subject is the caller and
//! keeps the record. This trail notes each signature, revocation, directory change and
//! officer's read.

pub mod compliance_routes;
mod queries;
pub mod routes;
mod rules;
pub mod staff_routes;

use rocket::Route;

/// Every consent route: the beneficiary's, the staff's and the compliance officer's.
pub fn routes() -> Vec<Route> {
    [routes::routes(), staff_routes::routes(), compliance_routes::routes()].concat()
}
