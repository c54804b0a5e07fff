//! Real runs of `secondwind-admin` against the services the harness starts: staff work through
//! public-api as themselves, and the trails name the person the server proved.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use common::db::Database;
use harness::client::Client;
use harness::TestApp;
use serde_json::{json, Value};

/// One person's CLI: their own config folder (so their own session), pointed at the app.
struct Staff {
    dir: PathBuf,
    api_url: String,
}

impl Staff {
    async fn login(app: &TestApp, root: &Path, who: &str) -> Self {
        let staff = Staff { dir: root.join(who), api_url: app.public_api.url.clone() };
        let out = staff.run(&["--json", "login", "--dev", who]).await;
        assert_eq!(out.status.code(), Some(0), "login {who}: {}", stderr(&out));
        staff
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::cargo_bin("secondwind-admin").expect("binary");
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .arg("--config-dir")
            .arg(&self.dir)
            .args(["--api-url", &self.api_url])
            .args(args);
        cmd
    }

    /// Runs the CLI off the runtime's threads (the services answer on them meanwhile).
    async fn run(&self, args: &[&str]) -> Output {
        let mut cmd = self.command(args);
        tokio::task::spawn_blocking(move || cmd.output().expect("run secondwind-admin")).await.expect("join")
    }

    async fn ok(&self, args: &[&str]) -> Value {
        let out = self.run(&[&["--json"], args].concat()).await;
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
    }

    async fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args).await;
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "nothing on stdout when refused: {}", String::from_utf8_lossy(&out.stdout));
        stderr(&out)
    }
}

fn time_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

async fn actors(pool: &sqlx::PgPool, action: &str) -> Vec<Option<uuid::Uuid>> {
    sqlx::query_scalar("SELECT actor_id FROM audit_logs WHERE action = $1 ORDER BY seq")
        .bind(action)
        .fetch_all(pool)
        .await
        .expect("audit rows")
}

