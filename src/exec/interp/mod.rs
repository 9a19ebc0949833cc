//! The interpreter: walks `plan.steps` in order and turns each plan element
//! into ops on a [`Backend`].
//!
//! Each step runs in one process ([`Step::actor`]). With the real backend the
//! walk forks: the launcher performs the launcher's steps, clones the
//! supervisor (which then performs the supervisor's steps), and the supervisor
//! forks the workload (which performs the workload's steps and execs). With
//! the recording backend nothing forks and one walk plays every process, so
//! the recorded ops read in plan order. Each plan element is applied in exactly
//! one function here; nothing is decided that the plan does not say.
//!
//! Launcher effects are pushed on an undo stack as they are made; a failure
//! (in any process: children report over the control socket or the exec pipe)
//! unwinds the stack: kill and reap the child, close fds, restore joined
//! namespaces, remove cgroup directories in reverse, remove the state file.

use std::path::{Path, PathBuf};
use std::rc::Rc;

mod create;
mod hooks;
mod reexec;

pub use reexec::{resume as resume_supervisor, SUPERVISOR_ARGV0};
mod serve;

use super::backend::{
    Backend, FdRef, FdTag, Forked, Make, Op, Outcome, ParentLink, PreparedExec, PreparedFilter, ProcRef, Who,
};
use super::error::{ApplyError, StepFailure};
use super::state::{self, LaunchId};
use crate::plan::{
    Actor, CapSets, CgroupDirRole, CgroupInherit, Credentials, DeviceHow, FdEntry, FdSource, LaunchPlan, MountFlag,
    Namespace, NetworkMode, NsKind, OpenMode, Platform, RootChange, Session, SetGroups, Stdio, Step,
};
use crate::vocab::Origin;

/// Where a root of `/` is assembled (on a tmpfs over `/tmp`, inside the
/// sandbox's own mount namespace only).
pub const STAGED_ROOT: &str = "/tmp/root";

/// The rule a foreground launch's sandbox dies with its launcher by
/// (docs/apply.md, "Dying with the launcher").
const DIES_WITH_LAUNCHER: &str = "foreground-sandbox-dies-with-launcher";

/// The rule a created sandbox's state directory, control socket and exit
/// record come by (docs/lifecycle.md).
const CREATE_RULE: &str = "create-records-the-sandbox";

/// The supervisor's word on the control socketpair that it is set up and
/// about to serve (`create`).
pub const READY_MARK: u8 = b'R';
/// The launcher's word that the sandbox is recorded: the supervisor may
/// outlive it from here.
pub const COMMIT_MARK: u8 = b'C';
/// The supervisor's word, under `create` with runtime hooks, that its
/// mounts are made and it waits before its root change (`runtime_hooks`).
pub const HOOKS_MARK: u8 = b'H';
/// The launcher's word that the runtime hooks ran: the supervisor goes on.
pub const HOOKS_DONE_MARK: u8 = b'G';
/// How long `create` waits for the supervisor's readiness, in ms (the seed's 10 s).
pub const READY_TIMEOUT_MS: u64 = 10_000;

/// What `create` records of a sandbox besides its processes.
#[derive(Debug, Clone)]
pub struct Creating {
    /// The record (`state.json`), status `created`; its supervisor is filled
    /// in when it is written.
    pub record: crate::exec::control::state::Record,
    /// runc's `--pid-file`: the supervisor's host pid goes there.
    pub pid_file: Option<PathBuf>,
    /// Other files of the state directory, written before the record
    /// (`plan.json`, ...).
    pub files: Vec<(&'static str, Rc<Vec<u8>>)>,
}

/// What an `exec`'d process gets instead of the workload's section of the
/// plan (compiled by [`crate::plan::exec_process::compile`]).
#[derive(Debug, Clone)]
struct ExecOverride {
    prepared: Rc<PreparedExec>,
    /// Its stdin, stdout and stderr, in the supervisor.
    stdio: [FdRef; 3],
    /// The pty slave is its stdio: a new session with it as controlling tty.
    tty: bool,
    credentials: Credentials,
    capabilities: CapSets,
    cwd: PathBuf,
    /// At step `seccomp_before_credentials`, set no_new_privs before the
    /// filter (the supervisor it is spawned from holds no CAP_SYS_ADMIN).
    no_new_privs_before_filter: bool,
}

/// Lowest fd number used when moving fds out of the way of planned numbers.
const HIGH_FD: i32 = 1000;

/// Exit code of a child that failed before exec (after sending its report).
const CHILD_FAILED: i32 = 125;

/// One thing the launcher made and must undo.
#[derive(Debug, Clone)]
enum Undo {
    StateFile(PathBuf),
    /// A created sandbox's state directory (`create`).
    SandboxDir(PathBuf),
    CgroupDir {
        path: PathBuf,
        leaf: bool,
    },
    Close(FdRef),
    RestoreNs(NsKind, FdRef),
    Signals,
    Child(ProcRef),
    /// The caller's terminal mode, saved before the pty relay made it raw.
    RestoreTty(FdRef, Vec<u8>),
}

/// What the children need, converted from the plan.
#[derive(Debug)]
pub struct Prepared {
    /// Before the clone.
    exec: Rc<PreparedExec>,
    /// The seccomp programs: built by the launcher after the release and sent
    /// to the supervisor on the sync pipe (see `Interp::release`).
    filters: Vec<Rc<PreparedFilter>>,
}

/// Converts the exec arguments and checks the seccomp argument conditions
/// before any effect, so a bad plan fails with nothing done. The seccomp
/// programs and the plan's own JSON are made by the launcher after the
/// release, off the supervisor's path (see `Interp::release`).
pub fn prepare(plan: &LaunchPlan) -> Result<Prepared, ApplyError> {
    let w = &plan.workload;
    let exec = prepared_exec(&w.args.value, &w.env.value).map_err(|(what, m)| ApplyError::Prepare {
        what: format!("workload.{what}"),
        message: m,
    })?;
    if let Some(s) = &w.seccomp {
        super::seccomp::check(s).map_err(|m| ApplyError::Prepare {
            what: "workload.seccomp".into(),
            message: m,
        })?;
    }
    Ok(Prepared {
        exec: Rc::new(exec),
        filters: Vec::new(),
    })
}

/// argv and envp as `execve` takes them, with the candidate paths of
/// argv\[0\] (itself when it holds a `/`, else one per entry of the
/// environment's `PATH`). An error names the field (`args`, `env`) and why.
fn prepared_exec(args: &[String], env: &[String]) -> Result<PreparedExec, (&'static str, String)> {
    use std::ffi::CString;
    let cs = |s: &str, what: &'static str| CString::new(s).map_err(|_| (what, format!("{s:?} contains a NUL byte")));
    let argv0 = args.first().ok_or(("args", "argv is empty".to_string()))?;
    let candidates = if argv0.contains('/') {
        vec![cs(argv0, "args")?]
    } else {
        let path = env
            .iter()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        path.split(':')
            .filter(|d| !d.is_empty())
            .map(|d| cs(&format!("{d}/{argv0}"), "args"))
            .collect::<Result<_, _>>()?
    };
    let argv = args.iter().map(|a| cs(a, "args")).collect::<Result<_, _>>()?;
    let envp = env.iter().map(|a| cs(a, "env")).collect::<Result<_, _>>()?;
    Ok(PreparedExec::new(candidates, argv, envp))
}

/// Runs a plan on a backend.
pub struct Interp<'a, B: Backend> {
    plan: &'a LaunchPlan,
    b: &'a mut B,
    prep: Prepared,
    real: bool,
    /// Which process this is (real backend); the step's actor when recording.
    me: Actor,
    step: Step,
    origin: Origin,
    undo: Vec<Undo>,
    /// Per `supervisor.fds` entry: the fd in the launcher that becomes it.
    sup_sources: Vec<FdRef>,
    /// Launcher end of the control socket.
    control: Option<FdRef>,
    /// The state file, open for the supervisor's pid (launcher, until the clone).
    state: Option<FdRef>,
    /// Per `cgroup.join` file: the fd the launcher opened, which the
    /// supervisor inherits and writes `0` to.
    cgroup_join: Vec<FdRef>,
    /// The console's pty slave (launcher), once opened.
    pty_slave: Option<FdRef>,
    /// The pty master the launcher keeps and relays (`stdio = pty`).
    pty_master: Option<FdRef>,
    /// Sync pipe (read end for the child, write end for the launcher).
    sync: Option<(FdRef, FdRef)>,
    supervisor: Option<ProcRef>,
    released: bool,
    /// In a child: where to send a failure report.
    report: Option<FdRef>,
    workload: Option<ProcRef>,
    /// Supervisor: the read end of the exec report pipe, read at `wait` (the
    /// supervisor drops its privileges while the workload sets itself up).
    exec_report: Option<FdRef>,
    status: i32,
    /// Launcher: set when the workload ended by SIGKILL and the sandbox's
    /// memory cgroup counted an OOM kill (read at teardown).
    oom_kill: Option<super::OomKill>,
    /// Test hook: fail on entering this step.
    fail_at: Option<Step>,
    /// Test hook: the launcher kills itself (SIGKILL) right after the release.
    die_after_release: bool,
    /// Test hook: the heap's lock is held while the vfork child runs.
    heap_held_at_spawn: bool,
    /// `apply --timings`: print when each step begins.
    timings: Option<super::Timings>,
    /// O_PATH handles on the host paths that bind mounts and device binds
    /// take, opened before the first mount so no planned mount can hide them
    /// (a tmpfs on /dev over the host's /dev/null when the root is `/`).
    bind_sources: Vec<(PathBuf, FdRef)>,
    /// O_PATH handles on the host device nodes bound, one per `how = bind`
    /// device in plan order, each checked to be its device.
    device_sources: Vec<FdRef>,
    /// O_PATH handle on the root being assembled (steps mounts and devices):
    /// every destination is resolved inside it.
    root_fd: Option<FdRef>,
    /// O_PATH handle on the plan's root path as named (no symbolic link on
    /// the way), opened by the launcher with the bind sources (see
    /// [`Self::open_host_sources`]) and bound onto itself by the supervisor.
    root_path: Option<FdRef>,
    /// `create`: O_PATH fds on the `createContainer` hooks' host paths, in
    /// plan order (launcher, step `open_fds`; supervisor until step
    /// `container_hooks`).
    hook_exes: Vec<FdRef>,
    /// `create`: the state the `startContainer` hooks read, made by the
    /// supervisor before it serves and kept across its re-exec.
    start_hook_state: Option<Rc<Vec<u8>>>,
    /// `create`: an O_PATH fd on this binary, opened with the host sources
    /// (before the root change), for the supervisor's re-exec.
    self_exe: Option<FdRef>,
    /// `create`: the seccomp programs as the launcher sent them, handed
    /// over to the re-executed supervisor.
    launcher_filters: Option<Rc<Vec<u8>>>,
    /// `create`: the uid that made the sandbox (who may call it, with root).
    owner_uid: u32,
    /// Index of the step being walked.
    cursor: usize,
    /// The plan memfd (launcher, until it is filled after the release) and
    /// the fd entry that asks for it.
    plan_memfd: Option<(FdRef, Origin)>,
    /// Supervisor: the sync pipe's read end, kept until the launcher's EOF.
    launcher_done: Option<FdRef>,
    /// Where the planned root is assembled when it cannot be assembled in
    /// place: pivot_root into the caller's own root (`/`) is impossible, so it
    /// is bind-mounted at [`STAGED_ROOT`] on a private tmpfs first.
    staged_root: Option<PathBuf>,
    /// Supervisor: its own pid, when the workload shares its PID namespace
    /// with it and so checks that it is still its parent.
    supervisor_pid: Option<i32>,
    /// This launch's sandbox id: replaces `{id}` in the plan's paths.
    id: LaunchId,
    /// Where the state file goes (made if missing, shared, never removed).
    state_root: PathBuf,
    /// `create`: what the sandbox is recorded with; `None` for a foreground
    /// launch.
    creating: Option<Rc<Creating>>,
    /// `create`: the state directory's fd (holding its lock) and path.
    sandbox_dir: Option<(FdRef, PathBuf)>,
    /// `create`: the control socket's listener (launcher, then supervisor).
    listener: Option<FdRef>,
    /// `create`: the `exit` record (launcher, then supervisor).
    exit_file: Option<FdRef>,
    /// `create`: the sandbox is recorded (the launcher's part is done).
    committed: bool,
    /// While an `exec`'d process is spawned: what replaces the workload's
    /// section of the plan.
    exec_override: Option<ExecOverride>,
    /// Supervisor, platform ptrace: the workload's tracer (`super::trace`),
    /// made at the first traced spawn, driven on each SIGCHLD by the wait
    /// loop (foreground) or the control server's reap (`create`).
    tracer: Option<super::trace::Tracer>,
}

