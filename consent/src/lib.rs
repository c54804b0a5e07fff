//! The consent service: holds 42 CFR §2.31 consents and answers whether a disclosure is
//! permitted (default deny), keeping every decision in a hash-chained trail. Routes to record,
//! list and revoke consents arrive with the consent issue; until then consents are written by
//! operators (and tests) directly.

use rocket::{Build, Rocket};
use serde::{Deserialize, Serialize};

use common::config::Config;
use common::service::{Parts, StartError};
use common::ServiceName;

pub mod decisions;
mod internal;

pub const SERVICE: ServiceName = ServiceName::Consent;

/// The consent service's own settings, `[service]` in its config file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {}

pub type ConsentConfig = Config<Settings>;

/// The one builder `main` and the tests share.
pub async fn build(config: ConsentConfig) -> Result<Rocket<Build>, StartError> {
    let parts = Parts::load(SERVICE, &config).await?;
    Ok(parts.into_rocket(&config).mount("/", internal::routes()).mount("/", decisions::routes()))
}
