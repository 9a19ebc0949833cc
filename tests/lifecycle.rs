//! The lifecycle commands (`kill`, `wait`, `ps`, `events`, `stacks`,
//! `pause`, `resume`, `update`, `checkpoint`, `delete`) through the real
//! binary, against a fake sandbox: a state directory made with the library
//! (record, stored plan, stored policy) whose supervisor is a real process
//! (`sleep`), and whose control socket is served by the real server loop with
//! a fake handler in a thread of this test. The faults of issue 12 are here
//! too: a supervisor SIGKILLed, a stale directory from another boot, a
//! `create` killed half-way, unknown ids, two commands at once.
//!
//! The cases that make real cgroups (pause, resume, update, delete of a
//! sandbox with a cgroup) need root and run under the machine lock
//! (`flock /tmp/sandboxctl-priv.lock cargo test --features fault-injection
//! --test lifecycle`); they are skipped when not root.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sandboxctl::exec::control::proto::{
    ErrorKind, ExitStatus, ProcessInfo, ProcessStack, Reply, Request, Stats, Status, SupervisorState,
};
use sandboxctl::exec::control::server::{Call, ControlHandler, Outcome, PeerRule, Server, ServerConfig, WaitFor};
use sandboxctl::exec::control::state::{
    encode_exit, save_policy_sources, LockMode, PolicySource, ProcRef, Record, SandboxId, StateRoot, EXIT_FILE,
    PLAN_FILE, RECORD_FORMAT,
};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sandboxctl"))
}

/// A temporary state root, removed on drop.
struct TempRoot(PathBuf);
impl TempRoot {
    fn new(tag: &str) -> TempRoot {
        use std::sync::atomic::AtomicU32;
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "sandboxctl-lifecycle-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        TempRoot(p)
    }
}
impl Drop for TempRoot {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// What the fake supervisor was asked.
type Log = Arc<Mutex<Vec<Request>>>;

/// The fake supervisor's handler: the "workload" is the `sleep` process;
/// signalling the container signals it and records its exit as the real
/// supervisor does (the `exit` file); process 7 stands for an `exec`'d one.
struct Fake {
    dir: PathBuf,
    sleeper: i32,
    status: Status,
    exit: Option<ExitStatus>,
    exec7: Option<ExitStatus>,
    oom: u64,
    finished: bool,
    log: Log,
}

impl ControlHandler for Fake {
    fn hello(&mut self) -> (String, Status) {
        ("fake".into(), self.status)
    }

    fn handle(&mut self, call: Call<'_>) -> Outcome {
        self.log.lock().unwrap().push(call.request.clone());
        let done = Outcome::Reply(Reply::Done);
        match call.request {
            Request::SignalContainer { signal, .. } => {
                // SAFETY: kill(2) of the test's own child.
                unsafe { libc::kill(self.sleeper, signal) };
                let exit = ExitStatus::Signaled {
                    signal,
                    core_dumped: false,
                };
                fs::write(self.dir.join(EXIT_FILE), encode_exit(&exit)).unwrap();
                self.exit = Some(exit);
                self.status = Status::Stopped;
                done
            }
            Request::SignalProcess { pid: 7, signal, .. } => {
                self.exec7 = Some(ExitStatus::Signaled {
                    signal,
                    core_dumped: false,
                });
                done
            }
            Request::SignalProcess { pid, .. } | Request::WaitPid { pid } if pid != 7 => Outcome::Reply(Reply::error(
                ErrorKind::NoSuchProcess,
                format!("no process {pid} in the sandbox"),
            )),
            Request::WaitPid { pid } => Outcome::Park(WaitFor::Pid(pid)),
            Request::Wait {} => Outcome::Park(WaitFor::Workload),
            Request::Ps {} => Outcome::Reply(Reply::Processes {
                processes: vec![
                    ProcessInfo {
                        pid: 1,
                        ppid: 0,
                        uid: 0,
                        state: "S".into(),
                        args: vec!["sandboxctl".into(), "supervisor".into()],
                    },
                    ProcessInfo {
                        pid: 2,
                        ppid: 1,
                        uid: 1000,
                        state: "S".into(),
                        args: vec!["sleep".into(), "60".into()],
                    },
                ],
            }),
            Request::Stats {} => {
                self.oom += 1;
                let mut s = Stats::default();
                s.memory.oom_kills = Some(self.oom);
                s.pids.current = Some(2);
                Outcome::Reply(Reply::Stats { stats: s })
            }
            Request::Stacks {} => Outcome::Reply(Reply::Stacks {
                supervisor: SupervisorState {
                    status: self.status,
                    clients: call.clients,
                    parked: call.parked,
                    children: 1,
                },
                processes: vec![ProcessStack {
                    pid: 2,
                    command: "sleep".into(),
                    state: "S".into(),
                    wchan: Some("hrtimer_nanosleep".into()),
                    kernel_stack: Some("[<0>] hrtimer_nanosleep+0x9/0x10\n".into()),
                }],
            }),
            Request::Checkpoint { .. } | Request::Restore { .. } => {
                Outcome::Reply(Reply::error(ErrorKind::Unsupported, "not wired"))
            }
            Request::Destroy {} => {
                // SAFETY: kill(2) of the test's own child.
                unsafe { libc::kill(self.sleeper, libc::SIGKILL) };
                self.finished = true;
                done
            }
            _ => Outcome::Reply(Reply::error(ErrorKind::WrongState, "not in this fake")),
        }
    }

