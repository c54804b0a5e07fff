//! `phi rotate-kek` and `phi rewrap`: rotate the key-encryption key, then rewrap every data key
//! under the new version without decrypting a single record. Rewrap works in batches, reports
//! progress, and can be interrupted and run again (or run from several places at once). Each key
//! is written back in its own short transaction; no lock is held while the key provider works.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use common::config::Config;
use common::ServiceName;
use serde::Serialize;

use crate::output::Output;

#[derive(Debug, Subcommand)]
pub enum PhiCommand {
    /// Add a new KEK version (dev: the local key file). New data keys use it at once.
    RotateKek(RotateArgs),
    /// Rewrap every data key still under an older KEK version.
    Rewrap(RewrapArgs),
}

#[derive(Debug, Args)]
pub struct PhiArgs {
    /// phi-vault's config file.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
}

#[derive(Debug, Args)]
pub struct RotateArgs {
    #[command(flatten)]
    pub target: PhiArgs,
}

#[derive(Debug, Args)]
pub struct RewrapArgs {
    #[command(flatten)]
    pub target: PhiArgs,
    /// Data keys per transaction.
    #[arg(long, default_value_t = 500)]
    pub batch: i64,
}

#[derive(Serialize)]
struct RewrapReport {
    rewrapped: u64,
    remaining: i64,
}

fn load(file: &std::path::Path) -> anyhow::Result<phi_vault::PhiVaultConfig> {
    Config::load(ServiceName::PhiVault, Some(file)).with_context(|| format!("reading {}", file.display()))
}

pub async fn run(cmd: PhiCommand, out: &Output) -> anyhow::Result<()> {
    match cmd {
        PhiCommand::RotateKek(args) => {
            let config = load(&args.target.config)?;
            let file = config
                .service
                .kek_file
                .clone()
                .context("service.kek_file is not set: rotate the Vault Transit key in Vault")?;
            phi_vault::key_provider(&config)?; // refuses production
                                               // Reach the database first: a rotation must not happen unlogged.
            let pool =
                common::db::connect_with_backoff(config.database.url.expose(), 2, std::time::Duration::from_secs(10))
                    .await?;
            let version = phi_vault::crypto::LocalKeyFile::rotate(&file).map_err(anyhow::Error::msg)?;
            let reason = format!("local kek now at v{version}");
            let request_id = format!("cli-rotate-{}", uuid::Uuid::new_v4());
            let operator = crate::os_user::current();
            let entry = phi_vault::access_log::Access {
                actor: &operator,
                actor_role: "operator",
                purpose: "key_rotation",
                subject_id: None,
                record_id: None,
                action: "key.rotate",
                permitted: true,
                reason: &reason,
                flagged: false,
                request_id: &request_id,
            };
            phi_vault::access_log::append_alone(&pool, &entry)
                .await
                .with_context(|| format!("KEK v{version} was added but its entry in the access log failed"))?;
            pool.close().await;
            out.result(&serde_json::json!({ "kek_version": version }), || {
                format!(
                    "KEK version {version} added; run `secondwind-operator phi rewrap --config {}` next",
                    args.target.config.display()
                )
            })
        }
        PhiCommand::Rewrap(args) => {
            anyhow::ensure!(args.batch > 0, "--batch must be positive");
            let config = load(&args.target.config)?;
            let provider = phi_vault::key_provider(&config)?;
            let pool =
                common::db::connect_with_backoff(config.database.url.expose(), 2, std::time::Duration::from_secs(10))
                    .await?;
            let request_id = format!("cli-rewrap-{}", uuid::Uuid::new_v4());
            let operator = crate::os_user::current();
            let mut total = 0;
            let mut before = i64::MAX;
            let remaining = loop {
                let (done, remaining) =
                    phi_vault::keys::rewrap_batch(&pool, provider.as_ref(), args.batch, &operator, &request_id).await?;
                total += done;
                out.progress(format!("rewrapped {total}, {remaining} to go"));
                // Another run may have taken this batch's rows; stop only when nobody progresses.
                if remaining == 0 || (done == 0 && remaining >= before) {
                    break remaining;
                }
                before = remaining;
            };
            pool.close().await;
            let report = RewrapReport { rewrapped: total, remaining };
            out.result(&report, || {
                format!("rewrapped {} data keys; {} remaining", report.rewrapped, report.remaining)
            })?;
            anyhow::ensure!(remaining == 0, "{remaining} data keys changed while being rewrapped; run again");
            Ok(())
        }
    }
}
