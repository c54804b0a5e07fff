//! Internal calls: the callee accepts only a fresh EdDSA assertion from a known caller, for its
//! own audience, on a route the allowlist grants that caller. Each refusal leaves a log line.

use common::assertion::Claims;
use common::ServiceName;
use harness::{logs_for_request, TestApp};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::Value;

const READY: &str = "/internal/v1/ready";

fn claims(iss: ServiceName, aud: ServiceName, request_id: &str, iat: i64, exp: i64) -> Claims {
    Claims {
        iss,
        aud,
        sub: "system".into(),
        role: "service".into(),
        purpose: "health_check".into(),
        request_id: request_id.into(),
        reason: None,
        iat,
        exp,
        jti: uuid::Uuid::new_v4().to_string(),
    }
}

fn sign(key_der: &[u8], kid: &str, claims: &Claims) -> String {
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_der(key_der)).expect("sign")
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

async fn call(app: &TestApp, callee: ServiceName, request_id: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = app.http.get(format!("{}{READY}", app.service(callee).url)).header("x-request-id", request_id);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("send");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json body"))
}

/// The refusal answered `status` in the one error body and left a log line naming the reason.
fn assert_refused(status: u16, body: &Value, expected: u16, request_id: &str, reason_contains: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["error"]["request_id"], request_id);
    assert_eq!(body["error"]["code"], if expected == 401 { "unauthorized" } else { "forbidden" });
    let logged = logs_for_request(request_id);
    let refusal = logged
        .iter()
        .find(|l| l["message"] == "internal call refused")
        .unwrap_or_else(|| panic!("no refusal logged for {request_id}: {logged:#?}"));
    let reason = refusal["reason"].as_str().unwrap_or_default();
    assert!(reason.contains(reason_contains), "reason `{reason}` should mention `{reason_contains}`");
}

#[tokio::test]
async fn a_valid_assertion_is_accepted() {
    let app = TestApp::spawn().await;
    let key = app.keys.private_key(ServiceName::PublicApi);
    let token =
        sign(&key, "public-api", &claims(ServiceName::PublicApi, ServiceName::PhiVault, "ok-1", now(), now() + 30));
    let (status, body) = call(&app, ServiceName::PhiVault, "ok-1", Some(&token)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["service"], "phi-vault");
    app.stop().await;
}

#[tokio::test]
async fn a_missing_assertion_is_refused() {
    let app = TestApp::spawn().await;
    let (status, body) = call(&app, ServiceName::PhiVault, "missing-1", None).await;
    assert_refused(status, &body, 401, "missing-1", "no bearer assertion");
    app.stop().await;
}

#[tokio::test]
async fn a_forged_assertion_is_refused() {
    let app = TestApp::spawn().await;
    // Signed with a key nobody configured, claiming to be public-api.
    let (forged, _) = common::keys::generate().expect("key");
    let token = sign(
        &forged,
        "public-api",
        &claims(ServiceName::PublicApi, ServiceName::PhiVault, "forged-1", now(), now() + 30),
    );
    let (status, body) = call(&app, ServiceName::PhiVault, "forged-1", Some(&token)).await;
    assert_refused(status, &body, 401, "forged-1", "InvalidSignature");

    // A token whose body was altered after signing.
    let key = app.keys.private_key(ServiceName::PublicApi);
    let good =
        sign(&key, "public-api", &claims(ServiceName::PublicApi, ServiceName::PhiVault, "forged-2", now(), now() + 30));
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    let other = sign(
        &key,
        "public-api",
        &Claims {
            role: "admin".into(),
            ..claims(ServiceName::PublicApi, ServiceName::PhiVault, "forged-2", now(), now() + 30)
        },
    );
    parts[1] = other.split('.').nth(1).expect("payload").to_owned();
    let (status, body) = call(&app, ServiceName::PhiVault, "forged-2", Some(&parts.join("."))).await;
    assert_refused(status, &body, 401, "forged-2", "InvalidSignature");
    app.stop().await;
}

#[tokio::test]
async fn an_expired_assertion_is_refused() {
    let app = TestApp::spawn().await;
    let key = app.keys.private_key(ServiceName::PublicApi);
    let token = sign(
        &key,
        "public-api",
        &claims(ServiceName::PublicApi, ServiceName::PhiVault, "expired-1", now() - 120, now() - 90),
    );
    let (status, body) = call(&app, ServiceName::PhiVault, "expired-1", Some(&token)).await;
    assert_refused(status, &body, 401, "expired-1", "ExpiredSignature");
    app.stop().await;
}

