//! Every state-changing route of public-api, as `policies/roles.toml` lists them (POST, PUT,
//! PATCH, DELETE), called once by someone permitted to, with a valid request and its own
//! `x-request-id`: each leaves exactly one row in the public audit log under that request id,
//! with the action the table below expects, outcome `success`, naming the person the server
//! proved (the user of the access token, or the user a sign-in proved), and no row under any
//! other id. A route added to roles.toml without an entry in the table fails this test; so does
//! an entry the sweep below does not call.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder};
use serde_json::{json, Value};
use uuid::Uuid;

use common::db::Database;
use harness::{oidc, TestApp, ORIGIN};

/// Whom the audit row must name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Actor {
    /// The user whose access token made the request.
    Caller,
    /// The user the sign-in proved (the request carried no access token).
    SignedIn,
    /// Nobody yet: an anonymous first step of a sign-in, kept for its address and user agent.
    Nobody,
}

#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Exactly one `audit_logs` row for the request: this action, outcome `success`, naming the
    /// actor.
    Audit(&'static str, Actor),
    /// No audit row, for the reason given (the sweep checks that none is written).
    Exempt(&'static str),
}

use Actor::{Caller, Nobody, SignedIn};
use Expect::{Audit, Exempt};

/// One entry per state-changing route in roles.toml: who calls it in the sweep below (for a
/// signed-in route, the role the caller holds; for a sign-in, the kind of account it proves;
/// `anyone` for an anonymous call), and what the call must leave in the trail. The calls
/// themselves are in `every_state_changing_route_leaves_one_audit_row_naming_the_proven_actor`,
/// each naming its route.
const TABLE: &[(&str, &str, Expect)] = &[
    // Signing in, refreshing, signing out.
    ("POST /api/v1/auth/dev-login", "beneficiary", Audit("auth.login", SignedIn)),
    ("POST /api/v1/auth/refresh", "beneficiary", Audit("auth.refresh", SignedIn)),
    ("POST /api/v1/auth/token-refresh", "beneficiary", Audit("auth.token_refresh", SignedIn)),
    (
        "POST /api/v1/auth/<provider>/start",
        "anyone",
        // Nobody is proven yet and nothing is decided: it stores a single-use attempt (state,
        // nonce, PKCE verifier) that expires in ten minutes. The callback that spends it is
        // audited whatever its outcome (`auth.login`, success or failure with the reason),
        // with the address and user agent.
        Exempt("an anonymous, single-use sign-in attempt; its callback is audited"),
    ),
    ("POST /api/v1/auth/<provider>", "beneficiary", Audit("auth.login", SignedIn)),
    ("POST /api/v1/auth/<provider>/form-callback", "partner", Audit("auth.login", SignedIn)),
    ("POST /api/v1/auth/<provider>/device", "anyone", Audit("auth.device_start", Nobody)),
    ("POST /api/v1/auth/<provider>/device/token", "caseworker", Audit("auth.device_login", SignedIn)),
    ("POST /api/v1/auth/logout", "donor", Audit("auth.logout", Caller)),
    // The account.
    ("PATCH /api/v1/users/me", "beneficiary", Audit("user.update", Caller)),
    ("DELETE /api/v1/users/me", "beneficiary", Audit("user.delete", Caller)),
    ("DELETE /api/v1/users/me/sessions/<id>", "beneficiary", Audit("session.end", Caller)),
    ("PUT /api/v1/beneficiaries/me/profile", "beneficiary", Audit("beneficiary.profile_update", Caller)),
    ("PATCH /api/v1/notifications/<id>/read", "beneficiary", Audit("notification.read", Caller)),
    ("PUT /api/v1/notifications/preferences", "beneficiary", Audit("notification.email_off", Caller)),
    // Staff administration.
    ("POST /api/v1/staff/role-changes", "admin", Audit("user.role_grant", Caller)),
    ("POST /api/v1/staff/session-revocations", "admin", Audit("user.sessions_revoke", Caller)),
    ("PUT /api/v1/staff/care-team/<caseworker_id>/<beneficiary_id>", "admin", Audit("care_team.assign", Caller)),
    // PHI access and erasure.
    ("DELETE /api/v1/staff/beneficiaries/<beneficiary_id>/phi", "admin", Audit("phi.erase", Caller)),
    (
        "POST /api/v1/caseworker/beneficiaries/<beneficiary_id>/profile/break-glass",
        "caseworker",
        Audit("phi.break_glass", Caller),
    ),
    (
        "POST /api/v1/caseworker/beneficiaries/<beneficiary_id>/emergency-disclosure",
        "caseworker",
        Audit("phi.emergency_disclosure", Caller),
    ),
    // Compliance.
    ("POST /api/v1/compliance/audit-verifications", "compliance_officer", Audit("audit.verify", Caller)),
    ("POST /api/v1/compliance/trail-verifications", "compliance_officer", Audit("audit.verify", Caller)),
    ("PUT /api/v1/compliance/phi-access-log/<seq>/review", "compliance_officer", Audit("phi.access_review", Caller)),
    // Consents and the recipient directory.
    ("POST /api/v1/beneficiaries/me/consents", "beneficiary", Audit("consent.sign", Caller)),
    ("POST /api/v1/beneficiaries/me/consents/<id>/revocation", "beneficiary", Audit("consent.revoke", Caller)),
    ("POST /api/v1/staff/consent-recipients", "admin", Audit("consent_recipient.add", Caller)),
    ("DELETE /api/v1/staff/consent-recipients/<id>", "admin", Audit("consent_recipient.retire", Caller)),
    (
        "POST /api/v1/staff/beneficiaries/<beneficiary_id>/consent-events",
        "caseworker",
        Audit("consent.expiry_event", Caller),
    ),
    // Applications and their documents.
    ("POST /api/v1/applications", "beneficiary", Audit("application.submit", Caller)),
    ("PATCH /api/v1/applications/<id>", "beneficiary", Audit("application.update", Caller)),
    ("POST /api/v1/applications/<id>/documents", "beneficiary", Audit("document.upload", Caller)),
    ("DELETE /api/v1/applications/<id>/documents/<document>", "beneficiary", Audit("document.delete", Caller)),
    ("PUT /api/v1/staff/applications/<id>/caseworker", "admin", Audit("application.assign", Caller)),
    ("POST /api/v1/staff/applications/<id>/status", "caseworker", Audit("application.status", Caller)),
    // Insurance.
    ("POST /api/v1/beneficiaries/me/insurance/verify", "beneficiary", Audit("insurance.submit", Caller)),
    ("POST /api/v1/staff/insurance/<id>/decision", "caseworker", Audit("insurance.decide", Caller)),
];

/// The state-changing routes roles.toml declares, as `METHOD /path`.
fn state_changing_routes() -> BTreeSet<String> {
    let text = std::fs::read_to_string(harness::repo_root().join("policies/roles.toml")).expect("roles.toml");
    let policy: toml::Table = text.parse().expect("roles.toml is TOML");
    policy
        .get("routes")
        .and_then(toml::Value::as_table)
        .expect("a [routes] table")
        .keys()
        .filter(|route| matches!(route.split(' ').next(), Some("POST" | "PUT" | "PATCH" | "DELETE")))
        .cloned()
        .collect()
}

/// A request's answer, read whole, with what the sweep needs to check its trail.
struct Answer {
    request_id: String,
    /// Rows in `audit_logs` just before it was sent.
    rows_before: i64,
    status: u16,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    fn text(&self, pointer: &str) -> String {
        self.body
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no {pointer} in {}", self.body))
            .to_owned()
    }

    fn id(&self, pointer: &str) -> Uuid {
        Uuid::parse_str(&self.text(pointer)).expect("a uuid")
    }

    /// The `sw_refresh` cookie it set.
    fn refresh_cookie(&self) -> String {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|c| c.strip_prefix("sw_refresh=")?.split(';').next().filter(|v| !v.is_empty()).map(str::to_owned))
            .expect("a refresh cookie")
    }
}

