//! The control half of the interpreter: a created sandbox's supervisor
//! serving control calls on its socket (the server loop is
//! [`crate::exec::control::server`]; this is its handler over the
//! interpreter). `start` runs the plan's remaining steps (spawn the workload,
//! drop the supervisor's privileges); `exec` spawns another process through
//! the same workload steps, with the section of the plan the request may
//! change replaced by [`crate::plan::exec_process::compile`]'s result; the
//! signalfd in the loop reaps children and forwards INT/TERM/HUP. When the
//! workload ends, its status goes to the `exit` record and, once every
//! waiter has its answer, the supervisor exits with it (ending the PID
//! namespace and every process in it).
//!
//! Pausing and statistics are the host's: the supervisor lives in the
//! sandbox's cgroup (freezing it from inside would freeze itself) and does
//! not see the cgroup filesystem; `sandboxctl pause` and `events` act on the
//! cgroup directly.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::{ExecOverride, Interp, CREATE_RULE, R};
use crate::exec::backend::{Backend, FdRef, FdTag, Op, Outcome, ProcRef, Who};
use crate::exec::control::children::{Children, Reaped};
use crate::exec::control::procfs;
use crate::exec::control::proto::{
    ErrorKind, ExecStdio, ExitStatus, Reply, Request, SandboxPid, Status, SupervisorState,
};
use crate::exec::control::server::{
    Call, ControlHandler, Outcome as CallOutcome, PeerRule, Server, ServerConfig, WaitFor,
};
use crate::plan::{FdEntry, FdRole, FdSource, Namespace};
use crate::vocab::{Fd, Origin};

/// The uid the kernel shows for an unmapped one (the default of
/// /proc/sys/kernel/overflowuid).
const OVERFLOW_UID: u32 = 65534;

impl<B: Backend> Interp<'_, B> {
    /// Serves control calls on `listener` until the sandbox ends, then
    /// exits with the workload's status (never returns when real).
    pub(super) fn serve(&mut self, listener: FdRef) -> R<()> {
        self.origin = Origin::rule(CREATE_RULE);
        let tag = FdTag::Internal("signalfd");
        let events = self.op_fd(Op::SignalFd { tag }, tag)?;
        let owner = self.owner_uid;
        let peers = if self.plan.namespaces.user.value == Namespace::New {
            let map: Vec<(u32, u32, u32)> = self
                .plan
                .id_maps
                .uid
                .iter()
                .map(|m| (m.inside, m.host, m.count))
                .collect();
            PeerRule::in_user_namespace(&map, owner, OVERFLOW_UID)
        } else {
            PeerRule::host(owner)
        };
        // SAFETY: both fds are this process's and nothing else uses them
        // from here: the server owns (and closes) them.
        let (listener, events) = unsafe { (OwnedFd::from_raw_fd(listener.raw), OwnedFd::from_raw_fd(events.raw)) };
        self.listener = None;
        let handler = Supervising::new(self, events.as_raw_fd());
        let mut server = Server::new(listener, Some(events), handler, ServerConfig::new(peers)).map_err(|e| {
            crate::exec::error::StepFailure::new(crate::plan::Step::Wait, Origin::rule(CREATE_RULE), "serve".into(), &e)
        })?;
        let served = server.run();
        let code = server.handler().exit_code();
        drop(server);
        if let Err(e) = served {
            tracing::error!("the control server failed: {e}");
        }
        tracing::info!("the sandbox ends; the supervisor exits with status {code}");
        self.b.perform(&Op::Exit { code }).map(drop).map_err(|e| {
            crate::exec::error::StepFailure::new(crate::plan::Step::Wait, Origin::rule(CREATE_RULE), "exit".into(), &e)
        })
    }

    /// Spawns an `exec`'d process: `ov` replaces the workload's section of
    /// the plan for the workload's steps. Returns its pid (in the sandbox).
    fn spawn_exec(&mut self, ov: ExecOverride) -> R<SandboxPid> {
        let saved = std::mem::replace(&mut self.prep.exec, Rc::clone(&ov.prepared));
        self.exec_override = Some(ov);
        let spawned = self.spawn_child();
        self.exec_override = None;
        self.prep.exec = saved;
        // The child's allocations are dead (it exec'd or died, and its
        // changes to this interpreter are put back): the next exec's child
        // starts with the whole arena.
        crate::alloc::reset_arena();
        let proc = spawned?.ok_or_else(|| self.unsupported("exec while recording"))?;
        // Its exec report: EOF is a successful execve.
        if let Some(r) = self.exec_report.take() {
            let b = self.read_and_close(Op::RecvReport { fd: r }, r)?;
            if !b.is_empty() {
                return Err(serde_json::from_slice(&b)
                    .unwrap_or_else(|_| self.failure("exec report", String::from_utf8_lossy(&b).into_owned())));
            }
        }
        Ok(proc.pid)
    }

    /// The `exec`'d process's fd table: its three stdio fds at 0, 1, 2,
    /// everything else closed; with a terminal, a new session whose
    /// controlling terminal it is.
    pub(super) fn arrange_exec_fds(&mut self, ov: &ExecOverride) -> R<()> {
        let roles = [FdRole::Stdin, FdRole::Stdout, FdRole::Stderr];
        let entries: Vec<FdEntry> = ov
            .stdio
            .iter()
            .zip(roles)
            .enumerate()
            .map(|(i, (src, role))| FdEntry {
                fd: Fd(i as i32),
                role,
                source: FdSource::Supervisor { fd: Fd(src.raw) },
                from: Origin::Cli("exec".into()),
            })
            .collect();
        let report = self.report;
        self.report = self.arrange_fds(&entries, &ov.stdio, &[report])?[0];
        if ov.tty {
            self.op(Op::SetSid)?;
            self.op(Op::SetControllingTty { fd: FdRef::num(0) })?;
        }
        Ok(())
    }
}

