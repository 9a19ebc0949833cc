//! The control protocol's messages and their wire form, with no I/O: what a
//! client may ask a sandbox's supervisor ([`Request`]), what it answers
//! ([`Reply`]), and the pure encoders and decoders both sides use.
//!
//! A frame is an 8-byte header — the magic `SBX`, the protocol version (one
//! byte), the body length (u32, big-endian) — followed by a JSON body of
//! exactly that length. The header's layout never changes between versions,
//! so a peer can always read an error reply about a version it does not
//! speak. [`decode`] turns one complete frame into a [`Request`] and never
//! panics, never reads past its input and allocates at most in proportion to
//! a body already bounded by [`MAX_REQUEST`]: it is what the fuzz and
//! mutation tests drive. See docs/control.md.

use std::borrow::Cow;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The protocol version this build speaks (the header's fourth byte).
pub const PROTOCOL_VERSION: u8 = 1;
/// The first three bytes of every frame.
pub const MAGIC: [u8; 3] = *b"SBX";
/// Header length: magic (3), version (1), body length (4, big-endian).
pub const HEADER_LEN: usize = 8;
/// The largest request body a supervisor accepts (an `exec` with an OCI
/// process is the biggest request; 64 KiB holds a process.json with a few
/// hundred environment variables).
pub const MAX_REQUEST: usize = 64 * 1024;
/// The largest reply body a client accepts (`ps` and `stacks` of a busy
/// sandbox are the biggest replies).
pub const MAX_REPLY: usize = 4 * 1024 * 1024;
/// The most file descriptors one frame may carry (SCM_RIGHTS): an `exec`'s
/// stdin, stdout and stderr.
pub const MAX_FDS: usize = 3;
/// How much of an unknown call's name an error repeats.
const NAME_ECHO: usize = 64;

/// A process id as the sandbox sees it (its own PID namespace), always > 0.
pub type SandboxPid = i32;

/// One call to a sandbox's supervisor. The JSON body is an object whose
/// `call` field names the variant (`{"call":"wait_pid","pid":7}`); unknown
/// fields are refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "call", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// The version handshake: the first call on every connection (anything
    /// else first is `out_of_order`); the readiness probe of `create`.
    Hello {
        /// The client's name and version, for the supervisor's log.
        client: String,
    },
    /// The sandbox's live status.
    State {},
    /// Start the root container's workload (valid once, in `created`).
    Start {},
    /// Start another process inside the running sandbox, compiled by the
    /// supervisor against the sandbox's policy like the workload was.
    Exec {
        /// The OCI process (runc's `exec --process` file).
        process: Box<oci_spec::runtime::Process>,
        /// Where its stdio comes from.
        stdio: ExecStdio,
    },
    /// Signal the root container's workload; with `all`, every process of
    /// the sandbox.
    SignalContainer {
        /// Signal number (1–64).
        signal: i32,
        /// Every process, not just the workload.
        all: bool,
    },
    /// Signal one process; with `foreground`, the foreground process group
    /// of its controlling terminal instead.
    SignalProcess {
        /// The process, by its pid inside the sandbox.
        pid: SandboxPid,
        /// Signal number (1–64).
        signal: i32,
        /// The terminal's foreground process group instead of the process.
        foreground: bool,
    },
    /// Block until the workload ends; the reply is its exit status.
    Wait {},
    /// Block until process `pid` (started by `exec`) ends.
    WaitPid {
        /// The process, by its pid inside the sandbox.
        pid: SandboxPid,
    },
    /// The sandbox's processes.
    Ps {},
    /// One sample of the sandbox cgroup's statistics (`events` polls this).
    Stats {},
    /// Freeze every process of the sandbox.
    Pause {},
    /// Thaw a paused sandbox.
    Resume {},
    /// Every process's state, wait channel and kernel stack, and the
    /// supervisor's own state.
    Stacks {},
    /// Checkpoint the sandbox (CRIU).
    Checkpoint {
        /// Where the images go.
        image_path: PathBuf,
        /// Keep the sandbox running afterwards.
        leave_running: bool,
    },
    /// Restore a checkpoint into this (created) sandbox (CRIU).
    Restore {
        /// Where the images are.
        image_path: PathBuf,
    },
    /// Kill everything in the sandbox; the supervisor exits after replying.
    Destroy {},
}

/// Where an `exec`'d process's stdio comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecStdio {
    /// Three fds (stdin, stdout, stderr) travel with the request frame.
    Attached,
    /// `/dev/null` for all three (`exec --detach` without a terminal).
    Null,
    /// The supervisor makes a pty; its master travels back with the reply.
    Pty,
}

