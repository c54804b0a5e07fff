//! No lock is held across the network. A Vault Transit double that answers slowly stands in for
//! a slow or distant Vault: while one request waits on it, other PHI accesses go on, no
//! transaction is open in the PHI database, and a rewrap runs beside uncached reads without
//! deadlock. A subject shredded while its key is being rewrapped stays shredded.

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::db::Database;
use harness::check::eventually;
use harness::vault::{seed_uncached_subjects, TransitDouble};
use harness::TestApp;
use phi_vault::crypto::{CryptoError, DataKey, KeyProvider, WrappedKey};
use phi_vault::vault_transit::VaultTransit;
use uuid::Uuid;

async fn app_on(vault: &TransitDouble) -> TestApp {
    let settings = vault.settings();
    TestApp::spawn_configured(
        |_| {},
        move |phi| {
            phi.service.kek_file = None;
            phi.service.vault = Some(settings);
        },
    )
    .await
}

/// Sessions of the PHI database inside a transaction right now, and advisory locks held in it.
async fn open_transactions_and_advisory_locks(su: &sqlx::PgPool) -> (i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%'), \
                (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted \
                 AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))",
    )
    .fetch_one(su)
    .await
    .expect("pg_stat_activity")
}

#[tokio::test]
async fn a_slow_vault_call_holds_up_no_other_phi_access() {
    let vault = TransitDouble::start().await;
    let app = app_on(&vault).await;
    // A: a subject whose key this phi-vault caches (it created it).
    let a = app.dev_login("beneficiary").await;
    app.put_sample_profile(&a).await;
    let profile = "/beneficiaries/me/profile";
    assert_eq!(app.get_as(&a.access_token, profile).await.status(), 200);
    // B: a subject this phi-vault has never seen: its first read unwraps through Vault.
    let phi = sqlx::PgPool::connect(&app.database(Database::Phi).app_url()).await.expect("phi db");
    let su = sqlx::PgPool::connect(&app.database(Database::Phi).url_as("postgres")).await.expect("superuser");
    let provider = VaultTransit::new(&vault.settings()).expect("provider");
    let content = serde_json::json!({"legal_name": "B. Uncached"});
    let (b, b_record) = seed_uncached_subjects(&phi, &provider, 1, &content).await[0];

    // Vault now takes 4 s to answer. B's read waits on it.
    let slow = Duration::from_secs(4);
    vault.answer_after(slow);
    let decrypts_before = vault.decrypts();
    let (client, ctx) = app.vault_as(&b.to_string(), "beneficiary");
    let started = Instant::now();
    let b_read = tokio::spawn(async move { client.read_record(&ctx, b_record).await });
    assert!(
        eventually(Duration::from_secs(3), || std::future::ready(vault.decrypts() > decrypts_before)).await,
        "B's read reached Vault"
    );

    // While B's unwrap is in flight: no transaction is open in the PHI database, so no row or
    // advisory lock can be held across the call.
    assert_eq!(open_transactions_and_advisory_locks(&su).await, (0, 0), "nothing held across the Vault call");

    // A's read and write (logged in the same access log, whose chain lock they need) finish
    // while B's read still waits on Vault.
    let read = app.get_as(&a.access_token, profile).await;
    assert_eq!(read.status(), 200);
    let mut changed = harness::sample_profile();
    changed["phone"] = serde_json::json!("720-555-0177");
    let put = app.http.put(app.api(profile)).bearer_auth(&a.access_token).json(&changed).send().await.expect("put");
    assert_eq!(put.status(), 200);
    let a_done = started.elapsed();
    assert!(!b_read.is_finished(), "A's accesses finished while B's Vault call was still in flight");
    assert!(a_done < slow, "A's accesses took {a_done:?}, not held up by B's {slow:?} Vault call");

    let record = b_read.await.expect("task").expect("B's read completes once Vault answers");
    assert_eq!(record.content, content);
    assert!(started.elapsed() >= slow, "B's read did wait on Vault");
    assert!(phi_vault::access_log::verify(&phi, 10).await.expect("verify").intact());
    su.close().await;
    phi.close().await;
    app.stop().await;
}

