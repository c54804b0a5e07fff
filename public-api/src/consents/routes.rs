//! The beneficiary's own consents: the forms and the directory to choose from, then signing,
//! listing, reading and revoking, each as the signed-in person.

use rocket::http::Status;
use rocket::serde::json::Json;
use rocket::{get, post, routes, Route, State};
use sqlx::PgPool;
use uuid::Uuid;

use common::client::{ClientError, ConsentClient};
use common::consents::{
    ConsentDetail, ConsentOptions, ConsentPage, ConsentRequest, ConsentView, DirectoryPage, FormText, RevokeConsent,
    RevokeRequest, SignConsent,
};
use common::json::{Body, IdempotencyKey, Page};
use common::ApiError;

use super::rules::{self, ConsentFilter};
use crate::audit::{self, Outcome};
use crate::auth::Beneficiary;
use crate::meta::RequestMeta;

/// The address a signature came from, as this service saw it.
fn signed_from(meta: &RequestMeta) -> String {
    meta.ip.map(|ip| ip.to_string()).unwrap_or_else(|| "unknown".into())
}

/// The forms offered for signing and every value a consent may hold.
#[utoipa::path(get, operation_id = "consents_options", path = "/api/v1/consent-options", tag = "consents", security(("bearer" = [])),
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
#[utoipa::path(get, operation_id = "consents_form", path = "/api/v1/consent-forms/{version}", tag = "consents", security(("bearer" = [])),
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

/// The recipient directory: partner residences and insurers a consent may name.
#[utoipa::path(get, operation_id = "consents_recipients", path = "/api/v1/consent-recipients", tag = "consents", security(("bearer" = [])),
    params(("after" = Option<i64>, Query, description = "The previous page's `next_after`"),
           ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "1 to 100; 50 when absent")),
    responses(
        (status = 200, description = "A page of the directory", body = DirectoryPage),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not a beneficiary", body = common::ErrorBody),
        (status = 422, description = "A malformed filter, named", body = common::ErrorBody),
        (status = 503, description = "The consent service is unavailable", body = common::ErrorBody),
    ))]
#[get("/consent-recipients?<page..>")]
pub async fn recipients(
    user: Beneficiary,
    page: Page<'_>,
    meta: RequestMeta,
    consent: &State<ConsentClient>,
) -> Result<Json<DirectoryPage>, ApiError> {
    let page = rules::directory_query(page.after, page.limit, None)?;
    consent
        .recipients(&user.call(&meta, "self_service"), page.after, page.limit, false)
        .await
        .map(Json)
        .map_err(ClientError::into_api_error)
}

/// My consents, oldest first, optionally in one state.
#[utoipa::path(get, operation_id = "consents_list_mine", path = "/api/v1/beneficiaries/me/consents", tag = "consents", security(("bearer" = [])),
    params(("state" = Option<common::consents::ConsentState>, Query, description = "`signed`, `revoked` or `expired`"),
           ("after" = Option<i64>, Query, description = "The previous page's `next_after`"),
           ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "1 to 100; 50 when absent")),
    responses(
        (status = 200, description = "A page of consents", body = ConsentPage),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not a beneficiary", body = common::ErrorBody),
        (status = 422, description = "A malformed filter, named", body = common::ErrorBody),
        (status = 503, description = "The consent service is unavailable", body = common::ErrorBody),
    ))]
#[get("/beneficiaries/me/consents?<filter..>")]
pub async fn list(
    user: Beneficiary,
    filter: ConsentFilter<'_>,
    meta: RequestMeta,
    consent: &State<ConsentClient>,
) -> Result<Json<ConsentPage>, ApiError> {
    let query = filter.parse()?;
    let ctx = user.call(&meta, "self_service");
    consent.consents(&ctx, user.user_id(), &query).await.map(Json).map_err(ClientError::into_api_error)
}

/// One of my consents, with the full text of the form I signed.
#[utoipa::path(get, operation_id = "consents_read_mine", path = "/api/v1/beneficiaries/me/consents/{id}", tag = "consents", security(("bearer" = [])),
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
#[utoipa::path(post, operation_id = "consents_sign", path = "/api/v1/beneficiaries/me/consents", tag = "consents", security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$",
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
#[utoipa::path(post, operation_id = "consents_revoke", path = "/api/v1/beneficiaries/me/consents/{id}/revocation", tag = "consents", security(("bearer" = [])),
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

pub fn routes() -> Vec<Route> {
    routes![options, form, recipients, list, read, sign, revoke]
}
