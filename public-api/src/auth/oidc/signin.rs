//! What both sign-in flows share: the account a verified identity leads to, found or created,
//! and the audit of a refused sign-in.

use sqlx::PgPool;
use uuid::Uuid;

use common::ApiError;

use super::provider::VerifiedIdentity;
use super::queries;
use super::rules::{lost_race, lost_race_on};
use crate::audit;
use crate::meta::RequestMeta;

/// Audits a refused sign-in (the reason goes to the log and the audit row, not the client).
pub(super) async fn refuse(pool: &PgPool, meta: &RequestMeta, provider: &str, reason: String) -> ApiError {
    match audit_refusal(pool, meta, provider, reason).await {
        Ok(()) => ApiError::Unauthorized,
        Err(e) => e,
    }
}

/// The failed `auth.login` row (no actor: none was proven) and its log line.
pub(super) async fn audit_refusal(
    pool: &PgPool,
    meta: &RequestMeta,
    provider: &str,
    reason: String,
) -> Result<(), ApiError> {
    tracing::warn!(request_id = %meta.request_id, provider, reason = %reason, "sign-in refused");
    let mut event = meta.event(None, "auth.login", Some(("provider", provider.to_owned())), audit::Outcome::Failure);
    event.reason = Some(reason);
    audit::record_alone(pool, &event).await.map(|_| ()).map_err(Into::into)
}

/// The account linked to this provider identity, or a new one of the type chosen at sign-up.
/// An email already used by another account is not linked silently (that would let whoever
/// controls an identity at any provider take over the account). Writes in `tx`, uncommitted.
/// With a new account, the closed account the identity led to until now, if any.
pub(super) async fn find_or_create(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    identity: &VerifiedIdentity,
    user_type: Option<&str>,
    name: Option<String>,
) -> Result<(Uuid, Option<Uuid>), ApiError> {
    let (provider, subject) = (identity.provider.as_str(), identity.subject.as_str());
    if let Some(id) = queries::linked_account(tx, provider, subject).await? {
        return Ok((id, None));
    }
    let user_type = user_type.ok_or_else(|| {
        ApiError::Unprocessable("user_type: choose donor, beneficiary or partner to create an account".into())
    })?;
    let email = match (&identity.email, identity.email_verified) {
        (Some(e), true) => e.clone(),
        _ => return Err(ApiError::Unprocessable("the provider did not share a verified email".into())),
    };
    if queries::email_taken(tx, &email).await? {
        return Err(ApiError::Conflict("an account with this email exists; sign in the way you did before".into()));
    }
    let id = Uuid::new_v4();
    let display = name
        .or_else(|| identity.name.clone())
        .unwrap_or_else(|| email.split('@').next().unwrap_or("member").to_owned());
    queries::add_user(tx, id, user_type, &email, &display.chars().take(100).collect::<String>())
        .await
        // The email was free when checked above, so another sign-in took it since: two first
        // sign-ins of one person at once (two tabs). The unique index lets one commit.
        .map_err(lost_race_on("users_email_live"))?;
    // The identity may still lead to a closed account. Read with that account under lock, so
    // neither changes before this transaction ends.
    match queries::lock_link(tx, provider, subject).await? {
        // Linked to a live account since the lookup above: another sign-in of this identity won.
        Some(queries::Link { closed: false, .. }) => Err(lost_race()),
        // It moves to the new account; the closed one keeps its history, and the caller audits
        // the move. The link's `created_at` stays that of the identity's first sign-in.
        Some(queries::Link { user_id: closed, closed: true }) => {
            queries::move_link(tx, provider, subject, id).await?;
            Ok((id, Some(closed)))
        }
        None => {
            queries::add_link(tx, provider, subject, id)
                .await
                // Another sign-in of this identity linked it first.
                .map_err(lost_race_on("identities_pkey"))?;
            Ok((id, None))
        }
    }
}
