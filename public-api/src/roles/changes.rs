//! How a role change is made: under the roles lock, checked again, applied and audited in one
//! transaction.

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::queries;
use common::UserRole;

use super::rules::{self, RoleChange, RoleChangeRequest, RoleError};
use crate::audit::{self, AuditEvent, Outcome};
use crate::auth::sessions;
use crate::meta::RequestMeta;

/// Applies a checked change inside `tx` and audits it with `event` (whose action and resource
/// are filled in here). Nothing is written on a dry run or when nothing changes.
async fn apply(
    tx: &mut PgConnection,
    target: Uuid,
    role: UserRole,
    grant: bool,
    dry_run: bool,
    mut event: AuditEvent,
) -> Result<RoleChange, RoleError> {
    let current = queries::roles_for_update(tx, target).await?.ok_or_else(|| RoleError::NoUser(target.to_string()))?;
    let (changed, roles) = rules::after_change(current, role.as_str(), grant);
    let mut sessions_ended = 0;
    if changed && !dry_run {
        queries::set_roles(tx, target, &roles).await?;
        if !grant {
            sessions_ended = sessions::revoke_all(tx, target, "role_revoked").await?;
        }
        event.action = if grant { "user.role_grant" } else { "user.role_revoke" };
        event.resource_type = Some("user");
        event.resource_id = Some(format!("{target}:{role}"));
        audit::record(tx, &event).await?;
    }
    Ok(RoleChange {
        user_id: target,
        role: role.as_str().to_owned(),
        granted: grant,
        changed,
        roles,
        sessions_ended,
        dry_run,
    })
}

/// An admin's change: the admin is the proven actor; nobody changes their own roles.
pub async fn change_role(
    pool: &PgPool,
    admin: Uuid,
    request: &RoleChangeRequest,
    meta: &RequestMeta,
) -> Result<RoleChange, RoleError> {
    let role = rules::staff_role(&request.role)?;
    let reason = rules::checked_reason(&request.reason)?;
    let target = queries::find_user(pool, &request.user).await?;
    if target == admin {
        return Err(RoleError::OwnRoles);
    }
    let mut tx = pool.begin().await?;
    // One role change at a time, everywhere: the acting admin is checked again under the lock
    // (a revocation committed meanwhile counts), and no change may leave the system without a
    // live admin (two admins revoking each other at once).
    queries::lock_roles(&mut tx).await?;
    if !queries::still_admin(&mut tx, admin).await? {
        return Err(RoleError::NotAdmin);
    }
    if role == UserRole::Admin && !request.grant && queries::other_admins(&mut tx, target).await? == 0 {
        return Err(RoleError::LastAdmin);
    }
    let mut event = meta.event(Some(admin), "user.role_grant", None, Outcome::Success);
    event.reason = Some(reason);
    let change = apply(&mut tx, target, role, request.grant, request.dry_run, event).await?;
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
    let reason = rules::checked_reason(reason)?;
    let mut tx = pool.begin().await?;
    queries::lock_roles(&mut tx).await?;
    if queries::any_admin(&mut tx).await? {
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
    let change = apply(&mut tx, target, UserRole::Admin, true, false, event).await?;
    tx.commit().await?;
    Ok(change)
}
