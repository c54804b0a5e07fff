//! `disclosures report`: a patient's accounting of disclosures (42 CFR §2.24, HIPAA §164.528),
//! every page of it, as a table, CSV or JSON.

use clap::{Args, Subcommand};
use common::compliance::AccountingPage;
use uuid::Uuid;

use crate::commands::query;
use crate::failure::Result;
use crate::output::{when, Table};
use crate::Context;

#[derive(Debug, Subcommand)]
pub enum DisclosuresCommand {
    /// The accounting of disclosures for one beneficiary: who received their records, when,
    /// what, why, and under which consent. Six years back unless --since.
    #[command(
        after_help = "Example:\n  secondwind-admin disclosures report --subject 6f1c… --since 2026-01-01 --csv > accounting.csv"
    )]
    Report(ReportArgs),
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The beneficiary's user id.
    #[arg(long)]
    pub subject: Uuid,
    /// First day included (YYYY-MM-DD).
    #[arg(long)]
    pub since: Option<String>,
    /// Last day included (YYYY-MM-DD); today when absent.
    #[arg(long)]
    pub until: Option<String>,
}

pub async fn run(ctx: &Context, cmd: DisclosuresCommand) -> Result<()> {
    let DisclosuresCommand::Report(args) = cmd;
    let api = ctx.api().await?;
    let mut after: Option<i64> = None;
    let mut report: Option<AccountingPage> = None;
    loop {
        let q = query(&[
            ("from", args.since.clone()),
            ("to", args.until.clone()),
            ("after", after.map(|a| a.to_string())),
            ("limit", Some("100".to_owned())),
        ]);
        let page: AccountingPage =
            api.get(&format!("/compliance/beneficiaries/{}/disclosures{q}", args.subject)).await?;
        let next = crate::api::next_page(after, page.next_after)?;
        match report.as_mut() {
            None => report = Some(page),
            Some(r) => r.disclosures.extend(page.disclosures),
        }
        match next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    let Some(mut report) = report else { return Ok(()) };
    report.next_after = None;
    let mut t = Table::new(vec!["disclosed", "recipient", "records", "purpose", "basis", "notice"]);
    for d in &report.disclosures {
        let basis = match (&d.consent_id, &d.emergency) {
            (Some(c), _) => format!("consent {c}"),
            (None, Some(nature)) => format!("medical emergency: {nature}"),
            (None, None) => d.kind.clone(),
        };
        t.row(vec![
            when(d.disclosed_at),
            d.recipient.clone(),
            d.categories.join(", "),
            d.purpose.clone(),
            basis,
            d.notice_version.clone(),
        ]);
    }
    if ctx.out.format == crate::output::Format::Table {
        ctx.out.note(format!(
            "Accounting of disclosures for {}, {} to {}: {} disclosure(s).",
            report.subject_id,
            report.from,
            report.to,
            report.disclosures.len()
        ));
    }
    ctx.out.list(&report, &t)
}
