//! The interpreter: performs a [`LaunchPlan`]'s steps on the host, and undoes
//! them on failure.
//!
//! [`apply`] runs a plan with the real backend; [`dry_run`] runs the same
//! interpreter on the recording backend and returns the ops it would perform,
//! one per line when printed. [`preflight()`] is the pure check that runs first.
//! See docs/apply.md for the step order and why.

pub mod backend;
pub mod control;
pub mod detect;
pub mod error;
pub mod gc;
pub mod hooks;
pub mod interp;
pub mod linux;
pub mod log;
pub mod preflight;
pub mod pty;
pub mod record;
pub mod seccomp;
pub mod state;
#[doc(hidden)]
pub mod testsupport;
pub mod timings;
pub mod trace;

pub use backend::{Backend, Op};
pub use error::{ApplyError, StepFailure};
pub use preflight::{preflight, UnmetNeed};
pub use record::{Recorded, RecordingBackend};
pub use state::LaunchId;
pub use timings::Timings;

use std::path::PathBuf;

use crate::host::HostFacts;
use crate::plan::LaunchPlan;

/// The plan's bound device nodes that are not, on this host, the device
/// the plan says (missing, or another kind or number): the check step
/// `mounts` makes before binding them, made now for `sandboxctl doctor`.
/// Unlike [`preflight()`] this looks at the live host.
pub fn device_needs(plan: &LaunchPlan) -> Vec<UnmetNeed> {
    plan.devices
        .iter()
        .filter_map(|d| {
            let src = d.source.as_ref()?;
            let e = linux::check_device(src, d.kind, d.major, d.minor).err()?;
            let kind = if d.kind == crate::plan::DeviceKind::Char {
                'c'
            } else {
                'b'
            };
            Some(UnmetNeed {
                need: format!(
                    "host node {} for device {} ({kind} {}:{}): {}",
                    src.display(),
                    d.path.display(),
                    d.major,
                    d.minor,
                    error::error_text(&e)
                ),
                from: d.allowed_by.clone(),
                fix: match (d.kind, d.major, d.minor) {
                    (crate::plan::DeviceKind::Char, 10, 200) => {
                        "load the tun module (modprobe tun), which makes /dev/net/tun (c 10:200), or drop [kvm] tun from the policy".into()
                    }
                    (crate::plan::DeviceKind::Char, 10, 232) => {
                        "load the kvm module (modprobe kvm_intel or kvm_amd), which makes /dev/kvm (c 10:232)".into()
                    }
                    _ => "point the device ceiling's host_path at this host's node for that number".into(),
                },
            })
        })
        .collect()
}

/// Options of [`apply`].
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// Skip the preflight check (for `--force`-style debugging only).
    pub skip_preflight: bool,
    /// Print when each step begins (`apply --timings`).
    pub timings: Option<Timings>,
    /// The sandbox id (`apply --id`); `None`: a random one, unique per launch.
    pub id: Option<LaunchId>,
    /// Where the state file goes (`--root`); `None`: [`state::DEFAULT_ROOT`].
    pub root: Option<PathBuf>,
}

impl ApplyOptions {
    /// The id to launch as: the given one, or a fresh random one.
    fn launch_id(&self) -> Result<LaunchId, ApplyError> {
        match &self.id {
            Some(id) => Ok(id.clone()),
            None => LaunchId::random().map_err(|e| ApplyError::Prepare {
                what: "a sandbox id".into(),
                message: format!("getrandom: {}", error::error_text(&e)),
            }),
        }
    }

    fn state_root(&self) -> PathBuf {
        self.root.clone().unwrap_or_else(|| state::DEFAULT_ROOT.into())
    }
}

/// How a foreground launch ended ([`apply_to_end`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    /// The workload's exit status (128+N when killed by signal N).
    pub status: i32,
    /// Set when the workload was killed by the kernel's OOM killer in the
    /// sandbox's memory cgroup.
    pub oom_kill: Option<OomKill>,
}

/// The workload ended by SIGKILL and the sandbox's memory cgroup counted an
/// OOM kill: what the launcher read at teardown, and the limit's origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OomKill {
    /// The plan's memory limit.
    pub limit: crate::vocab::Bytes,
    /// Where the limit came from.
    pub from: crate::vocab::Origin,
    /// The cgroup's OOM-kill count (`oom_kill`).
    pub kills: u64,
}

impl std::fmt::Display for OomKill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the workload was killed by the kernel's OOM killer: memory limit {} ({}); {} OOM kill{} in its cgroup",
            self.limit,
            self.from,
            self.kills,
            if self.kills == 1 { "" } else { "s" }
        )
    }
}

/// Runs `plan` in the foreground: returns the workload's exit status (128+N
/// when killed by signal N) after everything is torn down. On failure,
/// everything done is undone and the error names the step, the plan field's
/// origin, the operation and the OS error.
///
/// Call it from a single-threaded process (the launcher clones).
pub fn apply(plan: &LaunchPlan, host: &HostFacts, opts: &ApplyOptions) -> Result<i32, ApplyError> {
    apply_to_end(plan, host, opts).map(|e| e.status)
}

