//! `audit verify` against signed checkpoints: the services publish them over signed calls into
//! each other's databases and into their checkpoint files; the CLI reads the three configs and
//! catches what the chain alone cannot: a cut-off tail, a re-hashed edit, a missing checkpoint,
//! a forged one.

use common::chain;
use common::db::Database;
use harness::TestApp;
use serde_json::Value;
use sqlx::{Connection, PgConnection, Row};

use super::{cli, json};

/// `n` more rows in the public audit trail (each dev login is audited).
async fn audited_logins(app: &TestApp, n: usize) {
    for _ in 0..n {
        app.dev_login("donor").await;
    }
}

async fn last_seq(app: &TestApp) -> i64 {
    let mut conn = PgConnection::connect(&app.database(Database::Public).app_url()).await.expect("connect");
    let seq: i64 = sqlx::query_scalar("SELECT max(seq) FROM audit_logs").fetch_one(&mut conn).await.expect("seq");
    let _ = conn.close().await;
    seq
}

async fn owner(app: &TestApp, database: Database) -> PgConnection {
    PgConnection::connect(&app.database(database).url_as(database.owner_role())).await.expect("owner")
}

fn verify(dir: &std::path::Path, extra: &[&str]) -> assert_cmd::assert::Assert {
    cli().args(["--json", "audit", "verify", "--config-dir"]).arg(dir).args(extra).assert()
}

fn trail<'a>(summary: &'a Value, name: &str) -> &'a Value {
    summary["trails"].as_array().expect("trails").iter().find(|t| t["trail"] == name).expect("trail reported")
}

fn problems<'a>(report: &'a Value, kind: &str) -> Vec<&'a Value> {
    report["problems"].as_array().expect("problems").iter().filter(|p| p["kind"] == kind).collect()
}

/// Rewrites every row's hashes from `from_seq` on, as someone holding the owner role would after
/// editing a row: the chain alone then verifies.
async fn rehash_audit_logs(owner: &mut PgConnection, from_seq: i64) {
    let rows = sqlx::query(public_api::audit::SELECT).fetch_all(&mut *owner).await.expect("rows");
    let mut prev = chain::GENESIS.to_vec();
    for row in rows {
        let seq: i64 = row.get("seq");
        if seq < from_seq {
            prev = row.get("row_hash");
            continue;
        }
        let hash = chain::link(&prev, &public_api::audit::canonical_of(&row).expect("canonical"));
        sqlx::query("UPDATE audit_logs SET prev_hash = $1, row_hash = $2 WHERE seq = $3")
            .bind(&prev)
            .bind(&hash[..])
            .bind(seq)
            .execute(&mut *owner)
            .await
            .expect("rehash");
        prev = hash.to_vec();
    }
}

