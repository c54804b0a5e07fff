//! Sessions and their refresh tokens. A refresh token is 32 random bytes, given to the client
//! once and stored only as its SHA-256. Each use rotates it; presenting a rotated token again
//! means it was copied, so the whole session is revoked, unless it is the exchanging client's
//! own retry within the leeway ([`super::retry`]).

use base64::Engine;
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use common::UserRole;

use crate::users::queries::AccountRow;
use crate::users::rules::Account;

pub fn hash(token: &str) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref().to_vec()
}

fn new_token() -> Result<String, sqlx::Error> {
    random_secret("swr")
}

/// 32 random bytes, base64url, after `prefix_` (which says what the secret is when one turns
/// up in a log or a paste).
pub(crate) fn random_secret(prefix: &str) -> Result<String, sqlx::Error> {
    let mut bytes = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| sqlx::Error::Protocol("system random source failed".into()))?;
    Ok(format!("{prefix}_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)))
}

/// A user's roles for tokens and permission checks: their type, then granted staff roles. A
/// name that is no role (`users_roles_known` allows none) is an error, never a role dropped.
pub async fn roles_of(conn: &mut PgConnection, user_id: Uuid) -> Result<Option<Vec<UserRole>>, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT user_type::text AS "user_type!", roles FROM users WHERE id = $1 AND deleted_at IS NULL"#,
        user_id,
    )
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    std::iter::once(row.user_type)
        .chain(row.roles)
        .map(|name| UserRole::parse(&name).ok_or_else(|| sqlx::Error::Decode(format!("`{name}` is no role").into())))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Opens a session; returns its id and the first refresh token.
pub async fn create(
    tx: &mut PgConnection,
    user_id: Uuid,
    ttl_days: u32,
    user_agent: Option<&str>,
    ip: Option<String>,
) -> Result<(Uuid, String), sqlx::Error> {
    let id = Uuid::new_v4();
    let token = new_token()?;
    // The address arrives as text (the client's, as the request saw it) and is cast in SQL.
    sqlx::query!(
        "INSERT INTO sessions (id, user_id, user_agent, ip, expires_at) \
         VALUES ($1, $2, $3, $4::text::inet, now() + make_interval(days => $5))",
        id,
        user_id,
        user_agent.map(|ua| ua.chars().take(512).collect::<String>()),
        ip,
        ttl_days as i32,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!("INSERT INTO refresh_tokens (token_hash, session_id) VALUES ($1, $2)", hash(&token), id)
        .execute(&mut *tx)
        .await?;
    sqlx::query!("UPDATE users SET last_login_at = now() WHERE id = $1", user_id).execute(&mut *tx).await?;
    Ok((id, token))
}

/// The account of a live session (open, unexpired, its user not deleted), or `None`. Asked on
/// every request; the account comes in the same query (the columns of [`AccountRow`]), so no
/// route reads it again.
pub async fn live_account(pool: &PgPool, session_id: Uuid, user_id: Uuid) -> Result<Option<Account>, sqlx::Error> {
    let row = common::db::retry_if_lost(|| {
        sqlx::query_as!(
            AccountRow,
            r#"SELECT u.id, u.user_type::text AS "user_type!", u.email, u.display_name, u.roles,
               u.sobriety_date, u.notification_preferences, u.created_at, u.identity_record_id
               FROM sessions s JOIN users u ON u.id = s.user_id
               WHERE s.id = $1 AND s.user_id = $2 AND s.revoked_at IS NULL AND s.expires_at > now()
               AND u.deleted_at IS NULL"#,
            session_id,
            user_id,
        )
        .fetch_optional(pool)
    })
    .await?;
    Ok(row.map(Account::from))
}

#[derive(Debug)]
pub enum Refresh {
    /// The token was current: here is the next one. Or, with `retried`, the token was just
    /// exchanged by this same client, and this is the one it was given then.
    Rotated { user_id: Uuid, session_id: Uuid, roles: Vec<UserRole>, token: String, retried: bool },
    /// The token had already been rotated: the session is now revoked.
    Reused { user_id: Uuid, session_id: Uuid },
    /// Unknown token, or its session is revoked or expired.
    Invalid { session_id: Option<Uuid>, user_id: Option<Uuid> },
}

/// A presented refresh token's row and its session's state, locked.
#[derive(Debug, sqlx::FromRow)]
struct PresentedToken {
    session_id: Uuid,
    user_id: Uuid,
    /// Exchanged already: presenting it again is reuse (unless it is a retry).
    rotated: bool,
    /// Exchanged within the retry leeway.
    recent: bool,
    /// The token the exchange gave, sealed for whoever presents this one.
    successor_sealed: Option<Vec<u8>>,
    /// Who made the exchange.
    rotated_by: Option<Vec<u8>>,
    /// The session is open and unexpired.
    live: bool,
    /// The session was not renewed within the idle limit.
    idle: bool,
}

/// What a refresh needs besides the presented token.
#[derive(Debug, Clone, Copy)]
pub struct RotateRules<'a> {
    /// A session unused this long ends (1 to 24).
    pub idle_hours: u32,
    /// How long after an exchange the same client's retry gets the same successor.
    pub retry_leeway_secs: u32,
    /// The client presenting the token ([`super::retry::client_hash`]).
    pub client: &'a [u8],
}

