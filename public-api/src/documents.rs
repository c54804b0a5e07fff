//! Documents attached to an application: uploaded by the beneficiary while the application can
//! be changed, listed, downloaded by them and by the caseworker on their care team, and deleted
//! while it can be changed.
//!
//! An upload is `multipart/form-data` with one part, `file`. Its bytes are relayed to phi-vault
//! as they arrive and never kept here, not in memory whole, not on disk: phi-vault decides the
//! type by the bytes, scans them with clamd, seals them, and keeps the document only whole and
//! clean (its `documents` module). What the public database keeps is the document's id (also its
//! phi-vault record id), its application and a state; the name, type, size and hash are PHI
//! metadata in phi-vault.
//!
//! No transaction spans a call to phi-vault, so the public row is written first (`uploading`)
//! and marked `stored` once phi-vault accepted the document; a deletion marks it `deleting`
//! before phi-vault deletes the record. A row left in between (the process died, phi-vault's
//! answer was lost) is finished when its owner next lists the documents: the record is deleted
//! in phi-vault (gone already is fine) and the row with it. So no listed document points at a
//! missing record, and no record outlives its row for long.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use rocket::data::{Data, ToByteUnit};
use rocket::http::{ContentType, Status};
use rocket::response::{self, Responder, Response};
use rocket::serde::json::Json;
use rocket::{delete, get, post, routes, Request, Route, State};
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, Row};
use uuid::Uuid;

use common::assertion::CallContext;
use common::client::{ClientError, PhiVaultClient};
use common::documents::{clean_name, DocumentList, DocumentMeta, DocumentView, StoredDocument, ACCEPTED};
use common::ApiError;

use crate::applications::{not_editable, stored_error};
use crate::audit::{self, Outcome};
use crate::auth::{Beneficiary, Caseworker};
use crate::meta::RequestMeta;

/// `[service.documents]`: the limits of uploads.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DocumentSettings {
    /// The largest file accepted, in bytes (phi-vault has its own limit; keep them equal).
    pub max_bytes: u64,
    /// The most documents one application holds.
    pub per_application: u32,
    /// The longest an upload or a download may take.
    pub transfer_timeout_secs: u64,
    /// How long a row may stay `uploading` before its owner's next listing finishes it.
    pub stale_after_secs: u64,
    /// Uploads under way at once in this instance (more: 503).
    pub max_concurrent: usize,
    /// The most documents one person holds across their applications.
    pub per_beneficiary: u32,
    /// Uploads under way at once for one person (more: 429).
    pub per_user_concurrent: u32,
}

impl Default for DocumentSettings {
    fn default() -> Self {
        Self {
            max_bytes: 10 * 1024 * 1024,
            per_application: 20,
            transfer_timeout_secs: 300,
            stale_after_secs: 900,
            max_concurrent: 16,
            per_beneficiary: 100,
            per_user_concurrent: 2,
        }
    }
}

/// How the form part is framed around the file: what the whole body may exceed the file by.
const MULTIPART_OVERHEAD: u64 = 64 * 1024;

/// The upload form, for the OpenAPI document.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct DocumentUpload {
    /// The file: a PDF, JPEG, PNG or HEIC image, at most 10 MiB (configurable). Its type is
    /// decided by its bytes; its name is kept as a label only.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

fn timeout(settings: &DocumentSettings) -> Duration {
    Duration::from_secs(settings.transfer_timeout_secs.max(1))
}

/// The boundary of a `multipart/form-data` body, or 415.
fn boundary(content_type: Option<&ContentType>) -> Result<String, ApiError> {
    content_type
        .filter(|ct| ct.is_form_data())
        .and_then(|ct| ct.params().find(|(key, _)| *key == "boundary").map(|(_, v)| v.to_owned()))
        .ok_or_else(|| {
            ApiError::UnsupportedMediaType("send multipart/form-data with one file part named `file`".into())
        })
}

