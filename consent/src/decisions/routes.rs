//! The decisions' routes: a question answered (and appended to the trail), and the decision log
//! for a compliance officer.

use rocket::serde::json::Json;
use rocket::{get, post, routes, Route, State};
use sqlx::PgPool;

use common::assertion::InternalCall;
use common::client::{DisclosureAnswer, DisclosureQuestion};
use common::compliance::{DecisionEntry, DecisionFilter, DecisionPage};
use common::json::Body;
use common::{ApiError, Role};

use super::queries;
use super::rules::{self, Answer};

#[post("/internal/v1/decisions", data = "<body>")]
async fn decide(
    call: InternalCall,
    body: Body<DisclosureQuestion>,
    pool: &State<PgPool>,
) -> Result<Json<DisclosureAnswer>, ApiError> {
    let question = body.into_inner();
    rules::validate(&question)?;
    let claims = &call.0;
    let asked_by = format!("{} for {}:{}", claims.iss, claims.role, claims.sub);
    let mut tx = pool.begin().await?;
    let consent = queries::standing_consent(&mut tx, &question, rules::class_of(&question.recipient)).await?;
    let (permitted, reason) = match &consent {
        Some(c) => (true, rules::permitted_reason(c.id)),
        None => (false, rules::REFUSED.to_owned()),
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
    queries::append(&mut tx, &question, &answer).await?;
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
    let rows = queries::log_page(pool.inner(), &q).await?;
    let head_seq = queries::head_seq(pool.inner()).await?;
    let (rows, next_after_seq) = common::db::keyset_page(rows, q.limit, |r| r.seq);
    let entries: Vec<DecisionEntry> = rows.into_iter().map(DecisionEntry::from).collect();
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

pub fn routes() -> Vec<Route> {
    routes![decide, log_page]
}
