//! A feature's PHI as records in phi-vault: what applications, insurance and documents share.
//! Public-api keeps only the record's id; the content goes to phi-vault under the caller's call
//! context and comes back only through it, so phi-vault decides and logs every read.

use uuid::Uuid;

use common::assertion::CallContext;
use common::client::{ClientError, PhiVaultClient};
use common::ApiError;

/// A record's content: the request's details as JSON.
pub fn content_of(details: &impl serde::Serialize) -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(details).map_err(ApiError::internal)
}

/// Reads a record through phi-vault under `ctx` as a `T`; `None` when the record was erased
/// (the public row no longer points at one). A record of another shape is a 500 whose logged
/// cause is fixed text: serde's message would quote the record.
pub async fn read_details<T: serde::de::DeserializeOwned>(
    vault: &PhiVaultClient,
    ctx: &CallContext,
    record: Option<Uuid>,
) -> Result<Option<T>, ApiError> {
    match record {
        None => Ok(None),
        Some(id) => {
            let record = vault.read_record(ctx, id).await.map_err(|e| e.into_api_error())?;
            serde_json::from_value(record.content)
                .map(Some)
                .map_err(|_| ApiError::internal("a stored record does not have the shape its category has"))
        }
    }
}

/// How a refused record write answers. phi-vault answers 404 for a subject whose records were
/// erased (their key is destroyed): nothing new may be stored for them.
pub fn stored_error(e: ClientError) -> ApiError {
    match e {
        ClientError::Status { status: 404, .. } => {
            ApiError::Conflict("this account's records were erased; nothing new can be stored for it".into())
        }
        other => other.into_api_error(),
    }
}

/// Deletes a record this request made and could not link. Best effort: a failure is logged
/// (without the id's contents, which are none) and the record stays the subject's, erased with
/// the rest of their records.
pub async fn discard(vault: &PhiVaultClient, ctx: &CallContext, record: Uuid) {
    if let Err(e) = vault.delete_record(ctx, record).await {
        tracing::warn!(request_id = %ctx.request_id(), error = %e, "an unlinked record was not deleted");
    }
}
