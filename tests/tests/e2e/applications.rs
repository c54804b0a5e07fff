//! Applications through the public API: a beneficiary submits one, its details go to
//! phi-vault and never rest in the public database; an admin assigns a caseworker, who then (and
//! only then) reads the details; the status machine allows only its moves, each with a note, an
//! event, a notification and an audit row naming the proven actor. Bad input changes nothing.
//! The journey from submission to funding is a test per step, each taking a fresh application to
//! where its step starts (`taken_to`); its history, notifications and trail are checked after the
//! whole journey.

use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use common::db::Database;
use harness::auth::{Login, People};
use harness::check::{count, message};
use harness::client::Client;
use harness::TestApp;

fn application(description: &str) -> Value {
    json!({ "kind": "rent", "amount_cents": 85_000,
            "details": { "description": description, "needed_by": "2099-01-31" } })
}

/// What the beneficiary needs, in the details: only phi-vault may hold it.
const SECRET: &str = "Behind two months on rent after a relapse in March";
/// Details records in phi-vault.
const DETAILS_RECORDS: &str = "SELECT count(*) FROM records WHERE category = 'application_details'";
/// The caseworker's note asking for more.
const LANDLORD_NOTE: &str = "Please add the landlord's name";

/// The details the beneficiary sends back when asked for the landlord's name.
fn landlord_named() -> Value {
    json!({"details": {"description": "Landlord is Pat Doe at Maple Court; two months behind"}})
}

/// Submits `body` as the beneficiary under the idempotency key `key`.
async fn submit(beneficiary: &Client<'_>, body: &Value, key: &str) -> (u16, Value) {
    beneficiary.send_keyed(Method::POST, "/applications", Some(body), Some(key)).await
}

/// The beneficiary's application for [`SECRET`], submitted (version 1); its id.
async fn submitted(beneficiary: &Client<'_>) -> String {
    let (status, submitted) = submit(beneficiary, &application(SECRET), "apply-1").await;
    assert_eq!(status, 201, "{submitted}");
    submitted["id"].as_str().expect("id").to_owned()
}

/// `who` assigns the user `caseworker_id` to application `id`.
async fn assign(who: &Client<'_>, id: &str, caseworker_id: &str) -> (u16, Value) {
    who.put(&format!("/staff/applications/{id}/caseworker"), &json!({ "caseworker_id": caseworker_id })).await
}

/// `who` moves application `id` to `status` with `note`, deciding on the `version` they read.
async fn decide(who: &Client<'_>, id: &str, status: &str, note: &str, version: i64) -> (u16, Value) {
    let body = json!({ "status": status, "note": note, "version": version });
    who.post(&format!("/staff/applications/{id}/status"), &body).await
}

/// The steps after submission, in the order [`taken_to`] takes them.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
enum Step {
    Assigned,
    ActionNeeded,
    Updated,
    Approved,
    Funded,
}

/// Takes application `id` one step, expected to succeed: the admin assigns the caseworker
/// (version 2), who asks for the landlord's name (3); the beneficiary adds it (4); the caseworker
/// approves (5) and the admin funds (6).
async fn take(step: Step, id: &str, people: &People, app: &TestApp) {
    let [beneficiary, admin, caseworker, _] = people.clients(app);
    let (status, body) = match step {
        Step::Assigned => assign(&admin, id, &people.caseworker.user_id).await,
        Step::ActionNeeded => decide(&caseworker, id, "action_needed", LANDLORD_NOTE, 2).await,
        Step::Updated => beneficiary.patch(&format!("/applications/{id}"), &landlord_named()).await,
        Step::Approved => decide(&caseworker, id, "approved", "Lease and amount check out", 4).await,
        Step::Funded => decide(&admin, id, "funded", "Paid to the landlord", 5).await,
    };
    assert_eq!(status, 200, "{step:?}: {body}");
}

/// Takes the submitted application `id` through every step up to `last` ([`take`]).
async fn taken_to(last: Step, id: &str, people: &People, app: &TestApp) {
    let steps = [Step::Assigned, Step::ActionNeeded, Step::Updated, Step::Approved, Step::Funded];
    for step in steps.into_iter().take_while(|step| *step <= last) {
        take(step, id, people, app).await;
    }
}

