//! Privileged cases of the ptrace platform (issue 15), through the real
//! binary on the embedded default spec (the host's root, read-only, /proc
//! mounted): the supervisor traces the workload and what it starts, the user
//! log names each refused call with the policy line that refused it, and
//! `learn` writes a fragment under which the same workload runs and any
//! other call is refused.

use std::fs;
use std::path::{Path, PathBuf};

/// A directory under /var/tmp (the embedded spec's tmpfs hides /tmp inside
/// the sandbox), removed when dropped.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let d = PathBuf::from(format!("/var/tmp/sbx-trace-{}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The probe run inside the sandbox (`--probe-thread-refused`): a second
/// thread makes a call `default` refuses (`unshare(CLONE_NEWUSER)`) and
/// prints its thread id and the errno.
pub fn probe_thread_refused() -> ! {
    let t = std::thread::spawn(|| {
        // SAFETY: gettid and unshare take integers only.
        let tid = unsafe { libc::syscall(libc::SYS_gettid) };
        // SAFETY: as above.
        let r = unsafe { libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUSER) };
        let e = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        println!("thread {tid} unshare {r} errno {e}");
    });
    t.join().unwrap();
    std::process::exit(0);
}

fn ptrace_policy(dir: &Path) -> PathBuf {
    let p = dir.join("ptrace.toml");
    let log = dir.join("user.log");
    fs::write(
        &p,
        format!(
            "extends = \"default\"\nplatform = \"ptrace\"\n\n[logs]\nuser_log = \"{}\"\n",
            log.display()
        ),
    )
    .unwrap();
    p
}

