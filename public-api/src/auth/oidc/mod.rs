//! Sign-in with OpenID Connect providers (Google, Apple, any standards-compliant issuer from
//! configuration): authorization code flow with PKCE, `state` and `nonce`; the id_token's
//! signature (the provider's published keys, asymmetric algorithms only), issuer, audience,
//! expiry and nonce are checked. Provider metadata is discovered on first use and cached for an
//! hour. Apple's client secret is a short-lived ES256 JWT signed with the team's key. Staff may
//! also sign in from a device without a browser, through a provider's device authorization flow
//! (RFC 8628), where configured.
//!
//! `config.rs` holds a provider's entry, `provider.rs` the providers and the code flow,
//! `device.rs` the provider's side of the device flow; `routes.rs` and `device_routes.rs` the
//! routes of each flow, `signin.rs` what they share (the account an identity leads to, the audit
//! of a refusal), `queries.rs` their SQL and `rules.rs` their fixed rules.

pub mod config;
mod device;
pub mod device_routes;
mod provider;
mod queries;
pub mod routes;
mod rules;
mod signin;

pub use config::{AppleConfig, OidcProviderConfig};
pub use device::{DevicePoll, DeviceStarted};
pub use provider::{Http, HttpError, OidcError, OidcProviders, Started, VerifiedIdentity};
pub use queries::purge_expired;
pub use routes::routes;

/// How often expired sign-in attempts are deleted.
const PURGE_EVERY: std::time::Duration = std::time::Duration::from_secs(300);

/// Deletes expired web and device sign-in attempts, and drops refresh successors sealed for
/// retries whose leeway is over, at start and every five minutes, until shutdown. A failure is
/// logged and tried again at the next turn.
pub async fn purge_until(pool: sqlx::PgPool, shutdown: rocket::Shutdown) {
    tokio::pin!(shutdown);
    let mut every = tokio::time::interval(PURGE_EVERY);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = every.tick() => {
                match purge_expired(&pool).await {
                    Ok((0, 0)) => {}
                    Ok((web, device)) => tracing::info!(web, device, "expired sign-in attempts deleted"),
                    Err(e) => tracing::warn!(error = %e, "deleting expired sign-in attempts failed"),
                }
                if let Err(e) = crate::auth::sessions::drop_stale_seals(&pool).await {
                    tracing::warn!(error = %e, "dropping stale refresh seals failed");
                }
            }
        }
    }
}
