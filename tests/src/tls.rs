//! A throwaway internal CA and a certificate for each service (`rcgen`), as `runbooks/tls.md`
//! has an operator issue them: the service's name as the subject common name, the loopback
//! address and `localhost` as its names, for both server and client authentication.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SanType,
};

/// The certificates of one test, in a directory removed on drop.
pub struct TestCerts {
    pub dir: PathBuf,
}

impl Drop for TestCerts {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn issue(name: &str, issuer: &Issuer<'_, KeyPair>, dir: &Path) {
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    params.subject_alt_names.push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, issuer).expect("sign");
    std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).expect("write");
    std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).expect("write");
}

impl TestCerts {
    /// A CA and certificates for `names` (service names, or any other subject to test with),
    /// and a second CA, `other-ca`, with a `public-api` certificate of its own.
    pub fn new(names: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(format!("sw-tls-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("dir");
        for (ca_name, subjects) in [("ca", names), ("other-ca", &["public-api"][..])] {
            let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.distinguished_name.push(DnType::CommonName, format!("SecondWind test {ca_name}"));
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            let key = KeyPair::generate().expect("key");
            let cert = params.self_signed(&key).expect("self-sign");
            std::fs::write(dir.join(format!("{ca_name}.pem")), cert.pem()).expect("write");
            let issuer = Issuer::new(params, key);
            let sub = dir.join(ca_name);
            std::fs::create_dir_all(&sub).expect("dir");
            for name in subjects {
                issue(name, &issuer, &sub);
            }
        }
        Self { dir }
    }

    /// `[tls]` for `service` from the internal CA.
    pub fn config(&self, service: common::ServiceName, mutual: bool) -> common::config::TlsConfig {
        let name = service.as_str();
        common::config::TlsConfig {
            cert_file: self.dir.join("ca").join(format!("{name}.pem")),
            key_file: self.dir.join("ca").join(format!("{name}.key")),
            ca_file: self.dir.join("ca.pem"),
            mutual,
        }
    }

    /// The internal CA's certificate, for a client to trust.
    pub fn ca(&self) -> reqwest::Certificate {
        reqwest::Certificate::from_pem(&std::fs::read(self.dir.join("ca.pem")).expect("ca")).expect("ca pem")
    }

    /// The identity of `name` issued by `ca` (`ca` or `other-ca`).
    pub fn identity(&self, ca: &str, name: &str) -> reqwest::Identity {
        let sub = self.dir.join(ca);
        let mut pem = std::fs::read(sub.join(format!("{name}.pem"))).expect("cert");
        pem.extend(std::fs::read(sub.join(format!("{name}.key"))).expect("key"));
        reqwest::Identity::from_pem(&pem).expect("identity")
    }

    /// A client trusting the internal CA only, presenting `identity` if given.
    pub fn client(&self, identity: Option<reqwest::Identity>) -> reqwest::ClientBuilder {
        let mut builder = reqwest::Client::builder().tls_certs_only([self.ca()]);
        if let Some(identity) = identity {
            builder = builder.identity(identity);
        }
        builder
    }

    /// A client configuration as a service's `[tls]` names it, to build an `InternalClient`.
    pub fn client_tls(&self, config: &common::config::TlsConfig) -> common::tls::ClientTls {
        common::tls::ClientTls::load(config).expect("client tls")
    }
}
