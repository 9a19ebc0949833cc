//! Privileged integration tests: apply hand-built plans on this machine and
//! check, from inside the sandbox, that each plan field took effect.
//!
//! A plain `main` (harness = false): the launcher clones, so it must run in a
//! single-threaded process; each case forks a fresh launcher whose stdout and
//! stderr go to files the test reads. Every case cleans up through a guard,
//! even when it fails. Skipped (with the reason) when not root, or when no
//! static busybox can be found or fetched (`tests/common`).

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod common;

use sandboxctl::exec::testsupport::sample_host;
use sandboxctl::exec::{apply, ApplyOptions, LaunchId, Timings};
use sandboxctl::plan::sample::Sample;
use sandboxctl::plan::{LaunchPlan, Namespace, NetworkMode, SeccompAction, SeccompRule, Sourced};
use sandboxctl::vocab::Origin;

#[path = "apply_privileged/compile.rs"]
mod compile_cases;
#[path = "apply_privileged/io.rs"]
mod io;
#[path = "apply_privileged/trace.rs"]
mod trace;

/// The launcher's own allocator (as `main.rs` installs it), so the
/// supervisors these tests fork behave as the real binary's.
#[global_allocator]
static ALLOC: sandboxctl::alloc::Allocator = sandboxctl::alloc::Allocator::new();

const APPLETS: &[&str] = &[
    "sh", "ls", "cat", "echo", "grep", "hostname", "touch", "mkdir", "readlink", "sleep", "seq", "tail", "head", "wc",
    "test", "id", "true", "stty", "chroot", "mount", "ln",
];

/// A plan under test and the sandbox id it launches as (`apply --id`).
struct Planned {
    plan: LaunchPlan,
    id: String,
}

impl std::ops::Deref for Planned {
    type Target = LaunchPlan;
    fn deref(&self) -> &LaunchPlan {
        &self.plan
    }
}

impl std::ops::DerefMut for Planned {
    fn deref_mut(&mut self) -> &mut LaunchPlan {
        &mut self.plan
    }
}

/// The sample plan applied at `root` running `sh -c script`, launched as `id`.
fn sample(root: &Path, id: &str, script: &str) -> Planned {
    sample_of(Sample::applied(root).script(script), id)
}

/// The plan `sample` builds, launched as `id`.
fn sample_of(sample: Sample, id: &str) -> Planned {
    Planned {
        plan: sample.plan(),
        id: id.into(),
    }
}

/// Removes everything a case could leave, even when the case panics.
struct Guard {
    id: String,
    launcher: Option<i32>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(pid) = self.launcher {
            // SAFETY: kill/waitpid of our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
        }
        for ctrl in ["memory", "pids", "unified"] {
            let dir = PathBuf::from(format!("/sys/fs/cgroup/{ctrl}/sandboxctl/{}", self.id));
            if let Ok(procs) = fs::read_to_string(dir.join("cgroup.procs")) {
                for p in procs.lines().filter_map(|l| l.parse::<i32>().ok()) {
                    // SAFETY: kill has no memory arguments.
                    unsafe { libc::kill(p, libc::SIGKILL) };
                }
            }
            let deadline = Instant::now() + Duration::from_secs(2);
            while dir.exists() && fs::remove_dir(&dir).is_err() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = fs::remove_dir(format!("/sys/fs/cgroup/{ctrl}/sandboxctl"));
        }
        let _ = fs::remove_file(format!("/run/sandboxctl/{}.state", self.id));
    }
}

struct Run {
    status: i32,
    out: String,
    err: String,
    /// The sandbox's cgroup directories and state file still there when the
    /// launcher had exited, before the guard cleaned up.
    left: Vec<String>,
}

/// Runs `apply` in a forked launcher with stdout/stderr to files.
fn run(plan: &Planned, fail_at: Option<&str>) -> Run {
    run_with(plan, fail_at, |_| {})
}

/// [`run`], calling `during(launcher pid)` in the test process while the launcher runs.
fn run_with(plan: &Planned, fail_at: Option<&str>, during: impl FnOnce(i32)) -> Run {
    run_guarded(&plan.id, || launch(plan, fail_at, "", None, || {}), during)
}

/// Starts a launcher with `start`, calls `during(launcher pid)`, waits for it;
/// a [`Guard`] for sandbox `id` cleans up whatever happens.
fn run_guarded(id: &str, start: impl FnOnce() -> Launcher, during: impl FnOnce(i32)) -> Run {
    let mut guard = Guard {
        id: id.into(),
        launcher: None,
    };
    let launcher = start();
    guard.launcher = Some(launcher.pid);
    during(launcher.pid);
    let mut r = launcher.wait();
    guard.launcher = None;
    r.left = ["memory", "pids", "unified"]
        .iter()
        .map(|ctrl| format!("/sys/fs/cgroup/{ctrl}/sandboxctl/{id}"))
        .chain([format!("/run/sandboxctl/{id}.state")])
        .filter(|p| Path::new(p).exists())
        .collect();
    drop(guard);
    r
}

/// Asserts the launch left no cgroup directory and no state file (`what`
/// names the case).
fn assert_nothing_left(r: &Run, what: &str) {
    assert!(r.left.is_empty(), "{what}: left behind: {:?}", r.left);
}

/// A forked launcher running `apply`, its stdout and stderr going to files.
struct Launcher {
    pid: i32,
    dir: PathBuf,
    /// How long [`Launcher::wait`] waits before it calls the launch hung.
    deadline: Duration,
}

/// Forks a launcher that applies `plan` (`tag` tells the output files of two
/// launchers of one plan apart; `setup` runs in the launcher first). Nothing
/// cleans up after it: see [`Guard`].
fn launch(
    plan: &Planned,
    fail_at: Option<&str>,
    tag: &str,
    timings: Option<Timings>,
    setup: impl FnOnce(),
) -> Launcher {
    let dir = std::env::temp_dir().join(format!("sbx-out-{}-{}{tag}", std::process::id(), plan.id));
    fs::create_dir_all(&dir).unwrap();
    let of = fs::File::create(dir.join("out")).unwrap();
    let ef = fs::File::create(dir.join("err")).unwrap();
    // SAFETY: this process has one thread (harness = false), so the child may
    // allocate; it only calls apply and _exit.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        use std::os::fd::AsRawFd;
        // SAFETY: dup2 onto stdio in the child.
        unsafe {
            libc::dup2(of.as_raw_fd(), 1);
            libc::dup2(ef.as_raw_fd(), 2);
        }
        if let Some(step) = fail_at {
            std::env::set_var("SANDBOXCTL_FAIL_AT_STEP", step);
        }
        setup();
        let opts = ApplyOptions {
            timings,
            id: Some(LaunchId::given(&plan.id, Origin::Cli("--id".into())).unwrap()),
            // A case that tests a check apply makes at its step (not the
            // preflight's copy of it) sets this in `setup`.
            skip_preflight: std::env::var_os("SBX_TEST_SKIP_PREFLIGHT").is_some(),
            ..Default::default()
        };
        let code = match apply(&plan.plan, &sample_host(), &opts) {
            Ok(c) => c,
            Err(err) => {
                eprintln!("{err}");
                250
            }
        };
        // SAFETY: end the forked launcher without running the harness's destructors.
        unsafe { libc::_exit(code) };
    }
    Launcher {
        pid,
        dir,
        deadline: Duration::from_secs(60),
    }
}

impl Launcher {
    /// Waits for the launcher (60 s at most) and reads its output.
    fn wait(self) -> Run {
        self.wait_then(|| {})
    }

    /// [`Self::wait`], calling `then` after the launcher exited and before
    /// its output is read (its orphans may still write to it).
    fn wait_then(self, then: impl FnOnce()) -> Run {
        let deadline = Instant::now() + self.deadline;
        let mut status = 0;
        loop {
            // SAFETY: waitpid of our own child.
            let r = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
            if r == self.pid {
                break;
            }
            assert!(Instant::now() < deadline, "launcher timed out (hung)");
            std::thread::sleep(Duration::from_millis(5));
        }
        let status = if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            128 + libc::WTERMSIG(status)
        };
        then();
        let r = Run {
            status,
            out: fs::read_to_string(self.dir.join("out")).unwrap(),
            err: fs::read_to_string(self.dir.join("err")).unwrap(),
            left: Vec::new(),
        };
        let _ = fs::remove_dir_all(&self.dir);
        r
    }
}

fn build_rootfs(busybox: &Path) -> PathBuf {
    build_rootfs_named(busybox, "")
}

/// A rootfs of its own for a case that changes it (`tag` names it).
fn build_rootfs_named(busybox: &Path, tag: &str) -> PathBuf {
    let root = std::env::temp_dir().join(format!("sbx-rootfs-{}{tag}", std::process::id()));
    for d in ["bin", "proc", "dev", "sys", "tmp", "etc"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    fs::copy(busybox, root.join("bin/busybox")).unwrap();
    for a in APPLETS {
        symlink("busybox", root.join("bin").join(a)).unwrap();
    }
    fs::write(root.join("etc/passwd"), "nobody:x:65534:65534:nobody:/:/bin/sh\n").unwrap();
    root
}

fn host_ns(kind: &str) -> String {
    fs::read_link(format!("/proc/self/ns/{kind}"))
        .unwrap()
        .display()
        .to_string()
}

fn line<'a>(out: &'a str, prefix: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line {prefix:?} in:\n{out}"))
}

type Case = fn(&Path, &str);

