//! The one error body every service answers with:
//! `{"error":{"code":"not_found","message":"...","request_id":"..."}}`.
//!
//! Policy: each area maps its failures onto [`ApiError`]; an `Internal` error's cause goes to the
//! log with the request id and the client sees only "internal error". Auth failures tell the
//! client a generic message; the exact reason is logged where it is decided.

use serde::{Deserialize, Serialize};

// How services answer with the body: built only with the `server` feature, so a client (the
// staff CLI) reads the body without linking Rocket or sqlx.
#[cfg(feature = "server")]
mod responses;
#[cfg(feature = "server")]
pub use responses::*;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// A stable, machine-readable code, e.g. `not_found`.
    pub code: String,
    /// A human-readable message; never contains PHI, tokens or internal causes.
    pub message: String,
    /// The `x-request-id` of this request, to quote to support.
    pub request_id: String,
}
