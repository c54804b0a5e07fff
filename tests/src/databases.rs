//! Fresh databases per test, copied from migrated templates, dropped on `Drop`; what a killed run left is swept.

#[allow(unused_imports)]
use super::*;

pub(crate) static TEMPLATES: OnceCell<()> = OnceCell::const_new();

pub(crate) fn template_name(database: Database) -> String {
    format!("tpl_{}_{}", database.as_str(), database.migrations_fingerprint())
}

/// Creates the roles and one migrated template per database, once per cluster (guarded by an
/// advisory lock, since test processes run in parallel).
pub(crate) async fn ensure_templates() {
    TEMPLATES
        .get_or_init(|| async {
            let admin = admin_url();
            let mut conn = PgConnection::connect(&admin).await.expect("connect to the test cluster");
            sqlx::query("SELECT pg_advisory_lock(724311)").execute(&mut conn).await.expect("lock");
            for database in Database::ALL {
                db::ensure_role_exists(&mut conn, database.owner_role()).await.expect("owner role");
                db::ensure_role_exists(&mut conn, database.app_role()).await.expect("app role");
            }
            for database in Database::ALL {
                let name = template_name(database);
                if !db::database_exists(&mut conn, &name).await.expect("query") {
                    // Build under a temporary name, rename when complete: a crash never leaves
                    // a half-migrated template behind under the real name.
                    let building = format!("{name}_building");
                    db::drop_database(&mut conn, &building).await.expect("drop stale");
                    db::create_database(&mut conn, &building, database, None).await.expect("create template");
                    let owner_url = db::url_for(&admin, database.owner_role(), None, &building).expect("url");
                    let mut owner = PgConnection::connect(&owner_url).await.expect("connect as owner");
                    database.migrator().run(&mut owner).await.expect("migrate template");
                    owner.close().await.expect("close");
                    sqlx::query(&format!("ALTER DATABASE \"{building}\" RENAME TO \"{name}\""))
                        .execute(&mut conn)
                        .await
                        .expect("rename template");
                }
            }
            leftovers::sweep(&mut conn).await;
            sqlx::query("SELECT pg_advisory_unlock(724311)").execute(&mut conn).await.expect("unlock");
            let _ = conn.close().await;
        })
        .await;
}

/// Sweeps what killed test runs left on the cluster and the disk (see `leftovers`); the harness
/// does it once per process before the first test database is made.
pub async fn sweep_leftovers() {
    let mut conn = PgConnection::connect(&admin_url()).await.expect("connect to the test cluster");
    leftovers::sweep(&mut conn).await;
    let _ = conn.close().await;
}

/// A fresh database for one test, copied from the migrated template. Dropped (with any
/// connection still open to it) when the value is dropped, also when the test panics.
pub struct TestDatabase {
    pub database: Database,
    pub name: String,
    pub(crate) dropped: bool,
}

impl TestDatabase {
    pub async fn create(database: Database, test_id: &str) -> Self {
        ensure_templates().await;
        let name = format!("{}{test_id}_{}", leftovers::prefix(), database.as_str());
        let mut conn = PgConnection::connect(&admin_url()).await.expect("connect");
        db::create_database(&mut conn, &name, database, Some(&template_name(database))).await.expect("copy template");
        let _ = conn.close().await;
        Self { database, name, dropped: false }
    }

    /// URL for `role` on this database (trust on the local socket in the test cluster).
    pub fn url_as(&self, role: &str) -> String {
        db::url_for(&admin_url(), role, None, &self.name).expect("url")
    }

    pub fn app_url(&self) -> String {
        self.url_as(self.database.app_role())
    }

    /// Drops the database now rather than when the value goes.
    pub async fn drop_now(mut self) {
        leftovers::drop_database(&self.name).await;
        self.dropped = true;
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if !self.dropped {
            let name = std::mem::take(&mut self.name);
            leftovers::blocking(async move { leftovers::drop_database(&name).await });
        }
    }
}

/// What a test leaves on the cluster and the disk is named after its process (`t<pid>_…`,
/// `secondwind-test-<pid>-…`), so a later run can tell what a killed run left (its process is
/// gone) from what a running test still uses, and sweep it.
pub(crate) mod leftovers {
    use super::*;

    pub fn prefix() -> String {
        format!("swt{}_", std::process::id())
    }

    pub fn key_dir(test_id: &str) -> PathBuf {
        std::env::temp_dir().join(format!("secondwind-test-{}-{test_id}", std::process::id()))
    }

    fn process_gone(pid: &str) -> bool {
        pid.parse::<u32>().is_ok_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
    }

    pub async fn drop_database(name: &str) {
        if let Ok(mut conn) = PgConnection::connect(&admin_url()).await {
            let _ = db::drop_database(&mut conn, name).await;
            let _ = conn.close().await;
        }
    }

    /// Runs `work` to completion from synchronous code (a `Drop`), on a thread of its own with
    /// its own runtime: the test's runtime may be the one calling, or already gone.
    pub fn blocking(work: impl std::future::Future<Output = ()> + Send + 'static) {
        let _ = std::thread::spawn(move || {
            if let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                runtime.block_on(work);
            }
        })
        .join();
    }

    /// Drops the databases and removes the key directories of test processes that no longer
    /// run (a run killed before its `Drop`s ran). Only where this process can see the others
    /// (`/proc`), and only directories of this user's own.
    pub async fn sweep(conn: &mut PgConnection) {
        if !Path::new("/proc/self").exists() {
            return;
        }
        let names: Vec<String> = sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname ~ '^swt[0-9]+_'")
            .fetch_all(&mut *conn)
            .await
            .unwrap_or_default();
        for name in names {
            let pid = name[3..].split('_').next().unwrap_or_default();
            if process_gone(pid) {
                let _ = db::drop_database(conn, &name).await;
            }
        }
        let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            let Some(rest) = file_name.to_str().and_then(|n| n.strip_prefix("secondwind-test-")) else { continue };
            let mine = std::fs::symlink_metadata(entry.path()).is_ok_and(|m| {
                use std::os::unix::fs::MetadataExt;
                m.is_dir() && Some(m.uid()) == std::fs::metadata("/proc/self").ok().map(|s| s.uid())
            });
            if mine && process_gone(rest.split('-').next().unwrap_or_default()) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}