#[tokio::test]
async fn an_assertion_living_longer_than_60_seconds_is_refused() {
    let app = TestApp::spawn().await;
    let key = app.keys.private_key(ServiceName::PublicApi);
    let token =
        sign(&key, "public-api", &claims(ServiceName::PublicApi, ServiceName::PhiVault, "long-1", now(), now() + 3600));
    let (status, body) = call(&app, ServiceName::PhiVault, "long-1", Some(&token)).await;
    assert_refused(status, &body, 401, "long-1", "lifetime exceeds 60 s");
    app.stop().await;
}

#[tokio::test]
async fn an_assertion_for_another_audience_is_refused() {
    let app = TestApp::spawn().await;
    let key = app.keys.private_key(ServiceName::PublicApi);
    // Minted for consent, presented to phi-vault.
    let token =
        sign(&key, "public-api", &claims(ServiceName::PublicApi, ServiceName::Consent, "aud-1", now(), now() + 30));
    let (status, body) = call(&app, ServiceName::PhiVault, "aud-1", Some(&token)).await;
    assert_refused(status, &body, 401, "aud-1", "InvalidAudience");
    app.stop().await;
}

#[tokio::test]
async fn a_caller_using_another_callers_key_id_is_refused() {
    let app = TestApp::spawn().await;
    // consent's real key, but claiming to be public-api.
    let key = app.keys.private_key(ServiceName::Consent);
    let token = sign(
        &key,
        "public-api",
        &claims(ServiceName::PublicApi, ServiceName::PhiVault, "wrongkey-1", now(), now() + 30),
    );
    let (status, body) = call(&app, ServiceName::PhiVault, "wrongkey-1", Some(&token)).await;
    assert_refused(status, &body, 401, "wrongkey-1", "InvalidSignature");
    app.stop().await;
}

#[tokio::test]
async fn a_caller_not_on_the_allowlist_is_forbidden() {
    let app = TestApp::spawn().await;
    // consent is a known service with a valid key, but the policy lets only public-api call
    // phi-vault's readiness route.
    let key = app.keys.private_key(ServiceName::Consent);
    let token =
        sign(&key, "consent", &claims(ServiceName::Consent, ServiceName::PhiVault, "policy-1", now(), now() + 30));
    let (status, body) = call(&app, ServiceName::PhiVault, "policy-1", Some(&token)).await;
    assert_refused(status, &body, 403, "policy-1", "may not call GET /internal/v1/ready");
    app.stop().await;
}

#[tokio::test]
async fn an_unsigned_or_hmac_assertion_is_refused() {
    let app = TestApp::spawn().await;
    let c = claims(ServiceName::PublicApi, ServiceName::PhiVault, "alg-1", now(), now() + 30);
    let b64 = |v: &[u8]| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
    };
    let none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT","kid":"public-api"}"#),
        b64(&serde_json::to_vec(&c).expect("json"))
    );
    let (status, body) = call(&app, ServiceName::PhiVault, "alg-1", Some(&none)).await;
    assert_eq!(status, 401, "{body}");

    // HMAC with the caller's public key as the secret.
    let public = std::fs::read(app.keys.dir.join("public-api.pub")).expect("pub");
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("public-api".into());
    let c = claims(ServiceName::PublicApi, ServiceName::PhiVault, "alg-2", now(), now() + 30);
    let hmac = jsonwebtoken::encode(&header, &c, &EncodingKey::from_secret(&public)).expect("sign");
    let (status, body) = call(&app, ServiceName::PhiVault, "alg-2", Some(&hmac)).await;
    assert_refused(status, &body, 401, "alg-2", "is not EdDSA");
    app.stop().await;
}

#[tokio::test]
async fn an_assertion_replayed_under_another_request_id_is_refused() {
    let app = TestApp::spawn().await;
    let key = app.keys.private_key(ServiceName::PublicApi);
    let token = sign(
        &key,
        "public-api",
        &claims(ServiceName::PublicApi, ServiceName::PhiVault, "original-1", now(), now() + 30),
    );
    let (status, body) = call(&app, ServiceName::PhiVault, "replay-1", Some(&token)).await;
    assert_refused(status, &body, 401, "replay-1", "request id does not match");
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
