//! The interpreter: performs a [`LaunchPlan`]'s steps on the host, and undoes
//! them on failure.
//!
//! [`apply`] runs a plan with the real backend; [`dry_run`] runs the same
//! interpreter on the recording backend and returns the ops it would perform,
//! one per line when printed. [`preflight()`] is the pure check that runs first.
//! See docs/apply.md for the step order and why.

pub mod backend;
pub mod detect;
pub mod error;
pub mod interp;
pub mod linux;
pub mod preflight;
pub mod record;
pub mod seccomp;
#[doc(hidden)]
pub mod testsupport;
pub mod timings;

pub use backend::{Backend, Op};
pub use error::{ApplyError, StepFailure};
pub use preflight::{preflight, UnmetNeed};
pub use record::{Recorded, RecordingBackend};
pub use timings::Timings;

use crate::host::HostFacts;
use crate::plan::LaunchPlan;

/// Options of [`apply`].
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// Skip the preflight check (for `--force`-style debugging only).
    pub skip_preflight: bool,
    /// Print when each step begins (`apply --timings`).
    pub timings: Option<Timings>,
}

/// Runs `plan` in the foreground: returns the workload's exit status (128+N
/// when killed by signal N) after everything is torn down. On failure,
/// everything done is undone and the error names the step, the plan field's
/// origin, the operation and the OS error.
///
/// Call it from a single-threaded process (the launcher clones).
pub fn apply(plan: &LaunchPlan, host: &HostFacts, opts: &ApplyOptions) -> Result<i32, ApplyError> {
    if !opts.skip_preflight {
        let unmet = preflight(plan, host);
        if !unmet.is_empty() {
            return Err(ApplyError::Preflight(unmet));
        }
    }
    let prep = interp::prepare(plan)?;
    if let Some(t) = &opts.timings {
        t.mark(crate::plan::Actor::Launcher, "prepared");
    }
    let mut backend = linux::LinuxBackend;
    let mut it = interp::Interp::new(plan, &mut backend, prep);
    it.fail_at(fault_injection_step());
    it.die_after_release(fault_injection_kill() == Some("after_release"));
    it.heap_held_at_spawn(
        cfg!(feature = "fault-injection") && std::env::var_os("SANDBOXCTL_HOLD_HEAP_AT_SPAWN").is_some(),
    );
    it.timings(opts.timings);
    let r = it.run();
    if let Some(t) = &opts.timings {
        t.mark(crate::plan::Actor::Launcher, "done");
    }
    r
}

/// The step named by `SANDBOXCTL_FAIL_AT_STEP` (only with the
/// `fault-injection` feature; never in release builds).
#[cfg(feature = "fault-injection")]
fn fault_injection_step() -> Option<crate::plan::Step> {
    let s = std::env::var("SANDBOXCTL_FAIL_AT_STEP").ok()?;
    serde_json::from_value(serde_json::Value::String(s)).ok()
}

#[cfg(not(feature = "fault-injection"))]
fn fault_injection_step() -> Option<crate::plan::Step> {
    None
}

/// Where `SANDBOXCTL_KILL_LAUNCHER` asks the launcher to SIGKILL itself
/// (`after_release`; only with the `fault-injection` feature).
#[cfg(feature = "fault-injection")]
fn fault_injection_kill() -> Option<&'static str> {
    match std::env::var("SANDBOXCTL_KILL_LAUNCHER").ok()?.as_str() {
        "after_release" => Some("after_release"),
        _ => None,
    }
}

#[cfg(not(feature = "fault-injection"))]
fn fault_injection_kill() -> Option<&'static str> {
    None
}

/// The ops `apply` would perform, in order, each with the process that would
/// perform it. Nothing on the host changes.
pub fn dry_run(plan: &LaunchPlan) -> Result<Vec<Recorded>, ApplyError> {
    let prep = interp::prepare(plan)?;
    let mut backend = RecordingBackend::new();
    let it = interp::Interp::new(plan, &mut backend, prep);
    it.run()?;
    Ok(backend.ops)
}

/// [`dry_run`] as text, one op per line (deterministic: a golden file).
pub fn dry_run_text(plan: &LaunchPlan) -> Result<String, ApplyError> {
    Ok(dry_run(plan)?.iter().map(|r| format!("{r}\n")).collect())
}

