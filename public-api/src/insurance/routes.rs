//! The beneficiary's routes (submit, read mine) and the staff's (the queue, the details for the
//! caseworker on the care team, the decision).

use rocket::http::Status;
use rocket::serde::json::Json;
use rocket::{get, post, FromForm, State};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use common::client::{NewRecord, PhiVaultClient};
use common::insurance::{
    InsuranceDecision, InsuranceDetail, InsuranceDetails, InsurancePage, InsuranceStatus, InsuranceView,
    DETAILS_CATEGORY,
};
use common::json::{Body, Keyset};
use common::ApiError;

use super::queries::{self, InsuranceRow};
use super::{rules, Provider};
use crate::audit::{self, Outcome};
use crate::auth::{Beneficiary, Caseworker, Reviewer};
use crate::meta::RequestMeta;
use crate::notifications::{self, Notice};
use crate::phi_records::{content_of, discard, read_details, stored_error};

/// Records a decision on a pending request, with its notification and audit row, inside `tx`.
/// `None` when it was no longer pending.
async fn decide(
    tx: &mut PgConnection,
    id: Uuid,
    status: InsuranceStatus,
    by: Option<Uuid>,
    reason: Option<&str>,
    meta: &RequestMeta,
) -> Result<Option<InsuranceView>, ApiError> {
    let Some(decided) = queries::decide(&mut *tx, id, status, by, reason).await? else { return Ok(None) };
    let decided = decided.view();
    notifications::add(&mut *tx, decided.beneficiary_id, &Notice::insurance(id)).await?;
    let mut event =
        meta.event(by, "insurance.decide", Some(("insurance_verification", id.to_string())), Outcome::Success);
    event.reason = Some(status.as_str().to_owned());
    audit::record(&mut *tx, &event).await?;
    Ok(Some(decided))
}

/// Submits my insurance for verification. The member details go to phi-vault.
#[utoipa::path(post, operation_id = "insurance_submit", path = "/api/v1/beneficiaries/me/insurance/verify", tag = "beneficiaries", security(("bearer" = [])),
    request_body = InsuranceDetails,
    responses(
        (status = 201, description = "Submitted; pending until decided", body = InsuranceView),
        (status = 400, description = "Malformed JSON", body = common::ErrorBody),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not a beneficiary", body = common::ErrorBody),
        (status = 409, description = "A request of mine is already pending, or my records were erased", body = common::ErrorBody),
        (status = 422, description = "Invalid fields, each named", body = common::ErrorBody),
        (status = 503, description = "The PHI vault is unavailable; nothing was stored", body = common::ErrorBody),
    ))]
#[post("/beneficiaries/me/insurance/verify", data = "<body>")]
pub async fn submit(
    user: Beneficiary,
    body: Body<InsuranceDetails>,
    meta: RequestMeta,
    pool: &State<PgPool>,
    vault: &State<PhiVaultClient>,
    provider: &State<Provider>,
) -> Result<(Status, Json<InsuranceView>), ApiError> {
    let details = body.into_inner();
    rules::check(&details)?;
    let me = user.user_id();
    let already = || ApiError::Conflict("a verification of your insurance is already pending".into());
    if queries::pending(pool, me).await? {
        return Err(already());
    }
    let ctx = user.call(&meta, "self_service");
    let record = NewRecord {
        subject_id: me,
        category: DETAILS_CATEGORY.into(),
        content: content_of(&details)?,
        expires_at: None,
    };
    let created = vault.create_record(&ctx, &record).await.map_err(stored_error)?.record_id;
    let stored = async {
        let mut tx = pool.begin().await?;
        let submitted = queries::insert(&mut tx, me, created, provider.name()).await?.ok_or_else(already)?.view();
        let resource = Some(("insurance_verification", submitted.id.to_string()));
        audit::record(&mut tx, &meta.event(Some(me), "insurance.submit", resource, Outcome::Success)).await?;
        tx.commit().await?;
        Ok::<_, ApiError>(submitted)
    }
    .await;
    let submitted = match stored {
        Ok(submitted) => submitted,
        Err(e) => {
            discard(vault, &ctx, created).await;
            return Err(e);
        }
    };
    // An automated provider may answer at once; the manual one leaves it to staff.
    if let Some(status) = provider.check(&details).await {
        let mut tx = pool.begin().await?;
        if let Some(decided) = decide(&mut tx, submitted.id, status, None, None, &meta).await? {
            tx.commit().await?;
            return Ok((Status::Created, Json(decided)));
        }
    }
    Ok((Status::Created, Json(submitted)))
}

/// My latest insurance verification request.
#[utoipa::path(get, operation_id = "insurance_read_mine", path = "/api/v1/beneficiaries/me/insurance", tag = "beneficiaries", security(("bearer" = [])),
    responses(
        (status = 200, description = "The latest request and where it stands", body = InsuranceView),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not a beneficiary", body = common::ErrorBody),
        (status = 404, description = "None submitted", body = common::ErrorBody),
    ))]
#[get("/beneficiaries/me/insurance")]
pub async fn mine(user: Beneficiary, pool: &State<PgPool>) -> Result<Json<InsuranceView>, ApiError> {
    let mut conn = pool.acquire().await?;
    queries::latest(&mut conn, user.user_id()).await?.map(Json).ok_or(ApiError::NotFound)
}

