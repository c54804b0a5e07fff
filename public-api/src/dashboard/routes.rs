//! `GET /beneficiaries/me/dashboard`.

use rocket::serde::json::Json;
use rocket::{get, State};
use sqlx::PgPool;

use common::applications::{ActionItem, ApplicationStatus, Dashboard, StatusCounts};
use common::insurance::InsuranceStatus;
use common::ApiError;

use super::queries;
use crate::auth::Beneficiary;

/// My dashboard: application counts and the open ones, days sober, insurance, unread
/// notifications and what I should do next, read in one consistent snapshot.
#[utoipa::path(get, operation_id = "dashboard_read_mine", path = "/api/v1/beneficiaries/me/dashboard", tag = "beneficiaries", security(("bearer" = [])),
    responses(
        (status = 200, description = "The dashboard", body = Dashboard),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not a beneficiary", body = common::ErrorBody),
    ))]
#[get("/beneficiaries/me/dashboard")]
pub async fn dashboard(user: Beneficiary, pool: &State<PgPool>) -> Result<Json<Dashboard>, ApiError> {
    let me = user.user_id();
    let mut tx = pool.begin().await?;
    queries::snapshot(&mut tx).await?;
    let mut counts = StatusCounts::default();
    for (status, n) in queries::counts(&mut tx, me).await? {
        let slot = match status {
            ApplicationStatus::Reviewing => &mut counts.reviewing,
            ApplicationStatus::ActionNeeded => &mut counts.action_needed,
            ApplicationStatus::Approved => &mut counts.approved,
            ApplicationStatus::Rejected => &mut counts.rejected,
            ApplicationStatus::Funded => &mut counts.funded,
        };
        *slot = n;
    }
    let open = queries::open(&mut tx, me).await?;
    let (days_sober, no_profile) = queries::standing(&mut tx, me).await?;
    let mut action_items = Vec::new();
    if no_profile {
        action_items.push(ActionItem { kind: "complete_profile".into(), resource_id: None, note: None });
    }
    action_items.extend(queries::waiting(&mut tx, me).await?.into_iter().map(|(id, note)| ActionItem {
        kind: "update_application".into(),
        resource_id: Some(id),
        note,
    }));
    let insurance = crate::insurance::queries::latest(&mut tx, me).await?;
    if let Some(rejected) = insurance.as_ref().filter(|i| i.status == InsuranceStatus::Rejected) {
        action_items.push(ActionItem {
            kind: "resubmit_insurance".into(),
            resource_id: Some(rejected.id),
            note: rejected.reason.clone(),
        });
    }
    let unread_notifications = crate::notifications::unread(&mut tx, me).await?;
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
