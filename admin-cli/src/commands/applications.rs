//! `applications`: the review queue and the decisions on it. Listing shows no details (they
//! are PHI); `show` asks phi-vault for them as you, and phi-vault logs the read under your name.

use clap::{Args, Subcommand};
use uuid::Uuid;
use wire::applications::{
    ApplicationDetail, ApplicationPage, ApplicationStatus, ApplicationView, Assignment, StatusChange,
};

use crate::commands::query;
use crate::failure::{Failure, Result};
use crate::output::{dollars, progress, when, Table};
use crate::Context;

#[derive(Debug, Subcommand)]
pub enum ApplicationsCommand {
    /// The review queue, oldest first. No details: those are read one at a time with `show`.
    #[command(after_help = "Examples:\n  secondwind-admin applications list --mine --status reviewing\n  \
                            secondwind-admin applications list --type rent --from 2026-11-01 --all --csv")]
    List(ListArgs),
    /// One application: status, amount, history and, for its assigned caseworker, its details
    /// (read from phi-vault; the read is logged under your name).
    Show(ShowArgs),
    /// Assign the caseworker who reviews an application (admins).
    Assign(AssignArgs),
    /// Approve an application (the assigned caseworker or an admin).
    Approve(DecideArgs),
    /// Reject an application; the note is shown to the beneficiary.
    Reject(NoteArgs),
    /// Ask the beneficiary for something; the note says what.
    RequestAction(NoteArgs),
    /// Mark an approved application funded (someone other than who approved it).
    Fund(DecideArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// reviewing, action_needed, approved, rejected or funded.
    #[arg(long)]
    pub status: Option<String>,
    /// rent, transport, tech or other.
    #[arg(long = "type", value_name = "TYPE")]
    pub kind: Option<String>,
    /// Only those assigned to you.
    #[arg(long, conflicts_with = "unassigned")]
    pub mine: bool,
    /// Only those with no caseworker yet.
    #[arg(long)]
    pub unassigned: bool,
    /// Submitted on or after (YYYY-MM-DD).
    #[arg(long)]
    pub from: Option<String>,
    /// Submitted on or before (YYYY-MM-DD).
    #[arg(long)]
    pub to: Option<String>,
    /// Continue after this position (printed at the end of the previous page).
    #[arg(long)]
    pub after: Option<i64>,
    /// Rows per page, 1 to 100.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(i64).range(1..=100))]
    pub limit: i64,
    /// Every page, not only the first.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    pub id: Uuid,
}

#[derive(Debug, Args)]
pub struct AssignArgs {
    pub id: Uuid,
    /// The caseworker's user id.
    #[arg(long)]
    pub caseworker: Uuid,
}

#[derive(Debug, Args)]
pub struct DecideArgs {
    pub id: Uuid,
    /// Shown to the beneficiary (3 to 1,000 characters).
    #[arg(long, default_value = "Reviewed and approved by your caseworker.")]
    pub note: String,
    /// The version you reviewed, as `show` printed it. Required: money moves only on what you
    /// saw, and an application edited since is refused.
    #[arg(long)]
    pub version: i32,
}

#[derive(Debug, Args)]
pub struct NoteArgs {
    pub id: Uuid,
    /// Shown to the beneficiary (3 to 1,000 characters, no clinical detail). Required.
    #[arg(long)]
    pub note: String,
    /// The version you reviewed, as `show` printed it; without it, the version current just
    /// before the request is used.
    #[arg(long)]
    pub version: Option<i32>,
}

fn table(apps: &[ApplicationView]) -> Table {
    let mut t = Table::new(vec!["id", "type", "amount", "status", "caseworker", "version", "submitted"]);
    for a in apps {
        t.row(vec![
            a.id.to_string(),
            a.kind.clone(),
            dollars(a.amount_cents),
            a.status.as_str().to_owned(),
            a.caseworker_id.map(|c| c.to_string()).unwrap_or_else(|| "-".into()),
            a.version.to_string(),
            when(a.created_at),
        ]);
    }
    t
}

pub async fn run(ctx: &Context, cmd: ApplicationsCommand) -> Result<()> {
    let api = ctx.api().await?;
    match cmd {
        ApplicationsCommand::List(args) => {
            let assigned = match (args.mine, args.unassigned) {
                (true, _) => Some("me".to_owned()),
                (_, true) => Some("none".to_owned()),
                _ => None,
            };
            let mut after = args.after;
            let mut all = Vec::new();
            let bar = progress(ctx.out.format, None, "reading the queue");
            let next = loop {
                let q = query(&[
                    ("status", args.status.clone()),
                    ("kind", args.kind.clone()),
                    ("assigned", assigned.clone()),
                    ("from", args.from.clone()),
                    ("to", args.to.clone()),
                    ("after", after.map(|a| a.to_string())),
                    ("limit", Some(args.limit.to_string())),
                ]);
                let page: ApplicationPage = api.get(&format!("/staff/applications{q}")).await?;
                bar.inc(page.applications.len() as u64);
                all.extend(page.applications);
                match crate::api::next_page(after, page.next_after)? {
                    Some(n) if args.all => after = Some(n),
                    other => break other,
                }
            };
            bar.finish_and_clear();
            let page = ApplicationPage { applications: all, next_after: next };
            ctx.out.list(&page, &table(&page.applications))?;
            if let Some(n) = page.next_after {
                ctx.out.note(format!("more: add --after {n} (or --all)"));
            }
            Ok(())
        }
        ApplicationsCommand::Show(args) => {
            // The details come from phi-vault as you; its access log records the read.
            ctx.out.note("This view of protected details is logged in the PHI access log under your name.");
            let detail: ApplicationDetail = match api.get(&format!("/caseworker/applications/{}", args.id)).await {
                Ok(d) => d,
                Err(f) if matches!(f.exit, crate::failure::Exit::NotFound | crate::failure::Exit::Denied) => {
                    // Not on the care team, or an admin: show what a reviewer may see, if that.
                    let d: ApplicationDetail = api.get(&format!("/staff/applications/{}", args.id)).await?;
                    ctx.out.note("details withheld: only a caseworker on this beneficiary's care team reads them");
                    d
                }
                Err(f) => return Err(f),
            };
            let a = &detail.application;
            ctx.out.one(&detail, || {
                let mut text = format!(
                    "{} {} {} — {}\ncaseworker: {}\nversion: {}\nsubmitted: {}",
                    a.id,
                    a.kind,
                    dollars(a.amount_cents),
                    a.status.as_str(),
                    a.caseworker_id.map(|c| c.to_string()).unwrap_or_else(|| "none".into()),
                    a.version,
                    when(a.created_at)
                );
                if let Some(d) = &detail.details {
                    text.push_str(&format!("\ndescription: {}", d.description));
                    if let Some(by) = &d.needed_by {
                        text.push_str(&format!("\nneeded by: {by}"));
                    }
                }
                for e in &detail.history {
                    text.push_str(&format!(
                        "\n  {} {} → {} by {}{}",
                        when(e.at),
                        e.from_status.map(|s| s.as_str()).unwrap_or("-"),
                        e.to_status.as_str(),
                        e.by_role,
                        e.note.as_deref().map(|n| format!(": {n}")).unwrap_or_default()
                    ));
                }
                text
            })
        }
        ApplicationsCommand::Assign(args) => {
            let view: ApplicationView = api
                .put(
                    &format!("/staff/applications/{}/caseworker", args.id),
                    &Assignment { caseworker_id: args.caseworker },
                )
                .await?;
            ctx.out.one(&view, || format!("{} assigned to {}", view.id, args.caseworker))
        }
        ApplicationsCommand::Approve(a) => {
            decide(ctx, &api, a.id, ApplicationStatus::Approved, a.note, Some(a.version)).await
        }
        ApplicationsCommand::Fund(a) => {
            let note =
                if a.note == "Reviewed and approved by your caseworker." { "Funded.".to_owned() } else { a.note };
            decide(ctx, &api, a.id, ApplicationStatus::Funded, note, Some(a.version)).await
        }
        ApplicationsCommand::Reject(a) => decide(ctx, &api, a.id, ApplicationStatus::Rejected, a.note, a.version).await,
        ApplicationsCommand::RequestAction(a) => {
            decide(ctx, &api, a.id, ApplicationStatus::ActionNeeded, a.note, a.version).await
        }
    }
}

async fn decide(
    ctx: &Context,
    api: &crate::api::Api,
    id: Uuid,
    status: ApplicationStatus,
    note: String,
    version: Option<i32>,
) -> Result<()> {
    if note.trim().chars().count() < 3 {
        return Err(Failure::usage("--note: at least 3 characters, shown to the beneficiary"));
    }
    let version = match version {
        Some(v) => v,
        None => api.get::<ApplicationDetail>(&format!("/staff/applications/{id}")).await?.application.version,
    };
    let view: ApplicationView =
        api.post(&format!("/staff/applications/{id}/status"), &StatusChange { status, version, note }).await?;
    ctx.out.one(&view, || format!("{} is now {} (version {})", view.id, view.status.as_str(), view.version))
}
