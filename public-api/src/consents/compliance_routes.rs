//! The compliance officer's reads of the consent service: its decision log, a beneficiary's
//! consents and any one consent, asked for as the officer. Each read is itself audited here.

use rocket::serde::json::Json;
use rocket::{get, routes, Route, State};
use sqlx::PgPool;
use uuid::Uuid;

use common::client::{ClientError, ConsentClient};
use common::compliance::{DecisionFilter, DecisionPage};
use common::consents::{ConsentPage, SubjectConsent};
use common::ApiError;

use super::rules::ConsentFilter;
use crate::audit::{self, Outcome};
use crate::auth::ComplianceOfficer;
use crate::meta::RequestMeta;

/// The consent service's decision log, oldest first: every disclosure question asked about a
/// beneficiary's records (by whom, to whom, for what) and its answer, with the consent relied
/// on. Each read is audited as `audit.read` on trail `decisions`, naming the filters.
#[utoipa::path(get, operation_id = "consents_compliance_decisions", path = "/api/v1/compliance/consent-decisions", tag = "staff", security(("bearer" = [])),
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
#[utoipa::path(get, operation_id = "consents_compliance_list_for_beneficiary", path = "/api/v1/compliance/beneficiaries/{beneficiary_id}/consents", tag = "staff", security(("bearer" = [])),
    params(("beneficiary_id" = Uuid, Path),
           ("state" = Option<common::consents::ConsentState>, Query, description = "`signed`, `revoked` or `expired`"),
           ("after" = Option<i64>, Query, description = "The previous page's `next_after`"),
           ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "1 to 100; 50 when absent")),
    responses(
        (status = 200, description = "A page of consents", body = ConsentPage),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not a compliance officer", body = common::ErrorBody),
        (status = 422, description = "A malformed filter, named", body = common::ErrorBody),
        (status = 503, description = "The consent service is unavailable", body = common::ErrorBody),
    ))]
#[get("/compliance/beneficiaries/<beneficiary_id>/consents?<filter..>")]
pub async fn beneficiary_consents(
    officer: ComplianceOfficer,
    beneficiary_id: Uuid,
    filter: ConsentFilter<'_>,
    meta: RequestMeta,
    pool: &State<PgPool>,
    consent: &State<ConsentClient>,
) -> Result<Json<ConsentPage>, ApiError> {
    let query = filter.parse()?;
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
#[utoipa::path(get, operation_id = "consents_compliance_read", path = "/api/v1/compliance/consents/{id}", tag = "staff", security(("bearer" = [])),
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

pub fn routes() -> Vec<Route> {
    routes![consent_decisions, beneficiary_consents, consent_by_id]
}
