//! Consents (42 CFR §2.31) through the public API: a beneficiary reads the forms, signs a
//! consent naming a recipient from the directory (or outside it, or a class of recipients on the
//! TPO form), lists and reads theirs, and revokes one; an admin keeps the recipient directory.
//! public-api stores none of it: each request goes to the consent service as the signed-in
//! person (their delegation token rides along), which checks the subject is the caller and
//! keeps the record. This trail notes each signature, revocation and directory change.

use rocket::http::Status;
use rocket::serde::json::Json;
use rocket::{delete, get, post, routes, Route, State};
use sqlx::PgPool;
use uuid::Uuid;

use common::client::{ClientError, ConsentClient};
use common::consents::{
    ConsentDetail, ConsentOptions, ConsentPage, ConsentRequest, ConsentView, DirectoryEntry, DirectoryPage,
    ExpiryEventRecorded, FormText, NewDirectoryEntry, NewExpiryEvent, RevokeConsent, RevokeRequest, SignConsent,
};
use common::json::{Body, IdempotencyKey};
use common::ApiError;

use crate::audit::{self, Outcome};
use crate::auth::{Admin, Beneficiary, Caseworker};
use crate::meta::RequestMeta;

/// The address a signature came from, as this service saw it.
fn signed_from(meta: &RequestMeta) -> String {
    meta.ip.map(|ip| ip.to_string()).unwrap_or_else(|| "unknown".into())
}

/// The forms offered for signing and every value a consent may hold.
#[utoipa::path(get, path = "/api/v1/consent-options", tag = "consents", security(("bearer" = [])),
    responses(
        (status = 200, description = "Forms, categories, purposes, classes, expiry events", body = ConsentOptions),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not a beneficiary", body = common::ErrorBody),
        (status = 503, description = "The consent service is unavailable", body = common::ErrorBody),
    ))]
#[get("/consent-options")]
pub async fn options(
    user: Beneficiary,
    meta: RequestMeta,
    consent: &State<ConsentClient>,
) -> Result<Json<ConsentOptions>, ApiError> {
    consent.consent_options(&user.call(&meta, "self_service")).await.map(Json).map_err(ClientError::into_api_error)
}

/// A consent form's exact text and its SHA-256, to show before signing.
#[utoipa::path(get, path = "/api/v1/consent-forms/{version}", tag = "consents", security(("bearer" = [])),
    params(("version" = String, Path)),
    responses(
        (status = 200, description = "The form", body = FormText),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not a beneficiary", body = common::ErrorBody),
        (status = 404, description = "No such form", body = common::ErrorBody),
        (status = 503, description = "The consent service is unavailable", body = common::ErrorBody),
    ))]
#[get("/consent-forms/<version>")]
pub async fn form(
    user: Beneficiary,
    version: &str,
    meta: RequestMeta,
    consent: &State<ConsentClient>,
) -> Result<Json<FormText>, ApiError> {
    consent
        .consent_form(&user.call(&meta, "self_service"), version)
        .await
        .map(Json)
        .map_err(ClientError::into_api_error)
}

fn directory_query(
    after: Option<&str>,
    limit: Option<&str>,
    include_retired: Option<&str>,
) -> Result<(Option<i64>, Option<i64>, bool), ApiError> {
    let after = common::json::query_param("after", after, "an integer")?;
    let limit: Option<i64> = common::json::query_param("limit", limit, "an integer from 1 to 100")?;
    if limit.is_some_and(|l| !(1..=100).contains(&l)) {
        return Err(ApiError::Unprocessable("limit: an integer from 1 to 100".into()));
    }
    let retired = common::json::query_param("include_retired", include_retired, "true or false")?;
    Ok((after, limit, retired.unwrap_or(false)))
}

/// The recipient directory: partner residences and insurers a consent may name.
#[utoipa::path(get, path = "/api/v1/consent-recipients", tag = "consents", security(("bearer" = [])),
    params(("after" = Option<i64>, Query, description = "The previous page's `next_after`"),
           ("limit" = Option<i64>, Query, description = "1 to 100; 50 when absent")),
    responses(
        (status = 200, description = "A page of the directory", body = DirectoryPage),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not a beneficiary", body = common::ErrorBody),
        (status = 422, description = "A malformed filter, named", body = common::ErrorBody),
        (status = 503, description = "The consent service is unavailable", body = common::ErrorBody),
    ))]
