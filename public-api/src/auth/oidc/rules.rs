//! The sign-in flows' fixed rules: how long an attempt lasts, who may sign up, how errors of a
//! provider or of a lost race answer, and Apple's first-sign-in name.

use common::ApiError;

use super::provider::OidcError;

/// A sign-in attempt stays usable this long.
pub(super) const ATTEMPT_TTL_SECS: i64 = 600;
/// The account types a sign-up may choose.
pub(super) const SIGN_UP_TYPES: [&str; 3] = ["donor", "beneficiary", "partner"];
/// Device sign-ins in progress at once, across all providers.
pub(super) const MAX_LIVE_DEVICE_LOGINS: i64 = 1000;
/// How long a poll holds its claim while it waits on the provider (its HTTP timeout is 10 s).
pub(super) const POLL_LEASE_SECS: i32 = 15;

/// What a provider's failure answers: an unknown provider is 404, an unreachable one 503.
pub(super) fn provider_error(e: OidcError) -> ApiError {
    match e {
        OidcError::UnknownProvider => ApiError::NotFound,
        OidcError::Unreachable(m) => ApiError::Unavailable(format!("identity provider: {m}")),
        other => ApiError::internal(other),
    }
}

/// Apple's first-sign-in `user` field: `{"name":{"firstName":…,"lastName":…}}`.
pub(super) fn apple_name(user: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(user).ok()?;
    let first = v["name"]["firstName"].as_str().unwrap_or_default();
    let last = v["name"]["lastName"].as_str().unwrap_or_default();
    let name = format!("{first} {last}").trim().to_owned();
    (!name.is_empty()).then_some(name)
}

/// A secret as stored (the device's handle, the browser's pre-sign-in value): its SHA-256.
pub(super) fn secret_hash(secret: &str) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, secret.as_bytes()).as_ref().to_vec()
}

/// The pre-sign-in cookie binding a web sign-in to the browser that started it. `__Host-`:
/// only this origin, over HTTPS, on path `/`, can set it, so no other site or subdomain can
/// plant one. Lives as long as an attempt.
pub(super) const BROWSER_COOKIE: &str = "__Host-sw_signin";

/// Whether a cookie value can be a binding this service made (43 base64url characters, 32
/// random bytes); anything else is replaced by a fresh one.
pub(super) fn is_binding(value: &str) -> bool {
    value.len() == 43 && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// What the loser of two simultaneous first sign-ins is told: signing in again finds the account
/// the other one made. Refused as a taken email is (409, audited), not as a fault.
pub(super) const SIGN_IN_AGAIN: &str = "another sign-in created this account at the same moment; sign in again";

pub(super) fn lost_race() -> ApiError {
    ApiError::Conflict(SIGN_IN_AGAIN.into())
}

/// A write's error: the lost race where it broke `constraint`, else what it was.
pub(super) fn lost_race_on(constraint: &'static str) -> impl Fn(sqlx::Error) -> ApiError {
    move |e| match &e {
        sqlx::Error::Database(d) if d.constraint() == Some(constraint) => lost_race(),
        _ => e.into(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn apple_sends_the_name_once_as_json() {
        assert_eq!(
            super::apple_name(r#"{"name":{"firstName":"Ana","lastName":"Ruiz"},"email":"x"}"#).as_deref(),
            Some("Ana Ruiz")
        );
        assert_eq!(super::apple_name("not json"), None);
        assert_eq!(super::apple_name(r#"{"email":"x"}"#), None);
    }

    #[test]
    fn a_binding_is_32_random_bytes_in_base64url() {
        let fresh = openidconnect::CsrfToken::new_random_len(32);
        assert!(super::is_binding(fresh.secret()), "what /start makes passes");
        assert!(!super::is_binding(""));
        assert!(!super::is_binding(&"a".repeat(42)));
        assert!(!super::is_binding(&"a".repeat(44)));
        assert!(!super::is_binding(&format!("{}=", "a".repeat(42))));
        assert!(!super::is_binding(&format!("{};", "a".repeat(42))));
    }
}
