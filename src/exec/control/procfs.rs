//! Reading processes from a `/proc`: what `ps` and `stacks` answer, and the
//! start time that tells a live supervisor from a recycled pid. The
//! supervisor reads its own `/proc` (the sandbox's, mounted in its mount
//! namespace), so every pid here is as the sandbox sees it. A process that
//! ends while it is read is skipped, not an error.

use std::fs;
use std::path::Path;

use super::proto::{ProcessInfo, ProcessStack, SandboxPid};

/// The fields of `/proc/PID/stat` used here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    /// `comm` (between the parentheses; it may hold spaces and parentheses).
    pub comm: String,
    /// The state letter.
    pub state: char,
    /// The parent's pid.
    pub ppid: SandboxPid,
    /// Start time, clock ticks after boot (field 22).
    pub start_ticks: u64,
}

/// Parses a `/proc/PID/stat` line. Fields are counted after the *last* `)`,
/// because `comm` may hold anything.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_string();
    let mut fields = text.get(close + 1..)?.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    // Fields 3 (state) and 4 (ppid) read; the start time is field 22.
    let start_ticks = fields.nth(17)?.parse().ok()?;
    Some(Stat {
        comm,
        state,
        ppid,
        start_ticks,
    })
}

/// `/proc/PID/stat` of `pid` under `proc_root`.
pub fn stat(proc_root: &Path, pid: SandboxPid) -> Option<Stat> {
    if pid <= 0 {
        return None;
    }
    parse_stat(&fs::read_to_string(proc_root.join(pid.to_string()).join("stat")).ok()?)
}

/// The real uid from a `/proc/PID/status` text (`Uid:` line, first field).
pub fn parse_real_uid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_ascii_whitespace()
        .next()?
        .parse()
        .ok()
}

/// argv from a `/proc/PID/cmdline` (NUL-separated, maybe NUL-terminated;
/// empty for kernel threads and zombies).
pub fn parse_cmdline(bytes: &[u8]) -> Vec<String> {
    let bytes = bytes.strip_suffix(b"\0").unwrap_or(bytes);
    if bytes.is_empty() {
        return vec![];
    }
    bytes
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// Every pid under `proc_root`, ascending.
pub fn pids(proc_root: &Path) -> Vec<SandboxPid> {
    let mut pids: Vec<SandboxPid> = fs::read_dir(proc_root)
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .filter(|p: &SandboxPid| *p > 0)
                .collect()
        })
        .unwrap_or_default();
    pids.sort_unstable();
    pids
}

/// One process for `ps`; `None` when it is gone.
pub fn process_info(proc_root: &Path, pid: SandboxPid) -> Option<ProcessInfo> {
    let st = stat(proc_root, pid)?;
    let dir = proc_root.join(pid.to_string());
    let uid = parse_real_uid(&fs::read_to_string(dir.join("status")).ok()?)?;
    let mut args = parse_cmdline(&fs::read(dir.join("cmdline")).unwrap_or_default());
    if args.is_empty() {
        args.push(format!("[{}]", st.comm));
    }
    Some(ProcessInfo {
        pid,
        ppid: st.ppid,
        uid,
        state: st.state.to_string(),
        args,
    })
}

/// Every process for `ps`, by pid.
pub fn processes(proc_root: &Path) -> Vec<ProcessInfo> {
    pids(proc_root)
        .into_iter()
        .filter_map(|p| process_info(proc_root, p))
        .collect()
}

/// One process for `stacks`; `None` when it is gone. The wait channel and
/// the kernel stack are `None` where unreadable (`/proc/PID/stack` needs
/// CAP_SYS_ADMIN in the initial user namespace).
pub fn process_stack(proc_root: &Path, pid: SandboxPid) -> Option<ProcessStack> {
    let st = stat(proc_root, pid)?;
    let dir = proc_root.join(pid.to_string());
    let wchan = fs::read_to_string(dir.join("wchan"))
        .ok()
        .map(|w| w.trim().to_string())
        .filter(|w| !w.is_empty() && w != "0");
    let kernel_stack = fs::read_to_string(dir.join("stack")).ok().filter(|s| !s.is_empty());
    Some(ProcessStack {
        pid,
        command: st.comm,
        state: st.state.to_string(),
        wchan,
        kernel_stack,
    })
}

/// Every process for `stacks`, by pid, except `skip` (the supervisor, which
/// reports itself apart).
pub fn stacks(proc_root: &Path, skip: SandboxPid) -> Vec<ProcessStack> {
    pids(proc_root)
        .into_iter()
        .filter(|p| *p != skip)
        .filter_map(|p| process_stack(proc_root, p))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_a_hostile_comm() {
        let line = "42 (a) b) S (c) R 7 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 12345 1000 10 18446744073709551615";
        let s = parse_stat(line).unwrap();
        assert_eq!(s.comm, "a) b) S (c");
        assert_eq!((s.state, s.ppid, s.start_ticks), ('R', 7, 12345));
        for bad in ["", "42 x S 1", "42 (x) S", "42 (x) S notapid", "42 (x) S 1 2 3"] {
            assert_eq!(parse_stat(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn status_and_cmdline() {
        assert_eq!(
            parse_real_uid("Name:\tsh\nUid:\t65534\t0\t0\t0\nGid:\t0\n"),
            Some(65534)
        );
        assert_eq!(parse_real_uid("Name:\tsh\n"), None);
        assert_eq!(parse_cmdline(b"sh\0-c\0echo hi\0"), ["sh", "-c", "echo hi"]);
        assert_eq!(parse_cmdline(b"no-terminator"), ["no-terminator"]);
        assert_eq!(parse_cmdline(b""), Vec::<String>::new());
        assert_eq!(parse_cmdline(b"\xff\0"), ["\u{fffd}"]);
    }

    #[test]
    fn this_process_as_ps_and_stacks_see_it() {
        let proc_root = Path::new("/proc");
        let me = std::process::id() as SandboxPid;
        assert!(pids(proc_root).contains(&me));
        let info = process_info(proc_root, me).unwrap();
        // SAFETY: getuid and getppid have no preconditions.
        let (uid, ppid) = unsafe { (libc::getuid(), libc::getppid()) };
        assert_eq!((info.uid, info.ppid), (uid, ppid));
        assert!(info.args[0].contains("sandboxctl"), "{:?}", info.args);
        assert!(processes(proc_root).iter().any(|p| p.pid == me));
        let st = process_stack(proc_root, me).unwrap();
        assert_eq!(st.pid, me);
        assert!(!st.command.is_empty());
        assert!(
            stacks(proc_root, me).iter().all(|s| s.pid != me),
            "the supervisor is skipped"
        );
        assert_eq!(process_info(proc_root, -1), None);
        assert_eq!(process_info(proc_root, i32::MAX), None);
    }
}
