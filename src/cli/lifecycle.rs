//! The commands on an existing long-lived sandbox, CLI side (runc's names
//! and flags): `kill`, `wait`, `ps`, `events`, `pause`, `resume`, `update`,
//! `stacks`, `checkpoint`, `restore` and `delete`. Each takes the id's lock
//! as docs/lifecycle.md's table says, reads the record and the stored plan,
//! and either calls the supervisor (`exec::control::client`) or acts from
//! the host (`exec::control::host`) where the supervisor cannot answer: it is
//! frozen (`pause`), dead, or the action must not be its own (the freezer).
//! Every command on an unknown id fails with one line, exit 1.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::sandbox::{failure, READ_LOCK_WAIT};
use super::{Failure, StacksFormat};
use crate::diag::SourceDiag;
use crate::exec;
use crate::exec::control::client::{Client, ClientError, CALL_TIMEOUT};
use crate::exec::control::events::EventStream;
use crate::exec::control::host::{self, Freezer, FREEZE_TIMEOUT};
use crate::exec::control::proto::{
    ExitStatus, ProcessInfo, ProcessStack, Reply, Request, Stats, Status, SupervisorState,
};
use crate::exec::control::signals::{parse_signal, signal_name};
use crate::exec::control::state::{
    read_exit, LockMode, Record, SandboxDir, SandboxId, StateError, StateRoot, PLAN_FILE,
};
use crate::exec::control::{procfs, stats};
use crate::plan::{render, CgroupDir, HookPhase, LaunchPlan};

/// How long `delete --force` waits for the sandbox to die.
const KILL_WAIT: Duration = Duration::from_secs(10);
/// How long `delete --force` waits for the supervisor's answer to `destroy`
/// before killing it from the host.
const DESTROY_TIMEOUT: Duration = Duration::from_secs(2);

/// Opens an id's directory with its lock and reads its record.
pub(super) fn open(root: &Path, id: &str, mode: LockMode) -> Result<(SandboxDir, Record), Failure> {
    let id = SandboxId::parse(id).map_err(|e| failure(e.into()))?;
    let dir = StateRoot::new(root).open(&id, mode, READ_LOCK_WAIT).map_err(failure)?;
    let record = dir.read_record().map_err(failure)?;
    Ok((dir, record))
}

/// The stored plan (`plan.json`), if the sandbox has one.
pub(super) fn stored_plan(dir: &SandboxDir) -> Result<Option<LaunchPlan>, Failure> {
    let Some(bytes) = dir.read_file(PLAN_FILE).map_err(failure)? else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&bytes);
    render::load(&text).map(Some).map_err(|e| {
        Failure::other(format!(
            "reading the stored plan {}: {e}",
            dir.path().join(PLAN_FILE).display()
        ))
    })
}

/// The sandbox's cgroup directories, resolved (none without a plan or a cgroup).
fn cgroup_dirs(dir: &SandboxDir, plan: Option<&LaunchPlan>) -> Vec<CgroupDir> {
    plan.map(|p| host::resolve_dirs(p, dir.id().as_str()))
        .unwrap_or_default()
}

/// One call to the sandbox's supervisor on a fresh connection.
fn call(dir: &SandboxDir, req: &Request, timeout: Duration) -> Result<Reply, ClientError> {
    Client::connect(&dir.socket_path(), timeout)?.call(req)
}

/// Whether the supervisor did not answer at all (dead, frozen, gone), as
/// opposed to answering with an error.
fn unanswered(e: &ClientError) -> bool {
    matches!(
        e,
        ClientError::Connect { .. } | ClientError::Timeout { .. } | ClientError::Closed { .. } | ClientError::Io { .. }
    )
}

/// A failed call, in one line naming the sandbox.
fn call_failure(cmd: &str, dir: &SandboxDir, e: ClientError) -> Failure {
    Failure::other(format!("{cmd}: sandbox \"{}\": {e}", dir.id()))
}

/// A reply of the wrong type.
fn unexpected(cmd: &str, r: &Reply) -> Failure {
    Failure::other(format!("{cmd}: unexpected reply \"{}\" from the supervisor", r.name()))
}

fn stopped(cmd: &str, dir: &SandboxDir) -> Failure {
    Failure::other(format!(
        "{cmd}: sandbox \"{}\" is stopped (its workload ended or its supervisor is gone)",
        dir.id()
    ))
}

/// What `kill` signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KillTarget {
    /// The workload.
    Workload,
    /// Every process of the sandbox.
    All,
    /// One process, by its pid inside the sandbox (or its terminal's
    /// foreground process group).
    Pid {
        /// The pid.
        pid: i32,
        /// The foreground process group instead.
        foreground: bool,
    },
}

impl KillTarget {
    /// From `kill`'s flags (clap keeps --all and --pid apart).
    pub(super) fn from_flags(all: bool, pid: Option<i32>, foreground: bool) -> KillTarget {
        match (all, pid) {
            (_, Some(pid)) => KillTarget::Pid { pid, foreground },
            (true, None) => KillTarget::All,
            (false, None) => KillTarget::Workload,
        }
    }
}

