//! `keys generate`: an Ed25519 pair for a service's internal-call assertions.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use common::ServiceName;
use serde::Serialize;

use crate::output::Output;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Write DIR/<name>.key (PKCS#8 PEM, mode 0600) and DIR/<name>.pub (SPKI PEM).
    Generate(GenerateArgs),
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// An internal-call key for public-api, phi-vault or consent (the file is named after it).
    #[arg(long, required_unless_present = "name", conflicts_with = "name")]
    pub service: Option<ServiceName>,
    /// Any other key, e.g. a user-token key `user-2` (lowercase letters, digits, `-`).
    #[arg(long, value_parser = key_name)]
    pub name: Option<String>,
    #[arg(long)]
    pub dir: PathBuf,
}

fn key_name(s: &str) -> Result<String, String> {
    let ok =
        !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(s.to_owned())
    } else {
        Err("use lowercase letters, digits and -".into())
    }
}

#[derive(Serialize)]
struct Generated {
    private_key: PathBuf,
    public_key: PathBuf,
}

pub fn run(cmd: KeysCommand, out: &Output) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::Generate(args) => {
            let name = match (&args.service, &args.name) {
                (Some(service), _) => service.as_str().to_owned(),
                (None, Some(name)) => name.clone(),
                (None, None) => anyhow::bail!("give --service or --name"),
            };
            common::keys::generate_files(&args.dir, &name)?;
            let generated = Generated {
                private_key: args.dir.join(format!("{name}.key")),
                public_key: args.dir.join(format!("{name}.pub")),
            };
            out.result(&generated, || {
                format!("wrote {} (0600) and {}", generated.private_key.display(), generated.public_key.display())
            })
        }
    }
}
