//! Wire types of consents (42 CFR §2.31): what a beneficiary sends to sign or revoke one, what
//! they read back, the forms and the recipient directory. public-api exposes them and relays
//! them to the consent service, which alone decides and stores.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// The only signature method offered: the patient types their full name, over an authenticated
/// session, after reading the form (an electronic signature under §2.31(a)(8)).
pub const SIGNATURE_METHOD: &str = "typed_name";

/// Whom a consent names: the schema of `ConsentRecipient::kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecipientKind {
    Named,
    Class,
}

/// Where a consent stands: one of [`STATES`]; the schema of `ConsentView::state` and of the
/// `state` filters (which stay text, checked by their handlers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConsentState {
    Signed,
    Revoked,
    Expired,
}

/// Whom a form lets a consent name: the schema of `FormSummary::recipient`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FormRecipient {
    Named,
    Tpo,
}

/// A directory entry's kind: the schema of the `kind` fields of the directory (text on the wire,
/// checked by the consent service).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DirectoryKind {
    Residence,
    Insurer,
}

/// Whom a consent lets receive records.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecipientChoice {
    /// A partner residence or insurer from the directory (`GET /api/v1/consent-recipients`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory_id: Option<Uuid>,
    /// Or a person or organisation outside the directory, by name (1 to 200 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    /// Their address, with `name` (up to 300 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 300)]
    pub address: Option<String>,
    /// Or, on a TPO form only, a class of recipients (`classes` in the consent options).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
}

/// A signature: the signer's typed full name and the method.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    /// The signer's full name, typed (1 to 200 characters).
    #[schema(min_length = 1, max_length = 200)]
    pub typed_name: String,
    /// `typed_name`.
    pub method: String,
}

/// A consent a beneficiary signs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentRequest {
    /// The form read and signed (`GET /api/v1/consent-forms/{version}`).
    pub form_version: String,
    /// The SHA-256 (hex) of the form text read, as that route gave it: a form changed since is refused.
    pub form_sha256: String,
    pub recipient: RecipientChoice,
    /// What may be disclosed: one or more of the consent options' `categories`.
    pub categories: Vec<String>,
    /// Why: on a named form one of `purposes`; on a TPO form `treatment_payment_operations`.
    pub purpose: String,
    /// When the consent ends (RFC 3339, in the future) ...
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<OffsetDateTime>,
    /// ... or the event that ends it (one of `expiry_events`); at least one of the two.
    #[serde(default)]
    pub expiry_event: Option<String>,
    pub signature: Signature,
}

/// What public-api relays to the consent service: the request and the address it came from.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignConsent {
    pub consent: ConsentRequest,
    /// The client address the signature came from, as public-api saw it.
    pub signed_from: String,
    /// The client's `Idempotency-Key`, if it sent one: a repeat of the request with the same
    /// key returns the consent the first one made instead of signing a second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// A revocation, signed like a consent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    pub signature: Signature,
    /// Why, if the beneficiary wishes to say (up to 500 characters).
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeConsent {
    pub revocation: RevokeRequest,
    pub signed_from: String,
}

/// The recipient as the consent names it, copied when it was signed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ConsentRecipient {
    /// `named` or `class`.
    #[schema(value_type = RecipientKind)]
    pub kind: String,
    pub name: String,
    pub directory_id: Option<Uuid>,
    pub address: Option<String>,
    /// The class, for a class recipient.
    pub class: Option<String>,
}

/// A signature as recorded.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct SignatureRecord {
    pub typed_name: String,
    /// Absent on consents recorded before methods were kept.
    pub method: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub signed_at: OffsetDateTime,
    /// The address the signature came from; absent on consents recorded before it was kept.
    pub signed_from: Option<String>,
}

