//! The rest of need-to-know: break-glass reads with a written reason, flagged for compliance;
//! recipients outside the program, refused while the consent service gives no decision;
//! compliance officers reading access metadata, never contents; listing a subject's records.

use common::client::{AccessLogPage, AccessLogQuery, ClientError, RecordList};
use common::db::Database;
use harness::consents::{coach_conversation, consent_to, keep_coach_conversations, revoke};
use harness::{sample_profile, TestApp};
use serde_json::{json, Value};

fn not_found(result: Result<impl std::fmt::Debug, ClientError>) {
    match result {
        Err(ClientError::Status { status: 404, .. }) => {}
        other => panic!("expected 404, got {other:?}"),
    }
}

async fn access_log(app: &TestApp, token: &str, query: &str) -> (u16, Value) {
    let response = app.get_as(token, &format!("/compliance/phi-access-log{query}")).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn break_glass_reads_with_a_reason_and_is_flagged_for_compliance() {
    let app = TestApp::spawn().await;
    let beneficiary = app.dev_login("beneficiary").await;
    app.put_sample_profile(&beneficiary).await;
    let caseworker = app.dev_login("caseworker").await;
    let officer = app.dev_login("compliance_officer").await;
    let glass = format!("/caseworker/beneficiaries/{}/profile/break-glass", beneficiary.user_id);
    let post =
        |token: &str, body: Value| app.http.post(app.api(&glass)).bearer_auth(token.to_owned()).json(&body).send();

    // Not on the care team: the ordinary route is 404.
    let ordinary = format!("/caseworker/beneficiaries/{}/profile", beneficiary.user_id);
    assert_eq!(app.get_as(&caseworker.access_token, &ordinary).await.status(), 404);
    // No usable reason: refused before anything is read.
    for body in [json!({"reason": "  urgent "}), json!({}), json!({"reason": 5}), json!({"reason": "x".repeat(501)})] {
        let response = post(&caseworker.access_token, body.clone()).await.expect("post");
        assert_eq!(response.status(), 422, "{body}");
        let error: Value = response.json().await.expect("json");
        assert!(error["error"]["message"].as_str().unwrap_or_default().contains("reason"), "{error}");
    }
    // What the document promises for any JSON body: malformed 400, not JSON 415, too large 413.
    let raw = |content_type: &str, body: Vec<u8>| {
        app.http
            .post(app.api(&glass))
            .bearer_auth(&caseworker.access_token)
            .header("content-type", content_type.to_owned())
            .body(body)
            .send()
    };
    assert_eq!(raw("application/json", b"{\"reason\": ".to_vec()).await.expect("post").status(), 400);
    assert_eq!(raw("text/plain", b"urgent".to_vec()).await.expect("post").status(), 415);
    assert_eq!(raw("application/json", vec![b' '; 70 * 1024]).await.expect("post").status(), 413);
    // Only caseworkers may break the glass.
    let as_officer = post(&officer.access_token, json!({"reason": "patient unresponsive at the residence"}));
    assert_eq!(as_officer.await.expect("post").status(), 403);

    let reason = "Resident unresponsive; EMS asking for emergency contact";
    let read = post(&caseworker.access_token, json!({ "reason": reason })).await.expect("post");
    assert_eq!(read.status(), 200);
    assert_eq!(read.json::<Value>().await.expect("json"), sample_profile());

    // Break-glass without a reason, straight to the vault: denied, and still flagged.
    let vault = app.vault_client();
    let ctx = app.user_call(&caseworker.user_id, common::Role::Caseworker, "break_glass");
    let public = sqlx::PgPool::connect(&app.database(Database::Public).app_url()).await.expect("public db");
    let record: uuid::Uuid = sqlx::query_scalar("SELECT identity_record_id FROM users WHERE id = $1::uuid")
        .bind(&beneficiary.user_id)
        .fetch_one(&public)
        .await
        .expect("record id");
    not_found(vault.read_record(&ctx, record).await);
    // Break-glass only reads: no write route serves the purpose.
    let ctx = ctx.with_reason(reason.into());
    let change = common::client::RecordContent { content: json!({"legal_name": "changed"}) };
    assert!(matches!(vault.replace_record(&ctx, record, &change).await, Err(ClientError::Status { status: 403, .. })));

    // The compliance officer sees the flagged entries: metadata and the written reason only.
    let (status, page) = access_log(&app, &officer.access_token, "?flagged=true").await;
    assert_eq!(status, 200, "{page}");
    let page: AccessLogPage = serde_json::from_value(page).expect("page");
    let summary: Vec<(&str, &str, &str)> = page
        .entries
        .iter()
        .map(|e| (e.action.as_str(), e.decision.as_str(), e.reason.as_deref().unwrap_or_default()))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("record.read", "permit", format!("break-glass: {reason}").as_str()),
            ("record.read", "deny", "break-glass without a written reason"),
        ]
    );
    assert!(page.entries.iter().all(|e| e.flagged && e.actor == caseworker.user_id && e.purpose == "break_glass"));
    assert!(page.entries.iter().all(|e| e.subject_id.map(|s| s.to_string()) == Some(beneficiary.user_id.clone())));
    let text = serde_json::to_string(&page).expect("json");
    for needle in ["Jordan", "1988-04-12", "555-0142"] {
        assert!(!text.contains(needle), "the access log must not carry record contents");
    }
    // The ordinary denial is not flagged.
    let (_, all) = access_log(&app, &officer.access_token, "?flagged=false").await;
    let all: AccessLogPage = serde_json::from_value(all).expect("page");
    assert!(all.entries.iter().any(|e| e.reason.as_deref() == Some("caseworker not on the subject's care team")));
    assert!(all.entries.iter().all(|e| !e.flagged));

    // The officer reviews the permitted break-glass read; a review is final.
    let permitted_seq = page.entries[0].seq;
    let review = |token: &str, seq: i64, body: Value| {
        app.http
            .put(app.api(&format!("/compliance/phi-access-log/{seq}/review")))
            .bearer_auth(token.to_owned())
            .json(&body)
            .send()
    };
    let finding = json!({"outcome": "justified", "note": "EMS call confirmed with the residence manager."});
    assert_eq!(review(&caseworker.access_token, permitted_seq, finding.clone()).await.expect("put").status(), 403);
    for bad in [json!({"outcome": "fine", "note": "x"}), json!({"outcome": "justified", "note": "  "})] {
        assert_eq!(review(&officer.access_token, permitted_seq, bad).await.expect("put").status(), 422);
    }
    let unflagged = all.entries[0].seq;
    assert_eq!(review(&officer.access_token, unflagged, finding.clone()).await.expect("put").status(), 404);
    assert_eq!(review(&officer.access_token, 999_999, finding.clone()).await.expect("put").status(), 404);
    let done = review(&officer.access_token, permitted_seq, finding.clone()).await.expect("put");
    assert_eq!(done.status(), 200);
    let recorded: common::client::AccessReview = done.json().await.expect("json");
    assert_eq!((recorded.outcome.as_str(), recorded.reviewed_by.as_str()), ("justified", officer.user_id.as_str()));
    let again = review(&officer.access_token, permitted_seq, finding).await.expect("put");
    assert_eq!(again.status(), 409);
    // The review queue: flagged and not yet reviewed.
    let (_, queue) = access_log(&app, &officer.access_token, "?flagged=true&reviewed=false").await;
    let queue: AccessLogPage = serde_json::from_value(queue).expect("page");
    assert_eq!(queue.entries.len(), 1);
    assert!(queue.entries.iter().all(|e| e.review.is_none() && e.seq != permitted_seq));
    let (_, reviewed) = access_log(&app, &officer.access_token, "?reviewed=true").await;
    let reviewed: AccessLogPage = serde_json::from_value(reviewed).expect("page");
    assert_eq!(reviewed.entries.len(), 1);
    assert_eq!(reviewed.entries[0].review.as_ref(), Some(&recorded));

    // The public audit trail has the attempt; the reason (which may describe the emergency)
    // stays in the vault's access log, which the public row refers to.
    let audited: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT outcome::text, reason FROM audit_logs WHERE action = 'phi.break_glass'")
            .fetch_all(&public)
            .await
            .expect("audit");
    let reference = format!("reason in phi-vault access log entry {permitted_seq}");
    assert_eq!(audited, vec![("success".to_owned(), Some(reference))]);
    let anywhere: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_logs WHERE audit_logs::text LIKE '%' || $1 || '%'")
            .bind(reason)
            .fetch_one(&public)
            .await
            .expect("search");
    assert_eq!(anywhere, 0, "the reason is nowhere in the public database");
    let reviews: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT resource_id, reason FROM audit_logs WHERE action = 'phi.access_review'")
            .fetch_all(&public)
            .await
            .expect("audit");
    assert_eq!(reviews, vec![(permitted_seq.to_string(), Some("justified".to_owned()))]);

    let phi = sqlx::PgPool::connect(&app.database(Database::Phi).app_url()).await.expect("phi db");
    assert!(phi_vault::access_log::verify(&phi, 10).await.expect("verify").intact());
    phi.close().await;
    public.close().await;
    app.stop().await;
}

