//! An assignment in the two phases of the record routes (`crate::records` module docs).

use sqlx::PgPool;
use uuid::Uuid;

use common::assertion::Claims;
use common::ApiError;

use super::{queries, rules};
use crate::access_log::{self, access};
use crate::policy::Decision;
use crate::records::{lock_subject, SubjectKey, SubjectRow, Vault};

/// Puts `caseworker` on `subject`'s care team, as `assigned_by` decided, with the access logged.
pub(super) async fn assign_caseworker(
    pool: &PgPool,
    vault: &Vault,
    claims: &Claims,
    (caseworker, subject, assigned_by): (Uuid, Uuid, Uuid),
    decision: &Decision,
) -> Result<(), ApiError> {
    // The subject may have no records yet: give it its data key now (phase 1: generated and
    // wrapped outside any transaction).
    let key = vault.subject_key(pool, subject, true, &claims.request_id).await?;
    // Phase 2. Locks: the subject's row, then the access log's chain lock (module docs).
    let mut tx = pool.begin().await?;
    // A subject whose first key another request stored meanwhile keeps that one.
    let stored_new = match &key {
        SubjectKey::New { .. } => matches!(lock_subject(&mut tx, subject, &key).await?, SubjectRow::Live),
        SubjectKey::Ready(_) | SubjectKey::Erased => false,
    };
    queries::insert(&mut tx, caseworker, subject, assigned_by).await?;
    access_log::append(&mut tx, &access(claims, Some(subject), None, rules::ASSIGN, decision)).await?;
    tx.commit().await?;
    if let (true, SubjectKey::New { key, .. }) = (stored_new, key) {
        vault.cache.put(subject, key);
    }
    Ok(())
}