/// The whole journey: submitted, repeated under its key, and taken to funded, with every refusal
/// the step tests check tried where they try it (so the trail and history assertions also show
/// that a refusal leaves no trace); its id.
async fn funded_journey(people: &People, app: &TestApp) -> String {
    let [beneficiary, admin, caseworker, other] = people.clients(app);
    let (ben, cw) = (people.beneficiary.user_id.as_str(), people.caseworker.user_id.as_str());
    let id = submitted(&beneficiary).await;
    let (status, repeated) = submit(&beneficiary, &application(SECRET), "apply-1").await;
    assert_eq!(status, 200, "the repeat: {repeated}");
    let path = format!("/applications/{id}");
    let refused = [
        submit(&beneficiary, &application("A different request entirely"), "apply-1").await.0,
        other.get(&path).await.0,
        other.patch(&path, &json!({"amount_cents": 1})).await.0,
        beneficiary.get("/staff/applications").await.0,
        caseworker.get(&format!("/caseworker/applications/{id}")).await.0,
        decide(&caseworker, &id, "approved", "Looks complete", 1).await.0,
        assign(&caseworker, &id, cw).await.0,
        assign(&admin, &id, ben).await.0,
    ];
    assert_eq!(refused, [422, 404, 404, 403, 404, 403, 403, 422], "before assignment");
    take(Step::Assigned, &id, people, app).await;
    let refused = [
        decide(&caseworker, &id, "funded", "Paying now", 2).await.0,
        decide(&caseworker, &id, "action_needed", "", 2).await.0,
        decide(&caseworker, &id, "paused", "Waiting", 2).await.0,
    ];
    assert_eq!(refused, [409, 422, 422], "moves the machine refuses");
    take(Step::ActionNeeded, &id, people, app).await;
    take(Step::Updated, &id, people, app).await;
    assert_eq!(decide(&caseworker, &id, "approved", "Approving what I read", 3).await.0, 409, "a stale version");
    take(Step::Approved, &id, people, app).await;
    let refused = [
        beneficiary.patch(&path, &json!({"amount_cents": 90_000})).await.0,
        decide(&caseworker, &id, "funded", "I approved it, so I pay it", 5).await.0,
    ];
    assert_eq!(refused, [409, 403], "after approval");
    take(Step::Funded, &id, people, app).await;
    let refused = [decide(&admin, &id, "approved", "Back again", 6).await.0, assign(&admin, &id, cw).await.0];
    assert_eq!(refused, [409, 409], "after funding");
    id
}

#[tokio::test]
async fn an_application_is_submitted_once_per_key_with_its_details_only_in_the_vault() {
    let app = TestApp::spawn().await;
    let people = app.people().await;
    let [beneficiary, ..] = people.clients(&app);
    let public = sqlx::PgPool::connect(&app.database(Database::Public).app_url()).await.expect("public db");
    let phi = sqlx::PgPool::connect(&app.database(Database::Phi).app_url()).await.expect("phi db");

    // Submitting, once, under an idempotency key.
    let (status, submitted) = submit(&beneficiary, &application(SECRET), "apply-1").await;
    assert_eq!(status, 201, "{submitted}");
    assert_eq!(submitted["status"], "reviewing");
    assert_eq!(submitted["amount_cents"], 85_000);
    assert_eq!(submitted["beneficiary_id"], people.beneficiary.user_id.as_str());
    let (status, again) = submit(&beneficiary, &application(SECRET), "apply-1").await;
    assert_eq!((status, &again), (200, &submitted), "a repeat answers the first");
    let (status, body) = submit(&beneficiary, &application("A different request entirely"), "apply-1").await;
    assert_eq!(status, 422, "{body}");
    assert!(message(&body).contains("Idempotency-Key"), "{body}");
    assert_eq!(count(&public, "SELECT count(*) FROM applications").await, 1);

    // The details are in the vault, encrypted; the public row holds none of them.
    let row: String =
        sqlx::query_scalar("SELECT row_to_json(a)::text FROM applications a").fetch_one(&public).await.expect("row");
    assert!(!row.contains("relapse"), "{row}");
    assert_eq!(count(&phi, DETAILS_RECORDS).await, 1);
    for pool in [public, phi] {
        pool.close().await;
    }
    app.stop().await;
}

#[tokio::test]
async fn only_its_beneficiary_reads_an_application_and_its_history() {
    let app = TestApp::spawn().await;
    let people = app.people().await;
    let [beneficiary, _, _, other] = people.clients(&app);
    let id = submitted(&beneficiary).await;

    // The beneficiary reads it back, with its history; nobody else's id works.
    let path = format!("/applications/{id}");
    let (status, mine) = beneficiary.get(&path).await;
    assert_eq!(status, 200, "{mine}");
    assert_eq!(mine["details"]["description"], SECRET);
    assert_eq!(mine["history"][0]["to_status"], "reviewing");
    let (_, page) = beneficiary.get("/applications?status=reviewing").await;
    assert_eq!(page["applications"][0]["id"], id.as_str());
    assert_eq!(other.get(&path).await.0, 404, "another beneficiary's id");
    assert_eq!(other.patch(&path, &json!({"amount_cents": 1})).await.0, 404);
    let (_, theirs) = other.get("/applications").await;
    assert_eq!(theirs["applications"], json!([]));
    app.stop().await;
}

#[tokio::test]
async fn staff_queue_an_application_without_details_and_an_unassigned_caseworker_reads_and_decides_nothing() {
    let app = TestApp::spawn().await;
    let people = app.people().await;
    let [beneficiary, _, caseworker, _] = people.clients(&app);
    let id = submitted(&beneficiary).await;

    let (status, queue) = caseworker.get("/staff/applications?status=reviewing&assigned=none&kind=rent").await;
    assert_eq!(status, 200, "{queue}");
    assert_eq!(queue["applications"][0]["id"], id.as_str());
    assert!(!queue.to_string().contains("relapse"));
    assert_eq!(beneficiary.get("/staff/applications").await.0, 403);
    assert_eq!(caseworker.get(&format!("/caseworker/applications/{id}")).await.0, 404, "not on the care team");
    assert_eq!(decide(&caseworker, &id, "approved", "Looks complete", 1).await.0, 403, "not assigned");
    app.stop().await;
}

