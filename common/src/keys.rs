//! Ed25519 keys for internal-call assertions: the private key as PKCS#8 PEM, the public key as
//! SubjectPublicKeyInfo PEM (both what `openssl genpkey -algorithm ed25519` writes), so keys can
//! be made and inspected with standard tools.

use std::io::Write;
use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ring::signature::{Ed25519KeyPair, KeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{PrivatePkcs8KeyDer, SubjectPublicKeyInfoDer};

/// DER prefix of an Ed25519 SubjectPublicKeyInfo; the 32 key bytes follow.
const SPKI_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("invalid key: {0}")]
    Invalid(String),
}

fn file_error(path: &Path, message: impl std::fmt::Display) -> KeyError {
    KeyError::File { path: path.display().to_string(), message: message.to_string() }
}

pub fn to_pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The DER of the first PKCS#8 private key (`PRIVATE KEY`) in a PEM text. The parser's own
/// error is not passed on: for a malformed file it can quote the file's text, which is the key.
pub fn pkcs8_from_pem(pem: &str) -> Result<Vec<u8>, KeyError> {
    let key = PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes()).map_err(|_| {
        KeyError::Invalid(
            "no PKCS#8 private key: expected a -----BEGIN PRIVATE KEY----- block on lines of its own".into(),
        )
    })?;
    Ok(key.secret_pkcs8_der().to_vec())
}

/// The DER of the first SubjectPublicKeyInfo (`PUBLIC KEY`) in a PEM text.
pub fn spki_from_pem(pem: &str) -> Result<Vec<u8>, KeyError> {
    let key = SubjectPublicKeyInfoDer::from_pem_slice(pem.as_bytes()).map_err(|_| {
        KeyError::Invalid("no public key: expected a -----BEGIN PUBLIC KEY----- block on lines of its own".into())
    })?;
    Ok(key.to_vec())
}

/// A new key pair: (PKCS#8 DER private key, 32-byte public key).
pub fn generate() -> Result<(Vec<u8>, [u8; 32]), KeyError> {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|e| KeyError::Invalid(e.to_string()))?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|e| KeyError::Invalid(e.to_string()))?;
    let mut public = [0u8; 32];
    public.copy_from_slice(pair.public_key().as_ref());
    Ok((pkcs8.as_ref().to_vec(), public))
}

pub fn private_pem(pkcs8_der: &[u8]) -> String {
    to_pem("PRIVATE KEY", pkcs8_der)
}

pub fn public_pem(public: &[u8; 32]) -> String {
    let mut der = SPKI_PREFIX.to_vec();
    der.extend_from_slice(public);
    to_pem("PUBLIC KEY", &der)
}

/// Reads a PKCS#8 private key, refusing files that others can read.
pub fn read_private(path: &Path) -> Result<Vec<u8>, KeyError> {
    let pem = read_secret_text(path)?;
    let der = pkcs8_from_pem(&pem).map_err(|e| file_error(path, e))?;
    Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der)
        .map_err(|e| file_error(path, format!("not an Ed25519 key: {e}")))?;
    Ok(der)
}

/// Reads a secret file (any format), refusing one that others can read.
pub fn read_secret_text(path: &Path) -> Result<String, KeyError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).map_err(|e| file_error(path, e))?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(file_error(path, format!("mode {:o} lets others read the key; chmod 600 it", mode & 0o777)));
        }
    }
    std::fs::read_to_string(path).map_err(|e| file_error(path, e))
}

/// Reads a public key (SPKI PEM) and returns its 32 bytes.
pub fn read_public(path: &Path) -> Result<[u8; 32], KeyError> {
    let pem = std::fs::read_to_string(path).map_err(|e| file_error(path, e))?;
    let der = spki_from_pem(&pem).map_err(|e| file_error(path, e))?;
    parse_public_der(&der).map_err(|e| file_error(path, e))
}

pub fn parse_public_der(der: &[u8]) -> Result<[u8; 32], KeyError> {
    if der.len() != 44 || der[..12] != SPKI_PREFIX {
        return Err(KeyError::Invalid("not an Ed25519 public key".into()));
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(&der[12..]);
    Ok(out)
}

/// Writes `contents` to a new file readable by its owner only (mode 0600), refusing to
/// overwrite an existing key.
pub fn write_secret_file(path: &Path, contents: &str) -> Result<(), KeyError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| file_error(path, e))?;
    file.write_all(contents.as_bytes()).map_err(|e| file_error(path, e))
}

/// Generates a key pair into `dir/<name>.key` (0600) and `dir/<name>.pub`.
pub fn generate_files(dir: &Path, name: &str) -> Result<(), KeyError> {
    std::fs::create_dir_all(dir).map_err(|e| file_error(dir, e))?;
    let (private, public) = generate()?;
    write_secret_file(&dir.join(format!("{name}.key")), &private_pem(&private))?;
    std::fs::write(dir.join(format!("{name}.pub")), public_pem(&public)).map_err(|e| file_error(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trip() {
        let (private, public) = generate().expect("generate");
        let pem = private_pem(&private);
        assert_eq!(pkcs8_from_pem(&pem).expect("parse"), private);
        let der = spki_from_pem(&public_pem(&public)).expect("parse");
        assert_eq!(parse_public_der(&der).expect("spki"), public);
    }

    #[test]
    fn pem_of_the_wrong_kind_or_cut_short_is_refused() {
        let (private, public) = generate().expect("generate");
        assert!(pkcs8_from_pem(&public_pem(&public)).is_err(), "a public key is no private key");
        assert!(spki_from_pem(&private_pem(&private)).is_err(), "a private key is no public key");
        let cut = private_pem(&private).replace("-----END PRIVATE KEY-----", "");
        assert!(pkcs8_from_pem(&cut).is_err(), "no END line");
        let explained = format!("Made by openssl genpkey.\n{}", private_pem(&private));
        assert_eq!(pkcs8_from_pem(&explained).expect("text before the key"), private);
    }

    #[test]
    fn a_refused_key_is_never_quoted_in_the_error() {
        let (private, _) = generate().expect("generate");
        let pem = private_pem(&private);
        // On one line, as a secret store may flatten it: the parser would quote the line.
        let flattened = pem.split_whitespace().collect::<Vec<_>>().join(" ");
        let error = pkcs8_from_pem(&flattened).expect_err("not a PEM block").to_string();
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        for chunk in body.as_bytes().chunks(8) {
            assert!(!error.contains(std::str::from_utf8(chunk).expect("ascii")), "{error}");
        }
        let bytes: Vec<String> = flattened.bytes().take(40).map(|b| b.to_string()).collect();
        assert!(!error.contains(&bytes[30..].join(", ")), "{error}");
    }

    #[test]
    fn refuses_world_readable_private_key() {
        let dir = std::env::temp_dir().join(format!("sw-keys-{}", uuid::Uuid::new_v4()));
        generate_files(&dir, "svc").expect("generate");
        assert!(read_private(&dir.join("svc.key")).is_ok());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.join("svc.key"), std::fs::Permissions::from_mode(0o644)).expect("chmod");
            let err = read_private(&dir.join("svc.key")).expect_err("must refuse");
            assert!(err.to_string().contains("chmod 600"), "{err}");
        }
        assert!(write_secret_file(&dir.join("svc.key"), "x").is_err(), "must not overwrite a key");
        let _ = std::fs::remove_dir_all(dir);
    }
}
