//! `sandboxctl gc`: removes what dead launches left, and only that.
//!
//! A launch is dead when the lock on its state file is free (see
//! [`super::state`]: the launcher holds it from before its first effect to
//! after its last, and the kernel drops it however the launcher ends). For
//! each dead launch, gc takes that lock itself (so no second gc works on the
//! same file), kills what is still in the sandbox's cgroup directories
//! (SIGKILL, then waits until they are empty; with the launcher gone the
//! supervisor and workload died with it already, so this finds stragglers
//! only), removes those directories (deepest first), the parents the launch
//! made if they are empty, and the state file last. A held lock is a live
//! sandbox: gc does not read its record. Files that are not records of this
//! format are reported and left alone.

use std::fs;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::error::error_text;
use super::state::Record;

/// What gc did with one state file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A dead launch, removed (or, with `dry_run`, to be removed).
    Removed {
        /// The sandbox id.
        id: String,
        /// Cgroup directories removed.
        cgroups: usize,
        /// Processes killed in them.
        killed: usize,
    },
    /// A live launch: its lock is held. Not touched.
    Live {
        /// The state file.
        file: PathBuf,
    },
    /// Not a state record of this format; not touched.
    Skipped {
        /// The file.
        file: PathBuf,
        /// Why.
        why: String,
    },
    /// A dead launch whose leftovers could not all be removed.
    Failed {
        /// The sandbox id.
        id: String,
        /// What was left, and why.
        left: Vec<String>,
    },
}

/// Collects every dead launch under `root` (with `dry_run`, only says which).
/// A missing `root` holds nothing.
pub fn gc(root: &Path, dry_run: bool) -> io::Result<Vec<Outcome>> {
    let entries = match fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        if file.extension().and_then(|x| x.to_str()) != Some("state") {
            out.push(Outcome::Skipped {
                why: "not a `<id>.state` file".into(),
                file,
            });
            continue;
        }
        out.push(collect(&file, dry_run));
    }
    Ok(out)
}

/// One state file.
fn collect(file: &Path, dry_run: bool) -> Outcome {
    let skipped = |why: String| Outcome::Skipped {
        file: file.to_path_buf(),
        why,
    };
    let mut f = match fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(file)
    {
        Ok(f) => f,
        // Removed meanwhile: its launch ended.
        Err(e) => return skipped(format!("open: {}", error_text(&e))),
    };
    // Only records this user could have written: gc kills what they name.
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    match f.metadata() {
        Ok(m) if m.uid() == me => {}
        Ok(m) => return skipped(format!("owned by uid {}, not this user ({me})", m.uid())),
        Err(e) => return skipped(format!("fstat: {}", error_text(&e))),
    }
    // SAFETY: flock on an fd `f` owns.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Outcome::Live {
                file: file.to_path_buf(),
            };
        }
        return skipped(format!("flock: {}", error_text(&e)));
    }
    // The lock was free and is ours now: the launch is dead.
    let mut text = String::new();
    if let Err(e) = f.read_to_string(&mut text) {
        return skipped(format!("read: {}", error_text(&e)));
    }
    let record = match Record::parse(&text) {
        Ok(r) => r,
        Err(e) => return skipped(e.to_string()),
    };
    // A sandbox's cgroup is never a hierarchy's root (whose parent, the
    // hierarchies' tmpfs, holds no cgroup.procs): killing what a root holds
    // would kill the host.
    if let Some(root) = record
        .cgroups
        .iter()
        .find(|c| c.exists() && !c.parent().is_some_and(|p| p.join("cgroup.procs").exists()))
    {
        return skipped(format!(
            "{} is not a sandbox's cgroup (a hierarchy root)",
            root.display()
        ));
    }
    if dry_run {
        let cgroups = record.cgroups.iter().filter(|c| c.exists()).count();
        let killed = record.cgroups.iter().map(|c| procs(c).len()).sum();
        return Outcome::Removed {
            id: record.id,
            cgroups,
            killed,
        };
    }
    let mut left = Vec::new();
    let (mut cgroups, mut killed) = (0, 0);
    for dir in &record.cgroups {
        match remove_cgroup(dir) {
            Ok((d, k)) => {
                cgroups += d;
                killed += k;
            }
            Err(e) => left.push(format!("{}: {}", dir.display(), error_text(&e))),
        }
    }
    // Shared parents: only when empty (another sandbox may use them).
    for dir in record.cgroup_parents.iter().rev() {
        match fs::remove_dir(dir) {
            Err(e) if !matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTEMPTY | libc::EBUSY)) => {
                left.push(format!("{}: {}", dir.display(), error_text(&e)))
            }
            _ => {}
        }
    }
    // The state file last, still under our lock: if anything above failed,
    // it stays, and the next gc tries again.
    if left.is_empty() {
        if let Err(e) = fs::remove_file(file) {
            left.push(format!("{}: {}", file.display(), error_text(&e)));
        }
    }
    drop(f);
    if left.is_empty() {
        Outcome::Removed {
            id: record.id,
            cgroups,
            killed,
        }
    } else {
        Outcome::Failed { id: record.id, left }
    }
}

