//! User access tokens: EdDSA JWTs public-api issues (`sub` user, `sid` session, `roles`, at most
//! 15 minutes, `kid` for key rotation). public-api signs and verifies them; phi-vault verifies
//! the token that travels inside an internal assertion, with public-api's *public* keys only, so
//! a call that claims to act for a user must show that user's own token.

use std::collections::HashMap;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
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
    pub roles: Vec<String>,
    pub iat: i64,
    pub exp: i64,
    pub jti: Uuid,
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

    /// Checks algorithm (EdDSA only), `kid`, signature, issuer, audience, expiry and lifetime.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| format!("header: {e}"))?;
        if header.alg != Algorithm::EdDSA {
            return Err(format!("algorithm {:?} refused", header.alg));
        }
        let kid = header.kid.ok_or("no kid")?;
        let key = self.keys.get(&kid).ok_or_else(|| format!("unknown kid `{kid}`"))?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECS;
        let claims = jsonwebtoken::decode::<AccessClaims>(token, key, &validation).map_err(|e| e.to_string())?.claims;
        if claims.exp - claims.iat > MAX_TTL_SECS as i64 {
            return Err("lifetime exceeds 15 minutes".into());
        }
        Ok(claims)
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
    /// SPKI PEM, as `secondwind-admin keys generate --name` writes next to the private key.
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
