//! The beneficiary's routes: submit an application, list and read theirs, change one.

use rocket::http::Status;
use rocket::serde::json::Json;
use rocket::{get, patch, post, FromForm, State};
use sqlx::PgPool;
use uuid::Uuid;

use common::applications::{
    ApplicationDetail, ApplicationPage, ApplicationUpdate, ApplicationView, NewApplication, DETAILS_CATEGORY,
};
use common::chain;
use common::client::{NewRecord, PhiVaultClient};
use common::json::{Body, IdempotencyKey, Keyset};
use common::ApiError;

use super::queries::{self, ApplicationRow, Event, NewRow};
use super::rules::{self, check_amount, check_details, not_editable};
use crate::audit::{self, Outcome};
use crate::auth::Beneficiary;
use crate::meta::RequestMeta;
use crate::notifications::{self, Notice};
use crate::phi_records::{content_of, discard, read_details, stored_error};

/// The application an idempotency key made, if it made one: 200 with it for the same request,
/// 422 for a different one.
async fn made_under_key(
    pool: &PgPool,
    beneficiary: Uuid,
    key: &str,
    request_sha256: &[u8],
) -> Result<Option<ApplicationView>, ApiError> {
    let Some((id, earlier)) = queries::keyed(pool, beneficiary, key).await? else { return Ok(None) };
    if earlier.as_deref() != Some(request_sha256) {
        return Err(ApiError::Unprocessable(
            "Idempotency-Key: already used for a different application; use a new key".into(),
        ));
    }
    let made = queries::by_id(pool, id).await?.ok_or_else(|| ApiError::internal("a keyed application vanished"))?;
    Ok(Some(made.view()))
}

/// Submits an application. The details go to phi-vault; the application starts `reviewing`.
#[utoipa::path(post, operation_id = "applications_submit", path = "/api/v1/applications", tag = "applications", security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]+$",
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
    rules::check_kind(&new.kind)?;
    check_amount(new.amount_cents)?;
    check_details(&new.details, rules::today())?;
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
        let row = NewRow {
            beneficiary: me,
            kind: &new.kind,
            amount_cents: new.amount_cents,
            details_record: created,
            idempotency_key: key.0.as_deref(),
            request_sha256: request_sha256.as_ref().map(|h| &h[..]),
        };
        let Some(row) = queries::insert(&mut tx, &row).await? else { return Ok::<_, ApiError>(None) };
        let application = row.view();
        let event = Event {
            application: application.id,
            from: None,
            to: application.status,
            actor: me,
            actor_role: "beneficiary",
            amount_cents: application.amount_cents,
            note: None,
        };
        queries::record_event(&mut tx, &event).await?;
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

/// The filters of my applications, as sent.
#[derive(Debug, FromForm)]
pub struct MineQuery<'r> {
    status: Option<&'r str>,
    after: Option<&'r str>,
    limit: Option<&'r str>,
}

/// A page of rows read with one row more than the page.
pub(super) fn page(rows: Vec<ApplicationRow>, limit: i64) -> ApplicationPage {
    let (rows, next_after) = common::db::keyset_page(rows, limit, |r| r.seq);
    ApplicationPage { applications: rows.iter().map(ApplicationRow::view).collect(), next_after }
}

/// My applications, oldest first.
#[utoipa::path(get, operation_id = "applications_list_mine", path = "/api/v1/applications", tag = "applications", security(("bearer" = [])),
    params(("status" = Option<common::applications::ApplicationStatus>, Query, description = "reviewing, action_needed, approved, rejected or funded"),
        ("after" = Option<i64>, Query, description = "`next_after` of the previous page"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "1 to 100, default 20")),
    responses(
        (status = 200, description = "A page of my applications", body = ApplicationPage),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not a beneficiary", body = common::ErrorBody),
        (status = 422, description = "A filter malformed, named", body = common::ErrorBody),
    ))]
#[get("/applications?<filter..>")]
pub async fn list_mine(
    user: Beneficiary,
    filter: MineQuery<'_>,
    pool: &State<PgPool>,
) -> Result<Json<ApplicationPage>, ApiError> {
    let status = rules::status_filter(filter.status)?;
    let page = Keyset::parse(filter.after, filter.limit, 20)?;
    let rows = queries::list_mine(pool, user.user_id(), status, page.after_or_start(), page.limit + 1).await?;
    Ok(Json(self::page(rows, page.limit)))
}

async fn own(pool: &PgPool, beneficiary: Uuid, id: Uuid) -> Result<ApplicationRow, ApiError> {
    queries::own(pool, beneficiary, id).await?.ok_or(ApiError::NotFound)
}

/// One of my applications, with its details and its history.
#[utoipa::path(get, operation_id = "applications_read_mine", path = "/api/v1/applications/{id}", tag = "applications", security(("bearer" = [])),
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
    let row = own(pool, user.user_id(), id).await?;
    let details = read_details(vault, &user.call(&meta, "self_service"), row.details_record_id).await?;
    Ok(Json(ApplicationDetail { application: row.view(), details, history: queries::history(pool, id).await? }))
}

/// Changes my application while it is `reviewing` or `action_needed`; one waiting on me goes
/// back to `reviewing`.
#[utoipa::path(patch, operation_id = "applications_update_mine", path = "/api/v1/applications/{id}", tag = "applications", security(("bearer" = [])),
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
        check_details(details, rules::today())?;
    }
    let me = user.user_id();
    let current = own(pool, me, id).await?;
    if !current.status.editable() {
        return Err(not_editable(current.status));
    }
    let old_record = current.details_record_id;
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
        let changed = queries::update(&mut tx, &current, update.amount_cents, new_record, after)
            .await?
            .ok_or_else(|| ApiError::Conflict("the application changed meanwhile; read it and try again".into()))?
            .view();
        // Every edit is an event, a status change or not, so staff see what changed.
        let event = Event {
            application: id,
            from: Some(current.status),
            to: after,
            actor: me,
            actor_role: "beneficiary",
            amount_cents: changed.amount_cents,
            note: None,
        };
        queries::record_event(&mut tx, &event).await?;
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
