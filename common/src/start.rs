//! Why a service could not start.

use crate::config::ConfigError;
use crate::{db, keys};

/// A start-up failure: the service exits with it, naming what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Key(#[from] keys::KeyError),
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
    #[error(transparent)]
    Database(#[from] db::DbError),
    #[error("{0}")]
    Other(String),
}
