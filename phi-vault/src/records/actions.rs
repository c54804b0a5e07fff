//! What each record route does, both phases through: store a new record, serve a read (or an
//! emergency disclosure), replace, delete, list.

use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use common::assertion::Claims;
use common::client::{EmergencyDisclosure, Record, RecordList};
use common::ApiError;

use super::phases::{authorized, commit_read, commit_replace, decide_new};
use super::queries;
use super::rules::{self, served, Category, FIELD};
use super::vault::{crypto_error, existing_key, lock_subject, SubjectKey, SubjectRow, Vault};
use crate::access_log::{self, access, log_alone};
use crate::keys::crypto::{self, Binding};
use crate::policy::{self, Decision, Intent};
use crate::retention::RetentionPolicy;

const CREATE: &str = "record.create";
const UPDATE: &str = "record.update";
const DELETE: &str = "record.delete";
const LIST: &str = "record.list";

/// Stores a new record of `category` for `subject`, sealed from `plaintext`; returns its id.
pub(super) async fn store(
    pool: &PgPool,
    vault: &Vault,
    retention: &RetentionPolicy,
    claims: &Claims,
    (subject, category): (Uuid, Category),
    plaintext: &[u8],
    requested_expiry: Option<OffsetDateTime>,
) -> Result<Uuid, ApiError> {
    let decision = decide_new(pool, vault, retention, claims, (subject, category.as_str()), CREATE).await?;
    let id = Uuid::new_v4();
    let expires_at = retention.expiry(category.as_str(), requested_expiry, OffsetDateTime::now_utc());
    // A second attempt only when another request stored the subject's first key meanwhile: it
    // then finds that key and unwraps it.
    for _ in 0..2 {
        let key = vault.subject_key(pool, subject, true, &claims.request_id).await?;
        let Some(data_key) = key.key() else {
            log_alone(pool, &access(claims, Some(subject), None, CREATE, &Decision::deny("subject erased"))).await?;
            return Err(ApiError::NotFound);
        };
        let binding = Binding { subject, record: id, category: category.as_str(), field: FIELD };
        let (nonce, ciphertext) =
            crypto::seal(data_key, binding, plaintext).map_err(|e| crypto_error(e, &claims.request_id))?;
        // Phase 2. Locks: the subject's row, then the access log's chain lock (module docs).
        let mut tx = pool.begin().await?;
        match lock_subject(&mut tx, subject, &key).await? {
            SubjectRow::Live => {}
            SubjectRow::Raced => {
                tx.rollback().await?;
                continue;
            }
            SubjectRow::Erased => {
                vault.cache.forget(subject);
                let erased = Decision::deny("subject erased");
                access_log::append(&mut tx, &access(claims, Some(subject), None, CREATE, &erased)).await?;
                tx.commit().await?;
                return Err(ApiError::NotFound);
            }
        }
        let sealed = (nonce, ciphertext);
        if !queries::insert_record(&mut tx, (id, subject, category), sealed, &claims.sub, expires_at).await? {
            return Err(ApiError::internal("a new record's id was already taken"));
        }
        access_log::append(&mut tx, &access(claims, Some(subject), Some(id), CREATE, &decision)).await?;
        tx.commit().await?;
        if let SubjectKey::New { key, .. } = key {
            vault.cache.put(subject, key);
        }
        return Ok(id);
    }
    Err(ApiError::internal("the subject's first data key changed twice while a record was written"))
}

