//! Policy errors: one variant per broken rule, carrying the values that broke
//! it, plus the locations to point at. Rendering lives in `crate::diag`.

use std::ops::Range;

use crate::diag::{Snippet, SourceDiag};

/// What went wrong with a policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyErrorKind {
    /// The file could not be read.
    #[error("reading policy {path}: {error}")]
    Read {
        /// The path.
        path: String,
        /// The OS error.
        error: String,
    },
    /// `extends` or `--policy` names no built-in and no file.
    #[error("unknown built-in policy \"{name}\"{}", crate::vocab::did_you_mean(.suggestion))]
    UnknownBuiltin {
        /// The name.
        name: String,
        /// The closest built-in.
        suggestion: Option<String>,
    },
    /// TOML syntax or type error (message from the TOML parser).
    #[error("parsing policy: {message}")]
    Parse {
        /// The parser's message.
        message: String,
    },
    /// An unknown key.
    #[error("unknown key `{key}` in policy{}", crate::vocab::did_you_mean(.suggestion))]
    UnknownKey {
        /// The key.
        key: String,
        /// The closest accepted key.
        suggestion: Option<String>,
        /// The accepted keys.
        expected: Vec<String>,
    },
    /// `extends` loops.
    #[error("`extends` cycle: {}", .chain.join(" → "))]
    ExtendsCycle {
        /// The chain, ending with the repeated policy.
        chain: Vec<String>,
    },
    /// An unknown capability name.
    #[error("{0}")]
    Capability(crate::vocab::CapError),
    /// An unknown rlimit name.
    #[error("{0}")]
    Rlimit(crate::vocab::RlimitError),
    /// An unknown syscall name.
    #[error("unknown system call \"{name}\" on x86_64{}", crate::vocab::did_you_mean(.suggestion))]
    Syscall {
        /// The name.
        name: String,
        /// The closest known name.
        suggestion: Option<String>,
    },
    /// A bad seccomp action.
    #[error("bad seccomp action \"{0}\": expected allow, errno:NAME (e.g. errno:EPERM), kill_process, kill_thread, trap or log")]
    SeccompAction(String),
    /// A relative path where an absolute one is required.
    #[error("{what} must be an absolute path, got \"{path}\"")]
    RelativePath {
        /// Which setting.
        what: &'static str,
        /// The path.
        path: String,
    },
    /// Two settings that cannot both hold.
    #[error("conflicting settings: {what}")]
    Conflict {
        /// The conflict in words.
        what: String,
    },
    /// A value out of range.
    #[error("{what}")]
    Range {
        /// What is wrong.
        what: String,
    },
}

/// A policy error with where it happened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}")]
pub struct PolicyError {
    /// What went wrong.
    pub kind: PolicyErrorKind,
    /// The main location.
    pub at: Option<Snippet>,
    /// Other locations involved (the other side of a conflict).
    pub also: Vec<Snippet>,
    /// What to do.
    pub help: Option<String>,
}

impl PolicyError {
    /// An error at a span of a source.
    pub fn at(
        kind: PolicyErrorKind,
        name: &str,
        text: &str,
        span: Option<Range<usize>>,
        label: impl Into<String>,
    ) -> Self {
        PolicyError {
            kind,
            at: Some(Snippet {
                name: name.to_string(),
                text: text.to_string(),
                span,
                label: label.into(),
            }),
            also: Vec::new(),
            help: None,
        }
    }

    /// Adds help.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Converts to a renderable diagnostic.
    pub fn to_diag(&self) -> SourceDiag {
        let related = self.also.iter().map(|s| SourceDiag::note(s.clone())).collect();
        SourceDiag::new(self.kind.to_string(), self.at.clone(), self.help.clone(), related)
    }
}
