//! The directory's SQL: pages of entries, adding and retiring one, and the entry in use a
//! consent names.

use sqlx::{FromRow, PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use super::rules::EntryKind;

/// `sqlx::query_as!` into [`EntryRow`]: the SQL `$head`, every column it holds, then `$tail`.
macro_rules! entry_query {
    ($head:literal, $tail:literal $(, $($args:tt)*)?) => {
        sqlx::query_as!(
            EntryRow,
            $head + r#"id, seq, kind AS "kind: _", name, address, principal IS NOT NULL AS "linked!", retired_at"#
                + $tail
            $(, $($args)*)?
        )
    };
}

/// A directory entry as staff and beneficiaries see it (never the account acting for it, only
/// whether one does).
#[derive(Debug, FromRow)]
pub(crate) struct EntryRow {
    pub id: Uuid,
    pub seq: i64,
    pub kind: EntryKind,
    pub name: String,
    pub address: Option<String>,
    pub linked: bool,
    pub retired_at: Option<OffsetDateTime>,
}

/// The entries after `after`, oldest first, the retired ones too if `retired`; at most `limit`.
pub(crate) async fn page(pool: &PgPool, after: i64, retired: bool, limit: i64) -> Result<Vec<EntryRow>, sqlx::Error> {
    entry_query!(
        "SELECT ",
        " FROM recipients WHERE seq > $1 AND ($2 OR retired_at IS NULL) ORDER BY seq LIMIT $3",
        after,
        retired,
        limit
    )
    .fetch_all(pool)
    .await
}

/// A new entry, checked ([`super::rules::check_new`]).
pub(crate) struct NewEntry<'a> {
    pub kind: EntryKind,
    pub name: &'a str,
    pub address: Option<&'a str>,
    pub principal: Option<String>,
    pub created_by: &'a str,
}

/// Adds an entry; `None` when its account already acts for another entry. An entry in use of
/// the same kind with the same name breaks the constraint `recipients_active_name`.
pub(crate) async fn add(pool: &PgPool, new: NewEntry<'_>) -> Result<Option<EntryRow>, sqlx::Error> {
    entry_query!(
        "INSERT INTO recipients (id, kind, name, address, principal, created_by) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (principal) DO NOTHING RETURNING ",
        "",
        Uuid::new_v4(),
        new.kind.as_str(),
        new.name,
        new.address,
        new.principal,
        new.created_by
    )
    .fetch_optional(pool)
    .await
}

/// Retires an entry in use; `None` if there is none by that id in use.
pub(crate) async fn retire(pool: &PgPool, id: Uuid, by: &str) -> Result<Option<EntryRow>, sqlx::Error> {
    entry_query!(
        "UPDATE recipients SET retired_at = now(), retired_by = $2 WHERE id = $1 AND retired_at IS NULL \
         RETURNING ",
        "",
        id,
        by
    )
    .fetch_optional(pool)
    .await
}

pub(crate) async fn exists(pool: &PgPool, id: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(r#"SELECT EXISTS (SELECT 1 FROM recipients WHERE id = $1) AS "exists!""#, id)
        .fetch_one(pool)
        .await
}

/// What a consent copies of the entry it names, and the account acting for it.
#[derive(Debug, FromRow)]
pub(crate) struct ActiveEntryRow {
    pub name: String,
    pub address: Option<String>,
    pub principal: Option<String>,
}

/// An entry in use (not retired), as a consent names it.
pub(crate) async fn in_use(conn: &mut PgConnection, id: Uuid) -> Result<Option<ActiveEntryRow>, sqlx::Error> {
    sqlx::query_as!(
        ActiveEntryRow,
        "SELECT name, address, principal FROM recipients WHERE id = $1 AND retired_at IS NULL",
        id
    )
    .fetch_optional(conn)
    .await
}
