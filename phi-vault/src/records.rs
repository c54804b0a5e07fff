//! PHI records: create, read, replace and delete, each encrypted under its subject's data key
//! and each decided by the access policy from the caller's verified assertion. Every access —
//! permitted or denied — is written to the access log in the same transaction. A record the
//! caller may not see answers 404, exactly like a missing one.

use rocket::http::Status;
use rocket::serde::json::Json;
use rocket::{delete, get, post, put, routes, Route, State};
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use common::assertion::{Claims, InternalCall};
use common::client::{
    AccessLogFilter, AccessLogPage, AccessReview, ConsentClient, NewRecord, Record, RecordContent, RecordCreated,
    RecordList, RecordSummary, ReviewRequest,
};
use common::json::Body;
use common::{ApiError, Role};

use crate::access_log::{self, Access};
use crate::crypto::{self, Binding, CryptoError, DataKey, KeyCache, KeyProvider, WrappedKey};
use crate::disclosures::record_disclosure;
use crate::policy::{self, Decision, Intent};

pub const CATEGORIES: [&str; 6] =
    ["intake_conversation", "coach_conversation", "application_details", "insurance", "identity", "document"];
const FIELD: &str = "content";

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
}

fn crypto_error(e: CryptoError, request_id: &str) -> ApiError {
    match e {
        CryptoError::Unavailable(m) => ApiError::Unavailable(format!("key provider: {m}")),
        CryptoError::Integrity => {
            tracing::error!(request_id, alarm = "integrity", "INTEGRITY ALARM: a record or key failed authentication");
            ApiError::internal("integrity check failed")
        }
        other => ApiError::internal(other),
    }
}

impl Vault {
    /// The subject's data key: from the cache, or unwrapped by the provider; created (and
    /// wrapped) on the subject's first record when `create` is set.
    async fn subject_key(
        &self,
        tx: &mut PgConnection,
        subject: Uuid,
        create: bool,
        request_id: &str,
    ) -> Result<Option<DataKey>, ApiError> {
        if let Some(key) = self.cache.get(subject) {
            return Ok(Some(key));
        }
        let row = sqlx::query("SELECT wrapped_data_key, kek_id, kek_version FROM subjects WHERE id = $1 FOR UPDATE")
            .bind(subject)
            .fetch_optional(&mut *tx)
            .await?;
        let key = match row {
            Some(row) => {
                let Some(ciphertext) = row.try_get::<Option<Vec<u8>>, _>("wrapped_data_key")? else {
                    return Ok(None); // crypto-shredded
                };
                let wrapped = WrappedKey {
                    ciphertext,
                    kek_id: row.try_get::<Option<String>, _>("kek_id")?.unwrap_or_default(),
                    kek_version: row.try_get::<Option<i32>, _>("kek_version")?.unwrap_or(1),
                };
                self.provider.unwrap(subject, &wrapped).await.map_err(|e| crypto_error(e, request_id))?
            }
            None if create => {
                let key = DataKey::generate().map_err(|e| crypto_error(e, request_id))?;
                let wrapped = self.provider.wrap(subject, &key).await.map_err(|e| crypto_error(e, request_id))?;
                sqlx::query("INSERT INTO subjects (id, wrapped_data_key, kek_id, kek_version) VALUES ($1, $2, $3, $4)")
                    .bind(subject)
                    .bind(&wrapped.ciphertext)
                    .bind(&wrapped.kek_id)
                    .bind(wrapped.kek_version)
                    .execute(&mut *tx)
                    .await?;
                key
            }
            None => return Ok(None),
        };
        self.cache.put(subject, key.clone());
        Ok(Some(key))
    }
}

