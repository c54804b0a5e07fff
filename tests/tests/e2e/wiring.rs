//! The wiring, not only the functions: what each service starts for itself (the shred
//! listener, the retention timer), what the production profile refuses at start-up, who may
//! scrape metrics there, and which client address a service believes.

use common::config::{ConfigError, Profile};
use common::db::Database;
use common::service::StartError;
use common::ServiceName;
use harness::check::eventually;
use harness::TestApp;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The backends in the phi database holding a `LISTEN` (each phi-vault instance's shred listener).
async fn listeners(su: &sqlx::PgPool) -> Vec<i32> {
    sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query ILIKE 'listen%' \
         AND pid <> pg_backend_pid()",
    )
    .fetch_all(su)
    .await
    .expect("pg_stat_activity")
}

#[tokio::test]
async fn a_shred_on_one_instance_evicts_the_key_from_anothers_cache_through_its_own_listener() {
    let app = TestApp::spawn().await;
    let b = app.another_phi_vault().await;
    let b_cache = b.key_cache.clone().expect("phi-vault's key cache");
    let on_b = common::client::PhiVaultClient::new(app.internal_client_at(
        ServiceName::PublicApi,
        ServiceName::PhiVault,
        &b.url,
    ));
    let su = sqlx::PgPool::connect(&app.database(Database::Phi).url_as("postgres")).await.expect("superuser");
    assert!(eventually(Duration::from_secs(30), || async { listeners(&su).await.len() == 2 }).await, "A and B listen");

    // Each subject's record is written on A and read on B, which keeps the key in its cache.
    let (on_a, _) = app.vault_as(&uuid::Uuid::nil().to_string(), "beneficiary");
    let cache_on_b = |subject: uuid::Uuid| {
        let (on_a, on_b) = (on_a.clone(), on_b.clone());
        let (a_ctx, b_ctx) = (
            app.user_call(&subject.to_string(), common::Role::Beneficiary, "self_service"),
            app.user_call(&subject.to_string(), common::Role::Beneficiary, "self_service"),
        );
        async move {
            let record = common::client::NewRecord {
                subject_id: subject,
                category: "insurance".into(),
                content: json!({"member": "M-1"}),
                expires_at: None,
            };
            let created = on_a.create_record(&a_ctx, &record).await.expect("create on A");
            on_b.read_record(&b_ctx, created.record_id).await.expect("read on B");
        }
    };
    let (x, y) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    cache_on_b(x).await;
    cache_on_b(y).await;
    assert!(b_cache.get(x).is_some() && b_cache.get(y).is_some(), "B holds both keys");

    // An admin shreds x on A: B's own listener hears it and drops x's key, and only x's.
    let admin = app.dev_login("admin").await;
    let shred = |subject: uuid::Uuid| {
        let ctx = app.user_call(&admin.user_id, common::Role::Admin, "erasure");
        let on_a = on_a.clone();
        async move { on_a.shred_subject(&ctx, subject).await.expect("shred on A") }
    };
    shred(x).await;
    assert!(eventually(Duration::from_secs(30), || async { b_cache.get(x).is_none() }).await, "B evicted x");
    assert!(b_cache.get(y).is_some(), "B keeps the keys of subjects nobody shredded");

    // Cut the listening connections: notices may have been missed, so B clears its whole cache.
    let cut = listeners(&su).await;
    for pid in &cut {
        sqlx::query("SELECT pg_terminate_backend($1)").bind(pid).execute(&su).await.expect("terminate");
    }
    assert!(eventually(Duration::from_secs(30), || async { b_cache.get(y).is_none() }).await, "B cleared its cache");

    // The listeners come back by themselves, and the next shred reaches B again.
    // Two new listeners (a terminated backend may linger in pg_stat_activity for a moment).
    let fresh = || async { listeners(&su).await.iter().filter(|pid| !cut.contains(pid)).count() == 2 };
    assert!(eventually(Duration::from_secs(60), fresh).await, "listening again");
    let z = uuid::Uuid::new_v4();
    cache_on_b(z).await;
    cache_on_b(y).await;
    shred(z).await;
    assert!(eventually(Duration::from_secs(30), || async { b_cache.get(z).is_none() }).await, "B evicted z");
    assert!(b_cache.get(y).is_some());

    b.shutdown.clone().notify();
    su.close().await;
    app.stop().await;
}

