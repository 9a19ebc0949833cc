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
use crate::exec::backend::{Backend, Op};
use crate::exec::hooks::HookState;
use crate::plan::{Actor, HookPhase};

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
            })?;
        }
        self.op(Op::SendMark {
            fd: control,
            mark: HOOKS_DONE_MARK,
        })
        .map(drop)
    }
}
