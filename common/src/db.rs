//! The three databases: their migrations (embedded at build time), connecting with bounded
//! retry, and the provisioning statements the admin CLI and the test harness share.
//!
//! Each database has two roles: an owner (`sw_<db>_owner`) that runs migrations (only through
//! `secondwind-operator db migrate`), and an app role (`sw_<db>`) the service uses at run time with
//! data privileges only. `CONNECT` on each database
//! is revoked from `PUBLIC` and granted to its two roles alone, so the public API's role cannot
//! even open the PHI or consent databases.
//!
//! Its SQL is built at run time: provisioning names roles and databases (quoted by [`ident`]),
//! and the catalogue reads run on the administrator's connection or before any migration, not
//! on a schema the query macros check against.

use std::time::{Duration, Instant};

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

use crate::config::DatabaseConfig;

pub static PUBLIC_MIGRATOR: Migrator = sqlx::migrate!("../migrations/public");
pub static PHI_MIGRATOR: Migrator = sqlx::migrate!("../migrations/phi");
pub static CONSENT_MIGRATOR: Migrator = sqlx::migrate!("../migrations/consent");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Database {
    Public,
    Phi,
    Consent,
}

impl Database {
    /// The database `service` owns.
    pub fn of(service: crate::ServiceName) -> Self {
        match service {
            crate::ServiceName::PublicApi => Self::Public,
            crate::ServiceName::PhiVault => Self::Phi,
            crate::ServiceName::Consent => Self::Consent,
        }
    }

    pub const ALL: [Database; 3] = [Self::Public, Self::Phi, Self::Consent];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Phi => "phi",
            Self::Consent => "consent",
        }
    }

    pub fn migrator(self) -> &'static Migrator {
        match self {
            Self::Public => &PUBLIC_MIGRATOR,
            Self::Phi => &PHI_MIGRATOR,
            Self::Consent => &CONSENT_MIGRATOR,
        }
    }

    /// The run-time role, named in the migrations' grants.
    pub fn app_role(self) -> &'static str {
        match self {
            Self::Public => "sw_public",
            Self::Phi => "sw_phi",
            Self::Consent => "sw_consent",
        }
    }

    /// The owner role, which runs migrations.
    pub fn owner_role(self) -> &'static str {
        match self {
            Self::Public => "sw_public_owner",
            Self::Phi => "sw_phi_owner",
            Self::Consent => "sw_consent_owner",
        }
    }

    /// The database name the embedded default uses.
    pub fn default_name(self) -> &'static str {
        match self {
            Self::Public => "secondwind_public",
            Self::Phi => "secondwind_phi",
            Self::Consent => "secondwind_consent",
        }
    }

    /// A fingerprint of this database's migrations, so a template built from other migrations
    /// is never reused.
    pub fn migrations_fingerprint(self) -> String {
        let mut hasher = ring::digest::Context::new(&ring::digest::SHA256);
        for m in self.migrator().iter() {
            hasher.update(&m.version.to_be_bytes());
            hasher.update(&m.checksum);
        }
        hasher.finish().as_ref()[..6].iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl std::str::FromStr for Database {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| format!("unknown database `{s}` (expected public, phi or consent)"))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database unreachable after {waited:?}: {last}")]
    Unreachable { waited: Duration, last: String },
    #[error("invalid database URL: {0}")]
    Url(String),
    #[error("migrating the {database} database: {source}")]
    Migrate { database: &'static str, source: sqlx::migrate::MigrateError },
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
    #[error("invalid identifier `{0}`")]
    Identifier(String),
}

fn options(url: &str) -> Result<PgConnectOptions, DbError> {
    url.parse::<PgConnectOptions>().map_err(|e| DbError::Url(e.to_string()))
}

/// A connection idle longer than this is pinged before it is handed out; a busier one is not.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(10);
/// For this long after a connection was found lost, every connection is pinged before it is
/// handed out: a server restart or failover drops them all at once.
const PING_ALL_AFTER_LOSS: Duration = Duration::from_secs(30);

/// When this process last found a connection lost, in milliseconds after [`EPOCH`]; 0 never.
static LAST_LOSS_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

fn since_epoch() -> Duration {
    EPOCH.get_or_init(Instant::now).elapsed()
}

fn recently_lost() -> bool {
    let at = LAST_LOSS_MS.load(std::sync::atomic::Ordering::Relaxed);
    at != 0 && since_epoch().saturating_sub(Duration::from_millis(at)) < PING_ALL_AFTER_LOSS
}

/// Whether an error means the connection itself is gone (the server restarted, failed over or
/// ended the session), not that the statement failed.
pub fn is_connection_lost(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) => true,
        // 08: connection exception; 57P01-03: the server is shutting down or cannot connect now.
        sqlx::Error::Database(db) => {
            db.code().is_some_and(|code| code.starts_with("08") || matches!(&*code, "57P01" | "57P02" | "57P03"))
        }
        _ => false,
    }
}

