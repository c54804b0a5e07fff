//! The request guards through which a handler gets verified claims, and the body check.

#[allow(unused_imports)]
use super::*;

/// The hash of the body the verified assertion covers, for the body guard to compare.
struct CoveredBody(Option<String>);

/// Called by the JSON body guard on `/internal/` routes with the bytes it read: they must be the
/// bytes the assertion was made for. Logs and refuses otherwise.
pub fn check_body(request: &Request<'_>, body: &[u8]) -> Result<(), Status> {
    let covered = &request.local_cache(|| CoveredBody(None)).0;
    let refusal = match covered {
        Some(hash) if *hash == body_hash(body) => return Ok(()),
        Some(_) => "body hash does not match the body",
        None => "body not covered by a verified assertion",
    };
    log_refusal(request, &Refusal::Invalid(refusal.into()));
    request.local_cache(|| ErrorMessage(Some(GENERIC_401.to_owned())));
    Err(Status::Unauthorized)
}

const GENERIC_401: &str = "a valid internal assertion is required";

fn log_refusal(request: &Request<'_>, refusal: &Refusal) {
    let service = request.rocket().state::<Verifier>().map(|v| v.service.as_str()).unwrap_or_default();
    let route = request.route().map(|r| r.uri.path().to_string()).unwrap_or_default();
    let request_id = RequestId::of(request);
    if let Refusal::Replayed(_) = refusal {
        tracing::error!(service, request_id = %request_id, route = %route, method = request.method().as_str(),
            reason = %refusal, alarm = "replay", "internal call refused: REPLAYED ASSERTION");
    } else {
        tracing::warn!(service, request_id = %request_id, route = %route, method = request.method().as_str(),
            reason = %refusal, "internal call refused");
    }
}

/// A verified internal caller. Routes under `/internal/` take this guard; nothing else yields it.
#[derive(Debug, Clone)]
pub struct InternalCall(pub Claims);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for InternalCall {
    type Error = Refusal;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Refusal> {
        let request_id = RequestId::of(request);
        let (Some(verifier), Some(pool)) =
            (request.rocket().state::<Verifier>(), request.rocket().state::<sqlx::PgPool>())
        else {
            tracing::error!(request_id = %request_id, "internal route mounted without a verifier or database");
            return Outcome::Error((Status::InternalServerError, Refusal::Missing));
        };
        let route = request.route().map(|r| r.uri.path().to_string()).unwrap_or_default();
        let path_and_query = request.uri().to_string();
        let headers = request.headers();
        let has_body = headers.get_one("content-length").is_some_and(|l| l.trim() != "0")
            || headers.get_one("transfer-encoding").is_some();
        let presented = Presented {
            method: request.method().as_str(),
            route: &route,
            path_and_query: &path_and_query,
            has_body,
            request_id,
        };
        let token = headers.get_one("authorization").and_then(|h| h.strip_prefix("Bearer ")).map(str::trim);
        let result = match token {
            None => Err(Refusal::Missing),
            Some(token) => match verifier.verify(token, &presented) {
                // Over TLS, the assertion's signer must also be the certificate's holder: a
                // stolen signing key alone does not make a caller.
                Ok(claims) => match crate::tls::caller_certificate_matches(request, claims.iss).await {
                    Some(Err(reason)) => Err(Refusal::Certificate(reason)),
                    Some(Ok(())) | None => match spend(pool, &claims).await {
                        Ok(true) => Ok(claims),
                        Ok(false) => Err(Refusal::Replayed(claims.jti)),
                        Err(e) => Err(Refusal::Unavailable(e.to_string())),
                    },
                },
                Err(refusal) => Err(refusal),
            },
        };
        match result {
            Ok(claims) => {
                if has_body {
                    request.local_cache(|| CoveredBody(Some(claims.bsh.clone())));
                }
                Outcome::Success(InternalCall(claims))
            }
            Err(refusal) => {
                log_refusal(request, &refusal);
                let message = match refusal.status() {
                    Status::Forbidden => "caller not permitted for this route and purpose",
                    Status::ServiceUnavailable => "service unavailable",
                    _ => GENERIC_401,
                };
                request.local_cache(|| ErrorMessage(Some(message.to_owned())));
                Outcome::Error((refusal.status(), refusal))
            }
        }
    }
}

/// A verified internal caller whose body is streamed and ends with a seal
/// ([`Signer::sign_streamed`]). The route reads the body itself and must check the seal with
/// [`Verifier::check_stream`] before it keeps anything it read.
#[derive(Debug, Clone)]
pub struct StreamedCall(pub Claims);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for StreamedCall {
    type Error = Refusal;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Refusal> {
        let call = match request.guard::<InternalCall>().await {
            Outcome::Success(call) => call,
            Outcome::Error(e) => return Outcome::Error(e),
            Outcome::Forward(f) => return Outcome::Forward(f),
        };
        if call.0.bsh != STREAMED_BODY {
            let refusal = Refusal::Invalid("the assertion is not for a streamed body".into());
            log_refusal(request, &refusal);
            request.local_cache(|| ErrorMessage(Some(GENERIC_401.to_owned())));
            return Outcome::Error((Status::Unauthorized, refusal));
        }
        Outcome::Success(StreamedCall(call.0))
    }
}
