//! Protective middleware: security headers everywhere, no-store on personal data, CORS only for
//! the frontend's origins, and rate limits per address, per user and (stricter) on auth.

use common::ServiceName;
use harness::{TestApp, ORIGIN};
use serde_json::Value;
use std::time::Instant;

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = TestApp::spawn().await;
    let login = app.dev_login("donor").await;
    let mut responses = Vec::new();
    for service in ServiceName::ALL {
        responses.push(app.http.get(format!("{}/health", app.service(service).url)).send().await.expect("health"));
        responses.push(app.http.get(format!("{}/nowhere", app.service(service).url)).send().await.expect("404"));
    }
    responses.push(app.get_as(&login.access_token, "/users/me").await);
    for response in &responses {
        let h = response.headers();
        assert_eq!(h["content-security-policy"], "default-src 'none'; frame-ancestors 'none'", "{}", response.url());
        assert!(h["strict-transport-security"].to_str().expect("ascii").starts_with("max-age="));
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert!(h.contains_key("permissions-policy"));
        assert_eq!(h["cache-control"], "no-store", "{}", response.url());
        assert_eq!(h.get_all("x-frame-options").iter().count(), 1, "no duplicate from Rocket's shield");
    }
    app.stop().await;
}

#[tokio::test]
async fn cors_answers_the_frontend_and_refuses_other_origins() {
    let app = TestApp::spawn().await;
    let preflight = |origin: &'static str| {
        app.http
            .request(reqwest::Method::OPTIONS, app.api("/users/me"))
            .header("origin", origin)
            .header("access-control-request-method", "PATCH")
            .header("access-control-request-headers", "authorization, content-type")
            .send()
    };
    let ok = preflight(ORIGIN).await.expect("preflight");
    assert_eq!(ok.status(), 204);
    assert_eq!(ok.headers()["access-control-allow-origin"], ORIGIN);
    assert_eq!(ok.headers()["access-control-allow-credentials"], "true");
    assert!(ok.headers()["access-control-allow-methods"].to_str().expect("ascii").contains("PATCH"));
    assert!(ok.headers()["access-control-allow-headers"].to_str().expect("ascii").contains("authorization"));

    let foreign = preflight("https://evil.example").await.expect("preflight");
    assert_eq!(foreign.status(), 403);
    assert!(!foreign.headers().contains_key("access-control-allow-origin"));
    let body: Value = foreign.json().await.expect("json");
    assert_eq!(body["error"]["code"], "forbidden");

    let simple = app.http.get(app.api("/openapi.json")).header("origin", ORIGIN).send().await.expect("get");
    assert_eq!(simple.headers()["access-control-allow-origin"], ORIGIN);
    assert!(simple.headers()["access-control-expose-headers"].to_str().expect("ascii").contains("x-request-id"));
    let other =
        app.http.get(app.api("/openapi.json")).header("origin", "https://evil.example").send().await.expect("get");
    assert!(!other.headers().contains_key("access-control-allow-origin"));
    assert_ne!(other.headers().get("access-control-allow-origin").map(|v| v.as_bytes()), Some(&b"*"[..]));
    app.stop().await;
}

