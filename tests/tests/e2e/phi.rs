//! A beneficiary's profile goes through public-api into the PHI vault, where only ciphertext is
//! stored; it reads back for the subject alone; tampering is caught; every access is logged in a
//! chain that verifies.

use common::client::ClientError;
use common::db::Database;
use harness::TestApp;
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection};

#[tokio::test]
async fn a_profile_is_stored_encrypted_and_read_back_by_its_subject_only() {
    let app = TestApp::spawn().await;
    let me = app.dev_login("beneficiary").await;
    let put = app
        .http
        .put(app.api("/beneficiaries/me/profile"))
        .bearer_auth(&me.access_token)
        .json(&harness::sample_profile())
        .send()
        .await
        .expect("put");
    assert_eq!(put.status(), 200);
    let got: Value = app.get_as(&me.access_token, "/beneficiaries/me/profile").await.json().await.expect("json");
    assert_eq!(got, harness::sample_profile());

    // Only ciphertext in the PHI database; public-api keeps only the record id.
    let mut phi = PgConnection::connect(&app.database(Database::Phi).url_as("postgres")).await.expect("phi db");
    let rows: Vec<(uuid::Uuid, Vec<u8>, Vec<u8>)> =
        sqlx::query_as("SELECT id, nonce, ciphertext FROM records").fetch_all(&mut phi).await.expect("records");
    assert_eq!(rows.len(), 1);
    for needle in ["Jordan", "1988-04-12", "555-0142", "Riley"] {
        assert!(!rows[0].2.windows(needle.len()).any(|w| w == needle.as_bytes()), "{needle} found in plaintext");
    }
    let wrapped: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT wrapped_data_key FROM subjects").fetch_one(&mut phi).await.expect("subject");
    assert_eq!(wrapped.map(|w| w.len()), Some(12 + 32 + 16), "the data key is stored wrapped");
    let record_id = rows[0].0;
    let public = sqlx::PgPool::connect(&app.database(Database::Public).app_url()).await.expect("public db");
    let stored: Option<uuid::Uuid> = sqlx::query_scalar("SELECT identity_record_id FROM users WHERE id = $1::uuid")
        .bind(&me.user_id)
        .fetch_one(&public)
        .await
        .expect("user");
    assert_eq!(stored, Some(record_id));

    // Replacing keeps the one record.
    let mut changed = harness::sample_profile();
    changed["phone"] = json!("720-555-0100");
    let put = app
        .http
        .put(app.api("/beneficiaries/me/profile"))
        .bearer_auth(&me.access_token)
        .json(&changed)
        .send()
        .await
        .expect("put");
    assert_eq!(put.status(), 200);
    let got: Value = app.get_as(&me.access_token, "/beneficiaries/me/profile").await.json().await.expect("json");
    assert_eq!(got["phone"], "720-555-0100");

    // A donor has no such permission; another beneficiary and a caseworker asking the vault
    // directly for this record get 404, exactly as for a missing record.
    let donor = app.dev_login("donor").await;
    assert_eq!(app.get_as(&donor.access_token, "/beneficiaries/me/profile").await.status(), 403);
    let other = app.dev_login("beneficiary").await;
    assert_eq!(
        app.get_as(&other.access_token, "/beneficiaries/me/profile").await.status(),
        200,
        "the demo beneficiary is the same user"
    );
    for (sub, role) in [
        (uuid::Uuid::new_v4().to_string(), "beneficiary"),
        ("00000000-0000-4000-8000-000000000004".to_owned(), "caseworker"),
    ] {
        let (vault, ctx) = app.vault_as(&sub, role);
        match vault.read_record(&ctx, record_id).await {
            Err(ClientError::Status { status: 404, .. }) => {}
            other => panic!("{role} must get 404, got {other:?}"),
        }
    }
    let (vault, ctx) = app.vault_as(&me.user_id, "beneficiary");
    match vault.read_record(&ctx, uuid::Uuid::new_v4()).await {
        Err(ClientError::Status { status: 404, .. }) => {}
        other => panic!("missing record must be 404, got {other:?}"),
    }

    // A ciphertext copied onto another row does not open there; a flipped byte is caught.
    let (vault, ctx) = app.vault_as(&me.user_id, "beneficiary");
    let second = vault
        .create_record(
            &ctx,
            &common::client::NewRecord {
                subject_id: me.user_id.parse().expect("uuid"),
                category: "insurance".into(),
                content: json!({"member": "X1"}),
                expires_at: None,
            },
        )
        .await
        .expect("create");
    sqlx::query("UPDATE records SET nonce = (SELECT nonce FROM records WHERE id = $1), ciphertext = (SELECT ciphertext FROM records WHERE id = $1) WHERE id = $2")
        .bind(record_id)
        .bind(second.record_id)
        .execute(&mut phi)
        .await
        .expect("copy");
    // The log capture is per process: exact under nextest, which runs each test in its own.
    let integrity_alarms = || harness::logs().iter().filter(|l| l["alarm"] == "integrity").count();
    assert_eq!(integrity_alarms(), 0);
    match vault.read_record(&ctx, second.record_id).await {
        Err(ClientError::Status { status: 500, .. }) => {}
        other => panic!("a moved ciphertext must fail, got {other:?}"),
    }
    assert_eq!(integrity_alarms(), 1, "the moved ciphertext raised its own alarm");
    sqlx::query(
        // Flip every bit of one byte (overwriting it with a fixed value is a no-op 1 time in 256).
        "UPDATE records SET ciphertext = set_byte(ciphertext, 4, get_byte(ciphertext, 4) # 255) WHERE id = $1",
    )
    .bind(record_id)
    .execute(&mut phi)
    .await
    .expect("tamper");
    let tampered = app.get_as(&me.access_token, "/beneficiaries/me/profile").await;
    assert_eq!(tampered.status(), 500);
    let body: Value = tampered.json().await.expect("json");
    assert_eq!(body["error"]["message"], "internal error");
    assert_eq!(integrity_alarms(), 2, "the flipped byte raised a second alarm of its own");

    // Every access is in the access log, permitted and denied, and the chain verifies.
    let phi_pool = sqlx::PgPool::connect(&app.database(Database::Phi).app_url()).await.expect("pool");
    let v = phi_vault::access_log::verify(&phi_pool, 10).await.expect("verify");
    assert!(v.intact(), "{v:?}");
    let decisions: Vec<(String, String)> =
        sqlx::query_as("SELECT action, decision FROM access_log ORDER BY seq").fetch_all(&phi_pool).await.expect("log");
    for expected in
        [("record.create", "permit"), ("record.read", "permit"), ("record.update", "permit"), ("record.read", "deny")]
    {
        assert!(
            decisions.iter().any(|(a, d)| a == expected.0 && d == expected.1),
            "{expected:?} missing from {decisions:?}"
        );
    }
    let _ = phi.close().await;
    phi_pool.close().await;
    public.close().await;
    app.stop().await;
}

