//! The compliance officer's view of public-api's own trail: the audit log, filtered and paged,
//! and its verification (every row's hash recomputed, every link followed, streamed from the
//! database). The PHI access log and the accounting of disclosures are phi-vault's, reached
//! through `staff_routes`. The consent service's decision log and a beneficiary's consents are
//! read from the consent service as the officer. Each read and each verification is itself
//! audited here.

use rocket::serde::json::Json;
use rocket::{get, post, routes, Route, State};
use sqlx::{PgPool, Row};
use uuid::Uuid;

use common::checkpoint::Trail;
use common::client::{ClientError, ConsentClient, PhiVaultClient};
use common::compliance::{
    AuditLogEntry, AuditLogPage, DecisionFilter, DecisionPage, TrailBreak, TrailVerification, TrailsVerification,
};
use common::consents::{ConsentPage, SubjectConsent};
use common::ApiError;
use common::ServiceName;

use crate::audit::{self, Outcome};
use crate::auth::ComplianceOfficer;
use crate::meta::RequestMeta;

const OUTCOMES: [&str; 3] = ["success", "failure", "denied"];
const MAX_BREAKS: usize = 100;

/// Filters for the audit log. Parsed strictly: a malformed value is a 422 naming it.
#[derive(Debug, rocket::FromForm, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditLogFilter<'r> {
    /// Only rows where this user acted.
    #[param(value_type = Option<Uuid>)]
    pub actor_id: Option<&'r str>,
    /// Only this action (`application.status`), or a family of them (`auth.*`).
    pub action: Option<&'r str>,
    /// Only this kind of resource (`application`, `user`, `session`, ...).
    pub resource_type: Option<&'r str>,
    /// Only this resource (its id as recorded, e.g. an application's id).
    pub resource_id: Option<&'r str>,
    /// `success`, `failure` or `denied`.
    pub outcome: Option<&'r str>,
    /// On or after this day (YYYY-MM-DD, UTC).
    #[param(value_type = Option<String>)]
    pub from: Option<&'r str>,
    /// On or before this day (YYYY-MM-DD, UTC).
    #[param(value_type = Option<String>)]
    pub to: Option<&'r str>,
    /// Rows after this sequence number (the previous page's `next_after_seq`).
    #[param(value_type = Option<i64>)]
    pub after_seq: Option<&'r str>,
    /// Rows up to this sequence number (the first page's `head_seq`).
    #[param(value_type = Option<i64>)]
    pub until_seq: Option<&'r str>,
    /// `true` to include each row's client address (an identifier: only when needed).
    #[param(value_type = Option<bool>)]
    pub include_ip: Option<&'r str>,
    /// 1 to 500; 100 when absent.
    #[param(value_type = Option<i64>)]
    pub limit: Option<&'r str>,
}

fn text_param(name: &str, value: Option<&str>, max: usize) -> Result<Option<String>, ApiError> {
    match value {
        Some(v) if v.is_empty() || v.len() > max || v.chars().any(char::is_control) => {
            Err(ApiError::Unprocessable(format!("{name}: 1 to {max} printable characters")))
        }
        other => Ok(other.map(str::to_owned)),
    }
}

