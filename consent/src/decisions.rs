//! Disclosure decisions: may this recipient see these categories of the subject's records, for
//! this purpose? Yes only under a standing consent (42 CFR §2.31) naming that recipient and
//! purpose, or naming the recipient's class for treatment, payment and health care operations
//! when the purpose is one of those, and covering every category asked: signed, not revoked, not
//! expired by date or by an event recorded since. Anything else is no, and the answer's reason
//! is the same whether or not any consent exists. Every question and its answer is appended to the hash-chained `decisions` trail; a yes
//! carries the hash of the consent terms it relied on (`consents.terms_sha256`).

use rocket::serde::json::Json;
use rocket::{get, post, routes, Route, State};
use serde::Serialize;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use common::assertion::InternalCall;
use common::chain::{self, Verification};
use common::client::{DisclosureAnswer, DisclosureQuestion};
use common::compliance::{DecisionEntry, DecisionFilter, DecisionPage};
use common::json::Body;
use common::{ApiError, Role};

use crate::beneficiary::ENDED_BY_EVENT;

const CHAIN_LOCK: i64 = 0x5357_434f_4e44_4543;
/// The categories records are kept under (phi-vault's `record_category`).
pub const CATEGORIES: [&str; 6] =
    ["intake_conversation", "coach_conversation", "application_details", "insurance", "identity", "document"];
/// The purposes a consent naming one recipient may give (the disclosure purposes of
/// `policies/internal-calls.toml`).
pub const PURPOSES: [&str; 4] = ["housing_placement", "care_coordination", "benefits_eligibility", "payment"];
/// The purpose of a single consent for treatment, payment and health care operations (TPO).
pub const TPO_PURPOSE: &str = "treatment_payment_operations";
/// The disclosure purposes a TPO consent covers: treatment (care coordination) and payment.
pub const TPO_COVERS: [&str; 2] = ["care_coordination", "payment"];
/// The classes of recipient a TPO consent may name: (class, the role acting for its members,
/// what the patient reads). A class's members are the directory's entries of that kind.
pub const CLASSES: [(&str, &str, &str); 2] = [
    ("health_plans", "insurer", "Health plans and insurers in the SecondWind directory paying for my care"),
    ("recovery_residences", "partner", "Recovery residences in the SecondWind directory providing my care"),
];
/// Events that may end a consent (§2.31(a)(6)), as staff record them.
pub const EXPIRY_EVENTS: [&str; 3] = ["program_exit", "placement_end", "coverage_end"];

#[derive(Serialize)]
struct Canonical<'a> {
    decided_at_us: i128,
    subject_id: Uuid,
    recipient: &'a str,
    categories: &'a [String],
    purpose: &'a str,
    permitted: bool,
    consent_id: Option<Uuid>,
    reason: &'a str,
    asked_by: &'a str,
    request_id: Option<&'a str>,
    /// Hex; left out when absent, so decisions made before terms were hashed hash as they did.
    #[serde(skip_serializing_if = "Option::is_none")]
    terms_sha256: Option<String>,
}

impl Canonical<'_> {
    fn bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

fn validate(q: &DisclosureQuestion) -> Result<(), ApiError> {
    common::json::printable("recipient", &q.recipient, 1..=200, false)?;
    common::json::printable("purpose", &q.purpose, 1..=100, false)?;
    if q.categories.is_empty() || q.categories.iter().any(|c| !CATEGORIES.contains(&c.as_str())) {
        return Err(ApiError::Unprocessable(format!("categories: one or more of {}", CATEGORIES.join(", "))));
    }
    Ok(())
}

/// The standing consent that covers the question, if any.
struct Standing {
    id: Uuid,
    form_version: String,
    terms_sha256: Vec<u8>,
    /// The recipient's directory name, or as the consent names it.
    recipient_name: Option<String>,
}

