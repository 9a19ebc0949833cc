//! The one interface through which the interpreter touches the host.
//!
//! Every host effect is an [`Op`]: a plain value carrying its arguments. A
//! [`Backend`] performs one op at a time and returns an [`Outcome`]. The real
//! backend ([`super::linux::LinuxBackend`]) makes the system call; the recording
//! backend ([`super::record::RecordingBackend`]) appends the op to one ordered
//! list, which is the dry run. Because both see exactly the same values in the
//! same order, the printed dry run is the program the real run executes.
//!
//! `Display` for an op is deterministic: pids print as `<supervisor>` /
//! `<workload>`, fds the launcher opens print by role (`<log>`), so the text can
//! be checked in as a golden file.

use std::collections::BTreeSet;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::plan::{Actor, DeviceKind, FdRole, NsKind};
use crate::vocab::{Cap, Gid, RlimitKind, Uid};

/// A file descriptor as the interpreter knows it: its number in the current
/// process, and how to print it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdRef {
    /// The number in the process performing the op.
    pub raw: i32,
    /// How the fd prints in a dry run.
    pub tag: FdTag,
}

/// How an fd prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdTag {
    /// A number fixed by the plan (a planned target or a caller's fd).
    Num,
    /// An fd the launcher opened for a planned role.
    Role(FdRole),
    /// An fd the interpreter uses for its own mechanics.
    Internal(&'static str),
    /// A copy of planned fd N moved above the planned numbers.
    Moved(i32),
}

impl FdRef {
    /// A planned number.
    pub fn num(raw: i32) -> Self {
        FdRef { raw, tag: FdTag::Num }
    }
}

impl fmt::Display for FdRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.tag {
            FdTag::Num => write!(f, "{}", self.raw),
            FdTag::Role(r) => write!(f, "<{}>", role_name(r)),
            FdTag::Internal(s) => write!(f, "<{s}>"),
            FdTag::Moved(n) => write!(f, "<copy of {n}>"),
        }
    }
}

fn role_name(r: FdRole) -> String {
    serde_json::to_value(r)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{r:?}"))
}

/// Which process an op names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// The supervisor (pid 1 of the sandbox), as seen from the launcher.
    Supervisor,
    /// The workload, as seen from the supervisor.
    Workload,
    /// Any child (waitpid(-1)).
    AnyChild,
}

/// A process: its pid in the performing process's view, and its role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcRef {
    /// The pid (-1 for any child).
    pub pid: i32,
    /// Which process it is.
    pub who: Who,
}

impl ProcRef {
    /// `supervisor`, `workload`, `child`: for messages.
    pub fn who_name(&self) -> &'static str {
        match self.who {
            Who::Supervisor => "supervisor",
            Who::Workload => "workload",
            Who::AnyChild => "child",
        }
    }
}

impl fmt::Display for ProcRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.who {
            Who::Supervisor => "<supervisor>",
            Who::Workload => "<workload>",
            Who::AnyChild => "<any child>",
        })
    }
}

/// Which capability set a [`Op::CapSet`] replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum CapSetKind {
    Effective,
    Permitted,
    Inheritable,
}

/// A seccomp filter compiled before the clone, loaded by [`Op::SeccompLoad`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedFilter {
    /// What it does, for the dry run (`errno(1) for 3 syscalls`).
    pub describe: String,
    /// The BPF program.
    pub program: seccompiler::BpfProgram,
}

/// The workload's exec arguments, converted before the clone, down to the
/// NULL-terminated pointer arrays `execve` takes: the vfork child's exec
/// allocates nothing.
#[derive(Debug, PartialEq, Eq)]
pub struct PreparedExec {
    /// Candidate paths to try in order (one when argv\[0\] holds a slash, else
    /// one per `PATH` entry of the planned environment).
    pub candidates: Vec<std::ffi::CString>,
    /// argv.
    pub argv: Vec<std::ffi::CString>,
    /// envp.
    pub envp: Vec<std::ffi::CString>,
    /// `argv`'s pointers and a NULL (they point into `argv`'s heap buffers,
    /// which do not move with the struct).
    argv_ptrs: Vec<*const libc::c_char>,
    /// `envp`'s pointers and a NULL.
    envp_ptrs: Vec<*const libc::c_char>,
}

impl PreparedExec {
    /// Builds the pointer arrays for `candidates`, `argv` and `envp`.
    pub fn new(candidates: Vec<std::ffi::CString>, argv: Vec<std::ffi::CString>, envp: Vec<std::ffi::CString>) -> Self {
        let ptrs = |v: &[std::ffi::CString]| v.iter().map(|c| c.as_ptr()).chain([std::ptr::null()]).collect();
        PreparedExec {
            argv_ptrs: ptrs(&argv),
            envp_ptrs: ptrs(&envp),
            candidates,
            argv,
            envp,
        }
    }

    /// The NULL-terminated argv array.
    pub fn argv_ptr(&self) -> *const *const libc::c_char {
        self.argv_ptrs.as_ptr()
    }

    /// The NULL-terminated envp array.
    pub fn envp_ptr(&self) -> *const *const libc::c_char {
        self.envp_ptrs.as_ptr()
    }
}

/// What [`Backend::spawn`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spawned {
    /// The child's pid.
    pub pid: i32,
    /// Whether the child got as far as calling `execve` (and it did not
    /// return). False: it died or exited before exec — with a report on the
    /// exec pipe if it could write one, killed otherwise.
    pub reached_exec: bool,
}

/// How a process that asked to die with its parent checks that the parent
/// was still there when it asked. getppid(2) cannot tell in a new PID
/// namespace, where it is 0 whether or not the parent lives; an fd whose
/// other end only the parent holds can.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParentLink {
    /// The sync pipe's read end, once the child closed its copy of the write
    /// end: a hang-up with nothing left to read means the launcher is gone
    /// before its release. The launcher closes the pipe itself after the
    /// release byte, so a hang-up with the byte still there says nothing; a
    /// launcher that died after its release is caught by the next check.
    SyncPipe(FdRef),
    /// A socket whose other end only the parent holds, until after this
    /// process has exited (the control socket, once the supervisor closed
    /// the launcher's end): a hang-up means the parent is gone.
    HangsUp(FdRef),
    /// The parent's pid in this PID namespace: getppid(2) must still say it.
    Pid(i32),
}

