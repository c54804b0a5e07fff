//! The redisclosure notice (42 CFR §2.32) every disclosure outside the program carries: a
//! versioned policy file (`policies/redisclosure-notices/<version>.txt`). At start the vault
//! records the version with the SHA-256 of its text and refuses to start if that version was
//! recorded with another text, so the version each disclosure entry names is the exact text sent.

use std::path::Path;

use sqlx::PgPool;

use common::chain;
use common::client::DisclosureNotice;

use super::queries;
use crate::policy::Disclosure;

/// The largest notice file read.
const MAX_FILE_BYTES: u64 = 64 * 1024;

#[derive(Debug, Clone)]
pub struct Notice {
    /// The file's name without `.txt`.
    pub version: String,
    pub text: String,
    pub sha256: [u8; 32],
}

#[derive(Debug, thiserror::Error)]
pub enum NoticeError {
    #[error("{0}")]
    File(String),
    #[error("notice {0} was changed after it was first sent; a new wording needs a new version")]
    Changed(String),
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}

impl Notice {
    /// Reads a notice file; the error names the file and what is wrong.
    pub fn load(file: &Path) -> Result<Self, NoticeError> {
        let version = file
            .file_stem()
            .and_then(|s| s.to_str())
            .filter(|v| common::config::valid_version(v) && file.extension().is_some_and(|e| e == "txt"))
            .ok_or_else(|| {
                NoticeError::File(format!(
                    "{}: a notice is <version>.txt, the version lowercase letters, digits, '.' and '-'",
                    file.display()
                ))
            })?
            .to_owned();
        let text = common::config::read_text_file(file, MAX_FILE_BYTES).map_err(NoticeError::File)?;
        if text.trim().is_empty() {
            return Err(NoticeError::File(format!("{}: empty", file.display())));
        }
        let sha256 = chain::sha256(text.as_bytes());
        Ok(Self { version, text, sha256 })
    }

    /// Records this version and its text's hash, or checks the recorded one is the same.
    pub async fn record(&self, pool: &PgPool) -> Result<(), NoticeError> {
        queries::insert_notice(pool, &self.version, &self.text, &self.sha256[..]).await?;
        let recorded = queries::notice_sha256(pool, &self.version).await?;
        if recorded != self.sha256 {
            return Err(NoticeError::Changed(self.version.clone()));
        }
        Ok(())
    }

    /// What goes with the records of `disclosure`: this notice, its version, and the consent
    /// relied on.
    pub(crate) fn sent_with(&self, disclosure: &Disclosure) -> DisclosureNotice {
        DisclosureNotice {
            consent_id: disclosure.consent_id,
            notice_version: self.version.clone(),
            notice: self.text.clone(),
        }
    }
}