async fn assert_limited(response: reqwest::Response) {
    assert_eq!(response.status(), 429);
    let retry: u64 = response.headers()["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "too_many_requests");
}

/// How many requests a limit of `per_minute` can have let through since `since`: the bucket
/// holds `per_minute` and refills one every 60/`per_minute` seconds. Bounding counts by this,
/// not by a fixed number, keeps the tests true on a machine of any speed.
fn allowed_since(per_minute: u32, since: Instant) -> u32 {
    let refilled = since.elapsed().as_secs_f64() * f64::from(per_minute) / 60.0;
    per_minute + refilled.ceil().min(f64::from(u32::MAX)) as u32
}

/// Sends `request()` until one answers 429 (checked by `assert_limited`), then returns how
/// many answered `ok` before it. Any other status fails the test.
async fn count_until_limited<F: std::future::Future<Output = reqwest::Response>>(
    ok: u16,
    mut request: impl FnMut() -> F,
) -> u32 {
    for passed in 0..10_000 {
        let response = request().await;
        if response.status() == 429 {
            assert_limited(response).await;
            return passed;
        }
        assert_eq!(response.status(), ok, "after {passed} requests");
    }
    panic!("10,000 requests and no limit");
}

#[tokio::test]
async fn auth_endpoints_have_a_stricter_per_address_limit() {
    let app = TestApp::spawn_with(|c| c.rate_limits.auth_per_ip_per_minute = 3).await;
    let started = Instant::now();
    let dev_login = || {
        let request = app.http.post(app.api("/auth/dev-login")).json(&serde_json::json!({"user": "donor"}));
        async move { request.send().await.expect("post") }
    };
    let passed = count_until_limited(200, dev_login).await;
    assert!((3..=allowed_since(3, started)).contains(&passed), "{passed} sign-ins passed a limit of 3");
    // Other routes are not affected.
    assert_eq!(app.http.get(format!("{}/health", app.public_api.url)).send().await.expect("health").status(), 200);
    app.stop().await;
}

/// The sign-in limit follows the route a request reaches, not how its path is spelled.
#[tokio::test]
async fn every_spelling_of_a_sign_in_path_counts_against_the_sign_in_limit() {
    let app = TestApp::spawn_with(|c| c.rate_limits.auth_per_ip_per_minute = 4).await;
    let base = &app.public_api.url;
    let canonical = app.http.post(format!("{base}/api/v1/auth/refresh")).send().await.expect("post").status();
    assert_ne!(canonical, 404);
    for path in ["//api/v1/auth/refresh", "/api//v1/auth/refresh", "/api/v1/%61uth/refresh"] {
        let response = app.http.post(format!("{base}{path}")).send().await.expect("post");
        // It reached the refresh route (the same refusal as the canonical spelling, no 404),
        // so it must count as a sign-in.
        assert_eq!(response.status(), canonical, "{path}");
    }
    let fifth = app.http.post(format!("{base}/api/v1/auth/refresh")).send().await.expect("post");
    assert_limited(fifth).await;
    // The general limit is not spent: other routes still answer.
    assert_eq!(app.http.get(format!("{base}/health")).send().await.expect("health").status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn each_user_has_a_limit_and_each_address_another() {
    let app = TestApp::spawn_with(|c| {
        c.rate_limits.per_user_per_minute = 4;
        c.rate_limits.per_ip_per_minute = 12;
    })
    .await;
    let started = Instant::now();
    // Two requests from this address so far.
    let a = app.dev_login("donor").await;
    let b = app.dev_login("partner").await;
    // a's own limit stops a; the refused request still counted against the address.
    let a_passed = count_until_limited(200, || app.get_as(&a.access_token, "/users/me")).await;
    assert!((4..=allowed_since(4, started)).contains(&a_passed), "{a_passed} requests passed a limit of 4");
    assert_eq!(app.get_as(&b.access_token, "/users/me").await.status(), 200, "another user is unaffected");
    // The address's limit stops everything from it, signed in or not.
    let status_passed = count_until_limited(200, || async {
        app.http.get(format!("{}/status", app.public_api.url)).send().await.expect("status")
    })
    .await;
    let from_address = 2 + a_passed + 1 + 1 + status_passed;
    assert!(
        (12..=allowed_since(12, started)).contains(&from_address),
        "{from_address} requests from one address passed a limit of 12"
    );
    app.stop().await;
}

#[tokio::test]
async fn internal_routes_have_their_own_per_address_limit() {
    // phi-vault's callers are services carrying everyone's traffic from one address: its
    // ordinary per-address limit does not apply to internal routes, a service-sized one does.
    let app = TestApp::spawn_configured(
        |_| {},
        |phi| {
            phi.rate_limits.per_ip_per_minute = 2;
            phi.rate_limits.internal_per_ip_per_minute = 6;
        },
    )
    .await;
    let started = Instant::now();
    let me = app.dev_login("beneficiary").await;
    // One internal call.
    app.put_sample_profile(&me).await;
    // More internal calls than the ordinary limit pass, until the service-sized one sheds them;
    // public-api answers 503 in its error body, not 500.
    let mut reads = 0;
    let shed = loop {
        let response = app.get_as(&me.access_token, "/beneficiaries/me/profile").await;
        if response.status() != 200 {
            break response;
        }
        reads += 1;
        assert!(reads < 10_000, "no limit on internal calls");
    };
    assert!((6..=allowed_since(6, started)).contains(&(reads + 1)), "{} internal calls passed a limit of 6", reads + 1);
    assert_eq!(shed.status(), 503);
    let body: serde_json::Value = shed.json().await.expect("json");
    assert_eq!(body["error"]["code"], "service_unavailable", "{body}");
    // Non-internal routes keep the ordinary limit.
    let status_passed = count_until_limited(200, || async {
        app.http.get(format!("{}/status", app.phi_vault.url)).send().await.expect("status")
    })
    .await;
    assert!((2..=allowed_since(2, started)).contains(&status_passed), "{status_passed} passed a limit of 2");
    app.stop().await;
}
