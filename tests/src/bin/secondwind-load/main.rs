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

mod fleet;
mod journey;
mod modes;
mod pgbench;
mod procs;
mod runs;

use fleet::*;
use journey::*;
use modes::*;
use pgbench::*;
use procs::*;
use runs::*;

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
