//! Staff roles (caseworker, admin, compliance_officer) change in two ways only:
//! - a signed-in admin through `POST /api/v1/staff/role-changes` (`secondwind-admin users
//!   grant-role|revoke-role`): the audit row names the proven admin, never a claimed one;
//! - the first admin of a fresh installation, by `secondwind-operator users bootstrap-admin`
//!   ([`bootstrap_admin`]), refused once any admin exists: the audit row names the
//!   operating-system account.
//!
//! The reason is required and recorded in the same transaction as the change. Revoking a role
//! ends the user's sessions, so tokens carrying the old role stop working at once. Every change
//! is serialised by one advisory lock, under which the acting admin is checked again; an admin
//! ending another user's sessions (`crate::staff_sessions`) takes the same lock.

mod changes;
pub(crate) mod queries;
pub mod routes;
mod rules;

pub use changes::{bootstrap_admin, change_role};
pub use queries::find_user;
pub use routes::routes;
pub use rules::{checked_reason, staff_role, RoleChange, RoleChangeRequest, RoleError};
