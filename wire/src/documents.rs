//! Documents a beneficiary uploads: which types are accepted, decided by the bytes themselves
//! (their magic numbers), never by the file name or the declared content type.

use serde::{Deserialize, Serialize};

/// The content types accepted, each decided by [`sniff`].
pub const ACCEPTED: [&str; 4] = ["application/pdf", "image/jpeg", "image/png", "image/heic"];

/// The HEIF brands of HEIC images (and image sequences) in the `ftyp` box.
const HEIC_BRANDS: [&[u8; 4]; 8] = [b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"];

/// The content type the first bytes of a file show, if it is one of [`ACCEPTED`].
pub fn sniff(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(b"%PDF-") {
        Some("application/pdf")
    } else if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if head.starts_with(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]) {
        Some("image/png")
    } else if head.len() >= 12 && &head[4..8] == b"ftyp" && HEIC_BRANDS.iter().any(|b| &head[8..12] == *b) {
        Some("image/heic")
    } else {
        None
    }
}

/// The longest file name kept, in bytes of UTF-8.
pub const MAX_NAME_BYTES: usize = 200;

/// A file name as it is kept: its last path component, without control, invisible or
/// direction-changing characters, trimmed, at most [`MAX_NAME_BYTES`]; `document` if nothing
/// is left. The name is only a label (never a path, never a type).
pub fn clean_name(raw: &str) -> String {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let kept: String = last.chars().filter(|c| !c.is_control() && !crate::text::is_invisible(*c)).collect();
    let mut name = kept.trim().to_owned();
    if name.len() > MAX_NAME_BYTES {
        let mut end = MAX_NAME_BYTES;
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        name.truncate(end);
        name = name.trim_end().to_owned();
    }
    if name.is_empty() || name == "." || name == ".." {
        "document".to_owned()
    } else {
        name
    }
}

/// What phi-vault keeps of a document beside its content, sealed like any record's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentMeta {
    /// The file name, cleaned ([`clean_name`]).
    pub name: String,
    /// Decided by [`sniff`], one of [`ACCEPTED`].
    pub content_type: String,
    pub size_bytes: u64,
    /// SHA-256 of the content, lowercase hex.
    pub sha256: String,
    /// How many sealed pieces hold the content.
    pub chunks: u32,
}

/// phi-vault's answer to a stored document.
/// The media types a document can have: [`ACCEPTED`], the schema of `DocumentView::content_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum DocumentType {
    #[serde(rename = "application/pdf")]
    Pdf,
    #[serde(rename = "image/jpeg")]
    Jpeg,
    #[serde(rename = "image/png")]
    Png,
    #[serde(rename = "image/heic")]
    Heic,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredDocument {
    pub document_id: uuid::Uuid,
    pub content_type: String,
    pub size_bytes: u64,
    pub sha256: String,
}

/// The response header in which phi-vault sends a document's metadata with its content
/// (base64url of the JSON of [`DocumentMeta`]).
pub const META_HEADER: &str = "x-secondwind-document";

/// A document as its owner and the reviewing caseworker see it listed.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DocumentView {
    pub id: uuid::Uuid,
    pub application_id: uuid::Uuid,
    /// The file name as uploaded (cleaned of path components and invisible characters).
    pub name: String,
    /// Decided from the file's bytes: `application/pdf`, `image/jpeg`, `image/png` or `image/heic`.
    #[schema(value_type = DocumentType)]
    pub content_type: String,
    pub size_bytes: u64,
    /// SHA-256 of the content, lowercase hex.
    pub sha256: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub uploaded_at: time::OffsetDateTime,
}

/// An application's documents.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DocumentList {
    pub items: Vec<DocumentView>,
    /// The most documents one application may hold.
    pub limit: u32,
}

#[cfg(test)]
mod tests {
    use super::sniff;

    #[test]
    fn types_are_decided_by_their_bytes() {
        assert_eq!(sniff(b"%PDF-1.7\n%\xe2\xe3"), Some("application/pdf"));
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, b'J', b'F']), Some("image/jpeg"));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), Some("image/png"));
        assert_eq!(sniff(b"\0\0\0\x18ftypheic\0\0\0\0"), Some("image/heic"));
        assert_eq!(sniff(b"\0\0\0\x18ftypmif1\0\0\0\0"), Some("image/heic"));
        // Other things, however they are named or declared.
        assert_eq!(sniff(b"\0\0\0\x18ftypisom\0\0\0\0"), None, "an MP4 video");
        assert_eq!(sniff(b"MZ\x90\0"), None, "a Windows executable");
        assert_eq!(sniff(b"<html><script>"), None);
        assert_eq!(sniff(b" %PDF-1.7"), None, "the magic must come first");
        assert_eq!(sniff(b"\0\0\0\x18ftyp"), None, "too short to name a brand");
        assert_eq!(sniff(b""), None);
    }

    #[test]
    fn names_are_labels_never_paths() {
        use super::clean_name;
        assert_eq!(clean_name("lease.pdf"), "lease.pdf");
        assert_eq!(clean_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_name("C:\\Users\\me\\pay stub.pdf"), "pay stub.pdf");
        assert_eq!(clean_name("evil\u{202e}fdp.exe"), "evilfdp.exe");
        assert_eq!(clean_name("line\r\nbreak.png"), "linebreak.png");
        assert_eq!(clean_name("  "), "document");
        assert_eq!(clean_name("dir/"), "document");
        assert_eq!(clean_name(".."), "document");
        let long = "é".repeat(150);
        let cleaned = clean_name(&long);
        assert!(cleaned.len() <= super::MAX_NAME_BYTES && cleaned.chars().all(|c| c == 'é'));
    }
}
