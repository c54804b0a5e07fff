//! Routes other services call, each behind a verified assertion and the allowlist.

use rocket::serde::json::Json;
use rocket::{get, routes, Route, State};
use sqlx::PgPool;

use common::assertion::InternalCall;
use common::client::{Check, Readiness};
use common::ops::database_ok;

use crate::SERVICE;

#[get("/internal/v1/ready")]
async fn ready(call: InternalCall, pool: &State<PgPool>) -> Json<Readiness> {
    tracing::debug!(caller = call.0.iss.as_str(), request_id = %call.0.request_id, "readiness asked");
    let db = database_ok(pool).await;
    Json(Readiness::new(SERVICE, vec![Check { name: "database".into(), ok: db.is_ok(), detail: db.err() }]))
}

pub fn routes() -> Vec<Route> {
    routes![ready]
}
