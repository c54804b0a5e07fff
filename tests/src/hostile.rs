//! A hostile peer: signs internal assertions with any claims, using a service's real key, and
//! mints user access and delegation tokens with the test app's user-token key. It is what a thief
//! of those keys (or a compromised public-api, which holds both) can do; tests use it to prove
//! what the callee refuses anyway.

use common::assertion::{body_hash, Claims, Role};
use common::ServiceName;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::Value;
use uuid::Uuid;

use crate::check::now;
use crate::TestApp;

/// One forged request: where it goes, what it carries, and the claims its assertion will hold.
/// Every field is public so a test can bend any of them.
#[derive(Clone)]
pub struct ForgedCall {
    pub base_url: String,
    pub method: reqwest::Method,
    /// The path and query the request is sent to.
    pub path: String,
    pub body: Option<Vec<u8>>,
    /// The `x-request-id` header sent (the claims' `request_id` starts equal to it).
    pub request_id: String,
    pub claims: Claims,
    key: Vec<u8>,
    kid: String,
}

impl TestApp {
    /// A call from `caller` (signed with its real key) to `callee`, correctly bound to `method`
    /// and `path`, acting as the service itself for a health check until told otherwise.
    pub fn forge(&self, caller: ServiceName, callee: ServiceName, method: reqwest::Method, path: &str) -> ForgedCall {
        let request_id = format!("forged-{}", Uuid::new_v4().simple());
        let claims = Claims {
            iss: caller,
            aud: callee,
            sub: common::assertion::SYSTEM.into(),
            sid: None,
            role: Role::Service,
            purpose: "health_check".into(),
            request_id: request_id.clone(),
            reason: None,
            htm: method.as_str().to_owned(),
            htu: path.to_owned(),
            bsh: body_hash(b""),
            delegation: None,
            iat: now(),
            exp: now() + 30,
            jti: Uuid::new_v4().to_string(),
        };
        ForgedCall {
            base_url: self.service(callee).url.clone(),
            method,
            path: path.to_owned(),
            body: None,
            request_id,
            claims,
            key: self.keys.private_key(caller),
            kid: caller.as_str().to_owned(),
        }
    }

    /// A user access token as public-api would issue it (the test app's signing key), for any
    /// user, session and roles.
    pub fn mint_user_token(&self, user: Uuid, session: Uuid, roles: &[&str]) -> String {
        let keys = public_api::auth::TokenKeys::load(&self.keys.auth_settings()).expect("token keys");
        let roles = roles.iter().map(|r| common::UserRole::parse(r).expect("a role")).collect();
        keys.issue(user, session, roles).expect("token")
    }

    /// What mints delegation tokens in public-api (the test app's signing key).
    pub fn delegation_signer(&self) -> std::sync::Arc<common::user_token::DelegationSigner> {
        let keys = public_api::auth::TokenKeys::load(&self.keys.auth_settings()).expect("token keys");
        std::sync::Arc::new(keys.delegation_signer())
    }
}

impl ForgedCall {
    /// Acts as `user` in `role` for `purpose`, carrying a delegation token for this assertion of
    /// that user holding that role (what a compromised public-api can produce for anyone).
    pub fn as_user(mut self, app: &TestApp, user: Uuid, role: Role, purpose: &str) -> Self {
        let session = Uuid::new_v4();
        self.claims.sub = user.to_string();
        self.claims.sid = Some(session.to_string());
        self.claims.role = role;
        self.claims.purpose = purpose.to_owned();
        self.claims.delegation = Some(self.delegate(app, user, session, role));
        self
    }

    /// A delegation token for this call's caller, audience and `jti`, of any user, session and role.
    pub fn delegate(&self, app: &TestApp, user: Uuid, session: Uuid, role: Role) -> String {
        app.delegation_signer()
            .mint(user, session, role, self.claims.iss, self.claims.aud, &self.claims.jti, self.claims.exp)
            .expect("delegation token")
    }

    /// Sends `body` as JSON and binds the assertion to it.
    pub fn json(mut self, body: &Value) -> Self {
        let bytes = serde_json::to_vec(body).expect("json");
        self.claims.bsh = body_hash(&bytes);
        self.body = Some(bytes);
        self
    }

    /// The assertion for the current claims, signed with the caller's real key.
    pub fn token(&self) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &self.claims, &EncodingKey::from_ed_der(&self.key)).expect("sign")
    }

    /// Sends the request with its own assertion.
    pub async fn send(&self) -> (u16, Value) {
        self.send_with(&self.token()).await
    }

    /// Sends the request with `token` as its assertion (a replayed or tampered one).
    pub async fn send_with(&self, token: &str) -> (u16, Value) {
        // One client for every forged call (building one loads the system's trust roots).
        static HTTP: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
        let http = HTTP.get_or_init(|| {
            reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client")
        });
        let mut request = http
            .request(self.method.clone(), format!("{}{}", self.base_url, self.path))
            .bearer_auth(token)
            .header("x-request-id", &self.request_id);
        if let Some(body) = &self.body {
            request = request.header("content-type", "application/json").body(body.clone());
        }
        let response = request.send().await.expect("send");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }
}
