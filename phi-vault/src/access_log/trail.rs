//! Writing and reading the two chained trails: access-log entries appended under the chain
//! lock, pages for compliance review, reviews of flagged entries, and verification.

use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgConnection, PgPool};

use common::assertion::Claims;
use common::chain::{self, Verification};
use common::client::{AccessLogPage, AccessLogQuery, AccessReview, ReviewRequest};
use common::ApiError;

use super::queries::{self, ChainRow, ReviewChainRow, UnderReview, REVIEWS_SELECT};
use super::rules::{self, Access, Canonical, Review, ReviewRefusal};

const CHAIN_LOCK: i64 = 0x5357_5048_4941_4343;
const REVIEWS_CHAIN_LOCK: i64 = 0x5357_5048_4952_4556;

/// Appends an entry; returns its sequence number (which other trails may refer to).
pub async fn append(tx: &mut PgConnection, a: &Access<'_>) -> Result<i64, sqlx::Error> {
    let seqs = append_all(tx, std::slice::from_ref(a)).await?;
    seqs.first().copied().ok_or(sqlx::Error::RowNotFound)
}

/// Appends entries in order under one take of the chain lock, in one statement; returns their
/// sequence numbers in the same order. The group commit (`crate::commit`) appends a batch's
/// entries this way.
pub async fn append_all(tx: &mut PgConnection, entries: &[Access<'_>]) -> Result<Vec<i64>, sqlx::Error> {
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    let mut prev = chain::head(tx, CHAIN_LOCK, "access_log").await?;
    let n = entries.len();
    let (mut times, mut prevs, mut hashes) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    for a in entries {
        let at = chain::now();
        let canonical = Canonical {
            occurred_at_us: chain::micros(at),
            actor: a.actor,
            actor_role: a.actor_role,
            purpose: a.purpose,
            subject_id: a.subject_id,
            record_id: a.record_id,
            action: a.action,
            decision: rules::LoggedDecision::of(a.permitted).as_str(),
            reason: Some(a.reason),
            request_id: Some(a.request_id),
            flagged: a.flagged,
        };
        let row_hash = chain::link(&prev, &canonical.bytes()).to_vec();
        times.push(at);
        prevs.push(std::mem::replace(&mut prev, row_hash.clone()));
        hashes.push(row_hash);
    }
    let mut seqs = queries::insert_entries(tx, entries, (times, prevs, hashes)).await?;
    // RETURNING's order is not promised: sort, as the identity values were drawn in order.
    seqs.sort_unstable();
    if seqs.len() != n {
        return Err(sqlx::Error::Protocol(format!("{} access-log entries written of {n}", seqs.len())));
    }
    Ok(seqs)
}

pub async fn append_alone(pool: &PgPool, a: &Access<'_>) -> Result<i64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let seq = append(&mut tx, a).await?;
    tx.commit().await?;
    Ok(seq)
}

/// Logs a denied (or failed) access alone, in its own short transaction.
pub(crate) async fn log_alone(pool: &PgPool, entry: &Access<'_>) -> Result<(), ApiError> {
    append_alone(pool, entry).await?;
    Ok(())
}

pub async fn verify(pool: &PgPool, limit: usize) -> Result<Verification, sqlx::Error> {
    chain::verify_table(pool, queries::CHAIN, limit, |row| {
        let row = ChainRow::from_row(row)?;
        Ok(Canonical {
            occurred_at_us: chain::micros(row.occurred_at),
            actor: &row.actor,
            actor_role: &row.actor_role,
            purpose: &row.purpose,
            subject_id: row.subject_id,
            record_id: row.record_id,
            action: &row.action,
            decision: &row.decision,
            reason: row.reason.as_deref(),
            request_id: row.request_id.as_deref(),
            flagged: row.flagged,
        }
        .bytes())
    })
    .await
}

/// A page of entries (metadata only), oldest first after `after_seq`.
pub async fn page(tx: &mut PgConnection, query: &AccessLogQuery) -> Result<AccessLogPage, sqlx::Error> {
    let limit = rules::page_limit(query.limit);
    let rows = queries::page(tx, query, limit).await?;
    let more = rows.len() as i64 > limit;
    let mut entries = Vec::with_capacity(rows.len());
    for row in rows.into_iter().take(limit as usize) {
        entries.push(row.into_entry()?);
    }
    let next_after_seq = if more { entries.last().map(|e| e.seq) } else { None };
    Ok(AccessLogPage { entries, next_after_seq })
}

/// A page read for a compliance officer, and the reading logged with it: the page, then the
/// access log's chain lock last.
pub(super) async fn read_page(
    pool: &PgPool,
    query: &AccessLogQuery,
    reading: &Access<'_>,
) -> Result<AccessLogPage, ApiError> {
    let mut tx = pool.begin().await?;
    let page = page(&mut tx, query).await?;
    append(&mut tx, reading).await?;
    tx.commit().await?;
    Ok(page)
}

/// Records a compliance officer's review of a flagged entry. Final: a second review is refused,
/// and so is a review by the person who made the access. The review is appended to the chained
/// `access_reviews` trail, whose chain lock is taken last, just before the caller commits.
pub async fn review(
    tx: &mut PgConnection,
    seq: i64,
    outcome: &str,
    note: &str,
    reviewer: &str,
) -> Result<Result<AccessReview, ReviewRefusal>, sqlx::Error> {
    let entry = queries::under_review(tx, seq).await?;
    let Some(UnderReview { flagged: true, actor }) = entry else { return Ok(Err(ReviewRefusal::NotFlagged)) };
    if actor == reviewer {
        tracing::warn!(seq, alarm = "separation_of_duties", "refused: a reviewer may not review their own access");
        return Ok(Err(ReviewRefusal::OwnAccess));
    }
    if queries::reviewed(tx, seq).await? {
        return Ok(Err(ReviewRefusal::AlreadyReviewed));
    }
    let review = Review { seq, outcome, note, reviewed_by: reviewer, reviewed_at: chain::now() };
    let prev = chain::head_of(tx, REVIEWS_CHAIN_LOCK, "access_reviews", "chain_seq").await?;
    let row_hash = chain::link(&prev, &review.canonical());
    // Two reviews racing for one entry: the loser inserts nothing (the chain lock serialises
    // them, and the head it read is still the head).
    if !queries::insert_review(tx, &review, prev, &row_hash[..]).await? {
        return Ok(Err(ReviewRefusal::AlreadyReviewed));
    }
    Ok(Ok(AccessReview {
        outcome: outcome.to_owned(),
        note: note.to_owned(),
        reviewed_by: reviewer.to_owned(),
        reviewed_at: review.reviewed_at,
    }))
}

/// A compliance officer's review recorded, and logged with it (`reviewing`, the officer's
/// entry): the review, then the access log's chain lock last. A refusal is answered, and logged
/// when it is the reviewer's own access.
pub(super) async fn record_review(
    pool: &PgPool,
    claims: &Claims,
    seq: i64,
    request: &ReviewRequest,
    reviewing: &Access<'_>,
) -> Result<AccessReview, ApiError> {
    let mut tx = pool.begin().await?;
    match review(&mut tx, seq, &request.outcome, request.note.trim(), &claims.sub).await? {
        Ok(review) => {
            append(&mut tx, reviewing).await?;
            tx.commit().await?;
            Ok(review)
        }
        Err(refusal) => {
            tx.rollback().await?;
            Err(match refusal {
                ReviewRefusal::NotFlagged => ApiError::NotFound,
                ReviewRefusal::AlreadyReviewed => ApiError::Conflict(format!("entry {seq} has already been reviewed")),
                ReviewRefusal::OwnAccess => {
                    let refused = rules::own_access();
                    log_alone(pool, &rules::access(claims, None, None, rules::REVIEW, &refused)).await?;
                    ApiError::Forbidden
                }
            })
        }
    }
}

/// The hashed content of a stored review, selected as [`REVIEWS_SELECT`] does (also how a test
/// recomputes a tampered chain).
pub fn review_canonical_of(row: &PgRow) -> Result<Vec<u8>, sqlx::Error> {
    let row = ReviewChainRow::from_row(row)?;
    Ok(Review {
        seq: row.entry_seq,
        outcome: &row.outcome,
        note: &row.note,
        reviewed_by: &row.reviewed_by,
        reviewed_at: row.reviewed_at,
    }
    .canonical())
}

/// Verifies the reviews trail (`secondwind-operator audit verify --trail access-reviews`).
pub async fn verify_reviews(pool: &PgPool, limit: usize) -> Result<Verification, sqlx::Error> {
    chain::verify_table(pool, REVIEWS_SELECT, limit, review_canonical_of).await
}