impl fmt::Display for ParentLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParentLink::SyncPipe(fd) => write!(f, "launcher gone if {fd} hangs up unreleased"),
            ParentLink::HangsUp(fd) => write!(f, "launcher gone if {fd} hangs up"),
            ParentLink::Pid(_) => f.write_str("supervisor gone unless getppid is <supervisor>"),
        }
    }
}

/// What a fork or clone returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forked {
    /// In the parent, with the child's pid.
    Parent(i32),
    /// In the child.
    Child,
}

/// What an op returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to return.
    Done,
    /// A new fd.
    Fd(i32),
    /// Two new fds (read/first end, write/second end).
    Pair(i32, i32),
    /// A fork or clone.
    Forked(Forked),
    /// A reaped child (pid, status as 0..=255 or 128+signal), or none yet.
    Reaped(Option<(i32, i32)>),
    /// A signal number taken from the pending set.
    Signal(i32),
    /// A pid ([`Op::GetPid`]).
    Pid(i32),
    /// Bytes read.
    Bytes(Vec<u8>),
    /// [`Op::ReapRaw`]: a reaped child and its raw wait status, or none yet.
    ReapedRaw(Option<(i32, i32)>),
    /// Directories made ([`Op::MkdirAll`]), outermost first.
    Made(Vec<PathBuf>),
    /// [`Op::RelayPty`]: the caller's stdin reached its end (the relay goes
    /// on without it).
    StdinClosed,
}