type R<T> = Result<T, StepFailure>;

impl<'a, B: Backend> Interp<'a, B> {
    /// An interpreter for `plan` on backend `b`.
    pub fn new(plan: &'a LaunchPlan, b: &'a mut B, prep: Prepared) -> Self {
        let real = b.forks();
        Interp {
            plan,
            b,
            prep,
            real,
            me: Actor::Launcher,
            step: Step::Preflight,
            origin: Origin::Default,
            undo: Vec::new(),
            sup_sources: Vec::new(),
            control: None,
            state: None,
            cgroup_join: Vec::new(),
            pty_slave: None,
            pty_master: None,
            sync: None,
            supervisor: None,
            released: false,
            report: None,
            workload: None,
            exec_report: None,
            status: 0,
            oom_kill: None,
            fail_at: None,
            die_after_release: false,
            heap_held_at_spawn: false,
            timings: None,
            bind_sources: Vec::new(),
            device_sources: Vec::new(),
            root_fd: None,
            root_path: None,
            hook_exes: Vec::new(),
            start_hook_state: None,
            self_exe: None,
            launcher_filters: None,
            owner_uid: 0,
            cursor: 0,
            plan_memfd: None,
            launcher_done: None,
            staged_root: None,
            supervisor_pid: None,
            id: LaunchId::placeholder(),
            state_root: state::DEFAULT_ROOT.into(),
            creating: None,
            sandbox_dir: None,
            listener: None,
            exit_file: None,
            committed: false,
            exec_override: None,
            tracer: None,
        }
    }

    /// Makes this launch `create` a long-lived sandbox: its state directory
    /// `<root>/<id>/` instead of a state file, a control socket its
    /// supervisor serves, and a launcher that records the sandbox and
    /// returns once the supervisor answers, leaving it waiting for `start`.
    /// [`Self::run`] then returns the supervisor's host pid.
    pub fn create_as(&mut self, creating: Creating) {
        self.owner_uid = creating.record.owner_uid;
        self.creating = Some(Rc::new(creating));
    }

    /// Runs as sandbox `id`, with the state file under `root` (default: the
    /// id placeholder itself, as a dry run prints it, and
    /// [`state::DEFAULT_ROOT`]).
    pub fn launch_as(&mut self, id: LaunchId, root: PathBuf) {
        self.id = id;
        self.state_root = root;
    }

    /// Makes entering `step` fail (the fault-injection hook).
    pub fn fail_at(&mut self, step: Option<Step>) {
        self.fail_at = step;
    }

    /// Makes the launcher kill itself right after the release (the
    /// fault-injection hook for a launcher that dies mid-handover).
    pub fn die_after_release(&mut self, on: bool) {
        self.die_after_release = on;
    }

    /// Makes the supervisor hold its allocator's lock while the workload's
    /// vfork child runs (the fault-injection hook that shows the child never
    /// reaches the shared heap: if it did, it would spin forever).
    pub fn heap_held_at_spawn(&mut self, on: bool) {
        self.heap_held_at_spawn = on;
    }

    /// Prints when each step begins, in the process that performs it.
    pub fn timings(&mut self, timings: Option<super::Timings>) {
        self.timings = timings;
    }

    /// Walks the plan. Returns the workload's exit status (128+N when killed
    /// by signal N). On failure everything done is undone first.
    pub fn run(self) -> Result<i32, ApplyError> {
        self.run_to_end().map(|e| e.status)
    }

    /// [`Interp::run`], with what the launcher learnt of how the workload
    /// ended (an OOM kill in its memory cgroup).
    pub fn run_to_end(mut self) -> Result<super::Ended, ApplyError> {
        match self.walk() {
            Ok(()) => Ok(super::Ended {
                status: self.status,
                oom_kill: self.oom_kill.take(),
            }),
            Err(failure) => {
                if self.me != Actor::Workload {
                    tracing::error!("{failure}");
                }
                if self.real && self.me != Actor::Launcher {
                    self.exit_child_with(&failure);
                }
                if !self.real && self.me != Actor::Launcher {
                    // Recording: show the child's report, then the launcher's unwinding.
                    let _ = self.send_report(&failure);
                    let _ = self.b.perform(&Op::Exit { code: CHILD_FAILED });
                    self.act(Actor::Launcher);
                }
                let leftovers = self.rollback();
                Err(ApplyError::Step { failure, leftovers })
            }
        }
    }

    fn act(&mut self, actor: Actor) {
        self.me = actor;
        self.b.set_actor(actor);
    }

    fn walk(&mut self) -> R<()> {
        self.walk_from(0)
    }

    /// Walks the plan's steps from index `start` (a spawned workload goes on
    /// from the step after `spawn_workload`).
    fn walk_from(&mut self, start: usize) -> R<()> {
        for i in start..self.plan.steps.len() {
            self.cursor = i;
            let step = self.plan.steps[i];
            let actor = step.actor();
            if self.supervisor.is_some() && !self.released && actor != Actor::Launcher {
                if !self.real {
                    self.act(Actor::Launcher);
                }
                if self.me == Actor::Launcher {
                    self.release()?;
                }
            }
            if self.real {
                // `runtime_hooks` is the launcher's, and the supervisor's
                // wait for it (interp/hooks.rs).
                if actor != self.me && !(step == Step::RuntimeHooks && self.me == Actor::Supervisor) {
                    continue;
                }
            } else {
                self.act(actor);
            }
            self.step = step;
            self.origin = Origin::Default;
            if let Some(t) = &self.timings {
                t.mark(self.me, &step.name());
            }
            if self.me != Actor::Workload {
                tracing::info!("step {}", step.name());
            }
            if self.fail_at == Some(step) {
                return Err(StepFailure::new(
                    step,
                    Origin::Cli("SANDBOXCTL_FAIL_AT_STEP".into()),
                    "injected fault".into(),
                    &std::io::Error::from_raw_os_error(libc::ECANCELED),
                ));
            }
            self.do_step(step)?;
        }
        Ok(())
    }

    /// Performs one op; a failure names the step, origin and op.
    fn op(&mut self, op: Op) -> R<Outcome> {
        // The op's text is made only when it failed, or for the debug log
        // (tracing formats it only when a debug log is configured):
        // formatting every op costs allocations on the launch path.
        if self.me != Actor::Workload {
            tracing::debug!("{op}");
        }
        self.b
            .perform(&op)
            .map_err(|e| StepFailure::new(self.step, self.origin.clone(), op.to_string(), &e))
    }

    /// open(2) as an op; the fd carries `tag`.
    fn open(&mut self, path: PathBuf, flags: i32, mode: u32, tag: FdTag) -> R<FdRef> {
        self.op_fd(Op::Open { path, flags, mode, tag }, tag)
    }

    fn op_fd(&mut self, op: Op, tag: FdTag) -> R<FdRef> {
        match self.op(op)? {
            Outcome::Fd(raw) => Ok(FdRef { raw, tag }),
            other => Err(self.odd(other)),
        }
    }

    /// A failure of the current step and origin that has no errno.
    fn failure(&self, op: &str, message: String) -> StepFailure {
        StepFailure {
            step: self.step,
            origin: self.origin.clone(),
            op: op.into(),
            errno: None,
            message,
        }
    }

    fn odd(&self, o: Outcome) -> StepFailure {
        self.failure("backend", format!("unexpected outcome {o:?}"))
    }

    fn unsupported(&self, what: &str) -> StepFailure {
        StepFailure {
            errno: Some(libc::ENOTSUP),
            ..self.failure(
                what,
                "not supported by this interpreter (preflight should have said so)".into(),
            )
        }
    }

    fn do_step(&mut self, step: Step) -> R<()> {
        match step {
            Step::Preflight => Ok(()), // done by `apply` before the walk (pure)
            Step::StateFile if self.creating.is_some() => self.make_sandbox_dir(),
            Step::StateFile => self.make_state_file(),
            Step::CgroupCreate => self.create_cgroups(),
            Step::CgroupLimits => self.write_cgroup_limits(),
            Step::OpenFds => self.open_fds(),
            Step::JoinNamespaces => self.join_namespaces(),
            Step::Clone => self.clone_supervisor(),
            Step::IdMaps => self.write_id_maps(),
            Step::RuntimeHooks => self.runtime_hooks(),
            Step::ContainerHooks => self.container_hooks(),
            Step::CgroupJoin => self.join_cgroup(),
            Step::SupervisorIds => self.take_supervisor_ids(),
            Step::SupervisorFds => self
                .arrange_supervisor_fds()
                .and_then(|()| self.die_with_launcher_again()),
            Step::Hostname => self.set_hostname(),
            Step::Network => self.set_up_network(),
            Step::MountPropagation => self.make_mounts_private(),
            Step::Mounts => self
                .prepare_root()
                .and_then(|()| self.mount_all())
                .and_then(|()| self.close_bind_sources(Step::Mounts)),
            Step::Devices => self
                .prepare_root_once()
                .and_then(|()| self.make_devices())
                .and_then(|()| self.close_bind_sources(Step::Devices)),
            Step::RootChange => self.change_root(),
            Step::MaskedPaths => self.mask_paths(),
            Step::ReadonlyPaths => self.make_paths_readonly(),
            Step::RootReadonly => self.make_root_readonly(),
            Step::Session => self.start_session(),
            Step::SpawnWorkload if self.creating.is_some() => self.serve_created(),
            Step::SpawnWorkload => self.spawn_workload(),
            Step::WorkloadFds => self.arrange_workload_fds(),
            Step::Rlimits => self.set_rlimits(),
            Step::Credentials => self.set_workload_credentials(),
            Step::Capabilities => self.set_workload_capabilities(),
            Step::NoNewPrivs => self
                .workload_dies_with_supervisor()
                .and_then(|()| self.set_no_new_privs()),
            Step::Trace => self.ask_to_be_traced(),
            Step::SeccompBeforeCredentials => self.load_seccomp_before_credentials(),
            Step::Seccomp => self.load_seccomp(),
            Step::Exec => self.exec_workload(),
            Step::SupervisorCredentials if self.creating.is_some() => self.drop_supervisor_privileges(),
            Step::SupervisorCredentials => self
                .drop_supervisor_privileges()
                .and_then(|()| self.die_with_launcher_again()),
            Step::Wait => self.supervise(),
            Step::Teardown if self.creating.is_some() => self.finish_create(),
            Step::Teardown => self.teardown(),
        }
    }

    // ----- launcher, before the clone -------------------------------------

    /// Claims the id: the state file appears complete and locked, or not
    /// at all when the id is taken, so a second apply with the same id fails
    /// here, before anything else is made. The launcher holds its lock until
    /// the end: the file is unlinked first, closed last (see
    /// [`super::state`]).
    fn make_sandbox_dir(&mut self) -> R<()> {
        self.origin = self.id.origin().clone();
        let tag = FdTag::Internal("sandbox directory");
        let op = Op::CreateSandboxDir {
            root: self.state_root.clone(),
            id: self.id.as_str().to_string(),
            tag,
        };
        let fd = self.op_fd(op, tag)?;
        let path = self.state_root.join(self.id.as_str());
        self.undo.push(Undo::Close(fd));
        self.undo.push(Undo::SandboxDir(path.clone()));
        self.sandbox_dir = Some((fd, path));
        Ok(())
    }

    fn make_state_file(&mut self) -> R<()> {
        self.origin = self.id.origin().clone();
        let file = self.id.state_file(&self.state_root);
        let made = match self.op(Op::MkdirAll {
            path: self.state_root.clone(),
        })? {
            Outcome::Made(dirs) => dirs,
            _ => Vec::new(),
        };
        let tag = FdTag::Internal("state file");
        let op = Op::CreateState {
            path: file.clone(),
            record: state::record(self.plan, &self.id),
            tag,
        };
        let fd = match self.op_fd(op, tag) {
            Ok(fd) => fd,
            Err(f) => {
                // A root made here (on a full disk, say) goes again: a failed
                // launch leaves nothing. One another launch filled meanwhile
                // stays (ENOTEMPTY).
                for dir in made.into_iter().rev() {
                    let _ = self.b.perform(&Op::Rmdir { path: dir });
                }
                return Err(f);
            }
        };
        self.undo.push(Undo::Close(fd));
        self.undo.push(Undo::StateFile(file));
        self.state = Some(fd);
        Ok(())
    }

