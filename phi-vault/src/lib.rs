//! The PHI vault: the only place 42 CFR Part 2 records live, encrypted. This foundation mounts
//! its internal readiness route and its signed channel to the consent service; records, keys
//! and the access policy arrive with their issue.

use rocket::{Build, Rocket};
use serde::{Deserialize, Serialize};

use common::client::ConsentClient;
use common::config::Config;
use common::service::{Parts, StartError};
use common::ServiceName;

pub mod crypto;
mod internal;

pub const SERVICE: ServiceName = ServiceName::PhiVault;

/// The vault's own settings, `[service]` in its config file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {}

pub type PhiVaultConfig = Config<Settings>;

/// The one builder `main` and the tests share.
pub async fn build(config: PhiVaultConfig) -> Result<Rocket<Build>, StartError> {
    let parts = Parts::load(SERVICE, &config).await?;
    let consent = ConsentClient::new(parts.client(&config, ServiceName::Consent)?);
    Ok(parts.into_rocket(&config).manage(consent).mount("/", internal::routes()))
}