#[tokio::test]
async fn only_compliance_officers_read_the_access_log_and_it_pages() {
    let app = TestApp::spawn().await;
    let beneficiary = app.dev_login("beneficiary").await;
    app.put_sample_profile(&beneficiary).await;
    for _ in 0..3 {
        assert_eq!(app.get_as(&beneficiary.access_token, "/beneficiaries/me/profile").await.status(), 200);
    }
    for who in ["beneficiary", "caseworker", "admin", "partner"] {
        let login = app.dev_login(who).await;
        assert_eq!(access_log(&app, &login.access_token, "").await.0, 403, "{who}");
    }
    let officer = app.dev_login("compliance_officer").await;
    for bad in ["?limit=0", "?limit=501", "?limit=ten", "?subject_id=nope", "?flagged=maybe"] {
        let (status, body) = access_log(&app, &officer.access_token, bad).await;
        assert_eq!(status, 422, "{bad}: {body}");
        assert!(body["error"]["request_id"].is_string(), "{body}");
    }
    // Page through this subject's entries two at a time: no gaps, no repeats.
    let mut seen = Vec::new();
    let mut after = String::new();
    loop {
        let query = format!("?subject_id={}&limit=2{after}", beneficiary.user_id);
        let (status, page) = access_log(&app, &officer.access_token, &query).await;
        assert_eq!(status, 200);
        let page: AccessLogPage = serde_json::from_value(page).expect("page");
        assert!(page.entries.len() <= 2);
        seen.extend(page.entries.iter().map(|e| (e.seq, e.action.clone())));
        match page.next_after_seq {
            Some(seq) => after = format!("&after_seq={seq}"),
            None => break,
        }
    }
    // Each page read about this subject is logged in the page's transaction (after the page is
    // taken, the chain lock last), so the officer's reads show on later pages, after the
    // beneficiary's accesses.
    let actions: Vec<&str> = seen.iter().map(|(_, a)| a.as_str()).collect();
    assert_eq!(actions[..4], ["record.create", "record.read", "record.read", "record.read"]);
    assert!(actions.len() > 4 && actions[4..].iter().all(|a| *a == "access_log.read"), "{actions:?}");
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0));

    // The vault decides for itself too: another role asserted by a caller is refused and logged.
    let vault = app.vault_client();
    let ctx = app.user_call(&officer.user_id, common::Role::Caseworker, "compliance_review");
    match vault.access_log(&ctx, &AccessLogQuery::default()).await {
        Err(ClientError::Status { status: 403, .. }) => {}
        other => panic!("expected 403, got {other:?}"),
    }
    // The compliance-review purpose is a compliance officer's: the call is refused before the
    // route runs, with the reason logged.
    let refused = harness::logs_for_request(ctx.request_id().as_str());
    assert!(
        refused.iter().any(|l| l["reason"].as_str().is_some_and(|r| r.contains("is not for role caseworker"))),
        "{refused:#?}"
    );
    // Each reading of the log is itself logged.
    let (vault, ctx) = app.vault_as(&officer.user_id, "compliance_officer");
    let page = vault.access_log(&ctx, &AccessLogQuery::default()).await.expect("page");
    let reads = page.entries.iter().filter(|e| e.action == "access_log.read");
    assert!(reads.clone().any(|e| e.decision == "permit" && e.actor == officer.user_id));
    app.stop().await;
}

