//! `POST /auth/{provider}/start` and `POST /auth/{provider}` (Google, Apple, or any configured
//! provider): the two halves of the authorization code flow.

use rocket::serde::json::Json;
use rocket::{post, routes, Route, State};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use common::json::Body;
use common::ApiError;

use super::oidc::{DevicePoll, OidcError, OidcProviders, VerifiedIdentity};
use super::routes::{SignIn, TokenResponse};
use crate::audit::{self, Outcome};
use crate::meta::RequestMeta;

/// A sign-in attempt stays usable this long.
const ATTEMPT_TTL_SECS: i64 = 600;
const SIGN_UP_TYPES: [&str; 3] = ["donor", "beneficiary", "partner"];

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    /// For a new account: donor, beneficiary or partner. Ignored for an existing one.
    pub user_type: Option<String>,
    /// Passed to the provider to pre-select an account.
    pub login_hint: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StartResponse {
    /// Send the browser here.
    pub authorization_url: String,
    /// Echoed back by the provider; give it to the callback.
    pub state: String,
    pub expires_in: i64,
}

fn provider_error(e: OidcError) -> ApiError {
    match e {
        OidcError::UnknownProvider => ApiError::NotFound,
        OidcError::Unreachable(m) => ApiError::Unavailable(format!("identity provider: {m}")),
        other => ApiError::internal(other),
    }
}

/// Starts sign-in with a provider: returns the authorization URL (PKCE S256, state, nonce).
#[utoipa::path(post, path = "/api/v1/auth/{provider}/start", tag = "auth", request_body = StartRequest,
    params(("provider" = String, Path, description = "google, apple, or another configured provider")),
    responses(
        (status = 200, description = "Where to send the browser", body = StartResponse),
        (status = 404, description = "No such provider", body = common::ErrorBody),
        (status = 422, description = "Invalid body or user_type", body = common::ErrorBody),
        (status = 503, description = "The provider cannot be reached", body = common::ErrorBody),
    ))]
