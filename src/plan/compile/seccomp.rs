//! The seccomp filter: the spec's (when the policy's source is `spec` and the
//! spec has one), else the policy's allow-list; the policy's deny list is
//! added to either. Names are resolved for x86_64; names that architecture
//! lacks are listed, not refused (as libseccomp does).

use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction as A, LinuxSeccompOperator as Op};

use super::error::{Anchor, CompileError, CompileErrorKind as K};
use super::Cx;
use crate::plan::syscalls::syscall_nr;
use crate::plan::types::*;
use crate::policy::SeccompSource;
use crate::vocab::Origin;

pub(crate) fn seccomp(cx: &mut Cx) -> Result<Option<Seccomp>, CompileError> {
    // Borrowed from the spec (not from `cx`), not cloned: a filter can name hundreds of calls.
    let spec = cx.spec;
    let spec_filter = spec.spec.linux().as_ref().and_then(|l| l.seccomp().as_ref());
    let source = cx.policy.seccomp_source.value;
    let mut filter = match (source, spec_filter) {
        (SeccompSource::Spec, Some(f)) => Some(from_spec(f)?),
        // With `source = "spec"`, the policy's filter stands in only when it allows something.
        (SeccompSource::Spec, None) if has_policy_filter(cx) => Some(from_policy(cx)),
        (SeccompSource::Spec, None) => None,
        (SeccompSource::Policy, _) => Some(from_policy(cx)),
        (SeccompSource::None, _) => None,
    };
    let deny = &cx.policy.seccomp_deny;
    if !deny.value.is_empty() {
        let f = filter.get_or_insert_with(|| Seccomp {
            default_action: Sourced::new(SeccompAction::Allow, Origin::rule("seccomp-deny-list-only")),
            architectures: vec!["x86_64".into()],
            rules: vec![],
            unknown_syscalls: vec![],
        });
        f.rules.push(SeccompRule {
            action: SeccompAction::Errno(libc::EPERM as u32),
            syscalls: deny.value.iter().map(|s| s.value.clone()).collect(),
            args: vec![],
            from: cx.policy.origin(&deny.at),
        });
    }
    Ok(filter.map(resolve))
}

/// Splits names x86_64 lacks into `unknown_syscalls`.
fn resolve(mut f: Seccomp) -> Seccomp {
    let mut unknown = std::collections::BTreeSet::new();
    for r in &mut f.rules {
        r.syscalls.retain(|n| {
            let known = syscall_nr(n).is_some();
            if !known {
                unknown.insert(n.clone());
            }
            known
        });
    }
    f.rules.retain(|r| !r.syscalls.is_empty());
    f.unknown_syscalls = unknown.into_iter().collect();
    f
}

/// The policy has a filter of its own: an allow list or rules.
fn has_policy_filter(cx: &Cx) -> bool {
    !cx.policy.seccomp_allow.value.is_empty() || !cx.policy.seccomp_rules.value.is_empty()
}

/// The policy's filter: its allow list as one rule, then each
/// `[[seccomp.rules]]` entry as a rule of its own, located at its line.
fn from_policy(cx: &Cx) -> Seccomp {
    let p = cx.policy;
    let mut rules = Vec::with_capacity(1 + p.seccomp_rules.value.len());
    if !p.seccomp_allow.value.is_empty() {
        rules.push(SeccompRule {
            action: SeccompAction::Allow,
            syscalls: p.seccomp_allow.value.iter().map(|s| s.value.clone()).collect(),
            args: vec![],
            from: p.origin(&p.seccomp_allow.at),
        });
    }
    for r in &p.seccomp_rules.value {
        rules.push(SeccompRule {
            action: r.value.action,
            syscalls: r.value.syscalls.clone(),
            args: r.value.args.clone(),
            from: p.origin(&r.at),
        });
    }
    Seccomp {
        default_action: Sourced::new(p.seccomp_default.value, p.origin(&p.seccomp_default.at)),
        architectures: vec!["x86_64".into()],
        rules,
        unknown_syscalls: vec![],
    }
}

fn action(a: A, errno: Option<u32>, path: &str) -> Result<SeccompAction, CompileError> {
    Ok(match a {
        A::ScmpActAllow => SeccompAction::Allow,
        A::ScmpActErrno => SeccompAction::Errno(errno.unwrap_or(libc::EPERM as u32)),
        A::ScmpActKill | A::ScmpActKillThread => SeccompAction::KillThread,
        A::ScmpActKillProcess => SeccompAction::KillProcess,
        A::ScmpActTrap => SeccompAction::Trap,
        A::ScmpActLog => SeccompAction::Log,
        A::ScmpActTrace => SeccompAction::Trace(errno.unwrap_or(0)),
        other => {
            return Err(CompileError::new(K::Unsupported {
                what: format!("seccomp action {other:?} is not supported"),
            })
            .anchor(Anchor::spec(path, "action")))
        }
    })
}