#[tokio::test]
async fn outside_recipients_read_only_under_a_standing_consent() {
    let app = TestApp::spawn().await;
    let beneficiary = app.dev_login("beneficiary").await;
    app.put_sample_profile(&beneficiary).await;
    let subject: uuid::Uuid = beneficiary.user_id.parse().expect("uuid");
    let (vault, own) = app.vault_as(&beneficiary.user_id, "beneficiary");
    let record = vault.list_records(&own, subject, None).await.expect("list").records[0].record_id;
    let residence = uuid::Uuid::new_v4().to_string();
    let partner = app.vault_client();
    let ctx = app.user_call(&residence, common::Role::Partner, "housing_placement");

    // No consent: denied, like any recipient without one; so is an insurer, and a compliance
    // officer asking for contents.
    not_found(partner.read_record(&ctx, record).await);
    not_found(partner.list_records(&ctx, subject, None).await);
    let (insurer, ictx) = app.vault_as(&uuid::Uuid::new_v4().to_string(), "insurer");
    not_found(insurer.read_record(&ictx, record).await);
    // A compliance officer: no record route serves compliance review (403), and no purpose a
    // record route serves is a compliance officer's (403).
    let officer_id = uuid::Uuid::new_v4().to_string();
    let (officer, octx) = app.vault_as(&officer_id, "compliance_officer");
    assert!(matches!(officer.read_record(&octx, record).await, Err(ClientError::Status { status: 403, .. })));
    let octx = app.user_call(&officer_id, common::Role::ComplianceOfficer, "treatment");
    assert!(matches!(officer.read_record(&octx, record).await, Err(ClientError::Status { status: 403, .. })));

    // The subject consents to this residence seeing their identity for housing placement.
    let consent_db = sqlx::PgPool::connect(&app.database(Database::Consent).app_url()).await.expect("consent db");
    let recipient = format!("partner:{residence}");
    let hour = time::Duration::hours(1);
    let consent = consent_to(&consent_db, subject, &recipient, &["identity"], "housing_placement", hour).await;
    let read = partner.read_record(&ctx, record).await.expect("a consented read");
    assert_eq!(read.content, sample_profile());
    // Another purpose, another category, another recipient: still no.
    let other_purpose = app.user_call(&residence, common::Role::Partner, "care_coordination");
    not_found(partner.read_record(&other_purpose, record).await);
    // A purpose no disclosure route serves is refused before any decision.
    let marketing = app.user_call(&residence, common::Role::Partner, "marketing");
    assert!(matches!(
        partner.read_record(&marketing, record).await,
        Err(common::client::ClientError::Status { status: 403, .. })
    ));
    not_found(partner.list_records(&ctx, subject, Some("insurance")).await);
    let stranger = app.vault_client();
    let sctx = app.user_call(&uuid::Uuid::new_v4().to_string(), common::Role::Partner, "housing_placement");
    not_found(stranger.read_record(&sctx, record).await);

    // The served read is in the accounting of disclosures; the refused ones are not.
    let phi = sqlx::PgPool::connect(&app.database(Database::Phi).app_url()).await.expect("phi db");
    let disclosed: Vec<(String, String, Option<uuid::Uuid>, String)> =
        sqlx::query_as("SELECT recipient, purpose, consent_id, notice_version FROM disclosures WHERE subject_id = $1")
            .bind(subject)
            .fetch_all(&phi)
            .await
            .expect("disclosures");
    assert_eq!(disclosed, vec![(recipient.clone(), "housing_placement".into(), Some(consent), "part2-2024".into())]);

    // Revoked: no again, at once.
    revoke(&consent_db, consent, &beneficiary.user_id, Some("changed my mind")).await;
    not_found(partner.read_record(&ctx, record).await);
    // Expired: no.
    consent_to(&consent_db, subject, &recipient, &["identity"], "housing_placement", -hour).await;
    not_found(partner.read_record(&ctx, record).await);

    // Every question and answer is in the consent service's chained trail; the vault's log says why.
    let decisions: Vec<(bool, String)> = sqlx::query_as("SELECT permitted, asked_by FROM decisions ORDER BY seq")
        .fetch_all(&consent_db)
        .await
        .expect("d");
    assert_eq!(decisions.iter().filter(|(p, _)| *p).count(), 1, "{decisions:?}");
    assert!(decisions.iter().all(|(_, by)| by.starts_with("phi-vault for ")), "{decisions:?}");
    assert!(consent::decisions::verify(&consent_db, 10).await.expect("verify").intact());
    let reasons: Vec<(String, String)> = sqlx::query_as(
        "SELECT actor_role, reason FROM access_log WHERE action = 'record.read' AND actor_role <> 'beneficiary' \
         ORDER BY seq",
    )
    .fetch_all(&phi)
    .await
    .expect("log");
    assert!(reasons[0].1.starts_with("consent service denied: no standing consent"), "{reasons:?}");
    assert_eq!(reasons[1].0, "insurer");
    // (The compliance officer's attempts never reached the route: refused for their purpose.)
    assert!(reasons.iter().all(|(role, _)| role != "compliance_officer"), "{reasons:?}");
    assert_eq!(reasons[2].1, format!("consent {consent}"));
    assert!(phi_vault::access_log::verify(&phi, 10).await.expect("verify").intact());
    phi.close().await;
    consent_db.close().await;
    app.stop().await;
}

