//! The limits of uploads and the pure parts of a transfer: the multipart boundary, the download's
//! `Content-Disposition`, how long a transfer may take.

use std::time::Duration;

use rocket::http::ContentType;
use serde::{Deserialize, Serialize};

use common::ApiError;

/// `[service.documents]`: the limits of uploads.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DocumentSettings {
    /// The largest file accepted, in bytes (phi-vault has its own limit; keep them equal).
    pub max_bytes: u64,
    /// The most documents one application holds.
    pub per_application: u32,
    /// The longest an upload or a download may take.
    pub transfer_timeout_secs: u64,
    /// How long a row may stay `uploading` before its owner's next listing finishes it.
    pub stale_after_secs: u64,
    /// Uploads under way at once in this instance (more: 503).
    pub max_concurrent: usize,
    /// The most documents one person holds across their applications.
    pub per_beneficiary: u32,
    /// Uploads under way at once for one person (more: 429).
    pub per_user_concurrent: u32,
}

impl Default for DocumentSettings {
    fn default() -> Self {
        Self {
            max_bytes: 10 * 1024 * 1024,
            per_application: 20,
            transfer_timeout_secs: 300,
            stale_after_secs: 900,
            max_concurrent: 16,
            per_beneficiary: 100,
            per_user_concurrent: 2,
        }
    }
}

/// How the form part is framed around the file: what the whole body may exceed the file by.
pub(super) const MULTIPART_OVERHEAD: u64 = 64 * 1024;

/// How long the client may send nothing before the upload is given up.
pub(super) const IDLE: Duration = Duration::from_secs(60);

/// The longest an upload or a download may take.
pub(super) fn timeout(settings: &DocumentSettings) -> Duration {
    Duration::from_secs(settings.transfer_timeout_secs.max(1))
}

/// The boundary of a `multipart/form-data` body, or 415.
pub(super) fn boundary(content_type: Option<&ContentType>) -> Result<String, ApiError> {
    content_type
        .filter(|ct| ct.is_form_data())
        .and_then(|ct| ct.params().find(|(key, _)| *key == "boundary").map(|(_, v)| v.to_owned()))
        .ok_or_else(|| {
            ApiError::UnsupportedMediaType("send multipart/form-data with one file part named `file`".into())
        })
}

/// `attachment`, with an ASCII fallback name and the UTF-8 name (RFC 6266, RFC 8187).
pub(super) fn disposition(name: &str) -> String {
    let ascii: String =
        name.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' }).collect();
    let mut encoded = String::with_capacity(name.len() * 3);
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_disposition_names_the_file_safely() {
        assert_eq!(disposition("lease.pdf"), "attachment; filename=\"lease.pdf\"; filename*=UTF-8''lease.pdf");
        let tricky = disposition("a\"b;c\u{e9}.pdf");
        assert!(tricky.starts_with("attachment; filename=\"a_b;c_.pdf\"; "), "{tricky}");
        assert!(tricky.ends_with("filename*=UTF-8''a%22b%3Bc%C3%A9.pdf"), "{tricky}");
    }

    #[test]
    fn only_a_multipart_form_has_a_boundary() {
        let form = ContentType::parse_flexible("multipart/form-data; boundary=abc123").expect("form");
        assert_eq!(boundary(Some(&form)).expect("boundary"), "abc123");
        let no_boundary = ContentType::parse_flexible("multipart/form-data").expect("form");
        for refused in [None, Some(&ContentType::JSON), Some(&no_boundary)] {
            assert!(matches!(boundary(refused), Err(ApiError::UnsupportedMediaType(_))), "{refused:?}");
        }
    }
}
