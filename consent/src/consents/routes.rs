//! The consents' routes: a beneficiary lists, reads, signs and revokes their own; a compliance
//! officer reads anyone's for a review; a caseworker records the events that end consents.

use rocket::http::Status;
use rocket::serde::json::Json;
use rocket::{get, post, routes, FromForm, Route, State};
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use common::assertion::InternalCall;
use common::chain;
use common::consents::{
    ConsentDetail, ConsentPage, ConsentView, ExpiryEventRecorded, NewExpiryEvent, RevokeConsent, SignConsent,
    SubjectConsent,
};
use common::json::Body;
use common::{ApiError, Role};

use super::queries;
use super::records::{ConsentError, RevocationSignature, RevokeError};
use super::rules::{self, invalid, Choice};

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

/// One of the subject's consents with its form text; `None` if it is not theirs or not there.
async fn detail(conn: &mut PgConnection, subject: Uuid, id: Uuid) -> Result<Option<ConsentDetail>, sqlx::Error> {
    Ok(queries::one(conn, Some(subject), id).await?.map(|row| rules::detail_of(row).1))
}

/// A consent list's query string, as it arrives (`common::consents::parse_query` checks it).
#[derive(Debug, FromForm)]
struct ConsentFilter<'r> {
    state: Option<&'r str>,
    after: Option<&'r str>,
    limit: Option<&'r str>,
}

#[get("/internal/v1/subjects/<subject>/consents?<filter..>")]
async fn list(
    call: InternalCall,
    subject: Uuid,
    filter: ConsentFilter<'_>,
    pool: &State<PgPool>,
) -> Result<Json<ConsentPage>, ApiError> {
    reader(&call, Some(subject), "list")?;
    let query = common::consents::parse_query(filter.state, filter.after, filter.limit)?;
    let limit = query.limit.unwrap_or(50);
    let rows =
        queries::page(pool.inner(), subject, query.after.unwrap_or(0), query.state.as_deref(), limit + 1).await?;
    let (rows, next_after) = common::db::keyset_page(rows, limit, |r| r.seq);
    let consents = rows.into_iter().map(rules::view_of).collect();
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
    let row = queries::one(&mut conn, None, id).await?.ok_or(ApiError::NotFound)?;
    let (subject_id, detail) = rules::detail_of(row);
    Ok(Json(SubjectConsent { subject_id, detail }))
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
    if queries::claim_key(tx, subject, key, request_sha256).await? {
        return Ok(None);
    }
    let earlier = queries::claimed(tx, subject, key).await?;
    rules::repeat_of(earlier, request_sha256).map(Some)
}

fn consent_refused(e: ConsentError) -> ApiError {
    match e {
        ConsentError::UnknownForm(_) => invalid(rules::NO_SUCH_FORM),
        ConsentError::FormMismatch(version) => ApiError::Conflict(format!(
            "the form text signed is not form {version} as on file; read the form again and sign what it says"
        )),
        ConsentError::Invalid(message) => invalid(message),
        ConsentError::Sql(e) => e.into(),
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
            let request_sha256 = rules::request_sha256(&key, &request)?;
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
    let shown = rules::check_request(&request, &signed_from, OffsetDateTime::now_utc())?;
    let kind = crate::forms::queries::recipient_kind(&mut tx, &request.form_version).await?;
    // A form recorded without a recipient kind (not from a file) is not offered.
    let tpo_form = match kind.flatten() {
        Some(kind) => kind == crate::forms::RecipientKind::Tpo,
        None => return Err(invalid(rules::NO_SUCH_FORM)),
    };
    rules::check_purpose(&request.purpose, tpo_form)?;
    let recipient = match rules::choose_recipient(&request, tpo_form)? {
        Choice::Resolved(recipient) => recipient,
        Choice::Directory(id) => {
            let entry =
                crate::directory::queries::in_use(&mut tx, id).await?.ok_or_else(|| invalid(rules::NO_SUCH_ENTRY))?;
            rules::from_directory(id, entry)
        }
    };
    let new = rules::new_consent(subject, &request, &recipient, &signed_from, chain::now());
    let (id, _) = queries::record(&mut tx, &new, &shown).await.map_err(consent_refused)?;
    if let Some(key) = &key {
        queries::link_key(&mut tx, subject, key, id).await?;
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
    rules::check_signature(&revocation.signature)?;
    rules::check_signed_from(&signed_from)?;
    let reason = rules::revocation_reason(revocation.reason.as_deref())?;
    let mut tx = pool.begin().await?;
    let current = queries::one(&mut tx, Some(subject), id).await?.ok_or(ApiError::NotFound)?;
    rules::still_in_force(id, current.state)?;
    let signature = RevocationSignature {
        signed_name: revocation.signature.typed_name.trim(),
        method: &revocation.signature.method,
        signed_from: &signed_from,
    };
    let by = format!("beneficiary:{subject}");
    queries::revoke(&mut tx, id, &by, reason, Some(signature)).await.map_err(|e| match e {
        RevokeError::UnknownConsent(_) => ApiError::NotFound,
        RevokeError::AlreadyRevoked(id) => ApiError::Conflict(format!("consent {id} is already revoked")),
        RevokeError::Sql(e) => e.into(),
    })?;
    let revoked = detail(&mut tx, subject, id).await?.ok_or_else(|| ApiError::internal("a consent just revoked"))?;
    tx.commit().await?;
    tracing::info!(request_id = %call.0.request_id, consent = %id, "consent revoked");
    Ok(Json(revoked.consent))
}

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
    let occurred_at = rules::event_time(&event, chain::now())?;
    let recorded_by = format!("{}:{}", claims.role, claims.sub);
    let mut tx = pool.begin().await?;
    let seq = queries::record_event(&mut tx, subject, &event.event, occurred_at, &recorded_by).await?;
    let ended = queries::ended_by(&mut tx, subject, &event.event, occurred_at, seq).await?;
    tx.commit().await?;
    tracing::info!(request_id = %claims.request_id, ended, "consent expiry event recorded");
    Ok((Status::Created, Json(ExpiryEventRecorded { event: event.event, occurred_at, consents_ended: ended })))
}

pub fn routes() -> Vec<Route> {
    routes![list, read, read_any, sign, revoke, expiry_event]
}
