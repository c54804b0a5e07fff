//! Staff roles (caseworker, admin, compliance_officer) change only here, called by
//! `secondwind-admin users grant-role|revoke-role`: the acting admin and the reason are
//! recorded in the audit log in the same transaction. Revoking a role ends the user's sessions,
//! so tokens carrying the old role stop working at once.

use sqlx::PgPool;
use uuid::Uuid;

use crate::audit::{self, AuditEvent, Outcome};
use crate::auth::sessions;

pub const STAFF_ROLES: [&str; 3] = ["caseworker", "admin", "compliance_officer"];

#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    #[error("`{0}` is not a staff role (caseworker, admin, compliance_officer)")]
    UnknownRole(String),
    #[error("no such user: {0}")]
    NoUser(String),
    #[error("the acting user {0} is not an admin")]
    NotAdmin(Uuid),
    #[error("a reason is required")]
    NoReason,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

#[derive(Debug, serde::Serialize)]
pub struct RoleChange {
    pub user_id: Uuid,
    pub role: String,
    pub granted: bool,
    /// False when the user already had (or already lacked) the role.
    pub changed: bool,
    pub roles: Vec<String>,
    pub sessions_ended: u64,
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

pub async fn change_role(
    pool: &PgPool,
    target: Uuid,
    role: &str,
    grant: bool,
    actor: Uuid,
    reason: &str,
    dry_run: bool,
) -> Result<RoleChange, RoleError> {
    if !STAFF_ROLES.contains(&role) {
        return Err(RoleError::UnknownRole(role.to_owned()));
    }
    if reason.trim().is_empty() {
        return Err(RoleError::NoReason);
    }
    let mut tx = pool.begin().await?;
    let actor_is_admin: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1 AND deleted_at IS NULL AND 'admin' = ANY(roles))",
    )
    .bind(actor)
    .fetch_one(&mut *tx)
    .await?;
    if !actor_is_admin {
        return Err(RoleError::NotAdmin(actor));
    }
    let current: Vec<String> =
        sqlx::query_scalar("SELECT roles FROM users WHERE id = $1 AND deleted_at IS NULL FOR UPDATE")
            .bind(target)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| RoleError::NoUser(target.to_string()))?;
    let has = current.iter().any(|r| r == role);
    let changed = has != grant;
    let mut roles = current.clone();
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
            sessions_ended = sessions::revoke_all(&mut tx, target, "role_revoked").await?;
        }
        let event = AuditEvent {
            actor_id: Some(actor),
            action: if grant { "user.role_grant" } else { "user.role_revoke" },
            resource_type: Some("user"),
            resource_id: Some(format!("{target}:{role}")),
            ip: None,
            user_agent: Some("secondwind-admin".into()),
            request_id: Some(format!("cli-{}", Uuid::new_v4())),
            outcome: Outcome::Success,
            reason: Some(reason.trim().to_owned()),
        };
        audit::record(&mut tx, &event).await?;
        tx.commit().await?;
    }
    Ok(RoleChange { user_id: target, role: role.to_owned(), granted: grant, changed, roles, sessions_ended })
}
