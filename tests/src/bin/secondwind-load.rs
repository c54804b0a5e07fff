//! `secondwind-load`: measures the request paths of running services against what PostgreSQL
//! itself costs for the same SQL. `scripts/bench` starts the services (as `scripts/run` does,
//! each its own process) and runs this; run by hand it needs the same environment.
//!
//! For each path (`GET /users/me`, `GET` and `PUT /beneficiaries/me/profile`) it prints:
//! - throughput at saturation (closed loop, `LOAD_CONCURRENCY` requests in flight);
//! - p50/p95/p99 in an open loop at fixed rates, each latency counted from the request's
//!   scheduled time, so a stall is not hidden by requests that were never sent;
//! - the CPU milliseconds per request of each service and of PostgreSQL (from `/proc`, over the
//!   saturation run);
//! - pgbench running the same SQL on the same database (prepared statements, over TCP,
//!   2 threads): its rate, PostgreSQL's CPU per transaction, and the service's ratio to it.
//!
//! Requests come from many loopback source addresses and many users' tokens, so the per-address
//! and per-user limits never trigger: the figures are the request path's, not the limiters'.
//!
//! Modes (`LOAD_MODE`): `paths` (the above), `guard` (a fixed number of requests per path; CPU
//! per request compared with the committed baseline, failing when one grew by more than 50%),
//! `memory` (each service's RSS after 10,000 and after `LOAD_MEMORY_REQUESTS` requests),
//! `journey` (the beneficiary journey), `verify` (the public audit log at `LOAD_VERIFY_ROWS`,
//! 1,000,000, verified through the compliance route, with public-api's RSS).
//!
//! Environment: `LOAD_DATA` (the data directory `scripts/run --data` used: its configs give the
//! database URLs and the user-token key), `LOAD_API` (public-api's URL), `LOAD_PIDS`
//! (`public-api=PID,phi-vault=PID,consent=PID,postgres=PID`, the last the postmaster),
//! `LOAD_USERS` (2000), `LOAD_ADDRESSES` (500), `LOAD_SECS` (10), `LOAD_CONCURRENCY` (32),
//! `LOAD_RATES` (`200,1000`), `LOAD_WRITE_RATES` (`200,500`), `LOAD_LABEL` (a name for the build),
//! `LOAD_JSON` (a file to write the figures to), `LOAD_BASELINE` (guard: the baseline file),
//! `LOAD_GUARD_REQUESTS` (3000), `LOAD_MEMORY_REQUESTS` (1,000,000).

#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use common::ServiceName;
use harness::load::{env_or, round3, OpenLoop};
use serde_json::{json, Value};

fn env_list(name: &str, default: &str) -> Vec<u64> {
    std::env::var(name).unwrap_or_else(|_| default.into()).split(',').filter_map(|s| s.trim().parse().ok()).collect()
}

// ---------------------------------------------------------------------------------------------
// CPU and memory of the processes under test, from /proc.

/// The processes whose CPU is counted: the three services and the postmaster.
#[derive(Clone)]
struct Pids(Vec<(String, u32)>);

impl Pids {
    fn parse(s: &str) -> Result<Self> {
        let mut out = Vec::new();
        for part in s.split(',').filter(|p| !p.is_empty()) {
            let (name, pid) = part.split_once('=').ok_or_else(|| anyhow!("LOAD_PIDS: `{part}` is not name=pid"))?;
            out.push((name.to_owned(), pid.parse().with_context(|| format!("LOAD_PIDS: {part}"))?));
        }
        if out.is_empty() {
            bail!("LOAD_PIDS names no process");
        }
        Ok(Self(out))
    }

    /// CPU ticks so far of each named process; for `postgres`, the postmaster, every backend it
    /// runs and every backend that has exited.
    fn ticks(&self) -> BTreeMap<String, u64> {
        self.0
            .iter()
            .map(|(name, pid)| {
                let ticks = if name == "postgres" { tree_ticks(*pid) } else { stat(*pid).map_or(0, |s| s.ticks) };
                (name.clone(), ticks)
            })
            .collect()
    }

    /// How many processes the postmaster runs now.
    fn postgres_backends(&self) -> usize {
        let Some((_, root)) = self.0.iter().find(|(name, _)| name == "postgres") else { return 0 };
        children(*root).len()
    }

    fn rss_kib(&self) -> BTreeMap<String, u64> {
        self.0.iter().filter(|(name, _)| name != "postgres").map(|(name, pid)| (name.clone(), rss_kib(*pid))).collect()
    }
}

struct Stat {
    ppid: u32,
    /// utime + stime.
    ticks: u64,
    /// cutime + cstime: children that have exited and been waited for.
    children: u64,
}

fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; the fields after it are fixed.
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    Some(Stat { ppid: n(1) as u32, ticks: n(11) + n(12), children: n(13) + n(14) })
}

/// The live children of `root`, with their stats.
fn children(root: u32) -> Vec<Stat> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.flatten()
        .filter_map(|entry| entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()))
        .filter_map(stat)
        .filter(|s| s.ppid == root)
        .collect()
}