#[tokio::test]
async fn an_admin_assigns_a_caseworker_who_then_reads_the_details() {
    let app = TestApp::spawn().await;
    let people = app.people().await;
    let (ben_login, cw_login) = (&people.beneficiary, &people.caseworker);
    let [beneficiary, admin, caseworker, _] = people.clients(&app);
    let id = submitted(&beneficiary).await;

    assert_eq!(assign(&caseworker, &id, &cw_login.user_id).await.0, 403);
    assert_eq!(assign(&admin, &id, &ben_login.user_id).await.0, 422, "not a caseworker");
    let (status, assigned) = assign(&admin, &id, &cw_login.user_id).await;
    assert_eq!(status, 200, "{assigned}");
    assert_eq!(assigned["caseworker_id"], cw_login.user_id.as_str());
    let (status, seen) = caseworker.get(&format!("/caseworker/applications/{id}")).await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["details"]["description"], SECRET);
    let (_, mine_to_review) = caseworker.get("/staff/applications?assigned=me").await;
    assert_eq!(mine_to_review["applications"][0]["id"], id.as_str());
    app.stop().await;
}

#[tokio::test]
async fn the_status_machine_allows_only_its_moves_each_with_a_note() {
    let app = TestApp::spawn().await;
    let people = app.people().await;
    let [beneficiary, _, caseworker, _] = people.clients(&app);
    let id = submitted(&beneficiary).await;
    taken_to(Step::Assigned, &id, &people, &app).await;

    let (status, body) = decide(&caseworker, &id, "funded", "Paying now", 2).await;
    assert_eq!(status, 409, "{body}");
    assert!(message(&body).contains("allowed: approved, action_needed, rejected"), "{body}");
    assert_eq!(decide(&caseworker, &id, "action_needed", "", 2).await.0, 422, "a note is required");
    assert_eq!(decide(&caseworker, &id, "paused", "Waiting", 2).await.0, 422, "no such status");
    let (status, body) = decide(&caseworker, &id, "action_needed", LANDLORD_NOTE, 2).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "action_needed");
    app.stop().await;
}

#[tokio::test]
async fn asked_for_action_the_beneficiary_is_notified_and_an_update_sends_it_back_to_review() {
    let app = TestApp::spawn().await;
    let people = app.people().await;
    let [beneficiary, _, caseworker, _] = people.clients(&app);
    let phi = sqlx::PgPool::connect(&app.database(Database::Phi).app_url()).await.expect("phi db");
    let id = submitted(&beneficiary).await;
    taken_to(Step::ActionNeeded, &id, &people, &app).await;

    // The beneficiary hears of it, and updating sends it back to review with new details; the
    // details replaced are deleted from the vault.
    let (_, unread) = beneficiary.get("/notifications?unread=true").await;
    let notes = unread["notifications"].as_array().expect("notifications");
    assert_eq!(notes.len(), 1, "{unread}");
    assert_eq!(notes[0]["kind"], "application.status");
    assert_eq!(notes[0]["resource_id"], id.as_str());
    assert!(!unread.to_string().contains("landlord"), "notifications carry no detail");
    let (status, updated) = beneficiary.patch(&format!("/applications/{id}"), &landlord_named()).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["status"], "reviewing");
    assert_eq!(count(&phi, DETAILS_RECORDS).await, 1, "the replaced details are gone");
    let (_, seen) = caseworker.get(&format!("/caseworker/applications/{id}")).await;
    assert!(seen["details"]["description"].as_str().expect("d").starts_with("Landlord is Pat Doe"));
    assert_eq!(seen["application"]["version"], 4);
    // A decision made on what the caseworker read before the edit is refused.
    let (status, body) = decide(&caseworker, &id, "approved", "Approving what I read", 3).await;
    assert_eq!(status, 409, "{body}");
    assert!(message(&body).contains("read it again"), "{body}");
    phi.close().await;
    app.stop().await;
}

#[tokio::test]
async fn an_approved_application_is_funded_by_a_second_person_and_then_changes_no_more() {
    let app = TestApp::spawn().await;
    let people = app.people().await;
    let [beneficiary, admin, caseworker, _] = people.clients(&app);
    let id = submitted(&beneficiary).await;
    taken_to(Step::Updated, &id, &people, &app).await;

    // Approved, then funded; after that the beneficiary may change nothing, staff nothing more.
    assert_eq!(decide(&caseworker, &id, "approved", "Lease and amount check out", 4).await.0, 200);
    let (status, body) = beneficiary.patch(&format!("/applications/{id}"), &json!({"amount_cents": 90_000})).await;
    assert_eq!(status, 409, "{body}");
    assert!(message(&body).contains("reviewing or action_needed"), "{body}");
    assert_eq!(decide(&caseworker, &id, "funded", "I approved it, so I pay it", 5).await.0, 403, "two people");
    assert_eq!(decide(&admin, &id, "funded", "Paid to the landlord", 5).await.0, 200);
    let (status, body) = decide(&admin, &id, "approved", "Back again", 6).await;
    assert_eq!(status, 409);
    assert!(message(&body).contains("allowed: none"), "{body}");
    let (status, body) = assign(&admin, &id, &people.caseworker.user_id).await;
    assert_eq!(status, 409, "a funded application needs no reviewer: {body}");
    app.stop().await;
}

