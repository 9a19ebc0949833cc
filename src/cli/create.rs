//! `create`, `start`, `run` and `exec`: making a long-lived sandbox, starting
//! its workload, and starting more processes in it (docs/lifecycle.md). The
//! rest of the lifecycle's commands read or act on what these leave under
//! `--root`.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use super::run::{load_plan_file, EXIT_APPLY_FAILED};
use super::{compile_inputs, Failure, PlanInputs};
use crate::diag::SourceDiag;
use crate::exec::control::client::{Client, ClientError};
use crate::exec::control::proto::{ExecStdio, ExitStatus, Reply, Request, Status};
use crate::exec::control::state::{self, LockMode, Record, SandboxDir, SandboxId, StateRoot, PLAN_FILE, RECORD_FORMAT};
use crate::exec::{self, LaunchId};
use crate::plan::render::{self, Format};
use crate::plan::{HookPhase, LaunchPlan};
use crate::vocab::Origin;

/// How long a command waits for an id's lock, and for a control call.
const WAIT: Duration = Duration::from_secs(15);

fn client_failure(id: &SandboxId, what: &str, e: ClientError) -> Failure {
    Failure::other(format!("{what} {id}: {e}"))
}

/// What `create` and `run` take besides the plan's inputs.
pub(super) struct CreateArgs<'a> {
    /// The sandbox id.
    pub id: &'a str,
    /// runc's `--pid-file`.
    pub pid_file: Option<&'a Path>,
    /// Print the ops instead.
    pub dry_run: bool,
    /// `--sandbox`: the sandbox whose namespaces this one joins.
    pub sandbox: Option<&'a str>,
}

/// `create ID`: compile as `apply` does, run up to the workload's spawn,
/// record the sandbox.
#[inline(never)] // see `cli::run`
pub(super) fn create(root: &Path, inputs: &PlanInputs, args: &CreateArgs) -> Result<i32, Failure> {
    create_sandbox(root, inputs, args).map(|_| 0)
}

fn create_sandbox(root: &Path, inputs: &PlanInputs, args: &CreateArgs) -> Result<SandboxId, Failure> {
    let id = SandboxId::parse(args.id).map_err(|e| super::sandbox::failure(e.into()))?;
    let mut inputs = inputs.clone();
    if let Some(other) = args.sandbox {
        let other = SandboxId::parse(other).map_err(|e| super::sandbox::failure(e.into()))?;
        let (_, record) = super::lifecycle::open(root, other.as_str(), LockMode::Shared)?;
        match record
            .supervisor
            .as_ref()
            .filter(|_| record.live_status() != Status::Stopped)
        {
            Some(s) => inputs.join_sandbox = Some(s.pid),
            None => {
                return Err(Failure::other(format!(
                    "create {id} --sandbox {other}: that sandbox is stopped; its namespaces are gone"
                )))
            }
        }
    }
    // runc's default bundle is the current directory.
    if inputs.bundle.is_none()
        && inputs.spec.is_none()
        && inputs.command.is_empty()
        && Path::new("config.json").exists()
    {
        inputs.bundle = Some(PathBuf::from("."));
    }
    let Staged {
        plan,
        policies,
        host,
        bundle,
        annotations,
    } = stage(&inputs)?;
    if plan.stdio.value == crate::plan::Stdio::Pty {
        // The launcher that would relay the terminal exits after create: its
        // pty would hang up on the sandbox (SIGHUP) at once.
        return Err(Failure::input(SourceDiag::plain(
            format!(
                "create {id}: the spec asks for a terminal (process.terminal, {}), which a created sandbox gets \
                 only through --console-socket (the launcher that would relay it exits)",
                plan.stdio.from
            ),
            Some("give --console-socket SOCKET (engines do), or set process.terminal to false".into()),
        )));
    }
    let record = Record {
        format: RECORD_FORMAT,
        id: id.as_str().to_string(),
        status: Status::Created,
        bundle,
        // SAFETY: getuid cannot fail and has no arguments.
        owner_uid: unsafe { libc::getuid() },
        created_unix: state::now_unix(),
        supervisor: None,
        annotations,
        exit: None,
        plan_hash: Some(render::hash(&plan)),
    };
    let pid_file = match args.pid_file {
        Some(p) if p.is_relative() => Some(std::env::current_dir().map(|d| d.join(p)).unwrap_or(p.to_path_buf())),
        p => p.map(Path::to_path_buf),
    };
    let creating = exec::interp::Creating {
        record,
        pid_file,
        files: vec![
            (PLAN_FILE, Rc::new(render::render(&plan, Format::Json).into_bytes())),
            (
                state::POLICY_FILE,
                Rc::new(serde_json::to_vec_pretty(&policies).map_err(|e| Failure::other(format!("create: {e}")))?),
            ),
        ],
    };
    let opts = exec::ApplyOptions {
        id: Some(
            LaunchId::given(id.as_str(), Origin::Cli("the sandbox id".into()))
                .map_err(|e| Failure::input(SourceDiag::plain(e.to_string(), None)))?,
        ),
        root: Some(root.to_path_buf()),
        ..Default::default()
    };
    if args.dry_run {
        let text = exec::dry_run_create_text(&plan, &opts, creating).map_err(|e| Failure::other(e.to_string()))?;
        print!(
            "# dry run of create (then start) for plan {}\n{text}",
            render::hash(&plan)
        );
        return Ok(id);
    }
    match exec::create(&plan, &host, &opts, creating) {
        Ok(_supervisor) => Ok(id),
        Err(e) => {
            let text = e.to_string();
            let text = if text.contains("File exists") || text.contains("EEXIST") {
                format!(
                    "create {id}: a sandbox with this id exists under {} (nothing was changed)",
                    root.display()
                )
            } else {
                format!("create {id}: {text}")
            };
            Err(Failure {
                diag: Box::new(SourceDiag::plain(text, None)),
                code: 1,
            })
        }
    }
}

