//! `POST /auth/dev-login` (dev profile only), `POST /auth/refresh`, `POST /auth/token-refresh`
//! (clients that are not browsers), `POST /auth/logout`.

use rocket::http::{Cookie, CookieJar, SameSite, Status};
use rocket::request::{FromRequest, Outcome as GuardOutcome};
use rocket::serde::json::Json;
use rocket::{post, routes, Request, Route, State};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use common::json::Body;
use common::{ApiError, UserRole};

use super::sessions::{self, Refresh};
use super::{AuthSettings, AuthUser, TokenKeys, REFRESH_COOKIE, REFRESH_COOKIE_PATH};
use crate::audit::{self, Outcome};
use crate::meta::RequestMeta;

/// What a successful login or refresh returns. The refresh token travels in the `sw_refresh`
/// cookie (HttpOnly, Secure, SameSite=Strict, Path=/api/v1/auth), never in this body: a client
/// that is not a browser reads the cookie from the response and refreshes through
/// `/auth/token-refresh`, where it travels in the body.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    pub user_id: Uuid,
    pub session_id: Uuid,
}

fn set_refresh_cookie(jar: &CookieJar<'_>, token: String, ttl_days: u32) {
    jar.add(
        Cookie::build((REFRESH_COOKIE, token))
            .http_only(true)
            .secure(true)
            .same_site(SameSite::Strict)
            .path(REFRESH_COOKIE_PATH)
            .max_age(rocket::time::Duration::days(ttl_days.into())),
    );
}

fn clear_refresh_cookie(jar: &CookieJar<'_>) {
    jar.remove(Cookie::build(REFRESH_COOKIE).path(REFRESH_COOKIE_PATH));
}

/// Issues the tokens of a session just opened or refreshed.
fn tokens_for(
    keys: &TokenKeys,
    user_id: Uuid,
    session_id: Uuid,
    roles: Vec<UserRole>,
) -> Result<Json<TokenResponse>, ApiError> {
    let access_token = keys.issue(user_id, session_id, roles).map_err(ApiError::internal)?;
    Ok(Json(TokenResponse {
        access_token,
        token_type: "Bearer".into(),
        expires_in: keys.ttl_secs(),
        user_id,
        session_id,
    }))
}

/// Everything that opening or refreshing a session needs, as one request guard.
pub struct SignIn<'r> {
    pub pool: &'r PgPool,
    pub settings: &'r AuthSettings,
    pub keys: &'r TokenKeys,
    pub jar: &'r CookieJar<'r>,
    pub meta: RequestMeta,
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for SignIn<'r> {
    type Error = ();

    async fn from_request(request: &'r Request<'_>) -> GuardOutcome<Self, ()> {
        let rocket = request.rocket();
        let (Some(pool), Some(settings), Some(keys)) =
            (rocket.state::<PgPool>(), rocket.state::<AuthSettings>(), rocket.state::<TokenKeys>())
        else {
            tracing::error!("auth state is not managed");
            return GuardOutcome::Error((Status::InternalServerError, ()));
        };
        let jar = match request.guard::<&CookieJar<'r>>().await {
            GuardOutcome::Success(jar) => jar,
            _ => return GuardOutcome::Error((Status::InternalServerError, ())),
        };
        GuardOutcome::Success(SignIn { pool, settings, keys, jar, meta: RequestMeta::of(request) })
    }
}

impl SignIn<'_> {
    /// Opens a session for `user_id` and writes the login to the audit log, in one transaction.
    pub async fn open_session(&self, user_id: Uuid, action: &'static str) -> Result<Json<TokenResponse>, ApiError> {
        self.open_session_telling(user_id, action, false).await
    }

    /// Opens a session; with `tell`, the person is also notified (and emailed) that a new
    /// device signed in, in the same transaction.
    pub async fn open_session_telling(
        &self,
        user_id: Uuid,
        action: &'static str,
        tell: bool,
    ) -> Result<Json<TokenResponse>, ApiError> {
        self.open_session_in(self.pool.begin().await?, user_id, action, tell).await
    }

    /// Opens the session in `tx`, which may already hold the account it is for (a first
    /// sign-in creates the account, the session and the audit row in one transaction, so no
    /// account exists without the row that says how it came to be).
    pub async fn open_session_in(
        &self,
        mut tx: sqlx::Transaction<'static, sqlx::Postgres>,
        user_id: Uuid,
        action: &'static str,
        tell: bool,
    ) -> Result<Json<TokenResponse>, ApiError> {
        let roles = sessions::roles_of(&mut tx, user_id).await?.ok_or(ApiError::Unauthorized)?;
        let (session_id, refresh) = sessions::create(
            &mut tx,
            user_id,
            self.settings.session_ttl_days,
            self.meta.user_agent.as_deref(),
            self.meta.ip.map(|ip| ip.to_string()),
        )
        .await?;
        let event = self.meta.event(Some(user_id), action, Some(("session", session_id.to_string())), Outcome::Success);
        audit::record(&mut tx, &event).await?;
        if tell {
            crate::notifications::add(&mut tx, user_id, &crate::notifications::Notice::device_sign_in(session_id))
                .await?;
        }
        let response = tokens_for(self.keys, user_id, session_id, roles)?;
        tx.commit().await?;
        set_refresh_cookie(self.jar, refresh, self.settings.session_ttl_days);
        Ok(response)
    }
}

