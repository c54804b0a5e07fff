//! The public API the frontend calls. It holds no PHI at rest and no PHI keys: where a request
//! carries PHI it forwards it to the phi-vault over a signed call and keeps only a reference.
//! Its crate must never depend on `vaultrs`, `aes-gcm-siv` or `phi-vault` (CI checks).

use rocket::{Build, Rocket};
use serde::{Deserialize, Serialize};

use common::client::{ConsentClient, PhiVaultClient};
use common::config::{Config, ConfigError, Profile};
use common::service::{Parts, StartError};
use common::ServiceName;

pub mod applications;
pub mod audit;
pub mod auth;
pub mod beneficiaries;
pub mod care_team;
pub mod consents;
mod cors;
pub mod dashboard;
pub mod disclosures;
pub mod documents;
pub mod erasure;
pub mod insurance;
pub mod live;
pub mod mail;
pub mod meta;
pub mod notifications;
pub mod openapi;
pub mod phi_access;
pub mod phi_records;
pub mod roles;
pub mod staff_sessions;
mod system;
pub mod users;

pub const SERVICE: ServiceName = ServiceName::PublicApi;

/// The public API's own settings, `[service]` in its config file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    pub auth: auth::AuthSettings,
    #[serde(default)]
    pub documents: documents::DocumentSettings,
    /// Where notification email goes; none: no email is sent.
    #[serde(default)]
    pub mail: Option<mail::MailSettings>,
}

pub type PublicApiConfig = Config<Settings>;

/// The one builder `main` and the tests share. Every route is mounted here.
pub async fn build(config: PublicApiConfig) -> Result<Rocket<Build>, StartError> {
    let invalid = |key: &str, message: String| StartError::Config(ConfigError::Invalid { key: key.into(), message });
    let auth_settings = config.service.auth.clone();
    if auth_settings.dev_login && config.profile == Profile::Production {
        return Err(invalid("service.auth.dev_login", "production refuses the dev login".into()));
    }
    let token_keys = auth::TokenKeys::load(&auth_settings).map_err(|e| invalid("service.auth.signing_keys", e))?;
    let delegation = std::sync::Arc::new(token_keys.delegation_signer());
    let policy =
        auth::AccessPolicy::load(&auth_settings.roles_file).map_err(|e| invalid("service.auth.roles_file", e))?;
    let oidc = auth::oidc::OidcProviders::new(auth_settings.oidc.clone(), config.profile == Profile::Production)
        .map_err(|e| invalid("service.auth.oidc", e))?;
    let parts = Parts::load(SERVICE, &config).await?;
    if auth_settings.dev_login {
        auth::routes::seed_demo_users(&parts.pool)
            .await
            .map_err(|e| StartError::Other(format!("seeding demo users: {e}")))?;
    }
    let documents = &config.service.documents;
    if documents.stale_after_secs <= documents.transfer_timeout_secs + 60 {
        return Err(invalid(
            "service.documents.stale_after_secs",
            "must exceed transfer_timeout_secs by more than 60 s (and phi-vault's document_timeout_secs)".into(),
        ));
    }
    let mailer = match &config.service.mail {
        Some(settings) => Some(
            mail::Mailer::new(settings, config.profile == Profile::Production)
                .map_err(|e| invalid("service.mail", e))?,
        ),
        None => {
            tracing::warn!("no mail relay configured ([service.mail]): notification email waits in the outbox");
            None
        }
    };
    if config.profile == Profile::Production && config.server.trusted_proxies.is_empty() {
        // Behind a front proxy this makes every client the proxy: one shared rate limit.
        tracing::warn!("server.trusted_proxies is empty: every client is its socket address (list the front proxy)");
    }
    let phi_vault = PhiVaultClient::new(parts.client(&config, ServiceName::PhiVault)?);
    let consent = ConsentClient::new(parts.client(&config, ServiceName::Consent)?);
    Ok(parts
        .into_rocket(&config)
        .manage(phi_vault)
        .manage(consent)
        .manage(insurance::provider())
        .manage(documents::Uploads::new(&config.service.documents))
        .manage(config.service.documents.clone())
        .manage(live::Live::new())
        .manage(system::ReadyProbe::default())
        .attach(rocket::fairing::AdHoc::on_liftoff("background tasks", |r| {
            let (pool, live, shutdown) =
                (r.state::<sqlx::PgPool>().cloned(), r.state::<live::Live>().cloned(), r.shutdown());
            Box::pin(async move {
                if let (Some(pool), Some(live)) = (pool.clone(), live) {
                    tokio::spawn(live::relay(pool, live, shutdown.clone()));
                }
                if let Some(pool) = pool.clone() {
                    tokio::spawn(auth::oidc::purge_until(pool, shutdown.clone()));
                }
                if let (Some(pool), Some(mailer)) = (pool, mailer) {
                    tokio::spawn(mail::run(pool, mailer, shutdown));
                }
            })
        }))
        .manage(token_keys)
        .manage(delegation)
        .manage(policy)
        .manage(oidc)
        .manage(auth_settings.clone())
        .attach(cors::Cors)
        .attach(common::routing::SingleQueryParameters)
        .mount("/", cors::routes())
        .mount("/", system::routes())
        .mount("/api/v1", openapi::routes())
        .mount("/api/v1", auth::routes::routes(auth_settings.dev_login))
        .mount("/api/v1", auth::oidc::routes())
        .mount("/api/v1", users::routes())
        .mount("/api/v1", beneficiaries::routes())
        .mount("/api/v1", disclosures::routes())
        .mount("/api/v1", consents::routes())
        .mount("/api/v1", applications::routes())
        .mount("/api/v1", dashboard::routes())
        .mount("/api/v1", documents::routes())
        .mount("/api/v1", notifications::routes())
        .mount("/api/v1", insurance::routes())
        .mount("/api/v1", live::routes())
        .mount("/api/v1", care_team::routes())
        .mount("/api/v1", phi_access::routes())
        .mount("/api/v1", erasure::routes())
        .mount("/api/v1", roles::routes())
        .mount("/api/v1", staff_sessions::routes())
        .mount("/api/v1", audit::routes()))
}
