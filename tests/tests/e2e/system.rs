//! The three services come up together, answer health, status and metrics, speak the one error
//! body, and carry one request id across public-api → phi-vault → consent.

use common::ServiceName;
use harness::{logs_for_request, TestApp};
use serde_json::Value;

#[tokio::test]
async fn all_three_services_are_healthy() {
    let app = TestApp::spawn().await;
    for service in ServiceName::ALL {
        let url = format!("{}/health", app.service(service).url);
        let response = app.http.get(&url).send().await.expect("health");
        assert_eq!(response.status(), 200, "{service}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["status"], "ok");
        assert_eq!(body["database"], "ok");

        let status: Value = app
            .http
            .get(format!("{}/status", app.service(service).url))
            .send()
            .await
            .expect("status")
            .json()
            .await
            .expect("json");
        assert_eq!(status["service"], service.as_str());
        assert_eq!(status["profile"], "dev");
        assert!(status["version"].as_str().is_some_and(|v| !v.is_empty()));
        assert!(status["git_revision"].is_string());
    }
    app.stop().await;
}

#[tokio::test]
async fn one_request_id_crosses_all_three_services() {
    let app = TestApp::spawn().await;
    let request_id = format!("trace-{}", app.id);
    let response = app
        .http
        .get(format!("{}/ready", app.public_api.url))
        .header("x-request-id", &request_id)
        .send()
        .await
        .expect("ready");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], request_id.as_str());
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["ready"], true, "{body}");
    let names: Vec<&str> =
        body["checks"].as_array().expect("checks").iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(names, ["database", "phi-vault", "consent"]);

    // Each service wrote an access-log line carrying the same request id. consent is reached
    // twice: directly and through phi-vault.
    let lines = logs_for_request(&request_id);
    for service in ServiceName::ALL {
        assert!(
            lines.iter().any(|l| l["service"] == service.as_str() && l["route"].as_str().is_some()),
            "no log line from {service} with request id {request_id}: {lines:#?}"
        );
    }
    let consent_lines = lines.iter().filter(|l| l["service"] == "consent" && l["message"] == "request").count();
    assert_eq!(consent_lines, 2, "consent is asked by public-api and by phi-vault");
    app.stop().await;
}

/// Anonymous callers cannot make `/ready` sign internal calls at their own rate: a burst is
/// answered from one probe a second, and the answer says up or down, never why.
#[tokio::test]
async fn ready_answers_a_burst_from_one_probe_a_second() {
    let app = TestApp::spawn().await;
    let started = std::time::Instant::now();
    let ids: Vec<String> = (0..40).map(|n| format!("burst-{n}-{}", app.id)).collect();
    let answers = harness::check::join_all(
        ids.iter().map(|id| app.http.get(format!("{}/ready", app.public_api.url)).header("x-request-id", id).send()),
    )
    .await;
    let elapsed = started.elapsed();
    for answer in answers {
        let answer = answer.expect("ready");
        assert_eq!(answer.status(), 200);
        let body: Value = answer.json().await.expect("json");
        assert_eq!(body["ready"], true, "{body}");
        assert!(body["checks"].as_array().expect("checks").iter().all(|c| c.get("detail").is_none()), "{body}");
    }
    // Each probe is signed with the id of the request that ran it; count the ids phi-vault saw.
    let probes = ids
        .iter()
        .filter(|id| logs_for_request(id).iter().any(|l| l["service"] == "phi-vault" && l["message"] == "request"))
        .count();
    let windows = elapsed.as_secs() as usize + 2;
    assert!((1..=windows).contains(&probes), "{probes} probes for 40 requests in {elapsed:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_request_id_is_generated_when_missing_or_unsafe() {
    let app = TestApp::spawn().await;
    let response = app.http.get(format!("{}/health", app.public_api.url)).send().await.expect("health");
    let generated = response.headers()["x-request-id"].to_str().expect("ascii").to_owned();
    uuid::Uuid::parse_str(&generated).unwrap_or_else(|e| panic!("not a uuid: {generated}: {e}"));

    let ready = |id: String| app.http.get(format!("{}/ready", app.public_api.url)).header("x-request-id", id).send();
    // 128 characters of the allowed alphabet are kept, end to end: every service logs them.
    let longest = format!("{}{}", app.id, "a.b:c-d_".repeat(16))[..128].to_owned();
    let response = ready(longest.clone()).await.expect("ready");
    assert_eq!(response.headers()["x-request-id"], longest.as_str());
    let lines = logs_for_request(&longest);
    for service in ServiceName::ALL {
        assert!(lines.iter().any(|l| l["service"] == service.as_str()), "{service} did not log the 128-character id");
    }

    // One more character, or a character outside the alphabet, and a fresh uuid replaces it.
    let too_long = format!("{longest}x");
    for unsafe_id in [too_long.as_str(), "evil id\twith spaces", "quote\"inside", "new\nline"] {
        let Ok(response) = ready(unsafe_id.to_owned()).await else {
            // reqwest itself refuses a header value with a newline: nothing reaches the server.
            assert!(unsafe_id.contains('\n'));
            continue;
        };
        let echoed = response.headers()["x-request-id"].to_str().expect("ascii").to_owned();
        assert_ne!(echoed, unsafe_id);
        uuid::Uuid::parse_str(&echoed).unwrap_or_else(|e| panic!("not a uuid: {echoed}: {e}"));
        assert!(logs_for_request(unsafe_id).is_empty(), "the refused id {unsafe_id:?} reached a log");
    }
    app.stop().await;
}

#[tokio::test]
async fn every_error_uses_the_one_body() {
    let app = TestApp::spawn().await;
    for service in ServiceName::ALL {
        let response = app
            .http
            .get(format!("{}/no/such/route", app.service(service).url))
            .header("x-request-id", "req-404")
            .send()
            .await
            .expect("get");
        assert_eq!(response.status(), 404);
        assert_eq!(response.headers()["content-type"], "application/json");
        let body: Value = response.json().await.expect("json");
        assert_eq!(
            body,
            serde_json::json!({"error": {"code": "not_found", "message": "not found", "request_id": "req-404"}})
        );
    }
    // Wrong method on a known path: 405 naming the methods it has, in the same body.
    let response = app.http.post(format!("{}/health", app.public_api.url)).send().await.expect("post");
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "GET");
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "method_not_allowed");
    app.stop().await;
}

