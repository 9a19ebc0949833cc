//! What the CLI does to a long-lived sandbox from the host, beside its
//! supervisor: everything that must work when the supervisor cannot answer
//! (it is frozen by `pause`, or dead), and the freezer itself (the supervisor
//! lives in the sandbox's cgroup: freezing it from inside would freeze
//! itself). The cgroup directories are the stored plan's, with the
//! `{id}` placeholder resolved ([`resolve_dirs`]).
//!
//! - the sandbox's processes, from `cgroup.procs` ([`cgroup_pids`]), and
//!   their pids inside the sandbox (`NSpid`, [`sandbox_pid`]);
//! - signals sent from the host ([`signal_pids`]);
//! - the freezer: v1 `freezer.state`, v2 `cgroup.freeze` ([`Freezer`]);
//! - removing the cgroup directories at `delete` ([`remove_cgroup_dirs`]):
//!   the sandbox's own, and the tool's shared parent `sandboxctl/` when
//!   empty; a parent of any other name (an engine's) is never removed;
//! - `criu check` before `checkpoint` and `restore` ([`criu_check`]).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::plan::{CgroupDir, CgroupDirRole, CgroupVersion, LaunchPlan, ID_PLACEHOLDER};

/// The name of the tool's own shared cgroup parent (removed when empty).
const OWN_PARENT: &str = "sandboxctl";

/// A host operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// A file operation.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// On what.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The freezer did not reach the state in time.
    #[error("{what} {path}: still {state} after {waited:?}; the write was undone")]
    FreezeTimeout {
        /// freezing or thawing.
        what: &'static str,
        /// The state file.
        path: PathBuf,
        /// What it read last.
        state: String,
        /// How long it waited.
        waited: Duration,
    },
}

/// The plan's cgroup directories with `{id}` replaced by `id` (none when the
/// plan makes no cgroup).
pub fn resolve_dirs(plan: &LaunchPlan, id: &str) -> Vec<CgroupDir> {
    let Some(cg) = &plan.cgroup else {
        return vec![];
    };
    cg.dirs
        .iter()
        .map(|d| CgroupDir {
            path: resolve(&d.path, id),
            ..d.clone()
        })
        .collect()
}

/// `path` with `{id}` replaced by `id` (as `LaunchId::resolve` does at apply).
pub fn resolve(path: &Path, id: &str) -> PathBuf {
    match path.to_str() {
        Some(s) if s.contains(ID_PLACEHOLDER) => PathBuf::from(s.replace(ID_PLACEHOLDER, id)),
        _ => path.to_path_buf(),
    }
}

/// Every host pid in the sandbox's own cgroup directories (the union of
/// their `cgroup.procs`), sorted; directories that are gone hold none.
pub fn cgroup_pids(dirs: &[CgroupDir]) -> Vec<i32> {
    let mut pids: Vec<i32> = dirs
        .iter()
        .filter(|d| d.role == CgroupDirRole::Sandbox)
        .filter_map(|d| fs::read_to_string(d.path.join("cgroup.procs")).ok())
        .flat_map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect::<Vec<i32>>())
        .filter(|p| *p > 0)
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// The pid of host process `pid` inside its own PID namespace: the last
/// field of `NSpid` in `/proc/PID/status` (the host pid itself when it
/// shares the host's namespace).
pub fn sandbox_pid(pid: i32) -> Option<i32> {
    parse_nspid(&fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

/// The last `NSpid:` field of a `/proc/PID/status` text.
pub fn parse_nspid(status: &str) -> Option<i32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))?
        .split_ascii_whitespace()
        .last()?
        .parse()
        .ok()
}