#[tokio::test]
async fn the_retention_job_purges_expired_records_on_its_own_timer() {
    let app = TestApp::spawn_configured(|_| {}, |phi| phi.service.retention_interval_secs = 1).await;
    let subject = uuid::Uuid::new_v4();
    let (vault, ctx) = app.vault_as(&subject.to_string(), "beneficiary");
    let new = |expires_at| common::client::NewRecord {
        subject_id: subject,
        category: "intake_conversation".into(),
        content: json!({"messages": ["hi"]}),
        expires_at,
    };
    let past = time::OffsetDateTime::now_utc() - time::Duration::minutes(1);
    let expired = vault.create_record(&ctx, &new(Some(past))).await.expect("create").record_id;
    let kept = vault.create_record(&ctx, &new(None)).await.expect("create").record_id;

    // Nothing here calls the purge: the service's own job does, within a few intervals.
    let pool = sqlx::PgPool::connect(&app.database(Database::Phi).app_url()).await.expect("pool");
    let ids = || async {
        sqlx::query_scalar::<_, uuid::Uuid>("SELECT id FROM records ORDER BY id").fetch_all(&pool).await.expect("ids")
    };
    assert!(eventually(Duration::from_secs(60), || async { ids().await == vec![kept] }).await, "purged on time");
    let purged: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT record_id FROM access_log WHERE action = 'record.purge'")
        .fetch_all(&pool)
        .await
        .expect("log");
    assert_eq!(purged, vec![expired], "the purge is in the access log, once");
    pool.close().await;
    app.stop().await;
}

/// What a start-up refusal names: the configuration key.
fn refused_key(result: Result<rocket::Rocket<rocket::Build>, StartError>) -> String {
    match result {
        Err(StartError::Config(ConfigError::Invalid { key, .. })) => key,
        Err(other) => panic!("refused for another reason: {other}"),
        Ok(_) => panic!("started"),
    }
}

