//! Typed clients for the internal services and the wire types they exchange. Every call signs
//! a fresh assertion for its audience and forwards the request id.

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

/// A PHI record to store (phi-vault encrypts it; the caller keeps only the returned id).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRecord {
    pub subject_id: uuid::Uuid,
    /// intake_conversation, coach_conversation, application_details, insurance, identity, document.
    pub category: String,
    pub content: serde_json::Value,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<time::OffsetDateTime>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordCreated {
    pub record_id: uuid::Uuid,
}

/// A decrypted record, as phi-vault returns it to a permitted caller.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub record_id: uuid::Uuid,
    pub subject_id: uuid::Uuid,
    pub category: String,
    pub content: serde_json::Value,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: time::OffsetDateTime,
    /// The vault's access-log entry for this access: what the caller's own audit trail refers to
    /// (the reason of a break-glass read stays in the vault's log, never leaves it).
    #[serde(default)]
    pub access_seq: Option<i64>,
    /// Present when the record is disclosed to a recipient outside the program: the notice
    /// that must travel with it and the consent it was disclosed under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disclosure: Option<DisclosureNotice>,
}

/// What travels with records disclosed outside the program (42 CFR §2.32): the redisclosure
/// notice, its version, and the consent relied on (none for a medical emergency, §2.51).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct DisclosureNotice {
    pub consent_id: Option<uuid::Uuid>,
    pub notice_version: String,
    /// The notice's exact text.
    pub notice: String,
}

/// A disclosure to medical personnel in a medical emergency (42 CFR §2.51): who receives the
/// records and the nature of the emergency, both entered in the accounting of disclosures. The
/// caseworker's written reason travels in the assertion, like a break-glass reason.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EmergencyDisclosure {
    pub recipient: String,
    pub nature: String,
}

impl EmergencyDisclosure {
    pub fn validate(&self) -> Result<(), crate::ApiError> {
        crate::json::printable("recipient", &self.recipient, 3..=200, false)?;
        crate::json::printable("nature", &self.nature, 10..=500, false)
    }
}

/// A date range and page of the accounting of disclosures (42 CFR §2.24, HIPAA §164.528).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountingQuery {
    /// First day included (`YYYY-MM-DD`); six years back when absent.
    pub from: Option<time::Date>,
    /// Last day included; today when absent.
    pub to: Option<time::Date>,
    pub after: Option<i64>,
    pub limit: Option<i64>,
}

impl AccountingQuery {
    /// Parses raw query parameters strictly: a malformed one is a 422 naming it.
    pub fn parse(
        from: Option<&str>,
        to: Option<&str>,
        after: Option<&str>,
        limit: Option<&str>,
    ) -> Result<Self, crate::ApiError> {
        let date = crate::json::date_param;
        let query = Self {
            from: date("from", from)?,
            to: date("to", to)?,
            after: crate::json::query_param("after", after, "an integer")?,
            limit: crate::json::page_limit(limit)?,
        };
        if let (Some(from), Some(to)) = (query.from, query.to) {
            if from > to {
                return Err(crate::ApiError::Unprocessable("from: on or before to".into()));
            }
        }
        Ok(query)
    }

    pub fn query_string(&self) -> String {
        query_of(&[
            ("from", self.from.map(|v| v.to_string())),
            ("to", self.to.map(|v| v.to_string())),
            ("after", self.after.map(|v| v.to_string())),
            ("limit", self.limit.map(|v| v.to_string())),
        ])
    }
}

/// One record's metadata: what a list shows, without contents.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RecordSummary {
    pub record_id: uuid::Uuid,
    pub category: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: time::OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub expires_at: Option<time::OffsetDateTime>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordList {
    pub records: Vec<RecordSummary>,
}

/// Filters for a page of the PHI access log, oldest first after `after_seq`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessLogQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_id: Option<uuid::Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flagged: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reviewed: Option<bool>,
    /// Who acted, as the log names them (a user id, or a service).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// `permit` or `deny`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<time::Date>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<time::Date>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_seq: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
}

