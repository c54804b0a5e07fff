//! Sign-in with OpenID Connect providers (Google, Apple, any standards-compliant issuer from
//! configuration): authorization code flow with PKCE, `state` and `nonce`; the id_token's
//! signature (the provider's published keys, asymmetric algorithms only), issuer, audience,
//! expiry and nonce are checked. Provider metadata is discovered on first use and cached for an
//! hour. Apple's client secret is a short-lived ES256 JWT signed with the team's key.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{
    AsyncHttpClient, AuthorizationCode, ClientId, ClientSecret, CsrfToken, HttpRequest, HttpResponse, IssuerUrl, Nonce,
    NonceVerifier, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;

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
    fn check(&self, name: &str, production: bool) -> Result<(), String> {
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

/// What a verified id_token says about the person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedIdentity {
    pub provider: String,
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("unknown provider")]
    UnknownProvider,
    #[error("provider unreachable: {0}")]
    Unreachable(String),
    #[error("token exchange refused: {0}")]
    Exchange(String),
    #[error("id_token rejected: {0}")]
    IdToken(String),
    #[error("configuration: {0}")]
    Config(String),
}

/// reqwest 0.13 speaking `openidconnect`'s HTTP interface. Redirects are not followed (a
/// provider endpoint that redirects is an error, not an invitation).
pub struct Http(reqwest::Client);

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HttpError(String);

impl<'c> AsyncHttpClient<'c> for Http {
    type Error = HttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let response = self
                .0
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await
                .map_err(|e| HttpError(e.to_string()))?;
            let mut builder = http::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                builder = builder.header(name, value);
            }
            let bytes = response.bytes().await.map_err(|e| HttpError(e.to_string()))?;
            builder.body(bytes.to_vec()).map_err(|e| HttpError(e.to_string()))
        })
    }
}

struct Entry {
    config: OidcProviderConfig,
    metadata: RwLock<Option<(CoreProviderMetadata, Instant)>>,
}

/// The configured providers, by name (`google`, `apple`, ...).
pub struct OidcProviders {
    http: Http,
    entries: BTreeMap<String, Entry>,
    production: bool,
}

const METADATA_TTL: Duration = Duration::from_secs(3600);

/// A started device sign-in (RFC 8628): what the person is shown, and what public-api keeps.
pub struct DeviceStarted {
    pub device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: Option<String>,
    pub expires_in: i64,
    pub interval: i64,
    pub nonce: String,
}

/// One poll of a device sign-in.
pub enum DevicePoll {
    Pending,
    SlowDown,
    /// Declined, expired or refused: this sign-in is over.
    Ended(String),
    Done(VerifiedIdentity),
}

/// A started sign-in: where to send the browser, and what to remember.
pub struct Started {
    pub authorization_url: String,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

impl OidcProviders {
    pub fn new(configs: BTreeMap<String, OidcProviderConfig>, production: bool) -> Result<Self, String> {
        for (name, c) in &configs {
            c.check(name, production)?;
        }
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?;
        let entries =
            configs.into_iter().map(|(n, config)| (n, Entry { config, metadata: RwLock::new(None) })).collect();
        Ok(Self { http: Http(http), entries, production })
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    fn entry(&self, provider: &str) -> Result<&Entry, OidcError> {
        self.entries.get(provider).ok_or(OidcError::UnknownProvider)
    }

    async fn metadata(&self, entry: &Entry) -> Result<CoreProviderMetadata, OidcError> {
        if let Some((m, at)) = entry.metadata.read().await.as_ref() {
            if at.elapsed() < METADATA_TTL {
                return Ok(m.clone());
            }
        }
        let issuer = IssuerUrl::new(entry.config.issuer.clone()).map_err(|e| OidcError::Config(e.to_string()))?;
        let discovered = CoreProviderMetadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e| OidcError::Unreachable(e.to_string()))?;
        *entry.metadata.write().await = Some((discovered.clone(), Instant::now()));
        Ok(discovered)
    }

    /// The client id and secret the device flow uses: the device client when one is named.
    fn device_client(entry: &Entry) -> Result<(String, ClientSecret), OidcError> {
        match (&entry.config.device_client_id, &entry.config.device_client_secret) {
            (Some(id), Some(secret)) => Ok((id.clone(), ClientSecret::new(secret.expose().clone()))),
            _ => Ok((entry.config.client_id.clone(), Self::secret(entry)?)),
        }
    }

    fn secret(entry: &Entry) -> Result<ClientSecret, OidcError> {
        match (&entry.config.apple, &entry.config.client_secret) {
            (Some(apple), _) => {
                apple.client_secret(&entry.config.client_id).map(ClientSecret::new).map_err(OidcError::Config)
            }
            (None, Some(secret)) => Ok(ClientSecret::new(secret.expose().clone())),
            (None, None) => Err(OidcError::Config("no client secret".into())),
        }
    }

