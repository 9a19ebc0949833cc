//! OCI hooks (runtime-spec config.md, "POSIX-platform Hooks"): the one place
//! a hook process is made.
//!
//! The plan's `hooks` say what runs; this module runs one of them for
//! [`super::backend::Op::RunHook`]: a new process on the host, as the calling
//! user, in the caller's namespaces, exec'd with exactly the hook's path,
//! argv and environment, the sandbox's OCI state JSON on its stdin, its
//! stdout and stderr on the caller's stderr (an engine's runtime's stdout is
//! not a place for a hook's chatter), every other fd closed. It is waited
//! for; past its timeout it is killed (SIGKILL). A non-zero exit, a signal
//! or the timeout is an error; whether that fails the command is the phase's
//! rule ([`HookPhase::fatal`]), applied by the caller. Nothing here runs
//! unless a plan has hooks: the launch path of a plan without hooks makes no
//! subprocess.

use std::collections::BTreeMap;
use std::io::{self, Seek, Write};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::backend::{Backend, Op};
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

/// Runs one hook (the real backend's [`Op::RunHook`]).
pub fn run(hook: &Hook, state: &[u8]) -> io::Result<()> {
    let mut cmd = Command::new(&hook.path);
    if let Some((argv0, rest)) = hook.args.split_first() {
        cmd.arg0(argv0).args(rest);
    }
    cmd.env_clear();
    for e in &hook.env {
        // Compile refuses an entry without `=`.
        if let Some((k, v)) = e.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::from(state_file(state)?))
        .stdout(Stdio::from(io::stderr().as_fd().try_clone_to_owned()?))
        .stderr(Stdio::inherit());
    // SAFETY: close_range is async-signal-safe and touches only the child's
    // fd table: every fd above stdio is marked close-on-exec (std's own
    // exec-error pipe already is), so the hook gets none of the launcher's.
    unsafe {
        cmd.pre_exec(|| {
            if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    let limit = hook.timeout_s.map(|s| Duration::from_secs(u64::from(s)));
    let status = match wait_until(&mut child, limit)? {
        Some(st) => st,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "still running after its timeout of {} s: killed (SIGKILL)",
                    hook.timeout_s.unwrap_or(0)
                ),
            ));
        }
    };
    match (status.code(), status.signal()) {
        (Some(0), _) => Ok(()),
        (Some(c), _) => Err(io::Error::other(format!("exited with status {c}"))),
        (_, Some(s)) => Err(io::Error::other(format!("killed by signal {s}"))),
        _ => Err(io::Error::other(format!("ended with {status}"))),
    }
}

/// Waits for `child` to end, at most `limit`: its status, or `None` when
/// the limit passed first. Woken by the child's pidfd (poll), so a hook's
/// end is seen at once; where pidfd_open is missing, polled with growing
/// naps (≤ 10 ms).
fn wait_until(
    child: &mut std::process::Child,
    limit: Option<Duration>,
) -> io::Result<Option<std::process::ExitStatus>> {
    let started = Instant::now();
    // SAFETY: pidfd_open of our own unreaped child; the fd returned is ours.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, child.id() as libc::pid_t, 0) };
    // SAFETY: a fd just returned by pidfd_open, owned by nothing else.
    let pidfd = (pidfd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(pidfd as i32) });
    let mut nap = Duration::from_micros(200);
    loop {
        if let Some(st) = child.try_wait()? {
            return Ok(Some(st));
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
                    fd: std::os::fd::AsRawFd::as_raw_fd(fd),
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
        run(&hook(&script, Some(5)), br#"{"status":"stopped"}"#).unwrap();
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
        let e = run(&hook("exit 7", None), b"{}").unwrap_err();
        assert_eq!(e.to_string(), "exited with status 7");
        let e = run(&hook("kill -9 $$", None), b"{}").unwrap_err();
        assert_eq!(e.to_string(), "killed by signal 9");
        let d = scratch("timeout");
        let t0 = Instant::now();
        let e = run(
            &hook(&format!("echo $$ > {}/pid; exec sleep 30", d.display()), Some(1)),
            b"{}",
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
        assert_eq!(run(&missing, b"{}").unwrap_err().kind(), io::ErrorKind::NotFound);
    }
}
