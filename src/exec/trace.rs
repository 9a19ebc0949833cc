//! The ptrace platform's tracer: the supervisor observes every system call
//! of the workload and of everything it starts, and writes each call the
//! workload's filter refuses to the user log with the plan line that refused
//! it.
//!
//! **Mechanism: ptrace syscall-entry stops, with the plan's filter left
//! alone.** The workload asks to be traced (`PTRACE_TRACEME`, step `trace`,
//! before its filter is loaded) and execs; its exec stops it, and the tracer
//! sets `PTRACE_O_TRACESYSGOOD | TRACECLONE | TRACEFORK | TRACEVFORK |
//! TRACEEXEC | EXITKILL` and resumes it with `PTRACE_SYSCALL`. Threads,
//! children and exec'd programs are traced from their first instruction (the
//! kernel attaches them before they run), and all die with the tracer. At
//! each syscall-entry stop the tracer reads the call with
//! `PTRACE_GET_SYSCALL_INFO` (architecture, number, six arguments: registers
//! of a stopped thread, never memory) and runs the very programs the
//! workload loaded over them (a BPF interpreter, `seccomp::stacked_verdict`)
//! to know what the kernel will decide, then resumes the thread unchanged.
//! Seccomp runs after the entry stop, on the same registers, so the kernel's
//! filter decides every call as without the tracer; the tracer never writes a
//! register or the workload's memory and never answers for the filter.
//!
//! Why not a `SECCOMP_RET_TRACE` filter, or user notification: the kernel
//! runs every loaded filter and keeps the strictest result, and `ERRNO`,
//! `TRAP` and the kills are all stricter than `TRACE` and `USER_NOTIF`. With
//! the plan's filter in force, a tracing filter is told about every call the
//! filter *allows* and about none it *refuses* — exactly the ones to log.
//! Making the refusals `TRACE` instead (and refusing from the tracer) would
//! move the decision out of the kernel into this process: a tracer bug, or
//! the kernel's re-check after a trace stop (which lets a `TRACE` result
//! through), would widen the filter. User notification adds a second
//! weakness: a listener that decides on pointer arguments reads memory the
//! workload can change after the check. Syscall-entry stops cost two stops
//! per call (entry and exit) where a tracing filter costs one, and that is
//! the price of seeing the refusals (docs/plan.md, "Platforms", has the
//! figures).
//!
//! **How a supervisor loop drives it:** [`Tracer::new`] and [`Tracer::trace`]
//! right after the workload's spawn, [`Tracer::trace`] after each later
//! spawn that walks the `trace` step (an `exec`'d process); nothing to poll:
//! the tracer's events are SIGCHLDs. Then [`Tracer::on_sigchld`] on every
//! SIGCHLD (or readable signalfd for it). It
//! owns `waitpid` under ptrace: it takes every stop and every exit waiting
//! (`waitpid(-1, WNOHANG | __WALL)` until none is left), resumes each stopped
//! tracee, and returns the exits it reaped, for the loop to find its
//! workload's. The loop must not call `waitpid` itself meanwhile (a stop it
//! took would leave a thread stopped forever).

use std::collections::{BTreeMap, HashSet};
use std::io;
use std::rc::Rc;

use super::backend::PreparedFilter;
use super::seccomp::{self, Why};
use crate::plan::syscalls::syscall_name;
use crate::plan::{Seccomp, SeccompAction};

/// The type of a ptrace request in the C library's prototype (glibc: an
/// enum, unsigned; musl: int).
#[cfg(target_env = "musl")]
type Request = libc::c_int;
#[cfg(not(target_env = "musl"))]
type Request = libc::c_uint;

/// `PTRACE_GET_SYSCALL_INFO` (Linux 5.3).
const PTRACE_GET_SYSCALL_INFO: Request = 0x420e;
/// `ptrace_syscall_info.op` at a syscall-entry stop.
const SYSCALL_INFO_ENTRY: u8 = 1;
/// `AUDIT_ARCH_X86_64`.
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
/// The marker of a summary line in the user log (see [`summary_line`]).
const SUMMARY: &str = "syscall seen: ";

