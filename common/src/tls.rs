//! TLS: every listener speaks TLS 1.3 only ([`rocket_tls`]), internal calls present the calling
//! service's certificate and trust only the internal CA ([`ClientTls`]), and an internal route
//! accepts a call only when the client certificate names the service the assertion names
//! ([`caller_certificate_matches`]). `[tls]` in the configuration ([`TlsConfig`]) turns it on;
//! production requires it, and mutual TLS of phi-vault and consent.

use rocket::config::{CipherSuite, MutualTls};
use rocket::Request;

use crate::config::TlsConfig;
use crate::ServiceName;

/// Rocket's TLS settings for `config`: TLS 1.3 cipher suites only, so a TLS 1.2 client finds
/// nothing in common and the handshake fails; client certificates checked against the internal
/// CA, and required during the handshake when `mutual` is set.
pub fn rocket_tls(config: &TlsConfig) -> rocket::config::TlsConfig {
    rocket::config::TlsConfig::from_paths(&config.cert_file, &config.key_file)
        .with_ciphers(CipherSuite::TLS_V13_SET)
        .with_preferred_server_cipher_order(true)
        .with_mutual(MutualTls::from_path(&config.ca_file).mandatory(config.mutual))
}

/// What an internal client presents and trusts.
#[derive(Clone)]
pub struct ClientTls {
    ca: reqwest::Certificate,
    identity: reqwest::Identity,
}

impl ClientTls {
    /// Reads the CA, the certificate and its key; the error names the file.
    pub fn load(config: &TlsConfig) -> Result<Self, String> {
        let read = |path: &std::path::Path| std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()));
        let ca = reqwest::Certificate::from_pem(&read(&config.ca_file)?)
            .map_err(|e| format!("{}: {e}", config.ca_file.display()))?;
        let mut pem = read(&config.cert_file)?;
        pem.push(b'\n');
        pem.extend(read(&config.key_file)?);
        let identity = reqwest::Identity::from_pem(&pem)
            .map_err(|e| format!("{} with {}: {e}", config.cert_file.display(), config.key_file.display()))?;
        Ok(Self { ca, identity })
    }

    /// `builder` speaking TLS 1.3 only, trusting the internal CA alone, presenting this
    /// service's certificate.
    pub fn apply(&self, builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        builder
            .tls_certs_only([self.ca.clone()])
            .identity(self.identity.clone())
            .tls_version_min(reqwest::tls::Version::TLS_1_3)
            .https_only(true)
    }
}

/// Whether the internal call in `request` came with a client certificate naming `caller`:
/// `None` when the listener has no TLS (dev), else whether the certificate's subject common
/// name is the caller's service name. Its chain was checked against the internal CA in the
/// handshake.
pub async fn caller_certificate_matches(request: &Request<'_>, caller: ServiceName) -> Option<Result<(), String>> {
    request.rocket().config().tls.as_ref()?;
    Some(match request.guard::<rocket::mtls::Certificate<'_>>().await {
        rocket::outcome::Outcome::Success(certificate) => match certificate.subject().common_name() {
            Some(name) if name == caller.as_str() => Ok(()),
            other => Err(format!("the client certificate names {other:?}, the assertion {caller}")),
        },
        _ => Err("no client certificate from the internal CA".into()),
    })
}
