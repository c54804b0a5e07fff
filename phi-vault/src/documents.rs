//! Documents a beneficiary uploads (a lease, a pay stub, a letter), streamed in from public-api
//! and kept only whole, of an accepted type, clean and sealed.
//!
//! # Upload
//!
//! The body is a frame naming the file (2-byte length, UTF-8 name), the content, and the
//! caller's seal ([`common::assertion::StreamSeal`]). Nothing is held whole in memory: the
//! content is read in pieces of [`PIECE`] bytes, and each piece is hashed, sent on to the virus
//! scanner (clamd `INSTREAM`) and sealed under the subject's data key (AES-256-GCM-SIV, bound to
//! subject, document and the piece's number) into `document_chunks` as it arrives.
//!
//! The pieces are staged: their `document_contents` row has no record until the document is
//! accepted, and nothing reads a staged document. It is accepted only when the whole body has
//! arrived within the size limit, its first bytes show an accepted type
//! ([`common::documents::sniff`]), the seal verifies, and the scanner said clean; then one short
//! transaction writes the `records` row (category `document`) holding the sealed metadata (name,
//! type, size, SHA-256, number of pieces), links the staged content to it, and logs the access.
//! Any other ending (refused, infected, scanner unreachable, body cut short, a crash) leaves no
//! record: the staged pieces are deleted at once, or by the sweep ([`sweep_until`]) if the
//! process died.
//!
//! Every refusal answers before anything is kept: a 4xx, or a 503 (no scanner, the scanner or
//! the database unavailable). Only a failure of the accepting commit itself is a 500, whose
//! outcome the caller cannot know.
//!
//! Deleting the record (the record routes, the retention job, or a crypto-shred) deletes the
//! content with it (`ON DELETE CASCADE`).
//!
//! # Download
//!
//! Decided and logged like a record read (`document.read`), then streamed piece by piece, each
//! opened as it is sent. A piece missing or failing to open, or a content whose hash differs
//! from the metadata, ends the response with an error (the connection is cut), never with a
//! clean end.

use std::pin::Pin;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use futures_util::Stream;
use rocket::data::{Data, ToByteUnit};
use rocket::http::{ContentType, Status};
use rocket::response::{self, Responder, Response};
use rocket::serde::json::Json;
use rocket::{get, post, routes, Request, Route, State};
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, Row};
use tokio::io::AsyncReadExt;
use uuid::Uuid;

use common::assertion::{Claims, InternalCall, StreamedCall, Verifier, STREAM_SEAL_LEN};
use common::clamd::{ScanError, ScanSession, Scanner, Verdict};
use common::documents::{clean_name, sniff, DocumentMeta, StoredDocument, ACCEPTED, MAX_NAME_BYTES, META_HEADER};
use common::ApiError;

use crate::access_log::{access, log_alone};
use crate::crypto::{self, Binding, DataKey};
use crate::policy::Decision;
use crate::records::{
    authorized, commit_read, crypto_error, decide_new, existing_key, insert_record, subject_live, writable_key,
    Category, Vault, FIELD, UNREADABLE_CONTENT,
};

/// Bytes of content per sealed piece.
pub const PIECE: usize = 512 * 1024;
const CATEGORY: &str = "document";

/// Where the virus scanner (clamd) listens.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScannerSettings {
    /// `host:port` of clamd's TCP socket.
    pub address: String,
    /// The longest any one step of a scan may take.
    pub timeout_secs: u64,
}

impl Default for ScannerSettings {
    fn default() -> Self {
        Self { address: "127.0.0.1:3310".into(), timeout_secs: 30 }
    }
}

