//! `dev init`: prepares the embedded default on a PostgreSQL server reachable with a superuser
//! URL: the six roles with generated passwords, the three databases with `CONNECT` restricted to
//! their own roles, Ed25519 keys (internal calls and checkpoints), one config file per service
//! (mode 0600: they hold the runtime roles' passwords), and the owners file that only
//! `secondwind-operator db migrate` reads (`admin/owners.toml`, mode 0600 in a 0700 directory): the
//! services' configs hold no owner credentials. Dev profile only; production databases are
//! provisioned by their operators (runbooks/local-development.md explains what this does).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use base64::Engine;
use clap::{Args, Subcommand};
use common::db::{self, Database};
use common::ServiceName;
use serde::Serialize;
use sqlx::{Connection, PgConnection};

use crate::output::Output;

#[derive(Debug, Subcommand)]
pub enum DevCommand {
    /// Create roles, databases, keys and config files for the embedded default.
    Init(InitArgs),
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// A superuser URL of the server (e.g. over the private cluster's socket).
    #[arg(long, env = "SECONDWIND_ADMIN_DATABASE_URL", hide_env_values = true)]
    pub admin_url: String,
    /// Base URL the services use to reach the server (host, port, options); defaults to the
    /// admin URL's.
    #[arg(long)]
    pub service_url: Option<String>,
    /// Where keys, config files and logs go.
    #[arg(long, default_value = ".data")]
    pub data_dir: PathBuf,
    /// The repository's policies directory (written into the configs as an absolute path).
    #[arg(long, default_value = "policies")]
    pub policies_dir: PathBuf,
    /// Database names are PREFIX_public, PREFIX_phi and PREFIX_consent.
    #[arg(long, default_value = "secondwind")]
    pub name_prefix: String,
    #[arg(long, default_value_t = 8000)]
    pub public_api_port: u16,
    #[arg(long, default_value_t = 8101)]
    pub phi_vault_port: u16,
    #[arg(long, default_value_t = 8102)]
    pub consent_port: u16,
    /// The frontend's origin, allowed to use the refresh cookie.
    #[arg(long, default_value = "http://localhost:5173")]
    pub frontend_origin: String,
}

/// The first user-token signing key's id; rotation adds `user-2`, … (runbooks).
const USER_TOKEN_KID: &str = "user-1";

#[derive(Debug, Serialize)]
struct InitReport {
    databases: BTreeMap<&'static str, String>,
    config_files: Vec<PathBuf>,
    owners_file: PathBuf,
    keys_dir: PathBuf,
    logs_dir: PathBuf,
}

fn password() -> anyhow::Result<String> {
    let mut bytes = [0u8; 24];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| anyhow::anyhow!("the system random source failed"))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    Ok(if path.is_absolute() { path.to_path_buf() } else { std::env::current_dir()?.join(path) })
}

impl InitArgs {
    fn port(&self, service: ServiceName) -> u16 {
        match service {
            ServiceName::PublicApi => self.public_api_port,
            ServiceName::PhiVault => self.phi_vault_port,
            ServiceName::Consent => self.consent_port,
        }
    }
}

