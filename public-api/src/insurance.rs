//! Insurance verification. A beneficiary submits their member details (PHI, to phi-vault); the
//! request waits `pending` until it is decided, `verified` or `rejected`, with the date and the
//! staff member who decided. One request may be pending at a time.
//!
//! Who decides is an [`EligibilityProvider`]. An automated eligibility check (a clearinghouse's
//! 270/271 exchange, a state Medicaid portal) is out of reach here, so the one provider is
//! [`ManualReview`]: it never answers, and a caseworker on the beneficiary's care team decides
//! through the staff routes after reading the details (phi-vault checks the care team and logs
//! the read).

use std::sync::Arc;

use rocket::http::Status;
use rocket::serde::json::Json;
use rocket::{get, post, routes, Route, State};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use common::client::{NewRecord, PhiVaultClient};
use common::insurance::{
    InsuranceDecision, InsuranceDetail, InsuranceDetails, InsurancePage, InsuranceStatus, InsuranceView,
    DETAILS_CATEGORY,
};
use common::json::Body;
use common::ApiError;

use crate::applications::{content_of, discard, read_details, stored_error, Reviewer};
use crate::audit::{self, Outcome};
use crate::auth::{Beneficiary, Caseworker};
use crate::meta::RequestMeta;
use crate::notifications::{self, Notice};

/// Decides insurance verification requests, or leaves them to a caseworker.
#[rocket::async_trait]
pub trait EligibilityProvider: Send + Sync {
    /// Recorded with each request: who decides it.
    fn name(&self) -> &'static str;
    /// An answer for these member details, or `None` to leave the request pending for staff.
    async fn check(&self, details: &InsuranceDetails) -> Option<InsuranceStatus>;
}

/// The manual workflow: no automatic answer; a caseworker decides.
pub struct ManualReview;

#[rocket::async_trait]
impl EligibilityProvider for ManualReview {
    fn name(&self) -> &'static str {
        "manual"
    }

    async fn check(&self, _details: &InsuranceDetails) -> Option<InsuranceStatus> {
        None
    }
}

/// The provider public-api runs with.
pub type Provider = Arc<dyn EligibilityProvider>;

pub fn provider() -> Provider {
    Arc::new(ManualReview)
}

const COLUMNS: &str =
    "id, seq, beneficiary_id, status, provider, submitted_at, decided_at, decided_by, reason, details_record_id";

fn view(row: &PgRow) -> Result<InsuranceView, ApiError> {
    let status: String = row.try_get("status")?;
    Ok(InsuranceView {
        id: row.try_get("id")?,
        beneficiary_id: row.try_get("beneficiary_id")?,
        status: InsuranceStatus::parse(&status).ok_or_else(|| ApiError::internal("an unknown insurance status"))?,
        provider: row.try_get("provider")?,
        submitted_at: row.try_get("submitted_at")?,
        decided_at: row.try_get("decided_at")?,
        decided_by: row.try_get("decided_by")?,
        reason: row.try_get("reason")?,
    })
}

fn code(field: &str, value: &str, chars: std::ops::RangeInclusive<usize>) -> Result<(), ApiError> {
    let ok = chars.contains(&value.len()) && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    ok.then_some(()).ok_or_else(|| {
        ApiError::Unprocessable(format!("{field}: {} to {} letters, digits and dashes", chars.start(), chars.end()))
    })
}

fn check(details: &InsuranceDetails) -> Result<(), ApiError> {
    common::json::printable("payer", &details.payer, 2..=200, false)?;
    code("member_id", &details.member_id, 3..=40)?;
    if let Some(group) = &details.group_number {
        code("group_number", group, 1..=40)?;
    }
    Ok(())
}

/// Records a decision on a pending request, with its notification and audit row, inside `tx`.
/// `None` when it was no longer pending.
async fn decide(
    tx: &mut PgConnection,
    id: Uuid,
    status: InsuranceStatus,
    by: Option<Uuid>,
    reason: Option<&str>,
    meta: &RequestMeta,
) -> Result<Option<InsuranceView>, ApiError> {
    let row = sqlx::query(&format!(
        "UPDATE insurance_verifications SET status = $2, decided_at = now(), decided_by = $3, reason = $4 \
         WHERE id = $1 AND status = 'pending' RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(status.as_str())
    .bind(by)
    .bind(reason)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let decided = view(&row)?;
    notifications::add(&mut *tx, decided.beneficiary_id, &Notice::insurance(id)).await?;
    let mut event =
        meta.event(by, "insurance.decide", Some(("insurance_verification", id.to_string())), Outcome::Success);
    event.reason = Some(status.as_str().to_owned());
    audit::record(&mut *tx, &event).await?;
    Ok(Some(decided))
}

/// Submits my insurance for verification. The member details go to phi-vault.
#[utoipa::path(post, path = "/api/v1/beneficiaries/me/insurance/verify", tag = "beneficiaries", security(("bearer" = [])),
    request_body = InsuranceDetails,
    responses(
        (status = 201, description = "Submitted; pending until decided", body = InsuranceView),
        (status = 400, description = "Malformed JSON", body = common::ErrorBody),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not a beneficiary", body = common::ErrorBody),
        (status = 409, description = "A request of mine is already pending, or my records were erased", body = common::ErrorBody),
        (status = 422, description = "Invalid fields, each named", body = common::ErrorBody),
        (status = 503, description = "The PHI vault is unavailable; nothing was stored", body = common::ErrorBody),
    ))]
