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

#[cfg(test)]
mod tests {
    use super::*;

    fn form() -> Form {
        Form {
            version: "2026-11".into(),
            title: "Housing".into(),
            recipient: RecipientKind::Named,
            published: "2026-11-26".into(),
            body: "I consent.".into(),
            sha256: chain::sha256(b"I consent."),
        }
    }

    fn recorded(form: &Form) -> RecordedRow {
        RecordedRow {
            body_sha256: form.sha256.to_vec(),
            title: Some(form.title.clone()),
            recipient_kind: Some(form.recipient),
            published: Some(form.published.clone()),
        }
    }

    #[test]
    fn a_recorded_form_matches_its_file_in_every_field() {
        let form = form();
        assert!(same_as_recorded(&recorded(&form), &form));
        let changes: [fn(&mut RecordedRow); 5] = [
            |r| r.body_sha256[0] ^= 1,
            |r| r.title = Some("Another title".into()),
            |r| r.recipient_kind = Some(RecipientKind::Tpo),
            |r| r.published = Some("2026-11-27".into()),
            // Recorded before forms were files: no metadata.
            |r| (r.title, r.recipient_kind, r.published) = (None, None, None),
        ];
        for (i, change) in changes.iter().enumerate() {
            let mut row = recorded(&form);
            change(&mut row);
            assert!(!same_as_recorded(&row, &form), "change {i}");
        }
    }

    #[test]
    fn a_summary_names_the_kind_as_the_files_do() {
        let row = FormRow {
            version: "2026-12".into(),
            title: "TPO".into(),
            recipient_kind: RecipientKind::Tpo,
            published: "2026-12-01".into(),
            body_sha256: vec![0xab, 0x01],
            body: "text".into(),
        };
        let summary = summary(&row);
        assert_eq!((summary.recipient.as_str(), summary.sha256.as_str()), ("tpo", "ab01"));
        assert_eq!(RecipientKind::Named.as_str(), "named");
    }
}
