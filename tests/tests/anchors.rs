//! The trails chained after they began (disclosures, access reviews, consents, revocations) keep
//! the rows they held before: the migrations chain them with exactly the hashes the services
//! compute.

use common::db::{self, Database};
use sqlx::{Connection, PgConnection};

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
    let mut tx = pool.begin().await.expect("begin");
    let disclosure = phi_vault::policy::Disclosure {
        recipient: "partner:r2".into(),
        purpose: "housing_placement".into(),
        category: "identity".into(),
        consent_id: None,
        notice_version: "2026-11".into(),
    };
    phi_vault::disclosures::record_disclosure(
        &mut tx,
        "00000000-0000-4000-8000-0000000000aa".parse().expect("uuid"),
        &disclosure,
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
    let revocations = consent::revocations::verify(&pool, 10).await.expect("verify");
    assert!(revocations.intact() && revocations.rows_checked == 1, "{revocations:?}");
    let hashes: i64 =
        sqlx::query_scalar("SELECT count(DISTINCT terms_sha256) FROM consents").fetch_one(&pool).await.expect("terms");
    assert_eq!(hashes, 2);
    pool.close().await;
    let _ = owner.close().await;
    drop_database(&name).await;
}