/// One host effect, with its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Op {
    /// mkdir -p with mode 0700 for the parts made; returns them, outermost
    /// first ([`Outcome::Made`]), so a launch that fails right after can
    /// remove them again. A failure part-way removes what it made.
    MkdirAll { path: PathBuf },
    /// mkdir -p; each directory made gets exactly `mode` (the umask does not
    /// apply); existing ones are left as they are.
    MakeDirs { path: PathBuf, mode: u32 },
    /// mkdir(2); EEXIST is an error.
    Mkdir { path: PathBuf, mode: u32 },
    /// Open an existing file write-only and write these bytes.
    WriteFile { path: PathBuf, data: String },
    /// Append `supervisor <pid>\n` (the process's pid, decimal) to the
    /// state file.
    WritePid { fd: FdRef, proc: ProcRef },
    /// Make the state file `path` (mode 0600) complete and locked before it
    /// is visible: `open(dir, O_TMPFILE)`, `flock(LOCK_EX)`, `record`
    /// written, then `linkat` to `path` (EEXIST when it exists). Returns the
    /// fd, which holds the lock until it is closed.
    CreateState { path: PathBuf, record: String, tag: FdTag },
    /// Write `0` to an open cgroup `tasks` (v1) or `cgroup.procs` (v2) file:
    /// moves the calling thread (v1) or process (v2) into that cgroup. `file`
    /// names what `fd` was opened on, for the text.
    JoinCgroup { fd: FdRef, file: PathBuf },
    /// Write `/proc/<pid>/<name>` (uid_map, gid_map, setgroups).
    WriteProcFile {
        proc: ProcRef,
        name: &'static str,
        data: String,
    },
    /// rmdir(2), retried briefly on EBUSY.
    Rmdir { path: PathBuf },
    /// unlink(2) (the state file).
    Unlink { path: PathBuf },
    /// Read a small file whole (a cgroup's counters, at teardown); returns
    /// its bytes ([`Outcome::Bytes`]).
    ReadFile { path: PathBuf },
    /// open(2), close-on-exec. A file it creates (`O_CREAT`) gets exactly
    /// `mode`: the umask does not apply.
    Open {
        path: PathBuf,
        flags: i32,
        mode: u32,
        tag: FdTag,
    },
    /// The root directory, opened `O_PATH|O_DIRECTORY` with openat2's
    /// RESOLVE_NO_SYMLINKS: a path with a symbolic link anywhere in it is
    /// refused (ELOOP), so a rootfs swapped for a link after the plan was
    /// made cannot send the sandbox into another tree. Close-on-exec.
    OpenRootDir { path: PathBuf, tag: FdTag },
    /// Re-executes this binary (`exe`, an O_PATH fd on it) as the serving
    /// supervisor: its permitted capabilities go into inheritable and
    /// ambient so they cross the exec, `keep` loses close-on-exec, and
    /// `execveat(exe, "", [SUPERVISOR_ARGV0, handover], environ,
    /// AT_EMPTY_PATH)`. Returns only on failure.
    ExecSelf {
        exe: FdRef,
        handover: FdRef,
        keep: Vec<i32>,
    },
    /// symlinkat(target, dir, name); an existing entry is left as it is.
    SymlinkAt {
        dir: FdRef,
        name: std::ffi::OsString,
        target: PathBuf,
    },
    /// A recursive bind of the directory `fd` names onto itself (a copy of
    /// its mount tree attached over it: open_tree + move_mount, no path
    /// walked): -> [`Outcome::Fd`] on the new mount's root.
    BindOntoItself { fd: FdRef, tag: FdTag },
    /// A namespace file to `setns` into, opened safely: `open(O_PATH)`
    /// (opens nothing: a FIFO or a device is not opened, so cannot block or
    /// act), `fstatfs` must show nsfs, then reopened through
    /// `/proc/self/fd/N` read-only (setns and ioctl refuse O_PATH fds), and
    /// `ioctl(NS_GET_NSTYPE)` must name `kind`. Close-on-exec.
    OpenNs { path: PathBuf, kind: NsKind, tag: FdTag },
    /// socketpair(AF_UNIX, SOCK_SEQPACKET|SOCK_CLOEXEC).
    SocketPair { tag: FdTag },
    /// pipe2(O_CLOEXEC).
    Pipe { tag: &'static str },
    /// memfd_create (close-on-exec, sealing allowed), empty.
    Memfd { name: &'static str, tag: FdTag },
    /// Write `data` to an empty memfd, then seal it (shrink, grow, write, seal).
    FillSealed { fd: FdRef, data: Rc<Vec<u8>> },
    /// A pty pair: posix_openpt (O_RDWR|O_NOCTTY|O_CLOEXEC), grantpt,
    /// unlockpt, then the slave opened O_RDWR|O_NOCTTY|O_CLOEXEC. Returns
    /// (master, slave).
    OpenPty,
    /// Connect a `SOCK_STREAM` unix socket to `path`, send `fd` with
    /// SCM_RIGHTS (the `--console-socket` protocol of runc and crun), close
    /// the socket.
    SendFd { path: PathBuf, fd: FdRef },
    /// When `fd` is a terminal: save its mode and make it raw (cfmakeraw);
    /// returns the saved mode as bytes ([`Outcome::Bytes`]), or
    /// [`Outcome::Done`] when `fd` is not a terminal.
    TtyRaw { fd: FdRef },
    /// Put back a terminal mode saved by [`Op::TtyRaw`].
    TtyRestore { fd: FdRef, saved: Vec<u8> },
    /// Copy the caller's window size (stdin's, else stdout's, when one is a
    /// terminal) to the pty `master` (TIOCGWINSZ, TIOCSWINSZ); nothing when
    /// neither is a terminal.
    CopyWinsize { master: FdRef },
    /// Relay until a signal of the blocked set (INT, TERM, HUP, CHLD)
    /// arrives, and return it: the caller's stdin (when `stdin`) to the pty
    /// `master`, the master to the caller's stdout; SIGWINCH (blocked too)
    /// copies the window size again ([`Op::CopyWinsize`]). At the end of
    /// stdin it writes the pty's end-of-file character (^D) to the master
    /// and returns [`Outcome::StdinClosed`].
    RelayPty { master: FdRef, stdin: bool },
    /// Copy what is left in the pty `master` to the caller's stdout, until
    /// every slave is closed (EIO) or nothing came for 200 ms.
    DrainPty { master: FdRef },
    /// Open /dev/kvm with kvm-ioctls and check its API version and extensions.
    OpenKvm {
        api_version: i32,
        extensions: Vec<String>,
        tag: FdTag,
    },
    /// close(2).
    Close { fd: FdRef },
    /// fcntl(F_DUPFD_CLOEXEC, min).
    DupHigh { fd: FdRef, min: i32 },
    /// dup2(from, to), and the result is not close-on-exec.
    Dup2 { from: FdRef, to: i32 },
    /// close_range over every fd not in `keep`.
    CloseAllExcept { keep: Vec<i32> },
    /// setns(fd, kind).
    SetNs { fd: FdRef, kind: NsKind },
    /// unshare(2) with these namespace kinds.
    Unshare { kinds: Vec<NsKind> },
    /// sigprocmask(SIG_BLOCK, {INT, TERM, HUP, CHLD}).
    BlockSignals,
    /// sigprocmask(SIG_UNBLOCK) of the same set (launcher, at the end).
    UnblockSignals,
    /// Empty signal mask, default SIGPIPE (before exec).
    ResetSignals,
    /// clone(2) with these new namespaces (fork-like: no new stack).
    Clone { new: Vec<NsKind>, who: Who },
    /// clone(2) with `CLONE_VM|CLONE_VFORK` on a stack of its own: the child
    /// runs in this process's memory, and this process waits, until the child
    /// execs or exits (no page tables copied, no copy-on-write faults, and an
    /// exec that leaves a shared address space instead of tearing down a
    /// copy). Performed by [`Backend::spawn`], not `perform`.
    Spawn { who: Who },
    /// Write one byte to the launcher's end of the sync pipe.
    Release { fd: FdRef },
    /// sched_yield(2): the launcher, having released the child, lets it run
    /// first if the scheduler put both on one CPU.
    Yield,
    /// Read one byte from the sync pipe (EOF: the launcher is gone).
    AwaitRelease { fd: FdRef },
    /// Read the sync pipe until EOF (the launcher closes its end once it has
    /// done its last work of the launch); returns what was read (the seccomp
    /// programs, [`Op::SendFilters`]).
    AwaitEof { fd: FdRef },
    /// Write the workload's seccomp programs, encoded, to the sync pipe.
    SendFilters { fd: FdRef, count: usize, data: Rc<Vec<u8>> },
    /// Send a failure report (one datagram or pipe write).
    SendReport { fd: FdRef, data: Vec<u8> },
    /// Read a report until EOF (pipe) or take one queued datagram (socket,
    /// non-blocking).
    RecvReport { fd: FdRef },
    /// sigwaitinfo over the blocked set.
    WaitSignal,
    /// waitpid(pid, WNOHANG).
    Reap { proc: ProcRef },
    /// waitpid(pid), blocking (rollback, after SIGKILL).
    WaitExit { proc: ProcRef },
    /// kill(2).
    Kill { proc: ProcRef, signal: i32 },
    /// _exit(2) from a child.
    Exit { code: i32 },
    // ----- long-lived sandboxes (`create`, the supervisor's control half) -----
    /// Make the sandbox's state directory `<root>/<id>` (mode 0700, the root
    /// made if missing) with an exclusive `mkdir` (an id in use: EEXIST,
    /// nothing touched) and hold its lock (`flock` LOCK_EX on the returned
    /// directory fd) until that fd is closed.
    CreateSandboxDir { root: PathBuf, id: String, tag: FdTag },
    /// Bind and listen on `<dir>/control.sock` (mode 0600, non-blocking):
    /// the listener the supervisor serves.
    BindControlSocket { dir: FdRef, path: PathBuf, tag: FdTag },
    /// Replace file `name` in the directory open at `dir` (named `path` in
    /// messages) atomically: a temporary file, then renameat.
    WriteStateFile {
        dir: FdRef,
        path: PathBuf,
        name: &'static str,
        data: Rc<Vec<u8>>,
    },
    /// Write `state.json` in `dir`: `record` with its supervisor set to the
    /// host process `pid` as it is now (pid, start time, boot id).
    WriteRecord {
        dir: FdRef,
        path: PathBuf,
        record: Rc<crate::exec::control::state::Record>,
        pid: i32,
    },
    /// Write runc's `--pid-file`: the pid in decimal, replaced atomically.
    WritePidFile { path: PathBuf, pid: i32 },
    /// Send one byte `mark` on `fd` (the supervisor's "ready" and the
    /// launcher's "committed" on the control socketpair).
    SendMark { fd: FdRef, mark: u8 },
    /// Wait at most `timeout_ms` for the supervisor's word on `fd`: the
    /// one-byte `mark` expected (its ready mark, or its mark that the
    /// runtime hooks may run: [`Outcome::Bytes`]), a failure report (the
    /// report's bytes), or its end (empty); `proc` is the supervisor, whose
    /// exit also ends the wait.
    AwaitMark {
        fd: FdRef,
        proc: ProcRef,
        timeout_ms: u64,
        mark: u8,
    },
    /// Block until the launcher's `mark` arrives on `fd` (its commit, or
    /// that the runtime hooks ran); EOF first (the launcher died) is EPIPE,
    /// another byte EPROTO.
    AwaitCommit { fd: FdRef, mark: u8 },
    /// Connect to the control socket at `path` and check that the
    /// supervisor answers `hello` (bounded; `proc` must stay alive).
    AwaitServing {
        path: PathBuf,
        proc: ProcRef,
        timeout_ms: u64,
    },
    /// prctl(PR_SET_PDEATHSIG, 0): a created sandbox outlives its launcher.
    ClearDeathSignal,
    /// signalfd over the blocked set (INT, TERM, HUP, CHLD), non-blocking,
    /// close-on-exec: the supervisor's event fd in its server loop.
    SignalFd { tag: FdTag },
    /// A pty pair from the multiplexer at `ptmx` (the sandbox's own devpts
    /// instance): open O_RDWR|O_NOCTTY|O_CLOEXEC, unlock, open the slave
    /// through TIOCGPTPEER. Returns (master, slave).
    OpenPtyIn { ptmx: PathBuf },
    /// Give memory the process no longer needs back to the system: the
    /// heap's free top (dlmalloc trim) and the stack below the current frame
    /// (MADV_DONTNEED), both dirtied by the launcher before the clone.
    ShedMemory,
    /// Remove a created sandbox's state directory and what is in it (rollback
    /// of a failed `create`).
    RemoveSandboxDir { path: PathBuf },
    /// Serve the control socket `listener` (the supervisor's loop; recorded,
    /// never performed by a backend: the loop is the control half's own).
    Serve { listener: FdRef },
    /// waitpid(-1, WNOHANG) for any child; the raw wait status
    /// ([`Outcome::ReapedRaw`]).
    ReapRaw,
    /// Write `data` at offset 0 of the open file `fd` and truncate it there
    /// (the supervisor's `exit` record).
    Rewrite { fd: FdRef, data: Vec<u8> },
    /// sethostname(2).
    SetHostname { name: String },
    /// Bring `lo` up (SIOCSIFFLAGS on an AF_INET socket).
    LoopbackUp,
    /// Hide a path: bind /dev/null over a file, a read-only empty tmpfs over
    /// a directory; nothing when the path does not exist.
    MaskPath { path: PathBuf },
    /// Make a mount point if missing: an empty file when `like` (a host path,
    /// for binds) is not a directory, else a directory. Only for paths of
    /// the caller's own mount tree (the staging directory), never inside a
    /// root: those go through [`Op::OpenInRoot`].
    MountPoint { path: PathBuf, like: Option<PathBuf> },
    /// Resolves `path` inside the root open at `root` with openat2
    /// (RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS: `..` and symlinks, absolute or
    /// not, stay inside the root), makes what `make` says through the
    /// parent's fd (mkdirat/openat O_EXCL|O_NOFOLLOW/mknodat: a name in a
    /// directory already inside the root, never a link followed), and
    /// returns an O_PATH fd of the result, which mounts then target.
    OpenInRoot {
        root: FdRef,
        path: PathBuf,
        make: Make,
        tag: FdTag,
    },
    /// Opens a bind source once (O_PATH); with `within`, the resolved path
    /// of that fd (readlink of /proc/self/fd/N) must lie under `within`
    /// (resolved the same way), else EACCES. Mounts take the fd, so the check
    /// and the mount see the same object.
    OpenBindSource {
        path: PathBuf,
        within: Option<PathBuf>,
        tag: FdTag,
    },
    /// Opens a host device node (O_PATH) and checks with fstat that it is a
    /// `kind` node of `major:minor`, else ENODEV.
    OpenDevice {
        path: PathBuf,
        kind: DeviceKind,
        major: u64,
        minor: u64,
        tag: FdTag,
    },
    /// Binds `source` onto `target` (both fds): open_tree(OPEN_TREE_CLONE,
    /// with AT_RECURSIVE when `recursive`), mount_setattr of `flags` (ro,
    /// nosuid, nodev, noexec, atime) on every mount of the detached copy,
    /// then move_mount onto `target`. The copy is never visible without its
    /// flags, and no submount is left without them.
    BindAt {
        source: FdRef,
        target: FdRef,
        recursive: bool,
        flags: u64,
    },
    /// mount_setattr(2) on the mount at `target`: set and clear `MS_*`-named
    /// attributes, on every submount too when `recursive`.
    SetMountAttr {
        target: PathBuf,
        set: u64,
        clear: u64,
        recursive: bool,
    },
    /// mount(2).
    Mount {
        source: Option<String>,
        target: PathBuf,
        fstype: Option<String>,
        flags: u64,
        data: Option<String>,
    },
    /// Bind remount read-only, keeping the locked flags the mount has.
    RemountReadonly { target: PathBuf },
    /// Bind a path onto itself and remount it read-only (nothing when missing).
    ReadonlyPath { path: PathBuf },
    /// umount2(2).
    Umount { target: PathBuf, flags: i32 },
    /// pivot_root(2).
    PivotRoot { new_root: PathBuf, put_old: PathBuf },
    /// chroot(2).
    Chroot { path: PathBuf },
    /// chdir(2).
    Chdir { path: PathBuf },
    /// setsid(2).
    SetSid,
    /// ioctl(fd, TIOCSCTTY).
    SetControllingTty { fd: FdRef },
    /// prctl(PR_SET_DUMPABLE, 0).
    NonDumpable,
    /// prctl(PR_SET_PDEATHSIG, SIGKILL): the kernel kills this process when
    /// its parent exits. Then the check against the race where the parent
    /// was gone before the prctl (no signal would ever come): see
    /// [`ParentLink`]; a parent found gone fails the op with ESRCH.
    DieWithParent { link: ParentLink },
    /// getpid(2) (the supervisor's pid, which a workload in the same PID
    /// namespace checks its parent against).
    GetPid,
    /// setrlimit(2).
    SetRlimit { kind: RlimitKind, soft: u64, hard: u64 },
    /// setgroups(2).
    SetGroups { groups: Vec<Gid> },
    /// setresgid(g, g, g).
    SetResGid { gid: Gid },
    /// setresuid(u, u, u).
    SetResUid { uid: Uid },
    /// prctl(PR_SET_KEEPCAPS).
    KeepCaps { on: bool },
    /// Raise the effective set to the permitted set (to hold CAP_SETPCAP for
    /// the bounding-set drops that follow).
    RaiseEffective,
    /// prctl(PR_CAPBSET_DROP) for each (unknown to the kernel: skipped).
    DropBounding { caps: Vec<Cap> },
    /// capset of one set.
    CapSet { set: CapSetKind, caps: BTreeSet<Cap> },
    /// Clear the ambient set and raise these.
    SetAmbient { caps: BTreeSet<Cap> },
    /// umask(2).
    Umask { mask: u32 },
    /// prctl(PR_SET_NO_NEW_PRIVS, 1).
    NoNewPrivs,
    /// ptrace(PTRACE_TRACEME): the parent (the supervisor) becomes this
    /// process's tracer; its next execve stops it for the tracer
    /// (`super::trace`).
    TraceMe,
    /// seccomp(SECCOMP_SET_MODE_FILTER) of one program.
    SeccompLoad { filter: Rc<PreparedFilter> },
    /// execve(2); returns only on failure.
    Exec { prepared: Rc<PreparedExec> },
    /// Run one OCI hook of the plan (`super::hooks::run`): a child of this
    /// process, exec'd with exactly its path, argv and env, `state` (the
    /// OCI state JSON, status `status`) on its stdin; waited for, and killed
    /// after its timeout. A non-zero exit, a signal or the timeout fails.
    /// `inside`: a hook of the container's phases, exec'd by the supervisor
    /// (in the sandbox's namespaces) as [`InSandbox`] says.
    RunHook {
        hook: Rc<crate::plan::Hook>,
        status: &'static str,
        state: Rc<Vec<u8>>,
        inside: Option<Rc<InSandbox>>,
    },
}

/// How a `createContainer` or `startContainer` hook is exec'd by the
/// supervisor, inside the sandbox's namespaces and cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InSandbox {
    /// `createContainer`: an O_PATH fd on the hook's host path, opened by
    /// the launcher, exec'd with `execveat(AT_EMPTY_PATH)` (the one fd of
    /// the supervisor the hook keeps: a script's interpreter reads it as
    /// `/dev/fd/N`). `None`: the path, resolved in the sandbox
    /// (`startContainer`).
    pub exe: Option<FdRef>,
    /// Performed in the hook's process between its fork and its exec, in
    /// order: the workload's credentials, capabilities, no_new_privs and
    /// seccomp programs (a hook can do nothing the workload could not).
    pub setup: Vec<Op>,
}

