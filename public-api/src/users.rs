//! `/users/me`: the caller's own account and sessions. Type and roles are never writable here
//! (staff roles are granted by an admin through the CLI); every query is scoped to the caller.

use rocket::http::Status;
use rocket::serde::json::Json;
use rocket::{delete, get, patch, routes, Route, State};
use serde::{Deserialize, Deserializer, Serialize};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use common::json::Body;
use common::ApiError;

use crate::audit::{self, Outcome};
use crate::auth::sessions::{self, SessionView};
use crate::auth::AuthUser;
use crate::meta::RequestMeta;

const DATE: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]");

#[derive(Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UserView {
    pub id: Uuid,
    /// donor, beneficiary, partner or staff.
    pub user_type: String,
    pub email: String,
    pub display_name: String,
    /// Staff roles granted by an admin.
    pub roles: Vec<String>,
    /// `YYYY-MM-DD`.
    pub sobriety_date: Option<String>,
    pub notification_preferences: serde_json::Value,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// The account's columns, of `users u`: read with the session check on every request
/// (`auth::sessions::live_account`), so a route that needs the account asks nothing more.
pub const ACCOUNT_COLUMNS: &str = "u.id, u.user_type::text AS user_type, u.email, u.display_name, u.roles, \
     u.sobriety_date, u.notification_preferences, u.created_at, u.identity_record_id";

/// The signed-in user's account, as the request's session check read it.
#[derive(Clone)]
pub struct Account {
    pub view: UserView,
    /// The PHI vault record holding the beneficiary's profile.
    pub identity_record_id: Option<Uuid>,
}

/// Only the id: the rest is personal.
impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account").field("id", &self.view.id).finish_non_exhaustive()
    }
}

impl Account {
    /// From a row of [`ACCOUNT_COLUMNS`].
    pub fn from_row(row: &PgRow) -> Result<Self, sqlx::Error> {
        let sobriety: Option<Date> = row.try_get("sobriety_date")?;
        Ok(Self {
            view: UserView {
                id: row.try_get("id")?,
                user_type: row.try_get("user_type")?,
                email: row.try_get("email")?,
                display_name: row.try_get("display_name")?,
                roles: row.try_get("roles")?,
                sobriety_date: sobriety.and_then(|d| d.format(DATE).ok()),
                notification_preferences: row.try_get("notification_preferences")?,
                created_at: row.try_get("created_at")?,
            },
            identity_record_id: row.try_get("identity_record_id")?,
        })
    }
}

async fn load(pool: &PgPool, id: Uuid) -> Result<UserView, ApiError> {
    let row = sqlx::query(&format!("SELECT {ACCOUNT_COLUMNS} FROM users u WHERE u.id = $1 AND u.deleted_at IS NULL"))
        .bind(id)
        .fetch_optional(pool)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Account::from_row(&row)?.view)
}

/// The signed-in user's account.
#[utoipa::path(get, path = "/api/v1/users/me", tag = "users", security(("bearer" = [])),
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
    pub display_name: Option<String>,
    /// `YYYY-MM-DD`, not in the future; `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub sobriety_date: Option<Option<String>>,
    /// An object of booleans, e.g. `{"email": true, "sms": false}`.
    pub notification_preferences: Option<serde_json::Map<String, serde_json::Value>>,
}

fn validate(patch: &UserPatch) -> Result<(Option<String>, Option<Option<Date>>), ApiError> {
    let name = match &patch.display_name {
        Some(n) => {
            let n = n.trim();
            common::json::printable("display_name", n, 1..=100, false)?;
            Some(n.to_owned())
        }
        None => None,
    };
    let date = match &patch.sobriety_date {
        Some(Some(s)) => {
            let d = Date::parse(s, DATE)
                .map_err(|_| ApiError::Unprocessable("sobriety_date: expected YYYY-MM-DD".into()))?;
            let today = OffsetDateTime::now_utc().date();
            if d > today || d.year() < 1900 {
                return Err(ApiError::Unprocessable("sobriety_date: must be a past date".into()));
            }
            Some(Some(d))
        }
        Some(None) => Some(None),
        None => None,
    };
    if let Some(prefs) = &patch.notification_preferences {
        if prefs.len() > 20 || prefs.values().any(|v| !v.is_boolean()) {
            return Err(ApiError::Unprocessable("notification_preferences: at most 20 boolean settings".into()));
        }
    }
    Ok((name, date))
}

/// Updates name, sobriety date or notification preferences.
#[utoipa::path(patch, path = "/api/v1/users/me", tag = "users", security(("bearer" = [])), request_body = UserPatch,
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
    let (name, date) = validate(&patch)?;
    let mut tx = pool.begin().await?;
    sqlx::query(
        "UPDATE users SET display_name = COALESCE($2, display_name), \
         sobriety_date = CASE WHEN $3 THEN $4 ELSE sobriety_date END, \
         notification_preferences = COALESCE($5, notification_preferences), updated_at = now() \
         WHERE id = $1 AND deleted_at IS NULL",
    )
    .bind(user.user_id)
    .bind(name)
    .bind(date.is_some())
    .bind(date.flatten())
    .bind(patch.notification_preferences.map(serde_json::Value::Object))
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        &meta.event(Some(user.user_id), "user.update", Some(("user", user.user_id.to_string())), Outcome::Success),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(load(pool, user.user_id).await?))
}

/// Closes the account: it is marked deleted and every session ends.
#[utoipa::path(delete, path = "/api/v1/users/me", tag = "users", security(("bearer" = [])),
    responses(
        (status = 204, description = "Account closed"),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
    ))]
#[delete("/users/me")]
pub async fn delete_me(user: AuthUser, pool: &State<PgPool>, meta: RequestMeta) -> Result<Status, ApiError> {
    let mut tx = pool.begin().await?;
    sqlx::query("UPDATE users SET deleted_at = now(), updated_at = now() WHERE id = $1 AND deleted_at IS NULL")
        .bind(user.user_id)
        .execute(&mut *tx)
        .await?;
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
#[utoipa::path(get, path = "/api/v1/users/me/sessions", tag = "users", security(("bearer" = [])),
    params(
        ("limit" = Option<i64>, Query, description = "1 to 100, default 20"),
        ("offset" = Option<i64>, Query, description = "Default 0"),
    ),
    responses(
        (status = 200, description = "A page of sessions", body = SessionPage),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 422, description = "Bad limit or offset", body = common::ErrorBody),
    ))]
#[get("/users/me/sessions?<limit>&<offset>")]
pub async fn my_sessions(
    user: AuthUser,
    limit: Option<&str>,
    offset: Option<&str>,
    pool: &State<PgPool>,
) -> Result<Json<SessionPage>, ApiError> {
    let (limit, offset) = sessions::page_params(limit, offset)?;
    let (sessions, next_offset) = sessions::open_page(pool, user.user_id, user.session_id, limit, offset).await?;
    Ok(Json(SessionPage { sessions, next_offset }))
}

/// Ends one of the caller's sessions. Another user's session id answers 404, like a missing one.
#[utoipa::path(delete, path = "/api/v1/users/me/sessions/{id}", tag = "users", security(("bearer" = [])),
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
