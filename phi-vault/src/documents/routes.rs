//! The document routes: an upload streamed in from public-api, and a download streamed out.

use rocket::data::Data;
use rocket::http::Status;
use rocket::outcome::try_outcome;
use rocket::request::{FromRequest, Outcome};
use rocket::serde::json::Json;
use rocket::{get, post, routes, Request, Route, State};
use sqlx::PgPool;
use uuid::Uuid;

use common::assertion::{InternalCall, StreamedCall, Verifier};
use common::documents::StoredDocument;
use common::ApiError;

use super::download::{self, Content};
use super::upload::{store, Documents, Services};
use crate::records::Vault;
use crate::retention::RetentionPolicy;

/// The managed state an upload works with, taken as one guard: each part as `&State<_>` takes
/// it (a part not managed fails the request with 500).
#[rocket::async_trait]
impl<'r> FromRequest<'r> for Services<'r> {
    type Error = ();

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, ()> {
        let pool = try_outcome!(request.guard::<&State<PgPool>>().await);
        let vault = try_outcome!(request.guard::<&State<Vault>>().await);
        let documents = try_outcome!(request.guard::<&State<Documents>>().await);
        let verifier = try_outcome!(request.guard::<&State<Verifier>>().await);
        let retention = try_outcome!(request.guard::<&State<RetentionPolicy>>().await);
        Outcome::Success(Services {
            pool: pool.inner(),
            vault: vault.inner(),
            documents: documents.inner(),
            verifier: verifier.inner(),
            retention: retention.inner(),
        })
    }
}

#[post("/internal/v1/subjects/<subject>/documents/<id>", data = "<data>")]
async fn upload(
    call: StreamedCall,
    subject: Uuid,
    id: Uuid,
    data: Data<'_>,
    services: Services<'_>,
) -> Result<(Status, Json<StoredDocument>), ApiError> {
    let stored = store(&call.0, (subject, id), data, &services).await?;
    Ok((Status::Created, Json(stored)))
}

#[get("/internal/v1/documents/<id>/content")]
async fn content(
    call: InternalCall,
    id: Uuid,
    pool: &State<PgPool>,
    vault: &State<Vault>,
) -> Result<Content, ApiError> {
    download::open(pool, vault, &call.0, id).await
}

pub fn routes() -> Vec<Route> {
    routes![upload, content]
}