#[tokio::test]
async fn bad_profiles_and_records_are_refused_without_writing() {
    let app = TestApp::spawn().await;
    let me = app.dev_login("beneficiary").await;
    let put = |body: Value| {
        app.http.put(app.api("/beneficiaries/me/profile")).bearer_auth(&me.access_token).json(&body).send()
    };
    assert_eq!(app.get_as(&me.access_token, "/beneficiaries/me/profile").await.status(), 404, "no profile yet");
    let mut future = harness::sample_profile();
    future["date_of_birth"] = json!("2999-01-01");
    let mut bad_phone = harness::sample_profile();
    bad_phone["phone"] = json!("call me");
    let mut extra = harness::sample_profile();
    extra["ssn"] = json!("000-00-0000");
    for body in [future, bad_phone, extra, json!({"legal_name": "x"})] {
        let response = put(body.clone()).await.expect("put");
        assert_eq!(response.status(), 422, "{body}");
    }
    let (vault, ctx) = app.vault_as(&me.user_id, "beneficiary");
    let subject = me.user_id.parse().expect("uuid");
    let unknown = vault
        .create_record(
            &ctx,
            &common::client::NewRecord {
                subject_id: subject,
                category: "diary".into(),
                content: json!({}),
                expires_at: None,
            },
        )
        .await;
    assert!(matches!(unknown, Err(ClientError::Status { status: 422, .. })), "{unknown:?}");
    let huge = vault
        .create_record(
            &ctx,
            &common::client::NewRecord {
                subject_id: subject,
                category: "identity".into(),
                content: json!({"x": "y".repeat(70_000)}),
                expires_at: None,
            },
        )
        .await;
    assert!(matches!(huge, Err(ClientError::Status { status: 413, .. })), "{huge:?}");
    let someone_else = vault
        .create_record(
            &ctx,
            &common::client::NewRecord {
                subject_id: uuid::Uuid::new_v4(),
                category: "identity".into(),
                content: json!({}),
                expires_at: None,
            },
        )
        .await;
    assert!(matches!(someone_else, Err(ClientError::Status { status: 403, .. })), "{someone_else:?}");

    let mut phi = PgConnection::connect(&app.database(Database::Phi).url_as("postgres")).await.expect("phi db");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM records").fetch_one(&mut phi).await.expect("count");
    assert_eq!(count, 0, "no record was written");
    // Nor a subject: a refused first record leaves no key wrapped for anyone.
    let subjects: i64 = sqlx::query_scalar("SELECT count(*) FROM subjects").fetch_one(&mut phi).await.expect("count");
    assert_eq!(subjects, 0, "no subject was written");
    let _ = phi.close().await;
    app.stop().await;
}

