//! Applications for help. A beneficiary submits one (kind, amount, details), reads and lists
//! theirs, and changes one while it is under review or waiting on them. Staff list the queue; an
//! admin assigns a caseworker (who joins the beneficiary's care team in phi-vault, so phi-vault
//! lets them read the details); the assigned caseworker, or an admin, moves it through the status
//! machine (`common::applications::ApplicationStatus`) with a note the beneficiary sees.
//!
//! The details are PHI: they go to phi-vault as a record and only its id stays here. No
//! database transaction spans a call to phi-vault: a record is made first, then linked in one
//! transaction that checks the application did not change meanwhile (its `version`); a record
//! left unlinked by a lost race is deleted again. Every change writes its audit row, its status
//! event and its notifications in that same transaction.

use rocket::http::Status;
use rocket::request::{FromRequest, Outcome as GuardOutcome};
use rocket::serde::json::Json;
use rocket::{get, patch, post, put, routes, Request, Route, State};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};
use time::OffsetDateTime;
use uuid::Uuid;

use common::applications::{
    ActionItem, ApplicationDetail, ApplicationDetails, ApplicationPage, ApplicationStatus, ApplicationUpdate,
    ApplicationView, Assignment, Dashboard, NewApplication, StatusChange, StatusCounts, StatusEvent, DETAILS_CATEGORY,
    KINDS, MAX_AMOUNT_CENTS,
};
use common::assertion::CallContext;
use common::chain;
use common::client::{NewRecord, PhiVaultClient};
use common::json::{Body, IdempotencyKey};
use common::ApiError;

use crate::audit::{self, Outcome};
use crate::auth::{Admin, AuthUser, Beneficiary, Caseworker};
use crate::meta::RequestMeta;
use crate::notifications::{self, Notice};

const COLUMNS: &str =
    "id, seq, beneficiary_id, kind, amount_cents, status, caseworker_id, version, created_at, updated_at";

fn view(row: &PgRow) -> Result<ApplicationView, ApiError> {
    let status: String = row.try_get("status")?;
    Ok(ApplicationView {
        id: row.try_get("id")?,
        beneficiary_id: row.try_get("beneficiary_id")?,
        kind: row.try_get("kind")?,
        amount_cents: row.try_get("amount_cents")?,
        status: ApplicationStatus::parse(&status).ok_or_else(|| ApiError::internal("an unknown application status"))?,
        caseworker_id: row.try_get("caseworker_id")?,
        version: row.try_get("version")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn check_amount(amount_cents: i64) -> Result<(), ApiError> {
    if (1..=MAX_AMOUNT_CENTS).contains(&amount_cents) {
        Ok(())
    } else {
        Err(ApiError::Unprocessable(format!("amount_cents: an integer from 1 to {MAX_AMOUNT_CENTS}")))
    }
}

fn check_details(details: &ApplicationDetails) -> Result<(), ApiError> {
    common::json::printable("details.description", &details.description, 10..=5000, true)?;
    if let Some(needed_by) = &details.needed_by {
        let date = common::json::date("details.needed_by", needed_by)?;
        if date < OffsetDateTime::now_utc().date() {
            return Err(ApiError::Unprocessable("details.needed_by: today or later".into()));
        }
    }
    Ok(())
}

pub(crate) fn content_of(details: &impl serde::Serialize) -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(details).map_err(ApiError::internal)
}

/// The application's status history, oldest first.
async fn history(pool: &PgPool, application: Uuid) -> Result<Vec<StatusEvent>, ApiError> {
    let rows = sqlx::query(
        "SELECT from_status, to_status, actor_role, amount_cents, note, created_at FROM application_events \
         WHERE application_id = $1 ORDER BY seq",
    )
    .bind(application)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            let status = |column: &str| -> Result<Option<ApplicationStatus>, ApiError> {
                let text: Option<String> = row.try_get(column)?;
                text.map(|t| ApplicationStatus::parse(&t).ok_or_else(|| ApiError::internal("an unknown status")))
                    .transpose()
            };
            Ok(StatusEvent {
                from_status: status("from_status")?,
                to_status: status("to_status")?.ok_or_else(|| ApiError::internal("an event without a status"))?,
                by_role: row.try_get("actor_role")?,
                amount_cents: row.try_get("amount_cents")?,
                note: row.try_get("note")?,
                at: row.try_get("created_at")?,
            })
        })
        .collect()
}

