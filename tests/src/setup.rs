//! Service keys and configurations for a test app.

#[allow(unused_imports)]
use super::*;

/// Key material of one test app, kept so tests can forge assertions. The directory is removed
/// when the value is dropped.
pub struct TestKeys {
    pub dir: PathBuf,
}

impl Drop for TestKeys {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl TestKeys {
    pub fn new(test_id: &str) -> Self {
        let dir = leftovers::key_dir(test_id);
        for service in ServiceName::ALL {
            common::keys::generate_files(&dir, service.as_str()).expect("generate keys");
            common::keys::generate_files(&dir, &common::checkpoint::key_name(service)).expect("generate keys");
        }
        common::keys::generate_files(&dir, USER_TOKEN_KID).expect("generate keys");
        phi_vault::crypto::LocalKeyFile::create(&dir.join("kek")).expect("kek");
        Self { dir }
    }

    /// public-api's `[service.auth]` for these keys: dev login on, the test OpenID provider
    /// when one runs.
    pub fn auth_settings(&self) -> public_api::auth::AuthSettings {
        public_api::auth::AuthSettings {
            signing_keys: vec![public_api::auth::SigningKeyEntry {
                kid: USER_TOKEN_KID.into(),
                file: self.dir.join(format!("{USER_TOKEN_KID}.key")),
            }],
            roles_file: repo_root().join("policies/roles.toml"),
            dev_login: true,
            allowed_origins: vec![ORIGIN.into()],
            post_login_url: Some(format!("{ORIGIN}/auth/complete")),
            oidc: oidc::env().map(|env| [("test".to_owned(), oidc::provider_config(&env))].into()).unwrap_or_default(),
            ..Default::default()
        }
    }

    /// `internal.user_tokens` for phi-vault: public-api's user-token public key.
    pub fn user_token_config(&self) -> common::user_token::UserTokenConfig {
        common::user_token::UserTokenConfig {
            issuer: "secondwind".into(),
            keys: vec![common::user_token::UserTokenKey {
                kid: USER_TOKEN_KID.into(),
                public_key_file: self.dir.join(format!("{USER_TOKEN_KID}.pub")),
            }],
        }
    }

    pub fn private_key(&self, service: ServiceName) -> Vec<u8> {
        self.private_key_named(service.as_str())
    }

    pub fn private_key_named(&self, name: &str) -> Vec<u8> {
        common::keys::read_private(&self.dir.join(format!("{name}.key"))).expect("key")
    }
}

/// Configuration as the embedded default would write it, on ephemeral ports. Checkpoints are
/// configured when this service's checkpoint key exists and its receivers' URLs are known.
/// The consent service's configuration, with the repository's consent forms.
pub fn consent_config(
    database_url: String,
    keys: &TestKeys,
    peer_urls: &BTreeMap<ServiceName, String>,
) -> consent::ConsentConfig {
    let mut config: consent::ConsentConfig = config_for(ServiceName::Consent, database_url, keys, peer_urls);
    config.service.forms_dir = repo_root().join("policies/consent-forms");
    config.internal.user_tokens = Some(keys.user_token_config());
    config
}

pub fn config_for<S: Default>(
    service: ServiceName,
    database_url: String,
    keys: &TestKeys,
    peer_urls: &BTreeMap<ServiceName, String>,
) -> Config<S> {
    let peers = ServiceName::ALL
        .into_iter()
        .filter(|p| *p != service)
        .map(|p| {
            (
                p,
                PeerConfig {
                    url: peer_urls.get(&p).cloned(),
                    public_key_file: Some(keys.dir.join(format!("{}.pub", p.as_str()))),
                    checkpoint_public_key_file: Some(keys.dir.join(format!("{}.pub", common::checkpoint::key_name(p)))),
                    checkpoint_accepted_public_key_files: Vec::new(),
                },
            )
        })
        .collect();
    let receivers = common::checkpoint::topology(service);
    let key_file = keys.dir.join(format!("{}.key", common::checkpoint::key_name(service)));
    let checkpoint =
        (key_file.is_file() && receivers.iter().all(|r| peer_urls.contains_key(r))).then(|| CheckpointConfig {
            public_key_file: Some(key_file.with_extension("pub")),
            key_file,
            interval_secs: 3600,
            receivers,
            accepted_public_key_files: Vec::new(),
        });
    Config {
        profile: Profile::Dev,
        server: ServerConfig {
            address: [127, 0, 0, 1].into(),
            port: 0,
            json_limit_bytes: 64 * 1024,
            trusted_proxies: Vec::new(),
        },
        database: DatabaseConfig {
            url: Secret::new(database_url),
            migrate_url: None,
            max_connections: 5,
            connect_timeout_secs: 10,
        },
        log: LogConfig { level: "info".into(), dir: Some(keys.dir.join("logs")) },
        metrics: MetricsConfig::default(),
        internal: InternalConfig {
            signing_key_file: keys.dir.join(format!("{}.key", service.as_str())),
            policy_file: repo_root().join("policies/internal-calls.toml"),
            assertion_ttl_secs: 30,
            request_timeout_secs: 5,
            peers,
            user_tokens: None,
        },
        rate_limits: Default::default(),
        checkpoint,
        tls: None,
        service: S::default(),
    }
}
