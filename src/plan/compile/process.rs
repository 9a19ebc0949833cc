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
            "give the command after --, e.g. sandboxctl plan -- /bin/sh -c 'id'"
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
    let seccomp = super::seccomp::seccomp(cx)?;
    let spec_nnp = p.no_new_privileges().unwrap_or(false);
    let no_new_privs = if seccomp.is_some() && !spec_nnp {
        Sourced::new(true, Origin::rule("seccomp-filter-sets-no-new-privs"))
    } else {
        Sourced::new(spec_nnp, Origin::spec("process.noNewPrivileges"))
    };
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
        rlimits: rlimits(cx, p)?,
        seccomp,
        fds,
    })
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
            Stdio::ConsoleSocket(_) => Session::NewSessionWithControllingTty,
            Stdio::Inherit => Session::NewSession,
        },
        fds,
    }
}
