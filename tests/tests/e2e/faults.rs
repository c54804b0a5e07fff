//! Faults fail closed: when the consent service cannot decide, nothing is disclosed and nothing
//! is stored or purged on a guess; a failed break-glass read still leaves its trail; a Vault
//! lost in the middle of a rewrap leaves every key usable and the job resumable. Each test
//! checks the databases afterwards, not only the status.

use common::client::ClientError;
use common::db::Database;
use harness::check::count;
use harness::consents::{coach_conversation, consent_to, keep_coach_conversations, revoke};
use harness::TestApp;
use serde_json::{json, Value};
use std::time::Duration;

/// Makes the consent service answer 500 (its table is gone) or restores it.
async fn break_consent_database(app: &TestApp, broken: bool) {
    let su = sqlx::PgPool::connect(&app.database(Database::Consent).url_as("postgres")).await.expect("superuser");
    let sql = if broken {
        "ALTER TABLE consents RENAME TO consents_unreachable"
    } else {
        "ALTER TABLE consents_unreachable RENAME TO consents"
    };
    sqlx::query(sql).execute(&su).await.expect("rename");
    su.close().await;
}

/// The newest access-log entry for `action`: (decision, reason).
async fn last_access(phi: &sqlx::PgPool, action: &str) -> (String, String) {
    let (decision, reason): (String, Option<String>) =
        sqlx::query_as("SELECT decision, reason FROM access_log WHERE action = $1 ORDER BY seq DESC LIMIT 1")
            .bind(action)
            .fetch_one(phi)
            .await
            .expect("access log");
    (decision, reason.unwrap_or_default())
}