#[tokio::test]
async fn a_funded_applications_notifications_page_newest_first_and_are_read_by_their_owner_only() {
    let app = TestApp::spawn().await;
    let people = app.people().await;
    let [beneficiary, _, caseworker, other] = people.clients(&app);
    funded_journey(&people, &app).await;

    let (_, all) = beneficiary.get("/notifications?limit=2").await;
    assert_eq!(all["notifications"].as_array().expect("page").len(), 2);
    let (_, rest) = beneficiary.get(&format!("/notifications?after={}", all["next_after"])).await;
    assert_eq!(rest["notifications"].as_array().expect("rest").len(), 1, "three status changes in all");
    let first = all["notifications"][0]["id"].as_str().expect("id").to_owned();
    assert_eq!(other.send(Method::PATCH, &format!("/notifications/{first}/read"), None).await.0, 404);
    let (status, read) = beneficiary.send(Method::PATCH, &format!("/notifications/{first}/read"), None).await;
    assert_eq!(status, 200, "{read}");
    assert!(read["read_at"].is_string());
    let (_, unread) = beneficiary.get("/notifications?unread=true").await;
    assert_eq!(unread["notifications"].as_array().expect("unread").len(), 2);
    let (_, cw_notes) = caseworker.get("/notifications").await;
    let kinds: Vec<&str> =
        cw_notes["notifications"].as_array().expect("n").iter().filter_map(|n| n["kind"].as_str()).collect();
    assert_eq!(kinds, ["application.updated", "application.assigned"]);
    app.stop().await;
}