/// What [`Op::OpenInRoot`] makes when the path is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Make {
    /// Nothing: the path must exist.
    Nothing,
    /// A directory (0755), and missing parents.
    Dir,
    /// A directory when this fd is one, else an empty file (0644); parents.
    Like(FdRef),
    /// A device node (mknodat; an existing entry is an error); parents.
    Node {
        kind: DeviceKind,
        mode: u32,
        major: u64,
        minor: u64,
    },
}

impl fmt::Display for Make {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Make::Nothing => f.write_str("existing"),
            Make::Dir => f.write_str("make dir"),
            Make::Like(fd) => write!(f, "make like {fd}"),
            Make::Node {
                kind,
                mode,
                major,
                minor,
            } => write!(f, "mknod {} {major}:{minor} {mode:#o}", kind_letter(*kind)),
        }
    }
}

fn kind_letter(k: DeviceKind) -> &'static str {
    if k == DeviceKind::Char {
        "c"
    } else {
        "b"
    }
}

/// Performs ops.
pub trait Backend {
    /// Performs one op.
    fn perform(&mut self, op: &Op) -> io::Result<Outcome>;
    /// Whether clone/fork really fork. When false (recording), the interpreter
    /// plays every actor in plan order.
    fn forks(&self) -> bool;
    /// Tells the backend which process the next ops run in (for recording).
    fn set_actor(&mut self, _actor: Actor) {}
    /// Performs [`Op::Spawn`]: runs `child` in a new process that shares
    /// this one's memory while this one waits, until the child execs or
    /// exits; returns the child's pid. `child` must end in exec or `_exit`,
    /// never return. An associated function, so no borrow of the backend is
    /// held while the child (which uses the backend too) runs. Backends that
    /// do not fork record [`Op::Spawn`] through `perform` instead.
    fn spawn(_child: &mut dyn FnMut() -> std::convert::Infallible) -> io::Result<Spawned>
    where
        Self: Sized,
    {
        Err(io::Error::from_raw_os_error(libc::ENOTSUP))
    }
}