/// Filters for the PHI access log. Parsed strictly: a malformed value is a 422 naming it.
#[derive(Debug, Clone, rocket::FromForm, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AccessLogFilter<'r> {
    /// Only entries about this beneficiary.
    #[param(value_type = Option<uuid::Uuid>)]
    pub subject_id: Option<&'r str>,
    /// Only break-glass entries (`true`), or only others (`false`).
    #[param(value_type = Option<bool>)]
    pub flagged: Option<&'r str>,
    /// Only reviewed entries (`true`), or only those awaiting review (`false`).
    #[param(value_type = Option<bool>)]
    pub reviewed: Option<&'r str>,
    /// Only entries where this actor acted (a user id, or a service's name).
    pub actor: Option<&'r str>,
    /// Only this action (`record.read`, `record.list`, `subject.shred`, …).
    pub action: Option<&'r str>,
    /// `permit` or `deny`.
    pub decision: Option<&'r str>,
    /// On or after this day (YYYY-MM-DD, UTC).
    #[param(value_type = Option<String>, format = Date)]
    pub from: Option<&'r str>,
    /// On or before this day (YYYY-MM-DD, UTC).
    #[param(value_type = Option<String>, format = Date)]
    pub to: Option<&'r str>,
    /// Entries after this sequence number (the previous page's `next_after_seq`).
    #[param(value_type = Option<i64>)]
    pub after_seq: Option<&'r str>,
    /// 1 to 500; 100 when absent.
    #[param(value_type = Option<i64>)]
    pub limit: Option<&'r str>,
}

impl AccessLogFilter<'_> {
    pub fn parse(&self) -> Result<AccessLogQuery, crate::ApiError> {
        let query = AccessLogQuery {
            subject_id: crate::json::query_param("subject_id", self.subject_id, "a UUID")?,
            flagged: crate::json::query_param("flagged", self.flagged, "true or false")?,
            reviewed: crate::json::query_param("reviewed", self.reviewed, "true or false")?,
            actor: crate::json::log_name("actor", self.actor)?,
            action: crate::json::log_name("action", self.action)?,
            decision: match self.decision {
                None => None,
                Some(d @ ("permit" | "deny")) => Some(d.to_owned()),
                Some(_) => return Err(crate::ApiError::Unprocessable("decision: permit or deny".into())),
            },
            from: crate::json::date_param("from", self.from)?,
            to: crate::json::date_param("to", self.to)?,
            after_seq: crate::json::query_param("after_seq", self.after_seq, "an integer")?,
            limit: crate::json::query_param("limit", self.limit, "an integer from 1 to 500")?,
        };
        if query.limit.is_some_and(|l| !(1..=500).contains(&l)) {
            return Err(crate::ApiError::Unprocessable("limit: an integer from 1 to 500".into()));
        }
        Ok(query)
    }
}

/// Checks an access-log review's outcome and note (422 naming the field).
pub fn validate_review(review: &ReviewRequest) -> Result<(), crate::ApiError> {
    if !["justified", "unjustified"].contains(&review.outcome.as_str()) {
        return Err(crate::ApiError::Unprocessable("outcome: justified or unjustified".into()));
    }
    crate::json::printable("note", &review.note, 1..=2000, true)
}

fn query_string(query: &AccessLogQuery) -> String {
    query_of(&[
        ("subject_id", query.subject_id.map(|v| v.to_string())),
        ("flagged", query.flagged.map(|v| v.to_string())),
        ("reviewed", query.reviewed.map(|v| v.to_string())),
        ("actor", query.actor.clone()),
        ("action", query.action.clone()),
        ("decision", query.decision.clone()),
        ("from", query.from.map(|v| v.to_string())),
        ("to", query.to.map(|v| v.to_string())),
        ("after_seq", query.after_seq.map(|v| v.to_string())),
        ("limit", query.limit.map(|v| v.to_string())),
    ])
}

