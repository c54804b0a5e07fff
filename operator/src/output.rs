//! Where command results go: a line or table for people on stdout, JSON for scripts, progress on
//! stderr so it never mixes into either.

use std::io::Write;

use serde::Serialize;

pub struct Output {
    pub json: bool,
}

impl Output {
    /// Progress for people; silent under `--json`.
    pub fn progress(&self, message: impl std::fmt::Display) {
        if !self.json {
            let _ = writeln!(std::io::stderr(), "{message}");
        }
    }

    /// The result: `value` as JSON, or `text` for people.
    pub fn result<T: Serialize>(&self, value: &T, text: impl FnOnce() -> String) -> anyhow::Result<()> {
        let mut stdout = std::io::stdout().lock();
        if self.json {
            serde_json::to_writer(&mut stdout, value)?;
            writeln!(stdout)?;
        } else {
            writeln!(stdout, "{}", text())?;
        }
        Ok(())
    }
}