#[tokio::test]
async fn a_funded_applications_history_and_trail_name_each_step_and_its_proven_actor() {
    let app = TestApp::spawn().await;
    let people = app.people().await;
    let (ben_login, admin_login, cw_login) = (&people.beneficiary, &people.admin, &people.caseworker);
    let [beneficiary, ..] = people.clients(&app);
    let public = sqlx::PgPool::connect(&app.database(Database::Public).app_url()).await.expect("public db");
    let phi = sqlx::PgPool::connect(&app.database(Database::Phi).app_url()).await.expect("phi db");
    let id = funded_journey(&people, &app).await;

    let (_, mine) = beneficiary.get(&format!("/applications/{id}")).await;
    let steps: Vec<(&str, &str)> = mine["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|e| (e["to_status"].as_str().unwrap_or("?"), e["by_role"].as_str().unwrap_or("?")))
        .collect();
    assert_eq!(
        steps,
        [
            ("reviewing", "beneficiary"),
            ("action_needed", "caseworker"),
            ("reviewing", "beneficiary"),
            ("approved", "caseworker"),
            ("funded", "admin")
        ]
    );
    assert_eq!(mine["history"][1]["note"], "Please add the landlord's name");
    assert_eq!(mine["history"][0]["amount_cents"], 85_000);
    assert_eq!(mine["application"]["status"], "funded");

    // The trail names the proven actors, and verifies.
    let trail: Vec<(String, Option<Uuid>)> = sqlx::query_as(
        "SELECT action, actor_id FROM audit_logs WHERE action LIKE 'application.%' AND outcome = 'success' ORDER BY seq",
    )
    .fetch_all(&public)
    .await
    .expect("audit");
    let id_of = |login: &Login| Uuid::parse_str(&login.user_id).ok();
    let expected = [
        ("application.submit", id_of(ben_login)),
        ("application.submit.repeated", id_of(ben_login)),
        ("application.assign", id_of(admin_login)),
        ("application.status", id_of(cw_login)),
        ("application.update", id_of(ben_login)),
        ("application.status", id_of(cw_login)),
        ("application.status", id_of(admin_login)),
    ];
    let trail: Vec<(&str, Option<Uuid>)> = trail.iter().map(|(a, id)| (a.as_str(), *id)).collect();
    assert_eq!(trail, expected);
    assert!(public_api::audit::verify(&public, 100).await.expect("verify").intact());
    assert!(phi_vault::access_log::verify(&phi, 100).await.expect("verify").intact());
    for pool in [public, phi] {
        pool.close().await;
    }
    app.stop().await;
}

#[tokio::test]
async fn bad_applications_are_refused_by_name_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let login = app.dev_login("beneficiary").await;
    let beneficiary = Client { app: &app, who: &login };
    let public = sqlx::PgPool::connect(&app.database(Database::Public).app_url()).await.expect("public db");
    let phi = sqlx::PgPool::connect(&app.database(Database::Phi).app_url()).await.expect("phi db");
    let with = |field: &str, value: Value| {
        let mut body = application("Two months behind on rent");
        body[field] = value;
        body
    };
    let cases = [
        (with("kind", json!("yacht")), 422, "kind"),
        (with("amount_cents", json!(0)), 422, "amount_cents"),
        (with("amount_cents", json!(1_000_001)), 422, "amount_cents"),
        (with("amount_cents", json!("850")), 422, "amount_cents"),
        (with("details", json!({"description": "short"})), 422, "details.description"),
        (
            with("details", json!({"description": "Long enough text", "needed_by": "2001-01-01"})),
            422,
            "details.needed_by",
        ),
        (with("details", json!({"description": "Long enough text", "ssn": "123"})), 422, "ssn"),
        (with("status", json!("approved")), 422, "status"),
    ];
    for (body, status, named) in cases {
        let (got, answer) = beneficiary.post("/applications", &body).await;
        assert_eq!(got, status, "{body}: {answer}");
        assert!(message(&answer).contains(named), "{named}: {answer}");
        assert!(answer["error"]["request_id"].is_string());
    }
    assert_eq!(beneficiary.post_raw("/applications", "{\"kind\": ").await.0, 400);
    let oversize = json!({"kind": "rent", "amount_cents": 1, "details": {"description": "x".repeat(2 * 1024 * 1024)}});
    assert_eq!(beneficiary.post("/applications", &oversize).await.0, 413);
    let (status, body) = beneficiary
        .send_keyed(Method::POST, "/applications", Some(&application("Valid text here")), Some("has space"))
        .await;
    assert_eq!(status, 422, "{body}");
    let forged = Login { access_token: format!("{}x", login.access_token), ..login.clone() };
    assert_eq!(Client { app: &app, who: &forged }.post("/applications", &application("Valid text here")).await.0, 401);
    assert_eq!(count(&public, "SELECT count(*) FROM applications").await, 0, "nothing stored");
    assert_eq!(count(&phi, "SELECT count(*) FROM records").await, 0, "nothing in the vault either");

    // Concurrent twins under one key make one application and leave no orphaned record.
    let body = application("Two months behind on rent");
    let twin = || beneficiary.send_keyed(Method::POST, "/applications", Some(&body), Some("twin-key"));
    let (a, b) = tokio::join!(twin(), twin());
    assert_eq!(a.1["id"], b.1["id"], "{a:?} {b:?}");
    let mut statuses = [a.0, b.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 201]);
    assert_eq!(count(&public, "SELECT count(*) FROM applications").await, 1);
    assert_eq!(count(&phi, "SELECT count(*) FROM records").await, 1, "the loser's record was deleted");

    // An update with nothing in it, or to a bad amount, changes nothing.
    let path = format!("/applications/{}", a.1["id"].as_str().expect("id"));
    assert_eq!(beneficiary.patch(&path, &json!({})).await.0, 422);
    assert_eq!(beneficiary.patch(&path, &json!({"amount_cents": -5})).await.0, 422);
    assert_eq!(beneficiary.get("/applications?status=lost").await.0, 422);
    assert_eq!(beneficiary.get("/applications?limit=0").await.0, 422);
    let version: i32 = sqlx::query_scalar("SELECT version FROM applications").fetch_one(&public).await.expect("v");
    assert_eq!(version, 1);
    for pool in [public, phi] {
        pool.close().await;
    }
    app.stop().await;
}

