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
        crate::users::routes::end_session, crate::beneficiaries::routes::get_profile, crate::beneficiaries::routes::put_profile,
        crate::care_team::routes::assign_care_team, crate::phi_access::routes::read_beneficiary_profile, crate::phi_access::routes::partner_read_profile,
        crate::phi_access::routes::break_glass, crate::phi_access::review_routes::phi_access_log, crate::phi_access::review_routes::review_access, crate::erasure::routes::erase_phi,
        crate::consents::routes::options, crate::consents::routes::form, crate::consents::routes::recipients, crate::consents::routes::list,
        crate::consents::routes::read, crate::consents::routes::sign, crate::consents::routes::revoke, crate::consents::staff_routes::staff_recipients,
        crate::consents::staff_routes::add_recipient, crate::consents::staff_routes::retire_recipient, crate::consents::staff_routes::consent_event, crate::disclosures::routes::my_disclosures,
        crate::disclosures::routes::compliance_disclosures, crate::phi_access::routes::emergency_disclosure,
        crate::applications::routes::submit, crate::applications::routes::list_mine, crate::applications::routes::read_mine,
        crate::applications::routes::update_mine, crate::applications::review::queue, crate::applications::review::read_for_staff, crate::applications::review::read_for_caseworker,
        crate::applications::review::assign, crate::applications::review::change_status, crate::notifications::routes::list,
        crate::notifications::routes::mark_read, crate::insurance::routes::submit, crate::insurance::routes::mine, crate::insurance::routes::queue,
        crate::insurance::routes::read_for_caseworker, crate::insurance::routes::decision, crate::dashboard::routes::dashboard,
        crate::live::stream, crate::documents::routes::upload, crate::documents::routes::list_mine, crate::documents::routes::download_mine,
        crate::documents::routes::delete_mine, crate::documents::routes::list_for_caseworker, crate::documents::routes::download_for_caseworker,
        crate::notifications::routes::preferences, crate::notifications::routes::set_preferences, crate::roles::routes::role_change, crate::staff_sessions::routes::user_sessions, crate::staff_sessions::routes::revoke_sessions, crate::audit::routes::audit_log, crate::audit::routes::verify, crate::audit::routes::verify_all, crate::consents::compliance_routes::consent_decisions, crate::consents::compliance_routes::beneficiary_consents, crate::consents::compliance_routes::consent_by_id,
    ),
    // The enums only parameters use: a parameter's schema refers to them, nothing collects them.
    components(schemas(
        ErrorBody, crate::phi_access::routes::PartnerPurpose, common::applications::ApplicationStatus,
        common::applications::ApplicationKind, common::insurance::InsuranceStatus, common::consents::ConsentState,
        common::compliance::AuditOutcome, common::compliance::AccessDecision,
    )),
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
#[utoipa::path(get, operation_id = "operations_openapi", path = "/api/v1/openapi.json", tag = "operations",
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
    use std::collections::BTreeMap;
    use std::path::Path;

    use serde_json::Value;

    const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

    /// The served document, parsed.
    fn served() -> Value {
        serde_json::from_str(&super::document()).expect("the document is JSON")
    }

    /// Every operation as (method, path, operation).
    fn operations(doc: &Value) -> Vec<(String, String, Value)> {
        let mut all = Vec::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in METHODS {
                if let Some(op) = item.get(method) {
                    all.push((method.to_owned(), path.clone(), op.clone()));
                }
            }
        }
        all
    }

    /// A generated client names one function per operation: every operation has an
    /// operationId, and no two share one.
    #[test]
    fn operation_ids_are_unique() {
        let doc = served();
        let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (method, path, op) in operations(&doc) {
            let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            seen.entry(id.to_owned()).or_default().push(format!("{method} {path}"));
        }
        let repeated: Vec<_> = seen.iter().filter(|(_, ops)| ops.len() > 1).collect();
        assert!(repeated.is_empty(), "operationIds used more than once: {repeated:?}");
        assert!(seen.len() > 70, "only {} operations found", seen.len());
    }

    /// Every schema object in `value`, with where it is, and each parameter's description
    /// beside its schema.
    fn schemas<'a>(value: &'a Value, at: String, found: &mut Vec<(String, &'a Value, Option<&'a str>)>) {
        match value {
            Value::Object(map) => {
                if let (Some(schema), Some(_)) = (map.get("schema"), map.get("in")) {
                    found.push((at.clone(), schema, map.get("description").and_then(Value::as_str)));
                }
                if map.get("type").is_some() || map.contains_key("$ref") {
                    found.push((at.clone(), value, None));
                }
                for (key, inner) in map {
                    schemas(inner, format!("{at}/{key}"), found);
                }
            }
            Value::Array(items) => {
                for (i, inner) in items.iter().enumerate() {
                    schemas(inner, format!("{at}/{i}"), found);
                }
            }
            _ => {}
        }
    }

    /// Whether a description closes a list of backticked values: "`a` or `b`",
    /// "`a`, `b` or `c`" (an open list, "e.g. `a`, `b`, …", is not a fixed set).
    fn lists_fixed_values(description: &str) -> bool {
        let open = ["e.g.", "...", "…", "such as"].iter().any(|m| description.contains(m));
        let (mut rest, mut run, mut closed_by_or) = (description, 0, false);
        while let Some(start) = rest.find('`') {
            let Some(len) = rest[start + 1..].find('`') else { break };
            let after = &rest[start + 1 + len + 1..];
            run += 1;
            if after.starts_with(", `") || after.starts_with(" or `") || after.starts_with(", or `") {
                closed_by_or = !after.starts_with(", `");
                rest = after;
                continue;
            }
            if run >= 2 && closed_by_or && !open {
                return true;
            }
            (run, closed_by_or, rest) = (0, false, after);
        }
        false
    }

    /// A schema that can be only some strings says so: a string property or parameter whose
    /// description lists its allowed values in backticks has an `enum` (or refers to one).
    #[test]
    fn listed_values_are_enums() {
        let doc = served();
        let mut found = Vec::new();
        schemas(&doc, String::new(), &mut found);
        let resolve = |schema: &Value| -> Value {
            match schema["$ref"].as_str().and_then(|r| r.strip_prefix("#/components/schemas/")) {
                Some(name) => doc["components"]["schemas"][name].clone(),
                None => schema.clone(),
            }
        };
        let mut prose_only = Vec::new();
        for (at, schema, param_description) in found {
            let Some(description) = param_description.or_else(|| schema["description"].as_str()) else { continue };
            // A pattern already says which characters may appear (a phone number's `+`, `-`, ...).
            if !lists_fixed_values(description) || schema.get("pattern").is_some() {
                continue;
            }
            let options: Vec<Value> = match schema["oneOf"].as_array() {
                Some(options) => options.iter().map(&resolve).collect(),
                None => vec![resolve(schema)],
            };
            let is_string = options
                .iter()
                .any(|o| o["type"] == "string" || o["type"].as_array().is_some_and(|t| t.contains(&"string".into())));
            let has_enum = options.iter().any(|o| o.get("enum").is_some());
            if is_string && !has_enum {
                prose_only.push(format!("{at}: {description}"));
            }
        }
        assert!(prose_only.is_empty(), "values listed only in prose:\n{}", prose_only.join("\n"));
        assert!(lists_fixed_values("`rent`, `transport`, `tech` or `other`."));
        assert!(!lists_fixed_values("e.g. `application.status`, `application.assigned`, `application.updated`."));
        assert!(!lists_fixed_values("The `code` the provider returned."));
        assert!(!lists_fixed_values("`me`, `none`, or a caseworker's id"));
    }

    /// Every `$ref` names a schema the document holds.
    #[test]
    fn every_reference_resolves() {
        let doc = served();
        let text = doc.to_string();
        for piece in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = piece.split('"').next().unwrap_or_default();
            assert!(doc["components"]["schemas"].get(name).is_some(), "no schema {name}");
        }
    }

    /// The constraints the handlers enforce are in the schema (a sample of each kind).
    #[test]
    fn enforced_constraints_are_in_the_schema() {
        let doc = served();
        let schemas = &doc["components"]["schemas"];
        let amount = &schemas["NewApplication"]["properties"]["amount_cents"];
        assert_eq!((amount["minimum"].as_i64(), amount["maximum"].as_i64()), (Some(1), Some(1_000_000)));
        let description = &schemas["ApplicationDetails"]["properties"]["description"];
        assert_eq!((description["minLength"].as_i64(), description["maxLength"].as_i64()), (Some(10), Some(5000)));
        assert_eq!(schemas["BeneficiaryProfile"]["properties"]["date_of_birth"]["format"], "date");
        assert!(schemas["InsuranceDetails"]["properties"]["member_id"]["pattern"].is_string());
        let params = |path: &str| doc["paths"][path]["get"]["parameters"].as_array().cloned().unwrap_or_default();
        let param = |path: &str, name: &str| {
            params(path).into_iter().find(|p| p["name"] == name).unwrap_or_else(|| panic!("{path} has no {name}"))
        };
        for (path, max) in
            [("/api/v1/applications", 100), ("/api/v1/notifications", 100), ("/api/v1/compliance/audit-log", 500)]
        {
            let limit = param(path, "limit");
            assert_eq!(
                (limit["schema"]["minimum"].as_i64(), limit["schema"]["maximum"].as_i64()),
                (Some(1), Some(max)),
                "{path}"
            );
        }
        assert_eq!(param("/api/v1/staff/applications", "from")["schema"]["format"], "date");
    }

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
