//! Identity in public-api: short-lived access tokens (EdDSA JWT, ≤ 15 min, `kid` for key
//! rotation), opaque refresh tokens rotated on every use, sessions that revoke at once, and the
//! access policy of `policies/roles.toml`.
//!
//! [`AuthUser`] is the only way a handler learns who is calling. It verifies the token, checks
//! the session is live in the database on every request (a revoked session stops working
//! immediately, not at expiry), and checks that the caller's roles grant the permission the
//! matched route declares. Failures get a generic 401/403; the exact reason is logged.

pub mod guards;
pub mod oidc;
pub mod policy;
mod retry;
pub mod routes;
pub mod sessions;
pub mod tokens;

use std::path::PathBuf;

use rocket::http::Status;
use rocket::request::{FromRequest, Outcome};
use rocket::Request;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use common::error::ErrorMessage;
use common::{RequestId, UserRole};

pub use guards::{Admin, Beneficiary, Caseworker, ComplianceOfficer, Partner, Reviewer};
pub use policy::{Access, AccessPolicy};
pub use tokens::{AccessClaims, TokenKeys};

/// `[service.auth]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// `iss` of access tokens.
    pub issuer: String,
    /// Access-token lifetime, at most 900 s.
    pub access_ttl_secs: u64,
    /// Refresh-token (session) lifetime.
    pub session_ttl_days: u32,
    /// A session not renewed for this long ends (automatic logoff, HIPAA §164.312(a)(2)(iii)):
    /// its refresh token is refused and the session revoked. At most 24.
    pub session_idle_hours: u32,
    /// How long after a refresh the same client (address and user agent) may present the token
    /// it exchanged and get the same new one, instead of having the session revoked as reuse
    /// (a lost answer, two tabs at once). At most 60; 0 turns it off.
    pub refresh_retry_leeway_secs: u32,
    /// User-token signing keys (Ed25519 PKCS#8 PEM). The first signs; all verify, so a retired
    /// key stays listed until the tokens it signed have expired.
    pub signing_keys: Vec<SigningKeyEntry>,
    /// `policies/roles.toml`.
    pub roles_file: PathBuf,
    /// Dev profile only: `POST /auth/dev-login` issues tokens for seeded demo users.
    pub dev_login: bool,
    /// Origins allowed to use the refresh cookie (and, with CORS, to call the API).
    pub allowed_origins: Vec<String>,
    /// OpenID Connect providers by name: `[service.auth.oidc.google]`, `[service.auth.oidc.apple]`.
    pub oidc: std::collections::BTreeMap<String, oidc::config::OidcProviderConfig>,
    /// The frontend page a form-post sign-in (Apple) returns the browser to.
    pub post_login_url: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningKeyEntry {
    pub kid: String,
    pub file: PathBuf,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            issuer: "secondwind".into(),
            access_ttl_secs: 900,
            session_ttl_days: 30,
            session_idle_hours: 12,
            refresh_retry_leeway_secs: 10,
            signing_keys: Vec::new(),
            roles_file: "policies/roles.toml".into(),
            dev_login: false,
            allowed_origins: Vec::new(),
            oidc: Default::default(),
            post_login_url: None,
        }
    }
}

impl AuthSettings {
    /// Whether `origin` is one of the frontend origins (CORS, and the refresh cookie's CSRF check).
    pub fn allows_origin(&self, origin: &str) -> bool {
        self.allowed_origins.iter().any(|o| o == origin)
    }
}

pub use common::user_token::AUDIENCE;
/// The refresh-token cookie.
pub const REFRESH_COOKIE: &str = "sw_refresh";
/// The cookie's path: only the auth endpoints ever receive it.
pub const REFRESH_COOKIE_PATH: &str = "/api/v1/auth";

/// A signed-in caller whose session is live and whose roles grant the route's permission.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub user_id: Uuid,
    pub session_id: Uuid,
    /// Verified: from the access token, whose session was checked live on this request.
    pub roles: Vec<UserRole>,
    /// The account, read with the session check.
    pub account: crate::users::rules::Account,
    /// When the access token presented expires (Unix seconds): a long-lived response (a stream)
    /// ends then.
    pub token_expires_at: i64,
}

#[derive(Debug)]
pub enum AuthError {
    Missing,
    Invalid(String),
    SessionEnded,
    NotPermitted(String),
    Unavailable(String),
    RateLimited,
}

fn refuse<T>(request: &Request<'_>, status: Status, error: AuthError) -> Outcome<T, AuthError> {
    let message = match status {
        Status::Forbidden => "not permitted",
        Status::ServiceUnavailable => "service unavailable",
        _ => "authentication required",
    };
    tracing::warn!(request_id = %RequestId::of(request), reason = ?error, status = status.code, "request refused");
    request.local_cache(|| ErrorMessage(Some(message.to_owned())));
    Outcome::Error((status, error))
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for AuthUser {
    type Error = AuthError;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, AuthError> {
        let (Some(keys), Some(policy), Some(pool)) = (
            request.rocket().state::<TokenKeys>(),
            request.rocket().state::<AccessPolicy>(),
            request.rocket().state::<PgPool>(),
        ) else {
            return refuse(request, Status::InternalServerError, AuthError::Unavailable("auth state missing".into()));
        };
        let Some(token) = request.headers().get_one("authorization").and_then(|h| h.strip_prefix("Bearer ")) else {
            return refuse(request, Status::Unauthorized, AuthError::Missing);
        };
        let token = token.trim();
        let claims = match keys.verify(token) {
            Ok(c) => c,
            Err(reason) => return refuse(request, Status::Unauthorized, AuthError::Invalid(reason)),
        };
        let account = match sessions::live_account(pool, claims.sid, claims.sub).await {
            Ok(Some(account)) => account,
            Ok(None) => return refuse(request, Status::Unauthorized, AuthError::SessionEnded),
            Err(e) => return refuse(request, Status::ServiceUnavailable, AuthError::Unavailable(e.to_string())),
        };
        if let Some(limits) = request.rocket().state::<common::protect::RateLimits>() {
            if let Err(status) = limits.check_user(request, &claims.sub.to_string()) {
                return Outcome::Error((status, AuthError::RateLimited));
            }
        }
        let route = request.route().map(|r| format!("{} {}", r.method, r.uri.path())).unwrap_or_default();
        if !policy.permits(&route, &claims.roles) {
            return refuse(request, Status::Forbidden, AuthError::NotPermitted(route));
        }
        Outcome::Success(AuthUser {
            user_id: claims.sub,
            session_id: claims.sid,
            roles: claims.roles,
            account,
            token_expires_at: claims.exp,
        })
    }
}
