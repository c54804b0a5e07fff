//! `db migrate` and `db status`: apply or inspect the migrations of the three databases, with
//! an owner URL given directly or read from a service's config file (`database.migrate_url`).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use comfy_table::Table;
use common::config::Config;
use common::db::{self, Database};
use common::ServiceName;
use serde::Serialize;

use crate::output::Output;

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Apply pending migrations.
    Migrate(TargetArgs),
    /// Show applied and pending migrations.
    Status(TargetArgs),
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct Target {
    /// A service's config file; its `database.migrate_url` (or `database.url`) is used.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// An owner URL of the database named by --database.
    #[arg(long, value_name = "URL", env = "SECONDWIND_MIGRATE_URL", hide_env_values = true)]
    pub url: Option<String>,
}

#[derive(Debug, Args)]
pub struct TargetArgs {
    #[command(flatten)]
    pub target: Target,
    /// Which database --url points at (public, phi or consent); read from --config otherwise.
    #[arg(long)]
    pub database: Option<Database>,
    /// With --config: which service the file configures.
    #[arg(long)]
    pub service: Option<ServiceName>,
}

#[derive(Debug, Serialize)]
pub struct MigrationReport {
    pub database: Database,
    pub applied_now: usize,
    pub applied: Vec<i64>,
    pub pending: Vec<i64>,
}

/// Resolves the database and the URL to use.
fn resolve(args: &TargetArgs) -> anyhow::Result<(Database, String)> {
    if let Some(url) = &args.target.url {
        let database = args.database.context("--url needs --database (public, phi or consent)")?;
        return Ok((database, url.clone()));
    }
    let file = args.target.config.as_ref().context("give --config or --url")?;
    let service = match args.service {
        Some(s) => s,
        None => infer_service(file)?,
    };
    let config: Config<toml::Table> =
        Config::load(service, Some(file)).with_context(|| format!("reading {}", file.display()))?;
    let url = config.database.migrate_url.as_ref().unwrap_or(&config.database.url).expose().clone();
    Ok((service.database(), url))
}

/// `public-api.toml` → public-api.
fn infer_service(file: &std::path::Path) -> anyhow::Result<ServiceName> {
    let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
    stem.parse::<ServiceName>()
        .map_err(|_| anyhow::anyhow!("cannot tell which service {} configures: add --service", file.display()))
}

async fn report(database: Database, pool: &sqlx::PgPool, applied_now: usize) -> anyhow::Result<MigrationReport> {
    let applied = db::applied_versions(pool).await?;
    let pending = database.migrator().iter().map(|m| m.version).filter(|v| !applied.contains(v)).collect();
    Ok(MigrationReport { database, applied_now, applied, pending })
}

pub async fn run(cmd: DbCommand, out: &Output) -> anyhow::Result<()> {
    let (migrating, args) = match cmd {
        DbCommand::Migrate(a) => (true, a),
        DbCommand::Status(a) => (false, a),
    };
    let (database, url) = resolve(&args)?;
    out.progress(format!("connecting to the {} database", database.as_str()));
    let pool = db::connect_with_backoff(&url, 1, std::time::Duration::from_secs(10)).await?;
    let applied_now = if migrating {
        out.progress(format!("applying migrations to the {} database", database.as_str()));
        db::migrate(database, &pool).await?
    } else {
        0
    };
    let report = report(database, &pool, applied_now).await?;
    pool.close().await;
    out.result(&report, || {
        let mut table = Table::new();
        table.set_header(["database", "applied now", "applied", "pending"]);
        table.add_row([
            database.as_str().to_owned(),
            report.applied_now.to_string(),
            report.applied.len().to_string(),
            report.pending.len().to_string(),
        ]);
        table.to_string()
    })?;
    if !migrating && !report.pending.is_empty() {
        anyhow::bail!("{} migration(s) pending on the {} database", report.pending.len(), database.as_str());
    }
    Ok(())
}