/// The demo accounts `dev-login` offers, one of each type and staff role.
pub const DEMO_USERS: [(&str, &str, &str, &[&str]); 6] = [
    ("donor", "00000000-0000-4000-8000-000000000001", "donor", &[]),
    ("beneficiary", "00000000-0000-4000-8000-000000000002", "beneficiary", &[]),
    ("partner", "00000000-0000-4000-8000-000000000003", "partner", &[]),
    ("caseworker", "00000000-0000-4000-8000-000000000004", "staff", &["caseworker"]),
    ("admin", "00000000-0000-4000-8000-000000000005", "staff", &["admin"]),
    ("compliance_officer", "00000000-0000-4000-8000-000000000006", "staff", &["compliance_officer"]),
];

/// Creates the demo accounts if missing (dev profile with `dev_login` only).
pub async fn seed_demo_users(pool: &PgPool) -> Result<(), sqlx::Error> {
    for (name, id, user_type, roles) in DEMO_USERS {
        let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
        sqlx::query!(
            "INSERT INTO users (id, user_type, email, display_name, roles) \
             VALUES ($1::text::uuid, $2::text::user_type, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
            id,
            user_type,
            format!("demo+{name}@secondwind.invalid"),
            format!("Demo {}", name.replace('_', " ")),
            &roles,
        )
        .execute(pool)
        .await?;
    }
    Ok(())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DevLoginRequest {
    /// One of: donor, beneficiary, partner, caseworker, admin, compliance_officer.
    pub user: String,
}

/// Dev profile only: sign in as a seeded demo user. Not mounted in production.
#[utoipa::path(post, operation_id = "auth_dev_login", path = "/api/v1/auth/dev-login", tag = "auth", request_body = DevLoginRequest,
    responses(
        (status = 200, description = "Signed in; the refresh token is in the `sw_refresh` cookie", body = TokenResponse),
        (status = 404, description = "No such demo user (or dev login is off)", body = common::ErrorBody),
        (status = 415, description = "Body is not JSON", body = common::ErrorBody),
        (status = 422, description = "Invalid body", body = common::ErrorBody),
    ))]
#[post("/auth/dev-login", data = "<body>")]
pub async fn dev_login(body: Body<DevLoginRequest>, sign_in: SignIn<'_>) -> Result<Json<TokenResponse>, ApiError> {
    let (_, id, _, _) = DEMO_USERS.iter().find(|(name, ..)| *name == body.0.user).ok_or(ApiError::NotFound)?;
    let user_id = Uuid::parse_str(id).map_err(ApiError::internal)?;
    sign_in.open_session(user_id, "auth.login").await
}

/// Refuses cookie-authenticated requests from origins not on the allowlist (CSRF defence on top
/// of SameSite=Strict).
fn check_origin(settings: &AuthSettings, meta: &RequestMeta) -> Result<(), ApiError> {
    match &meta.origin {
        Some(origin) if settings.allows_origin(origin) => Ok(()),
        other => {
            tracing::warn!(request_id = %meta.request_id, origin = ?other, "refresh refused: origin not allowed");
            Err(ApiError::Forbidden)
        }
    }
}

/// Exchanges the refresh cookie for a new access token and a new refresh cookie. Presenting a
/// refresh token that was already used revokes its whole session, unless the same client (address
/// and user agent) retries within `refresh_retry_leeway_secs` while the new token is unused: then
/// it gets that same new refresh token again.
#[utoipa::path(post, operation_id = "auth_refresh", path = "/api/v1/auth/refresh", tag = "auth",
    params(("Origin" = String, Header, description = "Must be an allowed origin")),
    responses(
        (status = 200, description = "Rotated; a new `sw_refresh` cookie is set", body = TokenResponse),
        (status = 401, description = "No, unknown, expired, revoked or reused refresh token", body = common::ErrorBody),
        (status = 403, description = "Origin not allowed", body = common::ErrorBody),
    ))]
#[post("/auth/refresh")]
pub async fn refresh(sign_in: SignIn<'_>) -> Result<Json<TokenResponse>, ApiError> {
    check_origin(sign_in.settings, &sign_in.meta)?;
    let Some(presented) = sign_in.jar.get(REFRESH_COOKIE).map(|c| c.value().to_owned()) else {
        return Err(ApiError::Unauthorized);
    };
    match rotate(&sign_in, &presented, "auth.refresh").await {
        Ok((response, token)) => {
            set_refresh_cookie(sign_in.jar, token, sign_in.settings.session_ttl_days);
            Ok(response)
        }
        Err(e) => {
            clear_refresh_cookie(sign_in.jar);
            Err(e)
        }
    }
}

/// A refresh token presented in the body, by a client that is not a browser.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRefreshRequest {
    pub refresh_token: String,
}