/// The public audit log, oldest first.
#[utoipa::path(get, path = "/api/v1/compliance/audit-log", tag = "staff", security(("bearer" = [])),
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
    let actor: Option<Uuid> = common::json::query_param("actor_id", filter.actor_id, "a UUID")?;
    let action = text_param("action", filter.action, 100)?;
    let resource_type = text_param("resource_type", filter.resource_type, 100)?;
    let resource_id = text_param("resource_id", filter.resource_id, 200)?;
    if filter.outcome.is_some_and(|o| !OUTCOMES.contains(&o)) {
        return Err(ApiError::Unprocessable("outcome: success, failure or denied".into()));
    }
    let from = common::json::date_param("from", filter.from)?;
    let to = common::json::date_param("to", filter.to)?;
    if let (Some(f), Some(t)) = (from, to) {
        if f > t {
            return Err(ApiError::Unprocessable("from: on or before to".into()));
        }
    }
    let after: i64 = common::json::query_param("after_seq", filter.after_seq, "an integer")?.unwrap_or(0);
    let until: Option<i64> = common::json::query_param("until_seq", filter.until_seq, "an integer")?;
    let include_ip: bool =
        common::json::query_param("include_ip", filter.include_ip, "true or false")?.unwrap_or(false);
    let limit: i64 = common::json::query_param("limit", filter.limit, "an integer from 1 to 500")?.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::Unprocessable("limit: an integer from 1 to 500".into()));
    }
    // `auth.*` selects a family; anything else is matched exactly.
    let (action_exact, action_prefix) = match action.as_deref() {
        Some(a) if a.ends_with(".*") => (None, Some(format!("{}.", &a[..a.len() - 2]))),
        Some(a) => (Some(a.to_owned()), None),
        None => (None, None),
    };
    let rows = sqlx::query(
        "SELECT seq, occurred_at, actor_id, operator, action, resource_type, resource_id, outcome, reason, \
         host(ip) AS ip, request_id FROM audit_logs WHERE seq > $1 \
         AND ($2::uuid IS NULL OR actor_id = $2) AND ($3::text IS NULL OR action = $3) \
         AND ($4::text IS NULL OR starts_with(action, $4)) AND ($5::text IS NULL OR resource_type = $5) \
         AND ($6::text IS NULL OR resource_id = $6) AND ($7::text IS NULL OR outcome = $7) \
         AND ($8::date IS NULL OR occurred_at >= ($8::date)::timestamp AT TIME ZONE 'UTC') \
         AND ($9::date IS NULL OR occurred_at < ($9::date + 1)::timestamp AT TIME ZONE 'UTC') \
         AND ($11::bigint IS NULL OR seq <= $11) \
         ORDER BY seq LIMIT $10",
    )
    .bind(after)
    .bind(actor)
    .bind(&action_exact)
    .bind(action_prefix)
    .bind(&resource_type)
    .bind(&resource_id)
    .bind(filter.outcome)
    .bind(from)
    .bind(to)
    .bind(limit + 1)
    .bind(until)
    .fetch_all(pool.inner())
    .await?;
    let head_seq: i64 =
        sqlx::query_scalar("SELECT coalesce(max(seq), 0) FROM audit_logs").fetch_one(pool.inner()).await?;
    let mut entries = rows
        .iter()
        .map(|r| {
            Ok(AuditLogEntry {
                seq: r.try_get("seq")?,
                occurred_at: r.try_get("occurred_at")?,
                actor_id: r.try_get("actor_id")?,
                operator: r.try_get("operator")?,
                action: r.try_get("action")?,
                resource_type: r.try_get("resource_type")?,
                resource_id: r.try_get("resource_id")?,
                outcome: r.try_get("outcome")?,
                reason: r.try_get("reason")?,
                ip: if include_ip { r.try_get("ip")? } else { None },
                request_id: r.try_get("request_id")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let next_after_seq = (entries.len() as i64 > limit).then(|| {
        entries.truncate(limit as usize);
        entries.last().map(|e| e.seq)
    });
    // What was looked at, so the trail shows whose activity an officer read.
    let mut event =
        meta.event(Some(officer.user_id()), "audit.read", Some(("trail", "public".into())), Outcome::Success);
    let asked = [
        ("actor_id", actor.map(|a| a.to_string())),
        ("action", action),
        ("resource_type", resource_type),
        ("resource_id", resource_id),
        ("outcome", filter.outcome.map(str::to_owned)),
        ("from", from.map(|d| d.to_string())),
        ("to", to.map(|d| d.to_string())),
        ("include_ip", include_ip.then(|| "true".to_owned())),
    ];
    let asked: Vec<String> = asked.into_iter().filter_map(|(k, v)| v.map(|v| format!("{k}={v}"))).collect();
    event.reason = Some(format!("{} rows after seq {after}; {}", entries.len(), asked.join(" ")));
    audit::record_alone(pool, &event).await?;
    Ok(Json(AuditLogPage { entries, next_after_seq: next_after_seq.flatten(), head_seq }))
}

/// Verifies the public audit log end to end: every row's hash recomputed from its content,
/// every link to the row before followed, streamed from the database (memory stays flat
/// however long the trail). Reports the first breaks exactly; the verification is audited.
#[utoipa::path(post, path = "/api/v1/compliance/audit-verifications", tag = "staff", security(("bearer" = [])),
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
    let found = audit::verify(pool, MAX_BREAKS).await?;
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
    audit::record_alone(pool, &event).await?;
    Ok(Json(report))
}

/// The consent service's decision log, oldest first: every disclosure question asked about a
/// beneficiary's records (by whom, to whom, for what) and its answer, with the consent relied
/// on. Each read is audited as `audit.read` on trail `decisions`, naming the filters.
#[utoipa::path(get, path = "/api/v1/compliance/consent-decisions", tag = "staff", security(("bearer" = [])),
    params(DecisionFilter),
    responses(
        (status = 200, description = "A page, oldest first", body = DecisionPage),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not a compliance officer", body = common::ErrorBody),
        (status = 422, description = "A malformed filter, named", body = common::ErrorBody),
        (status = 503, description = "The consent service is unavailable", body = common::ErrorBody),
    ))]
#[get("/compliance/consent-decisions?<filter..>")]
pub async fn consent_decisions(
    officer: ComplianceOfficer,
    filter: DecisionFilter<'_>,
    meta: RequestMeta,
    pool: &State<PgPool>,
    consent: &State<ConsentClient>,
) -> Result<Json<DecisionPage>, ApiError> {
    let query = filter.parse()?;
    let ctx = officer.call(&meta, "compliance_review");
    let page = consent.decisions(&ctx, &query).await.map_err(ClientError::into_api_error)?;
    let mut event =
        meta.event(Some(officer.user_id()), "audit.read", Some(("trail", "decisions".into())), Outcome::Success);
    event.reason = Some(format!("{} rows after seq {}; {}", page.entries.len(), query.after_seq, query.describe()));
    audit::record_alone(pool, &event).await?;
    Ok(Json(page))
}