#[tokio::test]
async fn every_trail_is_anchored_in_another_database_and_a_cut_off_tail_is_caught() {
    let app = TestApp::spawn().await;
    let beneficiary = app.dev_login("beneficiary").await;
    app.put_sample_profile(&beneficiary).await; // the PHI access log
    let consent_db = sqlx::PgPool::connect(&app.database(Database::Consent).app_url()).await.expect("pool");
    let mut tx = consent_db.begin().await.expect("begin");
    let form = consent::forms::publish_form(&mut tx, "f1", "I consent.").await.expect("form");
    let categories = vec!["identity".to_owned()];
    let now = time::OffsetDateTime::now_utc();
    let signed = consent::consents::NewConsent {
        subject_id: beneficiary.user_id.parse().expect("uuid"),
        discloser: "SecondWind",
        recipient: "partner:r1",
        categories: &categories,
        purpose: "housing_placement",
        expires_at: None,
        expiry_event: Some("leaving the residence"),
        form_version: "f1",
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
    consent::consents::record(&mut tx, &signed, &form).await.expect("consent");
    tx.commit().await.expect("commit");
    consent_db.close().await;

    let published = app.publish_checkpoints().await;
    let anchored: Vec<&str> = published.iter().map(|c| c.trail.as_str()).collect();
    assert_eq!(anchored, ["audit_logs", "access_log", "consents"]);
    let dir = app.keys.dir.join("configs");
    app.write_configs(&dir);
    let out = verify(&dir, &[]).success();
    let summary = json(&out.get_output().stdout);
    assert_eq!(summary["intact"], true, "{summary}");
    assert_eq!(summary["trails"].as_array().map(Vec::len), Some(7), "every trail is verified");
    // Each checkpoint is in its origin's database, its receiver's and its file.
    for (name, receiver) in [("public", "consent"), ("phi", "consent"), ("consents", "phi-vault")] {
        let report = trail(&summary, name);
        assert_eq!(report["checkpoints"]["verified"], 1, "{report}");
        let places = report["checkpoints"]["sources"].as_array().expect("sources");
        assert_eq!(places.len(), 3, "{report}");
        assert!(places.iter().all(|p| p[1] == 1), "{report}");
        assert!(places.iter().any(|p| p[0] == format!("{receiver} database")), "{report}");
    }

    // More rows, a second checkpoint; then the newest rows are deleted by the owner role.
    let kept = last_seq(&app).await + 1;
    audited_logins(&app, 3).await;
    assert_eq!(app.publish_checkpoints().await.len(), 1);
    let vouched = last_seq(&app).await;
    let mut public_owner = owner(&app, Database::Public).await;
    sqlx::query("DELETE FROM audit_logs WHERE seq > $1").bind(kept).execute(&mut public_owner).await.expect("cut");
    let _ = public_owner.close().await;
    assert!(public_api::audit::verify(
        &sqlx::PgPool::connect(&app.database(Database::Public).app_url()).await.expect("pool"),
        10
    )
    .await
    .expect("verify")
    .intact());

    let out = verify(&dir, &["--trail", "public"]).code(1);
    let report = json(&out.get_output().stdout);
    assert_eq!(report["intact"], false);
    assert_eq!(report["breaks"], serde_json::json!([]), "the chain itself is intact");
    let truncated = problems(&report, "truncated");
    assert_eq!(truncated.len(), 1, "{report}");
    assert_eq!(
        (&truncated[0]["seq"], &truncated[0]["trail_ends_at"], &truncated[0]["first_bad_seq"]),
        (&Value::from(vouched), &Value::from(kept), &Value::from(kept + 1))
    );
    assert_eq!(report["first_bad_seq"], kept + 1);
    assert!(String::from_utf8_lossy(&out.get_output().stderr).contains("audit chain is broken"));
    let text = cli().args(["audit", "verify", "--trail", "public", "--config-dir"]).arg(&dir).assert().code(1);
    let text = String::from_utf8_lossy(&text.get_output().stdout).into_owned();
    assert!(
        text.contains("tail truncated") && text.contains(&format!("rows from seq {} are gone", kept + 1)),
        "{text}"
    );

    // The publisher notices too: it raises an alarm and never vouches for the shorter trail.
    audited_logins(&app, 1).await;
    assert!(app.publish_checkpoints().await.is_empty());
    assert!(harness::logs().iter().any(|l| l["alarm"] == "trail_rewritten"));
    app.stop().await;
}

#[tokio::test]
async fn a_rehashed_edit_is_caught_naming_the_first_bad_sequence_number() {
    let app = TestApp::spawn().await;
    audited_logins(&app, 3).await;
    app.publish_checkpoints().await;
    let proven = last_seq(&app).await;
    audited_logins(&app, 3).await;
    app.publish_checkpoints().await;
    let vouched = last_seq(&app).await;
    audited_logins(&app, 2).await;

    // The owner edits a row after the first checkpoint and recomputes every hash after it.
    let edited = proven + 2;
    let mut public_owner = owner(&app, Database::Public).await;
    sqlx::query("UPDATE audit_logs SET outcome = 'failure' WHERE seq = $1")
        .bind(edited)
        .execute(&mut public_owner)
        .await
        .expect("edit");
    rehash_audit_logs(&mut public_owner, edited).await;
    let _ = public_owner.close().await;
    let pool = sqlx::PgPool::connect(&app.database(Database::Public).app_url()).await.expect("pool");
    assert!(public_api::audit::verify(&pool, 10).await.expect("verify").intact(), "the chain alone is fooled");
    pool.close().await;

    let dir = app.keys.dir.join("configs");
    app.write_configs(&dir);
    let out = verify(&dir, &["--trail", "public"]).code(1);
    let report = json(&out.get_output().stdout);
    let rewritten = problems(&report, "rewritten");
    assert_eq!(rewritten.len(), 1, "{report}");
    assert_eq!(
        (&rewritten[0]["checkpoint"], &rewritten[0]["seq"], &rewritten[0]["first_bad_seq"]),
        (&Value::from(2), &Value::from(vouched), &Value::from(proven + 1))
    );
    assert_eq!(report["first_bad_seq"], proven + 1);

    // The same from one database, the receiver's and the origin's checkpoint key named by hand.
    let key = app.keys.dir.join(format!("{}.pub", common::checkpoint::key_name(common::ServiceName::PublicApi)));
    let out = cli()
        .args(["--json", "audit", "verify", "--url", &app.database(Database::Public).app_url()])
        .args(["--anchor-url", &app.database(Database::Consent).app_url()])
        .arg(format!("--checkpoint-key=public-api={}", key.display()))
        .assert()
        .code(1);
    let report = json(&out.get_output().stdout);
    assert_eq!(problems(&report, "rewritten")[0]["first_bad_seq"], proven + 1, "{report}");
    app.stop().await;
}

const CHECKPOINT_COLUMNS: &str = "origin, trail, number, seq, head_hash, published_at, signature";

/// Takes checkpoint `number` of public-api out of a database; returns what `put_back` needs.
async fn take_checkpoint(conn: &mut PgConnection, number: i64) -> sqlx::postgres::PgRow {
    sqlx::query(&format!(
        "DELETE FROM checkpoints WHERE origin = 'public-api' AND number = $1 RETURNING {CHECKPOINT_COLUMNS}"
    ))
    .bind(number)
    .fetch_one(&mut *conn)
    .await
    .expect("take a checkpoint")
}

async fn put_back(conn: &mut PgConnection, row: &sqlx::postgres::PgRow) {
    sqlx::query(&format!("INSERT INTO checkpoints ({CHECKPOINT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"))
        .bind(row.get::<String, _>("origin"))
        .bind(row.get::<String, _>("trail"))
        .bind(row.get::<i64, _>("number"))
        .bind(row.get::<i64, _>("seq"))
        .bind(row.get::<Vec<u8>, _>("head_hash"))
        .bind(row.get::<time::OffsetDateTime, _>("published_at"))
        .bind(row.get::<Vec<u8>, _>("signature"))
        .execute(&mut *conn)
        .await
        .expect("put a checkpoint back");
}

#[tokio::test]
async fn missing_and_forged_checkpoints_are_caught() {
    let app = TestApp::spawn().await;
    for _ in 0..3 {
        audited_logins(&app, 2).await;
        app.publish_checkpoints().await;
    }
    let dir = app.keys.dir.join("configs");
    app.write_configs(&dir);
    verify(&dir, &["--trail", "public"]).success();

    // Checkpoint 2 disappears from the receiver's database: present in one place, not another.
    let mut consent_owner = owner(&app, Database::Consent).await;
    let at_receiver = take_checkpoint(&mut consent_owner, 2).await;
    let out = verify(&dir, &["--trail", "public"]).code(1);
    let report = json(&out.get_output().stdout);
    let missing = problems(&report, "missing_checkpoint");
    assert_eq!(missing.len(), 1, "{report}");
    assert_eq!(
        (&missing[0]["cause"], &missing[0]["number"], &missing[0]["missing_from"]),
        (&Value::from("absent"), &Value::from(2), &serde_json::json!(["consent database"]))
    );

    // Gone everywhere: a gap in the numbering.
    let mut public_owner = owner(&app, Database::Public).await;
    let at_origin = take_checkpoint(&mut public_owner, 2).await;
    let file = app.keys.dir.join("logs/public-api.checkpoints.jsonl");
    let lines: Vec<String> = std::fs::read_to_string(&file).expect("file").lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 3);
    std::fs::write(&file, format!("{}\n{}\n", lines[0], lines[2])).expect("rewrite the file");
    let out = verify(&dir, &["--trail", "public"]).code(1);
    let report = json(&out.get_output().stdout);
    let missing = problems(&report, "missing_checkpoint");
    assert_eq!((missing.len(), &missing[0]["cause"], &missing[0]["from"]), (1, &Value::from("gap"), &Value::from(2)));

    // Put back, all is well again; then the file's copy of checkpoint 3 is forged.
    put_back(&mut consent_owner, &at_receiver).await;
    put_back(&mut public_owner, &at_origin).await;
    std::fs::write(&file, lines.join("\n") + "\n").expect("restore the file");
    verify(&dir, &["--trail", "public"]).success();
    let mut forged: Value = serde_json::from_str(&lines[2]).expect("checkpoint");
    forged["seq"] = Value::from(forged["seq"].as_i64().expect("seq") - 1);
    std::fs::write(&file, format!("{}\n{}\n{}\n", lines[0], lines[1], forged)).expect("forge");
    let out = verify(&dir, &["--trail", "public"]).code(1);
    let report = json(&out.get_output().stdout);
    let bad = problems(&report, "bad_signature");
    assert_eq!(bad.len(), 1, "{report}");
    assert_eq!(bad[0]["number"], 3);
    std::fs::write(&file, lines.join("\n") + "\n").expect("restore the file");

    // Published but not delivered yet (as at shutdown, when the receiver stops too): pending,
    // not missing; delivered, all is well.
    audited_logins(&app, 1).await;
    let publisher = app.public_api.checkpoints.as_ref().expect("publisher");
    assert_eq!(publisher.publish().await.expect("publish").len(), 1);
    let out = verify(&dir, &["--trail", "public"]).success();
    let report = json(&out.get_output().stdout);
    assert_eq!(report["checkpoints"]["pending_delivery"], serde_json::json!([[4, "consent database"]]));
    assert_eq!(publisher.deliver().await.expect("deliver"), 1);
    let out = verify(&dir, &["--trail", "public"]).success();
    assert_eq!(json(&out.get_output().stdout)["checkpoints"]["pending_delivery"], serde_json::json!([]));

    // Rows older than the bound beyond the last checkpoint.
    audited_logins(&app, 1).await;
    let first = last_seq(&app).await;
    let out = verify(&dir, &["--trail", "public", "--max-unanchored-secs", "0"]).code(1);
    let report = json(&out.get_output().stdout);
    let unanchored: Vec<&Value> = problems(&report, "missing_checkpoint")
        .into_iter()
        .filter(|p| p["cause"] == "rows_beyond_last_checkpoint")
        .collect();
    assert_eq!(unanchored.len(), 1, "{report}");
    assert_eq!(unanchored[0]["first_seq"], first);
    let _ = (consent_owner.close().await, public_owner.close().await);
    app.stop().await;
}