fn case_inside(root: &Path, id: &str) {
    let script = r#"
cat /proc/self/uid_map | sed 's/^/uid_map/' 2>/dev/null || echo "uid_map $(cat /proc/self/uid_map)"
echo "gid_map $(cat /proc/self/gid_map)"
grep -E '^(Cap|NoNewPrivs|Seccomp:|Groups)' /proc/self/status
grep 'open files' /proc/self/limits
echo "hostname $(hostname)"
for n in user pid net ipc uts mnt cgroup; do echo "ns $n $(readlink /proc/self/ns/$n)"; done
sed 's/^/cgroup /' /proc/self/cgroup 2>/dev/null || while read l; do echo "cgroup $l"; done < /proc/self/cgroup
echo "root $(ls / | tr '\n' ' ')"
test -e /work && echo "host-visible /work"
touch /rootwrite 2>&1 | sed 's/^/touch /' ; echo "touch-done"
mkdir /tmp/x 2>&1; echo "mkdir-status $?"
echo "loflags $(cat /sys/class/net/lo/flags)"
while read a b c d e f g; do echo "mount $e $f"; done < /proc/self/mountinfo
echo "id $(id)"
"#;
    let r = run(&sample(root, id, script), None);
    assert_eq!(r.status, 0, "status; err: {}\nout: {}", r.err, r.out);
    let o = &r.out;
    assert!(
        o.contains("65534      65534          1") || o.contains("65534 65534 1"),
        "uid_map:\n{o}"
    );
    // The plan's sets: CAP_NET_BIND_SERVICE (bit 10) in every set, held by
    // nobody across exec because it is ambient; CAP_KILL (bit 5) bounding only.
    for (cap, mask) in [
        ("CapInh", "0000000000000400"),
        ("CapPrm", "0000000000000400"),
        ("CapEff", "0000000000000400"),
        ("CapBnd", "0000000000000420"),
        ("CapAmb", "0000000000000400"),
    ] {
        assert_eq!(line(o, cap), format!("{cap}:\t{mask}"));
    }
    assert!(line(o, "NoNewPrivs").ends_with('1'));
    assert!(line(o, "Seccomp:").ends_with('2'));
    let lim: Vec<&str> = line(o, "Max open files").split_whitespace().collect();
    assert_eq!(&lim[3..5], ["1024", "1024"]);
    assert_eq!(line(o, "hostname "), "hostname sandbox");
    for n in ["user", "pid", "net", "ipc", "uts", "mnt", "cgroup"] {
        let inside = line(o, &format!("ns {n} ")).split(' ').nth(2).unwrap().to_string();
        assert_ne!(inside, host_ns(n), "{n} namespace is the host's");
    }
    // A new cgroup namespace, made after the join: rooted at the sandbox's
    // cgroup, so the sandbox sees itself at "/".
    assert!(
        o.lines().any(|l| l.starts_with("cgroup ") && l.ends_with(":memory:/")),
        "cgroup namespace not rooted at the sandbox's cgroup:\n{o}"
    );
    assert_eq!(line(o, "root ").trim(), "root bin dev etc proc sys tmp");
    assert!(!o.contains("host-visible"), "{o}");
    assert!(o.contains("Read-only file system"), "root writable:\n{o}");
    assert!(o.contains("Invalid cross-device link"), "seccomp errno missing:\n{o}");
    assert_eq!(line(o, "loflags"), "loflags 0x8", "network none: lo must be down");
    assert!(
        o.lines().any(|l| l.starts_with("mount / ") && l.contains("ro")),
        "root not ro:\n{o}"
    );
    assert!(o.lines().any(|l| l.starts_with("mount /proc ")), "{o}");
    assert!(
        o.lines().any(|l| l.starts_with("mount /proc/sys ") && l.contains("ro")),
        "{o}"
    );
    assert!(line(o, "id ").contains("uid=65534"), "{o}");
}

fn case_fds(root: &Path, id: &str) {
    let p = sample_of(Sample::applied(root).args(&["/bin/ls", "-1", "/proc/self/fd"]), id);
    let r = run(&p, None);
    assert_eq!(r.status, 0, "{}", r.err);
    // ls opens fd 3 to read the directory; the workload brought 0, 1, 2 only.
    assert_eq!(
        r.out.split_whitespace().collect::<Vec<_>>(),
        ["0", "1", "2", "3"],
        "{}",
        r.out
    );
}

/// The plan memfd (the sample supervisor's fd 4), filled and sealed by the
/// launcher after the release, is complete and sealed when the workload
/// reads it (the supervisor starts the workload only after the launcher's
/// EOF on the sync pipe).
fn case_plan_memfd(root: &Path, id: &str) {
    use sandboxctl::plan::{FdEntry, FdRole, FdSource};
    use sandboxctl::vocab::Fd;
    let script = "cat /proc/self/fd/3; echo; if echo x >>/proc/self/fd/3; then echo WRITABLE; else echo SEALED; fi";
    let mut p = sample(root, id, script);
    let memfd = p.supervisor.fds.iter().find(|e| e.source == FdSource::PlanMemfd);
    assert_eq!(memfd.map(|e| e.fd), Some(Fd(4)), "{:?}", p.supervisor.fds);
    p.workload.fds.push(FdEntry {
        fd: Fd(3),
        role: FdRole::Spec,
        source: FdSource::Supervisor { fd: Fd(4) },
        from: Origin::Default,
    });
    let r = run(&p, None);
    assert_eq!(r.status, 0, "{}", r.err);
    let mut lines = r.out.lines();
    let json = lines.next().unwrap_or_default();
    let seen: LaunchPlan = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json:?}"));
    assert_eq!(seen, p.plan, "the memfd holds the plan that ran");
    assert_eq!(lines.last(), Some("SEALED"), "{}\n{}", r.out, r.err);
}

fn case_loopback(root: &Path, id: &str) {
    let mut p = sample(root, id, "cat /sys/class/net/lo/flags");
    p.network = Sourced::new(NetworkMode::Loopback, Origin::Default);
    let r = run(&p, None);
    assert_eq!(r.status, 0, "{}", r.err);
    assert_eq!(r.out.trim(), "0x9", "lo must be up");
}

fn case_cgroup_host_ns(root: &Path, id: &str) {
    let mut p = sample(root, id, "cat /proc/self/cgroup");
    p.namespaces.cgroup = Sourced::new(Namespace::Host, Origin::Default);
    let r = run(&p, None);
    assert_eq!(r.status, 0, "{}", r.err);
    for ctrl in ["memory", "pids"] {
        assert!(
            r.out.lines().any(|l| l.ends_with(&format!(":{ctrl}:/sandboxctl/{id}"))),
            "{ctrl}:\n{}",
            r.out
        );
    }
}

/// A v2 hierarchy too (this host's hybrid `unified` mount): the supervisor
/// joins it by writing `0` to `cgroup.procs` through the fd the launcher
/// opened, from inside its new user namespace as nobody.
fn case_cgroup_v2_join(root: &Path, id: &str) {
    use sandboxctl::plan::{CgroupDir, CgroupDirRole, CgroupVersion};
    if !Path::new("/sys/fs/cgroup/unified/cgroup.procs").exists() {
        println!("    skipped: no cgroup2 mount at /sys/fs/cgroup/unified");
        return;
    }
    let mut p = sample(root, id, "cat /proc/self/cgroup");
    p.namespaces.cgroup = Sourced::new(Namespace::Host, Origin::Default);
    let cg = p.cgroup.as_mut().unwrap();
    let parent = PathBuf::from("/sys/fs/cgroup/unified/sandboxctl");
    let leaf = parent.join(id);
    for (path, role) in [(parent, CgroupDirRole::Parent), (leaf.clone(), CgroupDirRole::Sandbox)] {
        cg.dirs.push(CgroupDir {
            path,
            version: CgroupVersion::V2,
            role,
            controllers: vec![],
            inherit: None,
            from: None,
        });
    }
    cg.join.push(leaf.join("cgroup.procs"));
    let r = run(&p, None);
    assert_eq!(r.status, 0, "{}", r.err);
    assert!(
        r.out.lines().any(|l| l == format!("0::/sandboxctl/{id}")),
        "not in the v2 cgroup:\n{}",
        r.out
    );
    for ctrl in ["memory", "pids"] {
        assert!(
            r.out.lines().any(|l| l.ends_with(&format!(":{ctrl}:/sandboxctl/{id}"))),
            "{}",
            r.out
        );
    }
    assert_nothing_left(&r, "cgroup v2 join");
}

fn case_exit_status(root: &Path, id: &str) {
    let r = run(&sample(root, id, "exit 7"), None);
    assert_eq!(r.status, 7, "{}", r.err);
}

/// The README's quick start, through the real binary: the embedded default
/// spec on the host's root, read-only, as nobody, with a fresh hostname.
fn case_readme_quick_start(_root: &Path, id: &str) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sandboxctl"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "apply",
            "--policy",
            "policies/default.toml",
            "--id",
            id,
            "--",
            "/bin/sh",
            "-c",
        ])
        .arg("id; hostname; ls /; touch /probe 2>&1; cat /proc/self/status")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.starts_with("uid=65534"), "{text}");
    assert!(text.lines().nth(1) == Some("sandbox"), "{text}");
    assert!(
        text.lines().any(|l| l == "usr") && text.lines().any(|l| l == "etc"),
        "host root listed: {text}"
    );
    assert!(text.contains("Read-only file system"), "root is read-only: {text}");
    assert!(
        text.contains("CapEff:\t0000000000000000") && text.contains("NoNewPrivs:\t1"),
        "{text}"
    );
    assert!(!Path::new("/probe").exists());
}

/// Platform kvm through the binary: /dev/kvm opened and checked by the
/// launcher, donated at the workload's fd 3, and a device node in its /dev.
fn case_kvm_device(_root: &Path, id: &str) {
    if !Path::new("/dev/kvm").exists() {
        println!("kvm_device: skipped: this host has no /dev/kvm");
        return;
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sandboxctl"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["apply", "--policy", "kvm", "--id", id, "--", "/bin/sh", "-c"])
        .arg("readlink /proc/self/fd/3; test -c /dev/kvm && echo kvm-node; ls /proc/self/fd")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("/dev/kvm"), "{text}");
    assert_eq!(lines.next(), Some("kvm-node"), "{text}");
    // 0-2 stdio, 3 the kvm fd, and ls's own directory fd: nothing else crossed.
    let fds: Vec<&str> = lines.collect();
    assert_eq!(fds.len(), 5, "unexpected fds: {fds:?}");
}

fn case_pids_limit(root: &Path, id: &str) {
    // pids.max is 64: the loop cannot start 100 sleepers; busybox sh gives up
    // with "can't fork" (on the caller's stderr) and a non-zero status.
    let script = "for i in $(seq 100); do echo $i; sleep 3 & done";
    let r = run(&sample(root, id, script), None);
    let last: u32 = r.out.lines().last().and_then(|l| l.trim().parse().ok()).unwrap_or(0);
    assert!(last > 10 && last < 100, "fork loop reached {last}: {}", r.err);
    assert!(r.err.contains("fork"), "no fork failure reported: {}", r.err);
    assert_ne!(r.status, 0);
}

/// `workload.oom_score_adj`: the score is what every process of the
/// sandbox has, its children too. A lowered one takes CAP_SYS_RESOURCE,
/// which root here may lack: then preflight names it and nothing is made.
fn case_oom_score_adj(root: &Path, id: &str) {
    let script = "cat /proc/self/oom_score_adj; sh -c 'cat /proc/self/oom_score_adj'";
    let mut p = sample(root, id, script);
    p.workload.oom_score_adj = Some(Sourced::new(500, Origin::spec("process.oomScoreAdj")));
    let r = run(&p, None);
    assert_eq!(r.status, 0, "{}", r.err);
    assert_eq!(r.out, "500\n500\n", "{}", r.err);
    p.workload.oom_score_adj = Some(Sourced::new(-500, Origin::spec("process.oomScoreAdj")));
    let r = run(&p, None);
    let resource = caps::has_cap(None, caps::CapSet::Effective, caps::Capability::CAP_SYS_RESOURCE).unwrap();
    if resource {
        assert_eq!((r.status, r.out.as_str()), (0, "-500\n-500\n"), "{}", r.err);
    } else {
        assert_eq!(r.status, 250, "{}", r.err);
        assert!(
            r.err.contains("lowering the OOM score to -500 needs CAP_SYS_RESOURCE"),
            "{}",
            r.err
        );
        assert_nothing_left(&r, "oom_score_adj without CAP_SYS_RESOURCE");
    }
}

fn case_memory_limit(root: &Path, id: &str) {
    let p = sample_of(Sample::applied(root).args(&["/bin/tail", "/dev/zero"]), id);
    let r = run(&p, None);
    assert_eq!(r.status, 128 + 9, "memory hog not killed: {}", r.err);
}

/// Waits up to 20 s for `fd` to become readable.
fn wait_readable(fd: i32) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut p, 1, 20_000) > 0 }
}