#[post("/auth/<provider>/start", data = "<body>")]
pub async fn start(
    provider: &str,
    body: Body<StartRequest>,
    providers: &State<OidcProviders>,
    pool: &State<PgPool>,
) -> Result<Json<StartResponse>, ApiError> {
    let request = body.into_inner();
    if let Some(t) = &request.user_type {
        if !SIGN_UP_TYPES.contains(&t.as_str()) {
            return Err(ApiError::Unprocessable("user_type: donor, beneficiary or partner".into()));
        }
    }
    let started = providers.start(provider, request.login_hint.as_deref()).await.map_err(provider_error)?;
    sqlx::query(
        "INSERT INTO oidc_logins (state, provider, nonce, pkce_verifier, user_type, expires_at) \
         VALUES ($1, $2, $3, $4, $5::user_type, now() + make_interval(secs => $6))",
    )
    .bind(&started.state)
    .bind(provider)
    .bind(&started.nonce)
    .bind(&started.pkce_verifier)
    .bind(request.user_type)
    .bind(ATTEMPT_TTL_SECS as f64)
    .execute(pool.inner())
    .await?;
    Ok(Json(StartResponse {
        authorization_url: started.authorization_url,
        state: started.state,
        expires_in: ATTEMPT_TTL_SECS,
    }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallbackRequest {
    /// The `code` the provider returned.
    pub code: String,
    /// The `state` the provider returned.
    pub state: String,
    /// Apple only: the `user` JSON it posts on the first sign-in (the only time it sends a name).
    pub user: Option<String>,
}

/// Apple's first-sign-in `user` field: `{"name":{"firstName":…,"lastName":…}}`.
fn apple_name(user: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(user).ok()?;
    let first = v["name"]["firstName"].as_str().unwrap_or_default();
    let last = v["name"]["lastName"].as_str().unwrap_or_default();
    let name = format!("{first} {last}").trim().to_owned();
    (!name.is_empty()).then_some(name)
}

/// Completes sign-in: exchanges the code, verifies the id_token, finds or creates the account,
/// opens a session. Every failure is audited.
#[utoipa::path(post, path = "/api/v1/auth/{provider}", tag = "auth", request_body = CallbackRequest,
    params(("provider" = String, Path, description = "google, apple, or another configured provider")),
    responses(
        (status = 200, description = "Signed in; the refresh token is in the `sw_refresh` cookie", body = TokenResponse),
        (status = 401, description = "Unknown, expired or replayed state; code refused; id_token invalid", body = common::ErrorBody),
        (status = 404, description = "No such provider", body = common::ErrorBody),
        (status = 409, description = "The email belongs to an account that signs in another way; or another sign-in of the same person created the account at the same moment (sign in again)", body = common::ErrorBody),
        (status = 422, description = "Invalid body, or a new account without user_type", body = common::ErrorBody),
        (status = 503, description = "The provider cannot be reached", body = common::ErrorBody),
    ))]
#[post("/auth/<provider>", data = "<body>", rank = 5)]
pub async fn callback(
    provider: &str,
    body: Body<CallbackRequest>,
    providers: &State<OidcProviders>,
    sign_in: SignIn<'_>,
) -> Result<Json<TokenResponse>, ApiError> {
    let request = body.into_inner();
    let (user_id, tx) = complete(
        provider,
        &request.code,
        &request.state,
        request.user.as_deref(),
        providers,
        sign_in.pool,
        &sign_in.meta,
    )
    .await?;
    sign_in.open_session_in(tx, user_id, "auth.login", false).await
}

/// What a provider posts back with `response_mode=form_post` (Apple).
#[derive(Debug, rocket::FromForm)]
pub struct FormCallback {
    pub code: Option<String>,
    pub state: Option<String>,
    pub user: Option<String>,
    /// e.g. `user_cancelled_authorize`.
    pub error: Option<String>,
}

/// For providers that answer with a form post (Apple): completes sign-in like the JSON callback,
/// sets the refresh cookie and sends the browser (303) to `service.auth.post_login_url`, where
/// the frontend calls `/auth/refresh` for an access token. Failures redirect with an `?error=`
/// code and no detail: `provider_unavailable`, `sign_up_needs_user_type`, `email_in_use`,
/// `sign_in_again` (another sign-in made the account at the same moment) or `sign_in_failed`
/// (everything else, refused tokens and states among it). The single-use state is the CSRF defence here (the
/// post comes from the provider's origin).
#[utoipa::path(post, path = "/api/v1/auth/{provider}/form-callback", tag = "auth",
    params(("provider" = String, Path, description = "A provider using response_mode=form_post (apple)")),
    request_body(content_type = "application/x-www-form-urlencoded", description = "code, state, user (first Apple sign-in), or error"),
    responses(
        (status = 303, description = "To the frontend: `?status=ok` with the refresh cookie set, or `?error=` one of `provider_unavailable`, `sign_up_needs_user_type`, `email_in_use`, `sign_in_again`, `sign_in_failed`"),
        (status = 404, description = "No such provider, or no post_login_url configured", body = common::ErrorBody),
    ))]
#[post("/auth/<provider>/form-callback", data = "<form>")]
pub async fn form_callback(
    provider: &str,
    form: rocket::form::Form<FormCallback>,
    providers: &State<OidcProviders>,
    sign_in: SignIn<'_>,
) -> Result<rocket::response::Redirect, ApiError> {
    let (pool, settings, meta) = (sign_in.pool, sign_in.settings, &sign_in.meta);
    let target = settings.post_login_url.clone().ok_or(ApiError::NotFound)?;
    if providers.names().all(|n| n != provider) {
        return Err(ApiError::NotFound);
    }
    let form = form.into_inner();
    let outcome = match (&form.code, &form.state, &form.error) {
        (Some(code), Some(state), None) => {
            match complete(provider, code, state, form.user.as_deref(), providers, pool, meta).await {
                Ok((user_id, tx)) => sign_in.open_session_in(tx, user_id, "auth.login", false).await.map(|_| ()),
                Err(e) => Err(e),
            }
        }
        _ => Err(refuse(pool, meta, provider, format!("provider answered error {:?}", form.error)).await),
    };
    let query = match outcome {
        Ok(()) => "status=ok",
        Err(ApiError::Unavailable(m)) => {
            tracing::warn!(request_id = %meta.request_id, error = %m, "sign-in: provider unavailable");
            "error=provider_unavailable"
        }
        Err(ApiError::Unprocessable(_)) => "error=sign_up_needs_user_type",
        Err(ApiError::Conflict(m)) if m == SIGN_IN_AGAIN => "error=sign_in_again",
        Err(ApiError::Conflict(_)) => "error=email_in_use",
        Err(_) => "error=sign_in_failed",
    };
    let separator = if target.contains('?') { '&' } else { '?' };
    Ok(rocket::response::Redirect::to(format!("{target}{separator}{query}")))
}