/// How a mark of the control socketpair prints.
fn mark_name(mark: u8) -> &'static str {
    use crate::exec::interp::{COMMIT_MARK, HOOKS_DONE_MARK, HOOKS_MARK, READY_MARK};
    match mark {
        READY_MARK => "ready",
        COMMIT_MARK => "commit",
        HOOKS_MARK => "runtime-hooks",
        HOOKS_DONE_MARK => "hooks-done",
        _ => "unknown",
    }
}

fn ns_list(kinds: &[NsKind]) -> String {
    kinds.iter().map(|k| k.proc_name()).collect::<Vec<_>>().join(",")
}

/// Mount flags by name, for printing.
const MS_NAMES: [(u64, &str); 18] = [
    (libc::MS_RDONLY, "ro"),
    (libc::MS_NOSUID, "nosuid"),
    (libc::MS_NODEV, "nodev"),
    (libc::MS_NOEXEC, "noexec"),
    (libc::MS_SYNCHRONOUS, "sync"),
    (libc::MS_REMOUNT, "remount"),
    (libc::MS_MANDLOCK, "mand"),
    (libc::MS_DIRSYNC, "dirsync"),
    (libc::MS_NOATIME, "noatime"),
    (libc::MS_NODIRATIME, "nodiratime"),
    (libc::MS_BIND, "bind"),
    (libc::MS_MOVE, "move"),
    (libc::MS_REC, "rec"),
    (libc::MS_PRIVATE, "private"),
    (libc::MS_SLAVE, "slave"),
    (libc::MS_SHARED, "shared"),
    (libc::MS_UNBINDABLE, "unbindable"),
    (libc::MS_STRICTATIME, "strictatime"),
];