/// The pids in a cgroup directory (none when it is gone).
fn procs(dir: &Path) -> Vec<i32> {
    fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Kills every process in `dir` and below, waits until they are gone (2 s at
/// most), and removes the directories, deepest first. Returns how many
/// directories were removed and processes killed.
fn remove_cgroup(dir: &Path) -> io::Result<(usize, usize)> {
    if !dir.exists() {
        return Ok((0, 0));
    }
    let (mut dirs, mut killed) = (0, 0);
    for e in fs::read_dir(dir)?.filter_map(|e| e.ok()) {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            let (d, k) = remove_cgroup(&e.path())?;
            dirs += d;
            killed += k;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut seen = std::collections::BTreeSet::new();
    loop {
        for pid in procs(dir) {
            // SAFETY: kill has no memory arguments; the pid was read from the
            // dead launch's own cgroup.
            if unsafe { libc::kill(pid, libc::SIGKILL) } == 0 {
                seen.insert(pid);
            }
        }
        match fs::remove_dir(dir) {
            Ok(()) => return Ok((dirs + 1, killed + seen.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((dirs, killed + seen.len())),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::state::STATE_MAGIC;

    /// Dead (lock free) records go, a live one (lock held) and anything
    /// that is not a record of ours, or names a hierarchy root, stay.
    #[test]
    fn only_dead_launches_are_collected() {
        let root = std::env::temp_dir().join(format!("sbx-gc-unit-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).unwrap();
        let write = |name: &str, text: &str| {
            let p = root.join(name);
            fs::write(&p, text).unwrap();
            p
        };
        let dead = write("dead.state", &format!("{STATE_MAGIC}\nid dead\nsupervisor 1\n"));
        let live = write("live.state", &format!("{STATE_MAGIC}\nid live\n"));
        let held = fs::File::open(&live).unwrap();
        // SAFETY: flock on an fd `held` owns.
        assert_eq!(unsafe { libc::flock(held.as_raw_fd(), libc::LOCK_EX) }, 0);
        let junk = write("junk.state", "12345\n");
        let legacy = write("old.pid", "12345");
        // A directory whose parent is no cgroup: like a hierarchy's root.
        let fake_root = root.join("not-a-cgroup");
        fs::create_dir(&fake_root).unwrap();
        let rooted = write(
            "rooted.state",
            &format!("{STATE_MAGIC}\nid rooted\ncgroup {}\n", fake_root.display()),
        );

        let dry = gc(&root, true).unwrap();
        assert!(dry.contains(&Outcome::Removed {
            id: "dead".into(),
            cgroups: 0,
            killed: 0
        }));
        assert!(dead.exists(), "a dry run removed something");

        let out = gc(&root, false).unwrap();
        assert!(out.contains(&Outcome::Removed {
            id: "dead".into(),
            cgroups: 0,
            killed: 0
        }));
        assert!(out.contains(&Outcome::Live { file: live.clone() }), "{out:?}");
        for f in [&junk, &legacy, &rooted] {
            assert!(
                out.iter()
                    .any(|o| matches!(o, Outcome::Skipped { file, .. } if file == f)),
                "{} not skipped: {out:?}",
                f.display()
            );
            assert!(f.exists());
        }
        assert!(!dead.exists() && live.exists() && fake_root.exists());
        drop(held);
        assert!(gc(&root, false).unwrap().contains(&Outcome::Removed {
            id: "live".into(),
            cgroups: 0,
            killed: 0
        }));
        let _ = fs::remove_dir_all(&root);
    }
}
