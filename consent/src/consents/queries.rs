//! The consents' SQL: consents read with their state, recorded and chained; revocations
//! recorded and chained; signing requests' idempotency keys; expiry events; and both trails'
//! verification.

use sqlx::{FromRow, PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use common::chain::{self, Verification};

use super::records::{
    self, ConsentError, ConsentRecipientKind, NewConsent, RevocationSignature, RevokeError, REVOCATIONS_V1,
    REVOCATIONS_V2, TERMS_V2,
};
use super::rules::ConsentState;

const CONSENTS_CHAIN_LOCK: i64 = 0x5357_434f_4e53_4e54;
const REVOCATIONS_CHAIN_LOCK: i64 = 0x5357_434f_5245_564b;

/// `sqlx::query_as!` into `$row` over the SQL `$head`, then a condition over `c`, a `consents`
/// row: ended by an event staff recorded for its subject at or after its signing; then `$tail`.
macro_rules! query_as_ended_by_event {
    ($row:path, [$($head:literal),+], [$($tail:literal),+] $(, $($args:tt)*)?) => {
        sqlx::query_as!(
            $row,
            $($head +)+ "EXISTS (SELECT 1 FROM expiry_events e WHERE e.subject_id = c.subject_id \
                         AND e.event = c.expiry_event AND e.occurred_at >= c.signed_at AND e.occurred_at <= now())"
                $(+ $tail)+
            $(, $($args)*)?
        )
    };
}
pub(crate) use query_as_ended_by_event;

/// `sqlx::query_as!` into [`ConsentRow`]: every column it holds, over `consents c`, its form `f`
/// and its revocation `r`, as the relation `v`; then the SQL `$tail` over `v`. The nullable
/// columns are marked so: through `v` PostgreSQL does not tell which are.
macro_rules! view_query {
    ($tail:literal $(, $($args:tt)*)?) => {
        query_as_ended_by_event!(
            ConsentRow,
            [
                r#"SELECT v.seq, v.id, v.discloser, v.form_version, v.form_title AS "form_title?", v.form_sha256, "#,
                r#"v.recipient, v.recipient_kind AS "recipient_kind?: _", v.recipient_name AS "recipient_name?", "#,
                r#"v.recipient_directory_id AS "recipient_directory_id?", "#,
                r#"v.recipient_address AS "recipient_address?", v.categories, v.purpose, "#,
                r#"v.expires_at AS "expires_at?", v.expiry_event AS "expiry_event?", v.signed_name, "#,
                r#"v.signature_method AS "signature_method?", v.signed_at, v.signed_from AS "signed_from?", "#,
                r#"v.terms_sha256, v.subject_id, v.revoked_at AS "revoked_at?", v.form_text, "#,
                r#"v.state AS "state!: _" "#,
                "FROM (SELECT c.seq, c.id, c.discloser, c.form_version, f.title AS form_title, \
                 c.form_sha256, c.recipient, c.recipient_kind, c.recipient_name, c.recipient_directory_id, \
                 c.recipient_address, c.categories, c.purpose, c.expires_at, c.expiry_event, c.signed_name, \
                 c.signature_method, c.signed_at, c.signed_from, c.terms_sha256, c.subject_id, r.revoked_at, \
                 f.body AS form_text, \
                 CASE WHEN r.consent_id IS NOT NULL THEN 'revoked' \
                      WHEN (c.expires_at IS NOT NULL AND c.expires_at <= now()) OR "
            ],
            [
                " THEN 'expired' ELSE 'signed' END AS state \
                 FROM consents c JOIN consent_forms f ON f.version = c.form_version \
                 LEFT JOIN revocations r ON r.consent_id = c.id) v",
                $tail
            ]
            $(, $($args)*)?
        )
    };
}

/// A consent as its subject reads it, with its form's title and text and its state now.
#[derive(Debug, FromRow)]
pub(crate) struct ConsentRow {
    pub seq: i64,
    pub id: Uuid,
    pub discloser: String,
    pub form_version: String,
    pub form_title: Option<String>,
    pub form_sha256: Vec<u8>,
    /// The name decisions match: `role:id`, `class:role`, `directory:id` or `external:id`.
    pub recipient: String,
    /// `None` on a consent recorded before the recipient was copied (terms-v1).
    pub recipient_kind: Option<ConsentRecipientKind>,
    pub recipient_name: Option<String>,
    pub recipient_directory_id: Option<Uuid>,
    pub recipient_address: Option<String>,
    pub categories: Vec<String>,
    pub purpose: String,
    pub expires_at: Option<OffsetDateTime>,
    pub expiry_event: Option<String>,
    pub signed_name: String,
    pub signature_method: Option<String>,
    pub signed_at: OffsetDateTime,
    pub signed_from: Option<String>,
    pub terms_sha256: Vec<u8>,
    pub subject_id: Uuid,
    pub revoked_at: Option<OffsetDateTime>,
    pub form_text: String,
    pub state: ConsentState,
}

/// One consent; `None` if it is not there (or, with `subject`, not theirs).
pub(crate) async fn one(
    conn: &mut PgConnection,
    subject: Option<Uuid>,
    id: Uuid,
) -> Result<Option<ConsentRow>, sqlx::Error> {
    view_query!(" WHERE v.id = $1 AND ($2::uuid IS NULL OR v.subject_id = $2)", id, subject).fetch_optional(conn).await
}

/// The subject's consents after `after`, oldest first, in `state` if given, at most `limit`.
pub(crate) async fn page(
    pool: &PgPool,
    subject: Uuid,
    after: i64,
    state: Option<&str>,
    limit: i64,
) -> Result<Vec<ConsentRow>, sqlx::Error> {
    view_query!(
        " WHERE v.subject_id = $1 AND v.seq > $2 AND ($3::text IS NULL OR v.state = $3) ORDER BY v.seq LIMIT $4",
        subject,
        after,
        state,
        limit
    )
    .fetch_all(pool)
    .await
}

/// Claims the subject's idempotency key for a request; `false` when it was claimed before. A
/// concurrent claim of the same key waits here on the first one's row until it commits or rolls
/// back, so one key never signs twice.
pub(crate) async fn claim_key(
    tx: &mut PgConnection,
    subject: Uuid,
    key: &str,
    request_sha256: &[u8],
) -> Result<bool, sqlx::Error> {
    let claimed = sqlx::query!(
        "INSERT INTO consent_sign_requests (subject_id, idempotency_key, request_sha256) VALUES ($1, $2, $3) \
         ON CONFLICT DO NOTHING",
        subject,
        key,
        request_sha256
    )
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    Ok(claimed)
}

/// The request that claimed an idempotency key first, and the consent it signed.
#[derive(Debug, FromRow)]
pub(crate) struct SignRequestRow {
    pub request_sha256: Vec<u8>,
    pub consent_id: Option<Uuid>,
}

pub(crate) async fn claimed(tx: &mut PgConnection, subject: Uuid, key: &str) -> Result<SignRequestRow, sqlx::Error> {
    sqlx::query_as!(
        SignRequestRow,
        "SELECT request_sha256, consent_id FROM consent_sign_requests WHERE subject_id = $1 AND idempotency_key = $2",
        subject,
        key
    )
    .fetch_one(&mut *tx)
    .await
}

/// Records which consent the request under an idempotency key signed.
pub(crate) async fn link_key(
    tx: &mut PgConnection,
    subject: Uuid,
    key: &str,
    consent: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE consent_sign_requests SET consent_id = $3 WHERE subject_id = $1 AND idempotency_key = $2",
        subject,
        key,
        consent
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Records a signed consent, in the caller's transaction; returns its id and terms hash.
/// `shown_form_sha256` is the SHA-256 of the form text the subject was shown and signed.
pub async fn record(
    tx: &mut PgConnection,
    consent: &NewConsent<'_>,
    shown_form_sha256: &[u8],
) -> Result<(Uuid, [u8; 32]), ConsentError> {
    let elements = records::validate(consent)?;
    let form = crate::forms::queries::body(tx, consent.form_version).await?;
    let Some(form) = form else { return Err(ConsentError::UnknownForm(consent.form_version.into())) };
    let on_file = form.body_sha256;
    if chain::sha256(form.body.as_bytes())[..] != on_file[..] || shown_form_sha256 != &on_file[..] {
        tracing::warn!(
            form_version = consent.form_version,
            "consent refused: the signed form text is not the form on file"
        );
        return Err(ConsentError::FormMismatch(consent.form_version.into()));
    }
    let id = Uuid::new_v4();
    let created_at = chain::now();
    let terms = records::terms(consent, &on_file);
    let terms_sha256 = chain::sha256(&terms);
    let prev = chain::head(tx, CONSENTS_CHAIN_LOCK, "consents").await?;
    let row_hash = chain::link(&prev, &records::row_canonical(id, &terms, &terms_sha256, created_at));
    sqlx::query!(
        "INSERT INTO consents (id, subject_id, discloser, recipient, categories, purpose, expires_at, expiry_event, \
         form_version, form_sha256, signed_name, signed_at, created_at, terms_sha256, prev_hash, row_hash, \
         terms_format, recipient_kind, recipient_name, recipient_directory_id, recipient_address, \
         signature_method, signed_from) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, \
         $22, $23)",
        id,
        consent.subject_id,
        consent.discloser,
        consent.recipient,
        consent.categories,
        consent.purpose,
        consent.expires_at,
        consent.expiry_event,
        consent.form_version,
        on_file,
        consent.signed_name,
        consent.signed_at,
        created_at,
        &terms_sha256[..],
        prev,
        &row_hash[..],
        TERMS_V2,
        elements.recipient_kind,
        elements.recipient_name,
        elements.recipient_directory_id,
        elements.recipient_address,
        elements.signature_method,
        elements.signed_from
    )
    .execute(&mut *tx)
    .await?;
    Ok((id, terms_sha256))
}

/// Revokes a consent, in the caller's transaction. `revoked_by` is who revoked it (the subject's
/// id, or the staff member acting on their written revocation).
pub async fn revoke(
    tx: &mut PgConnection,
    consent_id: Uuid,
    revoked_by: &str,
    reason: Option<&str>,
    signature: Option<RevocationSignature<'_>>,
) -> Result<OffsetDateTime, RevokeError> {
    let exists =
        sqlx::query_scalar!(r#"SELECT EXISTS (SELECT 1 FROM consents WHERE id = $1) AS "exists!""#, consent_id)
            .fetch_one(&mut *tx)
            .await?;
    if !exists {
        return Err(RevokeError::UnknownConsent(consent_id));
    }
    let revoked_at = chain::now();
    let prev = chain::head(tx, REVOCATIONS_CHAIN_LOCK, "revocations").await?;
    let canonical = records::revocation_canonical(consent_id, revoked_at, revoked_by, reason, signature.as_ref());
    let row_hash = chain::link(&prev, &canonical);
    let inserted = sqlx::query!(
        "INSERT INTO revocations (consent_id, revoked_at, revoked_by, reason, prev_hash, row_hash, format, \
         signed_name, signature_method, signed_from) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (consent_id) DO NOTHING",
        consent_id,
        revoked_at,
        revoked_by,
        reason,
        prev,
        &row_hash[..],
        if signature.is_some() { REVOCATIONS_V2 } else { REVOCATIONS_V1 },
        signature.map(|s| s.signed_name),
        signature.map(|s| s.method),
        signature.map(|s| s.signed_from)
    )
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(RevokeError::AlreadyRevoked(consent_id));
    }
    Ok(revoked_at)
}

/// Records that an event happened for a subject; returns its sequence number.
pub(crate) async fn record_event(
    tx: &mut PgConnection,
    subject: Uuid,
    event: &str,
    occurred_at: OffsetDateTime,
    recorded_by: &str,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        "INSERT INTO expiry_events (subject_id, event, occurred_at, recorded_by) VALUES ($1, $2, $3, $4) RETURNING seq",
        subject,
        event,
        occurred_at,
        recorded_by
    )
    .fetch_one(&mut *tx)
    .await
}

/// How many of the subject's consents the event `seq` ends: waiting on that event, signed before
/// it, and in force until it (not expired, revoked or ended by an earlier such event).
pub(crate) async fn ended_by(
    tx: &mut PgConnection,
    subject: Uuid,
    event: &str,
    occurred_at: OffsetDateTime,
    seq: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" "#
            + "FROM consents c WHERE c.subject_id = $1 AND c.expiry_event = $2 AND c.signed_at <= $3 \
         AND (c.expires_at IS NULL OR c.expires_at > $3) \
         AND NOT EXISTS (SELECT 1 FROM revocations r WHERE r.consent_id = c.id AND r.revoked_at <= $3) \
         AND NOT EXISTS (SELECT 1 FROM expiry_events e WHERE e.subject_id = c.subject_id \
                         AND e.event = c.expiry_event AND e.occurred_at >= c.signed_at \
                         AND e.occurred_at <= $3 AND e.seq <> $4)",
        subject,
        event,
        occurred_at,
        seq
    )
    .fetch_one(&mut *tx)
    .await
}

