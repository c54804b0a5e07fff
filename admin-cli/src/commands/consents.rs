//! `consents`: a beneficiary's consents (42 CFR §2.31) as a compliance officer reads them: what
//! each allows, to whom, for what, until when, and its state now. Each reading is recorded in the
//! audit log under the officer.

use clap::{Args, Subcommand, ValueEnum};
use uuid::Uuid;
use wire::consents::{ConsentPage, ConsentView, SubjectConsent};

use crate::commands::query;
use crate::failure::Result;
use crate::output::{when, Table};
use crate::Context;

#[derive(Debug, Subcommand)]
pub enum ConsentsCommand {
    /// A beneficiary's consents, oldest first, with their state.
    #[command(after_help = "Example:\n  secondwind-admin consents list --subject 6f1c… --state signed")]
    List(ListArgs),
    /// One consent: its terms, signature, state and the full text of the form signed.
    #[command(after_help = "Example:\n  secondwind-admin consents show 0b7e…")]
    Show(ShowArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum State {
    Signed,
    Revoked,
    Expired,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// The beneficiary (their user id).
    #[arg(long)]
    pub subject: Uuid,
    /// Only consents in this state.
    #[arg(long, value_enum)]
    pub state: Option<State>,
    /// Continue after this position (printed at the end of the previous page).
    #[arg(long)]
    pub after: Option<i64>,
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i64).range(1..=100))]
    pub limit: i64,
    /// Every page.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The consent's id.
    pub id: Uuid,
}

fn until(c: &ConsentView) -> String {
    match (&c.expires_at, &c.expiry_event) {
        (Some(at), Some(event)) => format!("{} or {event}", when(*at)),
        (Some(at), None) => when(*at),
        (None, Some(event)) => event.clone(),
        (None, None) => String::new(),
    }
}

pub async fn run(ctx: &Context, cmd: ConsentsCommand) -> Result<()> {
    let api = ctx.api().await?;
    let logged = || ctx.out.note("this reading of consents is recorded in the audit log");
    match cmd {
        ConsentsCommand::List(args) => {
            let state = args.state.map(|s| match s {
                State::Signed => "signed",
                State::Revoked => "revoked",
                State::Expired => "expired",
            });
            let mut after = args.after;
            let mut consents = Vec::new();
            let next = loop {
                let q = query(&[
                    ("state", state.map(str::to_owned)),
                    ("after", after.map(|a| a.to_string())),
                    ("limit", Some(args.limit.to_string())),
                ]);
                let page: ConsentPage =
                    api.get(&format!("/compliance/beneficiaries/{}/consents{q}", args.subject)).await?;
                consents.extend(page.consents);
                match crate::api::next_page(after, page.next_after)? {
                    Some(n) if args.all => after = Some(n),
                    other => break other,
                }
            };
            logged();
            let page = ConsentPage { consents, next_after: next };
            let mut t =
                Table::new(vec!["id", "state", "signed", "form", "recipient", "purpose", "categories", "until"]);
            for c in &page.consents {
                t.row(vec![
                    c.id.to_string(),
                    c.state.clone(),
                    when(c.signature.signed_at),
                    c.form_version.clone(),
                    c.recipient.name.clone(),
                    c.purpose.clone(),
                    c.categories.join(" "),
                    until(c),
                ]);
            }
            ctx.out.list(&page, &t)?;
            if let Some(n) = next {
                ctx.out.note(format!("more: add --after {n} (or --all)"));
            }
            Ok(())
        }
        ConsentsCommand::Show(args) => {
            let found: SubjectConsent = api.get(&format!("/compliance/consents/{}", args.id)).await?;
            logged();
            ctx.out.one(&found, || {
                let c = &found.detail.consent;
                let mut lines = vec![
                    format!("consent {} ({})", c.id, c.state),
                    format!("beneficiary: {}", found.subject_id),
                    format!("form: {} {}", c.form_version, c.form_title.clone().unwrap_or_default()),
                    format!("discloser: {}", c.discloser),
                    format!("recipient: {} ({})", c.recipient.name, c.recipient.kind),
                    format!("purpose: {}", c.purpose),
                    format!("categories: {}", c.categories.join(", ")),
                    format!("until: {}", Some(until(c)).filter(|u| !u.is_empty()).unwrap_or_else(|| "-".into())),
                    format!(
                        "signed: {} by \"{}\" from {}",
                        when(c.signature.signed_at),
                        c.signature.typed_name,
                        c.signature.signed_from.clone().unwrap_or_else(|| "-".into())
                    ),
                    format!("terms sha256: {}", c.terms_sha256),
                ];
                if let Some(at) = c.revoked_at {
                    lines.push(format!("revoked: {}", when(at)));
                }
                lines.push(String::new());
                lines.push("form text:".into());
                lines.push(found.detail.form_text.clone());
                lines.join("\n")
            })
        }
    }
}
