//! The launcher killed with a real SIGKILL at random moments of real launches
//! (issue 14): after each kill no process of the sandbox is left (the
//! supervisor dies with its launcher by the parent-death signal, the workload
//! with the supervisor's PID namespace), and once `sandboxctl gc` has run
//! nothing else is either: no cgroup directory, no state file under the
//! test's `--root`, no mount on the host, and gc had nothing to kill.
//!
//! Each launch is `sandboxctl apply --plan PLAN --root DIR --id ID`, PLAN
//! being `sandboxctl plan --policy untrusted -- /bin/sleep 30` compiled once
//! (the embedded spec: every namespace, a cgroup with memory and pids limits,
//! the built-in seccomp filter; from a plan file the launch is nearly all
//! effects, no compile), killed after a delay drawn from a seeded generator (the seed is printed; `SANDBOXCTL_KILL_SEED=N`
//! replays a run): half spread over the launch's measured length, half up to
//! twice it (killing a running sandbox). The test process is a child
//! subreaper, so an orphaned supervisor is reparented to it and seen (and
//! reaped) here rather than by the host's init.
//!
//! A plain `main` (harness = false), privileged: run it under the machine
//! lock (`flock /tmp/sandboxctl-priv.lock cargo test --features
//! fault-injection --test kill_launcher`). Skipped when not root.
//! `SANDBOXCTL_KILL_RUNS` (default 120) launches; `SANDBOXCTL_KILL_BIN`
//! runs another launcher (the release build of `scripts/build-release`,
//! whose launch is shorter) instead of the test build's.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::frames::Rng;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

/// The launcher under test.
fn bin() -> PathBuf {
    std::env::var_os("SANDBOXCTL_KILL_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_sandboxctl").into())
}

/// A plan of `workload` under the untrusted policy, compiled once into `dir`.
fn plan(dir: &Path, name: &str, workload: &[&str]) -> PathBuf {
    let file = dir.join(name);
    let out = Command::new(bin())
        .args(["plan", "-q", "--policy", "untrusted", "--format", "json", "-o"])
        .arg(&file)
        .arg("--")
        .args(workload)
        .output()
        .unwrap();
    assert!(out.status.success(), "plan: {}", String::from_utf8_lossy(&out.stderr));
    file
}

/// `apply --plan PLAN --root ROOT --id ID`, quiet.
fn apply(plan: &Path, root: &Path, id: &str) -> Command {
    let mut c = Command::new(bin());
    c.arg("apply")
        .arg("--plan")
        .arg(plan)
        .arg("--root")
        .arg(root)
        .args(["--id", id])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

/// Every cgroup directory whose name starts with `prefix`, in every
/// hierarchy (under the tool's `sandboxctl/` parents).
fn cgroups(prefix: &str) -> Vec<PathBuf> {
    let mut left = Vec::new();
    let Ok(hier) = std::fs::read_dir("/sys/fs/cgroup") else {
        return left;
    };
    let mut tops: Vec<PathBuf> = hier.flatten().map(|e| e.path().join("sandboxctl")).collect();
    tops.push("/sys/fs/cgroup/sandboxctl".into());
    for top in tops {
        for e in std::fs::read_dir(&top).into_iter().flatten().flatten() {
            if e.file_name().to_string_lossy().starts_with(prefix) {
                left.push(e.path());
            }
        }
    }
    left
}

/// The tool's shared parents (`/sys/fs/cgroup/*/sandboxctl`) that exist.
fn parents() -> BTreeSet<PathBuf> {
    std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("sandboxctl"))
        .filter(|p| p.is_dir())
        .collect()
}

/// Live processes (not zombies) of this test's sandboxes: a command line or
/// a cgroup naming `prefix`.
fn processes(prefix: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) || name == std::process::id().to_string() {
            continue;
        }
        let read = |f: &str| std::fs::read(e.path().join(f)).unwrap_or_default();
        let stat = String::from_utf8_lossy(&read("stat")).into_owned();
        // The state letter follows the command's closing parenthesis.
        if stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')) {
            continue;
        }
        let cmdline = String::from_utf8_lossy(&read("cmdline")).replace('\0', " ");
        let cgroup = String::from_utf8_lossy(&read("cgroup")).into_owned();
        if cmdline.contains(prefix) || cgroup.contains(&format!("/{prefix}")) {
            found.push(format!(
                "{name}: {} [{}]",
                cmdline.trim(),
                stat.split(' ').nth(2).unwrap_or("?")
            ));
        }
    }
    found
}

/// Reaps every child that has ended (orphans reparented to this subreaper).
fn reap_all() -> usize {
    let mut n = 0;
    loop {
        let mut st = 0;
        // SAFETY: waitpid with a valid status pointer; WNOHANG never blocks.
        let pid = unsafe { libc::waitpid(-1, &mut st, libc::WNOHANG) };
        if pid <= 0 {
            return n;
        }
        n += 1;
    }
}

fn mounts() -> BTreeSet<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        // Mount point and source, without the ids (a remount changes none).
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            format!(
                "{} {}",
                f.get(4).unwrap_or(&""),
                f.get(f.len().saturating_sub(2)).unwrap_or(&"")
            )
        })
        .collect()
}

