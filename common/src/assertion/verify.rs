//! Verifying an assertion, and spending its `jti` once.

#[allow(unused_imports)]
use super::*;

/// Why an assertion was refused. The client sees only the status; the log gets the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no bearer assertion")]
    Missing,
    #[error("invalid assertion: {0}")]
    Invalid(String),
    #[error("assertion replayed: jti {0} was already used")]
    Replayed(String),
    #[error("caller {caller} may not call {route}")]
    NotAllowed { caller: ServiceName, route: String },
    #[error("{route} does not serve purpose `{purpose}`")]
    Purpose { purpose: String, route: String },
    #[error("purpose `{purpose}` is not for role {role}")]
    PurposeRole { purpose: String, role: Role },
    #[error("cannot check the assertion: {0}")]
    Unavailable(String),
    /// The TLS client certificate is missing or names another service than the assertion.
    #[error("client certificate: {0}")]
    Certificate(String),
}

impl Refusal {
    pub fn status(&self) -> Status {
        match self {
            Self::Missing | Self::Invalid(_) | Self::Replayed(_) | Self::Certificate(_) => Status::Unauthorized,
            Self::NotAllowed { .. } | Self::Purpose { .. } | Self::PurposeRole { .. } => Status::Forbidden,
            Self::Unavailable(_) => Status::ServiceUnavailable,
        }
    }
}

/// What the callee saw of the request an assertion was presented with.
#[derive(Debug, Clone, Copy)]
pub struct Presented<'a> {
    pub method: &'a str,
    /// The matched route, as mounted (`/internal/v1/records/<id>`), for the allowlist.
    pub route: &'a str,
    /// The path and query as received.
    pub path_and_query: &'a str,
    /// Whether the request carries a body (a non-zero `Content-Length`, or chunked).
    pub has_body: bool,
    pub request_id: &'a RequestId,
}

pub struct Verifier {
    pub(super) service: ServiceName,
    keys: HashMap<ServiceName, DecodingKey>,
    /// The same public keys, raw, for the seals of streamed bodies.
    raw_keys: HashMap<ServiceName, [u8; 32]>,
    policy: CallPolicy,
    /// Where set, a call in a person's role must carry a delegation token for it.
    user_tokens: Option<UserTokenVerifier>,
}

impl Verifier {
    /// `peers` maps each service allowed to call this one to its 32-byte public key.
    pub fn new(service: ServiceName, peers: HashMap<ServiceName, [u8; 32]>, policy: CallPolicy) -> Self {
        let keys = peers.iter().map(|(name, key)| (*name, DecodingKey::from_ed_der(key))).collect();
        Self { service, keys, raw_keys: peers, policy, user_tokens: None }
    }

    /// Requires every call made in a person's role to carry a delegation token for it.
    pub fn requiring_user_tokens(mut self, verifier: UserTokenVerifier) -> Self {
        self.user_tokens = Some(verifier);
        self
    }

    pub fn policy(&self) -> &CallPolicy {
        &self.policy
    }

    /// Every check but the single use of `jti`, which needs the database ([`spend`]).
    pub fn verify(&self, token: &str, request: &Presented<'_>) -> Result<Claims, Refusal> {
        self.verify_at(token, request, time::OffsetDateTime::now_utc().unix_timestamp())
    }

    /// [`Verifier::verify`] with the lifetime bounds judged at `now` (Unix seconds), for tests
    /// at a fixed second. The signature library still checks `exp` against the system clock.
    pub(super) fn verify_at(&self, token: &str, request: &Presented<'_>, now: i64) -> Result<Claims, Refusal> {
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

        // Saturating: an `iat` far in the past must not wrap the difference into a small one.
        if claims.exp.saturating_sub(claims.iat) > MAX_TTL_SECS
            || claims.exp > now.saturating_add(MAX_TTL_SECS + LEEWAY_SECS as i64)
        {
            return Err(Refusal::Invalid("lifetime exceeds 60 s".into()));
        }
        if claims.iat > now.saturating_add(LEEWAY_SECS as i64) {
            return Err(Refusal::Invalid("issued in the future".into()));
        }
        if claims.jti.is_empty() || claims.jti.len() > 64 {
            return Err(Refusal::Invalid("jti must be 1 to 64 characters".into()));
        }
        if claims.request_id != request.request_id.0 {
            return Err(Refusal::Invalid("request id does not match x-request-id".into()));
        }
        self.check_binding(&claims, request)?;
        let route = format!("{} {}", request.method, request.route);
        self.check_actor(&claims, &route)?;
        match self.policy.decide(self.service, claims.iss, &route, &claims.purpose, claims.role) {
            Ok(()) => {}
            Err(Denied::Caller) => return Err(Refusal::NotAllowed { caller: claims.iss, route }),
            Err(Denied::Purpose) => return Err(Refusal::Purpose { purpose: claims.purpose, route }),
            Err(Denied::Role) => return Err(Refusal::PurposeRole { purpose: claims.purpose, role: claims.role }),
        }
        Ok(claims)
    }

