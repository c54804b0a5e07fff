//! What every service does the same way at start: load its keys, policy and database, build a
//! Rocket with the shared fairings, catchers and operational routes, and run it from `main`.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rocket::figment::Figment;
use rocket::{Build, Rocket};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::PgPool;

use crate::assertion::{Signer, Verifier};
use crate::client::InternalClient;
use crate::config::{Config, ConfigError};
use crate::metrics::{Metrics, MetricsFairing};
use crate::ops::ServiceInfo;
use crate::policy::CallPolicy;
use crate::protect::{RateLimitFairing, RateLimits, SecurityHeaders, TrustedProxies};
use crate::request_id::RequestIdFairing;
use crate::{db, keys, ServiceName};

pub use crate::start::StartError;

/// Everything a service needs that start-up loads from outside.
pub struct Parts {
    pub service: ServiceName,
    pub pool: PgPool,
    pub signer: Arc<Signer>,
    pub verifier: Verifier,
    pub metrics: Metrics,
    /// Signed checkpoints: this service's publisher and its peers' checkpoint keys.
    pub anchor: crate::checkpoint::Anchor,
    /// What internal calls present and trust, when `[tls]` is set.
    pub client_tls: Option<crate::tls::ClientTls>,
}

impl Parts {
    pub async fn load<S>(service: ServiceName, config: &Config<S>) -> Result<Self, StartError> {
        let internal = &config.internal;
        let private = keys::read_private(&internal.signing_key_file)?;
        let signer = Arc::new(Signer::new(service, &private, internal.assertion_ttl_secs));
        let mut peer_keys = HashMap::new();
        for (name, peer) in &internal.peers {
            if let Some(file) = &peer.public_key_file {
                peer_keys.insert(*name, keys::read_public(file)?);
            }
        }
        let policy = CallPolicy::load(&internal.policy_file)?;
        let mut verifier = Verifier::new(service, peer_keys, policy);
        if let Some(user_tokens) = &internal.user_tokens {
            verifier = verifier.requiring_user_tokens(user_tokens.load()?);
        }
        let metrics = Metrics::new(service).map_err(|e| StartError::Other(format!("metrics: {e}")))?;
        let client_tls = match &config.tls {
            Some(tls) => {
                // phi-vault and consent serve only the other services: in production, nobody
                // without a certificate from the internal CA gets as far as HTTP.
                if config.profile == crate::config::Profile::Production
                    && service != ServiceName::PublicApi
                    && !tls.mutual
                {
                    return Err(StartError::Config(ConfigError::Invalid {
                        key: "tls.mutual".into(),
                        message: format!("production requires mutual TLS for {service}"),
                    }));
                }
                Some(
                    crate::tls::ClientTls::load(tls)
                        .map_err(|message| StartError::Config(ConfigError::Invalid { key: "tls".into(), message }))?,
                )
            }
            None => None,
        };
        let pool = db::connect_service(db::Database::of(service), &config.database).await?;
        let anchor = crate::checkpoint::Anchor::load(service, config, &pool, &signer, client_tls.as_ref())?;
        Ok(Self { service, pool, signer, verifier, metrics, anchor, client_tls })
    }

    /// A signed client for `peer`, whose URL must be configured.
    pub fn client<S>(&self, config: &Config<S>, peer: ServiceName) -> Result<InternalClient, StartError> {
        let url = config.internal.peers.get(&peer).and_then(|p| p.url.as_deref()).ok_or_else(|| {
            StartError::Config(ConfigError::Invalid {
                key: format!("internal.peers.{peer}.url"),
                message: "is required".into(),
            })
        })?;
        let timeout = Duration::from_secs(config.internal.request_timeout_secs);
        InternalClient::with_tls(peer, url, self.signer.clone(), timeout, self.client_tls.as_ref())
            .map_err(StartError::Other)
    }

