//! Readiness: this service's database and, through signed internal calls, the phi-vault (which
//! in turn asks consent) and consent. A load balancer sends traffic only while this says ready.

use rocket::http::Status;
use rocket::serde::json::Json;
use rocket::{get, routes, Route, State};
use sqlx::PgPool;

use common::assertion::CallContext;
use common::client::{peer_check, Check, ConsentClient, PhiVaultClient, Readiness};
use common::ops::database_ok;
use common::{RequestId, ServiceName};

use crate::SERVICE;

/// Whether the whole chain can serve: the public database, phi-vault and consent, each reached
/// over a signed internal call.
#[utoipa::path(get, path = "/ready", tag = "operations",
    responses(
        (status = 200, description = "Every dependency answers", body = Readiness),
        (status = 503, description = "A dependency is down; `checks` says which", body = Readiness),
    ))]
#[get("/ready")]
pub async fn ready(
    request_id: RequestId,
    pool: &State<PgPool>,
    phi_vault: &State<PhiVaultClient>,
    consent: &State<ConsentClient>,
) -> (Status, Json<Readiness>) {
    let ctx = CallContext::system("health_check", request_id);
    let (db, vault, consent) = tokio::join!(database_ok(pool), phi_vault.ready(&ctx), consent.ready(&ctx));
    let report = Readiness::new(
        SERVICE,
        vec![
            Check { name: "database".into(), ok: db.is_ok(), detail: db.err() },
            peer_check(ServiceName::PhiVault, vault),
            peer_check(ServiceName::Consent, consent),
        ],
    );
    let status = if report.ready { Status::Ok } else { Status::ServiceUnavailable };
    (status, Json(report))
}

pub fn routes() -> Vec<Route> {
    routes![ready]
}