/// Receives one fd sent with SCM_RIGHTS on a connected unix stream.
fn recv_fd(sock: i32) -> Option<i32> {
    let mut data = [0u8; 256];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    let mut cbuf = [0u64; 8];
    // SAFETY: msghdr is plain data; fields set below point at live buffers.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&cbuf) as _;
    // SAFETY: `msg` points at valid buffers for the call.
    if unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) } < 0 {
        return None;
    }
    // SAFETY: the kernel filled the control buffer; CMSG_* walk inside it.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        if c.is_null() || (*c).cmsg_type != libc::SCM_RIGHTS {
            return None;
        }
        Some(std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<i32>()))
    }
}

fn case_console(root: &Path, id: &str) {
    use sandboxctl::plan::{FdSource, Session, Stdio};
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixListener;
    let sock_path = std::env::temp_dir().join(format!("sbx-console-{id}.sock"));
    let _ = fs::remove_file(&sock_path);
    let listener = UnixListener::bind(&sock_path).unwrap();
    let mut p = sample(
        root,
        id,
        "tty; test -t 0 && test -t 1 && echo stdio-is-a-tty; readlink /proc/self/fd/1; \
         read a b c d e f g rest < /proc/self/stat; echo \"tty_nr $g\"; echo hi",
    );
    p.stdio = Sourced::new(
        Stdio::ConsoleSocket(sock_path.clone()),
        Origin::Cli("--console-socket".into()),
    );
    p.supervisor.session = Session::NewSessionWithControllingTty;
    for e in p.supervisor.fds.iter_mut().filter(|e| e.fd.0 <= 2) {
        e.source = FdSource::PtySlave;
    }
    let mut out = Vec::new();
    let mut got_fd = false;
    let r = run_with(&p, None, |_| {
        if !wait_readable(listener.as_raw_fd()) {
            return;
        }
        let Ok((conn, _)) = listener.accept() else {
            return;
        };
        if !wait_readable(conn.as_raw_fd()) {
            return;
        }
        let Some(master) = recv_fd(conn.as_raw_fd()) else {
            return;
        };
        got_fd = true;
        // Read until every slave is closed (EIO), bounded in time.
        let mut buf = [0u8; 4096];
        while wait_readable(master) {
            // SAFETY: read into a valid buffer from our own fd.
            let n = unsafe { libc::read(master, buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                break;
            }
            out.extend_from_slice(&buf[..n as usize]);
        }
        // SAFETY: closing our own fd.
        unsafe { libc::close(master) };
    });
    let _ = fs::remove_file(&sock_path);
    let text = String::from_utf8_lossy(&out).into_owned();
    assert!(got_fd, "no master received; status {}: {}", r.status, r.err);
    assert_eq!(r.status, 0, "status; err: {}\nout: {}\npty: {text}", r.err, r.out);
    assert!(text.contains("stdio-is-a-tty"), "pty: {text}");
    assert!(text.contains("/dev/pts/"), "no /dev/pts path seen: {text}");
    assert!(text.contains("hi"), "pty: {text}");
    // The pty is the session's controlling tty (tty_nr in /proc/self/stat).
    let tty_nr = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("tty_nr "))
        .unwrap_or("0");
    assert_ne!(tty_nr, "0", "no controlling tty: {text}");
    // `tty` itself says "not a tty": ttyname(3) looks the slave up in the
    // sandbox's own devpts instance, where the launcher's pty does not exist.
    assert!(r.out.is_empty(), "the caller's stdout was used: {}", r.out);
}

/// A process holding a user namespace that maps nobody (65534) to nobody; killed and reaped on drop.
struct UserNsHolder {
    pid: i32,
}

impl UserNsHolder {
    fn start() -> UserNsHolder {
        let mut fds = [0; 2];
        // SAFETY: valid out array.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: single-threaded test process; the child only makes raw calls.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: raw calls in the forked child, which never returns.
            unsafe {
                let ok = libc::unshare(libc::CLONE_NEWUSER) == 0;
                libc::write(fds[1], [u8::from(ok)].as_ptr().cast(), 1);
                libc::close(fds[1]);
                loop {
                    libc::pause();
                }
            }
        }
        let holder = UserNsHolder { pid };
        let mut b = [0u8; 1];
        // SAFETY: read into a valid buffer; close our pipe ends.
        unsafe {
            libc::close(fds[1]);
            assert_eq!(libc::read(fds[0], b.as_mut_ptr().cast(), 1), 1);
            libc::close(fds[0]);
        }
        assert_eq!(b[0], 1, "holder could not unshare its user namespace");
        fs::write(format!("/proc/{pid}/uid_map"), "65534 65534 1\n").unwrap();
        fs::write(format!("/proc/{pid}/gid_map"), "65534 65534 1\n").unwrap();
        holder
    }
}

impl Drop for UserNsHolder {
    fn drop(&mut self) {
        // SAFETY: kill/waitpid of our own child.
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
            libc::waitpid(self.pid, std::ptr::null_mut(), 0);
        }
    }
}

fn case_join_userns(root: &Path, id: &str) {
    let holder = UserNsHolder::start();
    let ns_path = PathBuf::from(format!("/proc/{}/ns/user", holder.pid));
    let want = fs::read_link(&ns_path).unwrap().display().to_string();
    assert_ne!(want, host_ns("user"));
    let mut p = sample(
        root,
        id,
        "echo \"userns $(readlink /proc/self/ns/user)\"; echo \"uid_map $(cat /proc/self/uid_map)\"; id",
    );
    p.namespaces.user = Sourced::new(Namespace::Join(ns_path), Origin::spec("linux.namespaces[5].path"));
    p.id_maps.uid.clear();
    p.id_maps.gid.clear();
    p.id_maps.setgroups = sandboxctl::plan::SetGroups::Allow;
    let r = run(&p, None);
    assert_eq!(r.status, 0, "status; err: {}\nout: {}", r.err, r.out);
    assert_eq!(line(&r.out, "userns ").trim(), format!("userns {want}"), "{}", r.out);
    let map: Vec<&str> = line(&r.out, "uid_map ").split_whitespace().collect();
    assert_eq!(
        map,
        ["uid_map", "65534", "65534", "1"],
        "the holder's map, none written: {}",
        r.out
    );
    assert!(line(&r.out, "uid=").contains("uid=65534"), "{}", r.out);
    drop(holder);
}

/// A second apply with the id of a running sandbox fails at its first step
/// (the state file is created exclusively), makes nothing, and leaves the
/// running sandbox and its state file alone.
fn case_duplicate_id(root: &Path, id: &str) {
    let plan = sample(root, id, "sleep 1");
    let state = PathBuf::from(format!("/run/sandboxctl/{id}.state"));
    let first = run_with(&plan, None, |_| {
        let deadline = Instant::now() + Duration::from_secs(10);
        let record = loop {
            match fs::read_to_string(&state) {
                Ok(p) if p.contains("\nsupervisor ") => break p,
                _ => assert!(Instant::now() < deadline, "no state file {}", state.display()),
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let pid = record
            .lines()
            .find_map(|l| l.strip_prefix("supervisor "))
            .unwrap()
            .to_string();
        let second = launch(&plan, None, "-second", None, || {}).wait();
        assert_eq!(second.status, 250, "second apply did not fail: {}", second.out);
        assert!(
            second.err.contains("step state_file") && second.err.contains("EEXIST"),
            "{}",
            second.err
        );
        assert_eq!(
            fs::read_to_string(&state).unwrap(),
            record,
            "the running sandbox's state file changed"
        );
        // SAFETY: kill with signal 0 only checks that the process exists.
        let alive = unsafe { libc::kill(pid.trim().parse().unwrap(), 0) } == 0;
        assert!(alive, "the running sandbox's supervisor is gone");
    });
    assert_eq!(first.status, 0, "the first sandbox failed: {}", first.err);
    assert_nothing_left(&first, "duplicate id");
}

/// `apply --timings`: every step of the plan is reported once, by the process
/// that performs it, each process's in plan order and at non-decreasing times.
fn case_timings(root: &Path, id: &str) {
    let plan = sample(root, id, "true");
    let timings = Some(Timings::since(std::time::Instant::now()));
    let r = run_guarded(id, || launch(&plan, None, "", timings, || {}), |_| {});
    assert_eq!(r.status, 0, "{}", r.err);
    let marks: Vec<(f64, String, String)> = r
        .err
        .lines()
        .filter_map(|l| l.strip_prefix("sandboxctl: timing "))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].parse().unwrap(), f[2].to_string(), f[3..].join(" "))
        })
        .collect();
    for step in &plan.steps {
        let seen: Vec<&(f64, String, String)> = marks.iter().filter(|m| m.2 == step.name()).collect();
        assert_eq!(
            seen.len(),
            1,
            "step {} reported {} times:\n{}",
            step.name(),
            seen.len(),
            r.err
        );
        assert_eq!(seen[0].1, step.actor().name(), "{}", r.err);
    }
    for actor in ["launcher", "supervisor", "workload"] {
        let mine: Vec<&(f64, String, String)> = marks.iter().filter(|m| m.1 == actor).collect();
        let in_plan: Vec<String> = plan
            .steps
            .iter()
            .filter(|s| s.actor().name() == actor)
            .map(|s| s.name())
            .collect();
        let steps: Vec<String> = mine
            .iter()
            .filter(|m| in_plan.contains(&m.2))
            .map(|m| m.2.clone())
            .collect();
        assert_eq!(steps, in_plan, "{actor} out of plan order");
        assert!(
            mine.windows(2).all(|w| w[0].0 <= w[1].0),
            "{actor}: times go back:\n{}",
            r.err
        );
    }
    assert!(marks.last().is_some_and(|m| m.2 == "done"), "{}", r.err);
}

/// The supervisor's network namespace is made by `unshare` in the child
/// while the launcher still writes the maps. When that fails (here: a seccomp
/// filter on the launcher, which its children inherit, refuses
/// `unshare(CLONE_NEWNET)`), the error is the child's, named by step and
/// call, and nothing is left.
fn case_early_unshare_fails(root: &Path, id: &str) {
    use seccompiler::{
        BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
    };
    let plan = sample(root, id, "true");
    let deny_new_net = || {
        let newnet = libc::CLONE_NEWNET as u64;
        let cond = SeccompCondition::new(0, SeccompCmpArgLen::Qword, SeccompCmpOp::MaskedEq(newnet), newnet).unwrap();
        let rules = [(libc::SYS_unshare, vec![SeccompRule::new(vec![cond]).unwrap()])].into();
        let filter = SeccompFilter::new(
            rules,
            SeccompAction::Allow,
            SeccompAction::Errno(libc::EPERM as u32),
            std::env::consts::ARCH.try_into().unwrap(),
        )
        .unwrap();
        let prog: BpfProgram = filter.try_into().unwrap();
        seccompiler::apply_filter(&prog).unwrap();
    };
    let r = run_guarded(id, || launch(&plan, None, "", None, deny_new_net), |_| {});
    assert_eq!(r.status, 250, "apply did not fail: {}", r.out);
    assert!(
        r.err.contains("step clone ") && r.err.contains("unshare net") && r.err.contains("EPERM"),
        "{}",
        r.err
    );
    assert_nothing_left(&r, "early unshare");
}

