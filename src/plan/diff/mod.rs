//! The semantic plan diff: what a change to a policy or a spec does to the
//! sandbox, field by field.
//!
//! [`diff`] compares two [`LaunchPlan`] values (never their text), so plans
//! that differ only in formatting or in the order of sets and maps compare
//! equal. Each difference becomes a [`Change`] with a direction for security
//! ([`ChangeKind`]), a [`PrivilegeClass`] from the single table in
//! [`crate::plan::classes`], and the provenance of both sides. A value that
//! stayed the same but came from somewhere else is reported as a neutral
//! change of class `provenance`, so a moved policy line is visible (and a
//! pinned plan hash is not silently invalidated). Renderings live in
//! [`render`]; the exit status for CI is [`PlanDiff::exit_code`].

pub(crate) mod compare;
pub mod examples;
pub mod render;

#[cfg(test)]
mod tests;

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::plan::classes::PrivilegeClass;
use crate::plan::types::LaunchPlan;
use crate::vocab::Origin;

/// The direction of a change for security.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// The sandbox allows more than before.
    Widens,
    /// The sandbox allows less than before.
    Narrows,
    /// Neither (or no security meaning).
    Neutral,
}

impl ChangeKind {
    /// The word used in every rendering.
    pub fn word(self) -> &'static str {
        match self {
            ChangeKind::Widens => "widens",
            ChangeKind::Narrows => "narrows",
            ChangeKind::Neutral => "neutral",
        }
    }

    /// The order of two ranks: higher rank is wider.
    pub(crate) fn of_ranks<T: Ord>(old: T, new: T) -> ChangeKind {
        match new.cmp(&old) {
            std::cmp::Ordering::Greater => ChangeKind::Widens,
            std::cmp::Ordering::Less => ChangeKind::Narrows,
            std::cmp::Ordering::Equal => ChangeKind::Neutral,
        }
    }
}

impl fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

/// One difference between two plans.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// Dotted path of the field (`workload.capabilities.bounding`,
    /// `mounts[/data].flags`, `workload.rlimits.RLIMIT_NOFILE`).
    pub field: String,
    /// Direction for security.
    pub kind: ChangeKind,
    /// Privilege class (a row of [`crate::plan::classes::CLASSES`]).
    pub class: PrivilegeClass,
    /// The old value, as text; `None` when the new plan added it.
    pub old: Option<String>,
    /// The new value, as text; `None` when the new plan removed it.
    pub new: Option<String>,
    /// Where the old value came from.
    pub old_from: Option<Origin>,
    /// Where the new value came from.
    pub new_from: Option<Origin>,
    /// Why the direction is what it is, when that is not obvious.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Change {
    /// The section of the plan the field is in (`workload`, `mounts`, …).
    pub fn section(&self) -> &str {
        let end = self.field.find(['.', '[']).unwrap_or(self.field.len());
        &self.field[..end]
    }
}

/// Counts of changes by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Changes that widen.
    pub widens: usize,
    /// Changes that narrow.
    pub narrows: usize,
    /// Neutral changes, not counting provenance-only ones.
    pub neutral: usize,
    /// Values that are unchanged but come from somewhere else (neutral too).
    pub provenance: usize,
}

/// Every difference between two plans, in plan field order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanDiff {
    /// The changes.
    pub changes: Vec<Change>,
}

/// The exit status of `sandboxctl diff` and `sandboxctl check` when nothing changed.
pub const EXIT_UNCHANGED: u8 = 0;
/// The exit status when something changed and nothing widened.
pub const EXIT_CHANGED: u8 = 1;
/// The exit status for bad input (decided by the CLI).
pub const EXIT_BAD_INPUT: u8 = 2;
/// The exit status when something widened.
pub const EXIT_WIDENED: u8 = 3;

impl PlanDiff {
    /// Whether the plans are equal.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Counts by kind.
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for c in &self.changes {
            match c.kind {
                ChangeKind::Widens => s.widens += 1,
                ChangeKind::Narrows => s.narrows += 1,
                ChangeKind::Neutral if c.class == PrivilegeClass::Provenance => s.provenance += 1,
                ChangeKind::Neutral => s.neutral += 1,
            }
        }
        s
    }

    /// Whether any change widens the sandbox.
    pub fn widens(&self) -> bool {
        self.changes.iter().any(|c| c.kind == ChangeKind::Widens)
    }

    /// The exit status for CI: [`EXIT_UNCHANGED`] (0), [`EXIT_CHANGED`] (1) when
    /// something changed but nothing widened, [`EXIT_WIDENED`] (3) when
    /// something widened.
    pub fn exit_code(&self) -> u8 {
        if self.is_empty() {
            EXIT_UNCHANGED
        } else if self.widens() {
            EXIT_WIDENED
        } else {
            EXIT_CHANGED
        }
    }
}

/// Compares two plans field by field.
///
/// Sets and maps are compared as sets and maps (mounts by target, devices by
/// path, fds by number, rlimits by kind, seccomp rules as a per-syscall map of
/// effective actions), so the order they were written in does not matter;
/// only the order of mounts, which decides what shadows what, is compared as
/// an order.
pub fn diff(old: &LaunchPlan, new: &LaunchPlan) -> PlanDiff {
    PlanDiff {
        changes: compare::compare(old, new),
    }
}