/// The staff journey end to end: a caseworker takes an application from the queue to funded, and a
/// compliance officer reads the trails and a patient's accounting, each signed in as themselves,
/// each action attributed to them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn staff_take_an_application_from_the_queue_to_funded_as_themselves() {
    let app = TestApp::spawn().await;
    let root = tempfile::tempdir().expect("dir");
    let public = sqlx::PgPool::connect(&app.database(Database::Public).app_url()).await.expect("public db");
    let ben_login = app.dev_login("beneficiary").await;
    let beneficiary = Client { app: &app, who: &ben_login };
    let (status, submitted) = beneficiary
        .post(
            "/applications",
            &json!({ "kind": "rent", "amount_cents": 85_000,
                     "details": { "description": "Two months behind after a hospital stay", "needed_by": "2099-01-31" } }),
        )
        .await;
    assert_eq!(status, 201, "{submitted}");
    let id = submitted["id"].as_str().expect("id").to_owned();

    let admin = Staff::login(&app, root.path(), "admin").await;
    let caseworker = Staff::login(&app, root.path(), "caseworker").await;
    let officer = Staff::login(&app, root.path(), "compliance_officer").await;

    // The session file is the user's alone.
    let credentials = root.path().join("caseworker").join("credentials.json");
    assert_eq!(std::fs::metadata(&credentials).expect("file").permissions().mode() & 0o777, 0o600);
    let me = caseworker.ok(&["whoami"]).await;
    assert_eq!(me["roles"], json!(["caseworker"]));
    let caseworker_id = me["id"].as_str().expect("id").to_owned();
    let admin_id: uuid::Uuid = admin.ok(&["whoami"]).await["id"].as_str().expect("id").parse().expect("uuid");

    // The queue, for scripts and for people.
    let queue = admin.ok(&["applications", "list", "--unassigned"]).await;
    assert!(queue["applications"].as_array().expect("list").iter().any(|a| a["id"] == id.as_str()), "{queue}");
    let table = admin.run(&["applications", "list", "--type", "rent"]).await;
    assert!(String::from_utf8_lossy(&table.stdout).contains("$850.00"), "{}", String::from_utf8_lossy(&table.stdout));
    let csv = admin.run(&["--csv", "applications", "list"]).await;
    let csv = String::from_utf8_lossy(&csv.stdout).into_owned();
    assert!(csv.starts_with("id,type,amount,status,caseworker,version,submitted\n"), "{csv}");
    assert!(csv.contains(&id), "{csv}");

    // Assigned by the admin; the caseworker then finds it under --mine and reads its details,
    // told that the read is logged.
    let assigned = admin.ok(&["applications", "assign", &id, "--caseworker", &caseworker_id]).await;
    assert_eq!(assigned["caseworker_id"], caseworker_id.as_str());
    let mine = caseworker.ok(&["applications", "list", "--mine"]).await;
    assert_eq!(mine["applications"][0]["id"], id.as_str());
    let out = caseworker.run(&["--json", "applications", "show", &id]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("logged in the PHI access log under your name"));
    let shown: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(shown["details"]["description"], "Two months behind after a hospital stay");

    // Decisions: ask for something, the beneficiary answers, approve; funding is someone else's.
    let asked = caseworker.ok(&["applications", "request-action", &id, "--note", "Please upload the lease"]).await;
    assert_eq!(asked["status"], "action_needed");
    let (status, answered) = beneficiary
        .send(reqwest::Method::PATCH, &format!("/applications/{id}"), Some(&json!({ "amount_cents": 85_000 })))
        .await;
    assert_eq!(status, 200, "{answered}");
    // A stale version is refused and changes nothing.
    let refused = caseworker.fails(&["applications", "approve", &id, "--version", "1"], 1).await;
    assert!(refused.contains("refused"), "{refused}");
    // Approving names the version reviewed: without it, bad usage.
    caseworker.fails(&["applications", "approve", &id], 2).await;
    let seen = caseworker.ok(&["applications", "show", &id]).await["application"]["version"].to_string();
    let approved =
        caseworker.ok(&["applications", "approve", &id, "--version", &seen, "--note", "Lease checked"]).await;
    assert_eq!(approved["status"], "approved");
    let seen = approved["version"].to_string();
    let refused = caseworker.fails(&["applications", "fund", &id, "--version", &seen], 3).await;
    assert!(refused.contains("permission denied"), "{refused}");
    let funded = admin.ok(&["applications", "fund", &id, "--version", &seen]).await;
    assert_eq!(funded["status"], "funded");

    // Every decision's audit row names the person the server proved.
    let cw: uuid::Uuid = caseworker_id.parse().expect("uuid");
    let changes = actors(&public, "application.status").await;
    assert_eq!(changes, vec![Some(cw), Some(cw), Some(admin_id)], "request-action, approve (caseworker), fund (admin)");
    assert_eq!(actors(&public, "application.assign").await, vec![Some(admin_id)]);

    // The compliance officer: refused the contents (exit 3), reads the PHI access log, which
    // shows the caseworker's read, and the beneficiary's accounting of disclosures.
    let denied = officer.fails(&["applications", "show", &id], 3).await;
    assert!(denied.contains("permission denied"), "{denied}");
    let log = officer.ok(&["audit", "query", "--log", "phi-access", "--subject", &ben_login.user_id, "--all"]).await;
    let entries = log["entries"].as_array().expect("entries");
    assert!(
        entries
            .iter()
            .any(|e| e["actor"] == caseworker_id.as_str() && e["action"] == "record.read" && e["decision"] == "permit"),
        "{log}"
    );
    // Filtered by actor, action, decision and day, and each filter narrows.
    let today = time::OffsetDateTime::now_utc().date().to_string();
    let filtered = |extra: &'static [&'static str]| {
        let mut args = vec!["audit", "query", "--log", "phi-access", "--actor", caseworker_id.as_str(), "--action"];
        args.extend(["record.read", "--from", today.as_str(), "--to", today.as_str()]);
        args.extend(extra);
        let officer = &officer;
        async move { officer.ok(&args).await["entries"].as_array().expect("entries").clone() }
    };
    let reads = filtered(&["--outcome", "permit"]).await;
    assert!(
        !reads.is_empty() && reads.iter().all(|e| e["actor"] == caseworker_id.as_str() && e["action"] == "record.read")
    );
    assert!(filtered(&["--outcome", "deny"]).await.is_empty());
    let other_day =
        officer.ok(&["audit", "query", "--log", "phi-access", "--actor", &caseworker_id, "--to", "2020-01-01"]).await;
    assert_eq!(other_day["entries"], json!([]));
    officer.fails(&["audit", "query", "--log", "phi-access", "--outcome", "success"], 2).await;
    let report = officer.run(&["--csv", "disclosures", "report", "--subject", &ben_login.user_id]).await;
    assert_eq!(report.status.code(), Some(0), "{}", stderr(&report));
    assert!(String::from_utf8_lossy(&report.stdout).starts_with("disclosed,recipient,records,purpose,basis,notice\n"));
    // And as a PDF the patient can be handed: private to the officer, never overwritten unasked.
    let pdf = root.path().join("accounting.pdf");
    let subject = ben_login.user_id.as_str();
    officer.ok(&["disclosures", "report", "--subject", subject, "--pdf", pdf.to_str().expect("path")]).await;
    let bytes = std::fs::read(&pdf).expect("pdf");
    let text = String::from_utf8_lossy(&bytes);
    assert!(bytes.starts_with(b"%PDF-1.4") && text.ends_with("%%EOF\n"));
    assert!(text.contains("(Accounting of Disclosures) Tj"), "{text}");
    assert!(text.contains(&format!("(SecondWind account: {subject}) Tj")));
    assert!(text.contains("(No disclosures were made in this period.) Tj"));
    assert_eq!(std::fs::metadata(&pdf).expect("meta").permissions().mode() & 0o777, 0o600);
    let again =
        officer.fails(&["disclosures", "report", "--subject", subject, "--pdf", pdf.to_str().expect("path")], 2).await;
    assert!(again.contains("--force"), "{again}");
    // --force replaces a planted symbolic link itself, never the file it points at.
    let victim = root.path().join("victim.txt");
    std::fs::write(&victim, "keep me").expect("write");
    let planted = root.path().join("planted.pdf");
    std::os::unix::fs::symlink(&victim, &planted).expect("symlink");
    officer
        .ok(&["disclosures", "report", "--subject", subject, "--pdf", planted.to_str().expect("path"), "--force"])
        .await;
    assert_eq!(std::fs::read_to_string(&victim).expect("read"), "keep me");
    assert!(std::fs::symlink_metadata(&planted).expect("meta").file_type().is_file());
    // The public audit log, filtered: the caseworker's decisions on this application.
    let rows = officer
        .ok(&[
            "audit",
            "query",
            "--actor",
            &caseworker_id,
            "--action",
            "application.*",
            "--resource",
            &format!("application:{id}"),
        ])
        .await;
    let actions: Vec<&str> =
        rows["entries"].as_array().expect("entries").iter().map(|e| e["action"].as_str().expect("action")).collect();
    assert_eq!(actions, vec!["application.status", "application.status"], "{rows}");
    officer.fails(&["audit", "query", "--outcome", "maybe"], 2).await;
    // Reading the whole trail a row at a time ends, though each read is itself audited.
    let all = officer.ok(&["audit", "query", "--all", "--limit", "1"]).await;
    let head = all["head_seq"].as_i64().expect("head");
    let seqs: Vec<i64> =
        all["entries"].as_array().expect("entries").iter().map(|e| e["seq"].as_i64().expect("seq")).collect();
    let expected: Vec<i64> = sqlx::query_scalar("SELECT seq FROM audit_logs WHERE seq <= $1 ORDER BY seq")
        .bind(head)
        .fetch_all(&public)
        .await
        .expect("seqs");
    assert_eq!(seqs, expected, "every row up to where reading began, once");
    assert!(all["entries"][0]["ip"].is_null(), "addresses only when asked for");
    officer.fails(&["audit", "query", "--subject", &ben_login.user_id], 2).await;

    // Verifying every trail, each against its signed checkpoints wherever kept: intact, then a
    // row edited behind the service's back is named.
    assert!(!app.publish_checkpoints().await.is_empty());
    // A verification counts checkpoints once they have settled.
    tokio::time::sleep(common::checkpoint::SETTLE.unsigned_abs() + std::time::Duration::from_millis(200)).await;
    let report = officer.ok(&["audit", "verify"]).await;
    assert_eq!(report["intact"], true, "{report}");
    let trails: Vec<&str> =
        report["trails"].as_array().expect("trails").iter().filter_map(|t| t["trail"].as_str()).collect();
    assert_eq!(
        trails,
        ["audit_logs", "access_log", "access_reviews", "disclosures", "decisions", "consents", "revocations"]
    );
    let public_trail = &report["trails"][0];
    assert!(public_trail["checkpoints_verified"].as_u64() >= Some(1), "{public_trail}");
    let places: Vec<&str> =
        public_trail["places"].as_array().expect("places").iter().filter_map(|p| p["place"].as_str()).collect();
    assert!(places.contains(&"consent database") && places.contains(&"public-api database"), "{places:?}");
    let mut su = <sqlx::PgConnection as sqlx::Connection>::connect(&app.database(Database::Public).url_as("postgres"))
        .await
        .expect("superuser");
    let tampered: i64 = sqlx::query_scalar(
        "UPDATE audit_logs SET reason = 'nothing to see' WHERE seq = \
         (SELECT min(seq) FROM audit_logs WHERE action = 'application.status') RETURNING seq",
    )
    .fetch_one(&mut su)
    .await
    .expect("tamper");
    let out = officer.run(&["--json", "audit", "verify"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    let public_trail = &report["trails"][0];
    assert_eq!(report["intact"], false);
    assert_eq!(
        (public_trail["intact"].as_bool(), public_trail["first_bad_seq"].as_i64()),
        (Some(false), Some(tampered))
    );
    assert_eq!(public_trail["breaks"][0]["problem"], "content_changed");
    assert!(report["trails"].as_array().expect("trails")[1..].iter().all(|t| t["intact"] == true), "{report}");
    assert!(stderr(&out).contains(&format!("audit_logs (first bad seq {tampered})")), "{}", stderr(&out));
    let verified: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT outcome, reason FROM audit_logs WHERE action = 'audit.verify' AND resource_id = 'all' ORDER BY seq",
    )
    .fetch_all(&public)
    .await
    .expect("verifications");
    assert_eq!(verified.iter().map(|v| v.0.as_str()).collect::<Vec<_>>(), ["success", "failure"]);
    assert!(
        verified[1].1.as_deref().is_some_and(|r| r.contains(&format!("audit_logs from seq {tampered}"))),
        "{verified:?}"
    );

    // And a caseworker is refused the audit commands.
    let denied = caseworker.fails(&["audit", "query", "--log", "phi-access"], 3).await;
    assert!(denied.contains("permission denied"), "{denied}");
    caseworker.fails(&["audit", "verify"], 3).await;

    // Not found is 4; a malformed id is bad usage, 2.
    caseworker.fails(&["applications", "show", &uuid::Uuid::new_v4().to_string()], 4).await;
    caseworker.fails(&["applications", "show", "not-an-id"], 2).await;

    // Signing out ends the session on the server too.
    let token: Value = serde_json::from_slice(&std::fs::read(&credentials).expect("read")).expect("json");
    let token = token["access_token"].as_str().expect("token").to_owned();
    caseworker.ok(&["logout"]).await;
    assert!(!credentials.exists());
    assert_eq!(app.get_as(&token, "/users/me").await.status(), 401);
    let out = caseworker.fails(&["whoami"], 3).await;
    assert!(out.contains("secondwind-admin login"), "{out}");

    public.close().await;
    app.stop().await;
}

