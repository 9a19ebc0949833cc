//! `exec`: a process started later inside a running sandbox, compiled
//! against the sandbox's own plan. The plan's workload section is the
//! ceiling: the new process runs with the workload's rlimits, no_new_privs
//! and seccomp programs, never more capabilities than the workload's in any
//! set, and as the workload's user unless the plan's supervisor keeps
//! CAP_SETUID and CAP_SETGID to change to another (under the nobody rule,
//! every process runs as nobody, whatever user the request names). What the request may
//! choose freely: argv, environment (default: the workload's), cwd (absolute)
//! and whether it gets a terminal. Pure: no I/O.

use std::collections::BTreeSet;
use std::path::PathBuf;

use super::types::{CapSets, Credentials, LaunchPlan};
use crate::vocab::{Cap, Gid, Origin, Uid};

/// A process `exec` may start, as the supervisor will start it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecProcess {
    /// argv; `args[0]` is looked up in the environment's PATH when it has no `/`.
    pub args: Vec<String>,
    /// The environment.
    pub env: Vec<String>,
    /// Working directory inside the sandbox.
    pub cwd: PathBuf,
    /// uid, gid and groups.
    pub credentials: Credentials,
    /// Its capability sets (each within the workload's).
    pub capabilities: CapSets,
    /// Whether it asked for a terminal (`process.terminal`).
    pub terminal: bool,
    /// Whether it sets no_new_privs before its filter, at step
    /// `seccomp_before_credentials` (rule `exec-seccomp-sets-no-new-privs`):
    /// the plan loads the filter there without it, which needs
    /// CAP_SYS_ADMIN, and the supervisor it is spawned from has dropped its
    /// capabilities to `supervisor.capabilities` by then.
    pub no_new_privs_before_filter: bool,
}

/// The rule of [`ExecProcess::no_new_privs_before_filter`].
pub const EXEC_NNP_RULE: &str = "exec-seccomp-sets-no-new-privs";

/// Why an `exec` request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecRefused {
    /// Nothing to run.
    #[error("the process has no command (process.args is empty)")]
    NoArgs,
    /// A relative cwd.
    #[error("process.cwd {0:?} is not absolute")]
    RelativeCwd(PathBuf),
    /// Another user than the workload's, without the capabilities to switch.
    #[error(
        "process.user {uid}:{gid} is not the workload's {wuid}:{wgid}, and this sandbox's supervisor keeps no \
         CAP_SETUID/CAP_SETGID to change to another (plan: supervisor.capabilities, {from})"
    )]
    User {
        /// Asked uid.
        uid: u32,
        /// Asked gid.
        gid: u32,
        /// The workload's uid.
        wuid: u32,
        /// The workload's gid.
        wgid: u32,
        /// Where the supervisor's capabilities come from.
        from: Origin,
    },
    /// A capability above the workload's.
    #[error("{cap} in process.capabilities.{set} is above this sandbox's ceiling (the workload's {set} set, {from})")]
    Capability {
        /// The capability.
        cap: String,
        /// Which set.
        set: &'static str,
        /// Where the workload's capabilities come from.
        from: Origin,
    },
    /// A capability name not known.
    #[error("process.capabilities.{set}: {message}")]
    UnknownCapability {
        /// Which set.
        set: &'static str,
        /// Why.
        message: String,
    },
}