/// The standing consent that covers the question, if any: its id, the form version signed and
/// the hash of its terms.
async fn standing_consent(tx: &mut PgConnection, q: &DisclosureQuestion) -> Result<Option<Standing>, sqlx::Error> {
    // A class consent (TPO) names the role that acts for the class's members; a member is an
    // account the directory lists (not retired), never merely an account holding the role.
    let class = q.recipient.split_once(':').map(|(role, _)| format!("class:{role}"));
    let row = sqlx::query(&format!(
        "SELECT c.id, c.form_version, c.terms_sha256, \
         coalesce((SELECT d.name FROM recipients d WHERE d.principal = $2), c.recipient_name) AS recipient_name \
         FROM consents c \
         WHERE c.subject_id = $1 AND c.categories @> $4::text[] \
         AND ((c.recipient = $2 AND c.purpose = $3) \
              OR (c.recipient_kind = 'class' AND c.recipient = $5 AND c.purpose = $6 AND $3 = ANY($7::text[]) \
                  AND EXISTS (SELECT 1 FROM recipients d WHERE d.principal = $2 AND d.retired_at IS NULL))) \
         AND c.signed_at <= now() AND (c.expires_at IS NULL OR c.expires_at > now()) \
         AND NOT {ENDED_BY_EVENT} \
         AND NOT EXISTS (SELECT 1 FROM revocations r WHERE r.consent_id = c.id) \
         ORDER BY c.signed_at DESC LIMIT 1"
    ))
    .bind(q.subject_id)
    .bind(&q.recipient)
    .bind(&q.purpose)
    .bind(&q.categories)
    .bind(class)
    .bind(TPO_PURPOSE)
    .bind(&TPO_COVERS[..])
    .fetch_optional(&mut *tx)
    .await?;
    row.map(|r| {
        Ok(Standing {
            id: r.try_get("id")?,
            form_version: r.try_get("form_version")?,
            terms_sha256: r.try_get("terms_sha256")?,
            recipient_name: r.try_get("recipient_name")?,
        })
    })
    .transpose()
}

/// A decision as the trail keeps it.
pub struct Answer<'a> {
    pub permitted: bool,
    pub consent_id: Option<Uuid>,
    /// The hash of the consent terms relied on (required with a consent).
    pub terms_sha256: Option<&'a [u8]>,
    pub reason: &'a str,
    pub asked_by: &'a str,
    pub request_id: &'a str,
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
    sqlx::query(
        "INSERT INTO decisions (decided_at, subject_id, recipient, categories, purpose, permitted, consent_id, \
         reason, asked_by, request_id, terms_sha256, prev_hash, row_hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(at)
    .bind(question.subject_id)
    .bind(&question.recipient)
    .bind(&question.categories)
    .bind(&question.purpose)
    .bind(a.permitted)
    .bind(a.consent_id)
    .bind(a.reason)
    .bind(a.asked_by)
    .bind(a.request_id)
    .bind(a.terms_sha256)
    .bind(prev)
    .bind(&row_hash[..])
    .execute(&mut *tx)
    .await?;
    Ok(())
}

#[post("/internal/v1/decisions", data = "<body>")]
async fn decide(
    call: InternalCall,
    body: Body<DisclosureQuestion>,
    pool: &State<PgPool>,
) -> Result<Json<DisclosureAnswer>, ApiError> {
    let question = body.into_inner();
    validate(&question)?;
    let claims = &call.0;
    let asked_by = format!("{} for {}:{}", claims.iss, claims.role, claims.sub);
    let mut tx = pool.begin().await?;
    let consent = standing_consent(&mut tx, &question).await?;
    let (permitted, reason) = match &consent {
        Some(c) => (true, format!("consent {}", c.id)),
        None => (false, "no standing consent names this recipient, purpose and every category".to_owned()),
    };
    let consent_id = consent.as_ref().map(|c| c.id);
    let answer = Answer {
        permitted,
        consent_id,
        terms_sha256: consent.as_ref().map(|c| &c.terms_sha256[..]),
        reason: &reason,
        asked_by: &asked_by,
        request_id: &claims.request_id,
    };
    append(&mut tx, &question, &answer).await?;
    tx.commit().await?;
    tracing::info!(request_id = %claims.request_id, permitted, "disclosure decided");
    let (form_version, recipient_name) = consent.map(|c| (Some(c.form_version), c.recipient_name)).unwrap_or_default();
    Ok(Json(DisclosureAnswer { permitted, consent_id, form_version, recipient_name, reason }))
}