/// Someone holding the owner roles of the origin's and the receiver's databases rewrites the
/// trail and deletes the checkpoints that vouch for the rewritten part, hoping the publisher
/// signs the forged head next. It does not: it remembers what it signed (and, after a restart,
/// reads it from its own checkpoint file), sees the database disagree, and raises an alarm.
#[tokio::test]
async fn the_publisher_will_not_sign_a_rewritten_history() {
    let app = TestApp::spawn().await;
    audited_logins(&app, 2).await;
    app.publish_checkpoints().await;
    let proven = last_seq(&app).await;
    audited_logins(&app, 2).await;
    app.publish_checkpoints().await;

    let mut public_owner = owner(&app, Database::Public).await;
    sqlx::query("UPDATE audit_logs SET outcome = 'failure' WHERE seq = $1")
        .bind(proven + 1)
        .execute(&mut public_owner)
        .await
        .expect("edit");
    rehash_audit_logs(&mut public_owner, proven + 1).await;
    take_checkpoint(&mut public_owner, 2).await;
    sqlx::query("DELETE FROM checkpoint_deliveries WHERE trail = 'audit_logs' AND number = 2")
        .execute(&mut public_owner)
        .await
        .expect("deliveries");
    let mut consent_owner = owner(&app, Database::Consent).await;
    take_checkpoint(&mut consent_owner, 2).await;
    audited_logins(&app, 1).await;

    let alarms = || harness::logs().into_iter().filter(|l| l["alarm"] == "checkpoints_rewritten").count();
    let publisher = app.public_api.checkpoints.as_ref().expect("publisher");
    assert!(publisher.publish().await.expect("publish").is_empty(), "nothing signed over the rewrite");
    assert_eq!(alarms(), 1);

    // A fresh process (as after a restart) knows it from its checkpoint file.
    let service = common::ServiceName::PublicApi;
    let key = app.keys.dir.join(format!("{}.key", common::checkpoint::key_name(service)));
    let pool = sqlx::PgPool::connect(&app.database(Database::Public).app_url()).await.expect("pool");
    let restarted = common::checkpoint::Publisher::new(
        common::checkpoint::CheckpointKey::load(service, &key).expect("key"),
        pool.clone(),
        Vec::new(),
        Some(app.keys.dir.join("logs/public-api.checkpoints.jsonl")),
        std::time::Duration::from_secs(60),
    );
    assert!(restarted.publish().await.expect("publish").is_empty());
    assert_eq!(alarms(), 2);
    let signed: i64 = sqlx::query_scalar("SELECT max(number) FROM checkpoints WHERE trail = 'audit_logs'")
        .fetch_one(&pool)
        .await
        .expect("checkpoints");
    assert_eq!(signed, 1, "no checkpoint of the rewritten trail exists");
    pool.close().await;
    let _ = public_owner.close().await;
    let _ = consent_owner.close().await;
    app.stop().await;
}

