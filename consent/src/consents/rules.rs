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
        .ok_or_else(|| invalid("form_sha256: the form's SHA-256, 64 lowercase hex characters as the form lists it"))?;
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

#[cfg(test)]
mod tests {
    use common::consents::{RecipientChoice, Signature};
    use time::macros::datetime;

    use super::*;
    use crate::consents::records::validate;

    const SUBJECT: Uuid = Uuid::from_u128(1);
    const ENTRY: Uuid = Uuid::from_u128(2);
    const CONSENT: Uuid = Uuid::from_u128(3);

    fn categories() -> Vec<String> {
        vec!["identity".into(), "insurance".into()]
    }

    fn view_row(recipient: &str, kind: Option<ConsentRecipientKind>, name: Option<&str>) -> ConsentRow {
        ConsentRow {
            seq: 7,
            id: CONSENT,
            discloser: DISCLOSER.into(),
            form_version: "2026-11".into(),
            form_title: Some("Housing".into()),
            form_sha256: vec![0xab, 0xcd],
            recipient: recipient.into(),
            recipient_kind: kind,
            recipient_name: name.map(str::to_owned),
            recipient_directory_id: None,
            recipient_address: None,
            categories: categories(),
            purpose: "housing_placement".into(),
            expires_at: None,
            expiry_event: Some("program_exit".into()),
            signed_name: "Jordan Q. Example".into(),
            signature_method: None,
            signed_at: datetime!(2026-12-01 00:00:00 UTC),
            signed_from: None,
            terms_sha256: vec![0xef, 0x01],
            subject_id: SUBJECT,
            revoked_at: None,
            form_text: "I consent.".into(),
            state: ConsentState::Expired,
        }
    }

    #[test]
    fn a_stored_consent_reads_with_its_recipient_as_signed() {
        let (subject, detail) =
            detail_of(view_row("class:insurer", Some(ConsentRecipientKind::Class), Some("Health plans")));
        let view = &detail.consent;
        assert_eq!((subject, detail.form_text.as_str(), view.state.as_str()), (SUBJECT, "I consent.", "expired"));
        assert_eq!((view.form_sha256.as_str(), view.terms_sha256.as_str()), ("abcd", "ef01"));
        assert_eq!(view.recipient.kind, "class");
        assert_eq!(view.recipient.class.as_deref(), Some("health_plans"));
        assert_eq!(view.recipient.name, "Health plans");
        // A consent recorded before names were copied: named, as its recipient.
        let view = view_of(view_row("partner:r1", None, None));
        assert_eq!((view.recipient.kind.as_str(), view.recipient.name.as_str()), ("named", "partner:r1"));
        assert_eq!(view.recipient.class, None);
        assert_eq!(view_of(view_row("class:nobody", None, None)).recipient.class, None);
    }

    fn request() -> ConsentRequest {
        ConsentRequest {
            form_version: "2026-11".into(),
            form_sha256: "ab".repeat(32),
            recipient: RecipientChoice { name: Some("  Dr. Who  ".into()), ..RecipientChoice::default() },
            categories: categories(),
            purpose: "housing_placement".into(),
            expires_at: None,
            expiry_event: Some("program_exit".into()),
            signature: Signature { typed_name: " Jordan Q. Example ".into(), method: SIGNATURE_METHOD.into() },
        }
    }

