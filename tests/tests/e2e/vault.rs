//! The Vault Transit key provider against an HTTP double of Vault's documented API: round trip,
//! subject binding, rotation with rewrap, and each failure Vault can answer with. End to end, a
//! sealed Vault makes writes answer 503 with nothing half-written.

use common::db::Database;
use harness::check::eventually;
use harness::vault::TransitDouble;
use harness::TestApp;
use phi_vault::crypto::{CryptoError, DataKey, KeyProvider};
use phi_vault::vault_transit::VaultTransit;
use serde_json::json;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

#[tokio::test]
async fn wraps_unwraps_and_rotates_through_transit() {
    harness::init();
    let vault = TransitDouble::start().await;
    let provider = VaultTransit::new(&vault.settings()).expect("provider");
    let subject = Uuid::new_v4();
    let key = DataKey::generate().expect("key");
    let wrapped = provider.wrap(subject, &key).await.expect("wrap");
    assert!(String::from_utf8_lossy(&wrapped.ciphertext).starts_with("vault:v1:"));
    assert_eq!(wrapped.kek_version, 1);
    assert_eq!(provider.unwrap(subject, &wrapped).await.expect("unwrap").expose(), key.expose());
    assert!(
        matches!(provider.unwrap(Uuid::new_v4(), &wrapped).await, Err(CryptoError::Integrity)),
        "bound to its subject"
    );

    vault.rotate();
    assert_eq!(provider.current_version().await.expect("version"), 2);
    let rewrapped = provider.wrap(subject, &key).await.expect("wrap");
    assert_eq!(rewrapped.kek_version, 2);
    assert!(provider.unwrap(subject, &wrapped).await.is_ok(), "old versions still decrypt");
}

#[tokio::test]
async fn each_vault_failure_is_reported_for_what_it_is() {
    harness::init();
    let vault = TransitDouble::start().await;
    let key = DataKey::generate().expect("key");
    let subject = Uuid::new_v4();

    vault.seal(true);
    let provider = VaultTransit::new(&vault.settings()).expect("provider");
    assert!(matches!(provider.wrap(subject, &key).await, Err(CryptoError::Unavailable(_))), "sealed");
    vault.seal(false);

    let mut wrong_token = vault.settings();
    wrong_token.token = Some(common::Secret::new("s.wrong".into()));
    let denied = VaultTransit::new(&wrong_token).expect("provider").wrap(subject, &key).await;
    assert!(matches!(&denied, Err(CryptoError::Provider(m)) if m.contains("denied")), "{denied:?}");

    let mut missing = vault.settings();
    missing.key = "no-such-key".into();
    let absent = VaultTransit::new(&missing).expect("provider").wrap(subject, &key).await;
    assert!(matches!(&absent, Err(CryptoError::Provider(m)) if m.contains("encryption key not found")), "{absent:?}");

    let mut unreachable = vault.settings();
    unreachable.address = "http://127.0.0.1:1".into();
    let down = VaultTransit::new(&unreachable).expect("provider").wrap(subject, &key).await;
    assert!(matches!(down, Err(CryptoError::Unavailable(_))), "{down:?}");
}