#[get("/consent-recipients?<after>&<limit>")]
pub async fn recipients(
    user: Beneficiary,
    after: Option<&str>,
    limit: Option<&str>,
    meta: RequestMeta,
    consent: &State<ConsentClient>,
) -> Result<Json<DirectoryPage>, ApiError> {
    let (after, limit, _) = directory_query(after, limit, None)?;
    consent
        .recipients(&user.call(&meta, "self_service"), after, limit, false)
        .await
        .map(Json)
        .map_err(ClientError::into_api_error)
}

/// My consents, oldest first, optionally in one state.
#[utoipa::path(get, path = "/api/v1/beneficiaries/me/consents", tag = "consents", security(("bearer" = [])),
    params(("state" = Option<String>, Query, description = "`signed`, `revoked` or `expired`"),
           ("after" = Option<i64>, Query, description = "The previous page's `next_after`"),
           ("limit" = Option<i64>, Query, description = "1 to 100; 50 when absent")),
    responses(
        (status = 200, description = "A page of consents", body = ConsentPage),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not a beneficiary", body = common::ErrorBody),
        (status = 422, description = "A malformed filter, named", body = common::ErrorBody),
        (status = 503, description = "The consent service is unavailable", body = common::ErrorBody),
    ))]
#[get("/beneficiaries/me/consents?<state>&<after>&<limit>")]
pub async fn list(
    user: Beneficiary,
    state: Option<&str>,
    after: Option<&str>,
    limit: Option<&str>,
    meta: RequestMeta,
    consent: &State<ConsentClient>,
) -> Result<Json<ConsentPage>, ApiError> {
    let query = common::consents::parse_query(state, after, limit)?;
    let ctx = user.call(&meta, "self_service");
    consent.consents(&ctx, user.user_id(), &query).await.map(Json).map_err(ClientError::into_api_error)
}

/// One of my consents, with the full text of the form I signed.
#[utoipa::path(get, path = "/api/v1/beneficiaries/me/consents/{id}", tag = "consents", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "The consent and its form text", body = ConsentDetail),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not a beneficiary", body = common::ErrorBody),
        (status = 404, description = "No such consent of mine", body = common::ErrorBody),
        (status = 503, description = "The consent service is unavailable", body = common::ErrorBody),
    ))]
#[get("/beneficiaries/me/consents/<id>")]
pub async fn read(
    user: Beneficiary,
    id: Uuid,
    meta: RequestMeta,
    consent: &State<ConsentClient>,
) -> Result<Json<ConsentDetail>, ApiError> {
    consent
        .consent(&user.call(&meta, "self_service"), user.user_id(), id)
        .await
        .map(Json)
        .map_err(ClientError::into_api_error)
}

/// Signs a consent. The form's SHA-256 from `GET /consent-forms/{version}` proves which text was
/// read; the recipient's details are copied into the consent as they are now. Send an
/// `Idempotency-Key` to make retries safe: a repeat with the same key and body answers 200 with
/// the consent the first request signed, and signs nothing more.
#[utoipa::path(post, path = "/api/v1/beneficiaries/me/consents", tag = "consents", security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header,
        description = "1 to 255 visible ASCII characters, new for each consent (a UUID will do); kept per person")),
    request_body = ConsentRequest,
    responses(
        (status = 200, description = "A repeat of an earlier request under the same Idempotency-Key: the consent it signed", body = ConsentDetail),
        (status = 201, description = "Signed", body = ConsentDetail),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not a beneficiary", body = common::ErrorBody),
        (status = 409, description = "The form text signed is not the form on file", body = common::ErrorBody),
        (status = 422, description = "An element missing or invalid (unknown form, category, purpose, recipient; expiry in the past; no signature), named; or an Idempotency-Key malformed or already used for a different consent", body = common::ErrorBody),
        (status = 503, description = "The consent service is unavailable; nothing was signed", body = common::ErrorBody),
    ))]
#[post("/beneficiaries/me/consents", data = "<body>")]
pub async fn sign(
    user: Beneficiary,
    key: IdempotencyKey,
    body: Body<ConsentRequest>,
    meta: RequestMeta,
    pool: &State<PgPool>,
    consent: &State<ConsentClient>,
) -> Result<(Status, Json<ConsentDetail>), ApiError> {
    let request = SignConsent { consent: body.into_inner(), signed_from: signed_from(&meta), idempotency_key: key.0 };
    let ctx = user.call(&meta, "self_service");
    let signed = consent.sign_consent(&ctx, user.user_id(), &request).await.map_err(ClientError::into_api_error)?;
    let (action, status) =
        if signed.repeated { ("consent.sign.repeated", Status::Ok) } else { ("consent.sign", Status::Created) };
    let resource = Some(("consent", signed.value.consent.id.to_string()));
    audit::record_alone(pool, &meta.event(Some(user.user_id()), action, resource, Outcome::Success)).await?;
    Ok((status, Json(signed.value)))
}

