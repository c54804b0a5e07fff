//! The shared error machinery on a real service: a panicking handler, malformed and mistyped
//! JSON, and an oversize body all answer in the one body shape with the right status, and a
//! 500 reveals nothing of its cause.

use std::collections::BTreeMap;

use common::db::Database;
use harness::{launch, logs_for_request, TestDatabase, TestKeys};
use rocket::serde::json::Json;
use rocket::{get, post, routes};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Payload {
    amount_cents: u64,
    note: String,
}

#[get("/test/panic")]
fn panics() -> &'static str {
    panic!("secret cause: connection string postgres://user:hunter2@db")
}

#[post("/test/json", data = "<body>")]
fn takes_json(body: Json<Payload>) -> String {
    body.amount_cents.to_string()
}

#[tokio::test]
async fn errors_share_one_body_and_500s_reveal_nothing() {
    harness::init();
    let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let database = TestDatabase::create(Database::Consent, &id).await;
    let keys = TestKeys::new(&id);
    let mut config = harness::consent_config(database.app_url(), &keys, &BTreeMap::new());
    config.server.json_limit_bytes = 1024;
    let rocket = consent::build(config).await.expect("build").mount("/", routes![panics, takes_json]);
    let running = launch(rocket).await;
    let http = reqwest::Client::new();
    let url = |p: &str| format!("{}{p}", running.url);

    async fn check(response: reqwest::Response, status: u16, code: &str) -> Value {
        assert_eq!(response.status().as_u16(), status);
        assert_eq!(response.headers()["content-type"], "application/json");
        let request_id = response.headers()["x-request-id"].to_str().expect("ascii").to_owned();
        let body: Value = response.json().await.expect("json body");
        assert_eq!(body["error"]["code"], code, "{body}");
        assert_eq!(body["error"]["request_id"], request_id.as_str());
        assert_eq!(body.as_object().map(|o| o.len()), Some(1), "only `error`: {body}");
        body
    }

    let response =
        http.get(url("/test/panic")).header("x-request-id", format!("panic-{id}")).send().await.expect("get");
    let body = check(response, 500, "internal_error").await;
    assert_eq!(body["error"]["message"], "internal error");
    assert!(!body.to_string().contains("hunter2"));
    assert!(
        logs_for_request(&format!("panic-{id}")).iter().any(|l| l["status"] == 500),
        "the failure is logged under its request id"
    );

    let ok = http
        .post(url("/test/json"))
        .json(&serde_json::json!({"amount_cents": 5, "note": "x"}))
        .send()
        .await
        .expect("post");
    assert_eq!(ok.status(), 200);

    let malformed = http
        .post(url("/test/json"))
        .header("content-type", "application/json")
        .body("{\"amount_cents\": ")
        .send()
        .await
        .expect("post");
    check(malformed, 400, "bad_request").await;

    let wrong_type = http
        .post(url("/test/json"))
        .json(&serde_json::json!({"amount_cents": "five", "note": "x"}))
        .send()
        .await
        .expect("post");
    check(wrong_type, 422, "unprocessable_entity").await;

    let unknown_field = http
        .post(url("/test/json"))
        .json(&serde_json::json!({"amount_cents": 5, "note": "x", "admin": true}))
        .send()
        .await
        .expect("post");
    check(unknown_field, 422, "unprocessable_entity").await;

    let oversize = http
        .post(url("/test/json"))
        .json(&serde_json::json!({"amount_cents": 5, "note": "x".repeat(4096)}))
        .send()
        .await
        .expect("post");
    check(oversize, 413, "payload_too_large").await;

    running.shutdown.notify();
    database.drop_now().await;
    let _ = std::fs::remove_dir_all(&keys.dir);
}
