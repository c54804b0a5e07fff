//! Trails anchored outside their own database: the checkpoint route refuses what it must, the
//! newly chained trails keep the rows they held before, and no service migrates or holds owner
//! credentials.

use common::checkpoint::CheckpointClient;
use common::checkpoint::{Checkpoint, CheckpointKey, Trail};
use common::client::ClientError;
use common::db::{self, Database};
use common::ServiceName;
use harness::TestApp;
use sqlx::{Connection, PgConnection};

fn key(app: &TestApp, service: ServiceName) -> CheckpointKey {
    let file = app.keys.dir.join(format!("{}.key", common::checkpoint::key_name(service)));
    CheckpointKey::load(service, &file).expect("checkpoint key")
}

fn status(result: Result<(), ClientError>) -> u16 {
    match result {
        Ok(()) => 204,
        Err(ClientError::Status { status, .. } | ClientError::Refused { status, .. }) => status,
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn the_checkpoint_route_refuses_forgeries_impostors_and_going_backwards() {
    let app = TestApp::spawn().await;
    let ctx = common::assertion::CallContext::system("audit_anchor", common::RequestId::generate());
    let to_consent = |caller| CheckpointClient::new(app.internal_client(caller, ServiceName::Consent));
    let phi = key(&app, ServiceName::PhiVault);
    let at = common::chain::now();
    let second = phi.sign(Trail::Disclosures, 2, 10, &[2; 32], at);

    // Only the origin may deliver its checkpoints, signed with its own checkpoint key.
    assert_eq!(status(to_consent(ServiceName::PublicApi).store(&ctx, &second).await), 403);
    let mut forged = key(&app, ServiceName::PublicApi).sign(Trail::Disclosures, 2, 10, &[2; 32], at);
    forged.origin = ServiceName::PhiVault;
    assert_eq!(status(to_consent(ServiceName::PhiVault).store(&ctx, &forged).await), 422);
    let mut altered: Checkpoint = second.clone();
    altered.head_hash = vec![3; 32];
    assert_eq!(status(to_consent(ServiceName::PhiVault).store(&ctx, &altered).await), 422);
    // The internal-call key cannot stand in for the checkpoint key.
    let internal = CheckpointKey::from_pkcs8(ServiceName::PhiVault, &app.keys.private_key(ServiceName::PhiVault))
        .expect("key")
        .sign(Trail::Disclosures, 2, 10, &[2; 32], at);
    assert_eq!(status(to_consent(ServiceName::PhiVault).store(&ctx, &internal).await), 422);
    // A trail phi-vault does not write.
    let foreign = phi.sign(Trail::Consents, 1, 1, &[1; 32], at);
    assert_eq!(status(to_consent(ServiceName::PhiVault).store(&ctx, &foreign).await), 422);

    // Stored; the same again is fine (a retried delivery).
    let phi_vault = to_consent(ServiceName::PhiVault);
    assert_eq!(status(phi_vault.store(&ctx, &second).await), 204);
    assert_eq!(status(phi_vault.store(&ctx, &second).await), 204);
    // Backwards: an earlier number, a lower sequence number, another hash for the same one.
    for (number, seq, hash) in [(1, 5, 1u8), (3, 9, 3), (3, 10, 3), (2, 10, 9)] {
        let backwards = phi.sign(Trail::Disclosures, number, seq, &[hash; 32], common::chain::now());
        assert_eq!(status(phi_vault.store(&ctx, &backwards).await), 409, "#{number} seq {seq}");
    }
    assert_eq!(status(phi_vault.store(&ctx, &phi.sign(Trail::Disclosures, 3, 12, &[4; 32], at)).await), 204);
    // phi-vault does not take checkpoints from public-api (the allowlist).
    let public_to_vault = CheckpointClient::new(app.internal_client(ServiceName::PublicApi, ServiceName::PhiVault));
    let public = key(&app, ServiceName::PublicApi).sign(Trail::AuditLogs, 1, 1, &[1; 32], at);
    assert_eq!(status(public_to_vault.store(&ctx, &public).await), 403);

    let consent_db = sqlx::PgPool::connect(&app.database(Database::Consent).app_url()).await.expect("pool");
    let held: Vec<(i64, i64)> =
        sqlx::query_as("SELECT number, seq FROM checkpoints WHERE origin = 'phi-vault' ORDER BY number")
            .fetch_all(&consent_db)
            .await
            .expect("held");
    assert_eq!(held, vec![(2, 10), (3, 12)]);
    // An origin reads back what a receiver holds of its own trails, and nobody else's: public-api
    // asking for phi-vault's trail is refused, and public-api's own trail shows none of them.
    let numbers = |found: Vec<Checkpoint>| found.iter().map(|c| (c.number, c.seq)).collect::<Vec<_>>();
    let read_back = phi_vault.held(&ctx, Trail::Disclosures).await.expect("held");
    assert_eq!(numbers(read_back), vec![(2, 10), (3, 12)]);
    let public_to_consent = to_consent(ServiceName::PublicApi);
    match public_to_consent.held(&ctx, Trail::Disclosures).await {
        Err(ClientError::Status { status: 403, .. } | ClientError::Refused { status: 403, .. }) => {}
        other => panic!("another origin's checkpoints: {other:?}"),
    }
    assert_eq!(numbers(public_to_consent.held(&ctx, Trail::AuditLogs).await.expect("held")), vec![]);
    // The verification route answers compliance officers only; a service alone is refused.
    let verify = app.internal_client(ServiceName::PublicApi, ServiceName::Consent);
    let refused = verify.post_json::<serde_json::Value>("/internal/v1/trail-verifications", &ctx).await;
    assert!(
        matches!(refused, Err(ClientError::Status { status: 403, .. } | ClientError::Refused { status: 403, .. })),
        "{refused:?}"
    );
    assert!(harness::logs().iter().filter(|l| l["alarm"] == "checkpoint_refused").count() >= 9);
    consent_db.close().await;
    app.stop().await;
}

/// A database with every migration before `before` applied, as its owner.
async fn migrated_until(database: Database, before: i64) -> (String, PgConnection) {
    harness::init();
    let mut admin = PgConnection::connect(&harness::admin_url()).await.expect("admin");
    db::ensure_role_exists(&mut admin, database.owner_role()).await.expect("role");
    db::ensure_role_exists(&mut admin, database.app_role()).await.expect("role");
    let name = format!("legacy_{}_{}", database.as_str(), &uuid::Uuid::new_v4().simple().to_string()[..10]);
    db::create_database(&mut admin, &name, database, None).await.expect("create");
    let _ = admin.close().await;
    let mut owner =
        PgConnection::connect(&db::url_for(&harness::admin_url(), database.owner_role(), None, &name).expect("url"))
            .await
            .expect("owner");
    apply(database, &mut owner, |v| v < before).await;
    (name, owner)
}

async fn apply(database: Database, owner: &mut PgConnection, which: impl Fn(i64) -> bool) {
    for migration in database.migrator().iter().filter(|m| which(m.version)) {
        sqlx::raw_sql(&migration.sql)
            .execute(&mut *owner)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", migration.version));
    }
}

async fn drop_database(name: &str) {
    let mut admin = PgConnection::connect(&harness::admin_url()).await.expect("admin");
    db::drop_database(&mut admin, name).await.expect("drop");
    let _ = admin.close().await;
}

#[tokio::test]
async fn rows_written_before_the_chains_are_kept_and_chained() {
    const CHAINED: i64 = 20261127000002;
    // phi-vault: disclosures and reviews written by the earlier code.
    let (name, mut owner) = migrated_until(Database::Phi, CHAINED).await;
    sqlx::raw_sql(
        "INSERT INTO subjects (id) VALUES ('00000000-0000-4000-8000-0000000000aa');
         INSERT INTO disclosures (id, subject_id, recipient, purpose, categories, consent_id, notice_version, request_id, disclosed_at)
           VALUES (gen_random_uuid(), '00000000-0000-4000-8000-0000000000aa', 'partner:r1', 'housing_placement', ARRAY['identity']::record_category[], gen_random_uuid(), '2026-11', 'r1', now() - interval '2 days'),
                  (gen_random_uuid(), '00000000-0000-4000-8000-0000000000aa', 'insurer:ñ', 'billing', ARRAY['identity', 'insurance']::record_category[], NULL, '2026-11', NULL, now() - interval '1 day');
         INSERT INTO access_log (actor, actor_role, purpose, action, decision, reason, flagged, prev_hash, row_hash)
           VALUES ('cw', 'caseworker', 'break_glass', 'record.read', 'permit', 'break-glass: EMS', true, '\\x00', '\\x00');
         INSERT INTO access_reviews (seq, outcome, note, reviewed_by) SELECT seq, 'justified', 'EMS call \"confirmed\"', 'officer' FROM access_log;",
    )
    .execute(&mut owner)
    .await
    .expect("legacy rows");
    apply(Database::Phi, &mut owner, |v| v >= CHAINED).await;
    let pool = sqlx::PgPool::connect(&db::url_for(&harness::admin_url(), "sw_phi", None, &name).expect("url"))
        .await
        .expect("pool");
    let disclosures = phi_vault::disclosures::verify(&pool, 10).await.expect("verify");
    assert!(disclosures.intact() && disclosures.rows_checked == 2, "{disclosures:?}");
    let reviews = phi_vault::access_log::verify_reviews(&pool, 10).await.expect("verify");
    assert!(reviews.intact() && reviews.rows_checked == 1, "{reviews:?}");
    // New rows continue the same chains.
    let notice =
        phi_vault::notice::Notice::load(&harness::repo_root().join("policies/redisclosure-notices/part2-2024.txt"))
            .expect("notice");
    notice.record(&pool).await.expect("record the notice");
    let mut tx = pool.begin().await.expect("begin");
    let disclosure = phi_vault::policy::Disclosure {
        recipient: "partner:r2".into(),
        recipient_name: Some("Harbor House".into()),
        purpose: "housing_placement".into(),
        category: "identity".into(),
        consent_id: Some(uuid::Uuid::new_v4()),
        emergency: None,
    };
    phi_vault::disclosures::record_disclosure(
        &mut tx,
        "00000000-0000-4000-8000-0000000000aa".parse().expect("uuid"),
        &disclosure,
        &notice.version,
        "r3",
    )
    .await
    .expect("append");
    tx.commit().await.expect("commit");
    let disclosures = phi_vault::disclosures::verify(&pool, 10).await.expect("verify");
    assert!(disclosures.intact() && disclosures.rows_checked == 3, "{disclosures:?}");
    pool.close().await;
    let _ = owner.close().await;
    drop_database(&name).await;

    // consent: forms, consents and revocations written directly, as before.
    let (name, mut owner) = migrated_until(Database::Consent, CHAINED).await;
    sqlx::raw_sql(
        "INSERT INTO consent_forms (version, body, body_sha256) VALUES ('2026-11', 'I consent…', sha256(convert_to('I consent…', 'UTF8')));
         INSERT INTO consents (id, subject_id, discloser, recipient, categories, purpose, expires_at, expiry_event, form_version, signed_name, signed_at, created_at)
           VALUES ('00000000-0000-4000-8000-0000000000c1', gen_random_uuid(), 'SecondWind', 'partner:r1', '{identity}', 'housing_placement', now() + interval '1 year', NULL, '2026-11', 'Jordan Q. Example', now() - interval '3 days', now() - interval '3 days'),
                  ('00000000-0000-4000-8000-0000000000c2', gen_random_uuid(), 'SecondWind', 'secondwind', '{coach_conversation,identity}', 'coach_retention', NULL, 'leaving the program', '2026-11', 'Sam', now() - interval '2 days', now() - interval '2 days');
         INSERT INTO revocations (consent_id, revoked_by, reason) VALUES ('00000000-0000-4000-8000-0000000000c1', 'subject', NULL);",
    )
    .execute(&mut owner)
    .await
    .expect("legacy rows");
    apply(Database::Consent, &mut owner, |v| v >= CHAINED).await;
    let pool = sqlx::PgPool::connect(&db::url_for(&harness::admin_url(), "sw_consent", None, &name).expect("url"))
        .await
        .expect("pool");
    let consents = consent::consents::verify(&pool, 10).await.expect("verify");
    assert!(consents.intact() && consents.rows_checked == 2, "{consents:?}");
    let revocations = consent::consents::verify_revocations(&pool, 10).await.expect("verify");
    assert!(revocations.intact() && revocations.rows_checked == 1, "{revocations:?}");
    let hashes: i64 =
        sqlx::query_scalar("SELECT count(DISTINCT terms_sha256) FROM consents").fetch_one(&pool).await.expect("terms");
    assert_eq!(hashes, 2);
    pool.close().await;
    let _ = owner.close().await;
    drop_database(&name).await;
}

#[tokio::test]
async fn services_never_migrate_and_production_refuses_owner_credentials() {
    harness::init();
    // An empty consent database and a dev config that still names the owner: the service ignores
    // the owner URL (with a warning) and migrates nothing.
    let mut admin = PgConnection::connect(&harness::admin_url()).await.expect("admin");
    for database in Database::ALL {
        db::ensure_role_exists(&mut admin, database.owner_role()).await.expect("role");
        db::ensure_role_exists(&mut admin, database.app_role()).await.expect("role");
    }
    let name = format!("unmigrated_{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    db::create_database(&mut admin, &name, Database::Consent, None).await.expect("create");
    let _ = admin.close().await;
    let keys = harness::TestKeys::new(&uuid::Uuid::new_v4().simple().to_string()[..10]);
    let app_url = db::url_for(&harness::admin_url(), "sw_consent", None, &name).expect("url");
    let mut config = harness::consent_config(app_url.clone(), &keys, &Default::default());
    let owner_url = db::url_for(&harness::admin_url(), "sw_consent_owner", None, &name).expect("url");
    config.database.migrate_url = Some(common::Secret::new(owner_url.clone()));
    // The dev config is accepted; start-up then stops at the first table it needs (the consent
    // forms it records), since nothing migrated the database.
    match consent::build(config).await {
        Err(common::service::StartError::Database(e)) => {
            assert!(e.to_string().contains("consent_forms"), "{e}")
        }
        other => panic!("expected start-up to stop at the unmigrated database, got {:?}", other.map(|_| ())),
    }
    let mut conn = PgConnection::connect(&app_url).await.expect("connect");
    let migrated: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(&mut conn)
        .await
        .expect("query");
    assert!(!migrated, "the service migrated its database");
    let _ = conn.close().await;
    assert!(harness::logs()
        .iter()
        .any(|l| l["message"].as_str().is_some_and(|m| m.contains("migrate_url is ignored"))));
    drop_database(&name).await;

    // Production refuses a config holding the owner URL, naming the key.
    let figment = rocket::figment::Figment::from(rocket::figment::providers::Serialized::defaults(serde_json::json!({
        "profile": "production",
        "server": {"address": "127.0.0.1", "port": 8102, "json_limit_bytes": 65536},
        "database": {"url": "postgres://sw_consent@db/consent?sslmode=verify-full&sslrootcert=/ca.pem",
                     "migrate_url": "postgres://sw_consent_owner:pw@db/consent?sslmode=verify-full",
                     "max_connections": 5, "connect_timeout_secs": 5},
        "log": {"level": "info"},
        "internal": {"signing_key_file": "k", "policy_file": "p", "assertion_ttl_secs": 30, "request_timeout_secs": 5},
    })));
    let err = consent::ConsentConfig::from_figment(figment).expect_err("production refuses migrate_url").to_string();
    assert!(err.contains("database.migrate_url") && err.contains("production refuses"), "{err}");
    assert!(!err.contains("pw@"), "the message must not quote the secret: {err}");
    let _ = std::fs::remove_dir_all(&keys.dir);
}
