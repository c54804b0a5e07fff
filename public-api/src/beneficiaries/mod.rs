//! A beneficiary's identity profile (legal name, date of birth, phone, emergency contact). It is
//! PHI: public-api validates it and forwards it to phi-vault over a signed call, keeps only the
//! record id, and never logs or stores the contents. The beneficiary reads and writes it here;
//! staff and partners read it through `crate::phi_access`, and the accounting of its disclosures
//! is `crate::disclosures`.

mod queries;
pub mod routes;
mod rules;

pub use routes::routes;
pub use rules::{BeneficiaryProfile, EmergencyContact};
