//! Access tokens: EdDSA JWTs naming user, session and roles, valid at most 15 minutes, with
//! `kid` so signing keys can rotate while older tokens still verify.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::signature::{Ed25519KeyPair, KeyPair};
use uuid::Uuid;

pub use common::user_token::{AccessClaims, AUDIENCE, MAX_TTL_SECS as MAX_ACCESS_TTL_SECS};
use common::user_token::{DelegationSigner, UserTokenVerifier};
use common::UserRole;

use super::AuthSettings;

pub struct TokenKeys {
    issuer: String,
    ttl_secs: u64,
    signing_kid: String,
    signing: EncodingKey,
    verifier: UserTokenVerifier,
}

impl TokenKeys {
    pub fn load(settings: &AuthSettings) -> Result<Self, String> {
        if settings.access_ttl_secs == 0 || settings.access_ttl_secs > MAX_ACCESS_TTL_SECS {
            return Err("service.auth.access_ttl_secs must be between 1 and 900".into());
        }
        let first = settings.signing_keys.first().ok_or("service.auth.signing_keys needs at least one key")?;
        let mut public_keys = Vec::new();
        let mut signing = None;
        for entry in &settings.signing_keys {
            let der = common::keys::read_private(&entry.file).map_err(|e| format!("service.auth.signing_keys: {e}"))?;
            let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der)
                .map_err(|e| format!("service.auth.signing_keys {}: {e}", entry.kid))?;
            if public_keys.iter().any(|(kid, _)| *kid == entry.kid) {
                return Err(format!("service.auth.signing_keys: kid `{}` appears twice", entry.kid));
            }
            let mut public = [0u8; 32];
            public.copy_from_slice(pair.public_key().as_ref());
            public_keys.push((entry.kid.clone(), public));
            if entry.kid == first.kid {
                signing = Some(EncodingKey::from_ed_der(&der));
            }
        }
        Ok(Self {
            issuer: settings.issuer.clone(),
            ttl_secs: settings.access_ttl_secs,
            signing_kid: first.kid.clone(),
            signing: signing.ok_or("no signing key")?,
            verifier: UserTokenVerifier::new(settings.issuer.clone(), public_keys),
        })
    }

    /// Mints delegation tokens (for internal calls made for a verified person) with the current
    /// signing key: phi-vault checks them with public-api's public keys.
    pub fn delegation_signer(&self) -> DelegationSigner {
        DelegationSigner::new(self.issuer.clone(), self.signing_kid.clone(), self.signing.clone())
    }

    pub fn ttl_secs(&self) -> u64 {
        self.ttl_secs
    }

    pub fn issue(&self, user_id: Uuid, session_id: Uuid, roles: Vec<UserRole>) -> Result<String, String> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            aud: AUDIENCE.into(),
            sub: user_id,
            sid: session_id,
            roles,
            iat: now,
            exp: now + self.ttl_secs as i64,
            jti: Uuid::new_v4(),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.signing_kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.signing).map_err(|e| e.to_string())
    }

    /// Checks algorithm (EdDSA only), `kid`, signature, issuer, audience and expiry.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, String> {
        self.verifier.verify(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::SigningKeyEntry;

    fn settings(dir: &std::path::Path, kids: &[&str]) -> AuthSettings {
        AuthSettings {
            signing_keys: kids
                .iter()
                .map(|k| SigningKeyEntry { kid: (*k).into(), file: dir.join(format!("{k}.key")) })
                .collect(),
            ..AuthSettings::default()
        }
    }

    #[test]
    fn rotated_keys_keep_verifying_until_removed() {
        let dir = std::env::temp_dir().join(format!("sw-tokens-{}", Uuid::new_v4().simple()));
        common::keys::generate_files(&dir, "old").expect("key");
        common::keys::generate_files(&dir, "new").expect("key");
        let before = TokenKeys::load(&settings(&dir, &["old"])).expect("keys");
        let during = TokenKeys::load(&settings(&dir, &["new", "old"])).expect("keys");
        let after = TokenKeys::load(&settings(&dir, &["new"])).expect("keys");

        let (user, session) = (Uuid::new_v4(), Uuid::new_v4());
        let old_token = before.issue(user, session, vec![UserRole::Donor]).expect("issue");
        let new_token = during.issue(user, session, vec![UserRole::Donor]).expect("issue");
        assert_eq!(jsonwebtoken::decode_header(&new_token).expect("header").kid.as_deref(), Some("new"));
        assert_eq!(during.verify(&old_token).expect("old still verifies").sub, user);
        assert!(during.verify(&new_token).is_ok());
        assert!(after.verify(&old_token).expect_err("retired").contains("unknown kid"));
        assert!(before.verify(&new_token).is_err());

        let mut too_long = settings(&dir, &["new"]);
        too_long.access_ttl_secs = 901;
        assert!(TokenKeys::load(&too_long).is_err());
        assert!(TokenKeys::load(&settings(&dir, &[])).is_err());
        let _ = std::fs::remove_dir_all(dir);
    }
}
