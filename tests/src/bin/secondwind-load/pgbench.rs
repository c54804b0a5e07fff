//! pgbench: the same SQL, straight to PostgreSQL.

#[allow(unused_imports)]
use super::*;

#[derive(Debug, serde::Serialize)]
pub(crate) struct PgbenchPart {
    pub(crate) database: &'static str,
    pub(crate) script: &'static str,
    pub(crate) transactions: u64,
    pub(crate) tps: f64,
    pub(crate) postgres_cpu_ms_per_transaction: f64,
}

#[derive(Debug, serde::Serialize)]
pub(crate) struct Pgbench {
    /// Each database's share of the path, run on its own.
    pub(crate) parts: Vec<PgbenchPart>,
    /// The rate PostgreSQL could serve the whole path at: every part takes its share of the
    /// same server, so 1 / Σ (1 / rate of each part).
    pub(crate) tps: f64,
    pub(crate) postgres_cpu_ms_per_transaction: f64,
}

/// The SQL each path sends, one pgbench script per database it touches, as the services send
/// it (prepared, in order). `:uid`/`:sid` are a user and session, `:subject` and `:record` a
/// profile. The trails' appends go to scratch copies of their tables (`bench_access_log`,
/// `bench_audit_logs`, same columns and indexes), so the real chains stay intact.
pub(crate) fn pgbench_scripts(route: Route) -> Vec<(ServiceName, &'static str, &'static str)> {
    match route {
        Route::Me => vec![(ServiceName::PublicApi, "users_me.sql", include_str!("../../../pgbench/users_me.sql"))],
        Route::ProfileRead => vec![
            (
                ServiceName::PublicApi,
                "profile_read_public.sql",
                include_str!("../../../pgbench/profile_read_public.sql"),
            ),
            (ServiceName::PhiVault, "profile_read_phi.sql", include_str!("../../../pgbench/profile_read_phi.sql")),
        ],
        Route::ProfileWrite => vec![
            (
                ServiceName::PublicApi,
                "profile_write_public.sql",
                include_str!("../../../pgbench/profile_write_public.sql"),
            ),
            (ServiceName::PhiVault, "profile_write_phi.sql", include_str!("../../../pgbench/profile_write_phi.sql")),
        ],
        // Measured in the journey mode, against its own target, not beside pgbench.
        Route::Dashboard => vec![],
    }
}

pub(crate) async fn pgbench(route: Route, s: &Setup, secs: u64) -> Result<Pgbench> {
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
pub(crate) async fn scratch_tables(data: &Path) -> Result<()> {
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