/// The supervisor's answers to control calls, over the interpreter.
struct Supervising<'i, 'a, B: Backend> {
    it: &'i mut Interp<'a, B>,
    children: Children,
    started: bool,
    /// `destroy`, a signal before `start`, or a failed start: the sandbox
    /// ends once the replies are out.
    ending: Option<i32>,
    /// Whether the workload shares no PID namespace with the host (then
    /// `kill(-1)` from pid 1 reaches exactly the sandbox).
    own_pid_ns: bool,
    /// The signalfd the server polls (owned by the server).
    signalfd: i32,
}

impl<'i, 'a, B: Backend> Supervising<'i, 'a, B> {
    fn new(it: &'i mut Interp<'a, B>, signalfd: i32) -> Self {
        let own_pid_ns = it.plan.namespaces.pid.value == Namespace::New;
        Supervising {
            it,
            signalfd,
            children: Children::new(),
            started: false,
            ending: None,
            own_pid_ns,
        }
    }

    fn status(&self) -> Status {
        if self.ending.is_some() || self.children.workload_exit().is_some() {
            Status::Stopped
        } else if self.started {
            Status::Running
        } else {
            Status::Created
        }
    }

    /// The supervisor's exit status: the workload's, else why it ends.
    fn exit_code(&self) -> i32 {
        match (self.children.workload_exit(), self.ending) {
            (Some(e), _) => e.shell_status(),
            (None, Some(code)) => code,
            (None, None) => 0,
        }
    }

    fn kill(&mut self, pid: i32, signal: i32) -> Result<(), String> {
        let proc = ProcRef {
            pid,
            who: Who::Workload,
        };
        self.it
            .op(Op::Kill { proc, signal })
            .map(drop)
            .map_err(|f| f.to_string())
    }

    /// Signals every process of the sandbox (the supervisor aside).
    fn kill_all(&mut self, signal: i32) -> Result<(), String> {
        if self.own_pid_ns {
            return match self.kill(-1, signal) {
                // Nothing but the supervisor left.
                Err(e) if e.contains("ESRCH") || e.contains("No such process") => Ok(()),
                r => r,
            };
        }
        let mut pids: Vec<i32> = self.children.running_execs().to_vec();
        pids.extend(self.children.workload().filter(|p| self.children.is_live(*p)));
        for p in pids {
            let _ = self.kill(p, signal);
        }
        Ok(())
    }

    fn record_exit(&mut self, exit: ExitStatus) {
        tracing::info!(target: crate::exec::log::USER, "workload exited with status {}", exit.shell_status());
        if let Some(fd) = self.it.exit_file {
            let mut data = serde_json::to_vec(&exit).unwrap_or_default();
            data.push(b'\n');
            if let Err(f) = self.it.op(Op::Rewrite { fd, data }) {
                tracing::error!("recording the workload's exit: {f}");
            }
        }
    }