/// Under `platform = "ptrace"`: the workload's TracerPid is the supervisor
/// (pid 1 of its own PID namespace; before issue 15 it was 0, and mounting
/// /proc failed with EPERM in the host's PID namespace while doctor said
/// ok); doctor and apply agree; a call refused in a thread of a program the
/// workload started is in the user log with its thread id, arguments and
/// the policy line of the default action; the tracer's summary counts it.
pub fn case_ptrace_observes_and_logs(_root: &Path, id: &str) {
    let dir = Dir::new("observe");
    let probe = dir.0.join("probe");
    fs::copy(std::env::current_exe().unwrap(), &probe).unwrap();
    let policy = ptrace_policy(&dir.0);
    let policy = policy.to_str().unwrap();
    let (code, out, err) = super::sandboxctl_out(&["doctor", "--policy", policy, "--", "/bin/true"]);
    assert_eq!(code, 0, "doctor: {out}{err}");
    assert!(out.starts_with("ok:"), "{out}");
    let script = format!(
        "grep -E '^(Pid|TracerPid):' /proc/self/status; cat /proc/1/comm; {} --probe-thread-refused",
        probe.display()
    );
    let (code, out, err) =
        super::sandboxctl_out(&["apply", "--policy", policy, "--id", id, "--", "/bin/sh", "-c", &script]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("TracerPid:\t1\n"),
        "the supervisor traces the workload: {out}"
    );
    let tid: i32 = out
        .lines()
        .find_map(|l| l.strip_prefix("thread "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no probe line: {out}{err}"));
    assert!(out.contains("unshare -1 errno 1"), "default refuses unshare: {out}");
    let log = fs::read_to_string(dir.0.join("user.log")).unwrap();
    let record = log
        .lines()
        .find(|l| l.contains("seccomp refused:") && l.contains("unshare(0x10000000,"))
        .unwrap_or_else(|| panic!("no refusal record in the user log:\n{log}"));
    assert!(record.contains(&format!("pid {tid} (")), "the thread's id: {record}");
    assert!(
        record.contains("-> errno EPERM")
            && record.contains("default action")
            && record.contains("policy:builtin:default.toml:"),
        "{record}"
    );
    assert!(
        log.contains("syscall seen: unshare allowed 0 refused 1"),
        "summary counts the refusal:\n{log}"
    );
    // Calls of the grandchildren (grep, cat) are counted too.
    assert!(log.contains("syscall seen: execve allowed "), "{log}");

    // A call refused by a rule: the record names the rule's line.
    let deny = dir.0.join("deny.toml");
    fs::write(
        &deny,
        format!("extends = \"{policy}\"\n\n[seccomp]\ndeny = [\"mkdir\", \"mkdirat\"]\n"),
    )
    .unwrap();
    let id2 = format!("{id}d");
    let (code, out, err) = super::sandboxctl_out(&[
        "apply",
        "--policy",
        deny.to_str().unwrap(),
        "--id",
        &id2,
        "--",
        "/bin/sh",
        "-c",
        "mkdir /dev/shm/x || echo refused",
    ]);
    assert_eq!((code, out.trim()), (0, "refused"), "{err}");
    let log = fs::read_to_string(dir.0.join("user.log")).unwrap();
    let record = log
        .lines()
        .find(|l| l.contains("seccomp refused:") && l.contains(" (mkdir) mkdir"))
        .unwrap_or_else(|| panic!("no mkdir record:\n{log}"));
    assert!(
        record.contains(&format!("-> errno EPERM, by the rule at policy:{}:4", deny.display())),
        "{record}"
    );
}

/// `learn` on a shell that lists / and echoes: the fragment allows what it
/// made with counts; the same workload runs under it; `mkdir`, which it
/// never made (and `default` allows), is refused under it; `diff` of the
/// plans without and with it narrows and widens nothing.
pub fn case_ptrace_learn_then_apply(_root: &Path, id: &str) {
    let dir = Dir::new("learn");
    let frag = dir.0.join("learned.toml");
    let frag_s = frag.to_str().unwrap();
    let script = "ls / >/dev/null; echo learned-run";
    let (code, out, err) = super::sandboxctl_out(&[
        "learn", "--policy", "default", "-o", frag_s, "--", "/bin/sh", "-c", script,
    ]);
    assert_eq!(code, 0, "learn: {out}{err}");
    assert!(out.contains("learned-run"), "{out}");
    let text = fs::read_to_string(&frag).unwrap();
    assert!(text.contains("\"getdents64\","), "ls's directory read: {text}");
    assert!(!text.contains("\"mkdir\""), "{text}");
    assert!(
        text.lines().any(|l| l.contains("\"execve\",") && l.contains("# ")),
        "counts: {text}"
    );

    let id2 = format!("{id}b");
    let (code, out, err) = super::sandboxctl_out(&[
        "apply", "--policy", "default", "--policy", frag_s, "--id", &id2, "--", "/bin/sh", "-c", script,
    ]);
    assert_eq!(
        (code, out.trim()),
        (0, "learned-run"),
        "the learned workload runs: {err}"
    );

    let other = "ls / >/dev/null; mkdir /dev/shm/x && echo made";
    let (code, out, err) = super::sandboxctl_out(&[
        "apply", "--policy", "default", "--id", &id2, "--", "/bin/sh", "-c", other,
    ]);
    assert_eq!((code, out.trim()), (0, "made"), "default allows mkdir: {err}");
    let (code, out, err) = super::sandboxctl_out(&[
        "apply", "--policy", "default", "--policy", frag_s, "--id", &id2, "--", "/bin/sh", "-c", other,
    ]);
    assert_ne!(code, 0, "{out}");
    assert!(
        err.contains("Operation not permitted"),
        "mkdir refused under the learned policy: {err}"
    );

    let (a, b) = (dir.0.join("a.toml"), dir.0.join("b.toml"));
    let (a_s, b_s) = (a.to_str().unwrap(), b.to_str().unwrap());
    let plan = |o: &str, extra: &[&str]| {
        let mut args = vec!["plan", "--policy", "default"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["-o", o, "--", "/bin/sh", "-c", script]);
        let (code, out, err) = super::sandboxctl_out(&args);
        assert_eq!(code, 0, "{out}{err}");
    };
    plan(a_s, &[]);
    plan(b_s, &["--policy", frag_s]);
    let (code, out, err) = super::sandboxctl_out(&["diff", a_s, b_s]);
    assert_eq!(code, 1, "narrows only: {out}{err}");
    assert!(out.contains("0 widen"), "{out}");
    assert!(out.contains("workload.seccomp.syscalls.mkdir"), "{out}");
}
