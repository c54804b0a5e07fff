//! `audit`: the compliance officer's view of the PHI access log, and their findings on
//! break-glass reads.

use clap::{Args, Subcommand, ValueEnum};
use common::compliance::{AccessEntry, AccessLogPage, AccessReview, ReviewRequest};
use uuid::Uuid;

use crate::commands::query;
use crate::failure::Result;
use crate::output::{progress, when, Table};
use crate::Context;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// The PHI access log: who read or changed whose records, in which role, why, and the
    /// decision. Oldest first.
    #[command(after_help = "Examples:\n  secondwind-admin audit access-log --subject 6f1c…\n  \
                            secondwind-admin audit access-log --all --csv > access.csv")]
    AccessLog(QueryArgs),
    /// Break-glass reads awaiting a compliance finding.
    BreakGlass(PageArgs),
    /// Record a finding on a break-glass read (final once made).
    Review(ReviewArgs),
}

#[derive(Debug, Args)]
pub struct PageArgs {
    /// Continue after this sequence number (printed at the end of the previous page).
    #[arg(long)]
    pub after: Option<i64>,
    /// Rows per page, 1 to 500.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i64).range(1..=500))]
    pub limit: i64,
    /// Every page, streamed as it arrives.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    /// Only entries about this beneficiary.
    #[arg(long)]
    pub subject: Option<Uuid>,
    /// Only break-glass entries.
    #[arg(long)]
    pub flagged: bool,
    #[command(flatten)]
    pub page: PageArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Finding {
    Justified,
    Unjustified,
}

#[derive(Debug, Args)]
pub struct ReviewArgs {
    /// The entry's sequence number (`seq` in the log).
    pub seq: i64,
    #[arg(long, value_enum)]
    pub finding: Finding,
    /// What was checked and concluded (1 to 2,000 characters).
    #[arg(long)]
    pub note: String,
}

fn table(entries: &[AccessEntry]) -> Table {
    let mut t = Table::new(vec![
        "seq", "when", "actor", "role", "action", "subject", "decision", "purpose", "flagged", "review",
    ]);
    for e in entries {
        t.row(vec![
            e.seq.to_string(),
            when(e.occurred_at),
            e.actor.clone(),
            e.actor_role.clone(),
            e.action.clone(),
            e.subject_id.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
            e.decision.clone(),
            e.purpose.clone(),
            if e.flagged { "yes".into() } else { "".into() },
            e.review.as_ref().map(|r| format!("{} by {}", r.outcome, r.reviewed_by)).unwrap_or_default(),
        ]);
    }
    t
}

async fn pages(ctx: &Context, filters: Vec<(&str, Option<String>)>, page: &PageArgs) -> Result<()> {
    let api = ctx.api().await?;
    let mut after = page.after;
    let mut entries = Vec::new();
    let bar = progress(ctx.out.format, None, "reading the access log");
    let next = loop {
        let mut pairs = filters.clone();
        pairs.push(("after_seq", after.map(|a| a.to_string())));
        pairs.push(("limit", Some(page.limit.to_string())));
        let got: AccessLogPage = api.get(&format!("/compliance/phi-access-log{}", query(&pairs))).await?;
        bar.inc(got.entries.len() as u64);
        entries.extend(got.entries);
        match crate::api::next_page(after, got.next_after_seq)? {
            Some(n) if page.all => after = Some(n),
            other => break other,
        }
    };
    bar.finish_and_clear();
    let result = AccessLogPage { entries, next_after_seq: next };
    ctx.out.list(&result, &table(&result.entries))?;
    if let Some(n) = result.next_after_seq {
        ctx.out.note(format!("more: add --after {n} (or --all)"));
    }
    Ok(())
}

pub async fn run(ctx: &Context, cmd: AuditCommand) -> Result<()> {
    match cmd {
        AuditCommand::AccessLog(args) => {
            let filters = vec![
                ("subject_id", args.subject.map(|s| s.to_string())),
                ("flagged", args.flagged.then(|| "true".to_owned())),
            ];
            pages(ctx, filters, &args.page).await
        }
        AuditCommand::BreakGlass(page) => {
            let filters = vec![("flagged", Some("true".to_owned())), ("reviewed", Some("false".to_owned()))];
            pages(ctx, filters, &page).await
        }
        AuditCommand::Review(args) => {
            let outcome = match args.finding {
                Finding::Justified => "justified",
                Finding::Unjustified => "unjustified",
            };
            let request = ReviewRequest { outcome: outcome.to_owned(), note: args.note };
            let review: AccessReview =
                ctx.api().await?.put(&format!("/compliance/phi-access-log/{}/review", args.seq), &request).await?;
            ctx.out
                .one(&review, || format!("entry {} reviewed: {} by {}", args.seq, review.outcome, review.reviewed_by))
        }
    }
}
