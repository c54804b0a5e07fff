//! `insurance`: the verification queue and a caseworker's decision on a request.

use clap::{Args, Subcommand};
use uuid::Uuid;
use wire::insurance::{InsuranceDecision, InsurancePage, InsuranceStatus, InsuranceView};

use crate::commands::query;
use crate::failure::Result;
use crate::output::{when, Table};
use crate::Context;

#[derive(Debug, Subcommand)]
pub enum InsuranceCommand {
    /// Requests awaiting a decision (or, with --status, decided ones), oldest first.
    #[command(after_help = "Example:\n  secondwind-admin insurance queue --json")]
    Queue(QueueArgs),
    /// Mark a request verified.
    Verify(IdArgs),
    /// Reject a request; the reason is shown to the beneficiary.
    Reject(RejectArgs),
}

#[derive(Debug, Args)]
pub struct QueueArgs {
    /// pending (the default), verified or rejected.
    #[arg(long)]
    pub status: Option<String>,
    #[arg(long)]
    pub after: Option<i64>,
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(i64).range(1..=100))]
    pub limit: i64,
}

#[derive(Debug, Args)]
pub struct IdArgs {
    pub id: Uuid,
}

#[derive(Debug, Args)]
pub struct RejectArgs {
    pub id: Uuid,
    /// Shown to the beneficiary (3 to 1,000 characters). Required.
    #[arg(long)]
    pub reason: String,
}

pub async fn run(ctx: &Context, cmd: InsuranceCommand) -> Result<()> {
    let api = ctx.api().await?;
    let (id, decision) = match cmd {
        InsuranceCommand::Queue(args) => {
            let q = query(&[
                ("status", args.status),
                ("after", args.after.map(|a| a.to_string())),
                ("limit", Some(args.limit.to_string())),
            ]);
            let page: InsurancePage = api.get(&format!("/staff/insurance{q}")).await?;
            let mut t = Table::new(vec!["id", "beneficiary", "provider", "status", "submitted"]);
            for v in &page.verifications {
                t.row(vec![
                    v.id.to_string(),
                    v.beneficiary_id.to_string(),
                    v.provider.clone(),
                    v.status.as_str().to_owned(),
                    when(v.submitted_at),
                ]);
            }
            ctx.out.list(&page, &t)?;
            if let Some(n) = page.next_after {
                ctx.out.note(format!("more: add --after {n}"));
            }
            return Ok(());
        }
        InsuranceCommand::Verify(a) => (a.id, InsuranceDecision { status: InsuranceStatus::Verified, reason: None }),
        InsuranceCommand::Reject(a) => {
            (a.id, InsuranceDecision { status: InsuranceStatus::Rejected, reason: Some(a.reason) })
        }
    };
    let view: InsuranceView = api.post(&format!("/staff/insurance/{id}/decision"), &decision).await?;
    ctx.out.one(&view, || format!("{} is now {}", view.id, view.status.as_str()))
}