/// A record read, or with `emergency` a disclosure to medical personnel in a medical emergency
/// (the route of `crate::disclosures`).
pub(crate) async fn serve_read(
    claims: &Claims,
    id: Uuid,
    pool: &PgPool,
    vault: &Vault,
    emergency: Option<EmergencyDisclosure>,
) -> Result<Record, ApiError> {
    let action = rules::read_action(emergency.is_some());
    // An emergency read is a disclosure, and only the emergency route makes one.
    if !rules::route_fits_purpose(claims, emergency.is_some()) {
        return Err(ApiError::Forbidden);
    }
    // Phase 1, no transaction: decide, then the key (unwrapped through the provider if not cached).
    let (subject, category, mut decision) = authorized(pool, vault, claims, id, action).await?;
    // A document (even its name) is never disclosed outside the program.
    if category == Category::Document && (decision.disclosure.is_some() || emergency.is_some()) {
        let refused = Decision::deny("documents are not disclosed outside the program");
        log_alone(pool, &access(claims, Some(subject), Some(id), action, &refused)).await?;
        return Err(ApiError::Forbidden);
    }
    if let Some(emergency) = emergency {
        decision.disclosure = Some(crate::disclosures::emergency(emergency, category.as_str()));
    }
    let key = existing_key(pool, vault, claims, (subject, id), action, &decision).await?;
    // Phase 2, in the next group commit (`crate::commit`).
    let notice = decision.disclosure.as_ref().map(|d| vault.notice.sent_with(d));
    let alone = notice.is_some();
    let ((category, content, times), seq) =
        commit_read(vault, claims, (subject, id), (category, decision, action), key, alone).await?;
    let mut record = served(id, subject, category, content, times, seq)?;
    record.disclosure = notice;
    Ok(record)
}

/// Replaces a record's content with `content`, sealed from `plaintext`.
pub(super) async fn replace(
    pool: &PgPool,
    vault: &Vault,
    claims: &Claims,
    id: Uuid,
    (content, plaintext): (serde_json::Value, &[u8]),
) -> Result<Record, ApiError> {
    // Phase 1, no transaction.
    let (subject, category, decision) = authorized(pool, vault, claims, id, UPDATE).await?;
    if category == Category::Document {
        return Err(ApiError::Unprocessable("a document is replaced by uploading another".into()));
    }
    let key = existing_key(pool, vault, claims, (subject, id), UPDATE, &decision).await?;
    let binding = Binding { subject, record: id, category: category.as_str(), field: FIELD };
    let sealed = crypto::seal(&key, binding, plaintext).map_err(|e| crypto_error(e, &claims.request_id))?;
    // Phase 2, in the next group commit (`crate::commit`).
    let (category, times, seq) =
        commit_replace(vault, claims, (subject, id), (category, decision, UPDATE), sealed).await?;
    served(id, subject, category, content, times, seq)
}

/// Deletes a record (a document's content goes with it); false if it was gone meanwhile.
pub(super) async fn remove(pool: &PgPool, vault: &Vault, claims: &Claims, id: Uuid) -> Result<bool, ApiError> {
    let (subject, _, decision) = authorized(pool, vault, claims, id, DELETE).await?;
    // Phase 2. Locks: the record's row, then the access log's chain lock (module docs).
    let mut tx = pool.begin().await?;
    let found = queries::delete_record(&mut tx, id).await?;
    let logged = if found { decision } else { Decision::deny("no such record") };
    access_log::append(&mut tx, &access(claims, Some(subject), Some(id), DELETE, &logged)).await?;
    tx.commit().await?;
    Ok(found)
}

/// A subject's records, metadata only, of `category` when given.
pub(super) async fn list(
    pool: &PgPool,
    vault: &Vault,
    claims: &Claims,
    subject: Uuid,
    category: Option<Category>,
) -> Result<RecordList, ApiError> {
    let category = category.map(Category::as_str);
    // Phase 1, no transaction: the policy may ask the consent service.
    let decision = policy::decide(pool, &vault.consent, &vault.watch, claims, subject, Intent::Read(category)).await?;
    if !decision.permitted {
        log_alone(pool, &access(claims, Some(subject), None, LIST, &decision)).await?;
        return Err(decision.refusal());
    }
    // Phase 2: the list, then the access log's chain lock last.
    let mut tx = pool.begin().await?;
    let rows = queries::list(&mut tx, subject, category).await?;
    access_log::append(&mut tx, &access(claims, Some(subject), None, LIST, &decision)).await?;
    tx.commit().await?;
    Ok(RecordList { records: rows.into_iter().map(Into::into).collect() })
}
