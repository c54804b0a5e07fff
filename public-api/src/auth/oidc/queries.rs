//! The sign-in flows' SQL, checked against the schema at build time (`.sqlx/`): the single-use
//! attempts of the web flow (`oidc_logins`) and the device flow (`oidc_device_logins`), and the
//! identities that lead to accounts. Account types are written as text and cast in SQL.

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::provider::Started;

/// Stores a started web sign-in, usable for `ttl_secs` by the browser whose pre-sign-in cookie
/// hashes to `browser_hash`.
pub(super) async fn add_attempt(
    pool: &PgPool,
    provider: &str,
    started: &Started,
    user_type: Option<&str>,
    browser_hash: &[u8],
    ttl_secs: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO oidc_logins (state, provider, nonce, pkce_verifier, user_type, browser_hash, expires_at) \
         VALUES ($1, $2, $3, $4, $5::text::user_type, $6, now() + make_interval(secs => $7))",
        started.state,
        provider,
        started.nonce,
        started.pkce_verifier,
        user_type,
        browser_hash,
        ttl_secs as f64,
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// What a web sign-in attempt remembered. No `Debug`: the nonce and the verifier are secrets.
#[derive(sqlx::FromRow)]
pub(super) struct Attempt {
    pub nonce: String,
    pub pkce_verifier: String,
    /// The account type chosen for a sign-up.
    pub user_type: Option<String>,
}

/// Consumes the attempt of `state`, unless it is unknown, expired, used already or was started
/// by another browser (its binding is not `browser_hash`). Another browser's attempt is left
/// as it was.
pub(super) async fn consume_attempt(
    pool: &PgPool,
    state: &str,
    provider: &str,
    browser_hash: &[u8],
) -> Result<Option<Attempt>, sqlx::Error> {
    sqlx::query_as!(
        Attempt,
        "UPDATE oidc_logins SET consumed_at = now() WHERE state = $1 AND provider = $2 AND consumed_at IS NULL \
         AND expires_at > now() AND browser_hash = $3 RETURNING nonce, pkce_verifier, user_type::text AS user_type",
        state,
        provider,
        browser_hash,
    )
    .fetch_optional(pool)
    .await
}

/// The open account an identity leads to.
pub(super) async fn linked_account(
    tx: &mut PgConnection,
    provider: &str,
    subject: &str,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT i.user_id FROM identities i JOIN users u ON u.id = i.user_id \
         WHERE i.provider = $1 AND i.subject = $2 AND u.deleted_at IS NULL",
        provider,
        subject,
    )
    .fetch_optional(&mut *tx)
    .await
}

/// Whether an open account has this email (in any case).
pub(super) async fn email_taken(tx: &mut PgConnection, email: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM users WHERE lower(email) = lower($1) AND deleted_at IS NULL) AS "taken!""#,
        email,
    )
    .fetch_one(&mut *tx)
    .await
}