#[tokio::test]
async fn the_consent_service_refuses_malformed_questions_and_other_callers() {
    use common::client::{ConsentClient, DisclosureQuestion};
    let app = TestApp::spawn().await;
    let client = |caller| ConsentClient::new(app.internal_client(caller, common::ServiceName::Consent));
    // phi-vault asks for the recipient acting (a partner).
    let ctx = app.user_call(&uuid::Uuid::new_v4().to_string(), common::Role::Partner, "disclosure_decision");
    let good = DisclosureQuestion {
        subject_id: uuid::Uuid::new_v4(),
        recipient: "partner:x".into(),
        categories: vec!["identity".into()],
        purpose: "housing_placement".into(),
    };
    let answer = client(common::ServiceName::PhiVault).decide(&ctx, &good).await.expect("answer");
    assert!(!answer.permitted && answer.consent_id.is_none());
    for bad in [
        DisclosureQuestion { categories: vec![], ..good.clone() },
        DisclosureQuestion { categories: vec!["diary".into()], ..good.clone() },
        DisclosureQuestion { recipient: " ".into(), ..good.clone() },
        DisclosureQuestion { purpose: "x".repeat(101), ..good.clone() },
    ] {
        match client(common::ServiceName::PhiVault).decide(&ctx, &bad).await {
            Err(ClientError::Refused { status: 422, .. }) => {}
            other => panic!("expected 422 for {bad:?}, got {other:?}"),
        }
    }
    // Only phi-vault asks: public-api is refused by the allowlist.
    match client(common::ServiceName::PublicApi).decide(&ctx, &good).await {
        Err(ClientError::Status { status: 403, .. }) => {}
        other => panic!("expected 403, got {other:?}"),
    }
    app.stop().await;
}

#[tokio::test]
async fn a_subject_lists_their_records_by_category() {
    let app = TestApp::spawn().await;
    let beneficiary = app.dev_login("beneficiary").await;
    app.put_sample_profile(&beneficiary).await;
    let subject: uuid::Uuid = beneficiary.user_id.parse().expect("uuid");
    let (vault, ctx) = app.vault_as(&beneficiary.user_id, "beneficiary");
    let note = common::client::NewRecord {
        subject_id: subject,
        category: "application_details".into(),
        content: json!({"need": "rent", "amount_cents": 85000}),
        expires_at: None,
    };
    let created = vault.create_record(&ctx, &note).await.expect("create");

    let all: RecordList = vault.list_records(&ctx, subject, None).await.expect("list");
    let categories: Vec<&str> = all.records.iter().map(|r| r.category.as_str()).collect();
    assert_eq!(categories, ["identity", "application_details"]);
    let details = vault.list_records(&ctx, subject, Some("application_details")).await.expect("list");
    assert_eq!(details.records.len(), 1);
    assert_eq!(details.records[0].record_id, created.record_id);
    assert!(vault.list_records(&ctx, subject, Some("insurance")).await.expect("list").records.is_empty());
    match vault.list_records(&ctx, subject, Some("diary")).await {
        Err(ClientError::Status { status: 422, .. }) => {}
        other => panic!("expected 422, got {other:?}"),
    }
    // Another beneficiary, and an unassigned caseworker: 404, as for a subject with nothing.
    let other = app.dev_login("donor").await;
    let (vault, ctx) = app.vault_as(&other.user_id, "beneficiary");
    not_found(vault.list_records(&ctx, subject, None).await);
    let (vault, ctx) = app.vault_as(&app.dev_login("caseworker").await.user_id, "caseworker");
    not_found(vault.list_records(&ctx, subject, None).await);
    app.stop().await;
}