/// Whether `address` (`host:port`) is on this host: a loopback address or `localhost`.
pub fn on_this_host(address: &str) -> bool {
    let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
    host == "localhost" || host.trim_matches(['[', ']']).parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// What the document routes need beside the vault.
pub struct Documents {
    /// `None`: no scanner is configured, so no document is accepted (503).
    pub scanner: Option<Scanner>,
    /// The largest content accepted, in bytes.
    pub max_bytes: u64,
    /// The longest an upload may take from its first byte to its last.
    pub transfer_timeout: Duration,
    /// Uploads taken at once; more are refused (503) rather than queued on the scanner.
    pub slots: std::sync::Arc<tokio::sync::Semaphore>,
}

/// The field a piece is sealed under: its number binds its place.
fn piece_field(seq: u32) -> String {
    format!("chunk:{seq}")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn scan_error(e: ScanError, max_bytes: u64) -> ApiError {
    match e {
        ScanError::TooLarge => ApiError::TooLarge(format!("the file is larger than {max_bytes} bytes")),
        other => ApiError::Unavailable(format!("virus scanner: {other}")),
    }
}

/// A document's staged pieces: deleted unless it is accepted. [`Staged::discard`] deletes them
/// at once; a handler dropped mid-way (its caller gone) deletes them from `Drop`, and a crashed
/// process leaves them to the sweep.
struct Staged {
    pool: PgPool,
    id: Uuid,
    kept: bool,
}

impl Staged {
    async fn begin(pool: &PgPool, id: Uuid, subject: Uuid, claims: &Claims) -> Result<Self, ApiError> {
        let inserted = sqlx::query(
            "INSERT INTO document_contents (id, subject_id, created_by) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(subject)
        .bind(&claims.sub)
        .execute(pool)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(ApiError::Conflict("a document with this id already exists".into()));
        }
        Ok(Self { pool: pool.clone(), id, kept: false })
    }

    async fn discard(mut self) {
        self.kept = true;
        if let Err(e) = delete_staged(&self.pool, self.id).await {
            tracing::warn!(error = %e, "a refused document's pieces are left to the sweep");
        }
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.kept {
            let (pool, id) = (self.pool.clone(), self.id);
            tokio::spawn(async move {
                if let Err(e) = delete_staged(&pool, id).await {
                    tracing::warn!(error = %e, "an abandoned document's pieces are left to the sweep");
                }
            });
        }
    }
}

async fn delete_staged(pool: &PgPool, id: Uuid) -> Result<(), sqlx::Error> {
    // A piece's insert dropped mid-transaction (a timed-out handler) holds its lock until its
    // rollback reaches the server: wait a little, then leave the pieces to the sweep.
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL lock_timeout = '5s'").execute(&mut *tx).await?;
    sqlx::query("DELETE FROM document_contents WHERE id = $1 AND record_id IS NULL").bind(id).execute(&mut *tx).await?;
    tx.commit().await
}

/// The upload body as it is read: pieces of content, holding back the last
/// [`STREAM_SEAL_LEN`] bytes, which are the seal once the body ends.
struct Incoming<'r> {
    stream: rocket::data::DataStream<'r>,
    buffer: Vec<u8>,
    ended: bool,
    /// Every byte before the seal, for the seal's check.
    whole: ring::digest::Context,
    whole_len: u64,
    /// Content bytes handed out so far.
    content_len: u64,
    max_bytes: u64,
}

impl Incoming<'_> {
    async fn fill(&mut self, want: usize) -> Result<(), ApiError> {
        let mut scratch = vec![0u8; 64 * 1024];
        while !self.ended && self.buffer.len() < want {
            let n = self.stream.read(&mut scratch).await.map_err(|_| cut_short())?;
            if n == 0 {
                self.ended = true;
            } else {
                self.buffer.extend_from_slice(&scratch[..n]);
            }
            let pending = self.buffer.len().saturating_sub(STREAM_SEAL_LEN) as u64;
            if self.content_len + pending > self.max_bytes {
                return Err(too_large(self.max_bytes));
            }
        }
        Ok(())
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        let rest = self.buffer.split_off(n);
        let taken = std::mem::replace(&mut self.buffer, rest);
        self.whole.update(&taken);
        self.whole_len += taken.len() as u64;
        taken
    }

    /// The name frame.
    async fn name(&mut self) -> Result<String, ApiError> {
        self.fill(2).await?;
        if self.buffer.len() < 2 {
            return Err(cut_short());
        }
        let length = u16::from_be_bytes([self.buffer[0], self.buffer[1]]) as usize;
        if length > MAX_NAME_BYTES {
            return Err(ApiError::Unprocessable(format!("file name: at most {MAX_NAME_BYTES} bytes")));
        }
        self.take(2);
        self.fill(length).await?;
        if self.buffer.len() < length {
            return Err(cut_short());
        }
        let name =
            String::from_utf8(self.take(length)).map_err(|_| ApiError::Unprocessable("file name: not UTF-8".into()))?;
        if clean_name(&name) != name {
            return Err(ApiError::Unprocessable("file name: not a cleaned file name".into()));
        }
        Ok(name)
    }

    /// The next piece of content, or `None` at its end.
    async fn piece(&mut self) -> Result<Option<Vec<u8>>, ApiError> {
        self.fill(PIECE + STREAM_SEAL_LEN).await?;
        let available = self.buffer.len().saturating_sub(STREAM_SEAL_LEN);
        if available == 0 {
            if self.buffer.len() < STREAM_SEAL_LEN {
                return Err(cut_short());
            }
            return Ok(None);
        }
        let piece = self.take(available.min(PIECE));
        self.content_len += piece.len() as u64;
        Ok(Some(piece))
    }

    /// The seal, once [`Self::piece`] has answered `None`; with the digest and length it seals.
    fn seal(self) -> (Vec<u8>, ring::digest::Digest, u64) {
        (self.buffer, self.whole.finish(), self.whole_len)
    }
}

