//! The documents' routes: a beneficiary's uploads, listings, downloads and deletions on their own
//! applications, and the caseworker's listings and downloads on the care team's.

use futures_util::{StreamExt, TryStreamExt};
use rocket::data::Data;
use rocket::http::{ContentType, Status};
use rocket::request::{self, FromRequest};
use rocket::response::{self, Responder, Response};
use rocket::serde::json::Json;
use rocket::{delete, get, post, routes, Request, Route, State};
use sqlx::PgPool;
use uuid::Uuid;

use common::assertion::CallContext;
use common::client::{ClientError, PhiVaultClient};
use common::documents::{DocumentList, DocumentMeta, DocumentView, ACCEPTED};
use common::ApiError;

use super::queries;
use super::relay::{relay, Relay};
use super::rules::{boundary, disposition, timeout, DocumentSettings};
use super::slots::Uploads;
use crate::applications::not_editable;
use crate::audit::{self, Outcome};
use crate::auth::{Beneficiary, Caseworker};
use crate::meta::RequestMeta;

/// The upload form, for the OpenAPI document.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct DocumentUpload {
    /// The file: a PDF, JPEG, PNG or HEIC image, at most 10 MiB (configurable). Its type is
    /// decided by its bytes; its name is kept as a label only.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// What every document route works with, as one request guard: the public database, phi-vault's
/// client and `[service.documents]`.
pub struct Store<'r> {
    pool: &'r PgPool,
    vault: &'r PhiVaultClient,
    settings: &'r DocumentSettings,
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Store<'r> {
    type Error = ();

    async fn from_request(request: &'r Request<'_>) -> request::Outcome<Self, ()> {
        let rocket = request.rocket();
        match (rocket.state::<PgPool>(), rocket.state::<PhiVaultClient>(), rocket.state::<DocumentSettings>()) {
            (Some(pool), Some(vault), Some(settings)) => request::Outcome::Success(Store { pool, vault, settings }),
            _ => {
                tracing::error!("the documents' state is not managed");
                request::Outcome::Error((Status::InternalServerError, ()))
            }
        }
    }
}

/// My application's status, its row locked until the transaction ends; 404 if it is not mine.
async fn lock_mine(
    tx: &mut sqlx::PgConnection,
    me: Uuid,
    application: Uuid,
) -> Result<common::applications::ApplicationStatus, ApiError> {
    queries::lock_mine(tx, me, application).await?.ok_or(ApiError::NotFound)
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
    if queries::held_by_application(&mut tx, application).await? >= i64::from(limit) {
        return Err(ApiError::Conflict(format!(
            "an application holds at most {limit} documents; delete one before adding another"
        )));
    }
    if queries::held_by_beneficiary(&mut tx, me).await? >= i64::from(settings.per_beneficiary) {
        return Err(ApiError::Conflict(format!(
            "one person holds at most {} documents; delete one before adding another",
            settings.per_beneficiary
        )));
    }
    let id = Uuid::new_v4();
    queries::add(&mut tx, id, application, me).await?;
    tx.commit().await?;
    Ok(id)
}

/// Uploads a document to my application, which must be `reviewing` or `action_needed`.
#[utoipa::path(post, operation_id = "documents_upload", path = "/api/v1/applications/{id}/documents", tag = "applications", security(("bearer" = [])),
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
#[post("/applications/<id>/documents", data = "<data>")]
pub async fn upload(
    user: Beneficiary,
    id: Uuid,
    content_type: Option<&ContentType>,
    data: Data<'_>,
    meta: RequestMeta,
    store: Store<'_>,
    uploads: &State<Uploads>,
) -> Result<(Status, Json<DocumentView>), ApiError> {
    let Store { pool, vault, settings } = store;
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
                    queries::forget(pool, document).await?;
                    e
                }
                Relay::Unknown(e) => {
                    // phi-vault may still be finishing it: left for the owner's next listing
                    // once older than any upload can take.
                    queries::mark_deleting(pool, document).await?;
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
    let Some(uploaded_at) = queries::mark_stored(&mut tx, document).await? else {
        tx.rollback().await?;
        abandon(pool, vault, &ctx, document).await?;
        return Err(ApiError::Conflict("the upload took too long and was abandoned; send it again".into()));
    };
    // A document is part of what is decided on: adding one is an edit (a decision made on the
    // version before it is refused), and one that arrives after a decision is not kept.
    if !queries::edited(&mut tx, id).await? {
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
            uploaded_at,
        }),
    ))
}

/// Gives up a document whose upload phi-vault may have kept: its record is deleted (gone already
/// is fine) and the row with it; if phi-vault cannot be reached, the row is marked `deleting`,
/// hidden, and its owner's next listing finishes it.
async fn abandon(pool: &PgPool, vault: &PhiVaultClient, ctx: &CallContext, document: Uuid) -> Result<(), ApiError> {
    match vault.delete_record(ctx, document).await {
        Ok(()) | Err(ClientError::Status { status: 404, .. }) => Ok(queries::forget(pool, document).await?),
        Err(e) => {
            tracing::warn!(request_id = %ctx.request_id(), error = %e, "an abandoned document is left for its owner's next listing");
            Ok(queries::mark_deleting(pool, document).await?)
        }
    }
}

/// Finishes my rows left between states (`uploading` or `deleting`) once older than any upload
/// can take, so phi-vault is no longer finishing one: the record goes first (already gone is
/// fine), then the row.
async fn finish_leftovers(store: &Store<'_>, ctx: &CallContext, application: Uuid) -> Result<(), ApiError> {
    let Store { pool, vault, settings } = store;
    for id in queries::leftovers(pool, application, settings.stale_after_secs).await? {
        match vault.delete_record(ctx, id).await {
            Ok(()) | Err(ClientError::Status { status: 404, .. }) => queries::forget(pool, id).await?,
            Err(e) => {
                tracing::warn!(request_id = %ctx.request_id(), error = %e, "a left-over document stays for the next listing")
            }
        }
    }
    Ok(())
}

