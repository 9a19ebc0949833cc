//! The recording backend: writes down each op, in order, tagged with the
//! process that would perform it, and performs nothing.
//!
//! It does not fork: clone and fork return a placeholder pid and the
//! interpreter plays every actor in the plan's step order, so the recorded list
//! reads as the plan's steps. It returns plausible outcomes (fds numbered from
//! 100, a child that exits 0) and can be told to fail op number N with an errno,
//! which is how the rollback tests reach every step without root.

use std::fmt;
use std::io;

use super::backend::{Backend, Forked, Op, Outcome};
use crate::plan::Actor;

/// Placeholder pid of the supervisor in a recording.
pub const SUPERVISOR_PID: i32 = 1_000_001;
/// Placeholder pid of the workload in a recording.
pub const WORKLOAD_PID: i32 = 1_000_002;

/// One recorded op and the process it runs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The process.
    pub actor: Actor,
    /// The op.
    pub op: Op,
    /// Whether the op was made to fail.
    pub failed: bool,
}

impl fmt::Display for Recorded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = match self.actor {
            Actor::Launcher => "launcher",
            Actor::Supervisor => "supervisor",
            Actor::Workload => "workload",
        };
        write!(
            f,
            "{who:<10} {}{}",
            self.op,
            if self.failed { "  [injected failure]" } else { "" }
        )
    }
}

/// Records ops; optionally fails one.
#[derive(Debug)]
pub struct RecordingBackend {
    /// Everything performed so far.
    pub ops: Vec<Recorded>,
    actor: Actor,
    next_fd: i32,
    clones: u32,
    fail_at: Option<(usize, i32)>,
}

impl Default for RecordingBackend {
    fn default() -> Self {
        RecordingBackend {
            ops: Vec::new(),
            actor: Actor::Launcher,
            next_fd: 100,
            clones: 0,
            fail_at: None,
        }
    }
}

impl RecordingBackend {
    /// A backend that records without failing.
    pub fn new() -> Self {
        Self::default()
    }

    /// A backend whose op number `index` (0-based) fails with `errno`.
    pub fn failing_at(index: usize, errno: i32) -> Self {
        RecordingBackend {
            fail_at: Some((index, errno)),
            ..Self::default()
        }
    }

    fn fd(&mut self) -> i32 {
        self.next_fd += 1;
        self.next_fd
    }
}

impl Backend for RecordingBackend {
    fn perform(&mut self, op: &Op) -> io::Result<Outcome> {
        let index = self.ops.len();
        let fail = self.fail_at.filter(|(i, _)| *i == index).map(|(_, e)| e);
        let out = match &op {
            Op::Open { .. }
            | Op::CreateState { .. }
            | Op::OpenNs { .. }
            | Op::OpenRootDir { .. }
            | Op::BindOntoItself { .. }
            | Op::Memfd { .. }
            | Op::OpenKvm { .. }
            | Op::DupHigh { .. }
            | Op::OpenInRoot { .. }
            | Op::OpenBindSource { .. }
            | Op::OpenDevice { .. }
            | Op::CreateSandboxDir { .. }
            | Op::BindControlSocket { .. }
            | Op::SignalFd { .. } => Outcome::Fd(self.fd()),
            Op::SocketPair { .. } | Op::Pipe { .. } | Op::OpenPty | Op::OpenPtyIn { .. } => {
                Outcome::Pair(self.fd(), self.fd())
            }
            Op::AwaitMark { .. } => Outcome::Bytes(vec![crate::exec::interp::READY_MARK]),
            Op::ReapRaw => Outcome::ReapedRaw(None),
            Op::Clone { .. } | Op::Spawn { .. } => {
                self.clones += 1;
                Outcome::Forked(Forked::Parent(if self.clones == 1 {
                    SUPERVISOR_PID
                } else {
                    WORKLOAD_PID
                }))
            }
            Op::WaitExit { proc } => Outcome::Reaped(Some((proc.pid, 137))),
            Op::Reap { proc } => Outcome::Reaped(Some((if proc.pid > 0 { proc.pid } else { WORKLOAD_PID }, 0))),
            Op::WaitSignal | Op::RelayPty { .. } => Outcome::Signal(libc::SIGCHLD),
            Op::GetPid => Outcome::Pid(SUPERVISOR_PID),
            Op::RecvReport { .. } | Op::AwaitEof { .. } | Op::ReadFile { .. } => Outcome::Bytes(Vec::new()),
            _ => Outcome::Done,
        };
        self.ops.push(Recorded {
            actor: self.actor,
            op: op.clone(),
            failed: fail.is_some(),
        });
        match fail {
            Some(e) => Err(io::Error::from_raw_os_error(e)),
            None => Ok(out),
        }
    }

    fn forks(&self) -> bool {
        false
    }

    fn set_actor(&mut self, actor: Actor) {
        self.actor = actor;
    }
}
