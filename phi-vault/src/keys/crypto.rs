//! Envelope encryption of PHI.
//!
//! - Each subject has a 256-bit data key. Each record field is sealed under it with
//!   AES-256-GCM-SIV and a fresh 96-bit nonce. The associated data binds the ciphertext to
//!   subject, record id, category and field, so a ciphertext copied onto another row, subject or
//!   field fails to open.
//! - A data key is stored only wrapped by a key-encryption key (KEK) held by a [`KeyProvider`]:
//!   HashiCorp Vault's Transit engine in production, or a local key file in the dev profile only.
//!   The KEK version is stored with each wrapped key, so rotation can rewrap without touching
//!   records.
//! - Unwrapped data keys live in a bounded, time-limited cache, are swept out by a timer once
//!   expired ([`sweep_expired`]), and are zeroized when dropped, as are the AES key schedules
//!   (the `aes` crate's `zeroize` feature).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aes_gcm_siv::aead::{Aead, KeyInit, Payload};
use aes_gcm_siv::{Aes256GcmSiv, Nonce};
use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};
use uuid::Uuid;
use zeroize::Zeroizing;

pub const NONCE_LEN: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// A ciphertext, nonce or its associated data was altered: an integrity alarm.
    #[error("integrity check failed")]
    Integrity,
    #[error("key provider unavailable: {0}")]
    Unavailable(String),
    #[error("key provider: {0}")]
    Provider(String),
    #[error("random source failed")]
    Random,
}

fn random<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut out = [0u8; N];
    SystemRandom::new().fill(&mut out).map_err(|_| CryptoError::Random)?;
    Ok(out)
}

/// A subject's data key; the bytes are wiped when it is dropped.
#[derive(Clone)]
pub struct DataKey(Zeroizing<[u8; 32]>);

impl DataKey {
    pub fn generate() -> Result<Self, CryptoError> {
        Ok(Self(Zeroizing::new(random::<32>()?)))
    }

    /// The raw bytes, for a key provider to wrap. Never log or store them.
    pub fn expose(&self) -> &[u8] {
        self.0.as_ref()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        Self::from_slice(bytes)
    }

    fn from_slice(bytes: &[u8]) -> Result<Self, CryptoError> {
        let array: [u8; 32] = bytes.try_into().map_err(|_| CryptoError::Integrity)?;
        Ok(Self(Zeroizing::new(array)))
    }

    fn cipher(&self) -> Result<Aes256GcmSiv, CryptoError> {
        Aes256GcmSiv::new_from_slice(self.0.as_ref()).map_err(|_| CryptoError::Integrity)
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey([redacted])")
    }
}

/// What binds a sealed field to its place.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    pub subject: Uuid,
    pub record: Uuid,
    pub category: &'a str,
    pub field: &'a str,
}

impl Binding<'_> {
    fn aad(&self) -> Vec<u8> {
        format!("secondwind-record-v1\0{}\0{}\0{}\0{}", self.subject, self.record, self.category, self.field)
            .into_bytes()
    }
}

/// Seals `plaintext`; returns (nonce, ciphertext with tag).
pub fn seal(key: &DataKey, binding: Binding<'_>, plaintext: &[u8]) -> Result<(Vec<u8>, Vec<u8>), CryptoError> {
    let nonce_bytes = random::<NONCE_LEN>()?;
    let nonce = Nonce::try_from(&nonce_bytes[..]).map_err(|_| CryptoError::Random)?;
    let aad = binding.aad();
    let ciphertext =
        key.cipher()?.encrypt(&nonce, Payload { msg: plaintext, aad: &aad }).map_err(|_| CryptoError::Integrity)?;
    Ok((nonce_bytes.to_vec(), ciphertext))
}

/// Opens a sealed field; any change to ciphertext, nonce or binding fails as `Integrity`.
pub fn open(
    key: &DataKey,
    binding: Binding<'_>,
    nonce: &[u8],
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let nonce = Nonce::try_from(nonce).map_err(|_| CryptoError::Integrity)?;
    let aad = binding.aad();
    key.cipher()?
        .decrypt(&nonce, Payload { msg: ciphertext, aad: &aad })
        .map(Zeroizing::new)
        .map_err(|_| CryptoError::Integrity)
}