/// Why an upload was refused, for the access log: fixed words, never the client's.
fn refusal(e: &ApiError) -> &'static str {
    match e {
        ApiError::TooLarge(_) => "refused: larger than the limit",
        ApiError::UnsupportedMediaType(_) => "refused: not an accepted type",
        ApiError::Unprocessable(_) => "refused: empty, or its name invalid",
        ApiError::BadRequest(_) => "refused: cut short or too slow",
        ApiError::Unavailable(_) => "refused: the virus scanner or the database was unavailable",
        ApiError::Conflict(_) => "refused: the id is taken",
        _ => "refused: failed",
    }
}

fn cut_short() -> ApiError {
    ApiError::BadRequest("the upload ended before it was complete".into())
}

fn too_large(max_bytes: u64) -> ApiError {
    ApiError::TooLarge(format!("the file is larger than the limit of {max_bytes} bytes"))
}

/// What an accepted upload's content was.
struct Received {
    content_type: &'static str,
    sha256: String,
    size_bytes: u64,
    pieces: u32,
}

#[allow(clippy::too_many_arguments)]
#[post("/internal/v1/subjects/<subject>/documents/<id>", data = "<data>")]
async fn upload(
    call: StreamedCall,
    subject: Uuid,
    id: Uuid,
    data: Data<'_>,
    pool: &State<PgPool>,
    vault: &State<Vault>,
    documents: &State<Documents>,
    verifier: &State<Verifier>,
    retention: &State<crate::retention::RetentionPolicy>,
) -> Result<(Status, Json<StoredDocument>), ApiError> {
    let claims = &call.0;
    let action = "document.create";
    let Some(scanner) = &documents.scanner else {
        return Err(ApiError::Unavailable("no virus scanner is configured; documents cannot be accepted".into()));
    };
    let Ok(_slot) = documents.slots.clone().try_acquire_owned() else {
        return Err(ApiError::Unavailable("too many documents are being uploaded; try again shortly".into()));
    };
    // Phase 1, no transaction: decide, and the key (the subject's first is stored now).
    let decision = decide_new(pool, vault, retention, claims, (subject, CATEGORY), action).await?;
    let Some(key) = writable_key(pool, vault, subject, &claims.request_id).await? else {
        log_alone(pool, &access(claims, Some(subject), None, action, &Decision::deny("subject erased"))).await?;
        return Err(ApiError::NotFound);
    };
    let limit = (2 + MAX_NAME_BYTES as u64 + documents.max_bytes + STREAM_SEAL_LEN as u64 + 1).bytes();
    let mut incoming = Incoming {
        stream: data.open(limit),
        buffer: Vec::with_capacity(PIECE + STREAM_SEAL_LEN),
        ended: false,
        whole: ring::digest::Context::new(&ring::digest::SHA256),
        whole_len: 0,
        content_len: 0,
        max_bytes: documents.max_bytes,
    };
    let transfer = async {
        let name = incoming.name().await?;
        // Cheap refusals first: nothing is staged for an empty file or an unaccepted type.
        let Some(first) = incoming.piece().await? else {
            return Err(ApiError::Unprocessable("the file is empty".into()));
        };
        let Some(content_type) = sniff(&first) else {
            return Err(ApiError::UnsupportedMediaType(format!(
                "the file is not one of the accepted types ({}), whatever its name says",
                ACCEPTED.join(", ")
            )));
        };
        let session = scanner.start().await.map_err(|e| scan_error(e, documents.max_bytes))?;
        let staged = Staged::begin(pool, id, subject, claims).await?;
        match receive(pool, &key, (subject, id), first, content_type, &mut incoming, session, documents.max_bytes).await
        {
            Ok((received, verdict)) => Ok((name, received, verdict, staged)),
            Err(e) => {
                staged.discard().await;
                Err(e)
            }
        }
    };
    let transferred = tokio::time::timeout(documents.transfer_timeout, transfer)
        .await
        .unwrap_or_else(|_| Err(ApiError::BadRequest("the upload took too long".into())));
    let (name, received, verdict, staged) = match transferred {
        Ok(done) => done,
        Err(e) => {
            // Every refusal is in the access log, with why in fixed words.
            log_alone(pool, &access(claims, Some(subject), Some(id), action, &Decision::deny(refusal(&e)))).await?;
            return Err(e);
        }
    };
    let (seal, digest, length) = incoming.seal();
    if let Err(refusal) = verifier.check_stream(claims, digest.as_ref(), length, &seal) {
        tracing::error!(request_id = %claims.request_id, reason = %refusal, alarm = "stream_seal",
            "a streamed document does not match its seal; refused");
        staged.discard().await;
        let mismatch = Decision::deny("refused: the body does not match its seal");
        log_alone(pool, &access(claims, Some(subject), Some(id), action, &mismatch)).await?;
        return Err(ApiError::Unauthorized);
    }
    if let Verdict::Infected(signature) = verdict {
        tracing::warn!(request_id = %claims.request_id, %subject, signature = %signature, alarm = "malware",
            "an uploaded document was infected; refused and not stored");
        let refused = Decision::deny(format!("malware found: {signature}"));
        staged.discard().await;
        log_alone(pool, &access(claims, Some(subject), Some(id), action, &refused)).await?;
        return Err(ApiError::Unprocessable(format!(
            "the file was not accepted: the virus scanner found {signature} in it, and nothing was kept. \
             Check the file on your device, then upload a clean copy."
        )));
    }
    let meta = DocumentMeta {
        name,
        content_type: received.content_type.to_owned(),
        size_bytes: received.size_bytes,
        sha256: received.sha256.clone(),
        chunks: received.pieces,
    };
    // A refused acceptance drops `staged`, which deletes the pieces.
    accept(pool, &key, claims, (subject, id), &meta, &decision, retention).await?;
    let mut staged = staged;
    staged.kept = true;
    Ok((
        Status::Created,
        Json(StoredDocument {
            document_id: id,
            content_type: meta.content_type,
            size_bytes: meta.size_bytes,
            sha256: meta.sha256,
        }),
    ))
}