impl Request {
    /// Every call's name, as the `call` field spells it, in declaration order.
    pub const CALLS: [&'static str; 16] = [
        "hello",
        "state",
        "start",
        "exec",
        "signal_container",
        "signal_process",
        "wait",
        "wait_pid",
        "ps",
        "stats",
        "pause",
        "resume",
        "stacks",
        "checkpoint",
        "restore",
        "destroy",
    ];

    /// This call's name, as the `call` field spells it.
    pub fn name(&self) -> &'static str {
        Self::CALLS[match self {
            Request::Hello { .. } => 0,
            Request::State {} => 1,
            Request::Start {} => 2,
            Request::Exec { .. } => 3,
            Request::SignalContainer { .. } => 4,
            Request::SignalProcess { .. } => 5,
            Request::Wait {} => 6,
            Request::WaitPid { .. } => 7,
            Request::Ps {} => 8,
            Request::Stats {} => 9,
            Request::Pause {} => 10,
            Request::Resume {} => 11,
            Request::Stacks {} => 12,
            Request::Checkpoint { .. } => 13,
            Request::Restore { .. } => 14,
            Request::Destroy {} => 15,
        }]
    }

    /// How many fds must travel with this request's frame.
    pub fn fds_expected(&self) -> usize {
        match self {
            Request::Exec {
                stdio: ExecStdio::Attached,
                ..
            } => 3,
            _ => 0,
        }
    }

    /// Checks the values serde cannot: signal numbers and pids in range,
    /// paths absolute.
    pub fn validate(&self) -> Result<(), ProtocolError> {
        let bad = |field: &'static str, reason: String| Err(ProtocolError::InvalidArgument { field, reason });
        match self {
            Request::SignalContainer { signal, .. } | Request::SignalProcess { signal, .. }
                if !(1..=MAX_SIGNAL).contains(signal) =>
            {
                bad("signal", format!("{signal} is not a signal number (1–{MAX_SIGNAL})"))
            }
            Request::SignalProcess { pid, .. } | Request::WaitPid { pid } if *pid <= 0 => {
                bad("pid", format!("{pid} is not a process id (must be > 0)"))
            }
            Request::Checkpoint { image_path, .. } | Request::Restore { image_path } if !image_path.is_absolute() => {
                bad(
                    "image_path",
                    format!("{} is not an absolute path", image_path.display()),
                )
            }
            Request::Exec { process, .. } if process.args().as_ref().is_none_or(|a| a.is_empty()) => {
                bad("process.args", "is empty: there is nothing to run".into())
            }
            Request::Exec { process, stdio } if process.terminal().unwrap_or(false) != (*stdio == ExecStdio::Pty) => {
                bad(
                    "stdio",
                    format!(
                        "{stdio:?} with process.terminal {:?}: a pty exactly when the process asks for a terminal",
                        process.terminal()
                    ),
                )
            }
            _ => Ok(()),
        }
    }
}

/// The highest signal number on Linux (SIGRTMAX).
pub const MAX_SIGNAL: i32 = 64;

/// A sandbox's status, as OCI's state reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Set up; the workload has not been started.
    Created,
    /// The workload was started and has not ended.
    Running,
    /// Frozen (freezer cgroup).
    Paused,
    /// The workload ended, or the supervisor is gone.
    Stopped,
}

impl Status {
    /// The lowercase name (`created`).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "how", rename_all = "snake_case", deny_unknown_fields)]
pub enum ExitStatus {
    /// It called exit with this code.
    Exited {
        /// The exit code (0–255).
        code: i32,
    },
    /// A signal ended it.
    Signaled {
        /// The signal number.
        signal: i32,
        /// Whether it dumped core.
        core_dumped: bool,
    },
}

impl ExitStatus {
    /// From a raw `wait` status; `None` for a stopped or continued process.
    pub fn from_raw(status: i32) -> Option<ExitStatus> {
        if libc::WIFEXITED(status) {
            Some(ExitStatus::Exited {
                code: libc::WEXITSTATUS(status),
            })
        } else if libc::WIFSIGNALED(status) {
            Some(ExitStatus::Signaled {
                signal: libc::WTERMSIG(status),
                core_dumped: libc::WCOREDUMP(status),
            })
        } else {
            None
        }
    }

