//! `/beneficiaries/me/profile`: the beneficiary reads and writes their own identity profile.

use rocket::serde::json::Json;
use rocket::{get, put, routes, Route, State};
use sqlx::PgPool;

use common::client::{NewRecord, PhiVaultClient, RecordContent};
use common::json::Body;
use common::ApiError;

use super::queries;
use super::rules::{validate, BeneficiaryProfile};
use crate::audit::{self, Outcome};
use crate::auth::Beneficiary;
use crate::meta::RequestMeta;

/// The signed-in beneficiary's identity profile (PHI, held by the PHI vault).
#[utoipa::path(get, operation_id = "profile_read_mine", path = "/api/v1/beneficiaries/me/profile", tag = "beneficiaries", security(("bearer" = [])),
    responses(
        (status = 200, description = "The profile", body = BeneficiaryProfile),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not a beneficiary", body = common::ErrorBody),
        (status = 404, description = "No profile yet", body = common::ErrorBody),
        (status = 503, description = "The PHI vault is unavailable", body = common::ErrorBody),
    ))]
#[get("/beneficiaries/me/profile")]
pub async fn get_profile(
    user: Beneficiary,
    meta: RequestMeta,
    vault: &State<PhiVaultClient>,
) -> Result<Json<BeneficiaryProfile>, ApiError> {
    let id = user.account().identity_record_id.ok_or(ApiError::NotFound)?;
    let record = vault.read_record(&user.call(&meta, "self_service"), id).await.map_err(|e| e.into_api_error())?;
    BeneficiaryProfile::from_record(record.content).map(Json)
}

/// Creates or replaces the profile. The contents go to the PHI vault; only its record id stays here.
#[utoipa::path(put, operation_id = "profile_replace_mine", path = "/api/v1/beneficiaries/me/profile", tag = "beneficiaries", security(("bearer" = [])), request_body = BeneficiaryProfile,
    responses(
        (status = 200, description = "The stored profile", body = BeneficiaryProfile),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not a beneficiary", body = common::ErrorBody),
        (status = 409, description = "A first profile saved at the same time from elsewhere was kept; read it and try again", body = common::ErrorBody),
        (status = 413, description = "Too large", body = common::ErrorBody),
        (status = 422, description = "Invalid fields (each named)", body = common::ErrorBody),
        (status = 503, description = "The PHI vault is unavailable; nothing was stored", body = common::ErrorBody),
    ))]
#[put("/beneficiaries/me/profile", data = "<body>")]
pub async fn put_profile(
    user: Beneficiary,
    meta: RequestMeta,
    body: Body<BeneficiaryProfile>,
    pool: &State<PgPool>,
    vault: &State<PhiVaultClient>,
) -> Result<Json<BeneficiaryProfile>, ApiError> {
    let profile = body.into_inner();
    validate(&profile)?;
    let ctx = user.call(&meta, "self_service");
    let content = serde_json::to_value(&profile).map_err(ApiError::internal)?;
    let resource = Some(("user", user.user_id().to_string()));
    let event = meta.event(Some(user.user_id()), "beneficiary.profile_update", resource, Outcome::Success);
    match user.account().identity_record_id {
        Some(id) => {
            vault.replace_record(&ctx, id, &RecordContent { content }).await.map_err(|e| e.into_api_error())?;
            // The change is in the vault alone: the audit row is this database's only write.
            audit::record_alone(pool, &event).await?;
        }
        None => {
            let new = NewRecord { subject_id: user.user_id(), category: "identity".into(), content, expires_at: None };
            let created = vault.create_record(&ctx, &new).await.map_err(|e| e.into_api_error())?;
            // The link and its audit row in one transaction. Run again on a lost connection: a
            // first run that did commit is found, not refused.
            let linked = common::db::retry_if_lost(|| async {
                let mut tx = pool.begin().await?;
                if !queries::link_identity_record(&mut tx, user.user_id(), created.record_id).await? {
                    return Ok(false);
                }
                audit::record(&mut tx, &event).await?;
                tx.commit().await?;
                Ok(true)
            })
            .await;
            let linked = match linked {
                Ok(linked) => linked,
                Err(e) => {
                    // Neither link nor audit row was written (unless a commit that reported
                    // failure did land): a record the account is seen not to point to is
                    // deleted, not left behind. Unseen, it is kept: it may be the profile.
                    // Read under the row's lock, so a link still committing is waited for.
                    match queries::identity_record_locked(pool, user.user_id()).await {
                        Ok(pointed) if pointed != Some(created.record_id) => {
                            if let Err(gone) = vault.delete_record(&ctx, created.record_id).await {
                                tracing::warn!(request_id = %meta.request_id, record = %created.record_id, error = %gone,
                                    "an unlinked profile record could not be deleted from the vault");
                            }
                        }
                        Ok(_) => {}
                        Err(read) => tracing::warn!(request_id = %meta.request_id, error = %read,
                            "a new profile record may be left unlinked in the vault"),
                    }
                    return Err(e.into());
                }
            };
            if !linked {
                // A concurrent PUT linked its record first: do not leave ours orphaned.
                let _ = vault.delete_record(&ctx, created.record_id).await;
                return Err(ApiError::Conflict("the profile changed meanwhile; read it and try again".into()));
            }
        }
    }
    Ok(Json(profile))
}

pub fn routes() -> Vec<Route> {
    routes![get_profile, put_profile]
}
