//! Helpers for signed-in test clients.

use serde_json::Value;

use crate::{TestApp, ORIGIN};

/// A signed-in user: their access token and refresh cookie value.
#[derive(Debug, Clone)]
pub struct Login {
    pub access_token: String,
    pub refresh: String,
    pub user_id: String,
    pub session_id: String,
}

/// The `sw_refresh` value from a response's Set-Cookie, checking its attributes.
pub fn refresh_cookie(response: &reqwest::Response) -> Option<String> {
    response.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).find_map(|c| {
        let value = c.strip_prefix("sw_refresh=")?.split(';').next()?.to_owned();
        if value.is_empty() {
            return None;
        }
        for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/api/v1/auth"] {
            assert!(c.contains(attribute), "refresh cookie lacks {attribute}: {c}");
        }
        Some(value)
    })
}

fn login_from(body: &Value, refresh: String) -> Login {
    Login {
        access_token: body["access_token"].as_str().expect("access_token").to_owned(),
        refresh,
        user_id: body["user_id"].as_str().expect("user_id").to_owned(),
        session_id: body["session_id"].as_str().expect("session_id").to_owned(),
    }
}

impl TestApp {
    pub fn api(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.public_api.url)
    }

    /// Signs in as a seeded demo user through the dev login.
    pub async fn dev_login(&self, user: &str) -> Login {
        let response = self
            .http
            .post(self.api("/auth/dev-login"))
            .json(&serde_json::json!({ "user": user }))
            .send()
            .await
            .expect("dev-login");
        assert_eq!(response.status(), 200, "dev-login as {user}");
        let refresh = refresh_cookie(&response).expect("refresh cookie");
        let body: Value = response.json().await.expect("json");
        login_from(&body, refresh)
    }

    /// Presents a refresh token from the allowed origin.
    pub async fn refresh(&self, refresh: &str) -> reqwest::Response {
        self.http
            .post(self.api("/auth/refresh"))
            .header("origin", ORIGIN)
            .header("cookie", format!("sw_refresh={refresh}"))
            .send()
            .await
            .expect("refresh")
    }

    /// Refreshes and expects success.
    pub async fn refreshed(&self, refresh: &str) -> Login {
        let response = self.refresh(refresh).await;
        assert_eq!(response.status(), 200, "refresh");
        let cookie = refresh_cookie(&response).expect("rotated cookie");
        let body: Value = response.json().await.expect("json");
        login_from(&body, cookie)
    }

    pub async fn get_as(&self, token: &str, path: &str) -> reqwest::Response {
        self.http.get(self.api(path)).bearer_auth(token).send().await.expect("get")
    }
}

impl TestApp {
    /// A phi-vault client signing as public-api, acting for `sub` in `role` (delegating as
    /// public-api would for a signed-in person): how a test reaches the vault's internal routes
    /// directly. The purpose is the role's usual one.
    pub fn vault_as(&self, sub: &str, role: &str) -> (common::client::PhiVaultClient, common::assertion::CallContext) {
        let role: common::Role = serde_json::from_value(Value::String(role.into())).expect("a role");
        let purpose = match role {
            common::Role::Beneficiary => "self_service",
            common::Role::ComplianceOfficer => "compliance_review",
            common::Role::Admin => "care_team_assignment",
            common::Role::Partner => "housing_placement",
            common::Role::Insurer => "payment",
            _ => "treatment",
        };
        (self.vault_client(), self.user_call(sub, role, purpose))
    }

    /// The context of a call made for `sub` in `role` for `purpose`, delegating as public-api
    /// would for a signed-in person holding that role.
    pub fn user_call(&self, sub: &str, role: common::Role, purpose: &str) -> common::assertion::CallContext {
        let delegation = common::assertion::Delegation {
            user: uuid::Uuid::parse_str(sub).expect("a user id"),
            session: uuid::Uuid::new_v4(),
            signer: self.delegation_signer(),
        };
        #[allow(clippy::disallowed_methods)] // tests stand in for public-api's role guards
        common::assertion::CallContext::user(role, purpose, common::RequestId::generate(), delegation)
    }

