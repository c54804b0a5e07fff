//! Notification email through a real SMTP catcher (scripts/test starts
//! aiosmtpd, writing each message to a folder): a decision reaches the beneficiary by email with
//! no detail in it, sent by the outbox worker, not the request; a person who turns email off
//! gets none; a relay that cannot be reached leaves the email queued for a later attempt.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use common::db::Database;
use harness::check::{count, eventually};
use harness::client::Client;
use harness::TestApp;
use public_api::mail::MailSettings;

fn settings(relay: String, tag: &str) -> MailSettings {
    MailSettings {
        relay: common::Secret::new(relay),
        from: format!("SecondWind <no-reply+{tag}@secondwind.test>"),
        sign_in_url: "http://localhost:5173/sign-in".into(),
        poll_interval_ms: 100,
        max_attempts: 3,
        timeout_secs: 5,
    }
}

/// The messages this test's instance sent (every test shares the catcher; the sender's tag tells
/// them apart), as text.
fn mails(tag: &str) -> Vec<String> {
    let dir = std::env::var("SECONDWIND_TEST_MAIL_DIR").expect("SECONDWIND_TEST_MAIL_DIR: run with scripts/test");
    let mut found: Vec<(String, String)> = std::fs::read_dir(dir)
        .expect("mail dir")
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.file_name().to_string_lossy().ends_with(".eml"))
        .filter_map(|entry| {
            let text = std::fs::read_to_string(entry.path()).ok()?;
            text.contains(tag).then(|| (entry.file_name().to_string_lossy().into_owned(), text))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, text)| text).collect()
}

async fn wait_for_mails(tag: &str, count: usize) -> Vec<String> {
    for _ in 0..200 {
        let found = mails(tag);
        if found.len() >= count {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("expected {count} emails, found {}", mails(tag).len());
}

fn to_line(mail: &str) -> String {
    mail.lines().find(|l| l.starts_with("X-Envelope-To:")).unwrap_or_default().to_owned()
}

async fn email_of(public: &sqlx::PgPool, user: &str) -> String {
    sqlx::query_scalar("SELECT email FROM users WHERE id = $1::uuid").bind(user).fetch_one(public).await.expect("email")
}

#[tokio::test]
async fn decisions_are_emailed_without_detail_unless_email_is_off() {
    let smtp = std::env::var("SECONDWIND_TEST_SMTP").expect("SECONDWIND_TEST_SMTP: run with scripts/test");
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let relay = format!("smtp://{smtp}");
    let mail = settings(relay, &tag);
    let app = TestApp::spawn_configured(move |public| public.service.mail = Some(mail), |_| {}).await;
    let (ben_login, admin_login, cw_login) =
        (app.dev_login("beneficiary").await, app.dev_login("admin").await, app.dev_login("caseworker").await);
    let (beneficiary, admin, caseworker) = (
        Client { app: &app, who: &ben_login },
        Client { app: &app, who: &admin_login },
        Client { app: &app, who: &cw_login },
    );
    let public = sqlx::PgPool::connect(&app.database(Database::Public).app_url()).await.expect("public db");
    let (ben_email, cw_email) =
        (email_of(&public, &ben_login.user_id).await, email_of(&public, &cw_login.user_id).await);

    let application = json!({ "kind": "transport", "amount_cents": 12_000,
        "details": { "description": "Bus pass to reach outpatient treatment", "needed_by": "2099-04-01" } });
    let (status, submitted) = beneficiary.send(Method::POST, "/applications", Some(&application)).await;
    assert_eq!(status, 201, "{submitted}");
    let id = submitted["id"].as_str().expect("id").to_owned();
    let (status, _) =
        admin.put(&format!("/staff/applications/{id}/caseworker"), &json!({"caseworker_id": cw_login.user_id})).await;
    assert_eq!(status, 200);
    let decide = |status: &str, note: &str, version: i64| {
        let body = json!({ "status": status, "note": note, "version": version });
        let path = format!("/staff/applications/{id}/status");
        let caseworker = &caseworker;
        async move { caseworker.post(&path, &body).await }
    };
    let note = "Please add the name of your outpatient clinic";
    let (status, body) = decide("action_needed", note, 2).await;
    assert_eq!(status, 200, "{body}");

    // The caseworker heard of the assignment, the beneficiary of the decision.
    let sent = wait_for_mails(&tag, 2).await;
    let to_beneficiary: Vec<&String> = sent.iter().filter(|m| to_line(m).contains(&ben_email)).collect();
    let to_caseworker: Vec<&String> = sent.iter().filter(|m| to_line(m).contains(&cw_email)).collect();
    assert_eq!((to_beneficiary.len(), to_caseworker.len()), (1, 1), "{sent:#?}");
    let decision = to_beneficiary[0];
    assert!(decision.contains(&format!("Subject: {}", public_api::mail::SUBJECT)), "{decision}");
    assert!(decision.contains("http://localhost:5173/sign-in"), "{decision}");
    let body = decision.split("\r\n\r\n").nth(1).unwrap_or_default();
    for detail in ["outpatient", "clinic", "Bus pass", "12000", "action_needed", "application", "SecondWind", &id] {
        assert!(!body.contains(detail), "the email carries no detail ({detail}): {decision}");
    }
    for detail in ["outpatient", "clinic", "Bus pass", "12000", "action_needed", &id] {
        assert!(!decision.contains(detail), "the email carries no detail ({detail}): {decision}");
    }
    // The catcher holds a message once the relay accepted it; the worker marks its row sent just
    // after, in its own transaction.
    let sent = "SELECT count(*) FROM email_outbox WHERE sent_at IS NOT NULL";
    eventually(Duration::from_secs(10), || async { count(&public, sent).await == 2 }).await;
    assert_eq!(count(&public, sent).await, 2, "both marked sent");

    // Email off: the next decision is a notification only.
    let prefs = "/notifications/preferences";
    assert_eq!(beneficiary.get(prefs).await, (200, json!({"email": true})), "on until turned off");
    assert_eq!(beneficiary.put(prefs, &json!({"email": "no"})).await.0, 422, "a wrong type");
    assert_eq!(beneficiary.put(prefs, &json!({"email": false, "sms": true})).await.0, 422, "an unknown field");
    assert_eq!(beneficiary.put(prefs, &json!({"email": false})).await, (200, json!({"email": false})));
    assert_eq!(beneficiary.get(prefs).await.1, json!({"email": false}));
    let (status, _) = beneficiary.patch(&format!("/applications/{id}"), &json!({"amount_cents": 13_000})).await;
    assert_eq!(status, 200);
    let (status, body) = decide("approved", "All set", 4).await;
    assert_eq!(status, 200, "{body}");
    let (_, unread) = beneficiary.get("/notifications?unread=true").await;
    assert_eq!(unread["notifications"].as_array().map(Vec::len), Some(2), "the notification is there: {unread}");
    let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM email_outbox WHERE user_id = $1::uuid")
        .bind(&ben_login.user_id)
        .fetch_one(&public)
        .await
        .expect("outbox");
    assert_eq!(queued, 1, "no email queued for the approval");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(mails(&tag).iter().filter(|m| to_line(m).contains(&ben_email)).count(), 1);
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_logs WHERE action = 'notification.email_off' AND actor_id = $1::uuid",
    )
    .bind(&ben_login.user_id)
    .fetch_one(&public)
    .await
    .expect("audit");
    assert_eq!(audited, 1);
}

/// An application assigned while the relay is a port nobody listens on: the assignment's email
/// waits in the outbox. The app, and the public database to read the outbox in.
async fn assigned_with_the_relay_down(max_attempts: i32) -> (TestApp, sqlx::PgPool) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let mail = MailSettings { max_attempts, ..settings(format!("smtp://127.0.0.1:{port}"), &tag) };
    let app = TestApp::spawn_configured(move |public| public.service.mail = Some(mail), |_| {}).await;
    let (ben_login, admin_login, cw_login) =
        (app.dev_login("beneficiary").await, app.dev_login("admin").await, app.dev_login("caseworker").await);
    let beneficiary = Client { app: &app, who: &ben_login };
    let admin = Client { app: &app, who: &admin_login };
    let public = sqlx::PgPool::connect(&app.database(Database::Public).app_url()).await.expect("public db");
    let application = json!({ "kind": "tech", "amount_cents": 20_000,
        "details": { "description": "A phone for appointments", "needed_by": "2099-05-01" } });
    let (_, submitted): (u16, Value) = beneficiary.send(Method::POST, "/applications", Some(&application)).await;
    let id = submitted["id"].as_str().expect("id");
    let (status, _) =
        admin.put(&format!("/staff/applications/{id}/caseworker"), &json!({"caseworker_id": cw_login.user_id})).await;
    assert_eq!(status, 200, "the request does not wait on email");
    (app, public)
}

