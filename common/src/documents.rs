//! Documents a beneficiary uploads: which types are accepted, decided by the bytes themselves
//! (their magic numbers), never by the file name or the declared content type.

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
}