fn main() {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        println!("kill_launcher: skipped: needs root (run as root on this machine)");
        return;
    }
    if !Path::new("/bin/sleep").exists() {
        println!("kill_launcher: skipped: no /bin/sleep");
        return;
    }
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let runs = env("SANDBOXCTL_KILL_RUNS", 120);
    let seed = env(
        "SANDBOXCTL_KILL_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    )
    .max(1);
    println!("kill_launcher: seed {seed} (SANDBOXCTL_KILL_SEED={seed} replays), {runs} launches");
    let mut rng = Rng(seed);
    let prefix = format!("kl{}-", std::process::id());
    let dir = std::env::temp_dir().join(format!("sandboxctl-kill-{}", std::process::id()));
    let root = dir.join("state");
    std::fs::create_dir_all(&root).unwrap();
    let true_plan = plan(&dir, "true.json", &["/bin/true"]);
    let sleep_plan = plan(&dir, "sleep.json", &["/bin/sleep", "30"]);
    let parents_before = parents();
    let mounts_before = mounts();
    let mut failed = Vec::new();

    // How long a launch takes here: the same plan with /bin/true, end to
    // end, three times (the least).
    let mut launch = Duration::MAX;
    for i in 0..3 {
        let t = Instant::now();
        let ok = apply(&true_plan, &root, &format!("{prefix}t{i}"))
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            println!("kill_launcher: FAILED: a plain launch does not succeed");
            std::process::exit(1);
        }
        launch = launch.min(t.elapsed());
    }
    let span = launch.as_micros() as u64;
    println!("kill_launcher: a launch takes {:.1} ms here", span as f64 / 1000.0);

    let t = Instant::now();
    let mut stragglers = Vec::new();
    let mut delays = Vec::new();
    for i in 0..runs {
        // Half the kills inside the launch, half up to twice its length.
        let delay = Duration::from_micros(if i % 2 == 0 {
            rng.below(span as usize)
        } else {
            rng.below(2 * span as usize)
        } as u64);
        delays.push(delay);
        let id = format!("{prefix}{i}");
        let mut child = apply(&sleep_plan, &root, &id).spawn().unwrap();
        // spawn returns once the launcher's exec succeeded.
        std::thread::sleep(delay);
        // SAFETY: kill has no memory arguments; the pid is our child's.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        let status = child.wait().unwrap();
        // What the launcher started must go with it (parent-death signal).
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            reap_all();
            let left = processes(&id);
            if left.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                stragglers.push(format!("{id} (killed after {delay:?}, {status}): {left:?}"));
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    reap_all();
    let mut d: Vec<u128> = delays.iter().map(Duration::as_micros).collect();
    d.sort();
    println!(
        "test kills ({runs} launches killed after 0–{:.1} ms, median {:.1} ms) ... {} ({:.1} s)",
        d.last().copied().unwrap_or(0) as f64 / 1000.0,
        d.get(d.len() / 2).copied().unwrap_or(0) as f64 / 1000.0,
        if stragglers.is_empty() { "ok" } else { "FAILED" },
        t.elapsed().as_secs_f64()
    );
    if !stragglers.is_empty() {
        println!(
            "  {} launches left processes, first: {:?}",
            stragglers.len(),
            &stragglers[..stragglers.len().min(3)]
        );
        failed.push("kills");
    }

    // gc removes what the dead launches left, and has nothing to kill.
    let before_gc = std::fs::read_dir(&root).map(|r| r.count()).unwrap_or(0);
    let gc = Command::new(bin()).args(["gc", "--root"]).arg(&root).output().unwrap();
    let gc_out = String::from_utf8_lossy(&gc.stdout).into_owned();
    let killed: Vec<&str> = gc_out
        .lines()
        .filter(|l| l.contains(": state file") && !l.ends_with(", 0 processes"))
        .collect();
    reap_all();
    let files: Vec<String> = std::fs::read_dir(&root)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let cg = cgroups(&prefix);
    let new_parents: Vec<PathBuf> = parents().difference(&parents_before).cloned().collect();
    let procs = processes(&prefix);
    let mounts_after = mounts();
    let new_mounts: Vec<&String> = mounts_after.difference(&mounts_before).collect();
    let ok = gc.status.success()
        && killed.is_empty()
        && files.is_empty()
        && cg.is_empty()
        && new_parents.is_empty()
        && procs.is_empty()
        && new_mounts.is_empty();
    println!(
        "test gc_after_kills ({before_gc} state files before gc) ... {}",
        if ok { "ok" } else { "FAILED" }
    );
    if !ok {
        println!(
            "  gc: {} {}{}",
            gc.status,
            gc_out.lines().last().unwrap_or(""),
            String::from_utf8_lossy(&gc.stderr)
        );
        println!("  gc had to kill: {killed:?}");
        println!("  state files left: {files:?}");
        println!("  cgroups left: {cg:?}; shared parents left: {new_parents:?}");
        println!("  processes left: {procs:?}");
        println!("  mounts added: {new_mounts:?}");
        for l in gc_out.lines().filter(|l| !l.starts_with("removed ")) {
            println!("  gc: {l}");
        }
        failed.push("gc_after_kills");
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!("kill_launcher: {} passed, {} failed", 2 - failed.len(), failed.len());
    if !failed.is_empty() {
        std::process::exit(1);
    }
}
