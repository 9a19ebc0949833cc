//! The two processes: the workload (the spec's process cut to the policy's
//! ceiling: args, env, cwd, credentials, capabilities, no_new_privs, rlimits,
//! seccomp, fds) and the supervisor (nobody, no capabilities unless host
//! networking applies the spec's, non-dumpable, its own session).

use std::collections::{BTreeMap, BTreeSet};

use super::error::{Anchor, CompileError, CompileErrorKind as K};
use super::ns::UserNs;
use super::Cx;
use crate::plan::types::*;
use crate::vocab::{Cap, Origin, RlimitKind};

pub(crate) fn workload(cx: &mut Cx, user: &UserNs, fds: Vec<FdEntry>) -> Result<Workload, CompileError> {
    let spec = cx.spec;
    let Some(p) = spec.spec.process() else {
        return Err(
            CompileError::new(K::Missing { what: "process".into() }).anchor(Anchor::spec("process", "required"))
        );
    };
    let args = p.args().clone().unwrap_or_default();
    if args.is_empty() {
        let help = if cx.spec.builtin {
            // Any subcommand that compiles gets here (plan, apply, doctor, diff):
            // the example shows only what to add to it.
            "give the command at the end, after --, e.g. `-- /bin/sh -c 'id'`"
        } else {
            "set process.args in config.json"
        };
        return Err(CompileError::new(K::Missing {
            what: "command to run (process.args is empty)".into(),
        })
        .anchor(Anchor::spec("process.args", "empty"))
        .help(help));
    }
    super::ns::check_abs(p.cwd(), "process.cwd")?;
    let requested = capabilities(cx, p)?;
    let capabilities = super::fs::chroot_mode_caps(cx, user, requested);
    let capabilities = held_capabilities(cx, user, capabilities);
    let seccomp = super::seccomp::seccomp(cx)?;
    let no_new_privs = no_new_privs(cx, user, p, seccomp.as_ref())?;
    Ok(Workload {
        args: Sourced::new(args, Origin::spec("process.args")),
        env: Sourced::new(p.env().clone().unwrap_or_default(), Origin::spec("process.env")),
        cwd: Sourced::new(p.cwd().clone(), Origin::spec("process.cwd")),
        credentials: user.creds.clone(),
        capabilities,
        no_new_privs,
        umask: p
            .user()
            .umask()
            .map(|u| Sourced::new(u, Origin::spec("process.user.umask"))),
        oom_score_adj: p
            .oom_score_adj()
            .map(|v| Sourced::new(v, Origin::spec("process.oomScoreAdj"))),
        rlimits: rlimits(cx, p)?,
        seccomp,
        fds,
    })
}

/// The rule that sets no_new_privs when the policy forces it with a filter
/// and the policy's key is not written in a file (docs/plan.md, "Rules").
pub(crate) const NNP_FORCED_RULE: &str = "seccomp-filter-sets-no-new-privs";

/// The rule that sets no_new_privs when the spec leaves it off but the
/// workload would hold no CAP_SYS_ADMIN to load its filter without it.
pub(crate) const NNP_NEEDS_ADMIN_RULE: &str = "seccomp-load-needs-cap-sys-admin";

/// The calls the workload makes after a filter loaded at step
/// `seccomp_before_credentials`, up to its execve: the credential and
/// capability steps, the exec, and the failure report and exit a failed
/// step sends. `ptrace` is added on the ptrace platform (step `trace`).
const SETUP_CALLS: &[&str] = &[
    "umask",
    "setgroups",
    "setresgid",
    "prctl",
    "setresuid",
    "chdir",
    "capget",
    "capset",
    "execve",
    "write",
    "exit_group",
];

