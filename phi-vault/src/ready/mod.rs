//! Readiness, for the services that call phi-vault: ready when its database answers and the
//! consent service answers a signed call. Like every internal route, behind a verified
//! assertion and the allowlist.

mod routes;

pub(crate) use routes::routes;
