//! The account's SQL, checked against the schema at build time (`.sqlx/`). Every query is
//! scoped to one account.

use sqlx::{PgConnection, PgPool};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::rules::{Account, Checked, UserView, DATE};

/// An account's columns, of `users u`: what [`Account`] is read from, here and with the session
/// check on every request (`auth::sessions::live_account`). No `Debug`: it is personal.
#[derive(sqlx::FromRow)]
pub(crate) struct AccountRow {
    pub id: Uuid,
    pub user_type: String,
    pub email: String,
    pub display_name: String,
    pub roles: Vec<String>,
    pub sobriety_date: Option<Date>,
    pub notification_preferences: serde_json::Value,
    pub created_at: OffsetDateTime,
    pub identity_record_id: Option<Uuid>,
}

impl From<AccountRow> for Account {
    fn from(row: AccountRow) -> Self {
        Account {
            view: UserView {
                id: row.id,
                user_type: row.user_type,
                email: row.email,
                display_name: row.display_name,
                roles: row.roles,
                sobriety_date: row.sobriety_date.and_then(|d| d.format(DATE).ok()),
                notification_preferences: row.notification_preferences,
                created_at: row.created_at,
            },
            identity_record_id: row.identity_record_id,
        }
    }
}

/// The account, unless it was closed.
pub(super) async fn account(pool: &PgPool, id: Uuid) -> Result<Option<Account>, sqlx::Error> {
    let row = sqlx::query_as!(
        AccountRow,
        r#"SELECT u.id, u.user_type::text AS "user_type!", u.email, u.display_name, u.roles,
           u.sobriety_date, u.notification_preferences, u.created_at, u.identity_record_id
           FROM users u WHERE u.id = $1 AND u.deleted_at IS NULL"#,
        id,
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(Account::from))
}

/// Writes a checked change (fields it leaves `None` stay as they are) to an open account.
pub(super) async fn update(
    tx: &mut PgConnection,
    id: Uuid,
    change: Checked,
    preferences: Option<serde_json::Value>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE users SET display_name = COALESCE($2, display_name), \
         sobriety_date = CASE WHEN $3 THEN $4 ELSE sobriety_date END, \
         notification_preferences = COALESCE($5, notification_preferences), updated_at = now() \
         WHERE id = $1 AND deleted_at IS NULL",
        id,
        change.display_name,
        change.sobriety_date.is_some(),
        change.sobriety_date.flatten(),
        preferences,
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Marks the account deleted (its sessions are ended by the caller, in the same transaction).
pub(super) async fn close(tx: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!("UPDATE users SET deleted_at = now(), updated_at = now() WHERE id = $1 AND deleted_at IS NULL", id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}
