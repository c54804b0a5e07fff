//! Internal calls: the callee accepts only a fresh EdDSA assertion from a known caller, for its
//! own audience, made for this very request (method, path and query, body), used once, on a
//! route and for a purpose the allowlist grants that caller. Each refusal leaves a log line.
//! The hostile peer (`harness::hostile`) signs with the callers' real keys, as a thief would.

use common::assertion::{body_hash, Role};
use common::ServiceName;
use harness::check::now;
use harness::hostile::ForgedCall;
use harness::{logs_for_request, TestApp};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{json, Value};

const READY: &str = "/internal/v1/ready";

/// phi-vault's readiness route, called by public-api (allowed) for a health check.
fn ready_call(app: &TestApp) -> ForgedCall {
    app.forge(ServiceName::PublicApi, ServiceName::PhiVault, Method::GET, READY)
}

/// The refusal answered `status` in the one error body and left a log line naming the reason.
fn assert_refused(status: u16, body: &Value, expected: u16, request_id: &str, reason_contains: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["error"]["request_id"], request_id);
    assert_eq!(body["error"]["code"], if expected == 401 { "unauthorized" } else { "forbidden" });
    let logged = logs_for_request(request_id);
    let refusals: Vec<&str> = logged
        .iter()
        .filter(|l| l["message"].as_str().is_some_and(|m| m.starts_with("internal call refused")))
        .filter_map(|l| l["reason"].as_str())
        .collect();
    assert!(
        refusals.iter().any(|r| r.contains(reason_contains)),
        "no refusal for {request_id} mentions `{reason_contains}`: {refusals:?}"
    );
}

async fn refused(call: &ForgedCall, token: &str, expected: u16, reason_contains: &str) {
    let (status, body) = call.send_with(token).await;
    assert_refused(status, &body, expected, &call.request_id, reason_contains);
}

#[tokio::test]
async fn a_valid_assertion_is_accepted() {
    let app = TestApp::spawn().await;
    let (status, body) = ready_call(&app).send().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["service"], "phi-vault");
    app.stop().await;
}

#[tokio::test]
async fn a_missing_assertion_is_refused() {
    let app = TestApp::spawn().await;
    let call = ready_call(&app);
    let response = app
        .http
        .get(format!("{}{READY}", app.phi_vault.url))
        .header("x-request-id", &call.request_id)
        .send()
        .await
        .expect("send");
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("json");
    assert_refused(status, &body, 401, &call.request_id, "no bearer assertion");
    app.stop().await;
}

#[tokio::test]
async fn a_forged_assertion_is_refused() {
    let app = TestApp::spawn().await;
    // Signed with a key nobody configured, claiming to be public-api.
    let call = ready_call(&app);
    let (forged, _) = common::keys::generate().expect("key");
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some("public-api".into());
    let token = jsonwebtoken::encode(&header, &call.claims, &EncodingKey::from_ed_der(&forged)).expect("sign");
    refused(&call, &token, 401, "InvalidSignature").await;

    // A token whose body was altered after signing.
    let call = ready_call(&app);
    let good = call.token();
    let mut admin = call.clone();
    admin.claims.role = Role::Admin;
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    parts[1] = admin.token().split('.').nth(1).expect("payload").to_owned();
    refused(&call, &parts.join("."), 401, "InvalidSignature").await;
    app.stop().await;
}

#[tokio::test]
async fn an_expired_assertion_is_refused() {
    let app = TestApp::spawn().await;
    let mut call = ready_call(&app);
    (call.claims.iat, call.claims.exp) = (now() - 120, now() - 90);
    refused(&call, &call.token(), 401, "ExpiredSignature").await;
    app.stop().await;
}

#[tokio::test]
async fn an_assertion_living_longer_than_60_seconds_is_refused() {
    let app = TestApp::spawn().await;
    let mut call = ready_call(&app);
    call.claims.exp = now() + 3600;
    refused(&call, &call.token(), 401, "lifetime exceeds 60 s").await;
    app.stop().await;
}