/// Exchanges `presented` for a new refresh token inside `tx`. Rows are locked, so two
/// concurrent uses of one token cannot both succeed: the second is a retry (the same client,
/// within the leeway, while the successor is unused) or reuse.
pub async fn rotate(tx: &mut PgConnection, presented: &str, rules: RotateRules<'_>) -> Result<Refresh, sqlx::Error> {
    let row = sqlx::query_as!(
        PresentedToken,
        r#"SELECT rt.session_id, rt.rotated_at IS NOT NULL AS "rotated!", s.user_id,
           coalesce(rt.rotated_at > now() - make_interval(secs => $3), false) AS "recent!",
           rt.successor_sealed, rt.rotated_by,
           (s.revoked_at IS NULL AND s.expires_at > now()) AS "live!",
           s.last_used_at < now() - make_interval(hours => $2) AS "idle!"
           FROM refresh_tokens rt JOIN sessions s ON s.id = rt.session_id
           WHERE rt.token_hash = $1 FOR UPDATE OF rt, s"#,
        hash(presented),
        rules.idle_hours.clamp(1, 24) as i32,
        f64::from(rules.retry_leeway_secs),
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else { return Ok(Refresh::Invalid { session_id: None, user_id: None }) };
    let PresentedToken { session_id, user_id, rotated, recent, successor_sealed, rotated_by, live, idle } = row;
    if rotated {
        let same_client = rotated_by.as_deref() == Some(rules.client);
        let successor = match (recent && same_client && live && !idle, successor_sealed) {
            (true, Some(sealed)) => super::retry::open(&sealed, presented, session_id),
            _ => None,
        };
        // A retry only while the successor is still the session's live token: once the client
        // has moved on, the old token coming back is someone else's copy.
        if let Some(successor) = successor {
            let unused = sqlx::query_scalar!(
                r#"SELECT EXISTS (SELECT 1 FROM refresh_tokens WHERE token_hash = $1 AND session_id = $2
                   AND rotated_at IS NULL) AS "unused!""#,
                hash(&successor),
                session_id,
            )
            .fetch_one(&mut *tx)
            .await?;
            if let (true, Some(roles)) = (unused, roles_of(tx, user_id).await?) {
                // One retry: the next presentation of this token is reuse.
                sqlx::query!(
                    "UPDATE refresh_tokens SET successor_sealed = NULL, rotated_by = NULL WHERE token_hash = $1",
                    hash(presented),
                )
                .execute(&mut *tx)
                .await?;
                return Ok(Refresh::Rotated { user_id, session_id, roles, token: successor, retried: true });
            }
        }
        revoke(tx, session_id, user_id, "refresh_token_reuse").await?;
        return Ok(Refresh::Reused { user_id, session_id });
    }
    if live && idle {
        // Automatic logoff: unused too long, the session ends here.
        revoke(tx, session_id, user_id, "idle").await?;
        return Ok(Refresh::Invalid { session_id: Some(session_id), user_id: Some(user_id) });
    }
    let roles = match (live, roles_of(tx, user_id).await?) {
        (true, Some(roles)) => roles,
        _ => return Ok(Refresh::Invalid { session_id: Some(session_id), user_id: Some(user_id) }),
    };
    let token = new_token()?;
    let sealed = super::retry::seal(&token, presented, session_id)
        .map_err(|_| sqlx::Error::Protocol("sealing the successor token failed".into()))?;
    sqlx::query!(
        "UPDATE refresh_tokens SET rotated_at = now(), successor_sealed = $2, rotated_by = $3 WHERE token_hash = $1",
        hash(presented),
        sealed,
        rules.client,
    )
    .execute(&mut *tx)
    .await?;
    // Only the token just exchanged may still be retried: earlier seals are dropped.
    sqlx::query!(
        "UPDATE refresh_tokens SET successor_sealed = NULL, rotated_by = NULL \
         WHERE session_id = $1 AND token_hash <> $2 AND successor_sealed IS NOT NULL",
        session_id,
        hash(presented),
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!("INSERT INTO refresh_tokens (token_hash, session_id) VALUES ($1, $2)", hash(&token), session_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query!("UPDATE sessions SET last_used_at = now() WHERE id = $1", session_id).execute(&mut *tx).await?;
    Ok(Refresh::Rotated { user_id, session_id, roles, token, retried: false })
}

/// Drops the sealed successors of exchanges older than any retry leeway (60 s at most), which
/// no retry can use any more.
pub async fn drop_stale_seals(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "UPDATE refresh_tokens SET successor_sealed = NULL, rotated_by = NULL \
         WHERE successor_sealed IS NOT NULL AND rotated_at < now() - interval '60 seconds'"
    )
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Revokes one of `user_id`'s sessions; false when it is not theirs or already ended (the
/// caller answers 404 either way).
pub async fn revoke(tx: &mut PgConnection, session_id: Uuid, user_id: Uuid, reason: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query!(
        "UPDATE sessions SET revoked_at = now(), revoked_reason = $3 \
         WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL",
        session_id,
        user_id,
        reason,
    )
    .execute(&mut *tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn revoke_all(tx: &mut PgConnection, user_id: Uuid, reason: &str) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query!(
        "UPDATE sessions SET revoked_at = now(), revoked_reason = $2 WHERE user_id = $1 AND revoked_at IS NULL",
        user_id,
        reason,
    )
    .execute(&mut *tx)
    .await?
    .rows_affected())
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionView {
    pub id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_used_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    /// The session the request was made with (always false in an admin's view of another
    /// user's sessions).
    pub current: bool,
}

/// The `limit` and `offset` query parameters of an offset-paged list, as sent: a route takes this
/// as `?<page..>` and calls [`OffsetPage::checked`].
#[derive(Debug, Default, rocket::FromForm)]
pub struct OffsetPage<'r> {
    pub limit: Option<&'r str>,
    pub offset: Option<&'r str>,
}

impl OffsetPage<'_> {
    /// The checked `(limit, offset)`, as [`page_params`] checks them.
    pub fn checked(&self) -> Result<(i64, i64), common::ApiError> {
        page_params(self.limit, self.offset)
    }
}

/// A page request's `limit` (1 to 100, 20 when absent) and `offset` (at least 0), strictly.
pub fn page_params(limit: Option<&str>, offset: Option<&str>) -> Result<(i64, i64), common::ApiError> {
    let limit = common::json::query_param("limit", limit, "an integer from 1 to 100")?.unwrap_or(20);
    let offset = common::json::query_param("offset", offset, "an integer, at least 0")?.unwrap_or(0);
    if !(1..=100).contains(&limit) || offset < 0 {
        return Err(common::ApiError::Unprocessable("limit must be 1 to 100 and offset at least 0".into()));
    }
    Ok((limit, offset))
}

/// A page of the user's open sessions, newest first, and the offset of the next page.
pub async fn open_page(
    pool: &PgPool,
    user_id: Uuid,
    current: Uuid,
    limit: i64,
    offset: i64,
) -> Result<(Vec<SessionView>, Option<i64>), sqlx::Error> {
    let mut sessions = list_open(pool, user_id, current, limit + 1, offset).await?;
    let next_offset = (sessions.len() as i64 > limit).then_some(offset + limit);
    sessions.truncate(limit as usize);
    Ok((sessions, next_offset))
}

/// An open session as stored.
#[derive(Debug, sqlx::FromRow)]
struct SessionRow {
    id: Uuid,
    created_at: OffsetDateTime,
    last_used_at: OffsetDateTime,
    expires_at: OffsetDateTime,
    user_agent: Option<String>,
    ip: Option<String>,
}

/// The user's open sessions, newest first.
async fn list_open(
    pool: &PgPool,
    user_id: Uuid,
    current: Uuid,
    limit: i64,
    offset: i64,
) -> Result<Vec<SessionView>, sqlx::Error> {
    let rows = sqlx::query_as!(
        SessionRow,
        "SELECT id, created_at, last_used_at, expires_at, user_agent, host(ip) AS ip FROM sessions \
         WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > now() \
         ORDER BY created_at DESC, id LIMIT $2 OFFSET $3",
        user_id,
        limit,
        offset,
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| SessionView {
            id: r.id,
            created_at: r.created_at,
            last_used_at: r.last_used_at,
            expires_at: r.expires_at,
            user_agent: r.user_agent,
            ip: r.ip,
            current: r.id == current,
        })
        .collect())
}