/// Compiles `p` (an OCI process, runc's `exec --process`) against `plan`.
pub fn compile(plan: &LaunchPlan, p: &oci_spec::runtime::Process) -> Result<ExecProcess, ExecRefused> {
    let w = &plan.workload;
    let args = p.args().clone().unwrap_or_default();
    if args.is_empty() {
        return Err(ExecRefused::NoArgs);
    }
    let env = match p.env() {
        Some(e) if !e.is_empty() => e.clone(),
        _ => w.env.value.clone(),
    };
    let cwd = p.cwd().clone();
    if !cwd.is_absolute() {
        return Err(ExecRefused::RelativeCwd(cwd));
    }
    let (uid, gid) = (p.user().uid(), p.user().gid());
    let wc = &w.credentials;
    let credentials = if wc.from == Origin::rule(super::compile::NOBODY_RULE) && (uid, gid) != (wc.uid.0, wc.gid.0) {
        // Every process of this sandbox runs as nobody: the spec's
        // process.user gave way to it for the workload, and an exec's gives
        // way to it the same (no other id is mapped in its user namespace).
        Credentials {
            uid: wc.uid,
            gid: wc.gid,
            groups: wc.groups.clone(),
            from: wc.from.clone(),
        }
    } else if uid == wc.uid.0 && gid == wc.gid.0 {
        let groups = match p.user().additional_gids() {
            Some(g) if !g.is_empty() => g.iter().map(|g| Gid(*g)).collect(),
            _ => wc.groups.clone(),
        };
        Credentials {
            uid: wc.uid,
            gid: wc.gid,
            groups,
            from: Origin::Cli("exec process.user".into()),
        }
    } else {
        let sup = &plan.supervisor.capabilities.permitted;
        let can = [caps::Capability::CAP_SETUID, caps::Capability::CAP_SETGID]
            .iter()
            .all(|c| sup.contains(&Cap(*c)));
        if !can {
            return Err(ExecRefused::User {
                uid,
                gid,
                wuid: wc.uid.0,
                wgid: wc.gid.0,
                from: plan.supervisor.credentials.from.clone(),
            });
        }
        Credentials {
            uid: Uid(uid),
            gid: Gid(gid),
            groups: p
                .user()
                .additional_gids()
                .clone()
                .unwrap_or_default()
                .into_iter()
                .map(Gid)
                .collect(),
            from: Origin::Cli("exec process.user".into()),
        }
    };
    let ceiling = &w.capabilities.value;
    let capabilities = match p.capabilities() {
        None => ceiling.clone(),
        Some(c) => {
            let set = |name: &'static str,
                       asked: &Option<oci_spec::runtime::Capabilities>|
             -> Result<BTreeSet<Cap>, ExecRefused> {
                asked
                    .iter()
                    .flatten()
                    .map(|c| {
                        c.to_string()
                            .parse()
                            .map_err(|e: crate::vocab::CapError| ExecRefused::UnknownCapability {
                                set: name,
                                message: e.to_string(),
                            })
                    })
                    .collect()
            };
            let mut asked = CapSets {
                bounding: set("bounding", c.bounding())?,
                effective: set("effective", c.effective())?,
                inheritable: set("inheritable", c.inheritable())?,
                permitted: set("permitted", c.permitted())?,
                ambient: set("ambient", c.ambient())?,
            };
            // What execve will do with them (as for the workload,
            // rule:cap-kernel-rules): an engine asks for the container's
            // sets whatever its user, and a non-root process keeps only its
            // ambient capabilities in effective and permitted.
            if credentials.uid.0 == 0 {
                asked.permitted = asked.bounding.clone();
                asked.effective = asked.bounding.clone();
            } else {
                asked.effective.retain(|c| asked.ambient.contains(c));
                asked.permitted.retain(|c| asked.ambient.contains(c));
            }
            let within =
                |name: &'static str, have: &BTreeSet<Cap>, max: &BTreeSet<Cap>| match have.difference(max).next() {
                    Some(cap) => Err(ExecRefused::Capability {
                        cap: cap.to_string(),
                        set: name,
                        from: w.capabilities.from.clone(),
                    }),
                    None => Ok(()),
                };
            within("bounding", &asked.bounding, &ceiling.bounding)?;
            within("effective", &asked.effective, &ceiling.effective)?;
            within("inheritable", &asked.inheritable, &ceiling.inheritable)?;
            within("permitted", &asked.permitted, &ceiling.permitted)?;
            within("ambient", &asked.ambient, &ceiling.ambient)?;
            asked
        }
    };
    Ok(ExecProcess {
        args,
        env,
        cwd,
        credentials,
        capabilities,
        terminal: p.terminal().unwrap_or(false),
        no_new_privs_before_filter: plan.steps.contains(&super::types::Step::SeccompBeforeCredentials)
            && !plan
                .supervisor
                .capabilities
                .effective
                .contains(&Cap(caps::Capability::CAP_SYS_ADMIN)),
    })
}

/// A capability an `exec` request asked for above the workload's, cut
/// because the sandbox's policy clamps (`capabilities.on_excess = "clamp"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClampedCap {
    /// Which set (`bounding`, `effective`, ...).
    pub set: &'static str,
    /// The capability.
    pub cap: Cap,
}

