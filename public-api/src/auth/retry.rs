//! The refresh retry leeway. A client whose refresh answer was lost (a dropped connection, a
//! second tab refreshing at the same moment) presents the token it already exchanged. Within
//! `service.auth.refresh_retry_leeway_secs`, and only from the client that made the exchange
//! (the same address and user agent), it gets the token its first try was given, instead of
//! having its session revoked as a thief's would be. Later, or from anywhere else, it is reuse.
//!
//! One retry per exchange: the retry clears the sealed successor, so a second one is reuse; and
//! each new exchange clears the successors sealed for the session's earlier tokens, so an old
//! token and a copy of the table never lead to the live token.
//!
//! The successor is kept sealed (AES-256-GCM) under a key derived from the presented token
//! (HKDF-SHA256), which the database never holds (it stores only the token's SHA-256, from
//! which the key cannot be derived): the table alone yields no live token, and only someone
//! presenting the exchanged token can open it. The session id is bound as associated data.

use std::net::IpAddr;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::hkdf::{Salt, HKDF_SHA256};
use ring::rand::{SecureRandom, SystemRandom};
use uuid::Uuid;

const SALT: &[u8] = b"secondwind refresh successor v1";

fn key(presented: &str) -> LessSafeKey {
    let prk = Salt::new(HKDF_SHA256, SALT).extract(presented.as_bytes());
    // `expand` fails only for an output longer than 255 hashes; 32 bytes is never that.
    let okm = prk.expand(&[b"aes-256-gcm"], &AES_256_GCM).expect("32 bytes from HKDF-SHA256");
    LessSafeKey::new(UnboundKey::from(okm))
}

/// `successor` sealed for whoever presents `presented`: the nonce, then the ciphertext and tag.
pub fn seal(successor: &str, presented: &str, session_id: Uuid) -> Result<Vec<u8>, ring::error::Unspecified> {
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new().fill(&mut nonce)?;
    let mut sealed = successor.as_bytes().to_vec();
    key(presented).seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(session_id.as_bytes()),
        &mut sealed,
    )?;
    Ok([nonce.as_slice(), &sealed].concat())
}

/// The successor sealed in `sealed`, if `presented` is the token it was sealed for, in this
/// session.
pub fn open(sealed: &[u8], presented: &str, session_id: Uuid) -> Option<String> {
    let (nonce, body) = sealed.split_at_checked(NONCE_LEN)?;
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut body = body.to_vec();
    let plain = key(presented).open_in_place(nonce, Aad::from(session_id.as_bytes()), &mut body).ok()?;
    String::from_utf8(plain.to_vec()).ok()
}

/// Who made an exchange, as stored: an HMAC-SHA256 of the client's address and user agent,
/// keyed with the presented token, so the stored value cannot be turned back into an address
/// by trying them all.
pub fn client_hash(presented: &str, ip: Option<IpAddr>, user_agent: Option<&str>) -> Vec<u8> {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, presented.as_bytes());
    let text = format!("{}\n{}", ip.map(|ip| ip.to_string()).unwrap_or_default(), user_agent.unwrap_or_default());
    ring::hmac::sign(&key, text.as_bytes()).as_ref().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_presented_token_opens_its_successor_in_its_session() {
        let session = Uuid::new_v4();
        let sealed = seal("swr_next", "swr_old", session).expect("seal");
        assert_eq!(open(&sealed, "swr_old", session).as_deref(), Some("swr_next"));
        assert_eq!(open(&sealed, "swr_other", session), None, "another token");
        assert_eq!(open(&sealed, "swr_old", Uuid::new_v4()), None, "another session");
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(open(&tampered, "swr_old", session), None, "a changed byte");
        assert_eq!(open(&sealed[..5], "swr_old", session), None, "too short");
        assert!(!sealed.windows(8).any(|w| w == b"swr_next"), "the successor is not in the clear");
        assert_ne!(seal("swr_next", "swr_old", session).expect("seal"), sealed, "a fresh nonce each time");
    }

    #[test]
    fn a_client_is_its_address_and_user_agent() {
        let ip: IpAddr = "203.0.113.9".parse().expect("ip");
        let other: IpAddr = "203.0.113.10".parse().expect("ip");
        let t = "swr_token";
        assert_eq!(client_hash(t, Some(ip), Some("ua")), client_hash(t, Some(ip), Some("ua")));
        assert_ne!(client_hash(t, Some(ip), Some("ua")), client_hash(t, Some(other), Some("ua")));
        assert_ne!(client_hash(t, Some(ip), Some("ua")), client_hash(t, Some(ip), Some("ub")));
        assert_ne!(client_hash(t, Some(ip), None), client_hash(t, None, Some("203.0.113.9")));
        assert_ne!(client_hash(t, Some(ip), Some("ua")), client_hash("swr_other", Some(ip), Some("ua")), "keyed");
    }
}