/// `struct ptrace_syscall_info` (linux/ptrace.h), the entry and seccomp
/// layout: the exit layout (`rval`, `is_error`) overlays `nr` and `args[0]`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct SyscallInfo {
    op: u8,
    pad: [u8; 3],
    arch: u32,
    instruction_pointer: u64,
    stack_pointer: u64,
    nr: u64,
    args: [u64; 6],
    ret_data: u32,
    pad2: u32,
}

/// How often one system call was seen, and how often the filter refused it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Seen {
    /// Calls the filter let through.
    pub allowed: u64,
    /// Calls the filter refused (errno, trap or kill).
    pub refused: u64,
}

/// The syscalls a traced workload made, by name (numbers x86_64 has no name
/// for are written `nr_N`).
pub type Counts = BTreeMap<String, Seen>;

/// A tracee's exit, as `waitpid` reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exited {
    /// The process (or thread) id.
    pub pid: i32,
    /// Its status: the exit code, or 128+N when killed by signal N.
    pub status: i32,
    /// The wait status as `waitpid` gave it.
    pub raw: i32,
}

/// The tracer of one workload (see the module's doc).
#[derive(Debug)]
pub struct Tracer {
    /// The first process traced (the workload): its exit writes the summary.
    workload: Option<i32>,
    /// Spawned processes that asked to be traced, not yet stopped by their
    /// exec (then set up).
    pending: HashSet<i32>,
    /// The plan's filter (for the refusing line) and the programs loaded
    /// from it (for the decision).
    seccomp: Option<Seccomp>,
    filters: Vec<Rc<PreparedFilter>>,
    /// Tracees already seen: the first stop of any other pid is the SIGSTOP
    /// an auto-attached thread or child starts with.
    known: HashSet<i32>,
    /// Per syscall number (the top bit set for a call of another
    /// architecture).
    counts: BTreeMap<u64, Seen>,
}

