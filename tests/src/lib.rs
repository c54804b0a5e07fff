//! The end-to-end harness every test of the system uses. `TestApp::spawn()` creates three fresh
//! databases (copies of migrated templates), fresh service keys, and starts consent, phi-vault and
//! public-api in this process on ephemeral loopback ports, wired to each other exactly as in
//! production: signed internal calls, the repository's allowlist, per-service database roles.
//!
//! Each service publishes signed checkpoints of its trails to its receivers, as configured in
//! production (`common::checkpoint::topology`), with an hour's interval: tests publish when they
//! choose (`TestApp::publish_checkpoints`). Checkpoint files go to `<keys dir>/logs`.
//!
//! It needs `SECONDWIND_TEST_ADMIN_URL`, a superuser URL of a disposable PostgreSQL cluster;
//! `scripts/test` starts one and sets it.

pub mod auth;
pub mod check;
pub mod client;
pub mod consents;
pub mod cut;
pub use auth::{sample_profile, Login};
pub mod hostile;
pub mod load;
pub mod oidc;
pub mod vault;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use common::checkpoint::Publisher;
use common::config::{
    CheckpointConfig, Config, DatabaseConfig, InternalConfig, LogConfig, MetricsConfig, PeerConfig, Profile,
    ServerConfig,
};
use common::db::{self, Database};
use common::{Secret, ServiceName};
use rocket::fairing::AdHoc;
use rocket::{Build, Rocket, Shutdown};
use sqlx::{Connection, PgConnection};
use tokio::sync::OnceCell;

pub const ADMIN_URL_VAR: &str = "SECONDWIND_TEST_ADMIN_URL";
/// The `kid` of the test app's user-token signing key.
pub const USER_TOKEN_KID: &str = "user-k1";
/// The frontend origin the test app allows.
pub const ORIGIN: &str = "http://localhost:5173";

pub fn admin_url() -> String {
    std::env::var(ADMIN_URL_VAR).unwrap_or_else(|_| {
        panic!(
            "{ADMIN_URL_VAR} is not set: run the tests with scripts/test, which starts a PostgreSQL cluster for them"
        )
    })
}