/// A data key as stored: wrapped by KEK `kek_id` at `kek_version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    pub ciphertext: Vec<u8>,
    pub kek_id: String,
    pub kek_version: i32,
}

/// Holds the key-encryption key. Implementations: [`LocalKeyFile`] (dev only) and, in
/// production, Vault Transit.
#[rocket::async_trait]
pub trait KeyProvider: Send + Sync {
    /// Wraps `key` for `subject` under the current KEK version.
    async fn wrap(&self, subject: Uuid, key: &DataKey) -> Result<WrappedKey, CryptoError>;
    async fn unwrap(&self, subject: Uuid, wrapped: &WrappedKey) -> Result<DataKey, CryptoError>;
    /// The KEK version new wraps use.
    async fn current_version(&self) -> Result<i32, CryptoError>;
    /// A name for logs and `/status`: `local-file` or `vault-transit`.
    fn kind(&self) -> &'static str;
}

/// KEK versions, oldest first.
type KekVersions = Vec<(i32, Zeroizing<[u8; 32]>)>;

/// The dev profile's KEK: a file of `version:base64key` lines (mode 0600); the highest version
/// wraps, every listed version unwraps. Production refuses it.
pub struct LocalKeyFile {
    id: String,
    path: PathBuf,
    keys: std::sync::RwLock<KekVersions>,
}

impl LocalKeyFile {
    pub fn load(path: &Path) -> Result<Self, String> {
        let keys = Self::read(path)?;
        Ok(Self {
            id: format!("local:{}", path.display()),
            path: path.to_path_buf(),
            keys: std::sync::RwLock::new(keys),
        })
    }

    fn read(path: &Path) -> Result<KekVersions, String> {
        let text = Zeroizing::new(common::keys::read_secret_text(path).map_err(|e| e.to_string())?);
        let mut keys = Vec::new();
        for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#')) {
            let (version, b64) = line
                .split_once(':')
                .ok_or_else(|| format!("{}: line {}: expected VERSION:BASE64", path.display(), n + 1))?;
            let version: i32 =
                version.trim().parse().map_err(|_| format!("{}: line {}: bad version", path.display(), n + 1))?;
            let bytes = Zeroizing::new(
                base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .map_err(|_| format!("{}: line {}: bad base64", path.display(), n + 1))?,
            );
            let key: [u8; 32] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| format!("{}: line {}: key must be 32 bytes", path.display(), n + 1))?;
            keys.push((version, Zeroizing::new(key)));
        }
        keys.sort_by_key(|(v, _)| *v);
        if keys.is_empty() {
            return Err(format!("{}: no keys", path.display()));
        }
        Ok(keys)
    }

    /// Appends a new KEK version to the file; returns it. Existing versions stay until every
    /// data key has been rewrapped (`secondwind-operator phi rewrap`).
    pub fn rotate(path: &Path) -> Result<i32, String> {
        let keys = Self::read(path)?;
        let next = keys.last().map(|(v, _)| v + 1).unwrap_or(1);
        let key = Zeroizing::new(random::<32>().map_err(|e| e.to_string())?);
        let mut text = Zeroizing::new(common::keys::read_secret_text(path).map_err(|e| e.to_string())?);
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!("{next}:{}\n", base64::engine::general_purpose::STANDARD.encode(key.as_ref())));
        let tmp = path.with_extension("rotating");
        let _ = std::fs::remove_file(&tmp);
        common::keys::write_secret_file(&tmp, &text).map_err(|e| e.to_string())?;
        std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(next)
    }

    /// Re-reads the file (after a rotation made elsewhere).
    fn reload(&self) -> Result<(), CryptoError> {
        let keys = Self::read(&self.path).map_err(CryptoError::Provider)?;
        if let Ok(mut current) = self.keys.write() {
            *current = keys;
        }
        Ok(())
    }

    /// Writes a new key file with version 1 (mode 0600, never overwriting).
    pub fn create(path: &Path) -> Result<PathBuf, String> {
        let key = Zeroizing::new(random::<32>().map_err(|e| e.to_string())?);
        let line = format!(
            "# SecondWind dev-only key-encryption key. Never use in production.\n1:{}\n",
            base64::engine::general_purpose::STANDARD.encode(key.as_ref())
        );
        common::keys::write_secret_file(path, &line).map_err(|e| e.to_string())?;
        Ok(path.to_path_buf())
    }

    fn key(&self, version: i32) -> Result<Aes256GcmSiv, CryptoError> {
        let find = |this: &Self| -> Option<Result<Aes256GcmSiv, CryptoError>> {
            let keys = this.keys.read().ok()?;
            let (_, key) = keys.iter().find(|(v, _)| *v == version)?;
            Some(Aes256GcmSiv::new_from_slice(key.as_ref()).map_err(|_| CryptoError::Integrity))
        };
        if let Some(found) = find(self) {
            return found;
        }
        // Rotated since start: look again.
        self.reload()?;
        find(self).unwrap_or_else(|| Err(CryptoError::Provider(format!("no KEK version {version}"))))
    }

    fn latest(&self) -> i32 {
        self.keys.read().ok().and_then(|k| k.last().map(|(v, _)| *v)).unwrap_or(1)
    }

    fn aad(subject: Uuid) -> Vec<u8> {
        format!("secondwind-dk-v1\0{subject}").into_bytes()
    }
}

