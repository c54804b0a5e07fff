//! Who decides a verification request. An automated eligibility check (a clearinghouse's
//! 270/271 exchange, a state Medicaid portal) is out of reach here, so the one provider is
//! [`ManualReview`]: it never answers, and a caseworker on the beneficiary's care team decides.

use std::sync::Arc;

use common::insurance::{InsuranceDetails, InsuranceStatus};

/// Decides insurance verification requests, or leaves them to a caseworker.
#[rocket::async_trait]
pub trait EligibilityProvider: Send + Sync {
    /// Recorded with each request: who decides it.
    fn name(&self) -> &'static str;
    /// An answer for these member details, or `None` to leave the request pending for staff.
    async fn check(&self, details: &InsuranceDetails) -> Option<InsuranceStatus>;
}

/// The manual workflow: no automatic answer; a caseworker decides.
pub struct ManualReview;

#[rocket::async_trait]
impl EligibilityProvider for ManualReview {
    fn name(&self) -> &'static str {
        "manual"
    }

    async fn check(&self, _details: &InsuranceDetails) -> Option<InsuranceStatus> {
        None
    }
}

/// The provider public-api runs with.
pub type Provider = Arc<dyn EligibilityProvider>;

pub fn provider() -> Provider {
    Arc::new(ManualReview)
}
