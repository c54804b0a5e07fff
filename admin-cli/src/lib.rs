//! `secondwind-admin`: the staff CLI. Caseworkers, admins and compliance officers work through
//! public-api over HTTPS, signed in as themselves: every action reaches the trails under the
//! person the server proved, exactly as from the web app. It holds no database credentials and
//! links no service or key code (only `common`'s wire types); operator tasks (migrations, keys,
//! KEK rotation) are `secondwind-operator`'s, on the servers.
//!
//! Exit codes: 0 done, 1 failed, 2 bad usage, 3 permission denied, 4 not found.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub mod api;
pub mod commands;
pub mod failure;
pub mod output;
pub mod pdf;
pub mod settings;

use failure::{Failure, Result};
use output::{Format, Output};

const AFTER_HELP: &str = "\
Start here:
  secondwind-admin --api-url https://api.example.org login --dev caseworker
  secondwind-admin applications list --mine
  secondwind-admin applications show <ID>            (prints the version you review)
  secondwind-admin applications approve <ID> --version <V> --note \"Lease checked\"

Exit codes: 0 done, 1 failed, 2 bad usage, 3 permission denied, 4 not found.
The server comes from --api-url, SECONDWIND_API_URL, or api_url in config.toml in the config folder.";

#[derive(Debug, Parser)]
#[command(
    name = "secondwind-admin",
    version,
    about = "SecondWind for staff: review applications and insurance, answer auditors, manage roles",
    after_help = AFTER_HELP
)]
pub struct Cli {
    /// public-api's address, e.g. https://api.example.org (plain http only to this machine).
    #[arg(long, global = true, value_name = "URL")]
    pub api_url: Option<String>,
    /// Where the session and config.toml are kept.
    #[arg(long, global = true, value_name = "DIR")]
    pub config_dir: Option<PathBuf>,
    /// Print JSON (for scripts).
    #[arg(long, global = true, conflicts_with = "csv")]
    pub json: bool,
    /// Print CSV (lists only; other results print JSON).
    #[arg(long, global = true)]
    pub csv: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Sign in; the session is kept for later commands (mode 0600).
    Login(commands::session::LoginArgs),
    /// End the session on the server and forget it here.
    Logout {
        /// Forget the session here even if the server cannot be reached to end it.
        #[arg(long)]
        force: bool,
    },
    /// Who you are signed in as, and your roles.
    Whoami,
    /// The application queue and decisions (caseworkers, admins).
    #[command(subcommand)]
    Applications(commands::applications::ApplicationsCommand),
    /// Insurance verification (caseworkers).
    #[command(subcommand)]
    Insurance(commands::insurance::InsuranceCommand),
    /// The audit, PHI access and consent decision logs, their verification, and break-glass
    /// findings (compliance officers).
    #[command(subcommand)]
    Audit(commands::audit::AuditCommand),
    /// A patient's accounting of disclosures (compliance officers).
    #[command(subcommand)]
    Disclosures(commands::disclosures::DisclosuresCommand),
    /// A beneficiary's consents (compliance officers).
    #[command(subcommand)]
    Consents(commands::consents::ConsentsCommand),
    /// The consent recipient directory: partner residences and insurers (admins).
    #[command(subcommand)]
    Recipients(commands::recipients::RecipientsCommand),
    /// Staff roles (admins).
    #[command(subcommand)]
    Users(commands::users::UsersCommand),
    /// Print a shell completion script: bash, zsh, fish, elvish or powershell.
    #[command(
        after_help = "Example:\n  secondwind-admin completions bash > ~/.local/share/bash-completion/completions/secondwind-admin"
    )]
    Completions { shell: clap_complete::Shell },
}

/// What every command needs: where the session is, which server, how to print.
pub struct Context {
    pub dir: PathBuf,
    api_url: Option<String>,
    pub out: Output,
}

impl Context {
    /// The server to talk to: the flag, the environment, config.toml, or else the server of
    /// the stored session.
    pub fn api_url(&self) -> Result<String> {
        match settings::api_url(self.api_url.as_deref(), &self.dir) {
            Ok(url) => Ok(url),
            Err(f) if self.api_url.is_none() => match settings::load(&self.dir)? {
                Some(c) => settings::check_url(&c.api_url),
                None => Err(f),
            },
            Err(f) => Err(f),
        }
    }

