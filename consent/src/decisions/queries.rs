//! The decisions' SQL: the standing consent a question finds, the trail's appends, the decision
//! log's pages and the trail's verification.

use sqlx::{FromRow, PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use common::chain::{self, Verification};
use common::client::DisclosureQuestion;
use common::compliance::{DecisionEntry, DecisionQuery};

use super::rules::{self, Answer, Canonical, TPO_COVERS, TPO_PURPOSE};
use crate::consents::queries::query_as_ended_by_event;

const CHAIN_LOCK: i64 = 0x5357_434f_4e44_4543;

/// The standing consent that covers the question: its id, the form version signed and the hash
/// of its terms.
#[derive(Debug, FromRow)]
pub(crate) struct StandingRow {
    pub id: Uuid,
    pub form_version: String,
    pub terms_sha256: Vec<u8>,
    /// The recipient's directory name, or as the consent names it.
    pub recipient_name: Option<String>,
}

/// The standing consent that covers the question, if any. A class consent (TPO) names the role
/// that acts for the class's members (`class`, [`rules::class_of`]); a member is an account the
/// directory lists (not retired), never merely an account holding the role.
pub(crate) async fn standing_consent(
    tx: &mut PgConnection,
    q: &DisclosureQuestion,
    class: Option<String>,
) -> Result<Option<StandingRow>, sqlx::Error> {
    query_as_ended_by_event!(
        StandingRow,
        ["SELECT c.id, c.form_version, c.terms_sha256, \
             coalesce((SELECT d.name FROM recipients d WHERE d.principal = $2), c.recipient_name) AS \"recipient_name?\" \
             FROM consents c \
             WHERE c.subject_id = $1 AND c.categories @> $4::text[] \
             AND ((c.recipient = $2 AND c.purpose = $3) \
                  OR (c.recipient_kind = 'class' AND c.recipient = $5 AND c.purpose = $6 AND $3 = ANY($7::text[]) \
                      AND EXISTS (SELECT 1 FROM recipients d WHERE d.principal = $2 AND d.retired_at IS NULL))) \
             AND c.signed_at <= now() AND (c.expires_at IS NULL OR c.expires_at > now()) \
             AND NOT "],
        [" AND NOT EXISTS (SELECT 1 FROM revocations r WHERE r.consent_id = c.id) ORDER BY c.signed_at DESC LIMIT 1"],
        q.subject_id,
        q.recipient,
        q.purpose,
        &q.categories,
        class,
        TPO_PURPOSE,
        &TPO_COVERS[..] as &[&str]
    )
    .fetch_optional(&mut *tx)
    .await
}

/// Appends a question and its answer to the chained `decisions` trail, in the caller's
/// transaction.
pub async fn append(tx: &mut PgConnection, question: &DisclosureQuestion, a: &Answer<'_>) -> Result<(), sqlx::Error> {
    let at = chain::now();
    let canonical = Canonical {
        decided_at_us: chain::micros(at),
        subject_id: question.subject_id,
        recipient: &question.recipient,
        categories: &question.categories,
        purpose: &question.purpose,
        permitted: a.permitted,
        consent_id: a.consent_id,
        reason: a.reason,
        asked_by: a.asked_by,
        request_id: Some(a.request_id),
        terms_sha256: a.terms_sha256.map(chain::hex),
    };
    let prev = chain::head(tx, CHAIN_LOCK, "decisions").await?;
    let row_hash = chain::link(&prev, &canonical.bytes());
    sqlx::query!(
        "INSERT INTO decisions (decided_at, subject_id, recipient, categories, purpose, permitted, consent_id, \
         reason, asked_by, request_id, terms_sha256, prev_hash, row_hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        at,
        question.subject_id,
        question.recipient,
        &question.categories,
        question.purpose,
        a.permitted,
        a.consent_id,
        a.reason,
        a.asked_by,
        a.request_id,
        a.terms_sha256,
        prev,
        &row_hash[..]
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// One entry of the decision log.
#[derive(Debug, FromRow)]
pub(crate) struct DecisionLogRow {
    pub seq: i64,
    pub decided_at: OffsetDateTime,
    pub subject_id: Uuid,
    pub recipient: String,
    pub categories: Vec<String>,
    pub purpose: String,
    pub permitted: bool,
    pub consent_id: Option<Uuid>,
    pub reason: String,
    pub asked_by: String,
    pub request_id: Option<String>,
}

impl From<DecisionLogRow> for DecisionEntry {
    fn from(r: DecisionLogRow) -> Self {
        DecisionEntry {
            seq: r.seq,
            decided_at: r.decided_at,
            subject_id: r.subject_id,
            recipient: r.recipient,
            categories: r.categories,
            purpose: r.purpose,
            permitted: r.permitted,
            consent_id: r.consent_id,
            reason: r.reason,
            asked_by: r.asked_by,
            request_id: r.request_id,
        }
    }
}

/// The decisions `q` selects, oldest first: one more than `q.limit`, which tells that another
/// page follows.
pub(crate) async fn log_page(pool: &PgPool, q: &DecisionQuery) -> Result<Vec<DecisionLogRow>, sqlx::Error> {
    sqlx::query_as!(
        DecisionLogRow,
        "SELECT seq, decided_at, subject_id, recipient, categories, purpose, permitted, consent_id, reason, \
         asked_by, request_id FROM decisions WHERE seq > $1 \
         AND ($2::uuid IS NULL OR subject_id = $2) AND ($3::text IS NULL OR asked_by LIKE '%:' || $3) \
         AND ($4::text IS NULL OR recipient = $4) AND ($5::text IS NULL OR purpose = $5) \
         AND ($6::bool IS NULL OR permitted = $6) \
         AND ($7::date IS NULL OR decided_at >= ($7::date)::timestamp AT TIME ZONE 'UTC') \
         AND ($8::date IS NULL OR decided_at < ($8::date + 1)::timestamp AT TIME ZONE 'UTC') \
         AND ($9::bigint IS NULL OR seq <= $9) ORDER BY seq LIMIT $10",
        q.after_seq,
        q.subject_id,
        q.actor_id.map(|a| a.to_string()),
        q.recipient,
        q.purpose,
        q.permitted,
        q.from,
        q.to,
        q.until_seq,
        q.limit + 1
    )
    .fetch_all(pool)
    .await
}

/// The newest decision's sequence number (0 for none).
pub(crate) async fn head_seq(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(r#"SELECT coalesce(max(seq), 0) AS "seq!" FROM decisions"#).fetch_one(pool).await
}

/// Every column [`rules::canonical_of`] reads (with the chain's), in chain order.
#[derive(Debug, FromRow)]
pub(crate) struct DecisionChainRow {
    pub decided_at: OffsetDateTime,
    pub subject_id: Uuid,
    pub recipient: String,
    pub categories: Vec<String>,
    pub purpose: String,
    pub permitted: bool,
    pub consent_id: Option<Uuid>,
    pub reason: String,
    pub asked_by: String,
    pub request_id: Option<String>,
    pub terms_sha256: Option<Vec<u8>>,
}

/// Runtime SQL, not a checked macro: [`chain::verify_table`] streams any trail's rows by this text.
const CHAIN: &str =
    "SELECT seq, decided_at, subject_id, recipient, categories, purpose, permitted, consent_id, reason, \
                     asked_by, request_id, terms_sha256, prev_hash, row_hash FROM decisions ORDER BY seq";

/// Verifies the decisions trail (`secondwind-operator audit verify --trail consent`).
pub async fn verify(pool: &PgPool, limit: usize) -> Result<Verification, sqlx::Error> {
    chain::verify_table(pool, CHAIN, limit, |row| Ok(rules::canonical_of(&DecisionChainRow::from_row(row)?))).await
}
