//! The production key provider: HashiCorp Vault's (or OpenBao's) Transit engine through
//! `vaultrs`. Data keys are wrapped with `transit/encrypt/<key>` and unwrapped with
//! `transit/decrypt/<key>`. Associated data binds each wrapped key to its subject, so a wrapped
//! key copied to another subject fails to unwrap. The key never leaves Vault (`exportable`
//! false); its version is read from the `vault:vN:` ciphertext prefix.

use std::time::Duration;

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

use crate::crypto::{CryptoError, DataKey, KeyProvider, WrappedKey};

/// `[service.vault]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultSettings {
    /// e.g. `https://vault.internal:8200`.
    pub address: String,
    /// A token limited to `policies/vault/phi-vault.hcl`.
    pub token: Secret<String>,
    #[serde(default = "default_mount")]
    pub mount: String,
    #[serde(default = "default_key")]
    pub key: String,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

fn default_mount() -> String {
    "transit".into()
}
fn default_key() -> String {
    "secondwind-phi".into()
}
fn default_timeout() -> u64 {
    5
}

pub struct VaultTransit {
    client: VaultClient,
    mount: String,
    key: String,
    id: String,
}

impl VaultTransit {
    pub fn new(settings: &VaultSettings) -> Result<Self, String> {
        let mut builder = VaultClientSettingsBuilder::default();
        builder
            .address(&settings.address)
            .token(settings.token.expose().clone())
            .timeout(Some(Duration::from_secs(settings.timeout_secs)));
        let client_settings = builder.build().map_err(|e| format!("service.vault: {e}"))?;
        let client = VaultClient::new(client_settings).map_err(|e| format!("service.vault: {e}"))?;
        Ok(Self {
            client,
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
        let response =
            vaultrs::transit::data::encrypt(&self.client, &self.mount, &self.key, &plaintext, Some(&mut opts))
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
        let response =
            vaultrs::transit::data::decrypt(&self.client, &self.mount, &self.key, ciphertext, Some(&mut opts))
                .await
                .map_err(vault_error)?;
        let bytes = Zeroizing::new(STANDARD.decode(&response.plaintext).map_err(|_| CryptoError::Integrity)?);
        DataKey::from_bytes(&bytes)
    }

    async fn current_version(&self) -> Result<i32, CryptoError> {
        let key = vaultrs::transit::key::read(&self.client, &self.mount, &self.key).await.map_err(vault_error)?;
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
