//! The PHI access log, for a compliance officer: who touched which beneficiary's records, when,
//! why, and the decision; and the officer's finding on each flagged (break-glass) access. phi-vault
//! keeps both; the review is audited here too.

use rocket::serde::json::Json;
use rocket::{get, put, routes, Route, State};
use sqlx::PgPool;

use common::client::{AccessLogFilter, AccessLogPage, AccessReview, ClientError, PhiVaultClient, ReviewRequest};
use common::json::Body;
use common::ApiError;

use crate::audit::{self, Outcome};
use crate::auth::ComplianceOfficer;
use crate::meta::RequestMeta;

/// The PHI access log for compliance review: who touched which beneficiary's records, when, why,
/// and the decision — never contents. Reading it is itself logged.
#[utoipa::path(get, operation_id = "phi_access_log_list", path = "/api/v1/compliance/phi-access-log", tag = "staff", security(("bearer" = [])),
    params(AccessLogFilter),
    responses(
        (status = 200, description = "A page, oldest first", body = AccessLogPage),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not a compliance officer", body = common::ErrorBody),
        (status = 422, description = "A filter out of range", body = common::ErrorBody),
        (status = 503, description = "The PHI vault is unavailable", body = common::ErrorBody),
    ))]
#[get("/compliance/phi-access-log?<filter..>")]
pub async fn phi_access_log(
    officer: ComplianceOfficer,
    filter: AccessLogFilter<'_>,
    meta: RequestMeta,
    vault: &State<PhiVaultClient>,
) -> Result<Json<AccessLogPage>, ApiError> {
    let query = filter.parse()?;
    let ctx = officer.call(&meta, "compliance_review");
    vault.access_log(&ctx, &query).await.map(Json).map_err(|e| e.into_api_error())
}

/// Records a compliance officer's finding on a flagged (break-glass) access: `justified` or
/// `unjustified`, with a note. Final: a second review of the same entry is 409.
#[utoipa::path(put, operation_id = "phi_access_log_review", path = "/api/v1/compliance/phi-access-log/{seq}/review", tag = "staff", security(("bearer" = [])),
    params(("seq" = i64, Path, description = "The access-log entry's `seq`")), request_body = ReviewRequest,
    responses(
        (status = 200, description = "The review, as recorded", body = AccessReview),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not a compliance officer, or the access under review is your own (separation of duties)", body = common::ErrorBody),
        (status = 404, description = "No such entry, or not one flagged for review", body = common::ErrorBody),
        (status = 409, description = "Already reviewed", body = common::ErrorBody),
        (status = 422, description = "Bad outcome or note", body = common::ErrorBody),
        (status = 503, description = "The PHI vault is unavailable", body = common::ErrorBody),
    ))]
#[put("/compliance/phi-access-log/<seq>/review", data = "<body>")]
pub async fn review_access(
    officer: ComplianceOfficer,
    seq: i64,
    body: Body<ReviewRequest>,
    meta: RequestMeta,
    pool: &State<PgPool>,
    vault: &State<PhiVaultClient>,
) -> Result<Json<AccessReview>, ApiError> {
    let request = body.into_inner();
    common::client::validate_review(&request)?;
    let ctx = officer.call(&meta, "compliance_review");
    let review = vault.review_access(&ctx, seq, &request).await.map_err(|e| match e {
        ClientError::Status { status: 409, .. } => ApiError::Conflict(format!("entry {seq} has already been reviewed")),
        other => other.into_api_error(),
    })?;
    let mut event = meta.event(
        Some(officer.user_id()),
        "phi.access_review",
        Some(("access_log", seq.to_string())),
        Outcome::Success,
    );
    event.reason = Some(review.outcome.clone());
    audit::record_alone(pool, &event).await?;
    Ok(Json(review))
}

pub fn routes() -> Vec<Route> {
    routes![phi_access_log, review_access]
}