/// Sends `signal` to each of `pids` from the host; a process that is gone
/// already (ESRCH) is not an error. Returns how many were signalled.
pub fn signal_pids(pids: &[i32], signal: i32) -> io::Result<usize> {
    let mut sent = 0;
    for &pid in pids {
        // SAFETY: kill(2) takes no memory; pid > 0 is checked by the callers'
        // sources (cgroup.procs, a live ProcRef), signal is 1–64.
        if unsafe { libc::kill(pid, signal) } == 0 {
            sent += 1;
            continue;
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ESRCH) {
            return Err(e);
        }
    }
    Ok(sent)
}

/// The sandbox's freezer: a v1 `freezer` directory (made by the plan for
/// `pause`, `rule:cgroup-freezer-for-pause`) or its v2 directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Freezer {
    /// v1: `freezer.state`, FROZEN / THAWED.
    V1(PathBuf),
    /// v2: `cgroup.freeze`, 1 / 0, confirmed by `cgroup.events` `frozen`.
    V2(PathBuf),
}

/// How long a freeze may take before it is undone (v1 goes through FREEZING
/// while tasks reach the refrigerator; a task in an uninterruptible sleep
/// holds it there).
pub const FREEZE_TIMEOUT: Duration = Duration::from_secs(5);

impl Freezer {
    /// The freezer of the sandbox whose resolved directories are `dirs`: its
    /// own v1 freezer directory, else its own v2 directory; `None` when it
    /// has neither (no cgroup, or a v1 host without a freezer hierarchy).
    pub fn of(dirs: &[CgroupDir]) -> Option<Freezer> {
        let own = || dirs.iter().filter(|d| d.role == CgroupDirRole::Sandbox);
        own()
            .find(|d| d.version == CgroupVersion::V1 && d.controllers.iter().any(|c| c == "freezer"))
            .map(|d| Freezer::V1(d.path.clone()))
            .or_else(|| {
                own()
                    .find(|d| d.version == CgroupVersion::V2)
                    .map(|d| Freezer::V2(d.path.clone()))
            })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        match self {
            Freezer::V1(p) | Freezer::V2(p) => p,
        }
    }