/// [`apply`], with what the launcher learnt of how the workload ended (an
/// OOM kill in its memory cgroup, which the caller reports).
pub fn apply_to_end(plan: &LaunchPlan, host: &HostFacts, opts: &ApplyOptions) -> Result<Ended, ApplyError> {
    let hooks = preflight::foreground_needs(plan);
    if !hooks.is_empty() {
        return Err(ApplyError::Preflight(hooks));
    }
    if !opts.skip_preflight {
        let unmet = preflight::check(plan, host);
        if !unmet.is_empty() {
            return Err(ApplyError::Preflight(unmet));
        }
    }
    let prep = interp::prepare(plan)?;
    let id = opts.launch_id()?;
    if let Some(t) = &opts.timings {
        t.mark(crate::plan::Actor::Launcher, "prepared");
    }
    log::install(plan);
    let mut backend = linux::LinuxBackend;
    let mut it = interp::Interp::new(plan, &mut backend, prep);
    it.launch_as(id, opts.state_root());
    it.fail_at(fault_injection_step());
    it.die_after_release(fault_injection_kill() == Some("after_release"));
    it.heap_held_at_spawn(
        cfg!(feature = "fault-injection") && std::env::var_os("SANDBOXCTL_HOLD_HEAP_AT_SPAWN").is_some(),
    );
    it.timings(opts.timings);
    let r = it.run_to_end().map_err(|e| state_root_error(e, opts));
    if let Some(t) = &opts.timings {
        t.mark(crate::plan::Actor::Launcher, "done");
    }
    r
}

/// `create`: runs `plan` up to the point where only the workload's spawn
/// remains, records the sandbox in `<root>/<id>/` (`creating` says with
/// what) and returns the supervisor's host pid once it answers on its
/// control socket; the sandbox then waits for `start` (docs/lifecycle.md).
/// On failure everything is undone, as in [`apply`].
///
/// Call it from a single-threaded process (the launcher clones).
pub fn create(
    plan: &LaunchPlan,
    host: &HostFacts,
    opts: &ApplyOptions,
    creating: interp::Creating,
) -> Result<i32, ApplyError> {
    if !opts.skip_preflight {
        let unmet = preflight::check(plan, host);
        if !unmet.is_empty() {
            return Err(ApplyError::Preflight(unmet));
        }
    }
    let prep = interp::prepare(plan)?;
    let id = opts.launch_id()?;
    log::install(plan);
    let mut backend = linux::LinuxBackend;
    let mut it = interp::Interp::new(plan, &mut backend, prep);
    it.launch_as(id, opts.state_root());
    it.create_as(creating);
    it.fail_at(fault_injection_step());
    it.die_after_release(fault_injection_kill() == Some("after_release"));
    it.timings(opts.timings);
    it.run()
}

/// The ops `create` would perform, then `start`'s, as one recorded walk.
pub fn dry_run_create_text(
    plan: &LaunchPlan,
    opts: &ApplyOptions,
    creating: interp::Creating,
) -> Result<String, ApplyError> {
    let prep = interp::prepare(plan)?;
    let mut backend = RecordingBackend::new();
    let mut it = interp::Interp::new(plan, &mut backend, prep);
    it.launch_as(opts.id.clone().unwrap_or_else(LaunchId::placeholder), opts.state_root());
    let poststart = hooks::HookState {
        oci_version: oci_spec::runtime::VERSION.to_string(),
        id: creating.record.id.clone(),
        status: "running",
        pid: Some(record::SUPERVISOR_PID),
        bundle: creating.record.bundle.clone(),
        annotations: creating.record.annotations.clone(),
    };
    it.create_as(creating);
    it.run()?;
    // `start`'s last part, in the `start` command: the poststart hooks.
    backend.set_actor(crate::plan::Actor::Launcher);
    let _ = hooks::run_phase(&mut backend, plan, crate::plan::HookPhase::Poststart, &poststart);
    Ok(backend.ops.iter().map(|r| format!("{r}\n")).collect())
}

/// A failure to make the state file on a read-only or full filesystem (or
/// without access) says so in one line, with the root, where it came from
/// and what to do; any other error stays as it is.
fn state_root_error(e: ApplyError, opts: &ApplyOptions) -> ApplyError {
    match e {
        ApplyError::Step { failure, leftovers }
            if failure.step == crate::plan::Step::StateFile
                && matches!(
                    failure.errno,
                    Some(libc::EROFS | libc::ENOSPC | libc::EDQUOT | libc::EACCES | libc::EPERM)
                ) =>
        {
            ApplyError::StateRoot {
                root: opts.state_root(),
                from: match opts.root {
                    Some(_) => crate::vocab::Origin::Cli("--root".into()),
                    None => crate::vocab::Origin::Default,
                },
                message: failure.message,
                fix: state::root_fix(failure.errno),
                leftovers,
            }
        }
        e => e,
    }
}

/// The step named by `SANDBOXCTL_FAIL_AT_STEP` (only with the
/// `fault-injection` feature; never in release builds).
#[cfg(feature = "fault-injection")]
pub(crate) fn fault_injection_step() -> Option<crate::plan::Step> {
    let s = std::env::var("SANDBOXCTL_FAIL_AT_STEP").ok()?;
    serde_json::from_value(serde_json::Value::String(s)).ok()
}

