//! A document's values and checks: the settings of the scanner it passes, how its pieces are
//! named and sealed, and the words a refusal is logged with. No database here.

use serde::{Deserialize, Serialize};

use common::assertion::STREAM_SEAL_LEN;
use common::clamd::ScanError;
use common::documents::MAX_NAME_BYTES;
use common::ApiError;

use crate::records::Category;

/// Bytes of content per sealed piece.
pub const PIECE: usize = 512 * 1024;
/// The category of a document's record.
pub(super) const CATEGORY: Category = Category::Document;

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

/// The most an upload's body may hold: the name frame, the content and the seal, and one byte
/// more, so a body past the limit is seen to be.
pub(super) fn body_limit(max_bytes: u64) -> u64 {
    2 + MAX_NAME_BYTES as u64 + max_bytes + STREAM_SEAL_LEN as u64 + 1
}

/// The field a piece is sealed under: its number binds its place.
pub(super) fn piece_field(seq: u32) -> String {
    format!("chunk:{seq}")
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn scan_error(e: ScanError, max_bytes: u64) -> ApiError {
    match e {
        ScanError::TooLarge => ApiError::TooLarge(format!("the file is larger than {max_bytes} bytes")),
        other => ApiError::Unavailable(format!("virus scanner: {other}")),
    }
}

/// Why an upload was refused, for the access log: fixed words, never the client's.
pub(super) fn refusal(e: &ApiError) -> &'static str {
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

pub(super) fn cut_short() -> ApiError {
    ApiError::BadRequest("the upload ended before it was complete".into())
}

pub(super) fn too_large(max_bytes: u64) -> ApiError {
    ApiError::TooLarge(format!("the file is larger than the limit of {max_bytes} bytes"))
}

/// What an accepted upload's content was.
pub(super) struct Received {
    pub content_type: &'static str,
    pub sha256: String,
    pub size_bytes: u64,
    pub pieces: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn production_scanners_are_on_this_host() {
        for here in ["127.0.0.1:3310", "localhost:3310", "[::1]:3310", "127.8.0.1:3310"] {
            assert!(on_this_host(here), "{here}");
        }
        for away in ["10.0.0.5:3310", "clamd.internal:3310", "[2001:db8::1]:3310", "localhost.evil.test:3310"] {
            assert!(!on_this_host(away), "{away}");
        }
    }

    #[test]
    fn pieces_are_named_by_their_place_and_refusals_in_fixed_words() {
        assert_eq!(piece_field(0), "chunk:0");
        assert_eq!(piece_field(41), "chunk:41");
        assert_eq!(hex(&[0x00, 0xab, 0x10]), "00ab10");
        assert_eq!(refusal(&cut_short()), "refused: cut short or too slow");
        assert_eq!(refusal(&too_large(1)), "refused: larger than the limit");
        assert_eq!(
            refusal(&ApiError::Unavailable("whatever the scanner said".into())),
            "refused: the virus scanner or the database was unavailable"
        );
        assert!(matches!(scan_error(ScanError::TooLarge, 5), ApiError::TooLarge(m) if m.contains('5')));
        assert_eq!(body_limit(10), 2 + MAX_NAME_BYTES as u64 + 10 + STREAM_SEAL_LEN as u64 + 1);
    }
}
