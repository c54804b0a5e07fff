//! Internal-call assertions: a short-lived EdDSA JWT each service signs for every call it makes
//! (`iss` caller, `aud` callee, `sub` acting user, `role`, `purpose`, `request_id`, `exp` at most
//! 60 s ahead). The callee verifies it with the caller's public key, then asks the allowlist
//! whether that caller may use the matched route. The [`InternalCall`] request guard is the
//! only way a handler obtains the verified claims.

use std::collections::HashMap;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rocket::http::Status;
use rocket::request::{FromRequest, Outcome};
use rocket::Request;
use serde::{Deserialize, Serialize};

use crate::error::ErrorMessage;
use crate::policy::CallPolicy;
use crate::{RequestId, ServiceName};

/// How long a break-glass justification (the `reason` claim) must be, in characters.
pub const BREAK_GLASS_REASON_CHARS: std::ops::RangeInclusive<usize> = 10..=500;
/// The longest lifetime an assertion may claim.
pub const MAX_TTL_SECS: i64 = 60;
/// Clock skew tolerated between services.
const LEEWAY_SECS: u64 = 5;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub iss: ServiceName,
    pub aud: ServiceName,
    /// The acting user's id, or `system` for calls no user started.
    pub sub: String,
    pub role: String,
    pub purpose: String,
    pub request_id: String,
    /// A written justification the caller must give for some purposes (break-glass access).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

/// Who is acting and why; carried into every internal call.
#[derive(Debug, Clone)]
pub struct CallContext {
    pub sub: String,
    pub role: String,
    pub purpose: String,
    pub request_id: RequestId,
    /// The written reason for a break-glass access; `None` for ordinary calls.
    pub reason: Option<String>,
}

impl CallContext {
    /// A further call on behalf of the same verified caller (a service asking its own peer while
    /// serving a request): same user, role, purpose and request id; no break-glass reason.
    pub fn on_behalf_of(claims: &Claims) -> Self {
        Self {
            sub: claims.sub.clone(),
            role: claims.role.clone(),
            purpose: claims.purpose.clone(),
            request_id: RequestId(claims.request_id.clone()),
            reason: None,
        }
    }

    /// A call the service makes on its own behalf (health checks, background jobs).
    pub fn system(purpose: &str, request_id: RequestId) -> Self {
        Self { sub: "system".into(), role: "service".into(), purpose: purpose.into(), request_id, reason: None }
    }
}

pub struct Signer {
    service: ServiceName,
    key: EncodingKey,
    ttl_secs: i64,
}

#[derive(Debug, thiserror::Error)]
#[error("signing an internal assertion: {0}")]
pub struct SignError(String);

impl Signer {
    pub fn new(service: ServiceName, pkcs8_der: &[u8], ttl_secs: u64) -> Self {
        Self { service, key: EncodingKey::from_ed_der(pkcs8_der), ttl_secs: (ttl_secs as i64).clamp(1, MAX_TTL_SECS) }
    }

    pub fn service(&self) -> ServiceName {
        self.service
    }

    pub fn sign(&self, audience: ServiceName, ctx: &CallContext) -> Result<String, SignError> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims = Claims {
            iss: self.service,
            aud: audience,
            sub: ctx.sub.clone(),
            role: ctx.role.clone(),
            purpose: ctx.purpose.clone(),
            request_id: ctx.request_id.0.clone(),
            reason: ctx.reason.clone(),
            iat: now,
            exp: now + self.ttl_secs,
            jti: uuid::Uuid::new_v4().to_string(),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.service.as_str().to_owned());
        jsonwebtoken::encode(&header, &claims, &self.key).map_err(|e| SignError(e.to_string()))
    }
}

/// Why an assertion was refused. The client sees only the status; the log gets the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no bearer assertion")]
    Missing,
    #[error("invalid assertion: {0}")]
    Invalid(String),
    #[error("caller {caller} may not call {route}")]
    NotAllowed { caller: ServiceName, route: String },
}