#[tokio::test]
async fn a_partner_read_is_denied_when_the_consent_service_fails_or_is_gone() {
    let app = TestApp::spawn().await;
    let beneficiary = app.dev_login("beneficiary").await;
    app.put_sample_profile(&beneficiary).await;
    let partner = app.dev_login("partner").await;
    let subject: uuid::Uuid = beneficiary.user_id.parse().expect("uuid");
    let consent_db = sqlx::PgPool::connect(&app.database(Database::Consent).app_url()).await.expect("consent db");
    consent_to(
        &consent_db,
        subject,
        &format!("partner:{}", partner.user_id),
        &["identity"],
        "housing_placement",
        time::Duration::days(30),
    )
    .await;
    consent_db.close().await;
    let path = format!("/partner/beneficiaries/{}/profile?purpose=housing_placement", beneficiary.user_id);
    let phi = sqlx::PgPool::connect(&app.database(Database::Phi).app_url()).await.expect("phi db");
    let disclosures = || count(&phi, "SELECT count(*) FROM disclosures");
    let denied = |response: reqwest::Response| async move {
        let status = response.status().as_u16();
        let body: Value = response.json().await.expect("json");
        assert!(matches!(status, 403 | 404 | 503), "{status} {body}");
        assert!(body.get("profile").is_none() && body["error"]["code"].is_string(), "{body}");
    };

    // Under the consent, the read works: one disclosure.
    assert_eq!(app.get_as(&partner.access_token, &path).await.status(), 200);
    assert_eq!(disclosures().await, 1);

    // The consent service answers 500: denied, the cause logged, nothing disclosed.
    break_consent_database(&app, true).await;
    denied(app.get_as(&partner.access_token, &path).await).await;
    let (decision, reason) = last_access(&phi, "record.read").await;
    assert_eq!(decision, "deny");
    assert!(reason.starts_with("no consent decision") && reason.contains("500"), "{reason}");
    assert_eq!(disclosures().await, 1);

    // Restored, the same read works again: the denial was the fault's.
    break_consent_database(&app, false).await;
    assert_eq!(app.get_as(&partner.access_token, &path).await.status(), 200);
    assert_eq!(disclosures().await, 2);

    // The consent service is gone altogether: denied again, the cause logged.
    app.consent.shutdown.clone().notify();
    let health = format!("{}/health", app.consent.url);
    for _ in 0..200 {
        if app.http.get(&health).timeout(Duration::from_secs(1)).send().await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    denied(app.get_as(&partner.access_token, &path).await).await;
    let (decision, reason) = last_access(&phi, "record.read").await;
    assert_eq!(decision, "deny");
    assert!(reason.starts_with("no consent decision"), "{reason}");
    assert_eq!(disclosures().await, 2);
    assert!(phi_vault::access_log::verify(&phi, 10).await.expect("verify").intact());
    phi.close().await;
    app.stop().await;
}

#[tokio::test]
async fn without_a_consent_decision_nothing_is_stored_or_purged_on_a_guess() {
    let app = TestApp::spawn().await;
    let beneficiary = app.dev_login("beneficiary").await;
    let subject: uuid::Uuid = beneficiary.user_id.parse().expect("uuid");
    let (vault, ctx) = app.vault_as(&beneficiary.user_id, "beneficiary");
    let conversation = coach_conversation(subject);
    let phi = sqlx::PgPool::connect(&app.database(Database::Phi).app_url()).await.expect("phi db");
    let consent_db = sqlx::PgPool::connect(&app.database(Database::Consent).app_url()).await.expect("consent db");
    let keep = keep_coach_conversations(&consent_db, subject).await;

    // Storing a conversation needs the consent service's word: without it, 503 and nothing stored.
    break_consent_database(&app, true).await;
    match vault.create_record(&ctx, &conversation).await {
        Err(ClientError::Status { status: 503, .. }) => {}
        other => panic!("expected 503, got {other:?}"),
    }
    assert_eq!(count(&phi, "SELECT count(*) FROM records").await, 0, "nothing stored");
    break_consent_database(&app, false).await;
    let kept = vault.create_record(&ctx, &conversation).await.expect("stored under consent");

    // The consent is withdrawn, but the service that would say so cannot answer: the purge
    // keeps the conversation for a later run and logs no purge.
    revoke(&consent_db, keep, &beneficiary.user_id, None).await;
    let policy = phi_vault::retention::RetentionPolicy::load(&harness::repo_root().join("policies/retention.toml"))
        .expect("policy");
    let consent = common::client::ConsentClient::new(
        app.internal_client(common::ServiceName::PhiVault, common::ServiceName::Consent),
    );
    break_consent_database(&app, true).await;
    assert_eq!(phi_vault::retention::purge_unconsented(&phi, &consent, &policy).await.expect("purge"), 0);
    assert_eq!(count(&phi, "SELECT count(*) FROM records").await, 1, "kept while undecidable");
    assert_eq!(count(&phi, "SELECT count(*) FROM access_log WHERE action = 'record.purge'").await, 0);

    // Once the service answers, the withdrawal is honoured.
    break_consent_database(&app, false).await;
    assert_eq!(phi_vault::retention::purge_unconsented(&phi, &consent, &policy).await.expect("purge"), 1);
    let purged: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT record_id FROM access_log WHERE action = 'record.purge'")
        .fetch_all(&phi)
        .await
        .expect("log");
    assert_eq!(purged, vec![kept.record_id]);
    consent_db.close().await;
    phi.close().await;
    app.stop().await;
}

#[tokio::test]
async fn a_break_glass_read_of_nobody_leaves_its_failure_in_the_trail() {
    let app = TestApp::spawn().await;
    let caseworker = app.dev_login("caseworker").await;
    let nobody = uuid::Uuid::new_v4();
    let response = app
        .http
        .post(app.api(&format!("/caseworker/beneficiaries/{nobody}/profile/break-glass")))
        .bearer_auth(&caseworker.access_token)
        .json(&json!({"reason": "Resident unresponsive; EMS asking for emergency contact"}))
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 404);
    let request_id = response.headers()["x-request-id"].to_str().expect("ascii").to_owned();

    let public = sqlx::PgPool::connect(&app.database(Database::Public).app_url()).await.expect("public db");
    // One row, naming the proven actor and the target, marked failed, and not pointing to a
    // vault entry that does not exist (the vault was never asked about nobody).
    type Row = (Option<uuid::Uuid>, String, Option<String>, String, Option<String>);
    let rows: Vec<Row> =
        sqlx::query_as("SELECT actor_id, action, resource_id, outcome, reason FROM audit_logs WHERE request_id = $1")
            .bind(&request_id)
            .fetch_all(&public)
            .await
            .expect("audit");
    assert_eq!(rows.len(), 1, "{rows:?}");
    let (actor, action, resource, outcome, reason) = rows.into_iter().next().expect("row");
    assert_eq!(actor, caseworker.user_id.parse().ok());
    assert_eq!((action.as_str(), resource, outcome.as_str()), ("phi.break_glass", Some(nobody.to_string()), "failure"));
    assert!(reason.as_deref().is_some_and(|r| r.contains("not asked")), "{reason:?}");
    let phi = sqlx::PgPool::connect(&app.database(Database::Phi).app_url()).await.expect("phi db");
    let entries: i64 = sqlx::query_scalar("SELECT count(*) FROM access_log WHERE request_id = $1")
        .bind(&request_id)
        .fetch_one(&phi)
        .await
        .expect("access log");
    assert_eq!(entries, 0);
    public.close().await;
    phi.close().await;
    app.stop().await;
}