/// Every column [`records::canonical_of`] reads.
#[derive(Debug, FromRow)]
pub(crate) struct ConsentChainRow {
    pub id: Uuid,
    pub subject_id: Uuid,
    pub discloser: String,
    pub recipient: String,
    pub categories: Vec<String>,
    pub purpose: String,
    pub expires_at: Option<OffsetDateTime>,
    pub expiry_event: Option<String>,
    pub form_version: String,
    pub form_sha256: Vec<u8>,
    pub signed_name: String,
    pub signed_at: OffsetDateTime,
    pub created_at: OffsetDateTime,
    pub terms_sha256: Vec<u8>,
    /// As stored, not decoded: the chain hashes what is there, and an unexpected value breaks
    /// the chain at its row instead of failing the whole verification.
    pub terms_format: String,
    pub recipient_kind: Option<String>,
    pub recipient_name: Option<String>,
    pub recipient_directory_id: Option<Uuid>,
    pub recipient_address: Option<String>,
    pub signature_method: Option<String>,
    pub signed_from: Option<String>,
}

/// Every column [`ConsentChainRow`] holds, with the chain's, in chain order. Runtime SQL, not a
/// checked macro: [`chain::verify_table`] streams any trail's rows by this text.
const CONSENTS_CHAIN: &str = "SELECT seq, id, subject_id, discloser, recipient, categories, purpose, expires_at, \
                                  expiry_event, form_version, form_sha256, signed_name, signed_at, created_at, \
                                  terms_sha256, prev_hash, row_hash, terms_format, recipient_kind, recipient_name, \
                                  recipient_directory_id, recipient_address, signature_method, signed_from \
                                  FROM consents ORDER BY seq";