/// What `create` needs of the compile.
struct Staged {
    plan: LaunchPlan,
    /// The resolved policy's files, base first (`policy.json`, for `update`).
    policies: Vec<state::PolicySource>,
    host: crate::host::HostFacts,
    bundle: PathBuf,
    annotations: std::collections::BTreeMap<String, String>,
}

/// Compiles the inputs.
fn stage(inputs: &PlanInputs) -> Result<Staged, Failure> {
    let (compiled, loaded) = compile_inputs(inputs, Path::new("."))?;
    Ok(Staged {
        plan: compiled.plan,
        policies: loaded.policy.sources.iter().map(state::PolicySource::from).collect(),
        host: loaded.host,
        bundle: match &loaded.spec.dir {
            Some(d) => d.clone(),
            None => std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
        },
        annotations: loaded
            .spec
            .spec
            .annotations()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
    })
}

/// `start ID`: the supervisor spawns the workload.
#[inline(never)] // see `cli::run`
pub(super) fn start(root: &Path, id: &str) -> Result<i32, Failure> {
    let id = SandboxId::parse(id).map_err(|e| super::sandbox::failure(e.into()))?;
    let (dir, mut record) = super::lifecycle::open(root, id.as_str(), LockMode::Exclusive)?;
    let status = record.live_status();
    if status != Status::Created {
        return Err(Failure::other(format!(
            "start {id}: the sandbox is {}, not created",
            status.as_str()
        )));
    }
    let plan = plan_with_hooks(&dir);
    // The supervisor runs the startContainer hooks before it answers: the
    // call may take their timeouts (without one, as long as they run).
    let limit = match &plan {
        Some(p) if exec::hooks::has(p, &[HookPhase::StartContainer]) => p
            .hooks
            .iter()
            .filter(|h| h.phase == HookPhase::StartContainer)
            .try_fold(WAIT, |sum, h| {
                h.timeout_s.map(|t| sum + Duration::from_secs(u64::from(t)))
            }),
        _ => Some(WAIT),
    };
    let mut c = Client::connect(&dir.socket_path(), WAIT).map_err(|e| client_failure(&id, "start", e))?;
    c.call_within(&Request::Start {}, limit)
        .map_err(|e| client_failure(&id, "start", e))?;
    record.status = Status::Running;
    dir.write_record(&record).map_err(super::sandbox::failure)?;
    if let Some(p) = &plan {
        poststart(p, &record);
    }
    Ok(0)
}

