//! Real runs of `secondwind-operator` against the test cluster (`SECONDWIND_TEST_ADMIN_URL`).

#[path = "cli/anchor.rs"]
mod anchor;

use assert_cmd::Command;
use common::db::{self, Database};
use serde_json::Value;
use sqlx::{Connection, PgConnection};

fn admin_url() -> String {
    std::env::var("SECONDWIND_TEST_ADMIN_URL").expect("SECONDWIND_TEST_ADMIN_URL: run the tests with scripts/test")
}

fn cli() -> Command {
    let mut cmd = Command::cargo_bin("secondwind-operator").expect("binary");
    cmd.env_remove("SECONDWIND_MIGRATE_URL").env_remove("SECONDWIND_ADMIN_DATABASE_URL");
    cmd
}

fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}

/// An empty database owned by `database`'s owner role; returns (name, owner URL).
async fn empty_database(database: Database) -> (String, String) {
    let mut admin = PgConnection::connect(&admin_url()).await.expect("admin");
    db::ensure_role_exists(&mut admin, database.owner_role()).await.expect("role");
    db::ensure_role_exists(&mut admin, database.app_role()).await.expect("role");
    let name = unique("cli");
    db::create_database(&mut admin, &name, database, None).await.expect("create");
    let _ = admin.close().await;
    let url = db::url_for(&admin_url(), database.owner_role(), None, &name).expect("url");
    (name, url)
}

async fn drop_database(name: &str) {
    let mut admin = PgConnection::connect(&admin_url()).await.expect("admin");
    db::drop_database(&mut admin, name).await.expect("drop");
    let _ = admin.close().await;
}

fn json(output: &[u8]) -> Value {
    serde_json::from_slice(output).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(output)))
}

#[tokio::test]
async fn db_status_then_migrate_then_status() {
    let (name, url) = empty_database(Database::Phi).await;

    // Pending migrations make `status` fail, so scripts can gate on it.
    let out = cli().args(["--json", "db", "status", "--database", "phi", "--url", &url]).assert().failure();
    let report = json(&out.get_output().stdout);
    assert_eq!(report["applied"], serde_json::json!([]));
    assert!(!report["pending"].as_array().expect("pending").is_empty());
    assert!(String::from_utf8_lossy(&out.get_output().stderr).contains("pending on the phi database"));

    let out = cli().args(["--json", "db", "migrate", "--database", "phi", "--url", &url]).assert().success();
    let report = json(&out.get_output().stdout);
    let total = Database::Phi.migrator().iter().count();
    assert_eq!(report["applied_now"], total);
    assert_eq!(report["pending"], serde_json::json!([]));

    // Idempotent.
    let out = cli().args(["--json", "db", "migrate", "--database", "phi", "--url", &url]).assert().success();
    assert_eq!(json(&out.get_output().stdout)["applied_now"], 0);

    // People get a table and progress on stderr.
    let out = cli().args(["db", "status", "--database", "phi", "--url", &url]).assert().success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(text.contains("applied now") && text.contains("phi"), "{text}");

    // The tables exist, owned by the owner role.
    let mut conn = PgConnection::connect(&url).await.expect("connect");
    let owner: String = sqlx::query_scalar("SELECT tableowner::text FROM pg_tables WHERE tablename = 'records'")
        .fetch_one(&mut conn)
        .await
        .expect("records table");
    assert_eq!(owner, "sw_phi_owner");
    let _ = conn.close().await;
    drop_database(&name).await;
}

#[test]
fn bad_usage_is_reported() {
    let out = cli().args(["db", "migrate", "--url", "postgres://x/y"]).assert().failure();
    assert!(String::from_utf8_lossy(&out.get_output().stderr).contains("--url needs --database"));
    cli().args(["db", "migrate"]).assert().code(2);
    cli().args(["db", "migrate", "--database", "nope", "--url", "postgres://x/y"]).assert().code(2);
    let out = cli().args(["db", "migrate", "--config", "/nonexistent/thing.toml"]).assert().failure();
    assert!(String::from_utf8_lossy(&out.get_output().stderr).contains("cannot tell which service"));
}

