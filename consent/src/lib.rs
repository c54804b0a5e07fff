//! The consent service: holds 42 CFR §2.31 consents and answers whether a disclosure is
//! permitted (default deny), keeping every decision in a hash-chained trail. Consents, forms and
//! revocations are immutable for the runtime role; consents and revocations are chained too.
//! Beneficiaries sign, read and revoke their consents through public-api, which calls this
//! service as them ([`consents`]); admins keep the recipient directory ([`directory`]).
//!
//! One folder per feature, each with its routes (`routes.rs`), its SQL (`queries.rs`) and its
//! rules (`rules.rs`): [`consents`] (with the chained records' bytes in `records.rs`),
//! [`decisions`], [`directory`] and [`forms`] (with the form files read in `files.rs`).
//! [`build`] mounts every route the service answers.

use rocket::{Build, Rocket};
use serde::{Deserialize, Serialize};

use common::config::Config;
use common::service::{Parts, StartError};
use common::ServiceName;

pub mod consents;
pub mod decisions;
pub mod directory;
pub mod forms;
mod internal;

pub const SERVICE: ServiceName = ServiceName::Consent;

/// The consent service's own settings, `[service]` in its config file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// The consent forms' directory (`forms` module docs): recorded at start, checked unchanged.
    pub forms_dir: std::path::PathBuf,
}

impl Default for Settings {
    fn default() -> Self {
        Self { forms_dir: "policies/consent-forms".into() }
    }
}

pub type ConsentConfig = Config<Settings>;

/// The one builder `main` and the tests share.
pub async fn build(config: ConsentConfig) -> Result<Rocket<Build>, StartError> {
    let forms = forms::load_dir(&config.service.forms_dir).map_err(|message| {
        StartError::Config(common::config::ConfigError::Invalid { key: "service.forms_dir".into(), message })
    })?;
    if config.internal.user_tokens.is_none() {
        // Beneficiaries sign and revoke here: a call made as a person must carry their own
        // token, or public-api's key alone could sign consents for anyone.
        return Err(StartError::Config(common::config::ConfigError::Invalid {
            key: "internal.user_tokens".into(),
            message: "is required: public-api's user-token public keys".into(),
        }));
    }
    let parts = Parts::load(SERVICE, &config).await?;
    forms::publish(&parts.pool, &forms).await.map_err(|e| match e {
        forms::PublishError::Changed(_) => StartError::Config(common::config::ConfigError::Invalid {
            key: "service.forms_dir".into(),
            message: e.to_string(),
        }),
        forms::PublishError::Sql(e) => StartError::Database(e.into()),
    })?;
    tracing::info!(forms = forms.len(), "consent forms recorded");
    Ok(parts
        .into_rocket(&config)
        .attach(common::routing::SingleQueryParameters)
        // Readiness, and the trails' checkpoints and anchors (`common`).
        .mount("/", internal::routes())
        .mount("/", common::checkpoint::routes())
        .mount("/", common::anchor::routes())
        .manage(common::anchor::ChainVerifier(verify_chain))
        // Disclosure decisions and the decision log.
        .mount("/", decisions::routes())
        // The forms offered for signing, and every value a consent may hold.
        .mount("/", forms::routes())
        // A beneficiary's consents: list, read, sign, revoke; expiry events.
        .mount("/", consents::routes())
        // The recipient directory.
        .mount("/", directory::routes()))
}

/// Verifies one of the consent service's trails' hash chains (`common::anchor::VerifyChain`).
pub fn verify_chain(
    trail: common::checkpoint::Trail,
    pool: sqlx::PgPool,
    limit: usize,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<common::chain::Verification, sqlx::Error>> + Send>> {
    use common::checkpoint::Trail;
    Box::pin(async move {
        match trail {
            Trail::Decisions => decisions::verify(&pool, limit).await,
            Trail::Consents => consents::verify(&pool, limit).await,
            Trail::Revocations => consents::verify_revocations(&pool, limit).await,
            other => Err(sqlx::Error::Protocol(format!("{} is not a consent trail", other.as_str()))),
        }
    })
}
