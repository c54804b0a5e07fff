//! `recipients`: the directory of partner residences and insurers a consent can name.

use clap::{Args, Subcommand, ValueEnum};
use uuid::Uuid;
use wire::consents::{DirectoryEntry, DirectoryPage, NewDirectoryEntry};

use crate::commands::{confirm, query};
use crate::failure::Result;
use crate::output::{when, Table};
use crate::Context;

#[derive(Debug, Subcommand)]
pub enum RecipientsCommand {
    /// The directory (in use; --retired for every entry).
    List(ListArgs),
    /// Add a residence or insurer.
    #[command(
        after_help = "Example:\n  secondwind-admin recipients add --kind residence --name \"Mile High Recovery House\" \\\n    --address \"Denver, CO\" --account <PARTNER_USER_ID>"
    )]
    Add(AddArgs),
    /// Retire an entry: no new consent may name it; consents naming it stand.
    Retire(RetireArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long)]
    pub retired: bool,
    #[arg(long)]
    pub after: Option<i64>,
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i64).range(1..=100))]
    pub limit: i64,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Kind {
    Residence,
    Insurer,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    #[arg(long, value_enum)]
    pub kind: Kind,
    #[arg(long)]
    pub name: String,
    #[arg(long)]
    pub address: Option<String>,
    /// The partner account that acts for a residence (its user id). Permanent.
    #[arg(long)]
    pub account: Option<Uuid>,
}

#[derive(Debug, Args)]
pub struct RetireArgs {
    pub id: Uuid,
    /// Do not ask first.
    #[arg(long)]
    pub yes: bool,
}

pub async fn run(ctx: &Context, cmd: RecipientsCommand) -> Result<()> {
    let api = ctx.api().await?;
    match cmd {
        RecipientsCommand::List(args) => {
            let q = query(&[
                ("after", args.after.map(|a| a.to_string())),
                ("limit", Some(args.limit.to_string())),
                ("include_retired", args.retired.then(|| "true".to_owned())),
            ]);
            let page: DirectoryPage = api.get(&format!("/staff/consent-recipients{q}")).await?;
            let mut t = Table::new(vec!["id", "kind", "name", "address", "account linked", "retired"]);
            for r in &page.recipients {
                t.row(vec![
                    r.id.to_string(),
                    r.kind.clone(),
                    r.name.clone(),
                    r.address.clone().unwrap_or_default(),
                    if r.linked { "yes".into() } else { "no".into() },
                    r.retired_at.map(when).unwrap_or_default(),
                ]);
            }
            ctx.out.list(&page, &t)?;
            if let Some(n) = page.next_after {
                ctx.out.note(format!("more: add --after {n}"));
            }
            Ok(())
        }
        RecipientsCommand::Add(args) => {
            let kind = match args.kind {
                Kind::Residence => "residence",
                Kind::Insurer => "insurer",
            };
            let entry = NewDirectoryEntry {
                kind: kind.to_owned(),
                name: args.name,
                address: args.address,
                account_id: args.account,
            };
            let added: DirectoryEntry = api.post("/staff/consent-recipients", &entry).await?;
            ctx.out.one(&added, || format!("added {} {} ({})", added.kind, added.name, added.id))
        }
        RecipientsCommand::Retire(args) => {
            confirm(&format!("retire recipient {}? New consents can no longer name it", args.id), args.yes)?;
            let retired: DirectoryEntry = api.delete(&format!("/staff/consent-recipients/{}", args.id)).await?;
            ctx.out.one(&retired, || format!("retired {} ({})", retired.name, retired.id))
        }
    }
}