    fn create_cgroups(&mut self) -> R<()> {
        let Some(cg) = &self.plan.cgroup else {
            return Ok(());
        };
        self.origin = cg.path.from.clone();
        let dirs: Vec<(PathBuf, bool, Option<CgroupInherit>)> = cg
            .dirs
            .iter()
            .map(|d| {
                let inherit = d.inherit.clone().map(|i| CgroupInherit {
                    root: self.id.resolve(&i.root),
                    ..i
                });
                (self.id.resolve(&d.path), d.role == CgroupDirRole::Sandbox, inherit)
            })
            .collect();
        for (i, (path, leaf, inherit)) in dirs.iter().enumerate() {
            // A parent (`sandboxctl/`) may exist already and another sandbox
            // may still use it at teardown: made only if missing, undone only
            // if made here, and then only if empty. Another launch's teardown
            // may remove it between its mkdir here and the sandbox's own
            // (ENOENT): the parents on the way are made again, a few times.
            let mut tries = 0;
            loop {
                match self.make_cgroup_dir(path, *leaf) {
                    Err(f) if *leaf && f.errno == Some(libc::ENOENT) && tries < 8 => {
                        tries += 1;
                        for (parent, _, inherit) in dirs[..i].iter().filter(|(p, l, _)| !l && path.starts_with(p)) {
                            if self.make_cgroup_dir(parent, false)? {
                                self.inherit_cgroup_files(parent, inherit.as_ref())?;
                            }
                        }
                    }
                    Ok(made) => {
                        if made {
                            self.inherit_cgroup_files(path, inherit.as_ref())?;
                        }
                        break;
                    }
                    Err(f) => return Err(f),
                }
            }
        }
        // Opened now, with the launcher's credentials (which the kernel checks
        // at the write), for the supervisor to join itself after the clone.
        for file in &cg.join {
            let tag = FdTag::Internal("cgroup join");
            let fd = self.open(self.id.resolve(file), libc::O_WRONLY, 0, tag)?;
            self.undo.push(Undo::Close(fd));
            self.cgroup_join.push(fd);
        }
        Ok(())
    }

    /// Fills a cgroup directory made here with each planned file of its
    /// nearest ancestor (up to the hierarchy's root) whose copy is not
    /// empty (`rule:cgroup-v1-cpuset-inherit`).
    fn inherit_cgroup_files(&mut self, dir: &Path, inherit: Option<&CgroupInherit>) -> R<()> {
        let Some(inh) = inherit else {
            return Ok(());
        };
        let before = std::mem::replace(&mut self.origin, inh.from.clone());
        for file in &inh.files {
            let mut up = dir.parent();
            while let Some(a) = up.filter(|a| a.starts_with(&inh.root)) {
                let text = match self.op(Op::ReadFile { path: a.join(file) })? {
                    Outcome::Bytes(b) => b,
                    o => return Err(self.odd(o)),
                };
                let value = String::from_utf8_lossy(&text).trim().to_string();
                if !value.is_empty() {
                    self.op(Op::WriteFile {
                        path: dir.join(file),
                        data: value,
                    })?;
                    break;
                }
                up = a.parent();
            }
        }
        self.origin = before;
        Ok(())
    }

    /// mkdir of one cgroup directory, pushed on the undo stack when made
    /// here; a parent that exists already is not an error. Whether it was
    /// made here.
    fn make_cgroup_dir(&mut self, path: &Path, leaf: bool) -> R<bool> {
        match self.op(Op::Mkdir {
            path: path.to_path_buf(),
            mode: 0o755,
        }) {
            Ok(_) => {
                self.undo.push(Undo::CgroupDir {
                    path: path.to_path_buf(),
                    leaf,
                });
                Ok(true)
            }
            Err(f) if !leaf && f.errno == Some(libc::EEXIST) => {
                // The tool's own shared parent (`sandboxctl/`, named so that
                // what the tool makes is attributable) is removed by whichever
                // launch leaves it empty last, whoever made it: when two
                // launches overlap, the one that made it may end first, while
                // the other still uses it, and it would be left behind. A
                // parent of any other name (an engine's) existed before and is
                // never removed.
                if path.file_name() == Some(std::ffi::OsStr::new("sandboxctl")) {
                    self.undo.push(Undo::CgroupDir {
                        path: path.to_path_buf(),
                        leaf,
                    });
                }
                Ok(false)
            }
            Err(f) => Err(f),
        }
    }

    fn write_cgroup_limits(&mut self) -> R<()> {
        let Some(cg) = &self.plan.cgroup else {
            return Ok(());
        };
        for w in &cg.writes {
            self.origin = w.from.clone();
            self.op(Op::WriteFile {
                path: self.id.resolve(&w.file),
                data: w.value.clone(),
            })?;
        }
        Ok(())
    }

    fn open_fds(&mut self) -> R<()> {
        self.make_rootfs_mount_points()?;
        for d in &self.plan.log_dirs {
            self.origin = d.from.clone();
            self.op(Op::MakeDirs {
                path: d.path.clone(),
                mode: d.mode,
            })?;
        }
        for e in &self.plan.supervisor.fds {
            self.origin = e.from.clone();
            let tag = FdTag::Role(e.role);
            let fd = match &e.source {
                FdSource::Caller { fd } => FdRef::num(fd.0),
                FdSource::File { path, open, mode } => {
                    let flags = match open {
                        OpenMode::Read => libc::O_RDONLY,
                        OpenMode::AppendCreate => libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND,
                        OpenMode::ReadWrite => libc::O_RDWR,
                    };
                    let fd = self.op_fd(
                        Op::Open {
                            path: self.id.resolve(path),
                            flags,
                            mode: *mode,
                            tag,
                        },
                        tag,
                    )?;
                    self.undo.push(Undo::Close(fd));
                    if let (true, Some(kind)) = (self.real, super::log::LogKind::of_role(e.role)) {
                        super::log::set_fd(kind, fd.raw);
                    }
                    fd
                }
                FdSource::ControlSocket => match self.op(Op::SocketPair { tag })? {
                    Outcome::Pair(a, b) => {
                        let mine = FdRef {
                            raw: a,
                            tag: FdTag::Internal("control launcher end"),
                        };
                        let theirs = FdRef { raw: b, tag };
                        self.undo.push(Undo::Close(mine));
                        self.undo.push(Undo::Close(theirs));
                        self.control = Some(mine);
                        theirs
                    }
                    o => return Err(self.odd(o)),
                },
                FdSource::PlanMemfd => {
                    // Empty for now: filled and sealed after the clone.
                    let fd = self.op_fd(
                        Op::Memfd {
                            name: "sandboxctl-plan",
                            tag,
                        },
                        tag,
                    )?;
                    self.undo.push(Undo::Close(fd));
                    self.plan_memfd = Some((fd, e.from.clone()));
                    fd
                }
                FdSource::KvmDevice => {
                    let Platform::Kvm {
                        api_version,
                        extensions,
                        ..
                    } = &self.plan.platform.value
                    else {
                        return Err(self.unsupported("kvm fd on a platform other than kvm"));
                    };
                    let op = Op::OpenKvm {
                        api_version: *api_version,
                        extensions: extensions.iter().cloned().collect(),
                        tag,
                    };
                    let fd = self.op_fd(op, tag)?;
                    self.undo.push(Undo::Close(fd));
                    fd
                }
                FdSource::PtySlave => match self.pty_slave {
                    Some(fd) => fd,
                    None => {
                        let fd = self.open_console()?;
                        self.pty_slave = Some(fd);
                        fd
                    }
                },
                FdSource::Supervisor { .. } => {
                    return Err(self.unsupported("supervisor fd sourced from the supervisor"))
                }
            };
            self.sup_sources.push(fd);
        }
        self.open_create_fds()?;
        self.open_container_hook_exes()
    }

    /// `create`: the control socket's listener and the `exit` record, made
    /// in the state directory and handed to the supervisor beside its
    /// planned fds (close-on-exec: the workload never has them).
    fn open_create_fds(&mut self) -> R<()> {
        let Some((dir, path)) = self.sandbox_dir.clone() else {
            return Ok(());
        };
        self.origin = Origin::rule(CREATE_RULE);
        let tag = FdTag::Internal("control listener");
        let op = Op::BindControlSocket {
            dir,
            path: path.join(crate::exec::control::state::CONTROL_SOCKET),
            tag,
        };
        let l = self.op_fd(op, tag)?;
        self.undo.push(Undo::Close(l));
        self.listener = Some(l);
        let exit = path.join(crate::exec::control::state::EXIT_FILE);
        let e = self.open(
            exit,
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC,
            0o600,
            FdTag::Internal("exit record"),
        )?;
        self.undo.push(Undo::Close(e));
        self.exit_file = Some(e);
        Ok(())
    }

    /// The console: a pty pair whose master goes to the planned unix socket
    /// (and is closed here), or stays with the launcher, which relays it at
    /// teardown (`stdio = pty`); the slave is donated at every `PtySlave`
    /// number.
    fn open_console(&mut self) -> R<FdRef> {
        let path = match &self.plan.stdio.value {
            Stdio::ConsoleSocket(path) => Some(path.clone()),
            Stdio::Pty => None,
            Stdio::Inherit | Stdio::Null => return Err(self.unsupported("a pty slave without a pty")),
        };
        self.origin = self.plan.stdio.from.clone();
        let (m, s) = match self.op(Op::OpenPty)? {
            Outcome::Pair(m, s) => (
                FdRef {
                    raw: m,
                    tag: FdTag::Internal("pty master"),
                },
                FdRef {
                    raw: s,
                    tag: FdTag::Internal("pty slave"),
                },
            ),
            o => return Err(self.odd(o)),
        };
        self.undo.push(Undo::Close(s));
        self.undo.push(Undo::Close(m));
        let Some(path) = path else {
            self.pty_master = Some(m);
            return Ok(s);
        };
        self.op(Op::SendFd { path, fd: m })?;
        self.undo.pop();
        self.op(Op::Close { fd: m })?;
        Ok(s)
    }

    /// setns into each joined namespace, user first ([`NsKind::ORDER`]): the
    /// other namespaces are then entered with the capabilities the joined user
    /// namespace gives, and the clone's new namespaces are owned by it.
    ///
    /// The launcher saves its own namespaces and returns to them after the
    /// clone, except when it joins a user namespace: going back would need
    /// CAP_SYS_ADMIN in its original user namespace, which setns into another
    /// one gives up. It then stays where it is until it exits; what it still
    /// does (writing its state file and the cgroup files it opened before,
    /// rmdir, unlink) are operations on files its host uid owns or fds it
    /// holds, which need no capability.
    fn join_namespaces(&mut self) -> R<()> {
        let returns = !matches!(self.plan.namespaces.user.value, Namespace::Join(_));
        for (kind, ns) in self.plan.namespaces.iter() {
            let Namespace::Join(path) = &ns.value else {
                continue;
            };
            self.origin = ns.from.clone();
            if returns {
                let own = Path::new("/proc/self/ns").join(kind.proc_name());
                let saved = self.open(own, libc::O_RDONLY, 0, FdTag::Internal("own ns"))?;
                self.undo.push(Undo::RestoreNs(kind, saved));
            }
            let tag = FdTag::Internal("target ns");
            let fd = self.op_fd(
                Op::OpenNs {
                    path: path.clone(),
                    kind,
                    tag,
                },
                tag,
            )?;
            let r = self.op(Op::SetNs { fd, kind });
            self.op(Op::Close { fd })?;
            r?;
        }
        Ok(())
    }

    /// The new namespaces, split by who makes them:
    /// - clone's flags (user, pid, mount, ipc, uts);
    /// - the supervisor at once, while the launcher writes its maps: a network
    ///   namespace, the costliest to make (≈ 0.3 ms here), so made on the
    ///   other CPU at the same time;
    /// - the supervisor after its cgroup join: a cgroup namespace, which must
    ///   be rooted at the sandbox's cgroup, and a time namespace, which
    ///   clone(2) cannot make.
    fn clone_kinds(&self) -> (Vec<NsKind>, Vec<NsKind>, Vec<NsKind>) {
        let new = self
            .plan
            .namespaces
            .iter()
            .filter(|(_, n)| n.value == Namespace::New)
            .map(|(k, _)| k);
        let (mut clone, mut early, mut later) = (Vec::new(), Vec::new(), Vec::new());
        for k in new {
            match k {
                NsKind::Net => early.push(k),
                NsKind::Cgroup | NsKind::Time => later.push(k),
                _ => clone.push(k),
            }
        }
        (clone, early, later)
    }