struct Sweep<'a> {
    app: &'a TestApp,
    /// Follows no redirect: the form-post callback answers 303 to the frontend.
    http: reqwest::Client,
    public: sqlx::PgPool,
    table: BTreeMap<&'static str, (&'static str, Expect)>,
    /// Each user the sweep acts as or signs in, and the role it acts in.
    roles: BTreeMap<Uuid, &'static str>,
    swept: BTreeSet<&'static str>,
    n: u32,
}

impl<'a> Sweep<'a> {
    fn new(app: &'a TestApp, public: sqlx::PgPool) -> Self {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
        let table = TABLE.iter().map(|(route, who, expect)| (*route, (*who, *expect))).collect();
        let roles = public_api::auth::routes::DEMO_USERS
            .iter()
            .map(|(name, id, ..)| (Uuid::parse_str(id).expect("a demo id"), *name))
            .collect();
        Self { app, http, public, table, roles, swept: BTreeSet::new(), n: 0 }
    }

    /// An anonymous request.
    fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, self.app.api(path))
    }

    /// A request with the access token `token`.
    fn req_as(&self, method: Method, path: &str, token: &str) -> RequestBuilder {
        self.req(method, path).bearer_auth(token)
    }

    async fn rows(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM audit_logs").fetch_one(&self.public).await.expect("count")
    }

    async fn rows_for(&self, request_id: &str) -> Vec<(Option<Uuid>, String, String)> {
        sqlx::query_as("SELECT actor_id, action, outcome FROM audit_logs WHERE request_id = $1 ORDER BY seq")
            .bind(request_id)
            .fetch_all(&self.public)
            .await
            .expect("audit rows")
    }

    /// Sends `request` for `route` under a request id of its own; it must succeed (2xx, or the
    /// form-post callback's 303).
    async fn call(&mut self, route: &'static str, request: RequestBuilder) -> Answer {
        assert!(self.table.contains_key(route), "{route} is not in the table");
        self.n += 1;
        let request_id = format!("sweep-{}-{}", self.n, self.app.id);
        let rows_before = self.rows().await;
        let response =
            request.header("x-request-id", &request_id).send().await.unwrap_or_else(|e| panic!("{route}: {e}"));
        let (status, headers) = (response.status().as_u16(), response.headers().clone());
        let text = response.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        assert!((200..300).contains(&status) || status == 303, "{route} answered {status}: {body}");
        Answer { request_id, rows_before, status, headers, body }
    }

    /// Checks the trail `answer`'s request left against the table: one row, the action expected,
    /// `success`, naming `actor` (the user the server proved; none for an anonymous step).
    async fn expect(&mut self, route: &'static str, answer: &Answer, actor: Option<Uuid>) {
        let (who, expect) = self.table[route];
        let Audit(action, kind) = expect else { panic!("{route} is exempt in the table: check it with `exempt`") };
        match (kind, actor) {
            (Nobody, None) => {}
            (Caller | SignedIn, Some(user)) => {
                assert_eq!(self.roles.get(&user).copied(), Some(who), "{route}: the table has it called as {who}")
            }
            (kind, actor) => panic!("{route}: the table expects {kind:?}, the sweep names {actor:?}"),
        }
        let rows = self.rows_for(&answer.request_id).await;
        assert_eq!(rows.len(), 1, "{route} must write exactly one audit row for its request; it wrote {rows:?}");
        let (row_actor, row_action, outcome) = &rows[0];
        assert_eq!((row_action.as_str(), outcome.as_str()), (action, "success"), "{route}");
        assert_eq!(*row_actor, actor, "{route}: the row must name the proven actor");
        let written = self.rows().await - answer.rows_before;
        assert_eq!(written, 1, "{route}: {written} rows appeared while it ran, one expected");
        assert!(self.swept.insert(route), "{route} swept twice");
    }

    /// Checks an exempt route wrote nothing to the trail.
    async fn exempt(&mut self, route: &'static str, answer: &Answer) {
        let (_, expect) = self.table[route];
        let Exempt(why) = expect else { panic!("{route} is not exempt in the table") };
        self.nothing_written(&format!("{route} (exempt: {why})"), answer).await;
        assert!(self.swept.insert(route), "{route} swept twice");
    }

    /// Checks `answer`'s request wrote no audit row, under its id or any other.
    async fn nothing_written(&self, route: &str, answer: &Answer) {
        let rows = self.rows_for(&answer.request_id).await;
        assert!(rows.is_empty(), "{route} wrote {rows:?}");
        assert_eq!(self.rows().await, answer.rows_before, "{route}: rows appeared while it ran");
    }
}

