//! The consent service: holds 42 CFR §2.31 consents and answers whether a disclosure is
//! permitted (default deny), keeping every decision in a hash-chained trail. Consents, forms and
//! revocations are immutable for the runtime role; consents and revocations are chained too.
//! Routes to record, list and revoke consents arrive with the consent issue; until then
//! [`consents::record`] and [`revocations::revoke`] are how consents enter (operators, tests).

use rocket::{Build, Rocket};
use serde::{Deserialize, Serialize};

use common::config::Config;
use common::service::{Parts, StartError};
use common::ServiceName;

pub mod consents;
pub mod decisions;
mod internal;
pub mod revocations;

pub const SERVICE: ServiceName = ServiceName::Consent;

/// The consent service's own settings, `[service]` in its config file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {}

pub type ConsentConfig = Config<Settings>;

/// The one builder `main` and the tests share.
pub async fn build(config: ConsentConfig) -> Result<Rocket<Build>, StartError> {
    let parts = Parts::load(SERVICE, &config).await?;
    Ok(parts
        .into_rocket(&config)
        .mount("/", internal::routes())
        .mount("/", common::checkpoint::routes())
        .mount("/", decisions::routes()))
}