#[tokio::test]
async fn an_erased_subject_is_refused_everywhere_and_evicted_from_every_cache() {
    let app = TestApp::spawn().await;
    let beneficiary = app.dev_login("beneficiary").await;
    app.put_sample_profile(&beneficiary).await;
    let subject: uuid::Uuid = beneficiary.user_id.parse().expect("uuid");
    let profile = "/beneficiaries/me/profile";
    assert_eq!(app.get_as(&beneficiary.access_token, profile).await.status(), 200, "the key is now cached");

    // Another instance's cache: a listener on the same database.
    let phi = sqlx::PgPool::connect(&app.database(Database::Phi).app_url()).await.expect("phi db");
    let cache = std::sync::Arc::new(phi_vault::crypto::KeyCache::new(10, std::time::Duration::from_secs(300)));
    let bystander = uuid::Uuid::new_v4();
    for s in [subject, bystander] {
        cache.put(s, phi_vault::crypto::DataKey::generate().expect("key"));
    }
    let listener = tokio::spawn(phi_vault::keys::evict_shredded(phi.clone(), cache.clone(), std::future::pending()));

    // A shred this instance was never told about (as if made elsewhere while notices were lost):
    // the service still caches the key, yet refuses the read, because each read checks the
    // subject's key state.
    let su = sqlx::PgPool::connect(&app.database(Database::Phi).url_as("postgres")).await.expect("superuser");
    let mut tx = su.begin().await.expect("begin");
    let saved: Vec<u8> = sqlx::query_scalar("SELECT wrapped_data_key FROM subjects WHERE id = $1")
        .bind(subject)
        .fetch_one(&mut *tx)
        .await
        .expect("key");
    sqlx::query("UPDATE subjects SET wrapped_data_key = NULL WHERE id = $1")
        .bind(subject)
        .execute(&mut *tx)
        .await
        .expect("shred");
    tx.commit().await.expect("commit");
    assert_eq!(app.get_as(&beneficiary.access_token, profile).await.status(), 404);
    let reason: String =
        sqlx::query_scalar("SELECT reason FROM access_log WHERE action = 'record.read' ORDER BY seq DESC LIMIT 1")
            .fetch_one(&phi)
            .await
            .expect("log");
    assert_eq!(reason, "subject erased");
    sqlx::query("UPDATE subjects SET wrapped_data_key = $2 WHERE id = $1")
        .bind(subject)
        .bind(saved)
        .execute(&su)
        .await
        .expect("restore");
    assert_eq!(app.get_as(&beneficiary.access_token, profile).await.status(), 200);

    // The real erasure: every instance listening drops its copy of the key.
    let admin = app.dev_login("admin").await;
    let erase = app
        .http
        .delete(app.api(&format!("/staff/beneficiaries/{subject}/phi?reason=requested%20erasure")))
        .bearer_auth(&admin.access_token)
        .send()
        .await
        .expect("erase");
    assert_eq!(erase.status(), 204);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while cache.get(subject).is_some() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(cache.get(subject).is_none(), "the shredded subject's key was evicted");
    assert!(cache.get(bystander).is_some(), "other subjects' keys stay");
    assert_eq!(app.get_as(&beneficiary.access_token, profile).await.status(), 404);
    listener.abort();
    su.close().await;
    phi.close().await;
    app.stop().await;
}

#[tokio::test]
async fn coach_conversations_are_kept_only_while_the_consent_to_keep_them_stands() {
    let app = TestApp::spawn().await;
    let beneficiary = app.dev_login("beneficiary").await;
    let subject: uuid::Uuid = beneficiary.user_id.parse().expect("uuid");
    let (vault, ctx) = app.vault_as(&beneficiary.user_id, "beneficiary");
    let conversation = || coach_conversation(subject);
    // No consent on file: refused, nothing stored.
    match vault.create_record(&ctx, &conversation()).await {
        Err(ClientError::Status { status: 409, .. }) => {}
        other => panic!("expected 409, got {other:?}"),
    }
    let phi = sqlx::PgPool::connect(&app.database(Database::Phi).app_url()).await.expect("phi db");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM records").fetch_one(&phi).await.expect("count");
    assert_eq!(stored, 0);

    let consent_db = sqlx::PgPool::connect(&app.database(Database::Consent).app_url()).await.expect("consent db");
    let keep = keep_coach_conversations(&consent_db, subject).await;
    let kept = vault.create_record(&ctx, &conversation()).await.expect("stored under consent");
    let note = common::client::NewRecord { category: "application_details".into(), ..conversation() };
    let other = vault.create_record(&ctx, &note).await.expect("not consent-bound");

    // The retention job asks the consent service (as phi-vault) about each subject.
    let policy = phi_vault::retention::RetentionPolicy::load(&harness::repo_root().join("policies/retention.toml"))
        .expect("policy");
    let consent = common::client::ConsentClient::new(
        app.internal_client(common::ServiceName::PhiVault, common::ServiceName::Consent),
    );
    let purge = || phi_vault::retention::purge_unconsented(&phi, &consent, &policy);
    assert_eq!(purge().await.expect("purge"), 0, "the consent stands");
    assert!(vault.read_record(&ctx, kept.record_id).await.is_ok());

    // Withdrawn: the next run purges the conversations, logged once; other records stay.
    revoke(&consent_db, keep, &beneficiary.user_id, None).await;
    // A run told to purge more subjects than it may (here: any) purges nothing and alarms: a
    // consent service saying "no" to everyone must not empty the vault.
    // Another instance running it (holding the job's lock): this run does nothing.
    let mut holder = <sqlx::PgConnection as sqlx::Connection>::connect(&app.database(Database::Phi).app_url())
        .await
        .expect("connect");
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(phi_vault::retention::RETENTION_LOCK)
        .execute(&mut holder)
        .await
        .expect("lock");
    assert_eq!(purge().await.expect("purge"), 0);
    assert!(vault.read_record(&ctx, kept.record_id).await.is_ok(), "kept while another run holds the lock");
    sqlx::Connection::close(holder).await.expect("release");
    let capped = policy.clone().with_max_consent_purges(0);
    assert_eq!(phi_vault::retention::purge_unconsented(&phi, &consent, &capped).await.expect("purge"), 0);
    assert!(harness::logs().iter().any(|l| l["alarm"] == "retention_volume"));
    assert!(vault.read_record(&ctx, kept.record_id).await.is_ok(), "kept");
    assert_eq!(purge().await.expect("purge"), 1);
    assert_eq!(purge().await.expect("purge"), 0);
    not_found(vault.read_record(&ctx, kept.record_id).await);
    assert!(vault.read_record(&ctx, other.record_id).await.is_ok());
    let purges: Vec<(uuid::Uuid, String)> =
        sqlx::query_as("SELECT record_id, reason FROM access_log WHERE action = 'record.purge'")
            .fetch_all(&phi)
            .await
            .expect("log");
    assert_eq!(purges, vec![(kept.record_id, "the subject's consent to keep these records no longer stands".into())]);
    match vault.create_record(&ctx, &conversation()).await {
        Err(ClientError::Status { status: 409, .. }) => {}
        other => panic!("expected 409 after withdrawal, got {other:?}"),
    }
    phi.close().await;
    consent_db.close().await;
    app.stop().await;
}