/// Verifies the consents trail (`secondwind-operator audit verify --trail consents`).
pub async fn verify(pool: &PgPool, limit: usize) -> Result<Verification, sqlx::Error> {
    chain::verify_table(pool, CONSENTS_CHAIN, limit, |row| Ok(records::canonical_of(&ConsentChainRow::from_row(row)?)))
        .await
}

/// Every column [`records::revocation_canonical_of`] reads.
#[derive(Debug, FromRow)]
pub(crate) struct RevocationChainRow {
    pub consent_id: Uuid,
    pub revoked_at: OffsetDateTime,
    pub revoked_by: String,
    pub reason: Option<String>,
    /// As stored, not decoded (as [`ConsentChainRow::terms_format`]).
    pub format: String,
    pub signed_name: Option<String>,
    pub signature_method: Option<String>,
    pub signed_from: Option<String>,
}

/// Every column [`RevocationChainRow`] holds, with the chain's, in chain order. Runtime SQL, not
/// a checked macro: [`chain::verify_table`] streams any trail's rows by this text.
const REVOCATIONS_CHAIN: &str = "SELECT seq, consent_id, revoked_at, revoked_by, reason, prev_hash, row_hash, \
                                 format, signed_name, signature_method, signed_from FROM revocations ORDER BY seq";

/// Verifies the revocations trail (`secondwind-operator audit verify --trail revocations`).
pub async fn verify_revocations(pool: &PgPool, limit: usize) -> Result<Verification, sqlx::Error> {
    chain::verify_table(pool, REVOCATIONS_CHAIN, limit, |row| {
        Ok(records::revocation_canonical_of(&RevocationChainRow::from_row(row)?))
    })
    .await
}
