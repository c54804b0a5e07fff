//! The web sign-in: `POST /auth/{provider}/start` and `POST /auth/{provider}` (or its form-post
//! twin, `/auth/{provider}/form-callback`), the two halves of the authorization code flow with
//! Google, Apple, or any configured provider.
//!
//! Each attempt is bound to the browser that started it (login CSRF): `/start` sets the
//! `__Host-sw_signin` cookie to a random value (or keeps the one this browser already holds,
//! so two tabs can sign in at once) and stores its SHA-256 with the attempt; a callback consumes
//! the attempt only with the cookie whose hash matches. An attacker who auto-posts their own
//! `code` and `state` into a victim's browser finds no attempt there, so the victim is never
//! signed into the attacker's account. The cookie is `SameSite=None`: Apple's form post is a
//! cross-site POST, which `Lax` or `Strict` would send without it. Being `__Host-`, it is Secure,
//! host-only and on `/`, so no other site or subdomain can set it; being HttpOnly, no script
//! reads it.

use rocket::http::{Cookie, CookieJar, SameSite};
use rocket::serde::json::Json;
use rocket::{post, routes, Route, State};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use common::json::Body;
use common::ApiError;

use super::device_routes::{device_start, device_token};
use super::provider::{OidcError, OidcProviders};
use super::queries;
use super::rules::{
    apple_name, is_binding, provider_error, secret_hash, ATTEMPT_TTL_SECS, BROWSER_COOKIE, SIGN_IN_AGAIN, SIGN_UP_TYPES,
};
use super::signin::{audit_refusal, find_or_create, refuse};
use crate::audit::{self, Outcome};
use crate::auth::routes::{SignIn, TokenResponse};

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

/// Starts sign-in with a provider: returns the authorization URL (PKCE S256, state, nonce) and
/// binds the attempt to this browser through the `__Host-sw_signin` cookie (send the request
/// with credentials, and the callback too).
#[utoipa::path(post, operation_id = "auth_oidc_start", path = "/api/v1/auth/{provider}/start", tag = "auth", request_body = StartRequest,
    params(("provider" = String, Path, description = "google, apple, or another configured provider")),
    responses(
        (status = 200, description = "Where to send the browser; the `__Host-sw_signin` cookie is set (HttpOnly, Secure, SameSite=None, Path=/)", body = StartResponse),
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
    jar: &CookieJar<'_>,
) -> Result<Json<StartResponse>, ApiError> {
    let request = body.into_inner();
    if let Some(t) = &request.user_type {
        if !SIGN_UP_TYPES.contains(&t.as_str()) {
            return Err(ApiError::Unprocessable("user_type: donor, beneficiary or partner".into()));
        }
    }
    let started = providers.start(provider, request.login_hint.as_deref()).await.map_err(provider_error)?;
    let binding = match jar.get(BROWSER_COOKIE).map(Cookie::value) {
        Some(held) if is_binding(held) => held.to_owned(),
        _ => openidconnect::CsrfToken::new_random_len(32).secret().clone(),
    };
    let hash = secret_hash(&binding);
    queries::add_attempt(pool, provider, &started, request.user_type.as_deref(), &hash, ATTEMPT_TTL_SECS).await?;
    jar.add(
        Cookie::build((BROWSER_COOKIE, binding))
            .http_only(true)
            .secure(true)
            .same_site(SameSite::None)
            .path("/")
            .max_age(rocket::time::Duration::seconds(ATTEMPT_TTL_SECS)),
    );
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

/// Completes sign-in: exchanges the code, verifies the id_token, finds or creates the account,
/// opens a session. Every failure is audited.
#[utoipa::path(post, operation_id = "auth_oidc_callback", path = "/api/v1/auth/{provider}", tag = "auth", request_body = CallbackRequest,
    params(("provider" = String, Path, description = "google, apple, or another configured provider")),
    responses(
        (status = 200, description = "Signed in; the refresh token is in the `sw_refresh` cookie", body = TokenResponse),
        (status = 401, description = "Unknown, expired or replayed state, or one another browser started (no matching `__Host-sw_signin` cookie); code refused; id_token invalid", body = common::ErrorBody),
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
    let attempt = Attempt { code: &request.code, state: &request.state, apple_user: request.user.as_deref() };
    let (user_id, tx) = complete(provider, attempt, providers, &sign_in).await?;
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
/// (everything else, refused tokens and states among it, and a state this browser did not start).
/// The single-use state bound to the browser's `__Host-sw_signin` cookie is the CSRF defence
/// here (the post comes from the provider's origin).
#[utoipa::path(post, operation_id = "auth_oidc_form_callback", path = "/api/v1/auth/{provider}/form-callback", tag = "auth",
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
            let attempt = Attempt { code, state, apple_user: form.user.as_deref() };
            match complete(provider, attempt, providers, &sign_in).await {
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

/// What a callback brings back from the provider.
struct Attempt<'a> {
    code: &'a str,
    state: &'a str,
    /// Apple's first-sign-in `user` field.
    apple_user: Option<&'a str>,
}

/// Both callbacks: consumes the single-use attempt this browser started, exchanges the code,
/// verifies the id_token, and finds or creates the account, in a transaction the caller opens
/// the session in.
async fn complete(
    provider: &str,
    attempt: Attempt<'_>,
    providers: &OidcProviders,
    sign_in: &SignIn<'_>,
) -> Result<(Uuid, sqlx::Transaction<'static, sqlx::Postgres>), ApiError> {
    let (pool, meta) = (sign_in.pool, &sign_in.meta);
    let Attempt { code, state, apple_user } = attempt;
    if providers.names().all(|n| n != provider) {
        return Err(ApiError::NotFound);
    }
    let Some(binding) = sign_in.jar.get(BROWSER_COOKIE).map(Cookie::value).filter(|v| is_binding(v)) else {
        return Err(refuse(pool, meta, provider, "no sign-in cookie: this browser started no sign-in".into()).await);
    };
    // Single use: a replayed state (and so a replayed nonce) finds nothing; nor does another
    // browser's state.
    let Some(queries::Attempt { nonce, pkce_verifier, user_type }) =
        queries::consume_attempt(pool, state, provider, &secret_hash(binding)).await?
    else {
        let reason = "unknown, expired or already used state, or one this browser did not start";
        return Err(refuse(pool, meta, provider, reason.into()).await);
    };
    let identity = match providers.finish(provider, code, &pkce_verifier, &nonce).await {
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

pub fn routes() -> Vec<Route> {
    routes![start, callback, form_callback, device_start, device_token]
}
