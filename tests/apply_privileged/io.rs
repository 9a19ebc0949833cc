//! Privileged cases of the sandbox's I/O, through the real binary: the log
//! files of policy `[logs]` (made directory, exact modes, what they hold,
//! doctor agreeing with apply) and the pty of a spec's `process.terminal`
//! (relayed to the caller, on the caller's own terminal, over a console
//! socket).

use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A path removed (with everything under it) when dropped, also when a case
/// fails.
struct Removed(PathBuf);

impl Drop for Removed {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
        let _ = fs::remove_file(&self.0);
    }
}

fn sandboxctl() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sandboxctl"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// What a launch left on the host (state file, cgroup directories).
fn leftovers(id: &str) -> Vec<String> {
    ["memory", "pids", "unified"]
        .iter()
        .map(|c| format!("/sys/fs/cgroup/{c}/sandboxctl/{id}"))
        .chain([format!("/run/sandboxctl/{id}.state")])
        .filter(|p| Path::new(p).exists())
        .collect()
}

/// Policy `[logs]` under a directory that does not exist, applied with a
/// umask of 027: doctor says ok, apply makes the directory (0755, the plan's
/// `log_dirs`) and the files with their documented modes (0644, 0644, 0664),
/// and the files hold each step, the workload's start and exit status; a
/// second launch whose workload cannot start leaves its failure in the log
/// and the user log.
pub fn case_logs(_root: &Path, id: &str) {
    let tmp = std::env::temp_dir().join(format!("sbx-logs-{id}"));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).unwrap();
    let _cleanup = Removed(tmp.clone());
    let dir = tmp.join("var/log/sandboxctl");
    let policy = tmp.join("logs.toml");
    fs::write(
        &policy,
        format!(
            "extends = \"default\"\n[logs]\nlog = \"{d}/{{id}}.log\"\ndebug_log = \"{d}/{{id}}.debug.log\"\nuser_log = \"{d}/{{id}}.user.log\"\n",
            d = dir.display()
        ),
    )
    .unwrap();
    let policy = policy.display().to_string();
    let args = |sub: &str, id: &str, cmd: &[&str]| -> Vec<String> {
        // Only apply takes an id (plans have none).
        let id_args: &[&str] = if sub == "apply" { &["--id", id] } else { &[] };
        let mut v: Vec<String> = [&["--policy", &policy][..], id_args, &["--"]]
            .concat()
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.extend(cmd.iter().map(|s| s.to_string()));
        v
    };
    let run = |sub: &str, id: &str, cmd: &[&str]| -> Output {
        let mut c = sandboxctl();
        c.arg(sub).args(args(sub, id, cmd)).stdin(Stdio::null());
        // SAFETY: umask in the forked child before exec; no allocation.
        unsafe {
            c.pre_exec(|| {
                libc::umask(0o027);
                Ok(())
            });
        }
        c.output().unwrap()
    };

    // The plan shows the directory it makes; doctor has nothing to report.
    let plan = sandboxctl()
        .args(["plan", "--policy", &policy, "--", "/bin/true"])
        .output()
        .unwrap();
    let plan_text = String::from_utf8_lossy(&plan.stdout).into_owned();
    assert!(
        plan_text.contains(&format!("log dir     {} 0o755 (made", dir.display())),
        "{}",
        text(&plan)
    );
    let doctor = run("doctor", id, &["/bin/true"]);
    assert_eq!(doctor.status.code(), Some(0), "doctor: {}", text(&doctor));
    assert!(!dir.exists(), "doctor made the log directory");

    let out = run("apply", id, &["/bin/sh", "-c", "echo to-stdout; exit 3"]);
    assert_eq!(out.status.code(), Some(3), "apply: {}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "to-stdout\n");
    assert!(leftovers(id).is_empty(), "left behind: {:?}", leftovers(id));
    assert_eq!(mode(&dir), 0o755, "log directory mode");
    assert_eq!(mode(dir.parent().unwrap()), 0o755, "made parent's mode");
    let log = dir.join(format!("{id}.log"));
    let debug = dir.join(format!("{id}.debug.log"));
    let user = dir.join(format!("{id}.user.log"));
    assert_eq!(mode(&log), 0o644, "log mode");
    assert_eq!(mode(&debug), 0o644, "debug log mode");
    assert_eq!(mode(&user), 0o664, "user log mode");
    let (l, d, u) = (
        fs::read_to_string(&log).unwrap(),
        fs::read_to_string(&debug).unwrap(),
        fs::read_to_string(&user).unwrap(),
    );
    for want in [
        "] INFO step state_file",
        "launcher[",
        "] INFO step open_fds",
        "supervisor[1] INFO step mounts",
        "supervisor[1] INFO step wait",
        "INFO workload started: [\"/bin/sh\", \"-c\", \"echo to-stdout; exit 3\"]",
        "supervisor[1] INFO workload exited with status 3",
        "INFO the supervisor exited with status 3",
        &format!("INFO tearing down sandbox {id}; apply exits with status 3"),
    ] {
        assert!(l.contains(want), "log lacks {want:?}:\n{l}");
        assert!(d.contains(want), "debug log lacks {want:?}:\n{d}");
    }
    assert!(!l.contains(" DEBUG "), "debug lines in the log:\n{l}");
    for want in [
        "launcher[",
        &format!("] DEBUG mkdir -p {} 0o755", dir.display()),
        "supervisor[1] DEBUG pivot_root . .",
        "supervisor[1] DEBUG dup2 <log> -> 3",
    ] {
        assert!(d.contains(want), "debug log lacks {want:?}:\n{d}");
    }
    let user_lines: Vec<&str> = u.lines().collect();
    assert_eq!(user_lines.len(), 2, "user log:\n{u}");
    assert!(user_lines[0].ends_with("INFO workload started: [\"/bin/sh\", \"-c\", \"echo to-stdout; exit 3\"]"));
    assert!(user_lines[1].ends_with("INFO workload exited with status 3"), "{u}");
    // Each line: an RFC 3339 UTC time, the process, the level.
    for line in l.lines() {
        let ts = line.split(' ').next().unwrap();
        assert!(
            ts.len() == 27 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T',
            "{line}"
        );
    }

    // A workload that cannot start: the failure is logged; the same files
    // (in the same, now existing, directory) are appended to.
    let id2 = format!("{id}b");
    let out = run("apply", &id2, &["/no/such/program"]);
    assert_eq!(out.status.code(), Some(125), "apply: {}", text(&out));
    assert!(leftovers(&id2).is_empty(), "left behind: {:?}", leftovers(&id2));
    let l2 = fs::read_to_string(dir.join(format!("{id2}.log"))).unwrap();
    let u2 = fs::read_to_string(dir.join(format!("{id2}.user.log"))).unwrap();
    assert!(
        l2.lines()
            .any(|x| x.contains(" ERROR step exec") && x.contains("ENOENT")),
        "log lacks the failure:\n{l2}"
    );
    assert!(
        u2.contains("ERROR workload could not start: step exec") && u2.contains("ENOENT"),
        "user log lacks the failure:\n{u2}"
    );
}