fn case_rollback(root: &Path, id0: &str) {
    if !cfg!(feature = "fault-injection") {
        println!("    skipped: rollback via the real backend needs --features fault-injection");
        return;
    }
    let exe = std::env::current_exe().unwrap();
    for step in [
        "state_file",
        "cgroup_create",
        "cgroup_limits",
        "open_fds",
        "clone",
        "id_maps",
        "cgroup_join",
        "supervisor_fds",
        "mounts",
        "root_change",
        "spawn_workload",
        "credentials",
        "seccomp",
        "exec",
        "supervisor_credentials",
    ] {
        let id = format!("{id0}-{}", step.replace('_', ""));
        let r = run(&sample(root, &id, "true"), Some(step));
        assert_eq!(r.status, 250, "{step}: apply did not fail: {}", r.out);
        assert!(
            r.err.contains(&format!("step {step} ")) && r.err.contains("injected fault"),
            "{step}: {}",
            r.err
        );
        assert_nothing_left(&r, step);
        let me = std::process::id().to_string();
        for e in fs::read_dir("/proc").unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.parse::<u32>().is_ok() && name != me {
                if let Ok(x) = fs::read_link(e.path().join("exe")) {
                    assert_ne!(x, exe, "{step}: process {name} left");
                }
            }
        }
    }
}

