//! The production key provider: HashiCorp Vault's (or OpenBao's) Transit engine through
//! `vaultrs`. Data keys are wrapped with `transit/encrypt/<key>` and unwrapped with
//! `transit/decrypt/<key>`. Associated data binds each wrapped key to its subject, so a wrapped
//! key copied to another subject fails to unwrap. The key never leaves Vault (`exportable`
//! false); its version is read from the `vault:vN:` ciphertext prefix.
//!
//! Authentication is a token or, preferably, AppRole. Either way the token is renewed at two
//! thirds of its lease (in the background, and before any call that finds it due); when renewal
//! is refused or the token is not renewable, an AppRole service logs in again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use vaultrs::api::transit::requests::{DecryptDataRequest, EncryptDataRequest};
use vaultrs::api::transit::responses::ReadKeyData;
use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};
use vaultrs::error::ClientError;
use zeroize::Zeroizing;

use common::Secret;

use super::crypto::{CryptoError, DataKey, KeyProvider, WrappedKey};

/// `[service.vault]`. Exactly one of `token` and `approle` authenticates.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultSettings {
    /// e.g. `https://vault.internal:8200`.
    pub address: String,
    /// A token limited to `policies/vault/phi-vault.hcl`; renewed while renewable.
    #[serde(default)]
    pub token: Option<Secret<String>>,
    /// AppRole login (preferred): the token it yields is renewed, and on expiry or refusal the
    /// service logs in again.
    #[serde(default)]
    pub approle: Option<AppRoleSettings>,
    #[serde(default = "default_mount")]
    pub mount: String,
    #[serde(default = "default_key")]
    pub key: String,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

/// `[service.vault.approle]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppRoleSettings {
    #[serde(default = "default_approle_mount")]
    pub mount: String,
    pub role_id: String,
    /// A file holding the secret id (mode 0600), as a deployment tool delivers it.
    pub secret_id_file: std::path::PathBuf,
}

fn default_mount() -> String {
    "transit".into()
}
fn default_approle_mount() -> String {
    "approle".into()
}
fn default_key() -> String {
    "secondwind-phi".into()
}
fn default_timeout() -> u64 {
    5
}

/// The current Vault token and when to renew it.
struct Session {
    client: Arc<VaultClient>,
    /// Two thirds into the token's lease; `None` for a token that does not expire.
    renew_at: Option<Instant>,
    renewable: bool,
}

impl Session {
    fn due(&self) -> bool {
        self.renew_at.is_some_and(|at| Instant::now() >= at)
    }
}

enum Auth {
    Token(Secret<String>),
    AppRole { mount: String, role_id: String, secret_id: Secret<String> },
}

struct Inner {
    address: String,
    timeout: Duration,
    auth: Auth,
    session: std::sync::RwLock<Option<Session>>,
    /// One login or renewal at a time.
    refreshing: tokio::sync::Mutex<()>,
    /// Wakes the upkeep task when a new lease is stored.
    stored: tokio::sync::Notify,
}

pub struct VaultTransit {
    inner: Arc<Inner>,
    mount: String,
    key: String,
    id: String,
}

/// Renew at two thirds of the lease, so a slow Vault still answers before expiry.
fn renew_at(lease_secs: u64) -> Option<Instant> {
    (lease_secs > 0).then(|| Instant::now() + Duration::from_millis(lease_secs * 1000 * 2 / 3))
}

impl Inner {
    fn client_with(&self, token: &str) -> Result<VaultClient, CryptoError> {
        let mut builder = VaultClientSettingsBuilder::default();
        builder.address(&self.address).token(token).timeout(Some(self.timeout));
        let settings = builder.build().map_err(|e| CryptoError::Provider(format!("vault client: {e}")))?;
        VaultClient::new(settings).map_err(|e| CryptoError::Provider(format!("vault client: {e}")))
    }

    /// The client to use now, logging in or renewing first when the token is due.
    async fn client(&self) -> Result<Arc<VaultClient>, CryptoError> {
        if let Some(session) = self.session.read().ok().as_deref().and_then(Option::as_ref) {
            if !session.due() {
                return Ok(session.client.clone());
            }
        }
        self.refresh().await
    }