    fn start(&mut self) -> Reply {
        if self.started || self.ending.is_some() {
            return Reply::error(
                ErrorKind::WrongState,
                format!("start: the sandbox is {}, not created", self.status().as_str()),
            );
        }
        self.started = true;
        let it = &mut *self.it;
        let r = it
            .start_hooks()
            .and_then(|()| it.spawn_workload())
            .and_then(|()| it.await_exec())
            .and_then(|()| it.drop_supervisor_privileges());
        crate::alloc::reset_arena();
        match (r, it.workload) {
            (Ok(()), Some(w)) => {
                self.children.started_workload(w.pid);
                Reply::Done
            }
            (r, _) => {
                let message = match r {
                    Err(f) => f.to_string(),
                    Ok(()) => "start: the workload was not spawned".into(),
                };
                self.ending = Some(super::CHILD_FAILED);
                self.record_exit(ExitStatus::Exited {
                    code: super::CHILD_FAILED,
                });
                Reply::error(ErrorKind::Failed, message)
            }
        }
    }

    fn exec(
        &mut self,
        process: &oci_spec::runtime::Process,
        stdio: ExecStdio,
        fds: &mut [Option<OwnedFd>],
    ) -> CallOutcome {
        if self.status() != Status::Running {
            return CallOutcome::Reply(Reply::error(
                ErrorKind::WrongState,
                format!("the sandbox is {}, not running", self.status().as_str()),
            ));
        }
        let ep = match crate::plan::exec_process::compile(self.it.plan, process) {
            Ok(ep) => ep,
            Err(e) => return CallOutcome::Reply(Reply::error(ErrorKind::InvalidArgument, e.to_string())),
        };
        let prepared = match super::prepared_exec(&ep.args, &ep.env) {
            Ok(p) => Rc::new(p),
            Err((what, m)) => {
                return CallOutcome::Reply(Reply::error(ErrorKind::InvalidArgument, format!("process.{what}: {m}")))
            }
        };
        // The process's stdio, owned here until it is spawned.
        let mut held: Vec<OwnedFd> = Vec::new();
        let mut master: Option<OwnedFd> = None;
        let tty = stdio == ExecStdio::Pty;
        let stdio_fds: Result<[FdRef; 3], String> = match stdio {
            ExecStdio::Attached => {
                for f in fds.iter_mut().take(3) {
                    match f.take() {
                        Some(fd) => held.push(fd),
                        None => {
                            return CallOutcome::Reply(Reply::error(ErrorKind::FdMismatch, "three stdio fds expected"))
                        }
                    }
                }
                Ok([0, 1, 2].map(|i| FdRef {
                    raw: held[i].as_raw_fd(),
                    tag: FdTag::Internal("exec stdio"),
                }))
            }
            ExecStdio::Null => self
                .it
                .op(Op::Open {
                    path: PathBuf::from("/dev/null"),
                    flags: libc::O_RDWR,
                    mode: 0,
                    tag: FdTag::Internal("exec /dev/null"),
                })
                .map_err(|f| f.to_string())
                .and_then(|o| match o {
                    Outcome::Fd(raw) => {
                        // SAFETY: the op just opened it; owned here.
                        held.push(unsafe { OwnedFd::from_raw_fd(raw) });
                        Ok([FdRef {
                            raw,
                            tag: FdTag::Internal("exec /dev/null"),
                        }; 3])
                    }
                    o => Err(format!("open /dev/null: unexpected {o:?}")),
                }),
            ExecStdio::Pty => match self.it.op(Op::OpenPtyIn {
                ptmx: PathBuf::from("/dev/pts/ptmx"),
            }) {
                Ok(Outcome::Pair(m, sl)) => {
                    // SAFETY: the op just opened both; owned here.
                    unsafe {
                        master = Some(OwnedFd::from_raw_fd(m));
                        held.push(OwnedFd::from_raw_fd(sl));
                    }
                    Ok([FdRef {
                        raw: sl,
                        tag: FdTag::Internal("exec pty slave"),
                    }; 3])
                }
                Ok(o) => Err(format!("open a pty: unexpected {o:?}")),
                Err(f) => Err(f.to_string()),
            },
        };
        let stdio_fds = match stdio_fds {
            Ok(s) => s,
            Err(m) => return CallOutcome::Reply(Reply::error(ErrorKind::Failed, m)),
        };
        let ov = ExecOverride {
            prepared,
            stdio: stdio_fds,
            tty,
            credentials: ep.credentials,
            capabilities: ep.capabilities,
            cwd: ep.cwd,
            no_new_privs_before_filter: ep.no_new_privs_before_filter,
        };
        let r = self.it.spawn_exec(ov);
        drop(held);
        match r {
            Ok(pid) => {
                self.children.started_exec(pid);
                let reply = Reply::Exec { pid };
                match master {
                    Some(m) => CallOutcome::ReplyWithFd(reply, m),
                    None => CallOutcome::Reply(reply),
                }
            }
            Err(f) => CallOutcome::Reply(Reply::error(ErrorKind::Failed, f.to_string())),
        }
    }