    /// Freezes every process of the cgroup and waits until the kernel says
    /// they all are (bounded by `timeout`; on timeout the freeze is undone).
    pub fn freeze(&self, timeout: Duration) -> Result<(), HostError> {
        self.set(true)?;
        let start = Instant::now();
        let mut pause = Duration::from_millis(1);
        loop {
            let (frozen, state) = self.read_state()?;
            if frozen {
                return Ok(());
            }
            if start.elapsed() >= timeout {
                let _ = self.set(false);
                return Err(HostError::FreezeTimeout {
                    what: "freezing",
                    path: self.state_file(),
                    state,
                    waited: start.elapsed(),
                });
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    /// Thaws the cgroup.
    pub fn thaw(&self) -> Result<(), HostError> {
        self.set(false)
    }

    /// Whether the cgroup is frozen now.
    pub fn is_frozen(&self) -> Result<bool, HostError> {
        self.read_state().map(|(f, _)| f)
    }

    fn state_file(&self) -> PathBuf {
        match self {
            Freezer::V1(p) => p.join("freezer.state"),
            Freezer::V2(p) => p.join("cgroup.events"),
        }
    }

    fn set(&self, frozen: bool) -> Result<(), HostError> {
        let (file, value) = match (self, frozen) {
            (Freezer::V1(p), true) => (p.join("freezer.state"), "FROZEN"),
            (Freezer::V1(p), false) => (p.join("freezer.state"), "THAWED"),
            (Freezer::V2(p), true) => (p.join("cgroup.freeze"), "1"),
            (Freezer::V2(p), false) => (p.join("cgroup.freeze"), "0"),
        };
        fs::write(&file, value).map_err(|source| HostError::Io {
            what: if frozen {
                "freezing: writing"
            } else {
                "thawing: writing"
            },
            path: file,
            source,
        })
    }

    /// (frozen, what the file says).
    fn read_state(&self) -> Result<(bool, String), HostError> {
        let file = self.state_file();
        let text = fs::read_to_string(&file).map_err(|source| HostError::Io {
            what: "reading",
            path: file.clone(),
            source,
        })?;
        Ok(match self {
            Freezer::V1(_) => {
                let s = text.trim().to_string();
                (s == "FROZEN", s)
            }
            Freezer::V2(_) => {
                let frozen = super::stats::keyed(&text, "frozen") == Some(1);
                (frozen, if frozen { "frozen" } else { "not frozen" }.to_string())
            }
        })
    }
}

/// Removes the sandbox's cgroup directories, deepest first: its own (gone
/// already is fine; one that still holds processes is retried for up to
/// `wait`, as exiting tasks leave it), and a parent only when it is the
/// tool's own `sandboxctl/` and empty (another sandbox may use it: then it
/// stays, as at apply's teardown). A parent of another name (an engine's) is
/// never removed. Returns what could not be removed.
pub fn remove_cgroup_dirs(dirs: &[CgroupDir], wait: Duration) -> Vec<HostError> {
    let mut left = Vec::new();
    for d in dirs.iter().rev() {
        let leaf = d.role == CgroupDirRole::Sandbox;
        if !leaf && d.path.file_name() != Some(std::ffi::OsStr::new(OWN_PARENT)) {
            continue;
        }
        let start = Instant::now();
        loop {
            match fs::remove_dir(&d.path) {
                Ok(()) => break,
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                Err(e) if !leaf && matches!(e.raw_os_error(), Some(libc::ENOTEMPTY | libc::EBUSY)) => break,
                Err(e) if leaf && e.raw_os_error() == Some(libc::EBUSY) && start.elapsed() < wait => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Err(source) => {
                    left.push(HostError::Io {
                        what: "removing the cgroup",
                        path: d.path.clone(),
                        source,
                    });
                    break;
                }
            }
        }
    }
    left
}

/// Why CRIU cannot checkpoint or restore on this host: runs `criu check`
/// (a subprocess: this is not the launch path) and returns `Err` with one
/// line (CRIU's version, its own first error and its conclusion) when it
/// fails or is not installed.
pub fn criu_check() -> Result<(), String> {
    let out = match std::process::Command::new("criu")
        .arg("check")
        .stdin(std::process::Stdio::null())
        .output()
    {
        Ok(o) => o,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err("criu is not installed (`criu check` could not run)".into())
        }
        Err(e) => return Err(format!("running `criu check`: {e}")),
    };
    if out.status.success() {
        return Ok(());
    }
    let version = std::process::Command::new("criu")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .find_map(|l| l.strip_prefix("Version:").map(|v| v.trim().to_string()))
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    Err(format!(
        "`criu check`{} failed: {}",
        version.map(|v| format!(" (criu {v})")).unwrap_or_default(),
        criu_reason(&text).unwrap_or_else(|| format!("exit status {}", out.status))
    ))
}

/// CRIU's reason from its output: the first `Error (file:line): ` message
/// and, when different, the last (its conclusion), joined on one line.
pub fn criu_reason(output: &str) -> Option<String> {
    let errors: Vec<&str> = output
        .lines()
        .filter_map(|l| {
            let rest = l.trim().strip_prefix("Error (")?;
            Some(rest.split_once("): ").map_or(rest, |(_, m)| m).trim())
        })
        .collect();
    match errors.as_slice() {
        [] => output
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty())
            .map(str::to_string),
        [one] => Some(one.to_string()),
        [first, .., last] => Some(format!("{first} ({last})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nspid_is_the_innermost() {
        assert_eq!(parse_nspid("Name:\tsh\nNSpid:\t4242\t2\nUid:\t0\n"), Some(2));
        assert_eq!(parse_nspid("NSpid:\t77\n"), Some(77));
        assert_eq!(parse_nspid("Name:\tsh\n"), None);
        assert_eq!(sandbox_pid(std::process::id() as i32), Some(std::process::id() as i32));
    }

    #[test]
    fn criu_reason_is_one_line() {
        let debian = "Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds\n\
                      Error (criu/vdso.c:613): vdso: Failed to fill self vdso symtable\n\
                      Error (criu/crtools.c:260): Could not initialize kernel features detection.\n";
        assert_eq!(
            criu_reason(debian).unwrap(),
            "vdso: Unexpected rt vDSO area bounds (Could not initialize kernel features detection.)"
        );
        assert_eq!(criu_reason("Looks good.\n").unwrap(), "Looks good.");
        assert_eq!(criu_reason(""), None);
    }

    #[test]
    fn dirs_resolve_and_the_freezer_is_found() {
        let d = |p: &str, v, role, c: &str| CgroupDir {
            path: p.into(),
            version: v,
            role,
            controllers: vec![c.into()],
            inherit: None,
            from: None,
        };
        let dirs = vec![
            d(
                "/cg/memory/sandboxctl",
                CgroupVersion::V1,
                CgroupDirRole::Parent,
                "memory",
            ),
            d(
                "/cg/memory/sandboxctl/x",
                CgroupVersion::V1,
                CgroupDirRole::Sandbox,
                "memory",
            ),
            d(
                "/cg/freezer/sandboxctl",
                CgroupVersion::V1,
                CgroupDirRole::Parent,
                "freezer",
            ),
            d(
                "/cg/freezer/sandboxctl/x",
                CgroupVersion::V1,
                CgroupDirRole::Sandbox,
                "freezer",
            ),
        ];
        assert_eq!(Freezer::of(&dirs), Some(Freezer::V1("/cg/freezer/sandboxctl/x".into())));
        assert_eq!(Freezer::of(&dirs[..2]), None, "v1 without a freezer directory");
        let v2 = [d(
            "/cg/u/sandboxctl/x",
            CgroupVersion::V2,
            CgroupDirRole::Sandbox,
            "memory",
        )];
        assert_eq!(Freezer::of(&v2), Some(Freezer::V2("/cg/u/sandboxctl/x".into())));
        assert_eq!(
            resolve(Path::new("/cg/pids/sandboxctl/{id}"), "web"),
            Path::new("/cg/pids/sandboxctl/web")
        );
    }

    #[test]
    fn removal_keeps_foreign_and_busy_parents() {
        let t = crate::exec::control::TempDir::new("rmcg");
        let own = t.0.join("sandboxctl");
        let engine = t.0.join("libpod_parent");
        for p in [own.join("a"), own.join("b"), engine.join("a")] {
            fs::create_dir_all(p).unwrap();
        }
        let d = |p: PathBuf, role| CgroupDir {
            path: p,
            version: CgroupVersion::V1,
            role,
            controllers: vec![],
            inherit: None,
            from: None,
        };
        // Another sandbox (b) still uses sandboxctl/: it stays.
        let a = [
            d(own.clone(), CgroupDirRole::Parent),
            d(own.join("a"), CgroupDirRole::Sandbox),
        ];
        assert!(remove_cgroup_dirs(&a, Duration::ZERO).is_empty());
        assert!(!own.join("a").exists() && own.join("b").exists());
        // The last one out removes it.
        let b = [
            d(own.clone(), CgroupDirRole::Parent),
            d(own.join("b"), CgroupDirRole::Sandbox),
        ];
        assert!(remove_cgroup_dirs(&b, Duration::ZERO).is_empty());
        assert!(!own.exists());
        // Gone already: fine. An engine's parent: never removed, even empty.
        assert!(remove_cgroup_dirs(&b, Duration::ZERO).is_empty());
        let e = [
            d(engine.clone(), CgroupDirRole::Parent),
            d(engine.join("a"), CgroupDirRole::Sandbox),
        ];
        assert!(remove_cgroup_dirs(&e, Duration::ZERO).is_empty());
        assert!(engine.exists() && !engine.join("a").exists());
    }
}