/// `kill ID [SIGNAL]`: control call `signal_container` / `signal_process`.
/// When the supervisor cannot answer (dead, or frozen by `pause`), `--all`
/// and SIGKILL are sent from the host: to every process in the sandbox's
/// cgroup and to the supervisor (whose death ends the PID namespace).
#[inline(never)] // see `cli::run`
pub(super) fn kill(root: &Path, id: &str, signal: Option<&str>, target: KillTarget) -> Result<i32, Failure> {
    let sig =
        parse_signal(signal.unwrap_or("TERM")).map_err(|e| Failure::input(SourceDiag::plain(e.to_string(), None)))?;
    let (dir, record) = open(root, id, LockMode::Shared)?;
    let status = record.live_status();
    let request = match target {
        KillTarget::Workload => Request::SignalContainer {
            signal: sig,
            all: false,
        },
        KillTarget::All => Request::SignalContainer { signal: sig, all: true },
        KillTarget::Pid { pid, foreground } => Request::SignalProcess {
            pid,
            signal: sig,
            foreground,
        },
    };
    let why = match status {
        Status::Stopped => "it is stopped".to_string(),
        Status::Paused => "it is paused (its supervisor is frozen and cannot answer)".to_string(),
        Status::Created | Status::Running => match call(&dir, &request, CALL_TIMEOUT) {
            Ok(Reply::Done) => return Ok(0),
            Ok(r) => return Err(unexpected("kill", &r)),
            Err(e) if unanswered(&e) => format!("its supervisor did not answer ({e})"),
            Err(e) => return Err(call_failure("kill", &dir, e)),
        },
    };
    let from_host = matches!(target, KillTarget::All) || (sig == libc::SIGKILL && target == KillTarget::Workload);
    if !from_host {
        return Err(Failure::other(format!(
            "kill: sandbox \"{id}\" cannot be sent {}: {why}; only --all or KILL are sent from the host",
            signal_name(sig)
        )));
    }
    let plan = stored_plan(&dir)?;
    let mut pids = host::cgroup_pids(&cgroup_dirs(&dir, plan.as_ref()));
    if let Some(s) = record.supervisor.as_ref().filter(|s| s.is_alive()) {
        if !pids.contains(&s.pid) {
            pids.push(s.pid);
        }
    }
    if pids.is_empty() {
        return Err(Failure::other(format!(
            "kill: sandbox \"{id}\" has no process left to signal: {why}"
        )));
    }
    host::signal_pids(&pids, sig).map_err(|e| {
        Failure::other(format!(
            "kill: signalling sandbox \"{id}\"'s processes from the host: {e}"
        ))
    })?;
    if status == Status::Paused {
        eprintln!(
            "note: sandbox \"{id}\" is paused: a frozen process handles {} when it is resumed",
            signal_name(sig)
        );
    }
    Ok(0)
}

/// Prints an exit status (as the control protocol spells it) and returns the
/// shell's number for it.
fn report_exit(st: ExitStatus) -> i32 {
    println!(
        "{}",
        serde_json::to_string(&st).expect("an exit status always serialises")
    );
    st.shell_status()
}

/// The workload's recorded exit: the supervisor's `exit` file, else the
/// record's.
fn recorded_exit(dir: &SandboxDir, record: &Record) -> Result<Option<ExitStatus>, Failure> {
    Ok(read_exit(dir).map_err(failure)?.or(record.exit))
}

/// `wait ID [--pid N]`: blocks (holding no lock) until the workload, or
/// process N, ends; prints its status and exits with it. A stopped
/// sandbox's recorded status is answered at once.
#[inline(never)] // see `cli::run`
pub(super) fn wait(root: &Path, id: &str, pid: Option<i32>) -> Result<i32, Failure> {
    let (mut dir, record) = open(root, id, LockMode::Shared)?;
    dir.unlock();
    let no_status = |dir: &SandboxDir| {
        Failure::other(format!(
            "wait: sandbox \"{}\" stopped without a recorded exit status (its supervisor was killed)",
            dir.id()
        ))
    };
    if record.live_status() == Status::Stopped {
        if let Some(p) = pid {
            return Err(Failure::other(format!(
                "wait: sandbox \"{id}\" is stopped; process {p}'s status is not kept (only the workload's is)"
            )));
        }
        return recorded_exit(&dir, &record)?
            .map(report_exit)
            .ok_or_else(|| no_status(&dir));
    }
    let req = pid.map_or(Request::Wait {}, |pid| Request::WaitPid { pid });
    match call(&dir, &req, CALL_TIMEOUT) {
        Ok(Reply::Exited { exit, .. }) => Ok(report_exit(exit)),
        Ok(r) => Err(unexpected("wait", &r)),
        // The supervisor ended meanwhile: it records the workload's status
        // before it exits.
        Err(e) if unanswered(&e) && pid.is_none() => {
            let record = dir.read_record().map_err(failure)?;
            match recorded_exit(&dir, &record)? {
                Some(st) => Ok(report_exit(st)),
                None if record.live_status() == Status::Stopped => Err(no_status(&dir)),
                None => Err(call_failure("wait", &dir, e)),
            }
        }
        Err(e) => Err(call_failure("wait", &dir, e)),
    }
}

/// One row of `ps`.
#[derive(Debug, Serialize)]
struct PsRow {
    /// The pid inside the sandbox.
    pid: i32,
    /// The pid on the host, where the sandbox's cgroup says.
    host_pid: Option<i32>,
    ppid: i32,
    uid: u32,
    state: String,
    args: Vec<String>,
}

/// Host pids of the sandbox's processes by their pid inside it.
fn pid_map(dirs: &[CgroupDir]) -> Vec<(i32, i32)> {
    host::cgroup_pids(dirs)
        .into_iter()
        .filter_map(|h| Some((host::sandbox_pid(h)?, h)))
        .collect()
}

/// The sandbox's processes read from the host (`/proc` of the pids in its
/// cgroup): what `ps` shows when the supervisor cannot answer.
fn processes_from_host(map: &[(i32, i32)]) -> Vec<ProcessInfo> {
    let proc_root = Path::new("/proc");
    let mut out: Vec<ProcessInfo> = map
        .iter()
        .filter_map(|&(inner, h)| {
            let mut p = procfs::process_info(proc_root, h)?;
            p.pid = inner;
            p.ppid = map.iter().find(|(_, hh)| *hh == p.ppid).map_or(0, |(i, _)| *i);
            Some(p)
        })
        .collect();
    out.sort_by_key(|p| p.pid);
    out
}