impl Refusal {
    pub fn status(&self) -> Status {
        match self {
            Self::Missing | Self::Invalid(_) => Status::Unauthorized,
            Self::NotAllowed { .. } => Status::Forbidden,
        }
    }
}

pub struct Verifier {
    service: ServiceName,
    keys: HashMap<ServiceName, DecodingKey>,
    policy: CallPolicy,
}

impl Verifier {
    /// `peers` maps each service allowed to call this one to its 32-byte public key.
    pub fn new(service: ServiceName, peers: HashMap<ServiceName, [u8; 32]>, policy: CallPolicy) -> Self {
        let keys = peers.into_iter().map(|(name, key)| (name, DecodingKey::from_ed_der(&key))).collect();
        Self { service, keys, policy }
    }

    pub fn policy(&self) -> &CallPolicy {
        &self.policy
    }

    pub fn verify(&self, token: &str, method: &str, route: &str, request_id: &RequestId) -> Result<Claims, Refusal> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| Refusal::Invalid(format!("header: {e}")))?;
        if header.alg != Algorithm::EdDSA {
            return Err(Refusal::Invalid(format!("algorithm {:?} is not EdDSA", header.alg)));
        }
        let issuer: ServiceName = header
            .kid
            .as_deref()
            .ok_or_else(|| Refusal::Invalid("no kid".into()))?
            .parse()
            .map_err(Refusal::Invalid)?;
        let key = self.keys.get(&issuer).ok_or_else(|| Refusal::Invalid(format!("no key for caller {issuer}")))?;

        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_audience(&[self.service.as_str()]);
        validation.set_issuer(&[issuer.as_str()]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECS;
        let claims = jsonwebtoken::decode::<Claims>(token, key, &validation)
            .map_err(|e| Refusal::Invalid(e.to_string()))?
            .claims;

        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        if claims.exp - claims.iat > MAX_TTL_SECS || claims.exp > now + MAX_TTL_SECS + LEEWAY_SECS as i64 {
            return Err(Refusal::Invalid("lifetime exceeds 60 s".into()));
        }
        if claims.iat > now + LEEWAY_SECS as i64 {
            return Err(Refusal::Invalid("issued in the future".into()));
        }
        if claims.request_id != request_id.0 {
            return Err(Refusal::Invalid("request id does not match x-request-id".into()));
        }
        if !self.policy.allows(self.service, claims.iss, method, route) {
            return Err(Refusal::NotAllowed { caller: claims.iss, route: format!("{method} {route}") });
        }
        Ok(claims)
    }
}

/// A verified internal caller. Routes under `/internal/` take this guard; nothing else yields it.
#[derive(Debug, Clone)]
pub struct InternalCall(pub Claims);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for InternalCall {
    type Error = Refusal;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Refusal> {
        let request_id = RequestId::of(request);
        let Some(verifier) = request.rocket().state::<Verifier>() else {
            tracing::error!(request_id = %request_id, "internal route mounted without a verifier");
            return Outcome::Error((Status::InternalServerError, Refusal::Missing));
        };
        let method = request.method().as_str();
        let route = request.route().map(|r| r.uri.path().to_owned()).unwrap_or_default();
        let token = request.headers().get_one("authorization").and_then(|h| h.strip_prefix("Bearer ")).map(str::trim);
        let result = match token {
            None => Err(Refusal::Missing),
            Some(token) => verifier.verify(token, method, &route, request_id),
        };
        match result {
            Ok(claims) => Outcome::Success(InternalCall(claims)),
            Err(refusal) => {
                tracing::warn!(
                    service = verifier.service.as_str(),
                    request_id = %request_id,
                    route = %route,
                    method,
                    reason = %refusal,
                    "internal call refused"
                );
                let message = match refusal.status() {
                    Status::Forbidden => "caller not permitted for this route",
                    _ => "a valid internal assertion is required",
                };
                request.local_cache(|| ErrorMessage(Some(message.to_owned())));
                Outcome::Error((refusal.status(), refusal))
            }
        }
    }
}