/// Reaps every child of this process (a subreaper) within `secs`: the
/// orphans of a launcher that died. Returns their statuses.
fn reap_orphans(secs: u64) -> Vec<i32> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut out = Vec::new();
    loop {
        let mut status = 0;
        // SAFETY: waitpid of any child of this process, with a valid pointer.
        let r = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if r > 0 {
            out.push(if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                128 + libc::WTERMSIG(status)
            });
            continue;
        }
        if r < 0 || Instant::now() > deadline {
            return out;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Issue 10 item 5: the launcher is SIGKILLed right after the release,
/// before it sends the seccomp programs and fills the plan memfd. The
/// supervisor must not start the workload (before the fix an empty stream
/// decoded as "no filter" and the workload ran with `Seccomp: 0`), with and
/// without a filter in the plan; no process is left. (The cgroup directories
/// and the state file of a killed launcher are `sandboxctl gc`'s, issue 11.)
fn case_launcher_dies_after_release(root: &Path, id0: &str) {
    if !cfg!(feature = "fault-injection") {
        println!("    skipped: needs --features fault-injection");
        return;
    }
    for with_filter in [true, false] {
        let id = format!("{id0}{}", if with_filter { "f" } else { "n" });
        let mut plan = sample(root, &id, "echo RAN; grep Seccomp: /proc/self/status");
        if !with_filter {
            plan.workload.seccomp = None;
        }
        // SAFETY: prctl with integer arguments; this process becomes the
        // reaper of the launcher's orphans (its supervisor).
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        let mut guard = Guard {
            id: id.clone(),
            launcher: None,
        };
        let launcher = launch(&plan, None, "", None, || {
            std::env::set_var("SANDBOXCTL_KILL_LAUNCHER", "after_release")
        });
        guard.launcher = Some(launcher.pid);
        let mut orphans = Vec::new();
        let r = launcher.wait_then(|| orphans = reap_orphans(10));
        guard.launcher = None;
        // SAFETY: as above.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0) };
        drop(guard);
        assert_eq!(r.status, 128 + libc::SIGKILL, "the launcher was not killed: {}", r.err);
        assert!(
            !r.out.contains("RAN"),
            "the workload ran (filter {with_filter}):\n{}",
            r.out
        );
        // Two defences, either may act first: the supervisor's parent-death
        // signal (killed, 137) or its refusal of the missing handover (125).
        // Never the workload's run.
        assert!(
            orphans == [125] || orphans == [128 + libc::SIGKILL],
            "the supervisor did not fail (filter {with_filter}): {orphans:?}"
        );
        assert_eq!(reap_orphans(0), Vec::<i32>::new(), "a process is left");
    }
}

/// Issue 10 item 6: under a host user namespace (as network-host plans it)
/// the workload has the supervisor's uid; it must never be able to ptrace
/// its supervisor. The probe (this test binary, copied into the root) tries
/// PTRACE_SEIZE and PTRACE_ATTACH on pid 1 in a loop for 20 ms from its
/// start, over many launches (`SBX_PTRACE_RUNS`, 150 by default). Before the
/// fix (the supervisor dropped its capabilities before PR_SET_DUMPABLE 0) it
/// succeeded in some launches.
fn case_supervisor_not_ptraceable(root: &Path, id0: &str) {
    use sandboxctl::plan::{CapSets, Credentials, IdMaps, SetGroups};
    use sandboxctl::vocab::{Gid, Uid};
    let probe = root.join("bin/probe");
    fs::copy(std::env::current_exe().unwrap(), &probe).unwrap();
    let runs: usize = std::env::var("SBX_PTRACE_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150);
    let mut seized = 0;
    let mut refused = std::collections::BTreeMap::new();
    for i in 0..runs {
        let id = format!("{id0}-{i}");
        let mut p = sample_of(Sample::applied(root).args(&["/bin/probe", "--probe-ptrace"]), &id);
        let host = |p: &mut Sourced<Namespace>| *p = Sourced::new(Namespace::Host, Origin::Default);
        host(&mut p.namespaces.user);
        host(&mut p.namespaces.net);
        host(&mut p.namespaces.cgroup);
        p.network = Sourced::new(NetworkMode::Host, Origin::Default);
        // A fresh sysfs in the host's network namespace is refused (the
        // compiler binds the host's /sys there instead): none in this plan.
        p.mounts.retain(|m| m.fstype != "sysfs");
        p.id_maps = IdMaps {
            uid: vec![],
            gid: vec![],
            setgroups: SetGroups::Allow,
            from: Origin::Default,
        };
        let root_creds = Credentials {
            uid: Uid(0),
            gid: Gid(0),
            groups: vec![],
            from: Origin::Default,
        };
        p.supervisor.credentials = root_creds.clone();
        p.supervisor.capabilities = CapSets::default();
        p.workload.credentials = root_creds;
        let r = run(&p, None);
        assert_eq!(r.status, 0, "run {i}: {}\n{}", r.err, r.out);
        assert_nothing_left(&r, "ptrace probe");
        match r.out.trim() {
            "SEIZED" => seized += 1,
            other => *refused.entry(other.to_string()).or_insert(0) += 1,
        }
    }
    let _ = fs::remove_file(&probe);
    println!("    {runs} launches: supervisor ptraced in {seized}; refused: {refused:?}");
    assert_eq!(
        seized, 0,
        "the workload ptraced its supervisor in {seized} of {runs} launches"
    );
}

/// The workload side of [`case_supervisor_not_ptraceable`]: PTRACE_SEIZE and
/// PTRACE_ATTACH on pid 1 for 20 ms; prints `SEIZED` or the last errno.
fn probe_ptrace() -> ! {
    let start = Instant::now();
    let mut last = 0;
    while start.elapsed() < Duration::from_millis(20) {
        for req in [libc::PTRACE_SEIZE, libc::PTRACE_ATTACH] {
            // SAFETY: ptrace with integer arguments and null pointers.
            let r = unsafe {
                libc::ptrace(
                    req,
                    1,
                    std::ptr::null_mut::<libc::c_void>(),
                    std::ptr::null_mut::<libc::c_void>(),
                )
            };
            if r == 0 {
                if req == libc::PTRACE_ATTACH {
                    // Let the supervisor go on: wait for its stop, detach.
                    // SAFETY: waitpid/ptrace on the tracee, valid pointers.
                    unsafe {
                        libc::waitpid(1, std::ptr::null_mut(), libc::__WALL);
                        libc::ptrace(
                            libc::PTRACE_DETACH,
                            1,
                            std::ptr::null_mut::<libc::c_void>(),
                            std::ptr::null_mut::<libc::c_void>(),
                        );
                    }
                }
                println!("SEIZED");
                std::process::exit(0);
            }
            last = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        }
    }
    println!("refused errno {last}");
    std::process::exit(0);
}

/// A sample plan whose workload's seccomp filter has one more rule:
/// `action` on `syscalls`.
fn plan_with_rule(root: &Path, id: &str, script: &str, action: SeccompAction, syscalls: &[&str]) -> Planned {
    let mut p = sample(root, id, script);
    p.workload.seccomp.as_mut().unwrap().rules.push(SeccompRule {
        action,
        syscalls: syscalls.iter().map(|s| s.to_string()).collect(),
        args: vec![],
        from: Origin::spec("linux.seccomp.syscalls[1]"),
    });
    p
}

/// Runs `plan` with a launcher given `secs` to finish (else: hung).
fn run_within(plan: &Planned, secs: u64, setup: impl FnOnce()) -> Run {
    run_guarded(
        &plan.id,
        || {
            let mut l = launch(plan, None, "", None, setup);
            l.deadline = Duration::from_secs(secs);
            l
        },
        |_| {},
    )
}

/// Issue 10 item 7: the vfork child shares the supervisor's heap and must
/// never take its allocator's lock. With the fault-injection hook the
/// supervisor holds that lock while the child runs; a child that allocated
/// from the heap would spin forever (before the fix: every launch hung).
fn case_vfork_child_never_allocates(root: &Path, id: &str) {
    if !cfg!(feature = "fault-injection") {
        println!("    skipped: needs --features fault-injection");
        return;
    }
    let plan = sample(root, id, "echo started");
    let r = run_within(&plan, 15, || std::env::set_var("SANDBOXCTL_HOLD_HEAP_AT_SPAWN", "1"));
    assert_eq!((r.status, r.out.trim()), (0, "started"), "{}", r.err);
    assert_nothing_left(&r, "vfork child allocation");
}

/// Issue 10 item 7: a spec filter that kills on the memory calls (mmap, brk,
/// munmap, mprotect, mremap, madvise). The child, after its filter, makes no
/// call but execve; the workload is killed by its own filter at its first
/// one (SIGSYS: status 159). No hang, nothing left.
fn case_seccomp_kills_memory_calls(root: &Path, id: &str) {
    let calls = ["mmap", "brk", "munmap", "mprotect", "mremap", "madvise"];
    let plan = plan_with_rule(root, id, "echo started", SeccompAction::KillProcess, &calls);
    let r = run_within(&plan, 15, || {});
    assert_eq!(r.status, 128 + libc::SIGSYS, "out: {}\nerr: {}", r.out, r.err);
    assert_nothing_left(&r, "seccomp kills memory calls");
}

/// Issue 10 item 7: a spec filter that kills on execve. Apply fails before
/// the spawn with a clear error (before the fix: the child was killed at its
/// execve, the empty exec report read as success, and apply returned 159).
fn case_seccomp_kills_execve(root: &Path, id: &str) {
    let plan = plan_with_rule(
        root,
        id,
        "echo started",
        SeccompAction::KillProcess,
        &["execve", "execveat"],
    );
    let r = run_within(&plan, 15, || {});
    assert_eq!(r.status, 250, "out: {}\nerr: {}", r.out, r.err);
    assert!(
        r.err.contains("step spawn_workload") && r.err.contains("kills the process on execve"),
        "{}",
        r.err
    );
    assert!(!r.out.contains("started"));
    assert_nothing_left(&r, "seccomp kills execve");
}

/// Issue 10 item 7: a child that dies before its exec without a report (its
/// execve fails with EPERM, and writing the report is killed by the filter)
/// is a failed exec, not a success (before the fix: the empty exec report
/// read as success and apply returned 159, with no error).
fn case_child_dies_before_exec(root: &Path, id: &str) {
    let mut plan = plan_with_rule(
        root,
        id,
        "echo started",
        SeccompAction::Errno(libc::EPERM as u32),
        &["execve"],
    );
    plan.workload.seccomp.as_mut().unwrap().rules.push(SeccompRule {
        action: SeccompAction::KillProcess,
        syscalls: vec!["write".into()],
        args: vec![],
        from: Origin::spec("linux.seccomp.syscalls[2]"),
    });
    let r = run_within(&plan, 15, || {});
    assert_eq!(r.status, 250, "out: {}\nerr: {}", r.out, r.err);
    assert!(
        r.err.contains("step spawn_workload") && r.err.contains("died before its exec (killed by signal 31)"),
        "{}",
        r.err
    );
    assert_nothing_left(&r, "child dies before exec");
}

/// Issue 10 item 7: a supervisor that does not take its signals (stopped
/// here; spinning in the issue) must not make the launcher ignore SIGTERM:
/// the first is forwarded, the second kills the supervisor. Before the fix
/// the launcher forwarded both to the stopped supervisor and waited forever.
fn case_launcher_second_term_kills(root: &Path, id: &str) {
    let plan = sample(root, id, "sleep 30");
    let r = run_guarded(
        id,
        || {
            let mut l = launch(&plan, None, "", None, || {});
            l.deadline = Duration::from_secs(15);
            l
        },
        |launcher| {
            // The state record's `supervisor PID` line, written after the clone.
            let state = format!("/run/sandboxctl/{id}.state");
            let deadline = Instant::now() + Duration::from_secs(10);
            let sup = loop {
                if let Some(p) = fs::read_to_string(&state).ok().and_then(|s| {
                    s.lines()
                        .find_map(|l| l.strip_prefix("supervisor ").and_then(|v| v.trim().parse::<i32>().ok()))
                }) {
                    break p;
                }
                assert!(Instant::now() < deadline, "no supervisor pid");
                std::thread::sleep(Duration::from_millis(5));
            };
            std::thread::sleep(Duration::from_millis(200));
            // SAFETY: kill has no memory arguments.
            unsafe {
                libc::kill(sup, libc::SIGSTOP);
                libc::kill(launcher, libc::SIGTERM);
            }
            std::thread::sleep(Duration::from_millis(200));
            // SAFETY: as above.
            unsafe { libc::kill(launcher, libc::SIGTERM) };
        },
    );
    assert_eq!(r.status, 128 + libc::SIGKILL, "out: {}\nerr: {}", r.out, r.err);
    assert_nothing_left(&r, "second SIGTERM");
}

/// Issue 10 item 10: a spec's network namespace path that is a FIFO, a
/// regular file, or a namespace of another kind fails fast with a clear
/// error, and nothing is left (before the fix the FIFO hung the launcher in
/// open(2), and a regular file failed in setns with a bare EINVAL).
fn case_ns_path_checked(root: &Path, id0: &str) {
    let dir = std::env::temp_dir().join(format!("sbx-ns-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let file = dir.join("file");
    fs::write(&file, "").unwrap();
    for (tag, path, want) in [
        ("fifo", fifo.clone(), "not a namespace file"),
        ("file", file.clone(), "not a namespace file"),
        (
            "ipc",
            PathBuf::from("/proc/self/ns/ipc"),
            "a ipc namespace, not a net namespace",
        ),
    ] {
        let id = format!("{id0}{tag}");
        let mut p = sample(root, &id, "echo started");
        p.network = Sourced::new(
            NetworkMode::Join(path.clone()),
            Origin::spec("linux.namespaces[1].path"),
        );
        p.namespaces.net = Sourced::new(Namespace::Join(path.clone()), Origin::spec("linux.namespaces[1].path"));
        p.mounts.retain(|m| m.fstype != "sysfs");
        // Preflight names the path first (doctor's list); the join step's
        // own check is the one under test here.
        let start = Instant::now();
        let r = run_within(&p, 10, || std::env::set_var("SBX_TEST_SKIP_PREFLIGHT", "1"));
        assert!(start.elapsed() < Duration::from_secs(5), "{tag}: slow");
        assert_eq!(r.status, 250, "{tag}: out: {}\nerr: {}", r.out, r.err);
        assert!(
            r.err.contains("step join_namespaces") && r.err.contains(want),
            "{tag}: {}",
            r.err
        );
        assert!(!r.out.contains("started"), "{tag}");
        assert_nothing_left(&r, tag);
    }
    let _ = fs::remove_dir_all(&dir);
}

// ----- issue 10: the filesystem side of the policy ceiling ----------------

/// Host mounts a case made, unmounted (lazily) and removed on drop, with
/// the directories it names.
struct HostMounts {
    mounts: Vec<PathBuf>,
    dirs: Vec<PathBuf>,
}

impl Drop for HostMounts {
    fn drop(&mut self) {
        for m in self.mounts.iter().rev() {
            let c = std::ffi::CString::new(m.as_os_str().as_encoded_bytes()).unwrap();
            // SAFETY: valid C string.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
        for d in &self.dirs {
            let _ = fs::remove_dir_all(d);
        }
    }
}

/// Mounts a small tmpfs at `at` on the host (the test's own namespace).
fn host_tmpfs(at: &Path) {
    fs::create_dir_all(at).unwrap();
    let c = std::ffi::CString::new(at.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: valid C strings.
    let rc = unsafe {
        libc::mount(
            c"tmpfs".as_ptr(),
            c.as_ptr(),
            c"tmpfs".as_ptr(),
            0,
            c"size=64k".as_ptr().cast(),
        )
    };
    assert_eq!(
        rc,
        0,
        "mount tmpfs at {}: {}",
        at.display(),
        std::io::Error::last_os_error()
    );
}

/// Whether anything is mounted at or under `path` in the test's (the host's) namespace.
fn host_mounted_under(path: &Path) -> bool {
    let p = path.display().to_string();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|m| m == p || m.starts_with(&format!("{p}/")))
}

fn bind(
    target: &str,
    source: &Path,
    flags: &[sandboxctl::plan::MountFlag],
    within: Option<&Path>,
) -> sandboxctl::plan::Mount {
    sandboxctl::plan::Mount {
        target: target.into(),
        fstype: "bind".into(),
        source: source.display().to_string(),
        flags: flags.iter().copied().collect(),
        data: String::new(),
        source_within: within.map(|w| Sourced::new(w.to_path_buf(), Origin::Default)),
        from: Origin::spec("mounts[9]"),
    }
}

fn tmpfs_at(target: &str) -> sandboxctl::plan::Mount {
    sandboxctl::plan::Mount {
        target: target.into(),
        fstype: "tmpfs".into(),
        source: "tmpfs".into(),
        flags: [sandboxctl::plan::MountFlag::Nosuid].into_iter().collect(),
        data: "size=64k".into(),
        source_within: None,
        from: Origin::spec("mounts[9]"),
    }
}

/// Item 1, through the binary and the compiler: a spec device named `/etc`
/// (number 1:3, in the default ceiling) is a bind of the host's /dev/null,
/// checked to be c 1:3, not of the host's /etc; a device outside the ceiling
/// (the host's disk) is refused before anything is made.
fn case_spec_device_is_the_node(root: &Path, id: &str) {
    let spec_dir = std::env::temp_dir().join(format!("sbx-spec-{id}"));
    let _cleanup = HostMounts {
        mounts: vec![],
        dirs: vec![spec_dir.clone()],
    };
    fs::create_dir_all(&spec_dir).unwrap();
    let spec_path = spec_dir.join("config.json");
    let write_spec = |devices: serde_json::Value| {
        let text = fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/golden/inputs/runc-spec.json"
        ))
        .unwrap();
        let mut spec: serde_json::Value = serde_json::from_str(&text).unwrap();
        spec["root"]["path"] = root.display().to_string().into();
        spec["process"]["args"] = serde_json::json!([
            "/bin/sh",
            "-c",
            "test -c /dev/hostetc && echo etc-is-a-char-device; ls /dev/hostetc/ 2>&1 | head -3; cat /proc/self/mountinfo | grep ' /dev/hostetc ' | sed 's/^/mi /'"
        ]);
        spec["process"]["terminal"] = false.into();
        spec["linux"]["devices"] = devices;
        fs::write(&spec_path, serde_json::to_string_pretty(&spec).unwrap()).unwrap();
    };
    let apply = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_sandboxctl"))
            .args(["apply", "--policy", "untrusted", "--id", id, "--spec"])
            .arg(&spec_path)
            .output()
            .unwrap()
    };
    // The issue's spec: devices named /etc and /tmp. Each is a bind of the
    // host's /dev/null (1:3), which cannot go over a directory: apply fails,
    // naming it, and the host's /etc and /tmp were never opened.
    write_spec(serde_json::json!([
        {"path": "/etc", "type": "c", "major": 1, "minor": 3, "fileMode": 438},
        {"path": "/tmp", "type": "c", "major": 1, "minor": 3, "fileMode": 438}
    ]));
    let out = apply();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "the host's /etc was bound: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        err.contains("/etc inside the root is a directory, the source is not a directory"),
        "{err}"
    );
    // A device at a fresh path: the null device, nosuid and noexec.
    write_spec(serde_json::json!([{"path": "/dev/hostetc", "type": "c", "major": 1, "minor": 3, "fileMode": 438}]));
    let out = apply();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{text}{err}");
    assert!(
        text.contains("etc-is-a-char-device"),
        "not the null device:\n{text}\n{err}"
    );
    assert!(
        !text.contains("passwd") && !text.contains("hostname"),
        "the host's /etc is visible:\n{text}"
    );
    let mi = line(&text, "mi ");
    assert!(
        mi.contains("nosuid") && mi.contains("noexec"),
        "device bind without nosuid,noexec: {mi}"
    );

    write_spec(serde_json::json!([{"path": "/dev/sda", "type": "b", "major": 8, "minor": 0, "fileMode": 438}]));
    let out = apply();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "a block device outside the ceiling was allowed: {err}"
    );
    assert!(err.contains("device ceiling"), "{err}");
    assert!(!Path::new(&format!("/run/sandboxctl/{id}.pid")).exists());
}

/// Item 1, at apply: a plan whose device source is not that device (a
/// directory, here the host's /etc) fails before any mount, naming what it
/// found; nothing is left.
fn case_device_source_checked(root: &Path, id: &str) {
    let mut p = sample(root, id, "ls /dev");
    p.devices[0].source = Some("/etc".into());
    // Preflight (doctor's list) names it first ...
    let r = run(&p, None);
    assert_eq!(r.status, 250, "apply did not fail: {}", r.out);
    assert!(
        r.err.contains("does not meet") && r.err.contains("/etc is not the device c 1:3 (it is a directory)"),
        "{}",
        r.err
    );
    assert_nothing_left(&r, "device source (preflight)");
    // ... and the step's own check holds when the host changed after it.
    let r = run_guarded(
        &p.id,
        || launch(&p, None, "", None, || std::env::set_var("SBX_TEST_SKIP_PREFLIGHT", "1")),
        |_| {},
    );
    assert_eq!(r.status, 250, "apply did not fail: {}", r.out);
    assert!(
        r.err.contains("step supervisor_ids") && r.err.contains("/etc is not the device c 1:3 (it is a directory)"),
        "{}",
        r.err
    );
    assert_nothing_left(&r, "device source");
}

