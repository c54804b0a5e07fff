//! Notifications: a row for each event a person should hear of, written in the transaction of
//! the change it announces, announced on PostgreSQL's `notifications` channel by a trigger (the
//! user's id only), listed newest first and marked read; some are emailed too (`crate::mail`). The text never carries PHI: it says that
//! something changed and where to look, never what.

use rocket::serde::json::Json;
use rocket::{get, patch, put, routes, Route, State};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use common::applications::{NotificationPage, NotificationPreferences, NotificationView};
use common::json::Body;
use common::ApiError;

use crate::audit::{self, Outcome};
use crate::auth::AuthUser;
use crate::meta::RequestMeta;

/// A notification to write.
#[derive(Debug, Clone)]
pub struct Notice {
    pub kind: &'static str,
    pub title: &'static str,
    pub body: &'static str,
    pub resource: Option<(&'static str, Uuid)>,
}

impl Notice {
    /// About an application: its kind says what happened; title and body are fixed text.
    pub fn application(kind: &'static str, id: Uuid) -> Self {
        let (title, body) = match kind {
            "application.assigned" => ("An application was assigned to you", "Sign in to review it."),
            "application.updated" => ("An application you review was updated", "Sign in to see what changed."),
            _ => ("Your application was updated", "Sign in to see where it stands."),
        };
        Notice { kind, title, body, resource: Some(("application", id)) }
    }

    /// A device (the staff CLI) signed in to the account.
    pub fn device_sign_in(session: Uuid) -> Self {
        Notice {
            kind: "auth.device_sign_in",
            title: "A new device signed in to your account",
            body: "If this was not you, end that session and tell your administrator.",
            resource: Some(("session", session)),
        }
    }

    /// A decision on an insurance verification request.
    pub fn insurance(id: Uuid) -> Self {
        Notice {
            kind: "insurance.decided",
            title: "Your insurance was reviewed",
            body: "Sign in to see the result.",
            resource: Some(("insurance_verification", id)),
        }
    }
}

/// Writes `notice` for `user` inside the caller's transaction.
pub async fn add(tx: &mut PgConnection, user: Uuid, notice: &Notice) -> Result<(), sqlx::Error> {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO notifications (id, user_id, kind, title, body, resource_type, resource_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(user)
    .bind(notice.kind)
    .bind(notice.title)
    .bind(notice.body)
    .bind(notice.resource.map(|(t, _)| t))
    .bind(notice.resource.map(|(_, id)| id))
    .execute(&mut *tx)
    .await?;
    // And by email, later, from the outbox (`crate::mail`).
    crate::mail::enqueue(tx, user, id, notice.kind).await
}

const COLUMNS: &str = "id, seq, kind, title, body, resource_type, resource_id, created_at, read_at";

pub(crate) fn view(row: &PgRow) -> Result<NotificationView, sqlx::Error> {
    Ok(NotificationView {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        title: row.try_get("title")?,
        body: row.try_get("body")?,
        resource_type: row.try_get("resource_type")?,
        resource_id: row.try_get("resource_id")?,
        created_at: row.try_get("created_at")?,
        read_at: row.try_get("read_at")?,
    })
}

/// How many of a user's notifications are unread.
pub async fn unread(conn: &mut PgConnection, user: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM notifications WHERE user_id = $1 AND read_at IS NULL")
        .bind(user)
        .fetch_one(&mut *conn)
        .await
}

/// My notifications, newest first.
#[utoipa::path(get, path = "/api/v1/notifications", tag = "notifications", security(("bearer" = [])),
    params(("unread" = Option<bool>, Query, description = "`true`: only those not yet read"),
        ("after" = Option<i64>, Query, description = "`next_after` of the previous page"),
        ("limit" = Option<i64>, Query, description = "1 to 100, default 20")),
    responses(
        (status = 200, description = "A page of my notifications", body = NotificationPage),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 422, description = "A parameter malformed, named", body = common::ErrorBody),
    ))]