/// `ps ID`: control call `ps`; a paused sandbox (whose supervisor is frozen)
/// is read from the host instead.
#[inline(never)] // see `cli::run`
pub(super) fn ps(root: &Path, id: &str, format: super::PsFormat) -> Result<i32, Failure> {
    let (dir, record) = open(root, id, LockMode::Shared)?;
    let status = record.live_status();
    if status == Status::Stopped {
        return Err(stopped("ps", &dir));
    }
    let plan = stored_plan(&dir)?;
    let dirs = cgroup_dirs(&dir, plan.as_ref());
    let map = pid_map(&dirs);
    let processes = if status == Status::Paused {
        processes_from_host(&map)
    } else {
        match call(&dir, &Request::Ps {}, CALL_TIMEOUT) {
            Ok(Reply::Processes { processes }) => processes,
            Ok(r) => return Err(unexpected("ps", &r)),
            Err(e) if unanswered(&e) && !map.is_empty() => processes_from_host(&map),
            Err(e) => return Err(call_failure("ps", &dir, e)),
        }
    };
    let rows: Vec<PsRow> = processes
        .into_iter()
        .map(|p| PsRow {
            host_pid: map.iter().find(|(i, _)| *i == p.pid).map(|(_, h)| *h),
            pid: p.pid,
            ppid: p.ppid,
            uid: p.uid,
            state: p.state,
            args: p.args,
        })
        .collect();
    let out = match format {
        super::PsFormat::Detail => {
            let mut s = serde_json::to_string_pretty(&rows).expect("rows always serialise");
            s.push('\n');
            s
        }
        super::PsFormat::Json => {
            let supervisor = record.supervisor.as_ref().map_or(0, |s| s.pid);
            let pids: Vec<i32> = rows
                .iter()
                .filter_map(|r| r.host_pid.or_else(|| super::create::host_pid(supervisor, r.pid)))
                .collect();
            let mut s = serde_json::to_string(&pids).expect("pids always serialise");
            s.push('\n');
            s
        }
        super::PsFormat::Table => ps_table(&rows),
    };
    print!("{out}");
    Ok(0)
}

fn ps_table(rows: &[PsRow]) -> String {
    let mut cells = vec![["PID", "HOST PID", "PPID", "UID", "STATE", "COMMAND"].map(String::from)];
    for r in rows {
        cells.push([
            r.pid.to_string(),
            r.host_pid.map_or("-".into(), |h| h.to_string()),
            r.ppid.to_string(),
            r.uid.to_string(),
            r.state.clone(),
            r.args.join(" "),
        ]);
    }
    super::sandbox::columns(&cells, 4)
}

/// What `stacks` prints.
#[derive(Debug, Serialize)]
struct StacksOut {
    /// The supervisor's own state (none when it could not answer).
    supervisor: Option<SupervisorState>,
    /// Every other process.
    processes: Vec<ProcessStack>,
}

/// `stacks ID`: control call `stacks`; a paused sandbox is read from the host.
#[inline(never)] // see `cli::run`
pub(super) fn stacks(root: &Path, id: &str, format: StacksFormat) -> Result<i32, Failure> {
    let (dir, record) = open(root, id, LockMode::Shared)?;
    let status = record.live_status();
    if status == Status::Stopped {
        return Err(stopped("stacks", &dir));
    }
    let from_host = |dir: &SandboxDir| -> Result<StacksOut, Failure> {
        let plan = stored_plan(dir)?;
        let map = pid_map(&cgroup_dirs(dir, plan.as_ref()));
        let mut processes: Vec<ProcessStack> = map
            .iter()
            .filter_map(|&(inner, h)| {
                let mut s = procfs::process_stack(Path::new("/proc"), h)?;
                s.pid = inner;
                Some(s)
            })
            .collect();
        processes.sort_by_key(|p| p.pid);
        Ok(StacksOut {
            supervisor: None,
            processes,
        })
    };
    let out = if status == Status::Paused {
        from_host(&dir)?
    } else {
        match call(&dir, &Request::Stacks {}, CALL_TIMEOUT) {
            Ok(Reply::Stacks { supervisor, processes }) => StacksOut {
                supervisor: Some(supervisor),
                processes,
            },
            Ok(r) => return Err(unexpected("stacks", &r)),
            Err(e) => return Err(call_failure("stacks", &dir, e)),
        }
    };
    let text = match format {
        StacksFormat::Json => {
            let mut s = serde_json::to_string_pretty(&out).expect("stacks always serialise");
            s.push('\n');
            s
        }
        StacksFormat::Text => stacks_text(&out, status),
    };
    print!("{text}");
    Ok(0)
}

fn stacks_text(out: &StacksOut, status: Status) -> String {
    let mut s = String::new();
    match &out.supervisor {
        Some(v) => s.push_str(&format!(
            "supervisor: {}, {} client(s), {} parked call(s), {} child(ren)\n",
            v.status, v.clients, v.parked, v.children
        )),
        None => s.push_str(&format!(
            "supervisor: {status} (frozen: read from the host, not asked)\n"
        )),
    }
    for p in &out.processes {
        s.push_str(&format!(
            "\npid {} ({}) state {} wchan {}\n",
            p.pid,
            p.command,
            p.state,
            p.wchan.as_deref().unwrap_or("-")
        ));
        match &p.kernel_stack {
            Some(k) => {
                for l in k.lines() {
                    s.push_str(&format!("    {l}\n"));
                }
            }
            None => s.push_str("    (kernel stack not readable)\n"),
        }
    }
    s
}

