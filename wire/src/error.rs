//! The one error body every service answers with:
//! `{"error":{"code":"not_found","message":"...","request_id":"..."}}`.

use serde::{Deserialize, Serialize};

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