#[rocket::async_trait]
impl KeyProvider for LocalKeyFile {
    async fn wrap(&self, subject: Uuid, key: &DataKey) -> Result<WrappedKey, CryptoError> {
        let version = self.latest();
        let nonce_bytes = random::<NONCE_LEN>()?;
        let nonce = Nonce::try_from(&nonce_bytes[..]).map_err(|_| CryptoError::Random)?;
        let aad = Self::aad(subject);
        let sealed = self
            .key(version)?
            .encrypt(&nonce, Payload { msg: key.0.as_ref(), aad: &aad })
            .map_err(|_| CryptoError::Integrity)?;
        let mut ciphertext = nonce_bytes.to_vec();
        ciphertext.extend_from_slice(&sealed);
        Ok(WrappedKey { ciphertext, kek_id: self.id.clone(), kek_version: version })
    }

    async fn unwrap(&self, subject: Uuid, wrapped: &WrappedKey) -> Result<DataKey, CryptoError> {
        if wrapped.ciphertext.len() < NONCE_LEN {
            return Err(CryptoError::Integrity);
        }
        let (nonce, sealed) = wrapped.ciphertext.split_at(NONCE_LEN);
        let nonce = Nonce::try_from(nonce).map_err(|_| CryptoError::Integrity)?;
        let aad = Self::aad(subject);
        let plain = Zeroizing::new(
            self.key(wrapped.kek_version)?
                .decrypt(&nonce, Payload { msg: sealed, aad: &aad })
                .map_err(|_| CryptoError::Integrity)?,
        );
        DataKey::from_slice(&plain)
    }

    async fn current_version(&self) -> Result<i32, CryptoError> {
        self.reload()?;
        Ok(self.latest())
    }

    fn kind(&self) -> &'static str {
        "local-file"
    }
}

/// Unwrapped data keys, bounded in number and age.
pub struct KeyCache {
    max_entries: usize,
    ttl: Duration,
    entries: Mutex<HashMap<Uuid, (DataKey, Instant)>>,
}

impl KeyCache {
    pub fn new(max_entries: usize, ttl: Duration) -> Self {
        Self { max_entries: max_entries.max(1), ttl, entries: Mutex::new(HashMap::new()) }
    }

    pub fn get(&self, subject: Uuid) -> Option<DataKey> {
        let mut entries = self.entries.lock().ok()?;
        match entries.get(&subject) {
            Some((key, at)) if at.elapsed() < self.ttl => Some(key.clone()),
            Some(_) => {
                entries.remove(&subject);
                None
            }
            None => None,
        }
    }

