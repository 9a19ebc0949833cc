//! A launch's identity and what it leaves on the host while it runs: the
//! sandbox id (unique per launch, never part of the plan) and the state file
//! that claims it.
//!
//! The id replaces [`ID_PLACEHOLDER`] in the plan's paths (cgroup directories
//! and files, log files) when `apply` runs: the caller's (`apply --id`, and
//! the `create ID` of long-lived sandboxes to come), or `sbx-` and 16 random
//! hex digits (64 bits from getrandom(2)), so the same plan can run any number
//! of times at once and the reviewed plan, its hash and its diff never change
//! because of the id.
//!
//! The state file `<root>/<id>.state` (root `/run/sandboxctl` unless
//! `--root`) is made complete and locked before it is visible: an unnamed
//! `O_TMPFILE` in the root, `flock(LOCK_EX)`, the record written, then linked
//! to its name (`linkat`, which fails with EEXIST when the id is taken). The
//! launcher holds the lock for its whole life; the kernel drops it when the
//! launcher exits, however it exits. So a held lock means a live launch, a
//! free one a dead launch whose leftovers `sandboxctl gc` may remove — no pid
//! that could be reused, no start time to compare. The record, one
//! `key value` per line, says what to remove: the sandbox's cgroup
//! directories and their parents (written before any of them is made) and
//! the supervisor's pid (appended after the clone; information only).

use std::fmt;
use std::path::{Path, PathBuf};

use crate::plan::{CgroupDirRole, LaunchPlan, ID_PLACEHOLDER};
use crate::vocab::Origin;

/// Where state files live unless `--root` says otherwise.
pub const DEFAULT_ROOT: &str = "/run/sandboxctl";

/// The first line of every state record this build writes and reads.
pub const STATE_MAGIC: &str = "sandboxctl-state 1";

/// The longest id accepted.
pub const MAX_ID_LEN: usize = 64;

/// A sandbox id, checked: it becomes a file name and a cgroup directory name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchId {
    value: String,
    from: Origin,
}

/// Why an id given by the caller was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Empty or longer than [`MAX_ID_LEN`].
    #[error("sandbox id {id:?} must be 1 to {MAX_ID_LEN} characters long")]
    Length {
        /// The id.
        id: String,
    },
    /// A character other than ASCII letters, digits, `-`, `_` and `.`, or a
    /// first character that is not a letter or digit.
    #[error("sandbox id {id:?} may hold only ASCII letters, digits, '-', '_' and '.', and must start with a letter or digit (it names a file and a cgroup directory)")]
    Character {
        /// The id.
        id: String,
    },
}

impl LaunchId {
    /// The caller's id, checked.
    pub fn given(id: &str, from: Origin) -> Result<Self, IdError> {
        if id.is_empty() || id.len() > MAX_ID_LEN {
            return Err(IdError::Length { id: id.into() });
        }
        let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        if !id.starts_with(|c: char| c.is_ascii_alphanumeric()) || !id.chars().all(ok_char) {
            return Err(IdError::Character { id: id.into() });
        }
        Ok(LaunchId { value: id.into(), from })
    }

    /// A fresh id: `sbx-` and 16 hex digits of getrandom(2).
    pub fn random() -> std::io::Result<Self> {
        let mut b = [0u8; 8];
        let mut got = 0;
        while got < b.len() {
            // SAFETY: writes at most the remaining bytes of `b`, which lives
            // across the call.
            let n = unsafe { libc::getrandom(b[got..].as_mut_ptr().cast(), b.len() - got, 0) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return Err(e);
            }
            got += n as usize;
        }
        Ok(Self::from_bytes(&b))
    }

    /// The random form of an id, from its 8 random bytes.
    fn from_bytes(b: &[u8; 8]) -> Self {
        LaunchId {
            value: format!("sbx-{}", crate::plan::compile::hex(b)),
            from: Origin::rule("id-random-per-launch"),
        }
    }

