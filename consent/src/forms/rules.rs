//! The forms' rules: whom a form's consents name, a form as loaded, and when a recorded form
//! is still the form its file holds.

use serde::{Deserialize, Serialize};

use common::chain;
use common::consents::FormSummary;

use super::queries::{FormRow, RecordedRow};

/// Whom a form's consents name as recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
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

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The form's text is not the text recorded under its version.
    #[error("consent form {0} was changed after it was published; a new wording needs a new version")]
    Changed(String),
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}

/// The form recorded under a version is the form loaded: its hash and its metadata. A version
/// recorded without metadata never is.
pub(crate) fn same_as_recorded(recorded: &RecordedRow, form: &Form) -> bool {
    recorded.body_sha256 == form.sha256
        && recorded.title.as_deref() == Some(form.title.as_str())
        && recorded.recipient_kind == Some(form.recipient)
        && recorded.published.as_deref() == Some(form.published.as_str())
}

/// A form offered for signing, as the options list it.
pub(crate) fn summary(row: &FormRow) -> FormSummary {
    FormSummary {
        version: row.version.clone(),
        title: row.title.clone(),
        recipient: row.recipient_kind.as_str().to_owned(),
        published: row.published.clone(),
        sha256: chain::hex(&row.body_sha256),
    }
}