fn tree_ticks(root: u32) -> u64 {
    stat(root).map_or(0, |s| s.ticks + s.children) + children(root).iter().map(|s| s.ticks).sum::<u64>()
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// CPU milliseconds per request of each process between two readings.
fn cpu_ms_per(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
    requests: usize,
    hz: f64,
) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(name, t)| {
            let used = t.saturating_sub(*before.get(name).unwrap_or(&0)) as f64;
            (name.clone(), round3(used * 1000.0 / hz / requests.max(1) as f64))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Users, tokens and clients.

struct Fleet {
    api: String,
    clients: Vec<reqwest::Client>,
    /// Each user's (user id, session id), and the key that signs their access tokens.
    sessions: Vec<(uuid::Uuid, uuid::Uuid)>,
    keys: Arc<public_api::auth::TokenKeys>,
    /// Access tokens live 15 minutes at most: [`Fleet::refresh`] mints new ones between phases.
    tokens: std::sync::RwLock<Arc<Vec<String>>>,
    profile: Value,
    next: AtomicUsize,
}

impl Fleet {
    fn new(
        api: String,
        clients: Vec<reqwest::Client>,
        sessions: Vec<(uuid::Uuid, uuid::Uuid)>,
        keys: Arc<public_api::auth::TokenKeys>,
    ) -> Result<Self> {
        let fleet = Self {
            api,
            clients,
            sessions,
            keys,
            tokens: std::sync::RwLock::new(Arc::new(Vec::new())),
            profile: harness::sample_profile(),
            next: AtomicUsize::new(0),
        };
        fleet.refresh()?;
        Ok(fleet)
    }

    /// Mints every user a fresh access token for their session, as a refresh would.
    fn refresh(&self) -> Result<()> {
        let tokens = self
            .sessions
            .iter()
            .map(|(user, session)| self.keys.issue(*user, *session, vec!["beneficiary".into()]).map_err(|e| anyhow!(e)))
            .collect::<Result<Vec<_>>>()?;
        *self.tokens.write().map_err(|_| anyhow!("token lock poisoned"))? = Arc::new(tokens);
        Ok(())
    }

    /// Round-robins requests over clients (source addresses) and users.
    fn pick(&self) -> (usize, &reqwest::Client, String) {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        let tokens = self.tokens.read().map(|t| t.clone()).unwrap_or_default();
        // Every user in turn; the address shifts each round, so an address carries many users.
        let round = i / tokens.len().max(1);
        let token = tokens.get(i % tokens.len().max(1)).cloned().unwrap_or_default();
        (i, &self.clients[(i + round) % self.clients.len()], token)
    }

    fn request(&self, path: Route) -> reqwest::RequestBuilder {
        let (i, client, token) = self.pick();
        match path {
            Route::Me => client.get(format!("{}/api/v1/users/me", self.api)).bearer_auth(&token),
            Route::ProfileRead => {
                client.get(format!("{}/api/v1/beneficiaries/me/profile", self.api)).bearer_auth(&token)
            }
            Route::ProfileWrite => {
                let mut body = self.profile.clone();
                body["phone"] = json!(format!("303-555-{:04}", i % 10_000));
                client.put(format!("{}/api/v1/beneficiaries/me/profile", self.api)).bearer_auth(&token).json(&body)
            }
            Route::Dashboard => {
                client.get(format!("{}/api/v1/beneficiaries/me/dashboard", self.api)).bearer_auth(&token)
            }
        }
    }
}

fn clients(count: usize) -> Result<Vec<reqwest::Client>> {
    (0..count)
        .map(|i| {
            // 127.0.1.1, 127.0.1.2, … : all of 127/8 is loopback on Linux.
            let address = Ipv4Addr::new(127, 0, 1 + (i / 250) as u8, 1 + (i % 250) as u8);
            reqwest::Client::builder()
                .local_address(IpAddr::V4(address))
                .http1_only()
                .pool_max_idle_per_host(64)
                .timeout(Duration::from_secs(30))
                .build()
                .context("http client")
        })
        .collect()
}

/// Creates `count` beneficiaries, each with a live session, as a sign-in would; returns each
/// one's (user id, session id).
async fn beneficiaries(config: &public_api::PublicApiConfig, count: usize) -> Result<Vec<(uuid::Uuid, uuid::Uuid)>> {
    let pool = sqlx::PgPool::connect(config.database.url.expose()).await.context("public database")?;
    let mut sessions = Vec::with_capacity(count);
    for chunk in (0..count).collect::<Vec<_>>().chunks(200) {
        let mut tx = pool.begin().await?;
        for _ in chunk {
            let user = uuid::Uuid::new_v4();
            sqlx::query(
                "INSERT INTO users (id, user_type, email, display_name, roles) VALUES ($1, 'beneficiary', $2, 'Load', '{}')",
            )
            .bind(user)
            .bind(format!("load+{user}@secondwind.invalid"))
            .execute(&mut *tx)
            .await?;
            let (session, _) = public_api::auth::sessions::create(&mut tx, user, 1, None, None).await?;
            sessions.push((user, session));
        }
        tx.commit().await?;
    }
    pool.close().await;
    Ok(sessions)
}

// ---------------------------------------------------------------------------------------------
// The runs.

#[derive(Clone, Copy, Debug)]
enum Route {
    Me,
    ProfileRead,
    ProfileWrite,
    Dashboard,
}

impl Route {
    fn name(self) -> &'static str {
        match self {
            Route::Me => "GET /users/me",
            Route::ProfileRead => "GET /beneficiaries/me/profile",
            Route::ProfileWrite => "PUT /beneficiaries/me/profile",
            Route::Dashboard => "GET /beneficiaries/me/dashboard",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Route::Me => "users_me",
            Route::ProfileRead => "profile_read",
            Route::ProfileWrite => "profile_write",
            Route::Dashboard => "dashboard",
        }
    }
}

async fn status_of(request: reqwest::RequestBuilder) -> u16 {
    match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            // Read the body, as a client would, so the connection is reused.
            let _ = response.bytes().await;
            status
        }
        Err(_) => 0,
    }
}

#[derive(Debug, serde::Serialize)]
struct Saturation {
    requests: usize,
    errors: BTreeMap<u16, usize>,
    seconds: f64,
    rps: f64,
    cpu_ms_per_request: BTreeMap<String, f64>,
}

/// Closed loop: `concurrency` requests always in flight, for `secs` after a warm-up; or, with
/// `count`, until that many have completed.
async fn saturate(
    fleet: &Arc<Fleet>,
    route: Route,
    concurrency: usize,
    limit: Limit,
    pids: &Pids,
    hz: f64,
) -> Saturation {
    // Warm-up: connections opened, caches filled, nothing counted.
    drive(fleet, route, concurrency, Limit::Count(concurrency * 20)).await;
    let before = pids.ticks();
    let started = Instant::now();
    let (requests, errors) = drive(fleet, route, concurrency, limit).await;
    let seconds = started.elapsed().as_secs_f64();
    let after = pids.ticks();
    let ok = requests - errors.values().sum::<usize>();
    Saturation {
        requests,
        rps: round3(ok as f64 / seconds),
        seconds: round3(seconds),
        cpu_ms_per_request: cpu_ms_per(&before, &after, requests, hz),
        errors,
    }
}

