//! Typed, layered configuration: built-in defaults < TOML file < `SW_` environment variables
//! (nested keys split on `__`, e.g. `SW_DATABASE__URL`). Unknown keys and malformed values stop
//! the service at start with the key named. Each service adds its own section under `[service]`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rocket::figment::providers::{Env, Format, Serialized, Toml};
use rocket::figment::Figment;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{Secret, ServiceName};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// The embedded default and tests: allows plain-HTTP internal URLs and other dev-only settings.
    Dev,
    /// Refuses every dev-only setting.
    Production,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub address: IpAddr,
    /// 0 binds an ephemeral port (tests read the real one back).
    pub port: u16,
    /// Largest JSON body accepted, in bytes.
    pub json_limit_bytes: u64,
    /// The reverse proxies (addresses or networks, e.g. `10.0.0.0/8`) whose `X-Forwarded-For`
    /// names the client. Empty, the socket's peer is the client and the header is never read:
    /// a client-supplied header could dodge per-address limits.
    #[serde(default)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// The service's own runtime role (least privilege: data only, no DDL).
    pub url: Secret<String>,
    /// Not used by the services, which never migrate and never hold owner credentials
    /// (`secondwind-operator db migrate` does, from a file only the admin reads). Production
    /// refuses it; dev ignores it with a warning, so an older dev config still starts.
    #[serde(default)]
    pub migrate_url: Option<Secret<String>>,
    pub max_connections: u32,
    /// How long start-up keeps retrying an unreachable database before giving up.
    pub connect_timeout_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// An `EnvFilter` directive, e.g. `info` or `info,sqlx=warn`.
    pub level: String,
    /// Directory for the daily-rolling JSON log file; none means stdout only.
    #[serde(default)]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// In production `/metrics` answers only these addresses. In dev it answers anyone.
    #[serde(default)]
    pub allowed_ips: Vec<IpAddr>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// Base URL, when this service calls the peer.
    #[serde(default)]
    pub url: Option<String>,
    /// The peer's Ed25519 public key file, when the peer calls this service.
    #[serde(default)]
    pub public_key_file: Option<PathBuf>,
    /// The peer's checkpoint public key (SPKI PEM), when this service stores the peer's signed
    /// trail checkpoints (`crate::checkpoint`).
    #[serde(default)]
    pub checkpoint_public_key_file: Option<PathBuf>,
    /// Further checkpoint public keys of the peer accepted during a key rotation (the one it is
    /// moving to, or the one it moved from).
    #[serde(default)]
    pub checkpoint_accepted_public_key_files: Vec<PathBuf>,
}

/// Signed checkpoints of this service's trails (`crate::checkpoint`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointConfig {
    /// This service's checkpoint key: Ed25519, PKCS#8 PEM, mode 0600. Not the internal-call key.
    pub key_file: PathBuf,
    /// Its public key (SPKI PEM). Optional: when set, start-up checks it matches `key_file`;
    /// `secondwind-operator audit verify --config-dir` reads it.
    #[serde(default)]
    pub public_key_file: Option<PathBuf>,
    /// How often a checkpoint is published for each trail whose head moved (also at shutdown).
    #[serde(default = "default_checkpoint_interval")]
    pub interval_secs: u64,
    /// The peers that store this service's checkpoints in their databases (each needs
    /// `internal.peers.<peer>.url`).
    pub receivers: Vec<ServiceName>,
    /// This service's other checkpoint public keys accepted during a rotation: the one it moves
    /// to (other instances may sign with it first) or the one it moved from (its latest
    /// checkpoint may be signed with it). Remove the old one once every trail has a checkpoint
    /// signed with the new key.
    #[serde(default)]
    pub accepted_public_key_files: Vec<PathBuf>,
}

fn default_checkpoint_interval() -> u64 {
    60
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InternalConfig {
    /// This service's Ed25519 private key (PKCS#8 PEM), used to sign its internal calls.
    pub signing_key_file: PathBuf,
    /// Which caller may call which route: `policies/internal-calls.toml`.
    pub policy_file: PathBuf,
    /// Lifetime of the assertions this service signs (at most 60 s).
    pub assertion_ttl_secs: u64,
    /// Timeout of one internal call.
    pub request_timeout_secs: u64,
    #[serde(default)]
    pub peers: BTreeMap<ServiceName, PeerConfig>,
    /// public-api's user-token public keys. Where set, every call made in a person's role must
    /// carry that person's own valid token (phi-vault requires it).
    #[serde(default)]
    pub user_tokens: Option<crate::user_token::UserTokenConfig>,
}

/// `[tls]`: the service's listener speaks TLS 1.3 only, and its internal calls carry its
/// certificate as their client identity (mutual TLS). Production requires it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// This service's certificate chain (PEM), issued by the internal CA. It is served to
    /// clients and presented on internal calls, so it carries both the server and the client
    /// key usage, the names the service is reached at, and the service's name (`phi-vault`,
    /// ...) as its subject common name: callees check that name against the caller the
    /// assertion names.
    pub cert_file: PathBuf,
    /// Its private key (PEM).
    pub key_file: PathBuf,
    /// The internal CA (PEM): peers' server certificates and callers' client certificates must
    /// chain to it (no public root is trusted on internal calls).
    pub ca_file: PathBuf,
    /// Refuse, during the handshake, any client without a certificate from the internal CA.
    /// Production requires it of phi-vault and consent, which serve only the other services.
    #[serde(default)]
    pub mutual: bool,
}

