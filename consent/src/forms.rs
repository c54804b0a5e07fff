//! Consent forms as versioned files: `policies/consent-forms/<version>.txt` holds the exact text
//! a patient reads and signs, `<version>.toml` its metadata (title, the kind of recipient it
//! names, the publication date). The service loads them at start and records each in
//! `consent_forms` with the SHA-256 of the text's bytes. A version already recorded must hash as
//! it did: the service refuses to start if a form in use was edited (a new wording is a new
//! version), so every consent points at the exact words its subject signed.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sqlx::{PgPool, Row};

use common::chain;

/// Whom a form's consents name as recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecipientKind {
    /// One person or organisation, named in the consent.
    Named,
    /// A class of recipients, for treatment, payment and health care operations only
    /// (42 CFR §2.31(a)(4), as revised in 2024).
    Tpo,
}

impl RecipientKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Named => "named",
            Self::Tpo => "tpo",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Metadata {
    title: String,
    recipient: RecipientKind,
    published: toml::value::Datetime,
}

/// A form as loaded from its files.
#[derive(Debug, Clone)]
pub struct Form {
    pub version: String,
    pub title: String,
    pub recipient: RecipientKind,
    /// `YYYY-MM-DD`.
    pub published: String,
    pub body: String,
    pub sha256: [u8; 32],
}

/// The largest form file read.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

fn read_regular(path: &Path) -> Result<String, String> {
    common::config::read_text_file(path, MAX_FILE_BYTES)
}

/// Loads every form in `dir` (each `<version>.toml` with its `<version>.txt`), sorted by version.
/// The error names the file and what is wrong with it.
pub fn load_dir(dir: &Path) -> Result<Vec<Form>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut forms = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
        let (Some(stem), Some(ext)) = (path.file_stem().and_then(|s| s.to_str()), path.extension()) else {
            continue;
        };
        if ext != "toml" {
            continue;
        }
        if !common::config::valid_version(stem) {
            return Err(format!("{}: a version is lowercase letters, digits, '.' and '-'", path.display()));
        }
        let text = read_regular(&path)?;
        let meta: Metadata = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let published = match (meta.published.date, meta.published.time) {
            (Some(date), None) => date.to_string(),
            _ => return Err(format!("{}: published is a date (YYYY-MM-DD)", path.display())),
        };
        let body_path = path.with_extension("txt");
        let body = read_regular(&body_path)?;
        if body.trim().is_empty() || meta.title.trim().is_empty() {
            return Err(format!("{}: the title and the text are required", path.display()));
        }
        let sha256 = chain::sha256(body.as_bytes());
        forms.push(Form {
            version: stem.to_owned(),
            title: meta.title,
            recipient: meta.recipient,
            published,
            body,
            sha256,
        });
    }
    if forms.is_empty() {
        return Err(format!("{}: no consent forms (<version>.toml with <version>.txt)", dir.display()));
    }
    forms.sort_by(|a, b| a.version.cmp(&b.version));
    Ok(forms)
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The form's text is not the text recorded under its version.
    #[error("consent form {0} was changed after it was published; a new wording needs a new version")]
    Changed(String),
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}

/// Records every form not yet recorded, and checks that each recorded one still has its text
/// (its hash and its metadata), all in one transaction. A version recorded without metadata
/// (by `consents::publish_form`, before forms were files) cannot be described by a file: its
/// row is immutable, so such a file is refused; give the wording a new version.
pub async fn publish(pool: &PgPool, forms: &[Form]) -> Result<(), PublishError> {
    let mut tx = pool.begin().await?;
    for form in forms {
        sqlx::query(
            "INSERT INTO consent_forms (version, body, body_sha256, title, recipient_kind, published_on) \
             VALUES ($1, $2, $3, $4, $5, $6::date) ON CONFLICT (version) DO NOTHING",
        )
        .bind(&form.version)
        .bind(&form.body)
        .bind(&form.sha256[..])
        .bind(&form.title)
        .bind(form.recipient.as_str())
        .bind(&form.published)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(
            "SELECT body_sha256, title, recipient_kind, to_char(published_on, 'YYYY-MM-DD') AS published FROM consent_forms \
             WHERE version = $1",
        )
        .bind(&form.version)
        .fetch_one(&mut *tx)
        .await?;
        let same = row.try_get::<Vec<u8>, _>("body_sha256")? == form.sha256
            && row.try_get::<Option<String>, _>("title")?.as_deref() == Some(form.title.as_str())
            && row.try_get::<Option<String>, _>("recipient_kind")?.as_deref() == Some(form.recipient.as_str())
            && row.try_get::<Option<String>, _>("published")?.as_deref() == Some(form.published.as_str());
        if !same {
            return Err(PublishError::Changed(form.version.clone()));
        }
    }
    tx.commit().await?;
    Ok(())
}
