//! OCI hooks (runtime-spec config.md, "POSIX-platform Hooks"): the one place
//! a hook process is made.
//!
//! The plan's `hooks` say what runs; this module runs one of them for
//! [`super::backend::Op::RunHook`]: a child of the caller (on the host, as
//! the calling user, in the caller's namespaces; or, for the container's
//! phases, of the supervisor, in the sandbox's namespaces, after the setup
//! ops [`InSandbox`] lists), exec'd with exactly the hook's path (or the fd
//! opened on it), argv and environment, the sandbox's OCI state JSON on its
//! stdin, its stdout and stderr on the caller's stderr (an engine's
//! runtime's stdout is not a place for a hook's chatter), every other fd
//! closed. It is waited for; past its timeout it is killed (SIGKILL). A
//! non-zero exit, a signal or the timeout is an error; whether that fails
//! the command is the phase's rule ([`HookPhase::fatal`]), applied by the
//! caller. Nothing here runs unless a plan has hooks: the launch path of a
//! plan without hooks makes no subprocess.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::io::{self, Seek, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::backend::{Backend, InSandbox, Op};
use super::control::state::OciState;
use crate::plan::{Hook, HookPhase, LaunchPlan};

/// The state a hook reads on its stdin: the OCI state document, with the
/// status of the moment it runs (`creating` for `prestart` and
/// `createRuntime`, which `state` never reports).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HookState {
    /// The runtime spec version.
    pub oci_version: String,
    /// The sandbox id.
    pub id: String,
    /// `creating`, `running` or `stopped`.
    pub status: &'static str,
    /// The supervisor's host pid (absent once stopped).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    /// The bundle, absolute.
    pub bundle: PathBuf,
    /// The spec's annotations.
    pub annotations: BTreeMap<String, String>,
}

impl HookState {
    /// The state `state` reports, as a hook gets it.
    pub fn of(s: &OciState) -> HookState {
        HookState {
            oci_version: s.oci_version.clone(),
            id: s.id.clone(),
            status: s.status.as_str(),
            pid: s.pid,
            bundle: s.bundle.clone(),
            annotations: s.annotations.clone(),
        }
    }

    /// The JSON written to the hook's stdin.
    pub fn json(&self) -> Rc<Vec<u8>> {
        Rc::new(serde_json::to_vec(self).expect("a state always serialises"))
    }
}

/// Runs the plan's hooks of `phase`, in order, on `b`. Every hook runs, even
/// after one failed; the failures are returned, one line each (`poststart`
/// and `poststop`: warnings, not errors).
pub fn run_phase<B: Backend>(b: &mut B, plan: &LaunchPlan, phase: HookPhase, state: &HookState) -> Vec<String> {
    let mut failed = Vec::new();
    let mut json = None;
    for h in plan.hooks.iter().filter(|h| h.phase == phase) {
        let op = Op::RunHook {
            hook: Rc::new(h.clone()),
            status: state.status,
            state: Rc::clone(json.get_or_insert_with(|| state.json())),
            inside: None,
        };
        if let Err(e) = b.perform(&op) {
            failed.push(format!(
                "{} hook {} ({}) failed: {e}",
                phase.name(),
                h.path.display(),
                h.from
            ));
        }
    }
    failed
}

