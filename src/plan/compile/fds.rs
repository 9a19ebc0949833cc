//! The FD tables. The supervisor gets the seed's donated fds, numbered from 3
//! in the seed's fixed order: log, debug log, control socket, the plan (the
//! seed's spec fd), I/O fds, platform device, stdio ×3, user log. The workload
//! gets stdio and only what the policy passes.

use std::path::Path;

use super::error::Warning;
use super::error::{Anchor, CompileError, CompileErrorKind as K};
use super::Cx;
use crate::plan::types::*;
use crate::policy::{PassFd, Setting};
use crate::vocab::{Fd, Origin};

/// Stdio: a pty whose master goes over `--console-socket`; else, when the
/// spec's `process.terminal` is true, a pty the launcher relays to the
/// caller's stdio (as `runc run` does in the foreground); else the caller's.
///
/// `workload.daemonize` comes first: stdio is `/dev/null` (a console socket
/// with it is a conflict: the caller asked for a terminal the policy detaches).
pub(crate) fn stdio(cx: &mut Cx) -> Result<Sourced<Stdio>, CompileError> {
    let terminal = cx
        .spec
        .spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    let daemonize = cx.policy.daemonize.clone();
    if daemonize.value {
        if cx.opts.console_socket.is_some() {
            return Err(CompileError::new(K::Conflict {
                what: "--console-socket asks for a terminal, but the policy detaches the sandbox from any (workload.daemonize)".into(),
            })
            .anchor(Anchor::Policy(daemonize.at.clone(), "daemonize set here".into())));
        }
        if terminal {
            let from = cx.at(&daemonize.at);
            cx.warnings.push(Warning {
                message: "stdio: the spec asks for a terminal; the policy detaches the sandbox (stdio /dev/null)"
                    .into(),
                anchors: vec![
                    Anchor::spec("process.terminal", "terminal asked"),
                    Anchor::Policy(daemonize.at.clone(), "daemonize".into()),
                ],
            });
            cx.clamps.push(Clamp {
                field: "stdio".into(),
                requested: "pty".into(),
                requested_by: Origin::spec("process.terminal"),
                granted: DEV_NULL.into(),
                ceiling: from,
            });
        }
        return Ok(Sourced::new(Stdio::Null, cx.at(&daemonize.at)));
    }
    if let Some(p) = &cx.opts.console_socket {
        return Ok(Sourced::new(
            Stdio::ConsoleSocket(p.clone()),
            Origin::Cli("--console-socket".into()),
        ));
    }
    Ok(if terminal {
        Sourced::new(Stdio::Pty, Origin::spec("process.terminal"))
    } else {
        Sourced::new(Stdio::Inherit, Origin::Default)
    })
}

/// `/dev/null`, read and written: stdio of a daemonized sandbox.
const DEV_NULL: &str = "/dev/null";

/// The mode of a log directory the launcher makes (`rule:log-dir-made-if-missing`).
const LOG_DIR_MODE: u32 = 0o755;

/// The directories of the supervisor's log files, each once, in fd order:
/// made when missing before the files are opened, so a fresh host needs no
/// `/var/log/sandboxctl` made by hand.
pub(crate) fn log_dirs(fds: &[FdEntry]) -> Vec<LogDir> {
    let mut dirs: Vec<LogDir> = Vec::new();
    for e in fds {
        if !matches!(e.role, FdRole::Log | FdRole::DebugLog | FdRole::UserLog) {
            continue;
        }
        let FdSource::File { path, .. } = &e.source else {
            continue;
        };
        let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) else {
            continue;
        };
        if dirs.iter().all(|d| d.path != dir) {
            dirs.push(LogDir {
                path: dir.to_path_buf(),
                mode: LOG_DIR_MODE,
                from: Origin::rule("log-dir-made-if-missing"),
            });
        }
    }
    dirs
}

/// A log file; `{id}` in its path stays, for apply to replace with the
/// launch's id ([`ID_PLACEHOLDER`]).
fn log_file(s: &Setting<std::path::PathBuf>, mode: u32) -> FdSource {
    let path = s.value.display().to_string();
    FdSource::File {
        path: Path::new(&path).to_path_buf(),
        open: OpenMode::AppendCreate,
        mode,
    }
}