/// My application's status, its row locked until the transaction ends; 404 if it is not mine.
async fn lock_mine(
    tx: &mut sqlx::PgConnection,
    me: Uuid,
    application: Uuid,
) -> Result<common::applications::ApplicationStatus, ApiError> {
    let status: Option<String> =
        sqlx::query_scalar("SELECT status FROM applications WHERE id = $1 AND beneficiary_id = $2 FOR UPDATE")
            .bind(application)
            .bind(me)
            .fetch_optional(&mut *tx)
            .await?;
    let status = status.ok_or(ApiError::NotFound)?;
    common::applications::ApplicationStatus::parse(&status)
        .ok_or_else(|| ApiError::internal(format!("unknown application status {status}")))
}

/// Writes the `uploading` row, if the application is mine, can be changed and has room. The
/// application's row is locked, so concurrent uploads count one another.
async fn reserve(pool: &PgPool, me: Uuid, application: Uuid, settings: &DocumentSettings) -> Result<Uuid, ApiError> {
    let limit = settings.per_application;
    let mut tx = pool.begin().await?;
    let status = lock_mine(&mut tx, me, application).await?;
    if !status.editable() {
        return Err(not_editable(status));
    }
    let held: i64 = sqlx::query_scalar("SELECT count(*) FROM application_documents WHERE application_id = $1")
        .bind(application)
        .fetch_one(&mut *tx)
        .await?;
    if held >= i64::from(limit) {
        return Err(ApiError::Conflict(format!(
            "an application holds at most {limit} documents; delete one before adding another"
        )));
    }
    let mine: i64 = sqlx::query_scalar("SELECT count(*) FROM application_documents WHERE beneficiary_id = $1")
        .bind(me)
        .fetch_one(&mut *tx)
        .await?;
    if mine >= i64::from(settings.per_beneficiary) {
        return Err(ApiError::Conflict(format!(
            "one person holds at most {} documents; delete one before adding another",
            settings.per_beneficiary
        )));
    }
    let id = Uuid::new_v4();
    sqlx::query("INSERT INTO application_documents (id, application_id, beneficiary_id) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(application)
        .bind(me)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(id)
}

/// Counts a change of an application's documents as an edit of the application (its `version`),
/// if it can still be changed.
async fn edited(tx: &mut sqlx::PgConnection, application: Uuid) -> Result<bool, ApiError> {
    let changed = sqlx::query(
        "UPDATE applications SET version = version + 1, updated_at = now() \
         WHERE id = $1 AND status IN ('reviewing', 'action_needed')",
    )
    .bind(application)
    .execute(&mut *tx)
    .await?;
    Ok(changed.rows_affected() == 1)
}

async fn forget_row(pool: &PgPool, id: Uuid) -> Result<(), ApiError> {
    sqlx::query("DELETE FROM application_documents WHERE id = $1").bind(id).execute(pool).await?;
    Ok(())
}

/// How an upload that was not stored ended.
enum Relay {
    /// Refused before phi-vault could keep anything (its answer, or a body it never saw end).
    Refused(ApiError),
    /// phi-vault may have kept it (its answer was lost, or it failed after accepting).
    Unknown(ApiError),
}

/// How long the client may send nothing before the upload is given up.
const IDLE: Duration = Duration::from_secs(60);

/// Reads the form's file part and relays its bytes to phi-vault as they arrive; returns the
/// cleaned name and what phi-vault stored.
async fn relay(
    data: Data<'_>,
    boundary: String,
    settings: &DocumentSettings,
    vault: &PhiVaultClient,
    ctx: &CallContext,
    (me, document): (Uuid, Uuid),
) -> Result<(String, StoredDocument), Relay> {
    let whole = settings.max_bytes + MULTIPART_OVERHEAD;
    let body = tokio_util::io::ReaderStream::with_capacity(data.open(whole.bytes()), 64 * 1024);
    let limits = multer::SizeLimit::new().whole_stream(whole).per_field(whole);
    let mut multipart =
        multer::Multipart::with_constraints(body, boundary, multer::Constraints::new().size_limit(limits));
    let cut = || ApiError::BadRequest("the upload was cut short, stalled, or is not valid multipart".into());
    let field = match tokio::time::timeout(IDLE, multipart.next_field()).await {
        Ok(Ok(Some(field))) if field.name() == Some("file") => field,
        Ok(Ok(Some(_))) => {
            return Err(Relay::Refused(ApiError::Unprocessable(
                "the form's one part must be the file, named `file`".into(),
            )))
        }
        _ => return Err(Relay::Refused(cut())),
    };
    let name = clean_name(field.file_name().unwrap_or_default());
    // The file's bytes go to phi-vault as they arrive; a few pieces wait here at most.
    let (sender, receiver) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
    let relayed =
        futures_util::stream::unfold(receiver, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    let max = settings.max_bytes;
    let pump = async move {
        let mut field = field;
        let mut total = 0u64;
        loop {
            let refusal = match tokio::time::timeout(IDLE, field.chunk()).await {
                Ok(Ok(Some(bytes))) => {
                    total += bytes.len() as u64;
                    if total <= max {
                        if sender.send(Ok(bytes)).await.is_err() {
                            // phi-vault stopped reading: its answer says why.
                            return Ok(());
                        }
                        continue;
                    }
                    ApiError::TooLarge(format!("the file is larger than the limit of {max} bytes; nothing was kept"))
                }
                // Dropping the sender ends the stream; the client then seals it.
                Ok(Ok(None)) => return Ok(()),
                _ => cut(),
            };
            // An error aborts the relayed body: phi-vault never sees it end, so keeps nothing.
            let _ = sender.send(Err(std::io::Error::other("upload refused"))).await;
            return Err(refusal);
        }
    };
    let stored = vault.upload_document(ctx, (me, document), &name, relayed, timeout(settings));
    match tokio::join!(pump, stored) {
        (Err(refusal), _) => Err(Relay::Refused(refusal)),
        (Ok(()), Ok(stored)) => Ok((name, stored)),
        (Ok(()), Err(e)) => {
            // phi-vault answers a 4xx, or a 503 in its own error shape, before it keeps anything;
            // anything else (a failed commit's 500, a bare 503) may follow it.
            let refused = match &e {
                ClientError::Refused { .. } => true,
                ClientError::Status { status, .. } => (400..500).contains(status),
                _ => false,
            };
            let e = stored_error(e);
            Err(if refused { Relay::Refused(e) } else { Relay::Unknown(e) })
        }
    }
}

/// Uploads under way: at most a few per person (429) and a bound per instance (503), so nobody
/// ties up the virus scanner or the vault for everyone.
pub struct Uploads {
    global: std::sync::Arc<tokio::sync::Semaphore>,
    per_user: std::sync::Mutex<std::collections::HashMap<Uuid, u32>>,
    per_user_max: u32,
}

impl Uploads {
    pub fn new(settings: &DocumentSettings) -> Self {
        Self {
            global: std::sync::Arc::new(tokio::sync::Semaphore::new(settings.max_concurrent.max(1))),
            per_user: Default::default(),
            per_user_max: settings.per_user_concurrent.max(1),
        }
    }

    fn claim(&self, user: Uuid) -> Result<UploadSlot<'_>, ApiError> {
        let permit = self
            .global
            .clone()
            .try_acquire_owned()
            .map_err(|_| ApiError::Unavailable("too many uploads are under way; try again in a minute".into()))?;
        let mut per_user = self.per_user.lock().map_err(|_| ApiError::internal("upload slots poisoned"))?;
        let held = per_user.entry(user).or_insert(0);
        if *held >= self.per_user_max {
            return Err(ApiError::TooManyRequests(format!(
                "at most {} uploads at a time; wait for one to finish",
                self.per_user_max
            )));
        }
        *held += 1;
        Ok(UploadSlot { uploads: self, user, _permit: permit })
    }
}

struct UploadSlot<'a> {
    uploads: &'a Uploads,
    user: Uuid,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Drop for UploadSlot<'_> {
    fn drop(&mut self) {
        if let Ok(mut per_user) = self.uploads.per_user.lock() {
            if let Some(held) = per_user.get_mut(&self.user) {
                *held = held.saturating_sub(1);
                if *held == 0 {
                    per_user.remove(&self.user);
                }
            }
        }
    }
}

