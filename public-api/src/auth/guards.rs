//! Role guards: a handler that takes [`Caseworker`], [`Admin`], [`ComplianceOfficer`],
//! [`Partner`] or [`Beneficiary`] has proved the caller holds that role (on top of everything
//! [`AuthUser`] checks), and the guard is the only way to build an internal-call context in that
//! role. So the role phi-vault is told is the role a guard checked, by construction: no handler
//! writes a role. (`CallContext::user` is a disallowed method everywhere else; see `clippy.toml`.)
//! The context carries the person's standing (user, session, roles) for a delegation token
//! minted per call (`common::user_token`); their access token itself never leaves public-api.

use std::marker::PhantomData;

use rocket::http::Status;
use rocket::request::{FromRequest, Outcome};
use rocket::Request;
use uuid::Uuid;

use common::assertion::{CallContext, Delegation};
use common::user_token::DelegationSigner;
use common::{Role, UserRole};

use super::{refuse, AuthError, AuthUser};
use crate::meta::RequestMeta;

/// A role a person can act in through public-api.
pub trait ActingRole: Send + Sync + 'static {
    /// The role internal calls are made in.
    const ROLE: Role;
    /// The role the person must hold.
    const HELD: UserRole;
}

/// Marker types naming each role for [`Acting`].
pub mod role {
    use super::{ActingRole, Role, UserRole};

    macro_rules! roles {
        ($($name:ident),* $(,)?) => {$(
            #[derive(Debug, Clone, Copy)]
            pub struct $name;
            impl ActingRole for $name {
                const ROLE: Role = Role::$name;
                const HELD: UserRole = UserRole::$name;
            }
        )*};
    }

    roles!(Beneficiary, Partner, Caseworker, Admin, ComplianceOfficer);
}

/// A signed-in caller proved to hold role `R`.
#[derive(Clone)]
pub struct Acting<R: ActingRole> {
    user: AuthUser,
    signer: std::sync::Arc<DelegationSigner>,
    _role: PhantomData<R>,
}

impl<R: ActingRole> std::fmt::Debug for Acting<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acting").field("user", &self.user).field("role", &R::ROLE).finish_non_exhaustive()
    }
}

pub type Beneficiary = Acting<role::Beneficiary>;
pub type Partner = Acting<role::Partner>;
pub type Caseworker = Acting<role::Caseworker>;
pub type Admin = Acting<role::Admin>;
pub type ComplianceOfficer = Acting<role::ComplianceOfficer>;

impl<R: ActingRole> Acting<R> {
    pub fn user_id(&self) -> Uuid {
        self.user.user_id
    }

    /// The account, as the session check read it at the start of this request.
    pub fn account(&self) -> &crate::users::rules::Account {
        &self.user.account
    }

    /// The context of an internal call made for this person, in role `R`, for `purpose`. Each
    /// call it signs carries a delegation token of their user, session and role `R`.
    pub fn call(&self, meta: &RequestMeta, purpose: &str) -> CallContext {
        let delegation =
            Delegation { user: self.user.user_id, session: self.user.session_id, signer: self.signer.clone() };
        #[allow(clippy::disallowed_methods)] // the one place a person's call context is built
        CallContext::user(R::ROLE, purpose, meta.request_id.clone(), delegation)
    }
}

#[rocket::async_trait]
impl<'r, R: ActingRole> FromRequest<'r> for Acting<R> {
    type Error = AuthError;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, AuthError> {
        let user = match AuthUser::from_request(request).await {
            Outcome::Success(user) => user,
            Outcome::Error(e) => return Outcome::Error(e),
            Outcome::Forward(f) => return Outcome::Forward(f),
        };
        if !user.roles.contains(&R::HELD) {
            return refuse(request, Status::Forbidden, AuthError::NotPermitted(format!("not a {}", R::ROLE)));
        }
        let Some(signer) = request.rocket().state::<std::sync::Arc<DelegationSigner>>() else {
            return refuse(request, Status::InternalServerError, AuthError::Unavailable("no delegation signer".into()));
        };
        Outcome::Success(Acting { user, signer: signer.clone(), _role: PhantomData })
    }
}

/// Staff reviewing applications and insurance: a caseworker, or an admin. Built from the verified
/// roles; an admin acts as admin when they hold both.
pub struct Reviewer {
    pub user: AuthUser,
    /// `Admin` or `Caseworker`.
    pub role: UserRole,
}

impl Reviewer {
    pub fn is_admin(&self) -> bool {
        self.role == UserRole::Admin
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Reviewer {
    type Error = AuthError;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, AuthError> {
        let user = match AuthUser::from_request(request).await {
            Outcome::Success(user) => user,
            Outcome::Error(e) => return Outcome::Error(e),
            Outcome::Forward(f) => return Outcome::Forward(f),
        };
        let role = if user.roles.contains(&UserRole::Admin) {
            UserRole::Admin
        } else if user.roles.contains(&UserRole::Caseworker) {
            UserRole::Caseworker
        } else {
            // The route's permission is held only by these roles; anything else is a policy
            // mistake, refused.
            return refuse(request, Status::Forbidden, AuthError::NotPermitted("neither caseworker nor admin".into()));
        };
        Outcome::Success(Reviewer { user, role })
    }
}
