//! `TestApp`: the three services wired together against fresh databases.

#[allow(unused_imports)]
use super::*;

pub struct TestApp {
    pub id: String,
    pub public_api: Running,
    pub phi_vault: Running,
    pub consent: Running,
    pub databases: Vec<TestDatabase>,
    pub keys: TestKeys,
    pub http: reqwest::Client,
    /// phi-vault's configuration, to start more instances on the same database.
    pub phi_config: phi_vault::PhiVaultConfig,
    /// public-api's configuration, likewise.
    pub public_config: public_api::PublicApiConfig,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Like `spawn`, letting the test adjust public-api's configuration first.
    pub async fn spawn_with(configure: impl FnOnce(&mut public_api::PublicApiConfig)) -> Self {
        Self::spawn_configured(configure, |_| {}).await
    }

    /// Like `spawn`, adjusting both public-api's and phi-vault's configuration.
    pub async fn spawn_configured(
        configure: impl FnOnce(&mut public_api::PublicApiConfig),
        configure_phi: impl FnOnce(&mut phi_vault::PhiVaultConfig),
    ) -> Self {
        Self::spawn_inner(configure, configure_phi, None).await
    }

    /// Like `spawn`, every service serving TLS 1.3 with `certs`, phi-vault and consent
    /// requiring client certificates, and every internal call over mutual TLS. `http` trusts
    /// the test CA.
    pub async fn spawn_tls(certs: &tls::TestCerts) -> Self {
        Self::spawn_tls_with(certs, |_| {}).await
    }

    /// Like `spawn_tls`, letting the test adjust public-api's configuration first.
    pub async fn spawn_tls_with(
        certs: &tls::TestCerts,
        configure: impl FnOnce(&mut public_api::PublicApiConfig),
    ) -> Self {
        Self::spawn_inner(configure, |_| {}, Some(certs)).await
    }

    async fn spawn_inner(
        configure: impl FnOnce(&mut public_api::PublicApiConfig),
        configure_phi: impl FnOnce(&mut phi_vault::PhiVaultConfig),
        certs: Option<&tls::TestCerts>,
    ) -> Self {
        init();
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let (public_db, phi_db, consent_db) = tokio::join!(
            TestDatabase::create(Database::Public, &id),
            TestDatabase::create(Database::Phi, &id),
            TestDatabase::create(Database::Consent, &id),
        );
        let keys = TestKeys::new(&id);
        let mut urls = BTreeMap::new();
        let (phi_vault_later, phi_vault_port) = forwarder().await;
        let phi_vault_later = match certs {
            Some(_) => phi_vault_later.replacen("http://", "https://", 1),
            None => phi_vault_later,
        };
        urls.insert(ServiceName::PhiVault, phi_vault_later);
        let tls = |service| certs.map(|c| c.config(service, service != ServiceName::PublicApi));

        let mut consent_cfg = consent_config(consent_db.app_url(), &keys, &urls);
        consent_cfg.tls = tls(ServiceName::Consent);
        let consent = launch(consent::build(consent_cfg).await.expect("build consent")).await;
        urls.insert(ServiceName::Consent, consent.url.clone());

        let mut phi_cfg: phi_vault::PhiVaultConfig = config_for(ServiceName::PhiVault, phi_db.app_url(), &keys, &urls);
        phi_cfg.service.kek_file = Some(keys.dir.join("kek"));
        phi_cfg.service.retention_file = repo_root().join("policies/retention.toml");
        phi_cfg.service.notice_file = repo_root().join("policies/redisclosure-notices/part2-2024.txt");
        phi_cfg.service.volume_file = repo_root().join("policies/phi-volume.toml");
        phi_cfg.internal.user_tokens = Some(keys.user_token_config());
        phi_cfg.tls = tls(ServiceName::PhiVault);
        // scripts/test starts clamd; without it, documents are refused (503), as in production.
        if let Ok(address) = std::env::var("SECONDWIND_TEST_CLAMD") {
            phi_cfg.service.scanner = Some(phi_vault::documents::ScannerSettings { address, timeout_secs: 30 });
        }
        configure_phi(&mut phi_cfg);
        let phi_vault = launch(phi_vault::build(phi_cfg.clone()).await.expect("build phi-vault")).await;
        urls.insert(ServiceName::PhiVault, phi_vault.url.clone());
        let port = phi_vault.url.rsplit(':').next().and_then(|p| p.parse().ok());
        phi_vault_port.send_replace(port);

        let mut public_cfg: public_api::PublicApiConfig =
            config_for(ServiceName::PublicApi, public_db.app_url(), &keys, &urls);
        public_cfg.service.auth = keys.auth_settings();
        public_cfg.tls = tls(ServiceName::PublicApi);
        configure(&mut public_cfg);
        let public_api = launch(public_api::build(public_cfg.clone()).await.expect("build public-api")).await;

        Self {
            id,
            public_api,
            phi_vault,
            consent,
            databases: vec![public_db, phi_db, consent_db],
            keys,
            http: match certs {
                Some(certs) => certs.client(None).build().expect("client"),
                None => reqwest::Client::new(),
            },
            phi_config: phi_cfg,
            public_config: public_cfg,
        }
    }

