//! Container engines with sandboxctl as their OCI runtime (issue 13): podman
//! (`--runtime`) and a private containerd (`ctr run --runc-binary`, shim
//! `io.containerd.runc.v2`), each through the cases people use, under the
//! `container` policy (all of them) and the built-ins `default` and
//! `untrusted` (the plain ones: run, exit code, `-t`, `-i`, `-d`, exec, pause,
//! kill, stop, rm). `SANDBOXCTL_ENGINES_ONLY=TEXT` runs only the cases whose
//! label contains TEXT (the set-up and the leftover checks still run).
//! The calls engines make, and what they read back, are in
//! docs/engines-calls.md.
//!
//! A plain `main` (harness = false), privileged: root, podman, containerd and
//! ctr (Debian's packages; .ci/run installs them). Nothing from a registry:
//! the image is a busybox-static root filesystem (`tests/common`) imported
//! with `podman import`, and `podman save --format oci-archive` into `ctr
//! images import`. podman runs with its own `--root`/`--runroot` and a
//! containers.conf of nofile 20000 (this host's hard limit, PITFALLS.md);
//! containerd runs privately (own config, sockets, root, state; CRI off) and
//! is stopped at the end. The runtime is this build's binary behind a link
//! named `runc` (podman passes `--log` only to runtimes it knows by name);
//! the policy reaches it through SANDBOXCTL_POLICY, as an operator would set it
//! (podman: in containers.conf's `conmon_env_vars`, the only environment conmon
//! passes on; containerd: the daemon's environment, which its shims inherit).
//!
//! Skipped with one line when a prerequisite is missing: not root, an engine
//! not installed, or this build without the lifecycle commands engines call
//! (`create`, `start`, `kill`, `delete`: issue 12). With
//! SANDBOXCTL_ENGINES_REQUIRED=1 a missing prerequisite is a failure instead.
//! Run it as the other privileged suites, under the machine's sandbox lock:
//! `flock /tmp/sandboxctl-priv.lock cargo test --features fault-injection --test engines`.
//!
//! After every case: no container, state directory, cgroup, mount, network
//! namespace or process of the test is left (checked, and a failure if not).

use std::fs;
use std::io::Write;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;

const IMAGE: &str = "localhost/sandboxctl-engines:test";

/// What a case gets.
struct Env {
    dir: PathBuf,
    /// The runtime link (named `runc`).
    runtime: PathBuf,
    /// The test's container policy (the built-in, plus the test's storage as bind sources).
    container_policy: PathBuf,
    /// The test's default policy (likewise).
    default_policy: PathBuf,
    /// The test's untrusted policy (likewise).
    untrusted_policy: PathBuf,
    ctd: Option<Containerd>,
}

struct Containerd {
    child: std::process::Child,
    sock: PathBuf,
}