#[tokio::test]
async fn an_assertion_for_another_audience_is_refused() {
    let app = TestApp::spawn().await;
    // Minted for consent, presented to phi-vault.
    let mut call = ready_call(&app);
    call.claims.aud = ServiceName::Consent;
    refused(&call, &call.token(), 401, "InvalidAudience").await;
    app.stop().await;
}

#[tokio::test]
async fn a_caller_using_another_callers_key_id_is_refused() {
    let app = TestApp::spawn().await;
    // consent's real key, but claiming to be public-api.
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some("public-api".into());
    let call = ready_call(&app);
    let key = app.keys.private_key(ServiceName::Consent);
    let token = jsonwebtoken::encode(&header, &call.claims, &EncodingKey::from_ed_der(&key)).expect("sign");
    refused(&call, &token, 401, "InvalidSignature").await;
    app.stop().await;
}

#[tokio::test]
async fn a_caller_not_on_the_allowlist_is_forbidden() {
    let app = TestApp::spawn().await;
    // consent is a known service with a valid key, but the policy lets only public-api call
    // phi-vault's readiness route.
    let call = app.forge(ServiceName::Consent, ServiceName::PhiVault, Method::GET, READY);
    refused(&call, &call.token(), 403, "may not call GET /internal/v1/ready").await;
    app.stop().await;
}

#[tokio::test]
async fn an_unsigned_or_hmac_assertion_is_refused() {
    let app = TestApp::spawn().await;
    let call = ready_call(&app);
    let b64 = |v: &[u8]| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
    };
    let none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT","kid":"public-api"}"#),
        b64(&serde_json::to_vec(&call.claims).expect("json"))
    );
    let (status, body) = call.send_with(&none).await;
    assert_eq!(status, 401, "{body}");

    // HMAC with the caller's public key as the secret.
    let call = ready_call(&app);
    let public = std::fs::read(app.keys.dir.join("public-api.pub")).expect("pub");
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("public-api".into());
    let hmac = jsonwebtoken::encode(&header, &call.claims, &EncodingKey::from_secret(&public)).expect("sign");
    refused(&call, &hmac, 401, "is not EdDSA").await;
    app.stop().await;
}

#[tokio::test]
async fn an_assertion_replayed_under_another_request_id_is_refused() {
    let app = TestApp::spawn().await;
    let mut call = ready_call(&app);
    call.claims.request_id = "original-1".into();
    refused(&call, &call.token(), 401, "request id does not match").await;
    app.stop().await;
}

#[tokio::test]
async fn every_internal_route_is_in_the_allowlist() {
    let app = TestApp::spawn().await;
    let policy =
        common::policy::CallPolicy::load(&harness::repo_root().join("policies/internal-calls.toml")).expect("policy");
    for service in ServiceName::ALL {
        let listed: Vec<&str> = policy.routes_of(service).collect();
        for (method, path) in &app.service(service).routes {
            if path.starts_with("/internal/") {
                let key = format!("{method} {path}");
                assert!(
                    listed.contains(&key.as_str()),
                    "{service} mounts {key} but policies/internal-calls.toml does not list it"
                );
            }
        }
        for route in &listed {
            assert!(
                app.service(service).routes.iter().any(|(m, p)| format!("{m} {p}") == *route),
                "policy lists {route} for {service}, which mounts no such route"
            );
        }
    }
    app.stop().await;
}

// ------------------------------------------------------------ one request, once

/// A beneficiary with a stored profile: their id and its record id.
async fn beneficiary_with_record(app: &TestApp) -> (uuid::Uuid, uuid::Uuid) {
    let subject = uuid::Uuid::new_v4();
    let create = app
        .forge(ServiceName::PublicApi, ServiceName::PhiVault, Method::POST, "/internal/v1/records")
        .as_user(app, subject, Role::Beneficiary, "self_service")
        .json(&json!({"subject_id": subject, "category": "identity", "content": {"legal_name": "A. Person"}}));
    let (status, body) = create.send().await;
    assert_eq!(status, 201, "{body}");
    (subject, body["record_id"].as_str().expect("id").parse().expect("uuid"))
}