/// A Go-style duration as runc's `--interval` takes it: a whole number and
/// a unit (`ms`, `s`, `m`, `h`; seconds when none), at least 1 ms.
pub(super) fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("--interval {s:?}: not a duration (write e.g. 5s, 500ms, 1m)"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => return Err(format!("--interval {s:?}: unknown unit {unit:?} (use ms, s, m or h)")),
    };
    if d < Duration::from_millis(1) {
        return Err(format!("--interval {s:?}: must be at least 1ms"));
    }
    Ok(d)
}

/// `events ID`: polls control call `stats` every interval (holding no lock)
/// and prints runc's event lines (`oom` when the OOM-kill count rises);
/// `--stats` prints one sample and exits. Ends, exit 0, when the sandbox
/// stops. A paused sandbox, or one whose supervisor leaves statistics to the
/// host (it answers `stats` with an error), is sampled from the host: its
/// cgroup's files (`exec::control::stats`).
#[inline(never)] // see `cli::run`
pub(super) fn events(root: &Path, id: &str, once: bool, interval: &str) -> Result<i32, Failure> {
    let interval = parse_duration(interval).map_err(|e| Failure::input(SourceDiag::plain(e, None)))?;
    let (mut dir, record) = open(root, id, LockMode::Shared)?;
    dir.unlock();
    if record.live_status() == Status::Stopped {
        return if once { Err(stopped("events", &dir)) } else { Ok(0) };
    }
    let plan = stored_plan(&dir)?;
    let dirs = cgroup_dirs(&dir, plan.as_ref());
    let mut stream = EventStream::default();
    let mut from_host = false;
    let current = |dir: &SandboxDir| dir.read_record().map(|r| r.live_status()).unwrap_or(Status::Stopped);
    loop {
        let status = current(&dir);
        if status == Status::Stopped {
            return Ok(0);
        }
        let sample: Stats = if status == Status::Paused || from_host {
            stats::sample(&dirs)
        } else {
            match call(&dir, &Request::Stats {}, CALL_TIMEOUT) {
                Ok(Reply::Stats { stats }) => stats,
                Ok(r) => return Err(unexpected("events", &r)),
                // A supervisor that leaves statistics to the host (they are
                // the cgroup's files): read them here from now on.
                Err(ClientError::Remote { .. }) if !dirs.is_empty() => {
                    from_host = true;
                    stats::sample(&dirs)
                }
                Err(_) if current(&dir) == Status::Stopped => return Ok(0),
                Err(e) => return Err(call_failure("events", &dir, e)),
            }
        };
        let mut out = std::io::stdout().lock();
        for ev in stream.on_sample(id, &sample, true) {
            if out.write_all(ev.line().as_bytes()).and_then(|_| out.flush()).is_err() {
                return Ok(0); // the reader went away
            }
        }
        drop(out);
        if once {
            return Ok(0);
        }
        // Sleep in slices, so a stopped sandbox ends the stream promptly.
        let start = Instant::now();
        while start.elapsed() < interval {
            std::thread::sleep((interval - start.elapsed()).min(Duration::from_millis(100)));
            if record.supervisor.as_ref().is_some_and(|s| !s.is_alive()) {
                break;
            }
        }
    }
}

/// The sandbox's freezer, or why it has none (one line: what is missing,
/// what fixes it).
fn freezer_of(cmd: &str, dir: &SandboxDir) -> Result<Freezer, Failure> {
    let id = dir.id();
    let Some(plan) = stored_plan(dir)? else {
        return Err(Failure::other(format!(
            "{cmd}: sandbox \"{id}\" has no stored plan ({PLAN_FILE}), so its cgroup is unknown"
        )));
    };
    if plan.cgroup.is_none() {
        return Err(Failure::other(format!(
            "{cmd}: sandbox \"{id}\" has no cgroup to freeze (its plan sets no cgroup limit); a policy or \
             spec that gives it a cgroup (any limit: [limits] pids = 1024, or linux.resources) fixes it"
        )));
    }
    Freezer::of(&cgroup_dirs(dir, Some(&plan))).ok_or_else(|| {
        Failure::other(format!(
            "{cmd}: sandbox \"{id}\" has no freezer: its cgroup is on v1 hierarchies without the freezer \
             controller; mount it (/sys/fs/cgroup/freezer) and create the sandbox again"
        ))
    })
}

/// `pause ID`: freezes the sandbox's cgroup from the host (the supervisor
/// lives in it and would freeze itself), waits until the kernel says it is
/// frozen, and records `paused`.
#[inline(never)] // see `cli::run`
pub(super) fn pause(root: &Path, id: &str) -> Result<i32, Failure> {
    let (dir, mut record) = open(root, id, LockMode::Exclusive)?;
    let status = record.live_status();
    if status != Status::Running {
        return Err(Failure::other(format!(
            "pause: sandbox \"{id}\" is {status}, not running; nothing was changed"
        )));
    }
    let freezer = freezer_of("pause", &dir)?;
    freezer
        .freeze(FREEZE_TIMEOUT)
        .map_err(|e| Failure::other(format!("pause: sandbox \"{id}\": {e}")))?;
    record.status = Status::Paused;
    if let Err(e) = dir.write_record(&record) {
        let _ = freezer.thaw();
        return Err(Failure::other(format!("pause: sandbox \"{id}\" was thawed again: {e}")));
    }
    Ok(0)
}

/// `resume ID`: thaws a paused sandbox and records `running`.
#[inline(never)] // see `cli::run`
pub(super) fn resume(root: &Path, id: &str) -> Result<i32, Failure> {
    let (dir, mut record) = open(root, id, LockMode::Exclusive)?;
    let status = record.live_status();
    if status != Status::Paused {
        return Err(Failure::other(format!(
            "resume: sandbox \"{id}\" is {status}, not paused; nothing was changed"
        )));
    }
    let freezer = freezer_of("resume", &dir)?;
    freezer
        .thaw()
        .map_err(|e| Failure::other(format!("resume: sandbox \"{id}\": {e}")))?;
    record.status = Status::Running;
    dir.write_record(&record).map_err(failure)?;
    Ok(0)
}