    /// Whether `seal` ends the body streamed under `claims`: the caller signed the SHA-256
    /// `digest` of the `length` bytes before it, for this very assertion.
    pub fn check_stream(&self, claims: &Claims, digest: &[u8], length: u64, seal: &[u8]) -> Result<(), Refusal> {
        if claims.bsh != STREAMED_BODY {
            return Err(Refusal::Invalid("the assertion is not for a streamed body".into()));
        }
        let key = self.raw_keys.get(&claims.iss).ok_or_else(|| Refusal::Invalid("no key for the caller".into()))?;
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key)
            .verify(&stream_message(&claims.jti, digest, length), seal)
            .map_err(|_| Refusal::Invalid("the streamed body does not match its seal".into()))
    }

    /// The assertion was made for this method, path, query and body.
    fn check_binding(&self, claims: &Claims, request: &Presented<'_>) -> Result<(), Refusal> {
        if claims.htm != request.method {
            return Err(Refusal::Invalid(format!("made for method {}, used with {}", claims.htm, request.method)));
        }
        if claims.htu != request.path_and_query {
            return Err(Refusal::Invalid("made for another path or query".into()));
        }
        let covers_body = claims.bsh != body_hash(b"");
        if request.has_body != covers_body {
            return Err(Refusal::Invalid("body hash does not match the body".into()));
        }
        Ok(())
    }

    /// `sub`, `sid` and `role` agree, and a delegation token for this very assertion vouches for
    /// them where required.
    fn check_actor(&self, claims: &Claims, route: &str) -> Result<(), Refusal> {
        if !claims.role.is_user() {
            return if claims.sub == SYSTEM && claims.sid.is_none() {
                Ok(())
            } else {
                Err(Refusal::Invalid("a service acts as `system`, never as a user".into()))
            };
        }
        // A person is named by their account and session ids, whoever relays the call, written as
        // every service writes them (hyphenated lowercase), so trails compare as strings.
        let is_uuid = |s: &str| s.parse::<uuid::Uuid>().is_ok_and(|u| u.to_string() == s);
        if !is_uuid(&claims.sub) || !claims.sid.as_deref().is_some_and(is_uuid) {
            return Err(Refusal::Invalid(format!("a call in role {} names no user and session", claims.role)));
        }
        let Some(verifier) = &self.user_tokens else { return Ok(()) };
        if self.policy.relays(self.service, claims.iss, route) {
            // Only public-api mints delegation tokens (their `azp`). A person's call relayed by
            // another service (phi-vault asking the consent service about a disclosure it is
            // serving, after checking the person's token itself) carries none: the allowlist
            // names each such relay on its route (`relayed_by`), and nothing else is exempt.
            return Ok(());
        }
        let token = claims.delegation.as_deref().ok_or_else(|| Refusal::Invalid("no delegation token".into()))?;
        let user = verifier
            .verify_delegation(token, self.service)
            .map_err(|e| Refusal::Invalid(format!("delegation token: {e}")))?;
        if user.jti != claims.jti || user.azp != claims.iss {
            return Err(Refusal::Invalid("delegation token is another assertion's".into()));
        }
        if user.sub.to_string() != claims.sub {
            return Err(Refusal::Invalid("delegation token is another user's".into()));
        }
        if claims.sid.as_deref() != Some(user.sid.to_string().as_str()) {
            return Err(Refusal::Invalid("delegation token is another session's".into()));
        }
        if user.role != claims.role {
            return Err(Refusal::Invalid(format!("delegation token is not for role {}", claims.role)));
        }
        Ok(())
    }
}

/// Spends an assertion's `jti` in the callee's database: true the first time, false on any
/// replay. Every instance of a service shares its database, and the primary key makes the
/// insert atomic, so exactly one instance accepts a given assertion. Rows live until the
/// assertion has expired (it is refused on its expiry after that), then [`sweep_spent`] drops them.
///
/// Tried again on a lost connection ([`crate::db::retry_if_lost`]): if the first insert did
/// commit, the second finds the `jti` spent and the call is refused, which fails closed.
pub async fn spend(pool: &sqlx::PgPool, claims: &Claims) -> Result<bool, sqlx::Error> {
    let done = crate::db::retry_if_lost(|| {
        sqlx::query!(
            "INSERT INTO internal_call_replays (issuer, jti, expires_at) VALUES ($1, $2, to_timestamp($3)) \
             ON CONFLICT DO NOTHING",
            claims.iss.as_str(),
            &claims.jti,
            (claims.exp + LEEWAY_SECS as i64 + 1) as f64,
        )
        .execute(pool)
    })
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Drops spent `jti`s whose assertions expired more than five minutes ago (by the database's
/// clock; the margin covers a service clock running behind it); returns how many.
pub async fn sweep_spent(pool: &sqlx::PgPool) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query!("DELETE FROM internal_call_replays WHERE expires_at < now() - interval '5 minutes'")
        .execute(pool)
        .await?
        .rows_affected())
}