#[cfg(test)]
mod tests {
    use super::backend::Op;
    use super::testsupport::{sample_host, sample_plan};
    use super::*;
    use crate::plan::{Actor, Rlimit, Step};
    use crate::vocab::{Origin, RlimitKind};
    use std::path::Path;

    fn plan() -> LaunchPlan {
        sample_plan(Path::new("/tmp/rootfs"), "t1", "true")
    }

    #[test]
    fn dry_run_is_deterministic_and_in_plan_order() {
        let a = dry_run_text(&plan()).unwrap();
        assert_eq!(a, dry_run_text(&plan()).unwrap());
        for needle in [
            "clone new [user,pid,ipc,uts,mnt]",
            "supervisor unshare net",
            "write /proc/<supervisor>/uid_map \"65534 65534 1\\n\"",
            "pivot_root . .",
        ] {
            assert!(a.contains(needle), "{needle} missing in\n{a}");
        }
        // Order: cgroups before clone, maps before release, proc before pivot_root, seccomp right before exec.
        let pos = |s: &str| a.find(s).unwrap_or_else(|| panic!("{s} missing in\n{a}"));
        assert!(pos("memory.limit_in_bytes") < pos("clone new"));
        assert!(pos("uid_map") < pos("release child"));
        assert!(pos("unshare net") < pos("await release"));
        assert!(pos("release child") < pos("(join /sys/fs/cgroup/memory/sandboxctl/t1/tasks)"));
        assert!(pos("(join /sys/fs/cgroup/pids/sandboxctl/t1/tasks)") < pos("sethostname"));
        assert!(pos("type proc") < pos("pivot_root"));
        let lines: Vec<&str> = a.lines().collect();
        let exec = lines.iter().position(|l| l.contains("execve")).unwrap();
        assert!(lines[exec - 1].contains("seccomp load"), "{}", lines[exec - 1]);
        assert!(!a.contains("1000001"), "pids leak into the dry run");
        // Every actor appears, launcher first and last.
        let ops = dry_run(&plan()).unwrap();
        assert_eq!(ops.first().unwrap().actor, Actor::Launcher);
        assert_eq!(ops.last().unwrap().actor, Actor::Launcher);
        assert!(ops.iter().any(|r| r.actor == Actor::Workload));
    }

    /// Fails op N for every N; checks the failure names a step and that every
    /// launcher effect made before it is undone.
    #[test]
    fn failure_at_every_op_is_rolled_back() {
        let p = plan();
        let total = dry_run(&p).unwrap().len();
        for n in 0..total {
            let prep = interp::prepare(&p).unwrap();
            let mut b = RecordingBackend::failing_at(n, libc::EBUSY);
            let r = interp::Interp::new(&p, &mut b, prep).run();
            let failed = &b.ops[n];
            // The very last ops are teardown itself: a failure there is reported as leftovers.
            let err = match r {
                Err(e) => e,
                Ok(_) => {
                    // Only a shared parent cgroup (busy with another sandbox) may fail quietly.
                    let shared_parent = matches!(&failed.op, Op::Rmdir { path } if path.ends_with("sandboxctl"));
                    assert!(
                        shared_parent || matches!(failed.op, Op::Kill { .. }),
                        "op {n} ({failed}) failed silently"
                    );
                    continue;
                }
            };
            let msg = err.to_string();
            assert!(msg.starts_with("apply: "), "{msg}");
            assert!(
                msg.contains("(EBUSY)") || msg.contains("rollback could not undo"),
                "op {n}: {msg}"
            );
            let done: Vec<&Op> = b.ops[..n].iter().map(|r| &r.op).collect();
            for op in &done {
                match op {
                    Op::Mkdir { path, .. } => {
                        let undone = b
                            .ops
                            .iter()
                            .any(|r| matches!(&r.op, Op::Rmdir { path: q } if q == path));
                        assert!(undone, "op {n}: {} not undone", path.display());
                        if failed.op == (Op::Rmdir { path: path.clone() }) {
                            assert!(
                                msg.contains("could not undo") || msg.contains("teardown"),
                                "op {n}: {msg}"
                            );
                        }
                    }
                    Op::Open { path, flags, .. } if flags & libc::O_CREAT != 0 && flags & libc::O_EXCL != 0 => {
                        let undone = b
                            .ops
                            .iter()
                            .any(|r| matches!(&r.op, Op::Unlink { path: q } if q == path));
                        assert!(undone, "op {n}: {} not removed", path.display());
                    }
                    Op::Clone {
                        who: backend::Who::Supervisor,
                        ..
                    } => {
                        let reaped = b.ops.iter().any(|r| {
                            matches!(
                                &r.op,
                                Op::WaitExit { .. }
                                    | Op::Reap {
                                        proc: backend::ProcRef {
                                            who: backend::Who::Supervisor,
                                            ..
                                        }
                                    }
                            )
                        });
                        assert!(reaped, "op {n}: supervisor not reaped");
                    }
                    Op::BlockSignals => assert!(
                        b.ops.iter().any(|r| r.op == Op::UnblockSignals),
                        "op {n}: signals left blocked"
                    ),
                    _ => {}
                }
            }
        }
    }

