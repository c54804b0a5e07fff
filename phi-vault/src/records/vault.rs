//! The vault's keys as the record routes use them: the subject's data key taken in phase 1
//! (from the cache, unwrapped, or generated and wrapped), and the share lock on the subject's
//! row that phase 2 takes first.

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use common::assertion::Claims;
use common::client::ConsentClient;
use common::ApiError;

use super::queries;
use super::rules::{failure, FAILED};
use crate::access_log::{self, access, log_alone};
use crate::keys::crypto::{CryptoError, DataKey, KeyCache, KeyProvider, WrappedKey};
use crate::keys::wrapped_key;
use crate::policy::Decision;

/// The keys and limits the record routes need.
pub struct Vault {
    pub provider: Box<dyn KeyProvider>,
    /// Shared with the shred listener, which evicts keys other instances destroyed.
    pub cache: std::sync::Arc<KeyCache>,
    pub max_record_bytes: usize,
    /// Asked about every disclosure outside the program.
    pub consent: ConsentClient,
    /// Distinct subjects each caller reads.
    pub watch: std::sync::Arc<crate::volume::VolumeWatch>,
    /// Phase 2 of reads and replaces, committed in groups.
    pub commit: crate::commit::Committer,
    /// The redisclosure notice sent with every disclosure outside the program.
    pub notice: std::sync::Arc<crate::disclosures::notice::Notice>,
}

/// How a key or integrity failure answers; an integrity failure raises the alarm.
pub(crate) fn crypto_error(e: CryptoError, request_id: &str) -> ApiError {
    match e {
        CryptoError::Unavailable(m) => ApiError::Unavailable(format!("key provider: {m}")),
        CryptoError::Integrity => {
            tracing::error!(request_id, alarm = "integrity", "INTEGRITY ALARM: a record or key failed authentication");
            ApiError::internal("integrity check failed")
        }
        other => ApiError::internal(other),
    }
}

/// A subject's data key as phase 1 found it.
pub(crate) enum SubjectKey {
    /// From the cache, or unwrapped from the stored wrapping.
    Ready(DataKey),
    /// The subject had no key: this one was just generated and wrapped; phase 2 stores it.
    New { key: DataKey, wrapped: WrappedKey },
    /// No such subject, or its key was destroyed (crypto-shredded).
    Erased,
}

impl SubjectKey {
    pub(super) fn key(&self) -> Option<&DataKey> {
        match self {
            Self::Ready(key) | Self::New { key, .. } => Some(key),
            Self::Erased => None,
        }
    }
}

/// What phase 2 found of the subject's row.
pub(crate) enum SubjectRow {
    Live,
    Erased,
    /// A new key could not be stored: another request stored the subject's first key meanwhile.
    Raced,
}

impl Vault {
    /// Phase 1: the subject's data key, from the cache or unwrapped by the provider; with
    /// `create`, a subject without one gets a new key, generated and wrapped here and stored by
    /// the caller's transaction ([`lock_subject`]). Runs outside any transaction, so the
    /// provider's network call holds no lock.
    pub(crate) async fn subject_key(
        &self,
        pool: &PgPool,
        subject: Uuid,
        create: bool,
        request_id: &str,
    ) -> Result<SubjectKey, ApiError> {
        if let Some(key) = self.cache.get(subject) {
            return Ok(SubjectKey::Ready(key));
        }
        let Some(row) = queries::subject_key(pool, subject).await? else {
            if !create {
                return Ok(SubjectKey::Erased);
            }
            let key = DataKey::generate().map_err(|e| crypto_error(e, request_id))?;
            let wrapped = self.provider.wrap(subject, &key).await.map_err(|e| crypto_error(e, request_id))?;
            return Ok(SubjectKey::New { key, wrapped });
        };
        let Some(ciphertext) = row.wrapped_data_key else {
            return Ok(SubjectKey::Erased);
        };
        let wrapped = wrapped_key(ciphertext, row.kek_id, row.kek_version);
        let key = self.provider.unwrap(subject, &wrapped).await.map_err(|e| crypto_error(e, request_id))?;
        self.cache.put(subject, key.clone());
        Ok(SubjectKey::Ready(key))
    }
}