    /// The placeholder itself: a dry run without `--id` prints the plan's
    /// paths as they are.
    pub fn placeholder() -> Self {
        LaunchId {
            value: ID_PLACEHOLDER.into(),
            from: Origin::rule("id-random-per-launch"),
        }
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.value
    }

    /// Where it came from (`cli:--id`, or `rule:id-random-per-launch`).
    pub fn origin(&self) -> &Origin {
        &self.from
    }

    /// `path` with [`ID_PLACEHOLDER`] replaced by this id.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        match path.to_str() {
            Some(s) if s.contains(ID_PLACEHOLDER) => PathBuf::from(s.replace(ID_PLACEHOLDER, &self.value)),
            _ => path.to_path_buf(),
        }
    }

    /// The state file of this id under `root`.
    pub fn state_file(&self, root: &Path) -> PathBuf {
        root.join(format!("{}.state", self.value))
    }
}

impl fmt::Display for LaunchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.value)
    }
}

/// What to do when no state file can be made under the state root, for an
/// OS error `errno` (EROFS, ENOSPC, EDQUOT get their own advice). `doctor`
/// and `apply` say the same.
pub fn root_fix(errno: Option<i32>) -> &'static str {
    match errno {
        Some(libc::EROFS) => "its filesystem is read-only: give --root DIR on a writable filesystem",
        Some(libc::ENOSPC | libc::EDQUOT) => {
            "its filesystem is full: free space there, or give --root DIR on another filesystem"
        }
        _ => {
            "give a --root DIR where this user can make files (on a filesystem with O_TMPFILE: tmpfs, ext4, xfs, btrfs)"
        }
    }
}

/// Why no state file can be made under a root ([`check_root`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootUnfit {
    /// What failed, on which directory (`cannot make a file in /run: …`).
    pub text: String,
    /// The OS error, when there is one.
    pub errno: Option<i32>,
}

impl RootUnfit {
    /// What to do ([`root_fix`]).
    pub fn fix(&self) -> &'static str {
        root_fix(self.errno)
    }
}

impl fmt::Display for RootUnfit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Checks, changing nothing, that `apply` can make its state file under
/// `root`: an unnamed file (`O_TMPFILE`, as the `state_file` step makes)
/// opened in `root`, or, when `root` does not exist yet, in its nearest
/// existing ancestor (where `apply` would make it), and a record's worth of
/// bytes written to it (a full filesystem still makes an empty file), then
/// closed. `Err` says why not.
pub fn check_root(root: &Path) -> Result<(), RootUnfit> {
    let dir = root.ancestors().find(|p| p.exists()).ok_or_else(|| RootUnfit {
        text: format!("{} has no existing ancestor", root.display()),
        errno: None,
    })?;
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).map_err(|_| RootUnfit {
        text: format!("{} contains a NUL byte", dir.display()),
        errno: None,
    })?;
    let unfit = |e: std::io::Error| RootUnfit {
        text: format!(
            "cannot make a file in {}: {}",
            dir.display(),
            super::error::error_text(&e)
        ),
        errno: e.raw_os_error(),
    };
    // SAFETY: `c` is a valid C string; the fd is closed below.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_TMPFILE | libc::O_WRONLY | libc::O_CLOEXEC, 0o600) };
    if fd < 0 {
        return Err(unfit(std::io::Error::last_os_error()));
    }
    let record = [b'\n'; 512];
    // SAFETY: writes `record`, which lives across the call, to the fd just opened.
    let n = unsafe { libc::write(fd, record.as_ptr().cast(), record.len()) };
    let written = if n < 0 {
        Err(unfit(std::io::Error::last_os_error()))
    } else {
        Ok(())
    };
    // SAFETY: closing the fd just opened; the unnamed file goes with it.
    unsafe { libc::close(fd) };
    written
}