fn toml_string(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

// ---------------------------------------------------------------- logs

/// Every log line of this test process, as JSON values (one process per test under nextest).
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

static CAPTURE: OnceLock<Capture> = OnceLock::new();

/// Installs the crypto provider and the log capture; every test calls it (`spawn` does).
pub fn init() {
    common::install_crypto_provider();
    init_logging();
}

fn init_logging() {
    CAPTURE.get_or_init(|| {
        let capture = Capture::default();
        let writer = capture.clone();
        let _ = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_env_filter(common::telemetry::filter("info").expect("filter"))
            .with_writer(move || writer.clone())
            .try_init();
        capture
    });
}

/// The captured log lines, parsed.
pub fn logs() -> Vec<serde_json::Value> {
    let Some(capture) = CAPTURE.get() else { return Vec::new() };
    let bytes = capture.0.lock().map(|b| b.clone()).unwrap_or_default();
    String::from_utf8_lossy(&bytes).lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

/// Captured lines whose `request_id` field equals `id`.
pub fn logs_for_request(id: &str) -> Vec<serde_json::Value> {
    logs().into_iter().filter(|l| l["request_id"].as_str() == Some(id)).collect()
}

// ---------------------------------------------------------------- databases

static TEMPLATES: OnceCell<()> = OnceCell::const_new();

fn template_name(database: Database) -> String {
    format!("tpl_{}_{}", database.as_str(), database.migrations_fingerprint())
}

/// Creates the roles and one migrated template per database, once per cluster (guarded by an
/// advisory lock, since test processes run in parallel).
async fn ensure_templates() {
    TEMPLATES
        .get_or_init(|| async {
            let admin = admin_url();
            let mut conn = PgConnection::connect(&admin).await.expect("connect to the test cluster");
            sqlx::query("SELECT pg_advisory_lock(724311)").execute(&mut conn).await.expect("lock");
            for database in Database::ALL {
                db::ensure_role_exists(&mut conn, database.owner_role()).await.expect("owner role");
                db::ensure_role_exists(&mut conn, database.app_role()).await.expect("app role");
            }
            for database in Database::ALL {
                let name = template_name(database);
                if !db::database_exists(&mut conn, &name).await.expect("query") {
                    // Build under a temporary name, rename when complete: a crash never leaves
                    // a half-migrated template behind under the real name.
                    let building = format!("{name}_building");
                    db::drop_database(&mut conn, &building).await.expect("drop stale");
                    db::create_database(&mut conn, &building, database, None).await.expect("create template");
                    let owner_url = db::url_for(&admin, database.owner_role(), None, &building).expect("url");
                    let mut owner = PgConnection::connect(&owner_url).await.expect("connect as owner");
                    database.migrator().run(&mut owner).await.expect("migrate template");
                    owner.close().await.expect("close");
                    sqlx::query(&format!("ALTER DATABASE \"{building}\" RENAME TO \"{name}\""))
                        .execute(&mut conn)
                        .await
                        .expect("rename template");
                }
            }
            leftovers::sweep(&mut conn).await;
            sqlx::query("SELECT pg_advisory_unlock(724311)").execute(&mut conn).await.expect("unlock");
            let _ = conn.close().await;
        })
        .await;
}

/// Sweeps what killed test runs left on the cluster and the disk (see `leftovers`); the harness
/// does it once per process before the first test database is made.
pub async fn sweep_leftovers() {
    let mut conn = PgConnection::connect(&admin_url()).await.expect("connect to the test cluster");
    leftovers::sweep(&mut conn).await;
    let _ = conn.close().await;
}

/// A fresh database for one test, copied from the migrated template. Dropped (with any
/// connection still open to it) when the value is dropped, also when the test panics.
pub struct TestDatabase {
    pub database: Database,
    pub name: String,
    dropped: bool,
}

impl TestDatabase {
    pub async fn create(database: Database, test_id: &str) -> Self {
        ensure_templates().await;
        let name = format!("{}{test_id}_{}", leftovers::prefix(), database.as_str());
        let mut conn = PgConnection::connect(&admin_url()).await.expect("connect");
        db::create_database(&mut conn, &name, database, Some(&template_name(database))).await.expect("copy template");
        let _ = conn.close().await;
        Self { database, name, dropped: false }
    }

    /// URL for `role` on this database (trust on the local socket in the test cluster).
    pub fn url_as(&self, role: &str) -> String {
        db::url_for(&admin_url(), role, None, &self.name).expect("url")
    }

    pub fn app_url(&self) -> String {
        self.url_as(self.database.app_role())
    }

    /// Drops the database now rather than when the value goes.
    pub async fn drop_now(mut self) {
        leftovers::drop_database(&self.name).await;
        self.dropped = true;
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if !self.dropped {
            let name = std::mem::take(&mut self.name);
            leftovers::blocking(async move { leftovers::drop_database(&name).await });
        }
    }
}

/// What a test leaves on the cluster and the disk is named after its process (`t<pid>_…`,
/// `secondwind-test-<pid>-…`), so a later run can tell what a killed run left (its process is
/// gone) from what a running test still uses, and sweep it.
mod leftovers {
    use super::*;

    pub fn prefix() -> String {
        format!("swt{}_", std::process::id())
    }

    pub fn key_dir(test_id: &str) -> PathBuf {
        std::env::temp_dir().join(format!("secondwind-test-{}-{test_id}", std::process::id()))
    }

    fn process_gone(pid: &str) -> bool {
        pid.parse::<u32>().is_ok_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
    }

    pub async fn drop_database(name: &str) {
        if let Ok(mut conn) = PgConnection::connect(&admin_url()).await {
            let _ = db::drop_database(&mut conn, name).await;
            let _ = conn.close().await;
        }
    }

    /// Runs `work` to completion from synchronous code (a `Drop`), on a thread of its own with
    /// its own runtime: the test's runtime may be the one calling, or already gone.
    pub fn blocking(work: impl std::future::Future<Output = ()> + Send + 'static) {
        let _ = std::thread::spawn(move || {
            if let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                runtime.block_on(work);
            }
        })
        .join();
    }

    /// Drops the databases and removes the key directories of test processes that no longer
    /// run (a run killed before its `Drop`s ran). Only where this process can see the others
    /// (`/proc`), and only directories of this user's own.
    pub async fn sweep(conn: &mut PgConnection) {
        if !Path::new("/proc/self").exists() {
            return;
        }
        let names: Vec<String> = sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname ~ '^swt[0-9]+_'")
            .fetch_all(&mut *conn)
            .await
            .unwrap_or_default();
        for name in names {
            let pid = name[3..].split('_').next().unwrap_or_default();
            if process_gone(pid) {
                let _ = db::drop_database(conn, &name).await;
            }
        }
        let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            let Some(rest) = file_name.to_str().and_then(|n| n.strip_prefix("secondwind-test-")) else { continue };
            let mine = std::fs::symlink_metadata(entry.path()).is_ok_and(|m| {
                use std::os::unix::fs::MetadataExt;
                m.is_dir() && Some(m.uid()) == std::fs::metadata("/proc/self").ok().map(|s| s.uid())
            });
            if mine && process_gone(rest.split('-').next().unwrap_or_default()) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

// ---------------------------------------------------------------- the app

/// Key material of one test app, kept so tests can forge assertions. The directory is removed
/// when the value is dropped.
pub struct TestKeys {
    pub dir: PathBuf,
}

impl Drop for TestKeys {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl TestKeys {
    pub fn new(test_id: &str) -> Self {
        let dir = leftovers::key_dir(test_id);
        for service in ServiceName::ALL {
            common::keys::generate_files(&dir, service.as_str()).expect("generate keys");
            common::keys::generate_files(&dir, &common::checkpoint::key_name(service)).expect("generate keys");
        }
        common::keys::generate_files(&dir, USER_TOKEN_KID).expect("generate keys");
        phi_vault::crypto::LocalKeyFile::create(&dir.join("kek")).expect("kek");
        Self { dir }
    }

    /// public-api's `[service.auth]` for these keys: dev login on, the test OpenID provider
    /// when one runs.
    pub fn auth_settings(&self) -> public_api::auth::AuthSettings {
        public_api::auth::AuthSettings {
            signing_keys: vec![public_api::auth::SigningKeyEntry {
                kid: USER_TOKEN_KID.into(),
                file: self.dir.join(format!("{USER_TOKEN_KID}.key")),
            }],
            roles_file: repo_root().join("policies/roles.toml"),
            dev_login: true,
            allowed_origins: vec![ORIGIN.into()],
            post_login_url: Some(format!("{ORIGIN}/auth/complete")),
            oidc: oidc::env().map(|env| [("test".to_owned(), oidc::provider_config(&env))].into()).unwrap_or_default(),
            ..Default::default()
        }
    }

    /// `internal.user_tokens` for phi-vault: public-api's user-token public key.
    pub fn user_token_config(&self) -> common::user_token::UserTokenConfig {
        common::user_token::UserTokenConfig {
            issuer: "secondwind".into(),
            keys: vec![common::user_token::UserTokenKey {
                kid: USER_TOKEN_KID.into(),
                public_key_file: self.dir.join(format!("{USER_TOKEN_KID}.pub")),
            }],
        }
    }

    pub fn private_key(&self, service: ServiceName) -> Vec<u8> {
        self.private_key_named(service.as_str())
    }

    pub fn private_key_named(&self, name: &str) -> Vec<u8> {
        common::keys::read_private(&self.dir.join(format!("{name}.key"))).expect("key")
    }
}

/// Configuration as the embedded default would write it, on ephemeral ports. Checkpoints are
/// configured when this service's checkpoint key exists and its receivers' URLs are known.
/// The consent service's configuration, with the repository's consent forms.
pub fn consent_config(
    database_url: String,
    keys: &TestKeys,
    peer_urls: &BTreeMap<ServiceName, String>,
) -> consent::ConsentConfig {
    let mut config: consent::ConsentConfig = config_for(ServiceName::Consent, database_url, keys, peer_urls);
    config.service.forms_dir = repo_root().join("policies/consent-forms");
    config.internal.user_tokens = Some(keys.user_token_config());
    config
}

pub fn config_for<S: Default>(
    service: ServiceName,
    database_url: String,
    keys: &TestKeys,
    peer_urls: &BTreeMap<ServiceName, String>,
) -> Config<S> {
    let peers = ServiceName::ALL
        .into_iter()
        .filter(|p| *p != service)
        .map(|p| {
            (
                p,
                PeerConfig {
                    url: peer_urls.get(&p).cloned(),
                    public_key_file: Some(keys.dir.join(format!("{}.pub", p.as_str()))),
                    checkpoint_public_key_file: Some(keys.dir.join(format!("{}.pub", common::checkpoint::key_name(p)))),
                    checkpoint_accepted_public_key_files: Vec::new(),
                },
            )
        })
        .collect();
    let receivers = common::checkpoint::topology(service);
    let key_file = keys.dir.join(format!("{}.key", common::checkpoint::key_name(service)));
    let checkpoint =
        (key_file.is_file() && receivers.iter().all(|r| peer_urls.contains_key(r))).then(|| CheckpointConfig {
            public_key_file: Some(key_file.with_extension("pub")),
            key_file,
            interval_secs: 3600,
            receivers,
            accepted_public_key_files: Vec::new(),
        });
    Config {
        profile: Profile::Dev,
        server: ServerConfig {
            address: [127, 0, 0, 1].into(),
            port: 0,
            json_limit_bytes: 64 * 1024,
            trusted_ip_header: None,
        },
        database: DatabaseConfig {
            url: Secret::new(database_url),
            migrate_url: None,
            max_connections: 5,
            connect_timeout_secs: 10,
        },
        log: LogConfig { level: "info".into(), dir: Some(keys.dir.join("logs")) },
        metrics: MetricsConfig::default(),
        internal: InternalConfig {
            signing_key_file: keys.dir.join(format!("{}.key", service.as_str())),
            policy_file: repo_root().join("policies/internal-calls.toml"),
            assertion_ttl_secs: 30,
            request_timeout_secs: 5,
            peers,
            user_tokens: None,
        },
        rate_limits: Default::default(),
        checkpoint,
        service: S::default(),
    }
}

/// Makes every insert into `table` of this test's `database` fail where `when` (SQL over `NEW`)
/// holds, as a crash between two writes would: a fault injected in the test's own database.
pub async fn refuse_inserts(database: &TestDatabase, table: &str, when: &str) {
    insert_trigger(
        database,
        "refuse",
        table,
        &format!("IF {when} THEN RAISE EXCEPTION 'refused by the test'; END IF;"),
    )
    .await;
}

/// Stops every insert into `table` of this test's `database` at a gate the test opens, so
/// concurrent requests that each checked before writing are certain to overlap: a race made
/// certain instead of hoped for. The gate is an advisory lock (scoped to this database) the test
/// holds; each insert waits for a shared hold of it.
pub async fn gate_inserts(database: &TestDatabase, table: &'static str) -> InsertGate {
    const KEY: i64 = 771_001;
    let mut holder = sqlx::PgConnection::connect(&database.url_as("postgres")).await.expect("superuser");
    let held: bool =
        sqlx::query_scalar("SELECT pg_try_advisory_lock($1)").bind(KEY).fetch_one(&mut holder).await.expect("lock");
    assert!(held, "one gate per database at a time");
    // A gate left shut fails the insert after a minute instead of hanging the test.
    let wait = format!(
        "PERFORM set_config('lock_timeout', '60s', true); \
         PERFORM pg_advisory_lock_shared({KEY}); PERFORM pg_advisory_unlock_shared({KEY});"
    );
    insert_trigger(database, "gate", table, &wait).await;
    InsertGate { holder, key: KEY }
}

/// See [`gate_inserts`].
pub struct InsertGate {
    holder: sqlx::PgConnection,
    key: i64,
}

impl InsertGate {
    /// Waits (up to a minute) until `n` inserts are held at the gate.
    pub async fn wait_for(&mut self, n: i64) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted \
                 AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND objid::bigint = $1",
            )
            .bind(self.key)
            .fetch_one(&mut self.holder)
            .await
            .expect("pg_locks");
            if waiting >= n {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "{waiting} of {n} inserts reached the gate");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// The gate holder's own connection (the superuser's): its inserts pass the gate, so the
    /// test can write while the requests wait.
    pub fn connection(&mut self) -> &mut sqlx::PgConnection {
        &mut self.holder
    }

    /// Lets every held insert, and every later one, through.
    pub async fn open(mut self) {
        sqlx::query("SELECT pg_advisory_unlock($1)").bind(self.key).execute(&mut self.holder).await.expect("unlock");
        let _ = self.holder.close().await;
    }
}

/// A `BEFORE INSERT` trigger named `<name>_<table>` running `body` (PL/pgSQL) for each row.
async fn insert_trigger(database: &TestDatabase, name: &str, table: &str, body: &str) {
    let su = sqlx::PgPool::connect(&database.url_as("postgres")).await.expect("superuser");
    sqlx::query(&format!(
        "CREATE FUNCTION {name}_{table}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {body} RETURN NEW; END $$"
    ))
    .execute(&su)
    .await
    .expect("function");
    sqlx::query(&format!(
        "CREATE TRIGGER {name}_{table} BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION {name}_{table}()"
    ))
    .execute(&su)
    .await
    .expect("trigger");
    su.close().await;
}

/// One running service.
pub struct Running {
    pub url: String,
    pub shutdown: Shutdown,
    /// The mounted routes, as `METHOD /path`.
    pub routes: Vec<(String, String)>,
    /// Its checkpoint publisher, when checkpoints are configured.
    pub checkpoints: Option<Arc<Publisher>>,
    /// A phi-vault instance's own key cache (the one its shred listener keeps), to watch
    /// what that instance holds in memory.
    pub key_cache: Option<Arc<phi_vault::crypto::KeyCache>>,
}

/// Launches `rocket` on its configured (ephemeral) port and returns once it listens.
pub async fn launch(rocket: Rocket<Build>) -> Running {
    let (tx, rx) = tokio::sync::oneshot::channel::<u16>();
    let tx = Mutex::new(Some(tx));
    let rocket = rocket.attach(AdHoc::on_liftoff("report port", move |r| {
        let port = r.config().port;
        Box::pin(async move {
            if let Some(tx) = tx.lock().ok().and_then(|mut t| t.take()) {
                let _ = tx.send(port);
            }
        })
    }));
    let ignited = rocket.ignite().await.expect("ignite");
    let shutdown = ignited.shutdown();
    let routes = ignited.routes().map(|r| (r.method.as_str().to_owned(), r.uri.path().to_owned())).collect();
    let checkpoints = ignited.state::<Arc<Publisher>>().cloned();
    let key_cache = ignited.state::<phi_vault::records::Vault>().map(|v| v.cache.clone());
    tokio::spawn(async move {
        let _ = ignited.launch().await;
    });
    let port = rx.await.expect("service failed to start");
    Running { url: format!("http://127.0.0.1:{port}"), shutdown, routes, checkpoints, key_cache }
}

/// A loopback port, bound now, that forwards each connection to a port known later: consent
/// anchors its checkpoints in phi-vault, which starts after it on an ephemeral port. Returns
/// the URL to configure and where to send the real port.
async fn forwarder() -> (String, tokio::sync::watch::Sender<Option<u16>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a forwarder");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let (target, rx) = tokio::sync::watch::channel(None::<u16>);
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let mut rx = rx.clone();
            tokio::spawn(async move {
                let Ok(port) = rx.wait_for(Option::is_some).await.map(|p| p.unwrap_or_default()) else { return };
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    (url, target)
}

pub struct TestApp {
    pub id: String,
    pub public_api: Running,
    pub phi_vault: Running,
    pub consent: Running,
    pub databases: Vec<TestDatabase>,
    pub keys: TestKeys,
    pub http: reqwest::Client,
    /// phi-vault's configuration, to start more instances on the same database.
    pub phi_config: phi_vault::PhiVaultConfig,
    /// public-api's configuration, likewise.
    pub public_config: public_api::PublicApiConfig,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Like `spawn`, letting the test adjust public-api's configuration first.
    pub async fn spawn_with(configure: impl FnOnce(&mut public_api::PublicApiConfig)) -> Self {
        Self::spawn_configured(configure, |_| {}).await
    }

    /// Like `spawn`, adjusting both public-api's and phi-vault's configuration.
    pub async fn spawn_configured(
        configure: impl FnOnce(&mut public_api::PublicApiConfig),
        configure_phi: impl FnOnce(&mut phi_vault::PhiVaultConfig),
    ) -> Self {
        init();
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let (public_db, phi_db, consent_db) = tokio::join!(
            TestDatabase::create(Database::Public, &id),
            TestDatabase::create(Database::Phi, &id),
            TestDatabase::create(Database::Consent, &id),
        );
        let keys = TestKeys::new(&id);
        let mut urls = BTreeMap::new();
        let (phi_vault_later, phi_vault_port) = forwarder().await;
        urls.insert(ServiceName::PhiVault, phi_vault_later);

        let consent_cfg = consent_config(consent_db.app_url(), &keys, &urls);
        let consent = launch(consent::build(consent_cfg).await.expect("build consent")).await;
        urls.insert(ServiceName::Consent, consent.url.clone());

        let mut phi_cfg: phi_vault::PhiVaultConfig = config_for(ServiceName::PhiVault, phi_db.app_url(), &keys, &urls);
        phi_cfg.service.kek_file = Some(keys.dir.join("kek"));
        phi_cfg.service.retention_file = repo_root().join("policies/retention.toml");
        phi_cfg.service.notice_file = repo_root().join("policies/redisclosure-notices/part2-2024.txt");
        phi_cfg.service.volume_file = repo_root().join("policies/phi-volume.toml");
        phi_cfg.internal.user_tokens = Some(keys.user_token_config());
        // scripts/test starts clamd; without it, documents are refused (503), as in production.
        if let Ok(address) = std::env::var("SECONDWIND_TEST_CLAMD") {
            phi_cfg.service.scanner = Some(phi_vault::documents::ScannerSettings { address, timeout_secs: 30 });
        }
        configure_phi(&mut phi_cfg);
        let phi_vault = launch(phi_vault::build(phi_cfg.clone()).await.expect("build phi-vault")).await;
        urls.insert(ServiceName::PhiVault, phi_vault.url.clone());
        let port = phi_vault.url.rsplit(':').next().and_then(|p| p.parse().ok());
        phi_vault_port.send_replace(port);

        let mut public_cfg: public_api::PublicApiConfig =
            config_for(ServiceName::PublicApi, public_db.app_url(), &keys, &urls);
        public_cfg.service.auth = keys.auth_settings();
        configure(&mut public_cfg);
        let public_api = launch(public_api::build(public_cfg.clone()).await.expect("build public-api")).await;

        Self {
            id,
            public_api,
            phi_vault,
            consent,
            databases: vec![public_db, phi_db, consent_db],
            keys,
            http: reqwest::Client::new(),
            phi_config: phi_cfg,
            public_config: public_cfg,
        }
    }

    /// Another phi-vault instance on the same database and keys (as behind a load balancer).
    /// Stop it with its `shutdown` before the test ends.
    pub async fn another_phi_vault(&self) -> Running {
        launch(phi_vault::build(self.phi_config.clone()).await.expect("build phi-vault")).await
    }

    /// Another public-api instance on the same database, keys and peers. Stop it with its
    /// `shutdown` before the test ends.
    pub async fn another_public_api(&self) -> Running {
        launch(public_api::build(self.public_config.clone()).await.expect("build public-api")).await
    }

    pub fn database(&self, database: Database) -> &TestDatabase {
        self.databases.iter().find(|d| d.database == database).expect("database")
    }

    pub fn service(&self, service: ServiceName) -> &Running {
        match service {
            ServiceName::PublicApi => &self.public_api,
            ServiceName::PhiVault => &self.phi_vault,
            ServiceName::Consent => &self.consent,
        }
    }

    /// Publishes a checkpoint of every trail whose head moved, in every service, and delivers
    /// them to the receivers; returns the checkpoints published.
    pub async fn publish_checkpoints(&self) -> Vec<common::checkpoint::Checkpoint> {
        let mut published = Vec::new();
        for running in [&self.public_api, &self.phi_vault, &self.consent] {
            let publisher = running.checkpoints.as_ref().expect("checkpoints are configured");
            published.extend(publisher.publish().await.expect("publish"));
        }
        for running in [&self.public_api, &self.phi_vault, &self.consent] {
            running.checkpoints.as_ref().expect("configured").deliver().await.expect("deliver");
        }
        published
    }

    /// Writes the three services' config files into `dir` (as `<service>.toml`), as
    /// `secondwind-operator audit verify --config-dir` reads them: runtime database URLs, log
    /// directories, checkpoint keys and receivers.
    pub fn write_configs(&self, dir: &Path) {
        std::fs::create_dir_all(dir).expect("config dir");
        let quote = |p: &Path| toml_string(&p.display().to_string());
        for service in ServiceName::ALL {
            let key = self.keys.dir.join(format!("{}.key", common::checkpoint::key_name(service)));
            let receivers: Vec<String> =
                common::checkpoint::topology(service).iter().map(|r| toml_string(r.as_str())).collect();
            let mut text = format!(
                "profile = \"dev\"\n[database]\nurl = {url}\n[log]\nlevel = \"info\"\ndir = {logs}\n\
                 [internal]\nsigning_key_file = {signing}\npolicy_file = {policy}\n\
                 [checkpoint]\nkey_file = {key}\npublic_key_file = {public}\nreceivers = [{receivers}]\n",
                url = toml_string(&self.database(Database::of(service)).app_url()),
                logs = quote(&self.keys.dir.join("logs")),
                signing = quote(&self.keys.dir.join(format!("{service}.key"))),
                policy = quote(&repo_root().join("policies/internal-calls.toml")),
                key = quote(&key),
                public = quote(&key.with_extension("pub")),
                receivers = receivers.join(", "),
            );
            for peer in ServiceName::ALL.into_iter().filter(|p| *p != service) {
                text.push_str(&format!(
                    "[internal.peers.{peer}]\nurl = {url}\npublic_key_file = {key}\ncheckpoint_public_key_file = {cp}\n",
                    url = toml_string(&self.service(peer).url),
                    key = quote(&self.keys.dir.join(format!("{peer}.pub"))),
                    cp = quote(&self.keys.dir.join(format!("{}.pub", common::checkpoint::key_name(peer)))),
                ));
            }
            std::fs::write(dir.join(format!("{service}.toml")), text).expect("write config");
        }
    }

    /// Stops the services, then drops the databases and the keys (as dropping the app does,
    /// but awaited: the servers get a moment to close their pools first).
    pub async fn stop(self) {
        self.shut_down();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    fn shut_down(&self) {
        for running in [&self.public_api, &self.phi_vault, &self.consent] {
            running.shutdown.clone().notify();
        }
    }
}

/// The services stop, and the fields' own `Drop`s remove the databases (forcibly, whatever
/// connection is still open) and the key directory: nothing is left behind when a test
/// panics or forgets to call `stop`.
impl Drop for TestApp {
    fn drop(&mut self) {
        self.shut_down();
    }
}
