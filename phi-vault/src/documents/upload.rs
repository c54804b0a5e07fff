//! An upload, streamed: the name frame, the content in pieces (each hashed, scanned and
//! staged as it arrives), the seal; then, when everything holds, the accepting transaction.

use std::time::Duration;

use rocket::data::{Data, ToByteUnit};
use sqlx::PgPool;
use tokio::io::AsyncReadExt;
use uuid::Uuid;

use common::assertion::{Claims, Verifier, STREAM_SEAL_LEN};
use common::clamd::{ScanSession, Scanner, Verdict};
use common::documents::{clean_name, sniff, DocumentMeta, StoredDocument, ACCEPTED, MAX_NAME_BYTES};
use common::ApiError;

use super::queries;
use super::rules::{
    body_limit, cut_short, hex, piece_field, refusal, scan_error, too_large, Received, CATEGORY, PIECE,
};
use super::staging::Staged;
use crate::access_log::{self, access, log_alone};
use crate::keys::crypto::{self, Binding, DataKey};
use crate::policy::Decision;
use crate::records::{crypto_error, decide_new, insert_record, subject_live, writable_key, Vault, FIELD};
use crate::retention::RetentionPolicy;

/// The access-log action of an upload.
const CREATE: &str = "document.create";

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

/// What an upload works with: the vault's state it is managed with.
pub(super) struct Services<'r> {
    pub pool: &'r PgPool,
    pub vault: &'r Vault,
    pub documents: &'r Documents,
    pub verifier: &'r Verifier,
    pub retention: &'r RetentionPolicy,
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

impl<'r> Incoming<'r> {
    fn new(stream: rocket::data::DataStream<'r>, max_bytes: u64) -> Self {
        Self {
            stream,
            buffer: Vec::with_capacity(PIECE + STREAM_SEAL_LEN),
            ended: false,
            whole: ring::digest::Context::new(&ring::digest::SHA256),
            whole_len: 0,
            content_len: 0,
            max_bytes,
        }
    }
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

/// Stores the document `id` of `subject` streamed in `data`, or refuses it with nothing kept.
pub(super) async fn store(
    claims: &Claims,
    (subject, id): (Uuid, Uuid),
    data: Data<'_>,
    services: &Services<'_>,
) -> Result<StoredDocument, ApiError> {
    let Services { pool, vault, documents, verifier, retention } = *services;
    let action = CREATE;
    let Some(scanner) = &documents.scanner else {
        return Err(ApiError::Unavailable("no virus scanner is configured; documents cannot be accepted".into()));
    };
    let Ok(_slot) = documents.slots.clone().try_acquire_owned() else {
        return Err(ApiError::Unavailable("too many documents are being uploaded; try again shortly".into()));
    };
    // Phase 1, no transaction: decide, and the key (the subject's first is stored now).
    let decision = decide_new(pool, vault, retention, claims, (subject, CATEGORY.as_str()), action).await?;
    let Some(key) = writable_key(pool, vault, subject, &claims.request_id).await? else {
        log_alone(pool, &access(claims, Some(subject), None, action, &Decision::deny("subject erased"))).await?;
        return Err(ApiError::NotFound);
    };
    let limit = body_limit(documents.max_bytes).bytes();
    let mut incoming = Incoming::new(data.open(limit), documents.max_bytes);
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
        let upload = Upload { pool, key: &key, subject, id, max_bytes: documents.max_bytes };
        match receive(&upload, first, content_type, &mut incoming, session).await {
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
    staged.keep();
    Ok(StoredDocument {
        document_id: id,
        content_type: meta.content_type,
        size_bytes: meta.size_bytes,
        sha256: meta.sha256,
    })
}

/// Where an upload's pieces go: sealed under `key`, bound to `subject` and document `id`, and
/// staged through `pool`; the scanner refuses more than `max_bytes`.
struct Upload<'a> {
    pool: &'a PgPool,
    key: &'a DataKey,
    subject: Uuid,
    id: Uuid,
    max_bytes: u64,
}

/// Reads, scans and stages every piece after the first; returns what was received and the
/// scanner's verdict.
async fn receive(
    upload: &Upload<'_>,
    first: Vec<u8>,
    content_type: &'static str,
    incoming: &mut Incoming<'_>,
    mut session: ScanSession,
) -> Result<(Received, Verdict), ApiError> {
    let Upload { pool, key, subject, id, max_bytes } = *upload;
    let mut content = ring::digest::Context::new(&ring::digest::SHA256);
    let (mut pieces, mut size) = (0u32, 0u64);
    let mut next = Some(first);
    while let Some(piece) = next {
        content.update(&piece);
        size += piece.len() as u64;
        let field = piece_field(pieces);
        let binding = Binding { subject, record: id, category: CATEGORY.as_str(), field: &field };
        let (nonce, ciphertext) = crypto::seal(key, binding, &piece).map_err(|e| crypto_error(e, ""))?;
        let stored = async {
            // Staged pieces need not be durable on their own: the accepting commit is
            // synchronous, and flushing the log up to it makes every piece before it durable.
            // A piece lost before that (a database crash mid-upload) is caught by `accept`,
            // which counts the pieces.
            let mut tx = pool.begin().await?;
            queries::asynchronous_commit(&mut tx).await?;
            queries::insert_piece(&mut tx, id, pieces as i32, (nonce, ciphertext)).await?;
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
    retention: &RetentionPolicy,
) -> Result<(), ApiError> {
    let plaintext = zeroize::Zeroizing::new(
        serde_json::to_vec(meta).map_err(|_| ApiError::internal("document metadata is not serialisable"))?,
    );
    let binding = Binding { subject, record: id, category: CATEGORY.as_str(), field: FIELD };
    let (nonce, ciphertext) =
        crypto::seal(key, binding, &plaintext).map_err(|e| crypto_error(e, &claims.request_id))?;
    let expires_at = retention.expiry(CATEGORY.as_str(), None, time::OffsetDateTime::now_utc());
    let mut tx = pool.begin().await?;
    if !subject_live(&mut tx, subject).await? {
        let erased = Decision::deny("subject erased");
        access_log::append(&mut tx, &access(claims, Some(subject), Some(id), CREATE, &erased)).await?;
        tx.commit().await?;
        return Err(ApiError::NotFound);
    }
    if !insert_record(&mut tx, (id, subject, CATEGORY), (nonce, ciphertext), &claims.sub, expires_at).await? {
        return Err(ApiError::Conflict("a record with this id already exists".into()));
    }
    // Every piece is there: a staged piece commits asynchronously, so a database crash or
    // failover during the upload can lose one that was answered as stored.
    let count = queries::piece_count(&mut tx, id).await?;
    if count.count != i64::from(meta.chunks) || count.last != Some(meta.chunks as i32 - 1) {
        return Err(ApiError::Unavailable("part of the file was lost while it was stored; send it again".into()));
    }
    if !queries::link_content(&mut tx, id).await? {
        return Err(ApiError::Unavailable("the upload was swept before it was accepted; send it again".into()));
    }
    access_log::append(&mut tx, &access(claims, Some(subject), Some(id), CREATE, decision)).await?;
    // Whether a failed commit took effect is not known: a 500, never the 503 that means
    // nothing was kept.
    tx.commit().await.map_err(|e| ApiError::internal(format!("committing a document: {e}")))?;
    Ok(())
}