/// The record written when the state file is made: the id and every cgroup
/// directory of the plan, resolved (the supervisor's pid follows after the
/// clone, [`supervisor_line`]).
pub fn record(plan: &LaunchPlan, id: &LaunchId) -> String {
    let mut s = format!("{STATE_MAGIC}\nid {id}\n");
    for d in plan.cgroup.iter().flat_map(|c| &c.dirs) {
        let key = match d.role {
            CgroupDirRole::Sandbox => "cgroup",
            CgroupDirRole::Parent => "cgroup-parent",
        };
        s.push_str(&format!("{key} {}\n", id.resolve(&d.path).display()));
    }
    s
}

/// The line appended after the clone.
pub fn supervisor_line(pid: i32) -> String {
    format!("supervisor {pid}\n")
}

/// A state record, read back (by `sandboxctl gc`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// The sandbox id.
    pub id: String,
    /// The sandbox's own cgroup directories.
    pub cgroups: Vec<PathBuf>,
    /// Parents made on the way (shared; removed only when empty).
    pub cgroup_parents: Vec<PathBuf>,
    /// The supervisor's pid, once it was written.
    pub supervisor: Option<i32>,
}

/// Why a state file could not be read as a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Not a record of this format (another version, or not ours).
    #[error("not a sandboxctl state record (first line is not {STATE_MAGIC:?})")]
    Magic,
    /// A line this build does not know.
    #[error("line {line}: {text:?} is not a state record line")]
    Line {
        /// 1-based line number.
        line: usize,
        /// The line.
        text: String,
    },
}

impl Record {
    /// Parses a record.
    pub fn parse(text: &str) -> Result<Self, RecordError> {
        let mut lines = text.lines();
        if lines.next() != Some(STATE_MAGIC) {
            return Err(RecordError::Magic);
        }
        let mut r = Record::default();
        for (i, l) in lines.enumerate() {
            let bad = || RecordError::Line {
                line: i + 2,
                text: l.into(),
            };
            let (k, v) = l.split_once(' ').ok_or_else(bad)?;
            match k {
                "id" => r.id = v.into(),
                "cgroup" if Path::new(v).is_absolute() => r.cgroups.push(v.into()),
                "cgroup-parent" if Path::new(v).is_absolute() => r.cgroup_parents.push(v.into()),
                "supervisor" => r.supervisor = Some(v.parse().map_err(|_| bad())?),
                _ => return Err(bad()),
            }
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::sample::Sample;

    #[test]
    fn ids_are_checked() {
        let cli = || Origin::Cli("--id".into());
        assert!(LaunchId::given("web-1.a_b", cli()).is_ok());
        for bad in ["", "../x", "a/b", ".hidden", "-x", "a\nb", "a b", &"x".repeat(65)] {
            assert!(LaunchId::given(bad, cli()).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn random_ids_differ_and_are_valid() {
        let a = LaunchId::random().unwrap();
        let b = LaunchId::random().unwrap();
        assert_ne!(a, b);
        assert!(LaunchId::given(a.as_str(), Origin::Default).is_ok(), "{a}");
        assert_eq!(a.as_str().len(), 4 + 16);
        assert_eq!(
            LaunchId::from_bytes(&[0, 1, 2, 3, 4, 5, 6, 0xff]).as_str(),
            "sbx-00010203040506ff"
        );
    }

    #[test]
    fn record_round_trips_and_resolves_the_placeholder() {
        let plan = Sample::applied(Path::new("/tmp/rootfs")).plan();
        let id = LaunchId::given("t9", Origin::Default).unwrap();
        let text = record(&plan, &id) + &supervisor_line(42);
        let r = Record::parse(&text).unwrap();
        assert_eq!(r.id, "t9");
        assert_eq!(r.supervisor, Some(42));
        assert!(!r.cgroups.is_empty());
        assert!(
            r.cgroups.iter().all(|c| c.ends_with("sandboxctl/t9")),
            "{:?}",
            r.cgroups
        );
        assert!(r.cgroup_parents.iter().all(|c| c.ends_with("sandboxctl")));
        assert!(!text.contains(ID_PLACEHOLDER));
        assert_eq!(Record::parse("12345"), Err(RecordError::Magic));
        assert!(Record::parse(&format!("{STATE_MAGIC}\ncgroup relative/path\n")).is_err());
    }
}
