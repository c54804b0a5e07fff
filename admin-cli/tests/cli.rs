//! Real runs of `secondwind-admin` against the test cluster (`SECONDWIND_TEST_ADMIN_URL`).

use assert_cmd::Command;
use common::db::{self, Database};
use serde_json::Value;
use sqlx::{Connection, PgConnection};

fn admin_url() -> String {
    std::env::var("SECONDWIND_TEST_ADMIN_URL").expect("SECONDWIND_TEST_ADMIN_URL: run the tests with scripts/test")
}

fn cli() -> Command {
    let mut cmd = Command::cargo_bin("secondwind-admin").expect("binary");
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
    cli().args(["keys", "generate", "--service", "consent", "--dir"]).arg(&dir).assert().failure();
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

    for service in common::ServiceName::ALL {
        let file = dir.join("config").join(format!("{service}.toml"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).expect("config").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{} holds passwords", file.display());
        }
        // The file loads as the service would load it, and migrates through the CLI.
        let config: common::config::Config<toml::Table> =
            common::config::Config::load(service, Some(&file)).expect("valid config");
        assert_eq!(config.profile, common::config::Profile::Dev);
        assert!(config.database.url.expose().contains(service.database().app_role()));
        let out = cli().args(["--json", "db", "migrate", "--config"]).arg(&file).assert().success();
        assert!(json(&out.get_output().stdout)["applied_now"].as_u64().expect("count") >= 1);
        // The app role reaches its own database with the generated password.
        let mut conn = PgConnection::connect(config.database.url.expose()).await.expect("app role connects");
        let user: String = sqlx::query_scalar("SELECT current_user::text").fetch_one(&mut conn).await.expect("query");
        assert_eq!(user, service.database().app_role());
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

#[tokio::test]
async fn staff_roles_change_only_by_an_admin_with_a_reason() {
    let app = harness::TestApp::spawn().await;
    let url = app.database(Database::Public).app_url();
    let donor = "demo+donor@secondwind.invalid";
    let admin = "demo+admin@secondwind.invalid";
    let role = |verb: &str, by: &str, role: &str| {
        let mut cmd = cli();
        cmd.args([
            "--json",
            "users",
            verb,
            "--url",
            &url,
            "--user",
            donor,
            "--role",
            role,
            "--by",
            by,
            "--reason",
            "joined the care team",
        ]);
        cmd
    };

    // Dry run: reports the change, makes none.
    let out = role("grant-role", admin, "caseworker").arg("--dry-run").assert().success();
    assert_eq!(json(&out.get_output().stdout)["changed"], true);
    let login = app.dev_login("donor").await;
    let me: Value = app.get_as(&login.access_token, "/users/me").await.json().await.expect("json");
    assert_eq!(me["roles"], serde_json::json!([]));

    let out = role("grant-role", admin, "caseworker").assert().success();
    let change = json(&out.get_output().stdout);
    assert_eq!(change["roles"], serde_json::json!(["caseworker"]));
    let me: Value = app.get_as(&login.access_token, "/users/me").await.json().await.expect("json");
    assert_eq!(me["roles"], serde_json::json!(["caseworker"]));
    // Idempotent.
    let out = role("grant-role", admin, "caseworker").assert().success();
    assert_eq!(json(&out.get_output().stdout)["changed"], false);

    // Refusals.
    let out = role("grant-role", donor, "admin").assert().failure();
    assert!(String::from_utf8_lossy(&out.get_output().stderr).contains("is not an admin"));
    let out = role("grant-role", admin, "superuser").assert().failure();
    assert!(String::from_utf8_lossy(&out.get_output().stderr).contains("not a staff role"));
    let out = role("grant-role", admin, "caseworker").args(["--user", "nobody@example.org"]).assert().failure();
    assert!(!out.get_output().status.success());

    // Revoking needs confirmation and ends the user's sessions.
    let out = role("revoke-role", admin, "caseworker").assert().failure();
    assert!(String::from_utf8_lossy(&out.get_output().stderr).contains("--yes"));
    let out = role("revoke-role", admin, "caseworker").arg("--yes").assert().success();
    let change = json(&out.get_output().stdout);
    assert_eq!(change["roles"], serde_json::json!([]));
    assert!(change["sessions_ended"].as_u64().expect("count") >= 1);
    assert_eq!(app.get_as(&login.access_token, "/users/me").await.status(), 401);

    // Both changes are in the audit log with actor and reason, and the chain verifies.
    let pool = sqlx::PgPool::connect(&url).await.expect("pool");
    let rows: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT action, reason FROM audit_logs WHERE action LIKE 'user.role_%' AND actor_id = '00000000-0000-4000-8000-000000000005' ORDER BY seq",
    )
    .fetch_all(&pool)
    .await
    .expect("rows");
    assert_eq!(
        rows,
        vec![
            ("user.role_grant".to_owned(), Some("joined the care team".to_owned())),
            ("user.role_revoke".to_owned(), Some("joined the care team".to_owned())),
        ]
    );
    assert!(public_api::audit::verify(&pool, 10).await.expect("verify").intact());
    pool.close().await;
    app.stop().await;
}
