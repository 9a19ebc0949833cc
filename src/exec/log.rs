//! The sandbox's logs: what the launcher and the supervisor did, written
//! through `tracing` to the log files the plan donates (policy `[logs]`).
//!
//! The interpreter emits `tracing` events (each step as it begins, failures,
//! the workload's start and exit, forwarded signals; each op at debug level).
//! [`FdLogger`], a minimal subscriber installed only when the plan has a log
//! fd, formats each event as one line and writes it with one `write(2)` (the
//! launcher and the supervisor append to the same files; `O_APPEND` keeps
//! each line whole) to:
//! - `log` — info and above (steps, failures, exit status);
//! - `debug_log` — the same, plus every op at debug level;
//! - `user_log` — events with target [`USER`] only: what the workload-facing
//!   side should see (the workload started, its exit status, why it could
//!   not start, signals forwarded to it).
//!
//! Lines look like
//! `2026-12-01T17:08:05.123456Z supervisor[1] INFO step mounts`.
//!
//! With no log configured no subscriber is installed, and each event costs
//! one relaxed atomic load (tracing's global level filter, off). No threads:
//! the state is behind an uncontended mutex. Events emitted before the log
//! files are opened (the launcher's first steps) are held and written when
//! the fd is known. The workload (a `CLONE_VM` child sharing the
//! supervisor's memory until its exec) never logs: [`mute`] is set around it.

use std::fmt::{self, Write as _};
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};

use crate::plan::{Actor, FdRole, LaunchPlan};

/// The target of events meant for the user log.
pub const USER: &str = "sandboxctl::user";

/// Held lines are dropped beyond this many bytes per log (a log file that is
/// never opened, as in a rollback before `open_fds`).
const PENDING_MAX: usize = 64 * 1024;

/// One of the three logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogKind {
    /// Policy `logs.log`.
    Log = 0,
    /// Policy `logs.debug_log`.
    Debug = 1,
    /// Policy `logs.user_log`.
    User = 2,
}

impl LogKind {
    /// The log an fd role is, if any.
    pub fn of_role(role: FdRole) -> Option<LogKind> {
        match role {
            FdRole::Log => Some(LogKind::Log),
            FdRole::DebugLog => Some(LogKind::Debug),
            FdRole::UserLog => Some(LogKind::User),
            _ => None,
        }
    }
}

struct State {
    /// The fd of each log in this process (-1: not open yet).
    fds: [i32; 3],
    /// Lines held until the fd is known.
    pending: [Vec<u8>; 3],
    /// Which process this is, and its pid (as it sees it).
    actor: &'static str,
    pid: i32,
    muted: bool,
}

static STATE: Mutex<State> = Mutex::new(State {
    fds: [-1; 3],
    pending: [Vec::new(), Vec::new(), Vec::new()],
    actor: "launcher",
    pid: 0,
    muted: false,
});