fn main() {
    let required = std::env::var_os("SANDBOXCTL_ENGINES_REQUIRED").is_some_and(|v| v == "1");
    if let Err(why) = prerequisites() {
        if required {
            eprintln!("engines: FAILED: {why}");
            std::process::exit(1);
        }
        println!("engines: skipped: {why}");
        return;
    }
    let mut env = match setup() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("engines: setup failed: {e}");
            std::process::exit(1);
        }
    };
    let netns_before = netns();
    let mut passed = 0;
    let mut failed = Vec::new();
    let mut pending_seen = Vec::new();
    // The plain cases run under every policy; the container policy's own
    // cases (options, refusals) under it alone.
    let plain: [(&str, Case); 7] = [
        ("podman run /bin/true", podman_true),
        ("podman exit code", podman_exit_code),
        ("podman -t", podman_tty),
        ("podman -i", podman_stdin),
        ("podman -d, exec, pause, kill, stop, rm", podman_detached),
        ("ctr run, exit code, -t, stdin", ctr_run),
        ("ctr -d, exec, ps, pause, metrics, kill, rm", ctr_detached),
    ];
    let mut cases: Vec<(&str, Policy, Case)> = Vec::new();
    for (name, case) in plain {
        for policy in [Policy::Container, Policy::Default, Policy::Untrusted] {
            cases.push((name, policy, case));
        }
    }
    cases.push(("podman options", Policy::Container, podman_options));
    cases.push(("podman refusals", Policy::Container, podman_refusals));
    let only = std::env::var("SANDBOXCTL_ENGINES_ONLY").unwrap_or_default();
    for (name, policy, case) in cases {
        let label = format!("{name} [{}]", policy.name());
        if !label.contains(only.as_str()) {
            continue;
        }
        if other_runtime().is_some() && (name.contains("refusals") || !matches!(policy, Policy::Container)) {
            continue;
        }
        let policy_file = match policy {
            Policy::Container => env.container_policy.clone(),
            Policy::Default => env.default_policy.clone(),
            Policy::Untrusted => env.untrusted_policy.clone(),
        };
        // The engines (and containerd's shims, started long before) name one
        // file in SANDBOXCTL_POLICY; each case puts its policy there.
        if let Err(e) = fs::copy(&policy_file, env.dir.join("policy.toml")) {
            eprintln!("engines: choosing the {} policy: {e}", policy.name());
            std::process::exit(1);
        }
        let t = Instant::now();
        let mut result = case(&env, &policy_file);
        let left = leftovers(&env, &netns_before);
        if let (Ok(()), Err(e)) = (&result, left) {
            result = Err(format!("left behind: {e}"));
        }
        let pending = PENDING.iter().find(|(l, _)| *l == label).map(|(_, why)| *why);
        match (result, pending) {
            (Ok(()), None) => {
                passed += 1;
                println!("engines: {label} ... ok ({} ms)", t.elapsed().as_millis());
            }
            (Ok(()), Some(_)) => {
                passed += 1;
                println!("engines: {label} ... ok, and no longer pending: take it out of PENDING");
            }
            (Err(e), Some(why)) => {
                println!("engines: {label} ... pending ({why}): {e}");
                pending_seen.push(label);
                // What the failed case left must not fail the next one.
                scrub(&env);
            }
            (Err(e), None) => {
                println!("engines: {label} ... FAILED: {e}");
                failed.push(label);
            }
        }
    }
    teardown(&mut env);
    println!(
        "{passed} passed, {} failed, {} pending {pending_seen:?}",
        failed.len(),
        pending_seen.len()
    );
    if !failed.is_empty() {
        std::process::exit(1);
    }
}

/// Cases known to fail with this build, each with the reason (issue 13 is
/// open): they are run and reported, and do not fail the suite; a case not
/// listed here that fails does. Take a case out when it passes.
const PENDING: &[(&str, &str)] = &[];

/// One case: runs against the engines, Err says what went wrong.
type Case = fn(&Env, &Path) -> Result<(), String>;

/// Another runtime in sandboxctl's place (`SANDBOXCTL_ENGINES_RUNTIME=/usr/sbin/runc`):
/// checks the harness itself, and compares. The policy cases are then not run.
fn other_runtime() -> Option<PathBuf> {
    std::env::var_os("SANDBOXCTL_ENGINES_RUNTIME").map(PathBuf::from)
}

#[derive(Clone, Copy)]
enum Policy {
    Container,
    Default,
    Untrusted,
}

impl Policy {
    fn name(self) -> &'static str {
        match self {
            Policy::Container => "container",
            Policy::Default => "default",
            Policy::Untrusted => "untrusted",
        }
    }
}

fn prerequisites() -> Result<(), String> {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        return Err("not root (the engines make namespaces, cgroups and mounts)".into());
    }
    for tool in ["podman", "containerd", "ctr", "script"] {
        if which(tool).is_none() {
            return Err(format!(
                "{tool} not installed (apt-get install podman containerd; .ci/run installs them)"
            ));
        }
    }
    if other_runtime().is_some() {
        return Ok(());
    }
    for cmd in ["create", "start", "kill", "delete"] {
        let o = Command::new(common::bin())
            .args([cmd, "--help"])
            .output()
            .map_err(|e| e.to_string())?;
        if !o.status.success() {
            return Err(format!(
                "this sandboxctl has no `{cmd}` command yet (issue 12's lifecycle commands, which engines call)"
            ));
        }
    }
    Ok(())
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| std::env::split_paths(&p).map(|d| d.join(tool)).find(|f| f.is_file()))
}