    /// A client signed in as the stored session's person. An access token that has expired
    /// (or will within a minute) is first renewed with the refresh token, under a lock.
    pub async fn api(&self) -> Result<api::Api> {
        let base = self.api_url()?;
        let stored = settings::load(&self.dir)?;
        let soon = time::OffsetDateTime::now_utc().unix_timestamp() + 60;
        let credentials = match stored {
            Some(c) if c.expires_at <= soon && c.refresh_token.is_some() && c.api_url == base => {
                Some(self.refreshed(&base).await?)
            }
            other => other,
        };
        api::Api::signed_in(base, credentials)
    }

    async fn refreshed(&self, base: &str) -> Result<settings::Credentials> {
        #[derive(serde::Serialize)]
        struct Request<'a> {
            refresh_token: &'a str,
        }
        #[derive(serde::Deserialize)]
        struct Answer {
            access_token: String,
            expires_in: i64,
            user_id: uuid::Uuid,
            session_id: uuid::Uuid,
            refresh_token: String,
        }
        let _lock = settings::lock(&self.dir)?;
        // Another command may have refreshed while this one waited for the lock.
        let Some(current) = settings::load(&self.dir)? else {
            return Err(Failure::denied("not signed in: run `secondwind-admin login` first"));
        };
        if current.api_url != base {
            return Err(Failure::denied(format!(
                "your session is for {}, not {base}: run `secondwind-admin login --api-url {base}`",
                current.api_url
            )));
        }
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let Some(refresh_token) = current.refresh_token.as_deref().filter(|_| current.expires_at <= now + 60) else {
            return Ok(current);
        };
        let answer: Answer =
            match api::Api::new(base.to_owned(), None)?.post("/auth/token-refresh", &Request { refresh_token }).await {
                Ok(answer) => answer,
                Err(f) if f.exit == failure::Exit::Denied => {
                    settings::forget(&self.dir)?;
                    return Err(Failure::denied("your session has ended: run `secondwind-admin login` again"));
                }
                Err(f) => return Err(f),
            };
        let renewed = settings::Credentials {
            api_url: current.api_url,
            access_token: answer.access_token,
            user_id: answer.user_id,
            session_id: answer.session_id,
            expires_at: now + answer.expires_in,
            refresh_token: Some(answer.refresh_token),
        };
        settings::save(&self.dir, &renewed)?;
        Ok(renewed)
    }
}

pub async fn run(cli: Cli) -> Result<()> {
    let format = match (cli.json, cli.csv) {
        (true, _) => Format::Json,
        (_, true) => Format::Csv,
        _ => Format::Table,
    };
    let dir = settings::config_dir(cli.config_dir.as_deref())?;
    let ctx = Context { dir, api_url: cli.api_url, out: Output { format } };
    match cli.command {
        Command::Login(args) => commands::session::login(&ctx, args).await,
        Command::Logout { force } => commands::session::logout(&ctx, force).await,
        Command::Whoami => commands::session::whoami(&ctx).await,
        Command::Applications(cmd) => commands::applications::run(&ctx, cmd).await,
        Command::Insurance(cmd) => commands::insurance::run(&ctx, cmd).await,
        Command::Audit(cmd) => commands::audit::run(&ctx, cmd).await,
        Command::Disclosures(cmd) => commands::disclosures::run(&ctx, cmd).await,
        Command::Recipients(cmd) => commands::recipients::run(&ctx, cmd).await,
        Command::Consents(cmd) => commands::consents::run(&ctx, cmd).await,
        Command::Users(cmd) => commands::users::run(&ctx, cmd).await,
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "secondwind-admin", &mut std::io::stdout());
            Ok(())
        }
    }
}

/// Runs the CLI to its exit code (the binary's whole `main`).
pub fn main_exit_code() -> u8 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return 1;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => 0,
        Err(Failure { exit, message }) => {
            eprintln!("error: {}", output::printable(&message));
            exit as u8
        }
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
