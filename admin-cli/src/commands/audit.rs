//! `audit`: the compliance officer's view of the PHI access log, and their findings on
//! break-glass reads.

use clap::{Args, Subcommand, ValueEnum};
use common::compliance::{
    AccessEntry, AccessLogPage, AccessReview, AuditLogEntry, AuditLogPage, ReviewRequest, TrailVerification,
};
use uuid::Uuid;

use crate::commands::query;
use crate::failure::Result;
use crate::output::{progress, when, Table};
use crate::Context;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Query a trail, oldest first: the public audit log (every state change and sign-in, by
    /// whom) or the PHI access log (who read or changed whose records, in which role, why, and
    /// the decision).
    #[command(after_help = "Examples:\n  secondwind-admin audit query --actor 6f1c… --action 'application.*'\n  \
                            secondwind-admin audit query --log phi-access --subject 6f1c… --all --csv > access.csv")]
    Query(QueryArgs),
    /// Verify the public audit log: every row's hash recomputed, every link followed. Exit 1
    /// naming the first break when it is not intact. (The PHI and consent trails, and the
    /// checkpoints kept in other databases, are verified on a server with `secondwind-operator
    /// audit verify`.)
    Verify,
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

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Log {
    /// public-api's audit log.
    Public,
    /// phi-vault's PHI access log.
    PhiAccess,
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    /// Which trail.
    #[arg(long, value_enum, default_value = "public")]
    pub log: Log,
    /// Public log: only rows where this user acted.
    #[arg(long)]
    pub actor: Option<Uuid>,
    /// Public log: only this action, or a family (`auth.*`).
    #[arg(long)]
    pub action: Option<String>,
    /// Public log: only this resource, as TYPE or TYPE:ID (e.g. application:6f1c…).
    #[arg(long)]
    pub resource: Option<String>,
    /// Public log: success, failure or denied.
    #[arg(long)]
    pub outcome: Option<String>,
    /// Public log: on or after this day (YYYY-MM-DD).
    #[arg(long)]
    pub from: Option<String>,
    /// Public log: on or before this day (YYYY-MM-DD).
    #[arg(long)]
    pub to: Option<String>,
    /// Public log: include each row's client address (an identifier: only when needed).
    #[arg(long)]
    pub ip: bool,
    /// PHI access log: only entries about this beneficiary.
    #[arg(long)]
    pub subject: Option<Uuid>,
    /// PHI access log: only break-glass entries.
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

fn public_table(entries: &[AuditLogEntry]) -> Table {
    let mut t = Table::new(vec!["seq", "when", "actor", "action", "resource", "outcome", "reason", "request id"]);
    for e in entries {
        let actor = match (&e.actor_id, &e.operator) {
            (Some(a), _) => a.to_string(),
            (None, Some(o)) => format!("operator {o}"),
            (None, None) => "-".into(),
        };
        let resource = match (&e.resource_type, &e.resource_id) {
            (Some(t), Some(id)) => format!("{t}:{id}"),
            (Some(t), None) => t.clone(),
            _ => String::new(),
        };
        t.row(vec![
            e.seq.to_string(),
            when(e.occurred_at),
            actor,
            e.action.clone(),
            resource,
            e.outcome.clone(),
            e.reason.clone().unwrap_or_default(),
            e.request_id.clone().unwrap_or_default(),
        ]);
    }
    t
}

async fn public_pages(ctx: &Context, args: &QueryArgs) -> Result<()> {
    let (resource_type, resource_id) = match args.resource.as_deref().map(|r| r.split_once(':')) {
        None => (None, None),
        Some(Some((t, id))) => (Some(t.to_owned()), Some(id.to_owned())),
        Some(None) => (args.resource.clone(), None),
    };
    let api = ctx.api().await?;
    let mut after = args.page.after;
    let mut until: Option<i64> = None;
    let mut head;
    let mut entries = Vec::new();
    let bar = progress(ctx.out.format, None, "reading the audit log");
    let next = loop {
        let pairs = [
            ("actor_id", args.actor.map(|a| a.to_string())),
            ("action", args.action.clone()),
            ("resource_type", resource_type.clone()),
            ("resource_id", resource_id.clone()),
            ("outcome", args.outcome.clone()),
            ("from", args.from.clone()),
            ("to", args.to.clone()),
            ("after_seq", after.map(|a| a.to_string())),
            ("until_seq", until.map(|u| u.to_string())),
            ("include_ip", args.ip.then(|| "true".to_owned())),
            ("limit", Some(args.page.limit.to_string())),
        ];
        let got: AuditLogPage = api.get(&format!("/compliance/audit-log{}", query(&pairs))).await?;
        // Later pages stop where the trail ended when reading began: each read is audited, and
        // those rows must not keep the reading going.
        until = until.or(Some(got.head_seq));
        head = until.unwrap_or(got.head_seq);
        bar.inc(got.entries.len() as u64);
        entries.extend(got.entries);
        match crate::api::next_page(after, got.next_after_seq)? {
            Some(n) if args.page.all => after = Some(n),
            other => break other,
        }
    };
    bar.finish_and_clear();
    let result = AuditLogPage { entries, next_after_seq: next, head_seq: head };
    ctx.out.list(&result, &public_table(&result.entries))?;
    if let Some(n) = result.next_after_seq {
        ctx.out.note(format!("more: add --after {n} (or --all)"));
    }
    Ok(())
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
        AuditCommand::Query(args) if args.log == Log::Public => {
            if args.subject.is_some() || args.flagged {
                return Err(crate::failure::Failure::usage(
                    "--subject and --flagged filter the PHI access log: add --log phi-access",
                ));
            }
            public_pages(ctx, &args).await
        }
        AuditCommand::Query(args) => {
            if args.actor.is_some()
                || args.ip
                || args.action.is_some()
                || args.resource.is_some()
                || args.outcome.is_some()
                || args.from.is_some()
                || args.to.is_some()
            {
                return Err(crate::failure::Failure::usage(
                    "the PHI access log filters by --subject and --flagged only (the others are for --log public)",
                ));
            }
            let filters = vec![
                ("subject_id", args.subject.map(|s| s.to_string())),
                ("flagged", args.flagged.then(|| "true".to_owned())),
            ];
            pages(ctx, filters, &args.page).await
        }
        AuditCommand::Verify => {
            let api = ctx.api().await?;
            let bar = progress(ctx.out.format, None, "verifying the public audit log");
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            let report: TrailVerification = api.post("/compliance/audit-verifications", &()).await?;
            bar.finish_and_clear();
            ctx.out.one(&report, || {
                if report.intact {
                    format!("{}: intact, {} rows verified", report.trail, report.rows_checked)
                } else {
                    let breaks: Vec<String> =
                        report.breaks.iter().map(|b| format!("seq {} ({})", b.seq, b.problem)).collect();
                    format!("{}: BROKEN after {} rows: {}", report.trail, report.rows_checked, breaks.join(", "))
                }
            })?;
            if !report.intact {
                return Err(crate::failure::Failure::failed(format!(
                    "the {} audit log is broken at seq {}: keep the database as it is and follow \
                     runbooks/audit-anchoring.md",
                    report.trail,
                    report.first_bad_seq.unwrap_or_default()
                )));
            }
            Ok(())
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
