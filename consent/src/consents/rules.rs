//! The consents' rules: how a signing request is checked and names its recipient, the state a
//! consent is in, how it reads, and how revoking it and the events ending it are checked.

use time::OffsetDateTime;
use uuid::Uuid;

use common::chain;
use common::consents::{
    ConsentDetail, ConsentRecipient, ConsentRequest, ConsentView, NewExpiryEvent, Signature, SignatureRecord,
    SIGNATURE_METHOD,
};
use common::ApiError;

use super::queries::{ConsentRow, SignRequestRow};
use super::records::{ConsentRecipientKind, Elements, NewConsent};
use crate::decisions::rules::{CLASSES, EXPIRY_EVENTS, PURPOSES, TPO_PURPOSE};
use crate::directory::queries::ActiveEntryRow;

/// Who discloses under every consent: the program.
pub const DISCLOSER: &str = "SecondWind";

/// How far back staff may date an event: it ends consents for decisions from now on, and a date
/// far in the past would misstate when they ended.
const MAX_EVENT_BACKDATE_DAYS: i64 = 30;

/// A consent's state now (`common::consents::STATES`): in force, revoked, or ended by its date
/// or by an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub(crate) enum ConsentState {
    Signed,
    Revoked,
    Expired,
}

impl ConsentState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Signed => "signed",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
        }
    }
}

/// A stored consent as its subject (or a compliance officer) reads it.
pub(crate) fn view_of(row: ConsentRow) -> ConsentView {
    let class = row
        .recipient
        .strip_prefix("class:")
        .and_then(|role| CLASSES.iter().find(|(_, r, _)| *r == role))
        .map(|(class, _, _)| (*class).to_owned());
    ConsentView {
        id: row.id,
        state: row.state.as_str().to_owned(),
        discloser: row.discloser,
        form_version: row.form_version,
        form_title: row.form_title,
        form_sha256: chain::hex(&row.form_sha256),
        recipient: ConsentRecipient {
            kind: row.recipient_kind.map_or("named", ConsentRecipientKind::as_str).to_owned(),
            // A consent recorded before names were copied shows the recipient it names.
            name: row.recipient_name.unwrap_or(row.recipient),
            directory_id: row.recipient_directory_id,
            address: row.recipient_address,
            class,
        },
        categories: row.categories,
        purpose: row.purpose,
        expires_at: row.expires_at,
        expiry_event: row.expiry_event,
        signature: SignatureRecord {
            typed_name: row.signed_name,
            method: row.signature_method,
            signed_at: row.signed_at,
            signed_from: row.signed_from,
        },
        terms_sha256: chain::hex(&row.terms_sha256),
        revoked_at: row.revoked_at,
    }
}

/// A stored consent with its form text, and its subject.
pub(crate) fn detail_of(mut row: ConsentRow) -> (Uuid, ConsentDetail) {
    let subject_id = row.subject_id;
    let form_text = std::mem::take(&mut row.form_text);
    (subject_id, ConsentDetail { consent: view_of(row), form_text })
}

pub(crate) fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::Unprocessable(message.into())
}

pub(crate) fn check_signature(s: &Signature) -> Result<(), ApiError> {
    common::json::printable("signature.typed_name", &s.typed_name, 1..=200, false)?;
    if s.method != SIGNATURE_METHOD {
        return Err(invalid(format!("signature.method: {SIGNATURE_METHOD}")));
    }
    Ok(())
}

pub(crate) fn check_signed_from(address: &str) -> Result<(), ApiError> {
    common::json::printable("signed_from", address, 1..=100, false)
}

/// The SHA-256 of a signing request, under its idempotency key (checked first): a repeat under
/// the same key must hash the same.
pub(crate) fn request_sha256(key: &str, request: &ConsentRequest) -> Result<[u8; 32], ApiError> {
    common::json::IdempotencyKey::parse(Some(key)).map_err(invalid)?;
    Ok(chain::sha256(&serde_json::to_vec(request).map_err(ApiError::internal)?))
}

