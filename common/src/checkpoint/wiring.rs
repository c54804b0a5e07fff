//! How a service starts its publisher and mounts the receiving routes.

#[allow(unused_imports)]
use super::*;

// ---------------------------------------------------------------- wiring

/// The publisher as routes ask for it: always managed, `None` when checkpoints are off (dev). (A
/// route guard `Option<&State<Arc<Publisher>>>` would be refused by Rocket's sentinels at
/// ignition when nothing is managed.)
pub struct Published(pub Option<Arc<Publisher>>);

/// What a service needs for checkpoints: the publisher (unless disabled in dev) and the keys of
/// the peers whose checkpoints it stores.
pub struct Anchor {
    pub publisher: Option<Arc<Publisher>>,
    pub keys: CheckpointKeys,
}

impl Anchor {
    pub fn load<S>(
        service: ServiceName,
        config: &Config<S>,
        pool: &PgPool,
        signer: &Arc<Signer>,
        client_tls: Option<&crate::tls::ClientTls>,
    ) -> Result<Self, StartError> {
        let invalid =
            |key: &str, message: String| StartError::Config(ConfigError::Invalid { key: key.into(), message });
        let keys = CheckpointKeys::from_config(config)?;
        let Some(settings) = &config.checkpoint else {
            if config.profile == Profile::Production {
                return Err(invalid("checkpoint", "production requires [checkpoint] (key_file, receivers)".into()));
            }
            tracing::warn!(
                service = service.as_str(),
                "no [checkpoint] section: this service's trails are not anchored"
            );
            return Ok(Self { publisher: None, keys });
        };
        if config.profile == Profile::Production && config.log.dir.is_none() {
            return Err(invalid("log.dir", "production requires it: checkpoints are appended to a file there".into()));
        }
        let key = CheckpointKey::load(service, &settings.key_file)?;
        if let Some(public) = &settings.public_key_file {
            if keys::read_public(public)? != key.public() {
                return Err(invalid("checkpoint.public_key_file", "does not match checkpoint.key_file".into()));
            }
        }
        let timeout = Duration::from_secs(config.internal.request_timeout_secs);
        let mut receivers = Vec::new();
        for receiver in &settings.receivers {
            if *receiver == service {
                return Err(invalid("checkpoint.receivers", "a service cannot anchor its trails in itself".into()));
            }
            let url = config.internal.peers.get(receiver).and_then(|p| p.url.as_deref()).ok_or_else(|| {
                invalid("checkpoint.receivers", format!("{receiver} needs internal.peers.{receiver}.url"))
            })?;
            let client = InternalClient::with_tls(*receiver, url, signer.clone(), timeout, client_tls)
                .map_err(StartError::Other)?;
            receivers.push((*receiver, CheckpointClient::new(client)));
        }
        let file = config.log.dir.as_deref().map(|dir| file_in(dir, service));
        let interval = Duration::from_secs(settings.interval_secs.max(1));
        let mut accepted = Vec::new();
        for file in &settings.accepted_public_key_files {
            accepted.push(keys::read_public(file)?);
        }
        let publisher = Publisher::with_accepted_keys(key, &accepted, pool.clone(), receivers, file, interval);
        Ok(Self { publisher: Some(Arc::new(publisher)), keys })
    }

    /// Manages the keys (for the receiving route) and the publisher, which runs from liftoff and
    /// publishes once more at shutdown.
    pub fn attach(self, rocket: Rocket<Build>) -> Rocket<Build> {
        let rocket = rocket.manage(self.keys).manage(Published(self.publisher.clone()));
        let Some(publisher) = self.publisher else { return rocket };
        let (running, last) = (publisher.clone(), publisher.clone());
        rocket
            .manage(publisher)
            .attach(AdHoc::on_liftoff("checkpoints", move |r| {
                let shutdown = r.shutdown();
                Box::pin(async move {
                    tokio::spawn(running.clone().run(shutdown));
                })
            }))
            .attach(AdHoc::on_shutdown("final checkpoints", move |_| {
                Box::pin(async move {
                    if tokio::time::timeout(Duration::from_secs(5), last.round()).await.is_err() {
                        tracing::warn!("the shutdown checkpoint round timed out");
                    }
                })
            }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(service: ServiceName) -> CheckpointKey {
        let (der, _) = keys::generate().expect("generate");
        CheckpointKey::from_pkcs8(service, &der).expect("key")
    }

    #[test]
    fn signatures_verify_only_unchanged_and_with_the_origins_key() {
        let phi = key(ServiceName::PhiVault);
        let checkpoint = phi.sign(Trail::Disclosures, 3, 42, &[7; 32], chain::now());
        let mut keys = CheckpointKeys::default();
        assert_eq!(keys.verify(&checkpoint), Err(SignatureError::NoKey(ServiceName::PhiVault)));
        keys.insert(ServiceName::PhiVault, phi.public());
        assert_eq!(keys.verify(&checkpoint), Ok(()));
        assert!(checkpoint.check_shape().is_ok());

        let mut moved = checkpoint.clone();
        moved.seq = 41;
        assert_eq!(keys.verify(&moved), Err(SignatureError::Bad(ServiceName::PhiVault)));
        let other = key(ServiceName::PhiVault).sign(Trail::Disclosures, 3, 42, &[7; 32], checkpoint.published_at);
        assert_eq!(keys.verify(&other), Err(SignatureError::Bad(ServiceName::PhiVault)));

        // The wire form round-trips exactly (the signature covers the time to the microsecond).
        let text = serde_json::to_string(&checkpoint).expect("json");
        let back: Checkpoint = serde_json::from_str(&text).expect("parse");
        assert!(back.same_as(&checkpoint));
        assert_eq!(keys.verify(&back), Ok(()));

        let wrong_origin = key(ServiceName::Consent).sign(Trail::Disclosures, 1, 1, &[1; 32], chain::now());
        assert!(wrong_origin.check_shape().is_err(), "consent does not write disclosures");
    }

    #[test]
    fn every_trail_belongs_to_one_service_and_names_its_table() {
        let mut all: Vec<Trail> = ServiceName::ALL.into_iter().flat_map(Trail::of).collect();
        all.sort();
        assert_eq!(all, Trail::ALL.to_vec());
        for trail in Trail::ALL {
            assert_eq!(trail.as_str().parse::<Trail>(), Ok(trail));
            assert_eq!(serde_json::to_value(trail).expect("json"), trail.as_str());
        }
    }
}
