//! The roles' SQL: finding a user, the roles lock, and reading and writing `users.roles`.

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::rules::RoleError;

/// Serialises every role change, the first-admin bootstrap and an admin's ending of sessions.
const ROLES_LOCK: i64 = 0x5357_4144_4d49_4e01;

/// Finds a live user by id or email.
pub async fn find_user(pool: &PgPool, who: &str) -> Result<Uuid, RoleError> {
    let found: Option<Uuid> = match Uuid::parse_str(who) {
        Ok(id) => {
            sqlx::query_scalar!("SELECT id FROM users WHERE id = $1 AND deleted_at IS NULL", id)
                .fetch_optional(pool)
                .await?
        }
        Err(_) => {
            sqlx::query_scalar!("SELECT id FROM users WHERE lower(email) = lower($1) AND deleted_at IS NULL", who)
                .fetch_optional(pool)
                .await?
        }
    };
    found.ok_or_else(|| RoleError::NoUser(who.to_owned()))
}

/// Takes the roles lock until the caller's transaction ends.
pub async fn lock_roles(tx: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query!("SELECT pg_advisory_xact_lock($1)", ROLES_LOCK).execute(&mut *tx).await?;
    Ok(())
}

/// Whether `user` is a live admin, read in the caller's transaction (under the roles lock).
pub async fn still_admin(tx: &mut PgConnection, user: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM users WHERE id = $1 AND deleted_at IS NULL AND 'admin' = ANY(roles)) AS "exists!""#,
        user
    )
    .fetch_one(&mut *tx)
    .await
}

/// How many live admins there are besides `user`.
pub async fn other_admins(tx: &mut PgConnection, user: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM users WHERE id <> $1 AND deleted_at IS NULL AND 'admin' = ANY(roles)"#,
        user
    )
    .fetch_one(&mut *tx)
    .await
}

/// Whether any live admin exists.
pub async fn any_admin(tx: &mut PgConnection) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM users WHERE deleted_at IS NULL AND 'admin' = ANY(roles)) AS "exists!""#
    )
    .fetch_one(&mut *tx)
    .await
}

/// A live user's roles, locked until the caller's transaction ends; `None` if no such user.
pub async fn roles_for_update(tx: &mut PgConnection, user: Uuid) -> Result<Option<Vec<String>>, sqlx::Error> {
    sqlx::query_scalar!("SELECT roles FROM users WHERE id = $1 AND deleted_at IS NULL FOR UPDATE", user)
        .fetch_optional(&mut *tx)
        .await
}

/// Replaces a user's roles.
pub async fn set_roles(tx: &mut PgConnection, user: Uuid, roles: &[String]) -> Result<(), sqlx::Error> {
    sqlx::query!("UPDATE users SET roles = $2, updated_at = now() WHERE id = $1", user, roles)
        .execute(&mut *tx)
        .await?;
    Ok(())
}
