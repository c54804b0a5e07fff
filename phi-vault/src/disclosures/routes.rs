//! The accounting's route, and the route of a disclosure in a medical emergency.

use rocket::serde::json::Json;
use rocket::{get, post, routes, Route, State};
use sqlx::PgPool;
use uuid::Uuid;

use common::assertion::InternalCall;
use common::client::{AccountingPage, AccountingQuery, EmergencyDisclosure, Record};
use common::json::Body;
use common::ApiError;

use super::accounting::read as read_accounting;
use super::rules;
use crate::access_log::{access, log_alone};
use crate::records::{serve_read, Vault};

/// A subject's accounting of disclosures (§2.24): for the subject themselves, or a compliance
/// officer. Metadata of disclosures only, never contents; each reading is logged.
#[get("/internal/v1/subjects/<subject>/disclosures?<from>&<to>&<after>&<limit>")]
async fn accounting(
    call: InternalCall,
    subject: Uuid,
    from: Option<&str>,
    to: Option<&str>,
    after: Option<&str>,
    limit: Option<&str>,
    pool: &State<PgPool>,
) -> Result<Json<AccountingPage>, ApiError> {
    let claims = &call.0;
    let query = AccountingQuery::parse(from, to, after, limit)?;
    let decision = rules::reader(claims, subject);
    let entry = access(claims, Some(subject), None, rules::READ, &decision);
    if !decision.permitted {
        log_alone(pool, &entry).await?;
        return Err(ApiError::Forbidden);
    }
    read_accounting(pool, subject, &query, &entry).await.map(Json)
}

/// A read disclosed to medical personnel outside the program in a medical emergency (§2.51):
/// a caseworker, with a written reason (in the assertion), names the recipient and the nature of
/// the emergency. Flagged for review, entered in the accounting like any disclosure, without a
/// consent, and the records go with the redisclosure notice.
#[post("/internal/v1/records/<id>/emergency-disclosure", data = "<body>")]
async fn emergency_disclosure(
    call: InternalCall,
    id: Uuid,
    body: Body<EmergencyDisclosure>,
    pool: &State<PgPool>,
    vault: &State<Vault>,
) -> Result<Json<Record>, ApiError> {
    let emergency = body.into_inner();
    emergency.validate()?;
    serve_read(&call.0, id, pool, vault, Some(emergency)).await.map(Json)
}

pub fn routes() -> Vec<Route> {
    routes![accounting, emergency_disclosure]
}