#[tokio::test]
async fn an_assertion_is_good_for_its_own_request_only() {
    let app = TestApp::spawn().await;
    let (subject, record) = beneficiary_with_record(&app).await;
    let read_path = format!("/internal/v1/records/{record}");
    let read = app.forge(ServiceName::PublicApi, ServiceName::PhiVault, Method::GET, &read_path).as_user(
        &app,
        subject,
        Role::Beneficiary,
        "self_service",
    );
    let token = read.token();

    // Replayed to another route: the DELETE of the same record, and the subject's list.
    let mut delete = read.clone();
    delete.method = Method::DELETE;
    refused(&delete, &token, 401, "made for method GET, used with DELETE").await;
    let mut list = read.clone();
    list.path = format!("/internal/v1/subjects/{subject}/records");
    refused(&list, &token, 401, "another path or query").await;
    // Another query string on the same route.
    let listing = app
        .forge(ServiceName::PublicApi, ServiceName::PhiVault, Method::GET, &format!("{}?category=identity", list.path))
        .as_user(&app, subject, Role::Beneficiary, "self_service");
    let list_token = listing.token();
    let mut other_query = listing.clone();
    other_query.path = format!("{}?category=insurance", list.path);
    refused(&other_query, &list_token, 401, "another path or query").await;

    // The request it was made for works once; the same request again is a replay, refused
    // with an alarm.
    let (status, body) = read.send_with(&token).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = read.send_with(&token).await;
    assert_eq!(status, 401, "{body}");
    let alarm = logs_for_request(&read.request_id)
        .into_iter()
        .find(|l| l["alarm"] == "replay")
        .expect("an alarm line for the replay");
    assert!(alarm["reason"].as_str().unwrap_or_default().contains("replayed"), "{alarm}");
    app.stop().await;
}

#[tokio::test]
async fn a_replay_is_refused_by_every_instance() {
    let app = TestApp::spawn().await;
    let second = app.another_phi_vault().await;
    let call = ready_call(&app);
    let token = call.token();
    let (status, _) = call.send_with(&token).await;
    assert_eq!(status, 200);
    // The same assertion, to the other instance behind the same (imagined) balancer.
    let mut elsewhere = call.clone();
    elsewhere.base_url = second.url.clone();
    refused(&elsewhere, &token, 401, "replayed").await;
    second.shutdown.clone().notify();
    app.stop().await;
}

#[tokio::test]
async fn the_body_must_be_the_one_the_assertion_covers() {
    let app = TestApp::spawn().await;
    let subject = uuid::Uuid::new_v4();
    let make = |content: Value| {
        app.forge(ServiceName::PublicApi, ServiceName::PhiVault, Method::POST, "/internal/v1/records")
            .as_user(&app, subject, Role::Beneficiary, "self_service")
            .json(&json!({"subject_id": subject, "category": "identity", "content": content}))
    };
    // Signed for one body, sent with another.
    let mut swapped = make(json!({"legal_name": "signed"}));
    let token = swapped.token();
    swapped.body = Some(
        serde_json::to_vec(&json!({"subject_id": subject, "category": "identity",
        "content": {"legal_name": "swapped"}}))
        .expect("json"),
    );
    refused(&swapped, &token, 401, "body hash does not match").await;
    // Signed for no body, sent with one.
    let mut unsigned_body = make(json!({"legal_name": "x"}));
    unsigned_body.claims.bsh = body_hash(b"");
    refused(&unsigned_body, &unsigned_body.token(), 401, "body hash does not match").await;
    // Signed for a body, sent without.
    let mut dropped = make(json!({"legal_name": "x"}));
    dropped.body = None;
    refused(&dropped, &dropped.token(), 401, "body hash does not match").await;

    let phi = sqlx::PgPool::connect(&app.database(common::db::Database::Phi).app_url()).await.expect("phi db");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM records").fetch_one(&phi).await.expect("count");
    assert_eq!(stored, 0, "nothing was stored");
    let (status, body) = make(json!({"legal_name": "honest"})).send().await;
    assert_eq!(status, 201, "{body}");
    app.stop().await;
}

