//! Group commit of PHI accesses (`phi_vault::commit`): concurrent accesses share one
//! transaction and one fsync, yet each still has its own access-log entry in the transaction that
//! did its read or write, the chain stays whole, and one access's failure sinks no other.

use common::client::{NewRecord, RecordContent};
use common::db::Database;
use harness::{TestApp, TestDatabase};
use phi_vault::access_log::{self, Entry};
use phi_vault::commit::Committer;
use serde_json::json;
use sqlx::Row;
use uuid::Uuid;

fn entry(request_id: &str) -> Entry {
    Entry {
        actor: "group-commit-test".into(),
        actor_role: "beneficiary".into(),
        purpose: "self_service".into(),
        subject_id: Some(Uuid::new_v4()),
        record_id: Some(Uuid::new_v4()),
        action: "record.read".into(),
        permitted: true,
        reason: "self".into(),
        flagged: false,
        request_id: request_id.into(),
    }
}

/// Runs 24 accesses at once through one committer. The first holds its transaction open long
/// enough for the rest to queue behind it; `failing` names one whose statement fails.
async fn round(
    committer: &Committer,
    tag: &str,
    failing: Option<usize>,
) -> Vec<Result<(i64, Vec<i64>), common::ApiError>> {
    let runs = (0..24).map(|i| {
        let committer = committer.clone();
        let request_id = format!("{tag}-{i}");
        async move {
            committer
                .run(Uuid::from_u128(i as u128 + 1), move |conn| {
                    let request_id = request_id.clone();
                    Box::pin(async move {
                        let sql = match (i, failing) {
                            (0, _) => "SELECT txid_current() AS tx FROM pg_sleep(0.3)",
                            (i, Some(f)) if i == f => "SELECT txid_current() / 0 AS tx",
                            _ => "SELECT txid_current() AS tx",
                        };
                        let tx: i64 = sqlx::query(sql).fetch_one(&mut *conn).await?.try_get("tx")?;
                        Ok((tx, vec![entry(&request_id)]))
                    })
                })
                .await
        }
    });
    let mut handles = Vec::new();
    for (i, run) in runs.enumerate() {
        handles.push(tokio::spawn(run));
        if i == 0 {
            // The first is in its transaction before the others queue.
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    let mut outcomes = Vec::new();
    for handle in handles {
        outcomes.push(handle.await.expect("join"));
    }
    outcomes
}

#[tokio::test]
async fn concurrent_accesses_commit_together_and_a_failure_sinks_only_its_own() {
    let db = TestDatabase::create(Database::Phi, "group_commit").await;
    let pool = sqlx::PgPool::connect(&db.app_url()).await.expect("pool");
    let committer = Committer::start(pool.clone(), 1);

    // All succeed: the 23 that queued behind the first share one transaction, and each has its
    // own entry, in its own place in the chain.
    let outcomes = round(&committer, "together", None).await;
    let ok: Vec<(i64, Vec<i64>)> = outcomes.into_iter().map(|o| o.expect("every access commits")).collect();
    let first_tx = ok[0].0;
    let shared = ok[1..].iter().filter(|(tx, _)| *tx != first_tx).map(|(tx, _)| *tx).collect::<Vec<_>>();
    assert_eq!(shared.len(), 23);
    assert!(shared.iter().all(|tx| *tx == shared[0]), "the queued accesses committed in one transaction: {shared:?}");
    let mut seqs: Vec<i64> = ok.iter().flat_map(|(_, s)| s.clone()).collect();
    assert!(ok.iter().all(|(_, s)| s.len() == 1), "one entry per access");
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), 24, "each access has its own entry");
    for (i, (_, s)) in ok.iter().enumerate() {
        let logged: String = sqlx::query_scalar("SELECT request_id FROM access_log WHERE seq = $1")
            .bind(s[0])
            .fetch_one(&pool)
            .await
            .expect("entry");
        assert_eq!(logged, format!("together-{i}"), "the sequence number returned is the access's own entry");
    }
    assert!(access_log::verify(&pool, 100).await.expect("verify").intact());

    // One fails: it alone gets the error and leaves no entry; the others commit.
    let outcomes = round(&committer, "one-fails", Some(7)).await;
    for (i, outcome) in outcomes.iter().enumerate() {
        assert_eq!(outcome.is_err(), i == 7, "access {i}: {outcome:?}");
    }
    let logged: Vec<String> =
        sqlx::query_scalar("SELECT request_id FROM access_log WHERE request_id LIKE 'one-fails-%' ORDER BY seq")
            .fetch_all(&pool)
            .await
            .expect("entries");
    assert_eq!(logged.len(), 23);
    assert!(!logged.contains(&"one-fails-7".to_owned()), "the failed access left no entry");
    let verification = access_log::verify(&pool, 100).await.expect("verify");
    assert!(verification.intact());
    assert_eq!(verification.rows_checked, 47);

    // A caller that gave up while its access waited for a batch: the access is never run, so
    // nothing is read for nobody and no entry is written.
    let slow = {
        let committer = committer.clone();
        tokio::spawn(async move {
            committer
                .run(Uuid::from_u128(1), |conn| {
                    Box::pin(async move {
                        sqlx::query("SELECT pg_sleep(0.3)").execute(&mut *conn).await?;
                        Ok(((), vec![entry("slow")]))
                    })
                })
                .await
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let gone = {
        let committer = committer.clone();
        tokio::spawn(async move {
            committer
                .run(Uuid::from_u128(2), |conn| {
                    Box::pin(async move {
                        sqlx::query("SELECT 1").execute(&mut *conn).await?;
                        Ok(((), vec![entry("gone")]))
                    })
                })
                .await
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    gone.abort();
    slow.await.expect("join").expect("the slow access commits");
    let logged: Vec<String> =
        sqlx::query_scalar("SELECT request_id FROM access_log WHERE request_id IN ('slow', 'gone')")
            .fetch_all(&pool)
            .await
            .expect("entries");
    assert_eq!(logged, vec!["slow".to_owned()], "the abandoned access was not run");
    pool.close().await;
    db.drop_now().await;
}

/// Through the vault's routes: many subjects read and replace their records at once; every
/// answer names its own access-log entry, which records that access, and the chain verifies.
#[tokio::test]
async fn concurrent_reads_and_replaces_each_log_their_own_access() {
    let app = TestApp::spawn().await;
    let mut records = Vec::new();
    for i in 0..16 {
        let subject = Uuid::new_v4();
        let (vault, ctx) = app.vault_as(&subject.to_string(), "beneficiary");
        let new = NewRecord {
            subject_id: subject,
            category: "identity".into(),
            content: json!({ "n": i }),
            expires_at: None,
        };
        let created = vault.create_record(&ctx, &new).await.expect("create");
        records.push((subject, created.record_id));
    }
    let accesses = records.iter().enumerate().map(|(i, &(subject, id))| {
        let (vault, ctx) = app.vault_as(&subject.to_string(), "beneficiary");
        tokio::spawn(async move {
            if i % 2 == 0 {
                let record = vault.read_record(&ctx, id).await.expect("read");
                assert_eq!(record.content, json!({ "n": i }));
                ("record.read", subject, ctx.request_id().as_str().to_owned(), record.access_seq)
            } else {
                let content = RecordContent { content: json!({ "n": i, "changed": true }) };
                let record = vault.replace_record(&ctx, id, &content).await.expect("replace");
                ("record.update", subject, ctx.request_id().as_str().to_owned(), record.access_seq)
            }
        })
    });
    let mut served = Vec::new();
    for access in accesses.collect::<Vec<_>>() {
        served.push(access.await.expect("join"));
    }
    let pool = sqlx::PgPool::connect(&app.database(Database::Phi).url_as("postgres")).await.expect("phi db");
    for (action, subject, request_id, seq) in served {
        let row = sqlx::query("SELECT action, subject_id, request_id, decision FROM access_log WHERE seq = $1")
            .bind(seq.expect("an access-log entry"))
            .fetch_one(&pool)
            .await
            .expect("entry");
        assert_eq!(row.get::<String, _>("action"), action);
        assert_eq!(row.get::<Option<Uuid>, _>("subject_id"), Some(subject));
        assert_eq!(row.get::<Option<String>, _>("request_id"), Some(request_id));
        assert_eq!(row.get::<String, _>("decision"), "permit");
    }
    for (i, &(subject, id)) in records.iter().enumerate().filter(|(i, _)| i % 2 == 1) {
        let (vault, ctx) = app.vault_as(&subject.to_string(), "beneficiary");
        assert_eq!(vault.read_record(&ctx, id).await.expect("read").content, json!({ "n": i, "changed": true }));
    }
    assert!(access_log::verify(&pool, 1000).await.expect("verify").intact());
    pool.close().await;
    app.stop().await;
}
