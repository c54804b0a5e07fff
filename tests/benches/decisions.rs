//! The consent decision path: `POST /internal/v1/decisions` as phi-vault calls it,
//! with a freshly signed assertion per call, against a consent database holding
//! `LOAD_DECISION_SUBJECTS` (2,000) subjects with three consents each (a named one, a revoked
//! one, a TPO class one), half the questions permitted.
//!
//! Prints decisions per second at saturation (closed loop, `LOAD_CONCURRENCY` in flight,
//! `LOAD_SECS`), then p50/p95/p99 at `LOAD_DECISION_RATE` (200) decisions a second (open loop:
//! latency counted from each request's due time), and one JSON line for scripts. Target: p95
//! under 10 ms at 200/s. Needs a PostgreSQL cluster: run `scripts/bench decisions`.

#![allow(clippy::print_stdout)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::client::{ConsentClient, DisclosureQuestion};
use common::db::Database;
use common::{Role, ServiceName};
use harness::load::{env_or, open_loop, round3};
use harness::TestApp;
use uuid::Uuid;

struct Subject {
    id: Uuid,
    partner: Uuid,
}

fn question(subjects: &[Subject], i: usize) -> (DisclosureQuestion, Uuid) {
    let s = &subjects[i % subjects.len()];
    // Even: the named consent's recipient and purpose (permitted); odd: a purpose no consent names.
    let purpose = if i.is_multiple_of(2) { "housing_placement" } else { "benefits_eligibility" };
    let q = DisclosureQuestion {
        subject_id: s.id,
        recipient: format!("partner:{}", s.partner),
        categories: vec!["identity".into()],
        purpose: purpose.into(),
    };
    (q, s.partner)
}

fn main() {
    let subjects_n = env_or("LOAD_DECISION_SUBJECTS", 2000usize).max(1);
    let rate = env_or("LOAD_DECISION_RATE", 200u64).max(1);
    let secs = env_or("LOAD_SECS", 10u64).max(1);
    let concurrency = env_or("LOAD_CONCURRENCY", 32usize).max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async move {
        let app = TestApp::spawn().await;
        let pool = sqlx::PgPool::connect(&app.database(Database::Consent).app_url()).await.expect("consent db");
        println!("seeding {subjects_n} subjects with three consents each");
        let mut subjects = Vec::with_capacity(subjects_n);
        for _ in 0..subjects_n {
            let s = Subject { id: Uuid::new_v4(), partner: Uuid::new_v4() };
            let recipient = format!("partner:{}", s.partner);
            let days = time::Duration::days(90);
            harness::consents::consent_to(&pool, s.id, &recipient, &["identity"], "housing_placement", days).await;
            let revoked = harness::consents::consent_to(&pool, s.id, &recipient, &["identity"], "payment", days).await;
            harness::consents::revoke(&pool, revoked, "beneficiary:bench", None).await;
            let tpo = vec!["insurance".to_owned()];
            let until = Some(time::OffsetDateTime::now_utc() + days);
            harness::consents::consent_with(
                &pool,
                s.id,
                "class:insurer",
                "class",
                &tpo,
                consent::decisions::TPO_PURPOSE,
                until,
                None,
            )
            .await;
            subjects.push(s);
        }
        sqlx::query("ANALYZE").execute(&pool).await.expect("analyze");
        let subjects = Arc::new(subjects);
        let client = ConsentClient::new(app.internal_client(ServiceName::PhiVault, ServiceName::Consent));
        let ask = {
            let (client, subjects) = (client.clone(), subjects.clone());
            let signer = app.delegation_signer();
            let app_calls = Arc::new(move |partner: Uuid| partner_call(&signer, partner));
            move |i: usize| {
                let (q, partner) = question(&subjects, i);
                let ctx = app_calls(partner);
                let client = client.clone();
                async move {
                    match client.decide(&ctx, &q).await {
                        Ok(a) if a.permitted == (i.is_multiple_of(2)) => 200u16,
                        Ok(_) => 409,
                        Err(_) => 0,
                    }
                }
            }
        };

        // Saturation: `concurrency` callers asking back to back.
        let done = Arc::new(AtomicU64::new(0));
        let wrong = Arc::new(AtomicU64::new(0));
        let deadline = Instant::now() + Duration::from_secs(secs);
        let started = Instant::now();
        let mut workers = Vec::new();
        for w in 0..concurrency {
            let (ask, done, wrong) = (ask.clone(), done.clone(), wrong.clone());
            workers.push(tokio::spawn(async move {
                let mut i = w;
                while Instant::now() < deadline {
                    if ask(i).await != 200 {
                        wrong.fetch_add(1, Ordering::Relaxed);
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                    i += concurrency;
                }
            }));
        }
        for w in workers {
            w.await.expect("worker");
        }
        let saturation = done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
        println!(
            "saturation: {:.0} decisions/s with {concurrency} in flight ({} wrong or failed)",
            saturation,
            wrong.load(Ordering::Relaxed)
        );

        let fixed = open_loop(rate, secs, ask).await;
        println!(
            "at {rate}/s: achieved {:.1}/s, p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms, failed {}",
            fixed.achieved_rps,
            fixed.p50_ms,
            fixed.p95_ms,
            fixed.p99_ms,
            fixed.max_ms,
            fixed.failed()
        );
        println!(
            "target p95 < 10 ms at 200/s: {}",
            if rate == 200 && fixed.p95_ms < 10.0 { "met" } else { "see figures" }
        );
        println!(
            "{}",
            serde_json::json!({
                "path": "consent decision",
                "saturation_per_sec": round3(saturation),
                "fixed_rate": fixed,
            })
        );
        pool.close().await;
        app.stop().await;
    });
}

/// A call in a partner's role, as phi-vault relays it when a partner reads (`policy::ask_consent`).
fn partner_call(signer: &Arc<common::user_token::DelegationSigner>, partner: Uuid) -> common::assertion::CallContext {
    let delegation = common::assertion::Delegation { user: partner, session: Uuid::new_v4(), signer: signer.clone() };
    #[allow(clippy::disallowed_methods)] // the bench stands in for the relaying service
    common::assertion::CallContext::user(
        Role::Partner,
        "disclosure_decision",
        common::RequestId::generate(),
        delegation,
    )
}