    /// The shell's number for it: the code, or 128+N for signal N (what
    /// `apply` and `run` exit with).
    pub fn shell_status(self) -> i32 {
        match self {
            ExitStatus::Exited { code } => code,
            ExitStatus::Signaled { signal, .. } => 128 + signal,
        }
    }
}

/// One process of the sandbox (`ps`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessInfo {
    /// Its pid inside the sandbox.
    pub pid: SandboxPid,
    /// Its parent's pid inside the sandbox.
    pub ppid: SandboxPid,
    /// Its real uid as the sandbox sees it.
    pub uid: u32,
    /// Its state letter (`R`, `S`, `D`, `Z`, `T`, ...).
    pub state: String,
    /// Its argv (its `comm` in brackets when argv is empty, as ps does).
    pub args: Vec<String>,
}

/// One process's stack and state (`stacks`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessStack {
    /// Its pid inside the sandbox.
    pub pid: SandboxPid,
    /// Its `comm`.
    pub command: String,
    /// Its state letter.
    pub state: String,
    /// The kernel function it sleeps in, where readable.
    pub wchan: Option<String>,
    /// `/proc/PID/stack`, where readable (root in the initial namespace only).
    pub kernel_stack: Option<String>,
}

/// The supervisor's own state (`stacks`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupervisorState {
    /// The sandbox's status as the supervisor holds it.
    pub status: Status,
    /// Connected control clients, this one included.
    pub clients: u32,
    /// Calls parked until a process ends (`wait`, `wait_pid`).
    pub parked: u32,
    /// Children not yet reaped.
    pub children: u32,
}

/// One sample of the sandbox cgroup's statistics, in runc's `events` layout
/// (field names as runc's JSON spells them). A value the host does not
/// provide is absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Stats {
    /// CPU time.
    pub cpu: CpuStats,
    /// Memory.
    pub memory: MemoryStats,
    /// Process count.
    pub pids: PidsStats,
    /// Block I/O bytes per device and operation.
    pub blkio: Vec<BlkioEntry>,
}

/// CPU time of the sandbox's cgroup.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CpuStats {
    /// Total CPU time, ns.
    pub total_ns: Option<u64>,
    /// User CPU time, ns.
    pub user_ns: Option<u64>,
    /// Kernel CPU time, ns.
    pub kernel_ns: Option<u64>,
    /// Periods in which the quota throttled it.
    pub throttled_periods: Option<u64>,
    /// Time throttled, ns.
    pub throttled_ns: Option<u64>,
}

/// Memory of the sandbox's cgroup.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MemoryStats {
    /// Bytes in use.
    pub usage: Option<u64>,
    /// Peak bytes in use.
    pub max_usage: Option<u64>,
    /// The limit (absent when unlimited).
    pub limit: Option<u64>,
    /// Times the limit was hit.
    pub failcnt: Option<u64>,
    /// OOM kills so far (`events` reports a rise as an `oom` event).
    pub oom_kills: Option<u64>,
}

/// Process count of the sandbox's cgroup.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PidsStats {
    /// Processes now.
    pub current: Option<u64>,
    /// The limit (absent when unlimited).
    pub limit: Option<u64>,
}

/// Bytes moved for one device and operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlkioEntry {
    /// Device major number.
    pub major: u64,
    /// Device minor number.
    pub minor: u64,
    /// `Read`, `Write`, ...
    pub op: String,
    /// Bytes.
    pub value: u64,
}

/// What a failed call's error reply says went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The body is not a request (bad JSON, a missing or wrong field), or the
    /// header's magic is wrong.
    Malformed,
    /// The header announces a body above the limit.
    Oversized,
    /// The frame ended early (the client half-closed mid-frame).
    Truncated,
    /// The header's version is not one this supervisor speaks.
    UnsupportedVersion,
    /// The frame did not arrive within the read deadline.
    Timeout,
    /// The frame carried a different number of fds than the call needs.
    FdMismatch,
    /// A call name this supervisor does not know (a newer client).
    UnknownCall,
    /// A value out of range (signal number, pid, path).
    InvalidArgument,
    /// A call before `hello`, or `hello` twice.
    OutOfOrder,
    /// The peer is neither root nor the sandbox's creator.
    PermissionDenied,
    /// Too many clients at once; try again.
    Busy,
    /// Not valid in the sandbox's status (`start` twice, `exec` into a paused
    /// sandbox, `pause` of a stopped one). Nothing changed.
    WrongState,
    /// No such process in the sandbox.
    NoSuchProcess,
    /// This host cannot do it (checkpoint and restore without a working
    /// CRIU); nothing changed.
    Unsupported,
    /// The host operation failed; the message names it and the OS error.
    Failed,
}

