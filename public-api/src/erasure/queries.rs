//! The erasure's SQL: what the public database keeps that reveals a person's recovery, or points
//! at their erased records.

use sqlx::PgConnection;
use uuid::Uuid;

/// Clears the sobriety date, the references into the vault, staff notes on their applications,
/// and notifications, and ends what cannot go on without the records, rejected by `admin`. The
/// account itself stays.
pub async fn erase_public_traces(tx: &mut PgConnection, user: Uuid, admin: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE users SET sobriety_date = NULL, identity_record_id = NULL, updated_at = now() WHERE id = $1",
        user
    )
    .execute(&mut *tx)
    .await?;
    // Applications still open cannot be reviewed or paid without their details: they end,
    // rejected by the admin who erased, and the idempotency keys and request hashes go too.
    sqlx::query!(
        "WITH open AS (SELECT id, status FROM applications \
         WHERE beneficiary_id = $1 AND status IN ('reviewing', 'action_needed', 'approved') FOR UPDATE), \
         ended AS (UPDATE applications a SET status = 'rejected', decided_at = now() FROM open \
         WHERE a.id = open.id RETURNING a.id, a.amount_cents, open.status AS was) \
         INSERT INTO application_events (application_id, from_status, to_status, actor_id, actor_role, amount_cents, note) \
         SELECT id, was, 'rejected', $2, 'admin', amount_cents, NULL FROM ended",
        user,
        admin,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "UPDATE applications SET details_record_id = NULL, idempotency_key = NULL, request_sha256 = NULL, \
         version = version + 1, updated_at = now() WHERE beneficiary_id = $1",
        user
    )
    .execute(&mut *tx)
    .await?;
    // Staff notes on their applications may describe them.
    sqlx::query!(
        "UPDATE application_events SET note = NULL \
         WHERE application_id IN (SELECT id FROM applications WHERE beneficiary_id = $1)",
        user
    )
    .execute(&mut *tx)
    .await?;
    // (A retried erasure keeps the reason an earlier one gave.)
    sqlx::query!(
        "UPDATE insurance_verifications SET details_record_id = NULL, \
         reason = CASE WHEN reason = 'records erased' THEN reason END WHERE beneficiary_id = $1",
        user
    )
    .execute(&mut *tx)
    .await?;
    // A pending request cannot be decided without its details: it ends, so no request stays
    // pending forever.
    sqlx::query!(
        "UPDATE insurance_verifications SET status = 'rejected', decided_at = now(), decided_by = $2, \
         reason = 'records erased' WHERE beneficiary_id = $1 AND status = 'pending'",
        user,
        admin,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!("UPDATE chat_sessions SET transcript_record_id = NULL WHERE user_id = $1", user)
        .execute(&mut *tx)
        .await?;
    sqlx::query!("DELETE FROM notifications WHERE user_id = $1", user).execute(&mut *tx).await?;
    // The documents went with the records; nothing here should point at them.
    sqlx::query!("DELETE FROM application_documents WHERE beneficiary_id = $1", user).execute(&mut *tx).await?;
    // No more email either: an erased account's address is not written to again.
    sqlx::query!(
        "INSERT INTO notification_preferences (user_id, email) SELECT id, false FROM users WHERE id = $1 \
         ON CONFLICT (user_id) DO UPDATE SET email = false, updated_at = now()",
        user
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}