    /// The Rocket every service starts from: shared fairings, catchers, operational routes.
    pub fn into_rocket<S>(self, config: &Config<S>) -> Rocket<Build> {
        let figment = Figment::from(rocket::Config::default())
            .merge(("address", config.server.address))
            .merge(("port", config.server.port))
            .merge(("ident", false))
            .merge(("cli_colors", false))
            // Rocket's request lines quote the full URI; telemetry drops them whatever this says.
            .merge(("log_level", "critical"))
            .merge(("limits.json", config.server.json_limit_bytes))
            // The client address is `protect::client_address`'s, never Rocket's header.
            .merge(("ip_header", false))
            .merge(("tls", config.tls.as_ref().map(crate::tls::rocket_tls)))
            .merge(("shutdown.grace", 2))
            .merge(("shutdown.mercy", 3));
        let info = ServiceInfo {
            service: self.service,
            profile: config.profile,
            started: Instant::now(),
            metrics_allowed_ips: config.metrics.allowed_ips.clone(),
            git_revision: ServiceInfo::revision(),
        };
        let service = self.service;
        let rocket = self.anchor.attach(rocket::custom(figment));
        rocket
            .attach(rocket::fairing::AdHoc::on_liftoff("listening", move |r| {
                Box::pin(async move {
                    let (address, port) = (r.config().address, r.config().port);
                    tracing::info!(service = service.as_str(), %address, port, "listening");
                })
            }))
            .attach(rocket::fairing::AdHoc::on_liftoff("rate-limit sweeper", |r| {
                let limits = r.state::<RateLimits>().cloned();
                let shutdown = r.shutdown();
                Box::pin(async move {
                    if let Some(limits) = limits {
                        tokio::spawn(limits.sweep_until(shutdown));
                    }
                })
            }))
            .attach(rocket::fairing::AdHoc::on_liftoff("spent assertion sweeper", |r| {
                let pool = r.state::<PgPool>().cloned();
                let shutdown = r.shutdown();
                Box::pin(async move {
                    if let Some(pool) = pool {
                        tokio::spawn(sweep_spent_assertions(pool, shutdown));
                    }
                })
            }))
            .attach(RequestIdFairing)
            .attach(RateLimitFairing)
            .attach(MetricsFairing { service: self.service })
            .attach(rocket::shield::Shield::new())
            .attach(SecurityHeaders)
            .register("/", crate::error::catchers())
            .mount("/", crate::ops::routes())
            .mount("/", crate::protect::routes())
            .manage(RateLimits::new(config.rate_limits.clone()))
            .manage(TrustedProxies(config.server.trusted_proxies.clone()))
            .manage(self.pool)
            .manage(self.verifier)
            .manage(self.metrics)
            .manage(info)
    }
}

/// Drops spent assertion ids once their assertions have expired, every minute until shutdown.
async fn sweep_spent_assertions(pool: PgPool, shutdown: rocket::Shutdown) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(Duration::from_secs(60)) => {}
        }
        if let Err(e) = crate::assertion::sweep_spent(&pool).await {
            tracing::warn!(error = %e, "sweeping spent assertion ids failed; retrying later");
        }
    }
}

/// Reads `--config FILE` (or `SECONDWIND_CONFIG`) from the command line.
fn config_path() -> Result<Option<PathBuf>, String> {
    let mut args = std::env::args().skip(1);
    let mut path = std::env::var_os("SECONDWIND_CONFIG").map(PathBuf::from);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" => path = Some(args.next().ok_or("--config needs a file")?.into()),
            "-h" | "--help" => return Err("usage: SERVICE [--config FILE]\n  settings: defaults < FILE < SW_* environment (SW_DATABASE__URL, ...)".into()),
            other => return Err(format!("unknown argument `{other}` (usage: SERVICE [--config FILE])")),
        }
    }
    Ok(path)
}

/// The whole of a service's `main`: configuration, telemetry, build, launch. Exits non-zero
/// with a message naming the cause when anything at start fails.
pub fn main<S, F, Fut>(service: ServiceName, build: F) -> ExitCode
where
    S: DeserializeOwned + Serialize + Default + Send + 'static,
    F: FnOnce(Config<S>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Rocket<Build>, StartError>> + Send,
{
    crate::install_crypto_provider();
    let config = match config_path()
        .map_err(|e| e.to_string())
        .and_then(|p| Config::<S>::load(service, p.as_deref()).map_err(|e| e.to_string()))
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{service}: {e}");
            return ExitCode::from(2);
        }
    };
    let _guard = match crate::telemetry::init(service.as_str(), &config.log) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("{service}: {e}");
            return ExitCode::from(2);
        }
    };
    // A panic's message may quote data it was handling: log where it happened, never what.
    std::panic::set_hook(Box::new(move |info| {
        let location = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
        tracing::error!(service = service.as_str(), %location, "panic (message withheld: it may contain data)");
    }));
    rocket::execute(async move {
        let rocket = match build(config).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(service = service.as_str(), error = %e, "start-up failed");
                eprintln!("{service}: {e}");
                return ExitCode::FAILURE;
            }
        };
        match rocket.launch().await {
            Ok(_) => {
                tracing::info!(service = service.as_str(), "stopped");
                ExitCode::SUCCESS
            }
            Err(e) => {
                tracing::error!(service = service.as_str(), error = %e, "server failed");
                eprintln!("{service}: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
