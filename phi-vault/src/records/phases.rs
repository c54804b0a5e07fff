//! The two phases every record access goes through (module docs): phase 1 decides, outside
//! any transaction; phase 2 re-checks, reads or writes and logs, in one short transaction (for
//! reads and replaces, the next group commit's).

use std::sync::Arc;

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use common::assertion::Claims;
use common::ApiError;

use super::queries;
use super::rules::{self, failure, last, parse_content, Category, Times, FAILED, FIELD};
use super::vault::{crypto_error, Vault};
use crate::access_log::{self, access, log_alone, Entry};
use crate::disclosures::notice::Notice;
use crate::disclosures::record_disclosure;
use crate::keys::crypto::{self, Binding, DataKey, KeyCache};
use crate::policy::{self, Decision, Intent};
use crate::retention::RetentionPolicy;

/// Phase 1 of writing a new record of `category` for `subject`, outside any transaction: the
/// access policy, the subject's consent where the retention policy keeps the category only under
/// one, and the caller's volume (counted only once nothing else refuses). A refusal is logged
/// under `action` and answered.
pub(crate) async fn decide_new(
    pool: &PgPool,
    vault: &Vault,
    retention: &RetentionPolicy,
    claims: &Claims,
    (subject, category): (Uuid, &str),
    action: &str,
) -> Result<Decision, ApiError> {
    let decision = policy::grant(pool, &vault.consent, claims, subject, Intent::Write).await?;
    if !decision.permitted {
        log_alone(pool, &access(claims, Some(subject), None, action, &decision)).await?;
        return Err(ApiError::Forbidden);
    }
    if let Some(purpose) = retention.consent_purpose(category) {
        let ctx = common::assertion::CallContext::on_behalf_of(claims, "retention_check");
        let stands = crate::retention::consent_stands(&vault.consent, &ctx, subject, category, purpose)
            .await
            .map_err(|e| ApiError::Unavailable(format!("consent service: {e}")))?;
        if !stands {
            let refused = Decision::deny("no standing consent to keep records of this category");
            log_alone(pool, &access(claims, Some(subject), None, action, &refused)).await?;
            return Err(ApiError::Conflict(format!(
                "{category}: kept only under the subject's consent ({purpose}), which is not on file"
            )));
        }
    }
    let decision = policy::counted(&vault.watch, claims, subject, Intent::Write, decision);
    if !decision.permitted {
        log_alone(pool, &access(claims, Some(subject), None, action, &decision)).await?;
        return Err(decision.refusal());
    }
    Ok(decision)
}

/// Phase 1 of the record routes: looks up the record's metadata and decides, without a
/// transaction (the policy may ask the consent service). A denial or a miss is logged here and
/// answers 404; a permitted access is logged by the caller's phase 2, with what it does.
pub(crate) async fn authorized(
    pool: &PgPool,
    vault: &Vault,
    claims: &Claims,
    id: Uuid,
    action: &'static str,
) -> Result<(Uuid, Category, Decision), ApiError> {
    let mut conn = pool.acquire().await?;
    // The subject's key state is read with the record: a subject erased through another
    // instance is refused here even while this instance still caches its key.
    let row = queries::record_meta(&mut conn, id).await?;
    let Some(row) = row else {
        drop(conn);
        log_alone(pool, &access(claims, None, Some(id), action, &Decision::deny("no such record"))).await?;
        return Err(ApiError::NotFound);
    };
    let subject = row.subject_id;
    if row.shredded {
        drop(conn);
        log_alone(pool, &access(claims, Some(subject), Some(id), action, &Decision::deny("subject erased"))).await?;
        return Err(ApiError::NotFound);
    }
    let category = row.category;
    let intent = rules::intent(action, category);
    drop(conn); // no connection is held while the policy may ask the consent service
    let decision = policy::decide(pool, &vault.consent, &vault.watch, claims, subject, intent).await?;
    if !decision.permitted {
        log_alone(pool, &access(claims, Some(subject), Some(id), action, &decision)).await?;
        return Err(decision.refusal());
    }
    if decision.flagged {
        tracing::warn!(request_id = %claims.request_id, %subject, alarm = "break_glass", "break-glass access; flagged for review");
    }
    Ok((subject, category, decision))
}

