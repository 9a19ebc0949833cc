//! What `apply` reports when it fails: the step, the plan field's origin, the
//! operation and the OS error, plus anything rollback could not undo.

use std::fmt;
use std::io;

use serde::{Deserialize, Serialize};

use super::preflight::UnmetNeed;
use crate::plan::Step;
use crate::vocab::Origin;

/// One failed operation, in any of the three processes. Children send it to
/// the launcher as JSON over the control socket (or the exec pipe).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepFailure {
    /// The plan step that failed.
    pub step: Step,
    /// Where the plan element being applied came from.
    pub origin: Origin,
    /// The operation, as the dry run prints it.
    pub op: String,
    /// The OS error number, when there is one.
    pub errno: Option<i32>,
    /// The error text (`Device or resource busy (EBUSY)`).
    pub message: String,
}

impl StepFailure {
    /// Builds a failure from an OS error.
    pub fn new(step: Step, origin: Origin, op: String, e: &io::Error) -> Self {
        StepFailure {
            step,
            origin,
            op,
            errno: e.raw_os_error(),
            message: error_text(e),
        }
    }
}

/// `Device or resource busy (EBUSY)` for an OS error, the text otherwise.
pub fn error_text(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => {
            let errno = nix::errno::Errno::from_raw(n);
            format!("{} ({errno:?})", errno.desc())
        }
        None => e.to_string(),
    }
}

impl fmt::Display for StepFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "step {} ({}): {}: {}",
            self.step.name(),
            self.origin,
            self.op,
            self.message
        )
    }
}

/// Why `apply` failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The host cannot run this plan; nothing was done.
    #[error("apply: the host does not meet the plan's needs:\n{}", list(.0))]
    Preflight(Vec<UnmetNeed>),
    /// The plan cannot be prepared (bad seccomp rule, NUL in a string); nothing was done.
    #[error("apply: preparing {what}: {message}")]
    Prepare {
        /// The plan element.
        what: String,
        /// What is wrong with it.
        message: String,
    },
    /// A step failed; everything before it was undone (except `leftovers`).
    #[error("apply: {failure}{}", leftovers_text(.leftovers))]
    Step {
        /// The failed operation.
        failure: StepFailure,
        /// What rollback could not undo (empty when clean).
        leftovers: Vec<String>,
    },
    /// No state file could be made under the state root (read-only or full
    /// filesystem, no access): the launch's first effect failed, and what
    /// it made (a missing root) was removed again.
    #[error("apply: cannot make the sandbox's state file under {} ({from}): {message}; {fix}{}", root.display(), leftovers_text(.leftovers))]
    StateRoot {
        /// The state root (`--root`, or the default).
        root: std::path::PathBuf,
        /// `cli:--root` or `default`.
        from: Origin,
        /// The OS error (`Read-only file system (EROFS)`).
        message: String,
        /// What to do.
        fix: &'static str,
        /// What rollback could not undo (empty when clean).
        leftovers: Vec<String>,
    },
    /// The workload ran but teardown left something behind.
    #[error("apply: teardown left{}", leftovers_text(.leftovers))]
    Teardown {
        /// The workload's exit status.
        status: i32,
        /// What could not be removed.
        leftovers: Vec<String>,
    },
}

fn list(v: &[UnmetNeed]) -> String {
    v.iter()
        .enumerate()
        .map(|(i, n)| format!("  {}. {n}", i + 1))
        .collect::<Vec<_>>()
        .join("\n")
}

fn leftovers_text(v: &[String]) -> String {
    if v.is_empty() {
        String::new()
    } else {
        format!("\n  rollback could not undo:\n    {}", v.join("\n    "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::backend::Op;

    /// docs/apply.md quotes a failed cgroup write; this is how apply prints one.
    #[test]
    fn the_failure_docs_apply_md_quotes_is_printed_so() {
        let op = Op::WriteFile {
            path: "/sys/fs/cgroup/memory/sandboxctl/t1/memory.limit_in_bytes".into(),
            data: "67108864".into(),
        };
        let err = ApplyError::Step {
            failure: StepFailure::new(
                Step::CgroupLimits,
                Origin::Policy {
                    file: "untrusted.toml".into(),
                    line: 12,
                },
                op.to_string(),
                &io::Error::from_raw_os_error(libc::EBUSY),
            ),
            leftovers: vec![],
        };
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/apply.md")).unwrap();
        let quoted = format!("\n    {err}\n");
        assert!(
            doc.contains(&quoted),
            "docs/apply.md does not quote the error as printed:{quoted}"
        );
    }
}