fn sh(cmd: &mut Command) -> Result<Output, String> {
    cmd.output().map_err(|e| format!("{cmd:?}: {e}"))
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}, stdout {:?}, stderr {:?}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok(o: Output) -> Result<String, String> {
    if o.status.success() {
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    } else {
        Err(text(&o))
    }
}

fn setup() -> Result<Env, String> {
    let dir = std::env::temp_dir().join(format!("sandboxctl-engines-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("bin")).map_err(|e| e.to_string())?;
    let runtime = dir.join("bin/runc");
    let target = other_runtime().unwrap_or_else(|| common::bin().into());
    symlink(target, &runtime).map_err(|e| e.to_string())?;
    // conmon (and so the runtime) gets only conmon_env_vars of podman's
    // environment: the policy choice goes there.
    fs::write(
        dir.join("containers.conf"),
        format!(
            "[containers]\ndefault_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]\n\
             [engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n\
             conmon_env_vars = [\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\", \"SANDBOXCTL_POLICY={}\"]\n",
            dir.join("policy.toml").display()
        ),
    )
    .map_err(|e| e.to_string())?;
    // The test's policies: the built-ins, with the test's private engine
    // storage added to the bind sources (as an operator adds theirs).
    let binds = format!(
        "allowed_host_paths = [\"{d}/storage\", \"{d}/runroot\", \"{d}/ctd\", \"/run/containerd\"]\n",
        d = dir.display()
    );
    let container_policy = dir.join("container.toml");
    fs::write(&container_policy, format!("extends = \"container\"\n[mounts]\n{binds}")).map_err(|e| e.to_string())?;
    let default_policy = dir.join("default.toml");
    fs::write(&default_policy, format!("extends = \"default\"\n[mounts]\n{binds}")).map_err(|e| e.to_string())?;
    let untrusted_policy = dir.join("untrusted.toml");
    fs::write(&untrusted_policy, format!("extends = \"untrusted\"\n[mounts]\n{binds}")).map_err(|e| e.to_string())?;

    // The image: busybox-static, imported.
    let rootfs = dir.join("rootfs");
    let busybox = common::busybox()?;
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    ok(sh(Command::new(repo.join("scripts/make-busybox-rootfs"))
        .env("BUSYBOX", &busybox)
        .arg(&rootfs))?)?;
    let tar = dir.join("rootfs.tar");
    ok(sh(Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tar)
        .arg("."))?)?;
    // Every runtime call reads the operator's choice from here (podman passes
    // its environment through conmon; the shims inherit containerd's).
    std::env::set_var("SANDBOXCTL_POLICY", dir.join("policy.toml"));
    let mut env = Env {
        dir: dir.clone(),
        runtime,
        container_policy,
        default_policy,
        untrusted_policy,
        ctd: None,
    };
    ok(sh(podman(&env).arg("import").arg(&tar).arg(IMAGE))?)?;
    let archive = dir.join("image.oci.tar");
    ok(sh(podman(&env)
        .args(["save", "--format", "oci-archive", "-o"])
        .arg(&archive)
        .arg(IMAGE))?)?;

    // A private containerd.
    let ctd = dir.join("ctd");
    fs::create_dir_all(&ctd).map_err(|e| e.to_string())?;
    let sock = ctd.join("containerd.sock");
    fs::write(
        ctd.join("config.toml"),
        format!(
            "version = 2\nroot = \"{c}/root\"\nstate = \"{c}/state\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{c}/containerd.sock\"\n[ttrpc]\n  address = \"{c}/containerd.sock.ttrpc\"\n\
             [debug]\n  address = \"\"\n[metrics]\n  address = \"\"\n",
            c = ctd.display()
        ),
    )
    .map_err(|e| e.to_string())?;
    let log = fs::File::create(ctd.join("containerd.log")).map_err(|e| e.to_string())?;
    let child = Command::new("containerd")
        .arg("--config")
        .arg(ctd.join("config.toml"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("starting containerd: {e}"))?;
    env.ctd = Some(Containerd { child, sock });
    let deadline = Instant::now() + Duration::from_secs(20);
    while sh(ctr(&env).arg("version"))?.status.code() != Some(0) {
        if Instant::now() > deadline {
            return Err("containerd did not answer within 20 s".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    ok(sh(ctr(&env)
        .args(["images", "import", "--base-name", "localhost/sandboxctl-engines"])
        .arg(&archive))?)?;
    Ok(env)
}

fn teardown(env: &mut Env) {
    let _ = podman(env).args(["rm", "-af", "-t", "0"]).output();
    let _ = podman(env).args(["rmi", "-af"]).output();
    if let Some(mut c) = env.ctd.take() {
        // SAFETY: kill of our own child by its pid.
        unsafe { libc::kill(c.child.id() as i32, libc::SIGTERM) };
        let _ = c.child.wait();
    }
    // podman's storage leaves its overlay mounts' parents mounted until unmounted.
    let _ = Command::new("umount")
        .arg("-R")
        .arg(env.dir.join("storage/overlay"))
        .stderr(Stdio::null())
        .status();
    let _ = fs::remove_dir_all(&env.dir);
}

/// Removes what a failed case left: the engines' containers (and through
/// them the runtime's sandboxes), any sandbox of the runtime's state roots
/// named as the engines name theirs, their cgroups.
fn scrub(env: &Env) {
    let _ = podman(env).args(["rm", "-af", "-t", "0"]).output();
    if env.ctd.is_some() {
        if let Ok(out) = ctr(env).args(["tasks", "ls", "-q"]).output() {
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = ctr(env).args(["tasks", "kill", "-a", "-s", "9", id]).output();
                let _ = ctr(env).args(["tasks", "rm", "-f", id]).output();
            }
        }
        if let Ok(out) = ctr(env).args(["containers", "ls", "-q"]).output() {
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = ctr(env).args(["containers", "rm", id]).output();
            }
        }
    }
    for root in ["/run/sandboxctl", "/run/containerd/runc/default"] {
        if let Ok(d) = fs::read_dir(root) {
            for e in d.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.len() == 64 || n.starts_with("sbx-c-") {
                    let _ = Command::new(&env.runtime)
                        .args(["--root", root, "delete", "--force", &n])
                        .output();
                }
            }
        }
    }
    for ctl in ["memory", "pids", "cpu", "freezer", "devices"] {
        for parent in ["libpod_parent", "default"] {
            if let Ok(d) = fs::read_dir(format!("/sys/fs/cgroup/{ctl}/{parent}")) {
                for e in d.flatten().filter(|e| e.path().is_dir() && e.file_name() != "conmon") {
                    let _ = fs::remove_dir(e.path());
                }
            }
        }
    }
}

/// Every engine command is bounded: a runtime that hangs fails its case.
fn bounded(program: &str) -> Command {
    let mut c = Command::new("timeout");
    c.args(["-k", "5", "60", program]);
    c
}

fn podman(env: &Env) -> Command {
    let mut c = bounded("podman");
    c.env("CONTAINERS_CONF", env.dir.join("containers.conf"))
        .arg("--root")
        .arg(env.dir.join("storage"))
        .arg("--runroot")
        .arg(env.dir.join("runroot"))
        .arg("--tmpdir")
        .arg(env.dir.join("tmp"))
        .arg("--runtime")
        .arg(&env.runtime)
        .stdin(Stdio::null());
    c
}

fn ctr(env: &Env) -> Command {
    let mut c = bounded("ctr");
    c.arg("-a")
        .arg(&env.ctd.as_ref().expect("containerd runs").sock)
        .stdin(Stdio::null());
    c
}

/// `podman run --rm --network none IMAGE ARGS...`.
fn prun(env: &Env, opts: &[&str], args: &[&str]) -> Result<Output, String> {
    sh(podman(env)
        .args(["run", "--rm", "--network", "none"])
        .args(opts)
        .arg(IMAGE)
        .args(args))
}

/// Runs `cmd` under a pty (util-linux `script`), returns what it printed.
/// `script` itself is bounded from outside: inside, `cmd` owns the terminal.
fn under_pty(cmd: &str) -> Result<Output, String> {
    sh(bounded("script").args(["-qec", cmd, "/dev/null"]))
}

/// `c` as one shell word list for [`under_pty`]. A `timeout` prefix gets
/// `--foreground`: without it timeout moves its command into a background
/// process group, where the engine's first tcsetattr on the terminal stops
/// it with SIGTTOU (and the case hangs until the timeout kills it).
fn shell_quote(c: &Command) -> String {
    let foreground = (c.get_program() == "timeout").then_some(std::ffi::OsStr::new("--foreground"));
    std::iter::once(c.get_program())
        .chain(foreground)
        .chain(c.get_args())
        .map(|a| format!("'{}'", a.to_string_lossy().replace('\'', "'\\''")))
        .collect::<Vec<_>>()
        .join(" ")
}

fn podman_true(env: &Env, _: &Path) -> Result<(), String> {
    ok(prun(env, &[], &["/bin/true"])?).map(drop)
}

fn podman_exit_code(env: &Env, _: &Path) -> Result<(), String> {
    let o = prun(env, &[], &["sh", "-c", "exit 7"])?;
    (o.status.code() == Some(7)).then_some(()).ok_or_else(|| text(&o))
}

fn podman_tty(env: &Env, _: &Path) -> Result<(), String> {
    let mut c = podman(env);
    c.env_clear();
    c.args([
        "run",
        "--rm",
        "-t",
        "--network",
        "none",
        IMAGE,
        "sh",
        "-c",
        "test -t 0 && test -t 1 && echo TTY",
    ]);
    let cmd = format!(
        "CONTAINERS_CONF={} {}",
        env.dir.join("containers.conf").display(),
        shell_quote(&c)
    );
    let o = under_pty(&cmd)?;
    String::from_utf8_lossy(&o.stdout)
        .contains("TTY")
        .then_some(())
        .ok_or_else(|| text(&o))
}

fn podman_stdin(env: &Env, _: &Path) -> Result<(), String> {
    let mut child = podman(env)
        .args(["run", "--rm", "-i", "--network", "none", IMAGE, "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(b"hello from stdin\n")
        .map_err(|e| e.to_string())?;
    let o = child.wait_with_output().map_err(|e| e.to_string())?;
    (o.status.success() && String::from_utf8_lossy(&o.stdout) == "hello from stdin\n")
        .then_some(())
        .ok_or_else(|| text(&o))
}

/// The freezer state of a podman container's cgroup (v1 here), by its id.
fn freezer_state(cid: &str) -> Option<String> {
    fs::read_to_string(format!(
        "/sys/fs/cgroup/freezer/libpod_parent/libpod-{cid}/freezer.state"
    ))
    .ok()
    .map(|s| s.trim().to_string())
}

fn podman_detached(env: &Env, _: &Path) -> Result<(), String> {
    let name = "sbx-engines-d";
    // The trap writes to a tmpfs of its own: podman's /dev/shm is a bind
    // of its storage, which the untrusted policy drops, and its root is
    // read-only there.
    let script = "trap 'echo got-usr1 > /scratch/usr1' USR1; while true; do sleep 0.1; done";
    let cid = ok(sh(podman(env).args([
        "run",
        "-d",
        "--name",
        name,
        "--network",
        "none",
        "--tmpfs",
        "/scratch",
        IMAGE,
        "sh",
        "-c",
        script,
    ]))?)?
    .trim()
    .to_string();
    let result = (|| {
        let out = ok(sh(podman(env).args(["exec", name, "sh", "-c", "echo exec-ok"]))?)?;
        if out.trim() != "exec-ok" {
            return Err(format!("exec printed {out:?}"));
        }
        let o = sh(podman(env).args(["exec", name, "sh", "-c", "exit 5"]))?;
        if o.status.code() != Some(5) {
            return Err(format!("exec's exit status: {}", text(&o)));
        }
        let mut c = podman(env);
        c.env_clear();
        c.args(["exec", "-t", name, "sh", "-c", "test -t 0 && echo TTY"]);
        let cmd = format!(
            "CONTAINERS_CONF={} {}",
            env.dir.join("containers.conf").display(),
            shell_quote(&c)
        );
        let o = under_pty(&cmd)?;
        if !String::from_utf8_lossy(&o.stdout).contains("TTY") {
            return Err(format!("exec -t: {}", text(&o)));
        }
        ok(sh(podman(env).args(["exec", "-d", name, "sleep", "1"]))?)?;
        let top = ok(sh(podman(env).args(["top", name]))?)?;
        if !top.contains("sleep") && !top.contains("sh") {
            return Err(format!("top: {top}"));
        }
        ok(sh(podman(env).args(["pause", name]))?)?;
        let frozen = freezer_state(&cid);
        ok(sh(podman(env).args(["unpause", name]))?)?;
        if frozen.as_deref() != Some("FROZEN") {
            return Err(format!("paused, the freezer says {frozen:?}"));
        }
        if freezer_state(&cid).as_deref() != Some("THAWED") {
            return Err(format!("unpaused, the freezer says {:?}", freezer_state(&cid)));
        }
        ok(sh(podman(env).args(["stats", "--no-stream", name]))?)?;
        ok(sh(podman(env).args(["update", "--cpus", "0.5", name]))?)?;
        let quota = fs::read_to_string(format!(
            "/sys/fs/cgroup/cpu/libpod_parent/libpod-{cid}/cpu.cfs_quota_us"
        ))
        .unwrap_or_default();
        if quota.trim() != "50000" {
            return Err(format!("update --cpus 0.5: cpu.cfs_quota_us is {quota:?}"));
        }
        ok(sh(podman(env).args(["kill", "-s", "USR1", name]))?)?;
        std::thread::sleep(Duration::from_millis(500));
        let got = ok(sh(podman(env).args(["exec", name, "cat", "/scratch/usr1"]))?)?;
        if got.trim() != "got-usr1" {
            return Err(format!("the trap saw {got:?}"));
        }
        ok(sh(podman(env).args(["stop", "-t", "1", name]))?)?;
        ok(sh(podman(env).args(["start", name]))?)?;
        ok(sh(podman(env).args(["restart", "-t", "1", name]))?)?;
        Ok(())
    })();
    let rm = ok(sh(podman(env).args(["rm", "-f", "-t", "1", name]))?);
    result.and(rm.map(drop))
}

fn podman_options(env: &Env, _: &Path) -> Result<(), String> {
    let out = ok(prun(env, &["--hostname", "sbxhost"], &["hostname"])?)?;
    if out.trim() != "sbxhost" {
        return Err(format!("--hostname: {out:?}"));
    }
    let out = ok(prun(env, &["-e", "FOO=bar"], &["sh", "-c", "echo $FOO"])?)?;
    if out.trim() != "bar" {
        return Err(format!("-e: {out:?}"));
    }
    let o = prun(env, &["--read-only"], &["touch", "/x"])?;
    if o.status.success() || !String::from_utf8_lossy(&o.stderr).contains("Read-only") {
        return Err(format!("--read-only: {}", text(&o)));
    }
    let mem = "p=$(grep ':memory:' /proc/self/cgroup | cut -d: -f3); \
               cat /sys/fs/cgroup/memory$p/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes";
    let out = ok(prun(env, &["--memory", "64m"], &["sh", "-c", mem])?)?;
    if out.trim() != "67108864" {
        return Err(format!("--memory 64m seen inside as {out:?}"));
    }
    let out = ok(prun(env, &["--user", "65534:65534"], &["id", "-u"])?)?;
    if out.trim() != "65534" {
        return Err(format!("--user: {out:?}"));
    }
    let out = ok(prun(
        env,
        &["--cap-drop", "ALL"],
        &["grep", "CapEff", "/proc/self/status"],
    )?)?;
    if !out.contains("0000000000000000") {
        return Err(format!("--cap-drop ALL: {out:?}"));
    }
    Ok(())
}

/// What the container policy refuses, the engine's user sees in one line
/// naming the policy line.
fn podman_refusals(env: &Env, _: &Path) -> Result<(), String> {
    for (what, opts) in [
        ("--privileged", vec!["--privileged"]),
        ("--device", vec!["--device", "/dev/loop-control"]),
        ("--pid=host", vec!["--pid", "host"]),
    ] {
        let o = prun(env, &opts, &["/bin/true"])?;
        let err = String::from_utf8_lossy(&o.stderr);
        if o.status.success() || !err.contains("container.toml:") {
            return Err(format!("{what} not refused with the policy line: {}", text(&o)));
        }
    }
    Ok(())
}

fn ctr_run(env: &Env, _: &Path) -> Result<(), String> {
    let rt = env.runtime.to_str().expect("utf-8 path");
    let run = |id: &str, opts: &[&str], args: &[&str]| {
        sh(ctr(env)
            .args(["run", "--rm", "--runc-binary", rt])
            .args(opts)
            .arg("localhost/sandboxctl-engines:test")
            .arg(id)
            .args(args))
    };
    ok(run("sbx-c-true", &[], &["/bin/true"])?)?;
    let o = run("sbx-c-exit", &[], &["sh", "-c", "exit 7"])?;
    if o.status.code() != Some(7) {
        return Err(format!("exit code: {}", text(&o)));
    }
    let c = {
        let mut c = ctr(env);
        c.args([
            "run",
            "--rm",
            "-t",
            "--runc-binary",
            rt,
            "localhost/sandboxctl-engines:test",
            "sbx-c-tty",
        ])
        .args(["sh", "-c", "test -t 0 && echo TTY"]);
        c
    };
    let o = under_pty(&shell_quote(&c))?;
    if !String::from_utf8_lossy(&o.stdout).contains("TTY") {
        return Err(format!("-t: {}", text(&o)));
    }
    // ctr never closes a task's stdin on EOF: read one line.
    let mut child = ctr(env)
        .args([
            "run",
            "--rm",
            "--runc-binary",
            rt,
            "localhost/sandboxctl-engines:test",
            "sbx-c-stdin",
        ])
        .args(["sh", "-c", "read x; echo got $x"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(b"hello\n")
        .map_err(|e| e.to_string())?;
    let o = child.wait_with_output().map_err(|e| e.to_string())?;
    if String::from_utf8_lossy(&o.stdout).trim() != "got hello" {
        return Err(format!("stdin: {}", text(&o)));
    }
    Ok(())
}

fn ctr_detached(env: &Env, _: &Path) -> Result<(), String> {
    let rt = env.runtime.to_str().expect("utf-8 path");
    let id = "sbx-c-d";
    ok(sh(ctr(env)
        .args([
            "run",
            "-d",
            "--runc-binary",
            rt,
            "localhost/sandboxctl-engines:test",
            id,
        ])
        .args([
            "sh",
            "-c",
            "trap 'echo got > /dev/shm/usr1' USR1; while true; do sleep 0.1; done",
        ]))?)?;
    let result = (|| {
        let out = ok(sh(ctr(env).args([
            "task",
            "exec",
            "--exec-id",
            "e1",
            id,
            "sh",
            "-c",
            "echo exec-ok",
        ]))?)?;
        if out.trim() != "exec-ok" {
            return Err(format!("task exec: {out:?}"));
        }
        let mut c = ctr(env);
        c.args([
            "task",
            "exec",
            "-t",
            "--exec-id",
            "e2",
            id,
            "sh",
            "-c",
            "test -t 0 && echo TTY",
        ]);
        let o = under_pty(&shell_quote(&c))?;
        if !String::from_utf8_lossy(&o.stdout).contains("TTY") {
            return Err(format!("task exec -t: {}", text(&o)));
        }
        let ps = ok(sh(ctr(env).args(["task", "ps", id]))?)?;
        if ps.lines().count() < 2 {
            return Err(format!("task ps: {ps:?}"));
        }
        ok(sh(ctr(env).args(["task", "pause", id]))?)?;
        let frozen =
            fs::read_to_string(format!("/sys/fs/cgroup/freezer/default/{id}/freezer.state")).unwrap_or_default();
        ok(sh(ctr(env).args(["task", "resume", id]))?)?;
        if frozen.trim() != "FROZEN" {
            return Err(format!("paused, the freezer says {frozen:?}"));
        }
        let m = ok(sh(ctr(env).args(["task", "metrics", id]))?)?;
        if !m.contains("memory") {
            return Err(format!("metrics: {m:?}"));
        }
        ok(sh(ctr(env).args(["task", "kill", "-s", "SIGUSR1", id]))?)?;
        std::thread::sleep(Duration::from_millis(500));
        let got = ok(sh(ctr(env).args([
            "task",
            "exec",
            "--exec-id",
            "e3",
            id,
            "cat",
            "/dev/shm/usr1",
        ]))?)?;
        if got.trim() != "got" {
            return Err(format!("the trap saw {got:?}"));
        }
        ok(sh(ctr(env).args(["task", "kill", "-a", "-s", "SIGKILL", id]))?)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while ok(sh(ctr(env).args(["task", "ls"]))?)?.contains("RUNNING") {
            if Instant::now() > deadline {
                return Err("kill -a: still running after 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        ok(sh(ctr(env).args(["task", "rm", id]))?)?;
        Ok(())
    })();
    let _ = sh(ctr(env).args(["task", "rm", "-f", id]));
    let rm = ok(sh(ctr(env).args(["container", "rm", id]))?);
    result.and(rm.map(drop))
}

fn netns() -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir("/run/netns")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// What a case may have left: containers, tasks, state directories, cgroups,
/// mounts, network namespaces, processes.
fn leftovers(env: &Env, netns_before: &[String]) -> Result<(), String> {
    let mut left = Vec::new();
    if let Ok(out) = ok(sh(podman(env).args(["ps", "-aq"]))?) {
        if !out.trim().is_empty() {
            left.push(format!("podman containers {}", out.trim()));
        }
    }
    if env.ctd.is_some() {
        let out = ok(sh(ctr(env).args(["containers", "ls", "-q"]))?)?;
        if !out.trim().is_empty() {
            left.push(format!("containerd containers {}", out.trim()));
        }
    }
    for root in ["/run/sandboxctl", "/run/containerd/runc/default"] {
        if let Ok(d) = fs::read_dir(root) {
            for e in d.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.len() == 64 || n.starts_with("sbx-c-") {
                    left.push(format!("state {root}/{n}"));
                }
            }
        }
    }
    for ctl in ["memory", "pids", "cpu", "freezer", "devices"] {
        for parent in ["libpod_parent", "default"] {
            if let Ok(d) = fs::read_dir(format!("/sys/fs/cgroup/{ctl}/{parent}")) {
                // podman keeps conmon's own cgroup there between containers.
                for e in d.flatten().filter(|e| e.path().is_dir() && e.file_name() != "conmon") {
                    left.push(format!("cgroup {}", e.path().display()));
                }
            }
        }
    }
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let dir = env.dir.display().to_string();
    for l in mounts.lines() {
        let mp = l.split(' ').nth(4).unwrap_or("");
        if mp.starts_with(&dir) && (mp.contains("/merged") || mp.contains("/rootfs")) {
            left.push(format!("mount {mp}"));
        }
    }
    let now = netns();
    for n in now.iter().filter(|n| !netns_before.contains(n)) {
        left.push(format!("netns {n}"));
    }
    if let Ok(d) = fs::read_dir("/proc") {
        for e in d.flatten() {
            let cmd = fs::read(e.path().join("cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains("sbx-engines-d") || (cmd.contains("sbx-c-") && !cmd.contains("containerd-shim")) {
                left.push(format!("process {}: {cmd}", e.file_name().to_string_lossy()));
            }
        }
    }
    if left.is_empty() {
        Ok(())
    } else {
        Err(left.join("; "))
    }
}
