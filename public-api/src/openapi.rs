//! The OpenAPI 3 document, generated from the route annotations and served at
//! `/api/v1/openapi.json`. `public-api/openapi.json` is its committed snapshot: a test fails when
//! they differ, so every change to the contract shows in review.

use rocket::http::ContentType;
use rocket::{get, routes, Route};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::{Content, RefOr};
use utoipa::{Modify, OpenApi};

use common::ErrorBody;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "SecondWind public API",
        version = "1",
        description = "The API the SecondWind frontend calls. Every error answers with one body: \
            `{\"error\":{\"code\",\"message\",\"request_id\"}}`. Every response carries `x-request-id`."
    ),
    paths(
        common::ops::health, common::ops::status, common::ops::metrics, crate::system::ready, openapi_json,
        crate::auth::routes::dev_login, crate::auth::routes::refresh, crate::auth::routes::token_refresh, crate::auth::routes::logout,
        crate::auth::oidc::routes::start, crate::auth::oidc::routes::callback, crate::auth::oidc::routes::form_callback, crate::auth::oidc::device_routes::device_start, crate::auth::oidc::device_routes::device_token,
        crate::users::routes::me, crate::users::routes::update_me, crate::users::routes::delete_me, crate::users::routes::my_sessions,
        crate::users::routes::end_session, crate::beneficiaries::get_profile, crate::beneficiaries::put_profile,
        crate::staff_routes::assign_care_team, crate::staff_routes::read_beneficiary_profile, crate::staff_routes::partner_read_profile,
        crate::staff_routes::break_glass, crate::staff_routes::phi_access_log, crate::staff_routes::review_access, crate::staff_routes::erase_phi,
        crate::consents::options, crate::consents::form, crate::consents::recipients, crate::consents::list,
        crate::consents::read, crate::consents::sign, crate::consents::revoke, crate::consents::staff_recipients,
        crate::consents::add_recipient, crate::consents::retire_recipient, crate::consents::consent_event, crate::beneficiaries::my_disclosures,
        crate::staff_routes::compliance_disclosures, crate::staff_routes::emergency_disclosure,
        crate::applications::submit, crate::applications::list_mine, crate::applications::read_mine,
        crate::applications::update_mine, crate::applications::queue, crate::applications::read_for_staff, crate::applications::read_for_caseworker,
        crate::applications::assign, crate::applications::change_status, crate::notifications::routes::list,
        crate::notifications::routes::mark_read, crate::insurance::submit, crate::insurance::mine, crate::insurance::queue,
        crate::insurance::read_for_caseworker, crate::insurance::decision, crate::applications::dashboard,
        crate::live::stream, crate::documents::routes::upload, crate::documents::routes::list_mine, crate::documents::routes::download_mine,
        crate::documents::routes::delete_mine, crate::documents::routes::list_for_caseworker, crate::documents::routes::download_for_caseworker,
        crate::notifications::routes::preferences, crate::notifications::routes::set_preferences, crate::staff::role_change, crate::staff::user_sessions, crate::staff::revoke_sessions, crate::compliance::audit_log, crate::compliance::verify, crate::compliance::verify_all, crate::compliance::consent_decisions, crate::compliance::beneficiary_consents, crate::compliance::consent_by_id,
    ),
    components(schemas(ErrorBody)),
    modifiers(&CommonErrors, &BearerAuth),
    tags(
        (name = "operations", description = "Health, status, metrics, readiness and this document"),
        (name = "auth", description = "Sign-in, token refresh and sign-out"),
        (name = "users", description = "The signed-in user's account and sessions"),
        (name = "beneficiaries", description = "Beneficiary data held in the PHI vault"),
        (name = "consents", description = "42 CFR Part 2 consents: forms, signing, revocation, the recipient directory"),
        (name = "applications", description = "A beneficiary's applications for help; their details are kept in the PHI vault"),
        (name = "notifications", description = "What changed for the signed-in user (never PHI)"),
        (name = "staff", description = "Caseworker and admin work"),
        (name = "partners", description = "Partner recovery residences: reads under the beneficiary's consent"),
    )
)]
pub struct ApiDoc;

/// Adds the errors any route can answer — 429 (rate limits, with `Retry-After`) and 500 — to
/// every operation, and to every operation with a JSON body the answers of `Body` (400, 413,
/// 415, 422), in the one error body. A route's own description of a status wins.
struct CommonErrors;

impl Modify for CommonErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let error_ref = || Content::new(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name("ErrorBody"))));
        for item in openapi.paths.paths.values_mut() {
            for op in
                [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch].into_iter().flatten()
            {
                op.responses.responses.entry("429".into()).or_insert_with(|| {
                    ResponseBuilder::new()
                        .description("Rate limit reached; `Retry-After` says how many seconds to wait")
                        .content("application/json", error_ref())
                        .into()
                });
                let json_body =
                    matches!(&op.request_body, Some(RefOr::T(b)) if b.content.contains_key("application/json"));
                if json_body {
                    // What `common::json::Body` answers before the handler runs.
                    for (status, description) in [
                        ("400", "Malformed JSON"),
                        ("413", "Body larger than the server's JSON limit"),
                        ("415", "Content-Type is not application/json"),
                        ("422", "Unknown or invalid fields, each named"),
                    ] {
                        op.responses.responses.entry(status.into()).or_insert_with(|| {
                            ResponseBuilder::new()
                                .description(description)
                                .content("application/json", error_ref())
                                .into()
                        });
                    }
                }
                op.responses.responses.entry("500".into()).or_insert_with(|| {
                    ResponseBuilder::new()
                        .description("Internal error; the body says only \"internal error\" and the request id")
                        .content("application/json", error_ref())
                        .into()
                });
            }
        }
    }
}

/// Access tokens: `Authorization: Bearer <JWT>`.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
}

/// The document as served.
pub fn document() -> String {
    ApiDoc::openapi().to_pretty_json().unwrap_or_else(|_| "{}".to_owned())
}

/// This OpenAPI document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI 3 document", content_type = "application/json")))]
#[get("/openapi.json")]
pub fn openapi_json() -> (ContentType, String) {
    (ContentType::JSON, document())
}

pub fn routes() -> Vec<Route> {
    routes![openapi_json]
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// The committed snapshot matches the code. Regenerate it with
    /// `UPDATE_OPENAPI=1 cargo nextest run -p public-api` and review the diff.
    #[test]
    fn openapi_snapshot_is_current() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
        let current = super::document() + "\n";
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            std::fs::write(&path, &current).expect("write snapshot");
            return;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == current,
            "public-api/openapi.json is out of date: run `UPDATE_OPENAPI=1 cargo nextest run -p public-api` and review the diff"
        );
    }
}