/// A consent as recorded, with its state now.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ConsentView {
    pub id: Uuid,
    /// `signed` (in force), `revoked` or `expired`.
    #[schema(value_type = ConsentState)]
    pub state: String,
    /// Who discloses: the program.
    pub discloser: String,
    pub form_version: String,
    pub form_title: Option<String>,
    /// Hex SHA-256 of the form text signed.
    pub form_sha256: String,
    pub recipient: ConsentRecipient,
    pub categories: Vec<String>,
    pub purpose: String,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<OffsetDateTime>,
    pub expiry_event: Option<String>,
    pub signature: SignatureRecord,
    /// Hex SHA-256 of the consent's terms, which every decision relying on it carries.
    pub terms_sha256: String,
    /// When it was revoked, if it was.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<OffsetDateTime>,
}

/// One consent with the full text of the form its subject signed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ConsentDetail {
    pub consent: ConsentView,
    pub form_text: String,
}

/// A consent with whose it is, as a compliance officer reads it by its id.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct SubjectConsent {
    pub subject_id: uuid::Uuid,
    #[serde(flatten)]
    pub detail: ConsentDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ConsentPage {
    pub consents: Vec<ConsentView>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<i64>,
}

/// Filters for a page of one's consents, oldest first.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ConsentQuery {
    /// `signed`, `revoked` or `expired`.
    pub state: Option<String>,
    pub after: Option<i64>,
    pub limit: Option<i64>,
}

/// The states a consent can be in.
pub const STATES: [&str; 3] = ["signed", "revoked", "expired"];

impl ConsentQuery {
    pub fn query_string(&self) -> String {
        crate::query_of(&[
            ("state", self.state.clone()),
            ("after", self.after.map(|v| v.to_string())),
            ("limit", self.limit.map(|v| v.to_string())),
        ])
    }
}

/// A consent form on file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct FormSummary {
    pub version: String,
    pub title: String,
    /// `named` (one recipient) or `tpo` (a class of recipients, for treatment, payment and
    /// health care operations).
    #[schema(value_type = FormRecipient)]
    pub recipient: String,
    /// `YYYY-MM-DD`.
    #[schema(format = Date)]
    pub published: String,
    /// Hex SHA-256 of the text: send it back when signing.
    pub sha256: String,
}

/// A form with its exact text.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct FormText {
    pub form: FormSummary,
    pub text: String,
}

/// A class of recipients a TPO consent may name.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct RecipientClass {
    pub class: String,
    pub description: String,
}

/// What a consent may say: the forms and every allowed value.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ConsentOptions {
    pub forms: Vec<FormSummary>,
    pub categories: Vec<String>,
    /// Purposes a named-recipient form may give.
    pub purposes: Vec<String>,
    /// The purpose of a TPO form, and the disclosure purposes it covers.
    pub tpo_purpose: String,
    pub tpo_covers: Vec<String>,
    pub classes: Vec<RecipientClass>,
    pub expiry_events: Vec<String>,
}

/// A partner residence or insurer in the recipient directory.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct DirectoryEntry {
    pub id: Uuid,
    /// `residence` or `insurer`.
    #[schema(value_type = DirectoryKind)]
    pub kind: String,
    pub name: String,
    pub address: Option<String>,
    /// Whether an account acts for this recipient (a consent naming it can then be used).
    pub linked: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub retired_at: Option<OffsetDateTime>,
}

/// A new directory entry (staff).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDirectoryEntry {
    /// `residence` or `insurer`.
    #[schema(value_type = DirectoryKind)]
    pub kind: String,
    /// 1 to 200 characters.
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// Up to 300 characters.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 300)]
    pub address: Option<String>,
    /// The partner account that acts for a residence (its user id).
    #[serde(default)]
    pub account_id: Option<Uuid>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct DirectoryPage {
    pub recipients: Vec<DirectoryEntry>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<i64>,
}

/// An event that ends a subject's consents waiting on it (42 CFR §2.31(a)(6)), as staff record it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewExpiryEvent {
    /// One of the consent options' `expiry_events`.
    pub event: String,
    /// When it happened (RFC 3339, not in the future); now when absent.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub occurred_at: Option<OffsetDateTime>,
}

/// An event recorded, and how many of the subject's consents it ended.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ExpiryEventRecorded {
    pub event: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub occurred_at: OffsetDateTime,
    pub consents_ended: i64,
}