pub(crate) use wire::query_of;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordContent {
    pub content: serde_json::Value,
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
    pub fn new(peer: ServiceName, base: &str, signer: Arc<Signer>, timeout: Duration) -> Result<Self, String> {
        let base = reqwest::Url::parse(base).map_err(|e| format!("internal.peers.{peer}.url: {e}"))?;
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(3))
            // An assertion is bound to the one URL it was signed for; a redirect would carry it
            // (and whatever the body holds) somewhere else. Never follow one.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("http client: {e}"))?;
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

/// The phi-vault's internal API.
#[derive(Clone)]
pub struct PhiVaultClient(InternalClient);

impl PhiVaultClient {
    /// The record-read route as the allowlist names it (which purposes it serves).
    pub const READ_RECORD: &'static str = "GET /internal/v1/records/<id>";

    pub fn new(inner: InternalClient) -> Self {
        Self(inner)
    }

    pub async fn ready(&self, ctx: &CallContext) -> Result<Readiness, ClientError> {
        self.0.get("/internal/v1/ready", ctx).await
    }

    pub async fn create_record(&self, ctx: &CallContext, record: &NewRecord) -> Result<RecordCreated, ClientError> {
        let response = self.0.send(reqwest::Method::POST, "/internal/v1/records", ctx, Some(record)).await?;
        self.0.json(response).await
    }

    pub async fn read_record(&self, ctx: &CallContext, id: uuid::Uuid) -> Result<Record, ClientError> {
        self.0.get(&format!("/internal/v1/records/{id}"), ctx).await
    }

    pub async fn replace_record(
        &self,
        ctx: &CallContext,
        id: uuid::Uuid,
        content: &RecordContent,
    ) -> Result<Record, ClientError> {
        let response =
            self.0.send(reqwest::Method::PUT, &format!("/internal/v1/records/{id}"), ctx, Some(content)).await?;
        self.0.json(response).await
    }

    pub async fn assign_care_team(
        &self,
        ctx: &CallContext,
        caseworker: uuid::Uuid,
        subject: uuid::Uuid,
    ) -> Result<(), ClientError> {
        let path = format!("/internal/v1/care-team/{caseworker}/{subject}");
        self.0.send(reqwest::Method::PUT, &path, ctx, None::<&()>).await.map(|_| ())
    }

    /// Crypto-shreds a subject (admin only).
    pub async fn shred_subject(&self, ctx: &CallContext, subject: uuid::Uuid) -> Result<(), ClientError> {
        self.0
            .send(reqwest::Method::DELETE, &format!("/internal/v1/subjects/{subject}/key"), ctx, None::<&()>)
            .await
            .map(|_| ())
    }

    /// The subject's records (metadata only), optionally of one category.
    pub async fn list_records(
        &self,
        ctx: &CallContext,
        subject: uuid::Uuid,
        category: Option<&str>,
    ) -> Result<RecordList, ClientError> {
        let mut path = format!("/internal/v1/subjects/{subject}/records");
        if let Some(category) = category {
            path.push_str(&format!("?category={category}"));
        }
        self.0.get(&path, ctx).await
    }

    /// Records a compliance review of a flagged access-log entry (compliance officers).
    pub async fn review_access(
        &self,
        ctx: &CallContext,
        seq: i64,
        review: &ReviewRequest,
    ) -> Result<AccessReview, ClientError> {
        let path = format!("/internal/v1/access-log/{seq}/review");
        let response = self.0.send(reqwest::Method::PUT, &path, ctx, Some(review)).await?;
        self.0.json(response).await
    }

    /// A page of the access log (metadata only; compliance officers).
    pub async fn access_log(&self, ctx: &CallContext, query: &AccessLogQuery) -> Result<AccessLogPage, ClientError> {
        let query = query_string(query);
        self.0.get(&format!("/internal/v1/access-log{query}"), ctx).await
    }

    /// Reads a record to disclose it to medical personnel in an emergency (§2.51; caseworkers,
    /// with a reason in `ctx`).
    pub async fn emergency_disclosure(
        &self,
        ctx: &CallContext,
        id: uuid::Uuid,
        disclosure: &EmergencyDisclosure,
    ) -> Result<Record, ClientError> {
        let path = format!("/internal/v1/records/{id}/emergency-disclosure");
        let response = self.0.send(reqwest::Method::POST, &path, ctx, Some(disclosure)).await?;
        self.0.json(response).await
    }

    /// A subject's accounting of disclosures (the subject themselves, or a compliance officer).
    pub async fn accounting(
        &self,
        ctx: &CallContext,
        subject: uuid::Uuid,
        query: &AccountingQuery,
    ) -> Result<AccountingPage, ClientError> {
        self.0.get(&format!("/internal/v1/subjects/{subject}/disclosures{}", query.query_string()), ctx).await
    }

    /// Streams a document into the vault as record `id` of `subject`: a frame naming the file
    /// (a 2-byte big-endian length and the UTF-8 name), then the content, then the seal.
    /// phi-vault scans, types and encrypts it, and keeps it only whole, clean and sealed.
    pub async fn upload_document<S>(
        &self,
        ctx: &CallContext,
        (subject, id): (uuid::Uuid, uuid::Uuid),
        name: &str,
        content: S,
        timeout: Duration,
    ) -> Result<crate::documents::StoredDocument, ClientError>
    where
        S: futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static,
    {
        use futures_util::StreamExt;
        let name = crate::documents::clean_name(name);
        let mut frame = Vec::with_capacity(2 + name.len());
        frame.extend_from_slice(&(name.len() as u16).to_be_bytes());
        frame.extend_from_slice(name.as_bytes());
        let body = futures_util::stream::once(async move { Ok(bytes::Bytes::from(frame)) }).chain(content);
        let path = format!("/internal/v1/subjects/{subject}/documents/{id}");
        let response = self.0.send_streamed(&path, ctx, body, timeout).await?;
        self.0.json(response).await
    }

    /// A document's metadata and a response streaming its content (decrypted by phi-vault,
    /// which ends the stream with an error, never a clean end, if a piece fails to open).
    pub async fn download_document(
        &self,
        ctx: &CallContext,
        id: uuid::Uuid,
        timeout: Duration,
    ) -> Result<(crate::documents::DocumentMeta, reqwest::Response), ClientError> {
        use base64::Engine;
        let peer = ServiceName::PhiVault;
        let path = format!("/internal/v1/documents/{id}/content");
        let response = self.0.send_with_timeout(reqwest::Method::GET, &path, ctx, timeout).await?;
        let meta = response
            .headers()
            .get(crate::documents::META_HEADER)
            .and_then(|v| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(v.as_bytes()).ok())
            .and_then(|json| serde_json::from_slice(&json).ok())
            .ok_or_else(|| ClientError::Body { peer, message: "no readable document metadata".into() })?;
        Ok((meta, response))
    }

    /// phi-vault's trails verified end to end, for a compliance officer.
    pub async fn verify_trails(&self, ctx: &CallContext) -> Result<Vec<crate::compliance::TrailReport>, ClientError> {
        self.0.post_json("/internal/v1/trail-verifications", ctx).await
    }

    pub async fn delete_record(&self, ctx: &CallContext, id: uuid::Uuid) -> Result<(), ClientError> {
        self.0.send(reqwest::Method::DELETE, &format!("/internal/v1/records/{id}"), ctx, None::<&()>).await.map(|_| ())
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

/// What a write under an idempotency key answered, and whether it only repeated an earlier one.
#[derive(Debug, Clone)]
pub struct Idempotent<T> {
    pub value: T,
    pub repeated: bool,
}

/// The consent service's internal API.
#[derive(Clone)]
pub struct ConsentClient(InternalClient);

impl ConsentClient {
    pub fn new(inner: InternalClient) -> Self {
        Self(inner)
    }

    pub async fn ready(&self, ctx: &CallContext) -> Result<Readiness, ClientError> {
        self.0.get("/internal/v1/ready", ctx).await
    }

    /// The forms offered for signing and every value a consent may hold.
    pub async fn consent_options(&self, ctx: &CallContext) -> Result<ConsentOptions, ClientError> {
        self.0.get("/internal/v1/consent-options", ctx).await
    }

    pub async fn consent_form(&self, ctx: &CallContext, version: &str) -> Result<FormText, ClientError> {
        self.0.get(&format!("/internal/v1/consent-forms/{}", path_segment(version)), ctx).await
    }

    pub async fn consents(
        &self,
        ctx: &CallContext,
        subject: uuid::Uuid,
        query: &ConsentQuery,
    ) -> Result<ConsentPage, ClientError> {
        self.0.get(&format!("/internal/v1/subjects/{subject}/consents{}", query.query_string()), ctx).await
    }

    pub async fn consent(
        &self,
        ctx: &CallContext,
        subject: uuid::Uuid,
        id: uuid::Uuid,
    ) -> Result<ConsentDetail, ClientError> {
        self.0.get(&format!("/internal/v1/subjects/{subject}/consents/{id}"), ctx).await
    }

    /// The consent service's trails verified end to end, for a compliance officer.
    pub async fn verify_trails(&self, ctx: &CallContext) -> Result<Vec<crate::compliance::TrailReport>, ClientError> {
        self.0.post_json("/internal/v1/trail-verifications", ctx).await
    }

    /// Any consent by its id, with its subject (a compliance officer's review).
    pub async fn consent_by_id(&self, ctx: &CallContext, id: uuid::Uuid) -> Result<SubjectConsent, ClientError> {
        self.0.get(&format!("/internal/v1/consents/{id}"), ctx).await
    }

    /// A page of the decision log (a compliance officer's review).
    pub async fn decisions(
        &self,
        ctx: &CallContext,
        query: &crate::compliance::DecisionQuery,
    ) -> Result<crate::compliance::DecisionPage, ClientError> {
        self.0.get(&format!("/internal/v1/decisions{}", query.query_string()), ctx).await
    }

    pub async fn sign_consent(
        &self,
        ctx: &CallContext,
        subject: uuid::Uuid,
        consent: &SignConsent,
    ) -> Result<Idempotent<ConsentDetail>, ClientError> {
        let path = format!("/internal/v1/subjects/{subject}/consents");
        let response = self.0.send(reqwest::Method::POST, &path, ctx, Some(consent)).await?;
        // 201: signed now; 200: a repeat under an idempotency key, answered with the first.
        let repeated = response.status() == reqwest::StatusCode::OK;
        Ok(Idempotent { value: self.0.json(response).await?, repeated })
    }

    pub async fn revoke_consent(
        &self,
        ctx: &CallContext,
        subject: uuid::Uuid,
        id: uuid::Uuid,
        revocation: &RevokeConsent,
    ) -> Result<ConsentView, ClientError> {
        let path = format!("/internal/v1/subjects/{subject}/consents/{id}/revocation");
        let response = self.0.send(reqwest::Method::POST, &path, ctx, Some(revocation)).await?;
        self.0.json(response).await
    }

    /// Records an event that ends the subject's consents waiting on it (caseworkers, admins).
    pub async fn record_expiry_event(
        &self,
        ctx: &CallContext,
        subject: uuid::Uuid,
        event: &NewExpiryEvent,
    ) -> Result<ExpiryEventRecorded, ClientError> {
        let path = format!("/internal/v1/subjects/{subject}/expiry-events");
        let response = self.0.send(reqwest::Method::POST, &path, ctx, Some(event)).await?;
        self.0.json(response).await
    }

    /// A page of the recipient directory (retired entries too, for an admin who asks).
    pub async fn recipients(
        &self,
        ctx: &CallContext,
        after: Option<i64>,
        limit: Option<i64>,
        include_retired: bool,
    ) -> Result<DirectoryPage, ClientError> {
        let query = query_of(&[
            ("after", after.map(|v| v.to_string())),
            ("limit", limit.map(|v| v.to_string())),
            ("include_retired", include_retired.then(|| "true".to_owned())),
        ]);
        self.0.get(&format!("/internal/v1/recipients{query}"), ctx).await
    }

    pub async fn add_recipient(
        &self,
        ctx: &CallContext,
        entry: &NewDirectoryEntry,
    ) -> Result<DirectoryEntry, ClientError> {
        let response = self.0.send(reqwest::Method::POST, "/internal/v1/recipients", ctx, Some(entry)).await?;
        self.0.json(response).await
    }

    pub async fn retire_recipient(&self, ctx: &CallContext, id: uuid::Uuid) -> Result<DirectoryEntry, ClientError> {
        let path = format!("/internal/v1/recipients/{id}");
        let response = self.0.send(reqwest::Method::DELETE, &path, ctx, None::<&()>).await?;
        self.0.json(response).await
    }

    /// May this recipient see these categories of the subject's records, for this purpose?
    pub async fn decide(
        &self,
        ctx: &CallContext,
        question: &DisclosureQuestion,
    ) -> Result<DisclosureAnswer, ClientError> {
        let response = self.0.send(reqwest::Method::POST, "/internal/v1/decisions", ctx, Some(question)).await?;
        self.0.json(response).await
    }
}

/// A receiving peer's checkpoint route (`crate::checkpoint`): where a service anchors its trails.
#[derive(Clone)]
pub struct CheckpointClient(InternalClient);

impl CheckpointClient {
    pub fn new(inner: InternalClient) -> Self {
        Self(inner)
    }

    /// Stores a signed checkpoint in the peer's database (204, also when already held; 409 when
    /// it goes backwards).
    pub async fn store(
        &self,
        ctx: &CallContext,
        checkpoint: &crate::checkpoint::Checkpoint,
    ) -> Result<(), ClientError> {
        self.0.send(reqwest::Method::POST, "/internal/v1/checkpoints", ctx, Some(checkpoint)).await.map(|_| ())
    }

    /// Every checkpoint the peer holds of this service's `trail`, by number, page by page.
    pub async fn held(
        &self,
        ctx: &CallContext,
        trail: crate::checkpoint::Trail,
    ) -> Result<Vec<crate::checkpoint::Checkpoint>, ClientError> {
        // A bound on what one verification holds from a peer (a few hundred MiB): almost four
        // years of checkpoints at the default one-minute interval.
        const MOST: usize = 2_000_000;
        let mut all = Vec::new();
        let mut after = 0;
        loop {
            if all.len() > MOST {
                return Err(ClientError::Body {
                    peer: self.0.peer,
                    message: format!("more than {MOST} checkpoints held of one trail"),
                });
            }
            let page: crate::checkpoint::HeldPage =
                self.0.get(&format!("/internal/v1/checkpoints?trail={}&after={after}", trail.as_str()), ctx).await?;
            all.extend(page.checkpoints);
            match page.next_after {
                Some(next) if next > after => after = next,
                _ => return Ok(all),
            }
        }
    }
}

/// A question to the consent service about one disclosure.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisclosureQuestion {
    pub subject_id: uuid::Uuid,
    /// Who would receive the records, as `role:id`.
    pub recipient: String,
    pub categories: Vec<String>,
    pub purpose: String,
}

/// The consent service's answer; anything but `permitted: true` is a denial.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DisclosureAnswer {
    pub permitted: bool,
    #[serde(default)]
    pub consent_id: Option<uuid::Uuid>,
    /// The consent form version the subject signed.
    #[serde(default)]
    pub form_version: Option<String>,
    /// The recipient's name, for the accounting of disclosures: its directory entry's, or as
    /// the consent names it.
    #[serde(default)]
    pub recipient_name: Option<String>,
    pub reason: String,
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
