//! Staff routes: an admin assigns caseworkers to beneficiaries' care teams; a caseworker reads the
//! profile of a beneficiary on their team. phi-vault makes the access decision itself (it keeps
//! the care teams); public-api only asserts who is asking, in which verified role.

use rocket::http::Status;
use rocket::serde::json::Json;
use rocket::{get, put, routes, Route, State};
use sqlx::PgPool;
use uuid::Uuid;

use common::assertion::CallContext;
use common::client::PhiVaultClient;
use common::ApiError;

use crate::audit::{self, Outcome};
use crate::auth::AuthUser;
use crate::beneficiaries::BeneficiaryProfile;
use crate::meta::RequestMeta;

async fn has(pool: &PgPool, user: Uuid, check: &str) -> Result<bool, ApiError> {
    Ok(sqlx::query_scalar(&format!(
        "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1 AND deleted_at IS NULL AND {check})"
    ))
    .bind(user)
    .fetch_one(pool)
    .await?)
}

/// Puts a caseworker on a beneficiary's care team.
#[utoipa::path(put, path = "/api/v1/staff/care-team/{caseworker_id}/{beneficiary_id}", tag = "staff", security(("bearer" = [])),
    params(("caseworker_id" = Uuid, Path), ("beneficiary_id" = Uuid, Path)),
    responses(
        (status = 204, description = "Assigned"),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not an admin", body = common::ErrorBody),
        (status = 422, description = "Not a caseworker, or not a beneficiary", body = common::ErrorBody),
        (status = 503, description = "The PHI vault is unavailable", body = common::ErrorBody),
    ))]
#[put("/staff/care-team/<caseworker_id>/<beneficiary_id>")]
pub async fn assign_care_team(
    user: AuthUser,
    caseworker_id: Uuid,
    beneficiary_id: Uuid,
    meta: RequestMeta,
    pool: &State<PgPool>,
    vault: &State<PhiVaultClient>,
) -> Result<Status, ApiError> {
    if !has(pool, caseworker_id, "'caseworker' = ANY(roles)").await? {
        return Err(ApiError::Unprocessable("caseworker_id: not a caseworker".into()));
    }
    if !has(pool, beneficiary_id, "user_type = 'beneficiary'").await? {
        return Err(ApiError::Unprocessable("beneficiary_id: not a beneficiary".into()));
    }
    let ctx = CallContext {
        sub: user.user_id.to_string(),
        role: "admin".into(),
        purpose: "care_team_assignment".into(),
        request_id: meta.request_id.clone(),
    };
    vault.assign_care_team(&ctx, caseworker_id, beneficiary_id).await.map_err(|e| e.into_api_error())?;
    let mut tx = pool.begin().await?;
    audit::record(
        &mut tx,
        &meta.event(
            Some(user.user_id),
            "care_team.assign",
            Some(("care_team", format!("{caseworker_id}:{beneficiary_id}"))),
            Outcome::Success,
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(Status::NoContent)
}

/// A beneficiary's profile, for a caseworker on their care team (404 otherwise).
#[utoipa::path(get, path = "/api/v1/caseworker/beneficiaries/{beneficiary_id}/profile", tag = "staff", security(("bearer" = [])),
    params(("beneficiary_id" = Uuid, Path)),
    responses(
        (status = 200, description = "The profile", body = BeneficiaryProfile),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not a caseworker", body = common::ErrorBody),
        (status = 404, description = "No profile, or not on your care team", body = common::ErrorBody),
        (status = 503, description = "The PHI vault is unavailable", body = common::ErrorBody),
    ))]
#[get("/caseworker/beneficiaries/<beneficiary_id>/profile")]
pub async fn read_beneficiary_profile(
    user: AuthUser,
    beneficiary_id: Uuid,
    meta: RequestMeta,
    pool: &State<PgPool>,
    vault: &State<PhiVaultClient>,
) -> Result<Json<BeneficiaryProfile>, ApiError> {
    let record: Option<Uuid> = sqlx::query_scalar(
        "SELECT identity_record_id FROM users WHERE id = $1 AND user_type = 'beneficiary' AND deleted_at IS NULL",
    )
    .bind(beneficiary_id)
    .fetch_optional(pool.inner())
    .await?
    .flatten();
    let record = record.ok_or(ApiError::NotFound)?;
    let ctx = CallContext {
        sub: user.user_id.to_string(),
        role: "caseworker".into(),
        purpose: "treatment".into(),
        request_id: meta.request_id.clone(),
    };
    let found = vault.read_record(&ctx, record).await.map_err(|e| e.into_api_error())?;
    serde_json::from_value(found.content).map(Json).map_err(ApiError::internal)
}

pub fn routes() -> Vec<Route> {
    routes![assign_care_team, read_beneficiary_profile]
}