/// `checkpoint ID` and `restore ID`: `criu check` first; where it fails (as
/// Debian's criu 3.17 does on this machine's kernel), one line saying why
/// and what is needed, and the sandbox is untouched. Where it passes, the
/// control call (the supervisor answers `unsupported` until CRIU is wired).
fn criu_call(root: &Path, id: &str, cmd: &str, valid: Status, req: impl FnOnce() -> Request) -> Result<i32, Failure> {
    let (dir, record) = open(root, id, LockMode::Exclusive)?;
    let status = record.live_status();
    if status != valid {
        return Err(Failure::other(format!(
            "{cmd}: sandbox \"{id}\" is {status}, not {valid}; nothing was changed"
        )));
    }
    host::criu_check().map_err(|why| {
        Failure::other(format!(
            "{cmd}: CRIU cannot run on this host, so sandbox \"{id}\" was left untouched: {why}; {cmd} needs a \
             CRIU release that supports this kernel (`criu check` must pass)"
        ))
    })?;
    match call(&dir, &req(), CALL_TIMEOUT) {
        Ok(Reply::Done) => Ok(0),
        Ok(r) => Err(unexpected(cmd, &r)),
        Err(e) => Err(call_failure(cmd, &dir, e)),
    }
}

/// An image path made absolute from the current directory (the supervisor
/// does not share it).
fn absolute(p: &Path) -> Result<PathBuf, Failure> {
    if p.is_absolute() {
        return Ok(p.to_path_buf());
    }
    std::env::current_dir()
        .map(|d| crate::policy::normalize(&d.join(p)))
        .map_err(|e| {
            Failure::other(format!(
                "reading the current directory (to make {} absolute): {e}",
                p.display()
            ))
        })
}

/// `checkpoint [--image-path D] [--leave-running] ID`.
#[inline(never)] // see `cli::run`
pub(super) fn checkpoint(root: &Path, id: &str, image_path: &Path, leave_running: bool) -> Result<i32, Failure> {
    let image_path = absolute(image_path)?;
    criu_call(root, id, "checkpoint", Status::Running, || Request::Checkpoint {
        image_path,
        leave_running,
    })
}

/// `restore [--image-path D] ID`.
#[inline(never)] // see `cli::run`
pub(super) fn restore(root: &Path, id: &str, image_path: &Path) -> Result<i32, Failure> {
    let image_path = absolute(image_path)?;
    criu_call(root, id, "restore", Status::Created, || Request::Restore { image_path })
}

/// `delete [--force] ID`: a stopped or created sandbox's cgroups and state
/// directory are removed (a created one is killed first, as runc does); a
/// running or paused one only with `--force`, which asks the
/// supervisor to `destroy` (or SIGKILLs it from the host when it cannot
/// answer, thawing a paused one so it can die) and waits, bounded, until it
/// is gone. A directory without a record (a `create` killed half-way) is
/// removed. An unknown id: exit 1, or success with `--force`.
#[inline(never)] // see `cli::run`
pub(super) fn delete(root: &Path, id: &str, force: bool) -> Result<i32, Failure> {
    let sid = SandboxId::parse(id).map_err(|e| failure(e.into()))?;
    let dir = match StateRoot::new(root).open(&sid, LockMode::Exclusive, READ_LOCK_WAIT) {
        Err(StateError::NotFound { .. }) if force => return Ok(0),
        r => r.map_err(failure)?,
    };
    let plan = match stored_plan(&dir) {
        Ok(p) => p,
        Err(f) if force => {
            eprintln!("warning: {}", f.diag.message);
            None
        }
        Err(f) => return Err(f),
    };
    let dirs = cgroup_dirs(&dir, plan.as_ref());
    // The state a poststop hook gets: only for a sandbox that was created.
    let mut stopped_state = None;
    match dir.read_record() {
        Ok(record) => {
            if plan
                .as_ref()
                .is_some_and(|p| exec::hooks::has(p, &[HookPhase::Poststop]))
            {
                let mut s = exec::hooks::HookState::of(&record.oci_state());
                s.status = Status::Stopped.as_str();
                s.pid = None;
                stopped_state = Some(s);
            }
            let status = record.live_status();
            if status != Status::Stopped {
                // runc's rule: a created sandbox (nothing started) is
                // deleted without --force; a running or paused one is not.
                if !force && status != Status::Created {
                    return Err(Failure::other(format!(
                        "delete: sandbox \"{id}\" is {status}; stop it first (kill), or use delete --force to kill \
                         it; nothing was changed"
                    )));
                }
                kill_sandbox(&dir, &record, &dirs)?;
            }
        }
        // A create killed before it recorded the sandbox: what it left goes.
        Err(StateError::Incomplete { .. }) => {}
        Err(e) if force => eprintln!("warning: {e}"),
        Err(e) => return Err(failure(e)),
    }
    // Stragglers in the cgroup (a sandbox without a PID namespace of its
    // own outlives its supervisor): killed, thawed first if frozen.
    let left = host::cgroup_pids(&dirs);
    if !left.is_empty() {
        let _ = host::signal_pids(&left, libc::SIGKILL);
        if let Some(f) = Freezer::of(&dirs) {
            let _ = f.thaw();
        }
    }
    let errors = host::remove_cgroup_dirs(&dirs, KILL_WAIT);
    if let Some(e) = errors.first() {
        return Err(Failure::other(format!(
            "delete: sandbox \"{id}\": {e}; its state is kept so that delete can be run again"
        )));
    }
    dir.remove().map_err(failure)?;
    // The runtime spec: poststop hooks run once the sandbox is deleted,
    // before delete returns; a failure is a warning (runc's rule).
    if let (Some(plan), Some(state)) = (&plan, &stopped_state) {
        for w in exec::hooks::run_phase(&mut exec::linux::LinuxBackend, plan, HookPhase::Poststop, state) {
            eprintln!("warning: delete {id}: {w}");
        }
    }
    Ok(0)
}