/// A new access token and the refresh token that replaces the one presented.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenRefreshResponse {
    #[serde(flatten)]
    pub tokens: TokenResponse,
    /// Use this next time; the one presented is spent.
    pub refresh_token: String,
}

/// For clients that are not browsers (the staff CLI): the refresh token travels in the body,
/// never in a cookie, so no page can make a browser send it and no origin check is needed. The
/// same rotation and reuse detection as `/auth/refresh`: presenting a spent token revokes the
/// whole session.
#[utoipa::path(post, operation_id = "auth_token_refresh", path = "/api/v1/auth/token-refresh", tag = "auth", request_body = TokenRefreshRequest,
    responses(
        (status = 200, description = "Rotated", body = TokenRefreshResponse),
        (status = 401, description = "Unknown, expired, idle, revoked or reused refresh token", body = common::ErrorBody),
        (status = 403, description = "Sent by a browser (an Origin header): browsers use /auth/refresh", body = common::ErrorBody),
        (status = 422, description = "Invalid body", body = common::ErrorBody),
        (status = 503, description = "The database is unavailable", body = common::ErrorBody),
    ))]
#[post("/auth/token-refresh", data = "<body>")]
pub async fn token_refresh(
    body: Body<TokenRefreshRequest>,
    sign_in: SignIn<'_>,
) -> Result<Json<TokenRefreshResponse>, ApiError> {
    // Browsers keep their refresh token in the HttpOnly cookie; this route is not for them
    // (a page script holding a refresh token would undo that).
    if sign_in.meta.origin.is_some() {
        return Err(ApiError::Forbidden);
    }
    let (Json(tokens), refresh_token) =
        rotate(&sign_in, &body.into_inner().refresh_token, "auth.token_refresh").await?;
    Ok(Json(TokenRefreshResponse { tokens, refresh_token }))
}

/// Rotates a presented refresh token in one transaction with its audit row: the new access
/// token and the new refresh token, or 401 (a reuse revokes the session).
async fn rotate(
    sign_in: &SignIn<'_>,
    presented: &str,
    action: &'static str,
) -> Result<(Json<TokenResponse>, String), ApiError> {
    let (pool, keys, meta) = (sign_in.pool, sign_in.keys, &sign_in.meta);
    let mut tx = pool.begin().await?;
    let client = super::retry::client_hash(presented, meta.ip, meta.user_agent.as_deref());
    let rules = sessions::RotateRules {
        idle_hours: sign_in.settings.session_idle_hours,
        retry_leeway_secs: sign_in.settings.refresh_retry_leeway_secs.min(60),
        client: &client,
    };
    let outcome = sessions::rotate(&mut tx, presented, rules).await?;
    match outcome {
        Refresh::Rotated { user_id, session_id, roles, token, retried } => {
            let mut event =
                meta.event(Some(user_id), action, Some(("session", session_id.to_string())), Outcome::Success);
            if retried {
                event.reason = Some("a retry within the leeway: the token the first try was given".into());
            }
            audit::record(&mut tx, &event).await?;
            let response = tokens_for(keys, user_id, session_id, roles)?;
            tx.commit().await?;
            Ok((response, token))
        }
        Refresh::Reused { user_id, session_id } => {
            tracing::warn!(request_id = %meta.request_id, %session_id, "refresh token reuse: session revoked");
            audit::record(
                &mut tx,
                &meta.event(
                    Some(user_id),
                    "auth.refresh_reuse_detected",
                    Some(("session", session_id.to_string())),
                    Outcome::Denied,
                ),
            )
            .await?;
            tx.commit().await?;
            Err(ApiError::Unauthorized)
        }
        Refresh::Invalid { session_id, user_id } => {
            audit::record(
                &mut tx,
                &meta.event(user_id, action, session_id.map(|s| ("session", s.to_string())), Outcome::Failure),
            )
            .await?;
            tx.commit().await?;
            Err(ApiError::Unauthorized)
        }
    }
}

/// Ends the current session at once: its access token stops working on the next request.
#[utoipa::path(post, operation_id = "auth_logout", path = "/api/v1/auth/logout", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 204, description = "Signed out"),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
    ))]
#[post("/auth/logout")]
pub async fn logout(
    user: AuthUser,
    pool: &State<PgPool>,
    jar: &CookieJar<'_>,
    meta: RequestMeta,
) -> Result<Status, ApiError> {
    let mut tx = pool.begin().await?;
    sessions::revoke(&mut tx, user.session_id, user.user_id, "logout").await?;
    audit::record(
        &mut tx,
        &meta.event(
            Some(user.user_id),
            "auth.logout",
            Some(("session", user.session_id.to_string())),
            Outcome::Success,
        ),
    )
    .await?;
    tx.commit().await?;
    clear_refresh_cookie(jar);
    Ok(Status::NoContent)
}

pub fn routes(dev_login_enabled: bool) -> Vec<Route> {
    let mut list = routes![refresh, token_refresh, logout];
    if dev_login_enabled {
        list.extend(routes![dev_login]);
    }
    list
}
