//! The consent service's internal API and the types it exchanges.

#[allow(unused_imports)]
use super::*;

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