    fn clone_supervisor(&mut self) -> R<()> {
        self.origin = self.plan.namespaces.user.from.clone();
        self.op(Op::BlockSignals)?;
        self.undo.push(Undo::Signals);
        let (r, w) = match self.op(Op::Pipe { tag: "sync" })? {
            Outcome::Pair(r, w) => (
                FdRef {
                    raw: r,
                    tag: FdTag::Internal("sync read"),
                },
                FdRef {
                    raw: w,
                    tag: FdTag::Internal("sync write"),
                },
            ),
            o => return Err(self.odd(o)),
        };
        self.undo.push(Undo::Close(r));
        self.undo.push(Undo::Close(w));
        self.sync = Some((r, w));
        let (new, _, _) = self.clone_kinds();
        let control_child = self
            .plan
            .supervisor
            .fds
            .iter()
            .position(|e| e.source == FdSource::ControlSocket)
            .and_then(|i| self.sup_sources.get(i).copied());
        match self.op(Op::Clone {
            new,
            who: Who::Supervisor,
        })? {
            Outcome::Forked(Forked::Child) => {
                // The supervisor: its report channel is the control socket.
                self.me = Actor::Supervisor;
                // First of all, before any other call: non-dumpable, so no
                // process of the sandbox can ever ptrace it or read its
                // memory (under a host user namespace the workload has the
                // supervisor's uid, and only this flag and the capability
                // check stand between them). The flag belongs to the memory
                // map, which the spawned workload shares until its exec.
                self.become_non_dumpable()?;
                super::log::set_actor(Actor::Supervisor);
                self.undo.clear();
                self.report = control_child;
                self.close_sync_write_end()?;
                self.die_with_launcher(r)?;
                // A failure here is reported after the release, when the
                // launcher is waiting for reports (it may still be writing
                // the maps now, and would fail on a child that is gone).
                let early = self.unshare_early();
                self.await_release()?;
                early
            }
            Outcome::Forked(Forked::Parent(pid)) => {
                let sup = ProcRef {
                    pid,
                    who: Who::Supervisor,
                };
                self.supervisor = Some(sup);
                self.undo.push(Undo::Child(sup));
                tracing::info!("supervisor cloned: pid {pid} on the host");
                // The state file stays open: its lock says the launch lives.
                if let Some(fd) = self.state {
                    self.op(Op::WritePid { fd, proc: sup })?;
                }
                // The sandbox's OOM score, inherited by everything it starts;
                // written here, by the launcher, because lowering it takes
                // CAP_SYS_RESOURCE on the host.
                if let Some(o) = &self.plan.workload.oom_score_adj {
                    self.origin = o.from.clone();
                    self.op(Op::WriteProcFile {
                        proc: sup,
                        name: "oom_score_adj",
                        data: o.value.to_string(),
                    })?;
                    self.origin = self.plan.namespaces.user.from.clone();
                }
                // Back to the launcher's own namespaces, and drop the
                // fds that now belong to the child.
                let child_fds: Vec<i32> = self
                    .plan
                    .supervisor
                    .fds
                    .iter()
                    .zip(&self.sup_sources)
                    // The launcher keeps its log fds: it logs its own steps
                    // to the end (closed at teardown).
                    .filter(|(e, _)| {
                        !matches!(e.source, FdSource::Caller { .. }) && super::log::LogKind::of_role(e.role).is_none()
                    })
                    .map(|(_, f)| f.raw)
                    .chain([r.raw])
                    .chain(self.cgroup_join.iter().map(|f| f.raw))
                    .chain(self.hook_exes.iter().map(|f| f.raw))
                    .filter(|f| self.plan_memfd.as_ref().map(|(m, _)| m.raw) != Some(*f))
                    .collect();
                // Each entry leaves the undo stack only once its op succeeded.
                for u in self.undo.clone() {
                    match u {
                        Undo::RestoreNs(kind, fd) => {
                            self.op(Op::SetNs { fd, kind })?;
                            self.undo
                                .retain(|x| !matches!(x, Undo::RestoreNs(_, f) if f.raw == fd.raw));
                            self.op(Op::Close { fd })?;
                        }
                        Undo::Close(fd) if child_fds.contains(&fd.raw) => {
                            self.undo.retain(|x| !matches!(x, Undo::Close(f) if f.raw == fd.raw));
                            self.op(Op::Close { fd })?;
                        }
                        _ => {}
                    }
                }
                Ok(())
            }
            o => Err(self.odd(o)),
        }
    }

    // ----- the sandbox dies with its launcher --------------------------------

    /// The supervisor of a foreground launch dies with its launcher (as
    /// bubblewrap's `--die-with-parent`): `PR_SET_PDEATHSIG` with SIGKILL,
    /// first thing after the clone, then the check that the launcher had not
    /// exited before it (the sync pipe hung up unreleased; getppid says 0 in a
    /// new PID namespace either way). As pid 1 of its PID namespace, its
    /// death takes the workload with it.
    fn die_with_launcher(&mut self, sync_read: FdRef) -> R<()> {
        self.origin = Origin::rule(DIES_WITH_LAUNCHER);
        self.op(Op::DieWithParent {
            link: ParentLink::SyncPipe(sync_read),
        })
        .map(drop)
    }

    /// The kernel clears the parent-death signal when a credential change
    /// alters the euid, egid, fsuid or fsgid or grows the capabilities
    /// (`commit_creds`): the supervisor's uid/gid and raised effective set at
    /// `supervisor_ids`, its capability changes at `supervisor_credentials`.
    /// So it is set again after `supervisor_fds` (the first step after that
    /// change at which the supervisor holds no copy of the launcher's end of
    /// the control socket, so a hang-up there means the launcher is gone)
    /// and after `supervisor_credentials`.
    fn die_with_launcher_again(&mut self) -> R<()> {
        self.origin = Origin::rule(DIES_WITH_LAUNCHER);
        let link = self
            .planned_control()
            .map(ParentLink::HangsUp)
            .ok_or_else(|| self.unsupported("dying with the launcher without a control socket"))?;
        self.op(Op::DieWithParent { link }).map(drop)
    }

    /// A workload in the supervisor's own PID namespace (the host's) does not
    /// die with it by the kernel's PID namespace teardown: it takes the same
    /// parent-death signal, after its own credential changes and before
    /// no_new_privs and seccomp, checked against the supervisor's pid.
    fn workload_dies_with_supervisor(&mut self) -> R<()> {
        let Some(pid) = self.supervisor_pid else {
            return Ok(());
        };
        self.origin = Origin::rule(DIES_WITH_LAUNCHER);
        self.op(Op::DieWithParent {
            link: ParentLink::Pid(pid),
        })
        .map(drop)
    }

    // ----- launcher, while the child waits ---------------------------------

    /// Builds the workload's seccomp programs and sends them to the
    /// supervisor on the sync pipe, which it reads until EOF before it starts
    /// the workload ([`Self::await_launcher`]). Building them takes about
    /// 0.1 ms (syscall lookups, the search trees, seccompiler for argument
    /// conditions), which the supervisor would otherwise wait for before the
    /// clone; [`prepare`] has checked the argument conditions already.
    ///
    /// Sent even when the plan has no filter (an empty set): it is the
    /// launcher's last message, after the plan memfd is sealed, and the
    /// supervisor refuses to start the workload without it (a launcher that
    /// died after the release closes the pipe with nothing on it).
    fn send_filters(&mut self, fd: FdRef) -> R<()> {
        let filters = match &self.plan.workload.seccomp {
            Some(s) => {
                self.origin = s.default_action.from.clone();
                super::seccomp::prepare(s).map_err(|m| self.failure("build the seccomp programs", m))?
            }
            None => Vec::new(),
        };
        let data = Rc::new(super::seccomp::encode(&filters));
        let count = filters.len();
        // Recording: one process plays every part, so the workload's step
        // finds the programs here; a real supervisor decodes them.
        self.prep.filters = filters;
        match self.op(Op::SendFilters { fd, count, data }) {
            // The supervisor is gone already: it failed after its release
            // (and reports why on the control socket, which teardown reads)
            // before this write. Its report is the error to show, not this.
            Err(f) if f.errno == Some(libc::EPIPE) => Ok(()),
            r => r.map(drop),
        }
    }

    /// Writes the plan's JSON into the plan memfd, seals it and closes the
    /// launcher's copy. Done just after the release, while the supervisor
    /// sets up the sandbox (serialising the plan is a tenth of a millisecond,
    /// and the supervisor would otherwise wait for it); the supervisor starts
    /// the workload, the memfd's only reader, after the launcher's EOF.
    fn fill_plan_memfd(&mut self) -> R<()> {
        let Some((fd, from)) = self.plan_memfd.take() else {
            return Ok(());
        };
        self.origin = from;
        let data = serde_json::to_vec(self.plan).map_err(|e| self.failure("serialise the plan", e.to_string()))?;
        self.op(Op::FillSealed {
            fd,
            data: Rc::new(data),
        })?;
        self.undo.retain(|x| !matches!(x, Undo::Close(f) if f.raw == fd.raw));
        self.op(Op::Close { fd }).map(drop)
    }

    fn write_id_maps(&mut self) -> R<()> {
        let m = &self.plan.id_maps;
        if self.plan.namespaces.user.value != Namespace::New {
            return Ok(());
        }
        self.origin = m.from.clone();
        let proc = self
            .supervisor
            .ok_or_else(|| self.unsupported("id maps without a child"))?;
        let text = |v: &[crate::plan::IdMap]| {
            v.iter()
                .map(|l| format!("{} {} {}\n", l.inside, l.host, l.count))
                .collect::<String>()
        };
        if m.setgroups == SetGroups::Deny {
            self.op(Op::WriteProcFile {
                proc,
                name: "setgroups",
                data: "deny".into(),
            })?;
        }
        if !m.uid.is_empty() {
            self.op(Op::WriteProcFile {
                proc,
                name: "uid_map",
                data: text(&m.uid),
            })?;
        }
        if !m.gid.is_empty() {
            self.op(Op::WriteProcFile {
                proc,
                name: "gid_map",
                data: text(&m.gid),
            })?;
        }
        Ok(())
    }

    /// The supervisor, first of all: into its cgroup (through the fds the
    /// launcher opened), before it makes anything the cgroup should count.
    fn join_cgroup(&mut self) -> R<()> {
        let Some(cg) = &self.plan.cgroup else {
            return Ok(());
        };
        self.origin = cg.path.from.clone();
        for (i, fd) in self.cgroup_join.clone().into_iter().enumerate() {
            self.op(Op::JoinCgroup {
                fd,
                file: self.id.resolve(&cg.join[i]),
            })?;
            self.op(Op::Close { fd })?;
        }
        Ok(())
    }

    /// The launcher lets the child go on; from here the child performs its
    /// own steps. The launcher's last work of the launch, filling the plan
    /// memfd, comes after the release, off the child's path; closing the sync
    /// pipe then tells the child it is done (see [`Self::await_launcher`]).
    fn release(&mut self) -> R<()> {
        self.released = true;
        let (r, w) = self
            .sync
            .take()
            .ok_or_else(|| self.unsupported("release without a sync pipe"))?;
        self.op(Op::Release { fd: w })?;
        // The child is runnable now, often on this CPU (it was woken by this
        // write): let it go first, and do the rest when it blocks or on the
        // other CPU. Without this the supervisor waited about 0.25 ms for the
        // work below (`perf sched timehist`: its scheduling delay).
        self.op(Op::Yield)?;
        if self.die_after_release && self.real {
            // Test hook: the launcher is killed between the release and its
            // last messages (SIGKILL: nothing of it runs after this).
            // SAFETY: kill has no memory arguments.
            unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        }
        self.fill_plan_memfd()?;
        self.send_filters(w)?;
        self.op(Op::Close { fd: w })?;
        self.undo.retain(|u| !matches!(u, Undo::Close(f) if f.raw == w.raw));
        if !self.real {
            self.act(Actor::Supervisor);
            self.become_non_dumpable()?;
            self.sync = Some((r, w));
            self.close_sync_write_end()?;
            self.die_with_launcher(r)?;
            let early = self.unshare_early();
            self.await_release()?;
            early?;
            self.act(Actor::Launcher);
        }
        Ok(())
    }

