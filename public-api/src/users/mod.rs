//! `/users/me`: the caller's own account and sessions. Type and roles are never writable here
//! (staff roles are granted by an admin through the CLI); every query is scoped to the caller.

pub mod queries;
pub mod routes;
pub mod rules;

pub use routes::routes;
pub use rules::{Account, UserView};
