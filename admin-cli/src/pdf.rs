//! A plain PDF (1.4) of text pages, written by hand: the standard Helvetica fonts (every reader
//! has them, nothing embedded), WinAnsi encoding, uncompressed content streams, a correct cross
//! reference table. Enough for a document a person is handed (the accounting of disclosures),
//! with no PDF library linked into the staff CLI.

/// One line of the document.
pub enum Line {
    /// Large, bold.
    Title(String),
    /// Bold.
    Heading(String),
    /// Regular; wrapped to the page width.
    Text(String),
    /// Regular, indented; wrapped.
    Indented(String),
    Blank,
}

const PAGE_WIDTH: f32 = 612.0; // US Letter, in points
const PAGE_HEIGHT: f32 = 792.0;
const MARGIN: f32 = 54.0;
const LEADING: f32 = 13.0;
/// Characters per line across the text width (504 pt), counted for the widest common letters
/// (capitals, about 0.72 em) so that no line runs off the page: 10 pt regular, 11 pt bold
/// headings, the 16 pt bold title.
const WRAP: usize = 70;
const WRAP_HEADING: usize = 58;
const WRAP_TITLE: usize = 40;

/// Text as a PDF string literal in WinAnsi: `\`, `(` and `)` escaped, Latin-1 and the common
/// typographic marks as octal escapes, anything else (and control characters) as `?`.
fn literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('(');
    for c in text.chars() {
        match c {
            '\\' | '(' | ')' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            '\u{a0}'..='\u{ff}' => out.push_str(&format!("\\{:03o}", c as u32)),
            '\u{2014}' => out.push_str("\\227"),
            '\u{2013}' => out.push_str("\\226"),
            '\u{2018}' => out.push_str("\\221"),
            '\u{2019}' => out.push_str("\\222"),
            '\u{201c}' => out.push_str("\\223"),
            '\u{201d}' => out.push_str("\\224"),
            '\u{2022}' => out.push_str("\\225"),
            _ => out.push('?'),
        }
    }
    out.push(')');
    out
}

/// Splits `text` into lines of at most `width` characters, at spaces where it can.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let mut word: Vec<char> = word.chars().collect();
        while word.len() > width {
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            lines.push(word.drain(..width).collect());
        }
        let word: String = word.into_iter().collect();
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&word);
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

