//! `audit`: the compliance officer's view of the PHI access log, and their findings on
//! break-glass reads.

use clap::{Args, Subcommand, ValueEnum};
use uuid::Uuid;
use wire::compliance::{
    AccessEntry, AccessLogPage, AccessReview, AuditLogEntry, AuditLogPage, DecisionEntry, DecisionPage, ReviewRequest,
    TrailsVerification,
};

use crate::commands::query;
use crate::failure::Result;
use crate::output::{progress, when, Table};
use crate::Context;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Query a trail, oldest first: the public audit log (every state change and sign-in, by
    /// whom), the PHI access log (who read or changed whose records, in which role, why, and
    /// the decision) or the consent decision log (every disclosure asked about a beneficiary's
    /// records, to whom, for what, and the answer with the consent relied on).
    #[command(after_help = "Examples:\n  secondwind-admin audit query --actor 6f1c… --action 'application.*'\n  \
                            secondwind-admin audit query --log phi-access --subject 6f1c… --all --csv > access.csv\n  \
                            secondwind-admin audit query --log consent-decisions --subject 6f1c… --outcome refused")]
    Query(QueryArgs),
    /// Verify every trail: the public audit log, the PHI access log, its reviews, the
    /// accounting of disclosures, the consent decisions, consents and revocations. Each
    /// service recomputes every row's hash, follows every link, and compares the trail with its
    /// signed checkpoints wherever they are kept. Exit 1 naming each broken trail and its first
    /// bad sequence number.
    #[command(
        after_help = "Example:\n  secondwind-admin audit verify\n  secondwind-admin --json audit verify > verification.json"
    )]
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
    /// The consent service's decision log.
    #[value(alias = "decisions")]
    ConsentDecisions,
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    /// Which trail.
    #[arg(long, value_enum, default_value = "public")]
    pub log: Log,
    /// Public and PHI access logs: only rows where this user acted. Decision log: only
    /// decisions asked for this user (the recipient acting).
    #[arg(long)]
    pub actor: Option<Uuid>,
    /// Public log: only this action, or a family (`auth.*`). PHI access log: only this action
    /// (record.read, record.list, …).
    #[arg(long)]
    pub action: Option<String>,
    /// Public log: only this resource, as TYPE or TYPE:ID (e.g. application:6f1c…).
    #[arg(long)]
    pub resource: Option<String>,
    /// Public log: success, failure or denied. PHI access log: permit or deny. Decision log:
    /// permitted or refused.
    #[arg(long)]
    pub outcome: Option<String>,
    /// On or after this day (YYYY-MM-DD, UTC).
    #[arg(long)]
    pub from: Option<String>,
    /// On or before this day (YYYY-MM-DD, UTC).
    #[arg(long)]
    pub to: Option<String>,
    /// Decision log: only this recipient, as ROLE:USER_ID (e.g. partner:6f1c…).
    #[arg(long)]
    pub recipient: Option<String>,
    /// Decision log: only this purpose (housing_placement, care_coordination, …).
    #[arg(long)]
    pub purpose: Option<String>,
    /// Public log: include each row's client address (an identifier: only when needed).
    #[arg(long)]
    pub ip: bool,
    /// PHI access and decision logs: only entries about this beneficiary.
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

fn decision_table(entries: &[DecisionEntry]) -> Table {
    let mut t = Table::new(vec![
        "seq",
        "when",
        "subject",
        "recipient",
        "purpose",
        "categories",
        "answer",
        "consent",
        "asked by",
    ]);
    for e in entries {
        t.row(vec![
            e.seq.to_string(),
            when(e.decided_at),
            e.subject_id.to_string(),
            e.recipient.clone(),
            e.purpose.clone(),
            e.categories.join(" "),
            if e.permitted { "permitted".into() } else { "refused".into() },
            e.consent_id.map(|c| c.to_string()).unwrap_or_default(),
            e.asked_by.clone(),
        ]);
    }
    t
}

/// A page of one of the trails, as the routes answer it.
trait TrailPage: serde::de::DeserializeOwned + serde::Serialize {
    type Entry;
    /// The route, under the API's base.
    const PATH: &'static str;
    const WHAT: &'static str;
    fn split(self) -> (Vec<Self::Entry>, Option<i64>, Option<i64>);
    fn join(entries: Vec<Self::Entry>, next: Option<i64>, head: Option<i64>) -> Self;
    fn table(&self) -> Table;
}

