//! `db migrate` and `db status`: apply or inspect the migrations of the three databases. The
//! owner URLs come from a file only the admin reads (`--owners`, mode 0600, written by `dev
//! init`), or are given directly (`--url`). Services never migrate and hold no owner
//! credentials. `--config` still reads `database.migrate_url` from a service config written
//! before that change.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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
    /// The owners file (mode 0600): `[public]`, `[phi]`, `[consent]`, each with the owner `url`.
    /// Every database it lists, or only --database.
    #[arg(long, value_name = "FILE")]
    pub owners: Option<PathBuf>,
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
    /// Which database --url points at (public, phi or consent); with --owners, only this one;
    /// read from --config otherwise.
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

/// One database's entry in the owners file.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnerEntry {
    pub url: common::Secret<String>,
}

/// Reads the owners file, refusing one others can read.
pub fn read_owners(path: &Path) -> anyhow::Result<BTreeMap<Database, OwnerEntry>> {
    let text = common::keys::read_secret_text(path)?;
    toml::from_str(&text).with_context(|| format!("reading {}", path.display()))
}

/// Resolves the databases and the URLs to use.
fn resolve(args: &TargetArgs) -> anyhow::Result<Vec<(Database, String)>> {
    if let Some(file) = &args.target.owners {
        let owners = read_owners(file)?;
        let chosen: Vec<(Database, String)> = owners
            .into_iter()
            .filter(|(database, _)| args.database.is_none_or(|d| d == *database))
            .map(|(database, entry)| (database, entry.url.expose().clone()))
            .collect();
        anyhow::ensure!(!chosen.is_empty(), "{} names no such database", file.display());
        return Ok(chosen);
    }
    resolve_one(args).map(|one| vec![one])
}

fn resolve_one(args: &TargetArgs) -> anyhow::Result<(Database, String)> {
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
    Ok((Database::of(service), url))
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
    let targets = resolve(&args)?;
    let mut reports = Vec::new();
    for (database, url) in targets {
        out.progress(format!("connecting to the {} database", database.as_str()));
        let pool = db::connect_with_backoff(&url, 1, std::time::Duration::from_secs(10)).await?;
        let applied_now = if migrating {
            out.progress(format!("applying migrations to the {} database", database.as_str()));
            db::migrate(database, &pool).await?
        } else {
            0
        };
        reports.push(report(database, &pool, applied_now).await?);
        pool.close().await;
    }
    let table = || {
        let mut table = Table::new();
        table.set_header(["database", "applied now", "applied", "pending"]);
        for report in &reports {
            table.add_row([
                report.database.as_str().to_owned(),
                report.applied_now.to_string(),
                report.applied.len().to_string(),
                report.pending.len().to_string(),
            ]);
        }
        table.to_string()
    };
    // One database: its report; the owners file: a list of them.
    if args.target.owners.is_some() {
        out.result(&reports, table)?;
    } else {
        out.result(&reports[0], table)?;
    }
    if !migrating {
        if let Some(report) = reports.iter().find(|r| !r.pending.is_empty()) {
            anyhow::bail!("{} migration(s) pending on the {} database", report.pending.len(), report.database.as_str());
        }
    }
    Ok(())
}