/// Records that a connection was found lost: for [`PING_ALL_AFTER_LOSS`] every connection is
/// pinged before it is handed out.
pub fn note_connection_lost() {
    let at = since_epoch().as_millis().max(1);
    LAST_LOSS_MS.store(u64::try_from(at).unwrap_or(u64::MAX), std::sync::atomic::Ordering::Relaxed);
}

/// Runs `op`, and once more if it failed because its connection was lost; from then on, for a
/// while, every connection is pinged before use, so the second run gets a live one. For
/// statements safe to run twice, or whose first run cannot have committed when the connection
/// was lost before the answer (one caveat: a commit whose acknowledgement was lost may have
/// happened; a second audit row is preferred to none).
pub async fn retry_if_lost<T, F, Fut>(mut op: F) -> Result<T, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
{
    match op().await {
        Err(e) if is_connection_lost(&e) => {
            note_connection_lost();
            tracing::warn!(error = %e, "a database connection was lost; trying once more on a checked one");
            op().await
        }
        outcome => outcome,
    }
}

/// The pool every service uses. sqlx's default pings each connection as it is handed out, a
/// round trip before every query; here only a connection idle for a while is pinged (one
/// dropped by a restarted or failed-over server is then replaced before use), or every one for
/// a while after a lost connection was seen ([`retry_if_lost`]). A connection used in the last
/// 10 s that broke fails its query, and the pool closes it; the statements that begin a request
/// (the session check, spending an internal call's assertion) and the audit appends that end
/// one run through [`retry_if_lost`], so after a server restart a request neither fails on a
/// stale connection nor leaves its work without its audit entry. sqlx 0.8 also pings each
/// connection as it comes back, after the response has gone; that one cannot be turned off.
fn pool_options(max_connections: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > PING_IF_IDLE_FOR || recently_lost() {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
}

/// Connects, retrying with exponential backoff (250 ms doubling to 5 s) until `timeout` has
/// passed; then gives up with the last error. Later outages are the pool's business: it
/// reconnects by itself, and `/health` reports them meanwhile.
pub async fn connect_with_backoff(url: &str, max_connections: u32, timeout: Duration) -> Result<PgPool, DbError> {
    let opts = options(url)?;
    let started = Instant::now();
    let mut delay = Duration::from_millis(250);
    loop {
        // One plain connection per attempt: the pool itself would retry silently until its
        // acquire timeout, hiding the backoff and overrunning the bound.
        let remaining = timeout.saturating_sub(started.elapsed()).max(Duration::from_millis(250));
        let attempt = match tokio::time::timeout(remaining, PgConnection::connect_with(&opts)).await {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(_) => Err(format!("no answer within {remaining:?}")),
        };
        match attempt {
            Ok(probe) => {
                let _ = probe.close().await;
                return Ok(pool_options(max_connections).connect_with(opts).await?);
            }
            Err(e) if started.elapsed() + delay < timeout => {
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "database not reachable yet");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(DbError::Unreachable { waited: started.elapsed(), last: e }),
        }
    }
}

/// Connects the service's pool as its runtime role. Services never migrate and never use owner
/// credentials: `secondwind-operator db migrate` applies migrations before they start. A
/// `database.migrate_url` left in a dev config is ignored (production refuses it).
pub async fn connect_service(database: Database, config: &DatabaseConfig) -> Result<PgPool, DbError> {
    let timeout = Duration::from_secs(config.connect_timeout_secs);
    if config.migrate_url.is_some() {
        tracing::warn!(
            database = database.as_str(),
            "database.migrate_url is ignored: services never migrate; remove it from this config and \
             run `secondwind-operator db migrate`"
        );
    }
    connect_with_backoff(config.url.expose(), config.max_connections, timeout).await
}

/// Applies pending migrations; returns how many were applied.
pub async fn migrate(database: Database, pool: &PgPool) -> Result<usize, DbError> {
    let before = applied_versions(pool).await.unwrap_or_default();
    database.migrator().run(pool).await.map_err(|source| DbError::Migrate { database: database.as_str(), source })?;
    let after = applied_versions(pool).await?;
    Ok(after.len().saturating_sub(before.len()))
}

/// Versions already applied (an empty list before the first migration).
pub async fn applied_versions(pool: &PgPool) -> Result<Vec<i64>, DbError> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL").fetch_one(pool).await?;
    if !exists {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
        .fetch_all(pool)
        .await?)
}