#[tokio::test]
async fn a_route_refuses_a_purpose_it_does_not_serve() {
    let app = TestApp::spawn().await;
    let (subject, record) = beneficiary_with_record(&app).await;
    // Erasure is an admin purpose on another route; the record read does not serve it.
    let call = app
        .forge(ServiceName::PublicApi, ServiceName::PhiVault, Method::GET, &format!("/internal/v1/records/{record}"))
        .as_user(&app, subject, Role::Beneficiary, "erasure");
    refused(&call, &call.token(), 403, "does not serve purpose `erasure`").await;
    let mut ready = ready_call(&app);
    ready.claims.purpose = "treatment".into();
    refused(&ready, &ready.token(), 403, "does not serve purpose `treatment`").await;
    app.stop().await;
}

// ------------------------------------------------------------ a person's own token

#[tokio::test]
async fn the_internal_key_alone_cannot_act_as_a_user() {
    let app = TestApp::spawn().await;
    let (subject, record) = beneficiary_with_record(&app).await;
    let path = format!("/internal/v1/records/{record}");
    let read = || {
        app.forge(ServiceName::PublicApi, ServiceName::PhiVault, Method::GET, &path).as_user(
            &app,
            subject,
            Role::Beneficiary,
            "self_service",
        )
    };
    let sid = |call: &ForgedCall| -> uuid::Uuid { call.claims.sid.as_deref().expect("sid").parse().expect("uuid") };

    let mut no_token = read();
    no_token.claims.delegation = None;
    refused(&no_token, &no_token.token(), 401, "no delegation token").await;

    let mut someone_else = read();
    someone_else.claims.delegation =
        Some(someone_else.delegate(&app, uuid::Uuid::new_v4(), sid(&someone_else), Role::Beneficiary));
    refused(&someone_else, &someone_else.token(), 401, "another user's").await;

    let mut other_session = read();
    other_session.claims.delegation =
        Some(other_session.delegate(&app, subject, uuid::Uuid::new_v4(), Role::Beneficiary));
    refused(&other_session, &other_session.token(), 401, "another session's").await;

    let mut wrong_role = read();
    wrong_role.claims.delegation = Some(wrong_role.delegate(&app, subject, sid(&wrong_role), Role::Donor));
    refused(&wrong_role, &wrong_role.token(), 401, "is not for role beneficiary").await;

    // A delegation token made for another assertion (another jti) does not transfer.
    let mut other_assertion = read();
    let donor = read();
    other_assertion.claims.sid = donor.claims.sid.clone();
    other_assertion.claims.delegation = donor.claims.delegation.clone();
    refused(&other_assertion, &other_assertion.token(), 401, "another assertion's").await;

    // Minted for another caller's assertion (same jti, another `azp`).
    let mut other_caller = read();
    let session = sid(&other_caller);
    other_caller.claims.delegation = Some(
        app.delegation_signer()
            .mint(
                subject,
                session,
                Role::Beneficiary,
                ServiceName::Consent,
                ServiceName::PhiVault,
                &other_caller.claims.jti,
                other_caller.claims.exp,
            )
            .expect("mint"),
    );
    refused(&other_caller, &other_caller.token(), 401, "another assertion's").await;

    // The person's own access token is no delegation token: forwarding it is refused.
    let mut forwarded = read();
    forwarded.claims.delegation = Some(app.mint_user_token(subject, sid(&forwarded), &["beneficiary"]));
    refused(&forwarded, &forwarded.token(), 401, "delegation token").await;

    // A token signed with a key public-api does not have.
    let mut foreign = read();
    let (key, _) = common::keys::generate().expect("key");
    let signer = common::user_token::DelegationSigner::new(
        "secondwind",
        harness::USER_TOKEN_KID,
        EncodingKey::from_ed_der(&key),
    );
    foreign.claims.delegation = Some(
        signer
            .mint(
                subject,
                sid(&foreign),
                Role::Beneficiary,
                ServiceName::PublicApi,
                ServiceName::PhiVault,
                &foreign.claims.jti,
                foreign.claims.exp,
            )
            .expect("mint"),
    );
    refused(&foreign, &foreign.token(), 401, "InvalidSignature").await;

    // Calling itself a service while naming the user is no way round it.
    let mut as_service = read();
    as_service.claims.role = Role::Service;
    as_service.claims.delegation = None;
    refused(&as_service, &as_service.token(), 401, "never as a user").await;

    let (status, body) = read().send().await;
    assert_eq!(status, 200, "a delegation for this very call works: {body}");
    app.stop().await;
}