/// `workload.no_new_privs`: the spec's `process.noNewPrivileges`, unless a
/// filter is loaded and the policy forces it (`[seccomp] no_new_privs =
/// "forced"`, the default), or the workload would hold no CAP_SYS_ADMIN
/// where the filter is loaded without it (a rule). Left off with a filter,
/// the filter is loaded at step `seccomp_before_credentials`, so it must let
/// the calls that follow through: compile refuses a filter that would not.
pub(super) fn no_new_privs(
    cx: &mut Cx,
    user: &UserNs,
    p: &oci_spec::runtime::Process,
    seccomp: Option<&Seccomp>,
) -> Result<Sourced<bool>, CompileError> {
    let spec_nnp = p.no_new_privileges().unwrap_or(false);
    let spec_origin = Origin::spec("process.noNewPrivileges");
    let Some(filter) = seccomp else {
        return Ok(Sourced::new(spec_nnp, spec_origin));
    };
    if spec_nnp {
        return Ok(Sourced::new(true, spec_origin));
    }
    let key = &cx.policy.seccomp_no_new_privs;
    let key_origin = match key.at {
        crate::policy::At::File(_) => cx.at(&key.at),
        crate::policy::At::Default => Origin::rule(NNP_FORCED_RULE),
    };
    if key.value == crate::policy::SeccompNoNewPrivs::Forced {
        return Ok(Sourced::new(true, key_origin));
    }
    // In a new or joined user namespace the supervisor, and the workload
    // forked from it, hold every capability there until the capability
    // step; in the host's they hold the caller's.
    let admin = Cap(caps::Capability::CAP_SYS_ADMIN);
    if user.ns.value == Namespace::Host && !cx.host.capabilities.contains(&admin) {
        cx.rule_clamp(
            "workload.no_new_privs",
            "false".into(),
            Anchor::spec("process.noNewPrivileges", "false"),
            "true".into(),
            NNP_NEEDS_ADMIN_RULE,
            "the workload stays in the caller's user namespace, where the caller holds no CAP_SYS_ADMIN, \
             which the kernel requires to load a seccomp filter without no_new_privs",
        );
        return Ok(Sourced::new(true, Origin::rule(NNP_NEEDS_ADMIN_RULE)));
    }
    let mut calls: Vec<&str> = SETUP_CALLS.to_vec();
    if cx.policy.platform.value == crate::policy::PlatformName::Ptrace {
        calls.push("ptrace");
    }
    let refused = super::seccomp::not_surely_allowed(filter, &calls);
    if !refused.is_empty() {
        let mut e = CompileError::new(K::SeccompRefusesSetup {
            calls: refused.join("; "),
        });
        // An absent field (false) would point at the whole process object.
        if p.no_new_privileges().is_some() {
            e = e.anchor(Anchor::spec("process.noNewPrivileges", "false"));
        }
        return Err(e
            .anchor(Anchor::Policy(
                key.at.clone(),
                "lets the spec leave no_new_privs off".into(),
            ))
            .help(
                "set process.noNewPrivileges to true (the filter is then loaded last, after these calls), \
                 let the filter allow these calls, or set `no_new_privs = \"forced\"` in the policy's [seccomp]",
            ));
    }
    Ok(Sourced::new(false, key_origin))
}

/// Each requested capability checked against the ceiling.
fn capabilities(cx: &mut Cx, p: &oci_spec::runtime::Process) -> Result<Sourced<CapSets>, CompileError> {
    let Some(c) = p.capabilities() else {
        return Ok(Sourced::new(CapSets::default(), Origin::spec("process.capabilities")));
    };
    let mut sets = CapSets::default();
    let policy = cx.policy;
    let ceiling = &policy.cap_allow;
    let on = cx.policy.cap_on_excess.clone();
    let named: [(&str, &Option<oci_spec::runtime::Capabilities>, &mut BTreeSet<Cap>); 5] = [
        ("bounding", c.bounding(), &mut sets.bounding),
        ("effective", c.effective(), &mut sets.effective),
        ("inheritable", c.inheritable(), &mut sets.inheritable),
        ("permitted", c.permitted(), &mut sets.permitted),
        ("ambient", c.ambient(), &mut sets.ambient),
    ];
    let mut clamped = false;
    for (set, requested, out) in named {
        let mut parsed = Vec::new();
        for c in requested.iter().flatten() {
            let name = c.to_string();
            match name.parse::<Cap>() {
                Ok(cap) => parsed.push(cap),
                Err(_) => {
                    return Err(CompileError::new(K::Unsupported {
                        what: format!(
                        "capability {name} is not known to this sandboxctl; it cannot be granted or dropped reliably"
                    ),
                    })
                    .anchor(Anchor::Spec {
                        path: format!("process.capabilities.{set}"),
                        needle: Some(format!("CAP_{name}")),
                        label: "unknown here".into(),
                    }))
                }
            }
        }
        let mut requested = parsed;
        requested.sort();
        for cap in requested {
            if ceiling.value.contains_key(&cap) {
                out.insert(cap);
                continue;
            }
            cx.excess(
                &on,
                &ceiling.at,
                &format!("workload.capabilities.{set}"),
                cap.to_string(),
                Anchor::Spec {
                    path: format!("process.capabilities.{set}"),
                    needle: Some(cap.to_string()),
                    label: "requested".into(),
                },
                "(dropped)".into(),
                K::CapabilityNotAllowed {
                    cap: cap.to_string(),
                    set: set.into(),
                },
            )?;
            clamped = true;
        }
    }
    let from = if clamped {
        cx.at(&ceiling.at)
    } else {
        Origin::spec("process.capabilities")
    };
    Ok(Sourced::new(sets, from))
}