#[tokio::test]
async fn a_partner_reads_a_profile_through_the_api_only_under_consent() {
    let app = TestApp::spawn().await;
    let beneficiary = app.dev_login("beneficiary").await;
    app.put_sample_profile(&beneficiary).await;
    let partner = app.dev_login("partner").await;
    let path = |purpose: &str| format!("/partner/beneficiaries/{}/profile{purpose}", beneficiary.user_id);

    assert_eq!(app.get_as(&partner.access_token, &path("?purpose=housing_placement")).await.status(), 404);
    for bad in ["", "?purpose=", "?purpose=housing%20placement"] {
        assert_eq!(app.get_as(&partner.access_token, &path(bad)).await.status(), 422, "{bad}");
    }
    assert_eq!(app.get_as(&beneficiary.access_token, &path("?purpose=housing_placement")).await.status(), 403);

    let consent_db = sqlx::PgPool::connect(&app.database(Database::Consent).app_url()).await.expect("consent db");
    let subject: uuid::Uuid = beneficiary.user_id.parse().expect("uuid");
    let recipient = format!("partner:{}", partner.user_id);
    consent_to(&consent_db, subject, &recipient, &["identity"], "housing_placement", time::Duration::days(30)).await;
    let read = app.get_as(&partner.access_token, &path("?purpose=housing_placement")).await;
    assert_eq!(read.status(), 200);
    let read: Value = read.json().await.expect("json");
    assert_eq!(read["profile"], sample_profile());
    // The §2.32 notice travels with the records, with the consent relied on.
    assert_eq!(read["notice_version"], "part2-2024");
    assert!(read["notice"].as_str().expect("notice").contains("42 CFR part 2"), "{read}");
    assert!(read["consent_id"].is_string(), "{read}");
    // Another disclosure purpose, which no consent names: 404. Not a disclosure purpose: 422.
    assert_eq!(app.get_as(&partner.access_token, &path("?purpose=care_coordination")).await.status(), 404);
    for bad in ["marketing", "self_service", "treatment", "break_glass"] {
        assert_eq!(app.get_as(&partner.access_token, &path(&format!("?purpose={bad}"))).await.status(), 422, "{bad}");
    }

    let public = sqlx::PgPool::connect(&app.database(Database::Public).app_url()).await.expect("public db");
    let audited: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_logs WHERE action = 'phi.disclosure' AND actor_id = $1::uuid")
            .bind(&partner.user_id)
            .fetch_one(&public)
            .await
            .expect("audit");
    assert_eq!(audited, 1);
    let phi = sqlx::PgPool::connect(&app.database(Database::Phi).app_url()).await.expect("phi db");
    let disclosed: Vec<String> =
        sqlx::query_scalar("SELECT recipient FROM disclosures").fetch_all(&phi).await.expect("disclosures");
    assert_eq!(disclosed, vec![recipient]);
    for pool in [public, phi, consent_db] {
        pool.close().await;
    }
    app.stop().await;
}