fn access<'a>(
    call: &'a Claims,
    subject: Option<Uuid>,
    record: Option<Uuid>,
    action: &'a str,
    decision: &'a Decision,
) -> Access<'a> {
    Access {
        actor: &call.sub,
        actor_role: call.role.as_str(),
        purpose: &call.purpose,
        subject_id: subject,
        record_id: record,
        action,
        permitted: decision.permitted,
        reason: &decision.reason,
        flagged: decision.flagged,
        request_id: &call.request_id,
    }
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
    if !CATEGORIES.contains(&new.category.as_str()) {
        return Err(ApiError::Unprocessable(format!("category: one of {}", CATEGORIES.join(", "))));
    }
    let plaintext = serde_json::to_vec(&new.content).map_err(ApiError::internal)?;
    if plaintext.len() > vault.max_record_bytes {
        return Err(ApiError::TooLarge(format!("record content exceeds {} bytes", vault.max_record_bytes)));
    }
    let mut tx = pool.begin().await?;
    let decision = policy::decide(&mut tx, &vault.consent, &vault.watch, claims, new.subject_id, Intent::Write).await?;
    if !decision.permitted {
        access_log::append(&mut tx, &access(claims, Some(new.subject_id), None, "record.create", &decision)).await?;
        tx.commit().await?;
        return Err(ApiError::Forbidden);
    }
    if let Some(purpose) = retention.consent_purpose(&new.category) {
        let ctx = common::assertion::CallContext::on_behalf_of(claims, "retention_check");
        let stands = crate::retention::consent_stands(&vault.consent, &ctx, new.subject_id, &new.category, purpose)
            .await
            .map_err(|e| ApiError::Unavailable(format!("consent service: {e}")))?;
        if !stands {
            let refused = Decision::deny("no standing consent to keep records of this category");
            access_log::append(&mut tx, &access(claims, Some(new.subject_id), None, "record.create", &refused)).await?;
            tx.commit().await?;
            return Err(ApiError::Conflict(format!(
                "{}: kept only under the subject's consent ({purpose}), which is not on file",
                new.category
            )));
        }
    }
    let key = vault.subject_key(&mut tx, new.subject_id, true, &claims.request_id).await?.ok_or(ApiError::NotFound)?;
    let id = Uuid::new_v4();
    let binding = Binding { subject: new.subject_id, record: id, category: &new.category, field: FIELD };
    let (nonce, ciphertext) =
        crypto::seal(&key, binding, &plaintext).map_err(|e| crypto_error(e, &claims.request_id))?;
    sqlx::query(
        "INSERT INTO records (id, subject_id, category, nonce, ciphertext, created_by, expires_at) \
         VALUES ($1, $2, $3::record_category, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(new.subject_id)
    .bind(&new.category)
    .bind(nonce)
    .bind(ciphertext)
    .bind(&claims.sub)
    .bind(retention.expiry(&new.category, new.expires_at, time::OffsetDateTime::now_utc()))
    .execute(&mut *tx)
    .await?;
    access_log::append(&mut tx, &access(claims, Some(new.subject_id), Some(id), "record.create", &decision)).await?;
    tx.commit().await?;
    Ok((Status::Created, Json(RecordCreated { record_id: id })))
}

/// Loads a record's row and decides; logs a denial (or a miss) and answers 404 for both.
async fn authorized(
    tx: &mut PgConnection,
    vault: &Vault,
    claims: &Claims,
    id: Uuid,
    action: &'static str,
) -> Result<(Uuid, String, Decision), ApiError> {
    // The subject's key state is read with the record: a subject erased through another
    // instance is refused here even while this instance still caches its key.
    let row = sqlx::query(
        "SELECT r.subject_id, r.category::text AS category, s.wrapped_data_key IS NULL AS shredded \
         FROM records r JOIN subjects s ON s.id = r.subject_id \
         WHERE r.id = $1 AND (r.expires_at IS NULL OR r.expires_at > now())",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        access_log::append(tx, &access(claims, None, Some(id), action, &Decision::deny("no such record"))).await?;
        return Err(ApiError::NotFound);
    };
    let subject: Uuid = row.try_get("subject_id")?;
    if row.try_get::<bool, _>("shredded")? {
        access_log::append(tx, &access(claims, Some(subject), Some(id), action, &Decision::deny("subject erased")))
            .await?;
        return Err(ApiError::NotFound);
    }
    let category: String = row.try_get("category")?;
    let intent = if action == "record.read" { Intent::Read(Some(&category)) } else { Intent::Write };
    let decision = policy::decide(tx, &vault.consent, &vault.watch, claims, subject, intent).await?;
    access_log::append(tx, &access(claims, Some(subject), Some(id), action, &decision)).await?;
    if !decision.permitted {
        return Err(decision.refusal());
    }
    if decision.flagged {
        tracing::warn!(request_id = %claims.request_id, %subject, alarm = "break_glass", "break-glass access; flagged for review");
    }
    Ok((subject, category, decision))
}