/// The consent an earlier request under the same key signed, when it is the same request. A
/// different request under the same key is refused (422).
pub(crate) fn repeat_of(earlier: SignRequestRow, request_sha256: &[u8]) -> Result<Uuid, ApiError> {
    match earlier.consent_id {
        Some(id) if earlier.request_sha256 == request_sha256 => Ok(id),
        Some(_) => Err(invalid("Idempotency-Key: already used for a different consent; use a new key")),
        None => Err(ApiError::internal("an idempotency key claimed without its consent")),
    }
}

/// The request's own checks, in the order they answer: its signature, the address it came
/// from, the form hash shown (returned), its end date and its end event.
pub(crate) fn check_request(
    request: &ConsentRequest,
    signed_from: &str,
    now: OffsetDateTime,
) -> Result<Vec<u8>, ApiError> {
    check_signature(&request.signature)?;
    check_signed_from(signed_from)?;
    let shown = chain::from_hex(&request.form_sha256)
        .filter(|h| h.len() == 32)
        .ok_or_else(|| invalid("form_sha256: the form's SHA-256, 64 hex characters"))?;
    if request.expires_at.is_some_and(|t| t <= now) {
        return Err(invalid("expires_at: must be in the future"));
    }
    if let Some(event) = &request.expiry_event {
        if !EXPIRY_EVENTS.contains(&event.as_str()) {
            return Err(invalid(format!("expiry_event: one of {}", EXPIRY_EVENTS.join(", "))));
        }
    }
    Ok(shown)
}

pub(crate) const NO_SUCH_FORM: &str = "form_version: no consent form offered under that version";

/// A TPO form's consent is for the TPO purpose; any other form's for one of [`PURPOSES`].
pub(crate) fn check_purpose(purpose: &str, tpo_form: bool) -> Result<(), ApiError> {
    if tpo_form && purpose != TPO_PURPOSE {
        return Err(invalid(format!("purpose: a TPO form's purpose is {TPO_PURPOSE}")));
    }
    if !tpo_form && !PURPOSES.contains(&purpose) {
        return Err(invalid(format!("purpose: one of {}", PURPOSES.join(", "))));
    }
    Ok(())
}

/// The recipient a request names, resolved and copied: the name decisions match (`key`), kind,
/// name, directory id, address.
#[derive(Debug)]
pub(crate) struct Resolved {
    pub key: String,
    pub kind: ConsentRecipientKind,
    pub name: String,
    pub directory_id: Option<Uuid>,
    pub address: Option<String>,
}

/// A request's recipient: resolved from the request alone, or a directory entry to look up.
#[derive(Debug)]
pub(crate) enum Choice {
    Resolved(Resolved),
    Directory(Uuid),
}

pub(crate) const NO_SUCH_ENTRY: &str = "recipient.directory_id: no such recipient in the directory";

/// The recipient a request names: exactly one of a directory entry, a name (with an optional
/// address), or on a TPO form a class.
pub(crate) fn choose_recipient(request: &ConsentRequest, tpo_form: bool) -> Result<Choice, ApiError> {
    let r = &request.recipient;
    let chosen = [r.directory_id.is_some(), r.name.is_some(), r.class.is_some()].iter().filter(|b| **b).count();
    if chosen != 1 {
        return Err(invalid("recipient: exactly one of directory_id, name or class"));
    }
    if r.address.is_some() && r.name.is_none() {
        return Err(invalid("recipient.address: only with recipient.name (a directory entry has its own)"));
    }
    if tpo_form {
        let Some(class) = &r.class else {
            return Err(invalid("recipient: a TPO form names a class of recipients (recipient.class)"));
        };
        let (_, role, description) = CLASSES.iter().find(|(c, _, _)| c == class).ok_or_else(|| {
            let classes: Vec<&str> = CLASSES.iter().map(|(c, _, _)| *c).collect();
            invalid(format!("recipient.class: one of {}", classes.join(", ")))
        })?;
        return Ok(Choice::Resolved(Resolved {
            key: format!("class:{role}"),
            kind: ConsentRecipientKind::Class,
            name: (*description).into(),
            directory_id: None,
            address: None,
        }));
    }
    if r.class.is_some() {
        return Err(invalid("recipient.class: only on a TPO form; this form names one recipient"));
    }
    if let Some(id) = r.directory_id {
        return Ok(Choice::Directory(id));
    }
    let name = r.name.as_deref().unwrap_or_default().trim();
    common::json::printable("recipient.name", name, 1..=200, false)?;
    let address = r.address.as_deref().map(str::trim);
    if let Some(address) = address {
        common::json::printable("recipient.address", address, 1..=300, false)?;
    }
    Ok(Choice::Resolved(Resolved {
        // A recipient outside the directory has no account here: no decision ever matches it;
        // staff disclose to it under the consent, and the accounting names it.
        key: format!("external:{}", Uuid::new_v4()),
        kind: ConsentRecipientKind::Named,
        name: name.into(),
        directory_id: None,
        address: address.map(str::to_owned),
    }))
}

