//! The notifications' SQL, checked against the schema at build time (`.sqlx/`).

use sqlx::{PgConnection, PgExecutor, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use common::applications::NotificationView;

use super::Notice;

/// A notification as stored, with its place in the user's sequence.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NotificationRow {
    pub seq: i64,
    pub id: Uuid,
    pub kind: String,
    pub title: String,
    pub body: String,
    pub resource_type: Option<String>,
    pub resource_id: Option<Uuid>,
    pub created_at: OffsetDateTime,
    pub read_at: Option<OffsetDateTime>,
}

impl From<NotificationRow> for NotificationView {
    fn from(row: NotificationRow) -> Self {
        NotificationView {
            id: row.id,
            kind: row.kind,
            title: row.title,
            body: row.body,
            resource_type: row.resource_type,
            resource_id: row.resource_id,
            created_at: row.created_at,
            read_at: row.read_at,
        }
    }
}

/// Writes `notice` for `user` inside the caller's transaction, and queues its email.
pub async fn add(tx: &mut PgConnection, user: Uuid, notice: &Notice) -> Result<(), sqlx::Error> {
    let id = Uuid::new_v4();
    sqlx::query!(
        "INSERT INTO notifications (id, user_id, kind, title, body, resource_type, resource_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        id,
        user,
        notice.kind,
        notice.title,
        notice.body,
        notice.resource.map(|(t, _)| t),
        notice.resource.map(|(_, id)| id),
    )
    .execute(&mut *tx)
    .await?;
    // And by email, later, from the outbox (`crate::mail`).
    crate::mail::enqueue(tx, user, id, notice.kind).await
}

/// How many of a user's notifications are unread.
pub async fn unread(conn: &mut PgConnection, user: Uuid) -> Result<i64, sqlx::Error> {
    let count = sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM notifications WHERE user_id = $1 AND read_at IS NULL"#,
        user
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(count)
}

/// A user's notifications newest first, before `after` (a `seq`), `limit` of them.
pub async fn newest(
    db: impl PgExecutor<'_>,
    user: Uuid,
    after: Option<i64>,
    unread_only: bool,
    limit: i64,
) -> Result<Vec<NotificationRow>, sqlx::Error> {
    sqlx::query_as!(
        NotificationRow,
        "SELECT seq, id, kind, title, body, resource_type, resource_id, created_at, read_at FROM notifications \
         WHERE user_id = $1 AND ($2::bigint IS NULL OR seq < $2) AND (NOT $3 OR read_at IS NULL) \
         ORDER BY seq DESC LIMIT $4",
        user,
        after,
        unread_only,
        limit,
    )
    .fetch_all(db)
    .await
}

/// A user's notifications after `after` (a `seq`), oldest first, `limit` of them.
pub async fn after(
    db: impl PgExecutor<'_>,
    user: Uuid,
    after: i64,
    limit: i64,
) -> Result<Vec<NotificationRow>, sqlx::Error> {
    sqlx::query_as!(
        NotificationRow,
        "SELECT seq, id, kind, title, body, resource_type, resource_id, created_at, read_at FROM notifications \
         WHERE user_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        user,
        after,
        limit,
    )
    .fetch_all(db)
    .await
}

/// Marks one of `user`'s notifications read (the first time stays); `None` if it is not theirs.
pub async fn mark_read(tx: &mut PgConnection, user: Uuid, id: Uuid) -> Result<Option<NotificationRow>, sqlx::Error> {
    sqlx::query_as!(
        NotificationRow,
        "UPDATE notifications SET read_at = COALESCE(read_at, now()) WHERE id = $1 AND user_id = $2 \
         RETURNING seq, id, kind, title, body, resource_type, resource_id, created_at, read_at",
        id,
        user,
    )
    .fetch_optional(&mut *tx)
    .await
}

/// Whether the user wants email (on until turned off).
pub async fn email_wanted(db: impl PgExecutor<'_>, user: Uuid) -> Result<bool, sqlx::Error> {
    let email = sqlx::query_scalar!("SELECT email FROM notification_preferences WHERE user_id = $1", user)
        .fetch_optional(db)
        .await?;
    Ok(email.unwrap_or(true))
}

/// Turns the user's email on or off.
pub async fn set_email(tx: &mut PgConnection, user: Uuid, email: bool) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO notification_preferences (user_id, email) VALUES ($1, $2) \
         ON CONFLICT (user_id) DO UPDATE SET email = EXCLUDED.email, updated_at = now()",
        user,
        email,
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Where a user's notifications stand: the newest one's place in their sequence (0 for none)
/// and how many are unread.
pub async fn position(pool: &PgPool, user: Uuid) -> Result<(i64, i64), sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT COALESCE(max(seq), 0) AS "last!", count(*) FILTER (WHERE read_at IS NULL) AS "unread!"
           FROM notifications WHERE user_id = $1"#,
        user,
    )
    .fetch_one(pool)
    .await?;
    Ok((row.last, row.unread))
}
