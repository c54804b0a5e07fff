//! Typed clients for the internal services and the wire types they exchange. Every call signs
//! a fresh assertion for its audience and forwards the request id: [`InternalClient`] is the
//! signed channel, [`PhiVaultClient`] and [`ConsentClient`] the two services' APIs on it.

pub use crate::compliance::{
    AccessEntry, AccessLogPage, AccessReview, AccountedDisclosure, AccountingPage, ReviewRequest,
};
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::assertion::{CallContext, RequestBinding, Signer};
use crate::consents::{
    ConsentDetail, ConsentOptions, ConsentPage, ConsentQuery, ConsentView, DirectoryEntry, DirectoryPage,
    ExpiryEventRecorded, FormText, NewDirectoryEntry, NewExpiryEvent, RevokeConsent, SignConsent, SubjectConsent,
};
use crate::{request_id, ServiceName};

mod consent;
mod phi_vault;

pub use consent::*;
pub use phi_vault::*;

/// One check in a readiness report.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Check {
    /// What was checked: `database`, or a peer service's name.
    pub name: String,
    pub ok: bool,
    /// Why it failed; never contains credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A service's readiness: its own database and, through signed calls, its peers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Readiness {
    pub service: String,
    pub ready: bool,
    pub checks: Vec<Check>,
}

