//! Internal-call assertions: a short-lived EdDSA JWT each service signs for every call it makes,
//! good for that one request only.
//!
//! Claims: `iss` caller, `aud` callee, `sub` acting user (or `system`), `sid` the user's session,
//! `role`, `purpose`, `request_id`, `exp` at most 60 s ahead, a single-use `jti`, and the request
//! it was made for (as DPoP, RFC 9449, binds `htm`/`htu`): `htm` the method, `htu` the path with
//! its query exactly as sent, `bsh` the SHA-256 of the body (base64url). When a person acts, a
//! delegation token rides inside (`delegation`, [`crate::user_token`]): minted by public-api's
//! user-token key after it verified that person, for this callee and this assertion only. So a
//! service's internal key alone cannot act as a user, and a leaked assertion carries no token
//! usable anywhere else.
//!
//! The callee ([`InternalCall`], the only way a handler obtains verified claims) checks the
//! signature with the caller's public key, the audience and lifetime, the request id, the method,
//! path and query, that a body is present exactly when the assertion covers one (the JSON body
//! guard, [`crate::json::Body`], then compares the hash of the bytes it reads), the allowlist
//! (caller and purpose, `policies/internal-calls.toml`), the delegation token where it verifies them,
//! and finally spends the `jti` in its database: an assertion is accepted once, across every
//! instance of the callee.

mod guard;
mod sign;
mod verify;

pub use guard::*;
pub use sign::*;
pub use verify::*;

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rocket::http::Status;
use rocket::request::{FromRequest, Outcome};
use rocket::Request;
use serde::{Deserialize, Serialize};

use crate::error::ErrorMessage;
use crate::policy::{CallPolicy, Denied};
use crate::user_token::{DelegationSigner, UserTokenVerifier};
use crate::{RequestId, ServiceName};

/// How long a break-glass justification (the `reason` claim) must be, in characters.
pub const BREAK_GLASS_REASON_CHARS: std::ops::RangeInclusive<usize> = 10..=500;
/// The longest lifetime an assertion may claim.
pub const MAX_TTL_SECS: i64 = 60;
/// Clock skew tolerated between services.
const LEEWAY_SECS: u64 = 5;
/// `sub` of calls no user started.
pub const SYSTEM: &str = "system";

pub use crate::role::Role;

#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub iss: ServiceName,
    pub aud: ServiceName,
    /// The acting user's id, or `system` for calls no user started.
    pub sub: String,
    /// The acting user's session, when a user acts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    pub role: Role,
    pub purpose: String,
    pub request_id: String,
    /// A written justification the caller must give for some purposes (break-glass access).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The request this assertion is for: method, path with query, SHA-256 of the body.
    pub htm: String,
    pub htu: String,
    pub bsh: String,
    /// The acting person's delegation token (for this callee and this assertion only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegation: Option<String>,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

impl std::fmt::Debug for Claims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claims")
            .field("iss", &self.iss)
            .field("aud", &self.aud)
            .field("sub", &self.sub)
            .field("sid", &self.sid)
            .field("role", &self.role)
            .field("purpose", &self.purpose)
            .field("request_id", &self.request_id)
            .field("htm", &self.htm)
            .field("htu", &self.htu)
            .field("delegation", &self.delegation.as_ref().map(|_| "[redacted]"))
            .field("jti", &self.jti)
            .finish_non_exhaustive()
    }
}

/// A person's standing as public-api verified it, to be delegated to each call made for them.
#[derive(Clone)]
pub struct Delegation {
    pub user: uuid::Uuid,
    pub session: uuid::Uuid,
    pub signer: std::sync::Arc<DelegationSigner>,
}

impl std::fmt::Debug for Delegation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delegation").field("user", &self.user).field("session", &self.session).finish_non_exhaustive()
    }
}

/// Who is acting and why; carried into every internal call. Built by [`CallContext::system`], by
/// [`CallContext::on_behalf_of`] in a service relaying a verified call, and, for people, only by
/// public-api's role guards through [`CallContext::user`].
#[derive(Debug, Clone)]
pub struct CallContext {
    sub: String,
    sid: Option<uuid::Uuid>,
    role: Role,
    purpose: String,
    request_id: RequestId,
    reason: Option<String>,
    delegation: Option<Delegation>,
}

