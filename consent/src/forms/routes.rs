//! The forms' routes: the forms offered for signing with every value a consent may hold, and
//! one form's exact text.

use rocket::serde::json::Json;
use rocket::{get, routes, Route, State};
use sqlx::PgPool;

use common::assertion::InternalCall;
use common::consents::{ConsentOptions, FormText, RecipientClass};
use common::ApiError;

use super::{queries, rules};
use crate::decisions::rules::{CATEGORIES, CLASSES, EXPIRY_EVENTS, PURPOSES, TPO_COVERS, TPO_PURPOSE};

/// The forms offered for signing (those loaded from the forms directory) and every value a
/// consent may hold.
#[get("/internal/v1/consent-options")]
async fn options(call: InternalCall, pool: &State<PgPool>) -> Result<Json<ConsentOptions>, ApiError> {
    tracing::debug!(request_id = %call.0.request_id, "consent options asked");
    let rows = queries::offered(pool.inner()).await?;
    let forms = rows.iter().map(rules::summary).collect();
    let owned = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    Ok(Json(ConsentOptions {
        forms,
        categories: owned(&CATEGORIES),
        purposes: owned(&PURPOSES),
        tpo_purpose: TPO_PURPOSE.into(),
        tpo_covers: owned(&TPO_COVERS),
        classes: CLASSES
            .iter()
            .map(|(class, _, description)| RecipientClass {
                class: (*class).into(),
                description: (*description).into(),
            })
            .collect(),
        expiry_events: owned(&EXPIRY_EVENTS),
    }))
}

/// A form offered for signing, with its exact text.
#[get("/internal/v1/consent-forms/<version>")]
async fn form(call: InternalCall, version: &str, pool: &State<PgPool>) -> Result<Json<FormText>, ApiError> {
    tracing::debug!(request_id = %call.0.request_id, "consent form asked");
    let row = queries::offered_one(pool.inner(), version).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(FormText { form: rules::summary(&row), text: row.body }))
}

pub fn routes() -> Vec<Route> {
    routes![options, form]
}