/// Item 2: destinations resolve inside the root. The rootfs (attacker
/// content) holds `escape -> /etc`; a mount and a device under `/escape/`
/// and a mount at `/../../../../tmp/...` land inside the root, never in the
/// host's /etc or /tmp.
fn case_destinations_stay_in_root(shared: &Path, id: &str) {
    let root = build_rootfs_named(&shared.join("bin/busybox"), "-dest");
    let _cleanup = HostMounts {
        mounts: vec![],
        dirs: vec![root.clone()],
    };
    symlink("/etc", root.join("escape")).unwrap();
    let probe = format!("sbx-probe-{id}");
    let dotdot = format!("sbx-dotdot-{id}");
    let mut p = sample(
        &root,
        id,
        &format!(
            "ls -d /etc/{probe} /etc/{probe}-null /tmp/{dotdot} 2>&1; test -c /etc/{probe}-null && echo node-inside"
        ),
    );
    // The host's user namespace (as network-host): the supervisor holds
    // every capability of the host, and nodes are made with mknod.
    p.namespaces.user = Sourced::new(Namespace::Host, Origin::rule("host-network-keeps-host-user-ns"));
    p.id_maps.uid.clear();
    p.id_maps.gid.clear();
    p.id_maps.setgroups = sandboxctl::plan::SetGroups::Allow;
    p.mounts.push(tmpfs_at(&format!("/escape/{probe}")));
    p.mounts.push(tmpfs_at(&format!("/../../../../tmp/{dotdot}")));
    for d in &mut p.devices {
        d.how = sandboxctl::plan::DeviceHow::Mknod;
        d.source = None;
    }
    let mut dev = p.devices[0].clone();
    dev.path = format!("/escape/{probe}-null").into();
    p.devices.push(dev);
    let r = run(&p, None);
    assert_eq!(r.status, 0, "{}\n{}", r.err, r.out);
    assert!(r.out.contains("node-inside"), "{}", r.out);
    for host in [
        format!("/etc/{probe}"),
        format!("/etc/{probe}-null"),
        format!("/tmp/{dotdot}"),
    ] {
        assert!(!Path::new(&host).exists(), "{host} was made on the host");
        assert!(!host_mounted_under(Path::new(&host)), "{host} is mounted on the host");
    }
    // Made inside the root instead (the rootfs's own /etc).
    assert!(root.join("etc").join(&probe).is_dir(), "not made inside the root");
    assert_nothing_left(&r, "destinations");
}

/// Item 3: the bind source is checked after resolution. Under the allowed
/// path, `link -> /etc` is refused (the fd resolves to /etc); `ok -> sub`
/// (inside the allowed path) is bound.
fn case_bind_source_resolved(root: &Path, id: &str) {
    use sandboxctl::plan::MountFlag::{Rbind, Ro};
    let allowed = std::env::temp_dir().join(format!("sbx-allowed-{id}"));
    let _cleanup = HostMounts {
        mounts: vec![],
        dirs: vec![allowed.clone()],
    };
    fs::create_dir_all(allowed.join("sub")).unwrap();
    fs::write(allowed.join("sub/inside"), "inside\n").unwrap();
    symlink("/etc", allowed.join("link")).unwrap();
    symlink("sub", allowed.join("ok")).unwrap();
    let mut p = sample(root, id, "ls /tmp/b");
    p.mounts
        .push(bind("/tmp/b", &allowed.join("link"), &[Rbind, Ro], Some(&allowed)));
    let r = run(&p, None);
    assert_eq!(r.status, 250, "the link to /etc was bound: {}", r.out);
    assert!(
        r.err.contains("resolves to /etc, outside the allowed host path"),
        "{}",
        r.err
    );
    assert!(!r.out.contains("passwd"), "{}", r.out);
    assert_nothing_left(&r, "bind source");

    let mut p = sample(root, id, "cat /tmp/b/inside");
    p.mounts
        .push(bind("/tmp/b", &allowed.join("ok"), &[Rbind, Ro], Some(&allowed)));
    let r = run(&p, None);
    assert_eq!(r.status, 0, "{}", r.err);
    assert_eq!(r.out.trim(), "inside");
}

/// Item 4: read-only reaches every submount: of a read-only bind (a host
/// tmpfs under its source), of the cgroup bind (each v1 hierarchy), and of
/// a read-only root (a tmpfs mounted inside the rootfs). Writes fail with
/// EROFS from inside; nothing appears on the host.
fn case_readonly_recursive(shared: &Path, id: &str) {
    readonly_recursive(shared, id, false);
}

/// [`case_readonly_recursive`] as on a kernel without mount_setattr (before
/// 5.12): the launcher's mount_setattr calls fail with ENOSYS
/// (`SANDBOXCTL_NO_MOUNT_SETATTR`, fault-injection builds) and the remount
/// walk of /proc/self/mountinfo does the same work.
fn case_readonly_recursive_fallback(shared: &Path, id: &str) {
    if !cfg!(feature = "fault-injection") {
        println!("    skipped: forcing the fallback needs --features fault-injection");
        return;
    }
    readonly_recursive(shared, id, true);
}

fn readonly_recursive(shared: &Path, id: &str, no_mount_setattr: bool) {
    use sandboxctl::plan::MountFlag::{Nodev, Noexec, Nosuid, Rbind, Ro};
    let tag = if no_mount_setattr { "-ro2" } else { "-ro" };
    let root = build_rootfs_named(&shared.join("bin/busybox"), tag);
    fs::create_dir_all(root.join("c")).unwrap();
    let src = std::env::temp_dir().join(format!("sbx-robind-{id}"));
    let mut cleanup = HostMounts {
        mounts: vec![],
        dirs: vec![],
    };
    host_tmpfs(&src.join("sub"));
    cleanup.mounts.push(src.join("sub"));
    host_tmpfs(&root.join("mnt"));
    cleanup.mounts.push(root.join("mnt"));
    cleanup.dirs.extend([src.clone(), root.clone()]);
    let mut p = sample(
        &root,
        id,
        "touch /c/sub/x 2>&1 | sed 's/^/bindsub /'; touch /mnt/x 2>&1 | sed 's/^/rootsub /'; \
         mkdir /sys/fs/cgroup/memory/sbx-x 2>&1 | sed 's/^/cgroup /'; \
         grep ' /sys/fs/cgroup' /proc/self/mountinfo | sed 's/^/mi /'",
    );
    p.workload.seccomp = None; // mkdir must reach the kernel
    p.mounts.push(bind("/c", &src, &[Rbind, Ro], None));
    p.mounts.push(bind(
        "/sys/fs/cgroup",
        Path::new("/sys/fs/cgroup"),
        &[Rbind, Ro, Nosuid, Nodev, Noexec],
        None,
    ));
    let setup = move || {
        if no_mount_setattr {
            std::env::set_var("SANDBOXCTL_NO_MOUNT_SETATTR", "1");
        }
    };
    let r = run_guarded(id, || launch(&p, None, "", None, setup), |_| {});
    assert_eq!(r.status, 0, "{}\n{}", r.err, r.out);
    for what in ["bindsub", "rootsub", "cgroup"] {
        assert!(
            r.out
                .lines()
                .any(|l| l.starts_with(what) && l.contains("Read-only file system")),
            "{what} writable:\n{}",
            r.out
        );
    }
    let mi: Vec<&str> = r.out.lines().filter(|l| l.starts_with("mi ")).collect();
    assert!(mi.len() > 2, "no cgroup hierarchies seen: {}", r.out);
    for l in &mi {
        let opts = l.split(' ').nth(6).unwrap_or("");
        assert!(
            opts.split(',').any(|o| o == "ro") && opts.contains("nosuid") && opts.contains("noexec"),
            "a cgroup mount is not ro,nosuid,noexec: {l}"
        );
    }
    assert!(
        !src.join("sub/x").exists() && !root.join("mnt/x").exists(),
        "written on the host"
    );
    assert!(!Path::new("/sys/fs/cgroup/memory/sbx-x").exists());
    assert_nothing_left(&r, "read-only recursion");
}

/// Item 4 with the embedded spec (the host's root, read-only, through the
/// binary): a host tmpfs under the root is read-only inside too.
fn case_embedded_root_submounts_readonly(_root: &Path, id: &str) {
    let dir = PathBuf::from(format!("/var/tmp/sbx-ro-{id}"));
    let mut cleanup = HostMounts {
        mounts: vec![],
        dirs: vec![],
    };
    host_tmpfs(&dir);
    cleanup.mounts.push(dir.clone());
    cleanup.dirs.push(dir.clone());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sandboxctl"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "apply",
            "--policy",
            "policies/default.toml",
            "--id",
            id,
            "--",
            "/bin/sh",
            "-c",
        ])
        .arg(format!("touch {}/x 2>&1; echo done", dir.display()))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        text.contains("Read-only file system"),
        "host tmpfs writable inside: {text}"
    );
    assert!(!dir.join("x").exists(), "written on the host");
}

/// Item 9: chroot mode. The workload is given CAP_SYS_CHROOT here (the
/// compiler would drop it) and runs the classic chroot-and-climb; the root
/// moved over `/` keeps it inside, so a host file outside the root stays
/// unreadable. The root is read-only (the bundle root that used to fail
/// with `remount / bind,ro: EINVAL`).
fn case_chroot_escape(shared: &Path, id: &str) {
    use sandboxctl::plan::{CapSets, RootChange};
    use sandboxctl::vocab::Cap;
    let root = build_rootfs_named(&shared.join("bin/busybox"), "-chroot");
    let marker = std::env::temp_dir().join(format!("sbx-chroot-marker-{id}"));
    let _cleanup = HostMounts {
        mounts: vec![],
        dirs: vec![root.clone()],
    };
    fs::write(&marker, "host secret\n").unwrap();
    fs::create_dir_all(root.join("esc")).unwrap();
    fs::copy(std::env::current_exe().unwrap(), root.join("bin/escape")).unwrap();
    let marker_arg = marker.display().to_string();
    let mut p = sample_of(
        Sample::applied(&root).args(&["/bin/escape", "--chroot-escape", &marker_arg]),
        id,
    );
    p.root.change = Sourced::new(RootChange::Chroot, Origin::Default);
    p.root.readonly = Sourced::new(true, Origin::spec("root.readonly"));
    p.workload.seccomp = None;
    p.workload.no_new_privs.value = false;
    let chroot: std::collections::BTreeSet<Cap> = [Cap(caps::Capability::CAP_SYS_CHROOT)].into();
    p.workload.capabilities.value = CapSets {
        bounding: chroot.clone(),
        effective: chroot.clone(),
        inheritable: chroot.clone(),
        permitted: chroot.clone(),
        ambient: chroot,
    };
    let r = run(&p, None);
    let _ = fs::remove_file(&marker);
    assert_eq!(r.status, 0, "{}\n{}", r.err, r.out);
    assert!(
        r.out.contains("chroot-ok"),
        "the helper's chroot did not run: {}",
        r.out
    );
    assert!(!r.out.contains("host secret"), "escaped the chroot: {}", r.out);
    assert!(r.out.contains("CONTAINED"), "{}", r.out);
    assert!(r.out.contains("root-write: Read-only file system"), "{}", r.out);
    assert_nothing_left(&r, "chroot");
}