impl ErrorKind {
    /// Every kind, in declaration order (docs/control.md lists each).
    pub const ALL: [ErrorKind; 15] = [
        ErrorKind::Malformed,
        ErrorKind::Oversized,
        ErrorKind::Truncated,
        ErrorKind::UnsupportedVersion,
        ErrorKind::Timeout,
        ErrorKind::FdMismatch,
        ErrorKind::UnknownCall,
        ErrorKind::InvalidArgument,
        ErrorKind::OutOfOrder,
        ErrorKind::PermissionDenied,
        ErrorKind::Busy,
        ErrorKind::WrongState,
        ErrorKind::NoSuchProcess,
        ErrorKind::Unsupported,
        ErrorKind::Failed,
    ];

    /// The name the `kind` field spells.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Malformed => "malformed",
            ErrorKind::Oversized => "oversized",
            ErrorKind::Truncated => "truncated",
            ErrorKind::UnsupportedVersion => "unsupported_version",
            ErrorKind::Timeout => "timeout",
            ErrorKind::FdMismatch => "fd_mismatch",
            ErrorKind::UnknownCall => "unknown_call",
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::OutOfOrder => "out_of_order",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::Busy => "busy",
            ErrorKind::WrongState => "wrong_state",
            ErrorKind::NoSuchProcess => "no_such_process",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Failed => "failed",
        }
    }
}

/// A supervisor's answer to one request. The JSON body is an object whose
/// `reply` field names the variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case", deny_unknown_fields)]
pub enum Reply {
    /// Answer to `hello`.
    Hello {
        /// The protocol version the supervisor speaks (the same as the
        /// header's).
        protocol: u8,
        /// The supervisor's program name and version.
        server: String,
        /// The sandbox id.
        sandbox: String,
        /// Its status.
        status: Status,
    },
    /// The call was done (`start`, `signal_*`, `pause`, `resume`, `destroy`).
    Done,
    /// Answer to `state`.
    State {
        /// Status.
        status: Status,
        /// The workload's pid inside the sandbox, once started.
        workload_pid: Option<SandboxPid>,
        /// How the workload ended, once it has.
        exit: Option<ExitStatus>,
    },
    /// Answer to `exec`: the new process (a pty master travels with this
    /// frame when `stdio` was `pty`).
    Exec {
        /// Its pid inside the sandbox.
        pid: SandboxPid,
    },
    /// Answer to `wait` and `wait_pid`.
    Exited {
        /// The process that ended.
        pid: SandboxPid,
        /// How.
        exit: ExitStatus,
    },
    /// Answer to `ps`.
    Processes {
        /// Every process of the sandbox, by pid.
        processes: Vec<ProcessInfo>,
    },
    /// Answer to `stats`.
    Stats {
        /// One sample.
        stats: Stats,
    },
    /// Answer to `stacks`.
    Stacks {
        /// The supervisor itself.
        supervisor: SupervisorState,
        /// Every other process of the sandbox, by pid.
        processes: Vec<ProcessStack>,
    },
    /// The call failed; nothing changed unless the message says so.
    Error {
        /// What kind of failure.
        kind: ErrorKind,
        /// One line: what was being done, on what, and why it failed.
        message: String,
    },
}

impl Reply {
    /// Every reply's name, as the `reply` field spells it, in declaration order.
    pub const NAMES: [&'static str; 9] = [
        "hello",
        "done",
        "state",
        "exec",
        "exited",
        "processes",
        "stats",
        "stacks",
        "error",
    ];

    /// This reply's name, as the `reply` field spells it.
    pub fn name(&self) -> &'static str {
        Self::NAMES[match self {
            Reply::Hello { .. } => 0,
            Reply::Done => 1,
            Reply::State { .. } => 2,
            Reply::Exec { .. } => 3,
            Reply::Exited { .. } => 4,
            Reply::Processes { .. } => 5,
            Reply::Stats { .. } => 6,
            Reply::Stacks { .. } => 7,
            Reply::Error { .. } => 8,
        }]
    }

    /// An error reply.
    pub fn error(kind: ErrorKind, message: impl Into<String>) -> Reply {
        Reply::Error {
            kind,
            message: message.into(),
        }
    }
}