    /// Another phi-vault instance on the same database and keys (as behind a load balancer).
    /// Stop it with its `shutdown` before the test ends.
    pub async fn another_phi_vault(&self) -> Running {
        launch(phi_vault::build(self.phi_config.clone()).await.expect("build phi-vault")).await
    }

    /// Another public-api instance on the same database, keys and peers. Stop it with its
    /// `shutdown` before the test ends.
    pub async fn another_public_api(&self) -> Running {
        launch(public_api::build(self.public_config.clone()).await.expect("build public-api")).await
    }

    pub fn database(&self, database: Database) -> &TestDatabase {
        self.databases.iter().find(|d| d.database == database).expect("database")
    }

    pub fn service(&self, service: ServiceName) -> &Running {
        match service {
            ServiceName::PublicApi => &self.public_api,
            ServiceName::PhiVault => &self.phi_vault,
            ServiceName::Consent => &self.consent,
        }
    }

    /// Publishes a checkpoint of every trail whose head moved, in every service, and delivers
    /// them to the receivers; returns the checkpoints published.
    pub async fn publish_checkpoints(&self) -> Vec<common::checkpoint::Checkpoint> {
        let mut published = Vec::new();
        for running in [&self.public_api, &self.phi_vault, &self.consent] {
            let publisher = running.checkpoints.as_ref().expect("checkpoints are configured");
            published.extend(publisher.publish().await.expect("publish"));
        }
        for running in [&self.public_api, &self.phi_vault, &self.consent] {
            running.checkpoints.as_ref().expect("configured").deliver().await.expect("deliver");
        }
        published
    }

    /// Writes the three services' config files into `dir` (as `<service>.toml`), as
    /// `secondwind-operator audit verify --config-dir` reads them: runtime database URLs, log
    /// directories, checkpoint keys and receivers.
    pub fn write_configs(&self, dir: &Path) {
        std::fs::create_dir_all(dir).expect("config dir");
        let quote = |p: &Path| toml_string(&p.display().to_string());
        for service in ServiceName::ALL {
            let key = self.keys.dir.join(format!("{}.key", common::checkpoint::key_name(service)));
            let receivers: Vec<String> =
                common::checkpoint::topology(service).iter().map(|r| toml_string(r.as_str())).collect();
            let mut text = format!(
                "profile = \"dev\"\n[database]\nurl = {url}\n[log]\nlevel = \"info\"\ndir = {logs}\n\
                 [internal]\nsigning_key_file = {signing}\npolicy_file = {policy}\n\
                 [checkpoint]\nkey_file = {key}\npublic_key_file = {public}\nreceivers = [{receivers}]\n",
                url = toml_string(&self.database(Database::of(service)).app_url()),
                logs = quote(&self.keys.dir.join("logs")),
                signing = quote(&self.keys.dir.join(format!("{service}.key"))),
                policy = quote(&repo_root().join("policies/internal-calls.toml")),
                key = quote(&key),
                public = quote(&key.with_extension("pub")),
                receivers = receivers.join(", "),
            );
            for peer in ServiceName::ALL.into_iter().filter(|p| *p != service) {
                text.push_str(&format!(
                    "[internal.peers.{peer}]\nurl = {url}\npublic_key_file = {key}\ncheckpoint_public_key_file = {cp}\n",
                    url = toml_string(&self.service(peer).url),
                    key = quote(&self.keys.dir.join(format!("{peer}.pub"))),
                    cp = quote(&self.keys.dir.join(format!("{}.pub", common::checkpoint::key_name(peer)))),
                ));
            }
            std::fs::write(dir.join(format!("{service}.toml")), text).expect("write config");
        }
    }

    /// Stops the services, then drops the databases and the keys (as dropping the app does,
    /// but awaited: the servers get a moment to close their pools first).
    pub async fn stop(self) {
        self.shut_down();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    pub(crate) fn shut_down(&self) {
        for running in [&self.public_api, &self.phi_vault, &self.consent] {
            running.shutdown.clone().notify();
        }
    }
}

/// The services stop, and the fields' own `Drop`s remove the databases (forcibly, whatever
/// connection is still open) and the key directory: nothing is left behind when a test
/// panics or forgets to call `stop`.
impl Drop for TestApp {
    fn drop(&mut self) {
        self.shut_down();
    }
}
