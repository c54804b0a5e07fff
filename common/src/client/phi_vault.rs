//! The phi-vault's internal API and the types it exchanges.

#[allow(unused_imports)]
use super::*;

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
    #[param(min_length = 1, max_length = 200, pattern = "^[A-Za-z0-9:_.-]+$")]
    pub actor: Option<&'r str>,
    /// Only this action (`record.read`, `record.list`, `subject.shred`, …).
    #[param(min_length = 1, max_length = 200, pattern = "^[A-Za-z0-9:_.-]+$")]
    pub action: Option<&'r str>,
    /// `permit` or `deny`.
    #[param(value_type = Option<wire::compliance::AccessDecision>)]
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
    #[param(value_type = Option<i64>, minimum = 1, maximum = 500)]
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
