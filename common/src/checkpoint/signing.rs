//! The checkpoint keys: one Ed25519 key per service, apart from its internal-call key, and the
//! public keys a verifier accepts for each origin.

#[allow(unused_imports)]
use super::*;

// ---------------------------------------------------------------- keys

/// `<service>-checkpoint`: the conventional name (`.key`, `.pub`) of a service's checkpoint key,
/// as `secondwind-operator dev init` and the test harness write it.
pub fn key_name(service: ServiceName) -> String {
    format!("{service}-checkpoint")
}

/// A service's checkpoint signing key.
pub struct CheckpointKey {
    pub(super) service: ServiceName,
    pair: Ed25519KeyPair,
}

impl CheckpointKey {
    /// Reads a PKCS#8 key, refusing a file others can read (mode 0600).
    pub fn load(service: ServiceName, path: &Path) -> Result<Self, KeyError> {
        Self::from_pkcs8(service, &keys::read_private(path)?)
    }

    pub fn from_pkcs8(service: ServiceName, der: &[u8]) -> Result<Self, KeyError> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(|e| KeyError::Invalid(e.to_string()))?;
        Ok(Self { service, pair })
    }

    pub fn public(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.pair.public_key().as_ref());
        out
    }

    /// Signs a checkpoint of `trail` at its head (`seq`, `head_hash`).
    pub fn sign(&self, trail: Trail, number: i64, seq: i64, head_hash: &[u8], at: OffsetDateTime) -> Checkpoint {
        let mut checkpoint = Checkpoint {
            origin: self.service,
            trail,
            number,
            seq,
            head_hash: head_hash.to_vec(),
            published_at: at,
            signature: Vec::new(),
        };
        checkpoint.signature = self.pair.sign(&checkpoint.message()).as_ref().to_vec();
        checkpoint
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no checkpoint key is known for {0}")]
    NoKey(ServiceName),
    #[error("the signature does not verify with {0}'s checkpoint key")]
    Bad(ServiceName),
}

/// The checkpoint public keys of the services whose checkpoints are checked here. A service may
/// have several (its current key and, while old checkpoints are still checked, retired ones).
#[derive(Debug, Clone, Default)]
pub struct CheckpointKeys(HashMap<ServiceName, Vec<[u8; 32]>>);

impl CheckpointKeys {
    pub fn insert(&mut self, service: ServiceName, key: [u8; 32]) {
        let keys = self.0.entry(service).or_default();
        if !keys.contains(&key) {
            keys.push(key);
        }
    }

    pub fn contains(&self, service: ServiceName) -> bool {
        self.0.contains_key(&service)
    }

    /// The peers' keys configured as `internal.peers.<peer>.checkpoint_public_key_file` and
    /// `checkpoint_accepted_public_key_files`.
    pub fn from_config<S>(config: &Config<S>) -> Result<Self, KeyError> {
        let mut out = Self::default();
        for (peer, settings) in &config.internal.peers {
            for file in settings.checkpoint_public_key_file.iter().chain(&settings.checkpoint_accepted_public_key_files)
            {
                out.insert(*peer, keys::read_public(file)?);
            }
        }
        Ok(out)
    }

    /// The peers' keys and `service`'s own (`checkpoint.public_key_file` and
    /// `accepted_public_key_files`): every key a config names.
    pub fn all_from_config<S>(service: ServiceName, config: &Config<S>) -> Result<Self, KeyError> {
        let mut out = Self::from_config(config)?;
        if let Some(own) = &config.checkpoint {
            for file in own.public_key_file.iter().chain(&own.accepted_public_key_files) {
                out.insert(service, keys::read_public(file)?);
            }
        }
        Ok(out)
    }

    /// Adds every key of `other`.
    pub fn extend(&mut self, other: CheckpointKeys) {
        for (service, keys) in other.0 {
            for key in keys {
                self.insert(service, key);
            }
        }
    }

    pub fn verify(&self, checkpoint: &Checkpoint) -> Result<(), SignatureError> {
        let keys = self.0.get(&checkpoint.origin).ok_or(SignatureError::NoKey(checkpoint.origin))?;
        let message = checkpoint.message();
        keys.iter()
            .any(|key| UnparsedPublicKey::new(&ED25519, key).verify(&message, &checkpoint.signature).is_ok())
            .then_some(())
            .ok_or(SignatureError::Bad(checkpoint.origin))
    }
}