/// Prints mount flags as `bind|rec`.
pub fn mount_flags_text(flags: u64) -> String {
    let mut v: Vec<&str> = MS_NAMES
        .iter()
        .filter(|(b, _)| flags & b != 0)
        .map(|(_, n)| *n)
        .collect();
    if flags & libc::MS_RELATIME != 0 {
        v.push("relatime");
    }
    if v.is_empty() {
        "0".into()
    } else {
        v.join("|")
    }
}

fn caps_text<'a>(caps: impl IntoIterator<Item = &'a Cap>) -> String {
    let v: Vec<String> = caps.into_iter().map(|c| c.to_string()).collect();
    format!("[{}]", v.join(","))
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Op::*;
        match self {
            MkdirAll { path } => write!(f, "mkdir -p {}", path.display()),
            MakeDirs { path, mode } => write!(f, "mkdir -p {} {mode:#o} (exactly, for each made)", path.display()),
            Mkdir { path, mode } => write!(f, "mkdir {} {mode:#o}", path.display()),
            WriteFile { path, data } => write!(f, "write {} {data:?}", path.display()),
            WritePid { fd, proc } => write!(f, "write {fd} \"supervisor {proc}\\n\""),
            CreateState { path, record, .. } => {
                write!(f, "create {} 0600 locked {record:?}", path.display())
            }
            JoinCgroup { fd, file } => write!(f, "write {fd} \"0\" (join {})", file.display()),
            WriteProcFile { proc, name, data } => write!(f, "write /proc/{proc}/{name} {data:?}"),
            Rmdir { path } => write!(f, "rmdir {}", path.display()),
            Unlink { path } => write!(f, "unlink {}", path.display()),
            ReadFile { path } => write!(f, "read {}", path.display()),
            OpenRootDir { path, tag } => write!(
                f,
                "open {} O_PATH|O_DIRECTORY, no symlinks (openat2 RESOLVE_NO_SYMLINKS) -> {}",
                path.display(),
                FdRef { raw: 0, tag: *tag }
            ),
            ExecSelf { exe, handover, keep } => write!(
                f,
                "re-exec {exe} (capabilities kept in ambient; fds {keep:?} kept) with handover {handover}"
            ),
            SymlinkAt { dir, name, target } => write!(
                f,
                "symlink {}/{} -> {} (unless it exists)",
                dir,
                Path::new(name).display(),
                target.display()
            ),
            BindOntoItself { fd, tag } => write!(
                f,
                "bind {fd} onto itself, recursive (open_tree + move_mount) -> {}",
                FdRef { raw: 0, tag: *tag }
            ),
            Open { path, flags, mode, tag } => {
                write!(
                    f,
                    "open {} {} mode {mode:#o} -> {}",
                    path.display(),
                    open_flags_text(*flags),
                    FdRef { raw: 0, tag: *tag }
                )
            }
            OpenNs { path, kind, tag } => write!(
                f,
                "open {} O_PATH, check nsfs and NS_GET_NSTYPE {}, reopen O_RDONLY -> {}",
                path.display(),
                kind.proc_name(),
                FdRef { raw: 0, tag: *tag }
            ),
            SocketPair { tag } => write!(
                f,
                "socketpair unix seqpacket -> {} <launcher end>",
                FdRef { raw: 0, tag: *tag }
            ),
            Pipe { tag } => write!(f, "pipe -> <{tag}>"),
            Memfd { name, tag } => write!(f, "memfd_create {name} -> {}", FdRef { raw: 0, tag: *tag }),
            FillSealed { fd, data } => write!(f, "write {} bytes to {fd}, seal", data.len()),
            OpenPty => f.write_str("openpt, grantpt, unlockpt, open slave -> <pty master> <pty slave>"),
            SendFd { path, fd } => write!(f, "send {fd} to {} (SCM_RIGHTS)", path.display()),
            TtyRaw { fd } => write!(f, "if {fd} is a terminal: save its mode, make it raw"),
            TtyRestore { fd, .. } => write!(f, "restore the terminal mode of {fd}"),
            CopyWinsize { master } => write!(f, "copy the caller's window size to {master}"),
            RelayPty { master, stdin } => write!(
                f,
                "relay {}{master} -> stdout until a signal (SIGWINCH: window size)",
                if *stdin { "stdin -> " } else { "" }
            ),
            DrainPty { master } => write!(f, "copy the rest of {master} to stdout (until EIO)"),
            OpenKvm {
                api_version,
                extensions,
                tag,
            } => write!(
                f,
                "open /dev/kvm, check api {api_version} extensions [{}] -> {}",
                extensions.join(","),
                FdRef { raw: 0, tag: *tag }
            ),
            Close { fd } => write!(f, "close {fd}"),
            DupHigh { fd, min } => write!(f, "dup {fd} to >= {min} (cloexec)"),
            Dup2 { from, to } => write!(f, "dup2 {from} -> {to}"),
            CloseAllExcept { keep } => {
                let k: Vec<String> = keep.iter().map(|n| n.to_string()).collect();
                write!(f, "close_range all except [{}]", k.join(","))
            }
            SetNs { fd, kind } => write!(f, "setns {fd} {}", kind.proc_name()),
            Unshare { kinds } => write!(f, "unshare {}", ns_list(kinds)),
            BlockSignals => f.write_str("block signals INT,TERM,HUP,CHLD"),
            UnblockSignals => f.write_str("unblock signals INT,TERM,HUP,CHLD"),
            ResetSignals => f.write_str("unblock all signals, SIGPIPE default"),
            Clone { new, who } => write!(f, "clone new [{}] -> {}", ns_list(new), ProcRef { pid: 0, who: *who }),
            Spawn { who } => write!(f, "spawn vm|vfork -> {}", ProcRef { pid: 0, who: *who }),
            Release { fd } => write!(f, "release child via {fd}"),
            AwaitRelease { fd } => write!(f, "await release on {fd}"),
            Yield => f.write_str("sched_yield"),
            AwaitEof { fd } => write!(f, "read {fd} until the launcher's close (EOF)"),
            SendFilters { fd, count, data } => {
                write!(f, "send {count} seccomp program(s), {} bytes, on {fd}", data.len())
            }
            SendReport { fd, .. } => write!(f, "send failure report on {fd}"),
            RecvReport { fd } => write!(f, "read report from {fd}"),
            WaitSignal => f.write_str("sigwaitinfo"),
            Reap { proc } => write!(f, "waitpid {proc} WNOHANG"),
            WaitExit { proc } => write!(f, "waitpid {proc}"),
            Kill { proc, signal } => write!(f, "kill {proc} {}", signal_name(*signal)),
            Exit { code } => write!(f, "_exit {code}"),
            CreateSandboxDir { root, id, tag } => write!(
                f,
                "mkdir {}/{id} 0700 (exclusive), lock it -> {}",
                root.display(),
                FdRef { raw: 0, tag: *tag }
            ),
            BindControlSocket { dir, path, tag } => write!(
                f,
                "bind, listen {} 0600 (in {dir}) -> {}",
                path.display(),
                FdRef { raw: 0, tag: *tag }
            ),
            WriteStateFile { path, name, data, .. } => {
                write!(f, "write {}/{name} ({} bytes, atomically)", path.display(), data.len())
            }
            WriteRecord { path, record, pid, .. } => write!(
                f,
                "write {}/state.json (status {}, supervisor {pid}, atomically)",
                path.display(),
                record.status.as_str()
            ),
            WritePidFile { path, pid } => write!(f, "write pid file {} \"{pid}\"", path.display()),
            SendMark { fd, mark } => write!(f, "send {:?} on {fd}", *mark as char),
            AwaitMark {
                fd,
                proc,
                timeout_ms,
                mark,
            } => {
                write!(
                    f,
                    "await the {} mark or a report on {fd} (<= {timeout_ms} ms, while {proc} lives)",
                    mark_name(*mark)
                )
            }
            AwaitCommit { fd, mark } => write!(
                f,
                "await the launcher's {} on {fd} (EOF: it died, exit)",
                mark_name(*mark)
            ),
            AwaitServing { path, proc, timeout_ms } => {
                write!(
                    f,
                    "connect {}, hello (<= {timeout_ms} ms, while {proc} lives)",
                    path.display()
                )
            }
            ClearDeathSignal => f.write_str("prctl PR_SET_PDEATHSIG 0 (outlive the launcher)"),
            SignalFd { tag } => write!(f, "signalfd INT,TERM,HUP,CHLD -> {}", FdRef { raw: 0, tag: *tag }),
            Serve { listener } => write!(f, "serve control calls on {listener} (create ends here; start goes on)"),
            RunHook {
                hook, status, inside, ..
            } => {
                write!(f, "run hook {} ({}): ", hook.phase.name(), hook.from)?;
                match inside.as_ref().and_then(|i| i.exe) {
                    Some(fd) => write!(f, "fork, in the sandbox: execveat {fd} ({})", hook.path.display())?,
                    None if inside.is_some() => write!(f, "fork, in the sandbox: exec {}", hook.path.display())?,
                    None => write!(f, "exec {}", hook.path.display())?,
                }
                write!(
                    f,
                    " argv {:?} env {:?}, stdin the OCI state (status {status}), ",
                    hook.args, hook.env,
                )?;
                if let Some(i) = inside {
                    f.write_str("before its exec: ")?;
                    for op in &i.setup {
                        write!(f, "{op}; ")?;
                    }
                }
                match hook.timeout_s {
                    Some(t) => write!(f, "killed after {t} s"),
                    None => f.write_str("no timeout"),
                }
            }
            ReapRaw => f.write_str("waitpid -1 WNOHANG"),
            ShedMemory => f.write_str("trim the heap, madvise DONTNEED the stack below this frame"),
            OpenPtyIn { ptmx } => write!(
                f,
                "open {}, unlock, TIOCGPTPEER -> <pty master> <pty slave>",
                ptmx.display()
            ),
            RemoveSandboxDir { path } => write!(f, "remove {} and its files", path.display()),
            Rewrite { fd, data } => write!(f, "rewrite {fd} with {} bytes", data.len()),
            SetHostname { name } => write!(f, "sethostname {name:?}"),
            LoopbackUp => f.write_str("ioctl SIOCSIFFLAGS lo up"),
            MaskPath { path } => write!(f, "mask {}", path.display()),
            MountPoint { path, like } => match like {
                Some(l) => write!(f, "make mount point {} like {}", path.display(), l.display()),
                None => write!(f, "make mount point {} (dir)", path.display()),
            },
            Mount {
                source,
                target,
                fstype,
                flags,
                data,
            } => write!(
                f,
                "mount {} {} type {} flags {} data {:?}",
                source.as_deref().unwrap_or("none"),
                target.display(),
                fstype.as_deref().unwrap_or("none"),
                mount_flags_text(*flags),
                data.as_deref().unwrap_or("")
            ),
            ReadonlyPath { path } => write!(f, "bind {0} {0}, remount ro", path.display()),
            RemountReadonly { target } => write!(f, "remount {} bind,ro (keeping locked flags)", target.display()),
            Umount { target, flags } => write!(
                f,
                "umount2 {} {}",
                target.display(),
                if *flags == libc::MNT_DETACH {
                    "MNT_DETACH".to_string()
                } else {
                    flags.to_string()
                }
            ),
            PivotRoot { new_root, put_old } => {
                write!(f, "pivot_root {} {}", new_root.display(), put_old.display())
            }
            Chroot { path } => write!(f, "chroot {}", path.display()),
            Chdir { path } => write!(f, "chdir {}", path.display()),
            OpenInRoot { root, path, make, tag } => write!(
                f,
                "resolve {} in root {root} ({make}) -> {}",
                path.display(),
                FdRef { raw: 0, tag: *tag }
            ),
            OpenBindSource { path, within, tag } => {
                write!(f, "open {} path", path.display())?;
                if let Some(w) = within {
                    write!(f, ", check it resolves under {}", w.display())?;
                }
                write!(f, " -> {}", FdRef { raw: 0, tag: *tag })
            }
            OpenDevice {
                path,
                kind,
                major,
                minor,
                tag,
            } => write!(
                f,
                "open {} path, check it is {} {major}:{minor} -> {}",
                path.display(),
                kind_letter(*kind),
                FdRef { raw: 0, tag: *tag }
            ),
            BindAt {
                source,
                target,
                recursive,
                flags,
            } => write!(
                f,
                "bind {source} onto {target}{} (open_tree, set {} on every mount, move_mount)",
                if *recursive { " recursive" } else { "" },
                mount_flags_text(*flags)
            ),
            SetMountAttr {
                target,
                set,
                clear,
                recursive,
            } => write!(
                f,
                "mount_setattr {} set {} clear {}{}",
                target.display(),
                mount_flags_text(*set),
                mount_flags_text(*clear),
                if *recursive { " recursive" } else { "" }
            ),
            SetSid => f.write_str("setsid"),
            SetControllingTty { fd } => write!(f, "ioctl {fd} TIOCSCTTY"),
            NonDumpable => f.write_str("prctl PR_SET_DUMPABLE 0"),
            DieWithParent { link } => write!(f, "prctl PR_SET_PDEATHSIG SIGKILL ({link})"),
            GetPid => f.write_str("getpid"),
            SetRlimit { kind, soft, hard } => {
                write!(f, "setrlimit {kind} {} {}", lim(*soft), lim(*hard))
            }
            SetGroups { groups } => {
                let g: Vec<String> = groups.iter().map(|g| g.0.to_string()).collect();
                write!(f, "setgroups [{}]", g.join(","))
            }
            SetResGid { gid } => write!(f, "setresgid {0} {0} {0}", gid.0),
            SetResUid { uid } => write!(f, "setresuid {0} {0} {0}", uid.0),
            KeepCaps { on } => write!(f, "prctl PR_SET_KEEPCAPS {}", u8::from(*on)),
            RaiseEffective => f.write_str("capset effective = permitted"),
            DropBounding { caps } => write!(f, "drop bounding {}", caps_text(caps)),
            CapSet { set, caps } => write!(f, "capset {} {}", format!("{set:?}").to_lowercase(), caps_text(caps)),
            SetAmbient { caps } => write!(f, "ambient clear, raise {}", caps_text(caps)),
            Umask { mask } => write!(f, "umask {mask:#05o}"),
            NoNewPrivs => f.write_str("prctl PR_SET_NO_NEW_PRIVS 1"),
            TraceMe => f.write_str("ptrace PTRACE_TRACEME"),
            SeccompLoad { filter } => {
                write!(
                    f,
                    "seccomp load filter: {} ({} instructions)",
                    filter.describe,
                    filter.program.len()
                )
            }
            Exec { prepared } => {
                let a: Vec<String> = prepared
                    .argv
                    .iter()
                    .map(|s| format!("{:?}", s.to_string_lossy()))
                    .collect();
                let p: Vec<String> = prepared
                    .candidates
                    .iter()
                    .map(|s| s.to_string_lossy().into_owned())
                    .collect();
                write!(
                    f,
                    "execve [{}] argv [{}] ({} env)",
                    p.join(" | "),
                    a.join(", "),
                    prepared.envp.len()
                )
            }
        }
    }
}