/// A bundle for `root` whose process runs `script` with `terminal: true`.
fn terminal_bundle(root: &Path, id: &str, script: &str) -> PathBuf {
    let b = std::env::temp_dir().join(format!("sbx-bundle-{id}"));
    let _ = fs::remove_dir_all(&b);
    fs::create_dir_all(&b).unwrap();
    let config = serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": true,
            "user": {"uid": 0, "gid": 0},
            "args": ["/bin/sh", "-c", script],
            "env": ["PATH=/bin"],
            "cwd": "/"
        },
        "root": {"path": root, "readonly": true},
        "hostname": "sandbox",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]}
        ],
        "linux": {"namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}]}
    });
    fs::write(b.join("config.json"), serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    b
}

/// What the workload prints about its stdio and session.
const TTY_PROBE: &str = "test -t 0 && echo stdin-is-a-tty; test -t 1 && echo stdout-is-a-tty; \
                         read a b c d e f g rest < /proc/self/stat; echo \"tty_nr $g\"";

fn tty_nr(out: &str) -> &str {
    out.lines()
        .find_map(|l| l.trim().strip_prefix("tty_nr "))
        .unwrap_or("0")
}

/// `process.terminal` without a console socket and with stdin not a
/// terminal: the workload gets a pty as stdio and controlling tty, its
/// output reaches the caller's stdout, its status passes through; doctor
/// agrees; the plan shows the pty.
pub fn case_terminal_relay(root: &Path, id: &str) {
    let b = terminal_bundle(root, id, &format!("{TTY_PROBE}; echo to-the-caller; exit 7"));
    let _cleanup = Removed(b.clone());
    let bundle = b.display().to_string();
    let plan = sandboxctl().args(["plan", "--bundle", &bundle]).output().unwrap();
    let plan_text = String::from_utf8_lossy(&plan.stdout).into_owned();
    assert!(
        plan_text.contains("pty, relayed by the launcher to the caller's stdin/stdout  spec:process.terminal"),
        "{}",
        text(&plan)
    );
    let doctor = sandboxctl().args(["doctor", "--bundle", &bundle]).output().unwrap();
    assert_eq!(doctor.status.code(), Some(0), "doctor: {}", text(&doctor));
    let out = sandboxctl()
        .args(["apply", "--bundle", &bundle, "--id", id])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let o = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    assert!(leftovers(id).is_empty(), "left behind: {:?}", leftovers(id));
    assert!(o.contains("stdin-is-a-tty\r\n"), "{}", text(&out));
    assert!(o.contains("stdout-is-a-tty\r\n"), "{}", text(&out));
    assert!(o.contains("to-the-caller\r\n"), "{}", text(&out));
    assert_ne!(tty_nr(&o), "0", "no controlling tty: {o}");
}