impl CallContext {
    /// A person acting in `role`, with their standing to delegate. public-api calls this only
    /// from its role guards (clippy's `disallowed-methods` keeps it there), so the role a call
    /// carries is the role a guard checked.
    pub fn user(role: Role, purpose: &str, request_id: RequestId, delegation: Delegation) -> Self {
        Self {
            sub: delegation.user.to_string(),
            sid: Some(delegation.session),
            role,
            purpose: purpose.into(),
            request_id,
            reason: None,
            delegation: Some(delegation),
        }
    }

    /// A further call on behalf of the same verified caller (a service asking its own peer while
    /// serving a request): same user, role, session and request id, for `purpose`; no reason
    /// and no user token (the peer trusts the relaying service, not the user).
    pub fn on_behalf_of(claims: &Claims, purpose: &str) -> Self {
        Self {
            sub: claims.sub.clone(),
            sid: claims.sid.as_deref().and_then(|s| s.parse().ok()),
            role: claims.role,
            purpose: purpose.into(),
            request_id: RequestId(claims.request_id.clone()),
            reason: None,
            delegation: None,
        }
    }

    /// A call the service makes on its own behalf (health checks, background jobs).
    pub fn system(purpose: &str, request_id: RequestId) -> Self {
        Self {
            sub: SYSTEM.into(),
            sid: None,
            role: Role::Service,
            purpose: purpose.into(),
            request_id,
            reason: None,
            delegation: None,
        }
    }

    /// The written reason of a break-glass access.
    pub fn with_reason(mut self, reason: String) -> Self {
        self.reason = Some(reason);
        self
    }

    pub fn request_id(&self) -> &RequestId {
        &self.request_id
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn purpose(&self) -> &str {
        &self.purpose
    }

    pub fn sub(&self) -> &str {
        &self.sub
    }
}

/// The request an assertion is made for.
#[derive(Debug, Clone, Copy)]
pub struct RequestBinding<'a> {
    pub method: &'a str,
    /// The path and query exactly as sent (`/internal/v1/records/…?category=identity`).
    pub path_and_query: &'a str,
    pub body: &'a [u8],
}

