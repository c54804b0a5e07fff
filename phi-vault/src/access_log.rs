//! The PHI access log: every read, write and delete, permitted or denied, with who asked, in
//! which role, for what purpose, the decision and its reason. Hash-chained like the public audit
//! log (`common::chain`); record contents never enter it. Compliance reviews of flagged entries
//! form a second chained trail, `access_reviews`; nobody reviews an access they made.

use serde::Serialize;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use common::chain::{self, Fields, Verification};

const CHAIN_LOCK: i64 = 0x5357_5048_4941_4343;
const REVIEWS_CHAIN_LOCK: i64 = 0x5357_5048_4952_4556;

#[derive(Debug, Clone)]
pub struct Access<'a> {
    pub actor: &'a str,
    pub actor_role: &'a str,
    pub purpose: &'a str,
    pub subject_id: Option<Uuid>,
    pub record_id: Option<Uuid>,
    /// `record.create`, `record.read`, `record.update`, `record.delete`.
    pub action: &'a str,
    pub permitted: bool,
    pub reason: &'a str,
    /// For compliance review (break-glass).
    pub flagged: bool,
    pub request_id: &'a str,
}

#[derive(Serialize)]
struct Canonical<'a> {
    occurred_at_us: i128,
    actor: &'a str,
    actor_role: &'a str,
    purpose: &'a str,
    subject_id: Option<Uuid>,
    record_id: Option<Uuid>,
    action: &'a str,
    decision: &'a str,
    reason: Option<&'a str>,
    request_id: Option<&'a str>,
    /// Left out when false, so rows from before the flag existed hash as they always did.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    flagged: bool,
}

impl Canonical<'_> {
    fn bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

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
    let decision = |a: &Access<'_>| if a.permitted { "permit" } else { "deny" };
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
            decision: decision(a),
            reason: Some(a.reason),
            request_id: Some(a.request_id),
            flagged: a.flagged,
        };
        let row_hash = chain::link(&prev, &canonical.bytes()).to_vec();
        times.push(at);
        prevs.push(std::mem::replace(&mut prev, row_hash.clone()));
        hashes.push(row_hash);
    }
    let column = |f: for<'e> fn(&'e Access<'e>) -> &'e str| entries.iter().map(f).collect::<Vec<_>>();
    // Identity values are drawn in the order rows reach the insert, which `ORDER BY n` fixes:
    // sequence order is chain order.
    let rows = sqlx::query(
        "INSERT INTO access_log (occurred_at, actor, actor_role, purpose, subject_id, record_id, action, decision, \
         reason, request_id, flagged, prev_hash, row_hash) \
         SELECT occurred_at, actor, actor_role, purpose, subject_id, record_id, action, decision, reason, request_id, \
         flagged, prev_hash, row_hash FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::uuid[], \
         $6::uuid[], $7::text[], $8::text[], $9::text[], $10::text[], $11::bool[], $12::bytea[], $13::bytea[]) \
         WITH ORDINALITY AS e(occurred_at, actor, actor_role, purpose, subject_id, record_id, action, decision, reason, \
         request_id, flagged, prev_hash, row_hash, n) ORDER BY n RETURNING seq",
    )
    .bind(times)
    .bind(column(|a| a.actor))
    .bind(column(|a| a.actor_role))
    .bind(column(|a| a.purpose))
    .bind(entries.iter().map(|a| a.subject_id).collect::<Vec<_>>())
    .bind(entries.iter().map(|a| a.record_id).collect::<Vec<_>>())
    .bind(column(|a| a.action))
    .bind(entries.iter().map(decision).collect::<Vec<_>>())
    .bind(column(|a| a.reason))
    .bind(column(|a| a.request_id))
    .bind(entries.iter().map(|a| a.flagged).collect::<Vec<_>>())
    .bind(prevs)
    .bind(hashes)
    .fetch_all(&mut *tx)
    .await?;
    let seqs = rows.iter().map(|row| row.try_get::<i64, _>("seq")).collect::<Result<Vec<_>, _>>()?;
    // RETURNING's order is not promised: sort, as the identity values were drawn in order.
    let mut seqs = seqs;
    seqs.sort_unstable();
    if seqs.len() != n {
        return Err(sqlx::Error::Protocol(format!("{} access-log entries written of {n}", seqs.len())));
    }
    Ok(seqs)
}

/// An access-log entry that owns its fields, for work that outlives the request's borrows (the
/// group commit's steps, which may run twice).
#[derive(Debug, Clone)]
pub struct Entry {
    pub actor: String,
    pub actor_role: String,
    pub purpose: String,
    pub subject_id: Option<Uuid>,
    pub record_id: Option<Uuid>,
    pub action: String,
    pub permitted: bool,
    pub reason: String,
    pub flagged: bool,
    pub request_id: String,
}