/// TOML-quotes a string value.
fn quote(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

pub async fn run(cmd: DevCommand, out: &Output) -> anyhow::Result<()> {
    let DevCommand::Init(args) = cmd;
    let data_dir = absolute(&args.data_dir)?;
    let config_dir = data_dir.join("config");
    let admin_dir = data_dir.join("admin");
    let keys_dir = data_dir.join("keys");
    let logs_dir = data_dir.join("logs");
    let policy_file = absolute(&args.policies_dir)?.join("internal-calls.toml");
    anyhow::ensure!(
        policy_file.is_file(),
        "{} not found: run from the repository root or pass --policies-dir",
        policy_file.display()
    );
    if config_dir.exists() {
        anyhow::bail!(
            "{} already exists: the embedded default is initialised (reset with scripts/run --reset)",
            config_dir.display()
        );
    }
    let service_base = args.service_url.clone().unwrap_or_else(|| args.admin_url.clone());

    out.progress("connecting to PostgreSQL as the administrator");
    let mut admin = PgConnection::connect(&args.admin_url).await.context("connecting with the admin URL")?;

    let mut urls = BTreeMap::new();
    let mut names = BTreeMap::new();
    for database in Database::ALL {
        let name = format!("{}_{}", args.name_prefix, database.as_str());
        out.progress(format!(
            "creating roles {} and {} and database {name}",
            database.owner_role(),
            database.app_role()
        ));
        let owner_pw = password()?;
        let app_pw = password()?;
        db::ensure_role(&mut admin, database.owner_role(), &owner_pw).await?;
        db::ensure_role(&mut admin, database.app_role(), &app_pw).await?;
        anyhow::ensure!(
            !db::database_exists(&mut admin, &name).await?,
            "database {name} already exists; drop it or choose another --name-prefix"
        );
        db::create_database(&mut admin, &name, database, None).await?;
        let owner_url = db::url_for(&service_base, database.owner_role(), Some(&owner_pw), &name)?;
        let app_url = db::url_for(&service_base, database.app_role(), Some(&app_pw), &name)?;
        urls.insert(database.as_str(), (app_url, owner_url));
        names.insert(database.as_str(), name);
    }
    let _ = admin.close().await;

    out.progress(format!("generating signing keys in {}", keys_dir.display()));
    std::fs::create_dir_all(&keys_dir)?;
    for service in ServiceName::ALL {
        common::keys::generate_files(&keys_dir, service.as_str())?;
        common::keys::generate_files(&keys_dir, &common::checkpoint::key_name(service))?;
    }
    common::keys::generate_files(&keys_dir, USER_TOKEN_KID)?;
    let roles_file = absolute(&args.policies_dir)?.join("roles.toml");

    std::fs::create_dir_all(&config_dir)?;
    let mut files = Vec::new();
    let path_of = |name: String| quote(&keys_dir.join(name).display().to_string());
    for service in ServiceName::ALL {
        let (app_url, _) = &urls[Database::of(service).as_str()];
        let receivers: Vec<String> =
            common::checkpoint::topology(service).into_iter().map(|r| quote(r.as_str())).collect();
        let mut text = format!(
            "# Written by `secondwind-operator dev init` for the embedded default. Holds the runtime role's \
             password: keep it 0600.\n\
             profile = \"dev\"\n\n\
             [server]\naddress = \"127.0.0.1\"\nport = {port}\n\n\
             [database]\nurl = {app}\n\n\
             [log]\nlevel = \"info,rocket=warn,sqlx::postgres::notice=warn\"\ndir = {logs}\n\n\
             [internal]\nsigning_key_file = {key}\npolicy_file = {policy}\n\n\
             [checkpoint]\nkey_file = {checkpoint_key}\npublic_key_file = {checkpoint_pub}\nreceivers = [{receivers}]\n",
            port = args.port(service),
            app = quote(app_url),
            logs = quote(&logs_dir.display().to_string()),
            key = path_of(format!("{service}.key")),
            policy = quote(&policy_file.display().to_string()),
            checkpoint_key = path_of(format!("{}.key", common::checkpoint::key_name(service))),
            checkpoint_pub = path_of(format!("{}.pub", common::checkpoint::key_name(service))),
            receivers = receivers.join(", "),
        );
        for peer in ServiceName::ALL.into_iter().filter(|p| *p != service) {
            text.push_str(&format!(
                "\n[internal.peers.{peer}]\nurl = {url}\npublic_key_file = {key}\ncheckpoint_public_key_file = {cp}\n",
                url = quote(&format!("http://127.0.0.1:{}", args.port(peer))),
                key = path_of(format!("{peer}.pub")),
                cp = path_of(format!("{}.pub", common::checkpoint::key_name(peer))),
            ));
        }
        if service != ServiceName::PublicApi {
            // A call made for a person must carry their own token: phi-vault and the consent
            // service check it with public-api's user-token public key.
            text.push_str(&format!(
                "\n[internal.user_tokens]\nkeys = [{{ kid = {kid}, public_key_file = {key} }}]\n",
                kid = quote(USER_TOKEN_KID),
                key = quote(&keys_dir.join(format!("{USER_TOKEN_KID}.pub")).display().to_string()),
            ));
        }
        if service == ServiceName::PhiVault {
            let kek = keys_dir.join("phi-kek");
            phi_vault::crypto::LocalKeyFile::create(&kek).map_err(anyhow::Error::msg)?;
            let policies = absolute(&args.policies_dir)?;
            text.push_str(&format!(
                "\n[service]\nkek_file = {}\nretention_file = {}\nvolume_file = {}\nnotice_file = {}\n",
                quote(&kek.display().to_string()),
                quote(&policies.join("retention.toml").display().to_string()),
                quote(&policies.join("phi-volume.toml").display().to_string()),
                quote(&policies.join("redisclosure-notices/part2-2024.txt").display().to_string())
            ));
        }
        if service == ServiceName::Consent {
            let policies = absolute(&args.policies_dir)?;
            text.push_str(&format!(
                "\n[service]\nforms_dir = {}\n",
                quote(&policies.join("consent-forms").display().to_string())
            ));
        }
        if service == ServiceName::PublicApi {
            text.push_str(&format!(
                "\n[service.auth]\ndev_login = true\nroles_file = {roles}\nallowed_origins = [{origin}]\n\
                 signing_keys = [{{ kid = {kid}, file = {key} }}]\n",
                roles = quote(&roles_file.display().to_string()),
                origin = quote(&args.frontend_origin),
                kid = quote(USER_TOKEN_KID),
                key = quote(&keys_dir.join(format!("{USER_TOKEN_KID}.key")).display().to_string()),
            ));
        }
        let path = config_dir.join(format!("{service}.toml"));
        common::keys::write_secret_file(&path, &text)?;
        files.push(path);
    }

    // The owner URLs go where only the admin looks: `secondwind-operator db migrate --owners`.
    out.progress(format!("writing the owners file in {}", admin_dir.display()));
    std::fs::create_dir_all(&admin_dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&admin_dir, std::fs::Permissions::from_mode(0o700))?;
    }
    let mut owners = String::from(
        "# Written by `secondwind-operator dev init`. The databases' owner (migration) credentials: only\n\
         # `secondwind-operator db migrate --owners` reads this file; no service does. Keep it 0600.\n",
    );
    for database in Database::ALL {
        let (_, owner_url) = &urls[database.as_str()];
        owners.push_str(&format!("\n[{}]\nurl = {}\n", database.as_str(), quote(owner_url)));
    }
    let owners_file = admin_dir.join("owners.toml");
    common::keys::write_secret_file(&owners_file, &owners)?;

    let report = InitReport { databases: names, config_files: files, owners_file, keys_dir, logs_dir };
    out.result(&report, || {
        let mut s = String::from("initialised the embedded default:\n");
        for (db, name) in &report.databases {
            s.push_str(&format!("  {db:<8} database {name}\n"));
        }
        for f in &report.config_files {
            s.push_str(&format!("  config   {}\n", f.display()));
        }
        s.push_str(&format!("  owners   {} (for db migrate only)\n", report.owners_file.display()));
        s.push_str(&format!("  keys     {}\n  logs     {}", report.keys_dir.display(), report.logs_dir.display()));
        s
    })
}
