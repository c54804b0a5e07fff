//! The accounting's two readers: the beneficiary, of their own; a compliance officer, of
//! anyone's. The vault logs each read in its access log.

use rocket::serde::json::Json;
use rocket::{get, routes, Route, State};
use uuid::Uuid;

use common::client::{AccountingPage, PhiVaultClient};
use common::ApiError;

use super::rules::AccountingFilter;
use crate::auth::{Beneficiary, ComplianceOfficer};
use crate::meta::RequestMeta;

/// My accounting of disclosures (42 CFR §2.24; HIPAA §164.528): every time my records left the
/// program, under a consent or in a medical emergency: when, to whom, what, why, the consent and
/// the notice sent with them. The last six years unless a range is given.
#[utoipa::path(get, operation_id = "disclosures_list_mine", path = "/api/v1/beneficiaries/me/disclosures", tag = "beneficiaries", security(("bearer" = [])),
    params(("from" = Option<String>, Query, format = Date, description = "First day included, YYYY-MM-DD; six years back when absent"),
           ("to" = Option<String>, Query, format = Date, description = "Last day included, YYYY-MM-DD; today when absent"),
           ("after" = Option<i64>, Query, description = "The previous page's `next_after`"),
           ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "1 to 100; 50 when absent")),
    responses(
        (status = 200, description = "A page, oldest first", body = AccountingPage),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not a beneficiary", body = common::ErrorBody),
        (status = 422, description = "A malformed filter, named", body = common::ErrorBody),
        (status = 503, description = "The PHI vault is unavailable", body = common::ErrorBody),
    ))]
#[get("/beneficiaries/me/disclosures?<filter..>")]
pub async fn my_disclosures(
    user: Beneficiary,
    filter: AccountingFilter<'_>,
    meta: RequestMeta,
    vault: &State<PhiVaultClient>,
) -> Result<Json<AccountingPage>, ApiError> {
    let query = filter.parse()?;
    let ctx = user.call(&meta, "self_service");
    vault.accounting(&ctx, user.user_id(), &query).await.map(Json).map_err(|e| e.into_api_error())
}

/// A beneficiary's accounting of disclosures (42 CFR §2.24), for a compliance officer: what
/// left the program, to whom, why, under which consent and notice. Reading it is logged in the
/// vault's access log.
#[utoipa::path(get, operation_id = "disclosures_compliance_list", path = "/api/v1/compliance/beneficiaries/{beneficiary_id}/disclosures", tag = "staff", security(("bearer" = [])),
    params(("beneficiary_id" = Uuid, Path),
           ("from" = Option<String>, Query, format = Date, description = "First day included, YYYY-MM-DD; six years back when absent"),
           ("to" = Option<String>, Query, format = Date, description = "Last day included, YYYY-MM-DD; today when absent"),
           ("after" = Option<i64>, Query, description = "The previous page's `next_after`"),
           ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "1 to 100; 50 when absent")),
    responses(
        (status = 200, description = "A page, oldest first", body = AccountingPage),
        (status = 401, description = "Not signed in", body = common::ErrorBody),
        (status = 403, description = "Not a compliance officer", body = common::ErrorBody),
        (status = 422, description = "A malformed filter, named", body = common::ErrorBody),
        (status = 503, description = "The PHI vault is unavailable", body = common::ErrorBody),
    ))]
#[get("/compliance/beneficiaries/<beneficiary_id>/disclosures?<filter..>")]
pub async fn compliance_disclosures(
    officer: ComplianceOfficer,
    beneficiary_id: Uuid,
    filter: AccountingFilter<'_>,
    meta: RequestMeta,
    vault: &State<PhiVaultClient>,
) -> Result<Json<AccountingPage>, ApiError> {
    let query = filter.parse()?;
    let ctx = officer.call(&meta, "compliance_review");
    vault.accounting(&ctx, beneficiary_id, &query).await.map(Json).map_err(|e| e.into_api_error())
}

pub fn routes() -> Vec<Route> {
    routes![my_disclosures, compliance_disclosures]
}