/// Uploads a document to my application, which must be `reviewing` or `action_needed`.
#[utoipa::path(post, path = "/api/v1/applications/{id}/documents", tag = "applications", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    request_body(content = DocumentUpload, content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "Stored: whole, of an accepted type, scanned clean, encrypted", body = DocumentView),
        (status = 400, description = "The upload was cut short, or is not valid multipart", body = common::ErrorBody),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not a beneficiary", body = common::ErrorBody),
        (status = 404, description = "No such application of mine", body = common::ErrorBody),
        (status = 409, description = "The application cannot be changed in its status, holds the most documents it may, or my records were erased", body = common::ErrorBody),
        (status = 413, description = "The file is over the size limit; nothing was kept", body = common::ErrorBody),
        (status = 415, description = "Not multipart/form-data, or the file is not a PDF, JPEG, PNG or HEIC image by its bytes", body = common::ErrorBody),
        (status = 422, description = "The file is empty, the part is not named `file`, or the virus scanner found malware (named in the message); nothing was kept", body = common::ErrorBody),
        (status = 429, description = "Two uploads of mine are already under way; nothing was kept", body = common::ErrorBody),
        (status = 503, description = "The virus scanner or the PHI vault is unavailable, or too many uploads are under way; nothing was kept", body = common::ErrorBody),
    ))]
