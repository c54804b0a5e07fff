//! The compliance officer's routes on the trails: the public audit log, filtered and paged; its
//! verification; and the verification of every service's trails. Each read and each
//! verification is itself audited.

use rocket::serde::json::Json;
use rocket::{get, post, routes, Route, State};
use sqlx::PgPool;

use common::client::{ClientError, ConsentClient, PhiVaultClient};
use common::compliance::{AuditLogPage, TrailBreak, TrailVerification, TrailsVerification};
use common::ApiError;
use common::ServiceName;

use super::queries;
use super::rules::{AuditLogFilter, Outcome};
use crate::auth::ComplianceOfficer;
use crate::meta::RequestMeta;

const MAX_BREAKS: usize = 100;

/// The public audit log, oldest first.
#[utoipa::path(get, operation_id = "audit_log_list", path = "/api/v1/compliance/audit-log", tag = "staff", security(("bearer" = [])),
    params(AuditLogFilter),
    responses(
        (status = 200, description = "A page, oldest first", body = AuditLogPage),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not a compliance officer", body = common::ErrorBody),
        (status = 422, description = "A malformed filter, named", body = common::ErrorBody),
        (status = 503, description = "The database is unavailable", body = common::ErrorBody),
    ))]
#[get("/compliance/audit-log?<filter..>")]
pub async fn audit_log(
    officer: ComplianceOfficer,
    filter: AuditLogFilter<'_>,
    meta: RequestMeta,
    pool: &State<PgPool>,
) -> Result<Json<AuditLogPage>, ApiError> {
    let query = filter.parse()?;
    let rows = queries::page(pool, &query).await?;
    let head_seq = queries::head_seq(pool).await?;
    let mut entries: Vec<_> = rows.into_iter().map(|row| row.entry(query.include_ip)).collect();
    let next_after_seq = (entries.len() as i64 > query.limit).then(|| {
        entries.truncate(query.limit as usize);
        entries.last().map(|e| e.seq)
    });
    // What was looked at, so the trail shows whose activity an officer read.
    let mut event =
        meta.event(Some(officer.user_id()), "audit.read", Some(("trail", "public".into())), Outcome::Success);
    event.reason = Some(format!("{} rows after seq {}; {}", entries.len(), query.after, query.asked()));
    queries::record_alone(pool, &event).await?;
    Ok(Json(AuditLogPage { entries, next_after_seq: next_after_seq.flatten(), head_seq }))
}

/// Verifies the public audit log end to end: every row's hash recomputed from its content,
/// every link to the row before followed, streamed from the database (memory stays flat
/// however long the trail). Reports the first breaks exactly; the verification is audited.
#[utoipa::path(post, operation_id = "audit_log_verify", path = "/api/v1/compliance/audit-verifications", tag = "staff", security(("bearer" = [])),
    responses(
        (status = 200, description = "The verification (`intact` false names the breaks)", body = TrailVerification),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not a compliance officer", body = common::ErrorBody),
        (status = 503, description = "The database is unavailable", body = common::ErrorBody),
    ))]
#[post("/compliance/audit-verifications")]
pub async fn verify(
    officer: ComplianceOfficer,
    meta: RequestMeta,
    pool: &State<PgPool>,
) -> Result<Json<TrailVerification>, ApiError> {
    let found = queries::verify(pool, MAX_BREAKS).await?;
    let breaks: Vec<TrailBreak> = found.breaks.iter().map(common::anchor::trail_break).collect();
    let report = TrailVerification {
        trail: "public".into(),
        intact: breaks.is_empty(),
        rows_checked: found.rows_checked,
        first_bad_seq: breaks.first().map(|b| b.seq),
        breaks,
    };
    let outcome = if report.intact { Outcome::Success } else { Outcome::Failure };
    let mut event = meta.event(Some(officer.user_id()), "audit.verify", Some(("trail", "public".into())), outcome);
    event.reason = Some(format!("{} rows checked, {} breaks", report.rows_checked, report.breaks.len()));
    if !report.intact {
        tracing::error!(request_id = %meta.request_id, alarm = "audit_chain", first_bad_seq = ?report.first_bad_seq, "public audit log chain is broken");
    }
    queries::record_alone(pool, &event).await?;
    Ok(Json(report))
}

/// Verifies every trail of every service end to end: each service streams its own trails'
/// chains from its database (every hash recomputed, every link followed) and compares each
/// trail with its signed checkpoints wherever they are kept (its own database and checkpoint
/// file, and each receiving service's database), naming the first bad sequence number it can
/// establish. public-api asks phi-vault and consent as the officer. Audited as `audit.verify`
/// on trail `all`; a broken trail raises `alarm="audit_chain"` in the service that holds it.
#[utoipa::path(post, operation_id = "audit_trails_verify", path = "/api/v1/compliance/trail-verifications", tag = "staff", security(("bearer" = [])),
    responses(
        (status = 200, description = "Every trail's report (`intact` false when any is broken)", body = TrailsVerification),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not a compliance officer", body = common::ErrorBody),
        (status = 503, description = "A service or a database is unavailable", body = common::ErrorBody),
    ))]
#[post("/compliance/trail-verifications")]
pub async fn verify_all(
    officer: ComplianceOfficer,
    meta: RequestMeta,
    pool: &State<PgPool>,
    publisher: &State<common::checkpoint::Published>,
    vault: &State<PhiVaultClient>,
    consent: &State<ConsentClient>,
) -> Result<Json<TrailsVerification>, ApiError> {
    let ctx = officer.call(&meta, "compliance_review");
    let publisher = publisher.0.as_deref();
    let own = common::anchor::verify_service(ServiceName::PublicApi, pool, publisher, queries::verify_chain);
    let (own, phi, consents) = tokio::join!(own, vault.verify_trails(&ctx), consent.verify_trails(&ctx));
    let mut trails = own?;
    trails.extend(phi.map_err(ClientError::into_api_error)?);
    trails.extend(consents.map_err(ClientError::into_api_error)?);
    let intact = trails.iter().all(|t| t.intact);
    let broken: Vec<String> = trails
        .iter()
        .filter(|t| !t.intact)
        .map(|t| format!("{} from seq {}", t.trail, t.first_bad_seq.map_or("?".into(), |s| s.to_string())))
        .collect();
    let rows: u64 = trails.iter().map(|t| t.rows_checked).sum();
    let outcome = if intact { Outcome::Success } else { Outcome::Failure };
    let mut event = meta.event(Some(officer.user_id()), "audit.verify", Some(("trail", "all".into())), outcome);
    event.reason = Some(format!(
        "{} trails, {rows} rows checked; {}",
        trails.len(),
        if intact { "intact".to_owned() } else { format!("broken: {}", broken.join(", ")) }
    ));
    queries::record_alone(pool, &event).await?;
    Ok(Json(TrailsVerification { intact, trails }))
}

pub fn routes() -> Vec<Route> {
    routes![audit_log, verify, verify_all]
}