#[tokio::test]
async fn the_production_profile_refuses_what_only_dev_allows() {
    let app = TestApp::spawn().await;
    let vault_double = harness::vault::TransitDouble::start().await;
    let dir = std::env::temp_dir().join(format!("secondwind-production-{}", app.id));
    std::fs::create_dir_all(&dir).expect("dir");

    type PhiChange = Box<dyn Fn(&mut phi_vault::PhiVaultConfig)>;
    let vault = vault_double.approle_settings(&dir);
    let mut https_vault = vault.clone();
    https_vault.address = https_vault.address.replace("http://", "https://");
    let phi_cases: Vec<(&str, PhiChange, &str)> = vec![
        ("a key file", Box::new(|_| {}), "service.kek_file"),
        (
            "a key file beside Vault",
            {
                let vault = https_vault.clone();
                Box::new(move |c| c.service.vault = Some(vault.clone()))
            },
            "service.kek_file",
        ),
        (
            "an http Vault",
            {
                let vault = vault.clone();
                Box::new(move |c| {
                    c.service.kek_file = None;
                    c.service.vault = Some(vault.clone());
                })
            },
            "service.vault.address",
        ),
    ];
    for (what, change, key) in phi_cases {
        let mut config = app.phi_config.clone();
        config.profile = Profile::Production;
        change(&mut config);
        assert_eq!(refused_key(phi_vault::build(config).await), key, "phi-vault with {what}");
    }
    // The same key file beside Vault is refused in dev too; alone, dev accepts it (the app runs).
    let mut both = app.phi_config.clone();
    both.service.vault = Some(https_vault.clone());
    assert_eq!(refused_key(phi_vault::build(both).await), "service.kek_file");

    type PublicChange = Box<dyn Fn(&mut public_api::PublicApiConfig)>;
    let provider = |issuer: &str, redirect: &str| public_api::auth::oidc::OidcProviderConfig {
        issuer: issuer.into(),
        client_id: "secondwind".into(),
        client_secret: Some(common::Secret::new("secret".into())),
        redirect_uri: redirect.into(),
        scopes: vec!["openid".into(), "email".into()],
        apple: None,
        device_flow: false,
        device_client_id: None,
        device_client_secret: None,
    };
    let with_provider = |entry: public_api::auth::oidc::OidcProviderConfig| -> PublicChange {
        Box::new(move |c| {
            c.service.auth.oidc.insert("idp".into(), entry.clone());
        })
    };
    let public_cases: Vec<(&str, PublicChange, &str)> = vec![
        ("the dev login", Box::new(|c| c.service.auth.dev_login = true), "service.auth.dev_login"),
        (
            "an http issuer",
            with_provider(provider("http://idp.example.org", "https://app.example.org/auth/callback")),
            "service.auth.oidc",
        ),
        (
            "an http redirect",
            with_provider(provider("https://idp.example.org", "http://app.example.org/auth/callback")),
            "service.auth.oidc",
        ),
    ];
    for (what, change, key) in public_cases {
        let mut config = app.public_config.clone();
        config.profile = Profile::Production;
        config.service.auth.dev_login = false;
        // The harness's own provider is plain http: only the row's entry may be present.
        config.service.auth.oidc.clear();
        change(&mut config);
        assert_eq!(refused_key(public_api::build(config).await), key, "public-api with {what}");
    }
    // An https provider is accepted in production (start-up gets past the check).
    let mut config = app.public_config.clone();
    config.profile = Profile::Production;
    config.service.auth.dev_login = false;
    config.service.auth.oidc.clear();
    with_provider(provider("https://idp.example.org", "https://app.example.org/auth/callback"))(&mut config);
    assert!(public_api::build(config).await.is_ok(), "an https provider is accepted");

    let _ = std::fs::remove_dir_all(&dir);
    app.stop().await;
}

#[tokio::test]
async fn in_production_metrics_answer_only_the_listed_addresses() {
    let app = TestApp::spawn().await;
    let instance = |allowed: Vec<std::net::IpAddr>| {
        let mut config = harness::consent_config(
            app.database(Database::Consent).app_url(),
            &app.keys,
            &[(ServiceName::PhiVault, app.phi_vault.url.clone())].into_iter().collect(),
        );
        // Production also requires checkpoints, which the harness configures.
        config.profile = Profile::Production;
        config.metrics.allowed_ips = allowed;
        async move { harness::launch(consent::build(config).await.expect("build consent")).await }
    };
    // One counted request first, so a scrape that is served has a counter to show.
    let scrape = |url: String| {
        let http = app.http.clone();
        async move {
            assert_eq!(http.get(format!("{url}/health")).send().await.expect("health").status(), 200);
            http.get(format!("{url}/metrics")).send().await.expect("metrics")
        }
    };

    let elsewhere = instance(vec!["192.0.2.7".parse().expect("ip")]).await;
    let refused = scrape(elsewhere.url.clone()).await;
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["error"]["code"], "forbidden", "{body}");
    assert!(!body.to_string().contains("secondwind_http_requests_total"));
    let status: Value =
        app.http.get(format!("{}/status", elsewhere.url)).send().await.expect("status").json().await.expect("json");
    assert_eq!(status["profile"], "production", "the instance runs the production profile");

    let listed = instance(vec!["127.0.0.1".parse().expect("ip")]).await;
    let allowed = scrape(listed.url.clone()).await;
    assert_eq!(allowed.status(), 200);
    assert!(allowed.text().await.expect("text").contains("secondwind_http_requests_total"));
    for running in [elsewhere, listed] {
        running.shutdown.clone().notify();
    }
    app.stop().await;
}