async fn record_event(
    tx: &mut PgConnection,
    application: Uuid,
    from: Option<ApplicationStatus>,
    to: ApplicationStatus,
    actor: (Uuid, &str),
    amount_cents: i64,
    note: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO application_events \
         (application_id, from_status, to_status, actor_id, actor_role, amount_cents, note) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(application)
    .bind(from.map(ApplicationStatus::as_str))
    .bind(to.as_str())
    .bind(actor.0)
    .bind(actor.1)
    .bind(amount_cents)
    .bind(note)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Reads a record through phi-vault under `ctx` as a `T`; `None` when the record was erased
/// (the public row no longer points at one). A record of another shape is a 500 whose logged
/// cause is fixed text: serde's message would quote the record.
pub(crate) async fn read_details<T: serde::de::DeserializeOwned>(
    vault: &PhiVaultClient,
    ctx: &CallContext,
    record: Option<Uuid>,
) -> Result<Option<T>, ApiError> {
    match record {
        None => Ok(None),
        Some(id) => {
            let record = vault.read_record(ctx, id).await.map_err(|e| e.into_api_error())?;
            serde_json::from_value(record.content)
                .map(Some)
                .map_err(|_| ApiError::internal("a stored record does not have the shape its category has"))
        }
    }
}

/// How a refused record write answers. phi-vault answers 404 for a subject whose records were
/// erased (their key is destroyed): nothing new may be stored for them.
pub(crate) fn stored_error(e: common::client::ClientError) -> ApiError {
    match e {
        common::client::ClientError::Status { status: 404, .. } => {
            ApiError::Conflict("this account's records were erased; nothing new can be stored for it".into())
        }
        other => other.into_api_error(),
    }
}

/// Deletes a record this request made and could not link. Best effort: a failure is logged
/// (without the id's contents, which are none) and the record stays the subject's, erased with
/// the rest of their records.
pub(crate) async fn discard(vault: &PhiVaultClient, ctx: &CallContext, record: Uuid) {
    if let Err(e) = vault.delete_record(ctx, record).await {
        tracing::warn!(request_id = %ctx.request_id(), error = %e, "an unlinked application record was not deleted");
    }
}

async fn own_application(pool: &PgPool, beneficiary: Uuid, id: Uuid) -> Result<PgRow, ApiError> {
    sqlx::query(&format!("SELECT {COLUMNS}, details_record_id FROM applications WHERE id = $1 AND beneficiary_id = $2"))
        .bind(id)
        .bind(beneficiary)
        .fetch_optional(pool)
        .await?
        .ok_or(ApiError::NotFound)
}

/// The application an idempotency key made, if it made one: 200 with it for the same request,
/// 422 for a different one.
async fn made_under_key(
    pool: &PgPool,
    beneficiary: Uuid,
    key: &str,
    request_sha256: &[u8],
) -> Result<Option<ApplicationView>, ApiError> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS}, request_sha256 FROM applications WHERE beneficiary_id = $1 AND idempotency_key = $2"
    ))
    .bind(beneficiary)
    .bind(key)
    .fetch_optional(pool)
    .await?;
    match row {
        None => Ok(None),
        Some(row) => {
            let earlier: Option<Vec<u8>> = row.try_get("request_sha256")?;
            if earlier.as_deref() == Some(request_sha256) {
                Ok(Some(view(&row)?))
            } else {
                Err(ApiError::Unprocessable(
                    "Idempotency-Key: already used for a different application; use a new key".into(),
                ))
            }
        }
    }
}

/// Submits an application. The details go to phi-vault; the application starts `reviewing`.
#[utoipa::path(post, path = "/api/v1/applications", tag = "applications", security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header,
        description = "1 to 255 visible ASCII characters, new for each application; a repeat answers the first")),
    request_body = NewApplication,
    responses(
        (status = 200, description = "A repeat under the same Idempotency-Key: the application it made", body = ApplicationView),
        (status = 201, description = "Submitted", body = ApplicationView),
        (status = 400, description = "Malformed JSON", body = common::ErrorBody),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not a beneficiary", body = common::ErrorBody),
        (status = 409, description = "This account's records were erased; nothing new can be stored", body = common::ErrorBody),
        (status = 413, description = "Too large", body = common::ErrorBody),
        (status = 422, description = "Invalid fields (each named), or an Idempotency-Key malformed or used for a different application", body = common::ErrorBody),
        (status = 503, description = "The PHI vault is unavailable; nothing was stored", body = common::ErrorBody),
    ))]
