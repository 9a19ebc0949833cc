//! The spec's OCI hooks: whether they may run (the policy's `[hooks] allow`),
//! and, when they may, the plan's `hooks` section.
//!
//! Most hooks run on the host as the engine's user, outside every namespace
//! of the sandbox; `createContainer` and `startContainer` hooks run inside
//! its namespaces, as the workload would (its credentials, capabilities,
//! no_new_privs and seccomp filter), but they are programs the spec names
//! and the sandbox's owner did not review. So hooks are the policy's
//! decision alone: a spec with hooks under a policy that does not allow them
//! is refused, naming the spec's first hook and the policy line; never
//! started with its hooks skipped.

use oci_spec::runtime::{Hook as SpecHook, Hooks};

use super::{Anchor, CompileError, CompileErrorKind, Cx};
use crate::plan::types::{Hook, HookPhase};
use crate::vocab::Origin;

/// The spec's hooks of one phase.
fn of_phase(h: &Hooks, phase: HookPhase) -> &[SpecHook] {
    let v = match phase {
        HookPhase::Prestart => h.prestart(),
        HookPhase::CreateRuntime => h.create_runtime(),
        HookPhase::CreateContainer => h.create_container(),
        HookPhase::StartContainer => h.start_container(),
        HookPhase::Poststart => h.poststart(),
        HookPhase::Poststop => h.poststop(),
    };
    v.as_deref().unwrap_or_default()
}

/// The plan's hooks, in the order they run; an error when the spec has hooks
/// the policy does not let run, or a hook this build cannot run as asked.
pub(super) fn hooks(cx: &Cx) -> Result<Vec<Hook>, CompileError> {
    let Some(h) = cx.spec.spec.hooks() else {
        return Ok(Vec::new());
    };
    let asked: Vec<(HookPhase, usize, &SpecHook)> = HookPhase::ALL
        .into_iter()
        .flat_map(|p| of_phase(h, p).iter().enumerate().map(move |(i, k)| (p, i, k)))
        .collect();
    let Some((first_phase, _, _)) = asked.first() else {
        return Ok(Vec::new());
    };
    let path = |p: HookPhase, i: usize| format!("hooks.{}[{i}]", p.name());
    let allow = &cx.policy.hooks_allow;
    let allowed_by = cx.at(&allow.at);
    if !allow.value {
        let mut kinds: Vec<String> = asked.iter().map(|(p, _, _)| p.name()).collect();
        kinds.dedup();
        return Err(CompileError::new(CompileErrorKind::HooksNotAllowed {
            first: path(*first_phase, 0),
            count: asked.len(),
            kinds: kinds.join(", "),
            policy: allowed_by.to_string(),
        })
        .anchor(Anchor::spec(path(*first_phase, 0), "a hook"))
        .anchor(Anchor::Policy(allow.at.clone(), "hooks not allowed".into()))
        .help("drop the hooks from the spec (podman: no --hooks-dir, no OCI hooks in its hooks directories), or run trusted specs under a policy with `[hooks] allow = true`"));
    }
    let mut out = Vec::with_capacity(asked.len());
    for (phase, i, k) in asked {
        let at = path(phase, i);
        if !k.path().is_absolute() {
            return Err(CompileError::new(CompileErrorKind::RelativePath {
                what: format!("{at}.path"),
                path: k.path().display().to_string(),
            })
            .anchor(Anchor::spec(format!("{at}.path"), "relative")));
        }
        let timeout_s = match k.timeout() {
            None => None,
            Some(t) => match u32::try_from(t) {
                Ok(t) if t > 0 => Some(t),
                _ => {
                    return Err(CompileError::new(CompileErrorKind::HookTimeout {
                        at: format!("{at}.timeout"),
                        timeout: t,
                    })
                    .anchor(Anchor::spec(
                        format!("{at}.timeout"),
                        "not a positive number of seconds",
                    )))
                }
            },
        };
        let env = k.env().clone().unwrap_or_default();
        if let Some((j, e)) = env.iter().enumerate().find(|(_, e)| !e.contains('=')) {
            return Err(CompileError::new(CompileErrorKind::Unsupported {
                what: format!("{at}.env[{j}] is {e:?}, not KEY=VALUE"),
            })
            .anchor(Anchor::spec(format!("{at}.env[{j}]"), "not KEY=VALUE")));
        }
        out.push(Hook {
            phase,
            path: k.path().clone(),
            args: k.args().clone().unwrap_or_default(),
            env,
            timeout_s,
            from: Origin::Spec(at),
            allowed_by: allowed_by.clone(),
        });
    }
    Ok(out)
}
