//! Consents (42 CFR §2.31) and the versioned form texts they are signed on. Both are immutable
//! for the runtime role: a consent is recorded once and ends only by revocation or expiry.
//!
//! Recording a consent checks that the form text the subject was shown (its SHA-256, as the
//! signing client computed it) is the form on file, and that the form on file still hashes to
//! its recorded `body_sha256`; the database checks the same through a foreign key on
//! `(form_version, form_sha256)` and a check on each form. The consent's terms (who discloses
//! what to whom, why, until when, on which form, signed by whom and when) are hashed into
//! `terms_sha256`, which every decision relying on the consent carries. Consents are
//! hash-chained (`common::chain`, length-prefixed fields).

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};
use time::OffsetDateTime;
use uuid::Uuid;

use common::chain::{self, Fields, Verification};

use crate::decisions::CATEGORIES;

const CHAIN_LOCK: i64 = 0x5357_434f_4e53_4e54;

/// A consent as its subject signed it.
#[derive(Debug, Clone)]
pub struct NewConsent<'a> {
    pub subject_id: Uuid,
    /// Who discloses (the program).
    pub discloser: &'a str,
    /// Who may receive, as `role:id`.
    pub recipient: &'a str,
    pub categories: &'a [String],
    pub purpose: &'a str,
    pub expires_at: Option<OffsetDateTime>,
    /// Or the event that ends it (§2.31(a)(6)); one of the two is required.
    pub expiry_event: Option<&'a str>,
    pub form_version: &'a str,
    pub signed_name: &'a str,
    pub signed_at: OffsetDateTime,
    /// The elements terms-v2 adds. Every consent recorded now has them; `None` only describes
    /// a row recorded before they were kept (terms-v1), when verifying its chain.
    pub elements: Option<Elements<'a>>,
}

/// The §2.31 elements of a terms-v2 consent beyond the v1 ones: the recipient as copied at
/// signing, and how and from where it was signed.
#[derive(Debug, Clone, Copy)]
pub struct Elements<'a> {
    /// `named` or `class`.
    pub recipient_kind: &'a str,
    pub recipient_name: &'a str,
    pub recipient_directory_id: Option<Uuid>,
    pub recipient_address: Option<&'a str>,
    pub signature_method: &'a str,
    pub signed_from: &'a str,
}

