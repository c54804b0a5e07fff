//! The beneficiary journey and the audit-log verification: the dashboard's latency, uploads' memory and throughput, and a long trail verified.

#[allow(unused_imports)]
use super::*;

/// A PDF-typed file of `size` bytes of varied content.
pub(crate) fn upload_file(path: &Path, size: usize) -> Result<()> {
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
pub(crate) fn curl(args: &[&str]) -> Result<(u16, f64)> {
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
pub(crate) async fn file_server(dir: PathBuf) -> Result<u16> {
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

pub(crate) fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Each service's RSS sampled every 10 ms from `start` until `growth_mib`: how far the peak rose
/// above where it began.
pub(crate) struct RssWatch {
    pub(crate) before: BTreeMap<String, u64>,
    pub(crate) peak: Arc<std::sync::Mutex<BTreeMap<String, u64>>>,
    pub(crate) sampling: Arc<std::sync::atomic::AtomicBool>,
    pub(crate) sampler: tokio::task::JoinHandle<()>,
}

impl RssWatch {
    pub(crate) fn start(pids: &Pids) -> Self {
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

    pub(crate) async fn growth_mib(self, names: &[&str]) -> Result<BTreeMap<String, f64>> {
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
pub(crate) async fn verify_trail(s: &Setup) -> Result<Value> {
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

pub(crate) async fn journey(s: &Setup) -> Result<Value> {
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