/// Revokes one of my consents, signed like a consent. Every later disclosure decision sees it;
/// what was disclosed before stays lawful and stays in my accounting.
#[utoipa::path(post, path = "/api/v1/beneficiaries/me/consents/{id}/revocation", tag = "consents", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = RevokeRequest,
    responses(
        (status = 200, description = "Revoked", body = ConsentView),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not a beneficiary", body = common::ErrorBody),
        (status = 404, description = "No such consent of mine", body = common::ErrorBody),
        (status = 409, description = "Already revoked, or expired", body = common::ErrorBody),
        (status = 422, description = "No usable signature or reason", body = common::ErrorBody),
        (status = 503, description = "The consent service is unavailable; nothing was revoked", body = common::ErrorBody),
    ))]
#[post("/beneficiaries/me/consents/<id>/revocation", data = "<body>")]
pub async fn revoke(
    user: Beneficiary,
    id: Uuid,
    body: Body<RevokeRequest>,
    meta: RequestMeta,
    pool: &State<PgPool>,
    consent: &State<ConsentClient>,
) -> Result<Json<ConsentView>, ApiError> {
    let request = RevokeConsent { revocation: body.into_inner(), signed_from: signed_from(&meta) };
    let ctx = user.call(&meta, "self_service");
    let revoked =
        consent.revoke_consent(&ctx, user.user_id(), id, &request).await.map_err(ClientError::into_api_error)?;
    let resource = Some(("consent", id.to_string()));
    audit::record_alone(pool, &meta.event(Some(user.user_id()), "consent.revoke", resource, Outcome::Success)).await?;
    Ok(Json(revoked))
}

/// The recipient directory, for admins (retired entries too, when asked).
#[utoipa::path(get, path = "/api/v1/staff/consent-recipients", tag = "staff", security(("bearer" = [])),
    params(("after" = Option<i64>, Query, description = "The previous page's `next_after`"),
           ("limit" = Option<i64>, Query, description = "1 to 100; 50 when absent"),
           ("include_retired" = Option<bool>, Query, description = "Retired entries too")),
    responses(
        (status = 200, description = "A page of the directory", body = DirectoryPage),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not an admin", body = common::ErrorBody),
        (status = 422, description = "A malformed filter, named", body = common::ErrorBody),
        (status = 503, description = "The consent service is unavailable", body = common::ErrorBody),
    ))]
#[get("/staff/consent-recipients?<after>&<limit>&<include_retired>")]
pub async fn staff_recipients(
    admin: Admin,
    after: Option<&str>,
    limit: Option<&str>,
    include_retired: Option<&str>,
    meta: RequestMeta,
    consent: &State<ConsentClient>,
) -> Result<Json<DirectoryPage>, ApiError> {
    let (after, limit, retired) = directory_query(after, limit, include_retired)?;
    let ctx = admin.call(&meta, "recipient_directory");
    consent.recipients(&ctx, after, limit, retired).await.map(Json).map_err(ClientError::into_api_error)
}

/// Adds a partner residence or insurer to the directory. A residence may name the partner
/// account that acts for it; that link is permanent.
#[utoipa::path(post, path = "/api/v1/staff/consent-recipients", tag = "staff", security(("bearer" = [])),
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
        let partner: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1 AND user_type = 'partner' AND deleted_at IS NULL)",
        )
        .bind(account)
        .fetch_one(pool.inner())
        .await?;
        if !partner {
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
#[utoipa::path(delete, path = "/api/v1/staff/consent-recipients/{id}", tag = "staff", security(("bearer" = [])),
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
#[utoipa::path(post, path = "/api/v1/staff/beneficiaries/{beneficiary_id}/consent-events", tag = "staff",
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
    let beneficiary: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1 AND user_type = 'beneficiary' AND deleted_at IS NULL)",
    )
    .bind(beneficiary_id)
    .fetch_one(pool.inner())
    .await?;
    if !beneficiary {
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
    routes![
        options,
        form,
        recipients,
        list,
        read,
        sign,
        revoke,
        staff_recipients,
        add_recipient,
        retire_recipient,
        consent_event
    ]
}