#[cfg(not(feature = "fault-injection"))]
pub(crate) fn fault_injection_step() -> Option<crate::plan::Step> {
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
/// The id is printed as the plan's placeholder, `{id}`, and the state file
/// goes under the default root.
pub fn dry_run(plan: &LaunchPlan) -> Result<Vec<Recorded>, ApplyError> {
    dry_run_as(plan, &ApplyOptions::default())
}

/// [`dry_run`] with the id and state root of `opts` (`apply --dry-run --id
/// ID --root DIR`); without an id the placeholder stays.
pub fn dry_run_as(plan: &LaunchPlan, opts: &ApplyOptions) -> Result<Vec<Recorded>, ApplyError> {
    let hooks = preflight::foreground_needs(plan);
    if !hooks.is_empty() {
        return Err(ApplyError::Preflight(hooks));
    }
    let prep = interp::prepare(plan)?;
    let mut backend = RecordingBackend::new();
    let mut it = interp::Interp::new(plan, &mut backend, prep);
    it.launch_as(opts.id.clone().unwrap_or_else(LaunchId::placeholder), opts.state_root());
    it.run()?;
    Ok(backend.ops)
}

/// [`dry_run`] as text, one op per line (deterministic: a golden file).
pub fn dry_run_text(plan: &LaunchPlan) -> Result<String, ApplyError> {
    dry_run_text_as(plan, &ApplyOptions::default())
}

/// [`dry_run_as`] as text.
pub fn dry_run_text_as(plan: &LaunchPlan, opts: &ApplyOptions) -> Result<String, ApplyError> {
    Ok(dry_run_as(plan, opts)?.iter().map(|r| format!("{r}\n")).collect())
}

#[cfg(test)]
mod tests {
    use super::backend::Op;
    use super::testsupport::sample_host;
    use super::*;
    use crate::plan::sample::Sample;
    use crate::plan::{Actor, Namespace, Rlimit, Step};
    use crate::vocab::{Origin, RlimitKind};
    use std::path::Path;

    fn plan() -> LaunchPlan {
        Sample::applied(Path::new("/tmp/rootfs")).plan()
    }

    /// Issue 13: a pod member's plan joins ipc, uts and pid by path. The
    /// launcher opens and enters each (pid, ipc, uts: the one order) before
    /// the clone, which makes only the kinds still new, so the supervisor
    /// starts inside them (pid: setns sets where children go); it returns to
    /// its own after the clone; the workload, not pid 1 there, dies with its
    /// supervisor.
    #[test]
    fn joined_pod_namespaces_are_entered_before_the_clone() {
        use crate::plan::{NsKind, Sourced};
        let mut p = plan();
        for k in [NsKind::Pid, NsKind::Ipc, NsKind::Uts] {
            let n = Sourced::new(
                Namespace::Join(format!("/proc/4242/ns/{}", k.proc_name()).into()),
                Origin::spec("linux.namespaces[0].path"),
            );
            match k {
                NsKind::Pid => p.namespaces.pid = n,
                NsKind::Ipc => p.namespaces.ipc = n,
                _ => p.namespaces.uts = n,
            }
        }
        p.steps.retain(|s| *s != Step::Hostname);
        let clone = p.steps.iter().position(|s| *s == Step::Clone).unwrap();
        if !p.steps.contains(&Step::JoinNamespaces) {
            p.steps.insert(clone, Step::JoinNamespaces);
        }
        let ops = dry_run(&p).unwrap();
        let at = |f: &dyn Fn(&Op) -> bool| ops.iter().position(|r| f(&r.op)).unwrap();
        let cloned = at(&|o| matches!(o, Op::Clone { .. }));
        let Op::Clone { new, .. } = &ops[cloned].op else {
            unreachable!()
        };
        assert!(
            !new.iter().any(|k| matches!(k, NsKind::Pid | NsKind::Ipc | NsKind::Uts)),
            "{new:?}"
        );
        assert!(new.contains(&NsKind::User) && new.contains(&NsKind::Mount), "{new:?}");
        let entered: Vec<NsKind> = ops[..cloned]
            .iter()
            .filter_map(|r| match r.op {
                Op::SetNs { kind, .. } => Some(kind),
                _ => None,
            })
            .collect();
        assert_eq!(entered, [NsKind::Pid, NsKind::Ipc, NsKind::Uts]);
        for k in &entered {
            let opened = at(&|o| matches!(o, Op::OpenNs { kind, .. } if kind == k));
            assert!(opened < cloned);
        }
        let back = ops[cloned..]
            .iter()
            .filter(|r| r.actor == Actor::Launcher && matches!(r.op, Op::SetNs { .. }))
            .count();
        assert_eq!(back, 3, "the launcher returns to its own namespaces");
        assert!(ops
            .iter()
            .any(|r| r.actor == Actor::Workload && matches!(r.op, Op::DieWithParent { .. })));
        assert!(!ops.iter().any(|r| matches!(r.op, Op::SetHostname { .. })));
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
        assert!(pos("release child") < pos("(join /sys/fs/cgroup/memory/sandboxctl/{id}/tasks)"));
        assert!(pos("(join /sys/fs/cgroup/pids/sandboxctl/{id}/tasks)") < pos("sethostname"));
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
    /// The sample plan with a prestart and a createRuntime hook, and what
    /// `create` records it with.
    fn hooks_plan() -> (LaunchPlan, interp::Creating) {
        use crate::plan::{Hook, HookPhase};
        let mut p = plan();
        let hook = |phase, path: &str, n| Hook {
            phase,
            path: path.into(),
            args: vec!["h".into(), n],
            env: vec!["A=b".into()],
            timeout_s: Some(3),
            from: Origin::spec(format!("hooks.{}[0]", phase.name())),
            allowed_by: Origin::Default,
        };
        p.hooks = vec![
            hook(HookPhase::Prestart, "/hooks/pre", "1".into()),
            hook(HookPhase::CreateRuntime, "/hooks/cr", "2".into()),
            hook(HookPhase::Poststart, "/hooks/post", "3".into()),
        ];
        let at = p.steps.iter().position(|s| *s == Step::RootChange).unwrap();
        p.steps.insert(at, Step::RuntimeHooks);
        let record = control::state::Record {
            format: control::state::RECORD_FORMAT,
            id: "ct-h".into(),
            status: control::proto::Status::Created,
            bundle: "/b".into(),
            owner_uid: 0,
            created_unix: 0,
            supervisor: None,
            annotations: [("k".to_string(), "v".to_string())].into(),
            exit: None,
            plan_hash: None,
        };
        let creating = interp::Creating {
            record,
            pid_file: None,
            files: vec![],
        };
        (p, creating)
    }

    /// `create`'s dry run runs prestart, then createRuntime, in the launcher
    /// once the supervisor has made its mounts and says so, before its root
    /// change, which waits for the launcher's word; each hook gets the state
    /// (status creating); `start`'s poststart comes last.
    #[test]
    fn create_runs_runtime_hooks_after_the_mounts_before_the_root_change() {
        let (p, creating) = hooks_plan();
        let text = dry_run_create_text(&p, &ApplyOptions::default(), creating).unwrap();
        let line = |needle: &str| {
            text.lines()
                .position(|l| l.contains(needle))
                .unwrap_or_else(|| panic!("{needle:?} in\n{text}"))
        };
        let (release, hand, wait, pre, cr, done, resume, pivot, post) = (
            line("release child"),
            line("supervisor send 'H'"),
            line("await the runtime-hooks mark or a report on <control launcher end>"),
            line("run hook prestart (spec:hooks.prestart[0]): exec /hooks/pre argv [\"h\", \"1\"] env [\"A=b\"], stdin the OCI state (status creating), killed after 3 s"),
            line("run hook createRuntime"),
            line("launcher   send 'G'"),
            line("await the launcher's hooks-done"),
            line("pivot_root"),
            line("run hook poststart"),
        );
        assert!(
            release < hand
                && hand < wait
                && wait < pre
                && pre < cr
                && cr < done
                && done < resume
                && resume < pivot
                && pivot < post,
            "{text}"
        );
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[release..hand]
                .iter()
                .any(|l| l.starts_with("supervisor") && l.contains(" mount ")),
            "the supervisor's mounts come before the hooks: {text}"
        );
        assert!(text.lines().nth(pre).unwrap().starts_with("launcher"));
        assert!(text.contains("(status running)"), "poststart's state: {text}");
    }

    /// A failing prestart hook fails step runtime_hooks: createRuntime does
    /// not run, and the rollback kills the supervisor and removes the
    /// cgroups and the sandbox's directory.
    #[test]
    fn a_failing_prestart_hook_rolls_create_back() {
        let (p, creating) = hooks_plan();
        let mut all = RecordingBackend::new();
        let mut it = interp::Interp::new(&p, &mut all, interp::prepare(&p).unwrap());
        it.create_as(creating.clone());
        it.run().unwrap();
        let n = all.ops.iter().position(|r| matches!(r.op, Op::RunHook { .. })).unwrap();
        let mut b = RecordingBackend::failing_at(n, libc::EIO);
        let mut it = interp::Interp::new(&p, &mut b, interp::prepare(&p).unwrap());
        it.create_as(creating);
        let e = it.run().unwrap_err();
        let ApplyError::Step { failure, leftovers } = &e else {
            panic!("{e}")
        };
        assert_eq!(failure.step, Step::RuntimeHooks);
        assert_eq!(failure.origin, Origin::spec("hooks.prestart[0]"));
        assert!(leftovers.is_empty(), "{leftovers:?}");
        let after: Vec<&Op> = b.ops[n + 1..].iter().map(|r| &r.op).collect();
        assert!(
            !after.iter().any(|o| matches!(o, Op::RunHook { .. })),
            "createRuntime does not run"
        );
        assert!(
            after.iter().any(|o| matches!(o, Op::Kill { .. })),
            "the supervisor is killed"
        );
        assert!(
            after.iter().any(|o| matches!(o, Op::RemoveSandboxDir { .. })),
            "the directory goes"
        );
        let made: Vec<&PathBuf> = b.ops[..n]
            .iter()
            .filter_map(|r| match &r.op {
                Op::Mkdir { path, .. } => Some(path),
                _ => None,
            })
            .collect();
        assert!(!made.is_empty());
        for m in made {
            assert!(
                after.iter().any(|o| matches!(o, Op::Rmdir { path } if path == m)),
                "{} removed",
                m.display()
            );
        }
    }

    #[test]
    fn failure_at_every_op_is_rolled_back() {
        for p in [plan(), pty_and_log_plan(), daemonized_plan()] {
            fail_each_op_and_check_the_rollback(&p);
        }
    }

    /// The sample plan daemonized (`workload.daemonize`): stdio /dev/null.
    fn daemonized_plan() -> LaunchPlan {
        use crate::plan::{FdRole, FdSource, OpenMode, Stdio};
        let mut p = plan();
        p.stdio.value = Stdio::Null;
        for e in p.supervisor.fds.iter_mut().filter(|e| {
            matches!(
                e.role,
                FdRole::Stdin | FdRole::Stdout | FdRole::Stderr | FdRole::StdioIn | FdRole::StdioOut | FdRole::StdioErr
            )
        }) {
            e.source = FdSource::File {
                path: "/dev/null".into(),
                open: OpenMode::ReadWrite,
                mode: 0,
            };
        }
        p
    }

    /// A daemonized plan opens /dev/null for the supervisor's stdio and
    /// never touches the caller's fds 0–2 or a pty.
    #[test]
    fn daemonized_stdio_is_dev_null_opened_by_the_launcher() {
        let text = dry_run_text(&daemonized_plan()).unwrap();
        assert!(text.contains("open /dev/null"), "{text}");
        assert!(!text.contains("openpty") && !text.contains("pty"), "{text}");
    }

    /// Preflight names each KVM extension the host lacks with the policy
    /// line that asked for it, and a wrong API version; nothing when met.
    #[test]
    fn preflight_names_missing_kvm_extensions_and_api_version() {
        use crate::plan::Platform;
        let mut p = plan();
        let asked = Origin::Policy {
            file: "vmm.toml".into(),
            line: 40,
        };
        p.platform.value = Platform::Kvm {
            api_version: 12,
            extensions: ["Irqchip".to_string(), "Xsave".to_string()].into(),
            extensions_from: asked.clone(),
        };
        let mut host = sample_host();
        host.kvm.as_mut().unwrap().extensions = ["Irqchip".to_string()].into();
        let needs = preflight(&p, &host);
        let kvm: Vec<_> = needs.iter().filter(|n| n.need.contains("KVM")).collect();
        assert_eq!(kvm.len(), 1, "{needs:?}");
        assert!(kvm[0].need.starts_with("KVM extension Xsave"), "{}", kvm[0]);
        assert_eq!(kvm[0].from, asked);
        assert!(kvm[0].fix.contains("[kvm] extensions"), "{}", kvm[0].fix);
        host.kvm.as_mut().unwrap().extensions.insert("Xsave".into());
        assert!(!preflight(&p, &host).iter().any(|n| n.need.contains("KVM")));
        host.kvm.as_mut().unwrap().api_version = 11;
        assert!(preflight(&p, &host)
            .iter()
            .any(|n| n.need.contains("KVM API version 12 (host has 11)")));
        host.kvm = None;
        assert!(preflight(&p, &host).iter().any(|n| n.need == "/dev/kvm"));
    }

    /// `[kvm] tun` on a host without the tun node: named, with the module to load.
    #[test]
    fn device_needs_name_a_missing_tun_node_with_the_module_to_load() {
        use crate::plan::{Device, DeviceHow, DeviceKind};
        let mut p = plan();
        p.devices.push(Device {
            path: "/dev/net/tun".into(),
            kind: DeviceKind::Char,
            major: 10,
            minor: 200,
            mode: 0o666,
            how: DeviceHow::Bind,
            source: Some("/nonexistent/net/tun".into()),
            from: Origin::Default,
            allowed_by: Origin::Default,
        });
        let needs = device_needs(&p);
        let tun = needs
            .iter()
            .find(|n| n.need.contains("/dev/net/tun"))
            .expect("tun named");
        assert!(
            tun.need.contains("c 10:200") && tun.fix.contains("modprobe tun"),
            "{tun}"
        );
    }

    /// The sample plan with a relayed pty and a user log in a made directory.
    fn pty_and_log_plan() -> LaunchPlan {
        use crate::plan::{FdSource, Session, Stdio};
        let mut p = plan();
        p.stdio.value = Stdio::Pty;
        p.supervisor.session = Session::NewSessionWithControllingTty;
        for e in p.supervisor.fds.iter_mut().filter(|e| e.fd.0 <= 2) {
            e.source = FdSource::PtySlave;
        }
        add_user_log_in_made_dir(&mut p);
        p
    }

    /// A user log `/var/log/sbx/t1.user.log` whose directory the plan makes.
    fn add_user_log_in_made_dir(p: &mut LaunchPlan) {
        use crate::plan::{FdEntry, FdRole, FdSource, LogDir, OpenMode};
        use crate::vocab::Fd;
        p.log_dirs = vec![LogDir {
            path: "/var/log/sbx".into(),
            mode: 0o755,
            from: Origin::rule("log-dir-made-if-missing"),
        }];
        let n = p.supervisor.fds.len() as i32;
        p.supervisor.fds.push(FdEntry {
            fd: Fd(n),
            role: FdRole::UserLog,
            source: FdSource::File {
                path: "/var/log/sbx/t1.user.log".into(),
                open: OpenMode::AppendCreate,
                mode: 0o664,
            },
            from: Origin::Default,
        });
    }

    fn fail_each_op_and_check_the_rollback(p: &LaunchPlan) {
        let total = dry_run(p).unwrap().len();
        for n in 0..total {
            let prep = interp::prepare(p).unwrap();
            let mut b = RecordingBackend::failing_at(n, libc::EBUSY);
            let r = interp::Interp::new(p, &mut b, prep).run();
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
                    Op::CreateState { path, .. } => {
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
                    Op::OpenPty => assert!(
                        b.ops.iter().any(|r| matches!(
                            &r.op,
                            Op::Close { fd } if fd.tag == backend::FdTag::Internal("pty master")
                        )),
                        "op {n}: pty master left open"
                    ),
                    Op::BlockSignals => assert!(
                        b.ops.iter().any(|r| r.op == Op::UnblockSignals),
                        "op {n}: signals left blocked"
                    ),
                    _ => {}
                }
            }
        }
    }

    /// Issue 13: a plan that leaves no_new_privs off with a filter loads
    /// the filter at step `seccomp_before_credentials`: before the uid
    /// change and the capability drop (while the workload holds the
    /// supervisor's CAP_SYS_ADMIN), and never sets no_new_privs.
    #[test]
    fn filter_without_no_new_privs_is_loaded_before_credentials() {
        let mut p = plan();
        let at = p.steps.iter().position(|s| *s == Step::Credentials).unwrap();
        p.steps.insert(at, Step::SeccompBeforeCredentials);
        p.steps.retain(|s| !matches!(s, Step::NoNewPrivs | Step::Seccomp));
        p.workload.no_new_privs.value = false;
        let work = workload_ops(&p);
        let pos = |f: &dyn Fn(&Op) -> bool| work.iter().position(f);
        let load = pos(&|o| matches!(o, Op::SeccompLoad { .. })).expect("filter loaded");
        let setuid = pos(&|o| matches!(o, Op::SetResUid { .. })).unwrap();
        let bounding = pos(&|o| matches!(o, Op::DropBounding { .. })).unwrap();
        assert!(load < setuid && load < bounding, "{work:?}");
        assert_eq!(pos(&|o| matches!(o, Op::NoNewPrivs)), None, "{work:?}");
        // With no_new_privs (the sample's plan): set, then the filter, after both.
        let work = workload_ops(&plan());
        let pos = |f: &dyn Fn(&Op) -> bool| work.iter().position(f);
        let nnp = pos(&|o| matches!(o, Op::NoNewPrivs)).unwrap();
        let load = pos(&|o| matches!(o, Op::SeccompLoad { .. })).unwrap();
        assert!(pos(&|o| matches!(o, Op::SetAmbient { .. })).unwrap() < nnp && nnp < load);
    }

    /// The workload's ops in a dry run of `p`.
    fn workload_ops(p: &LaunchPlan) -> Vec<Op> {
        dry_run(p)
            .unwrap()
            .into_iter()
            .filter(|r| r.actor == Actor::Workload)
            .map(|r| r.op)
            .collect()
    }

    /// Issue 11 item 4: the supervisor asks for SIGKILL on its launcher's
    /// death first thing after the clone, and again after every credential
    /// change that may clear that request (the kernel clears it when the
    /// euid/egid/fsuid/fsgid change or capabilities grow), with a check of
    /// the launcher each time; a workload in the supervisor's own PID
    /// namespace asks too, after its credentials and before seccomp.
    #[test]
    fn supervisor_dies_with_launcher_after_every_credential_change() {
        use backend::ParentLink;
        let clears = |op: &Op| {
            matches!(
                op,
                Op::SetResUid { .. }
                    | Op::SetResGid { .. }
                    | Op::RaiseEffective
                    | Op::CapSet { .. }
                    | Op::SetAmbient { .. }
            )
        };
        for pid_ns in [Namespace::New, Namespace::Host] {
            let mut p = plan();
            p.namespaces.pid.value = pid_ns.clone();
            let ops = dry_run(&p).unwrap();
            let sup: Vec<&Op> = ops
                .iter()
                .filter(|r| r.actor == Actor::Supervisor)
                .map(|r| &r.op)
                .collect();
            let deaths: Vec<usize> = (0..sup.len())
                .filter(|i| matches!(sup[*i], Op::DieWithParent { .. }))
                .collect();
            assert!(
                matches!(
                    sup[deaths[0]],
                    Op::DieWithParent {
                        link: ParentLink::SyncPipe(_)
                    }
                ),
                "{:?}",
                sup[deaths[0]]
            );
            assert!(deaths[0] <= 3, "not right after the clone: {:?}", &sup[..deaths[0]]);
            let last_clear = (0..sup.len()).rev().find(|i| clears(sup[*i])).unwrap();
            assert!(
                deaths.iter().any(|d| *d > last_clear),
                "no parent-death signal after {:?}",
                sup[last_clear]
            );
            for d in &deaths[1..] {
                assert!(matches!(
                    sup[*d],
                    Op::DieWithParent {
                        link: ParentLink::HangsUp(_)
                    }
                ));
            }
            let work: Vec<&Op> = ops
                .iter()
                .filter(|r| r.actor == Actor::Workload)
                .map(|r| &r.op)
                .collect();
            let w_death = work.iter().position(|o| matches!(o, Op::DieWithParent { .. }));
            if pid_ns == Namespace::New {
                assert_eq!(w_death, None, "pid 1's death takes the workload already");
            } else {
                let d = w_death.expect("workload in the host PID namespace dies with the supervisor");
                let last = work.iter().rposition(|o| clears(o)).unwrap();
                let seccomp = work.iter().position(|o| matches!(o, Op::SeccompLoad { .. })).unwrap();
                assert!(last < d && d < seccomp, "{:?}", &work[last..=seccomp]);
                assert!(matches!(
                    work[d],
                    Op::DieWithParent {
                        link: ParentLink::Pid(record::SUPERVISOR_PID)
                    }
                ));
            }
        }
    }

    /// A recording backend whose processes all end by SIGKILL (status 137)
    /// and whose files read `text` (the memory cgroup's counters).
    struct KilledBackend {
        inner: RecordingBackend,
        text: &'static str,
    }

    impl backend::Backend for KilledBackend {
        fn perform(&mut self, op: &Op) -> std::io::Result<backend::Outcome> {
            use backend::Outcome;
            Ok(match (op, self.inner.perform(op)?) {
                (Op::Reap { .. }, Outcome::Reaped(Some((pid, _)))) => Outcome::Reaped(Some((pid, 137))),
                (Op::ReadFile { .. }, _) => Outcome::Bytes(self.text.into()),
                (_, out) => out,
            })
        }
        fn forks(&self) -> bool {
            false
        }
        fn set_actor(&mut self, actor: Actor) {
            self.inner.set_actor(actor);
        }
    }

    /// The launcher's teardown after a workload killed by SIGKILL: it reads
    /// the sandbox's memory cgroup's OOM-kill counter and reports a kill
    /// with the plan's memory limit and its origin; a zero count (a plain
    /// SIGKILL) reports nothing, and a workload that exits reads nothing.
    #[test]
    fn oom_kill_is_read_at_teardown_and_reported_with_the_limit() {
        let p = plan();
        let limit = p.cgroup.as_ref().unwrap().limits.memory.clone().unwrap();
        let run = |text: &'static str| {
            let mut b = KilledBackend {
                inner: RecordingBackend::new(),
                text,
            };
            let ended = interp::Interp::new(&p, &mut b, interp::prepare(&p).unwrap())
                .run_to_end()
                .unwrap();
            (ended, b.inner.ops)
        };
        let (ended, ops) = run("oom_kill_disable 0\nunder_oom 0\noom_kill 1\n");
        assert_eq!(ended.status, 137);
        let oom = ended.oom_kill.expect("an OOM kill reported");
        assert_eq!((oom.limit, &oom.from, oom.kills), (limit.value, &limit.from, 1));
        let line = oom.to_string();
        assert!(
            line.starts_with("the workload was killed by the kernel's OOM killer: memory limit ")
                && line.contains(&limit.from.to_string()),
            "{line}"
        );
        let read: Vec<String> = ops
            .iter()
            .filter(|r| matches!(r.op, Op::ReadFile { .. }))
            .map(|r| format!("{r}"))
            .collect();
        assert_eq!(read.len(), 1, "{read:?}");
        assert!(
            read[0].contains("launcher") && read[0].ends_with("memory/sandboxctl/{id}/memory.oom_control"),
            "{read:?}"
        );
        // The read comes before the cgroup directories are removed.
        let at = |f: &dyn Fn(&Op) -> bool| ops.iter().position(|r| f(&r.op)).unwrap();
        assert!(at(&|o| matches!(o, Op::ReadFile { .. })) < at(&|o| matches!(o, Op::Rmdir { .. })));

        let (ended, _) = run("oom_kill_disable 0\nunder_oom 0\noom_kill 0\n");
        assert_eq!((ended.status, ended.oom_kill), (137, None));
        // v2's memory.events has the same key.
        let (ended, _) = run("low 0\nhigh 0\nmax 4\noom 1\noom_kill 2\n");
        assert_eq!(ended.oom_kill.map(|o| o.kills), Some(2));

        let ops = dry_run(&p).unwrap();
        assert!(
            !ops.iter().any(|r| matches!(r.op, Op::ReadFile { .. })),
            "read without a kill"
        );
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
    fn relayed_pty_dry_run_keeps_the_master_and_relays_at_teardown() {
        use crate::plan::{FdSource, Session, Stdio};
        let mut p = plan();
        p.stdio.value = Stdio::Pty;
        p.supervisor.session = Session::NewSessionWithControllingTty;
        for e in p.supervisor.fds.iter_mut().filter(|e| e.fd.0 <= 2) {
            e.source = FdSource::PtySlave;
        }
        assert!(preflight(&p, &sample_host()).is_empty());
        let a = dry_run_text(&p).unwrap();
        let pos = |s: &str| a.find(s).unwrap_or_else(|| panic!("{s} missing in\n{a}"));
        assert!(!a.contains("send <pty master>"), "{a}");
        assert!(pos("openpt") < pos("clone new"));
        assert!(pos("launcher   close <pty slave>") < pos("release child"));
        assert!(a.contains("dup2 <pty slave> -> 0") && a.contains("dup2 <pty slave> -> 2"));
        assert!(pos("setsid") < pos("ioctl 0 TIOCSCTTY"));
        let relay = pos("launcher   relay stdin -> <pty master> -> stdout");
        assert!(pos("launcher   if 0 is a terminal") < relay);
        assert!(pos("launcher   copy the caller's window size to <pty master>") < relay);
        assert!(relay < pos("launcher   waitpid <supervisor>"));
        assert!(pos("launcher   waitpid <supervisor>") < pos("launcher   copy the rest of <pty master>"));
        assert!(pos("launcher   copy the rest of <pty master>") < pos("launcher   close <pty master>"));
        assert!(!a.contains("launcher   sigwaitinfo"), "{a}");
    }

    #[test]
    fn log_dirs_are_made_before_the_log_files_are_opened() {
        let mut p = plan();
        add_user_log_in_made_dir(&mut p);
        let a = dry_run_text(&p).unwrap();
        let pos = |s: &str| a.find(s).unwrap_or_else(|| panic!("{s} missing in\n{a}"));
        assert!(
            pos("launcher   mkdir -p /var/log/sbx 0o755")
                < pos("launcher   open /var/log/sbx/t1.user.log wronly|creat|append mode 0o664 -> <user_log>")
        );
        // The launcher keeps its log fd until teardown (it logs its own steps).
        assert!(
            pos("launcher   close <user_log>") > pos("launcher   waitpid <supervisor>"),
            "{a}"
        );
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
            "apply: step cgroup_limits (spec:linux.resources.memory.limit): write /sys/fs/cgroup/memory/sandboxctl/{id}/memory.limit_in_bytes \"67108864\": Device or resource busy (EBUSY)"
        );
        let rm: Vec<String> = b.ops[n + 1..].iter().map(|r| r.op.to_string()).collect();
        assert_eq!(
            rm,
            [
                "close <cgroup join>",
                "close <cgroup join>",
                "rmdir /sys/fs/cgroup/pids/sandboxctl/{id}",
                "rmdir /sys/fs/cgroup/pids/sandboxctl",
                "rmdir /sys/fs/cgroup/memory/sandboxctl/{id}",
                "rmdir /sys/fs/cgroup/memory/sandboxctl",
                "unlink /run/sandboxctl/{id}.state",
                "close <state file>"
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

    /// In the caller's user namespace the capability step drops bounding
    /// capabilities, which needs CAP_SETPCAP: named before apply, not EPERM.
    #[test]
    fn preflight_names_setpcap_for_the_callers_user_namespace() {
        let mut p = plan();
        p.namespaces.user = crate::plan::Sourced::new(crate::plan::Namespace::Host, Origin::rule("test"));
        let mut h = sample_host();
        let setpcap = |c: &crate::vocab::Cap| c.0 == caps::Capability::CAP_SETPCAP;
        let needs = |h: &crate::host::HostFacts| preflight(&p, h).iter().any(|u| u.need.contains("CAP_SETPCAP"));
        assert!(!needs(&h));
        h.capabilities.retain(|c| !setpcap(c));
        assert!(needs(&h));
    }

    /// Doctor names a device source that apply would refuse (step mounts,
    /// `OpenDevice`), and nothing for the real nodes.
    #[test]
    fn device_needs_names_a_source_that_is_not_the_device() {
        let mut p = plan();
        assert!(device_needs(&p).is_empty(), "{:?}", device_needs(&p));
        p.devices[0].source = Some("/etc".into());
        let text: Vec<String> = device_needs(&p).iter().map(|u| u.to_string()).collect();
        assert_eq!(text.len(), 1, "{text:#?}");
        assert!(
            text[0].contains("host node /etc for device /dev/null (c 1:3)") && text[0].contains("it is a directory"),
            "{text:#?}"
        );
    }

    /// Doctor and apply agree on the kernel the mounts and devices steps
    /// need (openat2, open_tree/move_mount; mount_setattr has a fallback).
    #[test]
    fn preflight_names_an_old_kernel_for_mounts() {
        let mut h = sample_host();
        h.kernel = "5.4.0-150-generic".into();
        let text: Vec<String> = preflight(&plan(), &h).iter().map(|u| u.to_string()).collect();
        assert_eq!(text.len(), 1, "{text:#?}");
        assert!(
            text[0].contains("Linux 5.6 or later") && text[0].contains("openat2"),
            "{text:#?}"
        );
        h.kernel = "5.10.0".into();
        assert!(preflight(&plan(), &h).is_empty());
        let mut p = plan();
        p.steps.retain(|s| !matches!(s, Step::Mounts | Step::Devices));
        h.kernel = "4.19.0".into();
        assert!(preflight(&p, &h).is_empty());
    }
}