#[allow(clippy::too_many_arguments)]
#[post("/applications/<id>/documents", data = "<data>")]
pub async fn upload(
    user: Beneficiary,
    id: Uuid,
    content_type: Option<&ContentType>,
    data: Data<'_>,
    meta: RequestMeta,
    pool: &State<PgPool>,
    vault: &State<PhiVaultClient>,
    settings: &State<DocumentSettings>,
    uploads: &State<Uploads>,
) -> Result<(Status, Json<DocumentView>), ApiError> {
    let boundary = boundary(content_type)?;
    let me = user.user_id();
    let _slot = uploads.claim(me)?;
    let document = reserve(pool, me, id, settings).await?;
    let ctx = user.call(&meta, "self_service");
    let relayed = relay(data, boundary, settings, vault, &ctx, (me, document));
    let outcome = tokio::time::timeout(timeout(settings), relayed)
        .await
        .unwrap_or_else(|_| Err(Relay::Unknown(ApiError::BadRequest("the upload took too long".into()))));
    let (name, stored) = match outcome {
        Ok(done) => done,
        Err(relay) => {
            let e = match relay {
                Relay::Refused(e) => {
                    forget_row(pool, document).await?;
                    e
                }
                Relay::Unknown(e) => {
                    // phi-vault may still be finishing it: left for the owner's next listing
                    // once older than any upload can take.
                    mark_deleting(pool, document).await?;
                    e
                }
            };
            let mut tx = pool.begin().await?;
            let resource = Some(("document", document.to_string()));
            audit::record(&mut tx, &meta.event(Some(me), "document.upload", resource, Outcome::Failure)).await?;
            tx.commit().await?;
            return Err(e);
        }
    };
    let mut tx = pool.begin().await?;
    let row = sqlx::query(
        "UPDATE application_documents SET state = 'stored', updated_at = now() \
         WHERE id = $1 AND state = 'uploading' RETURNING created_at",
    )
    .bind(document)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        tx.rollback().await?;
        abandon(pool, vault, &ctx, document).await?;
        return Err(ApiError::Conflict("the upload took too long and was abandoned; send it again".into()));
    };
    // A document is part of what is decided on: adding one is an edit (a decision made on the
    // version before it is refused), and one that arrives after a decision is not kept.
    if !edited(&mut tx, id).await? {
        tx.rollback().await?;
        abandon(pool, vault, &ctx, document).await?;
        return Err(ApiError::Conflict(
            "the application was decided while the file was uploading; it can no longer be changed".into(),
        ));
    }
    let resource = Some(("document", document.to_string()));
    audit::record(&mut tx, &meta.event(Some(me), "document.upload", resource, Outcome::Success)).await?;
    tx.commit().await?;
    Ok((
        Status::Created,
        Json(DocumentView {
            id: document,
            application_id: id,
            name,
            content_type: stored.content_type,
            size_bytes: stored.size_bytes,
            sha256: stored.sha256,
            uploaded_at: row.try_get("created_at")?,
        }),
    ))
}

