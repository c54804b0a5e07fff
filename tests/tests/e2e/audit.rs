//! The public audit log is hash-chained: `secondwind-operator audit verify` accepts an intact
//! chain, built by concurrent writers, and finds every edit, removal and reordering done behind
//! the service's back (by a superuser: the service role cannot update or delete rows at all).

use common::chain::Problem;
use common::db::Database;
use harness::TestDatabase;
use public_api::audit::{self, AuditEvent, Outcome};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection};

fn event(n: usize) -> AuditEvent {
    AuditEvent {
        actor_id: Some(uuid::Uuid::new_v4()),
        action: "auth.login",
        resource_type: Some("session"),
        resource_id: Some(format!("s-{n}")),
        ip: Some(if n.is_multiple_of(2) {
            "203.0.113.7".parse().expect("ip")
        } else {
            "2001:db8::42".parse().expect("ip")
        }),
        user_agent: Some("Mozilla/5.0 (test)".into()),
        request_id: Some(format!("req-{n}")),
        outcome: if n.is_multiple_of(3) { Outcome::Failure } else { Outcome::Success },
        reason: (n == 5).then(|| "checked by hand".to_owned()),
        operator: None,
    }
}

async fn superuser(db: &TestDatabase) -> PgConnection {
    PgConnection::connect(&db.url_as("postgres")).await.expect("superuser")
}

#[tokio::test]
async fn concurrent_appends_form_one_verifiable_chain_and_tampering_is_found() {
    harness::init();
    let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    let db = TestDatabase::create(Database::Public, &id).await;
    let pool = PgPoolOptions::new().max_connections(8).connect(&db.app_url()).await.expect("pool");

    let writers: Vec<_> = (0..24)
        .map(|n| {
            let pool = pool.clone();
            tokio::spawn(async move { audit::record_alone(&pool, &event(n)).await.expect("append") })
        })
        .collect();
    for w in writers {
        w.await.expect("join");
    }
    // A rolled-back append leaves no trace and no gap in the chain.
    let mut tx = pool.begin().await.expect("tx");
    audit::record(&mut tx, &event(99)).await.expect("append");
    tx.rollback().await.expect("rollback");
    audit::record_alone(&pool, &event(100)).await.expect("append");

    let v = audit::verify(&pool, 100).await.expect("verify");
    assert!(v.intact(), "{v:?}");
    assert_eq!(v.rows_checked, 25);

    // Edit a row.
    let mut su = superuser(&db).await;
    let flip =
        "UPDATE audit_logs SET outcome = CASE outcome WHEN 'success' THEN 'failure' ELSE 'success' END WHERE seq = $1";
    let edited_seq: i64 = sqlx::query_scalar("SELECT seq FROM audit_logs ORDER BY seq OFFSET 3 LIMIT 1")
        .fetch_one(&mut su)
        .await
        .expect("seq");
    sqlx::query(flip).bind(edited_seq).execute(&mut su).await.expect("edit");
    let v = audit::verify(&pool, 100).await.expect("verify");
    assert_eq!(v.breaks.len(), 1, "{v:?}");
    assert_eq!((v.breaks[0].seq, v.breaks[0].problem), (edited_seq, Problem::ContentChanged));
    sqlx::query(flip).bind(edited_seq).execute(&mut su).await.expect("undo");
    assert!(audit::verify(&pool, 100).await.expect("verify").intact(), "restoring the content restores the chain");

    // Remove a row.
    let removed_next: i64 = sqlx::query_scalar("SELECT seq FROM audit_logs ORDER BY seq OFFSET 11 LIMIT 1")
        .fetch_one(&mut su)
        .await
        .expect("seq");
    sqlx::query("DELETE FROM audit_logs WHERE seq = (SELECT seq FROM audit_logs ORDER BY seq OFFSET 10 LIMIT 1)")
        .execute(&mut su)
        .await
        .expect("delete");
    let v = audit::verify(&pool, 100).await.expect("verify");
    assert_eq!(
        v.breaks.iter().map(|b| (b.seq, b.problem)).collect::<Vec<_>>(),
        vec![(removed_next, Problem::LinkBroken)]
    );

    // Reorder: move an early row, unchanged, to the end of the trail.
    let moved: i64 = sqlx::query_scalar("SELECT seq FROM audit_logs ORDER BY seq OFFSET 1 LIMIT 1")
        .fetch_one(&mut su)
        .await
        .expect("seq");
    sqlx::query(
        "WITH moved AS (DELETE FROM audit_logs WHERE seq = $1 RETURNING id, occurred_at, actor_id, action, resource_type, \
         resource_id, ip, user_agent, request_id, outcome, reason, prev_hash, row_hash) \
         INSERT INTO audit_logs (id, occurred_at, actor_id, action, resource_type, resource_id, ip, user_agent, request_id, \
         outcome, reason, prev_hash, row_hash) SELECT * FROM moved",
    )
    .bind(moved)
    .execute(&mut su)
    .await
    .expect("move a row");
    let _ = su.close().await;
    let v = audit::verify(&pool, 100).await.expect("verify");
    let last: i64 = v.breaks.iter().map(|b| b.seq).max().unwrap_or_default();
    assert!(v.breaks.iter().any(|b| b.problem == Problem::LinkBroken && b.seq == moved + 1), "{v:?}");
    assert!(last > removed_next, "the moved row, now last, no longer links: {v:?}");
    assert!(v.breaks.iter().all(|b| b.problem == Problem::LinkBroken), "content itself is untouched: {v:?}");

    pool.close().await;
    db.drop_now().await;
}