    pub fn put(&self, subject: Uuid, key: DataKey) {
        let Ok(mut entries) = self.entries.lock() else { return };
        entries.retain(|_, (_, at)| at.elapsed() < self.ttl);
        if entries.len() >= self.max_entries {
            if let Some(oldest) = entries.iter().min_by_key(|(_, (_, at))| *at).map(|(k, _)| *k) {
                entries.remove(&oldest);
            }
        }
        entries.insert(subject, (key, Instant::now()));
    }

    /// Forgets a subject's key (after shredding or rewrapping).
    pub fn forget(&self, subject: Uuid) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(&subject);
        }
    }

    /// Drops every key (when shred notices may have been missed).
    pub fn clear(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.clear();
        }
    }

    /// Drops (and so wipes) every expired key; returns how many.
    pub fn sweep(&self) -> usize {
        let Ok(mut entries) = self.entries.lock() else { return 0 };
        let before = entries.len();
        entries.retain(|_, (_, at)| at.elapsed() < self.ttl);
        before - entries.len()
    }

    /// How often [`sweep_expired`] should sweep this cache: half the keys' lifetime, between 1
    /// and 30 seconds.
    pub fn sweep_interval(&self) -> Duration {
        (self.ttl / 2).clamp(Duration::from_secs(1), Duration::from_secs(30))
    }

    /// Entries held, expired or not (counting touches nothing).
    pub fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Sweeps expired keys out of `cache` every `every` until `shutdown`, so a key nobody asks for
