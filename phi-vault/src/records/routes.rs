//! The record routes: create, read, replace, delete and list a subject's records.

use rocket::http::Status;
use rocket::serde::json::Json;
use rocket::{delete, get, post, put, routes, Route, State};
use sqlx::PgPool;
use uuid::Uuid;

use common::assertion::InternalCall;
use common::client::{NewRecord, Record, RecordContent, RecordCreated, RecordList};
use common::json::Body;
use common::ApiError;

use super::actions;
use super::rules::{self, Category};
use super::vault::Vault;
use crate::retention::RetentionPolicy;

#[post("/internal/v1/records", data = "<body>")]
async fn create(
    call: InternalCall,
    body: Body<NewRecord>,
    pool: &State<PgPool>,
    vault: &State<Vault>,
    retention: &State<RetentionPolicy>,
) -> Result<(Status, Json<RecordCreated>), ApiError> {
    let new = body.into_inner();
    let category = rules::new_record_category(&new.category)?;
    let plaintext = rules::serialize_content(&new.content)?;
    rules::within_limit(&plaintext, vault.max_record_bytes)?;
    let subject = (new.subject_id, category);
    let id = actions::store(pool, vault, retention, &call.0, subject, &plaintext, new.expires_at).await?;
    Ok((Status::Created, Json(RecordCreated { record_id: id })))
}

#[get("/internal/v1/records/<id>")]
async fn read(
    call: InternalCall,
    id: Uuid,
    pool: &State<PgPool>,
    vault: &State<Vault>,
) -> Result<Json<Record>, ApiError> {
    actions::serve_read(&call.0, id, pool, vault, None).await.map(Json)
}

#[put("/internal/v1/records/<id>", data = "<body>")]
async fn replace(
    call: InternalCall,
    id: Uuid,
    body: Body<RecordContent>,
    pool: &State<PgPool>,
    vault: &State<Vault>,
) -> Result<Json<Record>, ApiError> {
    let content = body.into_inner().content;
    let plaintext = rules::serialize_content(&content)?;
    rules::within_limit(&plaintext, vault.max_record_bytes)?;
    actions::replace(pool, vault, &call.0, id, (content, &plaintext)).await.map(Json)
}

#[delete("/internal/v1/records/<id>")]
async fn remove(call: InternalCall, id: Uuid, pool: &State<PgPool>, vault: &State<Vault>) -> Result<Status, ApiError> {
    if !actions::remove(pool, vault, &call.0, id).await? {
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
    let category = category.map(Category::parse).transpose()?;
    actions::list(pool, vault, &call.0, subject, category).await.map(Json)
}

pub fn routes() -> Vec<Route> {
    routes![create, read, replace, remove, list]
}