impl Readiness {
    pub fn new(service: ServiceName, checks: Vec<Check>) -> Self {
        Self { service: service.as_str().to_owned(), ready: checks.iter().all(|c| c.ok), checks }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{peer} unreachable: {message}")]
    Unreachable { peer: ServiceName, message: String },
    #[error("{peer} answered {status}")]
    Status { peer: ServiceName, status: u16 },
    /// The consent service refused a request as invalid (422) or conflicting (409), saying why
    /// in its error body: a message about the consent asked for, meant for the person asking.
    #[error("{peer} answered {status}: {message}")]
    Refused { peer: ServiceName, status: u16, message: String },
    #[error("{peer} sent an unreadable body: {message}")]
    Body { peer: ServiceName, message: String },
    #[error(transparent)]
    Sign(#[from] crate::assertion::SignError),
}

/// A path segment a person typed, percent-encoded so it stays one segment.
fn path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The signed HTTP channel to one peer.
#[derive(Clone)]
pub struct InternalClient {
    peer: ServiceName,
    base: reqwest::Url,
    http: reqwest::Client,
    signer: Arc<Signer>,
}

impl InternalClient {
    /// The service this client calls.
    pub fn peer(&self) -> ServiceName {
        self.peer
    }

    pub fn new(peer: ServiceName, base: &str, signer: Arc<Signer>, timeout: Duration) -> Result<Self, String> {
        Self::with_tls(peer, base, signer, timeout, None)
    }

    /// A client that, with `tls`, speaks TLS 1.3 only to `https` URLs, trusts only the
    /// internal CA and presents this service's certificate (mutual TLS).
    pub fn with_tls(
        peer: ServiceName,
        base: &str,
        signer: Arc<Signer>,
        timeout: Duration,
        tls: Option<&crate::tls::ClientTls>,
    ) -> Result<Self, String> {
        let base = reqwest::Url::parse(base).map_err(|e| format!("internal.peers.{peer}.url: {e}"))?;
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(3))
            // An assertion is bound to the one URL it was signed for; a redirect would carry it
            // (and whatever the body holds) somewhere else. Never follow one.
            .redirect(reqwest::redirect::Policy::none());
        if let Some(tls) = tls {
            builder = tls.apply(builder);
        }
        let http = builder.build().map_err(|e| format!("http client: {e}"))?;
        Ok(Self { peer, base, http, signer })
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str, ctx: &CallContext) -> Result<T, ClientError> {
        let response = self.send(reqwest::Method::GET, path, ctx, None::<&()>).await?;
        self.json(response).await
    }

    /// A POST without a body for work that takes as long as the data is large (a trail
    /// verified end to end): up to ten minutes rather than the client's timeout.
    pub async fn post_json<T: DeserializeOwned>(&self, path: &str, ctx: &CallContext) -> Result<T, ClientError> {
        let response = self.send_with_timeout(reqwest::Method::POST, path, ctx, Duration::from_secs(600)).await?;
        self.json(response).await
    }

    /// Sends a request with an assertion bound to its method, path, query and body;
    /// non-success statuses (redirects included) become [`ClientError::Status`].
    pub async fn send<B: Serialize + ?Sized>(
        &self,
        method: reqwest::Method,
        path: &str,
        ctx: &CallContext,
        body: Option<&B>,
    ) -> Result<reqwest::Response, ClientError> {
        self.send_inner(method, path, ctx, body, None).await
    }

    /// [`Self::send`] without a body, with `timeout` in place of the client's (a long transfer).
    pub async fn send_with_timeout(
        &self,
        method: reqwest::Method,
        path: &str,
        ctx: &CallContext,
        timeout: Duration,
    ) -> Result<reqwest::Response, ClientError> {
        self.send_inner(method, path, ctx, None::<&()>, Some(timeout)).await
    }

    async fn send_inner<B: Serialize + ?Sized>(
        &self,
        method: reqwest::Method,
        path: &str,
        ctx: &CallContext,
        body: Option<&B>,
        timeout: Option<Duration>,
    ) -> Result<reqwest::Response, ClientError> {
        let peer = self.peer;
        let (url, path_and_query) = self.target(path)?;
        let bytes = match body {
            Some(body) => serde_json::to_vec(body).map_err(|e| ClientError::Body { peer, message: e.to_string() })?,
            None => Vec::new(),
        };
        let binding = RequestBinding { method: method.as_str(), path_and_query: &path_and_query, body: &bytes };
        let token = self.signer.sign(peer, ctx, binding)?;
        let mut request =
            self.http.request(method, url).bearer_auth(token).header(request_id::HEADER, ctx.request_id().as_str());
        if body.is_some() {
            request = request.header(reqwest::header::CONTENT_TYPE, "application/json").body(bytes);
        }
        if let Some(timeout) = timeout {
            request = request.timeout(timeout);
        }
        // Errors name no URL: its path and query may carry ids and filters, and errors are logged.
        let response = request
            .send()
            .await
            .map_err(|e| ClientError::Unreachable { peer, message: e.without_url().to_string() })?;
        let status = response.status();
        if !status.is_success() {
            let status = status.as_u16();
            // Only the consent service's refusals are passed on: they speak of the consent the
            // person asked for. Others may echo a record's contents and stay behind a fixed text.
            if peer == ServiceName::Consent && (status == 409 || status == 422) {
                if let Ok(body) = response.json::<crate::ErrorBody>().await {
                    return Err(ClientError::Refused { peer, status, message: body.error.message });
                }
            }
            return Err(ClientError::Status { peer, status });
        }
        Ok(response)
    }

    /// Sends a body streamed from `body`, ending it with the seal of an assertion made for
    /// a streamed body ([`Signer::sign_streamed`]). An error from `body` aborts the request, so
    /// the peer never sees a complete, sealed body. `timeout` replaces the client's for this
    /// transfer. A 409, 413, 415, 422 or 503 passes the peer's message on ([`ClientError::Refused`]):
    /// the routes that take streams speak there of the bytes sent, never of stored records.
    pub async fn send_streamed<S>(
        &self,
        path: &str,
        ctx: &CallContext,
        body: S,
        timeout: Duration,
    ) -> Result<reqwest::Response, ClientError>
    where
        S: futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static,
    {
        use futures_util::StreamExt;
        let peer = self.peer;
        let (url, path_and_query) = self.target(path)?;
        let (token, seal) = self.signer.sign_streamed(peer, ctx, "POST", &path_and_query)?;
        // Each piece passes through the hash on its way; the seal of the hash follows the last.
        let start = (Box::pin(body), ring::digest::Context::new(&ring::digest::SHA256), 0u64, seal);
        let sealed = futures_util::stream::unfold(Some(start), |state| async move {
            let (mut body, mut digest, length, seal) = state?;
            match body.next().await {
                Some(Ok(bytes)) => {
                    digest.update(&bytes);
                    let length = length + bytes.len() as u64;
                    Some((Ok(bytes), Some((body, digest, length, seal))))
                }
                Some(Err(e)) => Some((Err(e), None)),
                None => Some((Ok(bytes::Bytes::copy_from_slice(&seal.seal(digest.finish().as_ref(), length))), None)),
            }
        });
        let response = self
            .http
            .post(url)
            .timeout(timeout)
            .bearer_auth(token)
            .header(request_id::HEADER, ctx.request_id().as_str())
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(reqwest::Body::wrap_stream(sealed))
            .send()
            .await
            .map_err(|e| ClientError::Unreachable { peer, message: e.without_url().to_string() })?;
        let status = response.status().as_u16();
        if response.status().is_success() {
            return Ok(response);
        }
        // A 503 in the service's own error shape is its own refusal (nothing was kept); one in
        // any other shape may be anything's.
        if matches!(status, 409 | 413 | 415 | 422 | 503) {
            if let Ok(body) = response.json::<crate::ErrorBody>().await {
                return Err(ClientError::Refused { peer, status, message: body.error.message });
            }
        }
        Err(ClientError::Status { peer, status })
    }

    /// The URL of `path` on the peer, and its path and query exactly as sent (what an
    /// assertion is bound to).
    fn target(&self, path: &str) -> Result<(reqwest::Url, String), ClientError> {
        let url = self.base.join(path).map_err(|e| ClientError::Unreachable {
            peer: self.peer,
            message: format!("invalid internal path: {e}"),
        })?;
        let path_and_query = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };
        Ok((url, path_and_query))
    }