/// A whole multipart form with one small PDF.
fn pdf_form() -> (String, Vec<u8>) {
    const BOUNDARY: &str = "sw-sweep-4d1a";
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"lease.pdf\"\r\n\
         Content-Type: application/pdf\r\n\r\n%PDF-1.7\n% lease\n"
    )
    .into_bytes();
    body.extend((0u32..2048).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={BOUNDARY}"), body)
}

fn in_days(days: i64) -> String {
    let at = time::OffsetDateTime::now_utc() + time::Duration::days(days);
    at.format(&time::format_description::well_known::Rfc3339).expect("format")
}

fn demo_id(name: &str) -> Uuid {
    let (_, id, ..) = public_api::auth::routes::DEMO_USERS.iter().find(|(n, ..)| *n == name).expect("a demo user");
    Uuid::parse_str(id).expect("a demo id")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_state_changing_route_leaves_one_audit_row_naming_the_proven_actor() {
    let env = oidc::require_env();
    // The table covers roles.toml exactly, before anything is called.
    let in_table: BTreeSet<String> = TABLE.iter().map(|(route, ..)| route.to_string()).collect();
    assert_eq!(in_table.len(), TABLE.len(), "a route is in the table twice");
    assert_eq!(in_table, state_changing_routes(), "the table and roles.toml's state-changing routes differ");

    // The sweep signs in more often in a minute than the per-address limit on /auth allows.
    let app = TestApp::spawn_with(|c| c.rate_limits.auth_per_ip_per_minute = 10_000).await;
    let public = sqlx::PgPool::connect(&app.database(Database::Public).app_url()).await.expect("public db");
    let phi = sqlx::PgPool::connect(&app.database(Database::Phi).app_url()).await.expect("phi db");
    let mut s = Sweep::new(&app, public.clone());
    let (ben_id, partner_id, cw_id) = (demo_id("beneficiary"), demo_id("partner"), demo_id("caseworker"));
    let (admin, cw, officer) =
        (app.dev_login("admin").await, app.dev_login("caseworker").await, app.dev_login("compliance_officer").await);
    let (admin_id, officer_id) = (demo_id("admin"), demo_id("compliance_officer"));
    let (admin, cw, officer) = (admin.access_token, cw.access_token, officer.access_token);

    // ---- Signing in and refreshing, as the beneficiary.
    let route = "POST /api/v1/auth/dev-login";
    let a = s.call(route, s.req(Method::POST, "/auth/dev-login").json(&json!({"user": "beneficiary"}))).await;
    assert_eq!(a.id("/user_id"), ben_id);
    s.expect(route, &a, Some(a.id("/user_id"))).await;
    let ben = a.text("/access_token");
    let cookie = a.refresh_cookie();

    let route = "POST /api/v1/auth/refresh";
    let refresh =
        s.req(Method::POST, "/auth/refresh").header("origin", ORIGIN).header("cookie", format!("sw_refresh={cookie}"));
    let a = s.call(route, refresh).await;
    assert_eq!(a.id("/user_id"), ben_id);
    s.expect(route, &a, Some(ben_id)).await;
    let cookie = a.refresh_cookie();

    let route = "POST /api/v1/auth/token-refresh";
    let a = s.call(route, s.req(Method::POST, "/auth/token-refresh").json(&json!({"refresh_token": cookie}))).await;
    assert_eq!(a.id("/user_id"), ben_id);
    s.expect(route, &a, Some(a.id("/user_id"))).await;

    // ---- The beneficiary's account, profile and preferences.
    let route = "PATCH /api/v1/users/me";
    let a = s.call(route, s.req_as(Method::PATCH, "/users/me", &ben).json(&json!({"display_name": "Sweep"}))).await;
    s.expect(route, &a, Some(ben_id)).await;

    let route = "PUT /api/v1/notifications/preferences";
    let a =
        s.call(route, s.req_as(Method::PUT, "/notifications/preferences", &ben).json(&json!({"email": false}))).await;
    s.expect(route, &a, Some(ben_id)).await;

    let route = "PUT /api/v1/beneficiaries/me/profile";
    let profile = harness::sample_profile();
    let a = s.call(route, s.req_as(Method::PUT, "/beneficiaries/me/profile", &ben).json(&profile)).await;
    s.expect(route, &a, Some(ben_id)).await;

    // ---- An application: submitted, edited, a document added and removed, assigned, decided.
    let route = "POST /api/v1/applications";
    let application = json!({ "kind": "rent", "amount_cents": 85_000,
        "details": { "description": "Two months behind on rent", "needed_by": "2099-01-31" } });
    let a = s.call(route, s.req_as(Method::POST, "/applications", &ben).json(&application)).await;
    s.expect(route, &a, Some(ben_id)).await;
    let app_id = a.id("/id");

    let route = "PATCH /api/v1/applications/<id>";
    let path = format!("/applications/{app_id}");
    let a = s.call(route, s.req_as(Method::PATCH, &path, &ben).json(&json!({"amount_cents": 90_000}))).await;
    s.expect(route, &a, Some(ben_id)).await;

    let route = "POST /api/v1/applications/<id>/documents";
    let (content_type, form) = pdf_form();
    let upload =
        s.req_as(Method::POST, &format!("/applications/{app_id}/documents"), &ben).header("content-type", content_type);
    let a = s.call(route, upload.body(form)).await;
    s.expect(route, &a, Some(ben_id)).await;
    let document = a.id("/id");

    let route = "DELETE /api/v1/applications/<id>/documents/<document>";
    let a =
        s.call(route, s.req_as(Method::DELETE, &format!("/applications/{app_id}/documents/{document}"), &ben)).await;
    s.expect(route, &a, Some(ben_id)).await;

    let route = "PUT /api/v1/staff/applications/<id>/caseworker";
    let assign = s
        .req_as(Method::PUT, &format!("/staff/applications/{app_id}/caseworker"), &admin)
        .json(&json!({"caseworker_id": cw_id}));
    let a = s.call(route, assign).await;
    s.expect(route, &a, Some(admin_id)).await;
    let version = a.body["version"].as_i64().expect("version");

    let route = "POST /api/v1/staff/applications/<id>/status";
    let decide = s
        .req_as(Method::POST, &format!("/staff/applications/{app_id}/status"), &cw)
        .json(&json!({"status": "action_needed", "note": "Please add the lease", "version": version}));
    let a = s.call(route, decide).await;
    s.expect(route, &a, Some(cw_id)).await;

    let route = "PATCH /api/v1/notifications/<id>/read";
    let unread: Value = app.get_as(&ben, "/notifications?unread=true").await.json().await.expect("notifications");
    let notification = unread["notifications"][0]["id"].as_str().expect("a notification").to_owned();
    let a = s.call(route, s.req_as(Method::PATCH, &format!("/notifications/{notification}/read"), &ben)).await;
    s.expect(route, &a, Some(ben_id)).await;

    // ---- Insurance: submitted, the caseworker put on the care team, decided.
    let route = "POST /api/v1/beneficiaries/me/insurance/verify";
    let details = json!({"payer": "Health First Colorado (Medicaid)", "member_id": "SW-1234567"});
    let a = s.call(route, s.req_as(Method::POST, "/beneficiaries/me/insurance/verify", &ben).json(&details)).await;
    s.expect(route, &a, Some(ben_id)).await;
    let insurance = a.id("/id");

    let route = "PUT /api/v1/staff/care-team/<caseworker_id>/<beneficiary_id>";
    let a = s.call(route, s.req_as(Method::PUT, &format!("/staff/care-team/{cw_id}/{ben_id}"), &admin)).await;
    s.expect(route, &a, Some(admin_id)).await;

    let route = "POST /api/v1/staff/insurance/<id>/decision";
    let verified = json!({"status": "verified"});
    let a = s
        .call(route, s.req_as(Method::POST, &format!("/staff/insurance/{insurance}/decision"), &cw).json(&verified))
        .await;
    s.expect(route, &a, Some(cw_id)).await;

    // ---- Consents: a directory entry, a consent signed and revoked, the entry retired, an event.
    let route = "POST /api/v1/staff/consent-recipients";
    let entry = json!({"kind": "residence", "name": "Sweep House", "address": "12 Pine St, Denver CO",
        "account_id": partner_id});
    let a = s.call(route, s.req_as(Method::POST, "/staff/consent-recipients", &admin).json(&entry)).await;
    s.expect(route, &a, Some(admin_id)).await;
    let entry_id = a.id("/id");

    let route = "POST /api/v1/beneficiaries/me/consents";
    let form: Value = app.get_as(&ben, "/consent-forms/part2-disclosure-2026-11").await.json().await.expect("form");
    let consent = json!({
        "form_version": "part2-disclosure-2026-11",
        "form_sha256": form["form"]["sha256"],
        "recipient": { "directory_id": entry_id },
        "categories": ["identity"],
        "purpose": "housing_placement",
        "expires_at": in_days(90),
        "signature": { "typed_name": "Jordan Q. Example", "method": "typed_name" },
    });
    let a = s.call(route, s.req_as(Method::POST, "/beneficiaries/me/consents", &ben).json(&consent)).await;
    s.expect(route, &a, Some(ben_id)).await;
    let consent_id = a.id("/consent/id");

    let route = "POST /api/v1/beneficiaries/me/consents/<id>/revocation";
    let revoke =
        json!({ "signature": { "typed_name": "Jordan Q. Example", "method": "typed_name" }, "reason": "I moved" });
    let path = format!("/beneficiaries/me/consents/{consent_id}/revocation");
    let a = s.call(route, s.req_as(Method::POST, &path, &ben).json(&revoke)).await;
    s.expect(route, &a, Some(ben_id)).await;

    let route = "DELETE /api/v1/staff/consent-recipients/<id>";
    let a = s.call(route, s.req_as(Method::DELETE, &format!("/staff/consent-recipients/{entry_id}"), &admin)).await;
    s.expect(route, &a, Some(admin_id)).await;

    let route = "POST /api/v1/staff/beneficiaries/<beneficiary_id>/consent-events";
    let path = format!("/staff/beneficiaries/{ben_id}/consent-events");
    let a = s.call(route, s.req_as(Method::POST, &path, &cw).json(&json!({"event": "coverage_end"}))).await;
    s.expect(route, &a, Some(cw_id)).await;

    // ---- PHI in an emergency, its review, and erasure, on a second beneficiary (not on the
    // caseworker's care team) with a profile.
    let (other_id, other) = app.new_beneficiary_token(&public).await;
    s.roles.insert(other_id, "beneficiary");
    let put = app.http.put(app.api("/beneficiaries/me/profile")).bearer_auth(&other).json(&profile).send().await;
    assert_eq!(put.expect("put profile").status(), 200);

    let route = "POST /api/v1/caseworker/beneficiaries/<beneficiary_id>/profile/break-glass";
    let path = format!("/caseworker/beneficiaries/{other_id}/profile/break-glass");
    let reason = json!({"reason": "Resident unresponsive; EMS asking for emergency contact"});
    let a = s.call(route, s.req_as(Method::POST, &path, &cw).json(&reason)).await;
    s.expect(route, &a, Some(cw_id)).await;
    // The vault's flagged entry for that read names the caseworker too.
    let (flagged, actor): (i64, String) =
        sqlx::query_as("SELECT seq, actor FROM access_log WHERE request_id = $1 AND flagged AND decision = 'permit'")
            .bind(&a.request_id)
            .fetch_one(&phi)
            .await
            .expect("the vault's flagged entry");
    assert_eq!(actor, cw_id.to_string());

    let route = "POST /api/v1/caseworker/beneficiaries/<beneficiary_id>/emergency-disclosure";
    let path = format!("/caseworker/beneficiaries/{other_id}/emergency-disclosure");
    let emergency = json!({
        "recipient": "Dr. Rivera, Denver Health emergency department",
        "nature": "Unresponsive after a suspected overdose",
        "reason": "The ED needs the emergency contact now; the resident cannot consent",
    });
    let a = s.call(route, s.req_as(Method::POST, &path, &cw).json(&emergency)).await;
    s.expect(route, &a, Some(cw_id)).await;

    let route = "PUT /api/v1/compliance/phi-access-log/<seq>/review";
    let finding = json!({"outcome": "justified", "note": "EMS call confirmed with the residence manager."});
    let path = format!("/compliance/phi-access-log/{flagged}/review");
    let a = s.call(route, s.req_as(Method::PUT, &path, &officer).json(&finding)).await;
    s.expect(route, &a, Some(officer_id)).await;

    let route = "DELETE /api/v1/staff/beneficiaries/<beneficiary_id>/phi";
    let path = format!("/staff/beneficiaries/{other_id}/phi?reason=Asked%20to%20be%20forgotten");
    let a = s.call(route, s.req_as(Method::DELETE, &path, &admin)).await;
    s.expect(route, &a, Some(admin_id)).await;

    // ---- Compliance verifications (every trail against its checkpoints, once they settle).
    let route = "POST /api/v1/compliance/audit-verifications";
    let a = s.call(route, s.req_as(Method::POST, "/compliance/audit-verifications", &officer)).await;
    assert_eq!(a.body["intact"], true, "{}", a.body);
    s.expect(route, &a, Some(officer_id)).await;

    let route = "POST /api/v1/compliance/trail-verifications";
    assert!(!app.publish_checkpoints().await.is_empty());
    tokio::time::sleep(common::checkpoint::SETTLE.unsigned_abs() + std::time::Duration::from_millis(200)).await;
    let a = s.call(route, s.req_as(Method::POST, "/compliance/trail-verifications", &officer)).await;
    assert_eq!(a.body["intact"], true, "{}", a.body);
    s.expect(route, &a, Some(officer_id)).await;

    // ---- Staff administration, on a staff account made for it.
    let staff_id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO users (id, user_type, email, display_name, roles) VALUES ($1, 'staff', $2, 'Sweep', '{}')",
    )
    .bind(staff_id)
    .bind(format!("sweep+{staff_id}@secondwind.invalid"))
    .execute(&public)
    .await
    .expect("a staff account");
    let route = "POST /api/v1/staff/role-changes";
    let grant = json!({"user": staff_id, "role": "caseworker", "grant": true, "reason": "Joined the intake team"});
    let a = s.call(route, s.req_as(Method::POST, "/staff/role-changes", &admin).json(&grant)).await;
    assert_eq!(a.body["changed"], true, "{}", a.body);
    s.expect(route, &a, Some(admin_id)).await;

    let route = "POST /api/v1/staff/session-revocations";
    let revocation = json!({"user": staff_id, "reason": "Laptop reported lost"});
    let a = s.call(route, s.req_as(Method::POST, "/staff/session-revocations", &admin).json(&revocation)).await;
    s.expect(route, &a, Some(admin_id)).await;

    // ---- Sessions and the account: another session of the beneficiary ended; an account closed.
    let route = "DELETE /api/v1/users/me/sessions/<id>";
    let second = app.dev_login("beneficiary").await;
    let a = s.call(route, s.req_as(Method::DELETE, &format!("/users/me/sessions/{}", second.session_id), &ben)).await;
    s.expect(route, &a, Some(ben_id)).await;

    let route = "DELETE /api/v1/users/me";
    let (closing_id, closing) = app.new_beneficiary_token(&public).await;
    s.roles.insert(closing_id, "beneficiary");
    let a = s.call(route, s.req_as(Method::DELETE, "/users/me", &closing)).await;
    s.expect(route, &a, Some(closing_id)).await;

    // ---- Sign-in through the OpenID provider: the code flow, as JSON and as a form post.
    let route = "POST /api/v1/auth/<provider>/start";
    let login = format!("sweep-{}", app.id);
    let a = s
        .call(
            route,
            s.req(Method::POST, "/auth/test/start").json(&json!({"user_type": "beneficiary", "login_hint": login})),
        )
        .await;
    s.exempt(route, &a).await;
    let cookie = oidc::browser_cookie(&a.headers).expect("the pre-sign-in cookie");
    let back = oidc::browse(&a.text("/authorization_url"), &env.redirect_uri).await;

    let route = "POST /api/v1/auth/<provider>";
    let callback = json!({"code": back["code"], "state": back["state"]});
    let a = s.call(route, s.req(Method::POST, "/auth/test").header("cookie", cookie).json(&callback)).await;
    // The actor must be the account the provider's identity proved, found apart from the answer.
    let signed_up: Uuid = sqlx::query_scalar("SELECT id FROM users WHERE email = $1")
        .bind(format!("{login}@example.org"))
        .fetch_one(&public)
        .await
        .expect("the account the sign-in made");
    assert_eq!(a.id("/user_id"), signed_up);
    s.roles.insert(signed_up, "beneficiary");
    s.expect(route, &a, Some(signed_up)).await;

    let route = "POST /api/v1/auth/<provider>/form-callback";
    let login = format!("sweep-partner-{}", app.id);
    let started = app
        .http
        .post(app.api("/auth/test/start"))
        .json(&json!({"user_type": "partner", "login_hint": login}))
        .send()
        .await
        .expect("start");
    let cookie = oidc::browser_cookie(started.headers()).expect("the pre-sign-in cookie");
    let started: Value = started.json().await.expect("json");
    let back = oidc::browse(started["authorization_url"].as_str().expect("url"), &env.redirect_uri).await;
    let form = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("code", &back["code"])
        .append_pair("state", &back["state"])
        .finish();
    let post = s
        .req(Method::POST, "/auth/test/form-callback")
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form);
    let a = s.call(route, post).await;
    assert_eq!(a.status, 303);
    assert_eq!(a.headers["location"], "http://localhost:5173/auth/complete?status=ok");
    let partner: Uuid = sqlx::query_scalar("SELECT id FROM users WHERE email = $1")
        .bind(format!("{login}@example.org"))
        .fetch_one(&public)
        .await
        .expect("the account the form post made");
    s.roles.insert(partner, "partner");
    s.expect(route, &a, Some(partner)).await;

    // ---- A device sign-in (RFC 8628) for the caseworker, whose account is linked to the identity.
    let hint = format!("sweep-cw-{}", app.id);
    sqlx::query("INSERT INTO identities (provider, subject, user_id) VALUES ('test', $1, $2)")
        .bind(&hint)
        .bind(cw_id)
        .execute(&public)
        .await
        .expect("link");
    let route = "POST /api/v1/auth/<provider>/device";
    let a = s.call(route, s.req(Method::POST, "/auth/test/device").json(&json!({"login_hint": hint}))).await;
    s.expect(route, &a, None).await;
    let handle = json!({"handle": a.text("/handle")});
    let mut interval = a.body["interval"].as_u64().expect("interval");
    oidc::approve_device(&a.text("/verification_uri_complete")).await;

    let route = "POST /api/v1/auth/<provider>/device/token";
    let mut polls = 0;
    let signed_in = loop {
        tokio::time::sleep(std::time::Duration::from_secs(interval)).await;
        let a = s.call(route, s.req(Method::POST, "/auth/test/device/token").json(&handle)).await;
        if a.status == 200 {
            break a;
        }
        // Not yet (202): a poll changes nothing but its pace, and writes no audit row.
        assert_eq!(a.status, 202, "{}", a.body);
        s.nothing_written(route, &a).await;
        interval = a.body["interval"].as_u64().expect("interval");
        polls += 1;
        assert!(polls < 10, "the approved device sign-in never completed");
    };
    assert_eq!(signed_in.id("/user_id"), cw_id);
    s.expect(route, &signed_in, Some(cw_id)).await;

    // ---- Signing out.
    let route = "POST /api/v1/auth/logout";
    let donor = app.dev_login("donor").await;
    let a = s.call(route, s.req_as(Method::POST, "/auth/logout", &donor.access_token)).await;
    s.expect(route, &a, Some(demo_id("donor"))).await;

    // Every entry of the table was swept, and the trail still verifies.
    let swept: BTreeSet<String> = s.swept.iter().map(|r| r.to_string()).collect();
    drop(s);
    assert_eq!(swept, in_table, "routes in the table the sweep did not call");
    assert!(public_api::audit::verify(&public, 10).await.expect("verify").intact());
    for pool in [public, phi] {
        pool.close().await;
    }
    app.stop().await;
}
