//! A beneficiary's own consents: the forms they may sign, signing one, reading and listing
//! theirs with their state, and revoking one. Every route acts for the person public-api's
//! delegation token proves (role `beneficiary`, `sub` their user id); the subject in the path
//! must be that person, so nobody signs, reads or revokes for someone else.
//!
//! Signing resolves the recipient and copies its details into the consent (a directory entry's
//! name and address as they are now), so later directory edits change nothing consented; the
//! consent's terms, hashed and chained, cover those copies.

use rocket::http::Status;
use rocket::serde::json::Json;
use rocket::{get, post, routes, Route, State};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};
use time::OffsetDateTime;
use uuid::Uuid;

use common::assertion::InternalCall;
use common::chain;
use common::consents::{
    ConsentDetail, ConsentOptions, ConsentPage, ConsentRecipient, ConsentRequest, ConsentView, ExpiryEventRecorded,
    FormSummary, FormText, NewExpiryEvent, RecipientClass, RevokeConsent, SignConsent, Signature, SignatureRecord,
    SubjectConsent, SIGNATURE_METHOD,
};
use common::json::Body;
use common::{ApiError, Role};

use crate::consents::{self, ConsentError, Elements, NewConsent};
use crate::decisions::{CATEGORIES, CLASSES, EXPIRY_EVENTS, PURPOSES, TPO_COVERS, TPO_PURPOSE};
use crate::revocations::{self, RevocationSignature, RevokeError};

/// Who discloses under every consent: the program.
pub const DISCLOSER: &str = "SecondWind";

/// SQL over `c`, a `consents` row: ended by an event staff recorded for its subject at or after
/// its signing.
macro_rules! ended_by_event {
    () => {
        "EXISTS (SELECT 1 FROM expiry_events e WHERE e.subject_id = c.subject_id AND e.event = c.expiry_event \
         AND e.occurred_at >= c.signed_at AND e.occurred_at <= now())"
    };
}
pub const ENDED_BY_EVENT: &str = ended_by_event!();

/// The caller is the subject, acting as a beneficiary; anyone else is refused (403).
fn the_subject(call: &InternalCall, subject: Uuid) -> Result<(), ApiError> {
    let claims = &call.0;
    if claims.role == Role::Beneficiary && claims.sub == subject.to_string() {
        Ok(())
    } else {
        tracing::warn!(request_id = %claims.request_id, role = %claims.role, "consent route refused: not the subject");
        Err(ApiError::Forbidden)
    }
}

fn summary(row: &PgRow) -> Result<FormSummary, sqlx::Error> {
    let sha: Vec<u8> = row.try_get("body_sha256")?;
    Ok(FormSummary {
        version: row.try_get("version")?,
        title: row.try_get("title")?,
        recipient: row.try_get("recipient_kind")?,
        published: row.try_get("published")?,
        sha256: chain::hex(&sha),
    })
}

const FORM_COLUMNS: &str = "version, title, recipient_kind, to_char(published_on, 'YYYY-MM-DD') AS published, \
                            body_sha256, body";

/// Reading consents: the subject as a beneficiary, or a compliance officer for a review.
/// public-api audits the officer's read once answered; this service logs it too, naming the
/// officer, so a read public-api did not record still leaves a trace here.
fn reader(call: &InternalCall, subject: Option<Uuid>, what: &str) -> Result<(), ApiError> {
    let claims = &call.0;
    if claims.role == Role::ComplianceOfficer && claims.purpose == "compliance_review" {
        tracing::info!(request_id = %claims.request_id, officer = %claims.sub, subject = ?subject, what, "consents read for a compliance review");
        return Ok(());
    }
    match subject {
        Some(subject) => the_subject(call, subject),
        None => {
            tracing::warn!(request_id = %claims.request_id, role = %claims.role, "consent route refused: not a compliance officer");
            Err(ApiError::Forbidden)
        }
    }
}