/// Checks a role or database name: lowercase letters, digits and `_`, so it can be quoted safely.
pub fn ident(name: &str) -> Result<String, DbError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit();
    if ok {
        Ok(format!("\"{name}\""))
    } else {
        Err(DbError::Identifier(name.to_owned()))
    }
}

fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// Creates a login role, or sets its password if it exists.
pub async fn ensure_role(admin: &mut PgConnection, name: &str, password: &str) -> Result<(), DbError> {
    let role = ident(name)?;
    create_role_if_missing(admin, name).await?;
    sqlx::query(&format!("ALTER ROLE {role} LOGIN PASSWORD {}", literal(password))).execute(&mut *admin).await?;
    Ok(())
}

/// Creates a login role without a password if it is missing (tests use trust on the socket).
pub async fn ensure_role_exists(admin: &mut PgConnection, name: &str) -> Result<(), DbError> {
    create_role_if_missing(admin, name).await
}

/// `CREATE ROLE`, tolerating a concurrent creator (several test processes, two inits).
async fn create_role_if_missing(admin: &mut PgConnection, name: &str) -> Result<(), DbError> {
    let role = ident(name)?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
        .bind(name)
        .fetch_one(&mut *admin)
        .await?;
    if exists {
        return Ok(());
    }
    let created = sqlx::query(&format!("CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE"))
        .execute(&mut *admin)
        .await;
    match created {
        Ok(_) => Ok(()),
        // duplicate_object, or unique_violation when two creators race inside the catalog.
        Err(sqlx::Error::Database(e)) if matches!(e.code().as_deref(), Some("42710") | Some("23505")) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

pub async fn database_exists(admin: &mut PgConnection, name: &str) -> Result<bool, DbError> {
    Ok(sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(name)
        .fetch_one(&mut *admin)
        .await?)
}

/// Creates `name` owned by `owner` (optionally from `template`) and restricts `CONNECT` to the
/// owner and app roles of `database`.
pub async fn create_database(
    admin: &mut PgConnection,
    name: &str,
    database: Database,
    template: Option<&str>,
) -> Result<(), DbError> {
    let db = ident(name)?;
    let owner = ident(database.owner_role())?;
    let app = ident(database.app_role())?;
    let template = match template {
        Some(t) => format!(" TEMPLATE {}", ident(t)?),
        None => String::new(),
    };
    sqlx::query(&format!("CREATE DATABASE {db} OWNER {owner}{template}")).execute(&mut *admin).await?;
    sqlx::query(&format!("REVOKE ALL ON DATABASE {db} FROM PUBLIC")).execute(&mut *admin).await?;
    sqlx::query(&format!("GRANT CONNECT, TEMPORARY ON DATABASE {db} TO {app}")).execute(&mut *admin).await?;
    Ok(())
}

pub async fn drop_database(admin: &mut PgConnection, name: &str) -> Result<(), DbError> {
    sqlx::query(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", ident(name)?)).execute(&mut *admin).await?;
    Ok(())
}

/// Replaces the user, password and database name of a URL (used to derive role URLs from the
/// admin URL, keeping host, port and TLS settings).
pub fn url_for(base: &str, user: &str, password: Option<&str>, dbname: &str) -> Result<String, DbError> {
    let mut url = reqwest::Url::parse(base).map_err(|e| DbError::Url(e.to_string()))?;
    url.set_username(user).map_err(|_| DbError::Url("cannot set user".into()))?;
    url.set_password(password).map_err(|_| DbError::Url("cannot set password".into()))?;
    url.set_path(&format!("/{dbname}"));
    // A `dbname` query parameter would override the path.
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != "dbname" && k != "user" && k != "password")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    url.set_query(None);
    if !pairs.is_empty() {
        url.query_pairs_mut().extend_pairs(pairs);
    }
    Ok(url.to_string())
}

/// A page of rows fetched with `LIMIT limit + 1`, ordered by the `i64` column `key`: the first
/// `limit` rows, and the key of the last of them when a further row shows there is a next page.
/// A listener on `channel`, connecting again every 5 s until it works; `None` if `shutdown`
/// fires first. The listener reconnects by itself later (`try_recv` answers `Ok(None)` when the
/// connection was lost, and notices sent meanwhile are gone: callers resynchronise then).
pub async fn listen_on<F: std::future::Future<Output = ()>>(
    pool: &PgPool,
    channel: &str,
    mut shutdown: std::pin::Pin<&mut F>,
) -> Option<sqlx::postgres::PgListener> {
    loop {
        match sqlx::postgres::PgListener::connect_with(pool).await {
            Ok(mut listener) => match listener.listen(channel).await {
                Ok(()) => return Some(listener),
                Err(e) => tracing::warn!(channel, error = %e, "cannot listen; retrying"),
            },
            Err(e) => tracing::warn!(channel, error = %e, "cannot listen; retrying"),
        }
        tokio::select! {
            _ = &mut shutdown => return None,
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}

/// A value a text column holds as one of a fixed set of names (a status): decoded with
/// [`Text`], so a row type names the enum and an unknown name is a decode error, never a guess.
pub trait TextEnum: Sized + Copy + Send + Sync {
    fn as_text(self) -> &'static str;
    fn from_text(text: &str) -> Option<Self>;
}

impl TextEnum for wire::applications::ApplicationStatus {
    fn as_text(self) -> &'static str {
        self.as_str()
    }
    fn from_text(text: &str) -> Option<Self> {
        Self::parse(text)
    }
}

impl TextEnum for wire::insurance::InsuranceStatus {
    fn as_text(self) -> &'static str {
        self.as_str()
    }
    fn from_text(text: &str) -> Option<Self> {
        Self::parse(text)
    }
}

/// A [`TextEnum`] as its text column stores it. The wire types stay free of sqlx (the staff CLI
/// links them), so the services decode them through this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Text<T>(pub T);

impl<T> sqlx::Type<sqlx::Postgres> for Text<T> {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        <&str as sqlx::Type<sqlx::Postgres>>::type_info()
    }
    fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
        <&str as sqlx::Type<sqlx::Postgres>>::compatible(ty)
    }
}