#[tokio::test]
async fn a_caseworker_reads_a_profile_only_once_on_the_care_team() {
    let app = TestApp::spawn().await;
    let beneficiary = app.dev_login("beneficiary").await;
    let put = app
        .http
        .put(app.api("/beneficiaries/me/profile"))
        .bearer_auth(&beneficiary.access_token)
        .json(&harness::sample_profile())
        .send()
        .await
        .expect("put");
    assert_eq!(put.status(), 200);
    let caseworker = app.dev_login("caseworker").await;
    let admin = app.dev_login("admin").await;
    let read_path = format!("/caseworker/beneficiaries/{}/profile", beneficiary.user_id);
    let assign_path = |cw: &str| format!("/staff/care-team/{cw}/{}", beneficiary.user_id);

    // Not on the care team yet: 404, like a missing record.
    assert_eq!(app.get_as(&caseworker.access_token, &read_path).await.status(), 404);
    // Only an admin assigns, and only a caseworker to a beneficiary.
    let by_caseworker = app
        .http
        .put(app.api(&assign_path(&caseworker.user_id)))
        .bearer_auth(&caseworker.access_token)
        .send()
        .await
        .expect("put");
    assert_eq!(by_caseworker.status(), 403);
    let not_caseworker = app
        .http
        .put(app.api(&assign_path(&beneficiary.user_id)))
        .bearer_auth(&admin.access_token)
        .send()
        .await
        .expect("put");
    assert_eq!(not_caseworker.status(), 422);
    // Other roles cannot use the caseworker route at all.
    assert_eq!(app.get_as(&beneficiary.access_token, &read_path).await.status(), 403);

    let assigned = app
        .http
        .put(app.api(&assign_path(&caseworker.user_id)))
        .bearer_auth(&admin.access_token)
        .send()
        .await
        .expect("put");
    assert_eq!(assigned.status(), 204);
    let read = app.get_as(&caseworker.access_token, &read_path).await;
    assert_eq!(read.status(), 200);
    assert_eq!(read.json::<Value>().await.expect("json"), harness::sample_profile());
    // The care team reads; it does not change the subject's records.
    let (vault, ctx) = app.vault_as(&caseworker.user_id, "caseworker");
    let subject: uuid::Uuid = beneficiary.user_id.parse().expect("uuid");
    let record = vault.list_records(&ctx, subject, Some("identity")).await.expect("list").records[0].record_id;
    let change = common::client::RecordContent { content: json!({"legal_name": "changed"}) };
    // Changing records is no treatment purpose: the route refuses it outright (403) ...
    assert!(matches!(vault.replace_record(&ctx, record, &change).await, Err(ClientError::Status { status: 403, .. })));
    // ... and the self-service purpose, which the write routes serve, is not a caseworker's.
    let ctx = app.user_call(&caseworker.user_id, common::Role::Caseworker, "self_service");
    assert!(matches!(vault.replace_record(&ctx, record, &change).await, Err(ClientError::Status { status: 403, .. })));
    assert!(matches!(vault.delete_record(&ctx, record).await, Err(ClientError::Status { status: 403, .. })));
    let note = common::client::NewRecord {
        subject_id: subject,
        category: "application_details".into(),
        content: json!({"note": "x"}),
        expires_at: None,
    };
    assert!(matches!(vault.create_record(&ctx, &note).await, Err(ClientError::Status { status: 403, .. })));
    assert_eq!(
        app.get_as(&beneficiary.access_token, "/beneficiaries/me/profile").await.json::<Value>().await.expect("json"),
        harness::sample_profile()
    );

    let pool = sqlx::PgPool::connect(&app.database(Database::Phi).app_url()).await.expect("pool");
    let log: Vec<(String, String, Option<String>)> =
        sqlx::query_as("SELECT action, decision, reason FROM access_log ORDER BY seq")
            .fetch_all(&pool)
            .await
            .expect("log");
    assert!(log.iter().any(|(a, d, r)| a == "record.read"
        && d == "deny"
        && r.as_deref() == Some("caseworker not on the subject's care team")));
    assert!(log.iter().any(|(a, d, _)| a == "care_team.assign" && d == "permit"));
    assert!(log.iter().any(|(a, d, r)| a == "record.read" && d == "permit" && r.as_deref() == Some("care_team")));
    assert!(phi_vault::access_log::verify(&pool, 10).await.expect("verify").intact());
    pool.close().await;
    app.stop().await;
}