/// The forms offered for signing (those loaded from the forms directory) and every value a
/// consent may hold.
#[get("/internal/v1/consent-options")]
async fn options(call: InternalCall, pool: &State<PgPool>) -> Result<Json<ConsentOptions>, ApiError> {
    tracing::debug!(request_id = %call.0.request_id, "consent options asked");
    let rows = sqlx::query(&format!(
        "SELECT {FORM_COLUMNS} FROM consent_forms WHERE recipient_kind IS NOT NULL ORDER BY published_on, version"
    ))
    .fetch_all(pool.inner())
    .await?;
    let forms = rows.iter().map(summary).collect::<Result<_, _>>()?;
    let owned = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    Ok(Json(ConsentOptions {
        forms,
        categories: owned(&CATEGORIES),
        purposes: owned(&PURPOSES),
        tpo_purpose: TPO_PURPOSE.into(),
        tpo_covers: owned(&TPO_COVERS),
        classes: CLASSES
            .iter()
            .map(|(class, _, description)| RecipientClass {
                class: (*class).into(),
                description: (*description).into(),
            })
            .collect(),
        expiry_events: owned(&EXPIRY_EVENTS),
    }))
}

/// A form offered for signing, with its exact text.
#[get("/internal/v1/consent-forms/<version>")]
async fn form(call: InternalCall, version: &str, pool: &State<PgPool>) -> Result<Json<FormText>, ApiError> {
    tracing::debug!(request_id = %call.0.request_id, "consent form asked");
    let row = sqlx::query(&format!(
        "SELECT {FORM_COLUMNS} FROM consent_forms WHERE version = $1 AND recipient_kind IS NOT NULL"
    ))
    .bind(version)
    .fetch_optional(pool.inner())
    .await?
    .ok_or(ApiError::NotFound)?;
    Ok(Json(FormText { form: summary(&row)?, text: row.try_get("body")? }))
}

/// Every column [`view_of`] reads, over `consents c`, its form `f` and its revocation `r`.
const VIEW: &str = concat!(
    "SELECT * FROM (SELECT c.seq, c.id, c.discloser, c.form_version, f.title AS form_title, \
    c.form_sha256, c.recipient, c.recipient_kind, c.recipient_name, c.recipient_directory_id, c.recipient_address, \
    c.categories, c.purpose, c.expires_at, c.expiry_event, c.signed_name, c.signature_method, c.signed_at, \
    c.signed_from, c.terms_sha256, c.subject_id, r.revoked_at, f.body AS form_text, \
    CASE WHEN r.consent_id IS NOT NULL THEN 'revoked' \
         WHEN (c.expires_at IS NOT NULL AND c.expires_at <= now()) OR ",
    ended_by_event!(),
    " THEN 'expired' \
         ELSE 'signed' END AS state \
    FROM consents c JOIN consent_forms f ON f.version = c.form_version \
    LEFT JOIN revocations r ON r.consent_id = c.id) v"
);

fn view_of(row: &PgRow) -> Result<ConsentView, sqlx::Error> {
    let recipient: String = row.try_get("recipient")?;
    let kind: Option<String> = row.try_get("recipient_kind")?;
    let class = recipient
        .strip_prefix("class:")
        .and_then(|role| CLASSES.iter().find(|(_, r, _)| *r == role))
        .map(|(class, _, _)| (*class).to_owned());
    let name: Option<String> = row.try_get("recipient_name")?;
    let form_sha: Vec<u8> = row.try_get("form_sha256")?;
    let terms_sha: Vec<u8> = row.try_get("terms_sha256")?;
    Ok(ConsentView {
        id: row.try_get("id")?,
        state: row.try_get("state")?,
        discloser: row.try_get("discloser")?,
        form_version: row.try_get("form_version")?,
        form_title: row.try_get("form_title")?,
        form_sha256: chain::hex(&form_sha),
        recipient: ConsentRecipient {
            kind: kind.unwrap_or_else(|| "named".into()),
            // A consent recorded before names were copied shows the recipient it names.
            name: name.unwrap_or(recipient),
            directory_id: row.try_get("recipient_directory_id")?,
            address: row.try_get("recipient_address")?,
            class,
        },
        categories: row.try_get("categories")?,
        purpose: row.try_get("purpose")?,
        expires_at: row.try_get("expires_at")?,
        expiry_event: row.try_get("expiry_event")?,
        signature: SignatureRecord {
            typed_name: row.try_get("signed_name")?,
            method: row.try_get("signature_method")?,
            signed_at: row.try_get("signed_at")?,
            signed_from: row.try_get("signed_from")?,
        },
        terms_sha256: chain::hex(&terms_sha),
        revoked_at: row.try_get("revoked_at")?,
    })
}