/// Gives up a document whose upload phi-vault may have kept: its record is deleted (gone already
/// is fine) and the row with it; if phi-vault cannot be reached, the row is marked `deleting`,
/// hidden, and its owner's next listing finishes it.
async fn abandon(pool: &PgPool, vault: &PhiVaultClient, ctx: &CallContext, document: Uuid) -> Result<(), ApiError> {
    match vault.delete_record(ctx, document).await {
        Ok(()) | Err(ClientError::Status { status: 404, .. }) => forget_row(pool, document).await,
        Err(e) => {
            tracing::warn!(request_id = %ctx.request_id(), error = %e, "an abandoned document is left for its owner's next listing");
            mark_deleting(pool, document).await
        }
    }
}

async fn mark_deleting(pool: &PgPool, document: Uuid) -> Result<(), ApiError> {
    sqlx::query("UPDATE application_documents SET state = 'deleting', updated_at = now() WHERE id = $1")
        .bind(document)
        .execute(pool)
        .await?;
    Ok(())
}

/// Finishes my rows left between states (`uploading` or `deleting`) once older than any upload
/// can take, so phi-vault is no longer finishing one: the record goes first (already gone is
/// fine), then the row.
async fn finish_leftovers(
    pool: &PgPool,
    vault: &PhiVaultClient,
    ctx: &CallContext,
    application: Uuid,
    stale_after: u64,
) -> Result<(), ApiError> {
    let leftovers: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM application_documents WHERE application_id = $1 AND state <> 'stored' \
         AND updated_at < now() - make_interval(secs => $2)",
    )
    .bind(application)
    .bind(stale_after as f64)
    .fetch_all(pool)
    .await?;
    for id in leftovers {
        match vault.delete_record(ctx, id).await {
            Ok(()) | Err(ClientError::Status { status: 404, .. }) => forget_row(pool, id).await?,
            Err(e) => {
                tracing::warn!(request_id = %ctx.request_id(), error = %e, "a left-over document stays for the next listing")
            }
        }
    }
    Ok(())
}

/// The stored documents of an application, with their metadata read from phi-vault (which
/// decides and logs each read).
async fn list_of(
    pool: &PgPool,
    vault: &PhiVaultClient,
    ctx: &CallContext,
    application: Uuid,
    (limit, owner): (u32, bool),
) -> Result<DocumentList, ApiError> {
    let rows = sqlx::query(
        "SELECT id, created_at FROM application_documents WHERE application_id = $1 AND state = 'stored' \
         ORDER BY created_at, id",
    )
    .bind(application)
    .fetch_all(pool)
    .await?;
    let reads = rows.iter().map(|row| async move {
        let id: Uuid = row.try_get("id")?;
        let record = match vault.read_record(ctx, id).await {
            Ok(record) => record,
            // Gone from the vault (erased, or deleted meanwhile): not listed, and the owner's
            // listing drops the row.
            Err(ClientError::Status { status: 404, .. }) => {
                if owner {
                    forget_row(pool, id).await?;
                }
                return Ok(None);
            }
            Err(e) => return Err(e.into_api_error()),
        };
        let meta: DocumentMeta = serde_json::from_value(record.content)
            .map_err(|_| ApiError::internal("a document's metadata is unreadable"))?;
        Ok::<_, ApiError>(Some(DocumentView {
            id,
            application_id: application,
            name: meta.name,
            content_type: meta.content_type,
            size_bytes: meta.size_bytes,
            sha256: meta.sha256,
            uploaded_at: row.try_get("created_at")?,
        }))
    });
    let items = futures_util::future::try_join_all(reads).await?.into_iter().flatten().collect();
    Ok(DocumentList { items, limit })
}

