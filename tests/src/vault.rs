//! An HTTP double of HashiCorp Vault's Transit engine, speaking its documented request and
//! response bodies (`POST /v1/transit/encrypt/:name`, `POST /v1/transit/decrypt/:name`,
//! `GET /v1/transit/keys/:name`, the `{"data": …}` envelope and `{"errors": […]}` failures).
//! Its "ciphertext" is the plaintext and associated data in base64 behind Vault's
//! `vault:vN:` prefix: it checks the wire format and the error paths, not cryptography.
//! Real Vault cannot be installed on these machines (see docs/components.md).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

pub const TOKEN: &str = "s.test-token";
pub const KEY: &str = "secondwind-phi";
pub const ROLE_ID: &str = "phi-vault-role";
pub const SECRET_ID: &str = "phi-vault-secret";

#[derive(Default)]
pub struct State {
    pub sealed: AtomicBool,
    pub latest: AtomicI32,
    /// Tokens issued by AppRole login, with their expiry. `TOKEN` never expires.
    pub issued: Mutex<HashMap<String, Instant>>,
    /// The lease of issued tokens, in seconds.
    pub lease_secs: AtomicU64,
    pub logins: AtomicU32,
    pub renewals: AtomicU32,
    /// Refuse renewals (as Vault does past a token's max TTL).
    pub refuse_renewal: AtomicBool,
    /// How long past its lease an issued token is still honoured, in seconds: a test that
    /// counts renewals sets it, so a busy machine's late renewal is still a renewal.
    pub grace_secs: AtomicU64,
    /// How long the Transit routes (encrypt, decrypt, key read) take to answer, in
    /// milliseconds: a slow or distant Vault. Each request waits on its own.
    pub delay_ms: AtomicU64,
    /// Transit decrypt requests received (counted on arrival, before any delay).
    pub decrypts: AtomicU32,
    /// Transit encrypt requests received (counted on arrival, before any delay).
    pub encrypts: AtomicU32,
}

impl State {
    /// When a token issued or renewed now stops being accepted.
    fn valid_until(&self) -> Instant {
        Instant::now()
            + Duration::from_secs(self.lease_secs.load(Ordering::SeqCst) + self.grace_secs.load(Ordering::SeqCst))
    }

    fn token_ok(&self, request: &Request) -> Option<String> {
        let token = request.headers.get("x-vault-token").and_then(|v| v.to_str().ok())?.to_owned();
        if token == TOKEN {
            return Some(token);
        }
        let issued = self.issued.lock().ok()?;
        issued.get(&token).is_some_and(|expiry| Instant::now() < *expiry).then_some(token)
    }

    fn auth(&self, token: &str) -> ResponseTemplate {
        let lease = self.lease_secs.load(Ordering::SeqCst);
        ResponseTemplate::new(200).set_body_json(json!({
            "request_id": "00000000-0000-0000-0000-000000000001", "lease_id": "", "renewable": false,
            "lease_duration": 0, "data": null, "wrap_info": null, "warnings": null,
            "auth": {
                "client_token": token, "accessor": "accessor", "policies": ["default", "phi-vault"],
                "token_policies": ["default", "phi-vault"], "metadata": {"role_name": "phi-vault"},
                "lease_duration": lease, "renewable": true, "entity_id": "entity", "token_type": "service",
                "orphan": true
            }
        }))
    }
}

pub struct TransitDouble {
    pub server: MockServer,
    pub state: Arc<State>,
}

fn envelope(data: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "request_id": "00000000-0000-0000-0000-000000000000", "lease_id": "", "renewable": false,
        "lease_duration": 0, "data": data, "wrap_info": null, "warnings": null, "auth": null
    }))
}

fn error(status: u16, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({ "errors": [message] }))
}