/// One of the subject's consents with its form text; `None` if it is not theirs or not there.
async fn detail(conn: &mut PgConnection, subject: Uuid, id: Uuid) -> Result<Option<ConsentDetail>, sqlx::Error> {
    Ok(detail_of(conn, Some(subject), id).await?.map(|(_, d)| d))
}

/// One consent with its form text and its subject; `None` if it is not there (or, with
/// `subject`, not theirs).
async fn detail_of(
    conn: &mut PgConnection,
    subject: Option<Uuid>,
    id: Uuid,
) -> Result<Option<(Uuid, ConsentDetail)>, sqlx::Error> {
    let row = sqlx::query(&format!("{VIEW} WHERE v.id = $1 AND ($2::uuid IS NULL OR v.subject_id = $2)"))
        .bind(id)
        .bind(subject)
        .fetch_optional(conn)
        .await?;
    row.map(|row| {
        let detail = ConsentDetail { consent: view_of(&row)?, form_text: row.try_get("form_text")? };
        Ok((row.try_get("subject_id")?, detail))
    })
    .transpose()
}

#[get("/internal/v1/subjects/<subject>/consents?<state>&<after>&<limit>")]
async fn list(
    call: InternalCall,
    subject: Uuid,
    state: Option<&str>,
    after: Option<&str>,
    limit: Option<&str>,
    pool: &State<PgPool>,
) -> Result<Json<ConsentPage>, ApiError> {
    reader(&call, Some(subject), "list")?;
    let query = common::consents::parse_query(state, after, limit)?;
    let limit = query.limit.unwrap_or(50);
    let rows = sqlx::query(&format!(
        "{VIEW} WHERE v.subject_id = $1 AND v.seq > $2 AND ($3::text IS NULL OR v.state = $3) ORDER BY v.seq LIMIT $4"
    ))
    .bind(subject)
    .bind(query.after.unwrap_or(0))
    .bind(query.state.as_deref())
    .bind(limit + 1)
    .fetch_all(pool.inner())
    .await?;
    let (rows, next_after) = common::db::page_after(rows, limit, "seq")?;
    let consents = rows.iter().map(view_of).collect::<Result<_, _>>()?;
    Ok(Json(ConsentPage { consents, next_after }))
}

#[get("/internal/v1/subjects/<subject>/consents/<id>")]
async fn read(
    call: InternalCall,
    subject: Uuid,
    id: Uuid,
    pool: &State<PgPool>,
) -> Result<Json<ConsentDetail>, ApiError> {
    the_subject(&call, subject)?;
    let mut conn = pool.acquire().await?;
    detail(&mut conn, subject, id).await?.map(Json).ok_or(ApiError::NotFound)
}

/// Any consent by its id, with its subject: for a compliance officer only.
#[get("/internal/v1/consents/<id>")]
async fn read_any(call: InternalCall, id: Uuid, pool: &State<PgPool>) -> Result<Json<SubjectConsent>, ApiError> {
    reader(&call, None, "one consent")?;
    let mut conn = pool.acquire().await?;
    let (subject_id, detail) = detail_of(&mut conn, None, id).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(SubjectConsent { subject_id, detail }))
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::Unprocessable(message.into())
}

fn check_signature(s: &Signature) -> Result<(), ApiError> {
    common::json::printable("signature.typed_name", &s.typed_name, 1..=200, false)?;
    if s.method != SIGNATURE_METHOD {
        return Err(invalid(format!("signature.method: {SIGNATURE_METHOD}")));
    }
    Ok(())
}

fn check_signed_from(address: &str) -> Result<(), ApiError> {
    common::json::printable("signed_from", address, 1..=100, false)
}

/// The recipient a request names, resolved and copied: (the name decisions match, kind, name,
/// directory id, address).
struct Resolved {
    key: String,
    kind: &'static str,
    name: String,
    directory_id: Option<Uuid>,
    address: Option<String>,
}

