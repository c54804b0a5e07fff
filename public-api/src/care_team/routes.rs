//! The admin's care-team route.

use rocket::http::Status;
use rocket::{put, routes, Route, State};
use sqlx::PgPool;
use uuid::Uuid;

use common::client::PhiVaultClient;
use common::ApiError;

use super::{queries, rules};
use crate::audit::{self, Outcome};
use crate::auth::Admin;
use crate::meta::RequestMeta;

/// Puts a caseworker on a beneficiary's care team.
#[utoipa::path(put, operation_id = "care_team_assign", path = "/api/v1/staff/care-team/{caseworker_id}/{beneficiary_id}", tag = "staff", security(("bearer" = [])),
    params(("caseworker_id" = Uuid, Path), ("beneficiary_id" = Uuid, Path)),
    responses(
        (status = 204, description = "Assigned"),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not an admin; or the caseworker is the beneficiary or yourself", body = common::ErrorBody),
        (status = 422, description = "Not a caseworker, or not a beneficiary", body = common::ErrorBody),
        (status = 503, description = "The PHI vault is unavailable", body = common::ErrorBody),
    ))]
#[put("/staff/care-team/<caseworker_id>/<beneficiary_id>")]
pub async fn assign_care_team(
    admin: Admin,
    caseworker_id: Uuid,
    beneficiary_id: Uuid,
    meta: RequestMeta,
    pool: &State<PgPool>,
    vault: &State<PhiVaultClient>,
) -> Result<Status, ApiError> {
    if !queries::is_caseworker(pool, caseworker_id).await? {
        return Err(ApiError::Unprocessable("caseworker_id: not a caseworker".into()));
    }
    if !queries::is_beneficiary(pool, beneficiary_id).await? {
        return Err(ApiError::Unprocessable("beneficiary_id: not a beneficiary".into()));
    }
    if !rules::may_assign(admin.user_id(), caseworker_id, beneficiary_id) {
        return Err(ApiError::Forbidden);
    }
    let ctx = admin.call(&meta, "care_team_assignment");
    vault.assign_care_team(&ctx, caseworker_id, beneficiary_id).await.map_err(|e| e.into_api_error())?;
    let resource = Some(("care_team", format!("{caseworker_id}:{beneficiary_id}")));
    audit::record_alone(pool, &meta.event(Some(admin.user_id()), "care_team.assign", resource, Outcome::Success))
        .await?;
    Ok(Status::NoContent)
}

pub fn routes() -> Vec<Route> {
    routes![assign_care_team]
}