struct Transit(Arc<State>, &'static str);

impl Respond for Transit {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        if self.0.sealed.load(Ordering::SeqCst) {
            return error(503, "Vault is sealed");
        }
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        if self.1 == "login" {
            if body["role_id"] != ROLE_ID || body["secret_id"] != SECRET_ID {
                return error(400, "invalid role or secret ID");
            }
            let n = self.0.logins.fetch_add(1, Ordering::SeqCst) + 1;
            let token = format!("s.approle-{n}");
            if let Ok(mut issued) = self.0.issued.lock() {
                issued.insert(token.clone(), self.0.valid_until());
            }
            return self.0.auth(&token);
        }
        let Some(token) = self.0.token_ok(request) else {
            return error(403, "permission denied");
        };
        let latest = self.0.latest.load(Ordering::SeqCst);
        let delay = Duration::from_millis(self.0.delay_ms.load(Ordering::SeqCst));
        match self.1 {
            "renew-self" => {
                if self.0.refuse_renewal.load(Ordering::SeqCst) || token == TOKEN {
                    return error(400, "lease is not renewable");
                }
                self.0.renewals.fetch_add(1, Ordering::SeqCst);
                if let Ok(mut issued) = self.0.issued.lock() {
                    issued.insert(token.clone(), self.0.valid_until());
                }
                self.0.auth(&token)
            }
            "lookup-self" => {
                let (ttl, renewable) =
                    if token == TOKEN { (0, false) } else { (self.0.lease_secs.load(Ordering::SeqCst), true) };
                envelope(json!({
                    "accessor": "accessor", "creation_time": 1_700_000_000u64, "creation_ttl": ttl,
                    "display_name": "token", "entity_id": "", "expire_time": null, "explicit_max_ttl": 0,
                    "id": token, "identity_policies": null, "issue_time": null, "meta": null, "num_uses": 0,
                    "orphan": true, "path": "auth/token/create", "policies": ["phi-vault"],
                    "renewable": renewable, "role": null, "ttl": ttl
                }))
            }
            "encrypt" => {
                self.0.encrypts.fetch_add(1, Ordering::SeqCst);
                let inner = json!({"p": body["plaintext"], "ad": body["associated_data"]});
                envelope(
                    json!({"ciphertext": format!("vault:v{latest}:{}", STANDARD.encode(inner.to_string())), "key_version": latest}),
                )
                .set_delay(delay)
            }
            "decrypt" => {
                self.0.decrypts.fetch_add(1, Ordering::SeqCst);
                let ciphertext = body["ciphertext"].as_str().unwrap_or_default();
                let Some((version, payload)) = ciphertext.strip_prefix("vault:v").and_then(|r| r.split_once(':'))
                else {
                    return error(400, "invalid ciphertext: no prefix");
                };
                if version.parse::<i32>().map_or(true, |v| v > latest) {
                    return error(400, "invalid key version");
                }
                let inner: Value =
                    STANDARD.decode(payload).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or(Value::Null);
                if inner["ad"] != body["associated_data"] {
                    return error(400, "cipher: message authentication failed");
                }
                envelope(json!({"plaintext": inner["p"]})).set_delay(delay)
            }
            _ => {
                let keys: serde_json::Map<String, Value> =
                    (1..=latest).map(|v| (v.to_string(), json!(1_700_000_000 + v))).collect();
                envelope(json!({
                    "type": "aes256-gcm96", "deletion_allowed": false, "derived": false, "exportable": false,
                    "allow_plaintext_backup": false, "keys": keys, "min_decryption_version": 1,
                    "min_encryption_version": 0, "name": KEY, "supports_encryption": true,
                    "supports_decryption": true, "supports_derivation": true, "supports_signing": false,
                    "imported": false, "latest_version": latest
                }))
                .set_delay(delay)
            }
        }
    }
}

impl TransitDouble {
    pub async fn start() -> Self {
        let server = MockServer::start().await;
        let state = Arc::new(State { latest: AtomicI32::new(1), lease_secs: AtomicU64::new(3600), ..State::default() });
        for (verb, route, op) in [
            ("POST", "/v1/auth/approle/login", "login"),
            ("POST", "/v1/auth/token/renew-self", "renew-self"),
            ("GET", "/v1/auth/token/lookup-self", "lookup-self"),
        ] {
            Mock::given(method(verb)).and(path(route)).respond_with(Transit(state.clone(), op)).mount(&server).await;
        }
        for (verb, op) in [("POST", "encrypt"), ("POST", "decrypt")] {
            Mock::given(method(verb))
                .and(path(format!("/v1/transit/{op}/{KEY}")))
                .respond_with(Transit(state.clone(), op))
                .mount(&server)
                .await;
        }
        Mock::given(method("GET"))
            .and(path(format!("/v1/transit/keys/{KEY}")))
            .respond_with(Transit(state.clone(), "read"))
            .mount(&server)
            .await;
        // Any other key: Vault's answer for a key that does not exist.
        Mock::given(path_regex(r"^/v1/transit/(encrypt|decrypt|keys)/.+$"))
            .respond_with(error(400, "encryption key not found"))
            .with_priority(10)
            .mount(&server)
            .await;
        Self { server, state }
    }