#[derive(Clone, Copy)]
enum Limit {
    For(Duration),
    Count(usize),
}

async fn drive(fleet: &Arc<Fleet>, route: Route, concurrency: usize, limit: Limit) -> (usize, BTreeMap<u16, usize>) {
    let issued = Arc::new(AtomicUsize::new(0));
    let deadline = match limit {
        Limit::For(d) => Some(Instant::now() + d),
        Limit::Count(_) => None,
    };
    let count = match limit {
        Limit::Count(n) => n,
        Limit::For(_) => usize::MAX,
    };
    let mut workers = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let (fleet, issued) = (fleet.clone(), issued.clone());
        workers.push(tokio::spawn(async move {
            let (mut done, mut errors) = (0usize, BTreeMap::new());
            while deadline.is_none_or(|d| Instant::now() < d) && issued.fetch_add(1, Ordering::Relaxed) < count {
                let status = status_of(fleet.request(route)).await;
                done += 1;
                if !(200..300).contains(&status) {
                    *errors.entry(status).or_insert(0) += 1;
                }
            }
            (done, errors)
        }));
    }
    let (mut total, mut errors) = (0, BTreeMap::new());
    for worker in workers {
        let (done, e) = worker.await.expect("worker");
        total += done;
        for (status, n) in e {
            *errors.entry(status).or_insert(0) += n;
        }
    }
    (total, errors)
}

/// The open loop for `route` (see [`harness::load::open_loop`]).
async fn open_loop(fleet: &Arc<Fleet>, route: Route, rate: u64, secs: u64) -> OpenLoop {
    harness::load::open_loop(rate, secs, |_| status_of(fleet.request(route))).await
}

// ---------------------------------------------------------------------------------------------
// pgbench: the same SQL, straight to PostgreSQL.

#[derive(Debug, serde::Serialize)]
struct PgbenchPart {
    database: &'static str,
    script: &'static str,
    transactions: u64,
    tps: f64,
    postgres_cpu_ms_per_transaction: f64,
}

#[derive(Debug, serde::Serialize)]
struct Pgbench {
    /// Each database's share of the path, run on its own.
    parts: Vec<PgbenchPart>,
    /// The rate PostgreSQL could serve the whole path at: every part takes its share of the
    /// same server, so 1 / Σ (1 / rate of each part).
    tps: f64,
    postgres_cpu_ms_per_transaction: f64,
}

/// The SQL each path sends, one pgbench script per database it touches, as the services send
/// it (prepared, in order). `:uid`/`:sid` are a user and session, `:subject` and `:record` a
/// profile. The trails' appends go to scratch copies of their tables (`bench_access_log`,
/// `bench_audit_logs`, same columns and indexes), so the real chains stay intact.
fn pgbench_scripts(route: Route) -> Vec<(ServiceName, &'static str, &'static str)> {
    match route {
        Route::Me => vec![(ServiceName::PublicApi, "users_me.sql", include_str!("../../pgbench/users_me.sql"))],
        Route::ProfileRead => vec![
            (ServiceName::PublicApi, "profile_read_public.sql", include_str!("../../pgbench/profile_read_public.sql")),
            (ServiceName::PhiVault, "profile_read_phi.sql", include_str!("../../pgbench/profile_read_phi.sql")),
        ],
        Route::ProfileWrite => vec![
            (
                ServiceName::PublicApi,
                "profile_write_public.sql",
                include_str!("../../pgbench/profile_write_public.sql"),
            ),
            (ServiceName::PhiVault, "profile_write_phi.sql", include_str!("../../pgbench/profile_write_phi.sql")),
        ],
        // Measured in the journey mode, against its own target, not beside pgbench.
        Route::Dashboard => vec![],
    }
}