/// Cuts each capability set `p` names to the workload's same set, as compile
/// cuts a spec's under `capabilities.on_excess = "clamp"`: engines send their
/// default sets with every exec (podman and containerd alike), and a policy
/// that clamps the container's sets at create clamps an exec's the same
/// instead of refusing it. Returns what was cut (unknown names are left for
/// [`compile`] to refuse). Pure: the supervisor compiles the result as any
/// request, so nothing here can widen what it allows.
pub fn clamp_capabilities(plan: &LaunchPlan, p: &mut oci_spec::runtime::Process) -> Vec<ClampedCap> {
    let Some(mut c) = p.capabilities().clone() else {
        return Vec::new();
    };
    let ceiling = &plan.workload.capabilities.value;
    let mut cut = Vec::new();
    let mut keep = |set: &'static str, asked: Option<oci_spec::runtime::Capabilities>, max: &BTreeSet<Cap>| {
        asked.map(|asked| {
            asked
                .into_iter()
                .filter(|c| match c.to_string().parse::<Cap>() {
                    Ok(cap) if !max.contains(&cap) => {
                        cut.push(ClampedCap { set, cap });
                        false
                    }
                    _ => true,
                })
                .collect()
        })
    };
    let bounding = keep("bounding", c.bounding().clone(), &ceiling.bounding);
    let effective = keep("effective", c.effective().clone(), &ceiling.effective);
    let inheritable = keep("inheritable", c.inheritable().clone(), &ceiling.inheritable);
    let permitted = keep("permitted", c.permitted().clone(), &ceiling.permitted);
    let ambient = keep("ambient", c.ambient().clone(), &ceiling.ambient);
    c.set_bounding(bounding);
    c.set_effective(effective);
    c.set_inheritable(inheritable);
    c.set_permitted(permitted);
    c.set_ambient(ambient);
    p.set_capabilities(Some(c));
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Step;
    use oci_spec::runtime::{Capability, LinuxCapabilitiesBuilder, ProcessBuilder, UserBuilder};

    fn plan() -> LaunchPlan {
        super::super::sample::sample_plan()
    }

    fn process(uid: u32) -> oci_spec::runtime::Process {
        ProcessBuilder::default()
            .args(vec!["/bin/sh".to_string()])
            .cwd("/")
            .user(UserBuilder::default().uid(uid).gid(uid).build().unwrap())
            .build()
            .map(|mut p| {
                p.set_capabilities(None);
                p.set_env(None);
                p
            })
            .unwrap()
    }

    /// Issue 13: where the plan loads the filter without no_new_privs, an
    /// exec'd process sets it first unless its supervisor still holds
    /// CAP_SYS_ADMIN (the kernel's condition for loading without it).
    #[test]
    fn exec_sets_no_new_privs_before_an_early_filter_without_cap_sys_admin() {
        let mut plan = plan();
        let uid = plan.workload.credentials.uid.0;
        assert!(!compile(&plan, &process(uid)).unwrap().no_new_privs_before_filter);
        let at = plan.steps.iter().position(|s| *s == Step::Credentials).unwrap();
        plan.steps.insert(at, Step::SeccompBeforeCredentials);
        plan.steps.retain(|s| !matches!(s, Step::NoNewPrivs | Step::Seccomp));
        plan.workload.no_new_privs.value = false;
        assert!(compile(&plan, &process(uid)).unwrap().no_new_privs_before_filter);
        plan.supervisor
            .capabilities
            .effective
            .insert(Cap(caps::Capability::CAP_SYS_ADMIN));
        assert!(!compile(&plan, &process(uid)).unwrap().no_new_privs_before_filter);
    }

    #[test]
    fn defaults_come_from_the_workload() {
        let plan = plan();
        let w = &plan.workload;
        let e = compile(&plan, &process(w.credentials.uid.0)).unwrap();
        assert_eq!(e.env, w.env.value);
        assert_eq!(e.capabilities, w.capabilities.value);
        assert_eq!(e.credentials.uid, w.credentials.uid);
    }

    #[test]
    fn under_the_nobody_rule_every_user_is_nobody() {
        let plan = plan();
        let w = &plan.workload.credentials;
        assert_eq!(w.from, Origin::rule(super::super::compile::NOBODY_RULE));
        // An engine's exec names the spec's user (root): it runs as the
        // workload does, nobody.
        let e = compile(&plan, &process(0)).unwrap();
        assert_eq!((e.credentials.uid, e.credentials.gid), (w.uid, w.gid));
        assert_eq!(e.credentials.from, w.from);
        // ... asking for the container's capability sets, as engines do:
        // execve leaves a non-root process none in effective and permitted,
        // so that is what it gets, not a refusal.
        let mut p = process(0);
        let bounding: std::collections::HashSet<Capability> = plan
            .workload
            .capabilities
            .value
            .bounding
            .iter()
            .map(|c| serde_json::from_value(serde_json::Value::String(c.to_string())).unwrap())
            .collect();
        assert!(!bounding.is_empty());
        p.set_capabilities(Some(
            LinuxCapabilitiesBuilder::default()
                .bounding(bounding.clone())
                .effective(bounding.clone())
                .permitted(bounding)
                .inheritable(std::collections::HashSet::new())
                .ambient(std::collections::HashSet::new())
                .build()
                .unwrap(),
        ));
        let e = compile(&plan, &p).unwrap();
        assert!(e.capabilities.effective.is_empty() && e.capabilities.permitted.is_empty());
        assert_eq!(e.capabilities.bounding, plan.workload.capabilities.value.bounding);
    }

    #[test]
    fn clamping_cuts_each_set_to_the_workloads() {
        let plan = plan();
        let ceiling = plan.workload.capabilities.value.clone();
        let mut p = process(plan.workload.credentials.uid.0);
        let all: std::collections::HashSet<Capability> = [
            Capability::SysAdmin,
            Capability::SysModule,
            Capability::Chown,
            Capability::Kill,
        ]
        .into();
        p.set_capabilities(Some(
            LinuxCapabilitiesBuilder::default()
                .bounding(all.clone())
                .effective(all.clone())
                .permitted(all.clone())
                .inheritable(all.clone())
                .ambient(all)
                .build()
                .unwrap(),
        ));
        let cut = clamp_capabilities(&plan, &mut p);
        // Whatever the sample's sets hold, nothing above them is left, every
        // cut names a capability its set lacks, and compile accepts the rest.
        for c in &cut {
            let max = match c.set {
                "bounding" => &ceiling.bounding,
                "effective" => &ceiling.effective,
                "inheritable" => &ceiling.inheritable,
                "permitted" => &ceiling.permitted,
                _ => &ceiling.ambient,
            };
            assert!(!max.contains(&c.cap), "{c:?}");
        }
        assert!(cut.iter().any(|c| c.cap == Cap(caps::Capability::CAP_SYS_MODULE)));
        let e = compile(&plan, &p).unwrap();
        assert!(e.capabilities.bounding.is_subset(&ceiling.bounding));
        assert!(e.capabilities.ambient.is_subset(&ceiling.ambient));
        // A request without capabilities is left alone.
        let mut p = process(0);
        assert!(clamp_capabilities(&plan, &mut p).is_empty());
        assert!(p.capabilities().is_none());
    }

    #[test]
    fn nothing_above_the_ceiling() {
        let plan = plan();
        let uid = plan.workload.credentials.uid.0;
        let mut p = process(uid);
        p.set_args(Some(vec![]));
        assert_eq!(compile(&plan, &p), Err(ExecRefused::NoArgs));
        let mut p = process(uid);
        p.set_cwd("tmp".into());
        assert!(matches!(compile(&plan, &p), Err(ExecRefused::RelativeCwd(_))));
        let other = if uid == 4242 { 4243 } else { 4242 };
        // A workload whose user is the spec's (not the nobody rule's), and a
        // supervisor without CAP_SETUID: another user is refused.
        let mut own = plan.clone();
        own.workload.credentials.from = Origin::spec("process.user");
        own.supervisor
            .capabilities
            .permitted
            .retain(|c| *c != Cap(caps::Capability::CAP_SETUID));
        assert!(matches!(compile(&own, &process(other)), Err(ExecRefused::User { .. })));
        let mut p = process(uid);
        let all: std::collections::HashSet<Capability> = [Capability::SysAdmin, Capability::SysModule].into();
        p.set_capabilities(Some(LinuxCapabilitiesBuilder::default().bounding(all).build().unwrap()));
        let r = compile(&plan, &p);
        if !plan
            .workload
            .capabilities
            .value
            .bounding
            .contains(&Cap(caps::Capability::CAP_SYS_MODULE))
        {
            assert!(
                matches!(r, Err(ExecRefused::Capability { set: "bounding", .. })),
                "{r:?}"
            );
        }
    }
}