#[post("/applications", data = "<body>")]
pub async fn submit(
    user: Beneficiary,
    key: IdempotencyKey,
    body: Body<NewApplication>,
    meta: RequestMeta,
    pool: &State<PgPool>,
    vault: &State<PhiVaultClient>,
) -> Result<(Status, Json<ApplicationView>), ApiError> {
    let new = body.into_inner();
    let me = user.user_id();
    // A repeat answers what the first request made, before any check whose answer may have
    // changed since (a `needed_by` date now past). The hash is kept only with a key.
    let request_sha256 = match &key.0 {
        Some(_) => Some(chain::sha256(&serde_json::to_vec(&new).map_err(ApiError::internal)?)),
        None => None,
    };
    if let (Some(key), Some(hash)) = (&key.0, &request_sha256) {
        if let Some(earlier) = made_under_key(pool, me, key, hash).await? {
            let resource = Some(("application", earlier.id.to_string()));
            let event = meta.event(Some(me), "application.submit.repeated", resource, Outcome::Success);
            audit::record_alone(pool, &event).await?;
            return Ok((Status::Ok, Json(earlier)));
        }
    }
    if !KINDS.contains(&new.kind.as_str()) {
        return Err(ApiError::Unprocessable(format!("kind: one of {}", KINDS.join(", "))));
    }
    check_amount(new.amount_cents)?;
    check_details(&new.details)?;
    let ctx = user.call(&meta, "self_service");
    let record = NewRecord {
        subject_id: me,
        category: DETAILS_CATEGORY.into(),
        content: content_of(&new.details)?,
        expires_at: None,
    };
    let created = vault.create_record(&ctx, &record).await.map_err(stored_error)?.record_id;
    let linked = async {
        let mut tx = pool.begin().await?;
        let row = sqlx::query(&format!(
            "INSERT INTO applications (id, beneficiary_id, kind, amount_cents, details_record_id, status, \
             submitted_at, idempotency_key, request_sha256) VALUES ($1, $2, $3, $4, $5, 'reviewing', now(), $6, $7) \
             ON CONFLICT (beneficiary_id, idempotency_key) DO NOTHING RETURNING {COLUMNS}"
        ))
        .bind(Uuid::new_v4())
        .bind(me)
        .bind(&new.kind)
        .bind(new.amount_cents)
        .bind(created)
        .bind(key.0.as_deref())
        .bind(request_sha256.as_ref().map(|h| &h[..]))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Ok::<_, ApiError>(None) };
        let application = view(&row)?;
        let (reviewing, by) = (ApplicationStatus::Reviewing, (me, "beneficiary"));
        record_event(&mut tx, application.id, None, reviewing, by, application.amount_cents, None).await?;
        let resource = Some(("application", application.id.to_string()));
        audit::record(&mut tx, &meta.event(Some(me), "application.submit", resource, Outcome::Success)).await?;
        tx.commit().await?;
        Ok(Some(application))
    }
    .await;
    match linked {
        Ok(Some(application)) => Ok((Status::Created, Json(application))),
        Ok(None) => {
            // A concurrent twin under the same key won: answer what it made.
            discard(vault, &ctx, created).await;
            let (key, hash) = (key.0.as_deref().unwrap_or_default(), request_sha256.unwrap_or_default());
            let earlier = made_under_key(pool, me, key, &hash).await?;
            earlier
                .map(|a| (Status::Ok, Json(a)))
                .ok_or_else(|| ApiError::internal("an idempotency key's twin vanished"))
        }
        Err(e) => {
            discard(vault, &ctx, created).await;
            Err(e)
        }
    }
}

/// Filters for a page of applications.
struct PageQuery {
    status: Option<ApplicationStatus>,
    after: i64,
    limit: i64,
}

impl PageQuery {
    fn parse(status: Option<&str>, after: Option<&str>, limit: Option<&str>) -> Result<Self, ApiError> {
        let status = status
            .map(|s| {
                ApplicationStatus::parse(s).ok_or_else(|| {
                    ApiError::Unprocessable(format!(
                        "status: one of {}",
                        ApplicationStatus::names(&ApplicationStatus::ALL)
                    ))
                })
            })
            .transpose()?;
        let page = common::json::Keyset::parse(after, limit, 20)?;
        Ok(PageQuery { status, after: page.after_or_start(), limit: page.limit })
    }
}

/// My applications, oldest first.
#[utoipa::path(get, path = "/api/v1/applications", tag = "applications", security(("bearer" = [])),
    params(("status" = Option<String>, Query, description = "reviewing, action_needed, approved, rejected or funded"),
        ("after" = Option<i64>, Query, description = "`next_after` of the previous page"),
        ("limit" = Option<i64>, Query, description = "1 to 100, default 20")),
    responses(
        (status = 200, description = "A page of my applications", body = ApplicationPage),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not a beneficiary", body = common::ErrorBody),
        (status = 422, description = "A filter malformed, named", body = common::ErrorBody),
    ))]
#[get("/applications?<status>&<after>&<limit>")]
pub async fn list_mine(
    user: Beneficiary,
    status: Option<&str>,
    after: Option<&str>,
    limit: Option<&str>,
    pool: &State<PgPool>,
) -> Result<Json<ApplicationPage>, ApiError> {
    let query = PageQuery::parse(status, after, limit)?;
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM applications WHERE beneficiary_id = $1 AND seq > $2 \
         AND ($3::text IS NULL OR status = $3) ORDER BY seq LIMIT $4"
    ))
    .bind(user.user_id())
    .bind(query.after)
    .bind(query.status.map(ApplicationStatus::as_str))
    .bind(query.limit + 1)
    .fetch_all(pool.inner())
    .await?;
    page(rows, query.limit).map(Json)
}

