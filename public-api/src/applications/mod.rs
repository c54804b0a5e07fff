//! Applications for help. A beneficiary submits one (kind, amount, details), reads and lists
//! theirs, and changes one while it is under review or waiting on them (`routes`). Staff list the
//! queue; an admin assigns a caseworker (who joins the beneficiary's care team in phi-vault, so
//! phi-vault lets them read the details); the assigned caseworker, or an admin, moves it through
//! the status machine (`common::applications::ApplicationStatus`) with a note the beneficiary
//! sees (`review`).
//!
//! The details are PHI: they go to phi-vault as a record and only its id stays here. No
//! database transaction spans a call to phi-vault: a record is made first, then linked in one
//! transaction that checks the application did not change meanwhile (its `version`); a record
//! left unlinked by a lost race is deleted again. Every change writes its audit row, its status
//! event and its notifications in that same transaction.

pub mod queries;
pub mod review;
pub mod routes;
pub mod rules;

pub use rules::not_editable;

pub fn routes() -> Vec<rocket::Route> {
    rocket::routes![
        routes::submit,
        routes::list_mine,
        routes::read_mine,
        routes::update_mine,
        review::queue,
        review::read_for_staff,
        review::read_for_caseworker,
        review::assign,
        review::change_status
    ]
}