    fn message(result: Result<impl std::fmt::Debug, ApiError>) -> String {
        match result {
            Err(ApiError::Unprocessable(message)) => message,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_signing_request_is_checked_in_order() {
        let now = datetime!(2026-12-01 00:00:00 UTC);
        assert_eq!(check_request(&request(), "127.0.0.1", now).ok(), Some(vec![0xab; 32]));
        let mut r = request();
        r.signature.method = "drawn".into();
        r.form_sha256 = "x".into();
        assert_eq!(message(check_request(&r, "127.0.0.1", now)), "signature.method: typed_name");
        assert!(message(check_request(&request(), "", now)).starts_with("signed_from: "));
        for hash in ["AB".repeat(32), "ab".repeat(31), "x".into()] {
            let r = ConsentRequest { form_sha256: hash, ..request() };
            assert_eq!(
                message(check_request(&r, "127.0.0.1", now)),
                "form_sha256: the form's SHA-256, 64 lowercase hex characters as the form lists it"
            );
        }
        let r = ConsentRequest { expires_at: Some(now), ..request() };
        assert_eq!(message(check_request(&r, "127.0.0.1", now)), "expires_at: must be in the future");
        let r = ConsentRequest { expiry_event: Some("moving".into()), ..request() };
        assert!(message(check_request(&r, "127.0.0.1", now)).starts_with("expiry_event: one of program_exit"));

        assert!(check_purpose(TPO_PURPOSE, true).is_ok());
        assert!(check_purpose("payment", false).is_ok());
        assert_eq!(message(check_purpose("payment", true)), format!("purpose: a TPO form's purpose is {TPO_PURPOSE}"));
        assert!(message(check_purpose(TPO_PURPOSE, false)).starts_with("purpose: one of housing_placement"));
    }

    fn resolved(choice: Result<Choice, ApiError>) -> Resolved {
        match choice {
            Ok(Choice::Resolved(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_request_names_exactly_one_recipient() {
        let named = resolved(choose_recipient(&request(), false));
        assert!(named.key.starts_with("external:"), "{}", named.key);
        assert_eq!((named.kind, named.name.as_str(), named.address), (ConsentRecipientKind::Named, "Dr. Who", None));

        let with = |recipient: RecipientChoice| ConsentRequest { recipient, ..request() };
        let entry = with(RecipientChoice { directory_id: Some(ENTRY), ..Default::default() });
        assert!(matches!(choose_recipient(&entry, false), Ok(Choice::Directory(id)) if id == ENTRY));
        let both = with(RecipientChoice { directory_id: Some(ENTRY), name: Some("A".into()), ..Default::default() });
        assert_eq!(message(choose_recipient(&both, false)), "recipient: exactly one of directory_id, name or class");
        assert_eq!(
            message(choose_recipient(&with(RecipientChoice::default()), false)),
            "recipient: exactly one of directory_id, name or class"
        );
        let address = with(RecipientChoice {
            directory_id: Some(ENTRY),
            address: Some("1 Main St".into()),
            ..Default::default()
        });
        assert!(message(choose_recipient(&address, false)).starts_with("recipient.address: only with recipient.name"));

        let class = with(RecipientChoice { class: Some("health_plans".into()), ..Default::default() });
        let tpo = resolved(choose_recipient(&class, true));
        assert_eq!((tpo.key.as_str(), tpo.kind), ("class:insurer", ConsentRecipientKind::Class));
        assert_eq!(tpo.name, CLASSES[0].2);
        assert!(message(choose_recipient(&class, false)).starts_with("recipient.class: only on a TPO form"));
        assert!(message(choose_recipient(&request(), true)).starts_with("recipient: a TPO form names a class"));
        let unknown = with(RecipientChoice { class: Some("everyone".into()), ..Default::default() });
        assert_eq!(
            message(choose_recipient(&unknown, true)),
            "recipient.class: one of health_plans, recovery_residences"
        );

        let entry =
            ActiveEntryRow { name: "Mile High House".into(), address: Some("1 Main St".into()), principal: None };
        let from = from_directory(ENTRY, entry);
        assert_eq!(from.key, format!("directory:{ENTRY}"));
        assert_eq!((from.directory_id, from.address.as_deref()), (Some(ENTRY), Some("1 Main St")));
        let linked =
            ActiveEntryRow { name: "Mile High House".into(), address: None, principal: Some("partner:p1".into()) };
        assert_eq!(from_directory(ENTRY, linked).key, "partner:p1");
    }

    #[test]
    fn a_signed_consent_copies_the_request_and_its_recipient() {
        let request = request();
        let recipient = resolved(choose_recipient(&request, false));
        let at = datetime!(2026-12-01 00:00:00 UTC);
        let c = new_consent(SUBJECT, &request, &recipient, "127.0.0.1", at);
        assert_eq!((c.discloser, c.recipient, c.signed_name), (DISCLOSER, recipient.key.as_str(), "Jordan Q. Example"));
        let e = c.elements.expect("elements");
        assert_eq!((e.recipient_kind, e.recipient_name, e.signed_from), ("named", "Dr. Who", "127.0.0.1"));
        assert!(validate(&c).is_ok());
    }

    #[test]
    fn a_repeated_key_answers_with_its_consent_only_for_the_same_request() {
        let row = |consent_id| SignRequestRow { request_sha256: vec![1; 32], consent_id };
        assert_eq!(repeat_of(row(Some(CONSENT)), &[1; 32]).ok(), Some(CONSENT));
        assert!(message(repeat_of(row(Some(CONSENT)), &[2; 32])).starts_with("Idempotency-Key: already used"));
        assert!(matches!(repeat_of(row(None), &[1; 32]), Err(ApiError::Internal(_))));
        assert!(message(request_sha256("", &request())).starts_with("Idempotency-Key: "));
        assert_eq!(request_sha256("k", &request()).ok(), request_sha256("k", &request()).ok());
    }

    #[test]
    fn only_a_consent_in_force_is_revoked() {
        assert!(still_in_force(CONSENT, ConsentState::Signed).is_ok());
        for state in [ConsentState::Revoked, ConsentState::Expired] {
            assert!(matches!(still_in_force(CONSENT, state), Err(ApiError::Conflict(_))), "{state:?}");
        }
        assert_eq!(revocation_reason(Some("  ")).ok(), Some(None));
        assert_eq!(revocation_reason(Some(" moved ")).ok(), Some(Some("moved")));
        assert!(revocation_reason(Some(&"x".repeat(501))).is_err());
    }

    #[test]
    fn an_event_is_dated_within_the_last_thirty_days() {
        let now = datetime!(2026-12-31 00:00:00 UTC);
        let event = |event: &str, occurred_at| NewExpiryEvent { event: event.into(), occurred_at };
        assert_eq!(event_time(&event("program_exit", None), now).ok(), Some(now));
        let at = datetime!(2026-12-01 00:00:00 UTC);
        assert_eq!(event_time(&event("placement_end", Some(at)), now).ok(), Some(at));
        assert!(message(event_time(&event("moving", None), now)).starts_with("event: one of"));
        let future = datetime!(2026-12-31 00:00:01 UTC);
        assert_eq!(message(event_time(&event("program_exit", Some(future)), now)), "occurred_at: not in the future");
        let old = datetime!(2026-11-30 23:59:59 UTC);
        assert_eq!(message(event_time(&event("program_exit", Some(old)), now)), "occurred_at: at most 30 days ago");
        assert_eq!(ConsentState::Signed.as_str(), "signed");
    }
}