fn page(rows: Vec<PgRow>, limit: i64) -> Result<ApplicationPage, ApiError> {
    let (rows, next_after) = common::db::page_after(rows, limit, "seq")?;
    Ok(ApplicationPage { applications: rows.iter().map(view).collect::<Result<_, _>>()?, next_after })
}

/// One of my applications, with its details and its history.
#[utoipa::path(get, path = "/api/v1/applications/{id}", tag = "applications", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "The application", body = ApplicationDetail),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not a beneficiary", body = common::ErrorBody),
        (status = 404, description = "No such application of mine", body = common::ErrorBody),
        (status = 503, description = "The PHI vault is unavailable", body = common::ErrorBody),
    ))]
#[get("/applications/<id>")]
pub async fn read_mine(
    user: Beneficiary,
    id: Uuid,
    meta: RequestMeta,
    pool: &State<PgPool>,
    vault: &State<PhiVaultClient>,
) -> Result<Json<ApplicationDetail>, ApiError> {
    let row = own_application(pool, user.user_id(), id).await?;
    let details = read_details(vault, &user.call(&meta, "self_service"), row.try_get("details_record_id")?).await?;
    Ok(Json(ApplicationDetail { application: view(&row)?, details, history: history(pool, id).await? }))
}

/// Changes my application while it is `reviewing` or `action_needed`; one waiting on me goes
/// back to `reviewing`.
#[utoipa::path(patch, path = "/api/v1/applications/{id}", tag = "applications", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = ApplicationUpdate,
    responses(
        (status = 200, description = "The application as changed", body = ApplicationView),
        (status = 400, description = "Malformed JSON", body = common::ErrorBody),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not a beneficiary", body = common::ErrorBody),
        (status = 404, description = "No such application of mine", body = common::ErrorBody),
        (status = 409, description = "Not editable in its status (the message names the statuses that are), changed meanwhile, or my records were erased", body = common::ErrorBody),
        (status = 422, description = "Invalid fields, named, or nothing to change", body = common::ErrorBody),
        (status = 503, description = "The PHI vault is unavailable; nothing changed", body = common::ErrorBody),
    ))]
#[patch("/applications/<id>", data = "<body>")]
pub async fn update_mine(
    user: Beneficiary,
    id: Uuid,
    body: Body<ApplicationUpdate>,
    meta: RequestMeta,
    pool: &State<PgPool>,
    vault: &State<PhiVaultClient>,
) -> Result<Json<ApplicationView>, ApiError> {
    let update = body.into_inner();
    if update.amount_cents.is_none() && update.details.is_none() {
        return Err(ApiError::Unprocessable("give amount_cents, details or both".into()));
    }
    if let Some(amount) = update.amount_cents {
        check_amount(amount)?;
    }
    if let Some(details) = &update.details {
        check_details(details)?;
    }
    let me = user.user_id();
    let row = own_application(pool, me, id).await?;
    let current = view(&row)?;
    if !current.status.editable() {
        return Err(not_editable(current.status));
    }
    let old_record: Option<Uuid> = row.try_get("details_record_id")?;
    let ctx = user.call(&meta, "self_service");
    let new_record = match &update.details {
        Some(details) => {
            let record = NewRecord {
                subject_id: me,
                category: DETAILS_CATEGORY.into(),
                content: content_of(details)?,
                expires_at: None,
            };
            Some(vault.create_record(&ctx, &record).await.map_err(stored_error)?.record_id)
        }
        None => None,
    };
    let changed = async {
        let mut tx = pool.begin().await?;
        let after = current.status.after_update();
        let row = sqlx::query(&format!(
            "UPDATE applications SET amount_cents = COALESCE($3, amount_cents), \
             details_record_id = COALESCE($4, details_record_id), status = $5, version = version + 1, \
             updated_at = now() WHERE id = $1 AND version = $2 AND status IN ('reviewing', 'action_needed') \
             RETURNING {COLUMNS}"
        ))
        .bind(id)
        .bind(current.version)
        .bind(update.amount_cents)
        .bind(new_record)
        .bind(after.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| ApiError::Conflict("the application changed meanwhile; read it and try again".into()))?;
        let changed = view(&row)?;
        // Every edit is an event, a status change or not, so staff see what changed.
        let by = (me, "beneficiary");
        record_event(&mut tx, id, Some(current.status), after, by, changed.amount_cents, None).await?;
        if let Some(caseworker) = changed.caseworker_id {
            notifications::add(&mut tx, caseworker, &Notice::application("application.updated", id)).await?;
        }
        let resource = Some(("application", id.to_string()));
        audit::record(&mut tx, &meta.event(Some(me), "application.update", resource, Outcome::Success)).await?;
        tx.commit().await?;
        Ok::<_, ApiError>(changed)
    }
    .await;
    match changed {
        Ok(changed) => {
            // The details replaced are deleted; what was reviewed before lives on in nothing
            // the public database points at.
            if let (Some(_), Some(old)) = (new_record, old_record) {
                discard(vault, &ctx, old).await;
            }
            Ok(Json(changed))
        }
        Err(e) => {
            if let Some(record) = new_record {
                discard(vault, &ctx, record).await;
            }
            Err(e)
        }
    }
}