/// The configuration of one service. `S` is the service's own section, `[service]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config<S> {
    pub profile: Profile,
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub log: LogConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    pub internal: InternalConfig,
    #[serde(default)]
    pub rate_limits: crate::protect::RateLimitConfig,
    /// Required in production; in dev, without it no checkpoints are published (with a warning).
    #[serde(default)]
    pub checkpoint: Option<CheckpointConfig>,
    /// Required in production; without it (dev), plain HTTP.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    #[serde(default)]
    pub service: S,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Parse(String),
    #[error("configuration key `{key}`: {message}")]
    Invalid { key: String, message: String },
}

impl ConfigError {
    fn invalid(key: &str, message: impl Into<String>) -> Self {
        Self::Invalid { key: key.to_owned(), message: message.into() }
    }
}

/// Defaults that need no secret: everything but the database URL.
fn defaults(service: ServiceName) -> serde_json::Value {
    serde_json::json!({
        "profile": "production",
        "server": { "address": "127.0.0.1", "port": service.default_port(), "json_limit_bytes": 64 * 1024 },
        "database": { "max_connections": 10, "connect_timeout_secs": 30 },
        "log": { "level": "info" },
        "metrics": { "allowed_ips": [] },
        "internal": {
            "signing_key_file": format!("keys/{}.key", service.as_str()),
            "policy_file": "policies/internal-calls.toml",
            "assertion_ttl_secs": 30,
            "request_timeout_secs": 10,
        },
    })
}