/// Why bytes are not a valid frame or request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// Fewer bytes than the header, or than the header announces.
    #[error("truncated frame: {have} bytes of {need}")]
    Truncated {
        /// Bytes present.
        have: usize,
        /// Bytes the frame needs.
        need: usize,
    },
    /// The first three bytes are not `SBX`.
    #[error("not a control frame: magic {found:02x?} instead of \"SBX\"")]
    BadMagic {
        /// What was there.
        found: [u8; 3],
    },
    /// The header's version byte.
    #[error("protocol version {got} is not supported (this side speaks {PROTOCOL_VERSION})")]
    UnsupportedVersion {
        /// The version asked for.
        got: u8,
    },
    /// The header announces a body above the limit.
    #[error("frame body of {len} bytes is above the limit of {limit}")]
    Oversized {
        /// Announced length.
        len: u64,
        /// The limit.
        limit: usize,
    },
    /// Bytes after the announced body.
    #[error("{extra} bytes after the frame's body")]
    TrailingBytes {
        /// How many.
        extra: usize,
    },
    /// The body is not the JSON of a request (or reply).
    #[error("malformed body: {reason}")]
    Malformed {
        /// serde_json's message (with line and column).
        reason: String,
    },
    /// A well-formed body naming a call this side does not know.
    #[error("unknown call \"{call}\"")]
    UnknownCall {
        /// The name (cut to 64 bytes).
        call: String,
    },
    /// A value serde accepted but the call cannot take.
    #[error("invalid {field}: {reason}")]
    InvalidArgument {
        /// The field.
        field: &'static str,
        /// Why.
        reason: String,
    },
}

impl ProtocolError {
    /// The error reply's kind for this failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ProtocolError::Truncated { .. } => ErrorKind::Truncated,
            ProtocolError::BadMagic { .. } | ProtocolError::TrailingBytes { .. } | ProtocolError::Malformed { .. } => {
                ErrorKind::Malformed
            }
            ProtocolError::UnsupportedVersion { .. } => ErrorKind::UnsupportedVersion,
            ProtocolError::Oversized { .. } => ErrorKind::Oversized,
            ProtocolError::UnknownCall { .. } => ErrorKind::UnknownCall,
            ProtocolError::InvalidArgument { .. } => ErrorKind::InvalidArgument,
        }
    }

    /// Whether the frame boundary is lost with this failure (a bad header,
    /// a frame cut short), so the connection cannot go on after the reply.
    /// A body that does not decode leaves the boundary intact.
    pub fn loses_framing(&self) -> bool {
        matches!(
            self,
            ProtocolError::Truncated { .. }
                | ProtocolError::BadMagic { .. }
                | ProtocolError::UnsupportedVersion { .. }
                | ProtocolError::Oversized { .. }
        )
    }

    /// The error reply for this failure.
    pub fn to_reply(&self) -> Reply {
        Reply::error(self.kind(), self.to_string())
    }
}

/// Checks a frame header and returns the body length it announces (at most
/// `limit`). Magic first, then version, then length, so a peer of another
/// version is told about the version rather than the size.
pub fn parse_header(header: &[u8; HEADER_LEN], limit: usize) -> Result<usize, ProtocolError> {
    let found = [header[0], header[1], header[2]];
    if found != MAGIC {
        return Err(ProtocolError::BadMagic { found });
    }
    if header[3] != PROTOCOL_VERSION {
        return Err(ProtocolError::UnsupportedVersion { got: header[3] });
    }
    let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    if len as u64 > limit as u64 {
        return Err(ProtocolError::Oversized { len: len.into(), limit });
    }
    Ok(len as usize)
}

/// Splits one complete frame into its body, checking the header against
/// `limit` and the length against the input.
fn frame_body(frame: &[u8], limit: usize) -> Result<&[u8], ProtocolError> {
    let Some(header) = frame.first_chunk::<HEADER_LEN>() else {
        return Err(ProtocolError::Truncated {
            have: frame.len(),
            need: HEADER_LEN,
        });
    };
    let len = parse_header(header, limit)?;
    let need = HEADER_LEN + len;
    match frame.len().cmp(&need) {
        std::cmp::Ordering::Less => Err(ProtocolError::Truncated {
            have: frame.len(),
            need,
        }),
        std::cmp::Ordering::Greater => Err(ProtocolError::TrailingBytes {
            extra: frame.len() - need,
        }),
        std::cmp::Ordering::Equal => Ok(&frame[HEADER_LEN..]),
    }
}

/// Decodes one complete request frame (header and body, nothing more).
/// Pure: the fuzz target.
pub fn decode(frame: &[u8]) -> Result<Request, ProtocolError> {
    decode_request_body(frame_body(frame, MAX_REQUEST)?)
}

/// Decodes a request body whose header was already checked.
pub fn decode_request_body(body: &[u8]) -> Result<Request, ProtocolError> {
    let req: Request = serde_json::from_slice(body).map_err(|e| classify(body, &Request::CALLS, e))?;
    req.validate()?;
    Ok(req)
}

/// Decodes one complete reply frame (the client's side; limit [`MAX_REPLY`]).
pub fn decode_reply(frame: &[u8]) -> Result<Reply, ProtocolError> {
    decode_reply_body(frame_body(frame, MAX_REPLY)?)
}

