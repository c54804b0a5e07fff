//! `users grant-role` / `users revoke-role`: the only way staff roles change. Records the acting
//! admin and the reason; `--dry-run` shows what would change; revoking asks for confirmation
//! unless `--yes`, since it signs the user out everywhere.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use common::config::Config;
use common::ServiceName;

use crate::output::Output;

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Grant a staff role (caseworker, admin, compliance_officer).
    GrantRole(RoleArgs),
    /// Revoke a staff role; ends the user's sessions.
    RevokeRole(RoleArgs),
}

#[derive(Debug, Args)]
pub struct RoleArgs {
    /// public-api's config file (its database.url is used).
    #[arg(long, value_name = "FILE", required_unless_present = "url")]
    pub config: Option<PathBuf>,
    /// Or the public database URL.
    #[arg(long, value_name = "URL", env = "SECONDWIND_PUBLIC_DATABASE_URL", hide_env_values = true)]
    pub url: Option<String>,
    /// The user: id or email.
    #[arg(long)]
    pub user: String,
    #[arg(long)]
    pub role: String,
    /// The admin acting: id or email. Must hold the admin role.
    #[arg(long)]
    pub by: String,
    /// Why; recorded in the audit log.
    #[arg(long)]
    pub reason: String,
    /// Show what would change, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
}

fn confirm(question: &str) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        anyhow::bail!("{question}: pass --yes to confirm when not running interactively");
    }
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

pub async fn run(cmd: UsersCommand, out: &Output) -> anyhow::Result<()> {
    let (grant, args) = match cmd {
        UsersCommand::GrantRole(a) => (true, a),
        UsersCommand::RevokeRole(a) => (false, a),
    };
    let url = match (&args.url, &args.config) {
        (Some(url), _) => url.clone(),
        (None, Some(file)) => {
            let config: Config<toml::Table> = Config::load(ServiceName::PublicApi, Some(file))
                .with_context(|| format!("reading {}", file.display()))?;
            config.database.url.expose().clone()
        }
        (None, None) => anyhow::bail!("give --config or --url"),
    };
    let pool = common::db::connect_with_backoff(&url, 2, std::time::Duration::from_secs(10)).await?;
    let target = public_api::staff::find_user(&pool, &args.user).await?;
    let actor = public_api::staff::find_user(&pool, &args.by).await?;
    if !grant
        && !args.dry_run
        && !args.yes
        && !confirm(&format!("revoke {} from {target} and end their sessions?", args.role))?
    {
        anyhow::bail!("cancelled");
    }
    let change: public_api::staff::RoleChange =
        public_api::staff::change_role(&pool, target, &args.role, grant, actor, &args.reason, args.dry_run).await?;
    pool.close().await;
    out.result(&change, || {
        let verb = if grant { "granted" } else { "revoked" };
        let prefix = if args.dry_run { "dry run: would have " } else { "" };
        if change.changed {
            format!("{prefix}{verb} {} for {}; roles now [{}]", change.role, change.user_id, change.roles.join(", "))
        } else {
            format!("no change: {} already {verb} for {}", change.role, change.user_id)
        }
    })?;
    Ok(())
}