#[tokio::test]
async fn retention_sets_expiry_and_purges_each_expired_record_once() {
    let app = TestApp::spawn().await;
    let me = app.dev_login("beneficiary").await;
    let subject: uuid::Uuid = me.user_id.parse().expect("uuid");
    let (vault, ctx) = app.vault_as(&me.user_id, "beneficiary");
    let new = |expires_at| common::client::NewRecord {
        subject_id: subject,
        category: "intake_conversation".into(),
        content: json!({"messages": ["hi"]}),
        expires_at,
    };

    // The policy caps intake conversations at 30 days.
    let kept = vault.create_record(&ctx, &new(None)).await.expect("create");
    let pool = sqlx::PgPool::connect(&app.database(Database::Phi).app_url()).await.expect("pool");
    let days: f64 = sqlx::query_scalar(
        "SELECT (extract(epoch FROM expires_at - now()) / 86400)::float8 FROM records WHERE id = $1",
    )
    .bind(kept.record_id)
    .fetch_one(&pool)
    .await
    .expect("expiry");
    assert!((29.9..=30.0).contains(&days), "{days}");

    // Five records already expired; two purges race; each record is purged and logged once.
    let past = time::OffsetDateTime::now_utc() - time::Duration::minutes(1);
    let mut expired = Vec::new();
    for _ in 0..5 {
        expired.push(vault.create_record(&ctx, &new(Some(past))).await.expect("create").record_id);
    }
    match vault.read_record(&ctx, expired[0]).await {
        Err(ClientError::Status { status: 404, .. }) => {}
        other => panic!("an expired record is not served: {other:?}"),
    }
    let (a, b) =
        tokio::join!(phi_vault::retention::purge_expired(&pool, 3), phi_vault::retention::purge_expired(&pool, 3));
    let (c, _) = tokio::join!(phi_vault::retention::purge_expired(&pool, 3), async {});
    assert_eq!(a.expect("purge") + b.expect("purge") + c.expect("purge"), 5);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM records").fetch_one(&pool).await.expect("count");
    assert_eq!(left, 1, "only the unexpired record remains");
    let purges: Vec<uuid::Uuid> =
        sqlx::query_scalar("SELECT record_id FROM access_log WHERE action = 'record.purge' ORDER BY record_id")
            .fetch_all(&pool)
            .await
            .expect("log");
    let mut expected = expired.clone();
    expected.sort();
    assert_eq!(purges, expected, "one purge entry per record");
    assert!(phi_vault::access_log::verify(&pool, 10).await.expect("verify").intact());
    pool.close().await;
    app.stop().await;
}

/// A decrypted record that does not parse is a bare 500, and nothing logged quotes it.
#[tokio::test]
async fn an_unreadable_record_is_never_quoted_in_an_error() {
    let app = TestApp::spawn().await;
    let me = app.dev_login("beneficiary").await;
    let marker = format!("PHIMARK{}", app.id);
    let (vault, ctx) = app.vault_as(&me.user_id, "beneficiary");
    let subject: uuid::Uuid = me.user_id.parse().expect("uuid");
    let bad = common::client::NewRecord {
        subject_id: subject,
        category: "identity".into(),
        content: json!({"legal_name": [marker.clone()], "date_of_birth": marker.clone()}),
        expires_at: None,
    };
    let created = vault.create_record(&ctx, &bad).await.expect("stored");
    let public = sqlx::PgPool::connect(&app.database(Database::Public).app_url()).await.expect("public db");
    sqlx::query("UPDATE users SET identity_record_id = $2 WHERE id = $1")
        .bind(subject)
        .bind(created.record_id)
        .execute(&public)
        .await
        .expect("link");

    let response = app.get_as(&me.access_token, "/beneficiaries/me/profile").await;
    assert_eq!(response.status(), 500);
    let body = response.text().await.expect("body");
    assert!(!body.contains(&marker), "{body}");
    let logs = harness::logs();
    assert!(logs.iter().any(|l| l["message"] == "internal error"), "the failure was logged");
    let quoting: Vec<&Value> = logs.iter().filter(|l| l.to_string().contains(&marker)).collect();
    assert!(quoting.is_empty(), "log lines quote the record: {quoting:#?}");
    app.stop().await;
}

/// phi-vault decodes a record's category into its enum before the access policy runs, so the
/// database's `record_category` type must hold exactly the categories it knows: a value it did
/// not know would fail a read before the read is logged.
#[tokio::test]
async fn the_databases_record_categories_are_exactly_the_vaults() {
    harness::init();
    let db = harness::TestDatabase::create(Database::Phi, &uuid::Uuid::new_v4().simple().to_string()[..12]).await;
    let mut conn = PgConnection::connect(&db.app_url()).await.expect("phi db");
    let stored: Vec<String> = sqlx::query_scalar("SELECT unnest(enum_range(NULL::record_category))::text")
        .fetch_all(&mut conn)
        .await
        .expect("enum values");
    assert_eq!(stored, phi_vault::records::CATEGORIES);
    let _ = conn.close().await;
}