/// Holding a trail's publish lock stops its checkpoints; after a few rounds the publisher says so.
#[tokio::test]
async fn a_publisher_kept_from_publishing_raises_an_alarm() {
    let app = TestApp::spawn().await;
    audited_logins(&app, 1).await;
    let mut holder = PgConnection::connect(&app.database(Database::Public).app_url()).await.expect("connect");
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(common::checkpoint::Trail::AuditLogs.publish_lock())
        .execute(&mut holder)
        .await
        .expect("lock");
    let publisher = app.public_api.checkpoints.as_ref().expect("publisher");
    let stalled = || harness::logs().into_iter().filter(|l| l["alarm"] == "checkpoint_stalled").count();
    for _ in 0..2 {
        assert!(publisher.publish().await.expect("publish").is_empty());
    }
    assert_eq!(stalled(), 0, "a busy lock for a round or two is normal");
    assert!(publisher.publish().await.expect("publish").is_empty());
    assert_eq!(stalled(), 1);
    // Unlocked explicitly: closing alone releases the lock only once the server has processed
    // the disconnection, which may come after the next publish (a flaky race).
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(common::checkpoint::Trail::AuditLogs.publish_lock())
        .execute(&mut holder)
        .await
        .expect("unlock");
    let _ = holder.close().await;
    assert_eq!(publisher.publish().await.expect("publish").len(), 1, "released, it publishes again");
    app.stop().await;
}