/// An open pty pair of the test's own (the caller's terminal).
fn open_caller_pty() -> (OwnedFd, OwnedFd) {
    let (mut m, mut s) = (0, 0);
    // SAFETY: valid out pointers; null name, termios and winsize.
    let rc = unsafe { libc::openpty(&mut m, &mut s, std::ptr::null_mut(), std::ptr::null(), std::ptr::null()) };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both fds were just opened and are owned here.
    unsafe { (OwnedFd::from_raw_fd(m), OwnedFd::from_raw_fd(s)) }
}

fn termios_of(fd: i32) -> Vec<u8> {
    // SAFETY: termios is plain data, filled by tcgetattr.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: valid out pointer.
    assert_eq!(unsafe { libc::tcgetattr(fd, &mut t) }, 0);
    // SAFETY: the bytes of a plain-data struct, within its size.
    unsafe { std::slice::from_raw_parts((&t as *const libc::termios).cast::<u8>(), std::mem::size_of_val(&t)) }.to_vec()
}

fn write_fd(fd: i32, data: &[u8]) {
    // SAFETY: write from a valid buffer.
    assert_eq!(
        unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) },
        data.len() as isize
    );
}

/// Reads `fd` until `done()` holds and nothing came for 300 ms, or EIO, or
/// 30 s passed.
fn read_until(fd: i32, mut done: impl FnMut() -> bool) -> Vec<u8> {
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut p, 1, 300) };
        if ready == 0 {
            if done() {
                break;
            }
            continue;
        }
        // SAFETY: read into a valid buffer.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
        out.extend_from_slice(&buf[..n as usize]);
    }
    out
}

/// `process.terminal` with the caller on a terminal (a pty of the test's
/// own, 33 rows × 111 columns): the workload sees that window size, what is
/// typed reaches it, its output and status reach the caller, and the
/// caller's terminal mode (made raw meanwhile) is put back.
pub fn case_terminal_caller_tty(root: &Path, id: &str) {
    let b = terminal_bundle(
        root,
        id,
        &format!("{TTY_PROBE}; echo \"size $(stty size)\"; read x; echo \"got=$x\"; exit 5"),
    );
    let _cleanup = Removed(b.clone());
    let (master, slave) = open_caller_pty();
    let ws = libc::winsize {
        ws_row: 33,
        ws_col: 111,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize.
    assert_eq!(unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSWINSZ, &ws) }, 0);
    let before = termios_of(slave.as_raw_fd());
    let mut child = sandboxctl()
        .args(["apply", "--bundle", &b.display().to_string(), "--id", id])
        .stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave.try_clone().unwrap())
        .spawn()
        .unwrap();
    write_fd(master.as_raw_fd(), b"typed-in\n");
    let mut status = None;
    let out = read_until(master.as_raw_fd(), || {
        status = status.or_else(|| child.try_wait().unwrap());
        status.is_some()
    });
    let status = status.unwrap_or_else(|| {
        let _ = child.kill();
        child.wait().unwrap()
    });
    let o = String::from_utf8_lossy(&out).into_owned();
    assert_eq!(status.code(), Some(5), "{o}");
    assert!(leftovers(id).is_empty(), "left behind: {:?}", leftovers(id));
    assert!(o.contains("stdin-is-a-tty"), "{o}");
    assert!(o.contains("size 33 111"), "window size not propagated: {o}");
    assert!(
        o.contains("got=typed-in"),
        "typed input did not reach the workload: {o}"
    );
    assert_ne!(tty_nr(&o), "0", "no controlling tty: {o}");
    assert_eq!(
        termios_of(slave.as_raw_fd()),
        before,
        "the caller's terminal mode was not restored"
    );
}