#[post("/beneficiaries/me/insurance/verify", data = "<body>")]
pub async fn submit(
    user: Beneficiary,
    body: Body<InsuranceDetails>,
    meta: RequestMeta,
    pool: &State<PgPool>,
    vault: &State<PhiVaultClient>,
    provider: &State<Provider>,
) -> Result<(Status, Json<InsuranceView>), ApiError> {
    let details = body.into_inner();
    check(&details)?;
    let me = user.user_id();
    let pending =
        "SELECT EXISTS (SELECT 1 FROM insurance_verifications WHERE beneficiary_id = $1 AND status = 'pending')";
    let already = || ApiError::Conflict("a verification of your insurance is already pending".into());
    if sqlx::query_scalar::<_, bool>(pending).bind(me).fetch_one(pool.inner()).await? {
        return Err(already());
    }
    let ctx = user.call(&meta, "self_service");
    let record = NewRecord {
        subject_id: me,
        category: DETAILS_CATEGORY.into(),
        content: content_of(&details)?,
        expires_at: None,
    };
    let created = vault.create_record(&ctx, &record).await.map_err(stored_error)?.record_id;
    let stored = async {
        let mut tx = pool.begin().await?;
        let row = sqlx::query(&format!(
            "INSERT INTO insurance_verifications (id, beneficiary_id, details_record_id, provider) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (beneficiary_id) WHERE status = 'pending' DO NOTHING \
             RETURNING {COLUMNS}"
        ))
        .bind(Uuid::new_v4())
        .bind(me)
        .bind(created)
        .bind(provider.name())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(already)?;
        let submitted = view(&row)?;
        let resource = Some(("insurance_verification", submitted.id.to_string()));
        audit::record(&mut tx, &meta.event(Some(me), "insurance.submit", resource, Outcome::Success)).await?;
        tx.commit().await?;
        Ok::<_, ApiError>(submitted)
    }
    .await;
    let submitted = match stored {
        Ok(submitted) => submitted,
        Err(e) => {
            discard(vault, &ctx, created).await;
            return Err(e);
        }
    };
    // An automated provider may answer at once; the manual one leaves it to staff.
    if let Some(status) = provider.check(&details).await {
        let mut tx = pool.begin().await?;
        if let Some(decided) = decide(&mut tx, submitted.id, status, None, None, &meta).await? {
            tx.commit().await?;
            return Ok((Status::Created, Json(decided)));
        }
    }
    Ok((Status::Created, Json(submitted)))
}

/// My latest insurance verification request.
#[utoipa::path(get, path = "/api/v1/beneficiaries/me/insurance", tag = "beneficiaries", security(("bearer" = [])),
    responses(
        (status = 200, description = "The latest request and where it stands", body = InsuranceView),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not a beneficiary", body = common::ErrorBody),
        (status = 404, description = "None submitted", body = common::ErrorBody),
    ))]
#[get("/beneficiaries/me/insurance")]
pub async fn mine(user: Beneficiary, pool: &State<PgPool>) -> Result<Json<InsuranceView>, ApiError> {
    let mut conn = pool.acquire().await?;
    latest(&mut conn, user.user_id()).await?.map(Json).ok_or(ApiError::NotFound)
}

/// A beneficiary's latest request, if any.
pub async fn latest(conn: &mut PgConnection, beneficiary: Uuid) -> Result<Option<InsuranceView>, ApiError> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM insurance_verifications WHERE beneficiary_id = $1 ORDER BY seq DESC LIMIT 1"
    ))
    .bind(beneficiary)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(view).transpose()
}

/// The verification queue, oldest first (no member details: those are PHI).
#[utoipa::path(get, path = "/api/v1/staff/insurance", tag = "staff", security(("bearer" = [])),
    params(("status" = Option<String>, Query, description = "pending (the default), verified or rejected"),
        ("after" = Option<i64>, Query, description = "`next_after` of the previous page"),
        ("limit" = Option<i64>, Query, description = "1 to 100, default 20")),
    responses(
        (status = 200, description = "A page of requests", body = InsurancePage),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Neither caseworker nor admin", body = common::ErrorBody),
        (status = 422, description = "A filter malformed, named", body = common::ErrorBody),
    ))]
