//! The internal-call guards as a service mounts them (`InternalCall`, `StreamedCall`, and the
//! JSON body guard's check of the bytes an assertion covers), served over HTTP with a
//! PostgreSQL database of the test's own (scripts/test starts the server and names it in
//! `SECONDWIND_TEST_ADMIN_URL`). The verifier's own checks are unit tests in `assertion.rs`;
//! these cover the rest of the way: the bearer header, each assertion accepted once and
//! remembered until it has expired, the body it covers, the status and message a refused caller
//! sees, the alarm a replay raises, and the sweep of spent assertions. They build nothing but
//! `common`, so mutation testing runs them against every mutant of it in seconds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use common::assertion::{
    body_hash, sweep_spent, CallContext, InternalCall, RequestBinding, Signer, StreamedCall, Verifier,
};
use common::db;
use common::policy::CallPolicy;
use common::{RequestId, ServiceName};
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use rocket::figment::Figment;
use serde_json::Value;
use sqlx::PgPool;
use support::TestDb;

mod support;

const POLICY: &str = r#"
    [purposes]
    health_check = ["service"]
    audit_anchor = ["service"]
    self_service = ["beneficiary"]

    [consent."GET /internal/v1/records/<id>"]
    callers = ["public-api"]
    purposes = ["health_check", "self_service"]

    [consent."POST /internal/v1/records"]
    callers = ["public-api"]
    purposes = ["audit_anchor"]

    [consent."POST /internal/v1/uploads"]
    callers = ["public-api"]
    purposes = ["audit_anchor"]
"#;
const REQUEST_ID: &str = "req-guards-1";
const REFUSED_401: &str = "a valid internal assertion is required";

#[rocket::get("/internal/v1/records/<id>")]
fn read(call: InternalCall, id: &str) -> String {
    format!("{} read {id}", call.0.sub)
}

#[rocket::post("/internal/v1/records", data = "<body>")]
fn write(call: InternalCall, body: common::json::Body<Value>) -> String {
    format!("{} wrote {}", call.0.sub, body.0)
}

#[rocket::post("/internal/v1/uploads", data = "<_data>")]
fn upload(call: StreamedCall, _data: rocket::Data<'_>) -> String {
    format!("{} streams", call.0.sub)
}

/// Serves the three routes as the consent service would, public-api being its one peer, on an
/// ephemeral loopback port. Returns the base URL.
async fn serve(public_api_key: [u8; 32], pool: PgPool) -> String {
    let policy = CallPolicy::parse(POLICY).expect("policy");
    let verifier =
        Verifier::new(ServiceName::Consent, HashMap::from([(ServiceName::PublicApi, public_api_key)]), policy);
    let figment = Figment::from(rocket::Config::default())
        .merge(("address", "127.0.0.1"))
        .merge(("port", 0))
        .merge(("log_level", "off"));
    let (tx, rx) = tokio::sync::oneshot::channel();
    let tx = Mutex::new(Some(tx));
    let rocket = rocket::custom(figment)
        .manage(verifier)
        .manage(pool)
        .mount("/", rocket::routes![read, write, upload])
        .register("/", common::error::catchers())
        .attach(rocket::fairing::AdHoc::on_liftoff("port", move |r| {
            let port = r.config().port;
            Box::pin(async move {
                if let Some(tx) = tx.lock().expect("lock").take() {
                    let _ = tx.send(port);
                }
            })
        }));
    tokio::spawn(rocket.launch());
    format!("http://127.0.0.1:{}", rx.await.expect("the service started"))
}

/// public-api's internal key: the signer, and the public half the callee knows.
fn public_api() -> (Signer, [u8; 32]) {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).expect("key");
    let public = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("pkcs8").public_key().as_ref().try_into();
    (Signer::new(ServiceName::PublicApi, pkcs8.as_ref(), 30), public.expect("32 bytes"))
}

fn system(purpose: &str) -> CallContext {
    CallContext::system(purpose, RequestId(REQUEST_ID.into()))
}

fn sign(signer: &Signer, ctx: &CallContext, method: &str, path: &str, body: &[u8]) -> String {
    signer.sign(ServiceName::Consent, ctx, RequestBinding { method, path_and_query: path, body }).expect("sign")
}

/// The claims of a token, read without checking it (the test made it).
fn payload(token: &str) -> Value {
    let middle = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(middle).expect("base64"))
        .expect("json")
}

/// Sends a request the way public-api's client does; returns the status and the body's text.
async fn send(base: &str, method: &str, path: &str, token: Option<&str>, body: Option<&[u8]>) -> (u16, String) {
    let client = reqwest::Client::new();
    let mut request =
        client.request(method.parse().expect("method"), format!("{base}{path}")).header("x-request-id", REQUEST_ID);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    if let Some(body) = body {
        request = request.header("content-type", "application/json").body(body.to_vec());
    }
    let response = request.send().await.expect("request");
    (response.status().as_u16(), response.text().await.expect("body"))
}

fn message(body: &str) -> String {
    let value: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("not the error body: {body}"));
    value["error"]["message"].as_str().unwrap_or_else(|| panic!("no message: {body}")).to_owned()
}

/// Everything the services log, kept for the test to read (each test runs in its own process).
fn capture_logs() -> Arc<Mutex<Vec<u8>>> {
    #[derive(Clone)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let logs = Arc::new(Mutex::new(Vec::new()));
    let sink = Sink(logs.clone());
    let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(move || sink.clone()).finish();
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber in this process");
    logs
}