#[tokio::test]
async fn a_method_a_path_lacks_is_405_with_allow() {
    let app = TestApp::spawn().await;
    let id = uuid::Uuid::new_v4();
    for (method, url, allow) in [
        (reqwest::Method::DELETE, app.api("/applications"), "GET, POST"),
        (reqwest::Method::PUT, app.api(&format!("/applications/{id}")), "GET, PATCH"),
        (reqwest::Method::POST, app.api("/notifications/preferences"), "GET, PUT"),
        (reqwest::Method::GET, app.api("/auth/refresh"), "POST"),
        (reqwest::Method::DELETE, format!("{}/ready", app.public_api.url), "GET"),
        (reqwest::Method::POST, format!("{}/health", app.phi_vault.url), "GET"),
    ] {
        let response =
            app.http.request(method.clone(), &url).header("x-request-id", "req-405").send().await.expect("send");
        assert_eq!(response.status(), 405, "{method} {url}");
        assert_eq!(response.headers()["allow"], allow, "{method} {url}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(
            body,
            serde_json::json!({"error": {"code": "method_not_allowed", "message": "method not allowed", "request_id": "req-405"}})
        );
    }
    // A path no method has stays 404; so does a route's own 404, and a preflight is unchanged.
    let response = app.http.delete(app.api("/no/such/thing")).send().await.expect("delete");
    assert_eq!(response.status(), 404);
    let response = app.http.get(app.api(&format!("/applications/{id}"))).send().await.expect("get");
    assert_eq!(response.status(), 401, "the route answered, not the 405");
    let response = app.http.request(reqwest::Method::OPTIONS, app.api("/applications")).send().await.expect("options");
    assert_eq!(response.status(), 403, "a preflight from no allowed origin is refused as before");
    app.stop().await;
}

#[tokio::test]
async fn a_repeated_query_parameter_is_422_naming_it() {
    let app = TestApp::spawn().await;
    let beneficiary = app.dev_login("beneficiary").await;
    let get = |path: &str| {
        app.http.get(app.api(path)).bearer_auth(&beneficiary.access_token).header("x-request-id", "req-twice").send()
    };
    for (path, name) in [
        ("/applications?limit=5&limit=6", "limit"),
        ("/notifications?unread=true&after=1&unread=false", "unread"),
        ("/beneficiaries/me/consents?state=signed&state=revoked", "state"),
        ("/beneficiaries/me/disclosures?from=2026-01-01&from=2026-01-02", "from"),
    ] {
        let response = get(path).await.expect("get");
        assert_eq!(response.status(), 422, "{path}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(
            body,
            serde_json::json!({"error": {"code": "unprocessable_entity", "message": format!("{name}: send it once"), "request_id": "req-twice"}}),
            "{path}"
        );
    }
    // Each once is fine, and a route without query parameters ignores them as before.
    assert_eq!(get("/applications?limit=5&after=0").await.expect("get").status(), 200);
    assert_eq!(get("/users/me?x=1&x=2").await.expect("get").status(), 200);
    // The internal services refuse it too.
    let response =
        app.http.get(format!("{}/internal/v1/recipients?limit=1&limit=2", app.consent.url)).send().await.expect("get");
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["message"], "limit: send it once");
    app.stop().await;
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status() {
    let app = TestApp::spawn().await;
    for _ in 0..3 {
        app.http.get(format!("{}/health", app.public_api.url)).send().await.expect("health");
    }
    app.http.get(format!("{}/nothing-here", app.public_api.url)).send().await.expect("404");
    // A route with a path parameter is counted under its pattern; the concrete id never appears.
    let id = uuid::Uuid::new_v4();
    let response =
        app.http.get(format!("{}/api/v1/compliance/consents/{id}", app.public_api.url)).send().await.expect("get");
    assert_eq!(response.status(), 401);
    let response = app.http.get(format!("{}/metrics", app.public_api.url)).send().await.expect("metrics");
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().expect("ascii").starts_with("text/plain"));
    let text = response.text().await.expect("text");
    let count_line = text
        .lines()
        .find(|l| {
            l.starts_with("secondwind_http_requests_total{")
                && l.contains("route=\"/health\"")
                && l.contains("status=\"200\"")
        })
        .unwrap_or_else(|| panic!("no /health counter in:\n{text}"));
    assert!(count_line.ends_with(" 3"), "{count_line}");
    assert!(count_line.contains("service=\"public-api\""));
    assert!(text.contains("route=\"unmatched\"") && text.contains("status=\"404\""));
    assert!(
        text.lines().any(|l| l.starts_with("secondwind_http_requests_total{")
            && l.contains("route=\"/api/v1/compliance/consents/<id>\"")
            && l.contains("status=\"401\"")),
        "no counter under the route pattern:\n{text}"
    );
    assert!(!text.contains(&id.to_string()), "a concrete id reached the metrics labels");
    assert!(text.contains("secondwind_http_request_duration_seconds_bucket{"));
    app.stop().await;
}