impl Entry {
    pub fn access(&self) -> Access<'_> {
        Access {
            actor: &self.actor,
            actor_role: &self.actor_role,
            purpose: &self.purpose,
            subject_id: self.subject_id,
            record_id: self.record_id,
            action: &self.action,
            permitted: self.permitted,
            reason: &self.reason,
            flagged: self.flagged,
            request_id: &self.request_id,
        }
    }
}

impl Access<'_> {
    pub fn to_entry(&self) -> Entry {
        Entry {
            actor: self.actor.into(),
            actor_role: self.actor_role.into(),
            purpose: self.purpose.into(),
            subject_id: self.subject_id,
            record_id: self.record_id,
            action: self.action.into(),
            permitted: self.permitted,
            reason: self.reason.into(),
            flagged: self.flagged,
            request_id: self.request_id.into(),
        }
    }
}

pub async fn append_alone(pool: &PgPool, a: &Access<'_>) -> Result<i64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let seq = append(&mut tx, a).await?;
    tx.commit().await?;
    Ok(seq)
}

pub async fn verify(pool: &PgPool, limit: usize) -> Result<Verification, sqlx::Error> {
    let sql = "SELECT seq, occurred_at, actor, actor_role, purpose, subject_id, record_id, action, decision, reason, \
               request_id, flagged, prev_hash, row_hash FROM access_log ORDER BY seq";
    chain::verify_table(pool, sql, limit, |row| {
        let text = |name: &str| row.try_get::<String, _>(name);
        let (actor, role, purpose, action, decision) =
            (text("actor")?, text("actor_role")?, text("purpose")?, text("action")?, text("decision")?);
        let reason: Option<String> = row.try_get("reason")?;
        let request_id: Option<String> = row.try_get("request_id")?;
        Ok(Canonical {
            occurred_at_us: chain::micros(row.try_get("occurred_at")?),
            actor: &actor,
            actor_role: &role,
            purpose: &purpose,
            subject_id: row.try_get("subject_id")?,
            record_id: row.try_get("record_id")?,
            action: &action,
            decision: &decision,
            reason: reason.as_deref(),
            request_id: request_id.as_deref(),
            flagged: row.try_get("flagged")?,
        }
        .bytes())
    })
    .await
}

/// The most entries one page returns.
pub const MAX_PAGE: i64 = 500;

/// A page of entries (metadata only), oldest first after `after_seq`.
pub async fn page(
    tx: &mut PgConnection,
    query: &common::client::AccessLogQuery,
) -> Result<common::client::AccessLogPage, sqlx::Error> {
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_PAGE);
    let rows = sqlx::query(
        "SELECT l.seq, l.occurred_at, l.actor, l.actor_role, l.purpose, l.subject_id, l.record_id, l.action, \
         l.decision, l.reason, l.flagged, l.request_id, v.outcome, v.note, v.reviewed_by, v.reviewed_at \
         FROM access_log l LEFT JOIN access_reviews v ON v.seq = l.seq \
         WHERE l.seq > $1 AND ($2::uuid IS NULL OR l.subject_id = $2) AND ($3::boolean IS NULL OR l.flagged = $3) \
         AND ($4::boolean IS NULL OR (v.seq IS NOT NULL) = $4) \
         AND ($6::text IS NULL OR l.actor = $6) AND ($7::text IS NULL OR l.action = $7) \
         AND ($8::text IS NULL OR l.decision = $8) \
         AND ($9::date IS NULL OR l.occurred_at >= ($9::date)::timestamp AT TIME ZONE 'UTC') \
         AND ($10::date IS NULL OR l.occurred_at < ($10::date + 1)::timestamp AT TIME ZONE 'UTC') \
         ORDER BY l.seq LIMIT $5",
    )
    .bind(query.after_seq.unwrap_or(0))
    .bind(query.subject_id)
    .bind(query.flagged)
    .bind(query.reviewed)
    .bind(limit + 1)
    .bind(&query.actor)
    .bind(&query.action)
    .bind(&query.decision)
    .bind(query.from)
    .bind(query.to)
    .fetch_all(&mut *tx)
    .await?;
    let more = rows.len() as i64 > limit;
    let mut entries = Vec::with_capacity(rows.len());
    for row in rows.iter().take(limit as usize) {
        entries.push(common::client::AccessEntry {
            seq: row.try_get("seq")?,
            occurred_at: row.try_get("occurred_at")?,
            actor: row.try_get("actor")?,
            actor_role: row.try_get("actor_role")?,
            purpose: row.try_get("purpose")?,
            subject_id: row.try_get("subject_id")?,
            record_id: row.try_get("record_id")?,
            action: row.try_get("action")?,
            decision: row.try_get("decision")?,
            reason: row.try_get("reason")?,
            flagged: row.try_get("flagged")?,
            request_id: row.try_get("request_id")?,
            review: match row.try_get::<Option<String>, _>("outcome")? {
                None => None,
                Some(outcome) => Some(common::client::AccessReview {
                    outcome,
                    note: row.try_get("note")?,
                    reviewed_by: row.try_get("reviewed_by")?,
                    reviewed_at: row.try_get("reviewed_at")?,
                }),
            },
        });
    }
    let next_after_seq = if more { entries.last().map(|e| e.seq) } else { None };
    Ok(common::client::AccessLogPage { entries, next_after_seq })
}