/// Whether a beneficiary has a profile here must not leak to a partner through the answer or
/// its timing: a stranger's id and an unconsented beneficiary's get the same 404, each no sooner
/// than the floor. The medians go to stderr; they must be within 100 ms of each other (the
/// floor is 250 ms and the slower path, through phi-vault and consent, takes a few).
#[tokio::test]
async fn a_partner_gets_the_same_refusal_in_the_same_time_whoever_it_asks_about() {
    let app = TestApp::spawn().await;
    let beneficiary = app.dev_login("beneficiary").await;
    app.put_sample_profile(&beneficiary).await;
    let partner = app.dev_login("partner").await;
    let floor = public_api::phi_access::rules::PARTNER_REFUSAL_FLOOR;
    let ask = |id: String| {
        let path = format!("/partner/beneficiaries/{id}/profile?purpose=housing_placement");
        let request = app.http.get(app.api(&path)).bearer_auth(&partner.access_token);
        async move {
            let started = std::time::Instant::now();
            let response = request.send().await.expect("get");
            let status = response.status().as_u16();
            let mut body: Value = response.json().await.expect("json");
            let took = started.elapsed();
            body["error"]["request_id"] = Value::Null;
            (status, body, took)
        }
    };
    let (mut stranger, mut unconsented) = (Vec::new(), Vec::new());
    for _ in 0..7 {
        for (times, id) in
            [(&mut stranger, uuid::Uuid::new_v4().to_string()), (&mut unconsented, beneficiary.user_id.clone())]
        {
            let (status, body, took) = ask(id).await;
            assert_eq!(status, 404);
            assert_eq!(
                body,
                serde_json::json!({"error": {"code": "not_found", "message": "not found", "request_id": null}})
            );
            assert!(took >= floor, "answered in {took:?}, under the {floor:?} floor");
            times.push(took);
        }
    }
    let median = |times: &mut Vec<std::time::Duration>| {
        times.sort_unstable();
        times[times.len() / 2]
    };
    let (a, b) = (median(&mut stranger), median(&mut unconsented));
    eprintln!("partner refusals: median {a:?} for a stranger, {b:?} for an unconsented beneficiary");
    assert!(a.abs_diff(b) < std::time::Duration::from_millis(100), "{a:?} against {b:?}");
    app.stop().await;
}

/// A compromised public-api holds its internal key and the user-token key, so it can forge a
/// perfectly valid self-service call for anyone. What gives a sweep away is volume: past the
/// threshold of distinct subjects, phi-vault refuses (503), flags an alarm entry for compliance
/// and logs an alarm.
#[tokio::test]
async fn a_sweep_of_a_thousand_subjects_is_refused_and_flagged() {
    use common::assertion::Role;
    use reqwest::Method;
    let app = TestApp::spawn().await;
    let limit = phi_vault::volume::VolumePolicy::load(&harness::repo_root().join("policies/phi-volume.toml"))
        .expect("policy")
        .service_limit(common::ServiceName::PublicApi)
        .expect("a limit for public-api");
    assert!(limit < 1000, "the shipped threshold must stop a 1,000-subject sweep");

    // 1,000 beneficiaries with a record each, stored straight into the vault's database.
    let phi = sqlx::PgPool::connect(&app.database(Database::Phi).app_url()).await.expect("phi db");
    let kek = phi_vault::crypto::LocalKeyFile::load(&app.keys.dir.join("kek")).expect("kek");
    let created: Vec<(uuid::Uuid, String)> =
        harness::vault::seed_uncached_subjects(&phi, &kek, 1000, &json!({"legal_name": "Someone"}))
            .await
            .into_iter()
            .map(|(subject, record)| (subject, record.to_string()))
            .collect();
    // The sweep: each subject's record, read "as" that subject with a minted token.
    let mut statuses = Vec::new();
    for chunk in created.chunks(20) {
        let mut tasks = tokio::task::JoinSet::new();
        for (subject, record) in chunk {
            let call = app
                .forge(
                    common::ServiceName::PublicApi,
                    common::ServiceName::PhiVault,
                    Method::GET,
                    &format!("/internal/v1/records/{record}"),
                )
                .as_user(&app, *subject, Role::Beneficiary, "self_service");
            tasks.spawn(async move { call.send().await.0 });
        }
        while let Some(done) = tasks.join_next().await {
            statuses.push(done.expect("task"));
        }
    }
    let served = statuses.iter().filter(|s| **s == 200).count();
    let refused = statuses.iter().filter(|s| **s == 503).count();
    assert_eq!((served, refused), (limit, 1000 - limit), "served up to the threshold, refused the rest");

    // One flagged alarm entry for compliance to review; every refusal is logged as a denial.
    let (flagged, denied): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE flagged), count(*) FROM access_log \
         WHERE action = 'record.read' AND decision = 'deny' AND reason LIKE 'read volume:%'",
    )
    .fetch_one(&phi)
    .await
    .expect("access log");
    assert_eq!((flagged, denied), (1, (1000 - limit) as i64));
    let officer = app.dev_login("compliance_officer").await;
    let (status, page) = access_log(&app, &officer.access_token, "?flagged=true").await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .any(|e| e["reason"].as_str().is_some_and(|r| r.starts_with("read volume: service public-api"))),
        "the alarm is in the review queue: {page}"
    );
    assert!(harness::logs().iter().any(|l| l["alarm"] == "read_volume"), "an alarm was logged");
    app.stop().await;
}

