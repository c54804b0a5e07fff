//! The care team's route: an admin assigns a caseworker to a subject.

use rocket::http::Status;
use rocket::{put, routes, Route, State};
use sqlx::PgPool;
use uuid::Uuid;

use common::assertion::InternalCall;
use common::ApiError;

use super::assign::assign_caseworker;
use super::rules;
use crate::access_log::{access, log_alone};
use crate::records::Vault;

/// Assigns a caseworker to a subject's care team. Only an admin (as asserted by public-api,
/// which checked the caller's role) may; the assignment is logged.
#[put("/internal/v1/care-team/<caseworker>/<subject>")]
async fn assign(
    call: InternalCall,
    caseworker: Uuid,
    subject: Uuid,
    pool: &State<PgPool>,
    vault: &State<Vault>,
) -> Result<Status, ApiError> {
    let claims = &call.0;
    let decision = rules::assigning(claims);
    if !decision.permitted {
        log_alone(pool, &access(claims, Some(subject), None, rules::ASSIGN, &decision)).await?;
        return Err(ApiError::Forbidden);
    }
    let assigned_by = Uuid::parse_str(&claims.sub).map_err(|_| ApiError::Forbidden)?;
    assign_caseworker(pool, vault, claims, (caseworker, subject, assigned_by), &decision).await?;
    Ok(Status::NoContent)
}

pub fn routes() -> Vec<Route> {
    routes![assign]
}
