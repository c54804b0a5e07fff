//! The upload's relay: the form's file part read as it arrives and streamed to phi-vault, never
//! kept here whole, not in memory, not on disk.

use bytes::Bytes;
use rocket::data::{Data, ToByteUnit};
use uuid::Uuid;

use common::assertion::CallContext;
use common::client::{ClientError, PhiVaultClient};
use common::documents::{clean_name, StoredDocument};
use common::ApiError;

use super::rules::{timeout, DocumentSettings, IDLE, MULTIPART_OVERHEAD};
use crate::phi_records::stored_error;

/// How an upload that was not stored ended.
pub(super) enum Relay {
    /// Refused before phi-vault could keep anything (its answer, or a body it never saw end).
    Refused(ApiError),
    /// phi-vault may have kept it (its answer was lost, or it failed after accepting).
    Unknown(ApiError),
}

/// Reads the form's file part and relays its bytes to phi-vault as they arrive; returns the
/// cleaned name and what phi-vault stored.
pub(super) async fn relay(
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