/// Erasure also clears what the public database keeps that reveals recovery: the sobriety date,
/// references to the erased records, notifications. A retry after a vault-side success still
/// clears them (and answers 404: nothing left in the vault).
#[tokio::test]
async fn erasure_clears_the_public_traces_of_recovery() {
    let app = TestApp::spawn().await;
    let beneficiary = app.dev_login("beneficiary").await;
    app.put_sample_profile(&beneficiary).await;
    let patched = app
        .http
        .patch(app.api("/users/me"))
        .bearer_auth(&beneficiary.access_token)
        .json(&json!({"sobriety_date": "2024-03-01"}))
        .send()
        .await
        .expect("patch");
    assert_eq!(patched.status(), 200);
    let public = sqlx::PgPool::connect(&app.database(Database::Public).app_url()).await.expect("public db");
    let subject: uuid::Uuid = beneficiary.user_id.parse().expect("uuid");
    sqlx::query("INSERT INTO notifications (id, user_id, kind, title, body) VALUES ($1, $2, 'application', 'Rent', 'Approved at Sunrise House')")
        .bind(uuid::Uuid::new_v4())
        .bind(subject)
        .execute(&public)
        .await
        .expect("notification");

    let admin = app.dev_login("admin").await;
    let erase = |reason: &'static str| {
        app.http
            .delete(app.api(&format!("/staff/beneficiaries/{subject}/phi?reason={reason}")))
            .bearer_auth(&admin.access_token)
            .send()
    };
    assert_eq!(erase("requested").await.expect("erase").status(), 204);
    let traces = || async {
        sqlx::query_as::<_, (Option<time::Date>, Option<uuid::Uuid>, i64)>(
            "SELECT sobriety_date, identity_record_id, (SELECT count(*) FROM notifications WHERE user_id = $1) \
             FROM users WHERE id = $1",
        )
        .bind(subject)
        .fetch_one(&public)
        .await
        .expect("user")
    };
    assert_eq!(traces().await, (None, None, 0));
    let me: Value = app.get_as(&beneficiary.access_token, "/users/me").await.json().await.expect("json");
    assert!(me["sobriety_date"].is_null(), "{me}");

    // As if the public half had failed: put the date back; a retry clears it again.
    sqlx::query("UPDATE users SET sobriety_date = '2024-03-01' WHERE id = $1")
        .bind(subject)
        .execute(&public)
        .await
        .expect("set");
    assert_eq!(erase("retry").await.expect("erase").status(), 404);
    assert_eq!(traces().await, (None, None, 0));
    let outcomes: Vec<String> =
        sqlx::query_scalar("SELECT outcome FROM audit_logs WHERE action = 'phi.erase' ORDER BY seq")
            .fetch_all(&public)
            .await
            .expect("audit");
    assert_eq!(outcomes, ["success", "failure"]);
    app.stop().await;
}

/// Separation of duties: whoever made a break-glass access cannot review it, whatever roles they
/// hold; another compliance officer can.
#[tokio::test]
async fn nobody_reviews_their_own_break_glass_access() {
    let app = TestApp::spawn().await;
    let beneficiary = app.dev_login("beneficiary").await;
    app.put_sample_profile(&beneficiary).await;
    // The demo caseworker is also made a compliance officer.
    let public = sqlx::PgPool::connect(&app.database(Database::Public).app_url()).await.expect("public db");
    sqlx::query(
        "UPDATE users SET roles = roles || '{compliance_officer}' WHERE email = 'demo+caseworker@secondwind.invalid'",
    )
    .execute(&public)
    .await
    .expect("grant");
    let both = app.dev_login("caseworker").await;
    let glass = format!("/caseworker/beneficiaries/{}/profile/break-glass", beneficiary.user_id);
    let read = app
        .http
        .post(app.api(&glass))
        .bearer_auth(&both.access_token)
        .json(&json!({"reason": "Resident unresponsive; EMS asking for allergies"}))
        .send()
        .await
        .expect("post");
    assert_eq!(read.status(), 200);

    let (status, page) = access_log(&app, &both.access_token, "?flagged=true").await;
    assert_eq!(status, 200, "{page}");
    let page: AccessLogPage = serde_json::from_value(page).expect("page");
    let entry = page.entries.iter().find(|e| e.decision == "permit").expect("the break-glass read");
    assert_eq!(entry.actor, both.user_id);
    let review = |token: &str| {
        app.http
            .put(app.api(&format!("/compliance/phi-access-log/{}/review", entry.seq)))
            .bearer_auth(token.to_owned())
            .json(&json!({"outcome": "justified", "note": "I was there; it was an emergency."}))
            .send()
    };
    let own = review(&both.access_token).await.expect("put");
    assert_eq!(own.status(), 403);
    let body: Value = own.json().await.expect("json");
    assert_eq!(body["error"]["code"], "forbidden");

    // The refusal is in the access log; the entry still awaits review, and another officer gives it.
    let phi = sqlx::PgPool::connect(&app.database(Database::Phi).app_url()).await.expect("phi db");
    let refused: Vec<(String, String, String)> =
        sqlx::query_as("SELECT actor, decision, reason FROM access_log WHERE action = 'access_log.review'")
            .fetch_all(&phi)
            .await
            .expect("log");
    assert_eq!(
        refused,
        vec![(both.user_id.clone(), "deny".into(), "separation of duties: the reviewer made this access".into())]
    );
    assert!(harness::logs().iter().any(|l| l["alarm"] == "separation_of_duties"));
    let officer = app.dev_login("compliance_officer").await;
    let other = review(&officer.access_token).await.expect("put");
    assert_eq!(other.status(), 200);
    let recorded: common::client::AccessReview = other.json().await.expect("json");
    assert_eq!(recorded.reviewed_by, officer.user_id);
    assert!(phi_vault::access_log::verify_reviews(&phi, 10).await.expect("verify").intact());
    phi.close().await;
    public.close().await;
    app.stop().await;
}