    /// The supervisor, before it waits for its release: the namespaces it
    /// makes while the launcher writes its maps (see [`Self::clone_kinds`]).
    fn unshare_early(&mut self) -> R<()> {
        let (_, early, _) = self.clone_kinds();
        if early.is_empty() {
            return Ok(());
        }
        self.origin = self.plan.namespaces.net.from.clone();
        self.op(Op::Unshare { kinds: early }).map(drop)
    }

    /// The child closes its copy of the sync pipe's write end, so that the
    /// launcher's close is an EOF it can see.
    fn close_sync_write_end(&mut self) -> R<()> {
        match self.sync {
            Some((_, w)) => self.op(Op::Close { fd: w }).map(drop),
            None => Err(self.unsupported("no sync pipe")),
        }
    }

    /// The child waits until the launcher has written its maps and lets it
    /// go, and keeps the pipe for [`Self::await_launcher`].
    fn await_release(&mut self) -> R<()> {
        let (r, _) = self
            .sync
            .take()
            .ok_or_else(|| self.unsupported("await without a sync pipe"))?;
        self.op(Op::AwaitRelease { fd: r })?;
        self.launcher_done = Some(r);
        Ok(())
    }

    /// The supervisor, before it starts the workload: reads the sync pipe
    /// until EOF, which the launcher closes once the plan memfd is filled and
    /// sealed and the seccomp programs are sent (they are what it reads). By
    /// then that has long happened (the supervisor's mounts take longer), so
    /// the reads return at once.
    fn await_launcher(&mut self) -> R<()> {
        let Some(fd) = self.launcher_done.take() else {
            return Ok(());
        };
        let b = self.read_and_close(Op::AwaitEof { fd }, fd)?;
        if self.real {
            let expected = self.plan.workload.seccomp.is_some();
            self.prep.filters = super::seccomp::decode(&b, expected)
                .map_err(|m| self.failure("read the seccomp programs from the launcher", m))?;
            if self.creating.is_some() {
                self.launcher_filters = Some(Rc::new(b));
            }
        }
        Ok(())
    }

    /// Performs a reading op on `fd` (until EOF), closes `fd`, and returns
    /// the bytes read.
    fn read_and_close(&mut self, op: Op, fd: FdRef) -> R<Vec<u8>> {
        let got = self.op(op)?;
        self.op(Op::Close { fd })?;
        match got {
            Outcome::Bytes(b) => Ok(b),
            o => Err(self.odd(o)),
        }
    }

    // ----- supervisor --------------------------------------------------------

    /// Puts each planned fd at its number and closes every other one (but
    /// `extra`, an internal close-on-exec fd). Sources are first moved above
    /// every planned number so no dup2 overwrites a source still needed.
    fn arrange_fds(
        &mut self,
        entries: &[FdEntry],
        sources: &[FdRef],
        extras: &[Option<FdRef>],
    ) -> R<Vec<Option<FdRef>>> {
        let min = entries.iter().map(|e| e.fd.0 + 1).max().unwrap_or(0).max(HIGH_FD);
        let mut moved = Vec::with_capacity(extras.len());
        for extra in extras {
            moved.push(match *extra {
                Some(fd) => Some(self.op_fd(Op::DupHigh { fd, min }, fd.tag)?),
                None => None,
            });
        }
        let mut high = Vec::new();
        for (e, src) in entries.iter().zip(sources) {
            self.origin = e.from.clone();
            let tag = if src.tag == FdTag::Num {
                FdTag::Moved(src.raw)
            } else {
                src.tag
            };
            high.push(self.op_fd(Op::DupHigh { fd: *src, min }, tag)?);
        }
        for (e, h) in entries.iter().zip(&high) {
            self.origin = e.from.clone();
            self.op(Op::Dup2 { from: *h, to: e.fd.0 })?;
        }
        let mut keep: Vec<i32> = entries.iter().map(|e| e.fd.0).collect();
        keep.extend(moved.iter().flatten().map(|f| f.raw));
        keep.sort_unstable();
        self.op(Op::CloseAllExcept { keep })?;
        Ok(moved)
    }

    /// The supervisor's planned uid/gid, taken first: keep-caps holds the
    /// permitted set (in a new user namespace the kernel does not clear it
    /// anyway, the old uid being unmapped there), and effective is raised
    /// again for the mounts that follow.
    /// The namespaces clone could not make — a cgroup namespace, which must
    /// come after the cgroup join (step `cgroup_join`) to be rooted at the
    /// sandbox's cgroup, and a time namespace — then the planned uid/gid.
    fn take_supervisor_ids(&mut self) -> R<()> {
        self.open_host_sources()?;
        let (_, _, later) = self.clone_kinds();
        if !later.is_empty() {
            self.origin = self.plan.namespaces.cgroup.from.clone();
            self.op(Op::Unshare { kinds: later })?;
        }
        let c = self.plan.supervisor.credentials.clone();
        self.set_credentials(&c)?;
        self.op(Op::RaiseEffective).map(drop)
    }

    fn arrange_supervisor_fds(&mut self) -> R<()> {
        let entries = self.plan.supervisor.fds.clone();
        let sources = self.sup_sources.clone();
        let mut keep = vec![
            self.launcher_done.take(),
            self.listener.take(),
            self.exit_file.take(),
            self.self_exe.take(),
        ];
        keep.extend(self.hook_exes.iter().copied().map(Some));
        keep.extend(self.host_source_fds().map(Some));
        if self.real {
            super::log::hold();
        }
        let moved = self.arrange_fds(&entries, &sources, &keep)?;
        (self.launcher_done, self.listener, self.exit_file, self.self_exe) = (moved[0], moved[1], moved[2], moved[3]);
        let mut sources = moved[4..].iter().map(|f| f.expect("every host source was kept"));
        for fd in &mut self.hook_exes {
            *fd = sources.next().expect("one kept fd per createContainer hook");
        }
        for (_, fd) in &mut self.bind_sources {
            *fd = sources.next().expect("one kept fd per bind source");
        }
        for fd in &mut self.device_sources {
            *fd = sources.next().expect("one kept fd per device source");
        }
        if let Some(fd) = &mut self.root_path {
            *fd = sources.next().expect("the kept root path");
        }
        self.report = self.planned_control();
        if self.real {
            for e in &entries {
                if let Some(kind) = super::log::LogKind::of_role(e.role) {
                    super::log::set_fd(kind, e.fd.0);
                }
            }
        }
        Ok(())
    }

    /// The supervisor's end of the control socket at its planned number.
    fn planned_control(&self) -> Option<FdRef> {
        self.plan
            .supervisor
            .fds
            .iter()
            .find(|e| e.source == FdSource::ControlSocket)
            .map(|e| FdRef::num(e.fd.0))
    }

    fn set_hostname(&mut self) -> R<()> {
        let Some(h) = &self.plan.hostname else {
            return Ok(());
        };
        self.origin = h.from.clone();
        self.op(Op::SetHostname { name: h.value.clone() }).map(drop)
    }

    fn set_up_network(&mut self) -> R<()> {
        self.origin = self.plan.network.from.clone();
        match self.plan.network.value {
            NetworkMode::Loopback => self.op(Op::LoopbackUp).map(drop),
            // None: the new namespace's lo stays down. Host and Join: the
            // namespace step already placed the sandbox.
            NetworkMode::None | NetworkMode::Host | NetworkMode::Join(_) => Ok(()),
        }
    }

    fn make_mounts_private(&mut self) -> R<()> {
        self.origin = self.plan.namespaces.mount.from.clone();
        let op = Op::Mount {
            source: None,
            target: "/".into(),
            fstype: None,
            flags: libc::MS_REC | libc::MS_PRIVATE,
            data: None,
        };
        self.op(op).map(drop)
    }

    /// Where the root is being assembled.
    fn root_dir(&self) -> PathBuf {
        self.staged_root
            .clone()
            .unwrap_or_else(|| self.plan.root.path.value.clone())
    }

    /// Makes the root a mount of its own (pivot_root and the chroot mode's
    /// move both need one; the caller's `/` is staged on a private tmpfs
    /// first), makes its submounts read-only when the plan's root is, and
    /// opens it (O_PATH): every destination is resolved inside that fd.
    fn prepare_root(&mut self) -> R<()> {
        let root = self.plan.root.path.value.clone();
        let change = self.plan.root.change.value;
        self.origin = self.plan.root.path.from.clone();
        let tree = if change != RootChange::None && root == Path::new("/") {
            // The caller's root itself: stage a bind of it on a tmpfs in this
            // (private) mount namespace, and enter that.
            let staging = Path::new(STAGED_ROOT)
                .parent()
                .expect("STAGED_ROOT has a parent")
                .to_path_buf();
            self.op(Op::Mount {
                source: Some("tmpfs".into()),
                target: staging,
                fstype: Some("tmpfs".into()),
                flags: libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                data: Some("mode=755,size=64k".into()),
            })?;
            self.op(Op::MountPoint {
                path: STAGED_ROOT.into(),
                like: None,
            })?;
            // Recursive: in a user namespace the host's submounts are locked
            // to `/`, and a plain bind of it is refused (EINVAL).
            self.op(Op::Mount {
                source: Some("/".into()),
                target: STAGED_ROOT.into(),
                fstype: None,
                flags: libc::MS_BIND | libc::MS_REC,
                data: None,
            })?;
            self.staged_root = Some(STAGED_ROOT.into());
            None
        } else if change != RootChange::None {
            // pivot_root and the move need the new root to be a mount point:
            // it is bound onto itself through the fd the launcher opened, and
            // from here on reached only through the new mount's fd (never by
            // path: the supervisor's uid may not search the directories
            // above an engine's rootfs).
            let fd = self
                .root_path
                .take()
                .ok_or_else(|| self.unsupported("a root change without the launcher's root path fd"))?;
            let tag = FdTag::Internal("root");
            let tree = self.op_fd(Op::BindOntoItself { fd, tag }, tag)?;
            self.op(Op::Close { fd })?;
            Some(tree)
        } else {
            None
        };
        let dir = tree.map_or_else(|| self.root_dir(), Self::fd_path);
        if self.plan.root.readonly.value && change != RootChange::None {
            // Read-only reaches every submount the root brought along (the
            // host's, for `/`); the root's own mount stays writable until
            // step root_readonly, so mount points can still be made in it.
            self.origin = self.plan.root.readonly.from.clone();
            self.op(Op::SetMountAttr {
                target: dir.clone(),
                set: libc::MS_RDONLY,
                clear: 0,
                recursive: true,
            })?;
            self.op(Op::SetMountAttr {
                target: dir.clone(),
                set: 0,
                clear: libc::MS_RDONLY,
                recursive: false,
            })?;
        }
        self.origin = self.plan.root.path.from.clone();
        let fd = match tree {
            Some(fd) => fd,
            None => self.open(
                dir,
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
                0,
                FdTag::Internal("root"),
            )?,
        };
        self.root_fd = Some(fd);
        Ok(())
    }

    /// [`Self::prepare_root`] unless step mounts already did.
    fn prepare_root_once(&mut self) -> R<()> {
        if self.root_fd.is_some() {
            return Ok(());
        }
        self.prepare_root()
    }

    /// An O_PATH fd of `path` resolved inside the root (see [`Op::OpenInRoot`]).
    fn in_root(&mut self, path: &Path, make: Make) -> R<FdRef> {
        // A plan file whose steps leave out the one that opens the root
        // (hand-edited or fuzzed) fails here, not in a panic.
        let Some(root) = self.root_fd else {
            return Err(self.failure(
                "resolve in root",
                format!(
                    "{}: the root is not open (the plan's steps leave out its opening)",
                    path.display()
                ),
            ));
        };
        let tag = FdTag::Internal("in root");
        self.op_fd(
            Op::OpenInRoot {
                root,
                path: path.to_path_buf(),
                make,
                tag,
            },
            tag,
        )
    }

