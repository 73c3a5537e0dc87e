//! Diagnostics shared by the `.pg` and `.gq` compilers.
//!
//! A [`Diagnostic`] carries a stable code (`S001` for schema syntax errors,
//! `S1xx` for schema rules, `Q000` for query parse errors, `Q001` for a
//! literal out of range, `T…` for query type errors), a message, the byte span it
//! points at and an optional remedy. [`Diagnostics`] binds a list of them to
//! the source text and file name so they can be rendered for people (a caret
//! snippet, via `miette`'s graphical handler) or as JSON (one object per
//! diagnostic with `file`, `line`, `column` as 1-based numbers).

use std::fmt;
use std::ops::Range;

use serde::Serialize;

/// How bad a finding is. Errors fail `lint` / `schema check` (exit code 1);
/// warnings are reported but leave the exit code at 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One finding in one source file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Stable code: it names the rule, not the message (e.g. `S104`, `T05`).
    pub code: &'static str,
    pub severity: Severity,
    pub message: String,
    /// Byte range in the source the finding points at (may be empty).
    pub span: Range<usize>,
    /// What to do about it, when there is something specific to say.
    pub help: Option<String>,
}

impl Diagnostic {
    /// An error with `code` at `span`.
    pub fn error(code: &'static str, span: Range<usize>, message: impl Into<String>) -> Self {
        Self {
            code,
            severity: Severity::Error,
            message: message.into(),
            span,
            help: None,
        }
    }

    /// A warning with `code` at `span`.
    pub fn warning(code: &'static str, span: Range<usize>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(code, span, message)
        }
    }

    /// Adds a remedy line.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// A 1-based line and column (columns count characters, not bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LineCol {
    pub line: usize,
    pub column: usize,
}

/// Maps a byte offset in `src` to a 1-based line and column.
pub fn line_col(src: &str, offset: usize) -> LineCol {
    let offset = offset.min(src.len());
    let mut line = 1;
    let mut line_start = 0;
    for (i, b) in src.as_bytes()[..offset].iter().enumerate() {
        if *b == b'\n' {
            line += 1;
            line_start = i + 1;
        }
    }
    // Count characters, not bytes; tolerate an offset inside a UTF-8 sequence.
    let column = src
        .get(line_start..offset)
        .map(|s| s.chars().count())
        .unwrap_or(offset - line_start)
        + 1;
    LineCol { line, column }
}

/// Diagnostics for one source file, ready to render.
#[derive(Debug, Clone)]
pub struct Diagnostics {
    /// The file name shown to the user (a path, or `<inline>`).
    pub file: String,
    pub source: String,
    pub items: Vec<Diagnostic>,
}

/// The JSON form of one diagnostic (`--json`).
#[derive(Debug, Clone, Serialize)]
pub struct DiagnosticJson {
    pub code: &'static str,
    pub severity: Severity,
    pub message: String,
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub end_line: usize,
    pub end_column: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// The source line the diagnostic points at.
    pub snippet: String,
}

impl Diagnostics {
    pub fn new(file: impl Into<String>, source: impl Into<String>, items: Vec<Diagnostic>) -> Self {
        Self {
            file: file.into(),
            source: source.into(),
            items,
        }
    }

    /// True when any item is an error (warnings alone do not fail).
    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }

    /// Line and column where `d` starts.
    pub fn position(&self, d: &Diagnostic) -> LineCol {
        line_col(&self.source, d.span.start)
    }

    /// Every item as its JSON shape.
    pub fn to_json(&self) -> Vec<DiagnosticJson> {
        self.items
            .iter()
            .map(|d| {
                let start = line_col(&self.source, d.span.start);
                let end = line_col(&self.source, d.span.end);
                let snippet = self
                    .source
                    .lines()
                    .nth(start.line - 1)
                    .unwrap_or("")
                    .to_string();
                DiagnosticJson {
                    code: d.code,
                    severity: d.severity,
                    message: d.message.clone(),
                    file: self.file.clone(),
                    line: start.line,
                    column: start.column,
                    end_line: end.line,
                    end_column: end.column,
                    help: d.help.clone(),
                    snippet,
                }
            })
            .collect()
    }

    /// Human form: `file:line:col` header, a caret snippet, the code and help.
    /// `color` turns ANSI styling on.
    pub fn render(&self, color: bool) -> String {
        let theme = if color {
            miette::GraphicalTheme::unicode()
        } else {
            miette::GraphicalTheme::unicode_nocolor()
        };
        let handler = miette::GraphicalReportHandler::new_themed(theme).with_context_lines(1);
        let mut out = String::new();
        for d in &self.items {
            let pos = self.position(d);
            out.push_str(&format!("{}:{}:{}\n", self.file, pos.line, pos.column));
            let report = Rendered {
                diag: d,
                source: miette::NamedSource::new(&self.file, self.source.clone()),
            };
            // Writing to a String cannot fail.
            let _ = handler.render_report(&mut out, &report);
            out.push('\n');
        }
        out
    }
}

