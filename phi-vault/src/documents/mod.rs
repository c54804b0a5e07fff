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

mod download;
mod queries;
mod routes;
mod rules;
mod staging;
mod upload;

pub use download::Content;
pub use routes::routes;
pub use rules::{on_this_host, ScannerSettings, PIECE};
pub use staging::{sweep_pending, sweep_until};
pub use upload::Documents;
