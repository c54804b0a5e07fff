//! A download: decided and logged like a record read, then streamed piece by piece, each
//! opened as it is sent.

use std::pin::Pin;

use base64::Engine;
use bytes::Bytes;
use futures_util::Stream;
use rocket::http::{ContentType, Status};
use rocket::response::{self, Responder, Response};
use rocket::Request;
use sqlx::PgPool;
use uuid::Uuid;

use common::assertion::Claims;
use common::documents::{DocumentMeta, META_HEADER};
use common::ApiError;

use super::queries::{self, Piece};
use super::rules::{hex, piece_field, CATEGORY};
use crate::access_log::{access, log_alone};
use crate::keys::crypto::{self, Binding, DataKey};
use crate::policy::Decision;
use crate::records::{authorized, commit_read, existing_key, Vault, UNREADABLE_CONTENT};

/// The access-log action of a download.
const READ: &str = "document.read";

/// A document's content, streamed, with its metadata in [`META_HEADER`].
pub struct Content {
    meta: String,
    size: u64,
    body: tokio_util::io::StreamReader<Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>, Bytes>,
}

impl<'r> Responder<'r, 'static> for Content {
    fn respond_to(self, _request: &'r Request<'_>) -> response::Result<'static> {
        Response::build()
            .status(Status::Ok)
            .header(ContentType::Binary)
            .raw_header(META_HEADER, self.meta)
            .raw_header("cache-control", "no-store")
            // Declared, so a body cut short on an integrity failure is an error to the reader,
            // never a complete-looking file.
            .raw_header("content-length", self.size.to_string())
            .streamed_body(self.body)
            .ok()
    }
}

/// Document `id`'s content, once the caller may read it (the access logged).
pub(super) async fn open(pool: &PgPool, vault: &Vault, claims: &Claims, id: Uuid) -> Result<Content, ApiError> {
    let action = READ;
    let (subject, category, decision) = authorized(pool, vault, claims, id, action).await?;
    if category != CATEGORY {
        log_alone(pool, &access(claims, Some(subject), Some(id), action, &Decision::deny("not a document"))).await?;
        return Err(ApiError::NotFound);
    }
    if decision.disclosure.is_some() {
        let refused = Decision::deny("documents are not disclosed outside the program");
        log_alone(pool, &access(claims, Some(subject), Some(id), action, &refused)).await?;
        return Err(ApiError::Forbidden);
    }
    let key = existing_key(pool, vault, claims, (subject, id), action, &decision).await?;
    let ((_, content, _), _) =
        commit_read(vault, claims, (subject, id), (category, decision, action), key.clone(), false).await?;
    let meta: DocumentMeta = serde_json::from_value(content).map_err(|_| ApiError::internal(UNREADABLE_CONTENT))?;
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&meta).map_err(|_| ApiError::internal(UNREADABLE_CONTENT))?);
    let size = meta.size_bytes;
    let pieces = pieces(pool.clone(), key, (subject, id), meta, claims.request_id.clone());
    Ok(Content { meta: header, size, body: tokio_util::io::StreamReader::new(pieces) })
}

/// The content, opened piece by piece; an error (never a clean end) if any piece is missing or
/// altered, or the whole differs from its recorded hash.
fn pieces(
    pool: PgPool,
    key: DataKey,
    (subject, id): (Uuid, Uuid),
    meta: DocumentMeta,
    request_id: String,
) -> Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>> {
    let state = (0u32, ring::digest::Context::new(&ring::digest::SHA256), false);
    Box::pin(futures_util::stream::unfold(state, move |(seq, mut digest, done)| {
        let (pool, key, meta, request_id) = (pool.clone(), key.clone(), meta.clone(), request_id.clone());
        async move {
            if done {
                return None;
            }
            let failed = |what: &str| {
                tracing::error!(request_id = %request_id, document = %id, alarm = "integrity",
                    "INTEGRITY ALARM: a document {what}; its download was cut");
                Some((
                    Err(std::io::Error::other("document integrity")),
                    (seq, ring::digest::Context::new(&ring::digest::SHA256), true),
                ))
            };
            if seq == meta.chunks {
                return None;
            }
            let piece = match queries::piece(&pool, id, seq as i32).await {
                Ok(Some(piece)) => piece,
                Ok(None) => {
                    let there = queries::content_exists(&pool, id).await;
                    if let Ok(None) = there {
                        tracing::warn!(request_id = %request_id, "a document was deleted while it was downloaded");
                        return Some((Err(std::io::Error::other("deleted")), (seq, digest, true)));
                    }
                    return failed("is missing a piece");
                }
                // A piece whose columns do not decode is unreadable, not a database failure.
                Err(sqlx::Error::ColumnDecode { .. }) => return failed("has an unreadable piece"),
                Err(e) => {
                    tracing::warn!(request_id = %request_id, error = %e, "a document download failed on the database");
                    return Some((Err(std::io::Error::other("database")), (seq, digest, true)));
                }
            };
            let Piece { nonce, ciphertext } = piece;
            let field = piece_field(seq);
            let binding = Binding { subject, record: id, category: CATEGORY.as_str(), field: &field };
            match crypto::open(&key, binding, &nonce, &ciphertext) {
                Ok(plaintext) => {
                    digest.update(&plaintext);
                    // The whole is checked before its last piece goes: with the length declared,
                    // a mismatch then cuts a body the client has not yet seen complete.
                    if seq + 1 == meta.chunks && hex(digest.clone().finish().as_ref()) != meta.sha256 {
                        return failed("differs from its hash");
                    }
                    Some((Ok(Bytes::copy_from_slice(&plaintext)), (seq + 1, digest, false)))
                }
                Err(_) => failed("piece failed authentication"),
            }
        }
    }))
}
