//! Reading the forms' files: each `<version>.toml` with its `<version>.txt`.

use std::path::Path;

use serde::Deserialize;

use common::chain;

use super::rules::{Form, RecipientKind};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Metadata {
    title: String,
    recipient: RecipientKind,
    published: toml::value::Datetime,
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
