//! TLS 1.3 on every listener and mutual TLS between the services, with a throwaway internal CA
//! (`harness::tls`): the whole chain works over it; a TLS 1.2 client, a client without a
//! certificate (at phi-vault and consent), a certificate from another CA, and a caller whose
//! certificate names another service than its assertion are each refused.

use std::sync::Arc;
use std::time::Duration;

use common::assertion::{CallContext, Signer};
use common::client::{ClientError, InternalClient, PhiVaultClient};
use common::config::Profile;
use common::{RequestId, ServiceName};
use harness::tls::TestCerts;
use harness::TestApp;
use serde_json::Value;

const SERVICES: [&str; 3] = ["public-api", "phi-vault", "consent"];

/// An internal client signing as `caller` and presenting the certificate of `holder`.
fn internal(app: &TestApp, certs: &TestCerts, caller: ServiceName, holder: ServiceName) -> PhiVaultClient {
    let signer = Arc::new(Signer::new(caller, &app.keys.private_key(caller), 30));
    let tls = certs.client_tls(&certs.config(holder, true));
    let client =
        InternalClient::with_tls(ServiceName::PhiVault, &app.phi_vault.url, signer, Duration::from_secs(5), Some(&tls))
            .expect("client");
    PhiVaultClient::new(client)
}

#[tokio::test]
async fn the_services_speak_tls_1_3_and_call_each_other_over_mutual_tls() {
    common::install_crypto_provider();
    let certs = TestCerts::new(&SERVICES);
    let app = TestApp::spawn_tls(&certs).await;
    for running in [&app.public_api, &app.phi_vault, &app.consent] {
        assert!(running.url.starts_with("https://"), "{}", running.url);
    }
    // The whole chain answers: public-api → phi-vault → consent and public-api → consent, each
    // a signed call over mutual TLS; then a person's own call through it.
    let ready = app.http.get(format!("{}/ready", app.public_api.url)).send().await.expect("ready");
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.expect("json");
    assert_eq!(body["ready"], true, "{body}");
    let donor = app.dev_login("donor").await;
    assert_eq!(app.get_as(&donor.access_token, "/users/me").await.status(), 200);

    // TLS 1.2 and below: no listener completes the handshake.
    for (running, name) in [(&app.public_api, "public-api"), (&app.phi_vault, "phi-vault"), (&app.consent, "consent")] {
        let old = certs
            .client(Some(certs.identity("ca", name)))
            .tls_version_max(reqwest::tls::Version::TLS_1_2)
            .build()
            .expect("client");
        let refused = old.get(format!("{}/health", running.url)).send().await;
        assert!(refused.is_err(), "{name} answered a TLS 1.2 client: {refused:?}");
        let current = certs.client(Some(certs.identity("ca", name))).build().expect("client");
        let health = current.get(format!("{}/health", running.url)).send().await.expect("TLS 1.3 health");
        assert_eq!(health.status(), 200, "{name}");
        assert_eq!(health.version(), reqwest::Version::HTTP_11);
    }

    // phi-vault and consent refuse, during the handshake, a client without a certificate, or
    // with one from another CA; public-api (browsers) does not ask for one.
    let anonymous = certs.client(None).build().expect("client");
    let foreign = certs.client(Some(certs.identity("other-ca", "public-api"))).build().expect("client");
    for running in [&app.phi_vault, &app.consent] {
        let url = format!("{}/health", running.url);
        assert!(anonymous.get(&url).send().await.is_err(), "{url} answered a client without a certificate");
        assert!(foreign.get(&url).send().await.is_err(), "{url} answered another CA's certificate");
    }
    let browser = anonymous.get(format!("{}/health", app.public_api.url)).send().await.expect("health");
    assert_eq!(browser.status(), 200);

    // A valid assertion from public-api, sent with consent's certificate, is refused: the
    // signing key alone does not make a caller. With its own certificate the same call passes.
    let ctx = || CallContext::system("health_check", RequestId::generate());
    let wrong = internal(&app, &certs, ServiceName::PublicApi, ServiceName::Consent).ready(&ctx()).await;
    assert!(matches!(wrong, Err(ClientError::Status { status: 401, .. })), "{wrong:?}");
    assert!(harness::logs().iter().any(|l| l["message"] == "internal call refused"
        && l["reason"].as_str().is_some_and(|r| r.contains("client certificate names Some(\"consent\")"))));
    let right = internal(&app, &certs, ServiceName::PublicApi, ServiceName::PublicApi).ready(&ctx()).await;
    assert!(right.expect("public-api with its own certificate").ready);
    app.stop().await;
}

#[tokio::test]
async fn production_refuses_to_start_without_tls_or_without_mutual_tls_internally() {
    let certs = TestCerts::new(&SERVICES);
    let app = TestApp::spawn().await;
    let mut consent =
        harness::consent_config(app.database(common::db::Database::Consent).app_url(), &app.keys, &Default::default());
    consent.profile = Profile::Production;
    consent.tls = Some(certs.config(ServiceName::Consent, false));
    let Err(err) = consent::build(consent).await else { panic!("production consent started without mutual TLS") };
    assert!(err.to_string().contains("tls.mutual"), "{err}");

    // A production configuration file without [tls] is refused at load.
    let figment = rocket::figment::Figment::from(rocket::figment::providers::Serialized::defaults(serde_json::json!({
        "profile": "production",
        "server": {"address": "127.0.0.1", "port": 8102, "json_limit_bytes": 65536},
        "database": {"url": "postgres://sw_consent@db/consent?sslmode=verify-full&sslrootcert=/ca.pem",
                     "max_connections": 5, "connect_timeout_secs": 5},
        "log": {"level": "info"},
        "internal": {"signing_key_file": "k", "policy_file": "p", "assertion_ttl_secs": 30, "request_timeout_secs": 5},
    })));
    let err = consent::ConsentConfig::from_figment(figment).expect_err("production refuses no TLS").to_string();
    assert!(err.contains("`tls`") && err.contains("TLS 1.3"), "{err}");
    app.stop().await;
}