/// My dashboard: application counts and the open ones, days sober, insurance, unread
/// notifications and what I should do next, read in one consistent snapshot.
#[utoipa::path(get, path = "/api/v1/beneficiaries/me/dashboard", tag = "beneficiaries", security(("bearer" = [])),
    responses(
        (status = 200, description = "The dashboard", body = Dashboard),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not a beneficiary", body = common::ErrorBody),
    ))]
#[get("/beneficiaries/me/dashboard")]
pub async fn dashboard(user: Beneficiary, pool: &State<PgPool>) -> Result<Json<Dashboard>, ApiError> {
    let me = user.user_id();
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
    let mut counts = StatusCounts::default();
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, count(*) FROM applications WHERE beneficiary_id = $1 GROUP BY status")
            .bind(me)
            .fetch_all(&mut *tx)
            .await?;
    for (status, n) in rows {
        let slot = match ApplicationStatus::parse(&status) {
            Some(ApplicationStatus::Reviewing) => &mut counts.reviewing,
            Some(ApplicationStatus::ActionNeeded) => &mut counts.action_needed,
            Some(ApplicationStatus::Approved) => &mut counts.approved,
            Some(ApplicationStatus::Rejected) => &mut counts.rejected,
            Some(ApplicationStatus::Funded) => &mut counts.funded,
            None => return Err(ApiError::internal("an unknown application status")),
        };
        *slot = n;
    }
    let open = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM applications WHERE beneficiary_id = $1 \
         AND status IN ('reviewing', 'action_needed', 'approved') ORDER BY seq LIMIT 20"
    ))
    .bind(me)
    .fetch_all(&mut *tx)
    .await?
    .iter()
    .map(view)
    .collect::<Result<Vec<_>, _>>()?;
    let (days_sober, no_profile): (Option<i32>, bool) = sqlx::query_as(
        "SELECT (now() AT TIME ZONE 'UTC')::date - sobriety_date, identity_record_id IS NULL FROM users WHERE id = $1",
    )
    .bind(me)
    .fetch_one(&mut *tx)
    .await?;
    let mut action_items = Vec::new();
    if no_profile {
        action_items.push(ActionItem { kind: "complete_profile".into(), resource_id: None, note: None });
    }
    let waiting: Vec<(Uuid, Option<String>)> = sqlx::query_as(
        "SELECT DISTINCT ON (a.seq) a.id, e.note FROM applications a \
         JOIN application_events e ON e.application_id = a.id AND e.to_status = 'action_needed' \
         WHERE a.beneficiary_id = $1 AND a.status = 'action_needed' ORDER BY a.seq, e.seq DESC",
    )
    .bind(me)
    .fetch_all(&mut *tx)
    .await?;
    action_items.extend(waiting.into_iter().map(|(id, note)| ActionItem {
        kind: "update_application".into(),
        resource_id: Some(id),
        note,
    }));
    let insurance = crate::insurance::latest(&mut tx, me).await?;
    if let Some(rejected) = insurance.as_ref().filter(|i| i.status == common::insurance::InsuranceStatus::Rejected) {
        action_items.push(ActionItem {
            kind: "resubmit_insurance".into(),
            resource_id: Some(rejected.id),
            note: rejected.reason.clone(),
        });
    }
    let unread_notifications = notifications::unread(&mut tx, me).await?;
    tx.commit().await?;
    Ok(Json(Dashboard {
        applications: counts,
        open_applications: open,
        days_sober: days_sober.map(i64::from),
        insurance,
        unread_notifications,
        action_items,
    }))
}

pub(crate) fn not_editable(status: ApplicationStatus) -> ApiError {
    ApiError::Conflict(format!(
        "an application {} can no longer be changed; it can be changed while reviewing or action_needed",
        status.as_str()
    ))
}

