//! `secondwind-admin`: how staff and operators work with SecondWind. One module per command
//! group; each has an options struct and a `run`. Output is a table or line for people and
//! `--json` for scripts. Exit codes: 0 done, 1 failed, 2 bad usage.

use clap::{Parser, Subcommand};

pub mod anchor;
pub mod commands;
pub mod output;

#[derive(Debug, Parser)]
#[command(name = "secondwind-admin", version, about = "Administer SecondWind: databases, keys, the embedded default")]
pub struct Cli {
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Audit trails: verify hash chains.
    #[command(subcommand)]
    Audit(commands::audit::AuditCommand),
    /// Database migrations and status.
    #[command(subcommand)]
    Db(commands::db::DbCommand),
    /// Internal-call signing keys.
    #[command(subcommand)]
    Keys(commands::keys::KeysCommand),
    /// PHI key lifecycle: rotate the key-encryption key, rewrap data keys.
    #[command(subcommand)]
    Phi(commands::phi::PhiCommand),
    /// Staff roles.
    #[command(subcommand)]
    Users(commands::users::UsersCommand),
    /// The embedded default (dev profile only).
    #[command(subcommand)]
    Dev(commands::dev::DevCommand),
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let out = output::Output { json: cli.json };
    match cli.command {
        Command::Audit(cmd) => commands::audit::run(cmd, &out).await,
        Command::Db(cmd) => commands::db::run(cmd, &out).await,
        Command::Keys(cmd) => commands::keys::run(cmd, &out),
        Command::Phi(cmd) => commands::phi::run(cmd, &out).await,
        Command::Users(cmd) => commands::users::run(cmd, &out).await,
        Command::Dev(cmd) => commands::dev::run(cmd, &out).await,
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
