//! Long-lived sandboxes through the real binary (issue 12): `create`,
//! `start`, `exec`, `run`, `state` on real sandboxes, and the faults: a
//! failed create leaves nothing, an id in use is refused untouched, a
//! supervisor killed from outside reads as stopped, a launcher killed
//! mid-create leaves an incomplete directory and no process, 200 creates of
//! distinct ids at 8 at a time all succeed.
//!
//! A plain `main` (harness = false), privileged: run it under the machine
//! lock (`flock /tmp/sandboxctl-priv.lock cargo test --features
//! fault-injection --test create`). Skipped when not root. Every test's
//! sandboxes live under a root of its own, removed (processes killed first)
//! even when the test fails.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_sandboxctl")
}

/// A state root for one test; on drop, every sandbox under it is killed and
/// the root removed.
struct Root(PathBuf);

impl Root {
    fn new(name: &str) -> Root {
        let p = PathBuf::from(format!("/tmp/sbx-create-test-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        Root(p)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    /// The supervisor pid recorded for `id`.
    fn supervisor(&self, id: &str) -> Option<i32> {
        let text = fs::read_to_string(self.0.join(id).join("state.json")).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        v["supervisor"]["pid"].as_i64().map(|p| p as i32)
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let mut sups = Vec::new();
        if let Ok(rd) = fs::read_dir(&self.0) {
            for e in rd.flatten() {
                if let Some(pid) = self.supervisor(&e.file_name().to_string_lossy()) {
                    // SAFETY: kill has no memory arguments.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                    sups.push(pid);
                }
            }
        }
        for pid in sups {
            wait_gone(pid);
        }
        // Cgroups of untrusted-policy sandboxes made by these tests (a
        // memory cgroup stays busy a moment after its last process died).
        for c in ["memory", "pids", "cpu", "cpuset", "unified", "freezer"] {
            if let Ok(rd) = fs::read_dir(format!("/sys/fs/cgroup/{c}/sandboxctl")) {
                for e in rd.flatten() {
                    if e.file_name().to_string_lossy().starts_with("ct-") {
                        let end = Instant::now() + Duration::from_secs(3);
                        while fs::remove_dir(e.path()).is_err() && e.path().exists() && Instant::now() < end {
                            std::thread::sleep(Duration::from_millis(10));
                        }
                    }
                }
            }
            let _ = fs::remove_dir(format!("/sys/fs/cgroup/{c}/sandboxctl"));
        }
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// What a run gave.
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs the binary with `--root`, stdout and stderr through files (a
/// created sandbox's workload inherits them, so pipes would never end).
fn sbx(root: &Root, args: &[&str]) -> Out {
    sbx_env(root.path(), args, &[])
}

fn sbx_env(root: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = root.with_extension(format!("out{}", N.fetch_add(1, Ordering::Relaxed)));
    fs::create_dir_all(&dir).unwrap();
    let (o, e) = (dir.join("stdout"), dir.join("stderr"));
    let status = Command::new(bin())
        .arg("--root")
        .arg(root)
        .args(args)
        .envs(env.iter().copied())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(fs::File::create(&o).unwrap())
        .stderr(fs::File::create(&e).unwrap())
        .status()
        .unwrap();
    let out = Out {
        code: status.code().unwrap_or(-1),
        stdout: fs::read_to_string(&o).unwrap_or_default(),
        stderr: fs::read_to_string(&e).unwrap_or_default(),
    };
    let _ = fs::remove_dir_all(&dir);
    out
}

fn alive(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            let state = s.rsplit(')').next().unwrap_or("").trim_start().chars().next();
            !matches!(state, Some('Z') | Some('X') | None)
        })
        .unwrap_or(false)
}

fn children_of(pid: i32) -> Vec<i32> {
    fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect()
}

fn wait_gone(pid: i32) -> bool {
    wait_gone_for(pid, 5)
}

fn wait_gone_for(pid: i32, secs: u64) -> bool {
    let end = Instant::now() + Duration::from_secs(secs);
    while alive(pid) {
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

fn status_of(root: &Root, id: &str) -> String {
    let o = sbx(root, &["state", id]);
    assert_eq!(o.code, 0, "state {id}: {}", o.stderr);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    v["status"].as_str().unwrap().to_string()
}

/// create → created (no workload yet) → start → running; start again is
/// refused; exec runs under the plan (exit status, user, no caps,
/// no_new_privs, seccomp, only stdio fds, inside the sandbox's PID
/// namespace), refuses a user or capabilities above the ceiling; the
/// workload's end stops the sandbox with its status recorded.
fn lifecycle() {
    let root = Root::new("life");
    let o = sbx(
        &root,
        &[
            "create",
            "--pid-file",
            "/tmp/sbx-create-test.pid",
            "ct-a",
            "--",
            "/bin/sh",
            "-c",
            // Ends (exit 7) when told, not after a time a loaded machine's
            // execs could outlast.
            "trap 'exit 7' USR1; while true; do sleep 0.1; done",
        ],
    );
    assert_eq!(o.code, 0, "create: {}", o.stderr);
    let sup = root.supervisor("ct-a").expect("a supervisor recorded");
    assert!(alive(sup));
    assert_eq!(fs::read_to_string("/tmp/sbx-create-test.pid").unwrap(), sup.to_string());
    let _ = fs::remove_file("/tmp/sbx-create-test.pid");
    assert_eq!(status_of(&root, "ct-a"), "created");
    assert!(children_of(sup).is_empty(), "no workload before start");
    // It serves from a fresh address space (exec/interp/reexec.rs): the
    // binary re-executed, non-dumpable again, under its own name.
    let cmdline = fs::read(format!("/proc/{sup}/cmdline")).unwrap();
    assert!(cmdline.starts_with(b"sandboxctl-supervisor\0"), "{cmdline:?}");
    assert_eq!(fs::read_to_string(format!("/proc/{sup}/comm")).unwrap(), "sandboxctl\n");
    let status = fs::read_to_string(format!("/proc/{sup}/status")).unwrap();
    assert!(status.contains("CapAmb:\t0000000000000000"), "{status}");
    assert_eq!(
        fs::metadata(format!("/proc/{sup}/mem"))
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
            .unwrap(),
        0,
        "non-dumpable: its /proc files belong to root"
    );
    let o = sbx(&root, &["state", "--plan", "--format", "json", "ct-a"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.contains("\"workload\""), "the stored plan");
    let o = sbx(&root, &["exec", "ct-a", "/bin/true"]);
    assert_eq!(o.code, 1, "exec before start: {}", o.stderr);
    assert!(o.stderr.contains("created, not running"), "{}", o.stderr);

    let o = sbx(&root, &["start", "ct-a"]);
    assert_eq!(o.code, 0, "start: {}", o.stderr);
    assert_eq!(status_of(&root, "ct-a"), "running");
    assert_eq!(children_of(sup).len(), 1, "the workload runs");
    let o = sbx(&root, &["start", "ct-a"]);
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("running, not created"), "{}", o.stderr);

    let o = sbx(&root, &["exec", "ct-a", "/bin/sh", "-c", "echo out; exit 3"]);
    assert_eq!((o.code, o.stdout.as_str()), (3, "out\n"), "{}", o.stderr);
    let script = "grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status; id -u; \
                  ls /proc/self/fd | wc -l; cat /proc/1/comm";
    let o = sbx(&root, &["exec", "ct-a", "/bin/sh", "-c", script]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    for want in [
        "CapEff:\t0000000000000000",
        "CapBnd:\t0000000000000000",
        "NoNewPrivs:\t1",
        "Seccomp:\t2",
        "65534",
        "sandboxctl",
    ] {
        assert!(o.stdout.contains(want), "{want:?} in {}", o.stdout);
    }
    let fds: Vec<&str> = o.stdout.lines().collect();
    assert!(fds.contains(&"4"), "0, 1, 2 and ls's own: {fds:?}");
    // Under the nobody rule every process is nobody: an exec's user gives
    // way to it as the spec's did (engines name the container's root).
    let o = sbx(
        &root,
        &["exec", "--user", "0:0", "ct-a", "/bin/sh", "-c", "id -u; id -g"],
    );
    assert_eq!((o.code, o.stdout.as_str()), (0, "65534\n65534\n"), "{}", o.stderr);
    let pj = root.path().with_extension("process.json");
    fs::write(
        &pj,
        r#"{"args":["/bin/true"],"cwd":"/","user":{"uid":65534,"gid":65534},"capabilities":{"bounding":["CAP_SYS_ADMIN"]}}"#,
    )
    .unwrap();
    let o = sbx(&root, &["exec", "--process", pj.to_str().unwrap(), "ct-a"]);
    let _ = fs::remove_file(&pj);
    assert_eq!(o.code, 1);
    assert!(
        o.stderr.contains("CAP_SYS_ADMIN") && o.stderr.contains("ceiling"),
        "{}",
        o.stderr
    );
    // Many execs into one sandbox (each vfork child's arena is reused).
    for i in 0..300 {
        let o = sbx(&root, &["exec", "ct-a", "/bin/sh", "-c", "exit 4"]);
        assert_eq!(o.code, 4, "exec {i}: {}", o.stderr);
    }
    let o = sbx(
        &root,
        &[
            "exec",
            "-d",
            "--pid-file",
            "/tmp/sbx-create-exec.pid",
            "ct-a",
            "/bin/sleep",
            "30",
        ],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let epid: i32 = fs::read_to_string("/tmp/sbx-create-exec.pid").unwrap().parse().unwrap();
    let _ = fs::remove_file("/tmp/sbx-create-exec.pid");
    // The pid file names a proxy that waits for the exec'd process (an
    // engine waits for that pid as its child); the process itself is the
    // supervisor's child.
    assert!(alive(epid), "the proxy waits");
    assert!(
        children_of(sup)
            .iter()
            .any(|c| fs::read_to_string(format!("/proc/{c}/cmdline")).is_ok_and(|c| c.starts_with("/bin/sleep\0"))),
        "the exec'd process is the supervisor's child"
    );

    // The workload ends (exit 7): stopped, its status recorded, and the
    // exec'd process ends with the sandbox.
    let o = sbx(&root, &["kill", "ct-a", "USR1"]);
    assert_eq!(o.code, 0, "kill USR1: {}", o.stderr);
    assert!(wait_gone_for(sup, 30), "the supervisor exits when the workload ends");
    assert!(
        wait_gone(epid),
        "exec'd processes (and their proxies) end with the sandbox"
    );
    assert_eq!(status_of(&root, "ct-a"), "stopped");
    let exit = fs::read_to_string(root.path().join("ct-a/exit")).unwrap();
    assert!(exit.contains("\"code\":7"), "{exit}");
}

/// A failure inside create (any step, the supervisor's last one included)
/// leaves no directory and no process.
fn failed_create_leaves_nothing() {
    let root = Root::new("fail");
    for step in ["mounts", "session", "spawn_workload"] {
        let o = sbx_env(
            root.path(),
            &["create", "ct-f", "--", "/bin/true"],
            &[("SANDBOXCTL_FAIL_AT_STEP", step)],
        );
        assert_eq!(o.code, 1, "{step}: {}", o.stderr);
        assert!(o.stderr.contains("injected fault"), "{}", o.stderr);
        assert!(!root.path().join("ct-f").exists(), "{step}: the directory is removed");
    }
}

/// An id in use is refused and the sandbox that has it is untouched; bad
/// ids are refused before anything is made.
fn id_in_use_and_bad_ids() {
    let root = Root::new("inuse");
    assert_eq!(sbx(&root, &["create", "ct-u", "--", "/bin/true"]).code, 0);
    let before = fs::read_to_string(root.path().join("ct-u/state.json")).unwrap();
    let sup = root.supervisor("ct-u").unwrap();
    let o = sbx(&root, &["create", "ct-u", "--", "/bin/true"]);
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("exists"), "{}", o.stderr);
    assert_eq!(fs::read_to_string(root.path().join("ct-u/state.json")).unwrap(), before);
    assert!(alive(sup));
    for bad in ["../x", "a/b", ".hidden", "x\u{1}y", &"z".repeat(200)] {
        let o = sbx(&root, &["create", bad, "--", "/bin/true"]);
        assert_eq!(o.code, 2, "{bad:?}: {}", o.stderr);
        assert!(o.stderr.contains("invalid sandbox id"), "{}", o.stderr);
    }
    let o = sbx(&root, &["start", "ct-nope"]);
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("no sandbox \"ct-nope\""), "{}", o.stderr);
}

/// A supervisor killed from outside: the sandbox reads as stopped.
fn supervisor_killed() {
    let root = Root::new("killed");
    assert_eq!(sbx(&root, &["create", "ct-k", "--", "/bin/sleep", "100"]).code, 0);
    assert_eq!(sbx(&root, &["start", "ct-k"]).code, 0);
    let sup = root.supervisor("ct-k").unwrap();
    let workload = children_of(sup);
    // SAFETY: kill has no memory arguments.
    unsafe { libc::kill(sup, libc::SIGKILL) };
    assert!(wait_gone(sup));
    assert!(
        workload.iter().all(|p| wait_gone(*p)),
        "the workload dies with its PID namespace"
    );
    assert_eq!(status_of(&root, "ct-k"), "stopped");
    let o = sbx(&root, &["exec", "ct-k", "/bin/true"]);
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("stopped, not running"), "{}", o.stderr);
}

/// The launcher killed after the release, before it recorded the sandbox:
/// the supervisor dies with it; the directory has no record; no process.
fn launcher_killed_mid_create() {
    let root = Root::new("midcreate");
    let o = sbx_env(
        root.path(),
        &["create", "ct-m", "--", "/bin/true"],
        &[("SANDBOXCTL_KILL_LAUNCHER", "after_release")],
    );
    assert_eq!(o.code, -1, "killed: {}", o.stderr);
    std::thread::sleep(Duration::from_millis(200));
    assert!(!root.path().join("ct-m/state.json").exists());
    let o = sbx(&root, &["state", "ct-m"]);
    assert_eq!(o.code, 1, "{}", o.stderr);
    let stray = Command::new("pgrep")
        .args(["-f", "sbx-create-test-midcreate"])
        .output()
        .unwrap();
    assert!(
        stray.stdout.is_empty(),
        "no process left: {}",
        String::from_utf8_lossy(&stray.stdout)
    );
}

/// `run` in the foreground: the workload's status, INT/TERM forwarded, the
/// sandbox removed afterwards.
fn run_foreground() {
    let root = Root::new("run");
    let o = sbx(&root, &["run", "ct-r", "--", "/bin/sh", "-c", "echo ran; exit 5"]);
    assert_eq!((o.code, o.stdout.as_str()), (5, "ran\n"), "{}", o.stderr);
    assert!(!root.path().join("ct-r").exists(), "removed after the run");
    let mut child = Command::new(bin())
        .arg("--root")
        .arg(root.path())
        .args([
            "run",
            "ct-r2",
            "--",
            "/bin/sh",
            "-c",
            "trap 'exit 9' TERM; sleep 10 & wait",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(5);
    while root.supervisor("ct-r2").is_none_or(|s| children_of(s).is_empty()) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(100));
    // SAFETY: kill has no memory arguments.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(9), "TERM forwarded to the workload, which exits 9");
}

/// Issue 15 under `create`: the control server's reap drives the ptrace
/// platform's tracer. The workload and a process `exec`'d into the sandbox
/// are both traced (TracerPid 1), a call the filter refuses in the exec'd
/// one is in the user log, and the summary is written when the workload
/// exits (before the wiring, the exec'd process stayed stopped at its exec).
fn ptrace_create_exec() {
    let root = Root::new("ptrace");
    let (policy, log) = (
        root.path().with_extension("ptrace.toml"),
        root.path().with_extension("user.log"),
    );
    let _ = fs::remove_file(&log);
    fs::write(
        &policy,
        format!(
            "extends = \"default\"\nplatform = \"ptrace\"\n\n[logs]\nuser_log = \"{}\"\n",
            log.display()
        ),
    )
    .unwrap();
    let p = policy.to_str().unwrap();
    let o = sbx(
        &root,
        &["create", "-p", p, "ct-p", "--", "/bin/sh", "-c", "sleep 1; echo done"],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let o = sbx(&root, &["start", "ct-p"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let o = sbx(
        &root,
        &[
            "exec",
            "ct-p",
            "/bin/sh",
            "-c",
            "grep TracerPid /proc/self/status; unshare -U true",
        ],
    );
    assert!(o.stdout.contains("TracerPid:\t1\n"), "{}{}", o.stdout, o.stderr);
    let end = Instant::now() + Duration::from_secs(10);
    while status_of(&root, "ct-p") != "stopped" && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(status_of(&root, "ct-p"), "stopped");
    let text = fs::read_to_string(&log).unwrap();
    let _ = fs::remove_file(&log);
    let _ = fs::remove_file(&policy);
    assert!(
        text.lines()
            .any(|l| l.contains("seccomp refused:") && l.contains("unshare(0x10000000,")),
        "{text}"
    );
    assert!(text.contains("syscall seen: unshare allowed 0 refused 1"), "{text}");
}

/// 200 creates of distinct ids, 8 at a time, all succeed (the untrusted
/// policy: cgroups too); then every sandbox is killed and removed.
fn many_creates() {
    let root = Root::new("many");
    let n: usize = std::env::var("SANDBOXCTL_CREATE_MANY")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let t = Instant::now();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let id = format!("ct-many-{i}");
                let o = sbx_env(
                    root.path(),
                    &["create", "--policy", "untrusted", &id, "--", "/bin/true"],
                    &[],
                );
                if o.code != 0 {
                    failures.lock().unwrap().push(format!("{id}: {}", o.stderr));
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    println!(
        "    {n} creates, 8 at a time: {:?}, {} failed",
        t.elapsed(),
        failures.len()
    );
    assert!(failures.is_empty(), "{failures:?}");
    let o = sbx(&root, &["list", "--format", "json"]);
    assert_eq!(o.code, 0);
    let list: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    let created = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] == "created")
        .count();
    assert_eq!(created, n, "every one listed as created");
}

/// A spec asking for a terminal: without --console-socket a created
/// sandbox would have its pty hung up when the launcher exits, so create
/// refuses it in one line and makes nothing.
fn terminal_needs_console_socket() {
    let root = Root::new("tty");
    let bundle = root.path().with_extension("bundle");
    let _ = fs::remove_dir_all(&bundle);
    fs::create_dir_all(bundle.join("rootfs")).unwrap();
    let spec = fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/inputs/runc-spec.json"
    ))
    .unwrap();
    assert!(
        spec.contains("\"terminal\": true"),
        "runc's default spec asks for a terminal"
    );
    fs::write(bundle.join("config.json"), spec).unwrap();
    let o = sbx(&root, &["create", "--bundle", bundle.to_str().unwrap(), "ct-t"]);
    let _ = fs::remove_dir_all(&bundle);
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(o.stderr.contains("--console-socket"), "{}", o.stderr);
    assert!(!root.path().join("ct-t").exists(), "nothing made");
}

/// `exec` into a sandbox whose spec brings its own user-namespace maps
/// (setgroups allowed): the exec'd process runs as the workload's user with
/// its groups, although the supervisor holds no capability by then.
fn exec_under_spec_maps() {
    let root = Root::new("maps");
    let bundle = root.path().with_extension("mapsbundle");
    let _ = fs::remove_dir_all(&bundle);
    let busybox = match common::busybox() {
        Ok(b) => b,
        Err(why) => panic!("{why}"),
    };
    let made = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/make-busybox-rootfs"))
        .env("BUSYBOX", &busybox)
        .arg(bundle.join("rootfs"))
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    fs::set_permissions(&bundle, fs::Permissions::from_mode(0o755)).unwrap();
    let case = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/cases/userns-spec-maps");
    fs::copy(format!("{case}/policy.toml"), bundle.join("policy.toml")).unwrap();
    let mut spec: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(format!("{case}/spec.json")).unwrap()).unwrap();
    spec["process"]["args"] = serde_json::json!(["/bin/sleep", "30"]);
    spec["process"]["terminal"] = serde_json::json!(false);
    let mounts: Vec<serde_json::Value> = spec["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| !matches!(m["destination"].as_str(), Some("/sys/fs/cgroup") | Some("/dev/mqueue")))
        .cloned()
        .collect();
    spec["mounts"] = serde_json::json!(mounts);
    fs::write(bundle.join("config.json"), spec.to_string()).unwrap();
    let chown = Command::new("chown")
        .args(["-R", "100000:100000"])
        .arg(bundle.join("rootfs"))
        .status()
        .unwrap();
    assert!(chown.success());
    let policy = bundle.join("policy.toml");
    let o = sbx(
        &root,
        &[
            "--policy",
            policy.to_str().unwrap(),
            "create",
            "--bundle",
            bundle.to_str().unwrap(),
            "ct-m",
        ],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(sbx(&root, &["start", "ct-m"]).code, 0);
    let o = sbx(&root, &["exec", "ct-m", "/bin/sh", "-c", "id; exit 3"]);
    // The spec's own user, and a supervisor that keeps no CAP_SETUID:
    // another user is refused, saying why.
    let other = sbx(&root, &["exec", "--user", "0", "ct-m", "/bin/true"]);
    let _ = sbx(&root, &["delete", "--force", "ct-m"]);
    let _ = fs::remove_dir_all(&bundle);
    assert_eq!(other.code, 1, "{}", other.stderr);
    assert!(other.stderr.contains("CAP_SETUID"), "{}", other.stderr);
    assert_eq!(o.code, 3, "{}", o.stderr);
    assert!(
        o.stdout.contains("uid=1000") && o.stdout.contains("groups=10"),
        "{}",
        o.stdout
    );
}

/// Issue 13: a pod's containers share the pause container's ipc, uts and
/// pid namespaces by path. A holder (`unshare --ipc --uts --pid --fork`,
/// as a pause container) makes them; a sandbox under the container policy
/// whose spec names the holder's paths sees the holder's namespaces from
/// inside (its workload and an exec'd process alike), the holder's hostname
/// (not the spec's), the holder as pid 1 and itself not; `delete --force`
/// ends the sandbox and leaves the holder running, and nothing of the
/// sandbox (supervisor, state, cgroups) is left.
fn pod_joins_namespaces() {
    let root = Root::new("pod");
    let bundle = root.path().with_extension("podbundle");
    let _ = fs::remove_dir_all(&bundle);
    let busybox = common::busybox().unwrap_or_else(|why| panic!("{why}"));
    let made = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/make-busybox-rootfs"))
        .env("BUSYBOX", &busybox)
        .arg(bundle.join("rootfs"))
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    fs::set_permissions(&bundle, fs::Permissions::from_mode(0o755)).unwrap();
    // The "pause container": sh sets a hostname in the new uts namespace and
    // becomes pid 1 of the new pid namespace (sleep).
    let mut holder = Command::new("unshare")
        .args([
            "--ipc",
            "--uts",
            "--pid",
            "--fork",
            "sh",
            "-c",
            "hostname pod-holder && exec sleep 60",
        ])
        .spawn()
        .unwrap();
    struct Kill(i32);
    impl Drop for Kill {
        fn drop(&mut self) {
            // SAFETY: kill has no memory arguments.
            unsafe { libc::kill(self.0, libc::SIGKILL) };
        }
    }
    let _unshare = Kill(holder.id() as i32);
    let end = Instant::now() + Duration::from_secs(5);
    let pause = loop {
        let kids = children_of(holder.id() as i32);
        if let Some(k) = kids.first() {
            let exe = fs::read_link(format!("/proc/{k}/exe")).unwrap_or_default();
            if exe.to_string_lossy().contains("sleep") {
                break *k;
            }
        }
        assert!(Instant::now() < end, "the holder never started its sleep");
        std::thread::sleep(Duration::from_millis(10));
    };
    let _pause = Kill(pause);
    let ns = |pid: i32, kind: &str| fs::read_link(format!("/proc/{pid}/ns/{kind}")).unwrap();
    let want: Vec<String> = ["ipc", "uts", "pid"]
        .iter()
        .map(|k| ns(pause, k).to_string_lossy().into_owned())
        .collect();
    let mut spec: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/golden/inputs/runc-spec.json"
        ))
        .unwrap(),
    )
    .unwrap();
    spec["process"]["args"] = serde_json::json!(["/bin/sleep", "30"]);
    spec["process"]["terminal"] = serde_json::json!(false);
    spec["linux"]["resources"]["pids"] = serde_json::json!({"limit": 64});
    let namespaces: Vec<serde_json::Value> = spec["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| match n["type"].as_str() {
            Some(k @ ("ipc" | "uts" | "pid")) => {
                serde_json::json!({"type": k, "path": format!("/proc/{pause}/ns/{k}")})
            }
            _ => n.clone(),
        })
        .collect();
    spec["linux"]["namespaces"] = serde_json::json!(namespaces);
    fs::write(bundle.join("config.json"), spec.to_string()).unwrap();
    let o = sbx(
        &root,
        &[
            "--policy",
            "container",
            "create",
            "--bundle",
            bundle.to_str().unwrap(),
            "ct-pod",
        ],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let sup = root.supervisor("ct-pod").unwrap();
    assert_eq!(sbx(&root, &["start", "ct-pod"]).code, 0);
    let workload = {
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(w) = children_of(sup).first() {
                break *w;
            }
            assert!(Instant::now() < end, "no workload");
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    let inside = sbx(
        &root,
        &[
            "exec",
            "ct-pod",
            "/bin/sh",
            "-c",
            "for k in ipc uts pid; do readlink /proc/self/ns/$k; done; cat /proc/sys/kernel/hostname; \
             cat /proc/1/comm; echo $$",
        ],
    );
    let seen = |pid: i32| -> Vec<String> {
        ["ipc", "uts", "pid"]
            .iter()
            .map(|k| {
                fs::read_link(format!("/proc/{pid}/ns/{k}"))
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default()
            })
            .collect()
    };
    let (workload_ns, sup_ns, host_ns) = (seen(workload), seen(sup), seen(1));
    let cgroups = cgroups_of("ct-pod");
    let deleted = sbx(&root, &["delete", "--force", "ct-pod"]);
    let gone = wait_gone(sup);
    let holder_alive = alive(pause);
    let left = cgroups_of("ct-pod");
    let dir_left = root.path().join("ct-pod").exists();
    drop(_pause);
    let _ = holder.wait();
    let _ = fs::remove_dir_all(&bundle);

    assert_eq!(inside.code, 0, "{}", inside.stderr);
    let lines: Vec<&str> = inside.stdout.lines().collect();
    assert_eq!(lines[..3], want[..], "exec'd process: {}", inside.stdout);
    assert_eq!(workload_ns, want, "the workload's");
    assert_eq!(sup_ns, want, "the supervisor's");
    for (h, w) in host_ns.iter().zip(&want) {
        assert_ne!(h, w, "the holder's namespaces are not the host's");
    }
    assert_eq!(
        lines[3], "pod-holder",
        "the joined uts namespace keeps its owner's hostname"
    );
    assert_eq!(lines[4], "sleep", "the holder is pid 1 of the joined pid namespace");
    assert_ne!(lines[5], "1");
    assert!(!cgroups.is_empty(), "the sandbox had cgroups");
    assert_eq!(deleted.code, 0, "{}", deleted.stderr);
    assert!(gone, "supervisor left");
    assert!(holder_alive, "delete must not end the joined namespaces' owner");
    assert!(left.is_empty(), "cgroups left: {left:?}");
    assert!(!dir_left, "state directory left");
}

/// A bundle (busybox rootfs, runc's spec running `/bin/sleep 30`, a pids
/// limit so the sandbox has cgroups) whose spec has `hooks`, and a policy
/// file that allows hooks. Each hook is `/bin/sh -c SCRIPT NAME PHASE`
/// with argv[0] `hook-argv0` and an environment of its own.
struct HookBundle {
    dir: PathBuf,
    out: PathBuf,
    policy: PathBuf,
}

impl HookBundle {
    fn new(root: &Root) -> HookBundle {
        let dir = root.path().with_extension("hookbundle");
        let _ = fs::remove_dir_all(&dir);
        let busybox = common::busybox().unwrap_or_else(|why| panic!("{why}"));
        let made = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/make-busybox-rootfs"))
            .env("BUSYBOX", &busybox)
            .arg(dir.join("rootfs"))
            .output()
            .unwrap();
        assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        let out = dir.join("out");
        fs::create_dir_all(&out).unwrap();
        let policy = dir.join("hooks.toml");
        fs::write(&policy, "extends = \"default\"\n[hooks]\nallow = true\n").unwrap();
        HookBundle { dir, out, policy }
    }

    /// A hook that records its phase (appended to `order`), its stdin, its
    /// argv and environment as the kernel gave them, and its network
    /// namespace, then runs `tail` (shell).
    fn hook(&self, phase: &str, tail: &str, timeout: Option<u32>) -> serde_json::Value {
        let script = format!(
            "echo \"$1\" >> \"$HOOKDIR/order\"; cat > \"$HOOKDIR/$1.state\"; \
             cat /proc/$$/cmdline > \"$HOOKDIR/$1.cmdline\"; cat /proc/$$/environ > \"$HOOKDIR/$1.environ\"; \
             readlink /proc/$$/ns/net > \"$HOOKDIR/$1.netns\"; \
             pid=$(sed -n 's/.*\"pid\":\\([0-9]*\\).*/\\1/p' \"$HOOKDIR/$1.state\"); \
             [ -z \"$pid\" ] || cat /proc/$pid/mountinfo > \"$HOOKDIR/$1.mountinfo\"; {tail}"
        );
        let mut h = serde_json::json!({
            "path": "/bin/sh",
            "args": ["hook-argv0", "-c", script, "hook-name", phase],
            "env": [format!("HOOKDIR={}", self.out.display()), "PATH=/usr/bin:/bin"],
        });
        if let Some(t) = timeout {
            h["timeout"] = serde_json::json!(t);
        }
        h
    }

    /// Writes config.json with these hooks.
    fn spec(&self, hooks: serde_json::Value) {
        let mut spec: serde_json::Value = serde_json::from_str(
            &fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/golden/inputs/runc-spec.json"
            ))
            .unwrap(),
        )
        .unwrap();
        spec["process"]["args"] = serde_json::json!(["/bin/sleep", "30"]);
        spec["process"]["terminal"] = serde_json::json!(false);
        spec["linux"]["resources"]["pids"] = serde_json::json!({"limit": 64});
        spec["annotations"] = serde_json::json!({"org.example.hooks": "yes"});
        spec["hooks"] = hooks;
        fs::write(self.dir.join("config.json"), spec.to_string()).unwrap();
        let _ = fs::remove_dir_all(&self.out);
        fs::create_dir_all(&self.out).unwrap();
    }

    fn read(&self, name: &str) -> String {
        fs::read_to_string(self.out.join(name)).unwrap_or_default()
    }

    fn state(&self, phase: &str) -> serde_json::Value {
        serde_json::from_str(&self.read(&format!("{phase}.state"))).unwrap_or_else(|e| {
            panic!(
                "{phase}'s stdin is the state JSON: {e}: {:?}",
                self.read(&format!("{phase}.state"))
            )
        })
    }

    fn create(&self, root: &Root, id: &str) -> Out {
        sbx(
            root,
            &[
                "--policy",
                self.policy.to_str().unwrap(),
                "create",
                "--bundle",
                self.dir.to_str().unwrap(),
                id,
            ],
        )
    }
}

impl Drop for HookBundle {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The cgroup directories named `id` (under any hierarchy's sandboxctl/).
fn cgroups_of(id: &str) -> Vec<PathBuf> {
    fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
        .map(|h| h.path().join("sandboxctl").join(id))
        .filter(|p| p.exists())
        .collect()
}

/// OCI hooks through the real binary: prestart and createRuntime at create
/// (on the host, in order, the state on stdin, argv and env exactly),
/// poststart at start, poststop at delete; a failing or timed-out prestart
/// fails create and leaves nothing (directory, cgroups, processes); a
/// failing poststart or poststop is a warning.
fn hooks() {
    let root = Root::new("hooks");
    let b = HookBundle::new(&root);
    let host_net = fs::read_link("/proc/self/ns/net").unwrap();
    b.spec(serde_json::json!({
        "prestart": [b.hook("prestart", "", Some(10))],
        "createRuntime": [b.hook("createRuntime", "", None)],
        "poststart": [b.hook("poststart", "", Some(10))],
        "poststop": [b.hook("poststop", "", Some(10))],
    }));
    let o = b.create(&root, "ct-hk");
    assert_eq!(o.code, 0, "create: {}", o.stderr);
    let sup = root.supervisor("ct-hk").unwrap();
    assert!(
        !cgroups_of("ct-hk").is_empty(),
        "the sandbox has cgroups (so their absence below means something)"
    );
    assert_eq!(
        b.read("order"),
        "prestart\ncreateRuntime\n",
        "create runs prestart, then createRuntime"
    );
    for phase in ["prestart", "createRuntime"] {
        let st = b.state(phase);
        assert_eq!(st["status"], "creating", "{phase}: {st}");
        assert_eq!(st["id"], "ct-hk");
        assert_eq!(st["pid"], sup, "{phase}: the supervisor's pid");
        assert_eq!(st["bundle"], b.dir.to_str().unwrap());
        assert_eq!(st["annotations"]["org.example.hooks"], "yes");
        assert!(st["ociVersion"].as_str().is_some_and(|v| v.starts_with("1.")), "{st}");
        let argv: Vec<String> = b
            .read(&format!("{phase}.cmdline"))
            .split('\0')
            .map(str::to_string)
            .collect();
        assert_eq!(argv[0], "hook-argv0", "args[0] is argv[0]: {argv:?}");
        assert_eq!(argv[3..5], ["hook-name".to_string(), phase.to_string()]);
        assert_eq!(
            b.read(&format!("{phase}.environ")),
            format!("HOOKDIR={}\0PATH=/usr/bin:/bin\0", b.out.display()),
            "exactly the hook's env"
        );
        assert_eq!(
            b.read(&format!("{phase}.netns")).trim(),
            host_net.to_str().unwrap(),
            "on the host"
        );
        // The sandbox's mounts are made (proc on the root's /proc), its
        // root not yet changed (the mount points are still host paths).
        let proc_at = format!(" {}/rootfs/proc ", b.dir.display());
        assert!(
            b.read(&format!("{phase}.mountinfo"))
                .lines()
                .any(|l| l.contains(&proc_at) && l.contains(" - proc ")),
            "{phase}: the sandbox's mounts before its root change: {}",
            b.read(&format!("{phase}.mountinfo"))
        );
    }
    assert_eq!(status_of(&root, "ct-hk"), "created");

    let o = sbx(&root, &["start", "ct-hk"]);
    assert_eq!(o.code, 0, "start: {}", o.stderr);
    assert_eq!(b.read("order"), "prestart\ncreateRuntime\npoststart\n");
    let st = b.state("poststart");
    assert_eq!(
        (st["status"].as_str(), st["pid"].as_i64()),
        (Some("running"), Some(i64::from(sup))),
        "{st}"
    );

    let o = sbx(&root, &["delete", "--force", "ct-hk"]);
    assert_eq!(o.code, 0, "delete: {}", o.stderr);
    assert_eq!(b.read("order"), "prestart\ncreateRuntime\npoststart\npoststop\n");
    let st = b.state("poststop");
    assert_eq!(st["status"], "stopped", "{st}");
    assert!(st.get("pid").is_none(), "no pid once stopped: {st}");
    assert!(wait_gone(sup) && !root.path().join("ct-hk").exists() && cgroups_of("ct-hk").is_empty());

    // A failing prestart: create fails, createRuntime never runs, nothing
    // is left (the supervisor the hook saw is gone).
    b.spec(serde_json::json!({
        "prestart": [b.hook("prestart", "exit 3", None)],
        "createRuntime": [b.hook("createRuntime", "", None)],
    }));
    let o = b.create(&root, "ct-hf");
    assert_eq!(o.code, 1, "create with a failing prestart: {}", o.stderr);
    assert!(
        o.stderr.contains("runtime_hooks") && o.stderr.contains("hooks.prestart[0]") && o.stderr.contains("status 3"),
        "{}",
        o.stderr
    );
    assert_eq!(b.read("order"), "prestart\n");
    let pid = b.state("prestart")["pid"].as_i64().unwrap() as i32;
    assert!(wait_gone(pid), "the supervisor is gone");
    assert!(!root.path().join("ct-hf").exists(), "no state directory");
    assert!(cgroups_of("ct-hf").is_empty(), "no cgroup: {:?}", cgroups_of("ct-hf"));

    // A prestart past its timeout is killed and fails create, which leaves nothing.
    b.spec(serde_json::json!({
        "prestart": [b.hook("prestart", "echo $$ > \"$HOOKDIR/sleeper\"; exec sleep 30", Some(1))],
    }));
    let t0 = Instant::now();
    let o = b.create(&root, "ct-ht");
    let took = t0.elapsed();
    assert_eq!(o.code, 1, "create with a hook past its timeout: {}", o.stderr);
    assert!(o.stderr.contains("timeout of 1 s"), "{}", o.stderr);
    assert!(
        took < Duration::from_secs(5),
        "killed at its timeout, not waited for: {took:?}"
    );
    let sleeper: i32 = b.read("sleeper").trim().parse().unwrap();
    assert!(wait_gone(sleeper), "the hook was killed");
    let pid = b.state("prestart")["pid"].as_i64().unwrap() as i32;
    assert!(wait_gone(pid) && !root.path().join("ct-ht").exists() && cgroups_of("ct-ht").is_empty());

    // A failing poststart or poststop: a warning; start and delete succeed.
    b.spec(serde_json::json!({
        "poststart": [b.hook("poststart", "exit 4", None)],
        "poststop": [b.hook("poststop", "exit 5", None)],
    }));
    assert_eq!(b.create(&root, "ct-hw").code, 0);
    let o = sbx(&root, &["start", "ct-hw"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stderr.contains("warning") && o.stderr.contains("status 4"),
        "{}",
        o.stderr
    );
    assert_eq!(status_of(&root, "ct-hw"), "running");
    let o = sbx(&root, &["delete", "--force", "ct-hw"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stderr.contains("warning") && o.stderr.contains("status 5"),
        "{}",
        o.stderr
    );
    assert!(!root.path().join("ct-hw").exists() && cgroups_of("ct-hw").is_empty());
    assert_eq!(b.read("order"), "poststart\npoststop\n");

    // `run` in the foreground (create, start, wait, delete): every phase,
    // in order, and the workload's status.
    b.spec(serde_json::json!({
        "prestart": [b.hook("prestart", "", None)],
        "createRuntime": [b.hook("createRuntime", "", None)],
        "poststart": [b.hook("poststart", "", None)],
        "poststop": [b.hook("poststop", "", None)],
    }));
    let config = b.dir.join("config.json");
    let mut spec: serde_json::Value = serde_json::from_str(&fs::read_to_string(&config).unwrap()).unwrap();
    spec["process"]["args"] = serde_json::json!(["/bin/sh", "-c", "exit 6"]);
    fs::write(&config, spec.to_string()).unwrap();
    let o = sbx(
        &root,
        &[
            "--policy",
            b.policy.to_str().unwrap(),
            "run",
            "--bundle",
            b.dir.to_str().unwrap(),
            "ct-hrun",
        ],
    );
    assert_eq!(o.code, 6, "run: {}", o.stderr);
    assert_eq!(b.read("order"), "prestart\ncreateRuntime\npoststart\npoststop\n");
    assert!(!root.path().join("ct-hrun").exists() && cgroups_of("ct-hrun").is_empty());

    // Under the default policy the same spec is refused at compile time,
    // naming the spec's first hook and the policy line; nothing runs.
    // What an engine shows its user: the one `msg` of runc's JSON log line.
    let log = b.dir.join("runtime.log");
    let o = sbx(
        &root,
        &[
            "--log",
            log.to_str().unwrap(),
            "--log-format",
            "json",
            "create",
            "--bundle",
            b.dir.to_str().unwrap(),
            "ct-hr",
        ],
    );
    assert_eq!(o.code, 2, "{}", o.stderr);
    let logged = fs::read_to_string(&log).unwrap_or_default();
    let msg = logged
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["level"] == "error")
        .and_then(|v| v["msg"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("an error in the runtime log: {logged:?}"));
    assert!(
        !msg.contains('\n') && msg.contains("hooks.prestart[0]") && msg.contains("policy:builtin:default.toml:"),
        "one line naming the spec's hook and the policy line: {msg:?}"
    );
    assert!(!root.path().join("ct-hr").exists());
    assert_eq!(
        b.read("order"),
        "prestart\ncreateRuntime\npoststart\npoststop\n",
        "no hook ran"
    );
}

/// The container's hooks through the real binary. `createContainer` runs at
/// create, after `createRuntime`, in the sandbox's namespaces (its mount,
/// PID and network namespaces are the supervisor's, not the host's), its
/// mounts made and its root not yet changed, from the host's /bin/sh (opened
/// on the host), with the workload's user and capabilities, the state
/// (`creating`) on stdin and none of the supervisor's sockets; it never runs
/// `startContainer`. `startContainer` runs at start, in the sandbox (its
/// root, the sandbox's /bin/sh), before the workload (which sees what the
/// hook left). A failing `createContainer` fails create and leaves nothing;
/// a failing `startContainer` fails start, the workload never runs, the
/// sandbox is stopped, and poststop still runs at delete. `start` waits for
/// a startContainer hook that runs past its default 15 s wait.
fn container_hooks() {
    let root = Root::new("chooks");
    let b = HookBundle::new(&root);
    fs::set_permissions(&b.out, fs::Permissions::from_mode(0o777)).unwrap();
    let host_mnt = fs::read_link("/proc/self/ns/mnt").unwrap();
    // argv[0] `sh`: the sandbox's /bin/sh is busybox, which runs the
    // applet its argv[0] names.
    let sh = |script: &str, timeout: u32| {
        serde_json::json!({
            "path": "/bin/sh",
            "args": ["sh", "-c", script],
            "env": [format!("HOOKDIR={}", b.out.display()), "PATH=/usr/bin:/bin"],
            "timeout": timeout,
        })
    };
    // Written on the host's files: only createContainer can reach them.
    let cc = "echo createContainer >> \"$HOOKDIR/order\"; cat > \"$HOOKDIR/cc.state\"; \
              for n in mnt pid net; do readlink /proc/self/ns/$n >> \"$HOOKDIR/cc.ns\"; done; \
              id -u > \"$HOOKDIR/cc.uid\"; grep CapEff /proc/self/status > \"$HOOKDIR/cc.caps\"; \
              cat /proc/self/mountinfo > \"$HOOKDIR/cc.mountinfo\"; ls -l /proc/self/fd/ > \"$HOOKDIR/cc.fds\"";
    // Written in the sandbox's /dev/shm, read from the host through the
    // supervisor's root.
    let sc = "echo startContainer >> /dev/shm/order; cat > /dev/shm/sc.state; \
              for n in mnt pid net; do readlink /proc/self/ns/$n >> /dev/shm/sc.ns; done; \
              readlink /proc/self/root > /dev/shm/sc.root; id -u > /dev/shm/sc.uid";
    let sc_slow = format!("{sc}; sleep 17");
    let set = |cc: &str, sc: &str| {
        b.spec(serde_json::json!({
            "createRuntime": [b.hook("createRuntime", "", Some(10))],
            "createContainer": [sh(cc, 10)],
            // Past `start`'s default 15 s wait for the supervisor's answer.
            "startContainer": [sh(sc, 30)],
            "poststop": [b.hook("poststop", "", Some(10))],
        }));
        // The container's hooks run as the workload's user (nobody here).
        fs::set_permissions(&b.out, fs::Permissions::from_mode(0o777)).unwrap();
        fs::write(b.out.join("order"), "").unwrap();
        fs::set_permissions(b.out.join("order"), fs::Permissions::from_mode(0o666)).unwrap();
        let config = b.dir.join("config.json");
        let mut spec: serde_json::Value = serde_json::from_str(&fs::read_to_string(&config).unwrap()).unwrap();
        spec["process"]["args"] =
            serde_json::json!(["/bin/sh", "-c", "cat /dev/shm/order > /dev/shm/seen; exec sleep 30"]);
        fs::write(&config, spec.to_string()).unwrap();
    };
    set(cc, &sc_slow);
    let o = b.create(&root, "ct-ch");
    assert_eq!(o.code, 0, "create: {}", o.stderr);
    let sup = root.supervisor("ct-ch").unwrap();
    assert_eq!(
        b.read("order"),
        "createRuntime\ncreateContainer\n",
        "create runs createRuntime, then createContainer, not startContainer"
    );
    let sup_ns: String = ["mnt", "pid", "net"]
        .iter()
        .map(|n| format!("{}\n", fs::read_link(format!("/proc/{sup}/ns/{n}")).unwrap().display()))
        .collect();
    assert_eq!(b.read("cc.ns"), sup_ns, "createContainer: the sandbox's namespaces");
    assert_ne!(sup_ns.lines().next().unwrap(), host_mnt.to_str().unwrap());
    let st = b.state("cc");
    assert_eq!(
        (st["status"].as_str(), st["id"].as_str(), st["pid"].as_i64()),
        (Some("creating"), Some("ct-ch"), Some(1)),
        "the supervisor as the hook's PID namespace sees it: {st}"
    );
    assert_eq!(st["bundle"], b.dir.to_str().unwrap());
    assert_eq!(st["annotations"]["org.example.hooks"], "yes");
    let proc_at = format!(" {}/rootfs/proc ", b.dir.display());
    assert!(
        b.read("cc.mountinfo")
            .lines()
            .any(|l| l.contains(&proc_at) && l.contains(" - proc ")),
        "the sandbox's mounts made, its root not yet changed: {}",
        b.read("cc.mountinfo")
    );
    assert_eq!(
        b.read("cc.caps").trim(),
        "CapEff:\t0000000000000000",
        "the workload's capabilities (none)"
    );
    assert!(
        !b.read("cc.fds").contains("socket:"),
        "no socket of the supervisor: {}",
        b.read("cc.fds")
    );
    let shm = PathBuf::from(format!("/proc/{sup}/root/dev/shm"));
    assert!(!shm.join("order").exists(), "startContainer does not run at create");

    let o = sbx(&root, &["start", "ct-ch"]);
    assert_eq!(o.code, 0, "start waits for a slow startContainer hook: {}", o.stderr);
    let end = Instant::now() + Duration::from_secs(5);
    while !shm.join("seen").exists() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    let read = |f: &str| fs::read_to_string(shm.join(f)).unwrap_or_default();
    assert_eq!(
        read("seen"),
        "startContainer\n",
        "startContainer ran before the workload"
    );
    assert_eq!(read("sc.ns"), sup_ns, "startContainer: the sandbox's namespaces");
    assert_eq!(read("sc.root").trim(), "/", "in the sandbox's root");
    assert_eq!(read("sc.uid"), b.read("cc.uid"), "both as the workload's user");
    let st: serde_json::Value = serde_json::from_str(&read("sc.state")).unwrap();
    assert_eq!(
        (st["status"].as_str(), st["id"].as_str()),
        (Some("created"), Some("ct-ch")),
        "{st}"
    );
    assert_eq!(status_of(&root, "ct-ch"), "running");
    let o = sbx(&root, &["delete", "--force", "ct-ch"]);
    assert_eq!(o.code, 0, "delete: {}", o.stderr);
    assert_eq!(b.read("order"), "createRuntime\ncreateContainer\npoststop\n");
    assert!(wait_gone(sup) && !root.path().join("ct-ch").exists() && cgroups_of("ct-ch").is_empty());

    // A failing createContainer fails create; nothing is left.
    set(&format!("{cc}; exit 3"), sc);
    let o = b.create(&root, "ct-cf");
    assert_eq!(o.code, 1, "create with a failing createContainer: {}", o.stderr);
    assert!(
        o.stderr.contains("container_hooks")
            && o.stderr.contains("hooks.createContainer[0]")
            && o.stderr.contains("status 3"),
        "{}",
        o.stderr
    );
    assert_eq!(b.read("order"), "createRuntime\ncreateContainer\n");
    assert!(!root.path().join("ct-cf").exists(), "no state directory");
    assert!(cgroups_of("ct-cf").is_empty(), "no cgroup: {:?}", cgroups_of("ct-cf"));

    // A failing startContainer fails start: the workload never runs, the
    // sandbox is stopped, and delete still runs poststop.
    set(cc, &format!("{sc}; exit 4"));
    assert_eq!(b.create(&root, "ct-sf").code, 0);
    let sup = root.supervisor("ct-sf").unwrap();
    let o = sbx(&root, &["start", "ct-sf"]);
    assert_ne!(o.code, 0, "start with a failing startContainer: {}", o.stderr);
    assert!(
        o.stderr.contains("hooks.startContainer[0]") && o.stderr.contains("status 4"),
        "{}",
        o.stderr
    );
    assert!(wait_gone(sup), "the sandbox ended");
    assert_eq!(status_of(&root, "ct-sf"), "stopped");
    let o = sbx(&root, &["delete", "ct-sf"]);
    assert_eq!(o.code, 0, "delete: {}", o.stderr);
    assert_eq!(b.read("order"), "createRuntime\ncreateContainer\npoststop\n");
    assert!(!root.path().join("ct-sf").exists() && cgroups_of("ct-sf").is_empty());
}

fn main() {
    // SAFETY: geteuid has no arguments and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        println!("create: skipped (needs root)");
        return;
    }
    let tests: [(&str, fn()); 13] = [
        ("pod_joins_namespaces", pod_joins_namespaces),
        ("hooks", hooks),
        ("container_hooks", container_hooks),
        ("terminal_needs_console_socket", terminal_needs_console_socket),
        ("exec_under_spec_maps", exec_under_spec_maps),
        ("lifecycle", lifecycle),
        ("failed_create_leaves_nothing", failed_create_leaves_nothing),
        ("id_in_use_and_bad_ids", id_in_use_and_bad_ids),
        ("supervisor_killed", supervisor_killed),
        ("launcher_killed_mid_create", launcher_killed_mid_create),
        ("run_foreground", run_foreground),
        ("many_creates", many_creates),
        ("ptrace_create_exec", ptrace_create_exec),
    ];
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let mut failed = 0;
    for (name, f) in tests {
        if !filter.is_empty() && !filter.iter().any(|x| name.contains(x.as_str())) {
            continue;
        }
        match std::panic::catch_unwind(f) {
            Ok(()) => println!("test {name} ... ok"),
            Err(_) => {
                println!("test {name} ... FAILED");
                failed += 1;
            }
        }
    }
    println!("create: {} failed", failed);
    if failed > 0 {
        std::process::exit(1);
    }
}