    /// A phi-vault client signing as public-api.
    pub fn vault_client(&self) -> common::client::PhiVaultClient {
        common::client::PhiVaultClient::new(
            self.internal_client(common::ServiceName::PublicApi, common::ServiceName::PhiVault),
        )
    }
}

/// A beneficiary identity profile, valid for `PUT /beneficiaries/me/profile`.
pub fn sample_profile() -> Value {
    serde_json::json!({
        "legal_name": "Jordan Q. Example",
        "date_of_birth": "1988-04-12",
        "phone": "+1 (303) 555-0142",
        "emergency_contact": {"name": "Riley Example", "phone": "303-555-0199", "relationship": "sibling"}
    })
}

impl TestApp {
    /// Stores the sample profile as `who`, expecting 200.
    pub async fn put_sample_profile(&self, who: &Login) {
        let put = self
            .http
            .put(self.api("/beneficiaries/me/profile"))
            .bearer_auth(&who.access_token)
            .json(&sample_profile())
            .send()
            .await
            .expect("put profile");
        assert_eq!(put.status(), 200, "storing the profile");
    }
}

/// The people most scenarios need, signed in: a beneficiary, an admin and a caseworker through
/// the dev login, and another beneficiary (a fresh account) to try someone else's ids with.
pub struct People {
    pub beneficiary: Login,
    pub admin: Login,
    pub caseworker: Login,
    pub other: Login,
}

impl People {
    /// Their clients: beneficiary, admin, caseworker, other.
    pub fn clients<'a>(&'a self, app: &'a TestApp) -> [crate::client::Client<'a>; 4] {
        [&self.beneficiary, &self.admin, &self.caseworker, &self.other].map(|who| crate::client::Client { app, who })
    }
}

impl TestApp {
    /// Signs in [`People`].
    pub async fn people(&self) -> People {
        let beneficiary = self.dev_login("beneficiary").await;
        let admin = self.dev_login("admin").await;
        let caseworker = self.dev_login("caseworker").await;
        let public =
            sqlx::PgPool::connect(&self.database(common::db::Database::Public).app_url()).await.expect("public db");
        let (other_id, other_token) = self.new_beneficiary_token(&public).await;
        public.close().await;
        let other = Login { access_token: other_token, user_id: other_id.to_string(), ..beneficiary.clone() };
        People { beneficiary, admin, caseworker, other }
    }

    /// Creates a beneficiary with a session and returns an access token for it, without going
    /// through a sign-in route (which is rate limited): for load runs that need many users.
    pub async fn new_beneficiary_token(&self, public: &sqlx::PgPool) -> (uuid::Uuid, String) {
        let user = uuid::Uuid::new_v4();
        let mut tx = public.begin().await.expect("begin");
        sqlx::query(
            "INSERT INTO users (id, user_type, email, display_name, roles) VALUES ($1, 'beneficiary', $2, 'Load', '{}')",
        )
        .bind(user)
        .bind(format!("load+{user}@secondwind.invalid"))
        .execute(&mut *tx)
        .await
        .expect("user");
        let (session, _) = public_api::auth::sessions::create(&mut tx, user, 1, None, None).await.expect("session");
        tx.commit().await.expect("commit");
        let keys = public_api::auth::TokenKeys::load(&self.keys.auth_settings()).expect("token keys");
        (user, keys.issue(user, session, vec![common::UserRole::Beneficiary]).expect("token"))
    }
}

impl TestApp {
    /// A signed channel from `caller` (with its real key) to `callee`.
    pub fn internal_client(
        &self,
        caller: common::ServiceName,
        callee: common::ServiceName,
    ) -> common::client::InternalClient {
        self.internal_client_at(caller, callee, &self.service(callee).url)
    }

    /// Like `internal_client`, to one particular instance of `callee` at `url`.
    pub fn internal_client_at(
        &self,
        caller: common::ServiceName,
        callee: common::ServiceName,
        url: &str,
    ) -> common::client::InternalClient {
        let signer = common::assertion::Signer::new(caller, &self.keys.private_key(caller), 30);
        common::client::InternalClient::new(callee, url, std::sync::Arc::new(signer), std::time::Duration::from_secs(5))
            .expect("client")
    }
}