    async fn refresh(&self) -> Result<Arc<VaultClient>, CryptoError> {
        let _one = self.refreshing.lock().await;
        let current =
            self.session.read().ok().and_then(|s| s.as_ref().map(|s| (s.client.clone(), s.due(), s.renewable)));
        if let Some((client, due, renewable)) = current {
            if !due {
                return Ok(client); // another caller refreshed meanwhile
            }
            if renewable {
                match vaultrs::token::renew_self(client.as_ref(), None).await {
                    Ok(auth) => {
                        tracing::info!(lease_secs = auth.lease_duration, "vault token renewed");
                        self.store(client.clone(), auth.lease_duration, auth.renewable);
                        return Ok(client);
                    }
                    Err(e) => tracing::warn!(error = %vault_error(e), "vault token renewal failed"),
                }
            }
        }
        self.authenticate().await
    }

    /// A fresh session: AppRole login, or the configured token (looked up for its lease).
    async fn authenticate(&self) -> Result<Arc<VaultClient>, CryptoError> {
        match &self.auth {
            Auth::AppRole { mount, role_id, secret_id } => {
                let anonymous = self.client_with("")?;
                let auth = vaultrs::auth::approle::login(&anonymous, mount, role_id, secret_id.expose())
                    .await
                    .map_err(|e| match vault_error(e) {
                        CryptoError::Provider(m) => CryptoError::Unavailable(format!("vault approle login: {m}")),
                        other => other,
                    })?;
                tracing::info!(lease_secs = auth.lease_duration, "logged in to vault with approle");
                let client = Arc::new(self.client_with(&auth.client_token)?);
                self.store(client.clone(), auth.lease_duration, auth.renewable);
                Ok(client)
            }
            Auth::Token(token) => {
                let client = Arc::new(self.client_with(token.expose())?);
                let looked = vaultrs::token::lookup_self(client.as_ref()).await.map_err(vault_error)?;
                self.store(client.clone(), looked.ttl, looked.renewable.unwrap_or(false));
                Ok(client)
            }
        }
    }

    fn store(&self, client: Arc<VaultClient>, lease_secs: u64, renewable: bool) {
        if let Ok(mut session) = self.session.write() {
            *session = Some(Session { client, renew_at: renew_at(lease_secs), renewable });
        }
        self.stored.notify_one();
    }

    fn next_renewal(&self) -> Option<Instant> {
        self.session.read().ok().and_then(|s| s.as_ref().and_then(|s| s.renew_at))
    }
}

