//! `disclosures report`: a patient's accounting of disclosures (42 CFR §2.24, HIPAA §164.528),
//! every page of it, as a table, CSV or JSON.

use clap::{Args, Subcommand};
use uuid::Uuid;
use wire::compliance::AccountingPage;

use crate::commands::query;
use crate::failure::{Failure, Result};
use crate::output::{when, Table};
use crate::pdf::Line;
use crate::Context;

#[derive(Debug, Subcommand)]
pub enum DisclosuresCommand {
    /// The accounting of disclosures for one beneficiary: who received their records, when,
    /// what, why, and under which consent. Six years back unless --since.
    #[command(
        after_help = "Examples:\n  secondwind-admin disclosures report --subject 6f1c… --since 2026-01-01 --csv > accounting.csv\n  \
                      secondwind-admin disclosures report --subject 6f1c… --pdf accounting.pdf"
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
    /// Also write it as a PDF the patient can be handed (readable only by you: mode 0600).
    #[arg(long, value_name = "FILE")]
    pub pdf: Option<std::path::PathBuf>,
    /// With --pdf: replace the file if it exists.
    #[arg(long, requires = "pdf")]
    pub force: bool,
}

/// The accounting as a document for the patient.
fn document(report: &AccountingPage) -> Vec<Line> {
    let mut lines = vec![
        Line::Title("Accounting of Disclosures".into()),
        Line::Blank,
        Line::Text(format!("SecondWind account: {}", report.subject_id)),
        Line::Text(format!("Period: {} to {}", report.from, report.to)),
        Line::Text(format!("Prepared: {}", when(time::OffsetDateTime::now_utc()))),
        Line::Blank,
        Line::Text(
            "This lists every time records about you that are protected by 42 CFR Part 2 were disclosed \
             outside the SecondWind program in this period: when, to whom, which records, why, and under \
             which of your consents (or, in a medical emergency, the nature of the emergency). You have \
             the right to this accounting under 42 CFR \u{a7}2.24 and HIPAA \u{a7}164.528."
                .into(),
        ),
        Line::Blank,
    ];
    if report.disclosures.is_empty() {
        lines.push(Line::Heading("No disclosures were made in this period.".into()));
    }
    for (n, d) in report.disclosures.iter().enumerate() {
        lines.push(Line::Heading(format!("{}. {} \u{2014} to {}", n + 1, when(d.disclosed_at), d.recipient)));
        lines.push(Line::Indented(format!("Records: {}", d.categories.join(", "))));
        lines.push(Line::Indented(format!("Purpose: {}", d.purpose)));
        let basis = match (&d.consent_id, &d.emergency) {
            (Some(c), _) => format!("Your consent {c}"),
            (None, Some(nature)) => format!("Medical emergency: {nature}"),
            (None, None) => d.kind.clone(),
        };
        lines.push(Line::Indented(format!("Basis: {basis}")));
        lines.push(Line::Indented(format!("Notice sent with the records: version {}", d.notice_version)));
        lines.push(Line::Blank);
    }
    lines
}

/// Writes `bytes` to `path`, readable only by its owner: first to a new private file beside it,
/// then put in place whole (a link that refuses an existing name, or with `force` a rename that
/// replaces it, a symbolic link included, without following it). Nothing half-written stays.
fn write_private(path: &std::path::Path, bytes: &[u8], force: bool) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let fail = |e: std::io::Error| Failure::failed(format!("writing {}: {e}", path.display()));
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    let name = path.file_name().ok_or_else(|| Failure::usage(format!("--pdf {}: not a file name", path.display())))?;
    let partial = dir.join(format!(".{}.{}.partial", name.to_string_lossy(), uuid::Uuid::new_v4().simple()));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&partial)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        if force {
            std::fs::rename(&partial, path)
        } else {
            std::fs::hard_link(&partial, path).and_then(|()| std::fs::remove_file(&partial))
        }
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&partial);
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            return Err(Failure::usage(format!("{} exists: choose another name, or add --force", path.display())));
        }
        return Err(fail(e));
    }
    Ok(())
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
    if let Some(path) = &args.pdf {
        let bytes = crate::pdf::render(&document(&report), "SecondWind \u{2014} accounting of disclosures");
        write_private(path, &bytes, args.force)?;
        ctx.out.note(format!(
            "written to {} (keep it private: it names who received this person's records)",
            path.display()
        ));
    }
    ctx.out.list(&report, &t)
}