/// The stored documents of an application, with their metadata read from phi-vault (which
/// decides and logs each read). The `owner`'s listing drops the rows of documents gone from
/// phi-vault.
async fn list_of(
    store: &Store<'_>,
    ctx: &CallContext,
    application: Uuid,
    owner: bool,
) -> Result<DocumentList, ApiError> {
    let Store { pool, vault, settings } = store;
    let rows = queries::stored_of(pool, application).await?;
    let reads = rows.iter().map(|row| async move {
        let id = row.id;
        let record = match vault.read_record(ctx, id).await {
            Ok(record) => record,
            // Gone from the vault (erased, or deleted meanwhile): not listed, and the owner's
            // listing drops the row.
            Err(ClientError::Status { status: 404, .. }) => {
                if owner {
                    queries::forget(pool, id).await?;
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
            uploaded_at: row.created_at,
        }))
    });
    let items = futures_util::future::try_join_all(reads).await?.into_iter().flatten().collect();
    Ok(DocumentList { items, limit: settings.per_application })
}

/// The documents of my application.
#[utoipa::path(get, operation_id = "documents_list_mine", path = "/api/v1/applications/{id}/documents", tag = "applications", security(("bearer" = [])),
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
    store: Store<'_>,
) -> Result<Json<DocumentList>, ApiError> {
    own(store.pool, user.user_id(), id).await?;
    let ctx = user.call(&meta, "self_service");
    finish_leftovers(&store, &ctx, id).await?;
    list_of(&store, &ctx, id, true).await.map(Json)
}

/// My application, or 404.
async fn own(pool: &PgPool, me: Uuid, application: Uuid) -> Result<(), ApiError> {
    queries::is_mine(pool, me, application).await?.then_some(()).ok_or(ApiError::NotFound)
}

/// A stored document of `application`, or 404.
async fn stored(pool: &PgPool, application: Uuid, document: Uuid) -> Result<(), ApiError> {
    queries::is_stored(pool, application, document).await?.then_some(()).ok_or(ApiError::NotFound)
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

async fn download(store: &Store<'_>, ctx: &CallContext, document: Uuid) -> Result<Download, ApiError> {
    let (meta, body) = store
        .vault
        .download_document(ctx, document, timeout(store.settings))
        .await
        .map_err(ClientError::into_api_error)?;
    Ok(Download { meta, body })
}

/// Downloads a document of my application.
#[utoipa::path(get, operation_id = "documents_download_mine", path = "/api/v1/applications/{id}/documents/{document}", tag = "applications", security(("bearer" = [])),
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
    store: Store<'_>,
) -> Result<Download, ApiError> {
    own(store.pool, user.user_id(), id).await?;
    stored(store.pool, id, document).await?;
    download(&store, &user.call(&meta, "self_service"), document).await
}

/// Deletes a document of my application while the application can be changed.
#[utoipa::path(delete, operation_id = "documents_delete_mine", path = "/api/v1/applications/{id}/documents/{document}", tag = "applications", security(("bearer" = [])),
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
    store: Store<'_>,
) -> Result<Status, ApiError> {
    let Store { pool, vault, .. } = store;
    let me = user.user_id();
    let mut tx = pool.begin().await?;
    let status = lock_mine(&mut tx, me, id).await?;
    if !queries::mark_stored_deleting(&mut tx, document, id).await? {
        return Err(ApiError::NotFound);
    }
    if !status.editable() || !queries::edited(&mut tx, id).await? {
        return Err(not_editable(status));
    }
    let resource = Some(("document", document.to_string()));
    audit::record(&mut tx, &meta.event(Some(me), "document.delete", resource, Outcome::Success)).await?;
    tx.commit().await?;
    match vault.delete_record(&user.call(&meta, "self_service"), document).await {
        Ok(()) | Err(ClientError::Status { status: 404, .. }) => queries::forget(pool, document).await?,
        Err(e) => return Err(e.into_api_error()),
    }
    Ok(Status::NoContent)
}

/// The documents of an application, for the caseworker on the beneficiary's care team
/// (phi-vault decides each read, and logs it).
#[utoipa::path(get, operation_id = "documents_list_for_caseworker", path = "/api/v1/caseworker/applications/{id}/documents", tag = "staff", security(("bearer" = [])),
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
    store: Store<'_>,
) -> Result<Json<DocumentList>, ApiError> {
    let beneficiary = queries::beneficiary_of(store.pool, id).await?.ok_or(ApiError::NotFound)?;
    let ctx = caseworker.call(&meta, "treatment");
    // The care-team check first, by phi-vault: anyone else learns nothing, not even whether
    // there are documents.
    store.vault.list_records(&ctx, beneficiary, Some("document")).await.map_err(ClientError::into_api_error)?;
    list_of(&store, &ctx, id, false).await.map(Json)
}

/// Downloads a document of an application, for the caseworker on the beneficiary's care team.
#[utoipa::path(get, operation_id = "documents_download_for_caseworker", path = "/api/v1/caseworker/applications/{id}/documents/{document}", tag = "staff", security(("bearer" = [])),
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
    store: Store<'_>,
) -> Result<Download, ApiError> {
    stored(store.pool, id, document).await?;
    download(&store, &caseworker.call(&meta, "treatment"), document).await
}

pub fn routes() -> Vec<Route> {
    routes![upload, list_mine, download_mine, delete_mine, list_for_caseworker, download_for_caseworker]
}