/// Calls `ptrace(2)`; -1 becomes the OS error.
fn ptrace(req: Request, pid: i32, addr: usize, data: usize) -> io::Result<libc::c_long> {
    // SAFETY: every request used here takes integers, or (GET_SYSCALL_INFO,
    // GETSIGINFO) a pointer to a buffer of the size passed, owned by the
    // caller for the duration of the call.
    let r = unsafe { libc::ptrace(req, pid, addr as *mut libc::c_void, data as *mut libc::c_void) };
    if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// The status a supervisor reports for a wait status.
fn exit_status(st: libc::c_int) -> i32 {
    if libc::WIFEXITED(st) {
        libc::WEXITSTATUS(st)
    } else {
        128 + libc::WTERMSIG(st)
    }
}

impl Tracer {
    /// A tracer for processes that load `filters` (the programs made from
    /// the plan's filter `seccomp`); it traces nothing until [`Self::trace`].
    pub fn new(seccomp: Option<Seccomp>, filters: Vec<Rc<PreparedFilter>>) -> Self {
        Tracer {
            workload: None,
            pending: HashSet::new(),
            seccomp,
            filters,
            known: HashSet::new(),
            counts: BTreeMap::new(),
        }
    }

    /// Traces `pid`, a child that asked to be traced (`PTRACE_TRACEME`) and
    /// whose exec will stop it; the first one is the workload.
    pub fn trace(&mut self, pid: i32) {
        self.workload.get_or_insert(pid);
        self.pending.insert(pid);
        self.known.insert(pid);
        // Its own execve, made under its filter before the tracer could see
        // it: it succeeded, so it was allowed.
        if let Ok(nr) = u64::try_from(crate::plan::syscalls::syscall_nr("execve").unwrap_or(59)) {
            self.counts.entry(nr).or_default().allowed += 1;
        }
    }

    /// Handles every stop and exit waiting (call it on each SIGCHLD): resumes
    /// each stopped tracee, logs each refused call, and returns the exits
    /// reaped. When the workload itself exits, the summary of what it made
    /// is written to the user log first ([`summary_line`]).
    pub fn on_sigchld(&mut self) -> io::Result<Vec<Exited>> {
        let mut exits = Vec::new();
        loop {
            let mut st = 0;
            // SAFETY: a valid status pointer.
            let pid = unsafe { libc::waitpid(-1, &mut st, libc::WNOHANG | libc::__WALL) };
            if pid == 0 {
                break;
            }
            if pid < 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EINTR) => continue,
                    Some(libc::ECHILD) => break,
                    _ => return Err(e),
                }
            }
            if libc::WIFEXITED(st) || libc::WIFSIGNALED(st) {
                self.known.remove(&pid);
                self.pending.remove(&pid);
                if Some(pid) == self.workload {
                    self.log_summary();
                }
                exits.push(Exited {
                    pid,
                    status: exit_status(st),
                    raw: st,
                });
                continue;
            }
            if libc::WIFSTOPPED(st) {
                // A tracee gone meanwhile (killed) fails with ESRCH: its exit
                // comes as its own status.
                match self.on_stop(pid, st) {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(exits)
    }

    /// What the workload made so far, by syscall name.
    pub fn counts(&self) -> Counts {
        self.counts.iter().map(|(nr, seen)| (name_of(*nr), *seen)).collect()
    }

    fn on_stop(&mut self, pid: i32, st: libc::c_int) -> io::Result<()> {
        let sig = libc::WSTOPSIG(st);
        let event = (st >> 16) & 0xff;
        if self.pending.remove(&pid) {
            // The stop after its exec (SIGTRAP): trace from here on.
            let opts = libc::PTRACE_O_TRACESYSGOOD
                | libc::PTRACE_O_TRACECLONE
                | libc::PTRACE_O_TRACEFORK
                | libc::PTRACE_O_TRACEVFORK
                | libc::PTRACE_O_TRACEEXEC
                | libc::PTRACE_O_EXITKILL;
            ptrace(libc::PTRACE_SETOPTIONS, pid, 0, opts as usize)?;
            tracing::info!("tracing pid {pid}: every system call observed");
            let inject = if sig == libc::SIGTRAP { 0 } else { sig };
            return ptrace(libc::PTRACE_SYSCALL, pid, 0, inject as usize).map(drop);
        }
        if self.known.insert(pid) && sig == libc::SIGSTOP {
            // A thread or child attached by the kernel: its first stop.
            return ptrace(libc::PTRACE_SYSCALL, pid, 0, 0).map(drop);
        }
        let inject = if sig == libc::SIGTRAP | 0x80 {
            self.on_syscall_stop(pid)?;
            0
        } else if event != 0 {
            // clone, fork, vfork, exec: the new tracee comes as its own stop.
            0
        } else {
            let mut info = std::mem::MaybeUninit::<libc::siginfo_t>::zeroed();
            match ptrace(libc::PTRACE_GETSIGINFO, pid, 0, info.as_mut_ptr() as usize) {
                // A group stop (no signal to deliver): resume.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => 0,
                Err(e) => return Err(e),
                Ok(_) => sig,
            }
        };
        ptrace(libc::PTRACE_SYSCALL, pid, 0, inject as usize).map(drop)
    }

    /// A syscall stop: at an entry, count the call and log it when the
    /// filter refuses it; an exit has nothing to add.
    fn on_syscall_stop(&mut self, pid: i32) -> io::Result<()> {
        let mut info = SyscallInfo::default();
        ptrace(
            PTRACE_GET_SYSCALL_INFO,
            pid,
            std::mem::size_of::<SyscallInfo>(),
            &mut info as *mut SyscallInfo as usize,
        )?;
        if info.op != SYSCALL_INFO_ENTRY {
            return Ok(());
        }
        let key = if info.arch == AUDIT_ARCH_X86_64 {
            info.nr
        } else {
            info.nr | 1 << 63
        };
        let refused = match &self.seccomp {
            None => false,
            Some(s) => {
                let nr = u32::try_from(info.nr).unwrap_or(u32::MAX);
                let ret = seccomp::stacked_verdict(&self.filters, info.arch, nr, &info.args);
                let plan = seccomp::rule_verdict(s, info.arch, info.nr, &info.args);
                let refused = match ret {
                    Some(ret) => !seccomp::permits(ret),
                    None => plan.action.looseness() < SeccompAction::Trace(0).looseness(),
                };
                if refused {
                    tracing::warn!(target: super::log::USER, "{}", refusal_line(pid, &info, &plan));
                }
                refused
            }
        };
        let seen = self.counts.entry(key).or_default();
        if refused {
            seen.refused += 1;
        } else {
            seen.allowed += 1;
        }
        Ok(())
    }

    fn log_summary(&self) {
        for (name, seen) in self.counts() {
            tracing::info!(target: super::log::USER, "{}", summary_line(&name, seen));
        }
    }
}

/// A syscall's name for a count key (see [`Tracer::counts`]).
fn name_of(key: u64) -> String {
    if key >> 63 == 1 {
        return format!("nr_{}_other_arch", key & !(1 << 63));
    }
    syscall_name(key).map_or_else(|| format!("nr_{key}"), str::to_string)
}

/// The user log's record of a refused call: process, call, arguments (as
/// numbers: pointer arguments are never read), the action and the plan
/// entry that decided it.
fn refusal_line(pid: i32, info: &SyscallInfo, plan: &seccomp::RuleVerdict) -> String {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|c| c.trim_end().to_string())
        .unwrap_or_else(|_| "?".into());
    let name = if info.arch == AUDIT_ARCH_X86_64 {
        name_of(info.nr)
    } else {
        format!("nr {} (audit arch {:#x})", info.nr, info.arch)
    };
    let args: Vec<String> = info.args.iter().map(|a| format!("{a:#x}")).collect();
    let action = match plan.action {
        SeccompAction::Errno(n) => match crate::plan::syscalls::errno_name(n) {
            Some(e) => format!("errno {e}"),
            None => format!("errno {n}"),
        },
        SeccompAction::KillProcess => "kill the process".into(),
        SeccompAction::KillThread => "kill the thread".into(),
        SeccompAction::Trap => "SIGSYS".into(),
        other => format!("{other:?}").to_lowercase(),
    };
    let why = match plan.why {
        Why::Rule => "the rule at",
        Why::Default => "the filter's default action, no rule allows it, at",
        Why::Architecture => "the architecture guard (only x86_64 numbers run), filter from",
    };
    format!(
        "seccomp refused: pid {pid} ({comm}) {name}({}) -> {action}, by {why} {}",
        args.join(", "),
        plan.from
    )
}