impl TrailPage for AuditLogPage {
    type Entry = AuditLogEntry;
    const PATH: &'static str = "/compliance/audit-log";
    const WHAT: &'static str = "reading the audit log";
    fn split(self) -> (Vec<AuditLogEntry>, Option<i64>, Option<i64>) {
        (self.entries, self.next_after_seq, Some(self.head_seq))
    }
    fn join(entries: Vec<AuditLogEntry>, next_after_seq: Option<i64>, head: Option<i64>) -> Self {
        AuditLogPage { entries, next_after_seq, head_seq: head.unwrap_or_default() }
    }
    fn table(&self) -> Table {
        public_table(&self.entries)
    }
}

impl TrailPage for AccessLogPage {
    type Entry = AccessEntry;
    const PATH: &'static str = "/compliance/phi-access-log";
    const WHAT: &'static str = "reading the access log";
    fn split(self) -> (Vec<AccessEntry>, Option<i64>, Option<i64>) {
        (self.entries, self.next_after_seq, None)
    }
    fn join(entries: Vec<AccessEntry>, next_after_seq: Option<i64>, _: Option<i64>) -> Self {
        AccessLogPage { entries, next_after_seq }
    }
    fn table(&self) -> Table {
        table(&self.entries)
    }
}

impl TrailPage for DecisionPage {
    type Entry = DecisionEntry;
    const PATH: &'static str = "/compliance/consent-decisions";
    const WHAT: &'static str = "reading the decision log";
    fn split(self) -> (Vec<DecisionEntry>, Option<i64>, Option<i64>) {
        (self.entries, self.next_after_seq, Some(self.head_seq))
    }
    fn join(entries: Vec<DecisionEntry>, next_after_seq: Option<i64>, head: Option<i64>) -> Self {
        DecisionPage { entries, next_after_seq, head_seq: head.unwrap_or_default() }
    }
    fn table(&self) -> Table {
        decision_table(&self.entries)
    }
}

/// Reads a trail page by page (every page with `--all`) and prints what was read. Where the
/// route names the trail's last row (`head_seq`), later pages stop there: each read is audited,
/// and those rows must not keep the reading going.
async fn pages<P: TrailPage>(ctx: &Context, filters: Vec<(&str, Option<String>)>, page: &PageArgs) -> Result<()> {
    let api = ctx.api().await?;
    let mut after = page.after;
    let mut until: Option<i64> = None;
    let mut entries = Vec::new();
    let bar = progress(ctx.out.format, None, P::WHAT);
    let next = loop {
        let mut pairs = filters.clone();
        pairs.push(("after_seq", after.map(|a| a.to_string())));
        pairs.push(("until_seq", until.map(|u| u.to_string())));
        pairs.push(("limit", Some(page.limit.to_string())));
        let got: P = api.get(&format!("{}{}", P::PATH, query(&pairs))).await?;
        let (got, next, head) = got.split();
        until = until.or(head);
        bar.inc(got.len() as u64);
        entries.extend(got);
        match crate::api::next_page(after, next)? {
            Some(n) if page.all => after = Some(n),
            other => break other,
        }
    };
    bar.finish_and_clear();
    let result = P::join(entries, next, until);
    ctx.out.list(&result, &result.table())?;
    if let Some(n) = next {
        ctx.out.note(format!("more: add --after {n} (or --all)"));
    }
    Ok(())
}

/// Refuses filters the chosen log does not have, naming them.
fn only(log: &str, given: &[(&str, bool)]) -> Result<()> {
    let wrong: Vec<&str> = given.iter().filter(|(_, set)| *set).map(|(name, _)| *name).collect();
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(crate::failure::Failure::usage(format!("{} do not filter the {log}", wrong.join(", "))))
    }
}

