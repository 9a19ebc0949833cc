//! Commands on long-lived sandboxes that read the state directory and need no
//! supervisor: `state`, `list` and `features`. (The rest of the lifecycle, docs/lifecycle.md,
//! is not wired yet.)

use std::path::Path;
use std::time::Duration;

use super::run::load_plan_file;
use super::{Failure, ListFormat, EXIT_BAD_INPUT};
use crate::diag::SourceDiag;
use crate::exec::control::features::features_json;
use crate::exec::control::state::{LockMode, SandboxId, StateError, StateRoot, PLAN_FILE};
use crate::plan::render::{self, Format};
use serde::Serialize;

/// How long a reader waits for an id's lock: longer than `create` holds it
/// (its readiness wait is 10 s).
pub(super) const READ_LOCK_WAIT: Duration = Duration::from_secs(15);

/// A state failure at the edge: an invalid id is bad input (exit 2), the rest
/// exit 1, all in one line.
pub(super) fn failure(e: StateError) -> Failure {
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

/// One row of `list`: runc's fields.
#[derive(Debug, Serialize)]
struct ListEntry {
    id: String,
    /// The supervisor's host pid; 0 when stopped.
    pid: i32,
    /// created, running, paused, stopped; `creating` while a `create` holds
    /// the id and has not recorded it yet.
    status: &'static str,
    bundle: String,
    /// RFC 3339, UTC.
    created: String,
    /// The creator's uid.
    owner: String,
}

/// `list`: every sandbox under the root. Records are read without locks
/// (they are replaced atomically), so a long command on one id does not hold
/// up the listing.
#[inline(never)] // see `cli::run`
pub(super) fn list(root: &Path, format: ListFormat) -> Result<i32, Failure> {
    let root = StateRoot::new(root);
    let mut rows = Vec::new();
    for id in root.list().map_err(failure)? {
        let row = match root.peek(&id) {
            Ok(r) => {
                let st = r.oci_state();
                ListEntry {
                    id: r.id,
                    pid: st.pid.unwrap_or(0),
                    status: st.status.as_str(),
                    bundle: r.bundle.display().to_string(),
                    created: rfc3339(r.created_unix),
                    owner: r.owner_uid.to_string(),
                }
            }
            Err(StateError::Incomplete { .. }) => {
                let busy = matches!(
                    root.open(&id, LockMode::Shared, Duration::ZERO),
                    Err(StateError::Busy { .. })
                );
                ListEntry {
                    id: id.to_string(),
                    pid: 0,
                    status: if busy { "creating" } else { "stopped" },
                    bundle: String::new(),
                    created: String::new(),
                    owner: String::new(),
                }
            }
            // Deleted meanwhile.
            Err(StateError::NotFound { .. }) => continue,
            Err(e) => {
                eprintln!("warning: {e}");
                continue;
            }
        };
        rows.push(row);
    }
    let out = match format {
        ListFormat::Json => {
            let mut s = serde_json::to_string_pretty(&rows).expect("rows always serialise");
            s.push('\n');
            s
        }
        ListFormat::Table => table(&rows),
    };
    print!("{out}");
    Ok(0)
}

/// runc's layout: a header, then one row per sandbox, columns padded to the
/// widest cell.
fn table(rows: &[ListEntry]) -> String {
    let cells: Vec<[String; 6]> =
        std::iter::once(["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from))
            .chain(rows.iter().map(|r| {
                [
                    r.id.clone(),
                    r.pid.to_string(),
                    r.status.to_string(),
                    r.bundle.clone(),
                    r.created.clone(),
                    r.owner.clone(),
                ]
            }))
            .collect();
    columns(&cells, 0)
}

/// `cells` (a header row first) as aligned columns, three spaces apart, the
/// last column unpadded; the first `right` columns (numbers) right-aligned.
pub(super) fn columns<const N: usize>(cells: &[[String; N]], right: usize) -> String {
    let mut width = [0usize; N];
    for row in cells {
        for (w, c) in width.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for row in cells {
        let mut line = String::new();
        for (i, c) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(c);
            } else if i < right {
                line.push_str(&format!("{c:>w$}   ", w = width[i]));
            } else {
                line.push_str(&format!("{c:<w$}   ", w = width[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Seconds since the epoch as RFC 3339 UTC (`2026-12-01T17:50:00Z`), by the
/// civil-from-days algorithm (no time crate for one format).
pub(crate) fn rfc3339(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(4_107_542_399), "2100-02-28T23:59:59Z");
    }
}