/// The supervisor's table, in the seed's order.
pub(crate) fn supervisor_fds(cx: &Cx, platform: &Sourced<Platform>, stdio: &Sourced<Stdio>) -> Vec<FdEntry> {
    let stdio_source = |fd: i32| match stdio.value {
        Stdio::Inherit => FdSource::Caller { fd: Fd(fd) },
        Stdio::Null => FdSource::File {
            path: DEV_NULL.into(),
            open: OpenMode::ReadWrite,
            mode: 0,
        },
        Stdio::Pty | Stdio::ConsoleSocket(_) => FdSource::PtySlave,
    };
    let mut fds = Vec::new();
    for (i, role) in [FdRole::Stdin, FdRole::Stdout, FdRole::Stderr].into_iter().enumerate() {
        fds.push(FdEntry {
            fd: Fd(i as i32),
            role,
            source: stdio_source(i as i32),
            from: stdio.from.clone(),
        });
    }
    let mut next = 3;
    let mut push = |fds: &mut Vec<FdEntry>, role, source, from| {
        fds.push(FdEntry {
            fd: Fd(next),
            role,
            source,
            from,
        });
        next += 1;
    };
    if let Some(s) = &cx.policy.log {
        push(&mut fds, FdRole::Log, log_file(s, 0o644), cx.at(&s.at));
    }
    if let Some(s) = &cx.policy.debug_log {
        push(&mut fds, FdRole::DebugLog, log_file(s, 0o644), cx.at(&s.at));
    }
    push(
        &mut fds,
        FdRole::Control,
        FdSource::ControlSocket,
        Origin::rule("control-socket-always"),
    );
    push(
        &mut fds,
        FdRole::Spec,
        FdSource::PlanMemfd,
        Origin::rule("plan-fd-always"),
    );
    for fd in &cx.opts.io_fds {
        push(
            &mut fds,
            FdRole::Io,
            FdSource::Caller { fd: Fd(*fd) },
            Origin::Cli("--io-fd".into()),
        );
    }
    if let Platform::Kvm { .. } = platform.value {
        push(&mut fds, FdRole::Device, FdSource::KvmDevice, platform.from.clone());
    }
    for (i, role) in [FdRole::StdioIn, FdRole::StdioOut, FdRole::StdioErr]
        .into_iter()
        .enumerate()
    {
        push(&mut fds, role, stdio_source(i as i32), stdio.from.clone());
    }
    if let Some(s) = &cx.policy.user_log {
        push(&mut fds, FdRole::UserLog, log_file(s, 0o664), cx.at(&s.at));
    }
    fds
}

/// The workload's table: stdio from the supervisor's stdio fds, then each fd
/// the policy passes, from 3.
pub(crate) fn workload_fds(cx: &Cx, sup: &[FdEntry]) -> Result<Vec<FdEntry>, CompileError> {
    let find = |role: FdRole| sup.iter().find(|e| e.role == role);
    let mut fds = Vec::new();
    for (i, (role, from)) in [
        (FdRole::Stdin, FdRole::StdioIn),
        (FdRole::Stdout, FdRole::StdioOut),
        (FdRole::Stderr, FdRole::StdioErr),
    ]
    .into_iter()
    .enumerate()
    {
        let e = find(from).expect("the supervisor always has stdio fds");
        fds.push(FdEntry {
            fd: Fd(i as i32),
            role,
            source: FdSource::Supervisor { fd: e.fd },
            from: e.from.clone(),
        });
    }
    let pass = &cx.policy.pass_fds;
    for (n, p) in pass.value.iter().enumerate() {
        let role = match p {
            PassFd::Device => FdRole::Device,
            PassFd::Log => FdRole::Log,
            PassFd::UserLog => FdRole::UserLog,
        };
        let Some(e) = find(role) else {
            return Err(CompileError::new(K::Conflict {
                what: format!("workload.pass_fds names {role:?}, which the supervisor does not have"),
            })
            .anchor(Anchor::Policy(pass.at.clone(), "passed here".into())));
        };
        fds.push(FdEntry {
            fd: Fd(3 + n as i32),
            role,
            source: FdSource::Supervisor { fd: e.fd },
            from: cx.at(&pass.at),
        });
    }
    Ok(fds)
}
