//! The admin's role-change route. A refused attempt on roles is itself audited.

use rocket::serde::json::Json;
use rocket::{post, routes, Route, State};
use sqlx::PgPool;

use common::json::Body;
use common::ApiError;

use super::changes::change_role;
use super::rules::{RoleChange, RoleChangeRequest, RoleError};
use crate::audit::{self, Outcome};
use crate::auth::Admin;
use crate::meta::RequestMeta;

/// Grants or revokes a staff role. The acting admin is the signed-in user.
#[utoipa::path(post, operation_id = "roles_change", path = "/api/v1/staff/role-changes", tag = "staff", security(("bearer" = [])),
    request_body = RoleChangeRequest,
    responses(
        (status = 200, description = "Done (or, on a dry run, what would be done)", body = RoleChange),
        (status = 400, description = "Malformed JSON", body = common::ErrorBody),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not an admin, or the admin's own roles", body = common::ErrorBody),
        (status = 404, description = "No such user", body = common::ErrorBody),
        (status = 409, description = "It would leave no admin", body = common::ErrorBody),
        (status = 422, description = "Not a staff role, or no reason", body = common::ErrorBody),
    ))]
#[post("/staff/role-changes", data = "<body>")]
pub async fn role_change(
    admin: Admin,
    body: Body<RoleChangeRequest>,
    meta: RequestMeta,
    pool: &State<PgPool>,
) -> Result<Json<RoleChange>, ApiError> {
    match change_role(pool, admin.user_id(), &body.0, &meta).await {
        Ok(change) => Ok(Json(change)),
        Err(e) => {
            // A refused attempt on roles is itself worth an audit row (not a malformed one).
            if matches!(e, RoleError::OwnRoles | RoleError::NotAdmin | RoleError::LastAdmin) {
                let mut event = meta.event(Some(admin.user_id()), "user.role_change", None, Outcome::Denied);
                event.reason = Some(e.to_string());
                audit::record_alone(pool, &event).await?;
            }
            Err(e.into())
        }
    }
}

pub fn routes() -> Vec<Route> {
    routes![role_change]
}