#[tokio::test]
async fn an_assertion_is_accepted_once_and_remembered_until_it_has_expired() {
    common::install_crypto_provider();
    let logs = capture_logs();
    let database = TestDb::create().await;
    let (signer, key) = public_api();
    let base = serve(key, database.pool.clone()).await;
    let path = "/internal/v1/records/8d1c";

    // No assertion, or one that is not a token: 401 with the one generic message.
    for token in [None, Some("not-a-token")] {
        let (status, body) = send(&base, "GET", path, token, None).await;
        assert_eq!((status, message(&body)), (401, REFUSED_401.to_owned()), "{token:?}");
    }

    let token = sign(&signer, &system("health_check"), "GET", path, b"");
    assert_eq!(send(&base, "GET", path, Some(&token), None).await, (200, "system read 8d1c".to_owned()));
    // Spent in the database, kept until the assertion's expiry and the leeway have passed.
    let (issuer, jti, expires): (String, String, i64) =
        sqlx::query_as("SELECT issuer, jti, extract(epoch FROM expires_at)::bigint FROM internal_call_replays")
            .fetch_one(&database.pool)
            .await
            .expect("one spent assertion");
    let claims = payload(&token);
    assert_eq!((issuer.as_str(), jti.as_str()), ("public-api", claims["jti"].as_str().expect("jti")));
    assert_eq!(expires, claims["exp"].as_i64().expect("exp") + 6, "expiry plus 5 s of leeway and 1 s");

    // The same assertion again is refused, and raises the replay alarm.
    let (status, body) = send(&base, "GET", path, Some(&token), None).await;
    assert_eq!((status, message(&body)), (401, REFUSED_401.to_owned()));
    let logged = String::from_utf8(logs.lock().expect("lock").clone()).expect("utf8");
    let alarm =
        logged.lines().find(|l| l.contains("REPLAYED ASSERTION")).unwrap_or_else(|| panic!("no alarm: {logged}"));
    assert!(alarm.contains("ERROR") && alarm.contains("alarm=\"replay\""), "{alarm}");
    assert!(alarm.contains("service=\"consent\"") && alarm.contains(REQUEST_ID), "{alarm}");
    assert!(!logged.contains(&token), "a token reached the log");

    // A purpose the caller's role cannot have: 403, with its own message.
    let token = sign(&signer, &system("self_service"), "GET", path, b"");
    let (status, body) = send(&base, "GET", path, Some(&token), None).await;
    assert_eq!((status, message(&body)), (403, "caller not permitted for this route and purpose".to_owned()));

    // The sweep drops what expired more than five minutes ago, and nothing else.
    sqlx::query(
        "INSERT INTO internal_call_replays (issuer, jti, expires_at) VALUES \
         ('public-api', 'old-1', now() - interval '6 minutes'), ('public-api', 'old-2', now() - interval '1 hour'), \
         ('public-api', 'recent', now() - interval '4 minutes')",
    )
    .execute(&database.pool)
    .await
    .expect("insert");
    assert_eq!(sweep_spent(&database.pool).await.expect("sweep"), 2);
    let left: Vec<String> = sqlx::query_scalar("SELECT jti FROM internal_call_replays ORDER BY jti")
        .fetch_all(&database.pool)
        .await
        .expect("left");
    let mut expected = vec![jti, "recent".to_owned()];
    expected.sort();
    assert_eq!(left, expected);

    // A database that cannot record the assertion: 503, never a pass.
    let closed = PgPool::connect_lazy(&db::url_for(&database.admin, "nobody", None, &database.name).expect("url"))
        .expect("pool");
    closed.close().await;
    let base = serve(key, closed).await;
    let token = sign(&signer, &system("health_check"), "GET", path, b"");
    let (status, body) = send(&base, "GET", path, Some(&token), None).await;
    assert_eq!((status, message(&body)), (503, "service unavailable".to_owned()));
    drop(database);
}

#[tokio::test]
async fn a_body_is_accepted_only_as_its_assertion_covers_it() {
    common::install_crypto_provider();
    let database = TestDb::create().await;
    let (signer, key) = public_api();
    let base = serve(key, database.pool.clone()).await;
    let (records, uploads) = ("/internal/v1/records", "/internal/v1/uploads");
    let anchor = system("audit_anchor");

    let token = sign(&signer, &anchor, "POST", records, br#"{"a":1}"#);
    assert_eq!(
        send(&base, "POST", records, Some(&token), Some(br#"{"a":1}"#)).await,
        (200, r#"system wrote {"a":1}"#.to_owned())
    );
    // Other bytes than the ones signed for, even equal JSON.
    for sent in [br#"{"a":2}"#.as_slice(), br#"{ "a":1}"#.as_slice()] {
        let token = sign(&signer, &anchor, "POST", records, br#"{"a":1}"#);
        let (status, body) = send(&base, "POST", records, Some(&token), Some(sent)).await;
        assert_eq!((status, message(&body)), (401, REFUSED_401.to_owned()));
    }
    // An assertion made for no body, used with one.
    let token = sign(&signer, &anchor, "POST", records, b"");
    assert_eq!(send(&base, "POST", records, Some(&token), Some(br#"{"a":1}"#)).await.0, 401);
    assert_ne!(body_hash(b""), body_hash(br#"{"a":1}"#));

    // A streamed body needs an assertion made for streaming; an ordinary one is refused.
    let token = sign(&signer, &anchor, "POST", uploads, b"bytes");
    let (status, body) = send(&base, "POST", uploads, Some(&token), Some(b"bytes")).await;
    assert_eq!((status, message(&body)), (401, REFUSED_401.to_owned()));
    let (token, _seal) = signer.sign_streamed(ServiceName::Consent, &anchor, "POST", uploads).expect("sign");
    assert_eq!(send(&base, "POST", uploads, Some(&token), Some(b"bytes")).await, (200, "system streams".to_owned()));
    drop(database);
}