/// The decision log for a compliance officer, oldest first, filtered and paged. Nothing of the
/// records themselves is here: who asked, about whom, for what, and the answer.
#[get("/internal/v1/decisions?<filter..>")]
async fn log_page(
    call: InternalCall,
    filter: DecisionFilter<'_>,
    pool: &State<PgPool>,
) -> Result<Json<DecisionPage>, ApiError> {
    let claims = &call.0;
    if claims.role != Role::ComplianceOfficer {
        tracing::warn!(request_id = %claims.request_id, role = %claims.role, "decision log refused: not a compliance officer");
        return Err(ApiError::Forbidden);
    }
    let q = filter.parse()?;
    let rows = sqlx::query(
        "SELECT seq, decided_at, subject_id, recipient, categories, purpose, permitted, consent_id, reason, \
         asked_by, request_id FROM decisions WHERE seq > $1 \
         AND ($2::uuid IS NULL OR subject_id = $2) AND ($3::text IS NULL OR asked_by LIKE '%:' || $3) \
         AND ($4::text IS NULL OR recipient = $4) AND ($5::text IS NULL OR purpose = $5) \
         AND ($6::bool IS NULL OR permitted = $6) \
         AND ($7::date IS NULL OR decided_at >= ($7::date)::timestamp AT TIME ZONE 'UTC') \
         AND ($8::date IS NULL OR decided_at < ($8::date + 1)::timestamp AT TIME ZONE 'UTC') \
         AND ($9::bigint IS NULL OR seq <= $9) ORDER BY seq LIMIT $10",
    )
    .bind(q.after_seq)
    .bind(q.subject_id)
    .bind(q.actor_id.map(|a| a.to_string()))
    .bind(&q.recipient)
    .bind(&q.purpose)
    .bind(q.permitted)
    .bind(q.from)
    .bind(q.to)
    .bind(q.until_seq)
    .bind(q.limit + 1)
    .fetch_all(pool.inner())
    .await?;
    let head_seq: i64 =
        sqlx::query_scalar("SELECT coalesce(max(seq), 0) FROM decisions").fetch_one(pool.inner()).await?;
    let (rows, next_after_seq) = common::db::page_after(rows, q.limit, "seq")?;
    let entries = rows
        .iter()
        .map(|r| {
            Ok(DecisionEntry {
                seq: r.try_get("seq")?,
                decided_at: r.try_get("decided_at")?,
                subject_id: r.try_get("subject_id")?,
                recipient: r.try_get("recipient")?,
                categories: r.try_get("categories")?,
                purpose: r.try_get("purpose")?,
                permitted: r.try_get("permitted")?,
                consent_id: r.try_get("consent_id")?,
                reason: r.try_get("reason")?,
                asked_by: r.try_get("asked_by")?,
                request_id: r.try_get("request_id")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    tracing::info!(
        request_id = %claims.request_id,
        officer = %claims.sub,
        rows = entries.len(),
        subject = ?q.subject_id,
        filters = %q.describe(),
        "decision log read for a compliance review"
    );
    Ok(Json(DecisionPage { entries, next_after_seq, head_seq }))
}

/// Verifies the decisions trail (`secondwind-operator audit verify --trail consent`).
pub async fn verify(pool: &PgPool, limit: usize) -> Result<Verification, sqlx::Error> {
    let sql = "SELECT seq, decided_at, subject_id, recipient, categories, purpose, permitted, consent_id, reason, \
               asked_by, request_id, terms_sha256, prev_hash, row_hash FROM decisions ORDER BY seq";
    chain::verify_table(pool, sql, limit, |row| {
        let text = |name: &str| row.try_get::<String, _>(name);
        let (recipient, purpose, reason, asked_by) =
            (text("recipient")?, text("purpose")?, text("reason")?, text("asked_by")?);
        let categories: Vec<String> = row.try_get("categories")?;
        let request_id: Option<String> = row.try_get("request_id")?;
        let terms_sha256: Option<Vec<u8>> = row.try_get("terms_sha256")?;
        Ok(Canonical {
            decided_at_us: chain::micros(row.try_get("decided_at")?),
            subject_id: row.try_get("subject_id")?,
            recipient: &recipient,
            categories: &categories,
            purpose: &purpose,
            permitted: row.try_get("permitted")?,
            consent_id: row.try_get("consent_id")?,
            reason: &reason,
            asked_by: &asked_by,
            request_id: request_id.as_deref(),
            terms_sha256: terms_sha256.as_deref().map(chain::hex),
        }
        .bytes())
    })
    .await
}

pub fn routes() -> Vec<Route> {
    routes![decide, log_page]
}