/// Why a review could not be recorded.
#[derive(Debug)]
pub enum ReviewRefusal {
    /// No such entry, or not one flagged for review.
    NotFlagged,
    AlreadyReviewed,
    /// Separation of duties: the reviewer made the access under review, whatever roles they hold.
    OwnAccess,
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
) -> Result<Result<common::client::AccessReview, ReviewRefusal>, sqlx::Error> {
    let entry: Option<(bool, String)> = sqlx::query_as("SELECT flagged, actor FROM access_log WHERE seq = $1")
        .bind(seq)
        .fetch_optional(&mut *tx)
        .await?;
    let Some((true, actor)) = entry else { return Ok(Err(ReviewRefusal::NotFlagged)) };
    if actor == reviewer {
        tracing::warn!(seq, alarm = "separation_of_duties", "refused: a reviewer may not review their own access");
        return Ok(Err(ReviewRefusal::OwnAccess));
    }
    let done: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM access_reviews WHERE seq = $1)")
        .bind(seq)
        .fetch_one(&mut *tx)
        .await?;
    if done {
        return Ok(Err(ReviewRefusal::AlreadyReviewed));
    }
    let review = Review { seq, outcome, note, reviewed_by: reviewer, reviewed_at: chain::now() };
    let prev = chain::head_of(tx, REVIEWS_CHAIN_LOCK, "access_reviews", "chain_seq").await?;
    let row_hash = chain::link(&prev, &review.canonical());
    // Two reviews racing for one entry: the loser inserts nothing (the chain lock serialises
    // them, and the head it read is still the head).
    let inserted = sqlx::query(
        "INSERT INTO access_reviews (seq, outcome, note, reviewed_by, reviewed_at, prev_hash, row_hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (seq) DO NOTHING",
    )
    .bind(seq)
    .bind(outcome)
    .bind(note)
    .bind(reviewer)
    .bind(review.reviewed_at)
    .bind(prev)
    .bind(&row_hash[..])
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Ok(Err(ReviewRefusal::AlreadyReviewed));
    }
    Ok(Ok(common::client::AccessReview {
        outcome: outcome.to_owned(),
        note: note.to_owned(),
        reviewed_by: reviewer.to_owned(),
        reviewed_at: review.reviewed_at,
    }))
}

/// A review as its chain hashes it.
struct Review<'a> {
    seq: i64,
    outcome: &'a str,
    note: &'a str,
    reviewed_by: &'a str,
    reviewed_at: time::OffsetDateTime,
}

impl Review<'_> {
    fn canonical(&self) -> Vec<u8> {
        Fields::new("access_reviews-v1")
            .int(self.seq)
            .text(self.outcome)
            .text(self.note)
            .text(self.reviewed_by)
            .time(self.reviewed_at)
            .into_bytes()
    }
}

/// The hashed content of a stored review, selected as [`REVIEWS_SELECT`] does (also how a test
/// recomputes a tampered chain).
pub fn review_canonical_of(row: &PgRow) -> Result<Vec<u8>, sqlx::Error> {
    let text = |name: &str| row.try_get::<String, _>(name);
    let (outcome, note, reviewed_by) = (text("outcome")?, text("note")?, text("reviewed_by")?);
    Ok(Review {
        seq: row.try_get("entry_seq")?,
        outcome: &outcome,
        note: &note,
        reviewed_by: &reviewed_by,
        reviewed_at: row.try_get("reviewed_at")?,
    }
    .canonical())
}

/// The reviews trail in chain order; the verifier reads the chain position as `seq`.
pub const REVIEWS_SELECT: &str = "SELECT chain_seq AS seq, seq AS entry_seq, outcome, note, reviewed_by, \
                                  reviewed_at, prev_hash, row_hash FROM access_reviews ORDER BY chain_seq";

/// Verifies the reviews trail (`secondwind-operator audit verify --trail access-reviews`).
pub async fn verify_reviews(pool: &PgPool, limit: usize) -> Result<Verification, sqlx::Error> {
    chain::verify_table(pool, REVIEWS_SELECT, limit, review_canonical_of).await
}
