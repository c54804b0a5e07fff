//! Which mounted routes a request's path reaches, whatever its method: for the 405 the default
//! catcher gives a path that exists under another method (with `Allow`), and for refusing a
//! repeated query parameter on routes that take query parameters.
//!
//! Paths are compared segment by segment, decoded and without empty segments, as Rocket's router
//! compares them: a `<name>` segment matches any one segment, a trailing `<name..>` any rest.
//! `OPTIONS` routes (the CORS preflight answers every path) and plumbing under `/__` are left
//! out: they say nothing about what a path offers.

use rocket::fairing::{Fairing, Info, Kind};
use rocket::http::uri::Origin;
use rocket::http::{Method, Status};
use rocket::{get, routes, Data, Request, Route};

use crate::error::{ErrorMessage, ErrorResponse};

/// Whether a route's path pattern (`/api/v1/applications/<id>`) matches the decoded segments.
fn path_matches(pattern: &str, segments: &[&str]) -> bool {
    let mut pattern_segments = pattern.split('/').filter(|s| !s.is_empty());
    let mut request_segments = segments.iter();
    loop {
        match (pattern_segments.next(), request_segments.next()) {
            (Some(p), _) if p.starts_with('<') && p.ends_with("..>") => return true,
            (Some(p), Some(_)) if p.starts_with('<') && p.ends_with('>') => {}
            (Some(p), Some(r)) if p == *r => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// The mounted routes, other than `OPTIONS` and plumbing, whose path matches the request's.
fn routes_for_path<'a>(request: &'a Request<'_>) -> impl Iterator<Item = &'a Route> + 'a {
    let segments: Vec<&str> = request.uri().path().segments().collect();
    request
        .rocket()
        .routes()
        .filter(|route| route.method != Method::Options && !route.uri.path().starts_with("/__"))
        .filter(move |route| path_matches(route.uri.path(), &segments))
}

/// Whether `route` answers `method` (Rocket answers `HEAD` with a `GET` route).
fn answers(route: &Route, method: Method) -> bool {
    route.method == method || (method == Method::Head && route.method == Method::Get)
}

/// For a request no route answered: the value of `Allow` when its path exists under other
/// methods only, e.g. `GET` for `POST /health`. `None` when a route with the request's method
/// matches the path (it declined the request: its 404 stands), when nothing matches, and for
/// `OPTIONS`, whose answers the preflight route owns.
pub fn allowed_methods(request: &Request<'_>) -> Option<String> {
    let method = request.method();
    if method == Method::Options {
        return None;
    }
    let mut allowed = Vec::new();
    for route in routes_for_path(request) {
        if answers(route, method) {
            return None;
        }
        if !allowed.contains(&route.method) {
            allowed.push(route.method);
        }
    }
    const ORDER: [Method; 7] =
        [Method::Get, Method::Head, Method::Post, Method::Put, Method::Patch, Method::Delete, Method::Trace];
    allowed.sort_by_key(|m| ORDER.iter().position(|o| o == m).unwrap_or(ORDER.len()));
    (!allowed.is_empty()).then(|| allowed.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", "))
}

const REPEATED_PATH: &str = "/__repeated_query_parameter";

/// Refuses a query parameter sent more than once (`?limit=5&limit=6`) on a route that takes
/// query parameters: Rocket would silently use the first. The request is routed to a handler
/// answering 422 naming the parameter, so it never reaches the real route. Attach it after the
/// rate limits, so a refused request still counts against them.
pub struct SingleQueryParameters;

/// The first query parameter sent twice, if any.
fn repeated_parameter<'a>(request: &'a Request<'_>) -> Option<&'a str> {
    let query = request.uri().query()?;
    let names: Vec<&str> = query.segments().map(|(name, _)| name).collect();
    names.iter().enumerate().find(|(i, name)| names[..*i].contains(name)).map(|(_, name)| *name)
}

/// A parameter name fit to quote back: short, of letters, digits, `_`, `-` and `.` only.
fn quotable(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

#[rocket::async_trait]
impl Fairing for SingleQueryParameters {
    fn info(&self) -> Info {
        Info { name: "single query parameters", kind: Kind::Request }
    }

    async fn on_request(&self, request: &mut Request<'_>, _: &mut Data<'_>) {
        let Some(name) = repeated_parameter(request) else { return };
        let method = request.method();
        let takes_query = routes_for_path(request).any(|r| answers(r, method) && r.uri.query().is_some());
        if !takes_query {
            return;
        }
        let message = if quotable(name) {
            format!("{name}: send it once")
        } else {
            "a query parameter was sent more than once: send each once".to_owned()
        };
        request.local_cache(|| ErrorMessage(Some(message.clone())));
        request.set_method(Method::Get);
        request.set_uri(Origin::parse(REPEATED_PATH).unwrap_or(Origin::ROOT));
    }
}

#[get("/__repeated_query_parameter")]
fn repeated_query_parameter() -> ErrorResponse {
    ErrorResponse(Status::UnprocessableEntity)
}

/// The route requests with a repeated query parameter are sent to.
pub fn routes() -> Vec<Route> {
    routes![repeated_query_parameter]
}

#[cfg(test)]
mod tests {
    use super::path_matches;

    #[test]
    fn paths_match_segment_by_segment() {
        assert!(path_matches("/health", &["health"]));
        assert!(path_matches("/", &[]));
        assert!(!path_matches("/health", &[]));
        assert!(!path_matches("/health", &["health", "x"]));
        assert!(path_matches("/api/v1/applications/<id>", &["api", "v1", "applications", "x"]));
        assert!(!path_matches("/api/v1/applications/<id>", &["api", "v1", "applications"]));
        assert!(!path_matches("/api/v1/applications/<id>", &["api", "v1", "documents", "x"]));
        assert!(path_matches("/files/<rest..>", &["files"]));
        assert!(path_matches("/files/<rest..>", &["files", "a", "b"]));
        assert!(!path_matches("/files/<rest..>", &["other"]));
    }
}
