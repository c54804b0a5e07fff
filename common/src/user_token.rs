//! User access tokens and the delegation tokens derived from them.
//!
//! An access token is an EdDSA JWT public-api issues to a signed-in person (`sub` user, `sid`
//! session, `roles`, at most 15 minutes, `kid` for key rotation, audience public-api).
//!
//! A delegation token is what travels inside an internal assertion when a person acts: public-api
//! mints it, with the same signing key, only after verifying that person's access token and live
//! session, for one callee (`aud = secondwind-internal:<callee>`), for the one assertion it rides
//! in (`jti` = the assertion's `jti`), for at most 60 s. phi-vault verifies it with public-api's
//! *public* keys, so public-api's internal-call key alone cannot act as a user. Unlike the access
//! token itself (token exchange rather than forwarding, as in RFC 8693), a leaked assertion's
//! delegation token is worthless: public-api refuses its audience, and its assertion is spent.

use std::collections::HashMap;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The audience of user access tokens.
pub const AUDIENCE: &str = "secondwind-public-api";
/// The longest lifetime a user access token may have.
pub const MAX_TTL_SECS: u64 = 900;
/// Clock skew tolerated.
const LEEWAY_SECS: u64 = 5;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    pub sub: Uuid,
    /// The session this token belongs to; revoking it ends the token.
    pub sid: Uuid,
    pub roles: Vec<crate::UserRole>,
    pub iat: i64,
    pub exp: i64,
    pub jti: Uuid,
}

/// The audience of a delegation token for `callee`.
pub fn delegation_audience(callee: crate::ServiceName) -> String {
    format!("secondwind-internal:{callee}")
}

/// The longest lifetime of a delegation token (that of the assertion it rides in).
pub const MAX_DELEGATION_TTL_SECS: i64 = 60;

/// A person's standing, delegated by public-api to one internal call.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DelegationClaims {
    pub iss: String,
    pub aud: String,
    /// The service whose assertion this token rides in (public-api).
    pub azp: crate::ServiceName,
    pub sub: Uuid,
    pub sid: Uuid,
    /// The one role public-api's guard checked the person holds, for this call.
    pub role: crate::Role,
    pub iat: i64,
    pub exp: i64,
    /// The `jti` of the one assertion this token rides in.
    pub jti: String,
}

/// Mints delegation tokens with public-api's current user-token key.
pub struct DelegationSigner {
    issuer: String,
    kid: String,
    key: EncodingKey,
}

impl DelegationSigner {
    pub fn new(issuer: impl Into<String>, kid: impl Into<String>, key: EncodingKey) -> Self {
        Self { issuer: issuer.into(), kid: kid.into(), key }
    }

    /// A token for `user` in `session` acting in `role`, for the assertion `jti` that `caller`
    /// sends to `callee`, expiring with it.
    #[allow(clippy::too_many_arguments)]
    pub fn mint(
        &self,
        user: Uuid,
        session: Uuid,
        role: crate::Role,
        caller: crate::ServiceName,
        callee: crate::ServiceName,
        jti: &str,
        exp: i64,
    ) -> Result<String, String> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims = DelegationClaims {
            iss: self.issuer.clone(),
            aud: delegation_audience(callee),
            azp: caller,
            sub: user,
            sid: session,
            role,
            iat: now,
            exp: exp.min(now + MAX_DELEGATION_TTL_SECS),
            jti: jti.to_owned(),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.key).map_err(|e| e.to_string())
    }
}

/// Verifies user access tokens against a set of Ed25519 public keys by `kid`.
#[derive(Clone)]
pub struct UserTokenVerifier {
    issuer: String,
    keys: HashMap<String, DecodingKey>,
}

impl UserTokenVerifier {
    /// `keys`: each `kid` with its 32-byte Ed25519 public key.
    pub fn new(issuer: impl Into<String>, keys: impl IntoIterator<Item = (String, [u8; 32])>) -> Self {
        let keys = keys.into_iter().map(|(kid, key)| (kid, DecodingKey::from_ed_der(&key))).collect();
        Self { issuer: issuer.into(), keys }
    }

    /// An access token: algorithm (EdDSA only), `kid`, signature, issuer, audience (public-api),
    /// expiry and lifetime.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, String> {
        let claims: AccessClaims = self.decode(token, AUDIENCE)?;
        if claims.exp.saturating_sub(claims.iat) > MAX_TTL_SECS as i64 {
            return Err("lifetime exceeds 15 minutes".into());
        }
        Ok(claims)
    }

    /// A delegation token for `callee`: the same checks, its own audience, at most 60 s.
    pub fn verify_delegation(&self, token: &str, callee: crate::ServiceName) -> Result<DelegationClaims, String> {
        let claims: DelegationClaims = self.decode(token, &delegation_audience(callee))?;
        if claims.exp.saturating_sub(claims.iat) > MAX_DELEGATION_TTL_SECS {
            return Err("lifetime exceeds 60 s".into());
        }
        Ok(claims)
    }

    fn decode<T: serde::de::DeserializeOwned>(&self, token: &str, audience: &str) -> Result<T, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| format!("header: {e}"))?;
        if header.alg != Algorithm::EdDSA {
            return Err(format!("algorithm {:?} refused", header.alg));
        }
        let kid = header.kid.ok_or("no kid")?;
        let key = self.keys.get(&kid).ok_or_else(|| format!("unknown kid `{kid}`"))?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECS;
        Ok(jsonwebtoken::decode::<T>(token, key, &validation).map_err(|e| e.to_string())?.claims)
    }
}

/// `internal.user_tokens`: where a service that must see users' own tokens finds public-api's
/// public keys (phi-vault requires it).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserTokenConfig {
    /// `iss` of the tokens (public-api's `service.auth.issuer`).
    #[serde(default = "default_issuer")]
    pub issuer: String,
    /// Every key public-api signs or still verifies with: `[{kid, public_key_file}]`.
    pub keys: Vec<UserTokenKey>,
}

fn default_issuer() -> String {
    "secondwind".into()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserTokenKey {
    pub kid: String,
    /// SPKI PEM, as `secondwind-operator keys generate --name` writes next to the private key.
    pub public_key_file: std::path::PathBuf,
}

impl UserTokenConfig {
    pub fn load(&self) -> Result<UserTokenVerifier, crate::keys::KeyError> {
        if self.keys.is_empty() {
            return Err(crate::keys::KeyError::Invalid("internal.user_tokens.keys: at least one key".into()));
        }
        let mut keys = Vec::with_capacity(self.keys.len());
        for key in &self.keys {
            keys.push((key.kid.clone(), crate::keys::read_public(&key.public_key_file)?));
        }
        Ok(UserTokenVerifier::new(self.issuer.clone(), keys))
    }
}