    /// Builds the authorization URL with PKCE (S256), a random state and a random nonce.
    pub async fn start(&self, provider: &str, login_hint: Option<&str>) -> Result<Started, OidcError> {
        let entry = self.entry(provider)?;
        let metadata = self.metadata(entry).await?;
        let redirect =
            RedirectUrl::new(entry.config.redirect_uri.clone()).map_err(|e| OidcError::Config(e.to_string()))?;
        let client = CoreClient::from_provider_metadata(metadata, ClientId::new(entry.config.client_id.clone()), None)
            .set_redirect_uri(redirect);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
            .set_pkce_challenge(challenge);
        for scope in &entry.config.scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        if let Some(hint) = login_hint {
            request = request.add_extra_param("login_hint", hint.to_owned());
        }
        if entry.config.apple.is_some() {
            // Apple returns the name only through a form post.
            request = request.add_extra_param("response_mode", "form_post");
        }
        let (url, state, nonce) = request.url();
        Ok(Started {
            authorization_url: url.to_string(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        })
    }

    /// Exchanges the code (with the PKCE verifier) and verifies the id_token against `nonce`.
    pub async fn finish(
        &self,
        provider: &str,
        code: &str,
        pkce_verifier: &str,
        nonce: &str,
    ) -> Result<VerifiedIdentity, OidcError> {
        let entry = self.entry(provider)?;
        let metadata = self.metadata(entry).await?;
        let redirect =
            RedirectUrl::new(entry.config.redirect_uri.clone()).map_err(|e| OidcError::Config(e.to_string()))?;
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(entry.config.client_id.clone()),
            Some(Self::secret(entry)?),
        )
        .set_redirect_uri(redirect);
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| OidcError::Config(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()))
            .request_async(&self.http)
            .await
            .map_err(|e| OidcError::Exchange(e.to_string()))?;
        let id_token =
            response.id_token().ok_or_else(|| OidcError::IdToken("no id_token in the token response".into()))?;
        self.verify_parsed(provider, entry, &entry.config.client_id, id_token, &Nonce::new(nonce.to_owned())).await
    }

    /// The provider's device authorization endpoint (RFC 8628), from its discovery document
    /// (the typed metadata does not carry it). Fetched on each use: device sign-ins are rare.
    async fn device_endpoint(&self, entry: &Entry) -> Result<String, OidcError> {
        let url = format!("{}/.well-known/openid-configuration", entry.config.issuer.trim_end_matches('/'));
        let doc: serde_json::Value = self
            .http
            .0
            .get(&url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| OidcError::Unreachable(e.to_string()))?
            .json()
            .await
            .map_err(|e| OidcError::Unreachable(e.to_string()))?;
        if doc["issuer"].as_str() != Some(entry.config.issuer.as_str()) {
            return Err(OidcError::Config("the discovery document names another issuer".into()));
        }
        doc["device_authorization_endpoint"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| OidcError::Config("the provider offers no device authorization endpoint".into()))
    }

    /// A form post to one of the provider's endpoints, authenticated as `client` (id and
    /// secret, HTTP Basic, as RFC 6749 §2.3.1 encodes it); the JSON answer whatever its status.
    async fn client_post(
        &self,
        client: &(String, ClientSecret),
        url: &str,
        form: &[(&str, &str)],
    ) -> Result<serde_json::Value, OidcError> {
        let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let (client_id, secret) = client;
        let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
        let response = self
            .http
            .0
            .post(url)
            .basic_auth(encode(client_id), Some(encode(secret.secret())))
            .header(http::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|e| OidcError::Unreachable(e.to_string()))?;
        if response.status().is_server_error() {
            return Err(OidcError::Unreachable(format!("the provider answered {}", response.status())));
        }
        response.json().await.map_err(|e| OidcError::Exchange(format!("unreadable answer: {e}")))
    }