#[tokio::test]
async fn a_first_profile_whose_audit_row_cannot_be_written_is_not_kept() {
    let app = TestApp::spawn().await;
    let beneficiary = app.dev_login("beneficiary").await;
    let audit = "NEW.action = 'beneficiary.profile_update'";
    harness::refuse_inserts(app.database(Database::Public), "audit_logs", audit).await;
    let response = app
        .http
        .put(app.api("/beneficiaries/me/profile"))
        .bearer_auth(&beneficiary.access_token)
        .json(&harness::sample_profile())
        .send()
        .await
        .expect("put");
    assert!(response.status().is_server_error(), "{}", response.status());
    // No link without its audit row, and the vault record written first is deleted, not orphaned.
    let public = sqlx::PgPool::connect(&app.database(Database::Public).app_url()).await.expect("public db");
    let linked: Option<uuid::Uuid> = sqlx::query_scalar("SELECT identity_record_id FROM users WHERE id = $1::uuid")
        .bind(&beneficiary.user_id)
        .fetch_one(&public)
        .await
        .expect("user");
    assert_eq!(linked, None);
    let phi = sqlx::PgPool::connect(&app.database(Database::Phi).app_url()).await.expect("phi db");
    assert_eq!(count(&phi, "SELECT count(*) FROM records").await, 0, "the unlinked record was deleted");
    for pool in [public, phi] {
        pool.close().await;
    }
    app.stop().await;
}

/// An admin assigns a caseworker: the care-team grant in phi-vault is made first and stays; if
/// the application then changes under the assignment, the one audit row records the grant that
/// happened, not a failure that hides it.
#[tokio::test]
async fn an_assignment_that_loses_its_race_records_the_grant_it_made() {
    let app = TestApp::spawn().await;
    let beneficiary = app.dev_login("beneficiary").await;
    app.put_sample_profile(&beneficiary).await;
    let (admin, caseworker) = (app.dev_login("admin").await, app.dev_login("caseworker").await);
    let application = json!({ "kind": "rent", "amount_cents": 85_000,
        "details": { "description": "Two months behind on rent", "needed_by": "2099-01-31" } });
    let created: Value = app
        .http
        .post(app.api("/applications"))
        .bearer_auth(&beneficiary.access_token)
        .json(&application)
        .send()
        .await
        .expect("submit")
        .json()
        .await
        .expect("json");
    let id: uuid::Uuid = created["id"].as_str().expect("id").parse().expect("uuid");

    // Hold the application's row, so the assignment waits at its update after the grant.
    let su = sqlx::PgPool::connect(&app.database(Database::Public).url_as("postgres")).await.expect("superuser");
    let mut holder = su.begin().await.expect("begin");
    sqlx::query("SELECT 1 FROM applications WHERE id = $1 FOR UPDATE")
        .bind(id)
        .execute(&mut *holder)
        .await
        .expect("lock");
    let request_id = format!("race-{}", app.id);
    let assign = {
        let request = app
            .http
            .put(app.api(&format!("/staff/applications/{id}/caseworker")))
            .bearer_auth(&admin.access_token)
            .header("x-request-id", &request_id)
            .json(&json!({"caseworker_id": caseworker.user_id}));
        tokio::spawn(async move { request.send().await.expect("assign") })
    };
    let waiting = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' \
             AND query ILIKE 'UPDATE applications%'",
        )
        .fetch_one(&su)
        .await
        .expect("activity")
            > 0
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !waiting().await {
        assert!(std::time::Instant::now() < deadline, "the assignment never reached its update");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Someone else changes the application meanwhile.
    sqlx::query("UPDATE applications SET version = version + 1 WHERE id = $1")
        .bind(id)
        .execute(&mut *holder)
        .await
        .expect("bump");
    holder.commit().await.expect("commit");
    assert_eq!(assign.await.expect("task").status(), 409);

    let rows: Vec<(Option<uuid::Uuid>, String, String, Option<String>)> =
        sqlx::query_as("SELECT actor_id, action, outcome, resource_id FROM audit_logs WHERE request_id = $1")
            .bind(&request_id)
            .fetch_all(&su)
            .await
            .expect("audit");
    let expected_resource = format!("{}:{}", caseworker.user_id, beneficiary.user_id);
    assert_eq!(
        rows,
        vec![(
            admin.user_id.parse().ok(),
            "care_team.assign".to_owned(),
            "success".to_owned(),
            Some(expected_resource)
        )]
    );
    let assigned: Option<uuid::Uuid> = sqlx::query_scalar("SELECT caseworker_id FROM applications WHERE id = $1")
        .bind(id)
        .fetch_one(&su)
        .await
        .expect("application");
    assert_eq!(assigned, None, "the application was not assigned");
    // The grant itself is in phi-vault's access log under the same request id.
    let phi = sqlx::PgPool::connect(&app.database(Database::Phi).app_url()).await.expect("phi db");
    let granted: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM access_log WHERE request_id = $1 AND action = 'care_team.assign' AND decision = 'permit'",
    )
    .bind(&request_id)
    .fetch_one(&phi)
    .await
    .expect("access log");
    assert_eq!(granted, 1);
    su.close().await;
    phi.close().await;
    app.stop().await;
}

