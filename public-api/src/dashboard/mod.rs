//! The beneficiary's dashboard: what their applications, insurance and notifications add up to,
//! and what they should do next, read in one consistent snapshot.

pub mod queries;
pub mod routes;

pub fn routes() -> Vec<rocket::Route> {
    rocket::routes![routes::dashboard]
}
