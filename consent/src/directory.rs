//! The recipient directory: partner residences and insurers a beneficiary may name in a consent.
//! Admins add and retire entries (through public-api's staff routes); beneficiaries list the
//! entries in use. An entry's details are copied into each consent naming it, so an edit or a
//! retirement never changes a consent already signed. The account acting for an entry
//! (`principal`) is set when it is added and never changed: relinking would hand existing
//! consents to another account.

use rocket::http::Status;
use rocket::serde::json::Json;
use rocket::{delete, get, post, routes, Route, State};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};
use uuid::Uuid;

use common::assertion::InternalCall;
use common::consents::{DirectoryEntry, DirectoryPage, NewDirectoryEntry};
use common::json::Body;
use common::{ApiError, Role};

const COLUMNS: &str = "id, seq, kind, name, address, principal IS NOT NULL AS linked, retired_at";

fn entry(row: &PgRow) -> Result<DirectoryEntry, sqlx::Error> {
    Ok(DirectoryEntry {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        name: row.try_get("name")?,
        address: row.try_get("address")?,
        linked: row.try_get("linked")?,
        retired_at: row.try_get("retired_at")?,
    })
}

fn admin(call: &InternalCall) -> Result<String, ApiError> {
    match call.0.role {
        Role::Admin => Ok(format!("admin:{}", call.0.sub)),
        _ => Err(ApiError::Forbidden),
    }
}

/// A page of the directory, oldest entry first. Retired entries only for admins who ask.
#[get("/internal/v1/recipients?<after>&<limit>&<include_retired>")]
async fn list(
    call: InternalCall,
    after: Option<&str>,
    limit: Option<&str>,
    include_retired: Option<&str>,
    pool: &State<PgPool>,
) -> Result<Json<DirectoryPage>, ApiError> {
    let page = common::json::Keyset::parse(after, limit, 50)?;
    let (after, limit) = (page.after_or_start(), page.limit);
    let retired: bool =
        common::json::query_param("include_retired", include_retired, "true or false")?.unwrap_or(false);
    if retired {
        admin(&call)?;
    }
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM recipients WHERE seq > $1 AND ($2 OR retired_at IS NULL) ORDER BY seq LIMIT $3"
    ))
    .bind(after)
    .bind(retired)
    .bind(limit + 1)
    .fetch_all(pool.inner())
    .await?;
    let (rows, next_after) = common::db::page_after(rows, limit, "seq")?;
    Ok(Json(DirectoryPage { recipients: rows.iter().map(entry).collect::<Result<_, _>>()?, next_after }))
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
    let role = match new.kind.as_str() {
        "residence" => "partner",
        "insurer" => "insurer",
        _ => return Err(ApiError::Unprocessable("kind: residence or insurer".into())),
    };
    common::json::printable("name", &new.name, 1..=200, false)?;
    if new.name.chars().any(common::json::is_invisible) {
        return Err(ApiError::Unprocessable("name: no invisible or direction-changing characters".into()));
    }
    if new.address.as_deref().is_some_and(|a| a.chars().any(common::json::is_invisible)) {
        return Err(ApiError::Unprocessable("address: no invisible or direction-changing characters".into()));
    }
    if let Some(address) = &new.address {
        common::json::printable("address", address, 1..=300, false)?;
    }
    let principal = new.account_id.map(|account| format!("{role}:{account}"));
    let row = sqlx::query(&format!(
        "INSERT INTO recipients (id, kind, name, address, principal, created_by) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (principal) DO NOTHING RETURNING {COLUMNS}"
    ))
    .bind(Uuid::new_v4())
    .bind(&new.kind)
    .bind(new.name.trim())
    .bind(new.address.as_deref().map(str::trim))
    .bind(principal)
    .bind(&by)
    .fetch_optional(pool.inner())
    .await
    .map_err(|e| match e.as_database_error().and_then(|d| d.constraint()) {
        Some("recipients_active_name") => ApiError::Conflict(format!(
            "name: an entry of kind {} in use already has that name (compared ignoring case, spacing and \
             compatibility forms); retire it first or choose a distinct name",
            new.kind
        )),
        _ => e.into(),
    })?
    .ok_or_else(|| ApiError::Conflict("account_id: that account already acts for another directory entry".into()))?;
    tracing::info!(request_id = %call.0.request_id, "recipient directory entry added");
    Ok((Status::Created, Json(entry(&row)?)))
}

/// Retires an entry (admins): no new consent may name it; consents already naming it stand.
#[delete("/internal/v1/recipients/<id>")]
async fn retire(call: InternalCall, id: Uuid, pool: &State<PgPool>) -> Result<Json<DirectoryEntry>, ApiError> {
    let by = admin(&call)?;
    let row = sqlx::query(&format!(
        "UPDATE recipients SET retired_at = now(), retired_by = $2 WHERE id = $1 AND retired_at IS NULL \
         RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(&by)
    .fetch_optional(pool.inner())
    .await?;
    match row {
        Some(row) => {
            tracing::info!(request_id = %call.0.request_id, "recipient directory entry retired");
            Ok(Json(entry(&row)?))
        }
        None => {
            let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM recipients WHERE id = $1)")
                .bind(id)
                .fetch_one(pool.inner())
                .await?;
            Err(if exists { ApiError::Conflict("already retired".into()) } else { ApiError::NotFound })
        }
    }
}

pub fn routes() -> Vec<Route> {
    routes![list, add, retire]
}
