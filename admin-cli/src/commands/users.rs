//! `users`: staff roles, granted and revoked by a signed-in admin with a reason. The audit log
//! names the admin as the server proved them, never a name given here.

use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};

use crate::commands::{confirm, query};
use crate::failure::Result;
use crate::output::{when, Table};
use crate::Context;

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Grant a staff role: caseworker, admin or compliance_officer.
    #[command(
        after_help = "Example:\n  secondwind-admin users grant-role sam@example.org caseworker --reason \"joined the Denver team\""
    )]
    GrantRole(RoleArgs),
    /// Revoke a staff role; the user's sessions end at once.
    RevokeRole(RoleArgs),
    /// A user's open sessions: when each began and was last renewed, from which client and
    /// address. Your reading is recorded in the audit log.
    #[command(after_help = "Example:\n  secondwind-admin users sessions sam@example.org")]
    Sessions(SessionsArgs),
    /// End every open session of a user at once (a lost laptop, a leaked token). They must sign
    /// in again.
    #[command(
        after_help = "Example:\n  secondwind-admin users revoke-sessions sam@example.org --reason \"laptop reported stolen\""
    )]
    RevokeSessions(RevokeSessionsArgs),
}

#[derive(Debug, Args)]
pub struct SessionsArgs {
    /// The user: email or id.
    pub user: String,
    /// Start after this many sessions (the `more:` line gives it).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(i64).range(0..))]
    pub offset: i64,
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i64).range(1..=100))]
    pub limit: i64,
}

#[derive(Debug, Args)]
pub struct RevokeSessionsArgs {
    /// The user: email or id.
    pub user: String,
    /// Why; kept in the audit log. Required.
    #[arg(long)]
    pub reason: String,
    /// Do not ask first.
    #[arg(long)]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct RoleArgs {
    /// The user: email or id.
    pub user: String,
    /// caseworker, admin or compliance_officer.
    pub role: String,
    /// Why; kept in the audit log. Required.
    #[arg(long)]
    pub reason: String,
    /// Show what would change; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask before revoking.
    #[arg(long)]
    pub yes: bool,
}

#[derive(Serialize)]
struct RoleChangeRequest<'a> {
    user: &'a str,
    role: &'a str,
    grant: bool,
    reason: &'a str,
    dry_run: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct RoleChange {
    user_id: uuid::Uuid,
    role: String,
    granted: bool,
    changed: bool,
    roles: Vec<String>,
    sessions_ended: u64,
    dry_run: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct Session {
    id: uuid::Uuid,
    #[serde(with = "time::serde::rfc3339")]
    created_at: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    last_used_at: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: time::OffsetDateTime,
    user_agent: Option<String>,
    ip: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct SessionPage {
    user_id: uuid::Uuid,
    sessions: Vec<Session>,
    next_offset: Option<i64>,
}

#[derive(Serialize)]
struct SessionRevocationRequest<'a> {
    user: &'a str,
    reason: &'a str,
}

#[derive(Debug, Serialize, Deserialize)]
struct SessionRevocation {
    user_id: uuid::Uuid,
    sessions_ended: u64,
}

pub async fn run(ctx: &Context, cmd: UsersCommand) -> Result<()> {
    let (grant, args) = match cmd {
        UsersCommand::GrantRole(a) => (true, a),
        UsersCommand::RevokeRole(a) => (false, a),
        UsersCommand::Sessions(a) => return sessions(ctx, a).await,
        UsersCommand::RevokeSessions(a) => return revoke_sessions(ctx, a).await,
    };
    if !grant && !args.dry_run {
        confirm(&format!("revoke {} from {} and end their sessions?", args.role, args.user), args.yes)?;
    }
    let api = ctx.api().await?;
    let request =
        RoleChangeRequest { user: &args.user, role: &args.role, grant, reason: &args.reason, dry_run: args.dry_run };
    let change: RoleChange = api.post("/staff/role-changes", &request).await?;
    ctx.out.one(&change, || {
        let verb = if grant { "granted" } else { "revoked" };
        let roles = if change.roles.is_empty() { "none".to_owned() } else { change.roles.join(", ") };
        if change.dry_run {
            format!("dry run: {} would have {} {verb}; roles would be [{roles}]", args.user, change.role)
        } else if change.changed {
            format!(
                "{verb} {} for {}; roles now [{roles}]; {} sessions ended",
                change.role, args.user, change.sessions_ended
            )
        } else {
            format!("no change: {} already {verb} for {}", change.role, args.user)
        }
    })
}

async fn sessions(ctx: &Context, args: SessionsArgs) -> Result<()> {
    let api = ctx.api().await?;
    let q = query(&[
        ("user", Some(args.user.clone())),
        ("limit", Some(args.limit.to_string())),
        ("offset", Some(args.offset.to_string())),
    ]);
    let page: SessionPage = api.get(&format!("/staff/user-sessions{q}")).await?;
    let mut t = Table::new(vec!["session", "began", "last renewed", "expires", "client", "address"]);
    for s in &page.sessions {
        t.row(vec![
            s.id.to_string(),
            when(s.created_at),
            when(s.last_used_at),
            when(s.expires_at),
            s.user_agent.clone().unwrap_or_default(),
            s.ip.clone().unwrap_or_default(),
        ]);
    }
    ctx.out.note("this reading of the user's sessions is recorded in the audit log");
    ctx.out.list(&page, &t)?;
    if let Some(n) = page.next_offset {
        ctx.out.note(format!("more: add --offset {n}"));
    }
    Ok(())
}

async fn revoke_sessions(ctx: &Context, args: RevokeSessionsArgs) -> Result<()> {
    confirm(&format!("end every open session of {}? They must sign in again", args.user), args.yes)?;
    let api = ctx.api().await?;
    let done: SessionRevocation = api
        .post("/staff/session-revocations", &SessionRevocationRequest { user: &args.user, reason: &args.reason })
        .await?;
    ctx.out.one(&done, || format!("{} open sessions of {} ended", done.sessions_ended, args.user))
}
