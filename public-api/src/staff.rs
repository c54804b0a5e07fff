//! Staff roles (caseworker, admin, compliance_officer) change in two ways only:
//! - a signed-in admin through `POST /api/v1/staff/role-changes` (`secondwind-admin users
//!   grant-role|revoke-role`): the audit row names the proven admin, never a claimed one;
//! - the first admin of a fresh installation, by `secondwind-operator users bootstrap-admin`,
//!   refused once any admin exists: the audit row names the operating-system account.
//!
//! The reason is required and recorded in the same transaction as the change. Revoking a role
//! ends the user's sessions, so tokens carrying the old role stop working at once.

use rocket::serde::json::Json;
use rocket::{get, post, routes, Route, State};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use common::json::Body;
use common::ApiError;

use crate::audit::{self, AuditEvent, Outcome};
use crate::auth::sessions::{self, SessionView};
use crate::auth::Admin;
use crate::meta::RequestMeta;

pub const STAFF_ROLES: [&str; 3] = ["caseworker", "admin", "compliance_officer"];
/// Serialises every role change and the first-admin bootstrap.
const ROLES_LOCK: i64 = 0x5357_4144_4d49_4e01;
const MAX_REASON: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    #[error("`{0}` is not a staff role (caseworker, admin, compliance_officer)")]
    UnknownRole(String),
    #[error("no such user: {0}")]
    NoUser(String),
    #[error("nobody changes their own roles: ask another admin")]
    OwnRoles,
    #[error("an admin already exists: grant roles as a signed-in admin (secondwind-admin users grant-role)")]
    AdminExists,
    #[error("the acting user is no longer an admin")]
    NotAdmin,
    #[error("that would leave no admin")]
    LastAdmin,
    #[error("a reason is required (at most {MAX_REASON} characters)")]
    BadReason,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl From<RoleError> for ApiError {
    fn from(e: RoleError) -> Self {
        match e {
            RoleError::UnknownRole(_) | RoleError::BadReason => ApiError::Unprocessable(e.to_string()),
            RoleError::NoUser(_) => ApiError::NotFound,
            RoleError::OwnRoles | RoleError::AdminExists | RoleError::NotAdmin => ApiError::Forbidden,
            RoleError::LastAdmin => ApiError::Conflict(e.to_string()),
            RoleError::Database(e) => e.into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RoleChange {
    pub user_id: Uuid,
    pub role: String,
    pub granted: bool,
    /// False when the user already had (or already lacked) the role. On a dry run: whether it
    /// would change.
    pub changed: bool,
    /// The user's staff roles after the change (as they would be, on a dry run).
    pub roles: Vec<String>,
    pub sessions_ended: u64,
    pub dry_run: bool,
}

/// A role change asked for by an admin.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleChangeRequest {
    /// The user: id or email.
    pub user: String,
    /// `caseworker`, `admin` or `compliance_officer`.
    pub role: String,
    /// True to grant, false to revoke.
    pub grant: bool,
    /// Why; kept in the audit log. Required.
    pub reason: String,
    /// Report what would change and change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// Finds a live user by id or email.
pub async fn find_user(pool: &PgPool, who: &str) -> Result<Uuid, RoleError> {
    let found: Option<Uuid> = match Uuid::parse_str(who) {
        Ok(id) => {
            sqlx::query_scalar("SELECT id FROM users WHERE id = $1 AND deleted_at IS NULL")
                .bind(id)
                .fetch_optional(pool)
                .await?
        }
        Err(_) => {
            sqlx::query_scalar("SELECT id FROM users WHERE lower(email) = lower($1) AND deleted_at IS NULL")
                .bind(who)
                .fetch_optional(pool)
                .await?
        }
    };
    found.ok_or_else(|| RoleError::NoUser(who.to_owned()))
}

fn checked_reason(reason: &str) -> Result<String, RoleError> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > MAX_REASON {
        return Err(RoleError::BadReason);
    }
    Ok(reason.to_owned())
}

/// Applies a checked change inside `tx` and audits it with `event` (whose action and resource
/// are filled in here). Nothing is written on a dry run or when nothing changes.
async fn apply(
    tx: &mut PgConnection,
    target: Uuid,
    role: &str,
    grant: bool,
    dry_run: bool,
    mut event: AuditEvent,
) -> Result<RoleChange, RoleError> {
    let current: Vec<String> =
        sqlx::query_scalar("SELECT roles FROM users WHERE id = $1 AND deleted_at IS NULL FOR UPDATE")
            .bind(target)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| RoleError::NoUser(target.to_string()))?;
    let has = current.iter().any(|r| r == role);
    let changed = has != grant;
    let mut roles = current;
    if grant && !has {
        roles.push(role.to_owned());
    } else if !grant {
        roles.retain(|r| r != role);
    }
    let mut sessions_ended = 0;
    if changed && !dry_run {
        sqlx::query("UPDATE users SET roles = $2, updated_at = now() WHERE id = $1")
            .bind(target)
            .bind(&roles)
            .execute(&mut *tx)
            .await?;
        if !grant {
            sessions_ended = sessions::revoke_all(tx, target, "role_revoked").await?;
        }
        event.action = if grant { "user.role_grant" } else { "user.role_revoke" };
        event.resource_type = Some("user");
        event.resource_id = Some(format!("{target}:{role}"));
        audit::record(tx, &event).await?;
    }
    Ok(RoleChange { user_id: target, role: role.to_owned(), granted: grant, changed, roles, sessions_ended, dry_run })
}

/// Whether `user` is a live admin, read in the caller's transaction (under the roles lock).
async fn still_admin(tx: &mut PgConnection, user: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1 AND deleted_at IS NULL AND 'admin' = ANY(roles))",
    )
    .bind(user)
    .fetch_one(&mut *tx)
    .await
}