/// The stored plan, when it has hooks. The stored plan is canonical JSON
/// whose `hooks` key is absent when it has none: a plan without the key is
/// not parsed (a plain `start` stays one small read longer than before).
fn plan_with_hooks(dir: &SandboxDir) -> Option<LaunchPlan> {
    let has_hooks = dir
        .read_file(PLAN_FILE)
        .ok()
        .flatten()
        .is_some_and(|b| b.windows(7).any(|w| w == b"\"hooks\""));
    if !has_hooks {
        return None;
    }
    super::lifecycle::stored_plan(dir).ok().flatten()
}

/// The runtime spec: the poststart hooks run on the host once the workload
/// is started, before `start` returns; a failure is a warning (runc's rule).
/// The hooks are the stored plan's (what the sandbox got); a plan without
/// poststart hooks runs nothing.
fn poststart(plan: &LaunchPlan, record: &Record) {
    if !exec::hooks::has(plan, &[HookPhase::Poststart]) {
        return;
    }
    let state = exec::hooks::HookState::of(&record.oci_state());
    for w in exec::hooks::run_phase(&mut exec::linux::LinuxBackend, plan, HookPhase::Poststart, &state) {
        eprintln!("warning: start {}: {w}", record.id);
    }
}

/// `run ID`: create and start; in the foreground (without `--detach`) wait
/// for the workload, forwarding INT, TERM and HUP to it, then remove the
/// sandbox, and exit with the workload's status.
#[inline(never)] // see `cli::run`
pub(super) fn run(root: &Path, inputs: &PlanInputs, args: &CreateArgs, detach: bool) -> Result<i32, Failure> {
    let id = create_sandbox(root, inputs, args)?;
    if args.dry_run {
        return Ok(0);
    }
    if let Err(f) = start(root, id.as_str()) {
        let _ = super::lifecycle::delete(root, id.as_str(), true);
        return Err(f);
    }
    if detach {
        return Ok(0);
    }
    let status = wait_foreground(root, &id, None);
    let _ = super::lifecycle::delete(root, id.as_str(), true);
    Ok(status)
}

/// Waits in the foreground for the workload (or, with `pid`, an `exec`'d
/// process): a child process makes the blocking `wait` call and exits with
/// the status, so that this process can forward the caller's INT, TERM and
/// HUP meanwhile (their arrival and the child's SIGCHLD are taken with
/// sigwaitinfo).
fn wait_foreground(root: &Path, id: &SandboxId, pid: Option<i32>) -> i32 {
    let socket = match StateRoot::new(root).open(id, LockMode::Shared, WAIT) {
        Ok(dir) => dir.socket_path(),
        Err(_) => return read_exit(root, id).map_or(EXIT_APPLY_FAILED, ExitStatus::shell_status),
    };
    let child = fork_waiter(&socket, pid);
    let set = crate::exec::linux::signal_set();
    loop {
        // SAFETY: a valid set; no info wanted.
        let sig = unsafe { libc::sigwaitinfo(&set, std::ptr::null_mut()) };
        match sig {
            libc::SIGCHLD => break,
            libc::SIGINT | libc::SIGTERM | libc::SIGHUP => forward(&socket, pid, sig),
            _ => {}
        }
    }
    reap_waiter(child)
        // The call failed (the supervisor went away): the recorded exit.
        .or_else(|| read_exit(root, id).map(ExitStatus::shell_status))
        .unwrap_or(EXIT_APPLY_FAILED)
}

/// Blocks INT, TERM, HUP and CHLD (to be taken with sigwaitinfo or the pty
/// relay) and forks a child that makes the blocking `wait` (or `wait_pid`)
/// call on `socket` and exits with the status (255 when the call failed):
/// its SIGCHLD ends the caller's wait, which meanwhile forwards signals.
/// Returns the child's pid.
fn fork_waiter(socket: &Path, pid: Option<i32>) -> i32 {
    let set = crate::exec::linux::signal_set();
    // SAFETY: a valid set; the old mask is not needed.
    unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    // SAFETY: the CLI has no other threads; the child only calls, then _exits.
    let child = unsafe { libc::fork() };
    if child == 0 {
        let req = match pid {
            Some(p) => Request::WaitPid { pid: p },
            None => Request::Wait {},
        };
        let code = match Client::connect(socket, WAIT).and_then(|mut c| c.call(&req)) {
            Ok(Reply::Exited { exit, .. }) => exit.shell_status(),
            _ => -1,
        };
        // SAFETY: _exit in the forked child.
        unsafe { libc::_exit(code & 0xff) }
    }
    child
}