/// Staff acting on applications: a caseworker, or an admin. Built from the verified roles; an
/// admin acts as admin when they hold both.
pub struct Reviewer {
    pub user: AuthUser,
    pub role: &'static str,
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Reviewer {
    type Error = crate::auth::AuthError;

    async fn from_request(request: &'r Request<'_>) -> GuardOutcome<Self, Self::Error> {
        let user = match AuthUser::from_request(request).await {
            GuardOutcome::Success(user) => user,
            GuardOutcome::Error(e) => return GuardOutcome::Error(e),
            GuardOutcome::Forward(f) => return GuardOutcome::Forward(f),
        };
        let holds = |role: &str| user.roles.iter().any(|r| r == role);
        let role = if holds("admin") {
            "admin"
        } else if holds("caseworker") {
            "caseworker"
        } else {
            // The route's permission is held only by these roles; anything else is a policy
            // mistake, refused.
            request.local_cache(|| common::error::ErrorMessage(Some("not permitted".into())));
            return GuardOutcome::Error((
                Status::Forbidden,
                crate::auth::AuthError::NotPermitted("neither caseworker nor admin".into()),
            ));
        };
        GuardOutcome::Success(Reviewer { user, role })
    }
}

/// The staff queue, oldest first, filtered.
#[utoipa::path(get, path = "/api/v1/staff/applications", tag = "staff", security(("bearer" = [])),
    params(("status" = Option<String>, Query, description = "reviewing, action_needed, approved, rejected or funded"),
        ("kind" = Option<String>, Query, description = "rent, transport, tech or other"),
        ("assigned" = Option<String>, Query, description = "`me`, `none`, or a caseworker's id"),
        ("from" = Option<String>, Query, description = "Submitted on or after, YYYY-MM-DD"),
        ("to" = Option<String>, Query, description = "Submitted on or before, YYYY-MM-DD"),
        ("after" = Option<i64>, Query, description = "`next_after` of the previous page"),
        ("limit" = Option<i64>, Query, description = "1 to 100, default 20")),
    responses(
        (status = 200, description = "A page of the queue (no details: those are PHI)", body = ApplicationPage),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Neither caseworker nor admin", body = common::ErrorBody),
        (status = 422, description = "A filter malformed, named", body = common::ErrorBody),
    ))]
#[allow(clippy::too_many_arguments)]
#[get("/staff/applications?<status>&<kind>&<assigned>&<from>&<to>&<after>&<limit>")]
pub async fn queue(
    staff: Reviewer,
    status: Option<&str>,
    kind: Option<&str>,
    assigned: Option<&str>,
    from: Option<&str>,
    to: Option<&str>,
    after: Option<&str>,
    limit: Option<&str>,
    pool: &State<PgPool>,
) -> Result<Json<ApplicationPage>, ApiError> {
    let query = PageQuery::parse(status, after, limit)?;
    if let Some(kind) = kind {
        if !KINDS.contains(&kind) {
            return Err(ApiError::Unprocessable(format!("kind: one of {}", KINDS.join(", "))));
        }
    }
    // (unassigned only, a caseworker's id)
    let (unassigned, caseworker) = match assigned {
        None => (false, None),
        Some("none") => (true, None),
        Some("me") => (false, Some(staff.user.user_id)),
        Some(id) => (
            false,
            Some(
                Uuid::parse_str(id)
                    .map_err(|_| ApiError::Unprocessable("assigned: me, none or a caseworker's id".into()))?,
            ),
        ),
    };
    let (from, to) = (common::json::date_param("from", from)?, common::json::date_param("to", to)?);
    if let (Some(from), Some(to)) = (from, to) {
        if from > to {
            return Err(ApiError::Unprocessable("from: on or before to".into()));
        }
    }
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM applications WHERE seq > $1 AND ($2::text IS NULL OR status = $2) \
         AND ($3::text IS NULL OR kind = $3) AND (NOT $4 OR caseworker_id IS NULL) \
         AND ($5::uuid IS NULL OR caseworker_id = $5) \
         AND ($6::date IS NULL OR created_at >= $6::date) AND ($7::date IS NULL OR created_at < $7::date + 1) \
         ORDER BY seq LIMIT $8"
    ))
    .bind(query.after)
    .bind(query.status.map(ApplicationStatus::as_str))
    .bind(kind)
    .bind(unassigned)
    .bind(caseworker)
    .bind(from)
    .bind(to)
    .bind(query.limit + 1)
    .fetch_all(pool.inner())
    .await?;
    page(rows, query.limit).map(Json)
}

/// One application as the queue shows it, with its history: no details (those are PHI, read
/// through `/caseworker/applications/{id}`). For an admin, or the caseworker assigned to it (404
/// for any other caseworker: the history's notes are for those deciding). What a reviewer reads
/// before deciding, so the decision can name the version it was made on.
#[utoipa::path(get, path = "/api/v1/staff/applications/{id}", tag = "staff", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "The application and its history, without details", body = ApplicationDetail),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Neither caseworker nor admin", body = common::ErrorBody),
        (status = 404, description = "No such application, or not assigned to you", body = common::ErrorBody),
    ))]
