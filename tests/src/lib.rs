//! The end-to-end harness every test of the system uses. `TestApp::spawn()` creates three fresh
//! databases (copies of migrated templates), fresh service keys, and starts consent, phi-vault and
//! public-api in this process on ephemeral loopback ports, wired to each other exactly as in
//! production: signed internal calls, the repository's allowlist, per-service database roles.
//!
//! Each service publishes signed checkpoints of its trails to its receivers, as configured in
//! production (`common::checkpoint::topology`), with an hour's interval: tests publish when they
//! choose (`TestApp::publish_checkpoints`). Checkpoint files go to `<keys dir>/logs`.
//!
//! It needs `SECONDWIND_TEST_ADMIN_URL`, a superuser URL of a disposable PostgreSQL cluster;
//! `scripts/test` starts one and sets it.

mod app;
pub mod auth;
pub mod check;
pub mod client;
pub mod consents;
pub mod cut;
mod databases;
pub mod edge;
mod faults;
pub mod hostile;
mod launch;
pub mod load;
mod logs;
pub mod oidc;
mod setup;
pub mod tls;
pub mod vault;

pub use app::*;
pub use auth::{sample_profile, Login};
pub use databases::*;
pub use faults::*;
pub use launch::*;
pub use logs::*;
pub use setup::*;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use common::checkpoint::Publisher;
use common::config::{
    CheckpointConfig, Config, DatabaseConfig, InternalConfig, LogConfig, MetricsConfig, PeerConfig, Profile,
    ServerConfig,
};
use common::db::{self, Database};
use common::{Secret, ServiceName};
use rocket::fairing::AdHoc;
use rocket::{Build, Rocket, Shutdown};
use sqlx::{Connection, PgConnection};
use tokio::sync::OnceCell;

pub const ADMIN_URL_VAR: &str = "SECONDWIND_TEST_ADMIN_URL";
/// The `kid` of the test app's user-token signing key.
pub const USER_TOKEN_KID: &str = "user-k1";
/// The frontend origin the test app allows.
pub const ORIGIN: &str = "http://localhost:5173";

pub fn admin_url() -> String {
    std::env::var(ADMIN_URL_VAR).unwrap_or_else(|_| {
        panic!(
            "{ADMIN_URL_VAR} is not set: run the tests with scripts/test, which starts a PostgreSQL cluster for them"
        )
    })
}

pub(crate) fn toml_string(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}
