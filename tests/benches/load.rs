//! Load run of the PHI paths: public-api -> phi-vault -> PostgreSQL, writing
//! (`PUT /beneficiaries/me/profile`) and reading (`GET` the same) at a fixed arrival rate, across
//! many beneficiaries. Open loop: each request is due at its scheduled time and its latency is
//! counted from then, so a stall is not hidden by requests that were never sent.
//!
//! phi-vault runs against the Vault Transit HTTP double, which answers after `LOAD_VAULT_MS`
//! (50 ms). A third run reads the same cached profiles while, at the same time, subjects no
//! phi-vault has cached are read (each unwrap waits on Vault) and a rewrap of every data key
//! under a new KEK version runs: cached reads must not wait on either.
//!
//! Prints p50, p95, p99, max and achieved throughput per path, the share of the write path spent
//! encrypting, the rewrap's progress, and one JSON line for scripts. Needs the test cluster: run
//! `scripts/bench`. Settings: `LOAD_RPS` (200), `LOAD_SECS` (20), `LOAD_USERS` (200),
//! `LOAD_VAULT_MS` (50), `LOAD_UNCACHED_RPS` (20), `LOAD_REWRAP_WORKERS` (2), `LOAD_REWRAP_BATCH` (50).

#![allow(clippy::print_stdout)]

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::db::Database;
use harness::load::{env_or, open_loop, OpenLoop};
use harness::vault::{seed_uncached_subjects, TransitDouble};
use harness::TestApp;
use serde_json::json;

#[derive(Debug, serde::Serialize)]
struct Figures {
    path: &'static str,
    #[serde(flatten)]
    run: OpenLoop,
}

/// An HTTP request's status (0: no response).
fn status_of(request: reqwest::RequestBuilder) -> impl Future<Output = u16> + Send + 'static {
    let pending = request.send();
    async move { pending.await.map_or(0, |r| r.status().as_u16()) }
}