/// Phase 2, first lock (see the module docs): stores a new subject's wrapped key, or takes a
/// share lock on an existing subject's row, so a shred cannot commit between this check and the
/// caller's commit (a record written under a destroyed key would outlive the erasure).
pub(crate) async fn lock_subject(
    tx: &mut PgConnection,
    subject: Uuid,
    key: &SubjectKey,
) -> Result<SubjectRow, sqlx::Error> {
    match key {
        SubjectKey::New { wrapped, .. } => {
            let stored = queries::insert_subject(tx, subject, wrapped).await?;
            Ok(if stored { SubjectRow::Live } else { SubjectRow::Raced })
        }
        SubjectKey::Ready(_) | SubjectKey::Erased => {
            Ok(if subject_live(tx, subject).await? { SubjectRow::Live } else { SubjectRow::Erased })
        }
    }
}

/// Phase 2, first lock, for a record whose key phase 1 already holds: a share lock on the
/// subject's row (as [`lock_subject`]). False if the subject was erased meanwhile.
pub(crate) async fn subject_live(tx: &mut PgConnection, subject: Uuid) -> Result<bool, sqlx::Error> {
    let erased = queries::subject_erased(tx, subject).await?;
    Ok(erased == Some(false))
}

/// Phase 1's key for a new record written in several steps (a document's pieces): the
/// subject's data key, its first one generated, wrapped and stored now (in a short transaction
/// of its own) if it had none. `None`: the subject is erased.
pub(crate) async fn writable_key(
    pool: &PgPool,
    vault: &Vault,
    subject: Uuid,
    request_id: &str,
) -> Result<Option<DataKey>, ApiError> {
    for _ in 0..2 {
        let key = vault.subject_key(pool, subject, true, request_id).await?;
        match key {
            SubjectKey::Ready(key) => return Ok(Some(key)),
            SubjectKey::Erased => return Ok(None),
            SubjectKey::New { .. } => {
                let mut tx = pool.begin().await?;
                match lock_subject(&mut tx, subject, &key).await? {
                    SubjectRow::Live => {
                        tx.commit().await?;
                        if let SubjectKey::New { key, .. } = key {
                            vault.cache.put(subject, key.clone());
                            return Ok(Some(key));
                        }
                    }
                    SubjectRow::Raced => tx.rollback().await?,
                    SubjectRow::Erased => return Ok(None),
                }
            }
        }
    }
    Err(ApiError::internal("the subject's first data key changed twice while a record was written"))
}

/// Phase 1's key for reading or changing an existing record: from the cache or unwrapped
/// through the provider, outside any transaction. A failure is logged with the decision it
/// follows, and answered.
pub(crate) async fn existing_key(
    pool: &PgPool,
    vault: &Vault,
    claims: &Claims,
    (subject, id): (Uuid, Uuid),
    action: &str,
    decision: &Decision,
) -> Result<DataKey, ApiError> {
    match vault.subject_key(pool, subject, false, &claims.request_id).await {
        Ok(SubjectKey::Ready(key)) => Ok(key),
        Ok(SubjectKey::New { .. } | SubjectKey::Erased) => {
            vault.cache.forget(subject);
            log_alone(pool, &access(claims, Some(subject), Some(id), action, &Decision::deny("subject erased")))
                .await?;
            Err(ApiError::NotFound)
        }
        Err(e) => {
            let mut tx = pool.begin().await?;
            log_failed(&mut tx, claims, subject, id, action, decision).await?;
            tx.commit().await?;
            Err(e)
        }
    }
}

/// Logs a permitted access that then failed on its key or its integrity: the decision and the
/// failure, in one transaction.
async fn log_failed(
    tx: &mut PgConnection,
    claims: &Claims,
    subject: Uuid,
    record: Uuid,
    action: &str,
    decision: &Decision,
) -> Result<(), sqlx::Error> {
    let failed = Decision::deny(FAILED);
    let entries = failure(claims, subject, record, action, decision, &failed);
    access_log::append_all(tx, &entries).await.map(|_| ())
}
