//! Operational routes every service answers: `/health` (its database), `/status` (version,
//! revision, uptime) and `/metrics` (Prometheus text; in production only to allowlisted
//! scrapers).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use rocket::http::{ContentType, Status};
use rocket::serde::json::Json;
use rocket::{get, routes, Route, State};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::config::Profile;
use crate::metrics::Metrics;
use crate::{ApiError, ServiceName};

/// What `/status` reports; managed as Rocket state.
pub struct ServiceInfo {
    pub service: ServiceName,
    pub profile: Profile,
    pub started: Instant,
    pub metrics_allowed_ips: Vec<IpAddr>,
    /// The source revision this process runs: the one a release build was given
    /// (`SECONDWIND_GIT_REVISION` at build time), else the one its start-up environment names
    /// (`scripts/run` sets it from git), else `unknown`. Not compiled in from git, so a new
    /// commit does not rebuild the services.
    pub git_revision: String,
}

impl ServiceInfo {
    /// See [`ServiceInfo::git_revision`]: a short plain token, or `unknown`.
    pub fn revision() -> String {
        revision_of(option_env!("SECONDWIND_GIT_REVISION"), std::env::var("SECONDWIND_GIT_REVISION").ok())
    }
}

/// The build's revision if it was given one, else the start-up environment's; either only when
/// it is a short plain token (it is shown in `/status`), else `unknown`.
fn revision_of(built: Option<&str>, started: Option<String>) -> String {
    let plain = |r: &String| !r.is_empty() && r.len() <= 64 && r.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    built.map(str::to_owned).or(started).filter(plain).unwrap_or_else(|| "unknown".to_owned())
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HealthReport {
    /// `ok` or `unavailable`.
    #[schema(value_type = HealthState)]
    pub status: String,
    /// `ok` or `unreachable`.
    #[schema(value_type = DatabaseState)]
    pub database: String,
}

/// The schema of `HealthReport::status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthState {
    Ok,
    Unavailable,
}

/// The schema of `HealthReport::database`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DatabaseState {
    Ok,
    Unreachable,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StatusReport {
    pub service: String,
    pub version: String,
    pub git_revision: String,
    pub uptime_seconds: u64,
    pub profile: String,
}

/// Whether the database answers within two seconds.
pub async fn database_ok(pool: &PgPool) -> Result<(), String> {
    let probe = sqlx::query_scalar!(r#"SELECT 1 AS "one!""#).fetch_one(pool);
    match tokio::time::timeout(Duration::from_secs(2), probe).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out after 2 s".into()),
    }
}

/// Liveness of this service and its database.
#[utoipa::path(get, operation_id = "operations_health", path = "/health", tag = "operations",
    responses(
        (status = 200, description = "The service and its database are up", body = HealthReport),
        (status = 503, description = "The database is unreachable", body = HealthReport),
    ))]
#[get("/health")]
pub async fn health(pool: &State<PgPool>, info: &State<ServiceInfo>) -> (Status, Json<HealthReport>) {
    match database_ok(pool).await {
        Ok(()) => (Status::Ok, Json(HealthReport { status: "ok".into(), database: "ok".into() })),
        Err(e) => {
            tracing::warn!(service = info.service.as_str(), error = %e, "health: database unreachable");
            (
                Status::ServiceUnavailable,
                Json(HealthReport { status: "unavailable".into(), database: "unreachable".into() }),
            )
        }
    }
}

/// Version, git revision and uptime.
#[utoipa::path(get, operation_id = "operations_status", path = "/status", tag = "operations",
    responses((status = 200, description = "Build and uptime", body = StatusReport)))]
#[get("/status")]
pub fn status(info: &State<ServiceInfo>) -> Json<StatusReport> {
    Json(StatusReport {
        service: info.service.as_str().to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        git_revision: info.git_revision.clone(),
        uptime_seconds: info.started.elapsed().as_secs(),
        profile: match info.profile {
            Profile::Dev => "dev".into(),
            Profile::Production => "production".into(),
        },
    })
}

/// In dev anyone may scrape; in production only the listed addresses.
pub fn metrics_allowed(profile: Profile, allowed: &[IpAddr], client: Option<IpAddr>) -> bool {
    match profile {
        Profile::Dev => true,
        Profile::Production => client.is_some_and(|ip| allowed.contains(&ip)),
    }
}

/// Prometheus text exposition: request counts and latency histograms by route and status.
#[utoipa::path(get, operation_id = "operations_metrics", path = "/metrics", tag = "operations",
    responses(
        (status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"),
        (status = 403, description = "Caller is not an allowlisted scraper", body = crate::ErrorBody),
    ))]
#[get("/metrics")]
pub fn metrics(
    metrics: &State<Metrics>,
    info: &State<ServiceInfo>,
    client: crate::protect::address::ClientIp,
) -> Result<(ContentType, String), ApiError> {
    let client = client.0;
    if !metrics_allowed(info.profile, &info.metrics_allowed_ips, client) {
        tracing::warn!(service = info.service.as_str(), client = ?client, "metrics scrape refused");
        return Err(ApiError::Forbidden);
    }
    let text_format = ContentType::new("text", "plain").with_params(("version", "0.0.4"));
    Ok((text_format, metrics.render()))
}

pub fn routes() -> Vec<Route> {
    routes![health, status, metrics]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn production_metrics_need_the_allowlist() {
        let scraper: IpAddr = "10.0.0.7".parse().expect("ip");
        let other: IpAddr = "10.0.0.8".parse().expect("ip");
        assert!(metrics_allowed(Profile::Dev, &[], Some(other)));
        assert!(metrics_allowed(Profile::Production, &[scraper], Some(scraper)));
        assert!(!metrics_allowed(Profile::Production, &[scraper], Some(other)));
        assert!(!metrics_allowed(Profile::Production, &[scraper], None));
        assert!(!metrics_allowed(Profile::Production, &[], Some(scraper)));
    }

    #[test]
    fn the_build_revision_wins_and_only_a_plain_token_is_shown() {
        assert_eq!(revision_of(Some("abc123def456"), Some("fff".into())), "abc123def456");
        assert_eq!(revision_of(None, Some("0a1b2c-dirty".into())), "0a1b2c-dirty");
        assert_eq!(revision_of(None, None), "unknown");
        assert_eq!(revision_of(None, Some("".into())), "unknown");
        assert_eq!(revision_of(None, Some("abc\n\"injected\":1".into())), "unknown");
        assert_eq!(revision_of(None, Some("a".repeat(65))), "unknown");
        assert_eq!(revision_of(Some("bad token"), Some("good".into())), "unknown", "a bad build value is not replaced");
    }
}