fn state() -> std::sync::MutexGuard<'static, State> {
    // A panic while holding it cannot leave the state inconsistent: take it anyway.
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Installs the subscriber when `plan` donates a log file; nothing (and
/// nothing to pay per event) otherwise. Call once, in the launcher, before
/// the walk.
pub fn install(plan: &LaunchPlan) {
    let mut has = [false; 3];
    for e in &plan.supervisor.fds {
        if let Some(k) = LogKind::of_role(e.role) {
            has[k as usize] = true;
        }
    }
    if has == [false; 3] {
        return;
    }
    set_actor(Actor::Launcher);
    // Fails only when a subscriber is already set (a second apply in one
    // process): that one keeps logging.
    let _ = tracing::subscriber::set_global_default(FdLogger {
        log: has[0],
        debug: has[1],
        user: has[2],
    });
}

/// Which process is logging from now on (the supervisor, after the clone).
pub fn set_actor(actor: Actor) {
    let mut s = state();
    s.actor = match actor {
        Actor::Launcher => "launcher",
        Actor::Supervisor => "supervisor",
        Actor::Workload => "workload",
    };
    // SAFETY: getpid has no arguments and cannot fail.
    s.pid = unsafe { libc::getpid() };
}

/// The fd of log `kind` in this process; writes what was held for it.
pub fn set_fd(kind: LogKind, fd: i32) {
    let mut s = state();
    s.fds[kind as usize] = fd;
    let held = std::mem::take(&mut s.pending[kind as usize]);
    if !held.is_empty() && !s.muted {
        write_line(fd, &held);
    }
}

/// Holds every line until [`set_fd`] names the fds again: while the
/// supervisor moves its fds to their planned numbers, the old numbers may
/// already be other files.
pub fn hold() {
    state().fds = [-1; 3];
}

/// Stops (`true`) or resumes logging in this process's memory: set by the
/// workload, a `CLONE_VM` child whose fd table is not the supervisor's, and
/// cleared by the supervisor when it resumes.
pub fn mute(on: bool) {
    state().muted = on;
}

fn write_line(fd: i32, mut data: &[u8]) {
    while !data.is_empty() {
        // SAFETY: the slice bounds the write.
        let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
        if n <= 0 {
            if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return; // a full disk must not stop the sandbox
        }
        data = &data[n as usize..];
    }
}

/// What `apply` would fail on when it makes the log directories and opens
/// the log files (step `open_fds`), found on this host's filesystem before
/// anything is done: a path whose nearest existing ancestor is not a
/// directory, a directory or file the caller cannot write, a read-only
/// filesystem, a log path that is not a regular file. `doctor` and `apply`
/// both ask this (after the pure preflight), so they name the same needs.
pub fn unmet_log_paths(plan: &LaunchPlan) -> Vec<super::UnmetNeed> {
    use crate::plan::FdSource;
    use std::path::Path;
    let mut v = Vec::new();
    let mut need = |what: String, e: &crate::plan::FdEntry, fix: &str| {
        v.push(super::UnmetNeed {
            need: what,
            from: e.from.clone(),
            fix: fix.into(),
        })
    };
    for e in &plan.supervisor.fds {
        let FdSource::File { path, .. } = &e.source else {
            continue;
        };
        if LogKind::of_role(e.role).is_none() {
            continue;
        }
        match std::fs::metadata(path) {
            Ok(m) if !m.is_file() => {
                need(
                    format!("log file {}: not a regular file", path.display()),
                    e,
                    "point the policy's [logs] at a file",
                );
                continue;
            }
            Ok(_) => {
                if let Some(why) = unwritable(path) {
                    need(
                        format!("writing log file {}: {why}", path.display()),
                        e,
                        "run apply as a user that may write it, or move the log",
                    );
                }
                continue;
            }
            Err(_) => {}
        }
        // The nearest existing ancestor: it must be a writable directory.
        let mut dir = path.parent();
        while let Some(d) = dir {
            match std::fs::metadata(d) {
                Ok(m) if m.is_dir() => {
                    if let Some(why) = unwritable(d) {
                        need(
                            format!("creating {} in {}: {why}", path.display(), d.display()),
                            e,
                            "run apply as a user that may write there, or move the log",
                        );
                    }
                    break;
                }
                Ok(_) => {
                    need(
                        format!(
                            "log directory for {}: {} is not a directory",
                            path.display(),
                            d.display()
                        ),
                        e,
                        "point the policy's [logs] at a directory (made when missing)",
                    );
                    break;
                }
                Err(_) => dir = d.parent().filter(|p| *p != Path::new("")),
            }
        }
    }
    v
}

/// Why the caller could not write in `p`, if it could not.
fn unwritable(p: &std::path::Path) -> Option<String> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).ok()?;
    // SAFETY: `c` is a valid C string.
    if unsafe { libc::faccessat(libc::AT_FDCWD, c.as_ptr(), libc::W_OK, libc::AT_EACCESS) } == 0 {
        return None;
    }
    Some(super::error::error_text(&std::io::Error::last_os_error()))
}

/// The subscriber: which logs the plan has, fixed at installation.
#[derive(Debug)]
pub struct FdLogger {
    log: bool,
    debug: bool,
    user: bool,
}

impl FdLogger {
    /// The logs an event of this target and level goes to.
    fn routes(&self, meta: &Metadata<'_>) -> [bool; 3] {
        let level = *meta.level();
        if meta.target() == USER {
            return [false, false, self.user && level <= Level::INFO];
        }
        let info = level <= Level::INFO;
        [self.log && info, self.debug && level <= Level::DEBUG, false]
    }
}

impl Subscriber for FdLogger {
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        if self.routes(meta).contains(&true) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        self.routes(meta).contains(&true)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(if self.debug {
            LevelFilter::DEBUG
        } else {
            LevelFilter::INFO
        })
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let routes = self.routes(event.metadata());
        let mut s = state();
        if s.muted {
            return;
        }
        let line = format_line(s.actor, s.pid, event);
        for (i, on) in routes.into_iter().enumerate() {
            if !on {
                continue;
            }
            if s.fds[i] >= 0 {
                write_line(s.fds[i], line.as_bytes());
            } else if s.pending[i].len() + line.len() <= PENDING_MAX {
                s.pending[i].extend_from_slice(line.as_bytes());
            }
        }
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// The message first, then `key=value` for each other field.
struct Fields<'a>(&'a mut String);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, " {value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            let _ = write!(self.0, " {value}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
}

fn format_line(actor: &str, pid: i32, event: &Event<'_>) -> String {
    let mut line = String::with_capacity(160);
    push_time(&mut line);
    let _ = write!(line, " {actor}[{pid}] {}", event.metadata().level());
    event.record(&mut Fields(&mut line));
    line.push('\n');
    line
}

/// The wall-clock time as RFC 3339 UTC with microseconds.
fn push_time(out: &mut String) {
    // SAFETY: timespec is plain data, filled by clock_gettime.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: valid out pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    let (y, mo, d, h, mi, s) = civil(ts.tv_sec);
    let _ = write!(
        out,
        "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:06}Z",
        ts.tv_nsec / 1000
    );
}

/// Seconds since the epoch to (year, month, day, hour, minute, second), UTC
/// (Howard Hinnant's days-to-civil algorithm).
fn civil(secs: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        m,
        d,
        (rem / 3600) as u32,
        (rem % 3600 / 60) as u32,
        (rem % 60) as u32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(civil(951_782_400), (2000, 2, 29, 0, 0, 0));
        assert_eq!(civil(1_796_000_000 + 3661), (2026, 11, 30, 1, 54, 21));
    }
}