    fn poll_wait(&mut self, wait: WaitFor) -> Option<Reply> {
        match wait {
            WaitFor::Workload => self.exit.map(|exit| Reply::Exited { pid: 2, exit }),
            WaitFor::Pid(pid) => self.exec7.map(|exit| Reply::Exited { pid, exit }),
        }
    }

    fn finished(&self) -> bool {
        self.finished
    }
}

/// A fake sandbox: state directory, supervisor process, served socket.
struct Sandbox {
    root: TempRoot,
    id: String,
    sleeper: Child,
    stop: Arc<AtomicBool>,
    server: Option<JoinHandle<()>>,
    log: Log,
}

/// The policy a fake sandbox is compiled from: the default with a pids
/// ceiling (so its plan has a cgroup: pids, and a v1 freezer on this host).
const POLICY: &str = "extends = \"default\"\n[limits]\npids = 100\nmemory = \"1GiB\"\non_excess = \"deny\"\n";

/// The plan JSON and policy chain of the fake sandboxes, compiled as
/// `sandboxctl plan` would on this host.
fn compiled() -> (String, Vec<PolicySource>) {
    use sandboxctl::policy::{self, PolicyRef};
    let policy = policy::load(
        &[PolicyRef::Text {
            name: "test-policy.toml".into(),
            text: POLICY.into(),
        }],
        Path::new("."),
    )
    .unwrap();
    let spec = sandboxctl::spec::builtin(&["/bin/sleep".into(), "60".into()]);
    let host = sandboxctl::exec::detect::detect().unwrap();
    let c = sandboxctl::plan::compile(&policy, &spec, &host, &Default::default()).unwrap();
    (
        sandboxctl::plan::render::render(&c.plan, sandboxctl::plan::render::Format::Json),
        policy.sources.iter().map(PolicySource::from).collect(),
    )
}

impl Sandbox {
    /// A running fake sandbox `id` under a fresh root.
    fn new(tag: &str, id: &str) -> Sandbox {
        Self::with(TempRoot::new(tag), id, true)
    }