/// Keeps the token alive while the service is idle: sleeps until it is due, then renews (or
/// logs in again). Ends when the provider is dropped.
async fn keep_alive(weak: std::sync::Weak<Inner>) {
    loop {
        let Some(inner) = weak.upgrade() else { return };
        match inner.next_renewal() {
            // No lease yet (nothing has used Vault), or one that never expires: wait for a new one.
            // (Holds the provider for at most a minute after it is dropped.)
            None => {
                let _ = tokio::time::timeout(Duration::from_secs(60), inner.stored.notified()).await;
                continue;
            }
            Some(at) => {
                drop(inner);
                tokio::time::sleep_until(at.max(Instant::now() + Duration::from_millis(100)).into()).await;
            }
        }
        let Some(inner) = weak.upgrade() else { return };
        if let Err(e) = inner.client().await {
            tracing::warn!(error = %e, "vault token upkeep failed; retrying");
            drop(inner);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

impl VaultTransit {
    pub fn new(settings: &VaultSettings) -> Result<Self, String> {
        let auth = match (&settings.token, &settings.approle) {
            (Some(token), None) => Auth::Token(token.clone()),
            (None, Some(approle)) => Auth::AppRole {
                mount: approle.mount.clone(),
                role_id: approle.role_id.clone(),
                secret_id: Secret::new(
                    common::keys::read_secret_text(&approle.secret_id_file)
                        .map_err(|e| format!("service.vault.approle.secret_id_file: {e}"))?
                        .trim()
                        .to_owned(),
                ),
            },
            _ => return Err("service.vault: set exactly one of token and [service.vault.approle]".into()),
        };
        reqwest::Url::parse(&settings.address).map_err(|e| format!("service.vault.address: {e}"))?;
        let inner = Arc::new(Inner {
            address: settings.address.clone(),
            timeout: Duration::from_secs(settings.timeout_secs),
            auth,
            session: std::sync::RwLock::new(None),
            refreshing: tokio::sync::Mutex::new(()),
            stored: tokio::sync::Notify::new(),
        });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(keep_alive(Arc::downgrade(&inner)));
        }
        Ok(Self {
            inner,
            mount: settings.mount.clone(),
            key: settings.key.clone(),
            id: format!("vault:{}/{}", settings.mount, settings.key),
        })
    }

    fn aad(subject: Uuid) -> String {
        STANDARD.encode(format!("secondwind-dk-v1\0{subject}"))
    }
}

/// Vault's answers mapped to what the caller can do about them.
fn vault_error(e: ClientError) -> CryptoError {
    match e {
        ClientError::APIError { code: 503, .. } => CryptoError::Unavailable("vault is sealed or in standby".into()),
        ClientError::APIError { code: 403, .. } => {
            CryptoError::Provider("vault denied the request (check the token's policy)".into())
        }
        ClientError::APIError { code: 400, errors }
            if errors.iter().any(|m| m.contains("authentication failed") || m.contains("message authentication")) =>
        {
            CryptoError::Integrity
        }
        ClientError::APIError { code, errors } => {
            CryptoError::Provider(format!("vault answered {code}: {}", errors.join("; ")))
        }
        ClientError::RestClientError { .. } | ClientError::RestClientBuildError { .. } => {
            CryptoError::Unavailable("vault unreachable".into())
        }
        other => CryptoError::Provider(other.to_string()),
    }
}

/// `vault:v3:...` → 3.
fn version_of(ciphertext: &str) -> Option<i32> {
    ciphertext.strip_prefix("vault:v")?.split(':').next()?.parse().ok()
}

#[rocket::async_trait]
impl KeyProvider for VaultTransit {
    async fn wrap(&self, subject: Uuid, key: &DataKey) -> Result<WrappedKey, CryptoError> {
        let plaintext = Zeroizing::new(STANDARD.encode(key.expose()));
        let mut opts = EncryptDataRequest::builder();
        opts.associated_data(Self::aad(subject));
        let response = vaultrs::transit::data::encrypt(
            self.inner.client().await?.as_ref(),
            &self.mount,
            &self.key,
            &plaintext,
            Some(&mut opts),
        )
        .await
        .map_err(vault_error)?;
        let version = version_of(&response.ciphertext)
            .ok_or_else(|| CryptoError::Provider("unexpected ciphertext format".into()))?;
        Ok(WrappedKey { ciphertext: response.ciphertext.into_bytes(), kek_id: self.id.clone(), kek_version: version })
    }

    async fn unwrap(&self, subject: Uuid, wrapped: &WrappedKey) -> Result<DataKey, CryptoError> {
        let ciphertext = std::str::from_utf8(&wrapped.ciphertext).map_err(|_| CryptoError::Integrity)?;
        let mut opts = DecryptDataRequest::builder();
        opts.associated_data(Self::aad(subject));
        let response = vaultrs::transit::data::decrypt(
            self.inner.client().await?.as_ref(),
            &self.mount,
            &self.key,
            ciphertext,
            Some(&mut opts),
        )
        .await
        .map_err(vault_error)?;
        let bytes = Zeroizing::new(STANDARD.decode(&response.plaintext).map_err(|_| CryptoError::Integrity)?);
        DataKey::from_bytes(&bytes)
    }

    async fn current_version(&self) -> Result<i32, CryptoError> {
        let key = vaultrs::transit::key::read(self.inner.client().await?.as_ref(), &self.mount, &self.key)
            .await
            .map_err(vault_error)?;
        match key.keys {
            ReadKeyData::Symmetric(versions) => versions
                .keys()
                .filter_map(|v| v.parse::<i32>().ok())
                .max()
                .ok_or_else(|| CryptoError::Provider("key has no versions".into())),
            ReadKeyData::Asymmetric(_) => {
                Err(CryptoError::Provider("the transit key must be symmetric (aes256-gcm96)".into()))
            }
        }
    }

    fn kind(&self) -> &'static str {
        "vault-transit"
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_key_version_from_the_ciphertext() {
        assert_eq!(super::version_of("vault:v3:abcd"), Some(3));
        assert_eq!(super::version_of("vault:v12:x"), Some(12));
        assert_eq!(super::version_of("nope"), None);
    }
}
