//! The end-to-end tests: one binary, one module per feature, each test against all three services
//! started in-process by the harness (`harness::TestApp`) on fresh databases.

mod anchors;
mod applications;
mod audit;
mod audit_sweep;
mod auth;
mod consent_forms;
mod consent_property;
mod consents;
mod databases;
mod documents;
mod edge;
mod email;
mod erasure;
mod errors;
mod faults;
mod group_commit;
mod internal_auth;
mod locks;
mod oidc;
mod phi;
mod phi_access;
mod protect;
mod run_script;
mod scanner;
mod system;
mod tls;
mod vault;
mod wiring;