#[test]
fn keys_generate_refuses_to_overwrite() {
    let dir = std::env::temp_dir().join(unique("cli_keys"));
    let out = cli().args(["--json", "keys", "generate", "--service", "consent", "--dir"]).arg(&dir).assert().success();
    let report = json(&out.get_output().stdout);
    assert!(report["private_key"].as_str().expect("path").ends_with("consent.key"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("consent.key")).expect("key").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    // A second run is refused, and the key pair on disk is byte for byte the one first written.
    let before =
        (std::fs::read(dir.join("consent.key")).expect("key"), std::fs::read(dir.join("consent.pub")).expect("pub"));
    let out = cli().args(["keys", "generate", "--service", "consent", "--dir"]).arg(&dir).assert().failure();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr);
    assert!(stderr.contains("consent.key") && stderr.contains("exists"), "{stderr}");
    let after =
        (std::fs::read(dir.join("consent.key")).expect("key"), std::fs::read(dir.join("consent.pub")).expect("pub"));
    assert!(before == after, "a refused key generation changed the key files");
    let out = cli().args(["--json", "keys", "generate", "--name", "user-2", "--dir"]).arg(&dir).assert().success();
    assert!(json(&out.get_output().stdout)["private_key"].as_str().expect("path").ends_with("user-2.key"));
    cli().args(["keys", "generate", "--name", "../escape", "--dir"]).arg(&dir).assert().code(2);
    cli().args(["keys", "generate", "--dir"]).arg(&dir).assert().code(2);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn dev_init_provisions_everything_the_services_need() {
    let dir = std::env::temp_dir().join(unique("cli_init"));
    let prefix = unique("devinit");
    let policies = concat!(env!("CARGO_MANIFEST_DIR"), "/../policies");
    let out = cli()
        .args([
            "--json",
            "dev",
            "init",
            "--admin-url",
            &admin_url(),
            "--name-prefix",
            &prefix,
            "--policies-dir",
            policies,
        ])
        .arg("--data-dir")
        .arg(&dir)
        .assert()
        .success();
    let report = json(&out.get_output().stdout);
    assert_eq!(report["databases"]["phi"], format!("{prefix}_phi"));
    let mode = |path: &std::path::Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).expect("exists").permissions().mode() & 0o777
    };

    // The owner credentials are only in the admin's file; migrations run from it.
    let owners = dir.join("admin/owners.toml");
    assert_eq!(report["owners_file"].as_str(), owners.to_str());
    assert_eq!((mode(&owners), mode(&dir.join("admin"))), (0o600, 0o700));
    let out = cli().args(["--json", "db", "migrate", "--owners"]).arg(&owners).assert().success();
    let migrated = json(&out.get_output().stdout);
    let migrated = migrated.as_array().expect("one report per database");
    assert_eq!(migrated.len(), 3);
    assert!(migrated.iter().all(|r| r["applied_now"].as_u64() >= Some(1) && r["pending"] == serde_json::json!([])));
    let out =
        cli().args(["--json", "db", "status", "--database", "consent", "--owners"]).arg(&owners).assert().success();
    assert_eq!(json(&out.get_output().stdout).as_array().map(Vec::len), Some(1));
    let owner_passwords: Vec<String> = std::fs::read_to_string(&owners)
        .expect("owners")
        .lines()
        .filter_map(|l| l.strip_prefix("url = "))
        .filter_map(|url| reqwest::Url::parse(url.trim_matches('"')).ok()?.password().map(str::to_owned))
        .collect();
    assert_eq!(owner_passwords.len(), 3);

    for service in common::ServiceName::ALL {
        let file = dir.join("config").join(format!("{service}.toml"));
        assert_eq!(mode(&file), 0o600, "{} holds a password", file.display());
        // The service config holds no owner role and no owner password: an owner-less runtime config.
        let text = std::fs::read_to_string(&file).expect("config");
        assert!(!text.contains("_owner") && !text.contains("migrate_url"), "{text}");
        assert!(
            owner_passwords.iter().all(|pw| !text.contains(pw.as_str())),
            "an owner password in {}",
            file.display()
        );
        // The file loads as the service would load it; checkpoints are configured with their own key.
        let config: common::config::Config<toml::Table> =
            common::config::Config::load(service, Some(&file)).expect("valid config");
        assert_eq!(config.profile, common::config::Profile::Dev);
        assert!(config.database.url.expose().contains(Database::of(service).app_role()));
        assert!(config.database.migrate_url.is_none());
        let checkpoint = config.checkpoint.expect("checkpoints configured");
        assert_eq!(checkpoint.receivers, common::checkpoint::topology(service));
        assert_eq!(mode(&checkpoint.key_file), 0o600);
        assert_ne!(checkpoint.key_file, config.internal.signing_key_file);
        // The app role reaches its own database with the generated password.
        let mut conn = PgConnection::connect(config.database.url.expose()).await.expect("app role connects");
        let user: String = sqlx::query_scalar("SELECT current_user::text").fetch_one(&mut conn).await.expect("query");
        assert_eq!(user, Database::of(service).app_role());
        let _ = conn.close().await;
    }

    // A second init refuses rather than overwrite keys and passwords.
    let out = cli()
        .args(["dev", "init", "--admin-url", &admin_url(), "--name-prefix", &prefix, "--policies-dir", policies])
        .arg("--data-dir")
        .arg(&dir)
        .assert()
        .failure();
    assert!(String::from_utf8_lossy(&out.get_output().stderr).contains("already exists"));

    for database in Database::ALL {
        drop_database(&format!("{prefix}_{}", database.as_str())).await;
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn audit_verify_checks_the_phi_access_log_including_its_review_flags() {
    harness::init();
    let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let db = harness::TestDatabase::create(Database::Phi, &id).await;
    let pool = sqlx::PgPool::connect(&db.app_url()).await.expect("pool");
    for (n, flagged) in [false, true, false].into_iter().enumerate() {
        let request_id = format!("r{n}");
        let entry = phi_vault::access_log::Access {
            actor: "00000000-0000-4000-8000-000000000004",
            actor_role: "caseworker",
            purpose: if flagged { "break_glass" } else { "treatment" },
            subject_id: Some(uuid::Uuid::new_v4()),
            record_id: None,
            action: "record.read",
            permitted: true,
            reason: if flagged { "break-glass: resident unresponsive" } else { "care_team" },
            flagged,
            request_id: &request_id,
        };
        phi_vault::access_log::append_alone(&pool, &entry).await.expect("append");
    }
    let verify = || cli().args(["--json", "audit", "verify", "--trail", "phi", "--url", &db.app_url()]).assert();
    let report = json(&verify().success().get_output().stdout);
    assert_eq!((report["trail"].as_str(), report["intact"].as_bool()), (Some("phi"), Some(true)));
    assert_eq!(report["rows_checked"], 3);

    // Hiding a break-glass access from review breaks the chain.
    let mut su = PgConnection::connect(&db.url_as("postgres")).await.expect("superuser");
    sqlx::query("UPDATE access_log SET flagged = false WHERE flagged").execute(&mut su).await.expect("tamper");
    let _ = su.close().await;
    let report = json(&verify().code(1).get_output().stdout);
    assert_eq!(report["breaks"][0]["seq"], 2);
    assert_eq!(report["breaks"][0]["problem"], "content_changed");

    pool.close().await;
    db.drop_now().await;
}

#[tokio::test]
async fn audit_verify_checks_the_consent_decisions() {
    harness::init();
    let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let db = harness::TestDatabase::create(Database::Consent, &id).await;
    let pool = sqlx::PgPool::connect(&db.app_url()).await.expect("pool");
    for permitted in [false, true] {
        let question = common::client::DisclosureQuestion {
            subject_id: uuid::Uuid::new_v4(),
            recipient: "partner:r1".into(),
            categories: vec!["identity".into()],
            purpose: "housing_placement".into(),
        };
        let answer = consent::decisions::Answer {
            permitted,
            consent_id: permitted.then(uuid::Uuid::new_v4),
            terms_sha256: permitted.then_some(&[7u8; 32][..]),
            reason: if permitted { "consent" } else { "no standing consent" },
            asked_by: "phi-vault for partner:r1",
            request_id: "r1",
        };
        let mut tx = pool.begin().await.expect("begin");
        consent::decisions::append(&mut tx, &question, &answer).await.expect("append");
        tx.commit().await.expect("commit");
    }
    let verify = || cli().args(["--json", "audit", "verify", "--trail", "consent", "--url", &db.app_url()]).assert();
    let report = json(&verify().success().get_output().stdout);
    assert_eq!((report["trail"].as_str(), report["rows_checked"].as_u64()), (Some("consent"), Some(2)));
    // Turning a refusal into a permission is caught.
    let mut su = PgConnection::connect(&db.url_as("postgres")).await.expect("superuser");
    sqlx::query("UPDATE decisions SET permitted = true WHERE NOT permitted").execute(&mut su).await.expect("tamper");
    let _ = su.close().await;
    let report = json(&verify().code(1).get_output().stdout);
    assert_eq!(
        (report["breaks"][0]["seq"].as_i64(), report["breaks"][0]["problem"].as_str()),
        (Some(1), Some("content_changed"))
    );
    pool.close().await;
    db.drop_now().await;
}

#[tokio::test]
async fn audit_verify_reports_intact_and_broken_chains() {
    harness::init();
    let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let db = harness::TestDatabase::create(Database::Public, &id).await;
    let pool = sqlx::PgPool::connect(&db.app_url()).await.expect("pool");
    for n in 0..5 {
        let event = public_api::audit::AuditEvent {
            actor_id: None,
            action: "auth.login_failed",
            resource_type: None,
            resource_id: None,
            ip: Some("198.51.100.4".parse().expect("ip")),
            user_agent: None,
            request_id: Some(format!("r{n}")),
            outcome: public_api::audit::Outcome::Failure,
            reason: None,
            operator: None,
        };
        public_api::audit::record_alone(&pool, &event).await.expect("append");
    }

    let out = cli().args(["--json", "audit", "verify", "--url", &db.app_url()]).assert().success();
    let report = json(&out.get_output().stdout);
    assert_eq!(report["intact"], true);
    assert_eq!(report["rows_checked"], 5);
    let out = cli().args(["audit", "verify", "--url", &db.app_url()]).assert().success();
    assert!(String::from_utf8_lossy(&out.get_output().stdout).contains("intact: 5 rows verified"));

    let mut su = PgConnection::connect(&db.url_as("postgres")).await.expect("superuser");
    sqlx::query("UPDATE audit_logs SET request_id = 'forged' WHERE seq = (SELECT min(seq) + 2 FROM audit_logs)")
        .execute(&mut su)
        .await
        .expect("tamper");
    let _ = su.close().await;
    let out = cli().args(["--json", "audit", "verify", "--url", &db.app_url()]).assert().code(1);
    let report = json(&out.get_output().stdout);
    assert_eq!(report["intact"], false);
    assert_eq!(report["breaks"][0]["problem"], "content_changed");
    assert!(String::from_utf8_lossy(&out.get_output().stderr).contains("audit chain is broken"));

    pool.close().await;
    db.drop_now().await;
}

/// The first admin of an installation is made by the operator command, which names the
/// operating-system account in the audit log; once any admin exists it refuses, and roles change
/// only through a signed-in admin (secondwind-admin, tested in admin-cli/tests/staff.rs).
#[tokio::test]
async fn the_first_admin_is_made_by_the_operator_and_only_the_first() {
    let app = harness::TestApp::spawn().await;
    let url = app.database(Database::Public).app_url();
    let donor = "demo+donor@secondwind.invalid";
    let bootstrap = |user: &str| {
        let mut cmd = cli();
        cmd.args([
            "--json",
            "users",
            "bootstrap-admin",
            "--url",
            &url,
            "--user",
            user,
            "--reason",
            "first admin at install",
        ]);
        cmd
    };

    // The demo data already has an admin: refused, nothing written.
    let out = bootstrap(donor).assert().code(1);
    assert!(String::from_utf8_lossy(&out.get_output().stderr).contains("an admin already exists"));
    // An unknown user is named (a single --user: the refusal is the lookup's, not clap's).
    let out = bootstrap("nobody@example.org").assert().code(1);
    assert!(String::from_utf8_lossy(&out.get_output().stderr).contains("no such user: nobody@example.org"));

    // A fresh installation: no admin yet.
    let mut su = PgConnection::connect(&app.database(Database::Public).url_as("postgres")).await.expect("superuser");
    sqlx::query("UPDATE users SET roles = array_remove(roles, 'admin')").execute(&mut su).await.expect("no admins");
    let _ = su.close().await;
    let change = json(&bootstrap(donor).assert().success().get_output().stdout);
    assert_eq!(change["roles"], serde_json::json!(["admin"]));
    let out = bootstrap(donor).assert().code(1);
    assert!(String::from_utf8_lossy(&out.get_output().stderr).contains("an admin already exists"));

    // The audit row names the operating-system account (this process's uid), not a typed name.
    let pool = sqlx::PgPool::connect(&url).await.expect("pool");
    let rows: Vec<(Option<uuid::Uuid>, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT actor_id, operator, reason FROM audit_logs WHERE action = 'user.role_grant' ORDER BY seq",
    )
    .fetch_all(&pool)
    .await
    .expect("rows");
    let uid = std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m)).expect("uid");
    assert_eq!(rows.len(), 1, "{rows:?}");
    let (actor, operator, reason) = &rows[0];
    assert_eq!(*actor, None);
    assert!(
        operator.as_deref().is_some_and(|o| o.ends_with(&format!("(uid {uid})")) || o == format!("uid {uid}")),
        "{operator:?}"
    );
    assert_eq!(reason.as_deref(), Some("first admin at install"));
    assert!(public_api::audit::verify(&pool, 10).await.expect("verify").intact());
    pool.close().await;
    app.stop().await;
}

