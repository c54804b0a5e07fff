//! `users`: staff roles, granted and revoked by a signed-in admin with a reason. The audit log
//! names the admin as the server proved them, never a name given here.

use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};

use crate::commands::confirm;
use crate::failure::Result;
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

pub async fn run(ctx: &Context, cmd: UsersCommand) -> Result<()> {
    let (grant, args) = match cmd {
        UsersCommand::GrantRole(a) => (true, a),
        UsersCommand::RevokeRole(a) => (false, a),
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
