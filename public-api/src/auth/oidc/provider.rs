//! The providers: discovery (cached for an hour), the authorization code flow with PKCE, `state`
//! and `nonce`, and the id_token's checks: the provider's published keys (asymmetric algorithms
//! only), issuer, audience, expiry and nonce.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{
    AsyncHttpClient, AuthorizationCode, ClientId, ClientSecret, CsrfToken, HttpRequest, HttpResponse, IssuerUrl, Nonce,
    NonceVerifier, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use tokio::sync::RwLock;

use super::config::OidcProviderConfig;

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
pub struct Http(pub(super) reqwest::Client);

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

pub(super) struct Entry {
    pub(super) config: OidcProviderConfig,
    metadata: RwLock<Option<(CoreProviderMetadata, Instant)>>,
}

/// The configured providers, by name (`google`, `apple`, ...).
pub struct OidcProviders {
    pub(super) http: Http,
    entries: BTreeMap<String, Entry>,
    pub(super) production: bool,
}

const METADATA_TTL: Duration = Duration::from_secs(3600);

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

    pub(super) fn entry(&self, provider: &str) -> Result<&Entry, OidcError> {
        self.entries.get(provider).ok_or(OidcError::UnknownProvider)
    }

    pub(super) async fn metadata(&self, entry: &Entry) -> Result<CoreProviderMetadata, OidcError> {
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

    pub(super) fn secret(entry: &Entry) -> Result<ClientSecret, OidcError> {
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

    pub(super) async fn verify_parsed(
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