/// The documents of my application.
#[utoipa::path(get, path = "/api/v1/applications/{id}/documents", tag = "applications", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "The documents, oldest first (an application holds at most `limit`)", body = DocumentList),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not a beneficiary", body = common::ErrorBody),
        (status = 404, description = "No such application of mine, or its records were erased", body = common::ErrorBody),
        (status = 503, description = "The PHI vault is unavailable", body = common::ErrorBody),
    ))]
#[get("/applications/<id>/documents")]
pub async fn list_mine(
    user: Beneficiary,
    id: Uuid,
    meta: RequestMeta,
    pool: &State<PgPool>,
    vault: &State<PhiVaultClient>,
    settings: &State<DocumentSettings>,
) -> Result<Json<DocumentList>, ApiError> {
    own(pool, user.user_id(), id).await?;
    let ctx = user.call(&meta, "self_service");
    finish_leftovers(pool, vault, &ctx, id, settings.stale_after_secs).await?;
    list_of(pool, vault, &ctx, id, (settings.per_application, true)).await.map(Json)
}

async fn own(pool: &PgPool, me: Uuid, application: Uuid) -> Result<(), ApiError> {
    let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM applications WHERE id = $1 AND beneficiary_id = $2")
        .bind(application)
        .bind(me)
        .fetch_optional(pool)
        .await?;
    found.map(|_| ()).ok_or(ApiError::NotFound)
}

/// A stored document of `application`, or 404.
async fn stored(pool: &PgPool, application: Uuid, document: Uuid) -> Result<(), ApiError> {
    let found: Option<i32> = sqlx::query_scalar(
        "SELECT 1 FROM application_documents WHERE id = $1 AND application_id = $2 AND state = 'stored'",
    )
    .bind(document)
    .bind(application)
    .fetch_optional(pool)
    .await?;
    found.map(|_| ()).ok_or(ApiError::NotFound)
}

/// A document's content, relayed from phi-vault as it is decrypted. Sent as an attachment, in
/// its sniffed type, never cached.
pub struct Download {
    meta: DocumentMeta,
    body: reqwest::Response,
}

impl<'r> Responder<'r, 'static> for Download {
    fn respond_to(self, _request: &'r Request<'_>) -> response::Result<'static> {
        let content_type = if ACCEPTED.contains(&self.meta.content_type.as_str()) {
            ContentType::parse_flexible(&self.meta.content_type).unwrap_or(ContentType::Binary)
        } else {
            ContentType::Binary
        };
        // An error from phi-vault mid-way cuts the connection: the client never sees a clean end.
        let stream = self.body.bytes_stream().map_err(std::io::Error::other).boxed();
        Response::build()
            .status(Status::Ok)
            .header(content_type)
            .raw_header("content-disposition", disposition(&self.meta.name))
            .raw_header("cache-control", "no-store")
            .raw_header("x-content-sha256", self.meta.sha256)
            // With the length declared, a body phi-vault cuts short reaches the client as an
            // error, never as a complete file.
            .raw_header("content-length", self.meta.size_bytes.to_string())
            .streamed_body(tokio_util::io::StreamReader::new(stream))
            .ok()
    }
}