async fn load(
    tx: &mut PgConnection,
    vault: &Vault,
    claims: &Claims,
    id: Uuid,
    subject: Uuid,
    category: &str,
) -> Result<Record, ApiError> {
    let row = sqlx::query("SELECT nonce, ciphertext, created_at, updated_at FROM records WHERE id = $1")
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    let key = vault.subject_key(tx, subject, false, &claims.request_id).await?.ok_or(ApiError::NotFound)?;
    let binding = Binding { subject, record: id, category, field: FIELD };
    let nonce: Vec<u8> = row.try_get("nonce")?;
    let ciphertext: Vec<u8> = row.try_get("ciphertext")?;
    let plaintext =
        crypto::open(&key, binding, &nonce, &ciphertext).map_err(|e| crypto_error(e, &claims.request_id))?;
    let content = serde_json::from_slice(&plaintext).map_err(ApiError::internal)?;
    Ok(Record {
        record_id: id,
        subject_id: subject,
        category: category.to_owned(),
        content,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

#[get("/internal/v1/records/<id>")]
async fn read(
    call: InternalCall,
    id: Uuid,
    pool: &State<PgPool>,
    vault: &State<Vault>,
) -> Result<Json<Record>, ApiError> {
    let mut tx = pool.begin().await?;
    let (subject, category, decision) = match authorized(&mut tx, vault, &call.0, id, "record.read").await {
        Ok(found) => found,
        Err(e) => {
            tx.commit().await?; // keep the logged denial
            return Err(e);
        }
    };
    let record = match load(&mut tx, vault, &call.0, id, subject, &category).await {
        Ok(r) => r,
        Err(e) => {
            // The access was logged as permitted; record that it failed.
            access_log::append(
                &mut tx,
                &access(&call.0, Some(subject), Some(id), "record.read", &Decision::deny("integrity or key failure")),
            )
            .await?;
            tx.commit().await?;
            return Err(e);
        }
    };
    if let Some(disclosure) = &decision.disclosure {
        record_disclosure(&mut tx, subject, disclosure, &call.0.request_id).await?;
    }
    tx.commit().await?;
    Ok(Json(record))
}

#[put("/internal/v1/records/<id>", data = "<body>")]
async fn replace(
    call: InternalCall,
    id: Uuid,
    body: Body<RecordContent>,
    pool: &State<PgPool>,
    vault: &State<Vault>,
) -> Result<Json<Record>, ApiError> {
    let plaintext = serde_json::to_vec(&body.into_inner().content).map_err(ApiError::internal)?;
    if plaintext.len() > vault.max_record_bytes {
        return Err(ApiError::TooLarge(format!("record content exceeds {} bytes", vault.max_record_bytes)));
    }
    let mut tx = pool.begin().await?;
    let (subject, category, _) = match authorized(&mut tx, vault, &call.0, id, "record.update").await {
        Ok(found) => found,
        Err(e) => {
            tx.commit().await?;
            return Err(e);
        }
    };
    let key = vault.subject_key(&mut tx, subject, false, &call.0.request_id).await?.ok_or(ApiError::NotFound)?;
    let binding = Binding { subject, record: id, category: &category, field: FIELD };
    let (nonce, ciphertext) =
        crypto::seal(&key, binding, &plaintext).map_err(|e| crypto_error(e, &call.0.request_id))?;
    sqlx::query("UPDATE records SET nonce = $2, ciphertext = $3, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(nonce)
        .bind(ciphertext)
        .execute(&mut *tx)
        .await?;
    let record = load(&mut tx, vault, &call.0, id, subject, &category).await?;
    tx.commit().await?;
    Ok(Json(record))
}

#[delete("/internal/v1/records/<id>")]
async fn remove(call: InternalCall, id: Uuid, pool: &State<PgPool>, vault: &State<Vault>) -> Result<Status, ApiError> {
    let mut tx = pool.begin().await?;
    if let Err(e) = authorized(&mut tx, vault, &call.0, id, "record.delete").await {
        tx.commit().await?;
        return Err(e);
    }
    sqlx::query("DELETE FROM records WHERE id = $1").bind(id).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(Status::NoContent)
}

/// Assigns a caseworker to a subject's care team. Only an admin (as asserted by public-api,
/// which checked the caller's role) may; the assignment is logged.
#[put("/internal/v1/care-team/<caseworker>/<subject>")]
async fn assign(
    call: InternalCall,
    caseworker: Uuid,
    subject: Uuid,
    pool: &State<PgPool>,
    vault: &State<Vault>,
) -> Result<Status, ApiError> {
    let claims = &call.0;
    let mut tx = pool.begin().await?;
    let admin = claims.role == Role::Admin;
    let decision = if admin { Decision::permit("admin") } else { Decision::deny("only an admin assigns care teams") };
    access_log::append(&mut tx, &access(claims, Some(subject), None, "care_team.assign", &decision)).await?;
    if !admin {
        tx.commit().await?;
        return Err(ApiError::Forbidden);
    }
    let assigned_by = Uuid::parse_str(&claims.sub).map_err(|_| ApiError::Forbidden)?;
    // The subject may have no records yet: give it its data key now.
    vault.subject_key(&mut tx, subject, true, &claims.request_id).await?;
    sqlx::query(
        "INSERT INTO care_team (caseworker_id, subject_id, assigned_by) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(caseworker)
    .bind(subject)
    .bind(assigned_by)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
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
    let mut tx = pool.begin().await?;
    let decision =
        policy::decide(&mut tx, &vault.consent, &vault.watch, claims, subject, Intent::Read(category)).await?;
    access_log::append(&mut tx, &access(claims, Some(subject), None, "record.list", &decision)).await?;
    if !decision.permitted {
        tx.commit().await?;
        return Err(decision.refusal());
    }
    let rows = sqlx::query(
        "SELECT id, category::text AS category, created_at, updated_at, expires_at FROM records \
         WHERE subject_id = $1 AND ($2::text IS NULL OR category::text = $2) \
         AND (expires_at IS NULL OR expires_at > now()) ORDER BY created_at, id",
    )
    .bind(subject)
    .bind(category)
    .fetch_all(&mut *tx)
    .await?;
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

/// A page of the access log for compliance review: metadata only, never contents. Only a
/// compliance officer may read it, and the reading is itself logged.
#[get("/internal/v1/access-log?<filter..>")]
async fn access_log_page(
    call: InternalCall,
    filter: AccessLogFilter<'_>,
    pool: &State<PgPool>,
) -> Result<Json<AccessLogPage>, ApiError> {
    let claims = &call.0;
    let query = filter.parse()?;
    let officer = claims.role == Role::ComplianceOfficer;
    let decision = if officer {
        Decision::permit("compliance review")
    } else {
        Decision::deny("only compliance officers read the access log")
    };
    let mut tx = pool.begin().await?;
    access_log::append(&mut tx, &access(claims, query.subject_id, None, "access_log.read", &decision)).await?;
    if !officer {
        tx.commit().await?;
        return Err(ApiError::Forbidden);
    }
    let page = access_log::page(&mut tx, &query).await?;
    tx.commit().await?;
    Ok(Json(page))
}

/// A compliance officer's finding on a flagged (break-glass) access: `justified` or
/// `unjustified`, with a note. Final; the review is itself logged.
#[put("/internal/v1/access-log/<seq>/review", data = "<body>")]
async fn review_access(
    call: InternalCall,
    seq: i64,
    body: Body<ReviewRequest>,
    pool: &State<PgPool>,
) -> Result<Json<AccessReview>, ApiError> {
    let claims = &call.0;
    let request = body.into_inner();
    request.validate()?;
    let officer = claims.role == Role::ComplianceOfficer;
    let decision =
        if officer { Decision::permit("compliance review") } else { Decision::deny("only compliance officers review") };
    let mut tx = pool.begin().await?;
    access_log::append(&mut tx, &access(claims, None, None, "access_log.review", &decision)).await?;
    if !officer {
        tx.commit().await?;
        return Err(ApiError::Forbidden);
    }
    match access_log::review(&mut tx, seq, &request.outcome, request.note.trim(), &claims.sub).await? {
        Ok(review) => {
            tx.commit().await?;
            Ok(Json(review))
        }
        Err(refusal) => {
            tx.rollback().await?;
            Err(match refusal {
                access_log::ReviewRefusal::NotFlagged => ApiError::NotFound,
                access_log::ReviewRefusal::AlreadyReviewed => {
                    ApiError::Conflict(format!("entry {seq} has already been reviewed"))
                }
                access_log::ReviewRefusal::OwnAccess => {
                    let refused = Decision::deny("separation of duties: the reviewer made this access");
                    access_log::append_alone(pool, &access(claims, None, None, "access_log.review", &refused)).await?;
                    ApiError::Forbidden
                }
            })
        }
    }
}

pub fn routes() -> Vec<Route> {
    routes![create, read, replace, remove, assign, list, access_log_page, review_access]
}