/// Reaps [`fork_waiter`]'s child: the status it got, or `None` when its
/// call failed (the supervisor went away).
fn reap_waiter(child: i32) -> Option<i32> {
    let mut raw = 0;
    // SAFETY: reaping our own child with a valid status pointer.
    unsafe { libc::waitpid(child, &mut raw, 0) };
    match ExitStatus::from_raw(raw) {
        Some(ExitStatus::Exited { code }) if code != 255 => Some(code),
        _ => None,
    }
}

/// Forwards `signal` to the workload (`pid` None) or to process `pid`.
fn forward(socket: &Path, pid: Option<i32>, signal: i32) {
    let req = match pid {
        Some(p) => Request::SignalProcess {
            pid: p,
            signal,
            foreground: false,
        },
        None => Request::SignalContainer { signal, all: false },
    };
    let _ = Client::connect(socket, WAIT).and_then(|mut c| c.call(&req));
}

/// The workload's exit status as the supervisor recorded it.
fn read_exit(root: &Path, id: &SandboxId) -> Option<ExitStatus> {
    let dir = StateRoot::new(root).open(id, LockMode::Shared, WAIT).ok()?;
    state::read_exit(&dir).ok().flatten()
}

/// What `exec` takes.
pub(super) struct ExecArgs<'a> {
    pub id: &'a str,
    pub process: Option<&'a Path>,
    pub tty: bool,
    pub detach: bool,
    pub pid_file: Option<&'a Path>,
    pub console_socket: Option<&'a Path>,
    pub cwd: Option<&'a Path>,
    pub env: &'a [String],
    pub user: Option<&'a str>,
    pub command: &'a [String],
}

/// `exec ID CMD...`: a new process in the running sandbox.
#[inline(never)] // see `cli::run`
pub(super) fn exec(root: &Path, a: &ExecArgs) -> Result<i32, Failure> {
    let id = SandboxId::parse(a.id).map_err(|e| super::sandbox::failure(e.into()))?;
    let (dir, record) = super::lifecycle::open(root, id.as_str(), LockMode::Shared)?;
    let status = record.live_status();
    if status != Status::Running {
        return Err(Failure::other(format!(
            "exec {id}: the sandbox is {}, not running",
            status.as_str()
        )));
    }
    let mut process = exec_process(&dir, a)?;
    let tty = a.tty || process.terminal().unwrap_or(false);
    process.set_terminal(Some(tty));
    if tty && a.detach && a.console_socket.is_none() {
        return Err(Failure::input(SourceDiag::plain(
            format!("exec {id}: --tty with --detach needs --console-socket (where the terminal goes)"),
            None,
        )));
    }
    let stdio = if tty { ExecStdio::Pty } else { ExecStdio::Attached };
    let (i, o, e) = (std::io::stdin(), std::io::stdout(), std::io::stderr());
    let fds: Vec<std::os::fd::BorrowedFd> = if tty {
        Vec::new()
    } else {
        vec![i.as_fd(), o.as_fd(), e.as_fd()]
    };
    let mut c = Client::connect(&dir.socket_path(), WAIT).map_err(|e| client_failure(&id, "exec", e))?;
    let req = Request::Exec {
        process: Box::new(process),
        stdio,
    };
    let (reply, master) = c
        .call_with_fds(&req, &fds)
        .map_err(|e| client_failure(&id, "exec", e))?;
    let Reply::Exec { pid } = reply else {
        return Err(Failure::other(format!("exec {id}: unexpected reply {}", reply.name())));
    };
    drop(c);
    let supervisor = record.supervisor.as_ref().map_or(0, |s| s.pid);
    if let (Some(p), true) = (a.pid_file, a.detach) {
        // An engine waits for the pid in the pid file as its child (conmon
        // and containerd's shim are subreapers): the exec'd process is the
        // supervisor's child, so the pid written is a proxy's, a child of
        // this process (reparented to the engine when this exits), that
        // waits for the process through the supervisor, forwards INT, TERM
        // and HUP to it, and exits with its status.
        let proxy = exec_proxy(root, &id, pid)?;
        state::write_pid_file(p, proxy).map_err(super::sandbox::failure)?;
    } else if let Some(p) = a.pid_file {
        let host = host_pid(supervisor, pid).ok_or_else(|| {
            Failure::other(format!(
                "exec {id}: process {pid} is gone before its pid file was written"
            ))
        })?;
        state::write_pid_file(p, host).map_err(super::sandbox::failure)?;
    }
    if let (Some(sock), Some(m)) = (a.console_socket, master.as_ref()) {
        send_console(sock, m)
            .map_err(|e| Failure::other(format!("exec {id}: --console-socket {}: {e}", sock.display())))?;
    }
    if a.detach {
        return Ok(0);
    }
    drop(dir);
    match (master, a.console_socket) {
        (Some(m), None) => Ok(relay_and_wait(root, &id, pid, &m)),
        _ => Ok(wait_foreground(root, &id, Some(pid))),
    }
}