/// The queue's filters, as sent.
#[derive(Debug, FromForm)]
pub struct QueueQuery<'r> {
    status: Option<&'r str>,
    after: Option<&'r str>,
    limit: Option<&'r str>,
}

/// The verification queue, oldest first (no member details: those are PHI).
#[utoipa::path(get, operation_id = "insurance_staff_queue", path = "/api/v1/staff/insurance", tag = "staff", security(("bearer" = [])),
    params(("status" = Option<common::insurance::InsuranceStatus>, Query, description = "pending (the default), verified or rejected"),
        ("after" = Option<i64>, Query, description = "`next_after` of the previous page"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "1 to 100, default 20")),
    responses(
        (status = 200, description = "A page of requests", body = InsurancePage),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Neither caseworker nor admin", body = common::ErrorBody),
        (status = 422, description = "A filter malformed, named", body = common::ErrorBody),
    ))]
#[get("/staff/insurance?<filter..>")]
pub async fn queue(
    _staff: Reviewer,
    filter: QueueQuery<'_>,
    pool: &State<PgPool>,
) -> Result<Json<InsurancePage>, ApiError> {
    let status = rules::status_filter(filter.status)?;
    let page = Keyset::parse(filter.after, filter.limit, 20)?;
    let rows = queries::queue(pool, status, page.after_or_start(), page.limit + 1).await?;
    let (rows, next_after) = common::db::keyset_page(rows, page.limit, |r| r.seq);
    Ok(Json(InsurancePage { verifications: rows.iter().map(InsuranceRow::view).collect(), next_after }))
}

async fn by_id(pool: &PgPool, id: Uuid) -> Result<InsuranceRow, ApiError> {
    queries::by_id(pool, id).await?.ok_or(ApiError::NotFound)
}

/// A request with its member details, for a caseworker on the beneficiary's care team.
#[utoipa::path(get, operation_id = "insurance_read_for_caseworker", path = "/api/v1/caseworker/insurance/{id}", tag = "staff", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "The request and its member details", body = InsuranceDetail),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not a caseworker", body = common::ErrorBody),
        (status = 404, description = "No such request, its beneficiary is not on your care team, or its details were erased", body = common::ErrorBody),
        (status = 503, description = "The PHI vault is unavailable", body = common::ErrorBody),
    ))]
#[get("/caseworker/insurance/<id>")]
pub async fn read_for_caseworker(
    caseworker: Caseworker,
    id: Uuid,
    meta: RequestMeta,
    pool: &State<PgPool>,
    vault: &State<PhiVaultClient>,
) -> Result<Json<InsuranceDetail>, ApiError> {
    let row = by_id(pool, id).await?;
    // With the details erased there is no vault read to check the care team: nothing to show.
    let details = read_details(vault, &caseworker.call(&meta, "treatment"), row.details_record_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(InsuranceDetail { verification: row.view(), details: Some(details) }))
}

/// Decides a pending request: `verified`, or `rejected` with a reason the beneficiary sees. Only
/// a caseworker who may read the details (on the beneficiary's care team) decides: the details are
/// read through phi-vault first, which checks and logs it.
#[utoipa::path(post, operation_id = "insurance_decide", path = "/api/v1/staff/insurance/{id}/decision", tag = "staff", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = InsuranceDecision,
    responses(
        (status = 200, description = "Decided", body = InsuranceView),
        (status = 400, description = "Malformed JSON", body = common::ErrorBody),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not a caseworker, or your own request", body = common::ErrorBody),
        (status = 404, description = "No such request, its beneficiary is not on your care team, or its details were erased", body = common::ErrorBody),
        (status = 409, description = "Already decided", body = common::ErrorBody),
        (status = 422, description = "`pending` is no decision, or a rejection without a reason", body = common::ErrorBody),
        (status = 503, description = "The PHI vault is unavailable; nothing was decided", body = common::ErrorBody),
    ))]
#[post("/staff/insurance/<id>/decision", data = "<body>")]
pub async fn decision(
    caseworker: Caseworker,
    id: Uuid,
    body: Body<InsuranceDecision>,
    meta: RequestMeta,
    pool: &State<PgPool>,
    vault: &State<PhiVaultClient>,
) -> Result<Json<InsuranceView>, ApiError> {
    let decision = body.into_inner();
    let reason = rules::check_decision(decision.status, decision.reason.as_deref())?;
    let row = by_id(pool, id).await?;
    if row.beneficiary_id == caseworker.user_id() {
        return Err(ApiError::Forbidden);
    }
    // The read is the care-team check: phi-vault refuses (404) a caseworker not on the team.
    read_details::<InsuranceDetails>(vault, &caseworker.call(&meta, "treatment"), row.details_record_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let mut tx = pool.begin().await?;
    let decided = decide(&mut tx, id, decision.status, Some(caseworker.user_id()), reason, &meta)
        .await?
        .ok_or_else(|| ApiError::Conflict("already decided".into()))?;
    tx.commit().await?;
    Ok(Json(decided))
}
