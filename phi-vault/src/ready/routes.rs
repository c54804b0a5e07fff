//! The readiness route.

use rocket::serde::json::Json;
use rocket::{get, routes, Route, State};
use sqlx::PgPool;

use common::assertion::{CallContext, InternalCall};
use common::client::{peer_check, Check, ConsentClient, Readiness};
use common::ops::database_ok;
use common::{RequestId, ServiceName};

use crate::SERVICE;

/// Ready when its database answers and the consent service answers a signed call.
#[get("/internal/v1/ready")]
async fn ready(
    call: InternalCall,
    request_id: RequestId,
    pool: &State<PgPool>,
    consent: &State<ConsentClient>,
) -> Json<Readiness> {
    tracing::debug!(caller = call.0.iss.as_str(), request_id = %request_id, "readiness asked");
    let ctx = CallContext::system("health_check", request_id);
    let (db, consent) = tokio::join!(database_ok(pool), consent.ready(&ctx));
    Json(Readiness::new(
        SERVICE,
        vec![
            Check { name: "database".into(), ok: db.is_ok(), detail: db.err() },
            peer_check(ServiceName::Consent, consent),
        ],
    ))
}

pub(crate) fn routes() -> Vec<Route> {
    routes![ready]
}