    pub async fn json<T: DeserializeOwned>(&self, response: reqwest::Response) -> Result<T, ClientError> {
        response.json().await.map_err(|e| ClientError::Body { peer: self.peer, message: e.without_url().to_string() })
    }
}

impl ClientError {
    /// How a caller answers its own client when a peer failed: the peer's 404, 409, 413 and 422
    /// pass through; a peer unreachable, unavailable or shedding load (429) is 503; anything else is a
    /// 500.
    pub fn into_api_error(self) -> crate::ApiError {
        match self {
            ClientError::Status { status: 404, .. } => crate::ApiError::NotFound,
            // The peer decided this user may not (e.g. review their own break-glass access).
            ClientError::Status { status: 403, .. } => crate::ApiError::Forbidden,
            ClientError::Status { status: 413, .. } => crate::ApiError::TooLarge("record too large".into()),
            ClientError::Status { status: 422, .. } => {
                crate::ApiError::Unprocessable("the record was refused as invalid".into())
            }
            ClientError::Status { status: 503, peer } => crate::ApiError::Unavailable(format!("{peer} unavailable")),
            ClientError::Status { status: 409, .. } => {
                crate::ApiError::Conflict("refused: it conflicts with what is already recorded".into())
            }
            ClientError::Status { status: 429, peer } => crate::ApiError::Unavailable(format!("{peer} is busy")),
            ClientError::Refused { status: 409, message, .. } => crate::ApiError::Conflict(message),
            ClientError::Refused { status: 413, message, .. } => crate::ApiError::TooLarge(message),
            ClientError::Refused { status: 415, message, .. } => crate::ApiError::UnsupportedMediaType(message),
            ClientError::Refused { status: 503, message, .. } => crate::ApiError::Unavailable(message),
            ClientError::Refused { message, .. } => crate::ApiError::Unprocessable(message),
            ClientError::Unreachable { peer, message } => crate::ApiError::Unavailable(format!("{peer}: {message}")),
            other => crate::ApiError::internal(other),
        }
    }
}

/// Turns a peer's readiness answer into one check of the caller's report.
pub fn peer_check(peer: ServiceName, answer: Result<Readiness, ClientError>) -> Check {
    match answer {
        Ok(r) => Check {
            name: peer.as_str().to_owned(),
            ok: r.ready,
            detail: (!r.ready).then(|| {
                let failed: Vec<&str> = r.checks.iter().filter(|c| !c.ok).map(|c| c.name.as_str()).collect();
                format!("not ready: {}", failed.join(", "))
            }),
        },
        Err(e) => Check { name: peer.as_str().to_owned(), ok: false, detail: Some(e.to_string()) },
    }
}