/// One summary line of the user log: a syscall, how often it was let
/// through and how often refused. Written for each syscall when the workload
/// exits; `sandboxctl learn` reads them back with [`parse_summary`].
pub fn summary_line(name: &str, seen: Seen) -> String {
    format!("{SUMMARY}{name} allowed {} refused {}", seen.allowed, seen.refused)
}

/// The counts in a user log's summary lines ([`summary_line`]); other lines
/// are skipped. Two summaries (two launches into one log) add up.
pub fn parse_summary(log: &str) -> Counts {
    let mut out = Counts::new();
    for line in log.lines() {
        let Some((_, rest)) = line.split_once(SUMMARY) else {
            continue;
        };
        let words: Vec<&str> = rest.split_whitespace().collect();
        if let [name, "allowed", a, "refused", r] = words[..] {
            if let (Ok(a), Ok(r)) = (a.parse::<u64>(), r.parse::<u64>()) {
                let seen = out.entry(name.to_string()).or_default();
                seen.allowed += a;
                seen.refused += r;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_lines_read_back() {
        let mut log = String::from("2026-12-01T00:00:00Z supervisor[1] INFO workload started: [\"sh\"]\n");
        for (name, a, r) in [("read", 12, 0), ("openat", 3, 1), ("nr_999", 1, 0)] {
            let seen = Seen { allowed: a, refused: r };
            log.push_str(&format!(
                "2026-12-01T00:00:01Z supervisor[1] INFO {}\n",
                summary_line(name, seen)
            ));
        }
        log.push_str("garbage syscall seen: x allowed y refused 1\n");
        let c = parse_summary(&log);
        assert_eq!(c.len(), 3);
        assert_eq!(
            c["read"],
            Seen {
                allowed: 12,
                refused: 0
            }
        );
        assert_eq!(c["openat"], Seen { allowed: 3, refused: 1 });
        assert_eq!(c["nr_999"].allowed, 1);
    }

    #[test]
    fn count_keys_name_other_architectures_apart() {
        assert_eq!(name_of(0), "read");
        assert_eq!(name_of(5000), "nr_5000");
        assert_eq!(name_of(1 << 63 | 3), "nr_3_other_arch");
    }
}
