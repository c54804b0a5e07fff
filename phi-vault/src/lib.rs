//! The PHI vault: the only place 42 CFR Part 2 records live, encrypted under per-subject data
//! keys, every access judged by its policy and written to its chained access log.
//!
//! One folder per feature: `records` (a subject's records), `care_team`, `disclosures` (the
//! accounting of disclosures, emergency disclosures and the redisclosure notice), `access_log`
//! (its page, reviews and verification), `documents`, `keys` (the key hierarchy: sealing, the
//! key providers, rewrap and shred), `retention`, `volume`, `policy` (the access decision),
//! `commit` (group commit) and `ready` (readiness). In each, `mod.rs` says what the feature does and its rules,
//! `routes.rs` holds its HTTP handlers, `queries.rs` all its SQL (one function per statement,
//! typed rows) and `rules.rs` what needs no database. This file holds the settings, the builder
//! and the one list of every feature's routes ([`routes`]).

use rocket::{Build, Rocket};
use serde::{Deserialize, Serialize};

use common::client::ConsentClient;
use common::config::{Config, ConfigError, Profile};
use common::service::{Parts, StartError};
use common::ServiceName;

pub mod access_log;
pub mod care_team;
pub mod commit;
pub mod disclosures;
pub mod documents;
pub mod keys;
pub mod policy;
mod ready;
pub mod records;
pub mod retention;
pub mod volume;

pub use disclosures::notice;
pub use keys::{crypto, vault_transit};

pub const SERVICE: ServiceName = ServiceName::PhiVault;

/// The vault's own settings, `[service]` in its config file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// The dev profile's local key-encryption key file (`VERSION:BASE64` lines, mode 0600).
    /// Production refuses it; the Vault Transit provider replaces it there.
    pub kek_file: Option<std::path::PathBuf>,
    /// Vault (or OpenBao) Transit: the production key provider.
    pub vault: Option<vault_transit::VaultSettings>,
    /// The largest record content accepted, in bytes.
    pub max_record_bytes: usize,
    /// Unwrapped data keys kept in memory, and for how long.
    pub key_cache_entries: usize,
    pub key_cache_ttl_secs: u64,
    /// `policies/retention.toml`.
    pub retention_file: std::path::PathBuf,
    /// How often the retention job looks for expired records.
    pub retention_interval_secs: u64,
    /// `policies/phi-volume.toml`: distinct subjects a caller may read per window.
    pub volume_file: std::path::PathBuf,
    /// Connections that commit record reads and replaces in groups (`commit` module docs).
    pub commit_workers: usize,
    /// The redisclosure notice (42 CFR §2.32) sent with every disclosure: a versioned policy
    /// file, `policies/redisclosure-notices/<version>.txt` (`notice` module docs).
    pub notice_file: std::path::PathBuf,
    /// The virus scanner documents pass before they are kept. Without one, no document is
    /// accepted (503).
    pub scanner: Option<documents::ScannerSettings>,
    /// The largest document accepted, in bytes.
    pub max_document_bytes: u64,
    /// The longest one document upload may take.
    pub document_timeout_secs: u64,
    /// Document uploads taken at once by this instance (more: 503).
    pub max_concurrent_uploads: usize,
    /// How old a document upload never accepted (its process died) must be before the sweep
    /// deletes its pieces.
    pub abandoned_upload_secs: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            kek_file: None,
            vault: None,
            max_record_bytes: 64 * 1024,
            key_cache_entries: 10_000,
            key_cache_ttl_secs: 300,
            retention_file: "policies/retention.toml".into(),
            retention_interval_secs: 300,
            volume_file: "policies/phi-volume.toml".into(),
            commit_workers: 2,
            notice_file: "policies/redisclosure-notices/part2-2024.txt".into(),
            scanner: None,
            max_document_bytes: 10 * 1024 * 1024,
            document_timeout_secs: 300,
            max_concurrent_uploads: 32,
            abandoned_upload_secs: 3600,
        }
    }
}

pub type PhiVaultConfig = Config<Settings>;

fn invalid_config(key: &str, message: String) -> StartError {
    StartError::Config(ConfigError::Invalid { key: key.into(), message })
}

/// The key-encryption-key provider the settings name (the CLI uses it for rewrap).
pub fn key_provider(config: &PhiVaultConfig) -> Result<Box<dyn crypto::KeyProvider>, StartError> {
    let invalid = |key: &str, message: String| StartError::Config(ConfigError::Invalid { key: key.into(), message });
    match (&config.service.kek_file, &config.service.vault, config.profile) {
        (Some(_), Some(_), _) => {
            Err(invalid("service.kek_file", "set either kek_file or [service.vault], not both".into()))
        }
        (Some(_), None, Profile::Production) => {
            Err(invalid("service.kek_file", "production refuses the local key file".into()))
        }
        (Some(file), None, Profile::Dev) => {
            Ok(Box::new(crypto::LocalKeyFile::load(file).map_err(|e| invalid("service.kek_file", e))?))
        }
        (None, Some(vault), profile) => {
            if profile == Profile::Production && !vault.address.starts_with("https://") {
                return Err(invalid("service.vault.address", "production requires https".into()));
            }
            Ok(Box::new(vault_transit::VaultTransit::new(vault).map_err(|e| invalid("service.vault", e))?))
        }
        (None, None, _) => {
            Err(invalid("service.vault", "a key provider is required: [service.vault] (or kek_file in dev)".into()))
        }
    }
}