fn from_spec(f: &LinuxSeccomp) -> Result<Seccomp, CompileError> {
    let default_action = action(f.default_action(), f.default_errno_ret(), "linux.seccomp.defaultAction")?;
    // The interpreter's filter accepts native x86_64 calls only (32-bit x86
    // and x32 calls are killed), whatever architectures the spec lists.
    let architectures = vec!["x86_64".to_string()];
    let mut rules = Vec::new();
    for (i, s) in f.syscalls().iter().flatten().enumerate() {
        let path = format!("linux.seccomp.syscalls[{i}]");
        let mut args = Vec::new();
        for (j, a) in s.args().iter().flatten().enumerate() {
            if a.index() > 5 {
                return Err(CompileError::new(K::Unsupported {
                    what: format!("seccomp argument index {} (syscalls have 6)", a.index()),
                })
                .anchor(Anchor::spec(format!("{path}.args[{j}].index"), "index")));
            }
            let op = match a.op() {
                Op::ScmpCmpEq => CmpOp::Eq,
                Op::ScmpCmpNe => CmpOp::Ne,
                Op::ScmpCmpLt => CmpOp::Lt,
                Op::ScmpCmpLe => CmpOp::Le,
                Op::ScmpCmpGt => CmpOp::Gt,
                Op::ScmpCmpGe => CmpOp::Ge,
                Op::ScmpCmpMaskedEq => CmpOp::MaskedEq,
            };
            args.push(ArgCond {
                index: a.index() as u8,
                op,
                value: a.value(),
                value_two: a.value_two(),
            });
        }
        rules.push(SeccompRule {
            action: action(s.action(), s.errno_ret(), &format!("{path}.action"))?,
            syscalls: s.names().clone(),
            args,
            from: Origin::spec(path),
        });
    }
    Ok(Seccomp {
        default_action: Sourced::new(default_action, Origin::spec("linux.seccomp.defaultAction")),
        architectures,
        rules,
        unknown_syscalls: vec![],
    })
}

/// The calls of `names` that `f` does not allow whatever their arguments,
/// each with what decides it: a call is surely allowed when no rule names
/// it with an action other than allow or log, and either the default action
/// is allow or log or a rule without argument conditions allows it.
pub(crate) fn not_surely_allowed(f: &Seccomp, names: &[&str]) -> Vec<String> {
    let lets_through = |a: SeccompAction| matches!(a, SeccompAction::Allow | SeccompAction::Log);
    let action_text = |a: SeccompAction| match a {
        SeccompAction::Errno(n) => format!("errno({n})"),
        SeccompAction::Trace(n) => format!("trace({n})"),
        other => format!("{other:?}").to_lowercase(),
    };
    let mut out = Vec::new();
    for name in names {
        let naming = || f.rules.iter().filter(|r| r.syscalls.iter().any(|s| s == name));
        if let Some(r) = naming().find(|r| !lets_through(r.action)) {
            out.push(format!("{name} ({} by a rule, {})", action_text(r.action), r.from));
            continue;
        }
        let allowed = lets_through(f.default_action.value) || naming().any(|r| r.args.is_empty());
        if !allowed {
            let how = if naming().next().is_some() {
                "allowed only with argument conditions, else the default action"
            } else {
                "the default action"
            };
            out.push(format!(
                "{name} ({how} {}, {})",
                action_text(f.default_action.value),
                f.default_action.from
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(action: SeccompAction, names: &[&str], args: Vec<ArgCond>) -> SeccompRule {
        SeccompRule {
            action,
            syscalls: names.iter().map(|s| s.to_string()).collect(),
            args,
            from: Origin::spec("linux.seccomp.syscalls[0]"),
        }
    }

    #[test]
    fn surely_allowed_means_whatever_the_arguments() {
        let cond = ArgCond {
            index: 0,
            op: CmpOp::Eq,
            value: 1,
            value_two: None,
        };
        let f = Seccomp {
            default_action: Sourced::new(SeccompAction::Errno(1), Origin::spec("linux.seccomp.defaultAction")),
            architectures: vec!["x86_64".into()],
            rules: vec![
                rule(SeccompAction::Allow, &["read", "write"], vec![]),
                rule(SeccompAction::Allow, &["prctl"], vec![cond.clone()]),
                rule(SeccompAction::Errno(1), &["write"], vec![cond]),
                rule(SeccompAction::Log, &["chdir"], vec![]),
            ],
            unknown_syscalls: vec![],
        };
        let out = not_surely_allowed(&f, &["read", "write", "prctl", "chdir", "capset"]);
        assert_eq!(out.len(), 3, "{out:?}");
        assert!(out[0].starts_with("write (errno(1) by a rule"), "{out:?}");
        assert!(
            out[1].starts_with("prctl (allowed only with argument conditions"),
            "{out:?}"
        );
        assert!(out[2].starts_with("capset (the default action errno(1)"), "{out:?}");
        let open = Seccomp {
            default_action: Sourced::new(SeccompAction::Allow, Origin::Default),
            rules: vec![],
            ..f
        };
        assert!(not_surely_allowed(&open, &["capset"]).is_empty());
    }
}
