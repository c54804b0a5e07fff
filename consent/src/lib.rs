//! The consent service: holds 42 CFR §2.31 consents and answers whether a disclosure is
//! permitted (default deny). This foundation mounts its internal readiness route; consents and
//! decisions arrive with their issue.

use rocket::{Build, Rocket};
use serde::{Deserialize, Serialize};

use common::config::Config;
use common::service::{Parts, StartError};
use common::ServiceName;

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
    Ok(parts.into_rocket(&config).mount("/", internal::routes()))
}