#[get("/notifications?<unread>&<after>&<limit>")]
pub async fn list(
    user: AuthUser,
    unread: Option<&str>,
    after: Option<&str>,
    limit: Option<&str>,
    pool: &State<PgPool>,
) -> Result<Json<NotificationPage>, ApiError> {
    let unread: bool = common::json::query_param("unread", unread, "true or false")?.unwrap_or(false);
    let common::json::Keyset { after, limit } = common::json::Keyset::parse(after, limit, 20)?;
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM notifications WHERE user_id = $1 AND ($2::bigint IS NULL OR seq < $2) \
         AND (NOT $3 OR read_at IS NULL) ORDER BY seq DESC LIMIT $4"
    ))
    .bind(user.user_id)
    .bind(after)
    .bind(unread)
    .bind(limit + 1)
    .fetch_all(pool.inner())
    .await?;
    let (rows, next_after) = common::db::page_after(rows, limit, "seq")?;
    Ok(Json(NotificationPage { notifications: rows.iter().map(view).collect::<Result<_, _>>()?, next_after }))
}

/// Marks one of my notifications read (again is harmless: the first time stays).
#[utoipa::path(patch, path = "/api/v1/notifications/{id}/read", tag = "notifications", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "Read", body = NotificationView),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 404, description = "No such notification of mine", body = common::ErrorBody),
    ))]
#[patch("/notifications/<id>/read")]
pub async fn mark_read(
    user: AuthUser,
    id: Uuid,
    meta: RequestMeta,
    pool: &State<PgPool>,
) -> Result<Json<NotificationView>, ApiError> {
    let mut tx = pool.begin().await?;
    let row = sqlx::query(&format!(
        "UPDATE notifications SET read_at = COALESCE(read_at, now()) WHERE id = $1 AND user_id = $2 \
         RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(user.user_id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(ApiError::NotFound)?;
    let resource = Some(("notification", id.to_string()));
    audit::record(&mut tx, &meta.event(Some(user.user_id), "notification.read", resource, Outcome::Success)).await?;
    tx.commit().await?;
    Ok(Json(view(&row)?))
}

async fn email_wanted(pool: &PgPool, user: Uuid) -> Result<bool, ApiError> {
    let email: Option<bool> = sqlx::query_scalar("SELECT email FROM notification_preferences WHERE user_id = $1")
        .bind(user)
        .fetch_optional(pool)
        .await?;
    Ok(email.unwrap_or(true))
}

/// How I hear of changes besides the notifications themselves.
#[utoipa::path(get, path = "/api/v1/notifications/preferences", tag = "notifications", security(("bearer" = [])),
    responses(
        (status = 200, description = "My preferences (email is on until turned off)", body = NotificationPreferences),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
    ))]
#[get("/notifications/preferences")]
pub async fn preferences(user: AuthUser, pool: &State<PgPool>) -> Result<Json<NotificationPreferences>, ApiError> {
    Ok(Json(NotificationPreferences { email: email_wanted(pool, user.user_id).await? }))
}

/// Turns email about changes on or off. Off also stops email already queued.
#[utoipa::path(put, path = "/api/v1/notifications/preferences", tag = "notifications", security(("bearer" = [])),
    request_body = NotificationPreferences,
    responses(
        (status = 200, description = "My preferences, as changed", body = NotificationPreferences),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
    ))]
#[put("/notifications/preferences", data = "<body>")]
pub async fn set_preferences(
    user: AuthUser,
    body: Body<NotificationPreferences>,
    meta: RequestMeta,
    pool: &State<PgPool>,
) -> Result<Json<NotificationPreferences>, ApiError> {
    let wanted = body.into_inner();
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO notification_preferences (user_id, email) VALUES ($1, $2) \
         ON CONFLICT (user_id) DO UPDATE SET email = EXCLUDED.email, updated_at = now()",
    )
    .bind(user.user_id)
    .bind(wanted.email)
    .execute(&mut *tx)
    .await?;
    let action = if wanted.email { "notification.email_on" } else { "notification.email_off" };
    let resource = Some(("user", user.user_id.to_string()));
    audit::record(&mut tx, &meta.event(Some(user.user_id), action, resource, Outcome::Success)).await?;
    tx.commit().await?;
    Ok(Json(wanted))
}

pub fn routes() -> Vec<Route> {
    routes![list, mark_read, preferences, set_preferences]
}