    fn signal_container(&mut self, signal: i32, all: bool) -> Reply {
        if !self.started {
            // Before start there is no workload: a signal ends the sandbox
            // (as runc's kill of a created container does).
            self.ending = Some(128 + signal);
            self.record_exit(ExitStatus::Signaled {
                signal,
                core_dumped: false,
            });
            return Reply::Done;
        }
        let r = match (all, self.children.workload()) {
            (true, _) => self.kill_all(signal),
            (false, Some(w)) if self.children.is_live(w) => self.kill(w, signal),
            _ => {
                return Reply::error(
                    ErrorKind::WrongState,
                    "kill: the workload is not running (use --all for the other processes)",
                )
            }
        };
        match r {
            Ok(()) => Reply::Done,
            Err(m) => Reply::error(ErrorKind::Failed, format!("kill: {m}")),
        }
    }

    fn signal_process(&mut self, pid: SandboxPid, signal: i32, foreground: bool) -> Reply {
        let visible = self.own_pid_ns && pid > 1 && procfs::stat(Path::new("/proc"), pid).is_some();
        if !(self.children.is_live(pid) || visible) {
            return Reply::error(
                ErrorKind::NoSuchProcess,
                format!("kill --pid {pid}: no such process in the sandbox"),
            );
        }
        let target = if foreground {
            match foreground_group(pid) {
                Some(g) => -g,
                None => {
                    return Reply::error(
                        ErrorKind::InvalidArgument,
                        format!("kill --pid {pid} --foreground: it has no controlling terminal"),
                    )
                }
            }
        } else {
            pid
        };
        match self.kill(target, signal) {
            Ok(()) => Reply::Done,
            Err(m) => Reply::error(ErrorKind::Failed, format!("kill --pid {pid}: {m}")),
        }
    }

    fn processes(&self) -> Reply {
        let mut processes = procfs::processes(Path::new("/proc"));
        if !self.own_pid_ns {
            processes.retain(|p| self.children.is_live(p.pid));
        }
        Reply::Processes { processes }
    }

    /// Reaps every child that ended; records the workload's end. Under the
    /// ptrace platform the tracer owns `waitpid` (it takes every stop too,
    /// and resumes the stopped): the exits it reaped are recorded here.
    fn reap(&mut self) {
        if let Some(tracer) = self.it.tracer.as_mut() {
            match tracer.on_sigchld() {
                Ok(exits) => {
                    for e in exits {
                        if let Reaped::Workload(exit) = self.children.reaped(e.pid, e.raw) {
                            self.record_exit(exit);
                        }
                    }
                }
                Err(e) => tracing::error!("tracing the sandbox's processes: {e}"),
            }
            return;
        }
        while let Ok(Outcome::ReapedRaw(Some((pid, raw)))) = self.it.op(Op::ReapRaw) {
            if let Reaped::Workload(exit) = self.children.reaped(pid, raw) {
                self.record_exit(exit);
            }
        }
    }
}

/// The foreground process group of `pid`'s controlling terminal
/// (`/proc/PID/stat` field 8, tpgid).
fn foreground_group(pid: SandboxPid) -> Option<i32> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    let tpgid: i32 = rest.split(' ').nth(5)?.parse().ok()?;
    (tpgid > 0).then_some(tpgid)
}

impl<B: Backend> ControlHandler for Supervising<'_, '_, B> {
    fn hello(&mut self) -> (String, Status) {
        (self.it.id.as_str().to_string(), self.status())
    }

