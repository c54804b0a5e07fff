//! The staff's routes: the queue, reading an application (without its details, or with them for
//! the caseworker on the care team), assigning the reviewer, and moving it through the status
//! machine.

use rocket::serde::json::Json;
use rocket::{get, post, put, State};
use sqlx::PgPool;
use uuid::Uuid;

use common::applications::{
    ApplicationDetail, ApplicationPage, ApplicationStatus, ApplicationView, Assignment, StatusChange,
};
use common::client::PhiVaultClient;
use common::json::Body;
use common::ApiError;

use super::queries::{self, ApplicationRow, Event};
use super::rules::{self, QueueQuery};
use crate::audit::{self, Outcome};
use crate::auth::{Admin, Caseworker, Reviewer};
use crate::meta::RequestMeta;
use crate::notifications::{self, Notice};
use crate::phi_records::read_details;

/// The staff queue, oldest first, filtered.
#[utoipa::path(get, operation_id = "applications_staff_queue", path = "/api/v1/staff/applications", tag = "staff", security(("bearer" = [])),
    params(("status" = Option<common::applications::ApplicationStatus>, Query, description = "reviewing, action_needed, approved, rejected or funded"),
        ("kind" = Option<common::applications::ApplicationKind>, Query, description = "rent, transport, tech or other"),
        ("assigned" = Option<String>, Query, description = "`me`, `none`, or a caseworker's id"),
        ("from" = Option<String>, Query, format = Date, description = "Submitted on or after, YYYY-MM-DD"),
        ("to" = Option<String>, Query, format = Date, description = "Submitted on or before, YYYY-MM-DD"),
        ("after" = Option<i64>, Query, description = "`next_after` of the previous page"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "1 to 100, default 20")),
    responses(
        (status = 200, description = "A page of the queue (no details: those are PHI)", body = ApplicationPage),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Neither caseworker nor admin", body = common::ErrorBody),
        (status = 422, description = "A filter malformed, named", body = common::ErrorBody),
    ))]
#[get("/staff/applications?<filter..>")]
pub async fn queue(
    staff: Reviewer,
    filter: QueueQuery<'_>,
    pool: &State<PgPool>,
) -> Result<Json<ApplicationPage>, ApiError> {
    let filter = filter.check(staff.user.user_id)?;
    let rows = queries::queue(pool, &filter).await?;
    Ok(Json(super::routes::page(rows, filter.page.limit)))
}

async fn by_id(pool: &PgPool, id: Uuid) -> Result<ApplicationRow, ApiError> {
    queries::by_id(pool, id).await?.ok_or(ApiError::NotFound)
}

/// One application as the queue shows it, with its history: no details (those are PHI, read
/// through `/caseworker/applications/{id}`). For an admin, or the caseworker assigned to it (404
/// for any other caseworker: the history's notes are for those deciding). What a reviewer reads
/// before deciding, so the decision can name the version it was made on.
#[utoipa::path(get, operation_id = "applications_read_for_staff", path = "/api/v1/staff/applications/{id}", tag = "staff", security(("bearer" = [])),
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
    let application = by_id(pool, id).await?.view();
    if !staff.is_admin() && application.caseworker_id != Some(staff.user.user_id) {
        return Err(ApiError::NotFound);
    }
    let history = queries::history(pool, id).await?;
    Ok(Json(ApplicationDetail { application, details: None, history }))
}

/// An application with its details, for the caseworker on the beneficiary's care team (phi-vault
/// decides, and logs the read); 404 for anyone else.
#[utoipa::path(get, operation_id = "applications_read_for_caseworker", path = "/api/v1/caseworker/applications/{id}", tag = "staff", security(("bearer" = [])),
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
    let row = by_id(pool, id).await?;
    // With the details erased there is no vault read to check the care team: nothing to show.
    let details = read_details(vault, &caseworker.call(&meta, "treatment"), row.details_record_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let history = queries::history(pool, id).await?;
    Ok(Json(ApplicationDetail { application: row.view(), details: Some(details), history }))
}

/// Assigns the caseworker who reviews an application, and puts them on the beneficiary's care
/// team in phi-vault so they may read its details.
#[utoipa::path(put, operation_id = "applications_assign_caseworker", path = "/api/v1/staff/applications/{id}/caseworker", tag = "staff", security(("bearer" = [])),
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
    if !queries::is_caseworker(pool, caseworker).await? {
        return Err(ApiError::Unprocessable("caseworker_id: not a caseworker".into()));
    }
    let current = by_id(pool, id).await?;
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
        let row = queries::assign(&mut tx, &current, caseworker)
            .await?
            .ok_or_else(|| ApiError::Conflict("the application changed meanwhile; read it and try again".into()))?;
        notifications::add(&mut tx, caseworker, &Notice::application("application.assigned", id)).await?;
        audit::record(&mut tx, &event).await?;
        tx.commit().await?;
        Ok::<_, ApiError>(row)
    }
    .await;
    match assigned {
        Ok(row) => Ok(Json(row.view())),
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
#[utoipa::path(post, operation_id = "applications_change_status", path = "/api/v1/staff/applications/{id}/status", tag = "staff", security(("bearer" = [])),
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
    let current = queries::lock(&mut tx, id).await?.ok_or(ApiError::NotFound)?;
    if !rules::may_decide(actor, staff.is_admin(), current.beneficiary_id, current.caseworker_id) {
        return Err(ApiError::Forbidden);
    }
    if change.version != current.version {
        return Err(ApiError::Conflict(format!(
            "the application changed since version {} (it is at version {}); read it again before deciding",
            change.version, current.version
        )));
    }
    rules::check_move(current.status, change.status)?;
    // Two people: whoever approved does not also fund.
    if change.status == ApplicationStatus::Funded && queries::last_approver(&mut tx, id).await? == Some(actor) {
        return Err(ApiError::Forbidden);
    }
    let changed = queries::set_status(&mut tx, id, change.status).await?;
    let event = Event {
        application: id,
        from: Some(current.status),
        to: change.status,
        actor,
        actor_role: staff.role.as_str(),
        amount_cents: current.amount_cents,
        note: Some(note),
    };
    queries::record_event(&mut tx, &event).await?;
    notifications::add(&mut tx, current.beneficiary_id, &Notice::application("application.status", id)).await?;
    let mut event =
        meta.event(Some(actor), "application.status", Some(("application", id.to_string())), Outcome::Success);
    event.reason = Some(format!("{} -> {}", current.status.as_str(), change.status.as_str()));
    audit::record(&mut tx, &event).await?;
    tx.commit().await?;
    Ok(Json(changed.view()))
}