/// Inside the chroot-mode sandbox: the classic escape (chroot into a
/// subdirectory, climb `..` from the cwd left outside it, chroot there),
/// then try to read `marker`, a host file outside the root.
fn chroot_escape_helper(marker: &str) -> ! {
    let c = |s: &str| std::ffi::CString::new(s).unwrap();
    // SAFETY: valid C strings; this process is single-threaded.
    unsafe {
        let fd = libc::open(c("/rootwrite").as_ptr(), libc::O_CREAT | libc::O_WRONLY, 0o644);
        if fd < 0 {
            println!(
                "root-write: {}",
                std::io::Error::last_os_error().to_string().split(" (").next().unwrap()
            );
        }
        if libc::chroot(c("/esc").as_ptr()) == 0 {
            println!("chroot-ok");
        }
        for _ in 0..64 {
            libc::chdir(c("..").as_ptr());
        }
        libc::chroot(c(".").as_ptr());
    }
    match fs::read_to_string(marker) {
        Ok(t) => println!("ESCAPED {t}"),
        Err(_) => println!("CONTAINED"),
    }
    std::process::exit(0)
}

/// The real binary, with `args`, from the crate's directory.
fn sandboxctl(args: &[&str]) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_sandboxctl"));
    c.current_dir(env!("CARGO_MANIFEST_DIR")).args(args);
    c
}

/// Runs the real binary to its end: (exit status, stdout, stderr).
fn sandboxctl_out(args: &[&str]) -> (i32, String, String) {
    let o = sandboxctl(args).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Whether `pid` runs (a zombie, dead and not yet reaped, does not).
fn running(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, rest)| !rest.trim_start().starts_with('Z')))
        .unwrap_or(false)
}

/// The children of `pid` (its threads' `children` lists).
fn children(pid: i32) -> Vec<i32> {
    fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Waits (10 s at most) until `f` holds.
fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The cgroup directories of sandbox `id` that exist.
fn cgroup_dirs(id: &str) -> Vec<PathBuf> {
    fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("sandboxctl").join(id))
        .filter(|p| p.exists())
        .collect()
}

/// Removes sandbox `id`'s cgroups and the state directory, whatever happened.
struct BinGuard {
    ids: Vec<String>,
    root: PathBuf,
    launchers: Vec<std::process::Child>,
}