/// An admin's change: the admin is the proven actor; nobody changes their own roles.
pub async fn change_role(
    pool: &PgPool,
    admin: Uuid,
    request: &RoleChangeRequest,
    meta: &RequestMeta,
) -> Result<RoleChange, RoleError> {
    if !STAFF_ROLES.contains(&request.role.as_str()) {
        return Err(RoleError::UnknownRole(request.role.clone()));
    }
    let reason = checked_reason(&request.reason)?;
    let target = find_user(pool, &request.user).await?;
    if target == admin {
        return Err(RoleError::OwnRoles);
    }
    let mut tx = pool.begin().await?;
    // One role change at a time, everywhere: the acting admin is checked again under the lock
    // (a revocation committed meanwhile counts), and no change may leave the system without a
    // live admin (two admins revoking each other at once).
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(ROLES_LOCK).execute(&mut *tx).await?;
    if !still_admin(&mut tx, admin).await? {
        return Err(RoleError::NotAdmin);
    }
    if request.role == "admin" && !request.grant {
        let others: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM users WHERE id <> $1 AND deleted_at IS NULL AND 'admin' = ANY(roles)",
        )
        .bind(target)
        .fetch_one(&mut *tx)
        .await?;
        if others == 0 {
            return Err(RoleError::LastAdmin);
        }
    }
    let mut event = meta.event(Some(admin), "user.role_grant", None, Outcome::Success);
    event.reason = Some(reason);
    let change = apply(&mut tx, target, &request.role, request.grant, request.dry_run, event).await?;
    tx.commit().await?;
    Ok(change)
}

/// The first admin, made by the operator command: refused once any admin exists. Serialised
/// with every other role change by a transaction-scoped advisory lock.
pub async fn bootstrap_admin(
    pool: &PgPool,
    target: Uuid,
    operator: &str,
    reason: &str,
) -> Result<RoleChange, RoleError> {
    const BOOTSTRAP_LOCK: i64 = 0x5357_4144_4d49_4e01;
    let reason = checked_reason(reason)?;
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(BOOTSTRAP_LOCK).execute(&mut *tx).await?;
    let any_admin: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE deleted_at IS NULL AND 'admin' = ANY(roles))")
            .fetch_one(&mut *tx)
            .await?;
    if any_admin {
        return Err(RoleError::AdminExists);
    }
    let event = AuditEvent {
        actor_id: None,
        action: "user.role_grant",
        resource_type: None,
        resource_id: None,
        ip: None,
        user_agent: Some("secondwind-operator".into()),
        request_id: Some(format!("operator-{}", Uuid::new_v4())),
        outcome: Outcome::Success,
        reason: Some(reason),
        operator: Some(operator.to_owned()),
    };
    let change = apply(&mut tx, target, "admin", true, false, event).await?;
    tx.commit().await?;
    Ok(change)
}

/// Grants or revokes a staff role. The acting admin is the signed-in user.
#[utoipa::path(post, path = "/api/v1/staff/role-changes", tag = "staff", security(("bearer" = [])),
    request_body = RoleChangeRequest,
    responses(
        (status = 200, description = "Done (or, on a dry run, what would be done)", body = RoleChange),
        (status = 400, description = "Malformed JSON", body = common::ErrorBody),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not an admin, or the admin's own roles", body = common::ErrorBody),
        (status = 404, description = "No such user", body = common::ErrorBody),
        (status = 409, description = "It would leave no admin", body = common::ErrorBody),
        (status = 422, description = "Not a staff role, or no reason", body = common::ErrorBody),
    ))]
#[post("/staff/role-changes", data = "<body>")]
pub async fn role_change(
    admin: Admin,
    body: Body<RoleChangeRequest>,
    meta: RequestMeta,
    pool: &State<PgPool>,
) -> Result<Json<RoleChange>, ApiError> {
    match change_role(pool, admin.user_id(), &body.0, &meta).await {
        Ok(change) => Ok(Json(change)),
        Err(e) => {
            // A refused attempt on roles is itself worth an audit row (not a malformed one).
            if matches!(e, RoleError::OwnRoles | RoleError::NotAdmin | RoleError::LastAdmin) {
                let mut event = meta.event(Some(admin.user_id()), "user.role_change", None, Outcome::Denied);
                event.reason = Some(e.to_string());
                audit::record_alone(pool, &event).await?;
            }
            Err(e.into())
        }
    }
}