    fn handle(&mut self, mut call: Call<'_>) -> CallOutcome {
        let reply = match &call.request {
            Request::Hello { .. } => Reply::error(ErrorKind::OutOfOrder, "hello is answered by the server"),
            Request::State {} => Reply::State {
                status: self.status(),
                workload_pid: self.children.workload(),
                exit: self.children.workload_exit(),
            },
            Request::Start {} => self.start(),
            Request::Exec { process, stdio } => {
                let (process, stdio) = (process.clone(), *stdio);
                return self.exec(&process, stdio, &mut call.fds);
            }
            Request::SignalContainer { signal, all } => self.signal_container(*signal, *all),
            Request::SignalProcess {
                pid,
                signal,
                foreground,
            } => self.signal_process(*pid, *signal, *foreground),
            Request::Wait {} => return CallOutcome::Park(WaitFor::Workload),
            Request::WaitPid { pid } if self.children.is_waitable(*pid) => {
                return CallOutcome::Park(WaitFor::Pid(*pid))
            }
            Request::WaitPid { pid } => Reply::error(
                ErrorKind::NoSuchProcess,
                format!("wait --pid {pid}: not a process this sandbox's supervisor started (the workload or an exec)"),
            ),
            Request::Ps {} => self.processes(),
            Request::Stats {} => Reply::error(
                ErrorKind::Unsupported,
                "stats are read on the host from the sandbox's cgroup (sandboxctl events does), not by the supervisor",
            ),
            Request::Pause {} | Request::Resume {} => Reply::error(
                ErrorKind::Unsupported,
                "pause and resume are done on the host, on the sandbox's cgroup (the supervisor is inside it)",
            ),
            Request::Stacks {} => Reply::Stacks {
                supervisor: SupervisorState {
                    status: self.status(),
                    clients: call.clients,
                    parked: call.parked,
                    children: (self.children.running_execs().len()
                        + usize::from(self.children.workload().is_some() && self.children.workload_exit().is_none()))
                        as u32,
                },
                processes: if self.own_pid_ns {
                    procfs::stacks(Path::new("/proc"), 1)
                } else {
                    Vec::new()
                },
            },
            Request::Checkpoint { .. } | Request::Restore { .. } => Reply::error(
                ErrorKind::Unsupported,
                "checkpoint and restore need CRIU, which this supervisor does not drive (see docs/lifecycle.md)",
            ),
            Request::Destroy {} => {
                let _ = self.kill_all(libc::SIGKILL);
                if self.children.workload_exit().is_none() {
                    self.record_exit(ExitStatus::Signaled {
                        signal: libc::SIGKILL,
                        core_dumped: false,
                    });
                }
                self.ending = Some(128 + libc::SIGKILL);
                Reply::Done
            }
        };
        CallOutcome::Reply(reply)
    }

    fn before_wait(&mut self) {
        // The calls' deep frames (the backend's is large) below the loop
        // are dead while it sleeps: an idle supervisor keeps only the stack
        // it is using (docs/lifecycle.md, "Supervisor memory").
        if self.it.real {
            crate::exec::linux::shed_stack();
            crate::alloc::trim();
        }
    }

    fn poll_wait(&mut self, wait: WaitFor) -> Option<Reply> {
        if let Some(r) = self.children.answer(wait) {
            return Some(r);
        }
        // Ending without the workload's end (destroyed, killed before
        // start, a failed start): waiters get the sandbox's end.
        self.ending.map(|code| Reply::Exited {
            pid: 0,
            exit: if code > 128 {
                ExitStatus::Signaled {
                    signal: code - 128,
                    core_dumped: false,
                }
            } else {
                ExitStatus::Exited { code }
            },
        })
    }

    fn on_event(&mut self) -> bool {
        let mut sigs = [0i32; 8];
        let n = read_signals(self.signalfd, &mut sigs);
        let mut chld = false;
        for &sig in &sigs[..n] {
            match sig {
                libc::SIGCHLD => chld = true,
                sig => match self.children.workload() {
                    Some(w) if self.children.is_live(w) => {
                        tracing::info!("forwarding {} to the workload", crate::exec::backend::signal_name(sig));
                        let _ = self.kill(w, sig);
                    }
                    _ if !self.started => {
                        self.ending = Some(128 + sig);
                    }
                    _ => {}
                },
            }
        }
        if chld || n == 0 {
            self.reap();
        }
        true
    }

    fn finished(&self) -> bool {
        self.ending.is_some() || self.children.workload_exit().is_some()
    }
}

/// Reads pending signals from the signalfd `fd` (non-blocking) into `out`.
fn read_signals(fd: i32, out: &mut [i32; 8]) -> usize {
    let mut n = 0;
    // SAFETY: signalfd_siginfo is plain data; all zeroes is a valid value.
    let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::signalfd_siginfo>();
    while n < out.len() {
        // SAFETY: read into a valid signalfd_siginfo of its size.
        let r = unsafe { libc::read(fd, std::ptr::from_mut(&mut info).cast(), size) };
        if r != size as isize {
            break;
        }
        out[n] = info.ssi_signo as i32;
        n += 1;
    }
    n
}