/// Reads, scans and stages every piece after the first; returns what was received and the
/// scanner's verdict.
#[allow(clippy::too_many_arguments)]
async fn receive(
    pool: &PgPool,
    key: &DataKey,
    (subject, id): (Uuid, Uuid),
    first: Vec<u8>,
    content_type: &'static str,
    incoming: &mut Incoming<'_>,
    mut session: ScanSession,
    max_bytes: u64,
) -> Result<(Received, Verdict), ApiError> {
    let mut content = ring::digest::Context::new(&ring::digest::SHA256);
    let (mut pieces, mut size) = (0u32, 0u64);
    let mut next = Some(first);
    while let Some(piece) = next {
        content.update(&piece);
        size += piece.len() as u64;
        let field = piece_field(pieces);
        let binding = Binding { subject, record: id, category: CATEGORY, field: &field };
        let (nonce, ciphertext) = crypto::seal(key, binding, &piece).map_err(|e| crypto_error(e, ""))?;
        let stored = async {
            // Staged pieces need not be durable on their own: the accepting commit is
            // synchronous, and flushing the log up to it makes every piece before it durable.
            // A piece lost before that (a database crash mid-upload) is caught by `accept`,
            // which counts the pieces.
            let mut tx = pool.begin().await?;
            sqlx::query("SET LOCAL synchronous_commit = off").execute(&mut *tx).await?;
            sqlx::query("INSERT INTO document_chunks (content_id, seq, nonce, ciphertext) VALUES ($1, $2, $3, $4)")
                .bind(id)
                .bind(pieces as i32)
                .bind(nonce)
                .bind(ciphertext)
                .execute(&mut *tx)
                .await?;
            tx.commit().await.map_err(ApiError::from)
        };
        let scanned = async { session.send(&piece).await.map_err(|e| scan_error(e, max_bytes)) };
        // The next piece is read while this one is stored and scanned. All three are awaited
        // to the end, even when one fails: a store dropped mid-transaction would hold its lock
        // on the staging row until its connection is used again, and the discard would wait.
        let (stored, scanned, following) = tokio::join!(stored, scanned, incoming.piece());
        let following = following?;
        stored?;
        scanned?;
        pieces += 1;
        next = following;
    }
    let verdict = session.finish().await.map_err(|e| scan_error(e, max_bytes))?;
    let received = Received { content_type, sha256: hex(content.finish().as_ref()), size_bytes: size, pieces };
    Ok((received, verdict))
}