/// Another instance's checkpoints count too: an instance that has seen them will not sign over
/// their deletion. And a rotated key: the latest checkpoint, signed with the retired key, is
/// accepted once that key is listed, and refused (with an alarm) when it is not.
#[tokio::test]
async fn instances_remember_each_others_checkpoints_and_keys_rotate() {
    let app = TestApp::spawn().await;
    let service = common::ServiceName::PublicApi;
    let key_file = app.keys.dir.join(format!("{}.key", common::checkpoint::key_name(service)));
    let pool = sqlx::PgPool::connect(&app.database(Database::Public).app_url()).await.expect("pool");
    let instance = |file: &str, key: common::checkpoint::CheckpointKey, retired: &[[u8; 32]]| {
        common::checkpoint::Publisher::with_accepted_keys(
            key,
            retired,
            pool.clone(),
            Vec::new(),
            Some(app.keys.dir.join(file)),
            std::time::Duration::from_secs(60),
        )
    };
    let key = || common::checkpoint::CheckpointKey::load(service, &key_file).expect("key");
    let a = instance("a.jsonl", key(), &[]);
    let b = instance("b.jsonl", key(), &[]);
    audited_logins(&app, 2).await;
    assert_eq!(a.publish().await.expect("publish").len(), 1);
    let proven = last_seq(&app).await;
    audited_logins(&app, 2).await;
    assert_eq!(b.publish().await.expect("publish").len(), 1);
    assert!(a.publish().await.expect("publish").is_empty(), "nothing moved; a has now seen b's checkpoint");

    let mut public_owner = owner(&app, Database::Public).await;
    rehash_after_edit(&mut public_owner, proven + 1).await;
    take_checkpoint(&mut public_owner, 2).await;
    let alarms = || harness::logs().into_iter().filter(|l| l["alarm"] == "checkpoints_rewritten").count();
    assert!(a.publish().await.expect("publish").is_empty(), "a does not sign over b's deleted checkpoint");
    assert_eq!(alarms(), 1);

    // Rotation, on a fresh database state: a new key signs on only with the old one listed.
    let app2 = TestApp::spawn().await;
    let pool2 = sqlx::PgPool::connect(&app2.database(Database::Public).app_url()).await.expect("pool");
    let old_file = app2.keys.dir.join(format!("{}.key", common::checkpoint::key_name(service)));
    let old = common::checkpoint::CheckpointKey::load(service, &old_file).expect("old key");
    let old_public = old.public();
    let publisher = |key: common::checkpoint::CheckpointKey, retired: &[[u8; 32]]| {
        common::checkpoint::Publisher::with_accepted_keys(
            key,
            retired,
            pool2.clone(),
            Vec::new(),
            None,
            std::time::Duration::from_secs(60),
        )
    };
    audited_logins(&app2, 1).await;
    assert_eq!(publisher(old, &[]).publish().await.expect("publish").len(), 1);
    let (new_der, _) = common::keys::generate().expect("key");
    let new_key = || common::checkpoint::CheckpointKey::from_pkcs8(service, &new_der).expect("new key");
    audited_logins(&app2, 1).await;
    let before = alarms();
    assert!(publisher(new_key(), &[]).publish().await.expect("publish").is_empty(), "old key not listed");
    assert_eq!(alarms(), before + 1);
    assert_eq!(publisher(new_key(), &[old_public]).publish().await.expect("publish").len(), 1);
    pool.close().await;
    pool2.close().await;
    let _ = public_owner.close().await;
    app2.stop().await;
    app.stop().await;
}

async fn rehash_after_edit(owner: &mut PgConnection, seq: i64) {
    sqlx::query("UPDATE audit_logs SET outcome = 'failure' WHERE seq = $1")
        .bind(seq)
        .execute(&mut *owner)
        .await
        .expect("edit");
    rehash_audit_logs(owner, seq).await;
}
