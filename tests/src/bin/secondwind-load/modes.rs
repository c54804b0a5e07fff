//! The set-up and the modes: paths, guard, memory.

#[allow(unused_imports)]
use super::*;

pub(crate) struct Setup {
    pub(crate) fleet: Arc<Fleet>,
    pub(crate) pids: Pids,
    pub(crate) hz: f64,
    pub(crate) urls: BTreeMap<ServiceName, String>,
    pub(crate) vars: Vec<(&'static str, String)>,
    pub(crate) work: PathBuf,
}

/// Only ever a data directory `scripts/bench` made: the load run creates users, records and
/// tables. Its mark is phi-vault's config naming the bench volume policy beside it.
pub(crate) fn bench_directory(data: &Path) -> Result<()> {
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

pub(crate) async fn setup() -> Result<Setup> {
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

pub(crate) async fn paths(s: &Setup) -> Result<Value> {
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

pub(crate) fn print_paths(label: &str, figures: &Value) {
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
pub(crate) async fn guard(s: &Setup) -> Result<Value> {
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
pub(crate) fn compare(baseline: &Value, measured: &Value) -> Vec<String> {
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

pub(crate) async fn memory(s: &Setup) -> Result<Value> {
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
