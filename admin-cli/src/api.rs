//! The one way the CLI reaches SecondWind: HTTPS to public-api, as the signed-in person. A
//! refusal becomes a [`Failure`] with the server's message, its request id, and what to do next.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use wire::ErrorBody;

use crate::failure::{Exit, Failure, Result};
use crate::settings::Credentials;

pub struct Api {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Api {
    /// A client for `base` (already checked by [`crate::settings::check_url`]).
    pub fn new(base: String, token: Option<String>) -> Result<Self> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("secondwind-admin/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            .https_only(!base.starts_with("http://"))
            // The token goes to the server named and nowhere else: no proxy from the
            // environment (it would carry a loopback http request over the network), and no
            // redirects (a POST body would be sent again to wherever the server points).
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Failure::failed(format!("starting the HTTP client: {e}")))?;
        Ok(Self { http, base, token })
    }

    /// A client carrying the stored session, which must have been issued by `base`.
    pub fn signed_in(base: String, credentials: Option<Credentials>) -> Result<Self> {
        let credentials = credentials
            .ok_or_else(|| Failure::denied("not signed in: run `secondwind-admin login` first".to_owned()))?;
        if credentials.api_url != base {
            return Err(Failure::denied(format!(
                "your session is for {}, not {base}: run `secondwind-admin login --api-url {base}`",
                credentials.api_url
            )));
        }
        if credentials.expires_at <= time::OffsetDateTime::now_utc().unix_timestamp() {
            return Err(Failure::denied("your sign-in has expired: run `secondwind-admin login` again".to_owned()));
        }
        Self::new(base, Some(credentials.access_token))
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.call::<(), T>(Method::GET, path, None).await
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn put<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        self.call(Method::PUT, path, Some(body)).await
    }

    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.call::<(), T>(Method::DELETE, path, None).await
    }

    pub async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T> {
        self.call_keeping_refresh(method, path, body).await.map(|(value, _)| value)
    }

    /// A POST for work that takes as long as the data is large (every trail verified): the
    /// server's own bound, ten minutes, rather than the usual two.
    pub async fn post_long<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.send(Method::POST, path, None::<&()>, Some(Duration::from_secs(660))).await.map(|(value, _)| value)
    }

    /// Like [`Api::call`], also returning the refresh token the answer set in its `sw_refresh`
    /// cookie (sign-in answers set one).
    pub async fn call_keeping_refresh<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<(T, Option<String>)> {
        self.send(method, path, body, None).await
    }

    async fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        timeout: Option<Duration>,
    ) -> Result<(T, Option<String>)> {
        let url = format!("{}/api/v1{path}", self.base);
        let mut request = self.http.request(method, &url);
        if let Some(timeout) = timeout {
            request = request.timeout(timeout);
        }
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| {
            Failure::failed(format!(
                "cannot reach {}: {} (is public-api running? check --api-url or SECONDWIND_API_URL)",
                self.base,
                without_url(&e)
            ))
        })?;
        let status = response.status();
        let refresh = response
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.split(';').next()?.trim().strip_prefix("sw_refresh="))
            .find(|v| !v.is_empty())
            .map(str::to_owned);
        let bytes = read_capped(response, &self.base).await?;
        if status.is_success() {
            let bytes = if bytes.is_empty() { &b"null"[..] } else { &bytes[..] };
            let value = serde_json::from_slice(bytes).map_err(|e| {
                Failure::failed(format!(
                    "the server's answer was not understood ({e}): is this CLI older than the server?"
                ))
            })?;
            return Ok((value, refresh));
        }
        Err(refusal(status, &bytes))
    }
}

/// The largest answer read: every page the API serves is far smaller.
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

async fn read_capped(mut response: reqwest::Response, base: &str) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| Failure::failed(format!("reading the answer from {base}: {}", without_url(&e))))?
    {
        if bytes.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(Failure::failed(format!("{base} sent an answer over 16 MiB; refused")));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// Follows pages while the cursor moves strictly forward (a server repeating a cursor would
/// otherwise keep the CLI reading forever).
pub fn next_page(previous: Option<i64>, next: Option<i64>) -> Result<Option<i64>> {
    match (previous, next) {
        (Some(p), Some(n)) if n <= p => {
            Err(Failure::failed(format!("the server's page cursor went from {p} back to {n}; stopped")))
        }
        (_, next) => Ok(next),
    }
}

/// reqwest's errors name the URL, which may carry query parameters; keep the cause only.
fn without_url(e: &reqwest::Error) -> String {
    use std::error::Error;
    let mut cause = e.source();
    let mut last = None;
    while let Some(c) = cause {
        last = Some(c.to_string());
        cause = c.source();
    }
    last.unwrap_or_else(|| if e.is_timeout() { "timed out".into() } else { "request failed".into() })
}

/// The failure for a refused request, from the one error body shape.
pub fn refusal(status: StatusCode, body: &[u8]) -> Failure {
    let parsed: Option<ErrorBody> = serde_json::from_slice(body).ok();
    let (message, request_id) = match &parsed {
        Some(b) => (crate::output::printable(&b.error.message), crate::output::printable(&b.error.request_id)),
        None => (status.canonical_reason().unwrap_or("error").to_owned(), String::new()),
    };
    let quoted = if request_id.is_empty() { String::new() } else { format!(" (request id {request_id})") };
    match status {
        StatusCode::UNAUTHORIZED => Failure::new(
            Exit::Denied,
            format!("not signed in, or your session has ended{quoted}: run `secondwind-admin login`"),
        ),
        StatusCode::FORBIDDEN => Failure::new(
            Exit::Denied,
            format!(
                "permission denied: {message}{quoted}. Your roles do not allow this \
                 (see `secondwind-admin whoami`); an admin can grant roles"
            ),
        ),
        StatusCode::NOT_FOUND => {
            Failure::new(Exit::NotFound, format!("not found{quoted}: check the id, or that it is assigned to you"))
        }
        StatusCode::CONFLICT => {
            Failure::failed(format!("refused: {message}{quoted}. Look again (`show`) and retry if it still applies"))
        }
        StatusCode::UNPROCESSABLE_ENTITY | StatusCode::BAD_REQUEST => {
            Failure::new(Exit::Usage, format!("refused: {message}{quoted}"))
        }
        StatusCode::TOO_MANY_REQUESTS => Failure::failed(format!("too many requests{quoted}: wait a minute and retry")),
        s if s.is_server_error() => Failure::failed(format!(
            "the server failed ({s}){quoted}: try again; if it persists, quote the request id to support"
        )),
        s => Failure::failed(format!("refused ({s}): {message}{quoted}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_map_to_exit_codes_and_keep_the_request_id() {
        let body = br#"{"error":{"code":"forbidden","message":"forbidden","request_id":"req-7"}}"#;
        let f = refusal(StatusCode::FORBIDDEN, body);
        assert_eq!(f.exit, Exit::Denied);
        assert!(f.message.contains("req-7"), "{}", f.message);
        assert_eq!(refusal(StatusCode::UNAUTHORIZED, b"").exit, Exit::Denied);
        assert_eq!(refusal(StatusCode::NOT_FOUND, b"<html>").exit, Exit::NotFound);
        assert_eq!(refusal(StatusCode::CONFLICT, body).exit, Exit::Failed);
        assert_eq!(refusal(StatusCode::UNPROCESSABLE_ENTITY, body).exit, Exit::Usage);
        assert_eq!(refusal(StatusCode::BAD_GATEWAY, body).exit, Exit::Failed);
    }
}