#[get("/staff/applications/<id>")]
pub async fn read_for_staff(
    staff: Reviewer,
    id: Uuid,
    pool: &State<PgPool>,
) -> Result<Json<ApplicationDetail>, ApiError> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM applications WHERE id = $1"))
        .bind(id)
        .fetch_optional(pool.inner())
        .await?
        .ok_or(ApiError::NotFound)?;
    let application = view(&row)?;
    if staff.role != "admin" && application.caseworker_id != Some(staff.user.user_id) {
        return Err(ApiError::NotFound);
    }
    let history = history(pool, id).await?;
    Ok(Json(ApplicationDetail { application, details: None, history }))
}

/// An application with its details, for the caseworker on the beneficiary's care team (phi-vault
/// decides, and logs the read); 404 for anyone else.
#[utoipa::path(get, path = "/api/v1/caseworker/applications/{id}", tag = "staff", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "The application, its details and its history", body = ApplicationDetail),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not a caseworker", body = common::ErrorBody),
        (status = 404, description = "No such application, its beneficiary is not on your care team, or its details were erased", body = common::ErrorBody),
        (status = 503, description = "The PHI vault is unavailable", body = common::ErrorBody),
    ))]
#[get("/caseworker/applications/<id>")]
pub async fn read_for_caseworker(
    caseworker: Caseworker,
    id: Uuid,
    meta: RequestMeta,
    pool: &State<PgPool>,
    vault: &State<PhiVaultClient>,
) -> Result<Json<ApplicationDetail>, ApiError> {
    let row = sqlx::query(&format!("SELECT {COLUMNS}, details_record_id FROM applications WHERE id = $1"))
        .bind(id)
        .fetch_optional(pool.inner())
        .await?
        .ok_or(ApiError::NotFound)?;
    // With the details erased there is no vault read to check the care team: nothing to show.
    let details = read_details(vault, &caseworker.call(&meta, "treatment"), row.try_get("details_record_id")?)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(ApplicationDetail { application: view(&row)?, details: Some(details), history: history(pool, id).await? }))
}

/// Assigns the caseworker who reviews an application, and puts them on the beneficiary's care
/// team in phi-vault so they may read its details.
#[utoipa::path(put, path = "/api/v1/staff/applications/{id}/caseworker", tag = "staff", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = Assignment,
    responses(
        (status = 200, description = "Assigned", body = ApplicationView),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not an admin; or the caseworker is the applicant or yourself", body = common::ErrorBody),
        (status = 404, description = "No such application", body = common::ErrorBody),
        (status = 409, description = "Rejected or funded (no reviewer needed), or changed meanwhile (the care-team grant stays)", body = common::ErrorBody),
        (status = 422, description = "Not a caseworker", body = common::ErrorBody),
        (status = 503, description = "The PHI vault is unavailable; nothing changed", body = common::ErrorBody),
    ))]
#[put("/staff/applications/<id>/caseworker", data = "<body>")]
pub async fn assign(
    admin: Admin,
    id: Uuid,
    body: Body<Assignment>,
    meta: RequestMeta,
    pool: &State<PgPool>,
    vault: &State<PhiVaultClient>,
) -> Result<Json<ApplicationView>, ApiError> {
    let caseworker = body.into_inner().caseworker_id;
    let is_caseworker: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1 AND deleted_at IS NULL AND 'caseworker' = ANY(roles))",
    )
    .bind(caseworker)
    .fetch_one(pool.inner())
    .await?;
    if !is_caseworker {
        return Err(ApiError::Unprocessable("caseworker_id: not a caseworker".into()));
    }
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM applications WHERE id = $1"))
        .bind(id)
        .fetch_optional(pool.inner())
        .await?
        .ok_or(ApiError::NotFound)?;
    let current = view(&row)?;
    if caseworker == current.beneficiary_id || caseworker == admin.user_id() {
        return Err(ApiError::Forbidden);
    }
    if !current.status.editable() && current.status != ApplicationStatus::Approved {
        return Err(ApiError::Conflict(format!(
            "an application {} needs no reviewer; assign while reviewing, action_needed or approved",
            current.status.as_str()
        )));
    }
    vault
        .assign_care_team(&admin.call(&meta, "care_team_assignment"), caseworker, current.beneficiary_id)
        .await
        .map_err(|e| e.into_api_error())?;
    // One audit row for the request (phi-vault's access log keeps the grant itself, under this
    // request id): the assignment, naming the grant, when it is made; otherwise the grant, which
    // stays whatever happens below, as the success it was, saying the application was not assigned.
    let team = format!("caseworker {caseworker} joined the care team of {}", current.beneficiary_id);
    let resource = Some(("application", id.to_string()));
    let mut event = meta.event(Some(admin.user_id()), "application.assign", resource, Outcome::Success);
    event.reason = Some(team);
    let assigned = async {
        let mut tx = pool.begin().await?;
        let row = sqlx::query(&format!(
            "UPDATE applications SET caseworker_id = $3, version = version + 1, updated_at = now() \
             WHERE id = $1 AND version = $2 RETURNING {COLUMNS}"
        ))
        .bind(id)
        .bind(current.version)
        .bind(caseworker)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| ApiError::Conflict("the application changed meanwhile; read it and try again".into()))?;
        notifications::add(&mut tx, caseworker, &Notice::application("application.assigned", id)).await?;
        audit::record(&mut tx, &event).await?;
        tx.commit().await?;
        Ok::<_, ApiError>(row)
    }
    .await;
    match assigned {
        Ok(row) => Ok(Json(view(&row)?)),
        Err(e) => {
            let grant = Some(("care_team", format!("{caseworker}:{}", current.beneficiary_id)));
            let mut granted = meta.event(Some(admin.user_id()), "care_team.assign", grant, Outcome::Success);
            granted.reason = Some(match &e {
                ApiError::Conflict(_) => format!("application {id} not assigned: it changed meanwhile"),
                // A failed commit may still have landed: do not claim what is not known.
                _ => format!("application {id}: the assignment's outcome is unknown (it failed: {e})"),
            });
            audit::record_alone(pool, &granted).await?;
            Err(e)
        }
    }
}

