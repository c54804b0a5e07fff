//! The access log's routes, for compliance officers: a page of entries, and the review of a
//! flagged one.

use rocket::serde::json::Json;
use rocket::{get, put, routes, Route, State};
use sqlx::PgPool;

use common::assertion::InternalCall;
use common::client::{AccessLogFilter, AccessLogPage, AccessReview, ReviewRequest};
use common::json::Body;
use common::ApiError;

use super::rules::{self, access};
use super::trail::{self, log_alone};

/// A page of the access log for compliance review: metadata only, never contents. Only a
/// compliance officer may read it, and the reading is itself logged.
#[get("/internal/v1/access-log?<filter..>")]
async fn access_log_page(
    call: InternalCall,
    filter: AccessLogFilter<'_>,
    pool: &State<PgPool>,
) -> Result<Json<AccessLogPage>, ApiError> {
    let claims = &call.0;
    let query = filter.parse()?;
    let decision = rules::reading(claims);
    let entry = access(claims, query.subject_id, None, rules::READ, &decision);
    if !decision.permitted {
        log_alone(pool, &entry).await?;
        return Err(ApiError::Forbidden);
    }
    trail::read_page(pool, &query, &entry).await.map(Json)
}

/// A compliance officer's finding on a flagged (break-glass) access: `justified` or
/// `unjustified`, with a note. Final; the review is itself logged.
#[put("/internal/v1/access-log/<seq>/review", data = "<body>")]
async fn review_access(
    call: InternalCall,
    seq: i64,
    body: Body<ReviewRequest>,
    pool: &State<PgPool>,
) -> Result<Json<AccessReview>, ApiError> {
    let claims = &call.0;
    let request = body.into_inner();
    common::client::validate_review(&request)?;
    let decision = rules::reviewing(claims);
    let entry = access(claims, None, None, rules::REVIEW, &decision);
    if !decision.permitted {
        log_alone(pool, &entry).await?;
        return Err(ApiError::Forbidden);
    }
    trail::record_review(pool, claims, seq, &request, &entry).await.map(Json)
}

pub fn routes() -> Vec<Route> {
    routes![access_log_page, review_access]
}
