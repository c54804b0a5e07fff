//! The staff's consent routes: an admin keeps the recipient directory (partner residences and
//! insurers a consent may name); a caseworker records the events that end a beneficiary's
//! consents. Each change is asked of the consent service as the staff member and noted in this
//! trail.

use rocket::http::Status;
use rocket::serde::json::Json;
use rocket::{delete, get, post, routes, Route, State};
use sqlx::PgPool;
use uuid::Uuid;

use common::client::{ClientError, ConsentClient};
use common::consents::{DirectoryEntry, DirectoryPage, ExpiryEventRecorded, NewDirectoryEntry, NewExpiryEvent};
use common::json::Body;
use common::ApiError;

use super::queries;
use super::rules::DirectoryFilter;
use crate::audit::{self, Outcome};
use crate::auth::{Admin, Caseworker};
use crate::meta::RequestMeta;

/// The recipient directory, for admins (retired entries too, when asked).
#[utoipa::path(get, operation_id = "consents_staff_recipients", path = "/api/v1/staff/consent-recipients", tag = "staff", security(("bearer" = [])),
    params(("after" = Option<i64>, Query, description = "The previous page's `next_after`"),
           ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "1 to 100; 50 when absent"),
           ("include_retired" = Option<bool>, Query, description = "Retired entries too")),
    responses(
        (status = 200, description = "A page of the directory", body = DirectoryPage),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not an admin", body = common::ErrorBody),
        (status = 422, description = "A malformed filter, named", body = common::ErrorBody),
        (status = 503, description = "The consent service is unavailable", body = common::ErrorBody),
    ))]
#[get("/staff/consent-recipients?<filter..>")]
pub async fn staff_recipients(
    admin: Admin,
    filter: DirectoryFilter<'_>,
    meta: RequestMeta,
    consent: &State<ConsentClient>,
) -> Result<Json<DirectoryPage>, ApiError> {
    let page = filter.parse()?;
    let ctx = admin.call(&meta, "recipient_directory");
    consent
        .recipients(&ctx, page.after, page.limit, page.include_retired)
        .await
        .map(Json)
        .map_err(ClientError::into_api_error)
}

/// Adds a partner residence or insurer to the directory. A residence may name the partner
/// account that acts for it; that link is permanent.
#[utoipa::path(post, operation_id = "consents_staff_add_recipient", path = "/api/v1/staff/consent-recipients", tag = "staff", security(("bearer" = [])),
    request_body = NewDirectoryEntry,
    responses(
        (status = 201, description = "Added", body = DirectoryEntry),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not an admin", body = common::ErrorBody),
        (status = 409, description = "That account already acts for another entry, or an entry of that kind in use has that name (ignoring case, spacing and compatibility forms)", body = common::ErrorBody),
        (status = 422, description = "Invalid fields, or an account that is not a partner's, named", body = common::ErrorBody),
        (status = 503, description = "The consent service is unavailable", body = common::ErrorBody),
    ))]
#[post("/staff/consent-recipients", data = "<body>")]
pub async fn add_recipient(
    admin: Admin,
    body: Body<NewDirectoryEntry>,
    meta: RequestMeta,
    pool: &State<PgPool>,
    consent: &State<ConsentClient>,
) -> Result<(Status, Json<DirectoryEntry>), ApiError> {
    let entry = body.into_inner();
    if let Some(account) = entry.account_id {
        if entry.kind != "residence" {
            return Err(ApiError::Unprocessable("account_id: only a residence is linked to a partner account".into()));
        }
        if !queries::is_partner(pool, account).await? {
            return Err(ApiError::Unprocessable("account_id: not a partner account".into()));
        }
    }
    let ctx = admin.call(&meta, "recipient_directory");
    let added = consent.add_recipient(&ctx, &entry).await.map_err(ClientError::into_api_error)?;
    let resource = Some(("consent_recipient", added.id.to_string()));
    audit::record_alone(pool, &meta.event(Some(admin.user_id()), "consent_recipient.add", resource, Outcome::Success))
        .await?;
    Ok((Status::Created, Json(added)))
}

/// Retires a directory entry: no new consent may name it; consents naming it stand.
#[utoipa::path(delete, operation_id = "consents_staff_retire_recipient", path = "/api/v1/staff/consent-recipients/{id}", tag = "staff", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "Retired", body = DirectoryEntry),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not an admin", body = common::ErrorBody),
        (status = 404, description = "No such entry", body = common::ErrorBody),
        (status = 409, description = "Already retired", body = common::ErrorBody),
        (status = 503, description = "The consent service is unavailable", body = common::ErrorBody),
    ))]
#[delete("/staff/consent-recipients/<id>")]
pub async fn retire_recipient(
    admin: Admin,
    id: Uuid,
    meta: RequestMeta,
    pool: &State<PgPool>,
    consent: &State<ConsentClient>,
) -> Result<Json<DirectoryEntry>, ApiError> {
    let ctx = admin.call(&meta, "recipient_directory");
    let retired = consent.retire_recipient(&ctx, id).await.map_err(ClientError::into_api_error)?;
    let resource = Some(("consent_recipient", id.to_string()));
    audit::record_alone(
        pool,
        &meta.event(Some(admin.user_id()), "consent_recipient.retire", resource, Outcome::Success),
    )
    .await?;
    Ok(Json(retired))
}

/// Records that an event happened for a beneficiary (caseworkers): every consent
/// of theirs waiting on that event, signed before it, ends for every later disclosure decision.
#[utoipa::path(post, operation_id = "consents_staff_record_event", path = "/api/v1/staff/beneficiaries/{beneficiary_id}/consent-events", tag = "staff",
    security(("bearer" = [])), params(("beneficiary_id" = Uuid, Path)), request_body = NewExpiryEvent,
    responses(
        (status = 201, description = "Recorded; how many consents it ended", body = ExpiryEventRecorded),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not a caseworker", body = common::ErrorBody),
        (status = 404, description = "No such beneficiary", body = common::ErrorBody),
        (status = 422, description = "An unknown event, or a time in the future", body = common::ErrorBody),
        (status = 503, description = "The consent service is unavailable; nothing was recorded", body = common::ErrorBody),
    ))]
#[post("/staff/beneficiaries/<beneficiary_id>/consent-events", data = "<body>")]
pub async fn consent_event(
    caseworker: Caseworker,
    beneficiary_id: Uuid,
    body: Body<NewExpiryEvent>,
    meta: RequestMeta,
    pool: &State<PgPool>,
    consent: &State<ConsentClient>,
) -> Result<(Status, Json<ExpiryEventRecorded>), ApiError> {
    if !queries::is_beneficiary(pool, beneficiary_id).await? {
        return Err(ApiError::NotFound);
    }
    let (ctx, actor) = (caseworker.call(&meta, "consent_administration"), caseworker.user_id());
    let recorded = consent
        .record_expiry_event(&ctx, beneficiary_id, &body.into_inner())
        .await
        .map_err(ClientError::into_api_error)?;
    let mut event =
        meta.event(Some(actor), "consent.expiry_event", Some(("user", beneficiary_id.to_string())), Outcome::Success);
    event.reason = Some(format!("{} ended {} consent(s)", recorded.event, recorded.consents_ended));
    audit::record_alone(pool, &event).await?;
    Ok((Status::Created, Json(recorded)))
}

pub fn routes() -> Vec<Route> {
    routes![staff_recipients, add_recipient, retire_recipient, consent_event]
}