impl<S: DeserializeOwned + Serialize + Default> Config<S> {
    /// Loads defaults, then `file` if given, then `SW_*` variables from the environment.
    pub fn load(service: ServiceName, file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(defaults(service)));
        if let Some(file) = file {
            if !file.is_file() {
                return Err(ConfigError::Parse(format!("config file {} does not exist", file.display())));
            }
            figment = figment.merge(Toml::file_exact(file));
        }
        figment = figment.merge(Env::prefixed("SW_").split("__"));
        Self::from_figment(figment)
    }

    pub fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let config: Self = figment.extract().map_err(|e| {
            // Figment names the key path and the offending value; keep every error it found.
            let messages: Vec<String> = e.into_iter().map(|e| e.to_string()).collect();
            ConfigError::Parse(messages.join("; "))
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks that hold in every profile, then what production refuses.
    pub fn validate(&self) -> Result<(), ConfigError> {
        trusted_proxies_bounded(&self.server.trusted_proxies)
            .map_err(|m| ConfigError::invalid("server.trusted_proxies", m))?;
        if self.internal.assertion_ttl_secs == 0 || self.internal.assertion_ttl_secs > 60 {
            return Err(ConfigError::invalid("internal.assertion_ttl_secs", "must be between 1 and 60"));
        }
        if self.database.max_connections == 0 {
            return Err(ConfigError::invalid("database.max_connections", "must be at least 1"));
        }
        if self.database.url.expose().is_empty() {
            return Err(ConfigError::invalid("database.url", "is required"));
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return Err(ConfigError::invalid("log.level", "is not a valid filter directive"));
        }
        for (name, peer) in &self.internal.peers {
            if let Some(url) = &peer.url {
                let key = format!("internal.peers.{name}.url");
                let parsed = reqwest::Url::parse(url).map_err(|e| ConfigError::invalid(&key, e.to_string()))?;
                if self.profile == Profile::Production && parsed.scheme() != "https" {
                    return Err(ConfigError::invalid(&key, "production requires https for internal calls"));
                }
            }
        }
        if let Some(checkpoint) = &self.checkpoint {
            if !(1..=86_400).contains(&checkpoint.interval_secs) {
                return Err(ConfigError::invalid("checkpoint.interval_secs", "must be between 1 and 86400"));
            }
            if checkpoint.receivers.is_empty() {
                return Err(ConfigError::invalid(
                    "checkpoint.receivers",
                    "name at least one peer to store checkpoints",
                ));
            }
            for receiver in &checkpoint.receivers {
                if self.internal.peers.get(receiver).and_then(|p| p.url.as_ref()).is_none() {
                    return Err(ConfigError::invalid(
                        "checkpoint.receivers",
                        format!("{receiver} needs internal.peers.{receiver}.url"),
                    ));
                }
            }
        }
        if self.profile == Profile::Production {
            if self.database.migrate_url.is_some() {
                return Err(ConfigError::invalid(
                    "database.migrate_url",
                    "production refuses owner credentials in a service's config: services never migrate \
                     (run `secondwind-operator db migrate` before starting them)",
                ));
            }
            database_tls_verified(self.database.url.expose()).map_err(|m| ConfigError::invalid("database.url", m))?;
            if self.tls.is_none() {
                return Err(ConfigError::invalid(
                    "tls",
                    "production serves TLS 1.3 only and calls peers over mutual TLS: set tls.cert_file, \
                     tls.key_file and tls.ca_file",
                ));
            }
        }
        Ok(())
    }
}

/// A policy text file's contents (a consent form, a notice): a regular file (not a symbolic
/// link, a FIFO or a device), at most `max_bytes`, UTF-8. The error names the file.
pub fn read_text_file(path: &Path, max_bytes: u64) -> Result<String, String> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.file_type().is_file() {
        return Err(format!("{}: not a regular file", path.display()));
    }
    if meta.len() > max_bytes {
        return Err(format!("{}: larger than {max_bytes} bytes", path.display()));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    String::from_utf8(bytes).map_err(|_| format!("{}: not UTF-8", path.display()))
}

/// A version names its policy files: lowercase letters, digits, `.` and `-`, 1 to 64
/// characters, not starting with `.`.
pub fn valid_version(version: &str) -> bool {
    (1..=64).contains(&version.len())
        && version.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && !version.starts_with('.')
}

/// Trusting every address as a proxy would make the left-most `X-Forwarded-For` entry, which
/// the client wrote, its address: a network of all addresses is refused.
pub fn trusted_proxies_bounded(proxies: &[ipnet::IpNet]) -> Result<(), String> {
    match proxies.iter().find(|net| net.prefix_len() == 0) {
        Some(net) => Err(format!("{net} would trust every client as a proxy; name the proxies' own networks")),
        None => Ok(()),
    }
}

/// Production's rule for a database URL: TLS that verifies the server's certificate and name
/// (`sslmode=verify-full`) against a root the configuration names (`sslrootcert`). The URL is
/// parsed as the driver parses it (the last `sslmode` wins), so a decoy parameter or a
/// password containing the text does not pass. The message never quotes the URL.
pub fn database_tls_verified(url: &str) -> Result<(), String> {
    use sqlx::postgres::{PgConnectOptions, PgSslMode};
    const RULE: &str = "production requires TLS to the database that verifies the server \
                        (sslmode=verify-full with sslrootcert naming the root certificate)";
    let options: PgConnectOptions = url.parse().map_err(|_| "is not a valid PostgreSQL URL".to_owned())?;
    if !matches!(options.get_ssl_mode(), PgSslMode::VerifyFull) {
        return Err(RULE.into());
    }
    let parsed = reqwest::Url::parse(url).map_err(|_| "is not a valid PostgreSQL URL".to_owned())?;
    let root = parsed
        .query_pairs()
        .filter(|(key, _)| matches!(&**key, "sslrootcert" | "ssl-root-cert" | "ssl-ca"))
        .last()
        .map(|(_, value)| value.into_owned());
    match root {
        Some(root) if !root.trim().is_empty() => Ok(()),
        _ => Err(RULE.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::{database_tls_verified, trusted_proxies_bounded};

    #[test]
    fn trusting_every_address_as_a_proxy_is_refused() {
        let nets = |list: &[&str]| list.iter().map(|n| n.parse().expect("network")).collect::<Vec<ipnet::IpNet>>();
        assert!(trusted_proxies_bounded(&nets(&["10.0.0.0/8", "2001:db8::/32"])).is_ok());
        assert!(trusted_proxies_bounded(&nets(&["0.0.0.0/0"])).is_err());
        assert!(trusted_proxies_bounded(&nets(&["10.0.0.0/8", "::/0"])).is_err());
    }

    #[test]
    fn production_database_urls_must_verify_the_server_against_a_named_root() {
        let good =
            "postgres://sw_public@db.internal/secondwind_public?sslmode=verify-full&sslrootcert=/etc/sw/db-ca.pem";
        assert_eq!(database_tls_verified(good), Ok(()));
        for refused in [
            "postgres://sw_public@db/x",
            "postgres://sw_public@db/x?sslmode=require&sslrootcert=/ca.pem",
            "postgres://sw_public@db/x?sslmode=verify-ca&sslrootcert=/ca.pem",
            "postgres://sw_public@db/x?sslmode=verify-full",
            "postgres://sw_public@db/x?sslmode=verify-full&sslrootcert=",
            // A decoy: the text appears, the setting does not.
            "postgres://sw_public@db/x?application_name=sslmode=verify-full&sslrootcert=/ca.pem",
            "postgres://sw_public:sslmode%3Dverify-full@db/x?sslrootcert=/ca.pem",
            // The driver takes the last one.
            "postgres://sw_public@db/x?sslmode=verify-full&sslmode=disable&sslrootcert=/ca.pem",
            "not a url sslmode=verify-full",
        ] {
            let err = database_tls_verified(refused).expect_err(refused);
            assert!(!err.contains("sw_public"), "the message quotes the URL: {err}");
        }
    }
}