#[derive(Debug, thiserror::Error)]
pub enum ConsentError {
    #[error("no consent form {0}")]
    UnknownForm(String),
    /// The text the subject was shown is not the form on file (or the form on file was altered).
    #[error("the form text signed does not match form {0} on file")]
    FormMismatch(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}

/// The terms a consent grants, as hashed into `terms_sha256`.
fn terms(c: &NewConsent<'_>, form_sha256: &[u8]) -> Vec<u8> {
    let Some(e) = &c.elements else { return terms_v1(c, form_sha256) };
    Fields::new(TERMS_V2)
        .uuid(c.subject_id)
        .text(c.discloser)
        .text(c.recipient)
        .text(e.recipient_kind)
        .text(e.recipient_name)
        .opt_uuid(e.recipient_directory_id)
        .opt_text(e.recipient_address)
        .list(c.categories)
        .text(c.purpose)
        .opt_time(c.expires_at)
        .opt_text(c.expiry_event)
        .text(c.form_version)
        .opt_bytes(Some(form_sha256))
        .text(c.signed_name)
        .text(e.signature_method)
        .time(c.signed_at)
        .text(e.signed_from)
        .into_bytes()
}

const TERMS_V1: &str = "consent-terms-v1";
const TERMS_V2: &str = "consent-terms-v2";

fn terms_v1(c: &NewConsent<'_>, form_sha256: &[u8]) -> Vec<u8> {
    Fields::new(TERMS_V1)
        .uuid(c.subject_id)
        .text(c.discloser)
        .text(c.recipient)
        .list(c.categories)
        .text(c.purpose)
        .opt_time(c.expires_at)
        .opt_text(c.expiry_event)
        .text(c.form_version)
        .opt_bytes(Some(form_sha256))
        .text(c.signed_name)
        .time(c.signed_at)
        .into_bytes()
}

fn row_canonical(id: Uuid, terms: &[u8], terms_sha256: &[u8], created_at: OffsetDateTime) -> Vec<u8> {
    Fields::new("consents-v1").uuid(id).nested(terms).opt_bytes(Some(terms_sha256)).time(created_at).into_bytes()
}

fn validate(c: &NewConsent<'_>) -> Result<(), ConsentError> {
    let invalid = |e: common::ApiError| match e {
        common::ApiError::Unprocessable(message) => ConsentError::Invalid(message),
        other => ConsentError::Invalid(other.to_string()),
    };
    common::json::printable("discloser", c.discloser, 1..=200, false).map_err(invalid)?;
    common::json::printable("recipient", c.recipient, 1..=200, false).map_err(invalid)?;
    common::json::printable("purpose", c.purpose, 1..=100, false).map_err(invalid)?;
    common::json::printable("signed_name", c.signed_name, 1..=200, false).map_err(invalid)?;
    if c.categories.is_empty() || c.categories.iter().any(|k| !CATEGORIES.contains(&k.as_str())) {
        return Err(ConsentError::Invalid(format!("categories: one or more of {}", CATEGORIES.join(", "))));
    }
    if c.expires_at.is_none() && c.expiry_event.is_none() {
        return Err(ConsentError::Invalid("an expiry date or an expiry event is required".into()));
    }
    let Some(e) = &c.elements else {
        return Err(ConsentError::Invalid("a consent records its recipient and signature elements".into()));
    };
    if !["named", "class"].contains(&e.recipient_kind) {
        return Err(ConsentError::Invalid("recipient kind: named or class".into()));
    }
    common::json::printable("recipient.name", e.recipient_name, 1..=200, false).map_err(invalid)?;
    if let Some(address) = e.recipient_address {
        common::json::printable("recipient.address", address, 1..=300, false).map_err(invalid)?;
    }
    common::json::printable("signature.method", e.signature_method, 1..=50, false).map_err(invalid)?;
    common::json::printable("signed_from", e.signed_from, 1..=100, false).map_err(invalid)?;
    Ok(())
}

/// Publishes a consent form's text under a version; returns its SHA-256 (what a signing client
/// shows and sends back).
pub async fn publish_form(tx: &mut PgConnection, version: &str, body: &str) -> Result<[u8; 32], sqlx::Error> {
    let hash = chain::sha256(body.as_bytes());
    sqlx::query("INSERT INTO consent_forms (version, body, body_sha256) VALUES ($1, $2, $3)")
        .bind(version)
        .bind(body)
        .bind(&hash[..])
        .execute(&mut *tx)
        .await?;
    Ok(hash)
}

/// Records a signed consent, in the caller's transaction; returns its id and terms hash.
/// `shown_form_sha256` is the SHA-256 of the form text the subject was shown and signed.
pub async fn record(
    tx: &mut PgConnection,
    consent: &NewConsent<'_>,
    shown_form_sha256: &[u8],
) -> Result<(Uuid, [u8; 32]), ConsentError> {
    validate(consent)?;
    let elements = consent.elements.expect("validated");
    let form: Option<(String, Vec<u8>)> =
        sqlx::query_as("SELECT body, body_sha256 FROM consent_forms WHERE version = $1")
            .bind(consent.form_version)
            .fetch_optional(&mut *tx)
            .await?;
    let Some((body, on_file)) = form else { return Err(ConsentError::UnknownForm(consent.form_version.into())) };
    if chain::sha256(body.as_bytes())[..] != on_file[..] || shown_form_sha256 != &on_file[..] {
        tracing::warn!(
            form_version = consent.form_version,
            "consent refused: the signed form text is not the form on file"
        );
        return Err(ConsentError::FormMismatch(consent.form_version.into()));
    }
    let id = Uuid::new_v4();
    let created_at = chain::now();
    let terms = terms(consent, &on_file);
    let terms_sha256 = chain::sha256(&terms);
    let prev = chain::head(tx, CHAIN_LOCK, "consents").await?;
    let row_hash = chain::link(&prev, &row_canonical(id, &terms, &terms_sha256, created_at));
    sqlx::query(
        "INSERT INTO consents (id, subject_id, discloser, recipient, categories, purpose, expires_at, expiry_event, \
         form_version, form_sha256, signed_name, signed_at, created_at, terms_sha256, prev_hash, row_hash, \
         terms_format, recipient_kind, recipient_name, recipient_directory_id, recipient_address, \
         signature_method, signed_from) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, \
         $22, $23)",
    )
    .bind(id)
    .bind(consent.subject_id)
    .bind(consent.discloser)
    .bind(consent.recipient)
    .bind(consent.categories)
    .bind(consent.purpose)
    .bind(consent.expires_at)
    .bind(consent.expiry_event)
    .bind(consent.form_version)
    .bind(&on_file)
    .bind(consent.signed_name)
    .bind(consent.signed_at)
    .bind(created_at)
    .bind(&terms_sha256[..])
    .bind(prev)
    .bind(&row_hash[..])
    .bind(TERMS_V2)
    .bind(elements.recipient_kind)
    .bind(elements.recipient_name)
    .bind(elements.recipient_directory_id)
    .bind(elements.recipient_address)
    .bind(elements.signature_method)
    .bind(elements.signed_from)
    .execute(&mut *tx)
    .await?;
    Ok((id, terms_sha256))
}

/// Every column [`canonical_of`] reads, in chain order.
pub const SELECT: &str = "SELECT seq, id, subject_id, discloser, recipient, categories, purpose, expires_at, \
                          expiry_event, form_version, form_sha256, signed_name, signed_at, created_at, terms_sha256, \
                          prev_hash, row_hash, terms_format, recipient_kind, recipient_name, recipient_directory_id, \
                          recipient_address, signature_method, signed_from FROM consents ORDER BY seq";

/// The hashed content of a stored consent: its terms recomputed from the columns, and the
/// stored terms hash, so an edit of either breaks the chain.
pub fn canonical_of(row: &PgRow) -> Result<Vec<u8>, sqlx::Error> {
    let text = |name: &str| row.try_get::<String, _>(name);
    let (discloser, recipient, purpose, form_version, signed_name) =
        (text("discloser")?, text("recipient")?, text("purpose")?, text("form_version")?, text("signed_name")?);
    let categories: Vec<String> = row.try_get("categories")?;
    let expiry_event: Option<String> = row.try_get("expiry_event")?;
    let form_sha256: Vec<u8> = row.try_get("form_sha256")?;
    let format: String = row.try_get("terms_format")?;
    let opt = |name: &str| row.try_get::<Option<String>, _>(name);
    let (kind, name, address, method, from) = (
        opt("recipient_kind")?,
        opt("recipient_name")?,
        opt("recipient_address")?,
        opt("signature_method")?,
        opt("signed_from")?,
    );
    let elements = match format.as_str() {
        TERMS_V1 => None,
        // The table's check guarantees these on a terms-v2 row; a missing one breaks the chain.
        _ => Some(Elements {
            recipient_kind: kind.as_deref().unwrap_or_default(),
            recipient_name: name.as_deref().unwrap_or_default(),
            recipient_directory_id: row.try_get("recipient_directory_id")?,
            recipient_address: address.as_deref(),
            signature_method: method.as_deref().unwrap_or_default(),
            signed_from: from.as_deref().unwrap_or_default(),
        }),
    };
    let consent = NewConsent {
        subject_id: row.try_get("subject_id")?,
        discloser: &discloser,
        recipient: &recipient,
        categories: &categories,
        purpose: &purpose,
        expires_at: row.try_get("expires_at")?,
        expiry_event: expiry_event.as_deref(),
        form_version: &form_version,
        signed_name: &signed_name,
        signed_at: row.try_get("signed_at")?,
        elements,
    };
    let stored_terms: Vec<u8> = row.try_get("terms_sha256")?;
    Ok(row_canonical(row.try_get("id")?, &terms(&consent, &form_sha256), &stored_terms, row.try_get("created_at")?))
}

/// Verifies the consents trail (`secondwind-operator audit verify --trail consents`).
pub async fn verify(pool: &PgPool, limit: usize) -> Result<Verification, sqlx::Error> {
    chain::verify_table(pool, SELECT, limit, canonical_of).await
}
