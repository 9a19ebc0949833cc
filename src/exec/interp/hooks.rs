//! Step `runtime_hooks` (`create` only): the spec's `prestart` and
//! `createRuntime` hooks, run by the launcher on the host while the
//! supervisor waits, its namespaces and mounts made, before its root change
//! (runtime-spec runtime.md: after the runtime environment is created,
//! before pivot_root). Two sides, one handshake on the control socketpair:
//! the supervisor sends [`HOOKS_MARK`] and blocks until [`HOOKS_DONE_MARK`];
//! the launcher waits (bounded) for the mark (or the supervisor's failure
//! report), runs the hooks in order, and answers. A hook that fails fails
//! the step: `create` is rolled back like any other failure (the supervisor,
//! still waiting, is killed with the rest).

use std::rc::Rc;

use super::{Interp, HOOKS_DONE_MARK, HOOKS_MARK, R};
use crate::exec::backend::{Backend, CapSetKind, FdTag, InSandbox, Op, Outcome};
use crate::exec::hooks::HookState;
use crate::plan::{Actor, CapSets, HookPhase, Step};
use crate::vocab::Cap;

impl<B: Backend> Interp<'_, B> {
    /// Both sides of `runtime_hooks`: the supervisor's (real backend, in the
    /// supervisor) or the launcher's; when recording, one after the other.
    pub(super) fn runtime_hooks(&mut self) -> R<()> {
        if self.real {
            return match self.me {
                Actor::Supervisor => self.wait_for_runtime_hooks(),
                _ => self.run_runtime_hooks(),
            };
        }
        self.act(Actor::Supervisor);
        self.hand_over_to_runtime_hooks()?;
        self.act(Actor::Launcher);
        self.run_runtime_hooks()?;
        self.act(Actor::Supervisor);
        self.await_runtime_hooks()
    }

    fn wait_for_runtime_hooks(&mut self) -> R<()> {
        self.hand_over_to_runtime_hooks()?;
        self.await_runtime_hooks()
    }

    /// Supervisor: its mounts are made; the launcher may run the hooks.
    fn hand_over_to_runtime_hooks(&mut self) -> R<()> {
        let fd = self
            .planned_control()
            .ok_or_else(|| self.unsupported("runtime hooks without a control socket"))?;
        self.op(Op::SendMark { fd, mark: HOOKS_MARK }).map(drop)
    }

    /// Supervisor: blocks until the launcher says the hooks ran (a launcher
    /// that dies meanwhile takes the supervisor with it, or ends this wait
    /// with EOF).
    fn await_runtime_hooks(&mut self) -> R<()> {
        let fd = self
            .planned_control()
            .ok_or_else(|| self.unsupported("runtime hooks without a control socket"))?;
        self.op(Op::AwaitCommit {
            fd,
            mark: HOOKS_DONE_MARK,
        })
        .map(drop)
    }

    /// Launcher: waits for the supervisor's mark, runs the plan's
    /// `prestart`, then `createRuntime` hooks, in order (the first failure
    /// fails the step, the rest do not run), then lets the supervisor go on.
    fn run_runtime_hooks(&mut self) -> R<()> {
        let (Some(sup), Some(control), Some(creating)) = (self.supervisor, self.control, self.creating.clone()) else {
            return Err(self.unsupported("OCI hooks outside `create` (apply has no start or delete to run them at)"));
        };
        self.await_supervisor_mark(control, sup, HOOKS_MARK, "runtime-hooks")?;
        let r = &creating.record;
        let state = HookState {
            oci_version: oci_spec::runtime::VERSION.to_string(),
            id: r.id.clone(),
            status: "creating",
            pid: Some(sup.pid),
            bundle: r.bundle.clone(),
            annotations: r.annotations.clone(),
        }
        .json();
        let plan = self.plan;
        for h in plan
            .hooks
            .iter()
            .filter(|h| matches!(h.phase, HookPhase::Prestart | HookPhase::CreateRuntime))
        {
            self.origin = h.from.clone();
            self.op(Op::RunHook {
                hook: Rc::new(h.clone()),
                status: "creating",
                state: Rc::clone(&state),
                inside: None,
            })?;
        }
        self.op(Op::SendMark {
            fd: control,
            mark: HOOKS_DONE_MARK,
        })
        .map(drop)
    }
}

// ----- the container's hooks (createContainer, startContainer) ----------------
//
// Executed by the supervisor, in the sandbox's namespaces and cgroup, each
// with the workload's credentials, capability sets, no_new_privs and seccomp
// programs (set between the hook's fork and its exec: `InSandbox::setup`),
// so a hook does nothing the workload could not do itself. `createContainer`
// resolves its path on the host: the launcher opens it (O_PATH) at step
// `open_fds`, the supervisor execs that fd at step `container_hooks`, its
// mounts made, before its root change. `startContainer` resolves its path in
// the sandbox: the supervisor execs it when `start` asks, before the
// workload. The state a hook reads says `creating` (createContainer) or
// `created` (startContainer), with the supervisor's pid as the hook's PID
// namespace sees it (as runc gives it).