/// The one builder `main` and the tests share.
pub async fn build(config: PhiVaultConfig) -> Result<Rocket<Build>, StartError> {
    let settings = &config.service;
    if config.internal.user_tokens.is_none() {
        return Err(invalid_config(
            "internal.user_tokens",
            "phi-vault requires public-api's user-token public keys: a call made for a person must carry their own token"
                .into(),
        ));
    }
    let volume = volume::VolumePolicy::load(&settings.volume_file)
        .map_err(|message| invalid_config("service.volume_file", message))?;
    let watch = std::sync::Arc::new(volume::VolumeWatch::new(volume));
    let provider = key_provider(&config)?;
    tracing::info!(provider = provider.kind(), "key-encryption key provider ready");
    let notice = notice::Notice::load(&settings.notice_file)
        .map_err(|e| invalid_config("service.notice_file", e.to_string()))?;
    let parts = Parts::load(SERVICE, &config).await?;
    notice.record(&parts.pool).await.map_err(|e| match e {
        notice::NoticeError::Sql(e) => StartError::Database(e.into()),
        other => invalid_config("service.notice_file", other.to_string()),
    })?;
    tracing::info!(version = notice.version.as_str(), "redisclosure notice recorded");
    let consent = ConsentClient::new(parts.client(&config, ServiceName::Consent)?);
    let vault = records::Vault {
        provider,
        cache: std::sync::Arc::new(crypto::KeyCache::new(
            settings.key_cache_entries,
            std::time::Duration::from_secs(settings.key_cache_ttl_secs),
        )),
        max_record_bytes: settings.max_record_bytes,
        consent: consent.clone(),
        watch: watch.clone(),
        commit: commit::Committer::start(parts.pool.clone(), settings.commit_workers),
        notice: std::sync::Arc::new(notice),
    };
    let documents = documents::Documents {
        scanner: settings.scanner.as_ref().map(|s| {
            common::clamd::Scanner::new(s.address.clone(), std::time::Duration::from_secs(s.timeout_secs.max(1)))
        }),
        max_bytes: settings.max_document_bytes,
        transfer_timeout: std::time::Duration::from_secs(settings.document_timeout_secs.max(1)),
        slots: std::sync::Arc::new(tokio::sync::Semaphore::new(settings.max_concurrent_uploads.max(1))),
    };
    // Document bytes cross to clamd in clear, and its "OK" decides what is kept: production
    // talks only to a scanner on this host.
    if let (Some(scanner), Profile::Production) = (&settings.scanner, config.profile) {
        if !documents::on_this_host(&scanner.address) {
            return Err(invalid_config(
                "service.scanner.address",
                "production requires clamd on this host (loopback)".into(),
            ));
        }
    }
    // The sweep must never take an upload still under way.
    let scan_secs = settings.scanner.as_ref().map_or(0, |s| s.timeout_secs);
    if settings.abandoned_upload_secs <= settings.document_timeout_secs + 2 * scan_secs + 60 {
        return Err(invalid_config(
            "service.abandoned_upload_secs",
            "must exceed document_timeout_secs plus twice the scanner's timeout plus 60 s".into(),
        ));
    }
    if documents.scanner.is_none() {
        tracing::warn!("no virus scanner configured ([service.scanner]): documents will be refused (503)");
    }
    let abandoned = std::time::Duration::from_secs(settings.abandoned_upload_secs);
    let retention = retention::RetentionPolicy::load(&settings.retention_file)
        .map_err(|e| StartError::Config(ConfigError::Invalid { key: "service.retention_file".into(), message: e }))?;
    let interval = std::time::Duration::from_secs(settings.retention_interval_secs.max(1));
    let cache = vault.cache.clone();
    let (consent_for_job, policy_for_job) = (consent.clone(), retention.clone());
    Ok(parts
        .into_rocket(&config)
        .attach(common::routing::SingleQueryParameters)
        .manage(consent)
        .manage(vault)
        .manage(retention)
        .manage(documents)
        .attach(rocket::fairing::AdHoc::on_liftoff("background jobs", move |r| {
            let pool = r.state::<sqlx::PgPool>().cloned();
            let (consent, policy) = (consent_for_job.clone(), policy_for_job.clone());
            let shutdown = r.shutdown();
            Box::pin(async move {
                if let Some(pool) = pool {
                    tokio::spawn(retention::run(pool.clone(), consent, policy, interval, shutdown.clone()));
                    tokio::spawn(documents::sweep_until(pool.clone(), abandoned, interval, shutdown.clone()));
                    tokio::spawn(keys::evict_shredded(pool, cache.clone(), shutdown.clone()));
                    tokio::spawn(volume::sweep_until(watch.clone(), shutdown.clone()));
                    let every = cache.sweep_interval();
                    tokio::spawn(crypto::sweep_expired(cache, every, shutdown));
                }
            })
        }))
        .manage(common::anchor::ChainVerifier(verify_chain))
        .mount("/", routes()))
}

/// Every route phi-vault serves: each feature's, and the checkpoint and anchor routes every
/// service shares.
pub fn routes() -> Vec<rocket::Route> {
    [
        ready::routes(),
        common::checkpoint::routes(),
        common::anchor::routes(),
        records::routes(),
        care_team::routes(),
        disclosures::routes(),
        access_log::routes(),
        documents::routes(),
        keys::routes(),
    ]
    .concat()
}

/// Verifies one of phi-vault's trails' hash chains (`common::anchor::VerifyChain`).
pub fn verify_chain(
    trail: common::checkpoint::Trail,
    pool: sqlx::PgPool,
    limit: usize,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<common::chain::Verification, sqlx::Error>> + Send>> {
    use common::checkpoint::Trail;
    Box::pin(async move {
        match trail {
            Trail::AccessLog => access_log::verify(&pool, limit).await,
            Trail::AccessReviews => access_log::verify_reviews(&pool, limit).await,
            Trail::Disclosures => disclosures::verify(&pool, limit).await,
            other => Err(sqlx::Error::Protocol(format!("{} is not a phi-vault trail", other.as_str()))),
        }
    })
}