pub async fn run(ctx: &Context, cmd: AuditCommand) -> Result<()> {
    match cmd {
        AuditCommand::Query(args) => query_log(ctx, args).await,
        AuditCommand::Verify => verify(ctx).await,
        AuditCommand::BreakGlass(page) => {
            let filters = vec![("flagged", Some("true".to_owned())), ("reviewed", Some("false".to_owned()))];
            pages::<AccessLogPage>(ctx, filters, &page).await
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

async fn query_log(ctx: &Context, args: QueryArgs) -> Result<()> {
    let a = &args;
    match a.log {
        Log::Public => {
            only(
                "public audit log (use --log phi-access or --log consent-decisions)",
                &[
                    ("--subject", a.subject.is_some()),
                    ("--flagged", a.flagged),
                    ("--recipient", a.recipient.is_some()),
                    ("--purpose", a.purpose.is_some()),
                ],
            )?;
            let (resource_type, resource_id) = match a.resource.as_deref().map(|r| r.split_once(':')) {
                None => (None, None),
                Some(Some((t, id))) => (Some(t.to_owned()), Some(id.to_owned())),
                Some(None) => (a.resource.clone(), None),
            };
            let filters = vec![
                ("actor_id", a.actor.map(|a| a.to_string())),
                ("action", a.action.clone()),
                ("resource_type", resource_type),
                ("resource_id", resource_id),
                ("outcome", a.outcome.clone()),
                ("from", a.from.clone()),
                ("to", a.to.clone()),
                ("include_ip", a.ip.then(|| "true".to_owned())),
            ];
            pages::<AuditLogPage>(ctx, filters, &a.page).await
        }
        Log::PhiAccess => {
            only(
                "PHI access log",
                &[
                    ("--ip", a.ip),
                    ("--resource", a.resource.is_some()),
                    ("--recipient", a.recipient.is_some()),
                    ("--purpose", a.purpose.is_some()),
                ],
            )?;
            let decision = match a.outcome.as_deref() {
                None => None,
                Some(o @ ("permit" | "deny")) => Some(o.to_owned()),
                Some(other) => {
                    return Err(crate::failure::Failure::usage(format!(
                        "--outcome {other}: the PHI access log's outcomes are permit and deny"
                    )))
                }
            };
            let filters = vec![
                ("subject_id", a.subject.map(|s| s.to_string())),
                ("flagged", a.flagged.then(|| "true".to_owned())),
                ("actor", a.actor.map(|a| a.to_string())),
                ("action", a.action.clone()),
                ("decision", decision),
                ("from", a.from.clone()),
                ("to", a.to.clone()),
            ];
            pages::<AccessLogPage>(ctx, filters, &a.page).await
        }
        Log::ConsentDecisions => {
            only(
                "consent decision log",
                &[
                    ("--ip", a.ip),
                    ("--action", a.action.is_some()),
                    ("--resource", a.resource.is_some()),
                    ("--flagged", a.flagged),
                ],
            )?;
            let permitted = match a.outcome.as_deref() {
                None => None,
                Some("permitted") => Some("true".to_owned()),
                Some("refused") => Some("false".to_owned()),
                Some(other) => {
                    return Err(crate::failure::Failure::usage(format!(
                        "--outcome {other}: the decision log's outcomes are permitted and refused"
                    )))
                }
            };
            let filters = vec![
                ("subject_id", a.subject.map(|s| s.to_string())),
                ("actor_id", a.actor.map(|a| a.to_string())),
                ("recipient", a.recipient.clone()),
                ("purpose", a.purpose.clone()),
                ("permitted", permitted),
                ("from", a.from.clone()),
                ("to", a.to.clone()),
            ];
            pages::<DecisionPage>(ctx, filters, &a.page).await
        }
    }
}

async fn verify(ctx: &Context) -> Result<()> {
    let api = ctx.api().await?;
    let bar = progress(ctx.out.format, None, "verifying every trail");
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    let report: TrailsVerification = api.post_long("/compliance/trail-verifications").await?;
    bar.finish_and_clear();
    let mut t = Table::new(vec!["trail", "service", "rows", "checkpoints", "result"]);
    for trail in &report.trails {
        let checkpoints = match trail.latest_checkpoint {
            Some((number, seq)) => {
                let places: Vec<String> =
                    trail.places.iter().map(|p| format!("{} {}", p.place, p.checkpoints)).collect();
                format!("{}, latest #{number} at seq {seq} ({})", trail.checkpoints_verified, places.join(", "))
            }
            None => "none".into(),
        };
        let result = if trail.intact {
            "intact".to_owned()
        } else {
            let mut found: Vec<String> = trail.breaks.iter().map(|b| format!("seq {}: {}", b.seq, b.problem)).collect();
            found.extend(trail.problems.iter().map(|p| p.description.clone()));
            format!(
                "BROKEN{}: {}",
                trail.first_bad_seq.map(|s| format!(" from seq {s}")).unwrap_or_default(),
                found.join("; ")
            )
        };
        t.row(vec![trail.trail.clone(), trail.origin.clone(), trail.rows_checked.to_string(), checkpoints, result]);
    }
    ctx.out.list(&report, &t)?;
    for trail in &report.trails {
        if trail.problems_omitted > 0 {
            ctx.out.note(format!("{}: {} more checkpoint problems (not listed)", trail.trail, trail.problems_omitted));
        }
        for (number, place) in &trail.pending_delivery {
            ctx.out.note(format!(
                "{}: checkpoint #{number} is not delivered to {place} yet (its origin retries)",
                trail.trail
            ));
        }
    }
    if !report.intact {
        let broken: Vec<String> = report
            .trails
            .iter()
            .filter(|t| !t.intact)
            .map(|t| {
                format!("{} (first bad seq {})", t.trail, t.first_bad_seq.map_or("unknown".into(), |s| s.to_string()))
            })
            .collect();
        return Err(crate::failure::Failure::failed(format!(
            "broken: {}: keep the databases as they are and follow runbooks/audit-anchoring.md",
            broken.join(", ")
        )));
    }
    Ok(())
}