impl Drop for BinGuard {
    fn drop(&mut self) {
        for c in &mut self.launchers {
            let _ = c.kill();
            let _ = c.wait();
        }
        for id in &self.ids {
            for dir in cgroup_dirs(id) {
                for p in fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default().lines() {
                    // SAFETY: kill has no memory arguments.
                    unsafe { libc::kill(p.parse().unwrap_or(0), libc::SIGKILL) };
                }
                let deadline = Instant::now() + Duration::from_secs(2);
                while fs::remove_dir(&dir).is_err() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
        let _ = fs::remove_dir_all(&self.root);
    }
}

/// Issue 11 item 4: `kill -KILL` of the launcher of `apply … -- sleep 30`
/// takes the supervisor and the workload with it; its state file and
/// cgroups stay until `sandboxctl gc`, which removes them and leaves a live
/// sandbox (its state, cgroups and processes) alone; the same command with
/// the same id then runs again.
fn case_die_with_launcher_and_gc(_root: &Path, id: &str) {
    let root = std::env::temp_dir().join(format!("sbx-state-{id}"));
    let live = format!("{id}-live");
    let mut g = BinGuard {
        ids: vec![id.into(), live.clone()],
        root: root.clone(),
        launchers: Vec::new(),
    };
    let r = root.to_str().unwrap();
    let start = |sid: &str| {
        sandboxctl(&[
            "--root",
            r,
            "apply",
            "--policy",
            "untrusted",
            "--id",
            sid,
            "--",
            "/bin/sleep",
            "30",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
    };
    g.launchers.push(start(id));
    g.launchers.push(start(&live));
    let state = |sid: &str| root.join(format!("{sid}.state"));
    let supervisor = |sid: &str| -> i32 {
        let mut pid = 0;
        wait_until("the supervisor's pid is recorded", || {
            pid = fs::read_to_string(state(sid))
                .unwrap_or_default()
                .lines()
                .find_map(|l| l.strip_prefix("supervisor ").and_then(|p| p.parse().ok()))
                .unwrap_or(0);
            pid != 0
        });
        pid
    };
    let (sup, live_sup) = (supervisor(id), supervisor(&live));
    let mut workload = 0;
    wait_until("the workload runs", || {
        workload = children(sup).first().copied().unwrap_or(0);
        workload != 0
            && fs::read_to_string(format!("/proc/{workload}/cmdline")).is_ok_and(|c| c.starts_with("/bin/sleep"))
    });
    let live_cgroups = cgroup_dirs(&live);
    assert!(!live_cgroups.is_empty() && !cgroup_dirs(id).is_empty());

    // SIGKILL to the first launcher only.
    let mut first = g.launchers.remove(0);
    first.kill().unwrap();
    first.wait().unwrap();
    wait_until("the supervisor and the workload died with their launcher", || {
        !running(sup) && !running(workload)
    });
    assert!(
        state(id).exists(),
        "the killed launch's state file was removed by nobody"
    );
    assert!(
        !cgroup_dirs(id).is_empty(),
        "the killed launch's cgroups are its leftovers"
    );

    // gc --dry-run changes nothing; gc removes the dead launch only.
    let (code, out, err) = sandboxctl_out(&["--root", r, "gc", "--dry-run"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("would remove {id}:")), "{out}");
    assert!(state(id).exists() && !cgroup_dirs(id).is_empty());
    let (code, out, err) = sandboxctl_out(&["--root", r, "gc"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("removed {id}: state file, ")), "{out}");
    assert!(out.contains("1 dead launch removed, 1 live sandbox untouched"), "{out}");
    assert!(!state(id).exists(), "state file left");
    assert_eq!(cgroup_dirs(id), Vec::<PathBuf>::new(), "cgroups left");
    assert!(state(&live).exists(), "gc removed a live sandbox's state file");
    assert_eq!(cgroup_dirs(&live), live_cgroups, "gc touched a live sandbox's cgroups");
    assert!(running(live_sup), "gc touched a live sandbox's supervisor");

    // The same command, same id, runs again.
    let (code, out, err) = sandboxctl_out(&[
        "--root",
        r,
        "apply",
        "--policy",
        "untrusted",
        "--id",
        id,
        "--",
        "/bin/true",
    ]);
    assert_eq!(code, 0, "{out}{err}");

    // The live one ends normally (TERM is forwarded) and leaves nothing.
    let mut second = g.launchers.remove(0);
    // SAFETY: kill has no memory arguments.
    unsafe { libc::kill(second.id() as i32, libc::SIGTERM) };
    let status = second.wait().unwrap();
    assert_eq!(status.code(), Some(128 + libc::SIGTERM), "{status:?}");
    assert!(!state(&live).exists() && cgroup_dirs(&live).is_empty());
    let (_, out, _) = sandboxctl_out(&["--root", r, "gc"]);
    assert!(
        out.contains("gc: 0 dead launches removed, 0 live sandboxes untouched"),
        "{out}"
    );
}

/// Issue 11 item 5: the same command launched 8 times at once, without an
/// id: every launch succeeds (each gets its own id), and nothing is left.
fn case_concurrent_applies(_root: &Path, id: &str) {
    let root = std::env::temp_dir().join(format!("sbx-state-{id}"));
    let r = root.to_str().unwrap().to_string();
    let mut g = BinGuard {
        ids: Vec::new(),
        root: root.clone(),
        launchers: Vec::new(),
    };
    for policy in ["default", "untrusted"] {
        for _ in 0..8 {
            g.launchers.push(
                sandboxctl(&["--root", &r, "apply", "--policy", policy, "--", "/bin/sleep", "1"])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap(),
            );
        }
        for c in g.launchers.drain(..) {
            let o = c.wait_with_output().unwrap();
            assert!(
                o.status.success(),
                "{policy}: a concurrent launch failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        let left: Vec<_> = fs::read_dir(&root)
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{policy}: state left: {left:?}");
    }
}

/// doctor and apply agree on the state directory: where no file can be
/// made (procfs), doctor names it and apply fails at its first step; in a
/// fresh directory both succeed.
fn case_state_root_doctor_agrees(_root: &Path, id: &str) {
    let bad = format!("/proc/sbx-{id}");
    let (code, out, _) = sandboxctl_out(&["--root", &bad, "doctor", "--", "/bin/true"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("the state file under {bad}")), "{out}");
    let (code, _, err) = sandboxctl_out(&["--root", &bad, "apply", "--", "/bin/true"]);
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("step state_file"), "{err}");
    let good = std::env::temp_dir().join(format!("sbx-state-{id}/nested"));
    let g = good.to_str().unwrap();
    let (code, out, _) = sandboxctl_out(&["--root", g, "doctor", "--", "/bin/true"]);
    assert_eq!(code, 0, "{out}");
    assert!(!good.exists(), "doctor made the state directory");
    let (code, out, err) = sandboxctl_out(&["--root", g, "apply", "--", "/bin/true"]);
    assert_eq!(code, 0, "{out}{err}");
    let _ = fs::remove_dir_all(good.parent().unwrap());
}

/// Issue 14: the state root on a read-only filesystem, and on a full one
/// (a tiny tmpfs, filled): doctor names it (exit 1) and apply fails at its
/// first step (exit 125), each in one line naming the root, the reason
/// (EROFS, ENOSPC) and what to do (`--root DIR`); nothing is left on either
/// filesystem (apply makes the missing `run/` and removes it again) nor in
/// any cgroup hierarchy. The two mounts are made in a private mount
/// namespace (`unshare -m`), so they go with it whatever happens.
fn case_state_root_read_only_or_full(_root: &Path, id: &str) {
    let base = std::env::temp_dir().join(format!("sbx-stateroot-{id}"));
    let (ro, full) = (base.join("ro"), base.join("full"));
    fs::create_dir_all(&ro).unwrap();
    fs::create_dir_all(&full).unwrap();
    let script = r#"
B=$1; RO=$2; FULL=$3; ID=$4
mount -t tmpfs -o ro,size=64k tmpfs "$RO" || exit 90
mount -t tmpfs -o size=16k tmpfs "$FULL" || exit 91
dd if=/dev/zero of="$FULL/fill" bs=4k count=100 2>/dev/null
for r in "$RO/run" "$FULL/run"; do
  echo "== doctor $r"; "$B" --root "$r" doctor -- /bin/true 2>&1; echo "== rc $?"
  echo "== apply $r"; "$B" --root "$r" apply --id "$ID" -- /bin/true 2>&1; echo "== rc $?"
  echo "== left $r"; ls -A "$(dirname "$r")"
done
echo "== end"
"#;
    let out = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", script, "sh"])
        .arg(env!("CARGO_BIN_EXE_sandboxctl"))
        .arg(&ro)
        .arg(&full)
        .arg(id)
        .output()
        .unwrap();
    let _ = fs::remove_dir_all(&base);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("== end"),
        "{}{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    // miette wraps long lines (`\n  │ `, at spaces or hyphens): sections
    // and expected texts are compared without any white space.
    let squeeze = |t: &str| -> String { t.chars().filter(|c| !c.is_whitespace() && *c != '│').collect() };
    let mut sections = std::collections::BTreeMap::new();
    let mut name = String::new();
    for line in text.lines() {
        match line.strip_prefix("== ") {
            Some(n) if !n.starts_with("rc ") => name = n.to_string(),
            _ => sections
                .entry(name.clone())
                .or_insert_with(String::new)
                .push_str(&squeeze(line)),
        }
    }
    for (r, errno, reason) in [
        (
            ro.join("run"),
            "EROFS",
            "its filesystem is read-only: give --root DIR on a writable filesystem",
        ),
        (
            full.join("run"),
            "ENOSPC",
            "its filesystem is full: free space there, or give --root DIR on another filesystem",
        ),
    ] {
        let r = r.display();
        let doctor = &sections[&format!("doctor {r}")];
        assert!(
            doctor.contains(&squeeze(&format!("the state file under {r} (cannot make a file in ")))
                && doctor.contains(&format!("({errno})"))
                && doctor.contains(&squeeze(reason)),
            "doctor: {doctor}"
        );
        let apply = &sections[&format!("apply {r}")];
        assert!(
            apply.contains(&squeeze(&format!(
                "apply: cannot make the sandbox's state file under {r} (cli:--root): "
            ))) && apply.contains(&squeeze(&format!("({errno}); {reason}"))),
            "apply: {apply}"
        );
    }
    // Exit codes: doctor 1, apply 125, twice.
    let codes: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("== rc ")).collect();
    assert_eq!(codes, ["1", "125", "1", "125"], "{text}");
    let left = |r: PathBuf| {
        sections
            .get(&format!("left {}", r.display()))
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(left(ro.join("run")), "", "left on the read-only fs");
    assert_eq!(left(full.join("run")), "fill", "left on the full fs");
    for h in fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let d = h.path().join("sandboxctl").join(id);
        assert!(!d.exists(), "{} left", d.display());
    }
}

/// Issue 11 item 6: `network-host` on this host, with the embedded spec and
/// with a runc-style bundle: doctor and apply agree (both succeed), /sys is
/// the host's, read-only, and /sys/fs/cgroup is there; a plan file with a
/// fresh sysfs mount in the host's network namespace is named by doctor and
/// refused by apply the same way.
fn case_network_host(root: &Path, id: &str) {
    let script = "ls /sys/class/net; touch /sys/probe 2>&1; ls /sys/fs/cgroup | grep -c .";
    let host_nets = {
        let mut v: Vec<String> = fs::read_dir("/sys/class/net")
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let check = |what: &str, out: &str| {
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            &lines[..host_nets.len()],
            &host_nets[..],
            "{what}: not the host's /sys: {out}"
        );
        assert!(out.contains("Read-only file system"), "{what}: /sys is writable: {out}");
        let n: usize = lines.last().unwrap().trim().parse().unwrap_or(0);
        assert!(n > 0, "{what}: /sys/fs/cgroup empty: {out}");
    };
    // Embedded spec.
    let embedded = ["--policy", "network-host", "--", "/bin/sh", "-c", script];
    let (code, out, err) = sandboxctl_out(&[&["doctor"][..], &embedded].concat());
    assert_eq!(code, 0, "doctor: {out}{err}");
    assert!(out.starts_with("ok:"), "{out}");
    let (code, out, err) = sandboxctl_out(&[&["apply", "--id", id][..], &embedded].concat());
    assert_eq!(code, 0, "apply (embedded spec): {out}{err}");
    check("embedded spec", &out);

    // A runc bundle (runc's own spec, its capabilities left out: issue 11
    // item 1 is another's) on the busybox root.
    let bundle = std::env::temp_dir().join(format!("sbx-bundle-{id}"));
    let _ = fs::remove_dir_all(&bundle);
    fs::create_dir_all(&bundle).unwrap();
    symlink(root, bundle.join("rootfs")).unwrap();
    let spec = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/inputs/runc-spec.json");
    let mut v: serde_json::Value = serde_json::from_str(&fs::read_to_string(spec).unwrap()).unwrap();
    v["process"]["args"] = serde_json::json!(["/bin/sh", "-c", script]);
    v["process"]["terminal"] = serde_json::json!(false);
    v["process"].as_object_mut().unwrap().remove("capabilities");
    v["root"]["path"] = serde_json::json!("rootfs");
    fs::write(bundle.join("config.json"), v.to_string()).unwrap();
    let b = bundle.to_str().unwrap();
    let (code, out, err) = sandboxctl_out(&["doctor", "--policy", "network-host", "--bundle", b]);
    assert_eq!(code, 0, "doctor (bundle): {out}{err}");
    let (code, out, err) = sandboxctl_out(&["apply", "--policy", "network-host", "--id", id, "--bundle", b]);
    assert_eq!(code, 0, "apply (bundle): {out}{err}");
    check("runc bundle", &out);

    // A plan file that mounts a fresh sysfs in the host's network namespace.
    let plan = bundle.join("plan.toml");
    let (code, _, err) = sandboxctl_out(&[
        "plan",
        "--policy",
        "network-host",
        "--bundle",
        b,
        "--format",
        "toml",
        "-o",
        plan.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let text = fs::read_to_string(&plan).unwrap();
    let bind = "fstype = \"bind\"\nsource = \"/sys\"\nflags = [\"rbind\", \"ro\", \"nosuid\", \"nodev\", \"noexec\"]\ndata = \"\"\nfrom = \"rule:sysfs-in-host-netns-is-ro-bind\"";
    assert!(text.contains(bind), "{text}");
    let fresh = "fstype = \"sysfs\"\nsource = \"sysfs\"\nflags = [\"ro\", \"nosuid\", \"nodev\", \"noexec\"]\ndata = \"\"\nfrom = \"spec:mounts[5]\"";
    fs::write(&plan, text.replace(bind, fresh)).unwrap();
    let p = plan.to_str().unwrap();
    let (code, out, _) = sandboxctl_out(&["doctor", "--plan", p]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("a fresh sysfs mount at /sys"), "{out}");
    let (code, _, err) = sandboxctl_out(&["apply", "--plan", p, "--id", id]);
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("a fresh sysfs mount at /sys"), "{err}");
    let _ = fs::remove_dir_all(&bundle);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--chroot-escape") {
        chroot_escape_helper(&args[2]);
    }
    if args.get(1).map(String::as_str) == Some("--probe-ptrace") {
        probe_ptrace();
    }
    if args.get(1).map(String::as_str) == Some("--probe-thread-refused") {
        trace::probe_thread_refused();
    }
    let cases: &[(&str, Case)] = &[
        ("inside", case_inside),
        ("fds", case_fds),
        ("plan_memfd", case_plan_memfd),
        ("loopback", case_loopback),
        ("cgroup_host_ns", case_cgroup_host_ns),
        ("cgroup_v2_join", case_cgroup_v2_join),
        ("exit_status", case_exit_status),
        ("readme_quick_start", case_readme_quick_start),
        ("kvm_device", case_kvm_device),
        ("pids_limit", case_pids_limit),
        ("oom_score_adj", case_oom_score_adj),
        ("memory_limit", case_memory_limit),
        ("console", case_console),
        ("join_userns", case_join_userns),
        ("duplicate_id", case_duplicate_id),
        ("timings", case_timings),
        ("early_unshare_fails", case_early_unshare_fails),
        ("rollback", case_rollback),
        ("runc_spec_caps", compile_cases::case_runc_spec_caps),
        ("no_new_privs_off", compile_cases::case_no_new_privs_off),
        ("policy_md_example", compile_cases::case_policy_md_example),
        (
            "plan_applies_from_anywhere",
            compile_cases::case_plan_applies_from_anywhere,
        ),
        ("ci_review_pinned_plan", compile_cases::case_ci_review_pinned_plan),
        (
            "cgroup_devices_cpuset_kmem_tcp",
            compile_cases::case_cgroup_devices_cpuset_kmem_tcp,
        ),
        ("logs", io::case_logs),
        ("logs_doctor_agrees", io::case_logs_doctor_agrees),
        ("terminal_relay", io::case_terminal_relay),
        ("terminal_caller_tty", io::case_terminal_caller_tty),
        ("terminal_console_socket", io::case_terminal_console_socket),
        ("die_with_launcher_and_gc", case_die_with_launcher_and_gc),
        ("concurrent_applies", case_concurrent_applies),
        ("network_host", case_network_host),
        ("state_root_doctor_agrees", case_state_root_doctor_agrees),
        ("state_root_read_only_or_full", case_state_root_read_only_or_full),
        ("spec_device_is_the_node", case_spec_device_is_the_node),
        ("device_source_checked", case_device_source_checked),
        ("destinations_stay_in_root", case_destinations_stay_in_root),
        ("bind_source_resolved", case_bind_source_resolved),
        ("readonly_recursive", case_readonly_recursive),
        ("readonly_recursive_fallback", case_readonly_recursive_fallback),
        ("chroot_escape", case_chroot_escape),
        (
            "embedded_root_submounts_readonly",
            case_embedded_root_submounts_readonly,
        ),
        ("launcher_dies_after_release", case_launcher_dies_after_release),
        ("supervisor_not_ptraceable", case_supervisor_not_ptraceable),
        ("vfork_child_never_allocates", case_vfork_child_never_allocates),
        ("seccomp_kills_memory_calls", case_seccomp_kills_memory_calls),
        ("seccomp_kills_execve", case_seccomp_kills_execve),
        ("child_dies_before_exec", case_child_dies_before_exec),
        ("launcher_second_term_kills", case_launcher_second_term_kills),
        ("ns_path_checked", case_ns_path_checked),
        ("ptrace_observes_and_logs", trace::case_ptrace_observes_and_logs),
        ("ptrace_learn_then_apply", trace::case_ptrace_learn_then_apply),
    ];
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        println!("apply_privileged: skipped: needs root (run as root on this machine)");
        println!("apply_privileged: 0 passed, 0 failed, {} skipped", cases.len());
        return;
    }
    let busybox = match common::busybox() {
        Ok(b) => b,
        Err(why) => {
            println!("apply_privileged: skipped: {why}");
            println!("apply_privileged: 0 passed, 0 failed, {} skipped", cases.len());
            return;
        }
    };
    let root = build_rootfs(&busybox);
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let mut failed = Vec::new();
    for (name, f) in cases {
        if filter.as_deref().is_some_and(|flt| !name.contains(flt)) {
            continue;
        }
        let id = format!("t{}-{}", std::process::id(), name.replace('_', ""));
        let r = std::panic::catch_unwind(|| f(&root, &id));
        println!("test {name} ... {}", if r.is_ok() { "ok" } else { "FAILED" });
        if r.is_err() {
            failed.push(*name);
        }
    }
    let _ = fs::remove_dir_all(&root);
    let ran = cases
        .iter()
        .filter(|(name, _)| filter.as_deref().is_none_or(|flt| name.contains(flt)))
        .count();
    println!(
        "apply_privileged: {} passed, {} failed",
        ran - failed.len(),
        failed.len()
    );
    if !failed.is_empty() {
        eprintln!("failed: {failed:?}");
        std::process::exit(1);
    }
}
