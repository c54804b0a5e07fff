//! Readiness: this service's database and, through signed internal calls, the phi-vault (which
//! in turn asks consent) and consent. A load balancer sends traffic only while this says ready.
//!
//! `/ready` is anonymous, so it answers from one shared probe at most a second old: however
//! many callers ask, the service signs at most one round of internal calls a second (callers
//! that arrive during a probe wait for it). The answer says only up or down per dependency;
//! why a dependency is down (database and peer error text) goes to the log.

use std::time::{Duration, Instant};

use rocket::http::Status;
use rocket::serde::json::Json;
use rocket::{get, routes, Route, State};
use sqlx::PgPool;

use common::assertion::CallContext;
use common::client::{peer_check, Check, ConsentClient, PhiVaultClient, Readiness};
use common::ops::database_ok;
use common::{RequestId, ServiceName};

use crate::SERVICE;

/// How old a probe may be and still answer.
const PROBE_MAX_AGE: Duration = Duration::from_secs(1);

/// The last readiness probe, shared by every caller (managed state).
#[derive(Default)]
pub struct ReadyProbe {
    last: tokio::sync::Mutex<Option<(Instant, Readiness)>>,
}

impl ReadyProbe {
    /// The last probe if it is fresh, else the result of `probe`, run by one caller while the
    /// others wait for it.
    async fn current(&self, probe: impl std::future::Future<Output = Readiness>) -> Readiness {
        let mut last = self.last.lock().await;
        if let Some((at, report)) = last.as_ref() {
            if at.elapsed() < PROBE_MAX_AGE {
                return report.clone();
            }
        }
        let report = probe.await;
        *last = Some((Instant::now(), report.clone()));
        report
    }
}

/// Probes every dependency, logging why each failed one is down.
async fn probe(request_id: RequestId, pool: &PgPool, phi_vault: &PhiVaultClient, consent: &ConsentClient) -> Readiness {
    let ctx = CallContext::system("health_check", request_id.clone());
    let (db, vault, consent) = tokio::join!(database_ok(pool), phi_vault.ready(&ctx), consent.ready(&ctx));
    let report = Readiness::new(
        SERVICE,
        vec![
            Check { name: "database".into(), ok: db.is_ok(), detail: db.err() },
            peer_check(ServiceName::PhiVault, vault),
            peer_check(ServiceName::Consent, consent),
        ],
    );
    for check in report.checks.iter().filter(|c| !c.ok) {
        tracing::warn!(request_id = %request_id, check = %check.name, detail = ?check.detail, "not ready");
    }
    report
}

/// Whether the whole chain can serve: the public database, phi-vault and consent, each reached
/// over a signed internal call. Answered from a shared probe at most a second old; up or down
/// per dependency only (the reasons are logged).
#[utoipa::path(get, operation_id = "operations_ready", path = "/ready", tag = "operations",
    responses(
        (status = 200, description = "Every dependency answers", body = Readiness),
        (status = 503, description = "A dependency is down; `checks` says which (never why: that is in the log)", body = Readiness),
    ))]
#[get("/ready")]
pub async fn ready(
    request_id: RequestId,
    pool: &State<PgPool>,
    phi_vault: &State<PhiVaultClient>,
    consent: &State<ConsentClient>,
    cache: &State<ReadyProbe>,
) -> (Status, Json<Readiness>) {
    let mut report = cache.current(probe(request_id, pool, phi_vault, consent)).await;
    for check in &mut report.checks {
        check.detail = None;
    }
    let status = if report.ready { Status::Ok } else { Status::ServiceUnavailable };
    (status, Json(report))
}

pub fn routes() -> Vec<Route> {
    routes![ready]
}