/// Decodes a reply body whose header was already checked.
pub fn decode_reply_body(body: &[u8]) -> Result<Reply, ProtocolError> {
    serde_json::from_slice(body).map_err(|e| classify(body, &[], e))
}

/// Tells an unknown call (a well-formed object whose `call` names nothing
/// this side knows) from any other malformed body.
fn classify(body: &[u8], known: &[&str], e: serde_json::Error) -> ProtocolError {
    #[derive(Deserialize)]
    struct Named<'a> {
        #[serde(borrow)]
        call: Cow<'a, str>,
    }
    if !known.is_empty() {
        if let Ok(Named { call }) = serde_json::from_slice::<Named>(body) {
            if !known.contains(&call.as_ref()) {
                let mut cut = call.len().min(NAME_ECHO);
                while !call.is_char_boundary(cut) {
                    cut -= 1;
                }
                return ProtocolError::UnknownCall {
                    call: call[..cut].to_string(),
                };
            }
        }
    }
    ProtocolError::Malformed { reason: e.to_string() }
}

/// Appends one frame holding `body` to `out`.
fn frame_into(out: &mut Vec<u8>, body: &impl Serialize, limit: usize) -> Result<(), ProtocolError> {
    let start = out.len();
    out.extend_from_slice(&MAGIC);
    out.push(PROTOCOL_VERSION);
    out.extend_from_slice(&[0; 4]);
    serde_json::to_writer(&mut *out, body).map_err(|e| ProtocolError::Malformed { reason: e.to_string() })?;
    let len = out.len() - start - HEADER_LEN;
    if len > limit {
        out.truncate(start);
        return Err(ProtocolError::Oversized { len: len as u64, limit });
    }
    out[start + 4..start + HEADER_LEN].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(())
}

/// Appends a request's frame to `out`; refused above [`MAX_REQUEST`]
/// (nothing is appended then).
pub fn encode_request(req: &Request, out: &mut Vec<u8>) -> Result<(), ProtocolError> {
    frame_into(out, req, MAX_REQUEST)
}