    #[test]
    fn console_socket_dry_run_sends_the_master_and_donates_the_slave() {
        use crate::plan::{FdSource, Session, Stdio};
        let mut p = plan();
        p.stdio.value = Stdio::ConsoleSocket("/run/console.sock".into());
        p.supervisor.session = Session::NewSessionWithControllingTty;
        for e in p.supervisor.fds.iter_mut().filter(|e| e.fd.0 <= 2) {
            e.source = FdSource::PtySlave;
        }
        assert!(preflight(&p, &sample_host()).is_empty());
        let a = dry_run_text(&p).unwrap();
        let pos = |s: &str| a.find(s).unwrap_or_else(|| panic!("{s} missing in\n{a}"));
        assert!(pos("openpt") < pos("send <pty master> to /run/console.sock"));
        assert!(pos("send <pty master>") < pos("close <pty master>"));
        assert!(pos("close <pty master>") < pos("clone new"));
        assert!(a.contains("dup2 <pty slave> -> 0") && a.contains("dup2 <pty slave> -> 2"));
        assert!(pos("setsid") < pos("ioctl 0 TIOCSCTTY"));
    }

    #[test]
    fn failure_names_step_origin_and_errno() {
        let p = plan();
        let ops = dry_run(&p).unwrap();
        let n = ops
            .iter()
            .position(|r| matches!(&r.op, Op::WriteFile { path, .. } if path.ends_with("memory.limit_in_bytes")))
            .unwrap();
        let prep = interp::prepare(&p).unwrap();
        let mut b = RecordingBackend::failing_at(n, libc::EBUSY);
        let e = interp::Interp::new(&p, &mut b, prep).run().unwrap_err();
        assert_eq!(
            e.to_string(),
            "apply: step cgroup_limits (policy:untrusted.toml:12): write /sys/fs/cgroup/memory/sandboxctl/t1/memory.limit_in_bytes \"67108864\": Device or resource busy (EBUSY)"
        );
        let rm: Vec<String> = b.ops[n + 1..].iter().map(|r| r.op.to_string()).collect();
        assert_eq!(
            rm,
            [
                "close <cgroup join>",
                "close <cgroup join>",
                "rmdir /sys/fs/cgroup/pids/sandboxctl/t1",
                "rmdir /sys/fs/cgroup/pids/sandboxctl",
                "rmdir /sys/fs/cgroup/memory/sandboxctl/t1",
                "rmdir /sys/fs/cgroup/memory/sandboxctl",
                "close <state file>",
                "unlink /run/sandboxctl/t1.pid"
            ]
        );
        if let ApplyError::Step { failure, .. } = e {
            assert_eq!(failure.step, Step::CgroupLimits);
        }
    }

    #[test]
    fn preflight_names_every_unmet_need() {
        let mut p = plan();
        p.workload.rlimits.insert(
            RlimitKind::Nofile,
            Rlimit {
                soft: 50000,
                hard: 50000,
                from: Origin::spec("process.rlimits[0]"),
            },
        );
        let mut h = sample_host();
        assert!(preflight(&plan(), &h).is_empty(), "{:?}", preflight(&plan(), &h));
        assert_eq!(preflight(&p, &h).len(), 1);
        h.user_namespaces = false;
        h.cgroup.v1.remove("pids");
        let unmet = preflight(&p, &h);
        let text: Vec<String> = unmet.iter().map(|u| u.to_string()).collect();
        assert_eq!(unmet.len(), 4, "{text:#?}");
        assert!(
            text.iter()
                .any(|t| t.contains("RLIMIT_NOFILE 50000/50000 above the caller's hard limit 20000")),
            "{text:#?}"
        );
        assert!(text.iter().any(|t| t.contains("a new user namespace")));
    }
}