    pub fn settings(&self) -> phi_vault::vault_transit::VaultSettings {
        phi_vault::vault_transit::VaultSettings {
            address: self.server.uri(),
            token: Some(common::Secret::new(TOKEN.into())),
            approle: None,
            mount: "transit".into(),
            key: KEY.into(),
            timeout_secs: 5,
        }
    }

    /// Like `vault write -f transit/keys/<key>/rotate`.
    pub fn rotate(&self) {
        self.state.latest.fetch_add(1, Ordering::SeqCst);
    }

    /// Settings that log in with AppRole instead of a token; the secret id is written to
    /// `dir/vault-secret-id` (mode 0600).
    pub fn approle_settings(&self, dir: &std::path::Path) -> phi_vault::vault_transit::VaultSettings {
        let file = dir.join("vault-secret-id");
        common::keys::write_secret_file(&file, SECRET_ID).expect("secret id file");
        phi_vault::vault_transit::VaultSettings {
            token: None,
            approle: Some(phi_vault::vault_transit::AppRoleSettings {
                mount: "approle".into(),
                role_id: ROLE_ID.into(),
                secret_id_file: file,
            }),
            ..self.settings()
        }
    }

    pub fn seal(&self, sealed: bool) {
        self.state.sealed.store(sealed, Ordering::SeqCst);
    }

    /// Makes every Transit answer (wrap, unwrap, key read) arrive after `delay`.
    pub fn answer_after(&self, delay: Duration) {
        self.state.delay_ms.store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    pub fn decrypts(&self) -> u32 {
        self.state.decrypts.load(Ordering::SeqCst)
    }
}

/// Stores `count` subjects, each with one identity record (`content`), straight into the PHI
/// database, their data keys wrapped by `provider`: subjects that no running phi-vault has in
/// its key cache, so their first read unwraps through the provider. Returns (subject, record).
pub async fn seed_uncached_subjects(
    phi: &sqlx::PgPool,
    provider: &dyn phi_vault::crypto::KeyProvider,
    count: usize,
    content: &Value,
) -> Vec<(uuid::Uuid, uuid::Uuid)> {
    use phi_vault::crypto::{self, Binding, DataKey};
    let plaintext = serde_json::to_vec(content).expect("json");
    let mut seeded = Vec::with_capacity(count);
    for _ in 0..count {
        let (subject, record) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        let key = DataKey::generate().expect("key");
        let wrapped = provider.wrap(subject, &key).await.expect("wrap");
        let binding = Binding { subject, record, category: "identity", field: "content" };
        let (nonce, ciphertext) = crypto::seal(&key, binding, &plaintext).expect("seal");
        let mut tx = phi.begin().await.expect("begin");
        sqlx::query("INSERT INTO subjects (id, wrapped_data_key, kek_id, kek_version) VALUES ($1, $2, $3, $4)")
            .bind(subject)
            .bind(&wrapped.ciphertext)
            .bind(&wrapped.kek_id)
            .bind(wrapped.kek_version)
            .execute(&mut *tx)
            .await
            .expect("subject");
        sqlx::query(
            "INSERT INTO records (id, subject_id, category, nonce, ciphertext, created_by) \
             VALUES ($1, $2, 'identity', $3, $4, 'seed')",
        )
        .bind(record)
        .bind(subject)
        .bind(nonce)
        .bind(ciphertext)
        .execute(&mut *tx)
        .await
        .expect("record");
        tx.commit().await.expect("commit");
        seeded.push((subject, record));
    }
    seeded
}
