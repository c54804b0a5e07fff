//! PHI records: create, read, replace and delete, each encrypted under its subject's data key
//! and each decided by the access policy from the caller's verified assertion. Every access —
//! permitted or denied — is written to the access log in the same transaction as what it
//! records. A record the caller may not see answers 404, exactly like a missing one.
//!
//! # No lock is held across the network
//!
//! Each route works in two phases.
//!
//! 1. **Outside any transaction**: the record's metadata is looked up, the access policy decides
//!    (it may ask the consent service), and the subject's data key is taken from the cache or
//!    unwrapped by the key provider (Vault); a subject's first key is generated and wrapped here
//!    too. No transaction is open, so no row or advisory lock is held, during any network call.
//! 2. **One short transaction with no network call in it**, which re-checks what phase 1 found
//!    (the record may have been deleted, the subject erased), writes, appends to the access log
//!    and commits.
//!
//! Phase 2 takes its locks in one order, everywhere in phi-vault (here, in `keys.rs` for
//! rewrap and shred, and in `retention.rs`):
//!
//! 1. the subject's row in `subjects` (`FOR SHARE` when a record is created, the row update of
//!    a rewrap or a shred);
//! 2. record rows in `records` (update, delete; several rows are locked in `id` order);
//! 3. the chain locks of other trails written with the access (the accounting of disclosures);
//! 4. the access log's chain lock, taken by [`access_log::append`]: always last, just before
//!    commit, so it is held for the few statements that append one entry.
//!
//! Nothing takes a lock earlier in this list while holding one later in it, so these
//! transactions cannot deadlock one another, and the access log, which every PHI access on every
//! instance appends to, is never held while anything waits on the network.

use rocket::http::Status;
use rocket::serde::json::Json;
use rocket::{delete, get, post, put, routes, Route, State};
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;
use zeroize::Zeroizing;

use common::assertion::{Claims, InternalCall};
use common::client::{
    ConsentClient, EmergencyDisclosure, NewRecord, Record, RecordContent, RecordCreated, RecordList, RecordSummary,
};
use common::json::Body;
use common::ApiError;

use std::sync::Arc;

use crate::access_log::{self, Entry};
pub(crate) use crate::access_log::{access, log_alone};
use crate::crypto::{self, Binding, CryptoError, DataKey, KeyCache, KeyProvider, WrappedKey};
use crate::disclosures::record_disclosure;
use crate::policy::{self, Decision, Intent};

pub const CATEGORIES: [&str; 6] =
    ["intake_conversation", "coach_conversation", "application_details", "insurance", "identity", "document"];
pub(crate) const FIELD: &str = "content";
/// The access-log reason of a permitted access that failed on its key or its integrity.
const FAILED: &str = "integrity or key failure";

/// The message of every error about a decrypted record's content. Fixed: serde's own messages
/// can quote the text they failed on, and error causes go to the log.
pub const UNREADABLE_CONTENT: &str = "a decrypted record is not valid JSON";

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
    pub notice: Arc<crate::disclosures::notice::Notice>,
}

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

/// A decrypted record's content, parsed. The error never quotes the record.
fn parse_content(plaintext: &[u8]) -> Result<serde_json::Value, ApiError> {
    serde_json::from_slice(plaintext).map_err(|_| ApiError::internal(UNREADABLE_CONTENT))
}

