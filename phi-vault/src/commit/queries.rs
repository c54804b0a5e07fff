//! The one statement the committer runs of its own.

use sqlx::PgConnection;

/// A step waits at most 5 s for a row or trail lock; the batch then fails and its accesses run
/// one by one.
pub(super) async fn lock_timeout(tx: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query!("SET LOCAL lock_timeout = '5s'").execute(&mut *tx).await?;
    Ok(())
}