impl<B: Backend> Interp<'_, B> {
    /// Launcher, step `open_fds`: an O_PATH fd on each `createContainer`
    /// hook's host path, in plan order, for the supervisor (it inherits them
    /// at the clone; the launcher closes its copies then).
    pub(super) fn open_container_hook_exes(&mut self) -> R<()> {
        let plan = self.plan;
        for h in plan.hooks.iter().filter(|h| h.phase == HookPhase::CreateContainer) {
            self.origin = h.from.clone();
            let tag = FdTag::Internal("createContainer hook");
            let fd = self.open(h.path.clone(), libc::O_PATH | libc::O_CLOEXEC, 0, tag)?;
            self.undo.push(super::Undo::Close(fd));
            self.hook_exes.push(fd);
        }
        Ok(())
    }

    /// What a container's hook's process does between its fork and its
    /// exec: the workload's credentials, capabilities, no_new_privs and
    /// seccomp programs, as the workload's own steps set them.
    /// In the workload's order too: where the plan loads the filter before
    /// the credentials (`seccomp_before_credentials`: no_new_privs off, the
    /// load needs CAP_SYS_ADMIN), the hook loads it first as well.
    fn hook_setup(&self) -> Vec<Op> {
        let w = &self.plan.workload;
        let filters = || {
            self.prep
                .filters
                .iter()
                .map(|f| Op::SeccompLoad { filter: Rc::clone(f) })
        };
        let early = self.plan.steps.contains(&Step::SeccompBeforeCredentials);
        let mut ops = Vec::new();
        if early {
            ops.extend(filters());
        }
        ops.extend(self.credential_ops(&w.credentials));
        ops.extend(capability_ops(&w.capabilities.value));
        if w.no_new_privs.value {
            ops.push(Op::NoNewPrivs);
        }
        if !early {
            ops.extend(filters());
        }
        ops
    }

    /// The state a container's hook reads: the record's id, bundle and
    /// annotations, `status`, and the supervisor's pid in its own PID
    /// namespace.
    fn in_sandbox_state(&mut self, status: &'static str) -> R<Rc<Vec<u8>>> {
        let Some(creating) = self.creating.clone() else {
            return Err(self.unsupported("OCI hooks outside `create`"));
        };
        let pid = match self.op(Op::GetPid)? {
            Outcome::Pid(p) => p,
            o => return Err(self.odd(o)),
        };
        let r = &creating.record;
        Ok(HookState {
            oci_version: oci_spec::runtime::VERSION.to_string(),
            id: r.id.clone(),
            status,
            pid: Some(pid),
            bundle: r.bundle.clone(),
            annotations: r.annotations.clone(),
        }
        .json())
    }

    /// Supervisor, step `container_hooks`: the `createContainer` hooks, in
    /// order, each from the fd the launcher opened (then closed); the first
    /// failure fails the step (and `create`, rolled back).
    pub(super) fn container_hooks(&mut self) -> R<()> {
        // The seccomp programs the hooks load come with the launcher's EOF.
        self.await_launcher()?;
        let state = self.in_sandbox_state("creating")?;
        let setup = self.hook_setup();
        let plan = self.plan;
        let exes = std::mem::take(&mut self.hook_exes);
        let hooks = plan.hooks.iter().filter(|h| h.phase == HookPhase::CreateContainer);
        for (h, exe) in hooks.zip(exes.iter().copied()) {
            self.origin = h.from.clone();
            let r = self.op(Op::RunHook {
                hook: Rc::new(h.clone()),
                status: "creating",
                state: Rc::clone(&state),
                inside: Some(Rc::new(InSandbox {
                    exe: Some(exe),
                    setup: setup.clone(),
                })),
            });
            self.op(Op::Close { fd: exe })?;
            r?;
        }
        Ok(())
    }

    /// Supervisor, `create`, before it serves: the state the
    /// `startContainer` hooks will read (kept across the re-exec).
    pub(super) fn prepare_start_hooks(&mut self) -> R<()> {
        if super::super::hooks::has(self.plan, &[HookPhase::StartContainer]) {
            self.start_hook_state = Some(self.in_sandbox_state("created")?);
        }
        Ok(())
    }

    /// Supervisor, `start`, before the workload is spawned: the
    /// `startContainer` hooks, in order, by their path in the sandbox; the
    /// first failure fails `start` (the workload never runs, the sandbox
    /// ends stopped).
    pub(super) fn start_hooks(&mut self) -> R<()> {
        let Some(state) = self.start_hook_state.clone() else {
            return Ok(());
        };
        let setup = self.hook_setup();
        let plan = self.plan;
        for h in plan.hooks.iter().filter(|h| h.phase == HookPhase::StartContainer) {
            self.origin = h.from.clone();
            self.op(Op::RunHook {
                hook: Rc::new(h.clone()),
                status: "created",
                state: Rc::clone(&state),
                inside: Some(Rc::new(InSandbox {
                    exe: None,
                    setup: setup.clone(),
                })),
            })?;
        }
        Ok(())
    }
}

/// The ops that give a process capability sets `c`: bounding first (needs
/// CAP_SETPCAP, so effective is raised to permitted), then inheritable,
/// effective, permitted (shrinking in an order capset accepts), then ambient
/// (needs permitted and inheritable).
pub(super) fn capability_ops(c: &CapSets) -> Vec<Op> {
    let drop: Vec<Cap> = Cap::all().into_iter().filter(|c2| !c.bounding.contains(c2)).collect();
    vec![
        Op::RaiseEffective,
        Op::DropBounding { caps: drop },
        Op::CapSet {
            set: CapSetKind::Inheritable,
            caps: c.inheritable.clone(),
        },
        Op::CapSet {
            set: CapSetKind::Effective,
            caps: c.effective.clone(),
        },
        Op::CapSet {
            set: CapSetKind::Permitted,
            caps: c.permitted.clone(),
        },
        Op::SetAmbient {
            caps: c.ambient.clone(),
        },
    ]
}
