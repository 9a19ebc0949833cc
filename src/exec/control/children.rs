//! What the supervisor knows of its children, for `wait`, `wait_pid`,
//! `signal_process` and `state`: the workload, the processes `exec` started,
//! and how each ended. Pure bookkeeping fed by reaps (the reaping itself,
//! `waitpid(-1, WNOHANG)` after a SIGCHLD, is the interpreter's, behind the
//! backend); as pid 1 the supervisor also reaps orphans it never started,
//! which are not waitable. Ended `exec` processes are kept for `wait_pid` up
//! to a bound, oldest forgotten first, so a long-lived sandbox that runs
//! many `exec`s holds bounded memory.

use std::collections::VecDeque;

use super::proto::{ExitStatus, Reply, SandboxPid};
use super::server::WaitFor;

/// How many ended `exec` processes are remembered for a later `wait_pid`.
pub const KEEP_ENDED: usize = 256;

/// The supervisor's children.
#[derive(Debug, Default)]
pub struct Children {
    workload: Option<SandboxPid>,
    workload_exit: Option<ExitStatus>,
    /// Started by `exec`, still running.
    running: Vec<SandboxPid>,
    /// Started by `exec`, ended, oldest first.
    ended: VecDeque<(SandboxPid, ExitStatus)>,
}

impl Children {
    /// No children yet.
    pub fn new() -> Children {
        Children::default()
    }

    /// The workload was started as `pid`.
    pub fn started_workload(&mut self, pid: SandboxPid) {
        self.workload = Some(pid);
    }

    /// `exec` started `pid`. A pid the kernel reuses replaces what was
    /// remembered of its previous owner.
    pub fn started_exec(&mut self, pid: SandboxPid) {
        self.ended.retain(|(p, _)| *p != pid);
        self.running.push(pid);
    }

    /// A child was reaped with raw wait status `status`. Returns what it was.
    pub fn reaped(&mut self, pid: SandboxPid, status: i32) -> Reaped {
        let Some(exit) = ExitStatus::from_raw(status) else {
            return Reaped::NotEnded;
        };
        if self.workload == Some(pid) && self.workload_exit.is_none() {
            self.workload_exit = Some(exit);
            return Reaped::Workload(exit);
        }
        if let Some(i) = self.running.iter().position(|p| *p == pid) {
            self.running.swap_remove(i);
            if self.ended.len() == KEEP_ENDED {
                self.ended.pop_front();
            }
            self.ended.push_back((pid, exit));
            return Reaped::Exec(exit);
        }
        Reaped::Orphan
    }

    /// The workload's pid, once started.
    pub fn workload(&self) -> Option<SandboxPid> {
        self.workload
    }

    /// How the workload ended, once it has.
    pub fn workload_exit(&self) -> Option<ExitStatus> {
        self.workload_exit
    }

    /// Whether `pid` is a process this supervisor started and has not seen
    /// end (what `signal_process` may target).
    pub fn is_live(&self, pid: SandboxPid) -> bool {
        (self.workload == Some(pid) && self.workload_exit.is_none()) || self.running.contains(&pid)
    }

    /// Whether `wait_pid` may wait for `pid`: the workload, or an `exec`
    /// process running or remembered.
    pub fn is_waitable(&self, pid: SandboxPid) -> bool {
        self.workload == Some(pid) || self.running.contains(&pid) || self.ended.iter().any(|(p, _)| *p == pid)
    }

    /// The answer to a parked call, once there is one (the server's
    /// `poll_wait`). Every waiter of one process gets the same answer.
    pub fn answer(&self, wait: WaitFor) -> Option<Reply> {
        let (pid, exit) = match wait {
            WaitFor::Workload => (self.workload?, self.workload_exit?),
            WaitFor::Pid(p) if self.workload == Some(p) => (p, self.workload_exit?),
            WaitFor::Pid(p) => *self.ended.iter().find(|(q, _)| *q == p)?,
        };
        Some(Reply::Exited { pid, exit })
    }

    /// Processes started by `exec` still running.
    pub fn running_execs(&self) -> &[SandboxPid] {
        &self.running
    }
}

/// What a reaped child was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reaped {
    /// The workload ended: record it in the state; the sandbox is stopped.
    Workload(ExitStatus),
    /// An `exec`'d process ended.
    Exec(ExitStatus),
    /// A process the supervisor did not start (reparented to pid 1).
    Orphan,
    /// Stopped or continued, not ended.
    NotEnded,
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXIT_3: i32 = 3 << 8;
    const KILLED: i32 = 9;

    #[test]
    fn workload_and_exec_waits() {
        let mut c = Children::new();
        assert_eq!(c.answer(WaitFor::Workload), None, "nothing started");
        c.started_workload(2);
        c.started_exec(10);
        assert!(c.is_live(2) && c.is_live(10) && !c.is_live(11));
        assert!(c.is_waitable(10) && !c.is_waitable(11));
        assert_eq!(c.answer(WaitFor::Pid(10)), None, "still running");
        assert_eq!(c.reaped(10, EXIT_3), Reaped::Exec(ExitStatus::Exited { code: 3 }));
        assert!(!c.is_live(10) && c.is_waitable(10));
        let r = Reply::Exited {
            pid: 10,
            exit: ExitStatus::Exited { code: 3 },
        };
        assert_eq!(c.answer(WaitFor::Pid(10)), Some(r.clone()));
        assert_eq!(c.answer(WaitFor::Pid(10)), Some(r), "every waiter gets it");
        assert_eq!(c.reaped(55, 0), Reaped::Orphan);
        assert_eq!(c.reaped(2, 0x137f), Reaped::NotEnded, "stopped, not ended");
        assert_eq!(c.answer(WaitFor::Workload), None);
        assert_eq!(
            c.reaped(2, KILLED),
            Reaped::Workload(ExitStatus::Signaled {
                signal: 9,
                core_dumped: false
            })
        );
        assert!(!c.is_live(2));
        let w = c.answer(WaitFor::Workload).unwrap();
        assert_eq!(c.answer(WaitFor::Pid(2)), Some(w), "wait_pid of the workload");
        assert_eq!(c.workload_exit().unwrap().shell_status(), 137);
    }

    #[test]
    fn ended_execs_are_bounded_and_a_reused_pid_starts_afresh() {
        let mut c = Children::new();
        for pid in 100..100 + KEEP_ENDED as i32 + 10 {
            c.started_exec(pid);
            c.reaped(pid, 0);
        }
        assert!(!c.is_waitable(100), "the oldest are forgotten");
        assert!(c.is_waitable(100 + KEEP_ENDED as i32 + 9));
        assert_eq!(c.ended.len(), KEEP_ENDED);
        let last = 100 + KEEP_ENDED as i32 + 9;
        c.started_exec(last);
        assert_eq!(
            c.answer(WaitFor::Pid(last)),
            None,
            "the new owner of the pid is running"
        );
        assert_eq!(c.running_execs(), &[last]);
    }
}
