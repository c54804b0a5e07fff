//! `audit verify`: walks a hash-chained trail and reports every edited, removed, inserted or
//! reordered row. Exit 1 when the chain is broken, so monitoring can alert on it.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use common::config::Config;
use common::ServiceName;
use serde::Serialize;

use crate::output::Output;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify a trail's hash chain.
    Verify(VerifyArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trail {
    /// public-api's audit_logs.
    Public,
    /// phi-vault's access_log (metadata of every PHI access).
    Phi,
    /// The consent service's decisions (every disclosure question and its answer).
    Consent,
}

impl Trail {
    fn table(self) -> &'static str {
        match self {
            Trail::Public => "audit_logs",
            Trail::Phi => "access_log",
            Trail::Consent => "decisions",
        }
    }
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[arg(long, value_enum, default_value = "public")]
    pub trail: Trail,
    /// The owning service's config file (its database.url is used; SELECT suffices).
    #[arg(long, value_name = "FILE", required_unless_present = "url")]
    pub config: Option<PathBuf>,
    /// Or a URL of the trail's database.
    #[arg(long, value_name = "URL", env = "SECONDWIND_AUDIT_DATABASE_URL", hide_env_values = true)]
    pub url: Option<String>,
    /// Stop after this many breaks.
    #[arg(long, default_value_t = 100)]
    pub max_breaks: usize,
}

#[derive(Serialize)]
struct Report {
    trail: Trail,
    intact: bool,
    rows_checked: u64,
    breaks: Vec<common::chain::Break>,
}

pub async fn run(cmd: AuditCommand, out: &Output) -> anyhow::Result<()> {
    let AuditCommand::Verify(args) = cmd;
    let url = match (&args.url, &args.config) {
        (Some(url), _) => url.clone(),
        (None, Some(file)) => {
            let service = match args.trail {
                Trail::Public => ServiceName::PublicApi,
                Trail::Phi => ServiceName::PhiVault,
                Trail::Consent => ServiceName::Consent,
            };
            let config: Config<toml::Table> =
                Config::load(service, Some(file)).with_context(|| format!("reading {}", file.display()))?;
            config.database.url.expose().clone()
        }
        (None, None) => anyhow::bail!("give --config or --url"),
    };
    out.progress(format!("verifying the {} chain", args.trail.table()));
    let pool = common::db::connect_with_backoff(&url, 1, std::time::Duration::from_secs(10)).await?;
    let verification = match args.trail {
        Trail::Public => public_api::audit::verify(&pool, args.max_breaks).await?,
        Trail::Phi => phi_vault::access_log::verify(&pool, args.max_breaks).await?,
        Trail::Consent => consent::decisions::verify(&pool, args.max_breaks).await?,
    };
    pool.close().await;
    let report = Report {
        trail: args.trail,
        intact: verification.intact(),
        rows_checked: verification.rows_checked,
        breaks: verification.breaks,
    };
    out.result(&report, || {
        if report.intact {
            format!("intact: {} rows verified", report.rows_checked)
        } else {
            let mut s = format!("BROKEN: {} rows checked, {} break(s):", report.rows_checked, report.breaks.len());
            for b in &report.breaks {
                s.push_str(&format!("\n  seq {}: {:?}", b.seq, b.problem));
            }
            s
        }
    })?;
    if !report.intact {
        anyhow::bail!("the {:?} audit chain is broken", report.trail);
    }
    Ok(())
}