/// Adapter that lets miette draw one of our diagnostics.
struct Rendered<'a> {
    diag: &'a Diagnostic,
    source: miette::NamedSource<String>,
}

impl fmt::Debug for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rendered").field("diag", self.diag).finish()
    }
}

impl fmt::Display for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diag.message)
    }
}

impl std::error::Error for Rendered<'_> {}

impl miette::Diagnostic for Rendered<'_> {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.diag.code))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.diag.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.diag
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.source)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        let span = &self.diag.span;
        let len = span.end.saturating_sub(span.start);
        Some(Box::new(std::iter::once(miette::LabeledSpan::new(
            Some("here".to_string()),
            span.start,
            len,
        ))))
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(false))
    }
}

/// Turns a pest parse error into a diagnostic with `code`.
pub fn from_pest<R: pest::RuleType>(
    code: &'static str,
    err: pest::error::Error<R>,
    rename: impl Fn(&R) -> String,
) -> Diagnostic {
    let span = match err.location {
        pest::error::InputLocation::Pos(p) => p..p,
        pest::error::InputLocation::Span((a, b)) => a..b,
    };
    let message = match &err.variant {
        pest::error::ErrorVariant::ParsingError {
            positives,
            negatives,
        } => {
            let mut names: Vec<String> = positives.iter().map(&rename).collect();
            names.sort();
            names.dedup();
            if !names.is_empty() {
                format!("syntax error: expected {}", join_or(&names))
            } else if !negatives.is_empty() {
                let mut bad: Vec<String> = negatives.iter().map(&rename).collect();
                bad.sort();
                bad.dedup();
                format!("syntax error: unexpected {}", join_or(&bad))
            } else {
                "syntax error".to_string()
            }
        }
        pest::error::ErrorVariant::CustomError { message } => message.clone(),
    };
    Diagnostic::error(code, span, message)
}

fn join_or(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {}", init.join(", "), last),
    }
}

/// Edit distance, used for "did you mean" suggestions.
pub fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// "did you mean `x`?" for the closest of `candidates` to `name`, if any is close.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (levenshtein(&lower, &c.to_ascii_lowercase()), c))
        .filter(|(d, c)| *d <= (c.len().max(name.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| format!("did you mean `{c}`?"))
}

/// "valid X are: a, b, c" listing, capped so a large catalog stays readable.
pub fn valid_list<'a>(what: &str, names: impl IntoIterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.into_iter().collect();
    if names.is_empty() {
        return format!("there are no {what}");
    }
    let shown: Vec<String> = names.iter().take(12).map(|n| format!("`{n}`")).collect();
    let more = if names.len() > 12 {
        format!(" (and {} more)", names.len() - 12)
    } else {
        String::new()
    };
    format!("valid {what}: {}{more}", shown.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one() {
        let src = "ab\ncd\n";
        assert_eq!(line_col(src, 0), LineCol { line: 1, column: 1 });
        assert_eq!(line_col(src, 4), LineCol { line: 2, column: 2 });
        assert_eq!(line_col(src, 99), LineCol { line: 3, column: 1 });
    }

    #[test]
    fn suggestions_pick_close_names() {
        assert_eq!(
            did_you_mean("Persn", ["Person", "Place"]).as_deref(),
            Some("did you mean `Person`?")
        );
        assert_eq!(did_you_mean("zzz", ["Person"]), None);
    }
}