/// The kernel's rules that decide which capabilities a workload can hold.
/// Each is a rule name in the plan (docs/plan.md, "Rules").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CapRule {
    /// In the caller's user namespace, a set can hold only what the caller
    /// holds (capset refuses more permitted; the bounding set only shrinks).
    HeldByCaller,
    /// capset refuses an inheritable capability outside the bounding set.
    InheritableWithinBounding,
    /// capset refuses an effective capability that is not permitted.
    EffectiveWithinPermitted,
    /// PR_CAP_AMBIENT_RAISE refuses a capability that is not both permitted
    /// and inheritable (EPERM): runc and crun ignore that error and go on
    /// without it; the plan drops it and says so.
    AmbientNeedsPermittedAndInheritable,
    /// execve by a uid that is not root in its user namespace, of a file
    /// without file capabilities: permitted and effective become the ambient
    /// set.
    ExecNonRootKeepsAmbient,
    /// execve by root in its user namespace: permitted and effective become
    /// the bounding set (with the inheritable and ambient sets, both inside it).
    ExecRootGainsBounding,
}

impl CapRule {
    fn name(self) -> &'static str {
        match self {
            CapRule::HeldByCaller => "cap-held-by-caller",
            CapRule::InheritableWithinBounding => "cap-inheritable-within-bounding",
            CapRule::EffectiveWithinPermitted => "cap-effective-within-permitted",
            CapRule::AmbientNeedsPermittedAndInheritable => "cap-ambient-needs-permitted-and-inheritable",
            CapRule::ExecNonRootKeepsAmbient => "cap-exec-non-root-keeps-ambient",
            CapRule::ExecRootGainsBounding => "cap-exec-root-gains-bounding",
        }
    }

    fn why(self) -> &'static str {
        match self {
            CapRule::HeldByCaller => {
                "the caller does not hold it, and the workload stays in the caller's user namespace"
            }
            CapRule::InheritableWithinBounding => "capset refuses an inheritable capability outside the bounding set",
            CapRule::EffectiveWithinPermitted => "capset refuses an effective capability that is not permitted",
            CapRule::AmbientNeedsPermittedAndInheritable => {
                "the kernel raises an ambient capability only when it is permitted and inheritable"
            }
            CapRule::ExecNonRootKeepsAmbient => {
                "the workload is not root in its user namespace, so execve leaves it only its ambient set"
            }
            CapRule::ExecRootGainsBounding => {
                "the workload is root in its user namespace, so execve gives it the bounding set"
            }
        }
    }
}

/// What the workload really holds once it runs: the requested sets (already
/// cut to the policy's ceiling) put through the kernel's rules, in the order
/// apply sets them (credentials first, with keep-caps, so the uid change
/// clears nothing; then bounding, inheritable, effective, permitted,
/// ambient; then execve). Whatever a rule takes away is a clamp whose
/// ceiling is the rule, with a warning; these are never errors, since the
/// request is legal and runc and crun run it (see docs/policy.md,
/// "Capabilities under the kernel's rules"). The plan's sets are both what
/// apply sets before execve and what the workload holds after it.
fn held_capabilities(cx: &mut Cx, user: &UserNs, requested: Sourced<CapSets>) -> Sourced<CapSets> {
    let Sourced { value: mut sets, from } = requested;
    let mut decided = false;
    let mut drop = |cx: &mut Cx, set: &str, keep: &dyn Fn(&Cap) -> bool, have: &BTreeSet<Cap>, rule: CapRule| {
        let (kept, lost): (BTreeSet<Cap>, BTreeSet<Cap>) = have.iter().partition(|c| keep(c));
        for cap in lost {
            decided = true;
            cx.rule_clamp(
                &format!("workload.capabilities.{set}"),
                cap.to_string(),
                Anchor::Spec {
                    path: format!("process.capabilities.{set}"),
                    needle: Some(cap.to_string()),
                    label: "requested".into(),
                },
                "(dropped)".into(),
                rule.name(),
                rule.why(),
            );
        }
        kept
    };
    if user.ns.value == Namespace::Host {
        let host = cx.host;
        let held = |c: &Cap| host.capabilities.contains(c) && host.bounding.contains(c);
        for (set, s) in [
            ("bounding", &mut sets.bounding),
            ("effective", &mut sets.effective),
            ("inheritable", &mut sets.inheritable),
            ("permitted", &mut sets.permitted),
            ("ambient", &mut sets.ambient),
        ] {
            *s = drop(cx, set, &held, s, CapRule::HeldByCaller);
        }
    }
    let bounding = sets.bounding.clone();
    sets.inheritable = drop(
        cx,
        "inheritable",
        &|c| bounding.contains(c),
        &sets.inheritable,
        CapRule::InheritableWithinBounding,
    );
    let permitted = sets.permitted.clone();
    sets.effective = drop(
        cx,
        "effective",
        &|c| permitted.contains(c),
        &sets.effective,
        CapRule::EffectiveWithinPermitted,
    );
    let inheritable = sets.inheritable.clone();
    sets.ambient = drop(
        cx,
        "ambient",
        &|c| permitted.contains(c) && inheritable.contains(c),
        &sets.ambient,
        CapRule::AmbientNeedsPermittedAndInheritable,
    );
    if user.creds.uid.0 == 0 {
        // Root: execve's permitted is bounding ∪ inheritable ∪ ambient, which
        // is the bounding set here; effective follows. What the spec did not
        // ask for is recorded as granted by the rule.
        let rule = CapRule::ExecRootGainsBounding;
        for (set, have) in [("effective", &sets.effective), ("permitted", &sets.permitted)] {
            for cap in sets.bounding.difference(have) {
                decided = true;
                cx.rule_clamp(
                    &format!("workload.capabilities.{set}"),
                    "(not requested)".into(),
                    Anchor::Spec {
                        path: "process.capabilities.bounding".into(),
                        needle: Some(cap.to_string()),
                        label: "in the bounding set".into(),
                    },
                    cap.to_string(),
                    rule.name(),
                    rule.why(),
                );
            }
        }
        sets.permitted = sets.bounding.clone();
        sets.effective = sets.bounding.clone();
    } else {
        let ambient = sets.ambient.clone();
        let rule = CapRule::ExecNonRootKeepsAmbient;
        sets.effective = drop(cx, "effective", &|c| ambient.contains(c), &sets.effective, rule);
        sets.permitted = drop(cx, "permitted", &|c| ambient.contains(c), &sets.permitted, rule);
    }
    let from = if decided {
        Origin::rule("cap-kernel-rules")
    } else {
        from
    };
    Sourced::new(sets, from)
}