/// A new account. Breaks `users_email_live` when an open account has the email.
pub(super) async fn add_user(
    tx: &mut PgConnection,
    id: Uuid,
    user_type: &str,
    email: &str,
    display_name: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO users (id, user_type, email, display_name) VALUES ($1, $2::text::user_type, $3, $4)",
        id,
        user_type,
        email,
        display_name,
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The account an identity leads to, open or closed, locked with the identity.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct Link {
    pub user_id: Uuid,
    /// The account is closed.
    pub closed: bool,
}

pub(super) async fn lock_link(
    tx: &mut PgConnection,
    provider: &str,
    subject: &str,
) -> Result<Option<Link>, sqlx::Error> {
    sqlx::query_as!(
        Link,
        r#"SELECT i.user_id, u.deleted_at IS NOT NULL AS "closed!" FROM identities i JOIN users u ON u.id = i.user_id
           WHERE i.provider = $1 AND i.subject = $2 FOR UPDATE"#,
        provider,
        subject,
    )
    .fetch_optional(&mut *tx)
    .await
}

/// Moves an identity to another account.
pub(super) async fn move_link(
    tx: &mut PgConnection,
    provider: &str,
    subject: &str,
    to: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query!("UPDATE identities SET user_id = $3 WHERE provider = $1 AND subject = $2", provider, subject, to)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Links an identity to an account. Breaks `identities_pkey` when it is linked already.
pub(super) async fn add_link(
    tx: &mut PgConnection,
    provider: &str,
    subject: &str,
    to: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query!("INSERT INTO identities (provider, subject, user_id) VALUES ($1, $2, $3)", provider, subject, to)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Whether the account is an open staff account holding a role.
pub(super) async fn is_staff(pool: &PgPool, user_id: Uuid) -> Result<bool, sqlx::Error> {
    let staff = sqlx::query_scalar!(
        r#"SELECT user_type = 'staff' AND cardinality(roles) > 0 AS "staff!" FROM users
           WHERE id = $1 AND deleted_at IS NULL"#,
        user_id,
    )
    .fetch_optional(pool)
    .await?;
    Ok(staff.unwrap_or(false))
}

/// Device sign-ins in progress, across all providers.
pub(super) async fn live_device_logins(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "live!" FROM oidc_device_logins WHERE consumed_at IS NULL AND expires_at > now()"#
    )
    .fetch_one(pool)
    .await
}

/// A started device sign-in, as stored.
pub(super) struct NewDeviceLogin<'a> {
    pub handle_hash: &'a [u8],
    pub provider: &'a str,
    pub device_code: &'a str,
    pub nonce: &'a str,
    pub interval_secs: i32,
    pub expires_in_secs: f64,
}

/// Stores a started device sign-in, pollable at once.
pub(super) async fn add_device_login(tx: &mut PgConnection, login: &NewDeviceLogin<'_>) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO oidc_device_logins (handle_hash, provider, device_code, nonce, interval_secs, next_poll_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, now(), now() + make_interval(secs => $6))",
        login.handle_hash,
        login.provider,
        login.device_code,
        login.nonce,
        login.interval_secs,
        login.expires_in_secs,
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// A claimed poll of a device sign-in. No `Debug`: the device code is a secret.
#[derive(sqlx::FromRow)]
pub(super) struct Poll {
    pub device_code: String,
    pub nonce: String,
    pub interval_secs: i32,
}

/// Claims a poll of a live device sign-in: only one at a time (the claim is leased for
/// `lease_secs` at least), and no sooner than its interval.
pub(super) async fn claim_poll(
    pool: &PgPool,
    hash: &[u8],
    provider: &str,
    lease_secs: i32,
) -> Result<Option<Poll>, sqlx::Error> {
    sqlx::query_as!(
        Poll,
        "UPDATE oidc_device_logins SET next_poll_at = now() + make_interval(secs => greatest(interval_secs, $3)) \
         WHERE handle_hash = $1 AND provider = $2 AND consumed_at IS NULL AND expires_at > now() \
         AND next_poll_at <= now() RETURNING device_code, nonce, interval_secs",
        hash,
        provider,
        lease_secs,
    )
    .fetch_optional(pool)
    .await
}

/// Whether the device sign-in is live (unused and unexpired).
pub(super) async fn device_login_live(pool: &PgPool, hash: &[u8], provider: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM oidc_device_logins WHERE handle_hash = $1 AND provider = $2
           AND consumed_at IS NULL AND expires_at > now()) AS "live!""#,
        hash,
        provider,
    )
    .fetch_one(pool)
    .await
}

/// Ends a poll's lease: the next poll may come after the interval.
pub(super) async fn end_poll_lease(pool: &PgPool, hash: &[u8]) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE oidc_device_logins SET next_poll_at = now() + make_interval(secs => interval_secs) \
         WHERE handle_hash = $1 AND consumed_at IS NULL",
        hash,
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Sets a longer interval, and the next poll after it.
pub(super) async fn slow_down(pool: &PgPool, hash: &[u8], interval_secs: i32) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE oidc_device_logins SET interval_secs = $2, next_poll_at = now() + make_interval(secs => $2::integer) \
         WHERE handle_hash = $1",
        hash,
        interval_secs,
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Marks a device sign-in used; false when it was used already.
pub(super) async fn consume_device_login(pool: &PgPool, hash: &[u8]) -> Result<bool, sqlx::Error> {
    let first = sqlx::query_scalar!(
        r#"UPDATE oidc_device_logins SET consumed_at = now() WHERE handle_hash = $1 AND consumed_at IS NULL
           RETURNING 1 AS "first!""#,
        hash,
    )
    .fetch_optional(pool)
    .await?;
    Ok(first.is_some())
}

/// Deletes the web and device sign-in attempts past their expiry (an expired attempt is refused
/// whether or not its row is there): how many of each.
pub async fn purge_expired(pool: &PgPool) -> Result<(u64, u64), sqlx::Error> {
    let web = sqlx::query!("DELETE FROM oidc_logins WHERE expires_at < now()").execute(pool).await?;
    let device = sqlx::query!("DELETE FROM oidc_device_logins WHERE expires_at < now()").execute(pool).await?;
    Ok((web.rows_affected(), device.rows_affected()))
}