/// Runs one hook (the real backend's [`Op::RunHook`]): forks, and in the
/// child puts the state on stdin and this process's stderr on stdout, marks
/// every other fd close-on-exec, resets the signal mask and SIGPIPE, then
/// (`inside`) performs the setup ops and execs the hook (by its fd when
/// given). An exec that fails is reported through a close-on-exec pipe. The
/// child allocates nothing unless `inside` has setup ops (performed only by
/// the supervisor, which has one thread).
pub fn run(hook: &Hook, state: &[u8], inside: Option<&InSandbox>) -> io::Result<()> {
    let cstr = |s: &[u8]| CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte"));
    let path = cstr(hook.path.as_os_str().as_bytes())?;
    let argv: Vec<CString> = if hook.args.is_empty() {
        vec![path.clone()]
    } else {
        hook.args
            .iter()
            .map(|a| cstr(a.as_bytes()))
            .collect::<io::Result<_>>()?
    };
    let envp: Vec<CString> = hook.env.iter().map(|e| cstr(e.as_bytes())).collect::<io::Result<_>>()?;
    let ptrs = |v: &[CString]| -> Vec<*const libc::c_char> {
        v.iter()
            .map(|c| c.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect()
    };
    let (argv_p, envp_p) = (ptrs(&argv), ptrs(&envp));
    let stdin = state_file(state)?;
    let out = io::stderr().as_fd().try_clone_to_owned()?;
    let mut p = [0; 2];
    // SAFETY: a valid array of two ints for pipe2 to fill.
    if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both fds were just made by pipe2 and are owned by nothing else.
    let (report_r, report_w) = unsafe { (OwnedFd::from_raw_fd(p[0]), OwnedFd::from_raw_fd(p[1])) };
    // SAFETY: fork; the child only makes syscalls on memory prepared above
    // (and performs `inside`'s ops, in the single-threaded supervisor),
    // then execs or `_exit`s.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        let errno = child(stdin.as_raw_fd(), out.as_raw_fd(), &path, &argv_p, &envp_p, inside);
        let bytes = errno.to_ne_bytes();
        // SAFETY: writing 4 bytes from a local array to the report pipe,
        // then leaving without running any destructor.
        unsafe {
            libc::write(report_w.as_raw_fd(), bytes.as_ptr().cast(), bytes.len());
            libc::_exit(127)
        }
    }
    drop(report_w);
    drop((stdin, out));
    let mut got = [0u8; 4];
    // SAFETY: reading at most 4 bytes into a local array.
    let n = unsafe { libc::read(report_r.as_raw_fd(), got.as_mut_ptr().cast(), got.len()) };
    if n == 4 {
        let _ = reap(pid);
        return Err(io::Error::from_raw_os_error(i32::from_ne_bytes(got)));
    }
    let limit = hook.timeout_s.map(|s| Duration::from_secs(u64::from(s)));
    let status = match wait_until(pid, limit)? {
        Some(st) => st,
        None => {
            // SAFETY: our own unreaped child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let _ = reap(pid);
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "still running after its timeout of {} s: killed (SIGKILL)",
                    hook.timeout_s.unwrap_or(0)
                ),
            ));
        }
    };
    if libc::WIFEXITED(status) {
        match libc::WEXITSTATUS(status) {
            0 => Ok(()),
            c => Err(io::Error::other(format!("exited with status {c}"))),
        }
    } else if libc::WIFSIGNALED(status) {
        Err(io::Error::other(format!("killed by signal {}", libc::WTERMSIG(status))))
    } else {
        Err(io::Error::other(format!("ended with wait status {status:#x}")))
    }
}

/// The hook's side of the fork: returns the errno of what failed (never,
/// when the exec succeeds).
fn child(
    stdin: RawFd,
    out: RawFd,
    path: &CString,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
    inside: Option<&InSandbox>,
) -> i32 {
    let errno = || io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO);
    // SAFETY: dup2, close_range, sigprocmask and signal on valid arguments
    // (fds this process holds, a local empty signal set).
    unsafe {
        if libc::dup2(stdin, 0) < 0 || libc::dup2(out, 1) < 0 {
            return errno();
        }
        // Every fd above stdio close-on-exec: the hook gets none of its
        // parent's (the exe fd below aside).
        if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) != 0 {
            return errno();
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        if libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut()) != 0 {
            return errno();
        }
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let Some(inside) = inside else {
        // SAFETY: NUL-terminated path, NULL-terminated arrays of valid C strings.
        unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        return errno();
    };
    let mut b = super::linux::LinuxBackend;
    for op in &inside.setup {
        if let Err(e) = b.perform(op) {
            return e.raw_os_error().unwrap_or(libc::EPERM);
        }
    }
    match inside.exe {
        Some(fd) => {
            // SAFETY: fcntl on an fd this process holds; execveat of it with
            // an empty path and NULL-terminated arrays of valid C strings.
            unsafe {
                if libc::fcntl(fd.raw, libc::F_SETFD, 0) != 0 {
                    return errno();
                }
                libc::syscall(
                    libc::SYS_execveat,
                    fd.raw,
                    c"".as_ptr(),
                    argv.as_ptr(),
                    envp.as_ptr(),
                    libc::AT_EMPTY_PATH,
                );
            }
        }
        // SAFETY: as execve above.
        None => unsafe {
            libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr());
        },
    }
    errno()
}

