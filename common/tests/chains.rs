//! Hash chains on a real table: appends that take the trail's lock and link to its head, made
//! from many connections at once, form one chain the streaming verifier finds intact; a row
//! edited or removed afterwards is found where it was, and the verifier stops at its limit.

use common::chain::{self, Break, Problem, Verification, GENESIS};
use sqlx::{PgPool, Row};
use support::TestDb;

mod support;

/// The trail's advisory lock key (any number the test's own database does not use otherwise).
const LOCK: i64 = 990_001;

async fn append(pool: &PgPool, body: &str) {
    let mut tx = pool.begin().await.expect("begin");
    let prev = chain::head(&mut tx, LOCK, "trail").await.expect("head");
    let row_hash = chain::link(&prev, body.as_bytes());
    sqlx::query("INSERT INTO trail (prev_hash, row_hash, body) VALUES ($1, $2, $3)")
        .bind(&prev)
        .bind(&row_hash[..])
        .bind(body)
        .execute(&mut *tx)
        .await
        .expect("insert");
    tx.commit().await.expect("commit");
}

async fn verify(pool: &PgPool, limit: usize) -> Verification {
    let sql = "SELECT seq, prev_hash, row_hash, body FROM trail ORDER BY seq";
    chain::verify_table(pool, sql, limit, |row| Ok(row.try_get::<String, _>("body")?.into_bytes()))
        .await
        .expect("verify")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_form_one_chain_that_shows_every_later_change() {
    let database = TestDb::create().await;
    let pool = database.owner_pool().await;
    sqlx::query(
        "CREATE TABLE trail (seq bigserial PRIMARY KEY, prev_hash bytea NOT NULL, row_hash bytea NOT NULL, \
         body text NOT NULL, reviewed_seq bigint)",
    )
    .execute(&pool)
    .await
    .expect("table");

    // An empty trail's head is the genesis hash.
    let mut tx = pool.begin().await.expect("begin");
    assert_eq!(chain::head(&mut tx, LOCK, "trail").await.expect("head"), GENESIS.to_vec());
    tx.rollback().await.expect("rollback");

    let appends: Vec<_> = (0..20)
        .map(|i| {
            let pool = pool.clone();
            tokio::spawn(async move { append(&pool, &format!("row {i}")).await })
        })
        .collect();
    for append in appends {
        append.await.expect("append");
    }
    let whole = verify(&pool, 10).await;
    assert_eq!((whole.rows_checked, whole.breaks.as_slice()), (20, [].as_slice()), "{whole:?}");
    assert!(whole.intact());
    let first: Vec<u8> =
        sqlx::query_scalar("SELECT prev_hash FROM trail ORDER BY seq LIMIT 1").fetch_one(&pool).await.expect("first");
    assert_eq!(first, GENESIS.to_vec());

    // The head by another ordering column is the last row by that column.
    sqlx::query("UPDATE trail SET reviewed_seq = 100 - seq").execute(&pool).await.expect("order");
    let mut tx = pool.begin().await.expect("begin");
    let head = chain::head_of(&mut tx, LOCK, "trail", "reviewed_seq").await.expect("head_of");
    tx.rollback().await.expect("rollback");
    let row_one: Vec<u8> =
        sqlx::query_scalar("SELECT row_hash FROM trail WHERE seq = 1").fetch_one(&pool).await.expect("row 1");
    assert_eq!(head, row_one);

    // Row 5 edited and row 10 removed: both found where they are, every row still read.
    sqlx::query("UPDATE trail SET body = 'edited' WHERE seq = 5").execute(&pool).await.expect("edit");
    sqlx::query("DELETE FROM trail WHERE seq = 10").execute(&pool).await.expect("remove");
    let broken = verify(&pool, 10).await;
    assert_eq!(
        broken.breaks,
        [Break { seq: 5, problem: Problem::ContentChanged }, Break { seq: 11, problem: Problem::LinkBroken }]
    );
    assert_eq!(broken.rows_checked, 19);
    // A limit of one break stops the walk at the first.
    let first_only = verify(&pool, 1).await;
    assert_eq!((first_only.rows_checked, first_only.breaks.len()), (5, 1));
    pool.close().await;
    drop(database);
}
