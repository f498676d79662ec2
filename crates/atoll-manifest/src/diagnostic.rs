//! Errors that point into a manifest: file, line, column, key, and what to do.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A byte range in the manifest text.
pub type Span = Range<usize>;

/// The text of a manifest, kept so that errors found after parsing (for example a
/// `source` that turns out not to be a component) can still quote the line.
#[derive(Debug)]
pub struct SourceText {
    /// How the file is named in messages (as the user gave it).
    pub path: PathBuf,
    /// The whole file.
    pub text: String,
}

impl SourceText {
    /// One-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..floor_char_boundary(&self.text, offset)];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before[line_start..].chars().count() + 1;
        (line, col)
    }

    fn line_text(&self, line: usize) -> &str {
        self.text.lines().nth(line - 1).unwrap_or("")
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// One problem in a manifest, rendered like a compiler error:
///
/// ```text
/// error: unknown key `sourc` in `[component.hello]`
///   --> atoll.toml:7:1 (key `component.hello.sourc`)
///    |
///  7 | sourc = "hello.wasm"
///    | ^^^^^
///    = help: did you mean `source`?
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct Diagnostic(Box<Inner>);

#[derive(Debug, Clone)]
struct Inner {
    message: String,
    key: Option<String>,
    span: Option<Span>,
    help: Option<String>,
    notes: Vec<String>,
    text: Option<Arc<SourceText>>,
    about_component: bool,
}

impl Diagnostic {
    /// A problem with no location yet; see [`Diagnostic::at`].
    pub fn new(message: impl Into<String>) -> Self {
        Self(Box::new(Inner {
            message: message.into(),
            key: None,
            span: None,
            help: None,
            notes: Vec::new(),
            text: None,
            about_component: false,
        }))
    }

    /// What is wrong, in one line.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The dotted key the problem is about, e.g. `component.api.limits.memory`.
    pub fn key_path(&self) -> Option<&str> {
        self.0.key.as_deref()
    }

    /// What to do about it.
    pub fn help_text(&self) -> Option<&str> {
        self.0.help.as_deref()
    }

    /// Attach the manifest text and the byte range the problem is about.
    pub fn at(mut self, source: &Arc<SourceText>, span: Span) -> Self {
        self.0.text = Some(source.clone());
        self.0.span = Some(span);
        self
    }

    /// Name the dotted key the problem is about.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.0.key = Some(key.into());
        self
    }

    /// Say what to do.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.0.help = Some(help.into());
        self
    }

    /// Add a note line.
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.0.notes.push(note.into());
        self
    }

    /// Mark the problem as one with a component the manifest names (its file is missing,
    /// not a component, does not compile or link, lacks the export its trigger needs),
    /// not with the manifest itself; the CLI exits with a different code for each.
    pub fn about_component(mut self) -> Self {
        self.0.about_component = true;
        self
    }

    /// Whether [`Diagnostic::about_component`] marked it.
    pub fn is_about_component(&self) -> bool {
        self.0.about_component
    }

    /// The manifest path this problem is in, if known.
    pub fn path(&self) -> Option<&Path> {
        self.0.text.as_ref().map(|s| s.path.as_path())
    }

    /// One-based (line, column) of the problem, if it has a place.
    pub fn line_col(&self) -> Option<(usize, usize)> {
        match (&self.0.text, &self.0.span) {
            (Some(src), Some(span)) => Some(src.line_col(span.start)),
            _ => None,
        }
    }
}

impl fmt::Display for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.message)?;
        let key = self
            .key
            .as_deref()
            .map(|k| format!(" (key `{k}`)"))
            .unwrap_or_default();
        match (&self.text, &self.span) {
            (Some(src), Some(span)) => {
                let (line, col) = src.line_col(span.start);
                let text = src.line_text(line);
                let gutter = line.to_string().len();
                let pad = " ".repeat(gutter);
                writeln!(f, "{pad}--> {}:{line}:{col}{key}", src.path.display())?;
                writeln!(f, "{pad} |")?;
                writeln!(f, "{line} | {text}")?;
                // Underline the span, clipped to this line.
                let line_chars = text.chars().count();
                let (end_line, end_col) = src.line_col(span.end.max(span.start + 1) - 1);
                let last = if end_line == line {
                    end_col
                } else {
                    line_chars
                };
                let width = (last + 1).saturating_sub(col).max(1);
                writeln!(f, "{pad} | {}{}", " ".repeat(col - 1), "^".repeat(width))?;
                for note in &self.notes {
                    writeln!(f, "{pad} = note: {note}")?;
                }
                if let Some(help) = &self.help {
                    writeln!(f, "{pad} = help: {help}")?;
                }
            }
            (Some(src), None) => {
                writeln!(f, "  --> {}{key}", src.path.display())?;
                for note in &self.notes {
                    writeln!(f, "  = note: {note}")?;
                }
                if let Some(help) = &self.help {
                    writeln!(f, "  = help: {help}")?;
                }
            }
            _ => {
                for note in &self.notes {
                    writeln!(f, "  = note: {note}")?;
                }
                if let Some(help) = &self.help {
                    writeln!(f, "  = help: {help}")?;
                }
            }
        }
        Ok(())
    }
}

/// The closest candidate to `input` by edit distance, if it is close enough to be a
/// plausible typo.
pub fn did_you_mean<'a>(input: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let input_lower = input.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (levenshtein(&input_lower, &c.to_ascii_lowercase()), *c))
        .filter(|(d, c)| *d <= (c.len().max(input.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_keys_only() {
        assert_eq!(did_you_mean("sourc", &["source", "build"]), Some("source"));
        assert_eq!(did_you_mean("Source", &["source", "build"]), Some("source"));
        assert_eq!(did_you_mean("zzzzzz", &["source", "build"]), None);
    }

    #[test]
    fn line_col_counts_from_one() {
        let src = SourceText {
            path: "a.toml".into(),
            text: "a = 1\nbé = 2\n".into(),
        };
        assert_eq!(src.line_col(0), (1, 1));
        assert_eq!(src.line_col(6), (2, 1));
        // `=` after a two-byte character is the 4th character of line 2.
        assert_eq!(src.line_col(10), (2, 4));
    }
}