async fn run<F>(path: &'static str, rps: u64, secs: u64, request: impl Fn(usize) -> F) -> Figures
where
    F: Future<Output = u16> + Send + 'static,
{
    Figures { path, run: open_loop(rps, secs, request).await }
}

/// The mean cost of encrypting one profile-sized record, in milliseconds.
fn seal_cost_ms(plaintext: &[u8]) -> f64 {
    use phi_vault::crypto::{self, Binding, DataKey};
    let key = DataKey::generate().expect("key");
    let (subject, record) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let rounds = 20_000;
    let started = Instant::now();
    for _ in 0..rounds {
        let binding = Binding { subject, record, category: "identity", field: "content" };
        std::hint::black_box(crypto::seal(&key, binding, std::hint::black_box(plaintext)).expect("seal"));
    }
    started.elapsed().as_secs_f64() * 1000.0 / rounds as f64
}

/// The rewrap's progress during the mixed run.
#[derive(Debug, serde::Serialize)]
struct RewrapProgress {
    workers: u64,
    batch: i64,
    keys: i64,
    rewrapped: u64,
    remaining: i64,
    seconds: f64,
    keys_per_second: f64,
    errors: u64,
}

/// Rewraps with `workers` concurrent runs (as several `secondwind-operator phi rewrap` processes
/// would) until every key is done or `stop` is set.
async fn rewrap(
    phi: sqlx::PgPool,
    settings: phi_vault::vault_transit::VaultSettings,
    workers: u64,
    batch: i64,
    stop: Arc<AtomicBool>,
) -> RewrapProgress {
    let started = Instant::now();
    let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM subjects WHERE wrapped_data_key IS NOT NULL")
        .fetch_one(&phi)
        .await
        .expect("count");
    let (rewrapped, errors) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut tasks = Vec::new();
    for worker in 0..workers {
        let (phi, stop, rewrapped, errors) = (phi.clone(), stop.clone(), rewrapped.clone(), errors.clone());
        let provider = phi_vault::vault_transit::VaultTransit::new(&settings).expect("provider");
        tasks.push(tokio::spawn(async move {
            let request_id = format!("bench-rewrap-{worker}");
            while !stop.load(Ordering::SeqCst) {
                match phi_vault::keys::rewrap_batch(&phi, &provider, batch, "bench", &request_id).await {
                    Ok((done, remaining)) => {
                        rewrapped.fetch_add(done, Ordering::SeqCst);
                        if remaining == 0 {
                            break;
                        }
                    }
                    Err(_) => {
                        errors.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("rewrap worker");
    }
    let seconds = started.elapsed().as_secs_f64();
    let remaining: i64 =
        sqlx::query_scalar("SELECT count(*) FROM subjects WHERE wrapped_data_key IS NOT NULL AND kek_version < 2")
            .fetch_one(&phi)
            .await
            .expect("count");
    let rewrapped = rewrapped.load(Ordering::SeqCst);
    RewrapProgress {
        workers,
        batch,
        keys,
        rewrapped,
        remaining,
        seconds,
        keys_per_second: rewrapped as f64 / seconds,
        errors: errors.load(Ordering::SeqCst),
    }
}

fn print_figures(rows: &[&Figures]) {
    println!(
        "{:<30} {:>8} {:>8} {:>7} {:>9} {:>9} {:>9} {:>9}",
        "path", "req/s", "done/s", "errors", "p50 ms", "p95 ms", "p99 ms", "max ms"
    );
    for f in rows {
        println!(
            "{:<30} {:>8} {:>8.1} {:>7} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            f.path,
            f.run.rate,
            f.run.achieved_rps,
            f.run.failed(),
            f.run.p50_ms,
            f.run.p95_ms,
            f.run.p99_ms,
            f.run.max_ms
        );
    }
}

fn main() {
    // `cargo bench` passes `--bench`; this harness takes its settings from the environment.
    let rps = env_or("LOAD_RPS", 200u64).max(1);
    let secs = env_or("LOAD_SECS", 20).max(1);
    let users = env_or("LOAD_USERS", 200).max(1) as usize;
    let vault_ms = env_or("LOAD_VAULT_MS", 50u64);
    let uncached_rps = env_or("LOAD_UNCACHED_RPS", 20).max(1);
    let workers = env_or("LOAD_REWRAP_WORKERS", 2).max(1);
    let batch = env_or("LOAD_REWRAP_BATCH", 50).max(1) as i64;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async move {
        let vault = TransitDouble::start().await;
        let settings = vault.settings();
        let phi_settings = settings.clone();
        // The read-volume watch would rightly stop this many distinct subjects a minute from one
        // caller (policies/phi-volume.toml); the load run measures speed, so it raises the bar.
        let volume_file = std::env::temp_dir().join(format!("secondwind-load-volume-{}.toml", std::process::id()));
        std::fs::write(&volume_file, "[[window]]\nsecs = 60\nreads_per_service = { public-api = 1000000 }\n")
            .expect("volume policy");
        let phi_volume = volume_file.clone();
        let app = TestApp::spawn_configured(
            |public| {
                // One client address sends everything here; the limits are for the real world.
                public.rate_limits.per_ip_per_minute = u32::MAX / 2;
                public.rate_limits.per_user_per_minute = u32::MAX / 2;
                public.database.max_connections = 10;
            },
            move |phi| {
                phi.database.max_connections = 10;
                phi.service.kek_file = None;
                phi.service.vault = Some(phi_settings);
                // Keys stay cached for the whole run (the default is 300 s).
                phi.service.key_cache_ttl_secs = 3600;
                phi.service.volume_file = phi_volume;
            },
        )
        .await;
        let public = sqlx::PgPool::connect(&app.database(Database::Public).app_url()).await.expect("public db");
        let mut tokens = Vec::with_capacity(users);
        for _ in 0..users {
            tokens.push(app.new_beneficiary_token(&public).await.1);
        }
        let tokens = Arc::new(tokens);
        let http = reqwest::Client::builder().pool_max_idle_per_host(256).build().expect("client");
        let url = app.api("/beneficiaries/me/profile");
        let profile = harness::sample_profile();

        // Every beneficiary gets a profile first, so the write run replaces and the read run finds.
        for token in tokens.iter() {
            let status = http.put(&url).bearer_auth(token).json(&profile).send().await.expect("put").status();
            assert!(status.is_success(), "seeding a profile answered {status}");
        }
        // Subjects no phi-vault has cached, one for each uncached read of the mixed run.
        let phi = sqlx::PgPool::connect(&app.database(Database::Phi).app_url()).await.expect("phi db");
        let seeding = phi_vault::vault_transit::VaultTransit::new(&settings).expect("provider");
        let uncached = Arc::new(seed_uncached_subjects(&phi, &seeding, (uncached_rps * secs) as usize, &profile).await);
        vault.answer_after(Duration::from_millis(vault_ms));
        println!(
            "load: {users} beneficiaries, {rps} requests/s for {secs} s per path; Vault answers after {vault_ms} ms"
        );

        let write = run("write (PUT profile)", rps, secs, |i| {
            let mut body = profile.clone();
            body["phone"] = json!(format!("303-555-{:04}", i % 10_000));
            status_of(http.put(&url).bearer_auth(&tokens[i % tokens.len()]).json(&body))
        })
        .await;
        let read =
            run("read (GET profile)", rps, secs, |i| status_of(http.get(&url).bearer_auth(&tokens[i % tokens.len()])))
                .await;

        // Mixed: the same cached reads, while uncached subjects are read (each unwrap waits on
        // Vault) and every data key is rewrapped under a new KEK version.
        vault.rotate();
        let stop = Arc::new(AtomicBool::new(false));
        let rewrapping = tokio::spawn(rewrap(phi.clone(), settings.clone(), workers, batch, stop.clone()));
        let client = app.vault_client();
        // Each uncached subject read as itself, with its own token, as public-api would send it.
        let contexts: Vec<_> = uncached
            .iter()
            .map(|(subject, _)| app.user_call(&subject.to_string(), common::Role::Beneficiary, "self_service"))
            .collect();
        let contexts = Arc::new(contexts);
        let decrypts_before = vault.decrypts();
        let (cached, uncached_reads) = tokio::join!(
            run("cached read during rewrap", rps, secs, |i| {
                status_of(http.get(&url).bearer_auth(&tokens[i % tokens.len()]))
            }),
            run("uncached read (Vault unwrap)", uncached_rps, secs, |i| {
                let (_, record) = uncached[i % uncached.len()];
                let ctx = contexts[i % contexts.len()].clone();
                let client = client.clone();
                async move {
                    match client.read_record(&ctx, record).await {
                        Ok(_) => 200,
                        Err(common::client::ClientError::Status { status, .. }) => status,
                        Err(_) => 0,
                    }
                }
            }),
        );
        stop.store(true, Ordering::SeqCst);
        let progress = rewrapping.await.expect("rewrap");
        let unwraps = vault.decrypts() - decrypts_before;
        let chain_intact = phi_vault::access_log::verify(&phi, 10).await.expect("verify").intact();

        let plaintext = serde_json::to_vec(&profile).expect("json");
        let seal_ms = seal_cost_ms(&plaintext);
        let share = 100.0 * seal_ms / write.run.p50_ms;

        print_figures(&[&write, &read, &cached, &uncached_reads]);
        println!(
            "encryption: {:.4} ms per {}-byte profile = {share:.2}% of the write path's median",
            seal_ms,
            plaintext.len()
        );
        println!(
            "rewrap during the mixed run: {} of {} keys in {:.1} s ({:.1} keys/s, {} workers, batch {}), {} remaining, \
             {} batch errors; {unwraps} Vault unwraps in all; access log chain intact: {chain_intact}",
            progress.rewrapped,
            progress.keys,
            progress.seconds,
            progress.keys_per_second,
            progress.workers,
            progress.batch,
            progress.remaining,
            progress.errors,
        );
        for f in [&write, &read, &cached, &uncached_reads].into_iter().filter(|f| f.run.failed() > 0) {
            println!("{}: failed responses by status {:?}", f.path, f.run.errors);
        }
        let mut errors: Vec<String> = harness::logs()
            .iter()
            .filter(|l| l["level"] == "ERROR" || l["message"] == "rate limit reached")
            .map(|l| format!("{} {}", l["level"], l["message"]))
            .collect();
        errors.sort();
        errors.dedup();
        for line in errors.iter().take(10) {
            println!("logged: {line}");
        }
        let verdict = |f: &Figures| if f.run.failed() == 0 && f.run.p95_ms < 25.0 { "met" } else { "NOT met" };
        println!(
            "target p95 < 25 ms at {rps} req/s: write {}, read {}, cached read during uncached reads and rewrap {}; \
             encryption < 5%: {}",
            verdict(&write),
            verdict(&read),
            verdict(&cached),
            if share < 5.0 { "met" } else { "NOT met" },
        );
        println!(
            "{}",
            json!({"load": [write, read, cached, uncached_reads], "rewrap": progress, "vault_ms": vault_ms,
                   "chain_intact": chain_intact, "encryption_ms": seal_ms, "encryption_share_percent": share})
        );
        phi.close().await;
        public.close().await;
        app.stop().await;
        let _ = std::fs::remove_file(&volume_file);
    });
}