/// Phase 2 of a permitted read: the record decrypted and the access (and any disclosure) logged,
/// in the next group commit, or `alone` in a transaction of its own. Returns the record and the
/// access-log entry of the access.
pub(crate) async fn commit_read(
    vault: &Vault,
    claims: &Claims,
    (subject, id): (Uuid, Uuid),
    (category, decision, action): (Category, Decision, &'static str),
    key: DataKey,
    alone: bool,
) -> Result<((Category, serde_json::Value, Times), i64), ApiError> {
    let phase2 = Arc::new(Phase2 {
        claims: claims.clone(),
        subject,
        id,
        category,
        decision,
        action,
        notice: vault.notice.clone(),
    });
    let cache = vault.cache.clone();
    let step = crate::commit::step(move |conn| {
        let (phase2, key, cache) = (phase2.clone(), key.clone(), cache.clone());
        Box::pin(async move { phase2.read(conn, &key, &cache).await })
    });
    let (outcome, seqs) = if alone { vault.commit.run_alone(step).await? } else { vault.commit.run(id, step).await? };
    Ok((outcome?, last(&seqs)?))
}

/// Phase 2 of a permitted replace: the new ciphertext written and the access logged, in the
/// next group commit. Returns the record's category and times and the access-log entry of the
/// access.
pub(super) async fn commit_replace(
    vault: &Vault,
    claims: &Claims,
    (subject, id): (Uuid, Uuid),
    (category, decision, action): (Category, Decision, &'static str),
    sealed: (Vec<u8>, Vec<u8>),
) -> Result<(Category, Times, i64), ApiError> {
    let phase2 = Arc::new(Phase2 {
        claims: claims.clone(),
        subject,
        id,
        category,
        decision,
        action,
        notice: vault.notice.clone(),
    });
    let sealed = Arc::new(sealed);
    let (outcome, seqs) = vault
        .commit
        .run(id, move |conn| {
            let (phase2, sealed) = (phase2.clone(), sealed.clone());
            Box::pin(async move { phase2.replace(conn, &sealed).await })
        })
        .await?;
    let (category, times) = outcome?;
    Ok((category, times, last(&seqs)?))
}

/// What phase 2 of a read or a replace needs from phase 1. Its steps run in a group commit's
/// transaction, possibly twice (`crate::commit`), so they change nothing outside it but the key
/// cache, and only to forget.
struct Phase2 {
    claims: Claims,
    subject: Uuid,
    id: Uuid,
    category: Category,
    decision: Decision,
    action: &'static str,
    /// The notice a disclosure is entered with.
    notice: Arc<Notice>,
}

impl Phase2 {
    fn entry(&self, decision: &Decision) -> Entry {
        access(&self.claims, Some(self.subject), Some(self.id), self.action, decision).to_entry()
    }

    /// The record and the subject's key state again (either may have gone since phase 1),
    /// decryption, and the disclosure. No lock but the trails' own.
    async fn read(
        &self,
        tx: &mut PgConnection,
        key: &DataKey,
        cache: &KeyCache,
    ) -> Result<(Result<(Category, serde_json::Value, Times), ApiError>, Vec<Entry>), sqlx::Error> {
        let row = queries::sealed_record(tx, self.id, self.subject).await?;
        let row = match row {
            Some(row) if !row.shredded => row,
            gone => {
                let reason = if gone.is_some() { "subject erased" } else { "no such record" };
                cache.forget(self.subject);
                return Ok((Err(ApiError::NotFound), vec![self.entry(&Decision::deny(reason))]));
            }
        };
        let binding =
            Binding { subject: self.subject, record: self.id, category: self.category.as_str(), field: FIELD };
        let content = crypto::open(key, binding, &row.nonce, &row.ciphertext)
            .map_err(|e| crypto_error(e, &self.claims.request_id))
            .and_then(|plaintext| parse_content(&plaintext));
        let content = match content {
            Ok(content) => content,
            Err(e) => return Ok((Err(e), self.failed())),
        };
        if let Some(disclosure) = &self.decision.disclosure {
            record_disclosure(tx, self.subject, disclosure, &self.notice.version, &self.claims.request_id).await?;
        }
        let times = (row.created_at, row.updated_at);
        Ok((Ok((self.category, content, times)), vec![self.entry(&self.decision)]))
    }

    /// The new ciphertext, unless the record was deleted, expired or erased meanwhile. Locks
    /// the record's row, then (in the group commit) the access log's chain lock.
    async fn replace(
        &self,
        tx: &mut PgConnection,
        (nonce, ciphertext): &(Vec<u8>, Vec<u8>),
    ) -> Result<(Result<(Category, Times), ApiError>, Vec<Entry>), sqlx::Error> {
        let row =
            queries::replace_content(tx, (self.id, self.subject), (nonce.as_slice(), ciphertext.as_slice())).await?;
        let Some(row) = row else {
            return Ok((Err(ApiError::NotFound), vec![self.entry(&Decision::deny("no such record"))]));
        };
        Ok((Ok((self.category, row.times())), vec![self.entry(&self.decision)]))
    }

    /// A permitted access that then failed on its key or its integrity: the decision and the
    /// failure.
    fn failed(&self) -> Vec<Entry> {
        let failed = Decision::deny(FAILED);
        failure(&self.claims, self.subject, self.id, self.action, &self.decision, &failed)
            .iter()
            .map(access_log::Access::to_entry)
            .collect()
    }
}