/// Insurance goes pending → rejected by a caseworker on the care team, and the dashboard shows
/// it all from the rows: counts, days sober, insurance, unread notifications, what to do next.
#[tokio::test]
async fn insurance_is_decided_by_the_care_team_and_the_dashboard_reflects_the_rows() {
    let app = TestApp::spawn().await;
    let (ben_login, admin_login, cw_login) =
        (app.dev_login("beneficiary").await, app.dev_login("admin").await, app.dev_login("caseworker").await);
    let (beneficiary, admin, caseworker) = (
        Client { app: &app, who: &ben_login },
        Client { app: &app, who: &admin_login },
        Client { app: &app, who: &cw_login },
    );
    let (status, empty) = beneficiary.get("/beneficiaries/me/dashboard").await;
    assert_eq!(status, 200, "{empty}");
    assert_eq!(
        empty["applications"],
        json!({"reviewing": 0, "action_needed": 0, "approved": 0, "rejected": 0, "funded": 0})
    );
    assert_eq!(empty["days_sober"], Value::Null);
    assert_eq!(empty["insurance"], Value::Null);
    assert_eq!(empty["action_items"], json!([{"kind": "complete_profile", "resource_id": null, "note": null}]));
    assert_eq!(caseworker.get("/beneficiaries/me/dashboard").await.0, 403);

    // Insurance: member details to the vault, one pending at a time, bad fields named.
    let card = json!({"payer": "Health First Colorado (Medicaid)", "member_id": "X123-4567"});
    for (bad, named) in [
        (json!({"payer": "HFC", "member_id": "no spaces allowed"}), "member_id"),
        (json!({"payer": "", "member_id": "X1234"}), "payer"),
        (json!({"payer": "HFC", "member_id": "X1234", "group_number": "G 1"}), "group_number"),
        (json!({"payer": "HFC"}), "member_id"),
    ] {
        let (status, body) = beneficiary.post("/beneficiaries/me/insurance/verify", &bad).await;
        assert_eq!(status, 422, "{bad}: {body}");
        assert!(message(&body).contains(named), "{named}: {body}");
    }
    assert_eq!(beneficiary.get("/beneficiaries/me/insurance").await.0, 404, "none yet");
    let (status, pending) = beneficiary.post("/beneficiaries/me/insurance/verify", &card).await;
    assert_eq!(status, 201, "{pending}");
    assert_eq!((pending["status"].as_str(), pending["provider"].as_str()), (Some("pending"), Some("manual")));
    let (status, body) = beneficiary.post("/beneficiaries/me/insurance/verify", &card).await;
    assert_eq!(status, 409, "{body}");
    let phi = sqlx::PgPool::connect(&app.database(Database::Phi).app_url()).await.expect("phi db");
    assert_eq!(
        count(&phi, "SELECT count(*) FROM records WHERE category = 'insurance'").await,
        1,
        "the 409 kept nothing"
    );
    let id = pending["id"].as_str().expect("id").to_owned();

    // A caseworker sees the queue; off the care team they neither read nor decide.
    let (_, queue) = caseworker.get("/staff/insurance").await;
    assert_eq!(queue["verifications"][0]["id"], id.as_str());
    assert!(!queue.to_string().contains("X123"), "no member details in the queue");
    let decision = format!("/staff/insurance/{id}/decision");
    let reject = json!({"status": "rejected", "reason": "The member id does not match the card on file"});
    assert_eq!(caseworker.post(&decision, &reject).await.0, 404, "not on the care team");
    assert_eq!(caseworker.get(&format!("/caseworker/insurance/{id}")).await.0, 404);
    assert_eq!(admin.post(&decision, &reject).await.0, 403, "caseworkers decide");
    let team = format!("/staff/care-team/{}/{}", cw_login.user_id, ben_login.user_id);
    assert_eq!(admin.send(Method::PUT, &team, None).await.0, 204);
    let (status, seen) = caseworker.get(&format!("/caseworker/insurance/{id}")).await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["details"]["member_id"], "X123-4567");
    assert_eq!(caseworker.post(&decision, &json!({"status": "rejected"})).await.0, 422, "a rejection needs a reason");
    assert_eq!(caseworker.post(&decision, &json!({"status": "pending"})).await.0, 422);
    let (status, decided) = caseworker.post(&decision, &reject).await;
    assert_eq!(status, 200, "{decided}");
    assert_eq!(decided["status"], "rejected");
    assert_eq!(decided["decided_by"], cw_login.user_id.as_str(), "the proven decider");
    assert!(decided["decided_at"].is_string());
    assert_eq!(caseworker.post(&decision, &json!({"status": "verified"})).await.0, 409, "already decided");

    // The dashboard, from the rows.
    let thirty_days_ago = (time::OffsetDateTime::now_utc() - time::Duration::days(30)).date();
    let (status, body) = beneficiary.patch("/users/me", &json!({"sobriety_date": thirty_days_ago.to_string()})).await;
    assert_eq!(status, 200, "{body}");
    app.put_sample_profile(&ben_login).await;
    assert_eq!(beneficiary.post("/applications", &application("Bus pass for the month to get to work")).await.0, 201);
    let (_, board) = beneficiary.get("/beneficiaries/me/dashboard").await;
    assert_eq!(board["days_sober"], 30, "{board}");
    assert_eq!(board["applications"]["reviewing"], 1);
    assert_eq!(board["open_applications"].as_array().expect("open").len(), 1);
    assert_eq!(board["insurance"]["status"], "rejected");
    assert_eq!(board["unread_notifications"], 1, "the insurance decision");
    assert_eq!(
        board["action_items"],
        json!([{"kind": "resubmit_insurance", "resource_id": id, "note": "The member id does not match the card on file"}])
    );

    // Erasure ends what cannot go on without the records: the open application is rejected by
    // the admin who erased, the pending insurance request too; nothing new can be stored.
    let (status, again) = beneficiary.post("/beneficiaries/me/insurance/verify", &card).await;
    assert_eq!(status, 201, "{again}");
    let (_, page) = beneficiary.get("/applications").await;
    let open = page["applications"][0]["id"].as_str().expect("id").to_owned();
    let erase = format!("/staff/beneficiaries/{}/phi?reason=Patient%20asked%20to%20be%20forgotten", ben_login.user_id);
    assert_eq!(admin.send(Method::DELETE, &erase, None).await.0, 204);
    let (status, erased) = beneficiary.get(&format!("/applications/{open}")).await;
    assert_eq!(status, 200, "{erased}");
    assert_eq!(erased["details"], Value::Null);
    assert_eq!(erased["application"]["status"], "rejected");
    let last = erased["history"].as_array().expect("history").last().cloned().unwrap_or_default();
    assert_eq!((last["to_status"].as_str(), last["by_role"].as_str()), (Some("rejected"), Some("admin")));
    let (_, insurance) = beneficiary.get("/beneficiaries/me/insurance").await;
    assert_eq!(insurance["status"], "rejected");
    assert_eq!(insurance["decided_by"], admin_login.user_id.as_str());
    assert_eq!(caseworker.get(&format!("/caseworker/applications/{open}")).await.0, 404, "no details to read");
    let (status, body) = beneficiary.post("/applications", &application("A new request after erasure")).await;
    assert_eq!(status, 409, "{body}");
    assert!(message(&body).contains("erased"), "{body}");
    let public = sqlx::PgPool::connect(&app.database(Database::Public).app_url()).await.expect("public db");
    let decided_by = "UPDATE insurance_verifications SET decided_by = NULL WHERE status <> 'pending'";
    assert!(sqlx::query(decided_by).execute(&public).await.is_err(), "a decision stands");
    public.close().await;
    phi.close().await;
    app.stop().await;
}

