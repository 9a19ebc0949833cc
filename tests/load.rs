//! Load (issue 14): many launches of the real binary in a row and several at
//! a time, each through `sandboxctl apply --policy untrusted [--id ID] --
//! /bin/true` (the embedded spec: a cgroup with limits, every namespace, the
//! built-in seccomp filter); every launch must succeed and leave no cgroup
//! directory, no state file and no process behind.
//!
//! A plain `main` (harness = false), privileged: run it under the machine
//! lock (`flock /tmp/sandboxctl-priv.lock cargo test --features
//! fault-injection --test load`). Skipped when not root. Counts:
//! `SANDBOXCTL_LOAD_SERIAL` (default 1000) launches in a row, then
//! `SANDBOXCTL_LOAD_PARALLEL` (default 200) with `SANDBOXCTL_LOAD_JOBS`
//! (default 6) at a time, these without `--id`, as a new user launches (each
//! gets a random id: they must not collide, and what is left is whatever
//! `sbx-` entry was not there before). Then a fork bomb (stopped at the pids
//! limit while another sandbox and the host keep working) and a memory hog
//! (killed in its 64 MiB cgroup; apply exits 137 and names the OOM kill and
//! the limit on stderr).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

/// One launch, with this id or (None) a random one; Err names what went wrong.
fn launch(id: Option<&str>) -> Result<(), String> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sandboxctl"));
    cmd.args(["apply", "--policy", "untrusted"]);
    if let Some(id) = id {
        cmd.args(["--id", id]);
    }
    let out = cmd.args(["--", "/bin/true"]).output().map_err(|e| e.to_string())?;
    let id = id.unwrap_or("(unnamed)");
    if !out.status.success() {
        return Err(format!(
            "{id}: exit {:?}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// What sandboxes whose id starts with `prefix` left on the host.
fn leftovers(prefix: &str) -> Vec<String> {
    let mut left = Vec::new();
    let mut dirs: Vec<String> = ["memory", "pids", "cpu", "cpuset", "unified"]
        .iter()
        .map(|c| format!("/sys/fs/cgroup/{c}/sandboxctl"))
        .collect();
    dirs.push("/sys/fs/cgroup/sandboxctl".into());
    dirs.push("/run/sandboxctl".into());
    for d in dirs {
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().starts_with(prefix) {
                    left.push(e.path().display().to_string());
                }
            }
        }
    }
    left
}

fn main() {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        println!("load: skipped: needs root (run as root on this machine)");
        return;
    }
    if !Path::new("/bin/true").exists() {
        println!("load: skipped: no /bin/true");
        return;
    }
    let prefix = format!("ld{}-", std::process::id());
    let (serial, parallel, jobs) = (
        env("SANDBOXCTL_LOAD_SERIAL", 1000),
        env("SANDBOXCTL_LOAD_PARALLEL", 200),
        env("SANDBOXCTL_LOAD_JOBS", 6).max(1),
    );
    let mut failed = Vec::new();

    let t = Instant::now();
    let errors: Vec<String> = (0..serial)
        .filter_map(|i| launch(Some(&format!("{prefix}s{i}"))).err())
        .collect();
    let left = leftovers(&prefix);
    println!(
        "test serial ({serial} launches in a row) ... {} ({:.1} s, {:.1} ms each)",
        if errors.is_empty() && left.is_empty() {
            "ok"
        } else {
            "FAILED"
        },
        t.elapsed().as_secs_f64(),
        t.elapsed().as_secs_f64() * 1000.0 / serial.max(1) as f64
    );
    if !errors.is_empty() || !left.is_empty() {
        println!(
            "  {} failed, first: {:?}; left behind: {:?}",
            errors.len(),
            errors.first(),
            left
        );
        failed.push("serial");
    }

    // Unnamed launches get `sbx-` and 16 random hex digits: what is left is
    // any such entry that was not there before (the machine lock keeps other
    // launches away meanwhile).
    let unnamed_before = leftovers("sbx-");
    let t = Instant::now();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let errors = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= parallel {
                    return;
                }
                if let Err(e) = launch(None) {
                    errors.lock().unwrap().push(e);
                }
            });
        }
    });
    let errors = errors.into_inner().unwrap();
    let mut left = leftovers(&prefix);
    left.extend(leftovers("sbx-").into_iter().filter(|p| !unnamed_before.contains(p)));
    println!(
        "test parallel ({parallel} unnamed launches, {jobs} at a time) ... {} ({:.1} s)",
        if errors.is_empty() && left.is_empty() {
            "ok"
        } else {
            "FAILED"
        },
        t.elapsed().as_secs_f64()
    );
    if !errors.is_empty() || !left.is_empty() {
        println!(
            "  {} failed, first: {:?}; left behind: {:?}",
            errors.len(),
            errors.first(),
            left
        );
        failed.push("parallel");
    }

    // A fork bomb stops at its pids limit (untrusted: 128) while another
    // sandbox and the host keep working.
    let bomb_id = format!("{prefix}bomb");
    let bomb = Command::new(env!("CARGO_BIN_EXE_sandboxctl"))
        .args([
            "apply",
            "--policy",
            "untrusted",
            "--id",
            &bomb_id,
            "--",
            "/bin/sh",
            "-c",
        ])
        .arg("i=0; while [ $i -lt 400 ]; do sleep 2 & i=$((i+1)); done; wait")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    let other = launch(Some(&format!("{prefix}beside")));
    let host_ok = Command::new("/bin/true").status().map(|s| s.success()).unwrap_or(false);
    let out = bomb.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let stopped = err.to_lowercase().contains("fork");
    let left = leftovers(&prefix);
    let ok = other.is_ok() && host_ok && stopped && left.is_empty();
    println!("test fork_bomb ... {}", if ok { "ok" } else { "FAILED" });
    if !ok {
        println!(
            "  beside: {other:?}; host fork: {host_ok}; bomb stopped at the limit: {stopped} ({}); left: {left:?}",
            err.lines().next().unwrap_or("")
        );
        failed.push("fork_bomb");
    }

    // A memory hog is killed inside its cgroup (64 MiB, a policy on top of
    // untrusted), apply exits 128 + SIGKILL and says why on stderr, with the
    // limit and where it came from; the host still forks.
    let dir = std::env::temp_dir().join(format!("sandboxctl-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let policy = dir.join("hog.toml");
    std::fs::write(
        &policy,
        "extends = \"untrusted\"\n[limits]\nmemory = \"64MiB\"\nmemory_swap = \"64MiB\"\non_excess = \"clamp\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sandboxctl"))
        .arg("apply")
        .arg("--policy")
        .arg(&policy)
        .args(["--id", &format!("{prefix}hog"), "--", "/usr/bin/tail", "/dev/zero"])
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let left = leftovers(&prefix);
    let err = String::from_utf8_lossy(&out.stderr);
    let said = err.lines().any(|l| {
        l.starts_with("error: the workload was killed by the kernel's OOM killer: memory limit 64MiB (policy:")
            && l.contains("hog.toml:")
    });
    let host_ok = Command::new("/bin/true").status().map(|s| s.success()).unwrap_or(false);
    let ok = out.status.code() == Some(137) && said && host_ok && left.is_empty();
    println!(
        "test memory_hog ... {} (exit {:?}{})",
        if ok { "ok" } else { "FAILED" },
        out.status.code(),
        err.lines().map(|l| format!("; {l}")).collect::<String>()
    );
    if !ok {
        println!("  reported: {said}; host fork: {host_ok}; left: {left:?}");
        failed.push("memory_hog");
    }

    println!("load: {} passed, {} failed", 4 - failed.len(), failed.len());
    if !failed.is_empty() {
        std::process::exit(1);
    }
}