/// `attachment`, with an ASCII fallback name and the UTF-8 name (RFC 6266, RFC 8187).
fn disposition(name: &str) -> String {
    let ascii: String =
        name.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' }).collect();
    let mut encoded = String::with_capacity(name.len() * 3);
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

async fn download(
    vault: &PhiVaultClient,
    ctx: &CallContext,
    document: Uuid,
    settings: &DocumentSettings,
) -> Result<Download, ApiError> {
    let (meta, body) =
        vault.download_document(ctx, document, timeout(settings)).await.map_err(ClientError::into_api_error)?;
    Ok(Download { meta, body })
}

/// Downloads a document of my application.
#[utoipa::path(get, path = "/api/v1/applications/{id}/documents/{document}", tag = "applications", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("document" = Uuid, Path)),
    responses(
        (status = 200, description = "The file, as an attachment in its type (PDF, JPEG, PNG or HEIC); `X-Content-SHA256` is its hash", content_type = "application/octet-stream", body = String),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not a beneficiary", body = common::ErrorBody),
        (status = 404, description = "No such document of my application", body = common::ErrorBody),
        (status = 503, description = "The PHI vault is unavailable", body = common::ErrorBody),
    ))]
#[get("/applications/<id>/documents/<document>")]
pub async fn download_mine(
    user: Beneficiary,
    id: Uuid,
    document: Uuid,
    meta: RequestMeta,
    pool: &State<PgPool>,
    vault: &State<PhiVaultClient>,
    settings: &State<DocumentSettings>,
) -> Result<Download, ApiError> {
    own(pool, user.user_id(), id).await?;
    stored(pool, id, document).await?;
    download(vault, &user.call(&meta, "self_service"), document, settings).await
}

/// Deletes a document of my application while the application can be changed.
#[utoipa::path(delete, path = "/api/v1/applications/{id}/documents/{document}", tag = "applications", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("document" = Uuid, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not a beneficiary", body = common::ErrorBody),
        (status = 404, description = "No such document of my application", body = common::ErrorBody),
        (status = 409, description = "The application can no longer be changed in its status", body = common::ErrorBody),
        (status = 503, description = "The PHI vault is unavailable; the document is hidden and its deletion finishes later", body = common::ErrorBody),
    ))]
#[delete("/applications/<id>/documents/<document>")]
pub async fn delete_mine(
    user: Beneficiary,
    id: Uuid,
    document: Uuid,
    meta: RequestMeta,
    pool: &State<PgPool>,
    vault: &State<PhiVaultClient>,
) -> Result<Status, ApiError> {
    let me = user.user_id();
    let mut tx = pool.begin().await?;
    let status = lock_mine(&mut tx, me, id).await?;
    let marked = sqlx::query(
        "UPDATE application_documents SET state = 'deleting', updated_at = now() \
         WHERE id = $1 AND application_id = $2 AND state = 'stored'",
    )
    .bind(document)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    if marked.rows_affected() == 0 {
        return Err(ApiError::NotFound);
    }
    if !status.editable() || !edited(&mut tx, id).await? {
        return Err(not_editable(status));
    }
    let resource = Some(("document", document.to_string()));
    audit::record(&mut tx, &meta.event(Some(me), "document.delete", resource, Outcome::Success)).await?;
    tx.commit().await?;
    match vault.delete_record(&user.call(&meta, "self_service"), document).await {
        Ok(()) | Err(ClientError::Status { status: 404, .. }) => forget_row(pool, document).await?,
        Err(e) => return Err(e.into_api_error()),
    }
    Ok(Status::NoContent)
}

/// The documents of an application, for the caseworker on the beneficiary's care team
/// (phi-vault decides each read, and logs it).
#[utoipa::path(get, path = "/api/v1/caseworker/applications/{id}/documents", tag = "staff", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "The documents, oldest first", body = DocumentList),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not a caseworker", body = common::ErrorBody),
        (status = 404, description = "No such application, or its beneficiary is not on your care team", body = common::ErrorBody),
        (status = 503, description = "The PHI vault is unavailable", body = common::ErrorBody),
    ))]