/// again is wiped soon after it expires rather than kept until its subject is next looked up.
pub async fn sweep_expired(
    cache: std::sync::Arc<KeyCache>,
    every: Duration,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = ticks.tick() => {
                let swept = cache.sweep();
                if swept > 0 {
                    tracing::debug!(swept, "expired data keys dropped from the cache");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(subject: Uuid, record: Uuid) -> Binding<'static> {
        Binding { subject, record, category: "identity", field: "content" }
    }

    #[test]
    fn sealed_fields_open_only_in_their_place() {
        let key = DataKey::generate().expect("key");
        let (s, r) = (Uuid::new_v4(), Uuid::new_v4());
        let (nonce, ct) = seal(&key, binding(s, r), b"Jane Doe, 1990-01-01").expect("seal");
        assert_eq!(open(&key, binding(s, r), &nonce, &ct).expect("open").as_slice(), b"Jane Doe, 1990-01-01");
        assert!(!ct.windows(4).any(|w| w == b"Jane"), "no plaintext in the ciphertext");

        // Another row, subject, category or field: refused.
        assert!(matches!(open(&key, binding(s, Uuid::new_v4()), &nonce, &ct), Err(CryptoError::Integrity)));
        assert!(matches!(open(&key, binding(Uuid::new_v4(), r), &nonce, &ct), Err(CryptoError::Integrity)));
        assert!(open(&key, Binding { category: "insurance", ..binding(s, r) }, &nonce, &ct).is_err());
        assert!(open(&key, Binding { field: "other", ..binding(s, r) }, &nonce, &ct).is_err());
        // Tampered ciphertext or nonce, or the wrong key: refused.
        let mut bad = ct.clone();
        bad[0] ^= 1;
        assert!(open(&key, binding(s, r), &nonce, &bad).is_err());
        let mut bad_nonce = nonce.clone();
        bad_nonce[0] ^= 1;
        assert!(open(&key, binding(s, r), &bad_nonce, &ct).is_err());
        assert!(open(&DataKey::generate().expect("key"), binding(s, r), &nonce, &ct).is_err());
        // Nonces are fresh: the same plaintext seals differently.
        assert_ne!(seal(&key, binding(s, r), b"x").expect("seal").1, seal(&key, binding(s, r), b"x").expect("seal").1);
    }

    #[tokio::test]
    async fn local_kek_wraps_per_subject_and_keeps_old_versions() {
        let dir = std::env::temp_dir().join(format!("sw-kek-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("kek");
        LocalKeyFile::create(&path).expect("create");
        let v1 = LocalKeyFile::load(&path).expect("load");
        let subject = Uuid::new_v4();
        let key = DataKey::generate().expect("key");
        let wrapped = v1.wrap(subject, &key).await.expect("wrap");
        assert_eq!(wrapped.kek_version, 1);
        assert_eq!(v1.unwrap(subject, &wrapped).await.expect("unwrap").0.as_ref(), key.0.as_ref());
        assert!(
            matches!(v1.unwrap(Uuid::new_v4(), &wrapped).await, Err(CryptoError::Integrity)),
            "bound to its subject"
        );

        // Rotate: version 2 wraps new keys; version 1 still unwraps; a provider loaded before the
        // rotation finds version 2 by reloading.
        assert_eq!(LocalKeyFile::rotate(&path).expect("rotate"), 2);
        let v2 = LocalKeyFile::load(&path).expect("load");
        let rewrapped = v2.wrap(subject, &key).await.expect("wrap");
        assert_eq!(rewrapped.kek_version, 2);
        assert!(v2.unwrap(subject, &wrapped).await.is_ok());
        assert_eq!(v1.unwrap(subject, &rewrapped).await.expect("reloads").0.as_ref(), key.0.as_ref());
        assert_eq!(v1.current_version().await.expect("version"), 2);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_cache_is_bounded_and_expires() {
        let cache = KeyCache::new(2, Duration::from_millis(50));
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        for s in [a, b, c] {
            cache.put(s, DataKey::generate().expect("key"));
        }
        assert_eq!(cache.len(), 2);
        assert!(cache.get(a).is_none(), "the oldest was evicted");
        std::thread::sleep(Duration::from_millis(60));
        assert!(cache.get(c).is_none(), "entries expire");
    }

    impl KeyCache {
        /// Makes a subject's entry `by` older, as if time had passed.
        fn age(&self, subject: Uuid, by: Duration) {
            let mut entries = self.entries.lock().expect("lock");
            let (_, at) = entries.get_mut(&subject).expect("cached");
            *at = at.checked_sub(by).expect("an instant that far back");
        }
    }

    #[test]
    fn a_sweep_drops_expired_keys_and_keeps_live_ones() {
        let ttl = Duration::from_secs(300);
        let cache = KeyCache::new(10, ttl);
        let (expired, live) = (Uuid::new_v4(), Uuid::new_v4());
        cache.put(expired, DataKey::generate().expect("key"));
        cache.put(live, DataKey::generate().expect("key"));
        cache.age(expired, ttl + Duration::from_secs(1));
        assert_eq!(cache.len(), 2, "an expired key stays until something removes it");
        assert_eq!(cache.sweep(), 1);
        assert_eq!(cache.len(), 1);
        assert!(cache.get(live).is_some(), "the live key stays");
        assert_eq!(cache.sweep(), 0);
        assert_eq!(cache.sweep_interval(), Duration::from_secs(30));
        assert_eq!(KeyCache::new(1, Duration::from_millis(10)).sweep_interval(), Duration::from_secs(1));
    }

    #[tokio::test]
    async fn the_sweep_timer_drops_expired_keys_nobody_touches() {
        let ttl = Duration::from_secs(300);
        let cache = std::sync::Arc::new(KeyCache::new(10, ttl));
        let (expired, live) = (Uuid::new_v4(), Uuid::new_v4());
        cache.put(expired, DataKey::generate().expect("key"));
        cache.put(live, DataKey::generate().expect("key"));
        cache.age(expired, ttl + Duration::from_secs(1));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let sweeper = tokio::spawn(sweep_expired(cache.clone(), Duration::from_millis(10), async {
            let _ = stopped.await;
        }));
        // Nothing gets or puts: only the timer can remove the expired key.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while cache.len() > 1 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(cache.len(), 1, "the expired key was swept without being touched");
        let _ = stop.send(());
        tokio::time::timeout(Duration::from_secs(10), sweeper).await.expect("stops at shutdown").expect("task");
        assert!(cache.get(live).is_some(), "the live key stays");
    }

    /// The AES key schedules inside AES-256-GCM-SIV wipe themselves when dropped: this compiles
    /// only while the `aes` crate's `zeroize` feature is on.
    #[test]
    fn aes_key_schedules_are_zeroized_on_drop() {
        fn zeroized_on_drop<T: zeroize::ZeroizeOnDrop>() {}
        zeroized_on_drop::<aes::Aes256>();
    }
}
