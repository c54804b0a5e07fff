//! The `/users/me` routes: the caller's account and sessions, each scoped to the caller.

use rocket::http::Status;
use rocket::serde::json::Json;
use rocket::{delete, get, patch, routes, Route, State};
use serde::{Deserialize, Deserializer, Serialize};
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use common::json::Body;
use common::ApiError;

use super::queries;
use super::rules::{self, UserView};
use crate::audit::{self, Outcome};
use crate::auth::sessions::{self, OffsetPage, SessionView};
use crate::auth::AuthUser;
use crate::meta::RequestMeta;

/// The signed-in user's account.
#[utoipa::path(get, operation_id = "users_read_me", path = "/api/v1/users/me", tag = "users", security(("bearer" = [])),
    responses(
        (status = 200, description = "The account", body = UserView),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
    ))]
#[get("/users/me")]
pub async fn me(user: AuthUser) -> Json<UserView> {
    Json(user.account.view)
}

/// `null` clears a field; absent leaves it.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// The writable fields. `user_type`, `roles`, `email` and anything else are refused (422).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    /// 1 to 100 characters.
    #[schema(min_length = 1, max_length = 100)]
    pub display_name: Option<String>,
    /// `YYYY-MM-DD`, not in the future; `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, format = Date)]
    pub sobriety_date: Option<Option<String>>,
    /// An object of booleans, e.g. `{"email": true, "sms": false}`.
    pub notification_preferences: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Updates name, sobriety date or notification preferences.
#[utoipa::path(patch, operation_id = "users_update_me", path = "/api/v1/users/me", tag = "users", security(("bearer" = [])), request_body = UserPatch,
    responses(
        (status = 200, description = "The updated account", body = UserView),
        (status = 400, description = "Malformed JSON", body = common::ErrorBody),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 413, description = "Body too large", body = common::ErrorBody),
        (status = 415, description = "Body is not JSON", body = common::ErrorBody),
        (status = 422, description = "Unknown or invalid field (type and roles are not writable)", body = common::ErrorBody),
    ))]
#[patch("/users/me", data = "<body>")]
pub async fn update_me(
    user: AuthUser,
    body: Body<UserPatch>,
    pool: &State<PgPool>,
    meta: RequestMeta,
) -> Result<Json<UserView>, ApiError> {
    let patch = body.into_inner();
    let change = rules::check(
        patch.display_name.as_deref(),
        patch.sobriety_date.as_ref().map(Option::as_deref),
        patch.notification_preferences.as_ref(),
        OffsetDateTime::now_utc().date(),
    )?;
    let mut tx = pool.begin().await?;
    let preferences = patch.notification_preferences.map(serde_json::Value::Object);
    queries::update(&mut tx, user.user_id, change, preferences).await?;
    audit::record(
        &mut tx,
        &meta.event(Some(user.user_id), "user.update", Some(("user", user.user_id.to_string())), Outcome::Success),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(queries::account(pool, user.user_id).await?.ok_or(ApiError::NotFound)?.view))
}

/// Closes the account: it is marked deleted and every session ends.
#[utoipa::path(delete, operation_id = "users_delete_me", path = "/api/v1/users/me", tag = "users", security(("bearer" = [])),
    responses(
        (status = 204, description = "Account closed"),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
    ))]
#[delete("/users/me")]
pub async fn delete_me(user: AuthUser, pool: &State<PgPool>, meta: RequestMeta) -> Result<Status, ApiError> {
    let mut tx = pool.begin().await?;
    queries::close(&mut tx, user.user_id).await?;
    sessions::revoke_all(&mut tx, user.user_id, "account_deleted").await?;
    audit::record(
        &mut tx,
        &meta.event(Some(user.user_id), "user.delete", Some(("user", user.user_id.to_string())), Outcome::Success),
    )
    .await?;
    tx.commit().await?;
    Ok(Status::NoContent)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionPage {
    pub sessions: Vec<SessionView>,
    /// Pass as `offset` for the next page; absent on the last page.
    pub next_offset: Option<i64>,
}

/// The caller's open sessions, newest first.
#[utoipa::path(get, operation_id = "users_list_my_sessions", path = "/api/v1/users/me/sessions", tag = "users", security(("bearer" = [])),
    params(
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "1 to 100, default 20"),
        ("offset" = Option<i64>, Query, minimum = 0, description = "Default 0"),
    ),
    responses(
        (status = 200, description = "A page of sessions", body = SessionPage),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 422, description = "Bad limit or offset", body = common::ErrorBody),
    ))]
#[get("/users/me/sessions?<page..>")]
pub async fn my_sessions(
    user: AuthUser,
    page: OffsetPage<'_>,
    pool: &State<PgPool>,
) -> Result<Json<SessionPage>, ApiError> {
    let (limit, offset) = page.checked()?;
    let (sessions, next_offset) = sessions::open_page(pool, user.user_id, user.session_id, limit, offset).await?;
    Ok(Json(SessionPage { sessions, next_offset }))
}

/// Ends one of the caller's sessions. Another user's session id answers 404, like a missing one.
#[utoipa::path(delete, operation_id = "users_end_my_session", path = "/api/v1/users/me/sessions/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Session id")),
    responses(
        (status = 204, description = "Session ended"),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 404, description = "No such open session of yours", body = common::ErrorBody),
    ))]
#[delete("/users/me/sessions/<id>")]
pub async fn end_session(
    user: AuthUser,
    id: Uuid,
    pool: &State<PgPool>,
    meta: RequestMeta,
) -> Result<Status, ApiError> {
    let mut tx = pool.begin().await?;
    if !sessions::revoke(&mut tx, id, user.user_id, "ended_by_user").await? {
        return Err(ApiError::NotFound);
    }
    audit::record(
        &mut tx,
        &meta.event(Some(user.user_id), "session.end", Some(("session", id.to_string())), Outcome::Success),
    )
    .await?;
    tx.commit().await?;
    Ok(Status::NoContent)
}

pub fn routes() -> Vec<Route> {
    routes![me, update_me, delete_me, my_sessions, end_session]
}
