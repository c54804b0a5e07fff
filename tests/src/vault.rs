//! An HTTP double of HashiCorp Vault's Transit engine, speaking its documented request and
//! response bodies (`POST /v1/transit/encrypt/:name`, `POST /v1/transit/decrypt/:name`,
//! `GET /v1/transit/keys/:name`, the `{"data": …}` envelope and `{"errors": […]}` failures).
//! Its "ciphertext" is the plaintext and associated data in base64 behind Vault's
//! `vault:vN:` prefix: it checks the wire format and the error paths, not cryptography.
//! Real Vault cannot be installed on these machines (see the README).

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

pub const TOKEN: &str = "s.test-token";
pub const KEY: &str = "secondwind-phi";

#[derive(Default)]
pub struct State {
    pub sealed: AtomicBool,
    pub latest: AtomicI32,
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
        if request.headers.get("x-vault-token").and_then(|v| v.to_str().ok()) != Some(TOKEN) {
            return error(403, "permission denied");
        }
        let latest = self.0.latest.load(Ordering::SeqCst);
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        match self.1 {
            "encrypt" => {
                let inner = json!({"p": body["plaintext"], "ad": body["associated_data"]});
                envelope(
                    json!({"ciphertext": format!("vault:v{latest}:{}", STANDARD.encode(inner.to_string())), "key_version": latest}),
                )
            }
            "decrypt" => {
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
                envelope(json!({"plaintext": inner["p"]}))
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
            }
        }
    }
}

impl TransitDouble {
    pub async fn start() -> Self {
        let server = MockServer::start().await;
        let state = Arc::new(State { sealed: AtomicBool::new(false), latest: AtomicI32::new(1) });
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
            token: common::Secret::new(TOKEN.into()),
            mount: "transit".into(),
            key: KEY.into(),
            timeout_secs: 5,
        }
    }

    /// Like `vault write -f transit/keys/<key>/rotate`.
    pub fn rotate(&self) {
        self.state.latest.fetch_add(1, Ordering::SeqCst);
    }

    pub fn seal(&self, sealed: bool) {
        self.state.sealed.store(sealed, Ordering::SeqCst);
    }
}