/// Moves an application to its next status with a note the beneficiary sees, on the `version` the
/// decider read. The caseworker assigned to it, or an admin; a move the status machine does not
/// allow is 409, naming the moves it does, and so is a version the application has moved past.
#[utoipa::path(post, path = "/api/v1/staff/applications/{id}/status", tag = "staff", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = StatusChange,
    responses(
        (status = 200, description = "Changed", body = ApplicationView),
        (status = 400, description = "Malformed JSON", body = common::ErrorBody),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Neither the assigned caseworker nor an admin; or your own application; or funding what you approved", body = common::ErrorBody),
        (status = 404, description = "No such application", body = common::ErrorBody),
        (status = 409, description = "Not a move allowed from its status (the message names those that are), or the application changed since the version given", body = common::ErrorBody),
        (status = 422, description = "No note, or an unknown status", body = common::ErrorBody),
    ))]
#[post("/staff/applications/<id>/status", data = "<body>")]
pub async fn change_status(
    staff: Reviewer,
    id: Uuid,
    body: Body<StatusChange>,
    meta: RequestMeta,
    pool: &State<PgPool>,
) -> Result<Json<ApplicationView>, ApiError> {
    let change = body.into_inner();
    common::json::printable("note", &change.note, 3..=1000, true)?;
    let note = change.note.trim();
    let actor = staff.user.user_id;
    let mut tx = pool.begin().await?;
    // No network call happens while this row is locked.
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM applications WHERE id = $1 FOR UPDATE"))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(ApiError::NotFound)?;
    let current = view(&row)?;
    // Nobody decides their own application; a caseworker decides only what they were assigned.
    if current.beneficiary_id == actor || staff.role == "caseworker" && current.caseworker_id != Some(actor) {
        return Err(ApiError::Forbidden);
    }
    if change.version != current.version {
        return Err(ApiError::Conflict(format!(
            "the application changed since version {} (it is at version {}); read it again before deciding",
            change.version, current.version
        )));
    }
    let allowed = current.status.staff_next();
    if !allowed.contains(&change.status) {
        return Err(ApiError::Conflict(format!(
            "an application {} cannot become {}; allowed: {}",
            current.status.as_str(),
            change.status.as_str(),
            ApplicationStatus::names(allowed)
        )));
    }
    if change.status == ApplicationStatus::Funded {
        // Two people: whoever approved does not also fund.
        let approver: Option<Uuid> = sqlx::query_scalar(
            "SELECT actor_id FROM application_events WHERE application_id = $1 AND to_status = 'approved' \
             ORDER BY seq DESC LIMIT 1",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        if approver == Some(actor) {
            return Err(ApiError::Forbidden);
        }
    }
    let row = sqlx::query(&format!(
        "UPDATE applications SET status = $2, version = version + 1, updated_at = now(), \
         decided_at = CASE WHEN $2 IN ('approved', 'rejected') THEN now() ELSE decided_at END \
         WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(change.status.as_str())
    .fetch_one(&mut *tx)
    .await?;
    let by = (actor, staff.role);
    record_event(&mut tx, id, Some(current.status), change.status, by, current.amount_cents, Some(note)).await?;
    notifications::add(&mut tx, current.beneficiary_id, &Notice::application("application.status", id)).await?;
    let mut event =
        meta.event(Some(actor), "application.status", Some(("application", id.to_string())), Outcome::Success);
    event.reason = Some(format!("{} -> {}", current.status.as_str(), change.status.as_str()));
    audit::record(&mut tx, &event).await?;
    tx.commit().await?;
    Ok(Json(view(&row)?))
}

pub fn routes() -> Vec<Route> {
    routes![
        submit,
        list_mine,
        read_mine,
        update_mine,
        dashboard,
        queue,
        read_for_staff,
        read_for_caseworker,
        assign,
        change_status
    ]
}
