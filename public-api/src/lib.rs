//! The public API the frontend calls. It holds no PHI at rest and no PHI keys: where a request
//! carries PHI it forwards it to the phi-vault over a signed call and keeps only a reference.
//! Its crate must never depend on `vaultrs`, `aes-gcm-siv` or `phi-vault` (CI checks).

use rocket::{Build, Rocket};
use serde::{Deserialize, Serialize};

use common::client::{ConsentClient, PhiVaultClient};
use common::config::Config;
use common::service::{Parts, StartError};
use common::ServiceName;

pub mod audit;
pub mod openapi;
mod system;

pub const SERVICE: ServiceName = ServiceName::PublicApi;

/// The public API's own settings, `[service]` in its config file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {}

pub type PublicApiConfig = Config<Settings>;

/// The one builder `main` and the tests share. Every route is mounted here.
pub async fn build(config: PublicApiConfig) -> Result<Rocket<Build>, StartError> {
    let parts = Parts::load(SERVICE, &config).await?;
    let phi_vault = PhiVaultClient::new(parts.client(&config, ServiceName::PhiVault)?);
    let consent = ConsentClient::new(parts.client(&config, ServiceName::Consent)?);
    Ok(parts
        .into_rocket(&config)
        .manage(phi_vault)
        .manage(consent)
        .mount("/", system::routes())
        .mount("/api/v1", openapi::routes()))
}