#[get("/staff/insurance?<status>&<after>&<limit>")]
pub async fn queue(
    _staff: Reviewer,
    status: Option<&str>,
    after: Option<&str>,
    limit: Option<&str>,
    pool: &State<PgPool>,
) -> Result<Json<InsurancePage>, ApiError> {
    let status = match status {
        None => InsuranceStatus::Pending,
        Some(s) => InsuranceStatus::parse(s)
            .ok_or_else(|| ApiError::Unprocessable("status: pending, verified or rejected".into()))?,
    };
    let page = common::json::Keyset::parse(after, limit, 20)?;
    let (after, limit) = (page.after_or_start(), page.limit);
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM insurance_verifications WHERE status = $1 AND seq > $2 ORDER BY seq LIMIT $3"
    ))
    .bind(status.as_str())
    .bind(after)
    .bind(limit + 1)
    .fetch_all(pool.inner())
    .await?;
    let (rows, next_after) = common::db::page_after(rows, limit, "seq")?;
    Ok(Json(InsurancePage { verifications: rows.iter().map(view).collect::<Result<_, _>>()?, next_after }))
}

async fn by_id(pool: &PgPool, id: Uuid) -> Result<PgRow, ApiError> {
    sqlx::query(&format!("SELECT {COLUMNS} FROM insurance_verifications WHERE id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await?
        .ok_or(ApiError::NotFound)
}

/// A request with its member details, for a caseworker on the beneficiary's care team.
#[utoipa::path(get, path = "/api/v1/caseworker/insurance/{id}", tag = "staff", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "The request and its member details", body = InsuranceDetail),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not a caseworker", body = common::ErrorBody),
        (status = 404, description = "No such request, its beneficiary is not on your care team, or its details were erased", body = common::ErrorBody),
        (status = 503, description = "The PHI vault is unavailable", body = common::ErrorBody),
    ))]
#[get("/caseworker/insurance/<id>")]
pub async fn read_for_caseworker(
    caseworker: Caseworker,
    id: Uuid,
    meta: RequestMeta,
    pool: &State<PgPool>,
    vault: &State<PhiVaultClient>,
) -> Result<Json<InsuranceDetail>, ApiError> {
    let row = by_id(pool, id).await?;
    // With the details erased there is no vault read to check the care team: nothing to show.
    let details = read_details(vault, &caseworker.call(&meta, "treatment"), row.try_get("details_record_id")?)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(InsuranceDetail { verification: view(&row)?, details: Some(details) }))
}

/// Decides a pending request: `verified`, or `rejected` with a reason the beneficiary sees. Only
/// a caseworker who may read the details (on the beneficiary's care team) decides: the details are
/// read through phi-vault first, which checks and logs it.
#[utoipa::path(post, path = "/api/v1/staff/insurance/{id}/decision", tag = "staff", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = InsuranceDecision,
    responses(
        (status = 200, description = "Decided", body = InsuranceView),
        (status = 400, description = "Malformed JSON", body = common::ErrorBody),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not a caseworker, or your own request", body = common::ErrorBody),
        (status = 404, description = "No such request, its beneficiary is not on your care team, or its details were erased", body = common::ErrorBody),
        (status = 409, description = "Already decided", body = common::ErrorBody),
        (status = 422, description = "`pending` is no decision, or a rejection without a reason", body = common::ErrorBody),
        (status = 503, description = "The PHI vault is unavailable; nothing was decided", body = common::ErrorBody),
    ))]
#[post("/staff/insurance/<id>/decision", data = "<body>")]
pub async fn decision(
    caseworker: Caseworker,
    id: Uuid,
    body: Body<InsuranceDecision>,
    meta: RequestMeta,
    pool: &State<PgPool>,
    vault: &State<PhiVaultClient>,
) -> Result<Json<InsuranceView>, ApiError> {
    let decision = body.into_inner();
    let reason = decision.reason.as_deref().map(str::trim);
    match (decision.status, reason) {
        (InsuranceStatus::Pending, _) => {
            return Err(ApiError::Unprocessable("status: verified or rejected".into()));
        }
        (InsuranceStatus::Rejected, None) => {
            return Err(ApiError::Unprocessable("reason: required for a rejection".into()));
        }
        (_, Some(reason)) => common::json::printable("reason", reason, 3..=1000, true)?,
        (InsuranceStatus::Verified, None) => {}
    }
    let row = by_id(pool, id).await?;
    if view(&row)?.beneficiary_id == caseworker.user_id() {
        return Err(ApiError::Forbidden);
    }
    let record: Option<Uuid> = row.try_get("details_record_id")?;
    // The read is the care-team check: phi-vault refuses (404) a caseworker not on the team.
    read_details::<InsuranceDetails>(vault, &caseworker.call(&meta, "treatment"), record)
        .await?
        .ok_or(ApiError::NotFound)?;
    let mut tx = pool.begin().await?;
    let decided = decide(&mut tx, id, decision.status, Some(caseworker.user_id()), reason, &meta)
        .await?
        .ok_or_else(|| ApiError::Conflict("already decided".into()))?;
    tx.commit().await?;
    Ok(Json(decided))
}

pub fn routes() -> Vec<Route> {
    routes![submit, mine, queue, read_for_caseworker, decision]
}