#[get("/caseworker/applications/<id>/documents")]
pub async fn list_for_caseworker(
    caseworker: Caseworker,
    id: Uuid,
    meta: RequestMeta,
    pool: &State<PgPool>,
    vault: &State<PhiVaultClient>,
    settings: &State<DocumentSettings>,
) -> Result<Json<DocumentList>, ApiError> {
    let beneficiary: Uuid = sqlx::query_scalar("SELECT beneficiary_id FROM applications WHERE id = $1")
        .bind(id)
        .fetch_optional(pool.inner())
        .await?
        .ok_or(ApiError::NotFound)?;
    let ctx = caseworker.call(&meta, "treatment");
    // The care-team check first, by phi-vault: anyone else learns nothing, not even whether
    // there are documents.
    vault.list_records(&ctx, beneficiary, Some("document")).await.map_err(ClientError::into_api_error)?;
    list_of(pool, vault, &ctx, id, (settings.per_application, false)).await.map(Json)
}

/// Downloads a document of an application, for the caseworker on the beneficiary's care team.
#[utoipa::path(get, path = "/api/v1/caseworker/applications/{id}/documents/{document}", tag = "staff", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("document" = Uuid, Path)),
    responses(
        (status = 200, description = "The file, as an attachment in its type; `X-Content-SHA256` is its hash", content_type = "application/octet-stream", body = String),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not a caseworker", body = common::ErrorBody),
        (status = 404, description = "No such document, or its beneficiary is not on your care team", body = common::ErrorBody),
        (status = 503, description = "The PHI vault is unavailable", body = common::ErrorBody),
    ))]
#[get("/caseworker/applications/<id>/documents/<document>")]
pub async fn download_for_caseworker(
    caseworker: Caseworker,
    id: Uuid,
    document: Uuid,
    meta: RequestMeta,
    pool: &State<PgPool>,
    vault: &State<PhiVaultClient>,
    settings: &State<DocumentSettings>,
) -> Result<Download, ApiError> {
    stored(pool, id, document).await?;
    download(vault, &caseworker.call(&meta, "treatment"), document, settings).await
}

pub fn routes() -> Vec<Route> {
    routes![upload, list_mine, download_mine, delete_mine, list_for_caseworker, download_for_caseworker]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_are_bounded_per_person_and_per_instance() {
        let uploads =
            Uploads::new(&DocumentSettings { max_concurrent: 3, per_user_concurrent: 2, ..Default::default() });
        let (me, you) = (Uuid::new_v4(), Uuid::new_v4());
        let first = uploads.claim(me).expect("first");
        let second = uploads.claim(me).expect("second");
        assert!(matches!(uploads.claim(me), Err(ApiError::TooManyRequests(_))), "a third of mine");
        let yours = uploads.claim(you).expect("yours");
        assert!(matches!(uploads.claim(you), Err(ApiError::Unavailable(_))), "the instance is full");
        drop(first);
        let again = uploads.claim(me).expect("a slot of mine came free");
        drop((second, yours, again));
        assert!(uploads.per_user.lock().expect("lock").is_empty(), "nothing held once all are done");
    }

    #[test]
    fn the_disposition_names_the_file_safely() {
        assert_eq!(disposition("lease.pdf"), "attachment; filename=\"lease.pdf\"; filename*=UTF-8''lease.pdf");
        let tricky = disposition("a\"b;c\u{e9}.pdf");
        assert!(tricky.starts_with("attachment; filename=\"a_b;c_.pdf\"; "), "{tricky}");
        assert!(tricky.ends_with("filename*=UTF-8''a%22b%3Bc%C3%A9.pdf"), "{tricky}");
    }
}