/// The outbox's row as `sql` reads it, once `ready` holds for it (10 s at most).
async fn outbox_row<T>(public: &sqlx::PgPool, sql: &str, ready: impl Fn(&T) -> bool) -> Option<T>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    for _ in 0..200 {
        let row: Option<T> = sqlx::query_as(sql).fetch_optional(public).await.expect("outbox");
        if let Some(row) = row.filter(|r| ready(r)) {
            return Some(row);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

#[tokio::test]
async fn an_unreachable_relay_leaves_the_email_queued_for_later() {
    let (_app, public) = assigned_with_the_relay_down(3).await;
    let failed: Option<(i32, Option<String>, bool, bool)> = outbox_row(
        &public,
        "SELECT attempts, last_error, sent_at IS NULL AND given_up_at IS NULL, \
         next_attempt_at BETWEEN now() + interval '10 seconds' AND now() + interval '40 seconds' \
         FROM email_outbox",
        |row: &(i32, Option<String>, bool, bool)| row.1.is_some(),
    )
    .await;
    let (attempts, error, pending, later) = failed.expect("the failed attempt was never recorded");
    let error = error.unwrap_or_default();
    assert_eq!(attempts, 1);
    assert!(pending && later, "queued, for a later attempt after the first backoff (30 s), not the lease");
    assert!(!error.contains('@'), "no address in the error: {error}");
}

#[tokio::test]
async fn an_email_is_given_up_once_its_attempts_are_used() {
    let (_app, public) = assigned_with_the_relay_down(1).await;
    let given_up: Option<(i32, Option<String>, bool)> = outbox_row(
        &public,
        "SELECT attempts, last_error, given_up_at IS NOT NULL AND sent_at IS NULL FROM email_outbox",
        |row: &(i32, Option<String>, bool)| row.1.is_some() && row.2,
    )
    .await;
    let (attempts, error, _) = given_up.expect("the email was never given up");
    let error = error.unwrap_or_default();
    assert_eq!(attempts, 1);
    assert!(!error.contains('@'), "{error}");
}