/// Both callbacks: consumes the single-use attempt, exchanges the code, verifies the id_token,
/// and finds or creates the account, in a transaction the caller opens the session in.
async fn complete(
    provider: &str,
    code: &str,
    state: &str,
    apple_user: Option<&str>,
    providers: &OidcProviders,
    pool: &PgPool,
    meta: &RequestMeta,
) -> Result<(Uuid, sqlx::Transaction<'static, sqlx::Postgres>), ApiError> {
    if providers.names().all(|n| n != provider) {
        return Err(ApiError::NotFound);
    }
    // Single use: a replayed state (and so a replayed nonce) finds nothing.
    let attempt: Option<(String, String, Option<String>)> = sqlx::query_as(
        "UPDATE oidc_logins SET consumed_at = now() WHERE state = $1 AND provider = $2 AND consumed_at IS NULL \
         AND expires_at > now() RETURNING nonce, pkce_verifier, user_type::text",
    )
    .bind(state)
    .bind(provider)
    .fetch_optional(pool)
    .await?;
    let Some((nonce, verifier, user_type)) = attempt else {
        return Err(refuse(pool, meta, provider, "unknown, expired or already used state".into()).await);
    };
    let identity = match providers.finish(provider, code, &verifier, &nonce).await {
        Ok(identity) => identity,
        Err(OidcError::Unreachable(m)) => return Err(ApiError::Unavailable(format!("identity provider: {m}"))),
        Err(e) => return Err(refuse(pool, meta, provider, e.to_string()).await),
    };
    let name = apple_user.and_then(apple_name);
    let mut tx = pool.begin().await?;
    match find_or_create(&mut tx, &identity, user_type.as_deref(), name).await {
        Ok((user_id, relinked_from)) => {
            if let Some(closed) = relinked_from {
                // The move is the only record that the closed account and the new one are the
                // same person at this provider: written with the account, by the proven person.
                let mut event = meta.event(
                    Some(user_id),
                    "auth.identity_relink",
                    Some(("user", closed.to_string())),
                    Outcome::Success,
                );
                event.reason =
                    Some(format!("the {provider} identity of closed account {closed} now leads to account {user_id}"));
                audit::record(&mut tx, &event).await?;
            }
            Ok((user_id, tx))
        }
        // A refused sign-up is audited like any refused sign-in (an email already in use may be
        // someone trying to take an account over), outside the transaction it rolls back.
        Err(e @ (ApiError::Conflict(_) | ApiError::Unprocessable(_))) => {
            drop(tx);
            audit_refusal(pool, meta, provider, e.to_string()).await?;
            Err(e)
        }
        Err(e) => Err(e),
    }
}

/// Audits a refused sign-in (the reason goes to the log and the audit row, not the client).
async fn refuse(pool: &PgPool, meta: &RequestMeta, provider: &str, reason: String) -> ApiError {
    match audit_refusal(pool, meta, provider, reason).await {
        Ok(()) => ApiError::Unauthorized,
        Err(e) => e,
    }
}

/// The failed `auth.login` row (no actor: none was proven) and its log line.
async fn audit_refusal(pool: &PgPool, meta: &RequestMeta, provider: &str, reason: String) -> Result<(), ApiError> {
    tracing::warn!(request_id = %meta.request_id, provider, reason = %reason, "sign-in refused");
    let mut event = meta.event(None, "auth.login", Some(("provider", provider.to_owned())), Outcome::Failure);
    event.reason = Some(reason);
    audit::record_alone(pool, &event).await.map(|_| ()).map_err(Into::into)
}