#[tokio::test]
async fn a_vault_lost_mid_rewrap_stops_the_batch_cleanly_and_the_next_run_finishes() {
    use phi_vault::crypto::{KeyProvider, WrappedKey};
    use phi_vault::vault_transit::VaultTransit;
    use std::sync::atomic::Ordering::SeqCst;
    let app = TestApp::spawn().await;
    let vault = harness::vault::TransitDouble::start().await;
    let phi = sqlx::PgPool::connect(&app.database(Database::Phi).app_url()).await.expect("phi db");
    let direct = VaultTransit::new(&vault.settings()).expect("provider");
    let subjects = harness::vault::seed_uncached_subjects(&phi, &direct, 8, &json!({"n": 1})).await;
    let keys_before: Vec<(uuid::Uuid, Vec<u8>)> = {
        let mut keys = Vec::new();
        for (subject, _) in &subjects {
            let wrapped = stored_wrapping(&phi, *subject).await;
            keys.push((*subject, direct.unwrap(*subject, &wrapped).await.expect("unwrap").expose().to_vec()));
        }
        keys
    };

    // The rewrap talks to Vault through a connection that is cut while its third wrap is under way.
    let proxy = harness::cut::CutProxy::start(vault.server.address().to_string()).await;
    let mut through_proxy = vault.settings();
    through_proxy.address = proxy.url.clone();
    let provider = VaultTransit::new(&through_proxy).expect("provider");
    vault.rotate();
    vault.answer_after(Duration::from_millis(300));
    let encrypts_before = vault.state.encrypts.load(SeqCst);
    let cutter = {
        let state = vault.state.clone();
        let proxy_cut = std::sync::Arc::new(proxy);
        let handle = proxy_cut.clone();
        (
            tokio::spawn(async move {
                while state.encrypts.load(SeqCst) < encrypts_before + 3 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                handle.cut(true);
            }),
            proxy_cut,
        )
    };
    let stopped = phi_vault::keys::rewrap_batch(&phi, &provider, 100, "operator:test", "rewrap-cut").await;
    assert!(
        matches!(&stopped, Err(phi_vault::keys::KeyOpError::Crypto(phi_vault::crypto::CryptoError::Unavailable(_)))),
        "{stopped:?}"
    );
    // The cut came from the cutter, which has finished (bounded: a batch that stopped for any
    // other reason would leave it waiting, and the assertions below would say so).
    tokio::time::timeout(Duration::from_secs(30), cutter.0).await.expect("the cutter cut").expect("cutter");

    // Stopped cleanly: each subject is either rewrapped (with its one log entry) or untouched,
    // and every stored wrapping still opens to the same key.
    let at_v2 = count(&phi, "SELECT count(*) FROM subjects WHERE kek_version = 2").await;
    assert!((1..8).contains(&at_v2), "{at_v2} of 8 rewrapped before the cut");
    assert_eq!(count(&phi, "SELECT count(*) FROM access_log WHERE action = 'key.rewrap'").await, at_v2);
    vault.answer_after(Duration::ZERO);
    for (subject, key) in &keys_before {
        let wrapped = stored_wrapping(&phi, *subject).await;
        assert_eq!(direct.unwrap(*subject, &wrapped).await.expect("unwrap").expose(), key.as_slice());
    }

    // Restored, the next run takes only what is left.
    cutter.1.cut(false);
    let (done, remaining) =
        phi_vault::keys::rewrap_batch(&phi, &provider, 100, "operator:test", "rewrap-resume").await.expect("resume");
    assert_eq!((done as i64, remaining), (8 - at_v2, 0));
    assert_eq!(count(&phi, "SELECT count(*) FROM subjects WHERE kek_version = 2").await, 8);
    assert_eq!(count(&phi, "SELECT count(*) FROM access_log WHERE action = 'key.rewrap'").await, 8);
    assert_eq!(count(&phi, "SELECT count(DISTINCT subject_id) FROM access_log WHERE action = 'key.rewrap'").await, 8);
    for (subject, key) in &keys_before {
        let wrapped = stored_wrapping(&phi, *subject).await;
        assert_eq!(wrapped.kek_version, 2);
        assert_eq!(direct.unwrap(*subject, &wrapped).await.expect("unwrap").expose(), key.as_slice());
    }
    assert!(phi_vault::access_log::verify(&phi, 10).await.expect("verify").intact());
    phi.close().await;
    app.stop().await;

    async fn stored_wrapping(phi: &sqlx::PgPool, subject: uuid::Uuid) -> WrappedKey {
        let (ciphertext, kek_id, kek_version): (Vec<u8>, Option<String>, Option<i32>) =
            sqlx::query_as("SELECT wrapped_data_key, kek_id, kek_version FROM subjects WHERE id = $1")
                .bind(subject)
                .fetch_one(phi)
                .await
                .expect("subject");
        WrappedKey { ciphertext, kek_id: kek_id.unwrap_or_default(), kek_version: kek_version.unwrap_or(1) }
    }
}

