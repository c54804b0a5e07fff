//! A PostgreSQL database of a test's own, on the server scripts/test starts.

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
    #[allow(dead_code)] // each test binary compiles this module; not all of them use this
    pub async fn owner_pool(&self) -> PgPool {
        let url = db::url_for(&self.admin, Database::Consent.owner_role(), None, &self.name).expect("url");
        PgPool::connect(&url).await.expect("connect as owner")
    }

    pub async fn drop(self) {
        self.pool.close().await;
        let mut conn = PgConnection::connect(&self.admin).await.expect("connect");
        db::drop_database(&mut conn, &self.name).await.expect("drop");
    }
}
