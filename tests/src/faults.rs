//! Faults a test injects into a database: refused or held inserts.

#[allow(unused_imports)]
use super::*;

/// Makes every insert into `table` of this test's `database` fail where `when` (SQL over `NEW`)
/// holds, as a crash between two writes would: a fault injected in the test's own database.
pub async fn refuse_inserts(database: &TestDatabase, table: &str, when: &str) {
    insert_trigger(
        database,
        "refuse",
        table,
        &format!("IF {when} THEN RAISE EXCEPTION 'refused by the test'; END IF;"),
    )
    .await;
}

/// Stops every insert into `table` of this test's `database` at a gate the test opens, so
/// concurrent requests that each checked before writing are certain to overlap: a race made
/// certain instead of hoped for. The gate is an advisory lock (scoped to this database) the test
/// holds; each insert waits for a shared hold of it.
pub async fn gate_inserts(database: &TestDatabase, table: &'static str) -> InsertGate {
    const KEY: i64 = 771_001;
    let mut holder = sqlx::PgConnection::connect(&database.url_as("postgres")).await.expect("superuser");
    let held: bool =
        sqlx::query_scalar("SELECT pg_try_advisory_lock($1)").bind(KEY).fetch_one(&mut holder).await.expect("lock");
    assert!(held, "one gate per database at a time");
    // A gate left shut fails the insert after a minute instead of hanging the test.
    let wait = format!(
        "PERFORM set_config('lock_timeout', '60s', true); \
         PERFORM pg_advisory_lock_shared({KEY}); PERFORM pg_advisory_unlock_shared({KEY});"
    );
    insert_trigger(database, "gate", table, &wait).await;
    InsertGate { holder, key: KEY }
}

/// See [`gate_inserts`].
pub struct InsertGate {
    pub(crate) holder: sqlx::PgConnection,
    pub(crate) key: i64,
}

impl InsertGate {
    /// Waits (up to a minute) until `n` inserts are held at the gate.
    pub async fn wait_for(&mut self, n: i64) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted \
                 AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND objid::bigint = $1",
            )
            .bind(self.key)
            .fetch_one(&mut self.holder)
            .await
            .expect("pg_locks");
            if waiting >= n {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "{waiting} of {n} inserts reached the gate");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// The gate holder's own connection (the superuser's): its inserts pass the gate, so the
    /// test can write while the requests wait.
    pub fn connection(&mut self) -> &mut sqlx::PgConnection {
        &mut self.holder
    }

    /// Lets every held insert, and every later one, through.
    pub async fn open(mut self) {
        sqlx::query("SELECT pg_advisory_unlock($1)").bind(self.key).execute(&mut self.holder).await.expect("unlock");
        let _ = self.holder.close().await;
    }
}

/// A `BEFORE INSERT` trigger named `<name>_<table>` running `body` (PL/pgSQL) for each row.
pub(crate) async fn insert_trigger(database: &TestDatabase, name: &str, table: &str, body: &str) {
    let su = sqlx::PgPool::connect(&database.url_as("postgres")).await.expect("superuser");
    sqlx::query(&format!(
        "CREATE FUNCTION {name}_{table}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {body} RETURN NEW; END $$"
    ))
    .execute(&su)
    .await
    .expect("function");
    sqlx::query(&format!(
        "CREATE TRIGGER {name}_{table} BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION {name}_{table}()"
    ))
    .execute(&su)
    .await
    .expect("trigger");
    su.close().await;
}