/// Roles change only through a signed-in admin, with a reason; the audit row names that admin.
/// Nobody changes their own roles; revoking asks first and ends the user's sessions.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn roles_are_granted_by_a_signed_in_admin_with_a_reason() {
    let app = TestApp::spawn().await;
    let root = tempfile::tempdir().expect("dir");
    let public = sqlx::PgPool::connect(&app.database(Database::Public).app_url()).await.expect("public db");
    let admin = Staff::login(&app, root.path(), "admin").await;
    let caseworker = Staff::login(&app, root.path(), "caseworker").await;
    let donor = "demo+donor@secondwind.invalid";
    let admin_id: uuid::Uuid = admin.ok(&["whoami"]).await["id"].as_str().expect("id").parse().expect("uuid");
    let donor_login = app.dev_login("donor").await;

    let dry = admin.ok(&["users", "grant-role", donor, "caseworker", "--reason", "joined", "--dry-run"]).await;
    assert_eq!((dry["changed"].as_bool(), dry["dry_run"].as_bool()), (Some(true), Some(true)));
    assert!(actors(&public, "user.role_grant").await.is_empty(), "a dry run writes nothing");

    let granted = admin.ok(&["users", "grant-role", donor, "caseworker", "--reason", "joined the Denver team"]).await;
    assert_eq!(granted["roles"], json!(["caseworker"]));
    let again = admin.ok(&["users", "grant-role", donor, "caseworker", "--reason", "again"]).await;
    assert_eq!(again["changed"], false);

    // Refusals, each with its exit code and nothing written.
    caseworker.fails(&["users", "grant-role", donor, "admin", "--reason", "x"], 3).await;
    let own = admin
        .fails(&["users", "revoke-role", "demo+admin@secondwind.invalid", "admin", "--reason", "x", "--yes"], 3)
        .await;
    assert!(own.contains("permission denied"), "{own}");
    let unknown = admin.fails(&["users", "grant-role", "nobody@example.org", "caseworker", "--reason", "x"], 4).await;
    assert!(unknown.contains("not found"), "{unknown}");
    let bad = admin.fails(&["users", "grant-role", donor, "superuser", "--reason", "x"], 2).await;
    assert!(bad.contains("not a staff role"), "{bad}");
    let blank = admin.fails(&["users", "grant-role", donor, "admin", "--reason", "  "], 2).await;
    assert!(blank.contains("reason"), "{blank}");
    let unconfirmed = admin.fails(&["users", "revoke-role", donor, "caseworker", "--reason", "left"], 2).await;
    assert!(unconfirmed.contains("--yes"), "{unconfirmed}");

    let revoked = admin.ok(&["users", "revoke-role", donor, "caseworker", "--reason", "left the team", "--yes"]).await;
    assert_eq!(revoked["roles"], json!([]));
    assert!(revoked["sessions_ended"].as_u64().expect("count") >= 1);
    assert_eq!(app.get_as(&donor_login.access_token, "/users/me").await.status(), 401);

    type Row = (String, Option<uuid::Uuid>, Option<String>, Option<String>);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT action, actor_id, reason, operator FROM audit_logs \
         WHERE action LIKE 'user.role_%' AND outcome = 'success' ORDER BY seq",
    )
    .fetch_all(&public)
    .await
    .expect("rows");
    assert_eq!(
        rows,
        vec![
            ("user.role_grant".into(), Some(admin_id), Some("joined the Denver team".into()), None),
            ("user.role_revoke".into(), Some(admin_id), Some("left the team".into()), None),
        ]
    );
    // The refused attempt on the admin's own roles is in the trail too, under that admin.
    assert_eq!(actors(&public, "user.role_change").await, vec![Some(admin_id)]);
    assert!(public_api::audit::verify(&public, 10).await.expect("verify").intact());
    public.close().await;
    app.stop().await;
}