/// The account linked to this provider identity, or a new one of the type chosen at sign-up.
/// An email already used by another account is not linked silently (that would let whoever
/// controls an identity at any provider take over the account). Writes in `tx`, uncommitted.
/// With a new account, the closed account the identity led to until now, if any.
async fn find_or_create(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    identity: &VerifiedIdentity,
    user_type: Option<&str>,
    name: Option<String>,
) -> Result<(Uuid, Option<Uuid>), ApiError> {
    let existing: Option<Uuid> = sqlx::query_scalar(
        "SELECT i.user_id FROM identities i JOIN users u ON u.id = i.user_id \
         WHERE i.provider = $1 AND i.subject = $2 AND u.deleted_at IS NULL",
    )
    .bind(&identity.provider)
    .bind(&identity.subject)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(id) = existing {
        return Ok((id, None));
    }
    let user_type = user_type.ok_or_else(|| {
        ApiError::Unprocessable("user_type: choose donor, beneficiary or partner to create an account".into())
    })?;
    let email = match (&identity.email, identity.email_verified) {
        (Some(e), true) => e.clone(),
        _ => return Err(ApiError::Unprocessable("the provider did not share a verified email".into())),
    };
    let taken: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE lower(email) = lower($1) AND deleted_at IS NULL)")
            .bind(&email)
            .fetch_one(&mut **tx)
            .await?;
    if taken {
        return Err(ApiError::Conflict("an account with this email exists; sign in the way you did before".into()));
    }
    let id = Uuid::new_v4();
    let display = name
        .or_else(|| identity.name.clone())
        .unwrap_or_else(|| email.split('@').next().unwrap_or("member").to_owned());
    sqlx::query("INSERT INTO users (id, user_type, email, display_name) VALUES ($1, $2::user_type, $3, $4)")
        .bind(id)
        .bind(user_type)
        .bind(&email)
        .bind(display.chars().take(100).collect::<String>())
        .execute(&mut **tx)
        .await
        // The email was free when checked above, so another sign-in took it since: two first
        // sign-ins of one person at once (two tabs). The unique index lets one commit.
        .map_err(lost_race_on("users_email_live"))?;
    // The identity may still lead to a closed account. Read with that account under lock, so
    // neither changes before this transaction ends.
    let linked: Option<(Uuid, bool)> = sqlx::query_as(
        "SELECT i.user_id, u.deleted_at IS NOT NULL FROM identities i JOIN users u ON u.id = i.user_id \
         WHERE i.provider = $1 AND i.subject = $2 FOR UPDATE",
    )
    .bind(&identity.provider)
    .bind(&identity.subject)
    .fetch_optional(&mut **tx)
    .await?;
    match linked {
        // Linked to a live account since the lookup above: another sign-in of this identity won.
        Some((_, false)) => Err(lost_race()),
        // It moves to the new account; the closed one keeps its history, and the caller audits
        // the move. The link's `created_at` stays that of the identity's first sign-in.
        Some((closed, true)) => {
            sqlx::query("UPDATE identities SET user_id = $3 WHERE provider = $1 AND subject = $2")
                .bind(&identity.provider)
                .bind(&identity.subject)
                .bind(id)
                .execute(&mut **tx)
                .await?;
            Ok((id, Some(closed)))
        }
        None => {
            sqlx::query("INSERT INTO identities (provider, subject, user_id) VALUES ($1, $2, $3)")
                .bind(&identity.provider)
                .bind(&identity.subject)
                .bind(id)
                .execute(&mut **tx)
                .await
                // Another sign-in of this identity linked it first.
                .map_err(lost_race_on("identities_pkey"))?;
            Ok((id, None))
        }
    }
}

/// What the loser of two simultaneous first sign-ins is told: signing in again finds the account
/// the other one made. Refused as a taken email is (409, audited), not as a fault.
const SIGN_IN_AGAIN: &str = "another sign-in created this account at the same moment; sign in again";