#[tokio::test]
async fn a_forwarded_client_address_is_believed_only_from_a_trusted_proxy() {
    let app = TestApp::spawn().await;
    assert!(app.public_config.server.trusted_proxies.is_empty());
    let mut trusting = app.public_config.clone();
    trusting.server.trusted_proxies = vec!["127.0.0.1/32".parse().expect("network")];
    let behind_proxy = harness::launch(public_api::build(trusting).await.expect("build")).await;

    let pool = sqlx::PgPool::connect(&app.database(Database::Public).app_url()).await.expect("pool");
    let sign_in = |base: String, forwarded: &'static str| {
        let http = app.http.clone();
        async move {
            let response = http
                .post(format!("{base}/api/v1/auth/dev-login"))
                .header("x-forwarded-for", forwarded)
                .json(&json!({"user": "donor"}))
                .send()
                .await
                .expect("dev-login");
            assert_eq!(response.status(), 200);
            response.headers()["x-request-id"].to_str().expect("ascii").to_owned()
        }
    };
    let recorded = |request_id: String| {
        let pool = pool.clone();
        async move {
            let ips = sqlx::query_scalar::<_, String>("SELECT host(ip) FROM audit_logs WHERE request_id = $1")
                .bind(request_id)
                .fetch_all(&pool)
                .await
                .expect("audit");
            assert!(!ips.is_empty());
            ips
        }
    };
    // From a peer that is no trusted proxy, the header is a client's claim and changes nothing.
    let direct = recorded(sign_in(app.public_api.url.clone(), "203.0.113.9").await).await;
    assert!(direct.iter().all(|ip| ip == "127.0.0.1"), "{direct:?}");
    // Through the trusted proxy: the address it appended, not what the client put left of it.
    let proxied = recorded(sign_in(behind_proxy.url.clone(), "1.2.3.4, 203.0.113.9").await).await;
    assert!(proxied.iter().all(|ip| ip == "203.0.113.9"), "{proxied:?}");
    // A malformed header: the proxy itself, never the garbage.
    let malformed = recorded(sign_in(behind_proxy.url.clone(), "203.0.113.9:443").await).await;
    assert!(malformed.iter().all(|ip| ip == "127.0.0.1"), "{malformed:?}");

    // Nor does the header escape the per-address limit: untrusted, every request below counts
    // against 127.0.0.1; trusted, against the appended address, whatever the client adds.
    let mut limited_config = app.public_config.clone();
    limited_config.rate_limits.per_ip_per_minute = 3;
    let limited = harness::launch(public_api::build(limited_config.clone()).await.expect("build")).await;
    limited_config.server.trusted_proxies = vec!["127.0.0.1/32".parse().expect("network")];
    let limited_behind_proxy = harness::launch(public_api::build(limited_config).await.expect("build")).await;
    for (base, real) in [(&limited.url, ""), (&limited_behind_proxy.url, ", 203.0.113.9")] {
        let started = Instant::now();
        let mut passed = 0u32;
        for n in 0..1000u32 {
            let response = app
                .http
                .get(format!("{base}/status"))
                .header("x-forwarded-for", format!("198.51.100.{}{real}", n % 250))
                .send()
                .await
                .expect("status");
            if response.status() == 429 {
                break;
            }
            passed += 1;
        }
        let refilled = (started.elapsed().as_secs_f64() * 3.0 / 60.0).ceil();
        assert!(passed >= 3 && f64::from(passed) <= 3.0 + refilled, "{passed} passed a limit of 3 at {base}");
    }
    // Another client behind the same proxy has its own budget.
    let other = app
        .http
        .get(format!("{}/status", limited_behind_proxy.url))
        .header("x-forwarded-for", "203.0.113.10")
        .send()
        .await
        .expect("status");
    assert_eq!(other.status(), 200);

    for running in [behind_proxy, limited, limited_behind_proxy] {
        running.shutdown.clone().notify();
    }
    pool.close().await;
    app.stop().await;
}
