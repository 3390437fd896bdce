//! Problems found in user input, as data, and the one place that renders them: as
//! rustc-style text (first line `file:line:col: error: …`, grep-able and clickable in
//! editors and terminals, then a source snippet and a hint) or as JSON.

use std::fmt::Write as _;

use serde::Serialize;

use crate::style::Colour;

/// One problem, located in a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// The field, as a manifest author writes it (`spec.stages[2].weight`); empty for a
    /// problem with the file as a whole.
    pub path: String,
    pub message: String,
    /// A short note shown under the source snippet.
    #[serde(skip)]
    pub label: Option<String>,
    /// What to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Diagnostic {
    /// Orders diagnostics by where they are, so output reads top to bottom.
    pub(crate) fn sort_key(&self) -> (&str, usize, usize) {
        (&self.file, self.line, self.column)
    }
}

/// Renders one diagnostic as text. `source` is the file's text, when it could be read,
/// for the snippet.
pub fn render(d: &Diagnostic, source: Option<&str>, colour: Colour) -> String {
    let mut out = String::new();
    let location = format!("{}:{}:{}:", d.file, d.line, d.column);
    let _ = writeln!(
        out,
        "{} {} {}",
        colour.paint("1", &location),
        colour.paint("1;31", "error:"),
        colour.paint("1", &d.message)
    );
    let line_text = source.and_then(|s| s.lines().nth(d.line.saturating_sub(1)));
    if let Some(text) = line_text {
        let number = d.line.to_string();
        let pad = " ".repeat(number.len());
        let gutter = |s: &str| colour.paint("1;34", s);
        let (text, column) = window(&sanitize(text), d.column);
        let start = column.saturating_sub(1).min(text.chars().count());
        let width = token_width(&text, start).max(1);
        let caret_pad: String = text.chars().take(start).map(|c| if c == '\t' { '\t' } else { ' ' }).collect();
        let _ = writeln!(out, "{pad} {}", gutter("|"));
        let _ = writeln!(out, "{} {} {}", gutter(&number), gutter("|"), text.trim_end());
        let carets = colour.paint("1;31", &"^".repeat(width));
        match &d.label {
            Some(label) => {
                let _ = writeln!(out, "{pad} {} {caret_pad}{carets} {}", gutter("|"), colour.paint("1;31", label));
            }
            None => {
                let _ = writeln!(out, "{pad} {} {caret_pad}{carets}", gutter("|"));
            }
        }
        if let Some(hint) = &d.hint {
            let _ = writeln!(out, "{pad} {} {}: {hint}", gutter("="), colour.paint("1", "hint"));
        }
    } else if let Some(hint) = &d.hint {
        let _ = writeln!(out, "  = {}: {hint}", colour.paint("1", "hint"));
    }
    out
}

/// Long lines (minified or generated YAML) are cut to a window around the column, so
/// a snippet stays one screen line. Returns the shown text and the column within it.
fn window(text: &str, column: usize) -> (String, usize) {
    const WIDTH: usize = 100;
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= WIDTH {
        return (text.to_owned(), column);
    }
    let start = column.saturating_sub(WIDTH / 2).min(chars.len().saturating_sub(WIDTH));
    let end = (start + WIDTH).min(chars.len());
    let mut shown = String::new();
    if start > 0 {
        shown.push('…');
    }
    shown.extend(&chars[start..end]);
    if end < chars.len() {
        shown.push('…');
    }
    (shown, column - start + usize::from(start > 0))
}

/// Control characters would garble the terminal; show them as `�`.
fn sanitize(text: &str) -> String {
    text.chars().map(|c| if c.is_control() && c != '\t' { '\u{fffd}' } else { c }).collect()
}

/// The width of the YAML token that starts at `start`: a quoted string, a flow
/// collection's first item, or a plain scalar up to `:`, `,`, a comment or the end.
fn token_width(text: &str, start: usize) -> usize {
    let chars: Vec<char> = text.chars().skip(start).collect();
    match chars.first() {
        Some(&q @ ('"' | '\'')) => chars.iter().skip(1).position(|&c| c == q).map_or(chars.len(), |end| end + 2),
        Some('-' | '[' | '{') => 1,
        Some(_) => {
            let mut end = 0;
            while end < chars.len() {
                let c = chars[end];
                let next = chars.get(end + 1).copied();
                let stop = matches!(c, ',' | ']' | '}')
                    || (c == ':' && matches!(next, None | Some(' ')))
                    || (c == ' ' && next == Some('#'));
                if stop {
                    break;
                }
                end += 1;
            }
            chars[..end].iter().rev().skip_while(|c| c.is_whitespace()).count()
        }
        None => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diag(line: usize, column: usize, label: Option<&str>, hint: Option<&str>) -> Diagnostic {
        Diagnostic {
            file: "m.yaml".into(),
            line,
            column,
            path: "spec.stagse".into(),
            message: "unknown field `stagse` in `spec`".into(),
            label: label.map(Into::into),
            hint: hint.map(Into::into),
        }
    }

    #[test]
    fn renders_rustc_style_with_snippet_label_and_hint() {
        let src = "spec:\n  stagse:\n    - weight: 5\n";
        let text = render(
            &diag(2, 3, Some("did you mean `stages`?"), Some("see the manifest reference")),
            Some(src),
            Colour::Never,
        );
        let expected = "m.yaml:2:3: error: unknown field `stagse` in `spec`\n  |\n2 |   stagse:\n  |   ^^^^^^ did you mean `stages`?\n  = hint: see the manifest reference\n";
        assert_eq!(text, expected);
    }

    #[test]
    fn underlines_whole_tokens() {
        assert_eq!(token_width("  hold: 1 hour # soon", 8), 6);
        assert_eq!(token_width("  image: \"a b\"", 9), 5);
        assert_eq!(token_width("    - {weight: 5, hold: 1h}", 15), 1);
        assert_eq!(token_width("    - {weight: 50, hold: 1h}", 15), 2);
        assert_eq!(token_width("url: http://x:80/y", 5), 13);
    }

    #[test]
    fn cuts_long_lines_around_the_column() {
        let line = format!("{}x{}", "a".repeat(300), "b".repeat(300));
        let text = render(&diag(1, 301, None, None), Some(&line), Colour::Never);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[2].chars().count() < 120, "{}", lines[2]);
        let caret_at = lines[3].find('^').unwrap();
        assert_eq!(lines[2].chars().nth(caret_at), Some('x'), "{text}");
    }

    #[test]
    fn survives_positions_past_the_text() {
        let text = render(&diag(9, 99, None, None), Some("a: 1\n"), Colour::Never);
        assert_eq!(text, "m.yaml:9:99: error: unknown field `stagse` in `spec`\n");
        let text = render(&diag(1, 99, None, None), Some("a: 1\n"), Colour::Never);
        assert!(text.contains("1 | a: 1\n  |     ^\n"), "{text}");
    }
}