/// A consent service that answers "permitted" without naming both the consent relied on and the
/// form signed (a bug, or an impostor) discloses nothing: the disclosure could not be accounted for.
#[tokio::test]
async fn a_permit_that_names_no_consent_or_no_form_discloses_nothing() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let consent = MockServer::start().await;
    let url = consent.uri();
    let app = TestApp::spawn_configured(
        |_| {},
        move |phi| {
            if let Some(peer) = phi.internal.peers.get_mut(&common::ServiceName::Consent) {
                peer.url = Some(url.clone());
            }
        },
    )
    .await;
    let beneficiary = app.dev_login("beneficiary").await;
    app.put_sample_profile(&beneficiary).await;
    let partner = app.dev_login("partner").await;
    let path_ = format!("/partner/beneficiaries/{}/profile?purpose=housing_placement", beneficiary.user_id);
    let phi = sqlx::PgPool::connect(&app.database(Database::Phi).app_url()).await.expect("phi db");
    let consent_id = uuid::Uuid::new_v4();
    for (named_consent, named_form) in [(Some(consent_id), None), (None, Some("v1")), (None, None)] {
        consent.reset().await;
        Mock::given(method("POST"))
            .and(path("/internal/v1/decisions"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "permitted": true, "consent_id": named_consent, "form_version": named_form, "reason": "trust me"
            })))
            .mount(&consent)
            .await;
        let response = app.get_as(&partner.access_token, &path_).await;
        assert_eq!(response.status(), 404, "{named_consent:?} {named_form:?}");
        let (decision, reason) = last_access(&phi, "record.read").await;
        assert_eq!(decision, "deny");
        assert_eq!(reason, "consent permitted without naming the consent and the form signed");
    }
    assert_eq!(count(&phi, "SELECT count(*) FROM disclosures").await, 0, "nothing disclosed");
    phi.close().await;
    app.stop().await;
}

/// A break-glass attempt while the vault is unreachable is audited as failed, and its row does
/// not claim the vault holds an entry it may never have written.
#[tokio::test]
async fn a_break_glass_attempt_with_the_vault_gone_says_the_vault_was_not_reached() {
    let app = TestApp::spawn().await;
    let beneficiary = app.dev_login("beneficiary").await;
    app.put_sample_profile(&beneficiary).await;
    let caseworker = app.dev_login("caseworker").await;
    app.phi_vault.shutdown.clone().notify();
    let health = format!("{}/health", app.phi_vault.url);
    for _ in 0..200 {
        if app.http.get(&health).timeout(Duration::from_secs(1)).send().await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let response = app
        .http
        .post(app.api(&format!("/caseworker/beneficiaries/{}/profile/break-glass", beneficiary.user_id)))
        .bearer_auth(&caseworker.access_token)
        .json(&json!({"reason": "Resident unresponsive; EMS asking for emergency contact"}))
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 503);
    let request_id = response.headers()["x-request-id"].to_str().expect("ascii").to_owned();
    let public = sqlx::PgPool::connect(&app.database(Database::Public).app_url()).await.expect("public db");
    let (action, outcome, reason): (String, String, Option<String>) =
        sqlx::query_as("SELECT action, outcome, reason FROM audit_logs WHERE request_id = $1")
            .bind(&request_id)
            .fetch_one(&public)
            .await
            .expect("one audit row");
    assert_eq!((action.as_str(), outcome.as_str()), ("phi.break_glass", "failure"));
    assert!(reason.as_deref().is_some_and(|r| r.contains("could not be reached")), "{reason:?}");
    public.close().await;
    app.stop().await;
}
