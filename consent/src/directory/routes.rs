//! The directory's routes: a page of entries (anyone; retired ones for admins), and adding and
//! retiring one (admins).

use rocket::http::Status;
use rocket::serde::json::Json;
use rocket::{delete, get, post, routes, FromForm, Route, State};
use sqlx::PgPool;
use uuid::Uuid;

use common::assertion::InternalCall;
use common::consents::{DirectoryEntry, DirectoryPage, NewDirectoryEntry};
use common::json::Body;
use common::{ApiError, Role};

use super::queries::{self, NewEntry};
use super::rules;

fn admin(call: &InternalCall) -> Result<String, ApiError> {
    match call.0.role {
        Role::Admin => Ok(format!("admin:{}", call.0.sub)),
        _ => Err(ApiError::Forbidden),
    }
}

/// A directory page's query string, as it arrives (checked by the handler).
#[derive(Debug, FromForm)]
struct DirectoryFilter<'r> {
    after: Option<&'r str>,
    limit: Option<&'r str>,
    include_retired: Option<&'r str>,
}

/// A page of the directory, oldest entry first. Retired entries only for admins who ask.
#[get("/internal/v1/recipients?<filter..>")]
async fn list(
    call: InternalCall,
    filter: DirectoryFilter<'_>,
    pool: &State<PgPool>,
) -> Result<Json<DirectoryPage>, ApiError> {
    let page = common::json::Keyset::parse(filter.after, filter.limit, 50)?;
    let (after, limit) = (page.after_or_start(), page.limit);
    let retired: bool =
        common::json::query_param("include_retired", filter.include_retired, "true or false")?.unwrap_or(false);
    if retired {
        admin(&call)?;
    }
    let rows = queries::page(pool.inner(), after, retired, limit + 1).await?;
    let (rows, next_after) = common::db::keyset_page(rows, limit, |r| r.seq);
    Ok(Json(DirectoryPage { recipients: rows.into_iter().map(rules::entry).collect(), next_after }))
}

/// Adds an entry (admins). The account acting for it, if any, is public-api's to check: it
/// sends only a partner account's id for a residence.
#[post("/internal/v1/recipients", data = "<body>")]
async fn add(
    call: InternalCall,
    body: Body<NewDirectoryEntry>,
    pool: &State<PgPool>,
) -> Result<(Status, Json<DirectoryEntry>), ApiError> {
    let by = admin(&call)?;
    let new = body.into_inner();
    let kind = rules::check_new(&new)?;
    let entry = NewEntry {
        kind,
        name: new.name.trim(),
        address: new.address.as_deref().map(str::trim),
        principal: rules::principal(kind, &new),
        created_by: &by,
    };
    let row = queries::add(pool.inner(), entry)
        .await
        .map_err(|e| match e.as_database_error().and_then(|d| d.constraint()) {
            Some("recipients_active_name") => ApiError::Conflict(format!(
                "name: an entry of kind {} in use already has that name (compared ignoring case, spacing and \
                 compatibility forms); retire it first or choose a distinct name",
                new.kind
            )),
            _ => e.into(),
        })?
        .ok_or_else(|| {
            ApiError::Conflict("account_id: that account already acts for another directory entry".into())
        })?;
    tracing::info!(request_id = %call.0.request_id, "recipient directory entry added");
    Ok((Status::Created, Json(rules::entry(row))))
}

/// Retires an entry (admins): no new consent may name it; consents already naming it stand.
#[delete("/internal/v1/recipients/<id>")]
async fn retire(call: InternalCall, id: Uuid, pool: &State<PgPool>) -> Result<Json<DirectoryEntry>, ApiError> {
    let by = admin(&call)?;
    match queries::retire(pool.inner(), id, &by).await? {
        Some(row) => {
            tracing::info!(request_id = %call.0.request_id, "recipient directory entry retired");
            Ok(Json(rules::entry(row)))
        }
        None => {
            let exists = queries::exists(pool.inner(), id).await?;
            Err(if exists { ApiError::Conflict("already retired".into()) } else { ApiError::NotFound })
        }
    }
}

pub fn routes() -> Vec<Route> {
    routes![list, add, retire]
}
