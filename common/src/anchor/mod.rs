//! Checking a trail against its signed checkpoints (`common::checkpoint`), wherever they are
//! kept: the origin's database, its receivers' databases, its checkpoint file. A checkpoint
//! vouches that row `seq` had `head_hash`, and through the chain every row before it. So:
//!
//! - a checkpoint beyond the trail's last row: the tail was cut off (rows after it are gone);
//! - a checkpoint whose row is gone or hashes differently: rows after the last checkpoint that
//!   still matches were rewritten (the first bad sequence number is the one after it);
//! - a checkpoint number held in one place but not another, numbers missing between others, or
//!   rows older than a bound beyond the last checkpoint: a missing checkpoint;
//! - a signature that does not verify with the origin's key, or two different checkpoints under
//!   one number: the checkpoints themselves were tampered with.
//!
//! [`compare`] only compares. [`check_trail`] reads what it needs of the trail's own database;
//! the gathering of places is the caller's: `secondwind-operator audit verify` reads every
//! database and file itself, while a service asked over HTTP
//! (`POST /internal/v1/trail-verifications`) checks its own trails against its own database and
//! file and the checkpoints public-api collected from the receivers.

mod check;
mod compare;
mod queries;
mod trails;

use std::sync::Arc;

use futures_util::future::BoxFuture;
use rocket::serde::json::Json;
use rocket::{post, routes, Route, State};
use sqlx::PgPool;

use crate::assertion::InternalCall;
use crate::chain::Verification;
use crate::checkpoint::{Publisher, Trail};
use crate::compliance::TrailReport;
use crate::ops::ServiceInfo;
use crate::{ApiError, Role, ServiceName};

pub use check::{check_trail, trail_break, TrailCheck};
pub use compare::{anchored_up_to, compare, Found, Missing, Problem, Source, TrailRows};
pub use queries::{trail_rows, undelivered};
pub use trails::check_trails;

/// Verifies one of a service's trails' hash chains, streamed from its database, up to a number
/// of breaks. Each service names its own (its trails' row formats are its own).
pub type VerifyChain = fn(Trail, PgPool, usize) -> BoxFuture<'static, Result<Verification, sqlx::Error>>;

/// A service's [`VerifyChain`], managed for [`routes`].
pub struct ChainVerifier(pub VerifyChain);

const MAX_BREAKS: usize = 100;

/// One verification at a time per service (by its place in `ServiceName::ALL`): each reads
/// every row and checkpoint.
static RUNNING: [tokio::sync::Mutex<()>; 3] =
    [tokio::sync::Mutex::const_new(()), tokio::sync::Mutex::const_new(()), tokio::sync::Mutex::const_new(())];

/// Checks every trail `service` writes: with its publisher, against every checkpoint wherever
/// kept; without one (checkpoints off, dev only), the chains alone.
pub async fn verify_service(
    service: ServiceName,
    pool: &PgPool,
    publisher: Option<&Publisher>,
    verify: VerifyChain,
) -> Result<Vec<TrailReport>, ApiError> {
    let slot = ServiceName::ALL.iter().position(|s| *s == service).unwrap_or_default();
    let Ok(_running) = RUNNING[slot].try_lock() else {
        return Err(ApiError::TooManyRequests("a verification is already running here: try again when it ends".into()));
    };
    let checks = match publisher {
        Some(publisher) => check_trails(publisher, verify, MAX_BREAKS).await?,
        None => {
            let mut checks = Vec::new();
            for trail in Trail::of(service) {
                let verification = verify(trail, pool.clone(), MAX_BREAKS).await?;
                checks.push(TrailCheck {
                    table: trail.table(),
                    origin: service,
                    intact: verification.intact(),
                    rows_checked: verification.rows_checked,
                    last_seq: trail_rows(pool, trail, Vec::new()).await?.last_seq,
                    first_bad_seq: verification.breaks.first().map(|b| b.seq),
                    breaks: verification.breaks,
                    checkpoints: Found::default(),
                    problems: Vec::new(),
                });
            }
            checks
        }
    };
    for check in checks.iter().filter(|c| !c.intact) {
        tracing::error!(
            trail = check.table,
            first_bad_seq = ?check.first_bad_seq,
            alarm = "audit_chain",
            "AUDIT ALARM: a trail failed verification"
        );
    }
    Ok(checks.iter().map(TrailCheck::report).collect())
}

/// This service's trails verified for a compliance officer (public-api asks, as the officer).
#[post("/internal/v1/trail-verifications")]
async fn verify_route(
    call: InternalCall,
    pool: &State<PgPool>,
    info: &State<ServiceInfo>,
    publisher: &State<crate::checkpoint::Published>,
    chain: &State<ChainVerifier>,
) -> Result<Json<Vec<TrailReport>>, ApiError> {
    let publisher = publisher.0.as_ref();
    let claims = &call.0;
    if claims.role != Role::ComplianceOfficer {
        tracing::warn!(request_id = %claims.request_id, role = %claims.role, "trail verification refused: not a compliance officer");
        return Err(ApiError::Forbidden);
    }
    let reports = verify_service(info.service, pool, publisher.map(Arc::as_ref), chain.0).await?;
    tracing::info!(request_id = %claims.request_id, trails = reports.len(), "trails verified");
    Ok(Json(reports))
}

/// The verification route, for services other than public-api (which verifies its own trail
/// in process).
pub fn routes() -> Vec<Route> {
    routes![verify_route]
}
