//! Each service has its own database and role; no role reaches another service's database.
//! Health follows the database: 503 while it is lost, 200 again when it returns.

use std::time::Duration;

use common::db::Database;
use common::ServiceName;
use harness::{admin_url, TestApp};
use sqlx::{Connection, PgConnection};

#[tokio::test]
async fn no_service_role_can_open_another_services_database() {
    let app = TestApp::spawn().await;
    for owner_db in Database::ALL {
        for role_db in Database::ALL {
            let target = app.database(owner_db);
            for role in [role_db.app_role(), role_db.owner_role()] {
                let result = PgConnection::connect(&target.url_as(role)).await;
                if owner_db == role_db {
                    let conn = result.unwrap_or_else(|e| panic!("{role} must reach {}: {e}", target.name));
                    let _ = conn.close().await;
                } else {
                    let err = result.err().unwrap_or_else(|| panic!("{role} reached {}", target.name)).to_string();
                    assert!(err.contains("permission denied for database"), "{role} → {}: {err}", target.name);
                }
            }
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn the_app_role_has_data_privileges_only_and_cannot_rewrite_audit_trails() {
    let app = TestApp::spawn().await;
    // (database, append-only table, a table the app role may update if the database has one)
    let cases = [
        (Database::Public, "audit_logs", Some("users")),
        (Database::Public, "checkpoints", Some("users")),
        (Database::Public, "checkpoint_deliveries", Some("users")),
        (Database::Phi, "access_log", Some("records")),
        (Database::Phi, "disclosures", Some("records")),
        (Database::Phi, "access_reviews", Some("records")),
        (Database::Phi, "checkpoints", Some("records")),
        (Database::Consent, "decisions", None),
        (Database::Consent, "revocations", None),
        (Database::Consent, "consents", None),
        (Database::Consent, "consent_forms", None),
        (Database::Consent, "checkpoints", None),
    ];
    for (database, trail, table) in cases {
        let mut conn = PgConnection::connect(&app.database(database).app_url()).await.expect("connect");
        let can = |privilege: &'static str, table: &'static str| {
            format!("SELECT has_table_privilege(current_user, '{table}', '{privilege}')")
        };
        for privilege in ["SELECT", "INSERT"] {
            let ok: bool = sqlx::query_scalar(&can(privilege, trail)).fetch_one(&mut conn).await.expect("query");
            assert!(ok, "{database:?}: app role lacks {privilege} on {trail}");
        }
        for privilege in ["UPDATE", "DELETE", "TRUNCATE"] {
            let ok: bool = sqlx::query_scalar(&can(privilege, trail)).fetch_one(&mut conn).await.expect("query");
            assert!(!ok, "{database:?}: app role may {privilege} {trail}");
        }
        if let Some(table) = table {
            let ok: bool = sqlx::query_scalar(&can("UPDATE", table)).fetch_one(&mut conn).await.expect("query");
            assert!(ok, "{database:?}: app role cannot update {table}");
        }
        let ddl = sqlx::query("CREATE TABLE intruder (x int)").execute(&mut conn).await;
        assert!(ddl.is_err(), "{database:?}: app role could create a table");
        let drop = sqlx::query(&format!("DROP TABLE {trail}")).execute(&mut conn).await;
        assert!(drop.is_err(), "{database:?}: app role could drop {trail}");
        let _ = conn.close().await;
    }
    app.stop().await;
}

/// Consents and their forms are immutable for the runtime role, and a consent is recorded only on
/// the form text on file: the recording function checks the hash the signer saw, and the
/// database checks each form's hash and each consent's form hash.
#[tokio::test]
async fn consents_are_immutable_and_signed_on_the_form_on_file() {
    let app = TestApp::spawn().await;
    let pool = sqlx::PgPool::connect(&app.database(Database::Consent).app_url()).await.expect("pool");
    let body = "I consent to SecondWind disclosing my identity to the residence named below.";
    let mut tx = pool.begin().await.expect("begin");
    let form_hash = consent::forms::publish_form(&mut tx, "2026-12", body).await.expect("form");
    tx.commit().await.expect("commit");
    let categories = vec!["identity".to_owned()];
    let now = time::OffsetDateTime::now_utc();
    let signed = consent::consents::NewConsent {
        subject_id: uuid::Uuid::new_v4(),
        discloser: "SecondWind",
        recipient: "partner:r1",
        categories: &categories,
        purpose: "housing_placement",
        expires_at: Some(now + time::Duration::days(30)),
        expiry_event: None,
        form_version: "2026-12",
        signed_name: "Jordan Q. Example",
        signed_at: now,
        elements: Some(consent::consents::Elements {
            recipient_kind: "named",
            recipient_name: "A recipient",
            recipient_directory_id: None,
            recipient_address: None,
            signature_method: "typed_name",
            signed_from: "127.0.0.1",
        }),
    };
    // Signed on another text than the one on file: refused.
    let mut tx = pool.begin().await.expect("begin");
    let shown_other = common::chain::sha256(b"I consent to everything.");
    match consent::consents::record(&mut tx, &signed, &shown_other).await {
        Err(consent::consents::ConsentError::FormMismatch(v)) => assert_eq!(v, "2026-12"),
        other => panic!("expected a form mismatch, got {other:?}"),
    }
    tx.rollback().await.expect("rollback");
    let mut tx = pool.begin().await.expect("begin");
    let (id, terms) = consent::consents::record(&mut tx, &signed, &form_hash).await.expect("record");
    tx.commit().await.expect("commit");
    assert_ne!(terms, [0; 32]);

    // The runtime role may not change or remove a consent or a form.
    for statement in [
        "UPDATE consents SET purpose = 'marketing'",
        "DELETE FROM consents",
        "TRUNCATE consents",
        "UPDATE consent_forms SET body = 'I consent to everything.'",
        "DELETE FROM consent_forms",
    ] {
        let err = sqlx::query(statement).execute(&pool).await.expect_err(statement).to_string();
        assert!(err.contains("permission denied"), "{statement}: {err}");
    }
    // Nor write a form whose hash is not its body's, or a consent naming another form text.
    let forged = sqlx::query("INSERT INTO consent_forms (version, body, body_sha256) VALUES ('x', 'text', '\\x00')")
        .execute(&pool)
        .await;
    assert!(forged.expect_err("bad form hash").to_string().contains("consent_forms_body_sha256"));
    let other_form = sqlx::query(
        "INSERT INTO consents (id, subject_id, discloser, recipient, categories, purpose, expires_at, form_version, \
         form_sha256, signed_name, signed_at, terms_sha256, prev_hash, row_hash) SELECT gen_random_uuid(), subject_id, \
         discloser, recipient, categories, purpose, expires_at, form_version, $2, signed_name, signed_at, terms_sha256, \
         row_hash, row_hash FROM consents WHERE id = $1",
    )
    .bind(id)
    .bind(&shown_other[..])
    .execute(&pool)
    .await;
    assert!(other_form.expect_err("another form's hash").to_string().contains("consents_form_hash"));
    assert!(consent::consents::verify(&pool, 10).await.expect("verify").intact());
    pool.close().await;
    app.stop().await;
}

async fn set_connections_allowed(name: &str, allowed: bool) {
    let mut admin = PgConnection::connect(&admin_url()).await.expect("admin");
    sqlx::query(&format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS {allowed}"))
        .execute(&mut admin)
        .await
        .expect("alter");
    if !allowed {
        sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(name)
        .execute(&mut admin)
        .await
        .expect("terminate");
    }
    let _ = admin.close().await;
}

#[tokio::test]
async fn health_reports_a_lost_database_and_recovers() {
    let app = TestApp::spawn().await;
    let url = format!("{}/health", app.phi_vault.url);
    assert_eq!(app.http.get(&url).send().await.expect("health").status(), 200);

    let name = app.database(Database::Phi).name.clone();
    set_connections_allowed(&name, false).await;
    let response = app.http.get(&url).send().await.expect("health");
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body, serde_json::json!({"status": "unavailable", "database": "unreachable"}));

    // The chain reports which link is down.
    let request_id = format!("ready-{}", app.id);
    let response =
        app.http.get(format!("{}/ready", app.public_api.url)).header("x-request-id", &request_id).send().await;
    let ready: serde_json::Value = response.expect("ready").json().await.expect("json");
    assert_eq!(ready["ready"], false);
    let vault = ready["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == "phi-vault")
        .expect("phi-vault check")
        .clone();
    assert_eq!(vault["ok"], false);
    // Why is for the log, not for an anonymous caller: phi-vault cannot even spend the
    // assertion's id without its database, so it answered 503.
    assert!(ready["checks"].as_array().expect("checks").iter().all(|c| c.get("detail").is_none()), "{ready}");
    let logged = harness::logs_for_request(&request_id);
    assert!(
        logged.iter().any(|l| l["message"] == "not ready"
            && l["check"] == "phi-vault"
            && l["detail"].as_str().is_some_and(|d| d.contains("phi-vault answered 503"))),
        "{logged:#?}"
    );

    set_connections_allowed(&name, true).await;
    let mut recovered = false;
    for _ in 0..50 {
        if app.http.get(&url).send().await.expect("health").status() == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "phi-vault did not recover its database");
    app.stop().await;
}

#[tokio::test]
async fn start_up_gives_up_on_an_unreachable_database_after_its_timeout() {
    common::install_crypto_provider();
    let dir = std::env::temp_dir().join(format!("sw-down-{}", uuid::Uuid::new_v4().simple()));
    for service in ServiceName::ALL {
        common::keys::generate_files(&dir, service.as_str()).expect("keys");
    }
    common::keys::generate_files(&dir, harness::USER_TOKEN_KID).expect("keys");
    let keys = harness::TestKeys { dir: dir.clone() };
    // Nothing listens on port 1.
    let mut config = harness::consent_config("postgres://sw_consent@127.0.0.1:1/x".into(), &keys, &Default::default());
    config.database.connect_timeout_secs = 2;
    let started = std::time::Instant::now();
    let Err(err) = consent::build(config).await else { panic!("start-up must fail without a database") };
    let waited = started.elapsed();
    assert!(err.to_string().contains("database unreachable"), "{err}");
    assert!(waited >= Duration::from_millis(1500), "gave up too early: {waited:?}");
    assert!(waited < Duration::from_secs(20), "retried past its bound: {waited:?}");
    let _ = std::fs::remove_dir_all(dir);
}

/// Every connection the services hold is cut at once, as a server restart cuts them. The pools
/// do not ping a connection used in the last seconds, so the next request meets dead ones: it
/// still succeeds (the session check and the assertion's spend run again on a checked
/// connection), and a profile change is stored and audited, never stored unaudited.
#[tokio::test]
async fn requests_after_every_connection_is_cut_succeed_and_are_audited() {
    let app = TestApp::spawn().await;
    let me = app.dev_login("beneficiary").await;
    let put = |profile: serde_json::Value| {
        app.http.put(app.api("/beneficiaries/me/profile")).bearer_auth(&me.access_token).json(&profile).send()
    };
    assert_eq!(put(harness::sample_profile()).await.expect("put").status(), 200);
    for _ in 0..4 {
        assert_eq!(app.get_as(&me.access_token, "/beneficiaries/me/profile").await.status(), 200);
    }

    let names: Vec<String> = Database::ALL.iter().map(|d| app.database(*d).name.clone()).collect();
    let mut admin = PgConnection::connect(&admin_url()).await.expect("admin");
    let cut: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = ANY($1) AND pid <> pg_backend_pid()",
    )
    .bind(&names)
    .fetch_all(&mut admin)
    .await
    .expect("terminate");
    assert!(cut.len() >= 2, "the services held connections: {cut:?}");
    for _ in 0..100 {
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = ANY($1)")
            .bind(&names)
            .fetch_one(&mut admin)
            .await
            .expect("count");
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut changed = harness::sample_profile();
    changed["phone"] = serde_json::json!("720-555-0199");
    assert_eq!(put(changed).await.expect("put").status(), 200, "a request after the cut succeeds");
    let got: serde_json::Value =
        app.get_as(&me.access_token, "/beneficiaries/me/profile").await.json().await.expect("json");
    assert_eq!(got["phone"], "720-555-0199");
    assert_eq!(app.get_as(&me.access_token, "/users/me").await.status(), 200);
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_logs WHERE action = 'beneficiary.profile_update' AND actor_id = $1::uuid",
    )
    .bind(&me.user_id)
    .fetch_one(&mut PgConnection::connect(&app.database(Database::Public).url_as("postgres")).await.expect("db"))
    .await
    .expect("audit");
    assert_eq!(audited, 2, "both changes are audited");
    let _ = admin.close().await;
    app.stop().await;
}

/// What a killed test run left (its process gone) is swept: its databases and key directories.
/// What a running test holds is kept.
#[tokio::test]
async fn a_killed_runs_databases_and_keys_are_swept_and_a_live_ones_kept() {
    harness::init();
    let tag = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
    // No process has this id (Linux's pid_max is at most 4,194,304).
    let dead = 999_999_999u32;
    let mut conn = PgConnection::connect(&admin_url()).await.expect("admin");
    let left = format!("swt{dead}_{tag}_public");
    sqlx::query(&format!("CREATE DATABASE \"{left}\"")).execute(&mut conn).await.expect("a leftover database");
    let dir = std::env::temp_dir().join(format!("secondwind-test-{dead}-{tag}"));
    std::fs::create_dir_all(&dir).expect("a leftover key directory");
    let live = harness::TestDatabase::create(Database::Public, &tag).await;
    let keys = harness::TestKeys::new(&tag);

    harness::sweep_leftovers().await;

    assert!(!common::db::database_exists(&mut conn, &left).await.expect("query"), "the dead run's database");
    assert!(!dir.exists(), "the dead run's key directory");
    assert!(common::db::database_exists(&mut conn, &live.name).await.expect("query"), "a live test's database");
    assert!(keys.dir.exists(), "a live test's key directory");
    let _ = conn.close().await;
}

#[tokio::test]
async fn a_granted_role_is_a_staff_role_or_nothing_and_the_checkpoints_tables_are_alike() {
    let app = TestApp::spawn().await;
    let public = sqlx::PgPool::connect(&app.database(Database::Public).app_url()).await.expect("pool");
    let grant = |role: &'static str| {
        let public = public.clone();
        async move {
            sqlx::query("UPDATE users SET roles = ARRAY[$1] WHERE email = 'demo+caseworker@secondwind.invalid'")
                .bind(role)
                .execute(&public)
                .await
        }
    };
    let refused = grant("root").await.expect_err("a name that is no role");
    assert!(refused.to_string().contains("users_roles_known"), "{refused}");
    assert!(grant("beneficiary").await.is_err(), "an account type is not granted");
    assert_eq!(grant("compliance_officer").await.expect("a staff role").rows_affected(), 1);
    public.close().await;
    // common's checkpoint queries are checked at build time against the public database and run
    // on all three: their tables must be alike.
    let mut shapes = Vec::new();
    for database in Database::ALL {
        let pool = sqlx::PgPool::connect(&app.database(database).app_url()).await.expect("pool");
        let columns: Vec<(String, String, String, String)> = sqlx::query_as(
            "SELECT table_name::text, column_name::text, data_type::text, is_nullable::text \
             FROM information_schema.columns WHERE table_name IN ('checkpoints', 'checkpoint_deliveries') \
             ORDER BY table_name, ordinal_position",
        )
        .fetch_all(&pool)
        .await
        .expect("columns");
        pool.close().await;
        shapes.push(columns);
    }
    assert!(!shapes[0].is_empty());
    assert!(shapes.iter().all(|s| *s == shapes[0]), "{shapes:#?}");
    app.stop().await;
}
