//! `secondwind-operator`: what an operator runs on a server that holds the database and key
//! credentials: migrations, signing keys, KEK rotation and rewrap, the first admin, the embedded
//! default, and verifying every trail where it is stored. It records the operating-system
//! account that ran it ([`os_user`]) with the `operator` role, never a typed name. Staff (who act
//! as themselves, over HTTP) use `secondwind-admin` instead. One module per command group; output
//! is a table or line for people and `--json` for scripts. Exit codes: 0 done, 1 failed, 2 bad
//! usage.

use clap::{Parser, Subcommand};

pub mod commands;
pub mod os_user;
pub mod output;

#[derive(Debug, Parser)]
#[command(
    name = "secondwind-operator",
    version,
    about = "Operate SecondWind on its servers: databases, keys, KEK rotation, the first admin, trail verification"
)]
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
    /// The first admin of a fresh installation (later roles: secondwind-admin users).
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