#[tokio::test]
async fn a_sealed_vault_makes_writes_fail_cleanly_then_recover() {
    let vault = TransitDouble::start().await;
    let settings = vault.settings();
    let app = TestApp::spawn_configured(
        |_| {},
        move |phi| {
            phi.service.kek_file = None;
            phi.service.vault = Some(settings);
        },
    )
    .await;
    let me = app.dev_login("beneficiary").await;
    let profile = json!({"legal_name": "Kim Lee", "date_of_birth": "1985-06-07", "phone": "720-555-0110",
        "emergency_contact": {"name": "Pat Lee", "phone": "720-555-0111", "relationship": "spouse"}});
    let put = || app.http.put(app.api("/beneficiaries/me/profile")).bearer_auth(&me.access_token).json(&profile).send();

    vault.seal(true);
    let response = put().await.expect("put");
    assert_eq!(response.status(), 503);
    let mut phi = PgConnection::connect(&app.database(Database::Phi).url_as("postgres")).await.expect("phi");
    let (subjects, records): (i64, i64) =
        sqlx::query_as("SELECT (SELECT count(*) FROM subjects), (SELECT count(*) FROM records)")
            .fetch_one(&mut phi)
            .await
            .expect("count");
    assert_eq!((subjects, records), (0, 0), "nothing half-written");
    assert_eq!(app.get_as(&me.access_token, "/beneficiaries/me/profile").await.status(), 404);

    vault.seal(false);
    assert_eq!(put().await.expect("put").status(), 200);
    assert_eq!(
        app.get_as(&me.access_token, "/beneficiaries/me/profile")
            .await
            .json::<serde_json::Value>()
            .await
            .expect("json"),
        profile
    );
    let wrapped: Vec<u8> =
        sqlx::query_scalar("SELECT wrapped_data_key FROM subjects").fetch_one(&mut phi).await.expect("subject");
    assert!(String::from_utf8_lossy(&wrapped).starts_with("vault:v1:"), "the data key is wrapped by Vault");

    // Rotation in Vault, then rewrap: the subject moves to version 2, records untouched.
    vault.rotate();
    let provider = VaultTransit::new(&vault.settings()).expect("provider");
    let pool = sqlx::PgPool::connect(&app.database(Database::Phi).app_url()).await.expect("pool");
    let (done, remaining) =
        phi_vault::keys::rewrap_batch(&pool, &provider, 100, "test", "rewrap-1").await.expect("rewrap");
    assert_eq!((done, remaining), (1, 0));
    let version: Option<i32> =
        sqlx::query_scalar("SELECT kek_version FROM subjects").fetch_one(&pool).await.expect("version");
    assert_eq!(version, Some(2));
    assert!(phi_vault::access_log::verify(&pool, 10).await.expect("verify").intact());
    pool.close().await;
    let _ = phi.close().await;
    app.stop().await;
}

#[tokio::test]
async fn approle_logs_in_renews_while_idle_and_logs_in_again_when_renewal_is_refused() {
    use std::sync::atomic::Ordering::SeqCst;
    harness::init();
    let vault = TransitDouble::start().await;
    vault.state.lease_secs.store(3, SeqCst);
    // The provider is told 3 s; the double honours tokens far longer, so only the provider's
    // own schedule decides between renewing and logging in again, however busy the machine.
    vault.state.grace_secs.store(600, SeqCst);
    let dir = std::env::temp_dir().join(format!("secondwind-approle-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    let provider = VaultTransit::new(&vault.approle_settings(&dir)).expect("provider");
    let (subject, key) = (Uuid::new_v4(), DataKey::generate().expect("key"));
    let wrapped = provider.wrap(subject, &key).await.expect("wrap");
    assert_eq!(vault.state.logins.load(SeqCst), 1);

    // Two thirds into the lease the background upkeep renews, with no call in between.
    let second = std::time::Duration::from_secs(1);
    assert!(
        eventually(60 * second, || std::future::ready(vault.state.renewals.load(SeqCst) >= 1)).await,
        "renewed while idle"
    );
    assert_eq!(vault.state.logins.load(SeqCst), 1, "renewal, not a new login");
    assert_eq!(provider.unwrap(subject, &wrapped).await.expect("unwrap").expose(), key.expose());

    // Past its max TTL Vault refuses renewal: the provider logs in again and keeps working.
    vault.state.refuse_renewal.store(true, SeqCst);
    assert!(
        eventually(60 * second, || std::future::ready(vault.state.logins.load(SeqCst) >= 2)).await,
        "logged in again"
    );
    assert_eq!(provider.unwrap(subject, &wrapped).await.expect("unwrap").expose(), key.expose());
    drop(provider);

    // A wrong secret id: the service cannot reach its keys, which callers see as unavailable.
    let bad_dir = dir.join("bad");
    std::fs::create_dir_all(&bad_dir).expect("dir");
    let mut wrong = vault.approle_settings(&bad_dir);
    let file = bad_dir.join("wrong-secret-id");
    common::keys::write_secret_file(&file, "not-the-secret").expect("file");
    if let Some(approle) = wrong.approle.as_mut() {
        approle.secret_id_file = file;
    }
    let refused = VaultTransit::new(&wrong).expect("provider").wrap(subject, &key).await;
    assert!(matches!(&refused, Err(CryptoError::Unavailable(m)) if m.contains("approle login")), "{refused:?}");
    // Both kinds of credentials at once, or neither, are refused at start-up.
    std::fs::create_dir_all(dir.join("both")).expect("dir");
    let mut both = vault.approle_settings(&dir.join("both"));
    both.token = Some(common::Secret::new("s.x".into()));
    assert!(VaultTransit::new(&both).is_err());
    both.token = None;
    both.approle = None;
    assert!(VaultTransit::new(&both).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}