/// Ends a live sandbox for `delete --force`: `destroy`, or SIGKILL from the
/// host when the supervisor cannot answer (a paused sandbox is killed, then
/// thawed: a frozen v1 task dies only once thawed); then waits until the
/// supervisor is gone.
fn kill_sandbox(dir: &SandboxDir, record: &Record, dirs: &[CgroupDir]) -> Result<(), Failure> {
    let id = dir.id();
    let freezer = Freezer::of(dirs);
    let frozen =
        record.live_status() == Status::Paused || freezer.as_ref().is_some_and(|f| f.is_frozen().unwrap_or(false));
    let destroyed = !frozen && matches!(call(dir, &Request::Destroy {}, DESTROY_TIMEOUT), Ok(Reply::Done));
    let supervisor = record.supervisor.as_ref().filter(|s| s.is_alive());
    if !destroyed {
        let mut pids = host::cgroup_pids(dirs);
        pids.extend(supervisor.map(|s| s.pid));
        host::signal_pids(&pids, libc::SIGKILL)
            .map_err(|e| Failure::other(format!("delete: killing sandbox \"{id}\" from the host: {e}")))?;
    }
    if frozen {
        if let Some(f) = &freezer {
            f.thaw()
                .map_err(|e| Failure::other(format!("delete: thawing sandbox \"{id}\" so it can die: {e}")))?;
        }
    }
    let start = Instant::now();
    while supervisor.is_some_and(|s| s.is_alive()) {
        if start.elapsed() >= KILL_WAIT {
            return Err(Failure::other(format!(
                "delete: sandbox \"{id}\"'s supervisor (pid {}) is still alive {KILL_WAIT:?} after SIGKILL; its \
                 state is kept",
                supervisor.map_or(0, |s| s.pid)
            )));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}

pub(super) use super::args::UpdateRequest;

/// A size as runc's `update --memory` takes it: bytes, or a number with
/// `k`, `m`, `g` or `t` (binary, an optional `b`); `-1` is unlimited.
pub(super) fn parse_size(flag: &str, s: &str) -> Result<i64, String> {
    let t = s.trim().to_ascii_lowercase();
    if t == "-1" {
        return Ok(-1);
    }
    let t = t.strip_suffix('b').unwrap_or(&t);
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: i64 = num
        .parse()
        .map_err(|_| format!("{flag} {s:?}: not a size (write bytes, or e.g. 512m, 1g; -1 for unlimited)"))?;
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return Err(format!("{flag} {s:?}: unknown unit {unit:?} (use k, m, g or t)")),
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("{flag} {s:?}: too large"))
}

/// The sandbox's current limits as OCI LinuxResources JSON: what `update`
/// starts from, so that what it is not asked to change stays.
fn current_resources(l: &crate::plan::CgroupLimits) -> serde_json::Value {
    use serde_json::{json, Map, Value};
    let mut res = Map::new();
    let mut put = |section: &str, key: &str, v: Option<Value>| {
        if let Some(v) = v {
            res.entry(section)
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("sections are objects")
                .insert(key.into(), v);
        }
    };
    put("memory", "limit", l.memory.as_ref().map(|m| json!(m.value.0)));
    put("memory", "swap", l.memory_swap.as_ref().map(|m| json!(m.value.0)));
    put(
        "memory",
        "reservation",
        l.memory_reservation.as_ref().map(|m| json!(m.value.0)),
    );
    put(
        "memory",
        "swappiness",
        l.memory_swappiness.as_ref().map(|v| json!(v.value)),
    );
    put(
        "memory",
        "disableOOMKiller",
        l.memory_oom_kill_disable.as_ref().map(|v| json!(v.value)),
    );
    put("cpu", "shares", l.cpu_shares.as_ref().map(|v| json!(v.value)));
    put("cpu", "quota", l.cpu_quota.as_ref().map(|v| json!(v.value)));
    put("cpu", "period", l.cpu_period.as_ref().map(|v| json!(v.value)));
    put("cpu", "cpus", l.cpuset_cpus.as_ref().map(|v| json!(v.value)));
    put("cpu", "mems", l.cpuset_mems.as_ref().map(|v| json!(v.value)));
    put("pids", "limit", l.pids.as_ref().map(|v| json!(v.value)));
    put(
        "memory",
        "kernelTCP",
        l.memory_kernel_tcp.as_ref().map(|m| json!(m.value.0)),
    );
    Value::Object(res)
}

/// Overlays `top` on `base`, object by object.
fn overlay(base: &mut serde_json::Value, top: serde_json::Value) {
    match (base, top) {
        (serde_json::Value::Object(b), serde_json::Value::Object(t)) => {
            for (k, v) in t {
                match b.get_mut(&k) {
                    Some(slot) if slot.is_object() && v.is_object() => overlay(slot, v),
                    _ => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, t) => *b = t,
    }
}

/// Reads `-r FILE` (or stdin for `-`) as a JSON object.
fn read_resources(p: &Path) -> Result<serde_json::Value, Failure> {
    let text = if p == Path::new("-") {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin().lock(), &mut s).map_err(|e| {
            Failure::input(SourceDiag::plain(
                format!("update: reading resources from stdin: {e}"),
                None,
            ))
        })?;
        s
    } else {
        crate::vocab::read_input(p).map_err(|e| {
            Failure::input(SourceDiag::plain(
                format!("update: reading resources {}: {e}", p.display()),
                None,
            ))
        })?
    };
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        Failure::input(SourceDiag::plain(
            format!("update: {}: not JSON: {e}", p.display()),
            Some("write OCI LinuxResources, e.g. {\"memory\":{\"limit\":536870912},\"pids\":{\"limit\":100}}".into()),
        ))
    })?;
    if !v.is_object() {
        return Err(Failure::input(SourceDiag::plain(
            format!("update: {}: LinuxResources must be a JSON object", p.display()),
            None,
        )));
    }
    Ok(v)
}