async fn resolve_recipient(
    tx: &mut PgConnection,
    request: &ConsentRequest,
    tpo_form: bool,
) -> Result<Resolved, ApiError> {
    let r = &request.recipient;
    let chosen = [r.directory_id.is_some(), r.name.is_some(), r.class.is_some()].iter().filter(|b| **b).count();
    if chosen != 1 {
        return Err(invalid("recipient: exactly one of directory_id, name or class"));
    }
    if r.address.is_some() && r.name.is_none() {
        return Err(invalid("recipient.address: only with recipient.name (a directory entry has its own)"));
    }
    if tpo_form {
        let Some(class) = &r.class else {
            return Err(invalid("recipient: a TPO form names a class of recipients (recipient.class)"));
        };
        let (_, role, description) = CLASSES.iter().find(|(c, _, _)| c == class).ok_or_else(|| {
            let classes: Vec<&str> = CLASSES.iter().map(|(c, _, _)| *c).collect();
            invalid(format!("recipient.class: one of {}", classes.join(", ")))
        })?;
        return Ok(Resolved {
            key: format!("class:{role}"),
            kind: "class",
            name: (*description).into(),
            directory_id: None,
            address: None,
        });
    }
    if r.class.is_some() {
        return Err(invalid("recipient.class: only on a TPO form; this form names one recipient"));
    }
    if let Some(id) = r.directory_id {
        let row = sqlx::query("SELECT name, address, principal FROM recipients WHERE id = $1 AND retired_at IS NULL")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| invalid("recipient.directory_id: no such recipient in the directory"))?;
        let principal: Option<String> = row.try_get("principal")?;
        return Ok(Resolved {
            // An entry no account acts for yet is consented to as the entry itself.
            key: principal.unwrap_or_else(|| format!("directory:{id}")),
            kind: "named",
            name: row.try_get("name")?,
            directory_id: Some(id),
            address: row.try_get("address")?,
        });
    }
    let name = r.name.as_deref().unwrap_or_default().trim();
    common::json::printable("recipient.name", name, 1..=200, false)?;
    let address = r.address.as_deref().map(str::trim);
    if let Some(address) = address {
        common::json::printable("recipient.address", address, 1..=300, false)?;
    }
    Ok(Resolved {
        // A recipient outside the directory has no account here: no decision ever matches it;
        // staff disclose to it under the consent, and the accounting names it.
        key: format!("external:{}", Uuid::new_v4()),
        kind: "named",
        name: name.into(),
        directory_id: None,
        address: address.map(str::to_owned),
    })
}

/// Claims the subject's idempotency key for this request. `None`: claimed, go on and sign.
/// `Some(id)`: the same request was signed before, as consent `id`. A different request under
/// the same key is refused (422). A concurrent repeat waits here on the first one's row until
/// it commits or rolls back, so one key never signs twice.
async fn claim_key(
    tx: &mut PgConnection,
    subject: Uuid,
    key: &str,
    request_sha256: &[u8],
) -> Result<Option<Uuid>, ApiError> {
    let claimed = sqlx::query(
        "INSERT INTO consent_sign_requests (subject_id, idempotency_key, request_sha256) VALUES ($1, $2, $3) \
         ON CONFLICT DO NOTHING",
    )
    .bind(subject)
    .bind(key)
    .bind(request_sha256)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if claimed {
        return Ok(None);
    }
    let (earlier_sha256, consent_id): (Vec<u8>, Option<Uuid>) = sqlx::query_as(
        "SELECT request_sha256, consent_id FROM consent_sign_requests WHERE subject_id = $1 AND idempotency_key = $2",
    )
    .bind(subject)
    .bind(key)
    .fetch_one(&mut *tx)
    .await?;
    match consent_id {
        Some(id) if earlier_sha256 == request_sha256 => Ok(Some(id)),
        Some(_) => Err(invalid("Idempotency-Key: already used for a different consent; use a new key")),
        None => Err(ApiError::internal("an idempotency key claimed without its consent")),
    }
}