#[tokio::test]
async fn uncached_reads_and_a_rewrap_run_together_without_deadlock() {
    let vault = TransitDouble::start().await;
    let app = app_on(&vault).await;
    let phi = sqlx::PgPool::connect(&app.database(Database::Phi).app_url()).await.expect("phi db");
    let provider = Arc::new(VaultTransit::new(&vault.settings()).expect("provider"));
    let content = serde_json::json!({"legal_name": "Rewrap Reader"});
    let subjects = seed_uncached_subjects(&phi, provider.as_ref(), 24, &content).await;
    vault.rotate();
    vault.answer_after(Duration::from_millis(50));

    let work = async {
        let rewrap = {
            let (phi, provider) = (phi.clone(), provider.clone());
            tokio::spawn(async move {
                let mut total = 0;
                loop {
                    let (done, remaining) =
                        phi_vault::keys::rewrap_batch(&phi, provider.as_ref(), 4, "test", "rewrap-concurrent")
                            .await
                            .expect("rewrap batch");
                    total += done;
                    if remaining == 0 {
                        return total;
                    }
                }
            })
        };
        // Every subject read by itself, all at once, while the rewrap walks the same rows.
        let reads = subjects.iter().map(|(subject, record)| {
            let (client, ctx) = app.vault_as(&subject.to_string(), "beneficiary");
            let record = *record;
            async move { client.read_record(&ctx, record).await }
        });
        let reads = harness::check::join_all(reads).await;
        (rewrap.await.expect("rewrap task"), reads)
    };
    let (rewrapped, reads) =
        tokio::time::timeout(Duration::from_secs(90), work).await.expect("reads and rewrap both finish");
    for read in reads {
        assert_eq!(read.expect("every uncached read is served").content, content);
    }
    assert_eq!(rewrapped, subjects.len() as u64, "every key rewrapped exactly once");
    let versions: Vec<Option<i32>> =
        sqlx::query_scalar("SELECT kek_version FROM subjects").fetch_all(&phi).await.expect("versions");
    assert!(versions.iter().all(|v| *v == Some(2)), "{versions:?}");
    let logged: i64 =
        sqlx::query_scalar("SELECT count(DISTINCT subject_id) FROM access_log WHERE action = 'key.rewrap'")
            .fetch_one(&phi)
            .await
            .expect("log");
    assert_eq!(logged, subjects.len() as i64);
    assert!(phi_vault::access_log::verify(&phi, 10).await.expect("verify").intact());
    phi.close().await;
    app.stop().await;
}

/// A provider that crypto-shreds its victim (as an admin would, through another instance) the
/// moment the rewrap asks for the victim's new wrapping: between unwrap and write-back.
struct ShredsDuringRewrap {
    inner: VaultTransit,
    su: sqlx::PgPool,
    victim: Uuid,
}

#[rocket::async_trait]
impl KeyProvider for ShredsDuringRewrap {
    async fn wrap(&self, subject: Uuid, key: &DataKey) -> Result<WrappedKey, CryptoError> {
        if subject == self.victim {
            sqlx::query(
                "UPDATE subjects SET wrapped_data_key = NULL, kek_id = NULL, kek_version = NULL, shredded_at = now() \
                 WHERE id = $1",
            )
            .bind(subject)
            .execute(&self.su)
            .await
            .map_err(|e| CryptoError::Provider(e.to_string()))?;
        }
        self.inner.wrap(subject, key).await
    }
    async fn unwrap(&self, subject: Uuid, wrapped: &WrappedKey) -> Result<DataKey, CryptoError> {
        self.inner.unwrap(subject, wrapped).await
    }
    async fn current_version(&self) -> Result<i32, CryptoError> {
        self.inner.current_version().await
    }
    fn kind(&self) -> &'static str {
        "test"
    }
}

#[tokio::test]
async fn a_subject_shredded_during_its_rewrap_stays_shredded() {
    let vault = TransitDouble::start().await;
    let app = app_on(&vault).await;
    let phi = sqlx::PgPool::connect(&app.database(Database::Phi).app_url()).await.expect("phi db");
    let su = sqlx::PgPool::connect(&app.database(Database::Phi).url_as("postgres")).await.expect("superuser");
    let seeding = VaultTransit::new(&vault.settings()).expect("provider");
    let seeded = seed_uncached_subjects(&phi, &seeding, 3, &serde_json::json!({"n": 1})).await;
    vault.rotate();
    let victim = seeded[1].0;
    let provider =
        ShredsDuringRewrap { inner: VaultTransit::new(&vault.settings()).expect("provider"), su: su.clone(), victim };
    let rewrap = phi_vault::keys::rewrap_batch(&phi, &provider, 10, "test", "rewrap-shred");
    let (done, remaining) =
        tokio::time::timeout(Duration::from_secs(30), rewrap).await.expect("no lock wait").expect("rewrap");
    assert_eq!((done, remaining), (2, 0), "the shredded subject is skipped, the others rewrapped");
    let key: Option<Vec<u8>> = sqlx::query_scalar("SELECT wrapped_data_key FROM subjects WHERE id = $1")
        .bind(victim)
        .fetch_one(&phi)
        .await
        .expect("victim");
    assert!(key.is_none(), "the rewrap did not bring the destroyed key back");
    let rewrap_logged: i64 =
        sqlx::query_scalar("SELECT count(*) FROM access_log WHERE action = 'key.rewrap' AND subject_id = $1")
            .bind(victim)
            .fetch_one(&phi)
            .await
            .expect("log");
    assert_eq!(rewrap_logged, 0, "no rewrap is logged for the skipped subject");
    assert!(phi_vault::access_log::verify(&phi, 10).await.expect("verify").intact());
    su.close().await;
    phi.close().await;
    app.stop().await;
}