/// Keeps an unchanged limit's value and origin as they were.
fn keep<T: PartialEq + Clone>(new: &mut Option<crate::plan::Sourced<T>>, old: &Option<crate::plan::Sourced<T>>) {
    if let (Some(n), Some(o)) = (new.as_ref(), old.as_ref()) {
        if n.value == o.value {
            *new = Some(o.clone());
        }
    }
}

/// A changed limit's origin: the update request, not a spec.
fn from_update(o: &mut crate::vocab::Origin) {
    if let crate::vocab::Origin::Spec(p) = o {
        *o = crate::vocab::Origin::Cli(format!("update {p}"));
    }
}

/// The policy a sandbox was created under, as stored with its state: the
/// ceiling `update` and `exec` cut requests to. `what` names the command.
pub(super) fn stored_policy(dir: &SandboxDir, what: &str, id: &str) -> Result<crate::policy::Policy, Failure> {
    let sources = crate::exec::control::state::load_policy_sources(dir)
        .map_err(failure)?
        .ok_or_else(|| {
            Failure::other(format!(
                "{what}: sandbox \"{id}\" has no stored policy ({}), so its ceiling is unknown; nothing was changed",
                crate::exec::control::state::POLICY_FILE
            ))
        })?;
    crate::policy::load_resolved(
        sources
            .into_iter()
            .map(|s| crate::policy::Source {
                name: s.name,
                dir: None,
                text: s.text,
            })
            .collect(),
    )
    .map_err(|e| Failure::input(e.to_diag()))
}

/// `update ID`: the request (the current limits, overlaid by `-r` and then
/// by the flags) is cut to the stored policy's ceiling exactly as compile
/// cuts a spec's (`plan::compile::recompile_cgroup`: refused or clamped per
/// `on_excess`, with an error located in the request and the policy), the
/// changed cgroup files are written, and the stored plan records the new
/// limits.
#[inline(never)] // see `cli::run`
pub(super) fn update(root: &Path, id: &str, req: &UpdateRequest) -> Result<i32, Failure> {
    use serde_json::json;
    let input = |e: String| Failure::input(SourceDiag::plain(e, None));
    // The request is checked before anything is touched.
    let mut top = match &req.resources {
        Some(p) => read_resources(p)?,
        None => json!({}),
    };
    let mut flags = json!({});
    let mut set = |section: &str, key: &str, v: serde_json::Value| overlay(&mut flags, json!({ section: { key: v } }));
    if let Some(m) = &req.memory {
        set("memory", "limit", json!(parse_size("--memory", m).map_err(input)?));
    }
    if let Some(m) = &req.memory_swap {
        set("memory", "swap", json!(parse_size("--memory-swap", m).map_err(input)?));
    }
    if let Some(p) = req.pids_limit {
        set("pids", "limit", json!(p));
    }
    if let Some(q) = req.cpu_quota {
        set("cpu", "quota", json!(q));
    }
    if let Some(p) = req.cpu_period {
        set("cpu", "period", json!(p));
    }
    if let Some(s) = req.cpu_shares {
        set("cpu", "shares", json!(s));
    }
    overlay(&mut top, flags);
    if top.as_object().is_some_and(|o| o.is_empty()) {
        return Err(input(
            "update: nothing to change: give -r FILE or a flag (--memory, --pids-limit, --cpu-quota, ...)".into(),
        ));
    }

    let (dir, mut record) = open(root, id, LockMode::Exclusive)?;
    let status = record.live_status();
    if status == Status::Stopped {
        return Err(stopped("update", &dir));
    }
    let Some(mut plan) = stored_plan(&dir)? else {
        return Err(Failure::other(format!(
            "update: sandbox \"{id}\" has no stored plan ({PLAN_FILE}); nothing was changed"
        )));
    };
    let Some(old) = plan.cgroup.clone() else {
        return Err(Failure::other(format!(
            "update: sandbox \"{id}\" has no cgroup (its plan sets no limit), and update changes only the limits \
             of the cgroup a sandbox was created with; nothing was changed"
        )));
    };
    let policy = stored_policy(&dir, "update", id)?;

    let mut res = current_resources(&old.limits);
    overlay(&mut res, top);
    let mut linux = json!({ "resources": res });
    if matches!(old.path.from, crate::vocab::Origin::Spec(_)) {
        linux["cgroupsPath"] = json!(format!("/{}", old.path.value));
    }
    let text = serde_json::to_string_pretty(&json!({ "ociVersion": oci_spec::runtime::VERSION, "linux": linux }))
        .expect("JSON values serialise");
    let spec: oci_spec::runtime::Spec = serde_json::from_str(&text)
        .map_err(|e| input(format!("update: the request is not valid OCI LinuxResources: {e}")))?;
    let spec = crate::spec::SpecInput {
        name: "update request".into(),
        text,
        spec: Box::new(spec),
        dir: None,
        builtin: false,
    };
    let host =
        crate::exec::detect::detect().map_err(|e| Failure::other(format!("update: detecting host facts: {e}")))?;
    let crate::plan::compile::Recompiled {
        cgroup: new,
        clamps,
        warnings,
    } = crate::plan::compile::recompile_cgroup(&policy, &spec, &host, old.limits.devices.clone())
        .map_err(|e| Failure::input(e.to_diag(&policy, &spec)))?;
    let Some(mut new) = new else {
        return Err(Failure::other(format!(
            "update: the request leaves sandbox \"{id}\" without any limit, and its cgroup cannot be removed while \
             it runs; nothing was changed"
        )));
    };
    if let Some(d) = new.dirs.iter().find(|d| !old.dirs.iter().any(|o| o.path == d.path)) {
        return Err(Failure::other(format!(
            "update: the request needs the cgroup directory {} ({}), which sandbox \"{id}\" was created without; \
             update changes only the controllers it has; nothing was changed",
            host::resolve(&d.path, id).display(),
            d.controllers.join(", ")
        )));
    }
    for w in &warnings {
        eprintln!("warning: {}", w.line(&policy));
    }
    // What did not change keeps its origin; what did is the request's.
    let (l, o) = (&mut new.limits, &old.limits);
    keep(&mut l.memory, &o.memory);
    keep(&mut l.memory_swap, &o.memory_swap);
    keep(&mut l.memory_reservation, &o.memory_reservation);
    keep(&mut l.memory_swappiness, &o.memory_swappiness);
    keep(&mut l.memory_oom_kill_disable, &o.memory_oom_kill_disable);
    keep(&mut l.cpu_shares, &o.cpu_shares);
    keep(&mut l.cpu_quota, &o.cpu_quota);
    keep(&mut l.cpu_period, &o.cpu_period);
    keep(&mut l.cpuset_cpus, &o.cpuset_cpus);
    keep(&mut l.cpuset_mems, &o.cpuset_mems);
    keep(&mut l.pids, &o.pids);
    keep(&mut l.memory_kernel_tcp, &o.memory_kernel_tcp);
    let mut changed = Vec::new();
    for w in &mut new.writes {
        // By file and value: a devices cgroup has one write per rule to
        // the same file.
        match old.writes.iter().find(|o| o.file == w.file && o.value == w.value) {
            Some(o) => w.from = o.from.clone(),
            _ => {
                from_update(&mut w.from);
                changed.push((host::resolve(&w.file, id), w.value.clone()));
            }
        }
    }
    for s in [
        l_origin(&mut new.limits.memory),
        l_origin(&mut new.limits.memory_swap),
        l_origin(&mut new.limits.memory_reservation),
        l_origin(&mut new.limits.memory_swappiness),
        l_origin(&mut new.limits.memory_oom_kill_disable),
        l_origin(&mut new.limits.cpu_shares),
        l_origin(&mut new.limits.cpu_quota),
        l_origin(&mut new.limits.cpu_period),
        l_origin(&mut new.limits.pids),
        l_origin(&mut new.limits.memory_kernel_tcp),
    ]
    .into_iter()
    .flatten()
    {
        from_update(s);
    }
    write_limits(id, &changed)?;
    plan.clamps.retain(|c| !c.field.starts_with("cgroup.limits."));
    plan.clamps.extend(clamps);
    plan.cgroup = Some(new);
    let json = render::render(&plan, render::Format::Json);
    dir.write_file(PLAN_FILE, json.as_bytes()).map_err(failure)?;
    if record.plan_hash.is_some() {
        record.plan_hash = Some(render::hash(&plan));
        dir.write_record(&record).map_err(failure)?;
    }
    Ok(0)
}