fn lost_race() -> ApiError {
    ApiError::Conflict(SIGN_IN_AGAIN.into())
}

/// A write's error: the lost race where it broke `constraint`, else what it was.
fn lost_race_on(constraint: &'static str) -> impl Fn(sqlx::Error) -> ApiError {
    move |e| match &e {
        sqlx::Error::Database(d) if d.constraint() == Some(constraint) => lost_race(),
        _ => e.into(),
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceStartRequest {
    /// Passed to the provider to pre-select an account.
    pub login_hint: Option<String>,
}

/// What the device shows the person, and the handle it polls with.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeviceStartResponse {
    /// Secret to the device: give it to `/auth/{provider}/device/token`. Kept only hashed.
    pub handle: String,
    /// The code the person confirms at the provider.
    pub user_code: String,
    /// Where the person goes, on any device with a browser.
    pub verification_uri: String,
    /// The same, with the code filled in.
    pub verification_uri_complete: Option<String>,
    pub expires_in: i64,
    /// Seconds between polls.
    pub interval: i64,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceTokenRequest {
    pub handle: String,
}

/// Not yet: the person has not approved the device.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DevicePending {
    /// Always `pending`.
    pub status: String,
    /// Seconds to wait before polling again.
    pub interval: i64,
}

/// Device sign-ins in progress at once, across all providers.
const MAX_LIVE_DEVICE_LOGINS: i64 = 1000;
/// How long a poll holds its claim while it waits on the provider (its HTTP timeout is 10 s).
const POLL_LEASE_SECS: i32 = 15;

fn handle_hash(handle: &str) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, handle.as_bytes()).as_ref().to_vec()
}

/// Starts sign-in for a device without a browser (the staff CLI) through the provider's device
/// authorization flow (RFC 8628), where `device_flow` is enabled for the provider. Existing
/// staff accounts only: a device cannot sign up, and other accounts sign in on the web. Each
/// start is audited; each sign-in notifies the account.
#[utoipa::path(post, path = "/api/v1/auth/{provider}/device", tag = "auth", request_body = DeviceStartRequest,
    params(("provider" = String, Path, description = "A configured provider that offers the device flow")),
    responses(
        (status = 200, description = "Show the person the code and where to confirm it; poll with the handle", body = DeviceStartResponse),
        (status = 404, description = "No such provider", body = common::ErrorBody),
        (status = 422, description = "Invalid body", body = common::ErrorBody),
        (status = 503, description = "The provider cannot be reached, or offers no device flow", body = common::ErrorBody),
    ))]
#[post("/auth/<provider>/device", data = "<body>")]
pub async fn device_start(
    provider: &str,
    body: Body<DeviceStartRequest>,
    providers: &State<OidcProviders>,
    pool: &State<PgPool>,
    meta: RequestMeta,
) -> Result<Json<DeviceStartResponse>, ApiError> {
    let request = body.into_inner();
    if request.login_hint.as_deref().is_some_and(|h| h.is_empty() || h.len() > 320 || h.chars().any(char::is_control)) {
        return Err(ApiError::Unprocessable("login_hint: 1 to 320 printable characters".into()));
    }
    if providers.names().all(|n| n != provider) {
        return Err(ApiError::NotFound);
    }
    // A flood of anonymous starts would spend the provider's quota for this client.
    let live: i64 =
        sqlx::query_scalar("SELECT count(*) FROM oidc_device_logins WHERE consumed_at IS NULL AND expires_at > now()")
            .fetch_one(pool.inner())
            .await?;
    if live >= MAX_LIVE_DEVICE_LOGINS {
        return Err(ApiError::Unavailable("too many device sign-ins in progress; try again in a few minutes".into()));
    }
    let started = providers.start_device(provider, request.login_hint.as_deref()).await.map_err(|e| match e {
        OidcError::Config(m) | OidcError::Exchange(m) => {
            tracing::warn!(request_id = %meta.request_id, provider, error = %m, "device sign-in unavailable");
            ApiError::Unavailable("this provider does not offer sign-in from a device".into())
        }
        other => provider_error(other),
    })?;
    let handle = super::sessions::random_secret("swd")?;
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO oidc_device_logins (handle_hash, provider, device_code, nonce, interval_secs, next_poll_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, now(), now() + make_interval(secs => $6))",
    )
    .bind(handle_hash(&handle))
    .bind(provider)
    .bind(&started.device_code)
    .bind(&started.nonce)
    .bind(started.interval as i32)
    .bind(started.expires_in as f64)
    .execute(&mut *tx)
    .await?;
    // Who started it (address and user agent), for the day someone asks about a phished code;
    // in the transaction that stores the sign-in.
    let event = meta.event(None, "auth.device_start", Some(("provider", provider.to_owned())), Outcome::Success);
    audit::record(&mut tx, &event).await?;
    tx.commit().await?;
    Ok(Json(DeviceStartResponse {
        handle,
        user_code: started.user_code,
        verification_uri: started.verification_uri,
        verification_uri_complete: started.verification_uri_complete,
        expires_in: started.expires_in,
        interval: started.interval,
    }))
}

