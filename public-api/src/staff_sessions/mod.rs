//! An admin's control of another user's sessions: list the open ones (is this account in use,
//! and from where?) and end them all at once (a lost laptop, a leaked token). Both name the
//! user by id or email and are audited. Ending sessions takes the roles lock (`crate::roles`),
//! so an admin whose role was revoked a moment ago acts no more. The sessions themselves are
//! `crate::auth::sessions`'.

pub mod routes;

pub use routes::routes;
