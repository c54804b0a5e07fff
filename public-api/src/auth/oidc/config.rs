//! `[service.auth.oidc.<name>]`: a provider's entry, checked at start, and Apple's client secret
//! (a short-lived ES256 JWT signed with the team's key).

use std::path::PathBuf;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use openidconnect::{IssuerUrl, RedirectUrl};
use serde::{Deserialize, Serialize};

use common::Secret;

/// `[service.auth.oidc.<name>]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcProviderConfig {
    /// e.g. `https://accounts.google.com`, `https://appleid.apple.com`.
    pub issuer: String,
    pub client_id: String,
    /// The client secret (Google, generic providers). Apple uses `apple` instead.
    #[serde(default)]
    pub client_secret: Option<Secret<String>>,
    /// Where the provider sends the browser back (the frontend's callback page).
    pub redirect_uri: String,
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub apple: Option<AppleConfig>,
    /// Offer staff sign-in from a device without a browser (the staff CLI) through this
    /// provider's device authorization flow (RFC 8628), with this entry's client. Off unless
    /// set: a device flow can be phished (someone starts it and asks a person to confirm the
    /// code), so it is for staff accounts only and each use notifies the account.
    #[serde(default)]
    pub device_flow: bool,
    /// The client the device flow uses, when the provider wants a separate one for that grant
    /// (Google: an OAuth client of the "TVs and Limited Input devices" type). Absent: this
    /// entry's `client_id`. The same person has the same subject through either client, so
    /// identities linked through the web stay linked.
    #[serde(default)]
    pub device_client_id: Option<String>,
    /// That client's secret; required with `device_client_id`.
    #[serde(default)]
    pub device_client_secret: Option<Secret<String>>,
}

impl OidcProviderConfig {
    /// Refuses an entry that cannot work (or, in production, is not https), naming the key.
    pub(super) fn check(&self, name: &str, production: bool) -> Result<(), String> {
        IssuerUrl::new(self.issuer.clone()).map_err(|e| format!("service.auth.oidc.{name}.issuer: {e}"))?;
        RedirectUrl::new(self.redirect_uri.clone())
            .map_err(|e| format!("service.auth.oidc.{name}.redirect_uri: {e}"))?;
        if production && (!self.issuer.starts_with("https://") || !self.redirect_uri.starts_with("https://")) {
            return Err(format!("service.auth.oidc.{name}: production requires https issuer and redirect_uri"));
        }
        if self.client_secret.is_none() && self.apple.is_none() {
            return Err(format!("service.auth.oidc.{name}: needs client_secret or [apple]"));
        }
        match (&self.device_client_id, &self.device_client_secret) {
            (None, None) => {}
            (Some(_), Some(_)) if self.device_flow => {}
            (Some(_), Some(_)) => {
                return Err(format!("service.auth.oidc.{name}.device_client_id: set device_flow = true to use it"))
            }
            _ => {
                return Err(format!("service.auth.oidc.{name}: device_client_id and device_client_secret go together"))
            }
        }
        Ok(())
    }
}

fn default_scopes() -> Vec<String> {
    vec!["email".into(), "profile".into()]
}

/// Sign in with Apple: the client secret is an ES256 JWT signed with the team's key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppleConfig {
    pub team_id: String,
    pub key_id: String,
    /// The `.p8` key (PKCS#8 PEM) downloaded from Apple.
    pub private_key_file: PathBuf,
}

impl AppleConfig {
    /// A client secret valid for five minutes.
    pub fn client_secret(&self, client_id: &str) -> Result<String, String> {
        #[derive(Serialize)]
        struct Claims<'a> {
            iss: &'a str,
            iat: i64,
            exp: i64,
            aud: &'a str,
            sub: &'a str,
        }
        let pem = std::fs::read_to_string(&self.private_key_file).map_err(|e| format!("apple key: {e}"))?;
        let der = common::keys::pkcs8_from_pem(&pem).map_err(|e| format!("apple key: {e}"))?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.key_id.clone());
        let claims =
            Claims { iss: &self.team_id, iat: now, exp: now + 300, aud: "https://appleid.apple.com", sub: client_id };
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ec_der(&der))
            .map_err(|e| format!("apple client secret: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use ring::signature::{
        EcdsaKeyPair, KeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING,
    };

    use super::AppleConfig;

    #[test]
    fn the_apple_client_secret_is_an_es256_jwt_signed_by_the_team_key() {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("key");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).expect("pair");
        let file = std::env::temp_dir().join(format!("apple-{}.p8", uuid::Uuid::new_v4().simple()));
        std::fs::write(&file, common::keys::to_pem("PRIVATE KEY", pkcs8.as_ref())).expect("write");
        let apple =
            AppleConfig { team_id: "TEAM123456".into(), key_id: "KEY7890".into(), private_key_file: file.clone() };

        let secret = apple.client_secret("org.secondwind.web").expect("secret");
        let parts: Vec<&str> = secret.split('.').collect();
        assert_eq!(parts.len(), 3);
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header: serde_json::Value = serde_json::from_slice(&b64.decode(parts[0]).expect("b64")).expect("json");
        let claims: serde_json::Value = serde_json::from_slice(&b64.decode(parts[1]).expect("b64")).expect("json");
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["kid"], "KEY7890");
        assert_eq!(claims["iss"], "TEAM123456");
        assert_eq!(claims["sub"], "org.secondwind.web");
        assert_eq!(claims["aud"], "https://appleid.apple.com");
        let lifetime = claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat");
        assert!(lifetime > 0 && lifetime <= 300);
        let signed = format!("{}.{}", parts[0], parts[1]);
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, pair.public_key().as_ref())
            .verify(signed.as_bytes(), &b64.decode(parts[2]).expect("b64"))
            .expect("signature verifies with the team's public key");
        let _ = std::fs::remove_file(file);
    }

    #[test]
    fn a_device_client_needs_its_secret_and_the_device_flow() {
        use super::OidcProviderConfig;
        let entry = |device_flow: bool, id: Option<&str>, secret: Option<&str>| OidcProviderConfig {
            issuer: "https://accounts.example.org".into(),
            client_id: "web".into(),
            client_secret: Some(common::Secret::new("web-secret".into())),
            redirect_uri: "https://app.example.org/auth/callback".into(),
            scopes: vec!["email".into()],
            apple: None,
            device_flow,
            device_client_id: id.map(str::to_owned),
            device_client_secret: secret.map(|s| common::Secret::new(s.to_owned())),
        };
        let providers = |c: OidcProviderConfig| c.check("google", true);
        assert!(providers(entry(true, Some("tv"), Some("tv-secret"))).is_ok());
        assert!(providers(entry(true, None, None)).is_ok());
        let lone = providers(entry(true, Some("tv"), None)).expect_err("an id alone");
        assert!(lone.contains("go together"), "{lone}");
        assert!(providers(entry(true, None, Some("tv-secret"))).is_err());
        let off = providers(entry(false, Some("tv"), Some("tv-secret"))).expect_err("device flow off");
        assert!(off.contains("device_flow = true"), "{off}");
    }
}