/// Phase 2: the record of the metadata, the staged content linked to it, and the access, in one
/// short transaction. Locks: the subject's row, then the access log's chain lock.
async fn accept(
    pool: &PgPool,
    key: &DataKey,
    claims: &Claims,
    (subject, id): (Uuid, Uuid),
    meta: &DocumentMeta,
    decision: &Decision,
    retention: &crate::retention::RetentionPolicy,
) -> Result<(), ApiError> {
    let plaintext = zeroize::Zeroizing::new(
        serde_json::to_vec(meta).map_err(|_| ApiError::internal("document metadata is not serialisable"))?,
    );
    let binding = Binding { subject, record: id, category: CATEGORY, field: FIELD };
    let (nonce, ciphertext) =
        crypto::seal(key, binding, &plaintext).map_err(|e| crypto_error(e, &claims.request_id))?;
    let expires_at = retention.expiry(CATEGORY, None, time::OffsetDateTime::now_utc());
    let mut tx = pool.begin().await?;
    if !subject_live(&mut tx, subject).await? {
        let erased = Decision::deny("subject erased");
        crate::access_log::append(&mut tx, &access(claims, Some(subject), Some(id), "document.create", &erased))
            .await?;
        tx.commit().await?;
        return Err(ApiError::NotFound);
    }
    if !insert_record(&mut tx, (id, subject, Category::Document), (nonce, ciphertext), &claims.sub, expires_at).await? {
        return Err(ApiError::Conflict("a record with this id already exists".into()));
    }
    // Every piece is there: a staged piece commits asynchronously, so a database crash or
    // failover during the upload can lose one that was answered as stored.
    let (count, last): (i64, Option<i32>) =
        sqlx::query_as("SELECT count(*), max(seq) FROM document_chunks WHERE content_id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
    if count != i64::from(meta.chunks) || last != Some(meta.chunks as i32 - 1) {
        return Err(ApiError::Unavailable("part of the file was lost while it was stored; send it again".into()));
    }
    let linked = sqlx::query("UPDATE document_contents SET record_id = id WHERE id = $1 AND record_id IS NULL")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    if linked.rows_affected() == 0 {
        return Err(ApiError::Unavailable("the upload was swept before it was accepted; send it again".into()));
    }
    crate::access_log::append(&mut tx, &access(claims, Some(subject), Some(id), "document.create", decision)).await?;
    // Whether a failed commit took effect is not known: a 500, never the 503 that means
    // nothing was kept.
    tx.commit().await.map_err(|e| ApiError::internal(format!("committing a document: {e}")))?;
    Ok(())
}

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

#[get("/internal/v1/documents/<id>/content")]
async fn content(
    call: InternalCall,
    id: Uuid,
    pool: &State<PgPool>,
    vault: &State<Vault>,
) -> Result<Content, ApiError> {
    let claims = &call.0;
    let action = "document.read";
    let (subject, category, decision) = authorized(pool, vault, claims, id, action).await?;
    if category != Category::Document {
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
    let pieces = pieces(pool.inner().clone(), key, (subject, id), meta, claims.request_id.clone());
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
            let row = sqlx::query("SELECT nonce, ciphertext FROM document_chunks WHERE content_id = $1 AND seq = $2")
                .bind(id)
                .bind(seq as i32)
                .fetch_optional(&pool)
                .await;
            let row = match row {
                Ok(Some(row)) => row,
                Ok(None) => {
                    let there: Result<Option<i32>, _> =
                        sqlx::query_scalar("SELECT 1 FROM document_contents WHERE id = $1")
                            .bind(id)
                            .fetch_optional(&pool)
                            .await;
                    if let Ok(None) = there {
                        tracing::warn!(request_id = %request_id, "a document was deleted while it was downloaded");
                        return Some((Err(std::io::Error::other("deleted")), (seq, digest, true)));
                    }
                    return failed("is missing a piece");
                }
                Err(e) => {
                    tracing::warn!(request_id = %request_id, error = %e, "a document download failed on the database");
                    return Some((Err(std::io::Error::other("database")), (seq, digest, true)));
                }
            };
            let (Ok(nonce), Ok(ciphertext)) =
                (row.try_get::<Vec<u8>, _>("nonce"), row.try_get::<Vec<u8>, _>("ciphertext"))
            else {
                return failed("has an unreadable piece");
            };
            let field = piece_field(seq);
            let binding = Binding { subject, record: id, category: CATEGORY, field: &field };
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

/// Deletes staged pieces never accepted (their upload ended with the process that took it)
/// once they are older than `age`, every `interval`, until shutdown.
pub async fn sweep_until(pool: PgPool, age: Duration, interval: Duration, shutdown: rocket::Shutdown) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tokio::time::sleep(interval) => {
                match sweep_pending(&pool, age).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(swept = n, "abandoned document uploads deleted"),
                    Err(e) => tracing::warn!(error = %e, "document upload sweep failed; will retry"),
                }
            }
        }
    }
}

/// Deletes staged documents never accepted and older than `age`; returns how many.
pub async fn sweep_pending(pool: &PgPool, age: Duration) -> Result<u64, sqlx::Error> {
    let swept = sqlx::query(
        "DELETE FROM document_contents WHERE record_id IS NULL AND started_at < now() - make_interval(secs => $1)",
    )
    .bind(age.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(swept.rows_affected())
}

pub fn routes() -> Vec<Route> {
    routes![upload, content]
}

#[cfg(test)]
mod tests {
    use super::on_this_host;

    #[test]
    fn production_scanners_are_on_this_host() {
        for here in ["127.0.0.1:3310", "localhost:3310", "[::1]:3310", "127.8.0.1:3310"] {
            assert!(on_this_host(here), "{here}");
        }
        for away in ["10.0.0.5:3310", "clamd.internal:3310", "[2001:db8::1]:3310", "localhost.evil.test:3310"] {
            assert!(!on_this_host(away), "{away}");
        }
    }
}