/// The process `exec` asks for: `--process FILE`, or CMD with the stored
/// plan's environment (plus `--env`), cwd and user, as runc's exec makes it.
fn exec_process(dir: &SandboxDir, a: &ExecArgs) -> Result<oci_spec::runtime::Process, Failure> {
    use oci_spec::runtime::{ProcessBuilder, UserBuilder};
    if let Some(p) = a.process {
        let (_, _, mut process) =
            crate::spec::load_process(p, Path::new(".")).map_err(|e| Failure::input(e.to_diag()))?;
        clamp_exec_capabilities(dir, a.id, &mut process)?;
        return Ok(process);
    }
    if a.command.is_empty() {
        return Err(Failure::input(SourceDiag::plain(
            "exec: no command given",
            Some("give the command after the id, or --process FILE".into()),
        )));
    }
    let plan = load_plan_file(&dir.path().join(PLAN_FILE))?;
    let w = &plan.workload;
    let mut env = w.env.value.clone();
    for e in a.env {
        let key = e.split('=').next().unwrap_or("");
        env.retain(|x| x.split('=').next() != Some(key));
        env.push(e.clone());
    }
    let (uid, gid) = match a.user {
        None => (w.credentials.uid.0, w.credentials.gid.0),
        Some(u) => {
            let mut parts = u.splitn(2, ':');
            let uid = parts.next().and_then(|s| s.parse().ok());
            let gid = parts.next().map(|s| s.parse().ok());
            match (uid, gid) {
                (Some(uid), None) => (uid, uid),
                (Some(uid), Some(Some(gid))) => (uid, gid),
                _ => {
                    return Err(Failure::input(SourceDiag::plain(
                        format!("exec --user {u:?}: give numeric UID or UID:GID"),
                        None,
                    )))
                }
            }
        }
    };
    ProcessBuilder::default()
        .args(a.command.to_vec())
        .env(env)
        .cwd(a.cwd.map_or_else(|| w.cwd.value.clone(), Path::to_path_buf))
        .user(
            UserBuilder::default()
                .uid(uid)
                .gid(gid)
                .build()
                .map_err(|e| Failure::other(e.to_string()))?,
        )
        .terminal(a.tty)
        .build()
        .map(|mut p| {
            // The workload's capabilities (the supervisor's default), not oci-spec's.
            p.set_capabilities(None);
            p
        })
        .map_err(|e| Failure::other(format!("exec: {e}")))
}

/// Under a policy that clamps capabilities, an exec's sets above the
/// workload's are cut as compile cut the spec's (one warning line naming the
/// policy line); under one that denies, they go to the supervisor as asked
/// and it refuses them.
fn clamp_exec_capabilities(dir: &SandboxDir, id: &str, p: &mut oci_spec::runtime::Process) -> Result<(), Failure> {
    if p.capabilities().is_none() {
        return Ok(());
    }
    let policy = super::lifecycle::stored_policy(dir, "exec", id)?;
    if policy.cap_on_excess.value != crate::policy::OnExcess::Clamp {
        return Ok(());
    }
    let plan = load_plan_file(&dir.path().join(PLAN_FILE))?;
    let cut = crate::plan::exec_process::clamp_capabilities(&plan, p);
    if !cut.is_empty() {
        let mut caps: Vec<String> = cut.iter().map(|c| c.cap.to_string()).collect();
        caps.sort();
        caps.dedup();
        eprintln!(
            "warning: exec {id}: {} above this sandbox's capability ceiling cut (capabilities.on_excess = \"clamp\", {})",
            caps.join(", "),
            policy.origin(&policy.cap_on_excess.at)
        );
    }
    Ok(())
}

