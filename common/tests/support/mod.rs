//! A PostgreSQL database of a test's own, on the server scripts/test starts.
// Each test binary compiles this module, and not every one uses all of it.
#![allow(dead_code)]

use common::db::{self, Database};
use sqlx::{Connection as _, PgConnection, PgPool};

/// A migrated database of the consent service's schema, for one test alone; `pool` connects as
/// the service does.
pub struct TestDb {
    pub admin: String,
    pub name: String,
    pub pool: PgPool,
}

impl TestDb {
    pub async fn create() -> Self {
        let admin = std::env::var("SECONDWIND_TEST_ADMIN_URL")
            .expect("SECONDWIND_TEST_ADMIN_URL: run the tests with scripts/test, which starts PostgreSQL");
        let database = Database::Consent;
        let mut conn = PgConnection::connect(&admin).await.expect("connect to the test cluster");
        db::ensure_role_exists(&mut conn, database.owner_role()).await.expect("owner role");
        db::ensure_role_exists(&mut conn, database.app_role()).await.expect("app role");
        let name = format!("common_test_{}", uuid::Uuid::new_v4().simple());
        db::create_database(&mut conn, &name, database, None).await.expect("create database");
        let _ = conn.close().await;
        let url = |role: &str| db::url_for(&admin, role, None, &name).expect("url");
        let mut owner = PgConnection::connect(&url(database.owner_role())).await.expect("connect as owner");
        database.migrator().run(&mut owner).await.expect("migrate");
        let _ = owner.close().await;
        let pool = PgPool::connect(&url(database.app_role())).await.expect("connect as the service");
        Self { admin, name, pool }
    }

    /// A pool of the schema's owner, who may create tables of the test's own.
    pub async fn owner_pool(&self) -> PgPool {
        let url = db::url_for(&self.admin, Database::Consent.owner_role(), None, &self.name).expect("url");
        PgPool::connect(&url).await.expect("connect as owner")
    }
}

/// Dropped whether the test passed or failed (a failed one, or a mutant caught, must not leave
/// its database behind), on a thread of its own since a test's runtime cannot block on it.
impl Drop for TestDb {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async {
                let mut conn = PgConnection::connect(&admin).await.map_err(|e| e.to_string())?;
                db::drop_database(&mut conn, &name).await.map_err(|e| e.to_string())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) && !std::thread::panicking() {
            panic!("could not drop the test database {}: {dropped:?}", self.name);
        }
    }
}