/// An admin sees a user's open sessions and ends them all with a reason; both are in the trail
/// under the admin, and the ended tokens stop working at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_admin_sees_and_ends_a_users_sessions() {
    let app = TestApp::spawn().await;
    let root = tempfile::tempdir().expect("dir");
    let public = sqlx::PgPool::connect(&app.database(Database::Public).app_url()).await.expect("public db");
    let admin = Staff::login(&app, root.path(), "admin").await;
    let caseworker = Staff::login(&app, root.path(), "caseworker").await;
    let admin_id: uuid::Uuid = admin.ok(&["whoami"]).await["id"].as_str().expect("id").parse().expect("uuid");
    let donor = "demo+donor@secondwind.invalid";
    let (first, second) = (app.dev_login("donor").await, app.dev_login("donor").await);

    let page = admin.ok(&["users", "sessions", donor]).await;
    let donor_id = page["user_id"].as_str().expect("user id").to_owned();
    assert_eq!(page["sessions"].as_array().expect("sessions").len(), 2, "{page}");
    assert!(page["sessions"][0]["expires_at"].is_string(), "{page}");
    let paged = admin.ok(&["users", "sessions", donor, "--limit", "1"]).await;
    assert_eq!((paged["sessions"].as_array().map(Vec::len), paged["next_offset"].as_i64()), (Some(1), Some(1)));
    let table = admin.run(&["users", "sessions", donor]).await;
    assert!(stderr(&table).contains("recorded in the audit log"), "{}", stderr(&table));
    let reads: Vec<(Option<uuid::Uuid>, Option<String>)> =
        sqlx::query_as("SELECT actor_id, resource_id FROM audit_logs WHERE action = 'user.sessions_read' ORDER BY seq")
            .fetch_all(&public)
            .await
            .expect("reads");
    assert_eq!(reads, vec![(Some(admin_id), Some(donor_id.clone())); 3], "every read is audited under the admin");

    // Refusals: not an admin (3), nobody (4), no reason (2), not confirmed (2); nothing ended.
    caseworker.fails(&["users", "sessions", donor], 3).await;
    caseworker.fails(&["users", "revoke-sessions", donor, "--reason", "x", "--yes"], 3).await;
    admin.fails(&["users", "sessions", "nobody@example.org"], 4).await;
    let blank = admin.fails(&["users", "revoke-sessions", donor, "--reason", " ", "--yes"], 2).await;
    assert!(blank.contains("reason"), "{blank}");
    let unconfirmed = admin.fails(&["users", "revoke-sessions", donor, "--reason", "lost laptop"], 2).await;
    assert!(unconfirmed.contains("--yes"), "{unconfirmed}");
    assert_eq!(app.get_as(&first.access_token, "/users/me").await.status(), 200, "nothing ended yet");

    let done = admin.ok(&["users", "revoke-sessions", donor, "--reason", "laptop reported stolen", "--yes"]).await;
    assert_eq!(done["sessions_ended"], 2);
    for login in [&first, &second] {
        assert_eq!(app.get_as(&login.access_token, "/users/me").await.status(), 401);
    }
    assert_eq!(admin.ok(&["users", "sessions", donor]).await["sessions"], json!([]));
    let again = admin.ok(&["users", "revoke-sessions", donor, "--reason", "again", "--yes"]).await;
    assert_eq!(again["sessions_ended"], 0);
    let revokes: Vec<(Option<uuid::Uuid>, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT actor_id, resource_id, reason FROM audit_logs WHERE action = 'user.sessions_revoke' ORDER BY seq",
    )
    .fetch_all(&public)
    .await
    .expect("revokes");
    assert_eq!(revokes[0], (Some(admin_id), Some(donor_id), Some("laptop reported stolen".into())));
    assert_eq!(revokes.len(), 2);
    assert!(public_api::audit::verify(&public, 10).await.expect("verify").intact());
    public.close().await;
    app.stop().await;
}