/// One poll of a device sign-in: 202 while the person has not approved it; once they have, the
/// session, as from any sign-in. Polling faster than the interval is 429. An unknown, expired,
/// declined or already used handle is 401 (audited), and that sign-in is over.
#[utoipa::path(post, path = "/api/v1/auth/{provider}/device/token", tag = "auth", request_body = DeviceTokenRequest,
    params(("provider" = String, Path, description = "The provider the sign-in started with")),
    responses(
        (status = 200, description = "Signed in; the refresh token is in the `sw_refresh` cookie", body = TokenResponse),
        (status = 202, description = "Not approved yet: poll again after `interval` seconds", body = DevicePending),
        (status = 401, description = "Unknown, expired, declined or used handle; id_token invalid; no staff account for this identity", body = common::ErrorBody),
        (status = 404, description = "No such provider", body = common::ErrorBody),
        (status = 429, description = "Polled faster than the interval", body = common::ErrorBody),
        (status = 503, description = "The provider cannot be reached", body = common::ErrorBody),
    ))]
#[post("/auth/<provider>/device/token", data = "<body>")]
pub async fn device_token(
    provider: &str,
    body: Body<DeviceTokenRequest>,
    providers: &State<OidcProviders>,
    sign_in: SignIn<'_>,
) -> Result<rocket::Either<Json<TokenResponse>, (rocket::http::Status, Json<DevicePending>)>, ApiError> {
    use rocket::Either;
    let (pool, meta) = (sign_in.pool, &sign_in.meta);
    if providers.names().all(|n| n != provider) {
        return Err(ApiError::NotFound);
    }
    let hash = handle_hash(&body.into_inner().handle);
    // Claims this poll: only one at a time, and no sooner than the interval.
    let claimed: Option<(String, String, i32)> = sqlx::query_as(
        "UPDATE oidc_device_logins SET next_poll_at = now() + make_interval(secs => greatest(interval_secs, $3)) \
         WHERE handle_hash = $1 AND provider = $2 AND consumed_at IS NULL AND expires_at > now() \
         AND next_poll_at <= now() RETURNING device_code, nonce, interval_secs",
    )
    .bind(&hash)
    .bind(provider)
    .bind(POLL_LEASE_SECS)
    .fetch_optional(pool)
    .await?;
    let Some((device_code, nonce, interval)) = claimed else {
        let live: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM oidc_device_logins WHERE handle_hash = $1 AND provider = $2 \
             AND consumed_at IS NULL AND expires_at > now())",
        )
        .bind(&hash)
        .bind(provider)
        .fetch_one(pool)
        .await?;
        if live {
            return Err(ApiError::TooManyRequests("poll no faster than the interval".into()));
        }
        return Err(refuse(pool, meta, provider, "device sign-in: unknown, expired or used handle".into()).await);
    };
    let polled = providers.poll_device(provider, &device_code, &nonce).await;
    // The claim's lease ends with the answer: the next poll may come after the interval.
    sqlx::query(
        "UPDATE oidc_device_logins SET next_poll_at = now() + make_interval(secs => interval_secs) \
         WHERE handle_hash = $1 AND consumed_at IS NULL",
    )
    .bind(&hash)
    .execute(pool)
    .await?;
    let user_id = match polled {
        Ok(DevicePoll::Pending) => {
            return Ok(Either::Right((
                rocket::http::Status::Accepted,
                Json(DevicePending { status: "pending".into(), interval: interval.into() }),
            )))
        }
        Ok(DevicePoll::SlowDown) => {
            let interval = (interval + 5).min(60);
            sqlx::query(
                "UPDATE oidc_device_logins SET interval_secs = $2, next_poll_at = now() + make_interval(secs => $2) \
                 WHERE handle_hash = $1",
            )
            .bind(&hash)
            .bind(interval)
            .execute(pool)
            .await?;
            return Ok(Either::Right((
                rocket::http::Status::Accepted,
                Json(DevicePending { status: "pending".into(), interval: interval.into() }),
            )));
        }
        Ok(DevicePoll::Ended(reason)) => return Err(end_device(pool, meta, provider, &hash, reason).await),
        Err(OidcError::Unreachable(m)) => return Err(ApiError::Unavailable(format!("identity provider: {m}"))),
        Err(e) => return Err(end_device(pool, meta, provider, &hash, e.to_string()).await),
        Ok(DevicePoll::Done(identity)) => {
            // Used once: a second poll that raced this one finds it consumed.
            let first: Option<i32> = sqlx::query_scalar(
                "UPDATE oidc_device_logins SET consumed_at = now() WHERE handle_hash = $1 AND consumed_at IS NULL \
                 RETURNING 1",
            )
            .bind(&hash)
            .fetch_optional(pool)
            .await?;
            if first.is_none() {
                return Err(refuse(pool, meta, provider, "device sign-in: already used".into()).await);
            }
            // Finds only (no user type is offered): the transaction is rolled back, and its
            // connection returned, before anything else happens.
            let found = {
                let mut tx = pool.begin().await?;
                find_or_create(&mut tx, &identity, None, None).await
            };
            let user_id = match found {
                Ok((id, _)) => id,
                Err(ApiError::Unprocessable(_)) => {
                    let reason = format!("device sign-in: no account for identity {}", identity.subject);
                    return Err(refuse(pool, meta, provider, reason).await);
                }
                Err(e) => return Err(e),
            };
            // Staff only: beneficiaries, donors and partners sign in through the web app, so a
            // phished device code cannot open their records.
            let staff: bool = sqlx::query_scalar(
                "SELECT user_type = 'staff' AND cardinality(roles) > 0 FROM users WHERE id = $1 AND deleted_at IS NULL",
            )
            .bind(user_id)
            .fetch_optional(pool)
            .await?
            .unwrap_or(false);
            if !staff {
                let reason = format!("device sign-in: account {user_id} is not a staff account");
                return Err(refuse(pool, meta, provider, reason).await);
            }
            user_id
        }
    };
    sign_in.open_session_telling(user_id, "auth.device_login", true).await.map(Either::Left)
}

/// Ends a device sign-in that cannot succeed, and audits why.
async fn end_device(pool: &PgPool, meta: &RequestMeta, provider: &str, hash: &[u8], reason: String) -> ApiError {
    if let Err(e) =
        sqlx::query("UPDATE oidc_device_logins SET consumed_at = now() WHERE handle_hash = $1 AND consumed_at IS NULL")
            .bind(hash)
            .execute(pool)
            .await
    {
        return e.into();
    }
    refuse(pool, meta, provider, format!("device sign-in: {reason}")).await
}

pub fn routes() -> Vec<Route> {
    routes![start, callback, form_callback, device_start, device_token]
}

#[cfg(test)]
mod tests {
    #[test]
    fn apple_sends_the_name_once_as_json() {
        assert_eq!(
            super::apple_name(r#"{"name":{"firstName":"Ana","lastName":"Ruiz"},"email":"x"}"#).as_deref(),
            Some("Ana Ruiz")
        );
        assert_eq!(super::apple_name("not json"), None);
        assert_eq!(super::apple_name(r#"{"email":"x"}"#), None);
    }
}
