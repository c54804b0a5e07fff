//! Results for people (a table sized to the terminal) or for scripts (`--json`, `--csv`), on
//! stdout; notes and progress on stderr, so they never mix into what a script reads. Progress
//! bars draw only when stderr is a terminal.

use std::io::Write;

use comfy_table::{presets, ContentArrangement, Table as Grid};
use serde::Serialize;

use crate::failure::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Csv,
}

/// Rows as people and CSV see them.
pub struct Table {
    pub headers: Vec<&'static str>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: Vec<&'static str>) -> Self {
        Self { headers, rows: Vec::new() }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }
}

pub struct Output {
    pub format: Format,
}

impl Output {
    /// A note for people (hints, "this view is logged"): stderr, never in JSON or CSV output.
    pub fn note(&self, message: impl std::fmt::Display) {
        let _ = writeln!(std::io::stderr(), "{}", printable(&message.to_string()));
    }

    /// A list: `value` as JSON, or `table` as a table or CSV.
    pub fn list<T: Serialize>(&self, value: &T, table: &Table) -> Result<()> {
        let mut stdout = std::io::stdout().lock();
        match self.format {
            Format::Json => json(&mut stdout, value)?,
            Format::Csv => {
                writeln!(stdout, "{}", csv_line(table.headers.iter().copied()))?;
                for row in &table.rows {
                    let row: Vec<String> = row.iter().map(|c| printable(c)).collect();
                    writeln!(stdout, "{}", csv_line(row.iter().map(String::as_str)))?;
                }
            }
            Format::Table => {
                let mut grid = Grid::new();
                grid.load_style(presets::UTF8_FULL_CONDENSED)
                    .set_content_arrangement(ContentArrangement::Dynamic)
                    .set_header(table.headers.clone());
                for row in &table.rows {
                    grid.add_row(row.iter().map(|c| printable(c)).collect::<Vec<_>>());
                }
                writeln!(stdout, "{grid}")?;
            }
        }
        Ok(())
    }

    /// One result: `value` as JSON (and CSV, which has no shape for it, falls back to JSON),
    /// or `text` for people.
    pub fn one<T: Serialize>(&self, value: &T, text: impl FnOnce() -> String) -> Result<()> {
        let mut stdout = std::io::stdout().lock();
        match self.format {
            Format::Json | Format::Csv => json(&mut stdout, value)?,
            Format::Table => {
                let text = text();
                let lines: Vec<String> = text.lines().map(printable).collect();
                writeln!(stdout, "{}", lines.join("\n"))?
            }
        }
        Ok(())
    }
}

fn json<T: Serialize>(out: &mut impl Write, value: &T) -> Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)
        .map_err(|e| crate::failure::Failure::failed(format!("writing JSON: {e}")))?;
    writeln!(out)?;
    Ok(())
}

/// `text` safe to put on a terminal: control characters (C0, DEL, C1: the start of escape
/// sequences that could rewrite the screen, set the clipboard or plant links) become `?`, and
/// line breaks become spaces. Server text (a beneficiary's description, a note, an error
/// message) passes through here before it is shown. JSON output needs none: it escapes them.
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\n' | '\r' | '\t' => ' ',
            c if c.is_control() => '?',
            c => c,
        })
        .collect()
}

/// One CSV line (RFC 4180): a field with a comma, quote or line break is quoted, quotes doubled.
/// A field a spreadsheet would run as a formula (`=`, `+`, `-`, `@`) is prefixed with `'`.
pub fn csv_line<'a>(fields: impl Iterator<Item = &'a str>) -> String {
    fields
        .map(|f| {
            let formula = f.trim_start().starts_with(['=', '+', '-', '@']) || f.starts_with(['\t', '\r']);
            let f = if formula { format!("'{f}") } else { f.to_owned() };
            if f.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", f.replace('"', "\"\""))
            } else {
                f
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// A progress bar on stderr for `total` steps (or a spinner when unknown); hidden when stderr
/// is not a terminal or the output is for a script.
pub fn progress(format: Format, total: Option<u64>, what: &'static str) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if format != Format::Table || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = match total {
        Some(n) => indicatif::ProgressBar::new(n),
        None => indicatif::ProgressBar::new_spinner(),
    };
    bar.set_message(what);
    bar
}

/// A time for people: `2026-11-26 14:03 UTC`.
pub fn when(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!("{:04}-{:02}-{:02} {:02}:{:02} UTC", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute())
}

/// Cents as dollars: `$1,250.00`.
pub fn dollars(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let cents = cents.unsigned_abs();
    let whole = (cents / 100).to_string();
    let mut grouped = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{sign}${grouped}.{:02}", cents % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_what_needs_quoting_and_defuses_formulas() {
        assert_eq!(
            csv_line(["a", "b,c", "say \"hi\"", "=1+1", "x\ny"].into_iter()),
            "a,\"b,c\",\"say \"\"hi\"\"\",'=1+1,\"x\ny\""
        );
    }

    #[test]
    fn escape_sequences_from_the_server_never_reach_the_terminal() {
        assert_eq!(printable("ok\u{1b}]52;c;ZXZpbA==\u{7}done\u{9b}2J"), "ok?]52;c;ZXZpbA==?done?2J");
        assert_eq!(printable("two\nlines"), "two lines");
        assert_eq!(csv_line([" =cmd", "\t=x", "-5"].into_iter()), "' =cmd,'\t=x,'-5");
    }

    #[test]
    fn money_reads_like_money() {
        assert_eq!(dollars(125_000), "$1,250.00");
        assert_eq!(dollars(5), "$0.05");
        assert_eq!(dollars(123_456_789), "$1,234,567.89");
        assert_eq!(dollars(-150), "-$1.50");
    }
}