/// `process.terminal` with `--console-socket`: the test receives the pty
/// master over the socket (SCM_RIGHTS) and talks to the workload through it;
/// the caller's own stdout stays unused; the status passes through.
pub fn case_terminal_console_socket(root: &Path, id: &str) {
    use std::os::unix::net::UnixListener;
    let b = terminal_bundle(root, id, &format!("{TTY_PROBE}; read x; echo \"got=$x\"; exit 4"));
    let _cleanup = Removed(b.clone());
    let sock = std::env::temp_dir().join(format!("sbx-console-{id}.sock"));
    let _ = fs::remove_file(&sock);
    let listener = UnixListener::bind(&sock).unwrap();
    let _socket = Removed(sock.clone());
    listener.set_nonblocking(true).unwrap();
    let mut child = sandboxctl()
        .args([
            "apply",
            "--bundle",
            &b.display().to_string(),
            "--id",
            id,
            "--console-socket",
        ])
        .arg(&sock)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let conn = loop {
        match listener.accept() {
            Ok((c, _)) => break Some(c),
            Err(_) if Instant::now() < deadline && child.try_wait().unwrap().is_none() => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(_) => break None,
        }
    };
    let master = conn.and_then(|c| {
        c.set_nonblocking(false).unwrap();
        super::recv_fd(c.as_raw_fd())
    });
    let mut o = String::new();
    if let Some(m) = master {
        write_fd(m, b"over-the-console\n");
        let out = read_until(m, || child.try_wait().map_or(true, |s| s.is_some()));
        o = String::from_utf8_lossy(&out).into_owned();
        // SAFETY: closing the fd received.
        unsafe { libc::close(m) };
    }
    let out = child.wait_with_output().unwrap();
    let _ = fs::remove_file(&sock);
    assert!(master.is_some(), "no master received: {}", text(&out));
    assert_eq!(out.status.code(), Some(4), "{}\npty: {o}", text(&out));
    assert!(leftovers(id).is_empty(), "left behind: {:?}", leftovers(id));
    assert!(o.contains("stdin-is-a-tty"), "pty: {o}");
    assert!(o.contains("got=over-the-console"), "pty: {o}");
    assert_ne!(tty_nr(&o), "0", "no controlling tty: {o}");
    assert!(out.stdout.is_empty(), "the caller's stdout was used: {}", text(&out));
}

/// A log path that cannot be made (its directory would be under a regular
/// file): doctor names it, and apply fails the same way before doing
/// anything (the same need, in its preflight), leaving nothing.
pub fn case_logs_doctor_agrees(_root: &Path, id: &str) {
    let tmp = std::env::temp_dir().join(format!("sbx-logs-{id}"));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).unwrap();
    let _cleanup = Removed(tmp.clone());
    let file = tmp.join("a-file");
    fs::write(&file, "").unwrap();
    let policy = tmp.join("logs.toml");
    fs::write(
        &policy,
        format!(
            "extends = \"default\"\n[logs]\nlog = \"{}/sub/{{id}}.log\"\n",
            file.display()
        ),
    )
    .unwrap();
    let policy = policy.display().to_string();
    let need = format!(
        "log directory for {f}/sub/{{id}}.log: {f} is not a directory (needed by policy:{policy}:3)",
        f = file.display()
    );
    let doctor = sandboxctl()
        .args(["doctor", "--policy", &policy, "--", "/bin/true"])
        .output()
        .unwrap();
    assert_eq!(doctor.status.code(), Some(1), "doctor: {}", text(&doctor));
    assert!(
        String::from_utf8_lossy(&doctor.stdout).contains(&need),
        "doctor: {}",
        text(&doctor)
    );
    let apply = sandboxctl()
        .args(["apply", "--policy", &policy, "--id", id, "--", "/bin/true"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(apply.status.code(), Some(125), "apply: {}", text(&apply));
    // The diagnostic is wrapped: compare without whitespace and frame.
    let squeeze = |t: &str| {
        t.chars()
            .filter(|c| !c.is_whitespace() && *c != '│')
            .collect::<String>()
    };
    let err = squeeze(&String::from_utf8_lossy(&apply.stderr));
    assert!(
        err.contains(&squeeze("does not meet the plan's needs")) && err.contains(&squeeze(&need)),
        "apply: {}",
        text(&apply)
    );
    assert!(leftovers(id).is_empty(), "left behind: {:?}", leftovers(id));
}