/// Content as it is sealed, wiped from memory when dropped.
fn serialize_content(content: &serde_json::Value) -> Result<Zeroizing<Vec<u8>>, ApiError> {
    serde_json::to_vec(content)
        .map(Zeroizing::new)
        .map_err(|_| ApiError::internal("record content is not serialisable"))
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
    fn key(&self) -> Option<&DataKey> {
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
        let row = sqlx::query("SELECT wrapped_data_key, kek_id, kek_version FROM subjects WHERE id = $1")
            .bind(subject)
            .fetch_optional(pool)
            .await?;
        match row {
            Some(row) => {
                let Some(ciphertext) = row.try_get::<Option<Vec<u8>>, _>("wrapped_data_key")? else {
                    return Ok(SubjectKey::Erased);
                };
                let wrapped = crate::keys::wrapped_key(ciphertext, row.try_get("kek_id")?, row.try_get("kek_version")?);
                let key = self.provider.unwrap(subject, &wrapped).await.map_err(|e| crypto_error(e, request_id))?;
                self.cache.put(subject, key.clone());
                Ok(SubjectKey::Ready(key))
            }
            None if create => {
                let key = DataKey::generate().map_err(|e| crypto_error(e, request_id))?;
                let wrapped = self.provider.wrap(subject, &key).await.map_err(|e| crypto_error(e, request_id))?;
                Ok(SubjectKey::New { key, wrapped })
            }
            None => Ok(SubjectKey::Erased),
        }
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
            let stored = sqlx::query(
                "INSERT INTO subjects (id, wrapped_data_key, kek_id, kek_version) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(subject)
            .bind(&wrapped.ciphertext)
            .bind(&wrapped.kek_id)
            .bind(wrapped.kek_version)
            .execute(&mut *tx)
            .await?;
            Ok(if stored.rows_affected() == 1 { SubjectRow::Live } else { SubjectRow::Raced })
        }
        SubjectKey::Ready(_) | SubjectKey::Erased => {
            Ok(if subject_live(tx, subject).await? { SubjectRow::Live } else { SubjectRow::Erased })
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

/// The two entries of a permitted access that then failed on its key or its integrity: the
/// decision, then the failure (`failed`, a denial with [`FAILED`]).
fn failure<'a>(
    claims: &'a Claims,
    subject: Uuid,
    record: Uuid,
    action: &'a str,
    decision: &'a Decision,
    failed: &'a Decision,
) -> [access_log::Access<'a>; 2] {
    [
        access(claims, Some(subject), Some(record), action, decision),
        access(claims, Some(subject), Some(record), action, failed),
    ]
}

/// A record as served: its row's times, and the access-log entry of this access.
fn served(
    id: Uuid,
    subject: Uuid,
    category: String,
    content: serde_json::Value,
    (created_at, updated_at): Times,
    access_seq: i64,
) -> Result<Record, ApiError> {
    Ok(Record {
        record_id: id,
        subject_id: subject,
        category,
        content,
        created_at,
        updated_at,
        access_seq: Some(access_seq),
        disclosure: None,
    })
}

/// Phase 1 of writing a new record of `category` for `subject`, outside any transaction: the
/// access policy, the subject's consent where the retention policy keeps the category only under
/// one, and the caller's volume (counted only once nothing else refuses). A refusal is logged
/// under `action` and answered.
pub(crate) async fn decide_new(
    pool: &PgPool,
    vault: &Vault,
    retention: &crate::retention::RetentionPolicy,
    claims: &Claims,
    (subject, category): (Uuid, &str),
    action: &str,
) -> Result<Decision, ApiError> {
    let decision = policy::grant(pool, &vault.consent, claims, subject, Intent::Write).await?;
    if !decision.permitted {
        log_alone(pool, &access(claims, Some(subject), None, action, &decision)).await?;
        return Err(ApiError::Forbidden);
    }
    if let Some(purpose) = retention.consent_purpose(category) {
        let ctx = common::assertion::CallContext::on_behalf_of(claims, "retention_check");
        let stands = crate::retention::consent_stands(&vault.consent, &ctx, subject, category, purpose)
            .await
            .map_err(|e| ApiError::Unavailable(format!("consent service: {e}")))?;
        if !stands {
            let refused = Decision::deny("no standing consent to keep records of this category");
            log_alone(pool, &access(claims, Some(subject), None, action, &refused)).await?;
            return Err(ApiError::Conflict(format!(
                "{category}: kept only under the subject's consent ({purpose}), which is not on file"
            )));
        }
    }
    let decision = policy::counted(&vault.watch, claims, subject, Intent::Write, decision);
    if !decision.permitted {
        log_alone(pool, &access(claims, Some(subject), None, action, &decision)).await?;
        return Err(decision.refusal());
    }
    Ok(decision)
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

/// Writes a new record's row; false if its id is taken.
pub(crate) async fn insert_record(
    tx: &mut PgConnection,
    (id, subject, category): (Uuid, Uuid, &str),
    (nonce, ciphertext): (Vec<u8>, Vec<u8>),
    created_by: &str,
    expires_at: Option<time::OffsetDateTime>,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO records (id, subject_id, category, nonce, ciphertext, created_by, expires_at) \
         VALUES ($1, $2, $3::record_category, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
    )
    .bind(id)
    .bind(subject)
    .bind(category)
    .bind(nonce)
    .bind(ciphertext)
    .bind(created_by)
    .bind(expires_at)
    .execute(&mut *tx)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// Phase 2, first lock, for a record whose key phase 1 already holds: a share lock on the
/// subject's row (as [`lock_subject`]). False if the subject was erased meanwhile.
pub(crate) async fn subject_live(tx: &mut PgConnection, subject: Uuid) -> Result<bool, sqlx::Error> {
    let erased: Option<bool> =
        sqlx::query_scalar("SELECT wrapped_data_key IS NULL FROM subjects WHERE id = $1 FOR SHARE")
            .bind(subject)
            .fetch_optional(&mut *tx)
            .await?;
    Ok(erased == Some(false))
}

#[post("/internal/v1/records", data = "<body>")]
async fn create(
    call: InternalCall,
    body: Body<NewRecord>,
    pool: &State<PgPool>,
    vault: &State<Vault>,
    retention: &State<crate::retention::RetentionPolicy>,
) -> Result<(Status, Json<RecordCreated>), ApiError> {
    let new = body.into_inner();
    let claims = &call.0;
    let subject = new.subject_id;
    if !CATEGORIES.contains(&new.category.as_str()) {
        return Err(ApiError::Unprocessable(format!("category: one of {}", CATEGORIES.join(", "))));
    }
    if new.category == "document" {
        return Err(ApiError::Unprocessable("category: documents are stored through the documents route".into()));
    }
    let plaintext = serialize_content(&new.content)?;
    if plaintext.len() > vault.max_record_bytes {
        return Err(ApiError::TooLarge(format!("record content exceeds {} bytes", vault.max_record_bytes)));
    }
    let decision = decide_new(pool, vault, retention, claims, (subject, &new.category), "record.create").await?;
    let id = Uuid::new_v4();
    let expires_at = retention.expiry(&new.category, new.expires_at, time::OffsetDateTime::now_utc());
    // A second attempt only when another request stored the subject's first key meanwhile: it
    // then finds that key and unwraps it.
    for _ in 0..2 {
        let key = vault.subject_key(pool, subject, true, &claims.request_id).await?;
        let Some(data_key) = key.key() else {
            log_alone(pool, &access(claims, Some(subject), None, "record.create", &Decision::deny("subject erased")))
                .await?;
            return Err(ApiError::NotFound);
        };
        let binding = Binding { subject, record: id, category: &new.category, field: FIELD };
        let (nonce, ciphertext) =
            crypto::seal(data_key, binding, &plaintext).map_err(|e| crypto_error(e, &claims.request_id))?;
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
                access_log::append(&mut tx, &access(claims, Some(subject), None, "record.create", &erased)).await?;
                tx.commit().await?;
                return Err(ApiError::NotFound);
            }
        }
        let sealed = (nonce, ciphertext);
        if !insert_record(&mut tx, (id, subject, &new.category), sealed, &claims.sub, expires_at).await? {
            return Err(ApiError::internal("a new record's id was already taken"));
        }
        access_log::append(&mut tx, &access(claims, Some(subject), Some(id), "record.create", &decision)).await?;
        tx.commit().await?;
        if let SubjectKey::New { key, .. } = key {
            vault.cache.put(subject, key);
        }
        return Ok((Status::Created, Json(RecordCreated { record_id: id })));
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

/// Phase 1 of the record routes: looks up the record's metadata and decides, without a
/// transaction (the policy may ask the consent service). A denial or a miss is logged here and
/// answers 404; a permitted access is logged by the caller's phase 2, with what it does.
pub(crate) async fn authorized(
    pool: &PgPool,
    vault: &Vault,
    claims: &Claims,
    id: Uuid,
    action: &'static str,
) -> Result<(Uuid, String, Decision), ApiError> {
    let mut conn = pool.acquire().await?;
    // The subject's key state is read with the record: a subject erased through another
    // instance is refused here even while this instance still caches its key.
    let row = sqlx::query(
        "SELECT r.subject_id, r.category::text AS category, s.wrapped_data_key IS NULL AS shredded \
         FROM records r JOIN subjects s ON s.id = r.subject_id \
         WHERE r.id = $1 AND (r.expires_at IS NULL OR r.expires_at > now())",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        drop(conn);
        log_alone(pool, &access(claims, None, Some(id), action, &Decision::deny("no such record"))).await?;
        return Err(ApiError::NotFound);
    };
    let subject: Uuid = row.try_get("subject_id")?;
    if row.try_get::<bool, _>("shredded")? {
        drop(conn);
        log_alone(pool, &access(claims, Some(subject), Some(id), action, &Decision::deny("subject erased"))).await?;
        return Err(ApiError::NotFound);
    }
    let category: String = row.try_get("category")?;
    let reads = matches!(action, "record.read" | "record.emergency_disclosure" | "document.read");
    let intent = if reads { Intent::Read(Some(&category)) } else { Intent::Write };
    drop(conn); // no connection is held while the policy may ask the consent service
    let decision = policy::decide(pool, &vault.consent, &vault.watch, claims, subject, intent).await?;
    if !decision.permitted {
        log_alone(pool, &access(claims, Some(subject), Some(id), action, &decision)).await?;
        return Err(decision.refusal());
    }
    if decision.flagged {
        tracing::warn!(request_id = %claims.request_id, %subject, alarm = "break_glass", "break-glass access; flagged for review");
    }
    Ok((subject, category, decision))
}

#[get("/internal/v1/records/<id>")]
async fn read(
    call: InternalCall,
    id: Uuid,
    pool: &State<PgPool>,
    vault: &State<Vault>,
) -> Result<Json<Record>, ApiError> {
    serve_read(&call.0, id, pool, vault, None).await.map(Json)
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
    let action = if emergency.is_some() { "record.emergency_disclosure" } else { "record.read" };
    // An emergency read is a disclosure, and only the emergency route makes one.
    if (claims.purpose == crate::policy::MEDICAL_EMERGENCY) != emergency.is_some() {
        return Err(ApiError::Forbidden);
    }
    // Phase 1, no transaction: decide, then the key (unwrapped through the provider if not cached).
    let (subject, category, mut decision) = authorized(pool, vault, claims, id, action).await?;
    // A document (even its name) is never disclosed outside the program.
    if category == "document" && (decision.disclosure.is_some() || emergency.is_some()) {
        let refused = Decision::deny("documents are not disclosed outside the program");
        log_alone(pool, &access(claims, Some(subject), Some(id), action, &refused)).await?;
        return Err(ApiError::Forbidden);
    }
    if let Some(emergency) = emergency {
        decision.disclosure = Some(crate::disclosures::emergency(emergency, &category));
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

/// Phase 2 of a permitted read: the record decrypted and the access (and any disclosure) logged,
/// in the next group commit, or `alone` in a transaction of its own. Returns the record and the
/// access-log entry of the access.
pub(crate) async fn commit_read(
    vault: &Vault,
    claims: &Claims,
    (subject, id): (Uuid, Uuid),
    (category, decision, action): (String, Decision, &'static str),
    key: DataKey,
    alone: bool,
) -> Result<((String, serde_json::Value, Times), i64), ApiError> {
    let access = Arc::new(Phase2 {
        claims: claims.clone(),
        subject,
        id,
        category,
        decision,
        action,
        notice: vault.notice.clone(),
    });
    let cache = vault.cache.clone();
    let step = crate::commit::step(move |conn| {
        let (access, key, cache) = (access.clone(), key.clone(), cache.clone());
        Box::pin(async move { access.read(conn, &key, &cache).await })
    });
    let (outcome, seqs) = if alone { vault.commit.run_alone(step).await? } else { vault.commit.run(id, step).await? };
    Ok((outcome?, last(&seqs)?))
}

#[put("/internal/v1/records/<id>", data = "<body>")]
async fn replace(
    call: InternalCall,
    id: Uuid,
    body: Body<RecordContent>,
    pool: &State<PgPool>,
    vault: &State<Vault>,
) -> Result<Json<Record>, ApiError> {
    let claims = &call.0;
    let action = "record.update";
    let content = body.into_inner().content;
    let plaintext = serialize_content(&content)?;
    if plaintext.len() > vault.max_record_bytes {
        return Err(ApiError::TooLarge(format!("record content exceeds {} bytes", vault.max_record_bytes)));
    }
    // Phase 1, no transaction.
    let (subject, category, decision) = authorized(pool, vault, claims, id, action).await?;
    if category == "document" {
        return Err(ApiError::Unprocessable("a document is replaced by uploading another".into()));
    }
    let key = existing_key(pool, vault, claims, (subject, id), action, &decision).await?;
    let binding = Binding { subject, record: id, category: &category, field: FIELD };
    let sealed = crypto::seal(&key, binding, &plaintext).map_err(|e| crypto_error(e, &claims.request_id))?;
    // Phase 2, in the next group commit (`crate::commit`).
    let access = Arc::new(Phase2 {
        claims: call.0.clone(),
        subject,
        id,
        category,
        decision,
        action,
        notice: vault.notice.clone(),
    });
    let sealed = Arc::new(sealed);
    let (outcome, seqs) = vault
        .commit
        .run(id, move |conn| {
            let (access, sealed) = (access.clone(), sealed.clone());
            Box::pin(async move { access.replace(conn, &sealed).await })
        })
        .await?;
    let (category, times) = outcome?;
    served(id, subject, category, content, times, last(&seqs)?).map(Json)
}

/// The access-log entry of a served access: the last its phase 2 appended.
fn last(seqs: &[i64]) -> Result<i64, ApiError> {
    seqs.last().copied().ok_or_else(|| ApiError::internal("an access was served without its access-log entry"))
}

/// A record's times, as phase 2 found them.
pub(crate) type Times = (time::OffsetDateTime, time::OffsetDateTime);

/// What phase 2 of a read or a replace needs from phase 1. Its steps run in a group commit's
/// transaction, possibly twice (`crate::commit`), so they change nothing outside it but the key
/// cache, and only to forget.
struct Phase2 {
    claims: Claims,
    subject: Uuid,
    id: Uuid,
    category: String,
    decision: Decision,
    action: &'static str,
    /// The notice a disclosure is entered with.
    notice: Arc<crate::disclosures::notice::Notice>,
}

impl Phase2 {
    fn entry(&self, decision: &Decision) -> Entry {
        access(&self.claims, Some(self.subject), Some(self.id), self.action, decision).to_entry()
    }

    /// The record and the subject's key state again (either may have gone since phase 1),
    /// decryption, and the disclosure. No lock but the trails' own.
    async fn read(
        &self,
        tx: &mut PgConnection,
        key: &DataKey,
        cache: &KeyCache,
    ) -> Result<(Result<(String, serde_json::Value, Times), ApiError>, Vec<Entry>), sqlx::Error> {
        let row = sqlx::query(
            "SELECT r.nonce, r.ciphertext, r.created_at, r.updated_at, s.wrapped_data_key IS NULL AS shredded \
             FROM records r JOIN subjects s ON s.id = r.subject_id \
             WHERE r.id = $1 AND r.subject_id = $2 AND (r.expires_at IS NULL OR r.expires_at > now())",
        )
        .bind(self.id)
        .bind(self.subject)
        .fetch_optional(&mut *tx)
        .await?;
        let row = match row {
            Some(row) if !row.try_get::<bool, _>("shredded")? => row,
            gone => {
                let reason = if gone.is_some() { "subject erased" } else { "no such record" };
                cache.forget(self.subject);
                return Ok((Err(ApiError::NotFound), vec![self.entry(&Decision::deny(reason))]));
            }
        };
        let binding = Binding { subject: self.subject, record: self.id, category: &self.category, field: FIELD };
        let nonce: Vec<u8> = row.try_get("nonce")?;
        let ciphertext: Vec<u8> = row.try_get("ciphertext")?;
        let content = crypto::open(key, binding, &nonce, &ciphertext)
            .map_err(|e| crypto_error(e, &self.claims.request_id))
            .and_then(|plaintext| parse_content(&plaintext));
        let content = match content {
            Ok(content) => content,
            Err(e) => return Ok((Err(e), self.failed())),
        };
        if let Some(disclosure) = &self.decision.disclosure {
            record_disclosure(tx, self.subject, disclosure, &self.notice.version, &self.claims.request_id).await?;
        }
        let times = (row.try_get("created_at")?, row.try_get("updated_at")?);
        Ok((Ok((self.category.clone(), content, times)), vec![self.entry(&self.decision)]))
    }

    /// The new ciphertext, unless the record was deleted, expired or erased meanwhile. Locks
    /// the record's row, then (in the group commit) the access log's chain lock.
    async fn replace(
        &self,
        tx: &mut PgConnection,
        (nonce, ciphertext): &(Vec<u8>, Vec<u8>),
    ) -> Result<(Result<(String, Times), ApiError>, Vec<Entry>), sqlx::Error> {
        let row = sqlx::query(
            "UPDATE records SET nonce = $3, ciphertext = $4, updated_at = now() \
             WHERE id = $1 AND subject_id = $2 AND (expires_at IS NULL OR expires_at > now()) \
             AND EXISTS (SELECT 1 FROM subjects WHERE id = $2 AND wrapped_data_key IS NOT NULL) \
             RETURNING created_at, updated_at",
        )
        .bind(self.id)
        .bind(self.subject)
        .bind(nonce.as_slice())
        .bind(ciphertext.as_slice())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok((Err(ApiError::NotFound), vec![self.entry(&Decision::deny("no such record"))]));
        };
        let times = (row.try_get("created_at")?, row.try_get("updated_at")?);
        Ok((Ok((self.category.clone(), times)), vec![self.entry(&self.decision)]))
    }

    /// A permitted access that then failed on its key or its integrity: the decision and the
    /// failure.
    fn failed(&self) -> Vec<Entry> {
        let failed = Decision::deny(FAILED);
        failure(&self.claims, self.subject, self.id, self.action, &self.decision, &failed)
            .iter()
            .map(access_log::Access::to_entry)
            .collect()
    }
}

#[delete("/internal/v1/records/<id>")]
async fn remove(call: InternalCall, id: Uuid, pool: &State<PgPool>, vault: &State<Vault>) -> Result<Status, ApiError> {
    let claims = &call.0;
    let (subject, _, decision) = authorized(pool, vault, claims, id, "record.delete").await?;
    // Phase 2. Locks: the record's row, then the access log's chain lock (module docs).
    let mut tx = pool.begin().await?;
    let deleted = sqlx::query("DELETE FROM records WHERE id = $1").bind(id).execute(&mut *tx).await?;
    let found = deleted.rows_affected() == 1;
    let logged = if found { decision } else { Decision::deny("no such record") };
    access_log::append(&mut tx, &access(claims, Some(subject), Some(id), "record.delete", &logged)).await?;
    tx.commit().await?;
    if !found {
        return Err(ApiError::NotFound);
    }
    Ok(Status::NoContent)
}

/// A subject's records, metadata only (ids, categories, times), optionally of one category.
/// Decided like a read; a caller who may not see the subject gets 404, as for no subject.
#[get("/internal/v1/subjects/<subject>/records?<category>")]
async fn list(
    call: InternalCall,
    subject: Uuid,
    category: Option<&str>,
    pool: &State<PgPool>,
    vault: &State<Vault>,
) -> Result<Json<RecordList>, ApiError> {
    if let Some(category) = category {
        if !CATEGORIES.contains(&category) {
            return Err(ApiError::Unprocessable(format!("category: one of {}", CATEGORIES.join(", "))));
        }
    }
    let claims = &call.0;
    // Phase 1, no transaction: the policy may ask the consent service.
    let decision = policy::decide(pool, &vault.consent, &vault.watch, claims, subject, Intent::Read(category)).await?;
    if !decision.permitted {
        log_alone(pool, &access(claims, Some(subject), None, "record.list", &decision)).await?;
        return Err(decision.refusal());
    }
    // Phase 2: the list, then the access log's chain lock last.
    let mut tx = pool.begin().await?;
    let rows = sqlx::query(
        "SELECT id, category::text AS category, created_at, updated_at, expires_at FROM records \
         WHERE subject_id = $1 AND ($2::text IS NULL OR category::text = $2) \
         AND (expires_at IS NULL OR expires_at > now()) ORDER BY created_at, id",
    )
    .bind(subject)
    .bind(category)
    .fetch_all(&mut *tx)
    .await?;
    access_log::append(&mut tx, &access(claims, Some(subject), None, "record.list", &decision)).await?;
    tx.commit().await?;
    let records = rows
        .iter()
        .map(|row| {
            Ok(RecordSummary {
                record_id: row.try_get("id")?,
                category: row.try_get("category")?,
                created_at: row.try_get("created_at")?,
                updated_at: row.try_get("updated_at")?,
                expires_at: row.try_get("expires_at")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(Json(RecordList { records }))
}

pub fn routes() -> Vec<Route> {
    routes![create, read, replace, remove, list]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_record_is_reported_without_a_word_of_it() {
        let unreadable: [&[u8]; 4] =
            [b"Jane Doe, 1990-01-01", b"{\"legal_name\": \"Jane Doe\"", b"\"Jane Doe\" 1990", b"{\"Jane Doe\" 1990}"];
        for plaintext in unreadable {
            let error = parse_content(plaintext).expect_err("not JSON");
            assert!(matches!(&error, ApiError::Internal(m) if m == UNREADABLE_CONTENT), "{error:?}");
            assert!(!format!("{error:?}").contains("Jane"));
        }
        assert_eq!(parse_content(b"{\"a\": 1}").expect("JSON"), serde_json::json!({"a": 1}));
    }
}