/// Lays `lines` out on pages (with "page n of m" at the foot) and returns the PDF's bytes.
pub fn render(lines: &[Line], footer: &str) -> Vec<u8> {
    // (font, size, x, text) per printed line; None starts nothing but takes a line.
    let mut printed: Vec<Option<(&str, f32, f32, String)>> = Vec::new();
    for line in lines {
        match line {
            Line::Title(t) => printed.extend(wrap(t, WRAP_TITLE).into_iter().map(|l| Some(("F2", 16.0, MARGIN, l)))),
            Line::Heading(t) => {
                printed.extend(wrap(t, WRAP_HEADING).into_iter().map(|l| Some(("F2", 11.0, MARGIN, l))))
            }
            Line::Text(t) => printed.extend(wrap(t, WRAP).into_iter().map(|l| Some(("F1", 10.0, MARGIN, l)))),
            Line::Indented(t) => {
                printed.extend(wrap(t, WRAP - 4).into_iter().map(|l| Some(("F1", 10.0, MARGIN + 18.0, l))))
            }
            Line::Blank => printed.push(None),
        }
    }
    let per_page = ((PAGE_HEIGHT - 2.0 * MARGIN - 2.0 * LEADING) / LEADING) as usize;
    let pages: Vec<_> = printed.chunks(per_page.max(1)).collect();
    let count = pages.len().max(1);

    let mut objects: Vec<String> = Vec::new();
    // 1 catalog, 2 page tree, 3 and 4 fonts, then a page and its contents per page.
    let kids: Vec<String> = (0..count).map(|i| format!("{} 0 R", 5 + 2 * i)).collect();
    objects.push("<< /Type /Catalog /Pages 2 0 R >>".into());
    objects.push(format!("<< /Type /Pages /Kids [{}] /Count {count} >>", kids.join(" ")));
    objects.push("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>".into());
    objects.push("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>".into());
    for n in 0..count {
        let mut content = String::new();
        let mut y = PAGE_HEIGHT - MARGIN;
        for entry in pages.get(n).copied().unwrap_or_default() {
            if let Some((font, size, x, text)) = entry {
                content.push_str(&format!("BT /{font} {size} Tf {x} {y} Td {} Tj ET\n", literal(text)));
            }
            y -= LEADING;
        }
        let foot = format!("{footer} \u{2014} page {} of {count}", n + 1);
        content.push_str(&format!("BT /F1 8 Tf {MARGIN} {} Td {} Tj ET\n", MARGIN - 20.0, literal(&foot)));
        objects.push(format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {PAGE_WIDTH} {PAGE_HEIGHT}] \
             /Resources << /Font << /F1 3 0 R /F2 4 0 R >> >> /Contents {} 0 R >>",
            6 + 2 * n
        ));
        objects.push(format!("<< /Length {} >>\nstream\n{content}endstream", content.len()));
    }

    let mut pdf: Vec<u8> = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut offsets = Vec::with_capacity(objects.len());
    for (i, body) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
    }
    let xref = pdf.len();
    pdf.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for offset in offsets {
        pdf.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    pdf.extend_from_slice(
        format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1).as_bytes(),
    );
    pdf
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every cross-reference entry points at its object, and startxref at the table.
    fn check_structure(pdf: &[u8]) -> usize {
        let text = String::from_utf8_lossy(pdf);
        assert!(pdf.starts_with(b"%PDF-1.4\n") && text.ends_with("%%EOF\n"));
        let start: usize =
            text.rsplit("startxref\n").next().and_then(|t| t.lines().next()).expect("startxref").parse().expect("n");
        // Offsets count bytes: read the table from the bytes (the header's binary marker is not
        // UTF-8, so `text` is longer than `pdf` before it).
        assert!(pdf[start..].starts_with(b"xref\n"));
        let table = String::from_utf8_lossy(&pdf[start..]).into_owned();
        let entries: Vec<usize> = table
            .lines()
            .skip(3)
            .take_while(|l| l.ends_with(" n "))
            .map(|l| l[..10].parse().expect("offset"))
            .collect();
        for (i, offset) in entries.iter().enumerate() {
            assert!(pdf[*offset..].starts_with(format!("{} 0 obj\n", i + 1).as_bytes()), "object {}", i + 1);
        }
        entries.len()
    }

    #[test]
    fn a_document_has_its_text_its_pages_and_a_true_cross_reference() {
        let mut lines = vec![Line::Title("Accounting of Disclosures".into()), Line::Blank];
        for n in 0..120 {
            lines.push(Line::Text(format!("Disclosure {n} (to a residence) \u{2014} caf\u{e9} \\ done")));
        }
        lines.push(Line::Heading(format!("1. TO {}", "ST. MARY'S REGIONAL HOSPITAL ".repeat(6))));
        let pdf = render(&lines, "SecondWind");
        let objects = check_structure(&pdf);
        let text = String::from_utf8_lossy(&pdf);
        assert!(text.contains("(Accounting of Disclosures) Tj"));
        assert!(text.contains("(Disclosure 7 \\(to a residence\\) \\227 caf\\351 \\\\ done) Tj"));
        let pages = text.matches("/Type /Page ").count();
        assert!(pages >= 3, "{pages} pages");
        assert_eq!(objects, 4 + 2 * pages);
        assert!(text.contains(&format!("page {pages} of {pages}")));
        // A long heading (a recipient's name) wraps instead of running off the page.
        let heading_lines = text.lines().filter(|l| l.contains("/F2 11 Tf")).count();
        assert!(heading_lines >= 3, "{heading_lines}");
    }

    #[test]
    fn long_text_wraps_at_spaces_and_very_long_words_are_cut() {
        let lines = wrap(&"word ".repeat(40), 20);
        assert!(lines.iter().all(|l| l.chars().count() <= 20));
        assert_eq!(lines.join(" "), "word ".repeat(40).trim());
        assert_eq!(wrap(&"x".repeat(45), 20), vec!["x".repeat(20), "x".repeat(20), "x".repeat(5)]);
        assert_eq!(literal("\u{1b}[2J \u{4e2d}"), "(?[2J ?)");
    }
}