/// A compliance officer reads a beneficiary's consents and the consent decision log (a partner's
/// permitted read and its refused one) through the CLI; each reading is in the audit log under
/// the officer, and a caseworker is refused both.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_compliance_officer_reads_consents_and_the_decision_log() {
    let app = TestApp::spawn().await;
    let root = tempfile::tempdir().expect("dir");
    let public = sqlx::PgPool::connect(&app.database(Database::Public).app_url()).await.expect("public db");
    let consent_db = sqlx::PgPool::connect(&app.database(Database::Consent).app_url()).await.expect("consent db");
    let ben = app.dev_login("beneficiary").await;
    app.put_sample_profile(&ben).await;
    let partner_login = app.dev_login("partner").await;
    let subject: uuid::Uuid = ben.user_id.parse().expect("uuid");
    let recipient = format!("partner:{}", partner_login.user_id);
    let consent_id = harness::consents::consent_to(
        &consent_db,
        subject,
        &recipient,
        &["identity"],
        "housing_placement",
        time::Duration::days(90),
    )
    .await;
    let partner = Client { app: &app, who: &partner_login };
    let profile = |purpose: &str| format!("/partner/beneficiaries/{subject}/profile?purpose={purpose}");
    assert_eq!(partner.get(&profile("housing_placement")).await.0, 200, "permitted under the consent");
    assert_eq!(partner.get(&profile("payment")).await.0, 404, "refused: no consent for payment");

    let officer = Staff::login(&app, root.path(), "compliance_officer").await;
    let caseworker = Staff::login(&app, root.path(), "caseworker").await;
    let officer_id: uuid::Uuid = officer.ok(&["whoami"]).await["id"].as_str().expect("id").parse().expect("uuid");

    // The beneficiary's consents, and one of them by its id with the form text.
    let listed = officer.ok(&["consents", "list", "--subject", &ben.user_id]).await;
    assert_eq!(listed["consents"].as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed["consents"][0]["id"], consent_id.to_string());
    assert_eq!(listed["consents"][0]["state"], "signed");
    assert_eq!(
        officer.ok(&["consents", "list", "--subject", &ben.user_id, "--state", "revoked"]).await["consents"],
        json!([])
    );
    let shown = officer.ok(&["consents", "show", &consent_id.to_string()]).await;
    assert_eq!(shown["subject_id"], ben.user_id.as_str());
    assert_eq!(shown["consent"]["purpose"], "housing_placement");
    assert!(shown["form_text"].as_str().is_some_and(|t| t.contains("I consent")), "{shown}");
    let text = officer.run(&["consents", "show", &consent_id.to_string()]).await;
    assert!(String::from_utf8_lossy(&text.stdout).contains("form text:"));
    assert!(stderr(&text).contains("recorded in the audit log"), "{}", stderr(&text));
    officer.fails(&["consents", "show", &uuid::Uuid::new_v4().to_string()], 4).await;

    // The decision log: both of the partner's questions, then each filter.
    let all = officer.ok(&["audit", "query", "--log", "consent-decisions", "--subject", &ben.user_id]).await;
    let answers: Vec<(String, bool, Option<String>)> = all["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            let consent = e["consent_id"].as_str().map(str::to_owned);
            (e["purpose"].as_str().expect("purpose").to_owned(), e["permitted"].as_bool().expect("bool"), consent)
        })
        .collect();
    assert_eq!(
        answers,
        vec![("housing_placement".into(), true, Some(consent_id.to_string())), ("payment".into(), false, None)]
    );
    assert!(all["entries"][0]["asked_by"].as_str().is_some_and(|a| a.ends_with(&partner_login.user_id)), "{all}");
    let refused = officer
        .ok(&["audit", "query", "--log", "decisions", "--actor", &partner_login.user_id, "--outcome", "refused"])
        .await;
    assert_eq!(refused["entries"].as_array().map(Vec::len), Some(1), "{refused}");
    assert_eq!(refused["entries"][0]["purpose"], "payment");
    let paged =
        officer.ok(&["audit", "query", "--log", "decisions", "--recipient", &recipient, "--limit", "1", "--all"]).await;
    assert_eq!(paged["entries"].as_array().map(Vec::len), Some(2), "--all reads every page: {paged}");
    let csv = officer.run(&["--csv", "audit", "query", "--log", "decisions", "--purpose", "payment"]).await;
    let csv = String::from_utf8_lossy(&csv.stdout).into_owned();
    assert!(csv.starts_with("seq,when,subject") && csv.contains(",refused,"), "{csv}");
    let other =
        officer.ok(&["audit", "query", "--log", "decisions", "--subject", &uuid::Uuid::new_v4().to_string()]).await;
    assert_eq!(other["entries"], json!([]));
    // Filters the log does not have, and malformed ones, are usage errors.
    let wrong = officer.fails(&["audit", "query", "--log", "decisions", "--flagged"], 2).await;
    assert!(wrong.contains("--flagged"), "{wrong}");
    officer.fails(&["audit", "query", "--log", "decisions", "--outcome", "maybe"], 2).await;
    officer.fails(&["audit", "query", "--log", "decisions", "--recipient", "x y"], 2).await;
    officer.fails(&["audit", "query", "--log", "public", "--recipient", &recipient], 2).await;

    // A caseworker reads none of it.
    caseworker.fails(&["consents", "list", "--subject", &ben.user_id], 3).await;
    caseworker.fails(&["consents", "show", &consent_id.to_string()], 3).await;
    caseworker.fails(&["audit", "query", "--log", "decisions"], 3).await;

    // Every reading is in the audit log under the officer.
    let rows: Vec<(String, Option<uuid::Uuid>, Option<String>)> = sqlx::query_as(
        "SELECT action, actor_id, resource_id FROM audit_logs \
         WHERE action IN ('consent.read', 'audit.read') AND outcome = 'success' ORDER BY seq",
    )
    .fetch_all(&public)
    .await
    .expect("rows");
    assert!(rows.iter().all(|(_, actor, _)| *actor == Some(officer_id)), "{rows:?}");
    let consent_reads: Vec<&str> =
        rows.iter().filter(|r| r.0 == "consent.read").filter_map(|r| r.2.as_deref()).collect();
    assert_eq!(consent_reads, vec![ben.user_id.as_str(); 4], "each on the beneficiary, as user:<id>");
    let decision_reads = rows.iter().filter(|r| r.0 == "audit.read" && r.2.as_deref() == Some("decisions")).count();
    assert_eq!(decision_reads, 6, "each page read, the --all pages included: {rows:?}");

    // The consent trails verify against their checkpoints, kept by phi-vault too; a decision
    // edited behind the service's back, and a checkpoint removed from phi-vault's database, are
    // both named.
    assert!(!app.publish_checkpoints().await.is_empty());
    // A verification counts checkpoints once they have settled.
    tokio::time::sleep(common::checkpoint::SETTLE.unsigned_abs() + std::time::Duration::from_millis(200)).await;
    let report = officer.ok(&["audit", "verify"]).await;
    let decisions = |report: &Value| {
        report["trails"]
            .as_array()
            .expect("trails")
            .iter()
            .find(|t| t["trail"] == "decisions")
            .cloned()
            .expect("decisions")
    };
    let before = decisions(&report);
    assert_eq!(before["intact"], true, "{before}");
    let places: Vec<&str> =
        before["places"].as_array().expect("places").iter().filter_map(|p| p["place"].as_str()).collect();
    assert!(places.contains(&"phi-vault database"), "{places:?}");
    let superuser = |db| app.database(db).url_as("postgres");
    let mut su = <sqlx::PgConnection as sqlx::Connection>::connect(&superuser(Database::Consent)).await.expect("su");
    let edited: i64 = sqlx::query_scalar("UPDATE decisions SET permitted = true WHERE NOT permitted RETURNING seq")
        .fetch_one(&mut su)
        .await
        .expect("tamper");
    let mut su_phi = <sqlx::PgConnection as sqlx::Connection>::connect(&superuser(Database::Phi)).await.expect("su");
    sqlx::query("SET session_replication_role = replica").execute(&mut su_phi).await.expect("replica");
    let removed = sqlx::query("DELETE FROM checkpoints WHERE origin = 'consent' AND trail = 'decisions'")
        .execute(&mut su_phi)
        .await
        .expect("delete");
    assert!(removed.rows_affected() >= 1);
    let out = officer.run(&["--json", "audit", "verify"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let after = decisions(&serde_json::from_slice(&out.stdout).expect("json"));
    assert_eq!((after["intact"].as_bool(), after["first_bad_seq"].as_i64()), (Some(false), Some(edited)), "{after}");
    assert_eq!(after["breaks"][0]["problem"], "content_changed");
    let kinds: Vec<&str> =
        after["problems"].as_array().expect("problems").iter().filter_map(|p| p["kind"].as_str()).collect();
    assert!(kinds.contains(&"missing_checkpoint"), "{after}");
    assert!(
        after["problems"]
            .as_array()
            .expect("problems")
            .iter()
            .any(|p| p["description"].as_str().is_some_and(|d| d.contains("not in phi-vault database"))),
        "{after}"
    );
    assert!(stderr(&out).contains(&format!("decisions (first bad seq {edited})")), "{}", stderr(&out));
    public.close().await;
    consent_db.close().await;
    app.stop().await;
}

/// A token is never sent to a server other than the one that issued it, nor over plain http to
/// another machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_session_goes_only_to_the_server_that_issued_it() {
    let app = TestApp::spawn().await;
    let root = tempfile::tempdir().expect("dir");
    let caseworker = Staff::login(&app, root.path(), "caseworker").await;
    let elsewhere = Staff { dir: caseworker.dir.clone(), api_url: "http://127.0.0.1:9".into() };
    let out = elsewhere.fails(&["whoami"], 3).await;
    assert!(out.contains("your session is for"), "{out}");
    let remote = Staff { dir: caseworker.dir.clone(), api_url: "http://api.example.org".into() };
    let out = remote.fails(&["whoami"], 2).await;
    assert!(out.contains("https"), "{out}");
    // An expired access token is renewed with the refresh token (rotated, audited) before the
    // command runs; presenting a spent refresh token ends the whole session.
    let file = caseworker.dir.join("credentials.json");
    let edit = |change: &dyn Fn(&mut Value)| {
        let mut stored: Value = serde_json::from_slice(&std::fs::read(&file).expect("read")).expect("json");
        change(&mut stored);
        std::fs::write(&file, serde_json::to_vec(&stored).expect("json")).expect("write");
    };
    let first: Value = serde_json::from_slice(&std::fs::read(&file).expect("read")).expect("json");
    let spent = first["refresh_token"].as_str().expect("a refresh token is kept").to_owned();
    edit(&|c| c["expires_at"] = json!(0));
    let me = caseworker.ok(&["whoami"]).await;
    assert_eq!(me["roles"], json!(["caseworker"]));
    let renewed: Value = serde_json::from_slice(&std::fs::read(&file).expect("read")).expect("json");
    assert_ne!(renewed["refresh_token"].as_str(), Some(spent.as_str()), "rotated");
    assert_ne!(renewed["access_token"], first["access_token"]);
    assert!(renewed["expires_at"].as_i64().expect("exp") > time_now());
    let public = sqlx::PgPool::connect(&app.database(Database::Public).app_url()).await.expect("public db");
    let refreshes: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_logs WHERE action = 'auth.token_refresh' AND outcome = 'success' AND actor_id = $1",
    )
    .bind(uuid::Uuid::parse_str(renewed["user_id"].as_str().expect("id")).expect("uuid"))
    .fetch_one(&public)
    .await
    .expect("count");
    assert_eq!(refreshes, 1);
    // The spent token comes back after the retry leeway (within it, the same client would get
    // the same new token again): reuse.
    let mut su = <sqlx::PgConnection as sqlx::Connection>::connect(&app.database(Database::Public).url_as("postgres"))
        .await
        .expect("superuser");
    sqlx::query("UPDATE refresh_tokens SET rotated_at = now() - interval '1 minute' WHERE rotated_at IS NOT NULL")
        .execute(&mut su)
        .await
        .expect("age the exchange");
    edit(&|c| {
        c["expires_at"] = json!(0);
        c["refresh_token"] = json!(spent.clone());
    });
    let out = caseworker.fails(&["whoami"], 3).await;
    assert!(out.contains("your session has ended"), "{out}");
    assert!(!file.exists(), "a dead session is forgotten");
    let reuse: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_logs WHERE action = 'auth.refresh_reuse_detected'")
        .fetch_one(&public)
        .await
        .expect("count");
    assert_eq!(reuse, 1);
    public.close().await;

    // The body route is not for browsers (their refresh token stays in the HttpOnly cookie).
    let caseworker = Staff::login(&app, root.path(), "caseworker").await;
    let stored: Value = serde_json::from_slice(&std::fs::read(&file).expect("read")).expect("json");
    let from_a_page = reqwest::Client::new()
        .post(format!("{}/api/v1/auth/token-refresh", app.public_api.url))
        .header("origin", "http://localhost:5173")
        .json(&json!({ "refresh_token": stored["refresh_token"] }))
        .send()
        .await
        .expect("post");
    assert_eq!(from_a_page.status(), 403);

    // Automatic logoff: a session unused for longer than the idle limit ends at its next renewal.
    sqlx::query("UPDATE sessions SET last_used_at = now() - interval '13 hours' WHERE id = $1")
        .bind(uuid::Uuid::parse_str(stored["session_id"].as_str().expect("id")).expect("uuid"))
        .execute(&mut su)
        .await
        .expect("age");
    edit(&|c| c["expires_at"] = json!(0));
    let out = caseworker.fails(&["whoami"], 3).await;
    assert!(out.contains("your session has ended"), "{out}");

    // Signing out of a server that cannot be reached keeps the session (it is still live
    // there), unless forced.
    let caseworker = Staff::login(&app, root.path(), "caseworker").await;
    let gone = Staff { dir: caseworker.dir.clone(), api_url: "http://127.0.0.1:9".into() };
    let kept = gone.run(&["logout"]).await;
    assert_eq!(kept.status.code(), Some(1), "{}", stderr(&kept));
    assert!(file.exists(), "kept: the server did not end it");
    let forced = gone.run(&["logout", "--force"]).await;
    assert_eq!(forced.status.code(), Some(0), "{}", stderr(&forced));
    assert!(!file.exists());

    // A session file others can read is refused, not used.
    let caseworker = Staff::login(&app, root.path(), "caseworker").await;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = caseworker.fails(&["whoami"], 3).await;
    assert!(out.contains("is not a private file of yours"), "{out}");
    app.stop().await;
}

