//! Load run of the PHI paths: public-api -> phi-vault -> PostgreSQL, writing
//! (`PUT /beneficiaries/me/profile`) and reading (`GET` the same) at a fixed arrival rate, across
//! many beneficiaries. Open loop: each request is due at its scheduled time and its latency is
//! counted from then, so a stall is not hidden by requests that were never sent.
//!
//! Prints p50, p95, p99, max and achieved throughput per path, the share of the write path spent
//! encrypting, and one JSON line for scripts. Needs the test cluster: run `scripts/bench`.
//! Settings: `LOAD_RPS` (200), `LOAD_SECS` (20), `LOAD_USERS` (200).

#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::db::Database;
use harness::TestApp;
use serde_json::json;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[derive(Debug, serde::Serialize)]
struct Figures {
    path: &'static str,
    target_rps: u64,
    achieved_rps: f64,
    requests: usize,
    errors: usize,
    /// Failed responses by status (0: no response).
    error_statuses: std::collections::BTreeMap<u16, usize>,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1].as_secs_f64() * 1000.0
}

/// Sends `rps` requests a second for `secs` seconds, each built by `request(i)`.
async fn run(path: &'static str, rps: u64, secs: u64, request: impl Fn(usize) -> reqwest::RequestBuilder) -> Figures {
    let total = (rps * secs) as usize;
    let interval = Duration::from_secs_f64(1.0 / rps as f64);
    let start = Instant::now() + Duration::from_millis(50);
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        let due = start + interval * i as u32;
        tokio::time::sleep_until(due.into()).await;
        let pending = request(i).send();
        tasks.push(tokio::spawn(async move {
            let status = pending.await.map_or(0, |r| r.status().as_u16());
            (status, due.elapsed())
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    let mut error_statuses = std::collections::BTreeMap::new();
    for task in tasks {
        let (status, latency) = task.await.expect("task");
        if !(200..300).contains(&status) {
            *error_statuses.entry(status).or_insert(0) += 1;
        }
        latencies.push(latency);
    }
    let errors = error_statuses.values().sum();
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort();
    Figures {
        path,
        target_rps: rps,
        achieved_rps: (total - errors) as f64 / elapsed,
        requests: total,
        errors,
        error_statuses,
        p50_ms: percentile(&latencies, 50.0),
        p95_ms: percentile(&latencies, 95.0),
        p99_ms: percentile(&latencies, 99.0),
        max_ms: latencies.last().map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0),
    }
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

fn main() {
    // `cargo bench` passes `--bench`; this harness takes its settings from the environment.
    let rps = env_or("LOAD_RPS", 200).max(1);
    let secs = env_or("LOAD_SECS", 20).max(1);
    let users = env_or("LOAD_USERS", 200).max(1) as usize;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async move {
        let app = TestApp::spawn_configured(
            |public| {
                // One client address sends everything here; the limits are for the real world.
                public.rate_limits.per_ip_per_minute = u32::MAX / 2;
                public.rate_limits.per_user_per_minute = u32::MAX / 2;
                public.database.max_connections = 10;
            },
            |phi| phi.database.max_connections = 10,
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
        println!("load: {users} beneficiaries, {rps} requests/s for {secs} s per path");

        let write = run("write (PUT profile)", rps, secs, |i| {
            let mut body = profile.clone();
            body["phone"] = json!(format!("303-555-{:04}", i % 10_000));
            http.put(&url).bearer_auth(&tokens[i % tokens.len()]).json(&body)
        })
        .await;
        let read =
            run("read (GET profile)", rps, secs, |i| http.get(&url).bearer_auth(&tokens[i % tokens.len()])).await;

        let plaintext = serde_json::to_vec(&profile).expect("json");
        let seal_ms = seal_cost_ms(&plaintext);
        let share = 100.0 * seal_ms / write.p50_ms;

        println!(
            "{:<22} {:>8} {:>8} {:>7} {:>9} {:>9} {:>9} {:>9}",
            "path", "req/s", "done/s", "errors", "p50 ms", "p95 ms", "p99 ms", "max ms"
        );
        for f in [&write, &read] {
            println!(
                "{:<22} {:>8} {:>8.1} {:>7} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
                f.path, f.target_rps, f.achieved_rps, f.errors, f.p50_ms, f.p95_ms, f.p99_ms, f.max_ms
            );
        }
        println!(
            "encryption: {:.4} ms per {}-byte profile = {share:.2}% of the write path's median",
            seal_ms,
            plaintext.len()
        );
        for f in [&write, &read].into_iter().filter(|f| f.errors > 0) {
            println!("{}: failed responses by status {:?}", f.path, f.error_statuses);
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
        let verdict = |f: &Figures| f.errors == 0 && f.p95_ms < 25.0;
        println!(
            "target p95 < 25 ms at {rps} req/s: write {}, read {}; encryption < 5%: {}",
            if verdict(&write) { "met" } else { "NOT met" },
            if verdict(&read) { "met" } else { "NOT met" },
            if share < 5.0 { "met" } else { "NOT met" },
        );
        println!("{}", json!({"load": [write, read], "encryption_ms": seal_ms, "encryption_share_percent": share}));
        public.close().await;
        app.stop().await;
    });
}