    /// Starts a device sign-in: asks the provider for a device code and a user code, with a
    /// fresh nonce the id_token must carry.
    pub async fn start_device(&self, provider: &str, login_hint: Option<&str>) -> Result<DeviceStarted, OidcError> {
        let entry = self.entry(provider)?;
        if !entry.config.device_flow {
            return Err(OidcError::Config("device_flow is not enabled for this provider".into()));
        }
        let endpoint = self.device_endpoint(entry).await?;
        // The client secret travels to it (HTTP Basic).
        if self.production && !endpoint.starts_with("https://") {
            return Err(OidcError::Config("the device authorization endpoint is not https".into()));
        }
        let nonce = Nonce::new_random().secret().clone();
        let mut scope = vec!["openid".to_owned()];
        scope.extend(entry.config.scopes.iter().cloned());
        let scope = scope.join(" ");
        let client = Self::device_client(entry)?;
        let mut form = vec![("client_id", client.0.as_str()), ("scope", &scope), ("nonce", &nonce)];
        if let Some(hint) = login_hint {
            form.push(("login_hint", hint));
        }
        let answer = self.client_post(&client, &endpoint, &form).await?;
        let text = |k: &str| answer[k].as_str().map(str::to_owned);
        let (Some(device_code), Some(user_code), Some(verification_uri)) =
            (text("device_code"), text("user_code"), text("verification_uri"))
        else {
            return Err(OidcError::Exchange(format!(
                "device authorization refused: {}",
                text("error").unwrap_or_else(|| "no device code".into())
            )));
        };
        Ok(DeviceStarted {
            device_code,
            user_code,
            verification_uri,
            verification_uri_complete: text("verification_uri_complete"),
            // At most ten minutes, whatever the provider allows: a shorter window to phish in.
            expires_in: answer["expires_in"].as_i64().unwrap_or(600).clamp(60, 600),
            interval: answer["interval"].as_i64().unwrap_or(5).clamp(1, 60),
            nonce,
        })
    }

    /// Asks the token endpoint once whether the person has approved the device.
    pub async fn poll_device(&self, provider: &str, device_code: &str, nonce: &str) -> Result<DevicePoll, OidcError> {
        let entry = self.entry(provider)?;
        let metadata = self.metadata(entry).await?;
        let token_url = metadata
            .token_endpoint()
            .ok_or_else(|| OidcError::Config("the provider has no token endpoint".into()))?
            .url()
            .to_string();
        let client = Self::device_client(entry)?;
        let answer = self
            .client_post(
                &client,
                &token_url,
                &[("grant_type", "urn:ietf:params:oauth:grant-type:device_code"), ("device_code", device_code)],
            )
            .await?;
        if let Some(error) = answer["error"].as_str() {
            return Ok(match error {
                "authorization_pending" => DevicePoll::Pending,
                "slow_down" => DevicePoll::SlowDown,
                "expired_token" => DevicePoll::Ended("the code expired".into()),
                "access_denied" => DevicePoll::Ended("the person declined".into()),
                other => DevicePoll::Ended(format!("the provider refused: {other}")),
            });
        }
        let id_token = answer["id_token"]
            .as_str()
            .ok_or_else(|| OidcError::IdToken("no id_token in the token response".into()))?;
        let parsed: CoreIdToken = id_token.parse().map_err(|e: serde_json::Error| OidcError::IdToken(e.to_string()))?;
        // RFC 8628 carries no nonce, and providers leave it out of device-flow id_tokens. It is
        // not needed there: the token comes straight from the token endpoint, over TLS, in answer
        // to this client's authenticated request with a device code only public-api holds, so
        // nothing can be injected. One that is present must still match.
        let expected = Nonce::new(nonce.to_owned());
        let nonce_check = |found: Option<&Nonce>| match found {
            None => Ok(()),
            Some(found) => (&expected).verify(Some(found)),
        };
        self.verify_parsed(provider, entry, &client.0, &parsed, nonce_check).await.map(DevicePoll::Done)
    }

    /// Verifies a raw id_token (used by `finish`; also lets tests present forged tokens).
    pub async fn verify_id_token(
        &self,
        provider: &str,
        id_token: &str,
        nonce: &str,
    ) -> Result<VerifiedIdentity, OidcError> {
        let entry = self.entry(provider)?;
        let parsed: CoreIdToken = id_token.parse().map_err(|e: serde_json::Error| OidcError::IdToken(e.to_string()))?;
        self.verify_parsed(provider, entry, &entry.config.client_id, &parsed, &Nonce::new(nonce.to_owned())).await
    }

    async fn verify_parsed(
        &self,
        provider: &str,
        entry: &Entry,
        client_id: &str,
        id_token: &CoreIdToken,
        nonce: impl NonceVerifier,
    ) -> Result<VerifiedIdentity, OidcError> {
        let metadata = self.metadata(entry).await?;
        // The token's audience must be the client that asked for it. No client secret here: the
        // verifier would then also accept HMAC tokens keyed by it.
        let client = CoreClient::from_provider_metadata(metadata, ClientId::new(client_id.to_owned()), None);
        let verifier = client.id_token_verifier().set_allowed_algs(vec![
            CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            CoreJwsSigningAlgorithm::EcdsaP256Sha256,
            CoreJwsSigningAlgorithm::RsaSsaPssSha256,
        ]);
        let claims = id_token.claims(&verifier, nonce).map_err(|e| OidcError::IdToken(e.to_string()))?;
        Ok(VerifiedIdentity {
            provider: provider.to_owned(),
            subject: claims.subject().as_str().to_owned(),
            email: claims.email().map(|e| e.as_str().to_owned()),
            email_verified: claims.email_verified().unwrap_or(false),
            name: claims.name().and_then(|n| n.get(None)).map(|n| n.as_str().to_owned()),
        })
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