/// Forks the proxy of `exec --detach --pid-file` (see [`exec`]): its stdio
/// is `/dev/null` (the engine's pipes stay with the exec'd process alone);
/// returns its pid.
fn exec_proxy(root: &Path, id: &SandboxId, pid: i32) -> Result<i32, Failure> {
    // SAFETY: the CLI is single-threaded; the child waits and _exits.
    let child = unsafe { libc::fork() };
    if child < 0 {
        return Err(Failure::other(format!(
            "exec {id}: fork: {}",
            std::io::Error::last_os_error()
        )));
    }
    if child == 0 {
        if let Ok(null) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
            for fd in 0..3 {
                // SAFETY: dup2 of an fd we hold onto the stdio numbers.
                unsafe { libc::dup2(null.as_raw_fd(), fd) };
            }
        }
        let status = wait_foreground(root, id, Some(pid));
        // SAFETY: _exit in the forked child.
        unsafe { libc::_exit(status) }
    }
    Ok(child)
}

/// The host pid of the process whose pid in the sandbox (the PID namespace
/// of host process `supervisor`) is `inner`.
pub(super) fn host_pid(supervisor: i32, inner: i32) -> Option<i32> {
    let ns = std::fs::read_link(format!("/proc/{supervisor}/ns/pid")).ok()?;
    if inner == 1 {
        return Some(supervisor);
    }
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok().as_ref() != Some(&ns) {
            continue;
        }
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue;
        };
        let last = status
            .lines()
            .find_map(|l| l.strip_prefix("NSpid:"))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|s| s.parse::<i32>().ok());
        if last == Some(inner) {
            return Some(pid);
        }
    }
    None
}

/// Sends the pty master to the `--console-socket` (SCM_RIGHTS), as runc does.
fn send_console(path: &Path, master: &OwnedFd) -> std::io::Result<()> {
    use std::os::unix::net::UnixStream;
    let sock = UnixStream::connect(path)?;
    let fds = [master.as_raw_fd()];
    let cmsg = nix::sys::socket::ControlMessage::ScmRights(&fds);
    let iov = [std::io::IoSlice::new(b"/dev/pts/ptmx")];
    nix::sys::socket::sendmsg::<()>(
        sock.as_raw_fd(),
        &iov,
        &[cmsg],
        nix::sys::socket::MsgFlags::empty(),
        None,
    )
    .map(drop)
    .map_err(|e| std::io::Error::from_raw_os_error(e as i32))
}

/// `exec --tty` in the foreground: relays the pty to this terminal until
/// the process ends (a child process's `wait_pid` ends with a SIGCHLD that
/// stops the relay), then exits with its status.
fn relay_and_wait(root: &Path, id: &SandboxId, pid: i32, master: &OwnedFd) -> i32 {
    let m = master.as_raw_fd();
    let saved = exec::pty::make_raw(0).ok().flatten();
    let _ = exec::pty::copy_winsize(m);
    let socket = root.join(id.as_str()).join(state::CONTROL_SOCKET);
    let child = fork_waiter(&socket, Some(pid));
    let mut stdin = true;
    loop {
        match exec::pty::relay(m, stdin) {
            Ok(exec::backend::Outcome::StdinClosed) => stdin = false,
            Ok(exec::backend::Outcome::Signal(libc::SIGCHLD)) | Err(_) => break,
            Ok(exec::backend::Outcome::Signal(sig)) => forward(&socket, Some(pid), sig),
            Ok(_) => {}
        }
    }
    let _ = exec::pty::drain(m);
    if let Some(s) = saved {
        let _ = exec::pty::restore(0, &s);
    }
    reap_waiter(child).unwrap_or(EXIT_APPLY_FAILED)
}