/// A directory entry in use, as a consent names it.
pub(crate) fn from_directory(id: Uuid, entry: ActiveEntryRow) -> Resolved {
    Resolved {
        // An entry no account acts for yet is consented to as the entry itself.
        key: entry.principal.unwrap_or_else(|| format!("directory:{id}")),
        kind: ConsentRecipientKind::Named,
        name: entry.name,
        directory_id: Some(id),
        address: entry.address,
    }
}

/// The consent a request signs, for `subject`, naming the resolved recipient.
pub(crate) fn new_consent<'a>(
    subject: Uuid,
    request: &'a ConsentRequest,
    recipient: &'a Resolved,
    signed_from: &'a str,
    signed_at: OffsetDateTime,
) -> NewConsent<'a> {
    NewConsent {
        subject_id: subject,
        discloser: DISCLOSER,
        recipient: &recipient.key,
        categories: &request.categories,
        purpose: &request.purpose,
        expires_at: request.expires_at,
        expiry_event: request.expiry_event.as_deref(),
        form_version: &request.form_version,
        signed_name: request.signature.typed_name.trim(),
        signed_at,
        elements: Some(Elements {
            recipient_kind: recipient.kind.as_str(),
            recipient_name: &recipient.name,
            recipient_directory_id: recipient.directory_id,
            recipient_address: recipient.address.as_deref(),
            signature_method: &request.signature.method,
            signed_from,
        }),
    }
}

/// A revocation's reason: trimmed, absent when blank, else 1 to 500 printable characters.
pub(crate) fn revocation_reason(reason: Option<&str>) -> Result<Option<&str>, ApiError> {
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    if let Some(reason) = reason {
        common::json::printable("reason", reason, 1..=500, false)?;
    }
    Ok(reason)
}

/// Only a consent in force can be revoked (409 otherwise).
pub(crate) fn still_in_force(id: Uuid, state: ConsentState) -> Result<(), ApiError> {
    match state {
        ConsentState::Revoked => Err(ApiError::Conflict(format!("consent {id} is already revoked"))),
        ConsentState::Expired => {
            Err(ApiError::Conflict(format!("consent {id} has expired; nothing is left to revoke")))
        }
        ConsentState::Signed => Ok(()),
    }
}

/// When an event staff record happened: now unless they say, never in the future, and at most
/// [`MAX_EVENT_BACKDATE_DAYS`] ago. The event is one of [`EXPIRY_EVENTS`].
pub(crate) fn event_time(event: &NewExpiryEvent, now: OffsetDateTime) -> Result<OffsetDateTime, ApiError> {
    if !EXPIRY_EVENTS.contains(&event.event.as_str()) {
        return Err(invalid(format!("event: one of {}", EXPIRY_EVENTS.join(", "))));
    }
    let occurred_at = event.occurred_at.unwrap_or(now);
    if occurred_at > now {
        return Err(invalid("occurred_at: not in the future"));
    }
    if occurred_at < now - time::Duration::days(MAX_EVENT_BACKDATE_DAYS) {
        return Err(invalid(format!("occurred_at: at most {MAX_EVENT_BACKDATE_DAYS} days ago")));
    }
    Ok(occurred_at)
}