#[test]
fn help_and_completions_work_without_a_server() {
    let out = Command::cargo_bin("secondwind-admin").expect("bin").arg("--help").output().expect("run");
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("Exit codes: 0 done, 1 failed, 2 bad usage, 3 permission denied, 4 not found"), "{help}");
    let out = Command::cargo_bin("secondwind-admin").expect("bin").args(["completions", "bash"]).output().expect("run");
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("secondwind-admin"));
    let out = Command::cargo_bin("secondwind-admin").expect("bin").arg("--no-such-flag").output().expect("run");
    assert_eq!(out.status.code(), Some(2));
}

/// The staff CLI holds no database driver, no service and no key code.
#[test]
fn the_staff_cli_links_no_database_service_or_key_code() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args(["tree", "--offline", "-p", "secondwind-admin", "-e", "normal", "--prefix", "none"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(tree.contains("secondwind-wire"), "{tree}");
    for forbidden in
        ["sqlx", "secondwind-common", "public-api", "phi-vault", "consent ", "vaultrs", "aes-gcm-siv", "rocket"]
    {
        assert!(!tree.lines().any(|l| l.starts_with(forbidden)), "{forbidden} in:\n{tree}");
    }
}

/// Runs `login --provider test --email <hint>` and plays the person approving the device in a
/// browser once the CLI prints the address; returns the CLI's exit code and stderr.
async fn device_login(staff: &Staff, hint: &str) -> (Option<i32>, String) {
    use std::io::BufRead;
    let path = assert_cmd::cargo::cargo_bin("secondwind-admin");
    let mut child = std::process::Command::new(path)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .arg("--config-dir")
        .arg(&staff.dir)
        .args(["--api-url", &staff.api_url, "login", "--provider", "test", "--email", hint])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the CLI");
    let stderr = child.stderr.take().expect("stderr");
    let (url, mut lines) = tokio::task::spawn_blocking(move || {
        let mut reader = std::io::BufReader::new(stderr);
        let mut seen = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).expect("read") == 0 {
                panic!("the CLI ended before showing an address: {seen}");
            }
            seen.push_str(&line);
            if let Some(url) = line.trim().strip_prefix("Open: ") {
                return (url.to_owned(), (reader, seen));
            }
        }
    })
    .await
    .expect("join");
    harness::oidc::approve_device(&url).await;
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let status = child.wait().expect("wait");
        let _ = lines.0.read_to_string(&mut lines.1);
        (status.code(), lines.1)
    })
    .await
    .expect("join")
}