/// base64url (no padding) of the SHA-256 of `body`: the `bsh` claim.
pub fn body_hash(body: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, body))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ring::signature::{Ed25519KeyPair, KeyPair as _};

    use super::*;

    /// An Ed25519 key: PKCS#8 to sign with, the raw public key to verify with.
    struct Key {
        pkcs8: Vec<u8>,
        public: [u8; 32],
    }

    fn key() -> Key {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).expect("key").as_ref().to_vec();
        let pair = Ed25519KeyPair::from_pkcs8(&pkcs8).expect("pkcs8");
        let public = pair.public_key().as_ref().try_into().expect("32 bytes");
        Key { pkcs8, public }
    }

    const POLICY: &str = r#"
        [purposes]
        health_check = ["service"]
        self_service = ["beneficiary"]
        treatment = ["caseworker"]
        disclosure_decision = ["partner"]

        [phi-vault."GET /internal/v1/records/<id>"]
        callers = ["public-api"]
        purposes = ["self_service", "health_check", "treatment"]

        [phi-vault."POST /internal/v1/records"]
        callers = ["public-api"]
        purposes = ["self_service"]

        [consent."POST /internal/v1/decisions"]
        callers = ["public-api", "phi-vault"]
        purposes = ["disclosure_decision"]
        relayed_by = ["phi-vault"]
    "#;
    const READ: &str = "/internal/v1/records/<id>";
    const READ_URI: &str = "/internal/v1/records/8d1c?category=identity";
    const USER_TOKEN_ISSUER: &str = "secondwind-public-api";

    /// public-api (internal key and user-token key), phi-vault (its internal key), and the two
    /// callees as they verify: both require a person's delegation token.
    struct World {
        public_api: Key,
        public_api_signer: Signer,
        phi_vault_signer: Signer,
        delegation: Arc<DelegationSigner>,
        vault: Verifier,
        consent: Verifier,
        user: uuid::Uuid,
        session: uuid::Uuid,
        request_id: RequestId,
    }

    fn world() -> World {
        let (public_api, phi_vault, user_key) = (key(), key(), key());
        let policy = CallPolicy::parse(POLICY).expect("policy");
        let user_tokens = || UserTokenVerifier::new(USER_TOKEN_ISSUER, [("u1".to_owned(), user_key.public)]);
        let vault = Verifier::new(
            ServiceName::PhiVault,
            HashMap::from([(ServiceName::PublicApi, public_api.public)]),
            policy.clone(),
        )
        .requiring_user_tokens(user_tokens());
        let consent = Verifier::new(
            ServiceName::Consent,
            HashMap::from([(ServiceName::PublicApi, public_api.public), (ServiceName::PhiVault, phi_vault.public)]),
            policy,
        )
        .requiring_user_tokens(user_tokens());
        World {
            public_api_signer: Signer::new(ServiceName::PublicApi, &public_api.pkcs8, 30),
            phi_vault_signer: Signer::new(ServiceName::PhiVault, &phi_vault.pkcs8, 30),
            public_api,
            delegation: Arc::new(DelegationSigner::new(
                USER_TOKEN_ISSUER,
                "u1",
                EncodingKey::from_ed_der(&user_key.pkcs8),
            )),
            vault,
            consent,
            user: uuid::Uuid::new_v4(),
            session: uuid::Uuid::new_v4(),
            request_id: RequestId("req-1".into()),
        }
    }

    impl World {
        fn person(&self, role: Role, purpose: &str) -> CallContext {
            let delegation = Delegation { user: self.user, session: self.session, signer: self.delegation.clone() };
            #[allow(clippy::disallowed_methods)] // the test stands in for public-api's role guards
            CallContext::user(role, purpose, self.request_id.clone(), delegation)
        }

        /// A beneficiary reading their own record, as public-api signs it.
        fn read_token(&self) -> String {
            let binding = RequestBinding { method: "GET", path_and_query: READ_URI, body: b"" };
            self.public_api_signer
                .sign(ServiceName::PhiVault, &self.person(Role::Beneficiary, "self_service"), binding)
                .expect("sign")
        }

        fn read_as_presented(&self) -> Presented<'_> {
            Presented {
                method: "GET",
                route: READ,
                path_and_query: READ_URI,
                has_body: false,
                request_id: &self.request_id,
            }
        }

        /// The claims of a good read, to forge variations of.
        fn read_claims(&self) -> Claims {
            self.vault.verify(&self.read_token(), &self.read_as_presented()).expect("a good read verifies")
        }

        /// The claims of a good health check (a service's own call: no person, no delegation).
        fn system_claims(&self) -> Claims {
            let binding = RequestBinding { method: "GET", path_and_query: READ_URI, body: b"" };
            let ctx = CallContext::system("health_check", self.request_id.clone());
            let token = self.public_api_signer.sign(ServiceName::PhiVault, &ctx, binding).expect("sign");
            self.vault.verify(&token, &self.read_as_presented()).expect("a system call verifies")
        }

        /// `claims` signed with public-api's own internal key (what a thief of that key could sign).
        fn sign_as_public_api(&self, claims: &Claims) -> String {
            sign_raw(claims, "public-api", &self.public_api.pkcs8)
        }

        fn read_refusal(&self, claims: &Claims) -> String {
            match self.vault.verify(&self.sign_as_public_api(claims), &self.read_as_presented()) {
                Err(Refusal::Invalid(reason)) => reason,
                other => panic!("expected an invalid assertion, got {other:?}"),
            }
        }
    }

    fn sign_raw(claims: &Claims, kid: &str, pkcs8: &[u8]) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_der(pkcs8)).expect("encode")
    }

    fn now() -> i64 {
        time::OffsetDateTime::now_utc().unix_timestamp()
    }

    #[test]
    fn a_call_verifies_with_what_its_caller_signed() {
        let w = world();
        let claims = w.read_claims();
        assert_eq!(
            w.vault.policy().purposes_for(ServiceName::PhiVault, &format!("GET {READ}"), Role::Beneficiary),
            ["self_service"]
        );
        assert_eq!((claims.iss, claims.aud), (ServiceName::PublicApi, ServiceName::PhiVault));
        assert_eq!(claims.sub, w.user.to_string());
        assert_eq!(claims.sid, Some(w.session.to_string()));
        assert_eq!((claims.role, claims.purpose.as_str()), (Role::Beneficiary, "self_service"));
        assert_eq!((claims.htm.as_str(), claims.htu.as_str()), ("GET", READ_URI));
        assert_eq!((claims.bsh.as_str(), claims.request_id.as_str()), (body_hash(b"").as_str(), "req-1"));
        assert_eq!((claims.exp - claims.iat, claims.reason.as_deref()), (30, None));
        assert!(claims.delegation.is_some());

        let ctx = w.person(Role::Beneficiary, "self_service");
        assert_eq!(
            (ctx.sub(), ctx.role(), ctx.purpose()),
            (w.user.to_string().as_str(), Role::Beneficiary, "self_service")
        );
        assert_eq!(ctx.request_id(), &w.request_id);
        let relayed = CallContext::on_behalf_of(&claims, "disclosure_decision");
        assert_eq!(
            (relayed.sub(), relayed.role(), relayed.purpose()),
            (claims.sub.as_str(), claims.role, "disclosure_decision")
        );
        assert_eq!((relayed.sid, relayed.request_id()), (Some(w.session), &w.request_id));
        assert!(relayed.delegation.is_none() && relayed.reason.is_none());

        // A break-glass reason rides in the claims.
        let reason = "patient unresponsive in the ER".to_owned();
        let binding = RequestBinding { method: "GET", path_and_query: READ_URI, body: b"" };
        let ctx = w.person(Role::Caseworker, "treatment").with_reason(reason.clone());
        let token = w.public_api_signer.sign(ServiceName::PhiVault, &ctx, binding).expect("sign");
        assert_eq!(w.vault.verify(&token, &w.read_as_presented()).expect("verifies").reason, Some(reason));
    }

    #[test]
    fn a_signer_asks_for_at_most_sixty_seconds_and_at_least_one() {
        let k = key();
        for (asked, got) in [(0, 1), (1, 1), (45, 45), (60, 60), (3600, 60), (u64::MAX, 60)] {
            let signer = Signer::new(ServiceName::PublicApi, &k.pkcs8, asked);
            assert_eq!((signer.ttl_secs, signer.service()), (got, ServiceName::PublicApi), "asked for {asked}");
        }
    }

    #[test]
    fn an_assertion_is_good_only_for_the_request_it_was_made_for() {
        let w = world();
        let token = w.read_token();
        let good = w.read_as_presented();
        let other_id = RequestId("req-2".into());
        let cases = [
            (Presented { method: "POST", ..good }, "made for method GET"),
            (Presented { path_and_query: "/internal/v1/records/ffff?category=identity", ..good }, "another path"),
            (Presented { path_and_query: "/internal/v1/records/8d1c?category=contact", ..good }, "another path"),
            (Presented { has_body: true, ..good }, "body hash"),
            (Presented { request_id: &other_id, ..good }, "request id"),
        ];
        for (presented, why) in cases {
            match w.vault.verify(&token, &presented) {
                Err(Refusal::Invalid(reason)) => assert!(reason.contains(why), "{reason} (wanted {why})"),
                other => panic!("{presented:?} gave {other:?}"),
            }
        }

        // An assertion covering a body is refused on a request that carries none.
        let binding = RequestBinding { method: "POST", path_and_query: "/internal/v1/records", body: b"{}" };
        let write = w
            .public_api_signer
            .sign(ServiceName::PhiVault, &w.person(Role::Beneficiary, "self_service"), binding)
            .expect("sign");
        let post = Presented {
            method: "POST",
            route: "/internal/v1/records",
            path_and_query: "/internal/v1/records",
            has_body: true,
            ..good
        };
        assert_eq!(w.vault.verify(&write, &post).expect("with its body").bsh, body_hash(b"{}"));
        assert!(
            matches!(w.vault.verify(&write, &Presented { has_body: false, ..post }), Err(Refusal::Invalid(r)) if r.contains("body hash"))
        );
    }

    #[test]
    fn forged_malformed_and_misdirected_tokens_are_refused() {
        let w = world();
        let presented = w.read_as_presented();
        let claims = w.read_claims();
        let refusal = |token: &str| match w.vault.verify(token, &presented) {
            Err(Refusal::Invalid(reason)) => reason,
            other => panic!("expected an invalid assertion, got {other:?}"),
        };
        assert!(refusal("not.a.token").starts_with("header"));

        let mut hs = Header::new(Algorithm::HS256);
        hs.kid = Some("public-api".into());
        let shared_secret =
            jsonwebtoken::encode(&hs, &claims, &EncodingKey::from_secret(&w.public_api.public)).expect("hs256");
        assert!(refusal(&shared_secret).contains("not EdDSA"));

        let mut no_kid = Header::new(Algorithm::EdDSA);
        no_kid.kid = None;
        let unnamed =
            jsonwebtoken::encode(&no_kid, &claims, &EncodingKey::from_ed_der(&w.public_api.pkcs8)).expect("encode");
        assert_eq!(refusal(&unnamed), "no kid");
        assert!(refusal(&sign_raw(&claims, "mallory", &w.public_api.pkcs8)).contains("mallory"));
        assert!(refusal(&sign_raw(&claims, "consent", &w.public_api.pkcs8)).contains("no key for caller consent"));
        // public-api's name on a stranger's signature.
        assert_eq!(refusal(&sign_raw(&claims, "public-api", &key().pkcs8)), "InvalidSignature");
        // Made for another callee, or claiming another issuer than the key that signed it (a
        // service's call, so no delegation token's own checks could refuse it first).
        let system = w.system_claims();
        assert_eq!(
            refusal(&w.sign_as_public_api(&Claims { aud: ServiceName::Consent, ..system.clone() })),
            "InvalidAudience"
        );
        assert_eq!(
            refusal(&w.sign_as_public_api(&Claims { iss: ServiceName::PhiVault, ..system.clone() })),
            "InvalidIssuer"
        );
        // Expired (beyond the leeway).
        let t = now();
        assert_eq!(refusal(&w.sign_as_public_api(&Claims { iat: t - 100, exp: t - 40, ..system })), "ExpiredSignature");
    }

    #[test]
    fn lifetimes_jtis_and_issue_times_have_bounds() {
        let w = world();
        let claims = w.read_claims();
        // Judged at a fixed `now`, so a second ticking over cannot move a boundary.
        let t = now();
        let judged = |c: &Claims| w.vault.verify_at(&w.sign_as_public_api(c), &w.read_as_presented(), t);
        let accepted = |c: &Claims| judged(c).is_ok();
        let refusal = |c: &Claims| match judged(c) {
            Err(Refusal::Invalid(reason)) => reason,
            other => panic!("expected an invalid assertion, got {other:?}"),
        };
        // The whole lifetime is at most 60 s.
        assert!(accepted(&Claims { iat: t - 10, exp: t + 50, ..claims.clone() }));
        assert!(refusal(&Claims { iat: t - 11, exp: t + 50, ..claims.clone() }).contains("lifetime"));
        // Nor may it end more than 60 s (and the leeway) from now, even when it starts later.
        assert!(refusal(&Claims { iat: t + 4, exp: t + 64 + 30, ..claims.clone() }).contains("lifetime"));
        assert!(refusal(&Claims { iat: t + 40, exp: t + 70 + 5, ..claims.clone() }).contains("lifetime"));
        // Issued at the edge of the leeway, ending exactly 60 s (and the leeway) from now: the
        // latest a clock running ahead may sign.
        assert!(accepted(&Claims { iat: t + 5, exp: t + 65, ..claims.clone() }));
        // It may not be issued in the future, beyond the leeway.
        assert!(accepted(&Claims { iat: t + 2, exp: t + 40, ..claims.clone() }));
        assert!(refusal(&Claims { iat: t + 30, exp: t + 40, ..claims.clone() }).contains("future"));
        // The jti is 1 to 64 characters.
        let jti = "j".repeat(64);
        let delegation = w.delegation.mint(
            w.user,
            w.session,
            Role::Beneficiary,
            ServiceName::PublicApi,
            ServiceName::PhiVault,
            &jti,
            t + 30,
        );
        assert!(accepted(&Claims { delegation: Some(delegation.expect("mint")), jti, ..claims.clone() }));
        // An `iat` so far back that the lifetime would wrap to a small number.
        assert!(refusal(&Claims { iat: i64::MIN, exp: t + 30, ..claims.clone() }).contains("lifetime"));
        for jti in [String::new(), "j".repeat(65)] {
            assert!(refusal(&Claims { jti, ..claims.clone() }).contains("jti"));
        }
    }

    #[test]
    fn a_service_acts_only_as_system() {
        let w = world();
        let system = CallContext::system("health_check", w.request_id.clone());
        let binding = RequestBinding { method: "GET", path_and_query: READ_URI, body: b"" };
        let token = w.public_api_signer.sign(ServiceName::PhiVault, &system, binding).expect("sign");
        let claims = w.vault.verify(&token, &w.read_as_presented()).expect("a system call verifies");
        assert_eq!((claims.sub.as_str(), claims.sid.as_deref(), claims.role), (SYSTEM, None, Role::Service));
        assert!(claims.delegation.is_none());

        let as_user = Claims { sub: w.user.to_string(), ..claims.clone() };
        assert!(w.read_refusal(&as_user).contains("never as a user"));
        let with_session = Claims { sid: Some(w.session.to_string()), ..claims };
        assert!(w.read_refusal(&with_session).contains("never as a user"));
    }

    #[test]
    fn a_person_acts_only_through_their_own_delegation_token() {
        let w = world();
        let claims = w.read_claims();
        let delegation = |user, session, role, caller, callee, jti: &str| {
            Some(w.delegation.mint(user, session, role, caller, callee, jti, now() + 30).expect("mint"))
        };
        let (pa, pv) = (ServiceName::PublicApi, ServiceName::PhiVault);
        let (user, session, role, jti) = (w.user, w.session, Role::Beneficiary, claims.jti.as_str());
        let other = uuid::Uuid::new_v4();
        let cases = [
            (None, "no delegation token"),
            (Some("garbage".to_owned()), "delegation token:"),
            (delegation(user, session, role, pa, ServiceName::Consent, jti), "delegation token:"),
            (delegation(user, session, role, pa, pv, "another-jti"), "another assertion's"),
            (delegation(user, session, role, pv, pv, jti), "another assertion's"),
            (delegation(other, session, role, pa, pv, jti), "another user's"),
            (delegation(user, other, role, pa, pv, jti), "another session's"),
            (delegation(user, session, Role::Caseworker, pa, pv, jti), "not for role beneficiary"),
        ];
        for (token, why) in cases {
            let reason = w.read_refusal(&Claims { delegation: token, ..claims.clone() });
            assert!(reason.contains(why), "{reason} (wanted {why})");
        }
        // The delegation token must be minted with public-api's user-token key.
        let stranger = DelegationSigner::new(USER_TOKEN_ISSUER, "u1", EncodingKey::from_ed_der(&key().pkcs8));
        let forged = stranger.mint(user, session, role, pa, pv, jti, now() + 30).expect("mint");
        assert!(w.read_refusal(&Claims { delegation: Some(forged), ..claims.clone() }).contains("delegation token:"));
        // A session the token does not name.
        // A person's call names their account and session, as ids.
        let braced = format!("{{{}}}", w.user);
        for unnamed in [
            Claims { sid: None, ..claims.clone() },
            Claims { sub: "system".into(), ..claims.clone() },
            Claims { sub: w.user.to_string().to_uppercase(), ..claims.clone() },
            Claims { sub: braced, ..claims.clone() },
        ] {
            assert!(w.read_refusal(&unnamed).contains("names no user and session"), "{unnamed:?}");
        }

        // A callee that does not ask for user tokens takes the service's word.
        let lenient = Verifier::new(
            ServiceName::PhiVault,
            HashMap::from([(ServiceName::PublicApi, w.public_api.public)]),
            CallPolicy::parse(POLICY).expect("policy"),
        );
        let bare = w.sign_as_public_api(&Claims { delegation: None, ..claims });
        assert!(lenient.verify(&bare, &w.read_as_presented()).is_ok());
    }

    #[test]
    fn only_a_listed_relay_carries_a_person_without_their_token() {
        let w = world();
        let decisions = "/internal/v1/decisions";
        let presented = Presented {
            method: "POST",
            route: decisions,
            path_and_query: decisions,
            has_body: true,
            request_id: &w.request_id,
        };
        let binding = RequestBinding { method: "POST", path_and_query: decisions, body: b"{}" };
        let served = Claims { role: Role::Partner, ..w.read_claims() };
        let relayed = CallContext::on_behalf_of(&served, "disclosure_decision");
        let token = w.phi_vault_signer.sign(ServiceName::Consent, &relayed, binding).expect("sign");
        let claims = w.consent.verify(&token, &presented).expect("phi-vault relays a partner's call");
        assert_eq!(
            (claims.iss, claims.sub.as_str(), claims.role),
            (ServiceName::PhiVault, served.sub.as_str(), Role::Partner)
        );
        assert!(claims.delegation.is_none());

        // A relay still names the person it serves, by account and session.
        for unnamed in [Claims { sid: None, ..served.clone() }, Claims { sub: SYSTEM.into(), ..served.clone() }] {
            let ctx = CallContext::on_behalf_of(&unnamed, "disclosure_decision");
            let token = w.phi_vault_signer.sign(ServiceName::Consent, &ctx, binding).expect("sign");
            assert!(
                matches!(w.consent.verify(&token, &presented), Err(Refusal::Invalid(r)) if r.contains("names no user and session")),
                "{unnamed:?}"
            );
        }

        // public-api is a caller of the same route but no relay: a person's call needs their token.
        let token = w.public_api_signer.sign(ServiceName::Consent, &relayed, binding).expect("sign");
        assert!(matches!(w.consent.verify(&token, &presented), Err(Refusal::Invalid(r)) if r == "no delegation token"));
    }

    #[test]
    fn the_allowlist_refuses_with_forbidden() {
        let w = world();
        let good = w.read_as_presented();
        let sign = |ctx: &CallContext, method: &str| {
            let binding = RequestBinding { method, path_and_query: READ_URI, body: b"" };
            w.public_api_signer.sign(ServiceName::PhiVault, ctx, binding).expect("sign")
        };
        let beneficiary = sign(&w.person(Role::Beneficiary, "self_service"), "DELETE");
        let refused =
            w.vault.verify(&beneficiary, &Presented { method: "DELETE", ..good }).expect_err("unlisted route");
        assert_eq!(refused, Refusal::NotAllowed { caller: ServiceName::PublicApi, route: format!("DELETE {READ}") });
        let wrong_purpose = sign(&w.person(Role::Partner, "disclosure_decision"), "GET");
        let refused = w.vault.verify(&wrong_purpose, &good).expect_err("purpose the route does not serve");
        assert_eq!(refused, Refusal::Purpose { purpose: "disclosure_decision".into(), route: format!("GET {READ}") });
        let wrong_role = sign(&w.person(Role::Beneficiary, "treatment"), "GET");
        let refused = w.vault.verify(&wrong_role, &good).expect_err("purpose not for the role");
        assert_eq!(refused, Refusal::PurposeRole { purpose: "treatment".into(), role: Role::Beneficiary });

        for refusal in [
            Refusal::NotAllowed { caller: ServiceName::PublicApi, route: READ.into() },
            Refusal::Purpose { purpose: "x".into(), route: READ.into() },
            Refusal::PurposeRole { purpose: "x".into(), role: Role::Donor },
        ] {
            assert_eq!(refusal.status(), Status::Forbidden, "{refusal}");
        }
        for refusal in [Refusal::Missing, Refusal::Invalid("x".into()), Refusal::Replayed("j".into())] {
            assert_eq!(refusal.status(), Status::Unauthorized, "{refusal}");
        }
        assert_eq!(Refusal::Unavailable("db".into()).status(), Status::ServiceUnavailable);
    }

    #[test]
    fn a_streamed_body_is_accepted_only_with_its_seal() {
        let w = world();
        let uri = "/internal/v1/records";
        let ctx = w.person(Role::Beneficiary, "self_service");
        let (token, seal) = w.public_api_signer.sign_streamed(ServiceName::PhiVault, &ctx, "POST", uri).expect("sign");
        let presented =
            Presented { method: "POST", route: uri, path_and_query: uri, has_body: true, request_id: &w.request_id };
        let claims = w.vault.verify(&token, &presented).expect("verifies");
        assert_eq!(claims.bsh, STREAMED_BODY);

        let digest = ring::digest::digest(&ring::digest::SHA256, b"the body").as_ref().to_vec();
        let sealed = seal.seal(&digest, 8);
        assert_eq!(w.vault.check_stream(&claims, &digest, 8, &sealed), Ok(()));
        let other_digest = ring::digest::digest(&ring::digest::SHA256, b"the bodY").as_ref().to_vec();
        assert!(w.vault.check_stream(&claims, &other_digest, 8, &sealed).is_err());
        assert!(w.vault.check_stream(&claims, &digest, 7, &sealed).is_err());
        assert!(w.vault.check_stream(&claims, &digest, 8, &sealed[..63]).is_err());
        // The seal belongs to its own assertion, from its own caller.
        assert!(w.vault.check_stream(&Claims { jti: "other".into(), ..claims.clone() }, &digest, 8, &sealed).is_err());
        assert!(w
            .vault
            .check_stream(&Claims { iss: ServiceName::Consent, ..claims.clone() }, &digest, 8, &sealed)
            .is_err());
        // An assertion for an ordinary body never passes as a streamed one.
        let not_streamed = Claims { bsh: body_hash(b"the body"), ..claims };
        assert!(
            matches!(w.vault.check_stream(&not_streamed, &digest, 8, &sealed), Err(Refusal::Invalid(r)) if r.contains("not for a streamed body"))
        );
    }

    #[test]
    fn roles_have_their_wire_names_and_only_service_is_no_person() {
        let roles = [
            (Role::Beneficiary, "beneficiary"),
            (Role::Donor, "donor"),
            (Role::Partner, "partner"),
            (Role::Insurer, "insurer"),
            (Role::Caseworker, "caseworker"),
            (Role::Admin, "admin"),
            (Role::ComplianceOfficer, "compliance_officer"),
            (Role::Service, "service"),
        ];
        for (role, name) in roles {
            assert_eq!((role.as_str(), role.to_string()), (name, name.to_owned()));
            assert_eq!(serde_json::to_value(role).expect("json"), serde_json::json!(name));
            assert_eq!(role.is_user(), role != Role::Service, "{role}");
        }
    }

    #[test]
    fn the_body_hash_is_sha256_base64url() {
        assert_eq!(body_hash(b""), "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU");
        assert_ne!(body_hash(b"{}"), body_hash(b"{ }"));
    }

    #[test]
    fn claims_never_print_the_delegation_token() {
        let claims = Claims {
            iss: ServiceName::PublicApi,
            aud: ServiceName::PhiVault,
            sub: "u".into(),
            sid: None,
            role: Role::Beneficiary,
            purpose: "self_service".into(),
            request_id: "r".into(),
            reason: None,
            htm: "GET".into(),
            htu: "/".into(),
            bsh: body_hash(b""),
            delegation: Some("eyJ.secret.token".into()),
            iat: 0,
            exp: 0,
            jti: "j".into(),
        };
        let printed = format!("{claims:?}");
        assert!(!printed.contains("secret"), "{printed}");
        assert!(printed.contains("delegation: Some(\"[redacted]\")") && printed.contains("jti: \"j\""), "{printed}");

        let w = world();
        let delegation = Delegation { user: w.user, session: w.session, signer: w.delegation.clone() };
        assert_eq!(format!("{delegation:?}"), format!("Delegation {{ user: {}, session: {}, .. }}", w.user, w.session));
    }
}
