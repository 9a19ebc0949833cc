//! Commands on long-lived sandboxes that read the state directory and need no
//! supervisor: `state` and `features`. (The rest of the lifecycle, docs/lifecycle.md,
//! is not wired yet.)

use std::path::Path;
use std::time::Duration;

use super::run::load_plan_file;
use super::{Failure, EXIT_BAD_INPUT};
use crate::diag::SourceDiag;
use crate::exec::control::features::features_json;
use crate::exec::control::state::{LockMode, SandboxId, StateError, StateRoot, PLAN_FILE};
use crate::plan::render::{self, Format};

/// How long a reader waits for an id's lock: longer than `create` holds it
/// (its readiness wait is 10 s).
const READ_LOCK_WAIT: Duration = Duration::from_secs(15);

/// A state failure at the edge: an invalid id is bad input (exit 2), the rest
/// exit 1, all in one line.
fn failure(e: StateError) -> Failure {
    match e {
        StateError::InvalidId(_) => Failure {
            diag: Box::new(SourceDiag::plain(e.to_string(), None)),
            code: EXIT_BAD_INPUT,
        },
        e => Failure::other(e.to_string()),
    }
}

/// `state ID`: the OCI state JSON, or with `--plan` the stored plan.
#[inline(never)] // see `cli::run`
pub(super) fn state(root: &Path, id: &str, plan: Option<Format>) -> Result<i32, Failure> {
    let id = SandboxId::parse(id).map_err(|e| failure(e.into()))?;
    let dir = StateRoot::new(root)
        .open(&id, LockMode::Shared, READ_LOCK_WAIT)
        .map_err(failure)?;
    let record = dir.read_record().map_err(failure)?;
    match plan {
        None => {
            let mut text = serde_json::to_string_pretty(&record.oci_state()).expect("a state always serialises");
            text.push('\n');
            print!("{text}");
        }
        Some(format) => {
            let path = dir.path().join(PLAN_FILE);
            if !path.exists() {
                return Err(Failure::other(format!(
                    "sandbox \"{id}\" has no stored plan ({} is missing)",
                    path.display()
                )));
            }
            print!("{}", render::render(&load_plan_file(&path)?, format));
        }
    }
    Ok(0)
}

/// `features`: the OCI runtime features document.
#[inline(never)] // see `cli::run`
pub(super) fn features() -> Result<i32, Failure> {
    print!("{}", features_json());
    Ok(0)
}