#[tokio::test]
async fn the_openapi_document_is_served_and_matches_the_snapshot() {
    let app = TestApp::spawn().await;
    let response = app.http.get(format!("{}/api/v1/openapi.json", app.public_api.url)).send().await.expect("get");
    assert_eq!(response.status(), 200);
    let served: Value = response.json().await.expect("json");
    let snapshot: Value = serde_json::from_str(
        &std::fs::read_to_string(harness::repo_root().join("public-api/openapi.json")).expect("snapshot"),
    )
    .expect("snapshot json");
    assert_eq!(served, snapshot);
    assert_eq!(served["openapi"], "3.1.0");

    // Every public route is documented (internal and operational routes of other services are not public).
    let documented: Vec<String> = served["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .into_iter()
                .flat_map(move |m| m.keys().map(move |verb| format!("{} {path}", verb.to_uppercase())))
        })
        .collect();
    for (method, path) in app.public_api.routes.iter().filter(|(m, p)| m != "OPTIONS" && !p.starts_with("/__")) {
        // Rocket writes `<id>`, OpenAPI `{id}`.
        let key = format!("{method} {}", path.replace('<', "{").replace('>', "}"));
        assert!(documented.contains(&key), "{key} is mounted but missing from the OpenAPI document");
    }
    app.stop().await;
}

/// Query strings can carry what must not be logged (a reason, a name, a token pasted by
/// mistake). No log line of any service contains one: access lines name the route pattern, and
/// Rocket's own request lines are off.
#[tokio::test]
async fn no_log_line_contains_a_query_string() {
    let app = TestApp::spawn().await;
    let admin = app.dev_login("admin").await;
    let officer = app.dev_login("compliance_officer").await;
    let marker = format!("QMARK{}", app.id);
    let beneficiary = uuid::Uuid::new_v4();
    let paths = [
        (admin.access_token.as_str(), format!("/staff/beneficiaries/{beneficiary}/phi?reason={marker}")),
        (officer.access_token.as_str(), format!("/compliance/phi-access-log?limit=5&subject_id={marker}")),
        (officer.access_token.as_str(), format!("/users/me?{marker}=1")),
        ("", format!("/no-such-route?{marker}")),
    ];
    let mut request_ids = Vec::new();
    for (i, (token, path)) in paths.iter().enumerate() {
        let request =
            if path.starts_with("/staff") { app.http.delete(app.api(path)) } else { app.http.get(app.api(path)) };
        let request = if token.is_empty() { request } else { request.bearer_auth(token) };
        let request_id = format!("query-{}-{i}", app.id);
        let response = request.header("x-request-id", &request_id).send().await.expect("send");
        assert!(response.status().as_u16() < 500, "{path}: {}", response.status());
        request_ids.push((request_id, path));
    }
    // Each request has its one access line, naming the route pattern (or `unmatched`), not the path.
    for (request_id, path) in &request_ids {
        let access: Vec<Value> = logs_for_request(request_id)
            .into_iter()
            .filter(|l| l["message"] == "request" && l["service"] == "public-api")
            .collect();
        assert_eq!(access.len(), 1, "{path}: one access line, got {access:#?}");
        let route = access[0]["route"].as_str().expect("route");
        assert!(route == "unmatched" || route.starts_with("/api/v1/"), "{path}: route {route}");
        assert!(!route.contains('?') && !route.contains(&marker), "{path}: route {route}");
    }
    let logs = harness::logs();
    let leaked: Vec<&Value> = logs.iter().filter(|l| l.to_string().contains(&marker)).collect();
    assert!(leaked.is_empty(), "log lines quote a query string: {leaked:#?}");
    app.stop().await;
}
