//! CORS for the frontend: only the configured origins (`service.auth.allowed_origins`), never a
//! wildcard, since requests carry credentials. Preflights from other origins are refused.

use rocket::fairing::{Fairing, Info, Kind};
use rocket::http::{Header, Status};
use rocket::{options, routes, Request, Response, Route, State};

use common::error::ErrorResponse;

use crate::auth::AuthSettings;
use crate::meta::RequestMeta;

const METHODS: &str = "GET, POST, PUT, PATCH, DELETE";
const HEADERS: &str = "authorization, content-type, x-request-id";
const EXPOSED: &str = "x-request-id, retry-after";

fn allowed<'a>(request: &'a Request<'_>, settings: &AuthSettings) -> Option<&'a str> {
    request.headers().get_one("origin").filter(|o| settings.allows_origin(o))
}

pub struct Cors;

#[rocket::async_trait]
impl Fairing for Cors {
    fn info(&self) -> Info {
        Info { name: "cors", kind: Kind::Response }
    }

    async fn on_response<'r>(&self, request: &'r Request<'_>, response: &mut Response<'r>) {
        response.adjoin_header(Header::new("vary", "Origin"));
        let Some(settings) = request.rocket().state::<AuthSettings>() else { return };
        if let Some(origin) = allowed(request, settings) {
            response.set_header(Header::new("access-control-allow-origin", origin.to_owned()));
            response.set_header(Header::new("access-control-allow-credentials", "true"));
            response.set_header(Header::new("access-control-expose-headers", EXPOSED));
        }
    }
}

/// Answers every preflight: 204 with the allowed methods and headers for an allowed origin,
/// 403 otherwise.
#[options("/<_..>")]
pub fn preflight(meta: RequestMeta, settings: &State<AuthSettings>) -> Result<PreflightOk, ErrorResponse> {
    match &meta.origin {
        Some(origin) if settings.allows_origin(origin) => Ok(PreflightOk),
        other => {
            tracing::warn!(request_id = %meta.request_id, origin = ?other, "CORS preflight refused");
            Err(ErrorResponse(Status::Forbidden))
        }
    }
}

pub struct PreflightOk;

impl<'r> rocket::response::Responder<'r, 'static> for PreflightOk {
    fn respond_to(self, _: &'r Request<'_>) -> rocket::response::Result<'static> {
        Response::build()
            .status(Status::NoContent)
            .header(Header::new("access-control-allow-methods", METHODS))
            .header(Header::new("access-control-allow-headers", HEADERS))
            .header(Header::new("access-control-max-age", "600"))
            .ok()
    }
}

pub fn routes() -> Vec<Route> {
    routes![preflight]
}