/// A record's whole life: stored as ciphertext, read by the subject, refused to others, read by
/// the assigned caseworker, survives KEK rotation with rewrap (old version retired), and after
/// crypto-shredding nothing can be read; every step in the access log, whose chain verifies.
#[tokio::test]
async fn phi_survives_rotation_and_is_gone_after_shredding() {
    let app = harness::TestApp::spawn().await;
    let b = app.dev_login("beneficiary").await;
    let cw = app.dev_login("caseworker").await;
    let admin = app.dev_login("admin").await;
    let profile = serde_json::json!({"legal_name": "Sam Rivera", "date_of_birth": "1990-02-03", "phone": "303-555-0101",
        "emergency_contact": {"name": "Alex Rivera", "phone": "303-555-0102", "relationship": "partner"}});
    let put = app
        .http
        .put(app.api("/beneficiaries/me/profile"))
        .bearer_auth(&b.access_token)
        .json(&profile)
        .send()
        .await
        .expect("put");
    assert_eq!(put.status(), 200);
    let cw_path = format!("/caseworker/beneficiaries/{}/profile", b.user_id);
    assert_eq!(app.get_as(&cw.access_token, &cw_path).await.status(), 404);
    let assign = app
        .http
        .put(app.api(&format!("/staff/care-team/{}/{}", cw.user_id, b.user_id)))
        .bearer_auth(&admin.access_token)
        .send()
        .await
        .expect("assign");
    assert_eq!(assign.status(), 204);
    assert_eq!(app.get_as(&cw.access_token, &cw_path).await.status(), 200);

    // The CLI works from phi-vault's config file.
    let config = app.keys.dir.join("phi-vault.toml");
    std::fs::write(
        &config,
        format!(
            "profile = \"dev\"\n[database]\nurl = \"{}\"\n[internal]\nsigning_key_file = \"{}\"\npolicy_file = \"{}\"\n[service]\nkek_file = \"{}\"\n",
            app.database(Database::Phi).app_url(),
            app.keys.dir.join("phi-vault.key").display(),
            harness::repo_root().join("policies/internal-calls.toml").display(),
            app.keys.dir.join("kek").display(),
        ),
    )
    .expect("config");
    let out = cli().args(["--json", "phi", "rotate-kek", "--config"]).arg(&config).assert().success();
    assert_eq!(json(&out.get_output().stdout)["kek_version"], 2);
    let out = cli().args(["--json", "phi", "rewrap", "--batch", "1", "--config"]).arg(&config).assert().success();
    let report = json(&out.get_output().stdout);
    assert_eq!((report["rewrapped"].as_u64(), report["remaining"].as_i64()), (Some(1), Some(0)));
    let out = cli().args(["--json", "phi", "rewrap", "--config"]).arg(&config).assert().success();
    assert_eq!(json(&out.get_output().stdout)["rewrapped"], 0, "idempotent");

    // Retire version 1: keep only the newest line of the key file. Reads still work, through
    // the running service and through a provider that has only version 2.
    let kek = app.keys.dir.join("kek");
    let text = std::fs::read_to_string(&kek).expect("kek");
    let newest = text.lines().filter(|l| l.starts_with("2:")).collect::<Vec<_>>().join("\n") + "\n";
    std::fs::write(&kek, newest).expect("retire v1");
    let phi = sqlx::PgPool::connect(&app.database(Database::Phi).app_url()).await.expect("pool");
    let version: Option<i32> = sqlx::query_scalar("SELECT kek_version FROM subjects WHERE id = $1::uuid")
        .bind(&b.user_id)
        .fetch_one(&phi)
        .await
        .expect("subject");
    assert_eq!(version, Some(2));
    let only_v2 = phi_vault::crypto::LocalKeyFile::load(&kek).expect("v2 only");
    let (wrapped, kek_id): (Vec<u8>, String) =
        sqlx::query_as("SELECT wrapped_data_key, kek_id FROM subjects WHERE id = $1::uuid")
            .bind(&b.user_id)
            .fetch_one(&phi)
            .await
            .expect("row");
    let subject: uuid::Uuid = b.user_id.parse().expect("uuid");
    use phi_vault::crypto::KeyProvider;
    let key = only_v2
        .unwrap(subject, &phi_vault::crypto::WrappedKey { ciphertext: wrapped, kek_id, kek_version: 2 })
        .await
        .expect("unwrap under v2");
    let (record, nonce, ciphertext): (uuid::Uuid, Vec<u8>, Vec<u8>) =
        sqlx::query_as("SELECT id, nonce, ciphertext FROM records WHERE subject_id = $1::uuid")
            .bind(&b.user_id)
            .fetch_one(&phi)
            .await
            .expect("record");
    let binding = phi_vault::crypto::Binding { subject, record, category: "identity", field: "content" };
    let plain =
        phi_vault::crypto::open(&key, binding, &nonce, &ciphertext).expect("the record opens without re-encryption");
    assert_eq!(serde_json::from_slice::<Value>(&plain).expect("json"), profile);
    let got: Value = app.get_as(&b.access_token, "/beneficiaries/me/profile").await.json().await.expect("json");
    assert_eq!(got, profile);

    // Crypto-shred: needs an admin and a reason; afterwards nothing of the subject can be read.
    let path = format!("/staff/beneficiaries/{}/phi", b.user_id);
    assert_eq!(
        app.http.delete(app.api(&path)).bearer_auth(&cw.access_token).send().await.expect("delete").status(),
        403
    );
    assert_eq!(
        app.http.delete(app.api(&path)).bearer_auth(&admin.access_token).send().await.expect("delete").status(),
        422
    );
    let erased = app
        .http
        .delete(app.api(&format!("{path}?reason=subject%20request")))
        .bearer_auth(&admin.access_token)
        .send()
        .await
        .expect("delete");
    assert_eq!(erased.status(), 204);
    assert_eq!(app.get_as(&b.access_token, "/beneficiaries/me/profile").await.status(), 404);
    assert_eq!(app.get_as(&cw.access_token, &cw_path).await.status(), 404);
    let key_left: Option<Vec<u8>> = sqlx::query_scalar("SELECT wrapped_data_key FROM subjects WHERE id = $1::uuid")
        .bind(&b.user_id)
        .fetch_one(&phi)
        .await
        .expect("row");
    assert!(key_left.is_none(), "the data key is destroyed");
    let erased_again = app
        .http
        .delete(app.api(&format!("{path}?reason=again")))
        .bearer_auth(&admin.access_token)
        .send()
        .await
        .expect("delete");
    assert_eq!(erased_again.status(), 404);

    // The access log holds every step, metadata only, and its chain verifies; so does the audit log.
    let actions: Vec<(String, String)> =
        sqlx::query_as("SELECT action, decision FROM access_log ORDER BY seq").fetch_all(&phi).await.expect("log");
    for expected in ["record.create", "record.read", "care_team.assign", "key.rotate", "key.rewrap", "subject.shred"] {
        assert!(actions.iter().any(|(a, d)| a == expected && d == "permit"), "{expected} missing: {actions:?}");
    }
    let out = cli().args(["--json", "audit", "verify", "--trail", "phi", "--config"]).arg(&config).assert().success();
    assert_eq!(json(&out.get_output().stdout)["intact"], true);
    let public = sqlx::PgPool::connect(&app.database(Database::Public).app_url()).await.expect("pool");
    let reason: Option<String> = sqlx::query_scalar("SELECT reason FROM audit_logs WHERE action = 'phi.erase'")
        .fetch_one(&public)
        .await
        .expect("audit");
    assert_eq!(reason.as_deref(), Some("subject request"));
    assert!(public_api::audit::verify(&public, 10).await.expect("verify").intact());
    phi.close().await;
    public.close().await;
    app.stop().await;
}