    fn with(root: TempRoot, id: &str, serve: bool) -> Sandbox {
        let sleeper = Command::new("sleep").arg("60").spawn().unwrap();
        let pid = sleeper.id() as i32;
        let state = StateRoot::new(&root.0);
        let dir = state.create(&SandboxId::parse(id).unwrap()).unwrap();
        let (plan, sources) = compiled();
        dir.write_file(PLAN_FILE, plan.as_bytes()).unwrap();
        save_policy_sources(&dir, &sources).unwrap();
        dir.write_record(&Record {
            format: RECORD_FORMAT,
            id: id.into(),
            status: Status::Running,
            bundle: "/".into(),
            // SAFETY: getuid has no preconditions.
            owner_uid: unsafe { libc::getuid() },
            created_unix: 1,
            supervisor: ProcRef::of(pid),
            annotations: BTreeMap::new(),
            exit: None,
            plan_hash: None,
        })
        .unwrap();
        let log: Log = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let server = serve.then(|| {
            let listener: OwnedFd = dir.bind_control_socket().unwrap();
            let fake = Fake {
                dir: dir.path().to_path_buf(),
                sleeper: pid,
                status: Status::Running,
                exit: None,
                exec7: None,
                oom: 0,
                finished: false,
                log: log.clone(),
            };
            let stop = stop.clone();
            std::thread::spawn(move || {
                // SAFETY: geteuid has no preconditions.
                let cfg = ServerConfig::new(PeerRule::host(unsafe { libc::geteuid() }));
                let mut s = Server::new(listener, None, fake, cfg).unwrap();
                while !stop.load(Ordering::Relaxed) && !s.handler().finished() {
                    s.turn(Some(Duration::from_millis(20))).unwrap();
                }
            })
        });
        drop(dir);
        Sandbox {
            root,
            id: id.into(),
            sleeper,
            stop,
            server,
            log,
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        bin().arg("--root").arg(&self.root.0).args(args).output().unwrap()
    }

    fn dir(&self) -> PathBuf {
        self.root.0.join(&self.id)
    }

    fn calls(&self) -> Vec<Request> {
        self.log.lock().unwrap().clone()
    }

    fn state(&self) -> String {
        let out = self.run(&["state", &self.id]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v["status"].as_str().unwrap_or("?").to_string()
    }

    /// Kills the supervisor from outside and reaps it.
    fn kill_supervisor(&mut self) {
        self.sleeper.kill().unwrap();
        self.sleeper.wait().unwrap();
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.sleeper.kill();
        let _ = self.sleeper.wait();
        if let Some(t) = self.server.take() {
            let _ = t.join();
        }
        // The fake's cgroups, when a privileged case made them.
        if let Ok(text) = fs::read_to_string(self.dir().join(PLAN_FILE)) {
            if let Ok(plan) = sandboxctl::plan::render::load(&text) {
                for d in sandboxctl::exec::control::host::resolve_dirs(&plan, &self.id)
                    .iter()
                    .rev()
                {
                    if d.role == sandboxctl::plan::CgroupDirRole::Sandbox {
                        let _ = fs::write(d.path.join("freezer.state"), "THAWED");
                        let _ = fs::remove_dir(&d.path);
                    }
                }
            }
        }
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The message on stderr as one string: miette's plain rendering wraps a
/// long line at 100 columns (continuation lines start with `│`).
fn message(b: &[u8]) -> String {
    let t = text(b);
    let mut lines = Vec::new();
    for l in t.lines() {
        match l.trim_start().strip_prefix("│ ") {
            Some(rest) if !lines.is_empty() => {
                let last: &mut String = lines.last_mut().unwrap();
                last.push(' ');
                last.push_str(rest.trim());
            }
            _ => lines.push(l.trim_start().trim_start_matches("× ").to_string()),
        }
    }
    lines.join("\n")
}

/// One message on stderr, exit `code`.
fn fails(out: &Output, code: i32, says: &str) {
    let err = message(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    assert!(err.contains(says), "{says:?} not in {err:?}");
}

#[test]
fn kill_wait_ps_stacks_through_the_binary() {
    let sb = Sandbox::new("kill", "web-1");
    // ps: the supervisor's answer, as a table and as JSON.
    let out = sb.run(&["ps", "web-1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(table.starts_with("PID"), "{table}");
    assert!(table.contains("sleep 60"), "{table}");
    let out = sb.run(&["ps", "--format", "detail", "web-1"]);
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[1]["pid"], 2);
    assert_eq!(rows[1]["uid"], 1000);
    // stacks, readable and JSON.
    let out = sb.run(&["stacks", "web-1"]);
    let s = text(&out.stdout);
    assert!(s.contains("supervisor: running, 1 client(s)"), "{s}");
    assert!(s.contains("pid 2 (sleep) state S wchan hrtimer_nanosleep"), "{s}");
    assert!(s.contains("    [<0>] hrtimer_nanosleep"), "{s}");
    let out = sb.run(&["stacks", "--format", "json", "web-1"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["supervisor"]["children"], 1);

    // kill a process by pid, and wait for it: 128+N.
    let waiter = bin()
        .arg("--root")
        .arg(&sb.root.0)
        .args(["wait", "web-1", "--pid", "7"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert!(sb.run(&["kill", "--pid", "7", "web-1", "INT"]).status.success());
    let out = waiter.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    assert_eq!(
        text(&out.stdout),
        "{\"how\":\"signaled\",\"signal\":2,\"core_dumped\":false}\n"
    );
    fails(&sb.run(&["kill", "--pid", "9", "web-1"]), 1, "no process 9");
    fails(&sb.run(&["kill", "web-1", "NOPE"]), 2, "NOPE");

    // kill the workload (default TERM); wait answers with its status.
    let out = sb.run(&["kill", "web-1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = sb.run(&["wait", "web-1"]);
    assert_eq!(out.status.code(), Some(143), "{}", text(&out.stderr));
    let calls = sb.calls();
    assert!(
        calls.contains(&Request::SignalContainer { signal: 15, all: false }),
        "{calls:?}"
    );
    assert!(calls.contains(&Request::SignalProcess {
        pid: 7,
        signal: 2,
        foreground: false
    }));
}

#[test]
fn wait_on_a_stopped_sandbox_answers_the_recorded_status() {
    let mut sb = Sandbox::new("waitstopped", "w");
    fs::write(sb.dir().join(EXIT_FILE), encode_exit(&ExitStatus::Exited { code: 3 })).unwrap();
    sb.kill_supervisor();
    assert_eq!(sb.state(), "stopped");
    let out = sb.run(&["wait", "w"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "{\"how\":\"exited\",\"code\":3}\n");
    fails(&sb.run(&["wait", "w", "--pid", "7"]), 1, "is stopped");
    // No status recorded (the supervisor was killed): one line, exit 1.
    fs::remove_file(sb.dir().join(EXIT_FILE)).unwrap();
    fails(&sb.run(&["wait", "w"]), 1, "without a recorded exit status");
}

#[test]
fn events_polls_stats_reports_oom_and_ends_when_the_sandbox_stops() {
    let mut sb = Sandbox::new("events", "ev");
    let out = sb.run(&["events", "--stats", "ev"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<String> = text(&out.stdout).lines().map(String::from).collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!((v["type"].as_str(), v["id"].as_str()), (Some("stats"), Some("ev")));
    fails(&sb.run(&["events", "--interval", "5x", "ev"]), 2, "unknown unit");

    let child = bin()
        .arg("--root")
        .arg(&sb.root.0)
        .args(["events", "--interval", "30ms", "ev"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    sb.kill_supervisor();
    let out = child.wait_with_output().unwrap();
    assert!(start.elapsed() < Duration::from_secs(2), "ends promptly");
    assert!(out.status.success());
    let kinds: Vec<String> = text(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    // The fake's OOM count rises on every sample: an oom before each stats
    // line but the first.
    assert!(kinds.len() >= 4, "{kinds:?}");
    assert_eq!(kinds[0], "stats");
    assert_eq!(&kinds[1..3], ["oom", "stats"], "{kinds:?}");
}

#[test]
fn delete_refuses_a_running_sandbox_and_force_destroys_it() {
    let sb = Sandbox::new("delete", "d1");
    fails(&sb.run(&["delete", "d1"]), 1, "is running");
    assert!(sb.dir().join("state.json").exists(), "nothing changed");
    assert_eq!(sb.state(), "running");
    let out = sb.run(&["delete", "--force", "d1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(sb.calls().contains(&Request::Destroy {}));
    assert!(!sb.dir().exists(), "state removed");
    fails(&sb.run(&["delete", "d1"]), 1, "no sandbox \"d1\"");
    assert!(
        sb.run(&["delete", "--force", "d1"]).status.success(),
        "gone is fine with --force"
    );
}

#[test]
fn delete_force_kills_a_supervisor_that_does_not_answer() {
    // No server: the supervisor never answers (as a frozen one).
    let sb = Sandbox::with(TempRoot::new("deaf"), "deaf", false);
    let start = Instant::now();
    let out = sb.run(&["delete", "--force", "deaf"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(!sb.dir().exists());
    // The supervisor was SIGKILLed from the host (it is our child: a zombie).
    let mut sb = sb;
    let st = sb.sleeper.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(st.signal(), Some(libc::SIGKILL));
}

#[test]
fn a_killed_supervisor_reads_stopped_and_delete_removes_everything() {
    let mut sb = Sandbox::new("sigkill", "k");
    sb.kill_supervisor();
    assert_eq!(sb.state(), "stopped");
    fails(&sb.run(&["ps", "k"]), 1, "is stopped");
    fails(&sb.run(&["kill", "k"]), 1, "cannot be sent SIGTERM: it is stopped");
    let out = sb.run(&["delete", "k"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!sb.dir().exists());
    assert_eq!(
        fs::read_dir(&sb.root.0).unwrap().count(),
        0,
        "nothing left under the root"
    );
}

#[test]
fn a_stale_directory_from_another_boot_is_stopped_and_deleted() {
    let sb = Sandbox::with(TempRoot::new("stale"), "old", false);
    let path = sb.dir().join("state.json");
    let mut rec: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    rec["supervisor"]["boot_id"] = "00000000-0000-0000-0000-000000000000".into();
    fs::write(&path, serde_json::to_vec(&rec).unwrap()).unwrap();
    assert_eq!(sb.state(), "stopped");
    assert!(sb.run(&["delete", "old"]).status.success());
    assert!(!sb.dir().exists());
}

#[test]
fn a_create_killed_half_way_is_removed_by_delete() {
    let root = TempRoot::new("half");
    fs::create_dir(root.0.join("half")).unwrap();
    fs::write(root.0.join("half").join("control.sock"), "").unwrap();
    let run = |args: &[&str]| bin().arg("--root").arg(&root.0).args(args).output().unwrap();
    fails(&run(&["ps", "half"]), 1, "create was interrupted");
    let out = run(&["delete", "half"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!root.0.join("half").exists());
}

#[test]
fn every_command_on_an_unknown_id_is_one_line_and_exit_1() {
    let root = TempRoot::new("unknown");
    for args in [
        &["kill", "nope"][..],
        &["kill", "--all", "nope", "KILL"],
        &["wait", "nope"],
        &["ps", "nope"],
        &["events", "nope"],
        &["events", "--stats", "nope"],
        &["pause", "nope"],
        &["resume", "nope"],
        &["update", "--pids-limit", "5", "nope"],
        &["stacks", "nope"],
        &["checkpoint", "nope"],
        &["restore", "nope"],
        &["delete", "nope"],
    ] {
        let out = bin().arg("--root").arg(&root.0).args(args).output().unwrap();
        fails(&out, 1, "no sandbox \"nope\"");
        assert_eq!(
            message(&out.stderr).lines().count(),
            1,
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    for bad in ["a/b", "..", ".x", "a\nb"] {
        let out = bin().arg("--root").arg(&root.0).args(["delete", bad]).output().unwrap();
        fails(&out, 2, "invalid sandbox id");
    }
}

#[test]
fn two_commands_on_one_id_are_serialised() {
    let sb = Sandbox::new("serial", "s");
    let held = StateRoot::new(&sb.root.0)
        .open(
            &SandboxId::parse("s").unwrap(),
            LockMode::Exclusive,
            Duration::from_secs(1),
        )
        .unwrap();
    let mut kill = bin()
        .arg("--root")
        .arg(&sb.root.0)
        .args(["kill", "s", "USR1"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(kill.try_wait().unwrap().is_none(), "kill waits for the lock");
    assert!(sb.calls().is_empty(), "and has not called the supervisor");
    drop(held);
    assert!(kill.wait().unwrap().success());
    assert_eq!(sb.calls(), vec![Request::SignalContainer { signal: 10, all: false }]);
}

#[test]
fn checkpoint_fails_in_one_line_when_criu_cannot_run_and_changes_nothing() {
    let sb = Sandbox::new("criu", "c");
    let criu_works = Command::new("criu")
        .arg("check")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    for cmd in ["checkpoint", "restore"] {
        let out = sb.run(&[cmd, "c"]);
        assert_eq!(out.status.code(), Some(1));
        let err = message(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        if cmd == "checkpoint" && !criu_works {
            assert!(err.contains("CRIU cannot run on this host"), "{err}");
            assert!(err.contains("`criu check`"), "{err}");
        }
    }
    assert_eq!(sb.state(), "running", "untouched");
    if !criu_works {
        assert!(sb.calls().is_empty(), "the supervisor was not asked");
    }
}

// ---- privileged: real cgroups (root, under the machine lock) ----

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// True (after one line saying so) when the test cannot run: not root.
fn skipped_unless_root() -> bool {
    if is_root() {
        return false;
    }
    eprintln!("skipped: needs root");
    true
}

/// Puts the fake's supervisor into the sandbox's own cgroup directories (as
/// the real supervisor joins them), made as apply makes them.
fn into_cgroups(sb: &Sandbox) -> Vec<PathBuf> {
    let plan = sandboxctl::plan::render::load(&fs::read_to_string(sb.dir().join(PLAN_FILE)).unwrap()).unwrap();
    let mut own = Vec::new();
    for d in sandboxctl::exec::control::host::resolve_dirs(&plan, &sb.id) {
        let _ = fs::create_dir(&d.path);
        if d.role == sandboxctl::plan::CgroupDirRole::Sandbox {
            fs::write(d.path.join("cgroup.procs"), sb.sleeper.id().to_string()).unwrap();
            own.push(d.path);
        }
    }
    own
}

fn proc_state(pid: u32) -> String {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .next()
                .unwrap_or("?")
                .to_string()
        })
        .unwrap_or_default()
}

#[test]
fn privileged_pause_resume_update_and_delete_with_real_cgroups() {
    if skipped_unless_root() {
        return;
    }
    let id = format!("lc-{}", std::process::id());
    let sb = Sandbox::new("cg", &id);
    let own = into_cgroups(&sb);
    if !Path::new("/sys/fs/cgroup/freezer/freezer.state").exists() && !Path::new("/sys/fs/cgroup/freezer").is_dir() {
        eprintln!("skipped: no v1 freezer hierarchy on this host");
        return;
    }
    let freezer = own
        .iter()
        .find(|p| p.starts_with("/sys/fs/cgroup/freezer"))
        .cloned()
        .expect("the plan makes a freezer directory for pause on a host with a v1 freezer");
    // pause: frozen from the host, recorded.
    let out = sb.run(&["pause", &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        fs::read_to_string(freezer.join("freezer.state")).unwrap().trim(),
        "FROZEN"
    );
    assert_eq!(sb.state(), "paused");
    fails(&sb.run(&["pause", &id]), 1, "is paused, not running");
    // ps of a paused sandbox: read from the host (the supervisor is frozen).
    let out = sb.run(&["ps", "--format", "detail", &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows[0]["host_pid"], sb.sleeper.id());
    assert!(sb.calls().is_empty(), "no control call while frozen");
    // resume.
    let out = sb.run(&["resume", &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        fs::read_to_string(freezer.join("freezer.state")).unwrap().trim(),
        "THAWED"
    );
    assert_eq!(sb.state(), "running");
    assert_ne!(proc_state(sb.sleeper.id()), "D");

    // update: within the ceiling it is written and stored; above it refused.
    let pids_dir = own.iter().find(|p| p.starts_with("/sys/fs/cgroup/pids")).unwrap();
    let out = sb.run(&["update", "--pids-limit", "50", &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(fs::read_to_string(pids_dir.join("pids.max")).unwrap().trim(), "50");
    let plan = fs::read_to_string(sb.dir().join(PLAN_FILE)).unwrap();
    assert!(plan.contains("\"value\": 50"), "stored");
    assert!(
        plan.contains("cli:update linux.resources.pids.limit"),
        "with its origin"
    );
    let out = sb.run(&["update", "--pids-limit", "1000", &id]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("test-policy.toml"), "located in the policy: {err}");
    assert!(err.contains("update request"), "and in the request: {err}");
    assert_eq!(
        fs::read_to_string(pids_dir.join("pids.max")).unwrap().trim(),
        "50",
        "unchanged"
    );
    let mut r = bin()
        .arg("--root")
        .arg(&sb.root.0)
        .args(["update", "-r", "-", &id])
        .stdin(Stdio::piped())
        .output_with(b"{\"pids\":{\"limit\":60}}");
    assert!(r.status.success(), "{}", text(&r.stderr));
    assert_eq!(fs::read_to_string(pids_dir.join("pids.max")).unwrap().trim(), "60");
    r.stdout.clear();

    // pause again, then delete --force: killed, thawed, cgroups and state gone.
    assert!(sb.run(&["pause", &id]).status.success());
    let out = sb.run(&["delete", "--force", &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for p in &own {
        assert!(!p.exists(), "{} removed", p.display());
    }
    assert!(!sb.dir().exists());
}

/// `Command::output` with bytes on stdin.
trait OutputWith {
    fn output_with(&mut self, input: &[u8]) -> Output;
}
impl OutputWith for Command {
    fn output_with(&mut self, input: &[u8]) -> Output {
        let mut child = self.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().unwrap()
    }
}

#[test]
fn privileged_pause_without_a_cgroup_says_what_is_missing() {
    let sb = Sandbox::new("nocg", "nocg");
    // A plan without a cgroup (the default policy's).
    let policy = sandboxctl::policy::load(&[], Path::new(".")).unwrap();
    let spec = sandboxctl::spec::builtin(&["/bin/true".into()]);
    let host = sandboxctl::exec::detect::detect().unwrap();
    let plan = sandboxctl::plan::compile(&policy, &spec, &host, &Default::default())
        .unwrap()
        .plan;
    assert!(plan.cgroup.is_none());
    fs::write(
        sb.dir().join(PLAN_FILE),
        sandboxctl::plan::render::render(&plan, sandboxctl::plan::render::Format::Json),
    )
    .unwrap();
    let out = sb.run(&["pause", "nocg"]);
    fails(&out, 1, "has no cgroup to freeze");
    assert!(message(&out.stderr).contains("a policy or spec that gives it a cgroup"));
    assert_eq!(sb.state(), "running", "unchanged");
}

// ---- privileged: real sandboxes made by `create` (root, under the lock) ----

/// A real sandbox: `create` + `start` of `/bin/sleep 1000` under POLICY.
struct Real {
    root: TempRoot,
    id: String,
    policy: PathBuf,
}

impl Real {
    /// Waits (5 s at most) for the sandbox to read `want`, and asserts it does.
    fn wait_status(&self, want: &str) {
        let start = Instant::now();
        while self.status() != want && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(self.status(), want);
    }

    fn new(tag: &str) -> Real {
        let real = Real::created(tag);
        let out = real.run(&["start", &real.id]);
        assert!(out.status.success(), "start: {}", text(&out.stderr));
        real
    }

    /// `create` only: the workload not started.
    fn created(tag: &str) -> Real {
        let root = TempRoot::new(tag);
        let id = format!("lcr-{tag}-{}", std::process::id());
        let policy = root.0.join("policy.toml");
        fs::write(&policy, POLICY).unwrap();
        let real = Real { root, id, policy };
        // The sandbox keeps create's stdio (its workload's): a file, not a
        // pipe this test would wait on until the sandbox ends.
        let log = real.root.0.join("create.log");
        let status = bin()
            .arg("--root")
            .arg(&real.root.0)
            .args([
                "create",
                "--policy",
                real.policy.to_str().unwrap(),
                &real.id,
                "--",
                "/bin/sleep",
                "1000",
            ])
            .stdin(Stdio::null())
            .stdout(fs::File::create(&log).unwrap())
            .stderr(fs::File::create(&log).unwrap())
            .status()
            .unwrap();
        assert!(
            status.success(),
            "create: {}",
            fs::read_to_string(&log).unwrap_or_default()
        );
        real
    }

    fn run(&self, args: &[&str]) -> Output {
        bin().arg("--root").arg(&self.root.0).args(args).output().unwrap()
    }

    fn status(&self) -> String {
        let out = self.run(&["state", &self.id]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v["status"].as_str().unwrap_or("?").to_string()
    }

    fn supervisor(&self) -> Option<i32> {
        let out = self.run(&["state", &self.id]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        v["pid"].as_i64().map(|p| p as i32)
    }

    /// The cgroup directories this sandbox has on the host.
    fn cgroups(&self) -> Vec<PathBuf> {
        fs::read_dir("/sys/fs/cgroup")
            .unwrap()
            .filter_map(|e| {
                let p = e.ok()?.path().join("sandboxctl").join(&self.id);
                p.exists().then_some(p)
            })
            .collect()
    }

    /// Nothing of it left: no state, no cgroup.
    fn assert_gone(&self) {
        assert!(!self.root.0.join(&self.id).exists(), "state left");
        assert_eq!(self.cgroups(), Vec::<PathBuf>::new(), "cgroups left");
    }
}

impl Drop for Real {
    fn drop(&mut self) {
        let _ = self.run(&["delete", "--force", &self.id]);
    }
}

#[test]
fn privileged_real_sandbox_ps_stacks_events_pause_update_kill_wait_delete() {
    if skipped_unless_root() {
        return;
    }
    let r = Real::new("life");
    let id = r.id.as_str();
    assert_eq!(r.status(), "running");
    let out = r.run(&["ps", "--format", "detail", id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sleep = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["args"][0] == "/bin/sleep")
        .expect("the workload");
    assert_eq!(sleep["ppid"], 1, "the supervisor's child");
    let host_pid = sleep["host_pid"].as_i64().expect("its host pid") as i32;
    // runc's `ps --format json`, what containerd reads: an array of host pids.
    let out = r.run(&["ps", "--format", "json", id]);
    let pids: Vec<i32> = serde_json::from_slice(&out.stdout).expect("an array of pids");
    assert!(pids.contains(&host_pid), "{pids:?}");
    assert!(fs::read_to_string(format!("/proc/{host_pid}/cmdline"))
        .unwrap()
        .starts_with("/bin/sleep"));
    let out = r.run(&["stacks", id]);
    assert!(
        text(&out.stdout).starts_with("supervisor: running"),
        "{}",
        text(&out.stdout)
    );
    let out = r.run(&["events", "--stats", id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let ev: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(ev["type"], "stats");
    assert_eq!(ev["data"]["pids"]["limit"], 100, "read from the sandbox's cgroup: {ev}");

    // pause / resume from the host.
    assert!(r.run(&["pause", id]).status.success());
    assert_eq!(r.status(), "paused");
    assert_eq!(proc_state(host_pid as u32), "D", "frozen");
    fails(&r.run(&["kill", id]), 1, "is paused");
    let out = r.run(&["ps", id]);
    assert!(
        out.status.success() && text(&out.stdout).contains("/bin/sleep"),
        "read from the host"
    );
    assert!(r.run(&["resume", id]).status.success());
    assert_eq!(r.status(), "running");

    // update (the stored policy is create's; written here if this build's
    // create does not store it yet).
    let sid = SandboxId::parse(id).unwrap();
    {
        let dir = StateRoot::new(&r.root.0)
            .open(&sid, LockMode::Exclusive, Duration::from_secs(5))
            .unwrap();
        if !dir.path().join("policy.json").exists() {
            save_policy_sources(&dir, &compiled().1).unwrap();
        }
    }
    let out = r.run(&["update", "--pids-limit", "50", id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let pids = r
        .cgroups()
        .into_iter()
        .find(|p| p.starts_with("/sys/fs/cgroup/pids"))
        .unwrap();
    assert_eq!(fs::read_to_string(pids.join("pids.max")).unwrap().trim(), "50");
    let out = r.run(&["state", "--plan", "--format", "json", id]);
    assert!(text(&out.stdout).contains("cli:update linux.resources.pids.limit"));
    fails(
        &r.run(&["update", "--pids-limit", "101", id]),
        2,
        "above the policy's ceiling",
    );

    // kill; wait answers the workload's status; delete removes everything.
    assert!(r.run(&["kill", id]).status.success());
    let out = r.run(&["wait", id]);
    assert_eq!(out.status.code(), Some(143), "{}", text(&out.stderr));
    r.wait_status("stopped");
    let out = r.run(&["delete", id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    r.assert_gone();
}

#[test]
fn privileged_real_sandbox_paused_is_deleted_with_force() {
    if skipped_unless_root() {
        return;
    }
    let r = Real::new("pauseddel");
    let id = r.id.as_str();
    let sup = r.supervisor().unwrap();
    assert!(r.run(&["pause", id]).status.success());
    fails(&r.run(&["delete", id]), 1, "is paused");
    assert_eq!(r.status(), "paused", "unchanged");
    let out = r.run(&["delete", "--force", id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    r.assert_gone();
    assert!(!Path::new(&format!("/proc/{sup}")).exists() || proc_state(sup as u32) == "Z");
}

#[test]
fn privileged_real_sandbox_whose_supervisor_is_killed_reads_stopped_and_is_deleted() {
    if skipped_unless_root() {
        return;
    }
    let r = Real::new("sigkill");
    let id = r.id.as_str();
    let sup = r.supervisor().unwrap();
    // SAFETY: kill(2) of the sandbox's supervisor.
    unsafe { libc::kill(sup, libc::SIGKILL) };
    r.wait_status("stopped");
    let out = r.run(&["delete", id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    r.assert_gone();
}

#[test]
fn privileged_real_created_sandbox_is_deleted_without_force_as_runc_does() {
    if skipped_unless_root() {
        return;
    }
    let r = Real::created("created");
    let id = r.id.as_str();
    assert_eq!(r.status(), "created");
    let sup = r.supervisor().unwrap();
    fails(&r.run(&["pause", id]), 1, "is created, not running");
    let out = r.run(&["delete", id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    r.assert_gone();
    assert!(!Path::new(&format!("/proc/{sup}")).exists() || proc_state(sup as u32) == "Z");
}
