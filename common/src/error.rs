//! The one error body every service answers with:
//! `{"error":{"code":"not_found","message":"...","request_id":"..."}}`.
//!
//! Policy: each area maps its failures onto [`ApiError`]; an `Internal` error's cause goes to the
//! log with the request id and the client sees only "internal error". Auth failures tell the
//! client a generic message; the exact reason is logged where it is decided.

mod responses;
pub use responses::*;
pub use wire::{ErrorBody, ErrorDetail};