/// The origin of a limit, when set.
fn l_origin<T>(s: &mut Option<crate::plan::Sourced<T>>) -> Option<&mut crate::vocab::Origin> {
    s.as_mut().map(|s| &mut s.from)
}

/// Writes the changed cgroup files. The kernel checks each write against
/// the others (v1 refuses a memory limit above memory+swap, and the
/// reverse): a write refused is tried again after the rest.
fn write_limits(id: &str, changed: &[(PathBuf, String)]) -> Result<(), Failure> {
    let mut pending: Vec<&(PathBuf, String)> = changed.iter().collect();
    for round in 0..2 {
        let mut failed = Vec::new();
        for w in pending {
            if let Err(e) = std::fs::write(&w.0, &w.1) {
                if round == 1 {
                    return Err(Failure::other(format!(
                        "update: sandbox \"{id}\": writing {} = {}: {e} (the files before it were written; the \
                         stored plan is unchanged)",
                        w.0.display(),
                        w.1
                    )));
                }
                failed.push(w);
            }
        }
        if failed.is_empty() {
            return Ok(());
        }
        pending = failed;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        for bad in ["", "s", "5x", "0ms", "-1s", "1.5s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_and_the_request_overlay() {
        assert_eq!(parse_size("--memory", "512m").unwrap(), 512 << 20);
        assert_eq!(parse_size("--memory", "1G").unwrap(), 1 << 30);
        assert_eq!(parse_size("--memory", "1gb").unwrap(), 1 << 30);
        assert_eq!(parse_size("--memory", "4096").unwrap(), 4096);
        assert_eq!(parse_size("--memory-swap", "-1").unwrap(), -1);
        assert!(parse_size("--memory", "1x").is_err());
        assert!(parse_size("--memory", "").is_err());
        let mut base = serde_json::json!({"memory": {"limit": 1, "swap": 2}, "pids": {"limit": 5}});
        overlay(
            &mut base,
            serde_json::json!({"memory": {"limit": 3}, "cpu": {"shares": 7}}),
        );
        assert_eq!(
            base,
            serde_json::json!({"memory": {"limit": 3, "swap": 2}, "pids": {"limit": 5}, "cpu": {"shares": 7}})
        );
    }

    #[test]
    fn kill_targets() {
        assert_eq!(KillTarget::from_flags(false, None, false), KillTarget::Workload);
        assert_eq!(KillTarget::from_flags(true, None, false), KillTarget::All);
        assert_eq!(
            KillTarget::from_flags(false, Some(7), true),
            KillTarget::Pid {
                pid: 7,
                foreground: true
            }
        );
    }
}
