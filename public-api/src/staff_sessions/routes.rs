//! The admin's session routes: a user's open sessions, and ending them.

use rocket::serde::json::Json;
use rocket::{get, post, routes, Route, State};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use common::json::Body;
use common::ApiError;

use crate::audit::{self, Outcome};
use crate::auth::sessions::{self, SessionView};
use crate::auth::Admin;
use crate::meta::RequestMeta;
use crate::roles::{self, RoleError};

/// Whose sessions, and which page of them, as the query string sends it.
#[derive(Debug, rocket::FromForm)]
pub struct SessionFilter<'r> {
    pub user: Option<&'r str>,
    pub limit: Option<&'r str>,
    pub offset: Option<&'r str>,
}

/// A page of another user's open sessions, as an admin sees them.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserSessionPage {
    pub user_id: Uuid,
    pub sessions: Vec<SessionView>,
    /// Pass as `offset` for the next page; absent on the last page.
    pub next_offset: Option<i64>,
}

/// A user's open sessions (when they began and were last renewed, from which client and
/// address), for an admin answering "is this account in use, and from where?". Each read is
/// audited as `user.sessions_read` naming the admin and the user.
#[utoipa::path(get, operation_id = "staff_sessions_list", path = "/api/v1/staff/user-sessions", tag = "staff", security(("bearer" = [])),
    params(
        ("user" = String, Query, description = "The user: id or email"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "1 to 100, default 20"),
        ("offset" = Option<i64>, Query, minimum = 0, description = "Default 0"),
    ),
    responses(
        (status = 200, description = "A page of the user's open sessions, newest first", body = UserSessionPage),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not an admin", body = common::ErrorBody),
        (status = 404, description = "No such user", body = common::ErrorBody),
        (status = 422, description = "No user, or a bad limit or offset", body = common::ErrorBody),
    ))]
#[get("/staff/user-sessions?<filter..>")]
pub async fn user_sessions(
    admin: Admin,
    filter: SessionFilter<'_>,
    meta: RequestMeta,
    pool: &State<PgPool>,
) -> Result<Json<UserSessionPage>, ApiError> {
    let who = filter
        .user
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .ok_or_else(|| ApiError::Unprocessable("`user` is required: an id or an email".into()))?;
    let (limit, offset) = sessions::page_params(filter.limit, filter.offset)?;
    let target = roles::find_user(pool, who).await?;
    // The read is recorded before anything is shown: no audit row, no answer.
    audit::record_alone(
        pool,
        &meta.event(Some(admin.user_id()), "user.sessions_read", Some(("user", target.to_string())), Outcome::Success),
    )
    .await?;
    // `Uuid::nil()`: none of these is the admin's own current session.
    let (sessions, next_offset) = sessions::open_page(pool, target, Uuid::nil(), limit, offset).await?;
    Ok(Json(UserSessionPage { user_id: target, sessions, next_offset }))
}

/// An admin's request to end every open session of a user.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionRevocationRequest {
    /// The user: id or email.
    pub user: String,
    /// Why; kept in the audit log. Required.
    pub reason: String,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SessionRevocation {
    pub user_id: Uuid,
    /// How many open sessions ended (0 when there were none).
    pub sessions_ended: u64,
}

/// Ends every open session of a user at once (a lost laptop, a leaked token): their access
/// tokens stop working on the next request and their refresh tokens are spent. Audited as
/// `user.sessions_revoke` with the reason, in the same transaction.
#[utoipa::path(post, operation_id = "staff_sessions_revoke", path = "/api/v1/staff/session-revocations", tag = "staff", security(("bearer" = [])),
    request_body = SessionRevocationRequest,
    responses(
        (status = 200, description = "The user's sessions ended", body = SessionRevocation),
        (status = 400, description = "Malformed JSON", body = common::ErrorBody),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not an admin", body = common::ErrorBody),
        (status = 404, description = "No such user", body = common::ErrorBody),
        (status = 422, description = "No reason", body = common::ErrorBody),
    ))]
#[post("/staff/session-revocations", data = "<body>")]
pub async fn revoke_sessions(
    admin: Admin,
    body: Body<SessionRevocationRequest>,
    meta: RequestMeta,
    pool: &State<PgPool>,
) -> Result<Json<SessionRevocation>, ApiError> {
    let reason = roles::checked_reason(&body.0.reason)?;
    let target = roles::find_user(pool, body.0.user.trim()).await?;
    let mut tx = pool.begin().await?;
    // As for role changes: the acting admin is checked again under the roles lock, so an admin
    // whose role was revoked a moment ago acts no more.
    roles::queries::lock_roles(&mut tx).await?;
    if !roles::queries::still_admin(&mut tx, admin.user_id()).await? {
        return Err(RoleError::NotAdmin.into());
    }
    let sessions_ended = sessions::revoke_all(&mut tx, target, "revoked_by_admin").await?;
    let mut event =
        meta.event(Some(admin.user_id()), "user.sessions_revoke", Some(("user", target.to_string())), Outcome::Success);
    event.reason = Some(reason);
    audit::record(&mut tx, &event).await?;
    tx.commit().await?;
    Ok(Json(SessionRevocation { user_id: target, sessions_ended }))
}

pub fn routes() -> Vec<Route> {
    routes![user_sessions, revoke_sessions]
}
