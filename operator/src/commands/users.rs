//! `users bootstrap-admin`: the first admin of a fresh installation. Every later role change is
//! made by a signed-in admin through public-api (`secondwind-admin users grant-role`), so the
//! trail names the proven person; this command refuses once any admin exists. The audit row
//! names the operating-system account that ran it, with the `operator` role.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use common::config::Config;
use common::ServiceName;

use crate::output::Output;

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Make the first admin of a fresh installation (refused once an admin exists).
    ///
    /// Example: secondwind-operator users bootstrap-admin --config /etc/secondwind/public-api.toml
    ///          --user ops-lead@example.org --reason "first admin at install"
    BootstrapAdmin(BootstrapArgs),
}

#[derive(Debug, Args)]
pub struct BootstrapArgs {
    /// public-api's config file (its database.url is used).
    #[arg(long, value_name = "FILE", required_unless_present = "url")]
    pub config: Option<PathBuf>,
    /// Or the public database URL.
    #[arg(long, value_name = "URL", env = "SECONDWIND_PUBLIC_DATABASE_URL", hide_env_values = true)]
    pub url: Option<String>,
    /// The user who becomes admin: id or email. They must have signed in once.
    #[arg(long)]
    pub user: String,
    /// Why; recorded in the audit log.
    #[arg(long)]
    pub reason: String,
}

pub async fn run(cmd: UsersCommand, out: &Output) -> anyhow::Result<()> {
    let UsersCommand::BootstrapAdmin(args) = cmd;
    let url = match (&args.url, &args.config) {
        (Some(url), _) => url.clone(),
        (None, Some(file)) => {
            let config: Config<toml::Table> = Config::load(ServiceName::PublicApi, Some(file))
                .with_context(|| format!("reading {}", file.display()))?;
            config.database.url.expose().clone()
        }
        (None, None) => anyhow::bail!("give --config or --url"),
    };
    let operator = crate::os_user::current();
    let pool = common::db::connect_with_backoff(&url, 2, std::time::Duration::from_secs(10)).await?;
    let result = async {
        let target = public_api::roles::find_user(&pool, &args.user).await?;
        public_api::roles::bootstrap_admin(&pool, target, &operator, &args.reason).await
    }
    .await;
    pool.close().await;
    let change = result?;
    out.result(&change, || format!("{} is now an admin; roles [{}]", change.user_id, change.roles.join(", ")))
}
