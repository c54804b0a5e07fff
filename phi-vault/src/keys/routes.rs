//! The key lifecycle's route: an admin crypto-shreds a subject.

use rocket::http::Status;
use rocket::{delete, routes, Route, State};
use sqlx::PgPool;
use uuid::Uuid;

use common::assertion::InternalCall;
use common::ApiError;

use super::lifecycle;
use crate::records::Vault;

/// Crypto-shreds a subject: its data key is destroyed and its ciphertext rows (`records`, and
/// with them `documents`) are deleted, so nothing of the subject can be read again. What the
/// accounting of disclosures needs stays: the subject's row (with `shredded_at`), its
/// `disclosures` and the access log. Only an admin may.
#[delete("/internal/v1/subjects/<subject>/key")]
async fn shred(
    call: InternalCall,
    subject: Uuid,
    pool: &State<PgPool>,
    vault: &State<Vault>,
) -> Result<Status, ApiError> {
    lifecycle::shred(pool, vault, &call.0, subject).await?;
    Ok(Status::NoContent)
}

pub fn routes() -> Vec<Route> {
    routes![shred]
}
