//! Every statement the access log runs, one function each, and the rows they read.

use sqlx::{FromRow, PgConnection};
use time::OffsetDateTime;
use uuid::Uuid;

use common::client::{AccessEntry, AccessLogQuery, AccessReview};

use super::rules::{Access, LoggedDecision, Review, ReviewOutcome};

/// Inserts `entries` in order, with their times and hashes; returns their sequence numbers (in
/// no promised order).
pub(super) async fn insert_entries(
    tx: &mut PgConnection,
    entries: &[Access<'_>],
    (times, prevs, hashes): (Vec<OffsetDateTime>, Vec<Vec<u8>>, Vec<Vec<u8>>),
) -> Result<Vec<i64>, sqlx::Error> {
    let column = |f: for<'e> fn(&'e Access<'e>) -> &'e str| entries.iter().map(f).collect::<Vec<_>>();
    let decision = |a: &Access<'_>| LoggedDecision::of(a.permitted).as_str();
    let (actors, roles, purposes) = (column(|a| a.actor), column(|a| a.actor_role), column(|a| a.purpose));
    let subjects: Vec<Option<Uuid>> = entries.iter().map(|a| a.subject_id).collect();
    let records: Vec<Option<Uuid>> = entries.iter().map(|a| a.record_id).collect();
    let (actions, decisions) = (column(|a| a.action), entries.iter().map(decision).collect::<Vec<_>>());
    let (reasons, request_ids) = (column(|a| a.reason), column(|a| a.request_id));
    let flagged: Vec<bool> = entries.iter().map(|a| a.flagged).collect();
    // Arrays of borrowed text and of optional ids are cast: the macros check a `text[]` or
    // `uuid[]` parameter against owned, non-null elements only.
    // Identity values are drawn in the order rows reach the insert, which `ORDER BY n` fixes:
    // sequence order is chain order.
    sqlx::query_scalar!(
        "INSERT INTO access_log (occurred_at, actor, actor_role, purpose, subject_id, record_id, action, decision, \
         reason, request_id, flagged, prev_hash, row_hash) \
         SELECT occurred_at, actor, actor_role, purpose, subject_id, record_id, action, decision, reason, request_id, \
         flagged, prev_hash, row_hash FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::uuid[], \
         $6::uuid[], $7::text[], $8::text[], $9::text[], $10::text[], $11::bool[], $12::bytea[], $13::bytea[]) \
         WITH ORDINALITY AS e(occurred_at, actor, actor_role, purpose, subject_id, record_id, action, decision, reason, \
         request_id, flagged, prev_hash, row_hash, n) ORDER BY n RETURNING seq",
        &times,
        &actors as &[&str],
        &roles as &[&str],
        &purposes as &[&str],
        &subjects as &[Option<Uuid>],
        &records as &[Option<Uuid>],
        &actions as &[&str],
        &decisions as &[&str],
        &reasons as &[&str],
        &request_ids as &[&str],
        &flagged,
        &prevs,
        &hashes
    )
    .fetch_all(&mut *tx)
    .await
}

/// Every column an entry's hash covers, in chain order.
/// Runtime SQL: `common::chain::verify_table` runs it, generic over every trail's columns.
pub(super) const CHAIN: &str = "SELECT seq, occurred_at, actor, actor_role, purpose, subject_id, record_id, action, \
                                decision, reason, request_id, flagged, prev_hash, row_hash FROM access_log ORDER BY seq";

/// A stored entry as its chain hashed it. Text, not [`LoggedDecision`]: the verifier hashes
/// what is stored, whatever it is.
#[derive(FromRow)]
pub(super) struct ChainRow {
    pub occurred_at: OffsetDateTime,
    pub actor: String,
    pub actor_role: String,
    pub purpose: String,
    pub subject_id: Option<Uuid>,
    pub record_id: Option<Uuid>,
    pub action: String,
    pub decision: String,
    pub reason: Option<String>,
    pub request_id: Option<String>,
    pub flagged: bool,
}

/// Up to `limit + 1` entries matching `query`, oldest first after `after_seq`, each with its
/// review if it has one.
pub(super) async fn page(
    tx: &mut PgConnection,
    query: &AccessLogQuery,
    limit: i64,
) -> Result<Vec<PageRow>, sqlx::Error> {
    sqlx::query_as!(
        PageRow,
        r#"SELECT l.seq, l.occurred_at, l.actor, l.actor_role, l.purpose, l.subject_id, l.record_id, l.action,
         l.decision AS "decision: _", l.reason, l.flagged, l.request_id, v.outcome AS "outcome?: _",
         v.note AS "note?", v.reviewed_by AS "reviewed_by?", v.reviewed_at AS "reviewed_at?"
         FROM access_log l LEFT JOIN access_reviews v ON v.seq = l.seq
         WHERE l.seq > $1 AND ($2::uuid IS NULL OR l.subject_id = $2) AND ($3::boolean IS NULL OR l.flagged = $3)
         AND ($4::boolean IS NULL OR (v.seq IS NOT NULL) = $4)
         AND ($6::text IS NULL OR l.actor = $6) AND ($7::text IS NULL OR l.action = $7)
         AND ($8::text IS NULL OR l.decision = $8)
         AND ($9::date IS NULL OR l.occurred_at >= ($9::date)::timestamp AT TIME ZONE 'UTC')
         AND ($10::date IS NULL OR l.occurred_at < ($10::date + 1)::timestamp AT TIME ZONE 'UTC')
         ORDER BY l.seq LIMIT $5"#,
        query.after_seq.unwrap_or(0),
        query.subject_id,
        query.flagged,
        query.reviewed,
        limit + 1,
        query.actor.as_deref(),
        query.action.as_deref(),
        query.decision.as_deref(),
        query.from,
        query.to
    )
    .fetch_all(&mut *tx)
    .await
}

/// An entry as a page shows it: metadata only, and the review's columns (all null when none).
#[derive(FromRow)]
pub(super) struct PageRow {
    pub seq: i64,
    pub occurred_at: OffsetDateTime,
    pub actor: String,
    pub actor_role: String,
    pub purpose: String,
    pub subject_id: Option<Uuid>,
    pub record_id: Option<Uuid>,
    pub action: String,
    pub decision: LoggedDecision,
    pub reason: Option<String>,
    pub flagged: bool,
    pub request_id: Option<String>,
    pub outcome: Option<ReviewOutcome>,
    pub note: Option<String>,
    pub reviewed_by: Option<String>,
    pub reviewed_at: Option<OffsetDateTime>,
}

impl PageRow {
    pub fn into_entry(self) -> Result<AccessEntry, sqlx::Error> {
        let review = match (self.outcome, self.note, self.reviewed_by, self.reviewed_at) {
            (None, ..) => None,
            (Some(outcome), Some(note), Some(reviewed_by), Some(reviewed_at)) => {
                Some(AccessReview { outcome: outcome.as_str().to_owned(), note, reviewed_by, reviewed_at })
            }
            (Some(_), ..) => return Err(sqlx::Error::Decode("an access review without all its columns".into())),
        };
        Ok(AccessEntry {
            seq: self.seq,
            occurred_at: self.occurred_at,
            actor: self.actor,
            actor_role: self.actor_role,
            purpose: self.purpose,
            subject_id: self.subject_id,
            record_id: self.record_id,
            action: self.action,
            decision: self.decision.as_str().to_owned(),
            reason: self.reason,
            flagged: self.flagged,
            request_id: self.request_id,
            review,
        })
    }
}

/// The entry a review is about: whether it is flagged, and who made the access.
#[derive(FromRow)]
pub(super) struct UnderReview {
    pub flagged: bool,
    pub actor: String,
}

pub(super) async fn under_review(tx: &mut PgConnection, seq: i64) -> Result<Option<UnderReview>, sqlx::Error> {
    sqlx::query_as!(UnderReview, "SELECT flagged, actor FROM access_log WHERE seq = $1", seq)
        .fetch_optional(&mut *tx)
        .await
}

/// Whether entry `seq` has been reviewed.
pub(super) async fn reviewed(tx: &mut PgConnection, seq: i64) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(r#"SELECT EXISTS (SELECT 1 FROM access_reviews WHERE seq = $1) AS "exists!""#, seq)
        .fetch_one(&mut *tx)
        .await
}

/// Appends a review to its trail; false if the entry was reviewed meanwhile.
pub(super) async fn insert_review(
    tx: &mut PgConnection,
    review: &Review<'_>,
    prev: Vec<u8>,
    row_hash: &[u8],
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query!(
        "INSERT INTO access_reviews (seq, outcome, note, reviewed_by, reviewed_at, prev_hash, row_hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (seq) DO NOTHING",
        review.seq,
        review.outcome,
        review.note,
        review.reviewed_by,
        review.reviewed_at,
        prev,
        row_hash
    )
    .execute(&mut *tx)
    .await?;
    Ok(inserted.rows_affected() != 0)
}

/// The reviews trail in chain order; the verifier reads the chain position as `seq`.
/// Runtime SQL: `common::chain::verify_table` runs it, generic over every trail's columns.
pub const REVIEWS_SELECT: &str = "SELECT chain_seq AS seq, seq AS entry_seq, outcome, note, reviewed_by, \
                                  reviewed_at, prev_hash, row_hash FROM access_reviews ORDER BY chain_seq";

/// A stored review as its chain hashed it (text, as stored).
#[derive(FromRow)]
pub(super) struct ReviewChainRow {
    pub entry_seq: i64,
    pub outcome: String,
    pub note: String,
    pub reviewed_by: String,
    pub reviewed_at: OffsetDateTime,
}
