//! `keys generate`: an Ed25519 pair for a service's internal-call assertions.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use common::ServiceName;
use serde::Serialize;

use crate::output::Output;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Write DIR/<service>.key (PKCS#8 PEM, mode 0600) and DIR/<service>.pub (SPKI PEM).
    Generate(GenerateArgs),
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// public-api, phi-vault or consent.
    #[arg(long)]
    pub service: ServiceName,
    #[arg(long)]
    pub dir: PathBuf,
}

#[derive(Serialize)]
struct Generated {
    private_key: PathBuf,
    public_key: PathBuf,
}

pub fn run(cmd: KeysCommand, out: &Output) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::Generate(args) => {
            common::keys::generate_files(&args.dir, args.service.as_str())?;
            let generated = Generated {
                private_key: args.dir.join(format!("{}.key", args.service)),
                public_key: args.dir.join(format!("{}.pub", args.service)),
            };
            out.result(&generated, || {
                format!("wrote {} (0600) and {}", generated.private_key.display(), generated.public_key.display())
            })
        }
    }
}