async fn pgbench(route: Route, s: &Setup, secs: u64) -> Result<Pgbench> {
    let mut parts = Vec::new();
    for (database, name, script) in pgbench_scripts(route) {
        let file = s.work.join(name);
        std::fs::write(&file, script)?;
        let url = s.urls.get(&database).ok_or_else(|| anyhow!("no URL for {database}"))?;
        let mut command = tokio::process::Command::new(std::env::var("PGBENCH").unwrap_or_else(|_| "pgbench".into()));
        command.args(["-n", "-M", "prepared", "-j", "2", "-c", "8", "-T", &secs.to_string(), "-f"]).arg(&file);
        for (name, value) in &s.vars {
            command.arg("-D").arg(format!("{name}={value}"));
        }
        // The service's own runtime role and URL: its rights, over TCP. The password goes in the
        // environment, never on a command line other users can read.
        let mut url = reqwest::Url::parse(url).context("database URL")?;
        if let Some(password) = url.password().map(str::to_owned) {
            let _ = url.set_password(None);
            command.env("PGPASSWORD", password);
        }
        command.arg(url.as_str());
        let backends = s.pids.postgres_backends();
        let before = s.pids.ticks();
        let output = command.output().await.context("running pgbench")?;
        // pgbench's backends exit after it does; read once they are gone (and counted in the
        // postmaster's total for exited children).
        for _ in 0..40 {
            if s.pids.postgres_backends() <= backends {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let after = s.pids.ticks();
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            bail!("pgbench {name} failed: {}{}", stdout, String::from_utf8_lossy(&output.stderr));
        }
        let field = |prefix: &str| -> Result<f64> {
            stdout
                .lines()
                .find_map(|l| l.trim().strip_prefix(prefix))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .ok_or_else(|| anyhow!("pgbench {name} printed no `{prefix}`: {stdout}"))
        };
        let transactions = field("number of transactions actually processed:")? as u64;
        let tps = field("tps =")?;
        let pg = cpu_ms_per(&before, &after, transactions as usize, s.hz).get("postgres").copied().unwrap_or(f64::NAN);
        parts.push(PgbenchPart {
            database: database.as_str(),
            script: name,
            transactions,
            tps: round3(tps),
            postgres_cpu_ms_per_transaction: pg,
        });
    }
    let tps = 1.0 / parts.iter().map(|p| 1.0 / p.tps).sum::<f64>();
    let cpu = parts.iter().map(|p| p.postgres_cpu_ms_per_transaction).sum::<f64>();
    Ok(Pgbench { parts, tps: round3(tps), postgres_cpu_ms_per_transaction: round3(cpu) })
}

/// Scratch copies of the trails the pgbench scripts append to, made by the databases' owners.
async fn scratch_tables(data: &Path) -> Result<()> {
    #[derive(serde::Deserialize)]
    struct Owner {
        url: String,
    }
    let text = std::fs::read_to_string(data.join("admin/owners.toml")).context("the owners file")?;
    let owners: BTreeMap<String, Owner> = toml::from_str(&text).context("the owners file")?;
    let url_of = |key: &str| -> Result<String> {
        owners.get(key).map(|o| o.url.clone()).ok_or_else(|| anyhow!("the owners file names no `{key}` database"))
    };
    for (key, table) in [("phi", "access_log"), ("public", "audit_logs")] {
        let pool = sqlx::PgPool::connect(&url_of(key)?).await.with_context(|| format!("{key} owner"))?;
        sqlx::raw_sql(&format!(
            "DROP TABLE IF EXISTS bench_{table}; CREATE TABLE bench_{table} (LIKE {table} INCLUDING ALL)"
        ))
        .execute(&pool)
        .await
        .with_context(|| format!("bench_{table}"))?;
        pool.close().await;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------

struct Setup {
    fleet: Arc<Fleet>,
    pids: Pids,
    hz: f64,
    urls: BTreeMap<ServiceName, String>,
    vars: Vec<(&'static str, String)>,
    work: PathBuf,
}

/// Only ever a data directory `scripts/bench` made: the load run creates users, records and
/// tables. Its mark is phi-vault's config naming the bench volume policy beside it.
fn bench_directory(data: &Path) -> Result<()> {
    let policy = data.join("bench-volume.toml");
    let config = std::fs::read_to_string(data.join("config/phi-vault.toml")).unwrap_or_default();
    let named = config.lines().any(|l| l.trim() == format!("volume_file = \"{}\"", policy.display()));
    if !policy.is_file() || !named {
        bail!(
            "{} is not a scripts/bench data directory (no bench volume policy); refusing to write to it",
            data.display()
        );
    }
    Ok(())
}

async fn setup() -> Result<Setup> {
    let data = PathBuf::from(std::env::var("LOAD_DATA").context("LOAD_DATA: the data directory")?);
    let api = std::env::var("LOAD_API").context("LOAD_API: public-api's URL")?;
    let pids = Pids::parse(&std::env::var("LOAD_PIDS").context("LOAD_PIDS")?)?;
    let users = env_or("LOAD_USERS", 2000usize).max(1);
    let addresses = env_or("LOAD_ADDRESSES", 500usize).clamp(1, 1000);

    let config_of = |service: ServiceName| data.join("config").join(format!("{}.toml", service.as_str()));
    bench_directory(&data)?;
    let public = public_api::PublicApiConfig::load(ServiceName::PublicApi, Some(&config_of(ServiceName::PublicApi)))?;
    let phi = phi_vault::PhiVaultConfig::load(ServiceName::PhiVault, Some(&config_of(ServiceName::PhiVault)))?;
    let urls: BTreeMap<ServiceName, String> = [
        (ServiceName::PublicApi, public.database.url.expose().clone()),
        (ServiceName::PhiVault, phi.database.url.expose().clone()),
    ]
    .into();

    println!("setting up: {users} beneficiaries with sessions, {addresses} loopback source addresses");
    // One more than the fleet: pgbench works on that one's rows (what PostgreSQL does per
    // request is the same for any user), and its writes leave a record no service reads again.
    let mut sessions = beneficiaries(&public, users + 1).await?;
    let keys = Arc::new(public_api::auth::TokenKeys::load(&public.service.auth).map_err(|e| anyhow!(e))?);
    let clients = clients(addresses)?;
    // Every beneficiary stores a profile, so reads find one and writes replace one.
    let seeding = Arc::new(Fleet::new(api.clone(), clients.clone(), sessions.clone(), keys.clone())?);
    let (_, errors) = drive(&seeding, Route::ProfileWrite, 16, Limit::Count(users + 1)).await;
    if !errors.is_empty() {
        bail!("storing the first profiles failed: {errors:?} (is the bench volume policy in place?)");
    }
    let (uid, sid) = sessions.pop().ok_or_else(|| anyhow!("no users"))?;
    let fleet = Arc::new(Fleet::new(api, clients, sessions, keys)?);

    let (subject, record): (uuid::Uuid, uuid::Uuid) = {
        let pool = sqlx::PgPool::connect(phi.database.url.expose()).await?;
        let row: (uuid::Uuid, uuid::Uuid) =
            sqlx::query_as("SELECT subject_id, id FROM records WHERE subject_id = $1 AND category = 'identity'")
                .bind(uid)
                .fetch_one(&pool)
                .await?;
        pool.close().await;
        row
    };
    scratch_tables(&data).await?;
    // Inside the bench's own data directory, new (never one someone else made first).
    let work = data.join(format!("load-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir(&work).context("the load generator's work directory")?;
    Ok(Setup {
        fleet,
        pids,
        hz: clock_ticks_per_second(),
        urls,
        vars: vec![
            ("uid", uid.to_string()),
            ("sid", sid.to_string()),
            ("subject", subject.to_string()),
            ("record", record.to_string()),
        ],
        work,
    })
}

async fn paths(s: &Setup) -> Result<Value> {
    let secs = env_or("LOAD_SECS", 10u64).max(1);
    let concurrency = env_or("LOAD_CONCURRENCY", 32usize).max(1);
    let rates = env_list("LOAD_RATES", "200,1000");
    let write_rates = env_list("LOAD_WRITE_RATES", "200,500");
    let mut out = Vec::new();
    for route in [Route::Me, Route::ProfileRead, Route::ProfileWrite] {
        s.fleet.refresh()?;
        println!("{}: saturation ({concurrency} in flight, {secs} s)", route.name());
        let saturation =
            saturate(&s.fleet, route, concurrency, Limit::For(Duration::from_secs(secs)), &s.pids, s.hz).await;
        let mut open = Vec::new();
        for &rate in if matches!(route, Route::ProfileWrite) { &write_rates } else { &rates } {
            println!("{}: open loop at {rate} req/s ({secs} s)", route.name());
            open.push(open_loop(&s.fleet, route, rate, secs).await);
        }
        println!("{}: pgbench on the same SQL ({secs} s)", route.name());
        let bench = pgbench(route, s, secs).await?;
        let ratio = round3(saturation.rps / bench.tps);
        out.push(json!({"key": route.key(), "path": route.name(), "saturation": saturation, "open_loop": open,
                        "pgbench": bench, "ratio_to_pgbench": ratio}));
    }
    Ok(Value::Array(out))
}

fn print_paths(label: &str, figures: &Value) {
    println!();
    println!("figures for the {label} build (CPU ms per request at saturation; latency from the scheduled time)");
    println!(
        "{:<32} {:>9} {:>9} {:>6}  {:<34} {:>7} {:>7} {:>7} {:>7} {:>8}",
        "path", "sat req/s", "pgbench", "ratio", "p50/p95/p99 ms @ rate", "api", "vault", "consent", "pg", "pg(pgb)"
    );
    for f in figures.as_array().into_iter().flatten() {
        let cpu = &f["saturation"]["cpu_ms_per_request"];
        let mut first = true;
        for o in f["open_loop"].as_array().into_iter().flatten() {
            let lat = format!(
                "{:.2}/{:.2}/{:.2} @ {}",
                o["p50_ms"].as_f64().unwrap_or(f64::NAN),
                o["p95_ms"].as_f64().unwrap_or(f64::NAN),
                o["p99_ms"].as_f64().unwrap_or(f64::NAN),
                o["rate"]
            );
            if first {
                println!(
                    "{:<32} {:>9.0} {:>9.0} {:>6.3}  {:<34} {:>7.3} {:>7.3} {:>7.3} {:>7.3} {:>8.3}",
                    f["path"].as_str().unwrap_or(""),
                    f["saturation"]["rps"].as_f64().unwrap_or(f64::NAN),
                    f["pgbench"]["tps"].as_f64().unwrap_or(f64::NAN),
                    f["ratio_to_pgbench"].as_f64().unwrap_or(f64::NAN),
                    lat,
                    cpu["public-api"].as_f64().unwrap_or(f64::NAN),
                    cpu["phi-vault"].as_f64().unwrap_or(f64::NAN),
                    cpu["consent"].as_f64().unwrap_or(f64::NAN),
                    cpu["postgres"].as_f64().unwrap_or(f64::NAN),
                    f["pgbench"]["postgres_cpu_ms_per_transaction"].as_f64().unwrap_or(f64::NAN),
                );
                first = false;
            } else {
                println!("{:<32} {:>9} {:>9} {:>6}  {:<34}", "", "", "", "", lat);
            }
        }
        for o in f["open_loop"].as_array().into_iter().flatten().filter(|o| o["errors"] != json!({})) {
            println!(
                "  {} at {} req/s: failed responses by status {}",
                f["path"].as_str().unwrap_or(""),
                o["rate"],
                o["errors"]
            );
        }
        if f["saturation"]["errors"] != json!({}) {
            println!(
                "  {} at saturation: failed responses by status {}",
                f["path"].as_str().unwrap_or(""),
                f["saturation"]["errors"]
            );
        }
    }
}

/// The guard: CPU per request of each path, compared with the committed baseline.
async fn guard(s: &Setup) -> Result<Value> {
    let requests = env_or("LOAD_GUARD_REQUESTS", 3000usize).max(100);
    let mut out = serde_json::Map::new();
    for route in [Route::Me, Route::ProfileRead, Route::ProfileWrite] {
        s.fleet.refresh()?;
        // The least of three runs: interference from elsewhere on the machine only ever adds.
        let mut least: BTreeMap<String, f64> = BTreeMap::new();
        for _ in 0..3 {
            let sat = saturate(&s.fleet, route, 8, Limit::Count(requests), &s.pids, s.hz).await;
            if !sat.errors.is_empty() {
                bail!("{}: failed responses by status {:?}", route.name(), sat.errors);
            }
            for (process, ms) in sat.cpu_ms_per_request {
                let entry = least.entry(process).or_insert(f64::INFINITY);
                *entry = entry.min(ms);
            }
        }
        out.insert(route.key().into(), json!(least));
    }
    Ok(Value::Object(out))
}

/// Compares guard figures with the baseline: a path's CPU per request in a service may not grow
/// by more than half. Figures under `FLOOR_MS` are too small for the clock's tick to compare.
/// PostgreSQL's figure is shown, not judged: autovacuum and checkpoints move it.
fn compare(baseline: &Value, measured: &Value) -> Vec<String> {
    const GROWTH: f64 = 1.5;
    const FLOOR_MS: f64 = 0.05;
    let mut failures = Vec::new();
    for (path, procs) in measured.as_object().into_iter().flatten() {
        for (process, now) in procs.as_object().into_iter().flatten() {
            let (Some(now), Some(was)) = (now.as_f64(), baseline["paths"][path][process].as_f64()) else { continue };
            let verdict = if process == "postgres" {
                "shown only"
            } else if now > (was * GROWTH).max(FLOOR_MS) {
                "GREW"
            } else {
                "ok"
            };
            println!("{path:<14} {process:<10} baseline {was:>7.3} ms  now {now:>7.3} ms  {verdict}");
            if verdict == "GREW" {
                failures.push(format!("{path} {process}: {now:.3} ms per request against {was:.3}"));
            }
        }
    }
    failures
}

async fn memory(s: &Setup) -> Result<Value> {
    let total = env_or("LOAD_MEMORY_REQUESTS", 1_000_000usize).max(20_000);
    let concurrency = env_or("LOAD_CONCURRENCY", 32usize).max(1);
    let routes = [Route::Me, Route::ProfileRead, Route::ProfileWrite];
    // A mix: mostly reads, a write in ten.
    let mut done = 0usize;
    let mut at_10k = None;
    let started = Instant::now();
    let step = 10_000usize;
    while done < total {
        for (route, share) in routes.iter().zip([0.45, 0.45, 0.10]) {
            let n = ((step as f64) * share) as usize;
            let (_, errors) = drive(&s.fleet, *route, concurrency, Limit::Count(n)).await;
            if !errors.is_empty() {
                bail!("{}: failed responses by status {errors:?}", route.name());
            }
            done += n;
        }
        if at_10k.is_none() {
            at_10k = Some(s.pids.rss_kib());
        }
        if done % 100_000 < step {
            s.fleet.refresh()?;
            println!(
                "memory: {done} requests in {:.0} s; RSS KiB {:?}",
                started.elapsed().as_secs_f64(),
                s.pids.rss_kib()
            );
        }
    }
    let at_end = s.pids.rss_kib();
    let at_10k = at_10k.unwrap_or_default();
    let growth: BTreeMap<String, f64> = at_end
        .iter()
        .map(|(name, end)| {
            let start = *at_10k.get(name).unwrap_or(&1) as f64;
            (name.clone(), round3(100.0 * (*end as f64 - start) / start.max(1.0)))
        })
        .collect();
    Ok(json!({"requests": done, "rss_kib_after_10000": at_10k, "rss_kib_at_end": at_end, "growth_percent": growth,
              "seconds": round3(started.elapsed().as_secs_f64())}))
}

// ---------------------------------------------------------------------------------------------
// The beneficiary journey: the dashboard's latency, and uploads' memory and throughput.

/// A PDF-typed file of `size` bytes of varied content.
fn upload_file(path: &Path, size: usize) -> Result<()> {
    let mut bytes = b"%PDF-1.7\n% secondwind load\n".to_vec();
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    while bytes.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    bytes.truncate(size);
    std::fs::write(path, bytes).context("writing the upload file")
}

/// `curl` with `args`; returns the HTTP status and the seconds the transfer took.
fn curl(args: &[&str]) -> Result<(u16, f64)> {
    let out = std::process::Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code} %{time_total}"])
        .args(args)
        .output()
        .context("running curl")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let (code, secs) = text.trim().split_once(' ').ok_or_else(|| anyhow!("curl said `{text}`"))?;
    Ok((code.parse()?, secs.parse()?))
}

/// A plain local file server: takes one `PUT` body per connection and writes it to a file, for
/// the throughput a plain `curl` upload reaches on this machine.
async fn file_server(dir: PathBuf) -> Result<u16> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let dir = dir.clone();
            tokio::spawn(async move {
                let mut stream = BufReader::new(stream);
                let mut length = 0u64;
                let mut expects_continue = false;
                let mut line = String::new();
                loop {
                    line.clear();
                    if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let lower = line.to_ascii_lowercase();
                    if let Some(value) = lower.strip_prefix("content-length:") {
                        length = value.trim().parse().unwrap_or(0);
                    }
                    expects_continue |= lower.starts_with("expect:") && lower.contains("100-continue");
                    if line == "\r\n" {
                        break;
                    }
                }
                // curl asks before sending a large body; a server that does not answer costs it a
                // second's wait.
                if expects_continue && stream.get_mut().write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await.is_err() {
                    return;
                }
                let Ok(mut file) = tokio::fs::File::create(dir.join("received")).await else { return };
                let mut body = (&mut stream).take(length);
                if tokio::io::copy(&mut body, &mut file).await.is_err() {
                    return;
                }
                let _ = file.sync_data().await;
                let _ = stream
                    .get_mut()
                    .write_all(b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    Ok(port)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Each service's RSS sampled every 10 ms from `start` until `growth_mib`: how far the peak rose
/// above where it began.
struct RssWatch {
    before: BTreeMap<String, u64>,
    peak: Arc<std::sync::Mutex<BTreeMap<String, u64>>>,
    sampling: Arc<std::sync::atomic::AtomicBool>,
    sampler: tokio::task::JoinHandle<()>,
}

impl RssWatch {
    fn start(pids: &Pids) -> Self {
        let before = pids.rss_kib();
        let peak = Arc::new(std::sync::Mutex::new(before.clone()));
        let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let sampler = {
            let (pids, peak, sampling) = (pids.clone(), peak.clone(), sampling.clone());
            tokio::spawn(async move {
                while sampling.load(Ordering::Relaxed) {
                    let now = pids.rss_kib();
                    if let Ok(mut peak) = peak.lock() {
                        for (name, kib) in now {
                            let entry = peak.entry(name).or_insert(0);
                            *entry = (*entry).max(kib);
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
        };
        Self { before, peak, sampling, sampler }
    }

    async fn growth_mib(self, names: &[&str]) -> Result<BTreeMap<String, f64>> {
        self.sampling.store(false, Ordering::Relaxed);
        self.sampler.await?;
        let peak = self.peak.lock().map_err(|_| anyhow!("peak lock poisoned"))?.clone();
        Ok(names
            .iter()
            .map(|name| {
                let grew =
                    peak.get(*name).copied().unwrap_or(0).saturating_sub(self.before.get(*name).copied().unwrap_or(0));
                (name.to_string(), round3(grew as f64 / 1024.0))
            })
            .collect())
    }
}

/// `verify`: the public audit log grown to `LOAD_VERIFY_ROWS` (1,000,000) chained rows through
/// the service's own append, then every trail verified end to end by a compliance officer
/// through `POST /api/v1/compliance/trail-verifications` (what `secondwind-admin audit verify`
/// calls: each service's chains and checkpoints), the services' RSS sampled every 10 ms.
/// Target: under 60 s, memory flat.
async fn verify_trail(s: &Setup) -> Result<Value> {
    let rows = env_or("LOAD_VERIFY_ROWS", 1_000_000usize);
    let pool = sqlx::PgPool::connect(&s.urls[&ServiceName::PublicApi]).await?;
    let mut have = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM audit_logs").fetch_one(&pool).await? as usize;
    let filling = Instant::now();
    while have < rows {
        let mut tx = pool.begin().await?;
        for _ in 0..5000.min(rows - have) {
            let event = public_api::audit::AuditEvent {
                actor_id: Some(uuid::Uuid::new_v4()),
                action: "auth.login",
                resource_type: Some("session"),
                resource_id: Some(uuid::Uuid::new_v4().to_string()),
                ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                user_agent: Some("secondwind-load".into()),
                request_id: Some(format!("load-{have}")),
                outcome: public_api::audit::Outcome::Success,
                reason: None,
                operator: None,
            };
            public_api::audit::record(&mut tx, &event).await?;
            have += 1;
        }
        tx.commit().await?;
        if have % 100_000 < 5000 {
            println!("verify: {have} rows in the trail ({:.0} s)", filling.elapsed().as_secs_f64());
        }
    }
    pool.close().await;

    let http = reqwest::Client::builder().timeout(Duration::from_secs(600)).build()?;
    let login: Value = http
        .post(format!("{}/api/v1/auth/dev-login", s.fleet.api))
        .json(&json!({"user": "compliance_officer"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let token = login["access_token"].as_str().ok_or_else(|| anyhow!("no access token"))?.to_owned();
    let rss = RssWatch::start(&s.pids);
    let started = Instant::now();
    let report: Value = http
        .post(format!("{}/api/v1/compliance/trail-verifications", s.fleet.api))
        .bearer_auth(&token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let secs = started.elapsed().as_secs_f64();
    let growth = rss.growth_mib(&["public-api", "phi-vault", "consent"]).await?;
    let trails = report["trails"].as_array().cloned().unwrap_or_default();
    let checked: u64 = trails.iter().filter_map(|t| t["rows_checked"].as_u64()).sum();
    // Every chain must hold. Checkpoint findings are reported, not fatal: the fleet's rows were
    // bulk-written faster than its publisher's rounds anchor them.
    if trails.len() != 7 || trails.iter().any(|t| t["breaks"].as_array().is_none_or(|b| !b.is_empty())) {
        bail!("the trails did not verify: {report}");
    }
    for t in trails.iter().filter(|t| t["intact"] != json!(true)) {
        println!("verify: note: {} checkpoint findings: {}", t["trail"], t["problems"]);
    }
    let rate = checked as f64 / secs.max(1e-9);
    println!(
        "verify: {checked} rows in 7 trails verified in {secs:.1} s ({rate:.0} rows/s); RSS growth {growth:?} MiB (target: under 60 s, memory flat)"
    );
    Ok(json!({"rows_checked": checked, "secs": round3(secs), "rows_per_sec": rate.round(),
              "rss_growth_mib": growth, "fill_secs": round3(filling.elapsed().as_secs_f64() - secs)}))
}

async fn journey(s: &Setup) -> Result<Value> {
    let secs = env_or("LOAD_SECS", 10u64).max(1);
    let rate = env_or("LOAD_DASHBOARD_RATE", 200u64).max(1);
    let dashboard = open_loop(&s.fleet, Route::Dashboard, rate, secs).await;
    println!(
        "dashboard at {rate}/s: p50 {} ms, p95 {} ms, p99 {} ms, {} failed (target p95 under 25 ms)",
        dashboard.p50_ms,
        dashboard.p95_ms,
        dashboard.p99_ms,
        dashboard.failed()
    );

    let size = env_or("LOAD_UPLOAD_BYTES", 10 * 1024 * 1024usize);
    let concurrent = env_or("LOAD_UPLOADS", 10usize).max(1);
    let file = s.work.join("upload.pdf");
    upload_file(&file, size)?;
    let file_arg = format!("file=@{};type=application/pdf", file.display());
    let tokens = s.fleet.tokens.read().map(|t| t.clone()).map_err(|_| anyhow!("token lock poisoned"))?;
    if tokens.len() < concurrent {
        bail!("journey: {concurrent} uploads need as many users (LOAD_USERS)");
    }
    // Each uploader has an application of their own (a person may have two uploads under way).
    let http = reqwest::Client::new();
    let mut targets = Vec::new();
    for token in tokens.iter().take(concurrent) {
        let application = json!({"kind": "rent", "amount_cents": 50_000,
            "details": {"description": "Load run: rent for this month", "needed_by": "2099-01-31"}});
        let response = http
            .post(format!("{}/api/v1/applications", s.fleet.api))
            .bearer_auth(token)
            .json(&application)
            .send()
            .await?;
        let body: Value = response.json().await?;
        let id = body["id"].as_str().ok_or_else(|| anyhow!("submitting an application: {body}"))?.to_owned();
        targets.push((token.clone(), format!("{}/api/v1/applications/{id}/documents", s.fleet.api)));
    }
    let upload = |token: String, url: String, file_arg: String| {
        tokio::task::spawn_blocking(move || {
            curl(&["-H", &format!("authorization: Bearer {token}"), "-F", &file_arg, &url])
        })
    };

    // Memory: ten uploads at once, each service's RSS sampled every 10 ms.
    let rss = RssWatch::start(&s.pids);
    let started = Instant::now();
    let handles: Vec<_> =
        targets.iter().map(|(token, url)| upload(token.clone(), url.clone(), file_arg.clone())).collect();
    let mut statuses = BTreeMap::<u16, usize>::new();
    for handle in handles {
        let (status, _) = handle.await??;
        *statuses.entry(status).or_default() += 1;
    }
    let concurrent_secs = started.elapsed().as_secs_f64();
    let growth_mib = rss.growth_mib(&["public-api", "phi-vault"]).await?;
    println!(
        "uploads: {concurrent} x {} MiB at once in {concurrent_secs:.2} s, statuses {statuses:?}; RSS growth MiB {growth_mib:?} (target at most 64 each)",
        size / (1024 * 1024)
    );

    // Throughput: one upload at a time through both services, against a plain curl upload of
    // the same file to a local file server.
    let rounds = env_or("LOAD_UPLOAD_ROUNDS", 5usize).max(1);
    let (token, url) = targets.first().cloned().ok_or_else(|| anyhow!("no uploader"))?;
    let mut ours = Vec::new();
    for _ in 0..rounds {
        let (status, secs) = upload(token.clone(), url.clone(), file_arg.clone()).await??;
        if status != 201 {
            bail!("an upload answered {status}");
        }
        ours.push(secs);
    }
    let port = file_server(s.work.clone()).await?;
    let plain_target = format!("http://127.0.0.1:{port}/upload.pdf");
    let file_path = file.display().to_string();
    let mut plain = Vec::new();
    for _ in 0..rounds {
        let (target, path) = (plain_target.clone(), file_path.clone());
        let (status, secs) = tokio::task::spawn_blocking(move || curl(&["-T", &path, &target])).await??;
        if status != 201 {
            bail!("the plain file server answered {status}");
        }
        plain.push(secs);
    }
    let mib = size as f64 / (1024.0 * 1024.0);
    let (ours_mibps, plain_mibps) = (mib / median(ours), mib / median(plain));
    println!(
        "upload throughput: {ours_mibps:.1} MiB/s through public-api and phi-vault, {plain_mibps:.1} MiB/s plain curl to a local file server; ratio {:.2} (target at least 0.5)",
        ours_mibps / plain_mibps
    );
    Ok(json!({
        "dashboard": {"rate": rate, "p50_ms": dashboard.p50_ms, "p95_ms": dashboard.p95_ms, "p99_ms": dashboard.p99_ms,
                      "failed": dashboard.failed(), "target_p95_ms": 25},
        "uploads": {"concurrent": concurrent, "bytes_each": size, "seconds": round3(concurrent_secs),
                    "statuses": statuses, "rss_growth_mib": growth_mib, "target_growth_mib": 64},
        "throughput": {"ours_mib_per_s": round3(ours_mibps), "plain_mib_per_s": round3(plain_mibps),
                       "ratio": round3(ours_mibps / plain_mibps), "target_ratio": 0.5},
    }))
}

fn main() -> std::process::ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("secondwind-load: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("secondwind-load: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<()> {
    common::install_crypto_provider();
    let mode = std::env::var("LOAD_MODE").unwrap_or_else(|_| "paths".into());
    let label = std::env::var("LOAD_LABEL").unwrap_or_else(|_| "measured".into());
    let s = setup().await?;
    let figures = match mode.as_str() {
        "paths" => {
            let f = paths(&s).await?;
            print_paths(&label, &f);
            f
        }
        "guard" => {
            let f = guard(&s).await?;
            let file = std::env::var("LOAD_BASELINE").context("LOAD_BASELINE: the committed baseline")?;
            if std::env::var("LOAD_WRITE_BASELINE").is_ok_and(|v| v == "1") {
                let baseline = json!({"build": label, "requests_per_path": env_or("LOAD_GUARD_REQUESTS", 3000usize),
                                      "paths": f});
                std::fs::write(&file, serde_json::to_string_pretty(&baseline)? + "\n")?;
                println!("guard: baseline written to {file}");
            } else {
                let baseline: Value = serde_json::from_str(&std::fs::read_to_string(&file)?)?;
                let failures = compare(&baseline, &f);
                if !failures.is_empty() {
                    bail!("CPU per request grew by more than 50%: {}", failures.join("; "));
                }
                println!("guard: no path's CPU per request grew by more than 50%");
            }
            f
        }
        "memory" => {
            let f = memory(&s).await?;
            println!("memory: {f}");
            f
        }
        "journey" => {
            let f = journey(&s).await?;
            println!("journey: {}", serde_json::to_string_pretty(&f)?);
            f
        }
        "verify" => verify_trail(&s).await?,
        other => bail!("LOAD_MODE `{other}`: expected paths, guard, memory, journey or verify"),
    };
    let _ = std::fs::remove_dir_all(&s.work);
    let line = json!({"build": label, "mode": mode, "figures": figures});
    println!("{line}");
    if let Ok(file) = std::env::var("LOAD_JSON") {
        std::fs::write(&file, line.to_string() + "\n").with_context(|| format!("writing {file}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_bench_data_directory_is_written_to() {
        let dir = std::env::temp_dir().join(format!("secondwind-load-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(dir.join("config")).expect("dir");
        let config = dir.join("config/phi-vault.toml");
        let policy = dir.join("bench-volume.toml");
        std::fs::write(&config, "[service]\nvolume_file = \"/srv/policies/phi-volume.toml\"\n").expect("config");
        assert!(bench_directory(&dir).is_err(), "a config naming the shipped policy");
        std::fs::write(&policy, "[[window]]\n").expect("policy");
        assert!(bench_directory(&dir).is_err(), "a bench policy the config does not name");
        std::fs::write(&config, format!("[service]\nvolume_file = \"{}\"\n", policy.display())).expect("config");
        assert!(bench_directory(&dir).is_ok(), "the bench's own directory");
        std::fs::remove_file(&policy).expect("remove");
        assert!(bench_directory(&dir).is_err(), "the named policy is gone");
        assert!(bench_directory(&dir.join("nowhere")).is_err(), "no directory");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_guard_fails_only_on_growth_past_half_above_the_floor() {
        let baseline = json!({"paths": {"users_me": {"public-api": 0.4, "consent": 0.0, "postgres": 0.02}}});
        let within = json!({"users_me": {"public-api": 0.59, "consent": 0.0, "postgres": 0.04}});
        assert!(compare(&baseline, &within).is_empty(), "0.59 against 0.4 is within half; 0.04 is under the floor");
        let grown = json!({"users_me": {"public-api": 0.61, "consent": 0.0, "postgres": 0.02}});
        let failures = compare(&baseline, &grown);
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert!(failures[0].starts_with("users_me public-api"), "{failures:?}");
        let past_floor = json!({"users_me": {"public-api": 0.4, "consent": 0.06, "postgres": 0.9}});
        let failures = compare(&baseline, &past_floor);
        assert_eq!(failures.len(), 1, "consent's 0.06 ms is past the floor; PostgreSQL is not judged: {failures:?}");
        assert!(failures[0].starts_with("users_me consent"), "{failures:?}");
    }
}