/// Signs a consent for the subject. 201 with the consent and its form text; 200 with the same
/// when the request repeats an earlier one under its idempotency key.
#[post("/internal/v1/subjects/<subject>/consents", data = "<body>")]
async fn sign(
    call: InternalCall,
    subject: Uuid,
    body: Body<SignConsent>,
    pool: &State<PgPool>,
) -> Result<(Status, Json<ConsentDetail>), ApiError> {
    the_subject(&call, subject)?;
    let SignConsent { consent: request, signed_from, idempotency_key } = body.into_inner();
    let mut tx = pool.begin().await?;
    // A repeat of a request already signed answers with that consent, before any check whose
    // answer may have changed since (an expiry date now past).
    let key = match idempotency_key {
        Some(key) => {
            common::json::IdempotencyKey::parse(Some(&key)).map_err(invalid)?;
            let request_sha256 = chain::sha256(&serde_json::to_vec(&request).map_err(ApiError::internal)?);
            if let Some(earlier) = claim_key(&mut tx, subject, &key, &request_sha256).await? {
                let signed = detail(&mut tx, subject, earlier)
                    .await?
                    .ok_or_else(|| ApiError::internal("a consent an idempotency key names"))?;
                tx.commit().await?;
                tracing::info!(request_id = %call.0.request_id, consent = %earlier, "consent signing repeated");
                return Ok((Status::Ok, Json(signed)));
            }
            Some(key)
        }
        None => None,
    };
    check_signature(&request.signature)?;
    check_signed_from(&signed_from)?;
    let shown = chain::from_hex(&request.form_sha256)
        .filter(|h| h.len() == 32)
        .ok_or_else(|| invalid("form_sha256: the form's SHA-256, 64 hex characters"))?;
    let now = OffsetDateTime::now_utc();
    if request.expires_at.is_some_and(|t| t <= now) {
        return Err(invalid("expires_at: must be in the future"));
    }
    if let Some(event) = &request.expiry_event {
        if !EXPIRY_EVENTS.contains(&event.as_str()) {
            return Err(invalid(format!("expiry_event: one of {}", EXPIRY_EVENTS.join(", "))));
        }
    }
    let kind: Option<Option<String>> =
        sqlx::query_scalar("SELECT recipient_kind FROM consent_forms WHERE version = $1")
            .bind(&request.form_version)
            .fetch_optional(&mut *tx)
            .await?;
    let tpo_form = match kind.flatten().as_deref() {
        Some("tpo") => true,
        Some(_) => false,
        None => return Err(invalid("form_version: no consent form offered under that version")),
    };
    if tpo_form && request.purpose != TPO_PURPOSE {
        return Err(invalid(format!("purpose: a TPO form's purpose is {TPO_PURPOSE}")));
    }
    if !tpo_form && !PURPOSES.contains(&request.purpose.as_str()) {
        return Err(invalid(format!("purpose: one of {}", PURPOSES.join(", "))));
    }
    let recipient = resolve_recipient(&mut tx, &request, tpo_form).await?;
    let typed_name = request.signature.typed_name.trim();
    let new = NewConsent {
        subject_id: subject,
        discloser: DISCLOSER,
        recipient: &recipient.key,
        categories: &request.categories,
        purpose: &request.purpose,
        expires_at: request.expires_at,
        expiry_event: request.expiry_event.as_deref(),
        form_version: &request.form_version,
        signed_name: typed_name,
        signed_at: chain::now(),
        elements: Some(Elements {
            recipient_kind: recipient.kind,
            recipient_name: &recipient.name,
            recipient_directory_id: recipient.directory_id,
            recipient_address: recipient.address.as_deref(),
            signature_method: &request.signature.method,
            signed_from: &signed_from,
        }),
    };
    let (id, _) = consents::record(&mut tx, &new, &shown).await.map_err(|e| match e {
        ConsentError::UnknownForm(_) => invalid("form_version: no consent form offered under that version"),
        ConsentError::FormMismatch(version) => ApiError::Conflict(format!(
            "the form text signed is not form {version} as on file; read the form again and sign what it says"
        )),
        ConsentError::Invalid(message) => invalid(message),
        ConsentError::Sql(e) => e.into(),
    })?;
    if let Some(key) = &key {
        sqlx::query("UPDATE consent_sign_requests SET consent_id = $3 WHERE subject_id = $1 AND idempotency_key = $2")
            .bind(subject)
            .bind(key)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    let signed = detail(&mut tx, subject, id).await?.ok_or_else(|| ApiError::internal("a consent just recorded"))?;
    tx.commit().await?;
    tracing::info!(request_id = %call.0.request_id, consent = %id, "consent signed");
    Ok((Status::Created, Json(signed)))
}

/// Revokes one of the subject's consents: a signed revocation record, effective for every
/// decision after it. 404 if it is not theirs; 409 if it already ended.
#[post("/internal/v1/subjects/<subject>/consents/<id>/revocation", data = "<body>")]
async fn revoke(
    call: InternalCall,
    subject: Uuid,
    id: Uuid,
    body: Body<RevokeConsent>,
    pool: &State<PgPool>,
) -> Result<Json<ConsentView>, ApiError> {
    the_subject(&call, subject)?;
    let RevokeConsent { revocation, signed_from } = body.into_inner();
    check_signature(&revocation.signature)?;
    check_signed_from(&signed_from)?;
    let reason = revocation.reason.as_deref().map(str::trim).filter(|r| !r.is_empty());
    if let Some(reason) = reason {
        common::json::printable("reason", reason, 1..=500, false)?;
    }
    let mut tx = pool.begin().await?;
    let current = detail(&mut tx, subject, id).await?.ok_or(ApiError::NotFound)?;
    match current.consent.state.as_str() {
        "revoked" => return Err(ApiError::Conflict(format!("consent {id} is already revoked"))),
        "expired" => return Err(ApiError::Conflict(format!("consent {id} has expired; nothing is left to revoke"))),
        _ => {}
    }
    let signature = RevocationSignature {
        signed_name: revocation.signature.typed_name.trim(),
        method: &revocation.signature.method,
        signed_from: &signed_from,
    };
    let by = format!("beneficiary:{subject}");
    revocations::revoke(&mut tx, id, &by, reason, Some(signature)).await.map_err(|e| match e {
        RevokeError::UnknownConsent(_) => ApiError::NotFound,
        RevokeError::AlreadyRevoked(id) => ApiError::Conflict(format!("consent {id} is already revoked")),
        RevokeError::Sql(e) => e.into(),
    })?;
    let revoked = detail(&mut tx, subject, id).await?.ok_or_else(|| ApiError::internal("a consent just revoked"))?;
    tx.commit().await?;
    tracing::info!(request_id = %call.0.request_id, consent = %id, "consent revoked");
    Ok(Json(revoked.consent))
}

/// How far back staff may date an event: it ends consents for decisions from now on, and a date
/// far in the past would misstate when they ended.
const MAX_EVENT_BACKDATE_DAYS: i64 = 30;

/// Staff record that an event happened for a subject (a caseworker): every consent
/// of theirs signed before it and waiting on it ends, for every later decision.
#[post("/internal/v1/subjects/<subject>/expiry-events", data = "<body>")]
async fn expiry_event(
    call: InternalCall,
    subject: Uuid,
    body: Body<NewExpiryEvent>,
    pool: &State<PgPool>,
) -> Result<(Status, Json<ExpiryEventRecorded>), ApiError> {
    let claims = &call.0;
    if claims.role != Role::Caseworker {
        return Err(ApiError::Forbidden);
    }
    let event = body.into_inner();
    if !EXPIRY_EVENTS.contains(&event.event.as_str()) {
        return Err(invalid(format!("event: one of {}", EXPIRY_EVENTS.join(", "))));
    }
    let now = chain::now();
    let occurred_at = event.occurred_at.unwrap_or(now);
    if occurred_at > now {
        return Err(invalid("occurred_at: not in the future"));
    }
    if occurred_at < now - time::Duration::days(MAX_EVENT_BACKDATE_DAYS) {
        return Err(invalid(format!("occurred_at: at most {MAX_EVENT_BACKDATE_DAYS} days ago")));
    }
    let mut tx = pool.begin().await?;
    let seq: i64 = sqlx::query_scalar(
        "INSERT INTO expiry_events (subject_id, event, occurred_at, recorded_by) VALUES ($1, $2, $3, $4) RETURNING seq",
    )
    .bind(subject)
    .bind(&event.event)
    .bind(occurred_at)
    .bind(format!("{}:{}", claims.role, claims.sub))
    .fetch_one(&mut *tx)
    .await?;
    let ended: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM consents c WHERE c.subject_id = $1 AND c.expiry_event = $2 AND c.signed_at <= $3 \
         AND (c.expires_at IS NULL OR c.expires_at > $3) \
         AND NOT EXISTS (SELECT 1 FROM revocations r WHERE r.consent_id = c.id AND r.revoked_at <= $3) \
         AND NOT EXISTS (SELECT 1 FROM expiry_events e WHERE e.subject_id = c.subject_id \
                         AND e.event = c.expiry_event AND e.occurred_at >= c.signed_at \
                         AND e.occurred_at <= $3 AND e.seq <> $4)",
    )
    .bind(subject)
    .bind(&event.event)
    .bind(occurred_at)
    .bind(seq)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    tracing::info!(request_id = %claims.request_id, ended, "consent expiry event recorded");
    Ok((Status::Created, Json(ExpiryEventRecorded { event: event.event, occurred_at, consents_ended: ended })))
}

pub fn routes() -> Vec<Route> {
    routes![options, form, list, read, read_any, sign, revoke, expiry_event]
}
