//! Step `runtime_hooks`: the spec's `prestart` and `createRuntime` hooks,
//! run by the launcher on the host once the supervisor is cloned (its
//! namespaces exist, its id maps are written) and before it is released to
//! make its mounts and change its root. A hook that fails fails the step:
//! `create` is rolled back like any other failure.
//!
//! The runtime spec runs these after the container's mounts are made and
//! before pivot_root; here the supervisor makes its mounts only after the
//! release, so the hooks see the sandbox's namespaces without its mounts
//! (docs/lifecycle.md, "OCI hooks").

use std::rc::Rc;

use super::{Interp, R};
use crate::exec::backend::{Backend, Op};
use crate::exec::hooks::HookState;
use crate::plan::HookPhase;

impl<B: Backend> Interp<'_, B> {
    /// Runs the plan's `prestart`, then `createRuntime` hooks, in order; the
    /// first failure fails the step (the rest do not run).
    pub(super) fn run_runtime_hooks(&mut self) -> R<()> {
        let (Some(sup), Some(creating)) = (self.supervisor, self.creating.clone()) else {
            return Err(self.unsupported("OCI hooks outside `create` (apply has no start or delete to run them at)"));
        };
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
        Ok(())
    }
}