/// Production sign-in: the OpenID provider's device flow (RFC 8628). The person confirms the
/// code in a browser; public-api, the provider's client, holds the device code and gives the
/// CLI a handle; the session is for the account linked to the verified identity, and the trail
/// names it. An identity with no account gets nothing; a handle works once; polling is paced.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn staff_sign_in_through_the_providers_device_flow() {
    if harness::oidc::env().is_none() {
        panic!("SECONDWIND_TEST_OIDC_*: run the tests with scripts/test, which starts the OpenID provider");
    }
    let app = TestApp::spawn().await;
    let root = tempfile::tempdir().expect("dir");
    let public = sqlx::PgPool::connect(&app.database(Database::Public).app_url()).await.expect("public db");
    let caseworker_id: uuid::Uuid = "00000000-0000-4000-8000-000000000004".parse().expect("uuid");
    // The caseworker's account is linked to their identity at the provider (as a first web
    // sign-in would link it).
    sqlx::query("INSERT INTO identities (provider, subject, user_id) VALUES ('test', 'casey', $1)")
        .bind(caseworker_id)
        .execute(&public)
        .await
        .expect("link");

    let casey = Staff { dir: root.path().join("casey"), api_url: app.public_api.url.clone() };
    let (code, stderr) = device_login(&casey, "casey").await;
    let refusals: Vec<Value> =
        harness::logs().into_iter().filter(|l| l.to_string().contains("sign-in refused")).collect();
    assert_eq!(code, Some(0), "{stderr} {refusals:?}");
    assert!(stderr.contains("confirm the code"), "{stderr}");
    let me = casey.ok(&["whoami"]).await;
    assert_eq!((me["id"].as_str(), &me["roles"]), (Some(caseworker_id.to_string().as_str()), &json!(["caseworker"])));
    let mode = std::fs::metadata(casey.dir.join("credentials.json")).expect("file").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(actors(&public, "auth.device_login").await, vec![Some(caseworker_id)]);
    // The account is told a device signed in (and emailed, unless they turned email off).
    let told: i64 =
        sqlx::query_scalar("SELECT count(*) FROM notifications WHERE user_id = $1 AND kind = 'auth.device_sign_in'")
            .bind(caseworker_id)
            .fetch_one(&public)
            .await
            .expect("count");
    assert_eq!(told, 1);
    assert_eq!(actors(&public, "auth.device_start").await, vec![None], "the start is audited");

    // An identity no account is linked to: refused (exit 3), audited, nothing kept.
    let stranger = Staff { dir: root.path().join("stranger"), api_url: app.public_api.url.clone() };
    let (code, stderr) = device_login(&stranger, "stranger").await;
    assert_eq!(code, Some(3), "{stderr}");
    assert!(stderr.contains("no SecondWind account"), "{stderr}");
    assert!(!stranger.dir.join("credentials.json").exists());
    let failures: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_logs WHERE action = 'auth.login' AND outcome = 'failure'")
            .fetch_one(&public)
            .await
            .expect("count");
    assert_eq!(failures, 1);

    // A beneficiary's identity, linked: refused all the same (staff only), so a phished device
    // code cannot open a beneficiary's records.
    sqlx::query("INSERT INTO identities (provider, subject, user_id) VALUES ('test', 'benny', '00000000-0000-4000-8000-000000000002')")
        .execute(&public)
        .await
        .expect("link");
    let benny = Staff { dir: root.path().join("benny"), api_url: app.public_api.url.clone() };
    let (code, stderr) = device_login(&benny, "benny").await;
    assert_eq!(code, Some(3), "{stderr}");
    let refused: Option<String> = sqlx::query_scalar(
        "SELECT reason FROM audit_logs WHERE action = 'auth.login' AND outcome = 'failure' ORDER BY seq DESC LIMIT 1",
    )
    .fetch_one(&public)
    .await
    .expect("row");
    assert!(refused.is_some_and(|r| r.contains("not a staff account")));

    // Over HTTP: paced polling, and a handle used once.
    let http = reqwest::Client::new();
    let api = |path: &str| format!("{}/api/v1{path}", app.public_api.url);
    let started: Value = http
        .post(api("/auth/test/device"))
        .json(&json!({ "login_hint": "casey" }))
        .send()
        .await
        .expect("start")
        .json()
        .await
        .expect("json");
    let handle = json!({ "handle": started["handle"] });
    let poll = || http.post(api("/auth/test/device/token")).json(&handle).send();
    assert_eq!(poll().await.expect("poll").status(), 202, "not approved yet");
    assert_eq!(poll().await.expect("poll").status(), 429, "faster than the interval");
    harness::oidc::approve_device(started["verification_uri_complete"].as_str().expect("url")).await;
    let interval = started["interval"].as_u64().expect("interval");
    tokio::time::sleep(std::time::Duration::from_secs(interval)).await;
    let signed_in = poll().await.expect("poll");
    assert_eq!(signed_in.status(), 200);
    let tokens: Value = signed_in.json().await.expect("json");
    assert_eq!(tokens["user_id"], caseworker_id.to_string());
    tokio::time::sleep(std::time::Duration::from_secs(interval)).await;
    assert_eq!(poll().await.expect("poll").status(), 401, "a handle works once");
    let forged = http.post(api("/auth/test/device/token")).json(&json!({ "handle": "swd_forged" })).send().await;
    assert_eq!(forged.expect("poll").status(), 401);
    let unknown = http.post(api("/auth/nobody/device")).json(&json!({})).send().await.expect("start");
    assert_eq!(unknown.status(), 404);

    public.close().await;
    app.stop().await;
}