// A row field may name the enum itself: `query_as!` converts what it decoded with `.into()`.
impl From<Text<wire::applications::ApplicationStatus>> for wire::applications::ApplicationStatus {
    fn from(text: Text<Self>) -> Self {
        text.0
    }
}

impl From<Text<wire::insurance::InsuranceStatus>> for wire::insurance::InsuranceStatus {
    fn from(text: Text<Self>) -> Self {
        text.0
    }
}

impl<'r, T: TextEnum> sqlx::Decode<'r, sqlx::Postgres> for Text<T> {
    fn decode(value: sqlx::postgres::PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        let text = <&str as sqlx::Decode<sqlx::Postgres>>::decode(value)?;
        T::from_text(text).map(Text).ok_or_else(|| format!("`{text}` is not a value this column may hold").into())
    }
}

/// One keyset page of typed rows read with `LIMIT limit + 1`: at most `limit` rows, and the key
/// of the last one when a further row showed there is more.
pub fn keyset_page<T>(mut rows: Vec<T>, limit: i64, key: impl Fn(&T) -> i64) -> (Vec<T>, Option<i64>) {
    let limit = usize::try_from(limit.max(0)).unwrap_or(0);
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next = if more { rows.last().map(key) } else { None };
    (rows, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keyset_page_names_the_last_key_only_when_more_follow() {
        assert_eq!(keyset_page(vec![9, 8, 7], 2, |r| *r), (vec![9, 8], Some(8)));
        assert_eq!(keyset_page(vec![9, 8], 2, |r| *r), (vec![9, 8], None));
        assert_eq!(keyset_page(Vec::<i64>::new(), 2, |r| *r), (vec![], None));
        assert_eq!(keyset_page(vec![9], 0, |r| *r), (vec![], None));
        assert_eq!(keyset_page(vec![9], -1, |r| *r), (vec![], None));
    }

    #[test]
    fn identifiers_are_checked() {
        assert_eq!(ident("sw_public").ok().as_deref(), Some("\"sw_public\""));
        assert!(ident("x\"; DROP").is_err());
        assert!(ident("Upper").is_err());
        assert!(ident("1abc").is_err());
    }

    #[test]
    fn url_for_keeps_host_and_options() {
        let url = url_for(
            "postgres://postgres@127.0.0.1:5433/postgres?sslmode=disable",
            "sw_phi",
            Some("pw"),
            "secondwind_phi",
        )
        .expect("valid");
        assert_eq!(url, "postgres://sw_phi:pw@127.0.0.1:5433/secondwind_phi?sslmode=disable");
    }

    #[test]
    fn fingerprints_differ_per_database() {
        assert_ne!(Database::Public.migrations_fingerprint(), Database::Phi.migrations_fingerprint());
    }
}