/// Reads a server-sent event stream until an event of `name` arrives; returns its data. `seen`
/// keeps everything the stream said; `at` is where the events not yet read start. Events are
/// blocks ending in a blank line; comment lines (`:`, the heartbeat) are skipped wherever they
/// fall.
async fn next_event(response: &mut reqwest::Response, seen: &mut String, at: &mut usize, name: &str) -> String {
    next_event_with_id(response, seen, at, name).await.1
}

/// Like [`next_event`], also returning the event's `id` (empty when it has none).
async fn next_event_with_id(
    response: &mut reqwest::Response,
    seen: &mut String,
    at: &mut usize,
    name: &str,
) -> (String, String) {
    let deadline = std::time::Duration::from_secs(60);
    tokio::time::timeout(deadline, async {
        loop {
            while let Some(end) = seen[*at..].find("\n\n") {
                let block = seen[*at..*at + end].to_owned();
                *at += end + 2;
                let (mut event, mut data, mut id) = (None, Vec::new(), String::new());
                for line in block.lines().filter(|l| !l.starts_with(':')) {
                    if let Some(value) = line.strip_prefix("event:") {
                        event = Some(value.trim().to_owned());
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push(value.strip_prefix(' ').unwrap_or(value).to_owned());
                    } else if let Some(value) = line.strip_prefix("id:") {
                        id = value.trim().to_owned();
                    }
                }
                if event.as_deref() == Some(name) {
                    return (id, data.join("\n"));
                }
            }
            let chunk = response.chunk().await.expect("stream").expect("stream ended");
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no `{name}` event; the stream said: {seen}"))
}

/// A notification written through one public-api instance reaches a client streaming from
/// another: the rows' trigger announces on PostgreSQL's channel, each instance listens.
#[tokio::test]
async fn a_notification_raised_on_one_instance_streams_to_a_client_on_another() {
    let app = TestApp::spawn().await;
    let second = app.another_public_api().await;
    let (ben_login, admin_login) = (app.dev_login("beneficiary").await, app.dev_login("admin").await);
    let (beneficiary, admin) = (Client { app: &app, who: &ben_login }, Client { app: &app, who: &admin_login });
    let (status, submitted) = beneficiary.post("/applications", &application("Laptop for a job training course")).await;
    assert_eq!(status, 201, "{submitted}");
    let id = submitted["id"].as_str().expect("id").to_owned();

    let stream = format!("{}/api/v1/notifications/stream", second.url);
    assert_eq!(app.http.get(&stream).send().await.expect("send").status(), 401);
    let mut response = app.http.get(&stream).bearer_auth(&ben_login.access_token).send().await.expect("stream");
    assert_eq!(response.status(), 200);
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert!(content_type.starts_with("text/event-stream"), "{content_type}");
    let (mut seen, mut at) = (String::new(), 0);
    assert_eq!(next_event(&mut response, &mut seen, &mut at, "unread").await, r#"{"unread":0}"#);

    // The admin's decision goes through the first instance; the stream on the second hears it.
    let decision = json!({"status": "action_needed", "note": "Please add the course's start date", "version": 1});
    assert_eq!(admin.post(&format!("/staff/applications/{id}/status"), &decision).await.0, 200);
    let data = next_event(&mut response, &mut seen, &mut at, "notification").await;
    let notification: Value = serde_json::from_str(&data).expect("json");
    assert_eq!(notification["kind"], "application.status");
    assert_eq!(notification["resource_id"], id.as_str());
    assert!(!data.contains("start date"), "the note is not in the notification");
    // Another user's notification does not reach this stream; the next of ours does.
    let team = format!("/staff/care-team/{}/{}", Uuid::nil(), ben_login.user_id);
    assert_eq!(admin.send(Method::PUT, &team, None).await.0, 422);
    let update = json!({"details": {"description": "Laptop for a course that starts 2099-02-01"}});
    assert_eq!(beneficiary.patch(&format!("/applications/{id}"), &update).await.0, 200);
    let decision = json!({"status": "approved", "note": "Approved", "version": 3});
    assert_eq!(admin.post(&format!("/staff/applications/{id}/status"), &decision).await.0, 200);
    let data = next_event(&mut response, &mut seen, &mut at, "notification").await;
    assert!(data.contains("application.status"), "{data}");

    // At most five streams per person.
    let mut more = Vec::new();
    for _ in 0..4 {
        let extra = app.http.get(&stream).bearer_auth(&ben_login.access_token).send().await.expect("stream");
        assert_eq!(extra.status(), 200);
        more.push(extra);
    }
    let sixth = app.http.get(&stream).bearer_auth(&ben_login.access_token).send().await.expect("stream");
    assert_eq!(sixth.status(), 429);
    drop(more);

    // Signing out ends the stream before anything more is sent to it.
    assert_eq!(beneficiary.send(Method::POST, "/auth/logout", None).await.0, 204);
    let public = sqlx::PgPool::connect(&app.database(Database::Public).app_url()).await.expect("public db");
    sqlx::query(
        "INSERT INTO notifications (id, user_id, kind, title, body) VALUES ($1, $2, 'test', 'After logout', 'x')",
    )
    .bind(Uuid::new_v4())
    .bind(Uuid::parse_str(&ben_login.user_id).expect("uuid"))
    .execute(&public)
    .await
    .expect("notification");
    assert_eq!(next_event(&mut response, &mut seen, &mut at, "end").await, "session ended");
    assert!(!seen.contains("After logout"), "{seen}");
    public.close().await;
    drop(response);
    second.shutdown.notify();
    app.stop().await;
}

/// A client that reconnects with `Last-Event-ID` first gets what was raised while it was away,
/// in order, and only its own; a malformed id is refused.
#[tokio::test]
async fn a_reconnecting_stream_resumes_from_the_last_event_id() {
    let app = TestApp::spawn().await;
    let (ben, donor) = (app.dev_login("beneficiary").await, app.dev_login("donor").await);
    let public = sqlx::PgPool::connect(&app.database(Database::Public).app_url()).await.expect("public db");
    let notify = |user: &str, title: &str| {
        let (public, user, title) = (public.clone(), Uuid::parse_str(user).expect("uuid"), title.to_owned());
        async move {
            sqlx::query("INSERT INTO notifications (id, user_id, kind, title, body) VALUES ($1, $2, 'test', $3, 'x')")
                .bind(Uuid::new_v4())
                .bind(user)
                .bind(title)
                .execute(&public)
                .await
                .expect("notification");
        }
    };
    let stream = app.api("/notifications/stream");
    let open = |last: Option<&str>| {
        let mut request = app.http.get(&stream).bearer_auth(&ben.access_token);
        if let Some(last) = last {
            request = request.header("last-event-id", last);
        }
        request.send()
    };
    let mut response = open(None).await.expect("stream");
    assert_eq!(response.status(), 200);
    let (mut seen, mut at) = (String::new(), 0);
    let (start, _) = next_event_with_id(&mut response, &mut seen, &mut at, "unread").await;
    assert!(start.parse::<i64>().is_ok(), "the unread event carries the starting place: {seen}");
    notify(&ben.user_id, "First").await;
    let (first_id, first) = next_event_with_id(&mut response, &mut seen, &mut at, "notification").await;
    assert!(first.contains("First"), "{first}");
    drop(response);

    // Raised while the client is away: two of its own, one of someone else's.
    notify(&ben.user_id, "Second").await;
    notify(&donor.user_id, "Not yours").await;
    notify(&ben.user_id, "Third").await;
    let mut response = open(Some(&first_id)).await.expect("stream");
    assert_eq!(response.status(), 200);
    let (mut seen, mut at) = (String::new(), 0);
    next_event(&mut response, &mut seen, &mut at, "unread").await;
    let (second_id, second) = next_event_with_id(&mut response, &mut seen, &mut at, "notification").await;
    let (_, third) = next_event_with_id(&mut response, &mut seen, &mut at, "notification").await;
    assert!(second.contains("Second") && third.contains("Third"), "{seen}");
    assert!(second_id.parse::<i64>().expect("id") > first_id.parse::<i64>().expect("id"));
    assert!(!seen.contains("First") && !seen.contains("Not yours"), "{seen}");
    drop(response);

    // Resuming from the place the `unread` event gave loses nothing either.
    let mut response = open(Some(&start)).await.expect("stream");
    let (mut seen, mut at) = (String::new(), 0);
    next_event(&mut response, &mut seen, &mut at, "unread").await;
    assert!(next_event(&mut response, &mut seen, &mut at, "notification").await.contains("First"));
    drop(response);

    for bad in ["abc", "-1", "1.5", "99999999999999999999999"] {
        let refused = open(Some(bad)).await.expect("stream");
        assert_eq!(refused.status(), 422, "{bad}");
        let body: Value = refused.json().await.expect("json");
        assert!(message(&body).contains("Last-Event-ID"), "{body}");
    }
    public.close().await;
    app.stop().await;
}