/// What rides inside an assertion is good for nothing outside it: the delegation token of a
/// real call, taken from the assertion, is refused by public-api as a bearer token.
#[tokio::test]
async fn a_leaked_assertion_carries_no_token_public_api_accepts() {
    // Capture what public-api sends to phi-vault for an admin's care-team assignment.
    let spy = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(wiremock::ResponseTemplate::new(204))
        .mount(&spy)
        .await;
    let spied = TestApp::spawn_with({
        let uri = spy.uri();
        move |public| {
            public.internal.peers.get_mut(&ServiceName::PhiVault).expect("peer").url = Some(uri);
        }
    })
    .await;
    let spied_admin = spied.dev_login("admin").await;
    let spied_caseworker = spied.dev_login("caseworker").await;
    let spied_beneficiary = spied.dev_login("beneficiary").await;
    let assign = spied
        .http
        .put(spied.api(&format!("/staff/care-team/{}/{}", spied_caseworker.user_id, spied_beneficiary.user_id)))
        .bearer_auth(&spied_admin.access_token)
        .send()
        .await
        .expect("assign");
    assert_eq!(assign.status(), 204);
    let requests = spy.received_requests().await.expect("recorded");
    let authorization = requests
        .iter()
        .find(|r| r.url.path().starts_with("/internal/v1/care-team/"))
        .and_then(|r| r.headers.get("authorization"))
        .and_then(|v| v.to_str().ok())
        .expect("the assertion")
        .trim_start_matches("Bearer ")
        .to_owned();
    let payload = authorization.split('.').nth(1).expect("payload");
    let claims: Value = {
        use base64::Engine;
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("b64"))
            .expect("json")
    };
    let delegated = claims["delegation"].as_str().expect("a delegation token rides inside");
    assert_ne!(delegated, spied_admin.access_token, "never the access token itself");
    // Used as a bearer token against public-api: refused. (The same admin's real token works.)
    let erase = |token: &str| {
        spied
            .http
            .delete(spied.api(&format!("/staff/beneficiaries/{}/phi?reason=stolen", spied_beneficiary.user_id)))
            .bearer_auth(token.to_owned())
            .send()
    };
    assert_eq!(erase(delegated).await.expect("erase").status(), 401);
    let me = spied.get_as(delegated, "/users/me").await;
    assert_eq!(me.status(), 401);
    spied.stop().await;
}

#[tokio::test]
async fn the_internal_client_follows_no_redirect() {
    harness::init();
    let elsewhere = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(json!({"service": "elsewhere"})))
        .mount(&elsewhere)
        .await;
    let peer = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(
            wiremock::ResponseTemplate::new(307).insert_header("location", format!("{}/steal", elsewhere.uri())),
        )
        .mount(&peer)
        .await;
    let (key, _) = common::keys::generate().expect("key");
    let signer = std::sync::Arc::new(common::assertion::Signer::new(ServiceName::PublicApi, &key, 30));
    let client = common::client::InternalClient::new(
        ServiceName::PhiVault,
        &peer.uri(),
        signer,
        std::time::Duration::from_secs(5),
    )
    .expect("client");
    let ctx = common::assertion::CallContext::system("health_check", common::RequestId::generate());
    let answer = common::client::PhiVaultClient::new(client).ready(&ctx).await;
    assert!(
        matches!(answer, Err(common::client::ClientError::Status { status: 307, .. })),
        "a redirect is an error, not followed: {answer:?}"
    );
    assert!(elsewhere.received_requests().await.unwrap_or_default().is_empty(), "nothing reached the redirect target");
}