fn lim(v: u64) -> String {
    if v == u64::MAX {
        "unlimited".into()
    } else {
        v.to_string()
    }
}

/// The kernel's access-mode bits of open's flags. (musl's `O_ACCMODE` also
/// takes in `O_PATH`, which would print an `O_PATH` open as read-write.)
const ACCMODE: i32 = 0o3;

fn open_flags_text(flags: i32) -> String {
    let mut v = vec![match flags & ACCMODE {
        _ if flags & libc::O_PATH != 0 => "path",
        libc::O_RDONLY => "rdonly",
        libc::O_WRONLY => "wronly",
        _ => "rdwr",
    }];
    for (b, n) in [
        (libc::O_CREAT, "creat"),
        (libc::O_EXCL, "excl"),
        (libc::O_APPEND, "append"),
        (libc::O_TRUNC, "trunc"),
        (libc::O_DIRECTORY, "directory"),
    ] {
        if flags & b != 0 {
            v.push(n);
        }
    }
    v.join("|")
}

/// The name of a signal (`SIGTERM`), or its number.
pub fn signal_name(sig: i32) -> String {
    nix::sys::signal::Signal::try_from(sig)
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|_| sig.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_print_without_machine_numbers() {
        let op = Op::WriteProcFile {
            proc: ProcRef {
                pid: 4242,
                who: Who::Supervisor,
            },
            name: "uid_map",
            data: "65534 65534 1".into(),
        };
        assert_eq!(op.to_string(), "write /proc/<supervisor>/uid_map \"65534 65534 1\"");
        let op = Op::Dup2 {
            from: FdRef {
                raw: 17,
                tag: FdTag::Role(FdRole::Log),
            },
            to: 3,
        };
        assert_eq!(op.to_string(), "dup2 <log> -> 3");
        let op = Op::Mount {
            source: None,
            target: "/".into(),
            fstype: None,
            flags: libc::MS_REC | libc::MS_PRIVATE,
            data: None,
        };
        assert_eq!(op.to_string(), "mount none / type none flags rec|private data \"\"");
    }
}