    /// `/proc/self/fd/N`: the object an fd refers to, as a mount target or source.
    fn fd_path(fd: FdRef) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", fd.raw))
    }

    fn mount_all(&mut self) -> R<()> {
        for m in &self.plan.mounts {
            self.origin = m.from.clone();
            let mut flags = 0u64;
            let mut propagation = Vec::new();
            for f in &m.flags {
                match f {
                    MountFlag::Bind => flags |= libc::MS_BIND,
                    MountFlag::Rbind => flags |= libc::MS_BIND | libc::MS_REC,
                    MountFlag::Ro => flags |= libc::MS_RDONLY,
                    MountFlag::Nosuid => flags |= libc::MS_NOSUID,
                    MountFlag::Nodev => flags |= libc::MS_NODEV,
                    MountFlag::Noexec => flags |= libc::MS_NOEXEC,
                    MountFlag::Sync => flags |= libc::MS_SYNCHRONOUS,
                    MountFlag::Dirsync => flags |= libc::MS_DIRSYNC,
                    MountFlag::Mand => flags |= libc::MS_MANDLOCK,
                    MountFlag::Noatime => flags |= libc::MS_NOATIME,
                    MountFlag::Nodiratime => flags |= libc::MS_NODIRATIME,
                    MountFlag::Relatime => flags |= libc::MS_RELATIME,
                    MountFlag::Strictatime => flags |= libc::MS_STRICTATIME,
                    MountFlag::Private => propagation.push(libc::MS_PRIVATE),
                    MountFlag::Rprivate => propagation.push(libc::MS_PRIVATE | libc::MS_REC),
                    MountFlag::Slave => propagation.push(libc::MS_SLAVE),
                    MountFlag::Rslave => propagation.push(libc::MS_SLAVE | libc::MS_REC),
                    MountFlag::Shared => propagation.push(libc::MS_SHARED),
                    MountFlag::Rshared => propagation.push(libc::MS_SHARED | libc::MS_REC),
                    MountFlag::Unbindable => propagation.push(libc::MS_UNBINDABLE),
                    MountFlag::Runbindable => propagation.push(libc::MS_UNBINDABLE | libc::MS_REC),
                }
            }
            let data = (!m.data.is_empty()).then(|| m.data.clone());
            if m.is_bind() {
                let source = self.bind_source(Path::new(&m.source))?;
                let target = self.in_root(&m.target, Make::Like(source))?;
                self.op(Op::BindAt {
                    source,
                    target,
                    recursive: flags & libc::MS_REC != 0,
                    flags: flags & !(libc::MS_BIND | libc::MS_REC),
                })?;
                self.op(Op::Close { fd: target })?;
            } else {
                let target = self.in_root(&m.target, Make::Dir)?;
                let op = Op::Mount {
                    source: Some(m.source.clone()),
                    target: Self::fd_path(target),
                    fstype: Some(m.fstype.clone()),
                    flags,
                    data,
                };
                self.op(op)?;
                self.op(Op::Close { fd: target })?;
            }
            if !propagation.is_empty() {
                // The new mount, resolved again (the fd above names what it covers).
                let target = self.in_root(&m.target, Make::Nothing)?;
                for p in propagation {
                    self.op(Op::Mount {
                        source: None,
                        target: Self::fd_path(target),
                        fstype: None,
                        flags: p,
                        data: None,
                    })?;
                }
                self.op(Op::Close { fd: target })?;
            }
        }
        Ok(())
    }

    /// The supervisor, before it takes its planned uid (step
    /// `supervisor_ids`): opens (O_PATH) what its mounts take from the
    /// host — every bind source, checked to resolve under its allowed host
    /// path; every bound device's host node, checked to be that device; the
    /// root path as the plan names it, with no symbolic link on the way (a
    /// rootfs swapped for a link after the plan was made fails here, ELOOP,
    /// instead of taking the sandbox into another tree).
    ///
    /// Opened then, because until then the supervisor has the launcher's
    /// host uid and gid: their permission bits open the root-only
    /// directories where engines keep a container's rootfs and bind sources
    /// (in its new user namespace no capability overrides them, and once it
    /// is `nobody` on the host, as under the default policy, nothing does).
    /// Only what the plan names is opened, and the plan names only host
    /// paths its policy allows (`[mounts] allowed_host_paths`, `[devices]`,
    /// the root). Before any planned mount, so none can hide them (a tmpfs
    /// on /dev over the host's /dev/null when the root is `/`); in the
    /// sandbox's own mount namespace, so the mounts can take them.
    fn open_host_sources(&mut self) -> R<()> {
        if self.creating.is_some() {
            // This binary, while its path is still the host's (see reexec.rs).
            self.origin = Origin::rule(CREATE_RULE);
            let tag = FdTag::Internal("sandboxctl");
            let op = Op::Open {
                path: "/proc/self/exe".into(),
                flags: libc::O_PATH | libc::O_CLOEXEC,
                mode: 0,
                tag,
            };
            self.self_exe = Some(self.op_fd(op, tag)?);
        }
        if let Some(root) = self.root_to_open() {
            self.origin = self.plan.root.path.from.clone();
            let tag = FdTag::Internal("root path");
            self.root_path = Some(self.op_fd(Op::OpenRootDir { path: root, tag }, tag)?);
        }
        for m in self.plan.mounts.iter().filter(|m| m.is_bind()) {
            let path = PathBuf::from(&m.source);
            if self.bind_sources.iter().any(|(p, _)| *p == path) {
                continue;
            }
            self.origin = m.from.clone();
            let tag = FdTag::Num;
            let within = m.source_within.as_ref().map(|w| w.value.clone());
            let op = Op::OpenBindSource {
                path: path.clone(),
                within,
                tag,
            };
            let fd = self.op_fd(op, tag)?;
            self.bind_sources.push((path, fd));
        }
        for d in self.plan.devices.iter().filter(|d| d.how == DeviceHow::Bind) {
            let Some(path) = d.source.clone() else {
                self.origin = d.from.clone();
                return Err(self.failure("bind device", format!("{}: no host node in the plan", d.path.display())));
            };
            self.origin = d.allowed_by.clone();
            let tag = FdTag::Num;
            let op = Op::OpenDevice {
                path,
                kind: d.kind,
                major: d.major,
                minor: d.minor,
                tag,
            };
            let fd = self.op_fd(op, tag)?;
            self.device_sources.push(fd);
        }
        Ok(())
    }

    /// The root path the mounts and devices are made under, when there is
    /// one to open (a root change to a tree other than the host's `/`).
    fn root_to_open(&self) -> Option<PathBuf> {
        let uses_root = [Step::Mounts, Step::Devices]
            .iter()
            .any(|s| self.plan.steps.contains(s));
        let root = &self.plan.root.path.value;
        (uses_root && self.plan.root.change.value != RootChange::None && root != Path::new("/")).then(|| root.clone())
    }

    /// The launcher (step `open_fds`, before the clone): makes the mount
    /// points that lie in the root path itself (a mount's destination that
    /// no earlier planned mount covers), resolved inside the root opened
    /// without symbolic links, as [`Self::open_host_sources`] opens it. An
    /// engine's rootfs belongs to the host's root, its top directory is
    /// often read-only (containers/storage makes it 0555), and its spec
    /// mounts onto paths the image lacks (`/run/.containerenv`, a
    /// `--tmpfs` or `-v` destination): in the supervisor's new user
    /// namespace no capability overrides those bits, so the launcher, which
    /// holds the host's, makes them, as runc does. Mount points inside
    /// planned mounts (a tmpfs on /dev) are made at step mounts, by the
    /// supervisor that owns them.
    fn make_rootfs_mount_points(&mut self) -> R<()> {
        let Some(root_path) = self.root_to_open() else {
            return Ok(());
        };
        let mut covered: Vec<&Path> = Vec::new();
        let mut root = None;
        for m in &self.plan.mounts {
            let target = m.target.as_path();
            if covered.iter().any(|c| target.starts_with(c)) {
                covered.push(target);
                continue;
            }
            covered.push(target);
            let root = match root {
                Some(fd) => fd,
                None => {
                    self.origin = self.plan.root.path.from.clone();
                    let tag = FdTag::Internal("root path");
                    let fd = self.op_fd(
                        Op::OpenRootDir {
                            path: root_path.clone(),
                            tag,
                        },
                        tag,
                    )?;
                    root = Some(fd);
                    fd
                }
            };
            self.origin = m.from.clone();
            let source = if m.is_bind() {
                let tag = FdTag::Internal("bind source");
                let op = Op::OpenBindSource {
                    path: PathBuf::from(&m.source),
                    within: m.source_within.as_ref().map(|w| w.value.clone()),
                    tag,
                };
                Some(self.op_fd(op, tag)?)
            } else {
                None
            };
            let tag = FdTag::Internal("in root");
            let op = Op::OpenInRoot {
                root,
                path: target.to_path_buf(),
                make: source.map_or(Make::Dir, Make::Like),
                tag,
            };
            let made = self.op_fd(op, tag);
            if let Some(fd) = source {
                self.op(Op::Close { fd })?;
            }
            let fd = made?;
            self.op(Op::Close { fd })?;
        }
        if let Some(fd) = root {
            self.op(Op::Close { fd })?;
        }
        Ok(())
    }

    /// The fds [`Self::open_host_sources`] opened, in a fixed order: bind
    /// sources, device sources, the root path.
    fn host_source_fds(&self) -> impl Iterator<Item = FdRef> + '_ {
        self.bind_sources
            .iter()
            .map(|(_, fd)| *fd)
            .chain(self.device_sources.iter().copied())
            .chain(self.root_path)
    }

    /// The fd [`Self::open_host_sources`] opened for a bind source (an
    /// error, not a panic, when a plan file's steps leave that out).
    fn bind_source(&self, path: &Path) -> R<FdRef> {
        self.bind_sources
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, fd)| *fd)
            .ok_or_else(|| {
                self.failure(
                    "bind",
                    format!(
                        "{}: no source opened (the plan's steps leave out supervisor_ids)",
                        path.display()
                    ),
                )
            })
    }

    /// Closes the bind sources and the root after the last step that uses them.
    fn close_bind_sources(&mut self, after: Step) -> R<()> {
        let last = if self.plan.steps.contains(&Step::Devices) {
            Step::Devices
        } else {
            Step::Mounts
        };
        if after == last {
            let fds = std::mem::take(&mut self.bind_sources)
                .into_iter()
                .map(|(_, fd)| fd)
                .chain(std::mem::take(&mut self.device_sources))
                // Step root_change enters the root through its fd.
                .chain(if self.plan.steps.contains(&Step::RootChange) {
                    None
                } else {
                    self.root_fd.take()
                });
            for fd in fds.collect::<Vec<_>>() {
                self.op(Op::Close { fd })?;
            }
        }
        Ok(())
    }

    fn make_devices(&mut self) -> R<()> {
        let mut sources = self.device_sources.clone().into_iter();
        for d in &self.plan.devices {
            self.origin = d.from.clone();
            match d.how {
                DeviceHow::Bind => {
                    let Some(source) = sources.next() else {
                        return Err(self.failure(
                            "bind device",
                            format!(
                                "{}: no host node opened (the plan's steps leave out supervisor_ids)",
                                d.path.display()
                            ),
                        ));
                    };
                    let target = self.in_root(&d.path, Make::Like(source))?;
                    // nosuid and noexec (nodev would defeat the node).
                    self.op(Op::BindAt {
                        source,
                        target,
                        recursive: false,
                        flags: libc::MS_NOSUID | libc::MS_NOEXEC,
                    })?;
                    self.op(Op::Close { fd: target })?;
                }
                DeviceHow::Mknod => {
                    let make = Make::Node {
                        kind: d.kind,
                        mode: d.mode,
                        major: d.major,
                        minor: d.minor,
                    };
                    let node = self.in_root(&d.path, make)?;
                    self.op(Op::Close { fd: node })?;
                }
            }
        }
        for l in &self.plan.dev_links {
            self.origin = l.from.clone();
            let (Some(parent), Some(name)) = (l.path.parent(), l.path.file_name()) else {
                return Err(self.failure("link", format!("{}: no parent", l.path.display())));
            };
            let dir = self.in_root(parent, Make::Nothing)?;
            self.op(Op::SymlinkAt {
                dir,
                name: name.into(),
                target: l.target.clone(),
            })?;
            self.op(Op::Close { fd: dir })?;
        }
        Ok(())
    }

    fn change_root(&mut self) -> R<()> {
        self.origin = self.plan.root.change.from.clone();
        // Through the fd of the assembled root (steps mounts and devices),
        // which the supervisor reaches without searching the path.
        let fd = self.root_fd.take();
        let root = fd.map_or_else(|| self.root_dir(), Self::fd_path);
        self.change_root_at(root)?;
        match fd {
            Some(fd) => self.op(Op::Close { fd }).map(drop),
            None => Ok(()),
        }
    }

    fn change_root_at(&mut self, root: PathBuf) -> R<()> {
        match self.plan.root.change.value {
            RootChange::PivotRoot => {
                self.op(Op::Chdir { path: root })?;
                self.op(Op::PivotRoot {
                    new_root: ".".into(),
                    put_old: ".".into(),
                })?;
                self.op(Op::Umount {
                    target: ".".into(),
                    flags: libc::MNT_DETACH,
                })?;
                self.op(Op::Chdir { path: "/".into() })?;
            }
            RootChange::Chroot => {
                // The root's mount is moved over `/` before the chroot, so
                // nothing of the old root stays reachable: `..` at the top
                // of the moved mount comes back into it, and the workload
                // never holds CAP_SYS_CHROOT or CAP_SYS_ADMIN in this mode
                // (compile rule chroot-mode-drops-chroot-and-admin).
                self.op(Op::Chdir { path: root })?;
                self.op(Op::Mount {
                    source: Some(".".into()),
                    target: "/".into(),
                    fstype: None,
                    flags: libc::MS_MOVE,
                    data: None,
                })?;
                self.op(Op::Chroot { path: ".".into() })?;
                self.op(Op::Chdir { path: "/".into() })?;
            }
            RootChange::None => {}
        }
        Ok(())
    }

    fn mask_paths(&mut self) -> R<()> {
        for p in &self.plan.masked_paths {
            self.origin = p.from.clone();
            self.op(Op::MaskPath { path: p.value.clone() })?;
        }
        Ok(())
    }

    fn make_paths_readonly(&mut self) -> R<()> {
        for p in &self.plan.readonly_paths {
            self.origin = p.from.clone();
            self.op(Op::ReadonlyPath { path: p.value.clone() })?;
        }
        Ok(())
    }

    fn make_root_readonly(&mut self) -> R<()> {
        if !self.plan.root.readonly.value {
            return Ok(());
        }
        self.origin = self.plan.root.readonly.from.clone();
        self.op(Op::RemountReadonly { target: "/".into() }).map(drop)
    }

    fn start_session(&mut self) -> R<()> {
        self.origin = self.plan.stdio.from.clone();
        self.op(Op::SetSid)?;
        if self.plan.supervisor.session == Session::NewSessionWithControllingTty {
            self.op(Op::SetControllingTty { fd: FdRef::num(0) })?;
        }
        Ok(())
    }

    fn spawn_workload(&mut self) -> R<()> {
        self.origin = self.plan.workload.args.from.clone();
        self.await_launcher()?;
        if let Some(proc) = self.spawn_child()? {
            self.workload = Some(proc);
        }
        Ok(())
    }

    /// Spawns the workload's steps (or an `exec`'d process's, with
    /// [`Self::exec_override`] set) in a vfork child. Returns the child, or
    /// `None` when recording (whose walk plays the child's steps next).
    fn spawn_child(&mut self) -> R<Option<ProcRef>> {
        self.check_exec_allowed()?;
        if self.plan.namespaces.pid.value != Namespace::New {
            match self.op(Op::GetPid)? {
                Outcome::Pid(pid) => self.supervisor_pid = Some(pid),
                o => return Err(self.odd(o)),
            }
        }
        let (r, w) = match self.op(Op::Pipe { tag: "exec report" })? {
            Outcome::Pair(r, w) => (
                FdRef {
                    raw: r,
                    tag: FdTag::Internal("exec report read"),
                },
                FdRef {
                    raw: w,
                    tag: FdTag::Internal("exec report write"),
                },
            ),
            o => return Err(self.odd(o)),
        };
        let op = Op::Spawn { who: Who::Workload };
        if !self.real {
            // Recording: the workload's steps follow in plan order.
            return match self.op(op)? {
                Outcome::Forked(Forked::Parent(pid)) => {
                    self.workload = Some(ProcRef {
                        pid,
                        who: Who::Workload,
                    });
                    self.report = Some(w);
                    Ok(None)
                }
                o => Err(self.odd(o)),
            };
        }
        let (step, origin, report) = (self.step, self.origin.clone(), self.report);
        let next = self.cursor + 1;
        let this: *mut Self = self;
        let hold = self.heap_held_at_spawn;
        if hold {
            crate::alloc::hold_lock(true);
        }
        let spawned = B::spawn(&mut || {
            // SAFETY: `B::spawn` runs this in a child that shares this
            // process's memory while this process is suspended (CLONE_VFORK)
            // until the child execs or exits: nothing else uses the
            // interpreter meanwhile, and no borrow of it is held across the
            // call (only this raw pointer). The child ends in exec or _exit,
            // so it never returns into the supervisor's frames.
            let child = unsafe { &mut *this };
            child.me = Actor::Workload;
            super::log::mute(true);
            child.report = Some(w);
            let failure = match child.walk_from(next) {
                Ok(()) => child.unsupported("the workload's steps ended without exec"),
                Err(f) => f,
            };
            child.exit_child_with(&failure)
        });
        if hold {
            crate::alloc::hold_lock(false);
        }
        // The child ran the workload's steps on this memory: put back what
        // they changed of the supervisor's own state.
        self.me = Actor::Supervisor;
        super::log::mute(false);
        self.cursor = next - 1;
        self.step = step;
        self.origin = origin;
        self.report = report;
        let spawned = spawned.map_err(|e| StepFailure::new(self.step, self.origin.clone(), op.to_string(), &e))?;
        let proc = ProcRef {
            pid: spawned.pid,
            who: Who::Workload,
        };
        // The child asked to be traced (step `trace`, platform ptrace; an
        // `exec`'d process too, walking the same steps): its exec stops it,
        // and only the tracer resumes it.
        if self.plan.steps.contains(&Step::Trace) {
            let (s, f) = (&self.plan.workload.seccomp, &self.prep.filters);
            self.tracer
                .get_or_insert_with(|| super::trace::Tracer::new(s.clone(), f.clone()))
                .trace(proc.pid);
        }
        self.op(Op::Close { fd: w })?;
        self.exec_report = Some(r);
        if !spawned.reached_exec {
            // It exited or died before its execve: never a success. Its own
            // report, when it could write one, says why.
            self.await_exec()?;
            let status = match self.op(Op::WaitExit { proc })? {
                Outcome::Reaped(Some((_, st))) => st,
                o => return Err(self.odd(o)),
            };
            let how = if status > 128 {
                format!("killed by signal {}", status - 128)
            } else {
                format!("exit status {status}")
            };
            return Err(self.failure(
                "spawn the workload",
                format!("the workload's process died before its exec ({how}), without a report"),
            ));
        }
        Ok(Some(proc))
    }

    /// Before the spawn: the seccomp programs must let the workload's
    /// `execve` through (with the very arguments it will pass); a filter that
    /// kills it would kill the child after its filter is loaded, where it can
    /// report nothing.
    fn check_exec_allowed(&mut self) -> R<()> {
        let Some(s) = &self.plan.workload.seccomp else {
            return Ok(());
        };
        let e = &self.prep.exec;
        let first = e.candidates.first().map_or(0, |c| c.as_ptr() as u64);
        let args = [first, e.argv_ptr() as u64, e.envp_ptr() as u64, 0, 0, 0];
        let origin = s.default_action.from.clone();
        super::seccomp::check_execve(&self.prep.filters, &args).map_err(|m| StepFailure {
            origin,
            ..self.failure("check the seccomp programs against execve", m)
        })
    }

    /// Supervisor: reads the exec report pipe until EOF — EOF means the
    /// workload's execve succeeded (the write end is close-on-exec), data is
    /// its failure report.
    fn await_exec(&mut self) -> R<()> {
        let Some(r) = self.exec_report.take() else {
            return Ok(());
        };
        self.origin = self.plan.workload.args.from.clone();
        let b = self.read_and_close(Op::RecvReport { fd: r }, r)?;
        if b.is_empty() {
            let argv = &self.plan.workload.args.value;
            tracing::info!(target: super::log::USER, "workload started: {argv:?}");
            tracing::info!("workload started: {argv:?}");
            return Ok(());
        }
        let failure = serde_json::from_slice(&b).unwrap_or_else(|_| StepFailure {
            step: Step::Exec,
            ..self.failure("exec report", String::from_utf8_lossy(&b).into_owned())
        });
        tracing::error!(target: super::log::USER, "workload could not start: {failure}");
        Err(failure)
    }

    // ----- workload ------------------------------------------------------------

    fn arrange_workload_fds(&mut self) -> R<()> {
        self.op(Op::ResetSignals)?;
        if let Some(ov) = self.exec_override.clone() {
            return self.arrange_exec_fds(&ov);
        }
        let entries = self.plan.workload.fds.clone();
        let mut sources = Vec::new();
        for e in &entries {
            match e.source {
                FdSource::Supervisor { fd } => sources.push(FdRef::num(fd.0)),
                _ => {
                    self.origin = e.from.clone();
                    return Err(self.unsupported("workload fd not inherited from the supervisor"));
                }
            }
        }
        let report = self.report;
        self.report = self.arrange_fds(&entries, &sources, &[report])?[0];
        Ok(())
    }

    fn set_rlimits(&mut self) -> R<()> {
        for (kind, r) in &self.plan.workload.rlimits {
            self.origin = r.from.clone();
            self.op(Op::SetRlimit {
                kind: *kind,
                soft: r.soft,
                hard: r.hard,
            })?;
        }
        Ok(())
    }

    /// setgroups, setresgid, keep-caps, setresuid: keep-caps holds the
    /// permitted set across the uid change so the capability step can set it.
    fn set_credentials(&mut self, c: &Credentials) -> R<()> {
        self.origin = c.from.clone();
        // An `exec`'d process is spawned by a supervisor that dropped its
        // capabilities (CAP_SETGID with them): groups it already has are
        // not set again (setgroups would fail with EPERM, changing nothing).
        let unchanged = self.exec_override.is_some() && c.groups == self.plan.supervisor.credentials.groups;
        for op in self.credential_ops(c) {
            if unchanged && matches!(op, Op::SetGroups { .. }) {
                continue;
            }
            self.op(op)?;
        }
        Ok(())
    }

    /// The ops of [`Self::set_credentials`] (setgroups left out where the
    /// user namespace denies it).
    fn credential_ops(&self, c: &Credentials) -> Vec<Op> {
        let denied =
            self.plan.namespaces.user.value == Namespace::New && self.plan.id_maps.setgroups == SetGroups::Deny;
        let mut ops = Vec::with_capacity(4);
        if !denied {
            ops.push(Op::SetGroups {
                groups: c.groups.clone(),
            });
        }
        ops.push(Op::SetResGid { gid: c.gid });
        ops.push(Op::KeepCaps { on: true });
        ops.push(Op::SetResUid { uid: c.uid });
        ops
    }

    /// Sets capability sets `c` (see [`hooks::capability_ops`]).
    fn set_capabilities(&mut self, c: &CapSets, from: &Origin) -> R<()> {
        self.origin = from.clone();
        for op in hooks::capability_ops(c) {
            self.op(op)?;
        }
        Ok(())
    }

    fn set_workload_credentials(&mut self) -> R<()> {
        let w = &self.plan.workload;
        if let Some(u) = &w.umask {
            self.origin = u.from.clone();
            self.op(Op::Umask { mask: u.value })?;
        }
        let (creds, cwd, cwd_from) = match &self.exec_override {
            Some(ov) => (
                ov.credentials.clone(),
                ov.cwd.clone(),
                Origin::Cli("exec process.cwd".into()),
            ),
            None => (w.credentials.clone(), w.cwd.value.clone(), w.cwd.from.clone()),
        };
        self.set_credentials(&creds)?;
        // cwd is entered as the workload's user, before seccomp.
        self.origin = cwd_from;
        self.op(Op::Chdir { path: cwd }).map(drop)
    }

    fn set_workload_capabilities(&mut self) -> R<()> {
        let c = &self.plan.workload.capabilities;
        match self.exec_override.as_ref().map(|ov| ov.capabilities.clone()) {
            Some(caps) => self.set_capabilities(&caps, &Origin::Cli("exec process.capabilities".into())),
            None => self.set_capabilities(&c.value, &c.from),
        }
    }

    fn set_no_new_privs(&mut self) -> R<()> {
        let n = &self.plan.workload.no_new_privs;
        self.origin = n.from.clone();
        if n.value {
            self.op(Op::NoNewPrivs)?;
        }
        Ok(())
    }

    /// Platform ptrace: the supervisor becomes the workload's tracer; the
    /// exec that follows stops the workload for it (see `super::trace`).
    fn ask_to_be_traced(&mut self) -> R<()> {
        self.origin = self.plan.platform.from.clone();
        self.op(Op::TraceMe).map(drop)
    }

    fn load_seccomp(&mut self) -> R<()> {
        let Some(s) = &self.plan.workload.seccomp else {
            return Ok(());
        };
        self.origin = s.default_action.from.clone();
        for f in self.prep.filters.clone() {
            self.op(Op::SeccompLoad { filter: f })?;
        }
        Ok(())
    }

    /// The filter without no_new_privs, while the workload still holds the
    /// supervisor's CAP_SYS_ADMIN (effective since step `supervisor_ids`).
    /// An `exec`'d process, whose supervisor has dropped it, sets
    /// no_new_privs first, as its compiled request says.
    fn load_seccomp_before_credentials(&mut self) -> R<()> {
        if self
            .exec_override
            .as_ref()
            .is_some_and(|ov| ov.no_new_privs_before_filter)
        {
            self.origin = Origin::rule(crate::plan::exec_process::EXEC_NNP_RULE);
            self.op(Op::NoNewPrivs)?;
        }
        self.load_seccomp()
    }

    fn exec_workload(&mut self) -> R<()> {
        self.origin = self.plan.workload.args.from.clone();
        self.op(Op::Exec {
            prepared: self.prep.exec.clone(),
        })
        .map(drop)
    }

    // ----- supervisor, after the workload started ------------------------------

    fn drop_supervisor_privileges(&mut self) -> R<()> {
        let s = &self.plan.supervisor;
        self.set_capabilities(&s.capabilities, &s.credentials.from)
    }

    /// `supervisor.non_dumpable`: the supervisor's first act after the clone.
    fn become_non_dumpable(&mut self) -> R<()> {
        if !self.plan.supervisor.non_dumpable {
            return Ok(());
        }
        let origin = std::mem::replace(&mut self.origin, self.plan.supervisor.credentials.from.clone());
        let r = self.op(Op::NonDumpable);
        self.origin = origin;
        r.map(drop)
    }

    /// Reaps children, forwards INT/TERM/HUP to the workload, and exits with
    /// the workload's status.
    fn supervise(&mut self) -> R<()> {
        self.await_exec()?;
        let workload = self
            .workload
            .ok_or_else(|| self.unsupported("wait without a workload"))?;
        let status = self.wait_for(
            workload,
            ProcRef {
                pid: -1,
                who: Who::AnyChild,
            },
        )?;
        tracing::info!(target: super::log::USER, "workload exited with status {status}");
        tracing::info!("workload exited with status {status}; the supervisor exits with it");
        if self.real {
            let _ = self.b.perform(&Op::Exit { code: status });
        } else {
            self.op(Op::Exit { code: status })?;
        }
        Ok(())
    }

    /// Waits on `target` (reaping with `reap`), forwarding signals to it.
    /// The launcher forwards the first INT/TERM/HUP as it is; a second one
    /// kills the supervisor (SIGKILL, which ends the whole PID namespace): a
    /// supervisor that does not take its signals (stuck, or spinning) must
    /// not make the launcher ignore them.
    /// The launcher with a relayed pty relays meanwhile.
    fn wait_for(&mut self, target: ProcRef, reap: ProcRef) -> R<i32> {
        let mut forwarded = 0;
        let relay = self.pty_master.filter(|_| self.me == Actor::Launcher);
        let mut stdin = true;
        loop {
            let wait = match relay {
                Some(master) => Op::RelayPty { master, stdin },
                None => Op::WaitSignal,
            };
            match self.op(wait)? {
                Outcome::StdinClosed => stdin = false,
                // Platform ptrace: the tracer takes every stop and exit.
                Outcome::Signal(libc::SIGCHLD) if self.tracer.is_some() => {
                    let traced = self.tracer.as_mut().map(super::trace::Tracer::on_sigchld);
                    match traced {
                        Some(Ok(exits)) => {
                            if let Some(e) = exits.iter().find(|e| e.pid == target.pid) {
                                return Ok(e.status);
                            }
                        }
                        Some(Err(e)) => {
                            return Err(StepFailure::new(self.step, self.origin.clone(), "trace".into(), &e))
                        }
                        None => {}
                    }
                }
                Outcome::Signal(libc::SIGCHLD) => loop {
                    match self.op(Op::Reap { proc: reap }) {
                        Ok(Outcome::Reaped(Some((pid, st)))) if pid == target.pid || !self.real => return Ok(st),
                        Ok(Outcome::Reaped(Some(_))) => continue,
                        Ok(_) => break,
                        Err(f) if f.errno == Some(libc::ECHILD) => break,
                        Err(f) => return Err(f),
                    }
                },
                Outcome::Signal(sig) => {
                    let name = super::backend::signal_name(sig);
                    tracing::info!("forwarding {name} to the {}", target.who_name());
                    if self.me == Actor::Supervisor {
                        tracing::info!(target: super::log::USER, "forwarding {name} to the workload");
                    }
                    forwarded += 1;
                    let escalate = self.me == Actor::Launcher && forwarded > 1;
                    let _ = self.op(Op::Kill {
                        proc: target,
                        signal: if escalate { libc::SIGKILL } else { sig },
                    });
                }
                o => return Err(self.odd(o)),
            }
        }
    }

    // ----- launcher, at the end ---------------------------------------------------

    /// With a relayed pty (`stdio = pty`): the caller's terminal, when stdin
    /// is one, made raw (put back by the undo stack, at the end or on
    /// failure) and its window size copied to the pty, before the relay.
    fn start_relay(&mut self) -> R<()> {
        let Some(master) = self.pty_master else {
            return Ok(());
        };
        self.origin = self.plan.stdio.from.clone();
        let stdin = FdRef::num(0);
        if let Outcome::Bytes(saved) = self.op(Op::TtyRaw { fd: stdin })? {
            self.undo.push(Undo::RestoreTty(stdin, saved));
        }
        self.op(Op::CopyWinsize { master })?;
        self.origin = self.id.origin().clone();
        Ok(())
    }

    fn teardown(&mut self) -> R<()> {
        self.origin = self.id.origin().clone();
        if let Some(sup) = self.supervisor {
            self.start_relay()?;
            self.status = self.wait_for(sup, sup)?;
            if let Some(master) = self.pty_master {
                self.origin = self.plan.stdio.from.clone();
                self.op(Op::DrainPty { master })?;
                self.origin = self.id.origin().clone();
            }
            tracing::info!("the supervisor exited with status {}", self.status);
            if self.status == 128 + libc::SIGKILL {
                self.read_oom_kills();
            }
            self.undo.retain(|u| !matches!(u, Undo::Child(_)));
            if let Some(c) = self.control {
                if let Outcome::Bytes(b) = self.op(Op::RecvReport { fd: c })? {
                    if !b.is_empty() {
                        return Err(serde_json::from_slice(&b).unwrap_or_else(|_| StepFailure {
                            step: Step::Wait,
                            origin: self.origin.clone(),
                            op: "supervisor report".into(),
                            errno: None,
                            message: String::from_utf8_lossy(&b).into_owned(),
                        }));
                    }
                }
            }
        }
        tracing::info!(
            "tearing down sandbox {}; apply exits with status {}",
            self.id.as_str(),
            self.status
        );
        let left = self.rollback();
        if left.is_empty() {
            Ok(())
        } else {
            Err(StepFailure {
                step: Step::Teardown,
                origin: self.origin.clone(),
                op: "teardown".into(),
                errno: None,
                message: left.join("; "),
            })
        }
    }

    /// After the workload ended by SIGKILL: reads the OOM-kill counter of
    /// the sandbox's memory cgroup (v1 `memory.oom_control`, v2
    /// `memory.events`: `oom_kill N`) and, when it counted one, says so at
    /// error level (the user log too) and keeps it for the caller. A counter
    /// that cannot be read says nothing: the status stands on its own.
    fn read_oom_kills(&mut self) {
        let Some(cg) = &self.plan.cgroup else { return };
        let Some(limit) = cg.limits.memory.clone() else { return };
        let Some(dir) = cg
            .dirs
            .iter()
            .find(|d| d.role == CgroupDirRole::Sandbox && d.controllers.iter().any(|c| c == "memory"))
        else {
            return;
        };
        let file = match dir.version {
            crate::plan::CgroupVersion::V1 => "memory.oom_control",
            crate::plan::CgroupVersion::V2 => "memory.events",
        };
        let path = self.id.resolve(&dir.path).join(file);
        let teardown = std::mem::replace(&mut self.origin, limit.from.clone());
        let read = self.op(Op::ReadFile { path });
        self.origin = teardown;
        let Ok(Outcome::Bytes(text)) = read else {
            return;
        };
        let kills = String::from_utf8_lossy(&text)
            .lines()
            .find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse::<u64>().ok())
            .unwrap_or(0);
        if kills > 0 {
            let oom = super::OomKill {
                limit: limit.value,
                from: limit.from,
                kills,
            };
            tracing::error!("{oom}");
            tracing::error!(target: super::log::USER, "{oom}");
            self.oom_kill = Some(oom);
        }
    }

    /// Undoes every launcher effect, newest first. Returns what could not be undone.
    fn rollback(&mut self) -> Vec<String> {
        if self.real {
            // The log fds are among what is closed: nothing is written after.
            super::log::hold();
        }
        let mut left = Vec::new();
        while let Some(u) = self.undo.pop() {
            let r = match &u {
                Undo::Child(p) => {
                    let _ = self.b.perform(&Op::Kill {
                        proc: *p,
                        signal: libc::SIGKILL,
                    });
                    self.b.perform(&Op::WaitExit { proc: *p }).map(drop)
                }
                Undo::Close(fd) => self.b.perform(&Op::Close { fd: *fd }).map(drop),
                Undo::RestoreNs(kind, fd) => {
                    let r = self.b.perform(&Op::SetNs { fd: *fd, kind: *kind }).map(drop);
                    let _ = self.b.perform(&Op::Close { fd: *fd });
                    r
                }
                Undo::Signals => self.b.perform(&Op::UnblockSignals).map(drop),
                Undo::RestoreTty(fd, saved) => self
                    .b
                    .perform(&Op::TtyRestore {
                        fd: *fd,
                        saved: saved.clone(),
                    })
                    .map(drop),
                Undo::CgroupDir { path, leaf } => match self.b.perform(&Op::Rmdir { path: path.clone() }) {
                    Err(e)
                        if !leaf && matches!(e.raw_os_error(), Some(libc::ENOTEMPTY | libc::EBUSY | libc::ENOENT)) =>
                    {
                        Ok(())
                    }
                    // A shared parent sits in a hierarchy root (mode 0555):
                    // removing it needs CAP_DAC_OVERRIDE in the initial user
                    // namespace, which a launcher that joined another user
                    // namespace no longer has. It is left, as a parent in
                    // use by another sandbox is (docs/apply.md, known limits).
                    Err(e)
                        if !leaf
                            && e.raw_os_error() == Some(libc::EACCES)
                            && matches!(self.plan.namespaces.user.value, Namespace::Join(_)) =>
                    {
                        Ok(())
                    }
                    r => r.map(drop),
                },
                Undo::StateFile(p) => self.b.perform(&Op::Unlink { path: p.clone() }).map(drop),
                Undo::SandboxDir(p) => self.b.perform(&Op::RemoveSandboxDir { path: p.clone() }).map(drop),
            };
            if let Err(e) = r {
                left.push(format!("{u:?}: {}", super::error::error_text(&e)));
            }
        }
        left
    }

    /// In a child: report the failure to the parent and exit.
    fn exit_child_with(&mut self, f: &StepFailure) -> ! {
        let _ = self.send_report(f);
        let _ = self.b.perform(&Op::Exit { code: CHILD_FAILED });
        // SAFETY: _exit never returns; reached only if the backend's Exit did not exit.
        unsafe { libc::_exit(CHILD_FAILED) }
    }

    fn send_report(&mut self, f: &StepFailure) -> std::io::Result<Outcome> {
        let data = serde_json::to_vec(f).unwrap_or_default();
        match self.report {
            Some(fd) => self.b.perform(&Op::SendReport { fd, data }),
            None => Ok(Outcome::Done),
        }
    }
}