/// The spec's rlimits, each cut to the policy's, and the policy's imposed where
/// the spec sets none.
fn rlimits(cx: &mut Cx, p: &oci_spec::runtime::Process) -> Result<BTreeMap<RlimitKind, Rlimit>, CompileError> {
    let mut out = BTreeMap::new();
    for (i, r) in p.rlimits().iter().flatten().enumerate() {
        let name = serde_json::to_value(r.typ())
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let Ok(kind) = name.parse::<RlimitKind>() else {
            return Err(CompileError::new(K::Unsupported {
                what: format!("unknown rlimit {name}"),
            })
            .anchor(Anchor::spec(format!("process.rlimits[{i}].type"), "rlimit")));
        };
        let path = format!("process.rlimits[{i}]");
        let (mut soft, mut hard) = (r.soft(), r.hard());
        let mut from = Origin::spec(&path);
        if let Some(c) = cx.policy.rlimits.get(&kind).cloned() {
            let (cs, ch) = c.value;
            if soft > cs || hard > ch {
                let on = cx.policy.limits_on_excess.clone();
                cx.excess(
                    &on,
                    &c.at,
                    &format!("workload.rlimits.{kind}"),
                    format!("{soft}/{hard}"),
                    Anchor::spec(&path, "requested"),
                    format!("{}/{}", soft.min(cs), hard.min(ch)),
                    K::LimitAboveCeiling {
                        what: kind.to_string(),
                        requested: format!("{soft}/{hard}"),
                        ceiling: format!("{cs}/{ch}"),
                    },
                )?;
                soft = soft.min(cs);
                hard = hard.min(ch);
                from = cx.at(&c.at);
            }
        }
        out.insert(kind, Rlimit { soft, hard, from });
    }
    for (kind, c) in &cx.policy.rlimits {
        out.entry(*kind).or_insert_with(|| Rlimit {
            soft: c.value.0,
            hard: c.value.1,
            from: cx.policy.origin(&c.at),
        });
    }
    Ok(out)
}

/// The supervisor: nobody (or the workload's credentials outside the nobody
/// rule), no capabilities unless host networking applies the spec's,
/// non-dumpable, a new session (with the pty as controlling tty on a console).
pub(crate) fn supervisor(user: &UserNs, w: &Workload, stdio: &Sourced<Stdio>, fds: Vec<FdEntry>) -> Supervisor {
    let capabilities = if user.apply_caps_to_supervisor {
        w.capabilities.value.clone()
    } else {
        CapSets::default()
    };
    Supervisor {
        credentials: user.creds.clone(),
        capabilities,
        non_dumpable: true,
        session: match stdio.value {
            Stdio::ConsoleSocket(_) | Stdio::Pty => Session::NewSessionWithControllingTty,
            Stdio::Inherit | Stdio::Null => Session::NewSession,
        },
        fds,
    }
}
