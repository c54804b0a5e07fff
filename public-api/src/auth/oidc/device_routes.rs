//! Sign-in from a device without a browser (the staff CLI): `POST /auth/{provider}/device` starts
//! it, `POST /auth/{provider}/device/token` polls it. The device holds a random handle; the
//! provider's device code stays here.

use rocket::http::Status;
use rocket::serde::json::Json;
use rocket::{post, Either, State};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use common::json::Body;
use common::ApiError;

use super::device::DevicePoll;
use super::provider::{OidcError, OidcProviders};
use super::queries::{self, NewDeviceLogin};
use super::rules::{provider_error, secret_hash, MAX_LIVE_DEVICE_LOGINS, POLL_LEASE_SECS};
use super::signin::{find_or_create, refuse};
use crate::audit::{self, Outcome};
use crate::auth::routes::{SignIn, TokenResponse};
use crate::meta::RequestMeta;

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

/// Starts sign-in for a device without a browser (the staff CLI) through the provider's device
/// authorization flow (RFC 8628), where `device_flow` is enabled for the provider. Existing
/// staff accounts only: a device cannot sign up, and other accounts sign in on the web. Each
/// start is audited; each sign-in notifies the account.
#[utoipa::path(post, operation_id = "auth_device_start", path = "/api/v1/auth/{provider}/device", tag = "auth", request_body = DeviceStartRequest,
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
    if queries::live_device_logins(pool).await? >= MAX_LIVE_DEVICE_LOGINS {
        return Err(ApiError::Unavailable("too many device sign-ins in progress; try again in a few minutes".into()));
    }
    let started = providers.start_device(provider, request.login_hint.as_deref()).await.map_err(|e| match e {
        OidcError::Config(m) | OidcError::Exchange(m) => {
            tracing::warn!(request_id = %meta.request_id, provider, error = %m, "device sign-in unavailable");
            ApiError::Unavailable("this provider does not offer sign-in from a device".into())
        }
        other => provider_error(other),
    })?;
    let handle = crate::auth::sessions::random_secret("swd")?;
    let mut tx = pool.begin().await?;
    let login = NewDeviceLogin {
        handle_hash: &secret_hash(&handle),
        provider,
        device_code: &started.device_code,
        nonce: &started.nonce,
        interval_secs: started.interval as i32,
        expires_in_secs: started.expires_in as f64,
    };
    queries::add_device_login(&mut tx, &login).await?;
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
#[utoipa::path(post, operation_id = "auth_device_token", path = "/api/v1/auth/{provider}/device/token", tag = "auth", request_body = DeviceTokenRequest,
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
) -> Result<Either<Json<TokenResponse>, (Status, Json<DevicePending>)>, ApiError> {
    let (pool, meta) = (sign_in.pool, &sign_in.meta);
    if providers.names().all(|n| n != provider) {
        return Err(ApiError::NotFound);
    }
    let hash = secret_hash(&body.into_inner().handle);
    // Claims this poll: only one at a time, and no sooner than the interval.
    let claimed = queries::claim_poll(pool, &hash, provider, POLL_LEASE_SECS).await?;
    let Some(queries::Poll { device_code, nonce, interval_secs: interval }) = claimed else {
        if queries::device_login_live(pool, &hash, provider).await? {
            return Err(ApiError::TooManyRequests("poll no faster than the interval".into()));
        }
        return Err(refuse(pool, meta, provider, "device sign-in: unknown, expired or used handle".into()).await);
    };
    let polled = providers.poll_device(provider, &device_code, &nonce).await;
    // The claim's lease ends with the answer: the next poll may come after the interval.
    queries::end_poll_lease(pool, &hash).await?;
    let user_id = match polled {
        Ok(DevicePoll::Pending) => {
            return Ok(Either::Right((
                Status::Accepted,
                Json(DevicePending { status: "pending".into(), interval: interval.into() }),
            )))
        }
        Ok(DevicePoll::SlowDown) => {
            let interval = (interval + 5).min(60);
            queries::slow_down(pool, &hash, interval).await?;
            return Ok(Either::Right((
                Status::Accepted,
                Json(DevicePending { status: "pending".into(), interval: interval.into() }),
            )));
        }
        Ok(DevicePoll::Ended(reason)) => return Err(end_device(pool, meta, provider, &hash, reason).await),
        Err(OidcError::Unreachable(m)) => return Err(ApiError::Unavailable(format!("identity provider: {m}"))),
        Err(e) => return Err(end_device(pool, meta, provider, &hash, e.to_string()).await),
        Ok(DevicePoll::Done(identity)) => {
            // Used once: a second poll that raced this one finds it consumed.
            if !queries::consume_device_login(pool, &hash).await? {
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
            if !queries::is_staff(pool, user_id).await? {
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
    if let Err(e) = queries::consume_device_login(pool, hash).await {
        return e.into();
    }
    refuse(pool, meta, provider, format!("device sign-in: {reason}")).await
}