/// A beneficiary's consents, oldest first, with their state, for a compliance officer. Each
/// read is audited as `consent.read` on the beneficiary (`user:<id>`).
#[utoipa::path(get, path = "/api/v1/compliance/beneficiaries/{beneficiary_id}/consents", tag = "staff", security(("bearer" = [])),
    params(("beneficiary_id" = Uuid, Path),
           ("state" = Option<String>, Query, description = "`signed`, `revoked` or `expired`"),
           ("after" = Option<i64>, Query, description = "The previous page's `next_after`"),
           ("limit" = Option<i64>, Query, description = "1 to 100; 50 when absent")),
    responses(
        (status = 200, description = "A page of consents", body = ConsentPage),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not a compliance officer", body = common::ErrorBody),
        (status = 422, description = "A malformed filter, named", body = common::ErrorBody),
        (status = 503, description = "The consent service is unavailable", body = common::ErrorBody),
    ))]
#[get("/compliance/beneficiaries/<beneficiary_id>/consents?<state>&<after>&<limit>")]
#[allow(clippy::too_many_arguments)]
pub async fn beneficiary_consents(
    officer: ComplianceOfficer,
    beneficiary_id: Uuid,
    state: Option<&str>,
    after: Option<&str>,
    limit: Option<&str>,
    meta: RequestMeta,
    pool: &State<PgPool>,
    consent: &State<ConsentClient>,
) -> Result<Json<ConsentPage>, ApiError> {
    let query = common::consents::parse_query(state, after, limit)?;
    let ctx = officer.call(&meta, "compliance_review");
    let page = consent.consents(&ctx, beneficiary_id, &query).await.map_err(ClientError::into_api_error)?;
    let mut event = meta.event(
        Some(officer.user_id()),
        "consent.read",
        Some(("user", beneficiary_id.to_string())),
        Outcome::Success,
    );
    event.reason = Some(format!("{} consents listed", page.consents.len()));
    audit::record_alone(pool, &event).await?;
    Ok(Json(page))
}

/// One consent by its id, with its subject and the full text of the form signed, for a
/// compliance officer. Audited as `consent.read` naming the beneficiary, the consent in the
/// reason.
#[utoipa::path(get, path = "/api/v1/compliance/consents/{id}", tag = "staff", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "The consent", body = SubjectConsent),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not a compliance officer", body = common::ErrorBody),
        (status = 404, description = "No such consent", body = common::ErrorBody),
        (status = 503, description = "The consent service is unavailable", body = common::ErrorBody),
    ))]
#[get("/compliance/consents/<id>")]
pub async fn consent_by_id(
    officer: ComplianceOfficer,
    id: Uuid,
    meta: RequestMeta,
    pool: &State<PgPool>,
    consent: &State<ConsentClient>,
) -> Result<Json<SubjectConsent>, ApiError> {
    let ctx = officer.call(&meta, "compliance_review");
    let found = consent.consent_by_id(&ctx, id).await.map_err(ClientError::into_api_error)?;
    let mut event = meta.event(
        Some(officer.user_id()),
        "consent.read",
        Some(("user", found.subject_id.to_string())),
        Outcome::Success,
    );
    event.reason = Some(format!("consent {id}"));
    audit::record_alone(pool, &event).await?;
    Ok(Json(found))
}

/// Verifies public-api's trail's hash chain (`common::anchor::VerifyChain`).
pub fn verify_chain(
    trail: Trail,
    pool: PgPool,
    limit: usize,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<common::chain::Verification, sqlx::Error>> + Send>> {
    Box::pin(async move {
        match trail {
            Trail::AuditLogs => audit::verify(&pool, limit).await,
            other => Err(sqlx::Error::Protocol(format!("{} is not a public-api trail", other.as_str()))),
        }
    })
}

/// Verifies every trail of every service end to end: each service streams its own trails'
/// chains from its database (every hash recomputed, every link followed) and compares each
/// trail with its signed checkpoints wherever they are kept (its own database and checkpoint
/// file, and each receiving service's database), naming the first bad sequence number it can
/// establish. public-api asks phi-vault and consent as the officer. Audited as `audit.verify`
/// on trail `all`; a broken trail raises `alarm="audit_chain"` in the service that holds it.
#[utoipa::path(post, path = "/api/v1/compliance/trail-verifications", tag = "staff", security(("bearer" = [])),
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
    let own = common::anchor::verify_service(ServiceName::PublicApi, pool, publisher, verify_chain);
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
    audit::record_alone(pool, &event).await?;
    Ok(Json(TrailsVerification { intact, trails }))
}

pub fn routes() -> Vec<Route> {
    routes![audit_log, verify, verify_all, consent_decisions, beneficiary_consents, consent_by_id]
}
