//! The admin's erasure route.

use rocket::http::Status;
use rocket::{delete, routes, Route, State};
use sqlx::PgPool;
use uuid::Uuid;

use common::client::{ClientError, PhiVaultClient};
use common::ApiError;

use super::{queries, rules};
use crate::audit::{self, Outcome};
use crate::auth::Admin;
use crate::meta::RequestMeta;

/// Erases a beneficiary's PHI by crypto-shredding: the vault destroys their data key (and their
/// ciphertext), so every record of theirs is gone at once; public-api clears what its own
/// database keeps that reveals their recovery (sobriety date, references to the erased records,
/// staff notes, insurance reasons, idempotency keys and request hashes, notifications) and ends
/// what cannot go on without the records (open applications and a pending insurance request are
/// rejected, by this admin). Irreversible; the reason is audited.
#[utoipa::path(delete, operation_id = "erasure_erase_phi", path = "/api/v1/staff/beneficiaries/{beneficiary_id}/phi", tag = "staff", security(("bearer" = [])),
    params(("beneficiary_id" = Uuid, Path), ("reason" = String, Query, min_length = 1, max_length = 500, description = "Why, up to 500 characters; recorded in the audit log")),
    responses(
        (status = 204, description = "Erased"),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not an admin", body = common::ErrorBody),
        (status = 404, description = "No PHI held for this beneficiary (public traces are cleared all the same)", body = common::ErrorBody),
        (status = 422, description = "No reason given", body = common::ErrorBody),
        (status = 503, description = "The PHI vault is unavailable", body = common::ErrorBody),
    ))]
#[delete("/staff/beneficiaries/<beneficiary_id>/phi?<reason>")]
pub async fn erase_phi(
    admin: Admin,
    beneficiary_id: Uuid,
    reason: Option<&str>,
    meta: RequestMeta,
    pool: &State<PgPool>,
    vault: &State<PhiVaultClient>,
) -> Result<Status, ApiError> {
    let reason = rules::checked_reason(reason)?;
    let ctx = admin.call(&meta, "erasure");
    // A vault that holds nothing (404) may mean an earlier erasure whose public half failed:
    // the public half still runs, so a retry completes it, and the answer stays 404.
    let shredded = match vault.shred_subject(&ctx, beneficiary_id).await {
        Ok(()) => true,
        Err(ClientError::Status { status: 404, .. }) => false,
        Err(e) => return Err(e.into_api_error()),
    };
    let mut tx = pool.begin().await?;
    queries::erase_public_traces(&mut tx, beneficiary_id, admin.user_id()).await?;
    let outcome = if shredded { Outcome::Success } else { Outcome::Failure };
    let mut event = meta.event(Some(admin.user_id()), "phi.erase", Some(("user", beneficiary_id.to_string())), outcome);
    event.reason = Some(reason.to_owned());
    audit::record(&mut tx, &event).await?;
    tx.commit().await?;
    if shredded {
        Ok(Status::NoContent)
    } else {
        Err(ApiError::NotFound)
    }
}

pub fn routes() -> Vec<Route> {
    routes![erase_phi]
}
