//! Diagnostics at the edge: turns the library's typed errors, which carry
//! locations (a policy file span, a spec JSON path), into miette reports with
//! file, line, column and a snippet. The library's errors stay plain data; only
//! this module knows about rendering.

use std::ops::Range;

use miette::{Diagnostic, NamedSource, SourceSpan};

/// A piece of source text and a span in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snippet {
    /// File name as shown.
    pub name: String,
    /// Full text of the file.
    pub text: String,
    /// Byte range pointed at (None: the file as a whole).
    pub span: Option<Range<usize>>,
    /// Label shown under the span.
    pub label: String,
}

impl Snippet {
    /// 1-based line and column of the span start.
    pub fn line_col(&self) -> Option<(usize, usize)> {
        let start = self.span.as_ref()?.start.min(self.text.len());
        let before = &self.text[..start];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
        Some((line, col))
    }
}

/// A rendered diagnostic: a message, an optional located snippet, help, and
/// related snippets (the other side of a policy-vs-spec conflict).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SourceDiag {
    /// The message: what was being done, on what, and why it failed.
    pub message: String,
    /// Where.
    pub at: Option<Snippet>,
    /// What to do.
    pub help: Option<String>,
    /// Other places involved.
    pub related: Vec<SourceDiag>,
    /// Error (default), warning, or advice (for related notes).
    pub severity: miette::Severity,
    src: Option<NamedSource<String>>,
    label: Option<miette::LabeledSpan>,
}

impl SourceDiag {
    /// Builds a diagnostic.
    pub fn new(
        message: impl Into<String>,
        at: Option<Snippet>,
        help: Option<String>,
        related: Vec<SourceDiag>,
    ) -> Self {
        let mut message = message.into();
        let (src, label) = match &at {
            Some(s) => {
                if let Some((line, col)) = s.line_col() {
                    message = format!("{}:{line}:{col}: {message}", s.name);
                } else {
                    message = format!("{}: {message}", s.name);
                }
                let span = s.span.clone().map(|r| {
                    let len = r
                        .end
                        .saturating_sub(r.start)
                        .max(1)
                        .min(s.text.len().saturating_sub(r.start));
                    SourceSpan::new(r.start.into(), len)
                });
                (
                    Some(NamedSource::new(s.name.clone(), s.text.clone())),
                    span.map(|sp| miette::LabeledSpan::new_with_span(Some(s.label.clone()), sp)),
                )
            }
            None => (None, None),
        };
        SourceDiag {
            message,
            at,
            help,
            related,
            severity: miette::Severity::Error,
            src,
            label,
        }
    }

    /// The same diagnostic with another severity.
    pub fn with_severity(mut self, severity: miette::Severity) -> Self {
        self.severity = severity;
        self
    }

    /// A related note: a located snippet shown as advice under the main error.
    pub fn note(at: Snippet) -> Self {
        Self::new(at.label.clone(), Some(at), None, Vec::new()).with_severity(miette::Severity::Advice)
    }

    /// The diagnostic on one line, for a log an engine shows its user
    /// (runc's `--log`): the message (located), each related place as
    /// `FILE:LINE:COL: label`, then the help.
    pub fn one_line(&self) -> String {
        let mut out = self.message.replace('\n', " ");
        for r in &self.related {
            out.push_str("; ");
            out.push_str(&r.message.replace('\n', " "));
        }
        if let Some(h) = &self.help {
            out.push_str("; help: ");
            out.push_str(&h.replace('\n', " "));
        }
        out
    }

    /// A diagnostic with no location.
    pub fn plain(message: impl Into<String>, help: Option<String>) -> Self {
        Self::new(message, None, help, Vec::new())
    }
}

impl Diagnostic for SourceDiag {
    fn severity(&self) -> Option<miette::Severity> {
        Some(self.severity)
    }
    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.help.as_ref().map(|h| Box::new(h) as Box<dyn std::fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.src.as_ref().map(|s| s as &dyn miette::SourceCode)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        self.label
            .clone()
            .map(|l| Box::new(std::iter::once(l)) as Box<dyn Iterator<Item = _>>)
    }
    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        if self.related.is_empty() {
            None
        } else {
            Some(Box::new(self.related.iter().map(|d| d as &dyn Diagnostic)))
        }
    }
}

/// Renders a diagnostic as plain text (no colour, fixed width), as the CLI
/// prints it when stderr is not a terminal and as golden files hold it.
pub fn render_plain(diag: &dyn Diagnostic) -> String {
    let handler = miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor()).with_width(100);
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = handler.render_report(&mut out, diag);
    out
}
