//! The notifications routes: a person's own notifications and email preference, each scoped to
//! the caller.

use rocket::serde::json::Json;
use rocket::{get, patch, put, routes, Route, State};
use sqlx::PgPool;
use uuid::Uuid;

use common::applications::{NotificationPage, NotificationPreferences, NotificationView};
use common::json::Body;
use common::ApiError;

use super::queries;
use crate::audit::{self, Outcome};
use crate::auth::AuthUser;
use crate::meta::RequestMeta;

/// My notifications, newest first.
#[utoipa::path(get, operation_id = "notifications_list", path = "/api/v1/notifications", tag = "notifications", security(("bearer" = [])),
    params(("unread" = Option<bool>, Query, description = "`true`: only those not yet read"),
        ("after" = Option<i64>, Query, description = "`next_after` of the previous page"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "1 to 100, default 20")),
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
    let rows = queries::newest(pool.inner(), user.user_id, after, unread, limit + 1).await?;
    let (rows, next_after) = common::db::keyset_page(rows, limit, |row| row.seq);
    Ok(Json(NotificationPage { notifications: rows.into_iter().map(NotificationView::from).collect(), next_after }))
}

/// Marks one of my notifications read (again is harmless: the first time stays).
#[utoipa::path(patch, operation_id = "notifications_mark_read", path = "/api/v1/notifications/{id}/read", tag = "notifications", security(("bearer" = [])),
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
    let row = queries::mark_read(&mut tx, user.user_id, id).await?.ok_or(ApiError::NotFound)?;
    let resource = Some(("notification", id.to_string()));
    audit::record(&mut tx, &meta.event(Some(user.user_id), "notification.read", resource, Outcome::Success)).await?;
    tx.commit().await?;
    Ok(Json(row.into()))
}

/// How I hear of changes besides the notifications themselves.
#[utoipa::path(get, operation_id = "notifications_preferences", path = "/api/v1/notifications/preferences", tag = "notifications", security(("bearer" = [])),
    responses(
        (status = 200, description = "My preferences (email is on until turned off)", body = NotificationPreferences),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
    ))]
#[get("/notifications/preferences")]
pub async fn preferences(user: AuthUser, pool: &State<PgPool>) -> Result<Json<NotificationPreferences>, ApiError> {
    Ok(Json(NotificationPreferences { email: queries::email_wanted(pool.inner(), user.user_id).await? }))
}

/// Turns email about changes on or off. Off also stops email already queued.
#[utoipa::path(put, operation_id = "notifications_set_preferences", path = "/api/v1/notifications/preferences", tag = "notifications", security(("bearer" = [])),
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
    queries::set_email(&mut tx, user.user_id, wanted.email).await?;
    let action = if wanted.email { "notification.email_on" } else { "notification.email_off" };
    let resource = Some(("user", user.user_id.to_string()));
    audit::record(&mut tx, &meta.event(Some(user.user_id), action, resource, Outcome::Success)).await?;
    tx.commit().await?;
    Ok(Json(wanted))
}

pub fn routes() -> Vec<Route> {
    routes![list, mark_read, preferences, set_preferences]
}
