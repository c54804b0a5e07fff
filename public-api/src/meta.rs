//! Who is on the other end of a request, for the audit log: address, user agent, request id.

use std::net::IpAddr;

use rocket::request::{FromRequest, Outcome};
use rocket::Request;

use common::RequestId;

#[derive(Debug, Clone)]
pub struct RequestMeta {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    pub request_id: RequestId,
    pub origin: Option<String>,
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for RequestMeta {
    type Error = std::convert::Infallible;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        Outcome::Success(RequestMeta::of(request))
    }
}

impl RequestMeta {
    pub fn of(request: &Request<'_>) -> Self {
        RequestMeta {
            ip: common::protect::client_address(request),
            user_agent: request.headers().get_one("user-agent").map(str::to_owned),
            request_id: RequestId::of(request).clone(),
            origin: request.headers().get_one("origin").map(str::to_owned),
        }
    }

    /// An audit event about this request.
    pub fn event(
        &self,
        actor_id: Option<uuid::Uuid>,
        action: &'static str,
        resource: Option<(&'static str, String)>,
        outcome: crate::audit::Outcome,
    ) -> crate::audit::AuditEvent {
        let (resource_type, resource_id) = match resource {
            Some((t, id)) => (Some(t), Some(id)),
            None => (None, None),
        };
        crate::audit::AuditEvent {
            actor_id,
            action,
            resource_type,
            resource_id,
            ip: self.ip,
            user_agent: self.user_agent.clone(),
            request_id: Some(self.request_id.0.clone()),
            outcome,
            reason: None,
            operator: None,
        }
    }
}