/// Appends a reply's frame to `out`. A reply above [`MAX_REPLY`] becomes an
/// error reply saying so, which is always small.
pub fn encode_reply(reply: &Reply, out: &mut Vec<u8>) {
    if let Err(e) = frame_into(out, reply, MAX_REPLY) {
        let r = Reply::error(ErrorKind::Failed, format!("reply not sent: {e}"));
        frame_into(out, &r, MAX_REPLY).expect("an error reply is small");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut f = MAGIC.to_vec();
        f.push(PROTOCOL_VERSION);
        f.extend_from_slice(&(body.len() as u32).to_be_bytes());
        f.extend_from_slice(body);
        f
    }

    fn process() -> Box<oci_spec::runtime::Process> {
        serde_json::from_str(r#"{"args":["/bin/true"],"cwd":"/","user":{"uid":0,"gid":0}}"#).unwrap()
    }

    /// One value of every request, in [`Request::CALLS`] order.
    pub(crate) fn every_request() -> Vec<Request> {
        vec![
            Request::Hello {
                client: "sandboxctl 0.1.0".into(),
            },
            Request::State {},
            Request::Start {},
            Request::Exec {
                process: process(),
                stdio: ExecStdio::Attached,
            },
            Request::SignalContainer { signal: 15, all: true },
            Request::SignalProcess {
                pid: 7,
                signal: 2,
                foreground: true,
            },
            Request::Wait {},
            Request::WaitPid { pid: 7 },
            Request::Ps {},
            Request::Stats {},
            Request::Pause {},
            Request::Resume {},
            Request::Stacks {},
            Request::Checkpoint {
                image_path: "/tmp/img".into(),
                leave_running: false,
            },
            Request::Restore {
                image_path: "/tmp/img".into(),
            },
            Request::Destroy {},
        ]
    }

    fn encoded(r: &Request) -> Vec<u8> {
        let mut out = Vec::new();
        encode_request(r, &mut out).unwrap();
        out
    }

    #[test]
    fn every_request_round_trips_and_is_named_as_serde_names_it() {
        let all = every_request();
        assert_eq!(all.len(), Request::CALLS.len());
        for (i, r) in all.iter().enumerate() {
            let f = encoded(r);
            assert_eq!(decode(&f).unwrap(), *r);
            let v: serde_json::Value = serde_json::from_slice(&f[HEADER_LEN..]).unwrap();
            assert_eq!(v["call"], r.name(), "{v}");
            assert_eq!(r.name(), Request::CALLS[i]);
        }
    }

    #[test]
    fn every_reply_round_trips() {
        let replies = [
            Reply::Hello {
                protocol: 1,
                server: "sandboxctl 0.1.0".into(),
                sandbox: "a".into(),
                status: Status::Created,
            },
            Reply::Done,
            Reply::State {
                status: Status::Stopped,
                workload_pid: Some(2),
                exit: Some(ExitStatus::Signaled {
                    signal: 9,
                    core_dumped: false,
                }),
            },
            Reply::Exec { pid: 3 },
            Reply::Exited {
                pid: 3,
                exit: ExitStatus::Exited { code: 4 },
            },
            Reply::Processes {
                processes: vec![ProcessInfo {
                    pid: 1,
                    ppid: 0,
                    uid: 0,
                    state: "S".into(),
                    args: vec!["sh".into()],
                }],
            },
            Reply::Stats {
                stats: Stats {
                    blkio: vec![BlkioEntry {
                        major: 8,
                        minor: 0,
                        op: "Read".into(),
                        value: 1,
                    }],
                    ..Stats::default()
                },
            },
            Reply::Stacks {
                supervisor: SupervisorState {
                    status: Status::Running,
                    clients: 1,
                    parked: 0,
                    children: 1,
                },
                processes: vec![],
            },
            Reply::error(ErrorKind::WrongState, "start: the sandbox is running"),
        ];
        assert_eq!(replies.len(), Reply::NAMES.len());
        for (i, r) in replies.into_iter().enumerate() {
            let mut out = Vec::new();
            encode_reply(&r, &mut out);
            assert_eq!(decode_reply(&out).unwrap(), r);
            let v: serde_json::Value = serde_json::from_slice(&out[HEADER_LEN..]).unwrap();
            assert_eq!(v["reply"], r.name(), "{v}");
            assert_eq!(r.name(), Reply::NAMES[i]);
        }
        for k in ErrorKind::ALL {
            assert_eq!(serde_json::to_value(k).unwrap(), k.name());
        }
    }

    #[test]
    fn exit_status_from_raw_and_shell_status() {
        assert_eq!(ExitStatus::from_raw(3 << 8), Some(ExitStatus::Exited { code: 3 }));
        let killed = ExitStatus::from_raw(9).unwrap();
        assert_eq!(
            killed,
            ExitStatus::Signaled {
                signal: 9,
                core_dumped: false
            }
        );
        assert_eq!(killed.shell_status(), 137);
        assert_eq!(ExitStatus::from_raw(0x137f), None, "stopped, not ended");
    }

    #[test]
    fn short_input_is_truncated() {
        let f = encoded(&Request::Ps {});
        for n in 0..f.len() {
            let e = decode(&f[..n]).unwrap_err();
            assert!(
                matches!(e, ProtocolError::Truncated { have, .. } if have == n),
                "{n}: {e}"
            );
            assert_eq!(e.kind(), ErrorKind::Truncated);
        }
    }

    #[test]
    fn bytes_after_the_body_are_refused() {
        let mut f = encoded(&Request::Ps {});
        f.push(b' ');
        assert_eq!(decode(&f).unwrap_err(), ProtocolError::TrailingBytes { extra: 1 });
    }

    #[test]
    fn wrong_magic_version_and_size() {
        let mut f = encoded(&Request::Ps {});
        f[0] = b'X';
        assert!(matches!(decode(&f), Err(ProtocolError::BadMagic { .. })));
        let mut f = encoded(&Request::Ps {});
        f[3] = 2;
        let e = decode(&f).unwrap_err();
        assert_eq!(e, ProtocolError::UnsupportedVersion { got: 2 });
        assert_eq!(e.kind(), ErrorKind::UnsupportedVersion);
        // Oversized is decided from the header alone: no body needed.
        let mut f = MAGIC.to_vec();
        f.push(PROTOCOL_VERSION);
        f.extend_from_slice(&((MAX_REQUEST + 1) as u32).to_be_bytes());
        let e = decode(&f).unwrap_err();
        assert!(matches!(e, ProtocolError::Oversized { len, .. } if len == MAX_REQUEST as u64 + 1));
        f[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(decode(&f).unwrap_err().kind(), ErrorKind::Oversized);
        // Exactly the limit is fine as far as the header goes.
        let body = vec![b' '; MAX_REQUEST];
        assert!(matches!(decode(&frame(&body)), Err(ProtocolError::Malformed { .. })));
    }

    #[test]
    fn malformed_bodies() {
        for body in [
            &b""[..],
            b"{",
            b"null",
            b"[]",
            b"{}",
            b"{\"call\":7}",
            b"{\"call\":\"ps\",\"extra\":1}",
            b"{\"call\":\"wait_pid\"}",
            b"{\"call\":\"wait_pid\",\"pid\":\"7\"}",
            b"{\"call\":\"wait_pid\",\"pid\":99999999999}",
            b"{\"call\":\"exec\",\"process\":{},\"stdio\":\"attached\"}",
            b"{\"call\":\"exec\",\"process\":{\"args\":[\"x\"],\"cwd\":\"/\",\"user\":{\"uid\":0,\"gid\":0}},\"stdio\":\"tv\"}",
            b"\xff\xfe",
            b"{\"call\":\"ps\"} {\"call\":\"ps\"}",
        ] {
            let e = decode(&frame(body)).unwrap_err();
            assert!(
                matches!(e, ProtocolError::Malformed { .. }),
                "{:?}: {e}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let mut body = b"{\"call\":\"exec\",\"process\":".to_vec();
        body.extend(std::iter::repeat_n(b'[', 20_000));
        let e = decode(&frame(&body)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Malformed, "{e}");
    }

    #[test]
    fn unknown_call_is_named_and_cut() {
        let e = decode(&frame(b"{\"call\":\"update\",\"memory\":1}")).unwrap_err();
        assert_eq!(e, ProtocolError::UnknownCall { call: "update".into() });
        assert_eq!(e.kind(), ErrorKind::UnknownCall);
        let long = format!("{{\"call\":\"{}\"}}", "é".repeat(100));
        let ProtocolError::UnknownCall { call } = decode(&frame(long.as_bytes())).unwrap_err() else {
            panic!("not unknown")
        };
        assert!(call.len() <= 64 && call.chars().all(|c| c == 'é'), "{call}");
    }

    #[test]
    fn out_of_range_values_are_invalid_arguments() {
        for (body, field) in [
            (&b"{\"call\":\"signal_container\",\"signal\":0,\"all\":false}"[..], "signal"),
            (b"{\"call\":\"signal_container\",\"signal\":65,\"all\":false}", "signal"),
            (b"{\"call\":\"signal_process\",\"pid\":1,\"signal\":-9,\"foreground\":false}", "signal"),
            (b"{\"call\":\"signal_process\",\"pid\":0,\"signal\":9,\"foreground\":false}", "pid"),
            (b"{\"call\":\"wait_pid\",\"pid\":-1}", "pid"),
            (b"{\"call\":\"restore\",\"image_path\":\"rel\"}", "image_path"),
            (
                b"{\"call\":\"exec\",\"process\":{\"args\":[\"sh\"],\"terminal\":true,\"cwd\":\"/\",\"user\":{\"uid\":0,\"gid\":0}},\"stdio\":\"attached\"}",
                "stdio",
            ),
            (
                b"{\"call\":\"exec\",\"process\":{\"args\":[\"sh\"],\"cwd\":\"/\",\"user\":{\"uid\":0,\"gid\":0}},\"stdio\":\"pty\"}",
                "stdio",
            ),
            (
                b"{\"call\":\"exec\",\"process\":{\"args\":[],\"cwd\":\"/\",\"user\":{\"uid\":0,\"gid\":0}},\"stdio\":\"null\"}",
                "process.args",
            ),
        ] {
            match decode(&frame(body)) {
                Err(ProtocolError::InvalidArgument { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{}: {other:?}", String::from_utf8_lossy(body)),
            }
        }
    }

    #[test]
    fn oversized_request_is_refused_by_the_encoder() {
        let mut p = process();
        p.set_env(Some(vec!["X".repeat(MAX_REQUEST)]));
        let mut out = b"keep".to_vec();
        let e = encode_request(
            &Request::Exec {
                process: p,
                stdio: ExecStdio::Null,
            },
            &mut out,
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Oversized);
        assert_eq!(out, b"keep", "nothing appended");
    }

    #[test]
    fn oversized_reply_becomes_an_error_reply() {
        let big = Reply::Processes {
            processes: vec![
                ProcessInfo {
                    pid: 1,
                    ppid: 0,
                    uid: 0,
                    state: "S".into(),
                    args: vec!["x".repeat(1024)],
                };
                MAX_REPLY / 1024 + 1
            ],
        };
        let mut out = Vec::new();
        encode_reply(&big, &mut out);
        match decode_reply(&out).unwrap() {
            Reply::Error { kind, message } => {
                assert_eq!(kind, ErrorKind::Failed);
                assert!(message.contains("above the limit"), "{message}");
            }
            r => panic!("{r:?}"),
        }
    }

    // Mutated frames: tests/fuzz.rs (`fuzz_control` and
    // `control_frames_mutated_never_panic`, with the mutator shared in
    // tests/common/frames.rs).
}