/// waitpid for our child `pid`, retried on EINTR: its wait status.
fn reap(pid: libc::pid_t) -> io::Result<i32> {
    let mut status = 0;
    loop {
        // SAFETY: waitpid of our own child into a local int.
        if unsafe { libc::waitpid(pid, &mut status, 0) } == pid {
            return Ok(status);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Waits for our child `pid` to end, at most `limit`: its wait status, or
/// `None` when the limit passed first. Woken by the child's pidfd (poll), so
/// a hook's end is seen at once; where pidfd_open is missing, polled with
/// growing naps (≤ 10 ms).
fn wait_until(pid: libc::pid_t, limit: Option<Duration>) -> io::Result<Option<i32>> {
    let started = Instant::now();
    // SAFETY: pidfd_open of our own unreaped child; the fd returned is ours.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    // SAFETY: a fd just returned by pidfd_open, owned by nothing else.
    let pidfd = (pidfd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(pidfd as i32) });
    let mut nap = Duration::from_micros(200);
    loop {
        let mut status = 0;
        // SAFETY: waitpid of our own child into a local int.
        match unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } {
            p if p == pid => return Ok(Some(status)),
            0 => {}
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
        let left = match limit {
            Some(l) => match l.checked_sub(started.elapsed()) {
                Some(left) if !left.is_zero() => Some(left),
                _ => return Ok(None),
            },
            None => None,
        };
        match &pidfd {
            Some(fd) => {
                let mut p = libc::pollfd {
                    fd: fd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                let ms = left.map_or(-1, |d| i32::try_from(d.as_millis().max(1)).unwrap_or(i32::MAX));
                // SAFETY: one valid pollfd, for the duration of the call.
                let _ = unsafe { libc::poll(&mut p, 1, ms) };
            }
            None => {
                std::thread::sleep(left.map_or(nap, |l| nap.min(l)));
                nap = (nap * 2).min(Duration::from_millis(10));
            }
        }
    }
}

/// The state in a memfd, at offset 0: the hook's stdin. A file,
/// not a pipe, so a hook that never reads its stdin blocks nothing and
/// raises no SIGPIPE here.
fn state_file(state: &[u8]) -> io::Result<OwnedFd> {
    // SAFETY: a NUL-terminated name and valid flags; the fd returned is ours.
    let fd = unsafe { libc::memfd_create(c"oci-state".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and is owned by nothing else.
    let mut f = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    f.write_all(state)?;
    f.rewind()?;
    Ok(f.into())
}

/// The hooks of the phases given, for the caller's check that it has any.
pub fn has(plan: &LaunchPlan, phases: &[HookPhase]) -> bool {
    plan.hooks.iter().any(|h| phases.contains(&h.phase))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::Origin;

    fn hook(script: &str, timeout_s: Option<u32>) -> Hook {
        Hook {
            phase: HookPhase::Poststop,
            path: "/bin/sh".into(),
            args: vec!["argv-zero".into(), "-c".into(), script.into(), "name".into()],
            env: vec!["ONLY=this".into()],
            timeout_s,
            from: Origin::spec("hooks.poststop[0]"),
            allowed_by: Origin::Default,
        }
    }

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sandboxctl-hooks-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// The hook gets exactly its argv (argv[0] included) and env, the state
    /// on stdin, and none of the caller's other fds.
    #[test]
    fn a_hook_gets_its_argv_env_and_the_state_only() {
        let d = scratch("exact");
        // An fd without close-on-exec (a dup) must not reach the hook.
        let leak = std::fs::File::open("/dev/null").unwrap();
        // SAFETY: dup of a valid fd; the copy is closed below.
        let raw = unsafe { libc::dup(std::os::fd::AsRawFd::as_raw_fd(&leak)) };
        assert!(raw > 2);
        let script = format!(
            "cat > {0}/stdin; cat /proc/$$/cmdline > {0}/argv; cat /proc/$$/environ > {0}/env; ls /proc/$$/fd > {0}/fds",
            d.display()
        );
        run(&hook(&script, Some(5)), br#"{"status":"stopped"}"#, None).unwrap();
        // SAFETY: closing the dup made above.
        unsafe { libc::close(raw) };
        let read = |f: &str| std::fs::read_to_string(d.join(f)).unwrap();
        assert_eq!(read("stdin"), r#"{"status":"stopped"}"#);
        assert_eq!(read("argv"), format!("argv-zero\0-c\0{script}\0name\0"));
        assert_eq!(read("env"), "ONLY=this\0");
        let fds: Vec<String> = read("fds").lines().map(str::to_string).collect();
        assert!(
            !fds.contains(&raw.to_string()),
            "the caller's fd {raw} reached the hook: {fds:?}"
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    /// A non-zero exit and a signal are errors; a hook past its timeout is
    /// killed (not waited for) and its error says so.
    #[test]
    fn failures_and_the_timeout() {
        let e = run(&hook("exit 7", None), b"{}", None).unwrap_err();
        assert_eq!(e.to_string(), "exited with status 7");
        let e = run(&hook("kill -9 $$", None), b"{}", None).unwrap_err();
        assert_eq!(e.to_string(), "killed by signal 9");
        let d = scratch("timeout");
        let t0 = Instant::now();
        let e = run(
            &hook(&format!("echo $$ > {}/pid; exec sleep 30", d.display()), Some(1)),
            b"{}",
            None,
        )
        .unwrap_err();
        assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(e.to_string().contains("timeout of 1 s"), "{e}");
        let pid: i32 = std::fs::read_to_string(d.join("pid")).unwrap().trim().parse().unwrap();
        // SAFETY: signal 0 only checks for the process.
        assert_ne!(unsafe { libc::kill(pid, 0) }, 0, "the hook was killed and reaped");
        let _ = std::fs::remove_dir_all(&d);
        let missing = Hook {
            path: "/nonexistent/hook".into(),
            ..hook("", None)
        };
        assert_eq!(run(&missing, b"{}", None).unwrap_err().kind(), io::ErrorKind::NotFound);
    }
}