/// A page of another user's open sessions, as an admin sees them.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserSessionPage {
    pub user_id: Uuid,
    pub sessions: Vec<SessionView>,
    /// Pass as `offset` for the next page; absent on the last page.
    pub next_offset: Option<i64>,
}

/// A user's open sessions (when they began and were last renewed, from which client and
/// address), for an admin answering "is this account in use, and from where?". Each read is
/// audited as `user.sessions_read` naming the admin and the user.
#[utoipa::path(get, path = "/api/v1/staff/user-sessions", tag = "staff", security(("bearer" = [])),
    params(
        ("user" = String, Query, description = "The user: id or email"),
        ("limit" = Option<i64>, Query, description = "1 to 100, default 20"),
        ("offset" = Option<i64>, Query, description = "Default 0"),
    ),
    responses(
        (status = 200, description = "A page of the user's open sessions, newest first", body = UserSessionPage),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not an admin", body = common::ErrorBody),
        (status = 404, description = "No such user", body = common::ErrorBody),
        (status = 422, description = "No user, or a bad limit or offset", body = common::ErrorBody),
    ))]
#[get("/staff/user-sessions?<user>&<limit>&<offset>")]
pub async fn user_sessions(
    admin: Admin,
    user: Option<&str>,
    limit: Option<&str>,
    offset: Option<&str>,
    meta: RequestMeta,
    pool: &State<PgPool>,
) -> Result<Json<UserSessionPage>, ApiError> {
    let who = user
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .ok_or_else(|| ApiError::Unprocessable("`user` is required: an id or an email".into()))?;
    let (limit, offset) = sessions::page_params(limit, offset)?;
    let target = find_user(pool, who).await?;
    // The read is recorded before anything is shown: no audit row, no answer.
    audit::record_alone(
        pool,
        &meta.event(Some(admin.user_id()), "user.sessions_read", Some(("user", target.to_string())), Outcome::Success),
    )
    .await?;
    // `Uuid::nil()`: none of these is the admin's own current session.
    let (sessions, next_offset) = sessions::open_page(pool, target, Uuid::nil(), limit, offset).await?;
    Ok(Json(UserSessionPage { user_id: target, sessions, next_offset }))
}

/// An admin's request to end every open session of a user.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionRevocationRequest {
    /// The user: id or email.
    pub user: String,
    /// Why; kept in the audit log. Required.
    pub reason: String,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SessionRevocation {
    pub user_id: Uuid,
    /// How many open sessions ended (0 when there were none).
    pub sessions_ended: u64,
}

/// Ends every open session of a user at once (a lost laptop, a leaked token): their access
/// tokens stop working on the next request and their refresh tokens are spent. Audited as
/// `user.sessions_revoke` with the reason, in the same transaction.
#[utoipa::path(post, path = "/api/v1/staff/session-revocations", tag = "staff", security(("bearer" = [])),
    request_body = SessionRevocationRequest,
    responses(
        (status = 200, description = "The user's sessions ended", body = SessionRevocation),
        (status = 400, description = "Malformed JSON", body = common::ErrorBody),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not an admin", body = common::ErrorBody),
        (status = 404, description = "No such user", body = common::ErrorBody),
        (status = 422, description = "No reason", body = common::ErrorBody),
    ))]
#[post("/staff/session-revocations", data = "<body>")]
pub async fn revoke_sessions(
    admin: Admin,
    body: Body<SessionRevocationRequest>,
    meta: RequestMeta,
    pool: &State<PgPool>,
) -> Result<Json<SessionRevocation>, ApiError> {
    let reason = checked_reason(&body.0.reason)?;
    let target = find_user(pool, body.0.user.trim()).await?;
    let mut tx = pool.begin().await?;
    // As for role changes: the acting admin is checked again under the roles lock, so an admin
    // whose role was revoked a moment ago acts no more.
    sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(ROLES_LOCK).execute(&mut *tx).await?;
    if !still_admin(&mut tx, admin.user_id()).await? {
        return Err(RoleError::NotAdmin.into());
    }
    let sessions_ended = sessions::revoke_all(&mut tx, target, "revoked_by_admin").await?;
    let mut event =
        meta.event(Some(admin.user_id()), "user.sessions_revoke", Some(("user", target.to_string())), Outcome::Success);
    event.reason = Some(reason);
    audit::record(&mut tx, &event).await?;
    tx.commit().await?;
    Ok(Json(SessionRevocation { user_id: target, sessions_ended }))
}

pub fn routes() -> Vec<Route> {
    routes![role_change, user_sessions, revoke_sessions]
}
