//! Loading a policy chain and merging it: each `--policy` and each `extends`
//! adds a layer; for every key the most derived layer that sets it wins, and
//! the winner's file and span go with the value. Then the merged policy is
//! validated, each rule in its own function.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::error::{PolicyError, PolicyErrorKind as K};
use super::raw::*;
use super::{At, Loc, Policy, PolicyRef, PolicySeccompRule, Setting, Source, BUILTIN};
use crate::plan::syscalls::{errno_by_name, syscall_nr};
use crate::plan::{ArgCond, CmpOp, SeccompAction};
use crate::vocab::{closest, serde_name, Cap, RlimitKind};

/// Loads and resolves the policies named on the command line, in order (later
/// ones override earlier ones). An empty list means the built-in `default`.
/// Relative paths are read from `base` but keep the names they were given.
pub fn load(refs: &[PolicyRef], base: &Path) -> Result<Policy, PolicyError> {
    let default = [PolicyRef::Builtin("default".into())];
    let refs = if refs.is_empty() { &default[..] } else { refs };
    let mut layers: Vec<(Source, RawPolicy)> = Vec::new();
    for r in refs {
        load_chain(r, base, &mut Vec::new(), &mut layers, None)?;
    }
    merge(layers)
}

/// Resolves a chain that was loaded before and stored whole (a long-lived
/// sandbox's `policy.json`): `sources` are every layer, base first, as
/// [`Policy::sources`] held them. Their `extends` were already followed when
/// the chain was first loaded, so they are not read again: the result is the
/// policy of then, whatever the files say now. Pure: nothing is read.
pub fn load_resolved(sources: Vec<Source>) -> Result<Policy, PolicyError> {
    let mut layers = Vec::with_capacity(sources.len());
    for source in sources {
        let raw = parse(&source)?;
        layers.push((source, raw));
    }
    merge(layers)
}

/// Loads `r` and, first, what it extends; appends base-first to `layers`.
fn load_chain(
    r: &PolicyRef,
    base: &Path,
    stack: &mut Vec<String>,
    layers: &mut Vec<(Source, RawPolicy)>,
    from: Option<(&Source, &Spanned<String>)>,
) -> Result<(), PolicyError> {
    let source = read(r, base, from)?;
    if stack.contains(&source.name) {
        let mut chain = stack.clone();
        chain.push(source.name.clone());
        let (src, span) = from.expect("a cycle needs an extends");
        return Err(PolicyError::at(
            K::ExtendsCycle { chain },
            &src.name,
            &src.text,
            Some(span.span()),
            "extends here",
        )
        .with_help("remove one `extends` so the chain ends at a policy that extends nothing"));
    }
    if layers.iter().any(|(s, _)| s.name == source.name) {
        return Ok(()); // already in the chain (two policies extending the same base)
    }
    let raw = parse(&source)?;
    stack.push(source.name.clone());
    if let Some(ext) = &raw.extends {
        let parent = PolicyRef::resolve_extends(ext.get_ref(), source.dir.as_deref());
        load_chain(&parent, base, stack, layers, Some((&source, ext)))?;
    }
    stack.pop();
    layers.push((source, raw));
    Ok(())
}

fn read(r: &PolicyRef, base: &Path, from: Option<(&Source, &Spanned<String>)>) -> Result<Source, PolicyError> {
    match r {
        PolicyRef::Builtin(name) => match super::builtin(name) {
            Some(text) => Ok(Source {
                name: format!("builtin:{name}.toml"),
                dir: None,
                text: text.to_string(),
            }),
            None => {
                let kind = K::UnknownBuiltin {
                    name: name.clone(),
                    suggestion: closest(name, BUILTIN.iter().map(|(n, _)| *n)).map(str::to_string),
                };
                let help = format!(
                    "built-in policies are {}; a path must contain a '/' or end in .toml",
                    BUILTIN.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
                );
                Err(match from {
                    Some((src, span)) => PolicyError::at(kind, &src.name, &src.text, Some(span.span()), "extends here"),
                    None => PolicyError {
                        kind,
                        at: None,
                        also: vec![],
                        help: None,
                    },
                }
                .with_help(help))
            }
        },
        PolicyRef::Text { name, text } => Ok(Source {
            name: name.clone(),
            dir: None,
            text: text.clone(),
        }),
        PolicyRef::File(path) => match crate::vocab::read_input(&base.join(path)) {
            Ok(text) => Ok(Source {
                name: path.display().to_string(),
                dir: Some(path.parent().map(Path::to_path_buf).unwrap_or_default()),
                text,
            }),
            Err(e) => {
                let kind = K::Read {
                    path: path.display().to_string(),
                    error: e.to_string(),
                };
                Err(match from {
                    Some((src, span)) => PolicyError::at(kind, &src.name, &src.text, Some(span.span()), "extends here"),
                    None => PolicyError {
                        kind,
                        at: None,
                        also: vec![],
                        help: None,
                    },
                })
            }
        },
    }
}

/// Parses one file, turning the TOML parser's errors into located ones with a
/// did-you-mean for unknown keys.
pub(crate) fn parse(src: &Source) -> Result<RawPolicy, PolicyError> {
    toml::from_str::<RawPolicy>(&src.text).map_err(|e| {
        let span = e.span();
        let msg = e.message().trim().to_string();
        if let Some((key, expected)) = crate::vocab::serde_unknown(&msg, "field") {
            let suggestion = closest(&key, expected.iter().map(String::as_str)).map(str::to_string);
            let help = format!("accepted keys here: {}", expected.join(", "));
            return PolicyError::at(
                K::UnknownKey {
                    key,
                    suggestion,
                    expected,
                },
                &src.name,
                &src.text,
                span,
                "unknown key",
            )
            .with_help(help);
        }
        let label = if msg.contains("invalid type") || msg.contains("expected") || msg.contains("unknown variant") {
            "bad value"
        } else {
            "here"
        };
        let help = crate::vocab::serde_unknown(&msg, "variant").and_then(|(v, expected)| {
            closest(&v, expected.iter().map(String::as_str)).map(|c| format!("did you mean \"{c}\"?"))
        });
        let e = PolicyError::at(K::Parse { message: msg }, &src.name, &src.text, span, label);
        match help {
            Some(h) => e.with_help(h),
            None => e,
        }
    })
}

/// The layers, most derived first, with their index into `sources`.
struct Layers {
    sources: Vec<Source>,
    raws: Vec<RawPolicy>,
}

impl Layers {
    /// The most derived setting of a key.
    fn pick<T: Clone>(&self, get: impl Fn(&RawPolicy) -> Option<&Spanned<T>>) -> Option<Setting<T>> {
        self.raws.iter().enumerate().rev().find_map(|(i, raw)| {
            get(raw).map(|s| Setting {
                value: s.get_ref().clone(),
                at: At::File(Loc { src: i, span: s.span() }),
            })
        })
    }

    fn pick_or<T: Clone>(&self, get: impl Fn(&RawPolicy) -> Option<&Spanned<T>>, default: T) -> Setting<T> {
        self.pick(get).unwrap_or_else(|| Setting::default_value(default))
    }

    fn err(&self, kind: K, at: &At, label: &str) -> PolicyError {
        match at {
            At::File(loc) => {
                let s = &self.sources[loc.src];
                PolicyError::at(kind, &s.name, &s.text, Some(loc.span.clone()), label)
            }
            At::Default => PolicyError {
                kind,
                at: None,
                also: vec![],
                help: None,
            },
        }
    }

    fn loc(&self, src: usize, span: std::ops::Range<usize>) -> At {
        At::File(Loc { src, span })
    }

    /// The most derived list setting, its items located.
    fn pick_list<T: Clone>(
        &self,
        get: impl Fn(&RawPolicy) -> Option<&Spanned<Vec<Spanned<T>>>>,
    ) -> Option<Setting<Vec<Setting<T>>>> {
        self.raws.iter().enumerate().rev().find_map(|(i, raw)| {
            get(raw).map(|list| Setting {
                value: list
                    .get_ref()
                    .iter()
                    .map(|item| Setting {
                        value: item.get_ref().clone(),
                        at: self.loc(i, item.span()),
                    })
                    .collect(),
                at: self.loc(i, list.span()),
            })
        })
    }
}

fn merge(layers: Vec<(Source, RawPolicy)>) -> Result<Policy, PolicyError> {
    let (sources, raws): (Vec<_>, Vec<_>) = layers.into_iter().unzip();
    let l = Layers { sources, raws };

    let platform = l.pick_or(|r| r.platform.as_ref(), PlatformName::Native);
    let network = l.pick_or(|r| r.network.mode.as_ref(), NetworkName::None);

    let mut namespaces = BTreeMap::new();
    type NsGet = fn(&RawPolicy) -> Option<&Spanned<NsChoice>>;
    let kinds: [(&'static str, NsGet); 8] = [
        ("user", |r| r.namespaces.user.as_ref()),
        ("pid", |r| r.namespaces.pid.as_ref()),
        ("net", |r| r.namespaces.net.as_ref()),
        ("ipc", |r| r.namespaces.ipc.as_ref()),
        ("uts", |r| r.namespaces.uts.as_ref()),
        ("mount", |r| r.namespaces.mount.as_ref()),
        ("cgroup", |r| r.namespaces.cgroup.as_ref()),
        ("time", |r| r.namespaces.time.as_ref()),
    ];
    for (name, get) in kinds {
        if let Some(s) = l.pick(get) {
            namespaces.insert(name, s);
        }
    }

    let cap_list = l.pick_list(|r| r.capabilities.allow.as_ref());
    let cap_allow = match cap_list {
        None => Setting::default_value(BTreeMap::new()),
        Some(list) => {
            let mut caps = BTreeMap::new();
            for item in &list.value {
                let cap: Cap = item
                    .value
                    .parse()
                    .map_err(|e| l.err(K::Capability(e), &item.at, "not a capability"))?;
                let At::File(loc) = &item.at else {
                    unreachable!("list items come from files")
                };
                caps.insert(cap, loc.clone());
            }
            Setting {
                value: caps,
                at: list.at,
            }
        }
    };

    let mut rlimits = BTreeMap::new();
    for (i, raw) in l.raws.iter().enumerate() {
        for (name, v) in &raw.rlimits {
            let kind: RlimitKind = name
                .parse()
                .map_err(|e| l.err(K::Rlimit(e), &l.loc(i, v.span()), "not an rlimit"))?;
            let r = v.get_ref();
            if r.soft > r.hard {
                return Err(l.err(
                    K::Range {
                        what: format!("{kind}: soft limit {} is above the hard limit {}", r.soft, r.hard),
                    },
                    &l.loc(i, v.span()),
                    "soft > hard",
                ));
            }
            rlimits.insert(
                kind,
                Setting {
                    value: (r.soft, r.hard),
                    at: l.loc(i, v.span()),
                },
            );
        }
    }

    let seccomp_default = match l.pick(|r| r.seccomp.default_action.as_ref()) {
        None => Setting::default_value(SeccompAction::Errno(libc::EPERM as u32)),
        Some(s) => Setting {
            value: parse_action(&s.value)
                .ok_or_else(|| l.err(K::SeccompAction(s.value.clone()), &s.at, "bad action"))?,
            at: s.at,
        },
    };
    let seccomp_allow = l
        .pick_list(|r| r.seccomp.allow.as_ref())
        .unwrap_or_else(|| Setting::default_value(vec![]));
    let seccomp_deny = l
        .pick_list(|r| r.seccomp.deny.as_ref())
        .unwrap_or_else(|| Setting::default_value(vec![]));
    for s in seccomp_allow.value.iter().chain(&seccomp_deny.value) {
        check_syscall(&l, &s.value, &s.at)?;
    }
    let seccomp_rules = seccomp_rules(&l)?;

    let pass_fds = match l.pick_list(|r| r.workload.pass_fds.as_ref()) {
        None => Setting::default_value(BTreeSet::new()),
        Some(list) => Setting {
            value: list.value.iter().map(|s| s.value).collect(),
            at: list.at,
        },
    };

    let policy = Policy {
        platform,
        network,
        network_allow_join: l.pick_or(|r| r.network.allow_join.as_ref(), true),
        network_on_excess: l.pick_or(|r| r.network.on_excess.as_ref(), OnExcess::Deny),
        namespaces,
        ns_allow_join: l.pick_or(
            |r| r.namespaces.allow_join.as_ref(),
            vec![crate::plan::NsKind::Net, crate::plan::NsKind::User],
        ),
        user_mode: l.pick_or(|r| r.user.mode.as_ref(), UserMode::Nobody),
        allowed_host_ids: l.pick_or(|r| r.user.allowed_host_ids.as_ref(), Vec::new()),
        allow_subordinate_ids: l.pick_or(|r| r.user.allow_subordinate_ids.as_ref(), false),
        ns_on_excess: l.pick_or(|r| r.namespaces.on_excess.as_ref(), OnExcess::Clamp),
        root_path: l.pick(|r| r.root.path.as_ref()),
        root_change: l.pick_or(|r| r.root.change.as_ref(), RootChangeName::PivotRoot),
        root_force_readonly: l.pick_or(|r| r.root.force_readonly.as_ref(), false),
        cap_allow,
        cap_on_excess: l.pick_or(|r| r.capabilities.on_excess.as_ref(), OnExcess::Deny),
        memory: l.pick(|r| r.limits.memory.as_ref()),
        memory_swap: l.pick(|r| r.limits.memory_swap.as_ref()),
        pids: l.pick(|r| r.limits.pids.as_ref()),
        cpu_quota: l.pick(|r| r.limits.cpu_quota.as_ref()),
        cpu_period: l.pick(|r| r.limits.cpu_period.as_ref()),
        cpu_shares: l.pick(|r| r.limits.cpu_shares.as_ref()),
        limits_on_excess: l.pick_or(|r| r.limits.on_excess.as_ref(), OnExcess::Deny),
        mount_allowed: l
            .pick_list(|r| r.mounts.allowed_host_paths.as_ref())
            .unwrap_or_else(|| Setting::default_value(vec![])),
        mount_writable: l.pick_or(|r| r.mounts.allow_writable_binds.as_ref(), false),
        mount_on_excess: l.pick_or(|r| r.mounts.on_excess.as_ref(), OnExcess::Deny),
        device_allowed: l.pick_list(|r| r.devices.allowed.as_ref()).unwrap_or_else(|| {
            Setting::default_value(
                AllowedDevice::oci_defaults()
                    .into_iter()
                    .map(Setting::default_value)
                    .collect(),
            )
        }),
        device_on_excess: l.pick_or(|r| r.devices.on_excess.as_ref(), OnExcess::Deny),
        seccomp_source: l.pick_or(|r| r.seccomp.source.as_ref(), SeccompSource::Spec),
        seccomp_default,
        seccomp_allow,
        seccomp_deny,
        seccomp_rules,
        seccomp_no_new_privs: l.pick_or(|r| r.seccomp.no_new_privs.as_ref(), SeccompNoNewPrivs::Forced),
        rlimits,
        log: l.pick(|r| r.logs.log.as_ref()),
        debug_log: l.pick(|r| r.logs.debug_log.as_ref()),
        user_log: l.pick(|r| r.logs.user_log.as_ref()),
        pass_fds,
        daemonize: l.pick_or(|r| r.workload.daemonize.as_ref(), false),
        kvm_extensions: match l.pick(|r| r.kvm.extensions.as_ref()) {
            None => Setting::default_value(super::DEFAULT_KVM_EXTENSIONS.into_iter().collect()),
            Some(s) => Setting {
                value: s.value.into_iter().collect(),
                at: s.at,
            },
        },
        kvm_tun: l.pick_or(|r| r.kvm.tun.as_ref(), false),
        hooks_allow: l.pick_or(|r| r.hooks.allow.as_ref(), false),
        selectable: l
            .pick_list(|r| r.selection.selectable.as_ref())
            .unwrap_or_else(|| Setting::default_value(vec![])),
        description: l.pick(|r| r.description.as_ref()),
        sources: Vec::new(),
    };
    let policy = Policy {
        sources: l.sources.clone(),
        ..policy
    };
    validate(&l, &policy)?;
    Ok(policy)
}

fn check_syscall(l: &Layers, name: &str, at: &At) -> Result<(), PolicyError> {
    if syscall_nr(name).is_some() {
        return Ok(());
    }
    let suggestion = closest(name, crate::plan::syscalls_x86_64::SYSCALLS.iter().map(|(n, _)| *n)).map(str::to_string);
    Err(l.err(
        K::Syscall {
            name: name.to_string(),
            suggestion,
        },
        at,
        "unknown system call",
    ))
}

/// The most derived `[[seccomp.rules]]` list, each rule checked and located.
fn seccomp_rules(l: &Layers) -> Result<Setting<Vec<Setting<PolicySeccompRule>>>, PolicyError> {
    let Some((i, list)) = l
        .raws
        .iter()
        .enumerate()
        .rev()
        .find_map(|(i, raw)| raw.seccomp.rules.as_ref().map(|r| (i, r)))
    else {
        return Ok(Setting::default_value(vec![]));
    };
    let mut rules = Vec::with_capacity(list.get_ref().len());
    for rule in list.get_ref() {
        let at = l.loc(i, rule.span());
        let raw = rule.get_ref();
        let action = parse_action(raw.action.get_ref()).ok_or_else(|| {
            l.err(
                K::SeccompAction(raw.action.get_ref().clone()),
                &l.loc(i, raw.action.span()),
                "bad action",
            )
        })?;
        if raw.syscalls.is_empty() {
            return Err(l.err(
                K::Range {
                    what: "a seccomp rule must name at least one syscall".into(),
                },
                &at,
                "empty `syscalls`",
            ));
        }
        for s in &raw.syscalls {
            check_syscall(l, s.get_ref(), &l.loc(i, s.span()))?;
        }
        let mut args = Vec::with_capacity(raw.args.len());
        for a in &raw.args {
            let bad = |what: String| l.err(K::Range { what }, &at, "bad argument condition");
            if a.index > 5 {
                return Err(bad(format!(
                    "seccomp argument index {} (syscalls have 6 arguments, 0–5)",
                    a.index
                )));
            }
            let (value, value_two) = match (a.op, a.mask) {
                (CmpOp::MaskedEq, Some(mask)) => (mask, Some(a.value)),
                (CmpOp::MaskedEq, None) => return Err(bad("op \"masked_eq\" needs a `mask`".into())),
                (op, Some(_)) => {
                    return Err(bad(format!(
                        "`mask` is only for op \"masked_eq\", not \"{}\"",
                        serde_name(&op)
                    )))
                }
                (_, None) => (a.value, None),
            };
            args.push(ArgCond {
                index: a.index,
                op: a.op,
                value,
                value_two,
            });
        }
        rules.push(Setting {
            value: PolicySeccompRule {
                action,
                syscalls: raw.syscalls.iter().map(|s| s.get_ref().clone()).collect(),
                args,
            },
            at,
        });
    }
    Ok(Setting {
        value: rules,
        at: l.loc(i, list.span()),
    })
}

/// Parses `allow`, `errno:EPERM`, `errno:1`, `kill_process`, `kill_thread`, `trap`, `log`.
pub fn parse_action(s: &str) -> Option<SeccompAction> {
    Some(match s {
        "allow" => SeccompAction::Allow,
        "kill_process" => SeccompAction::KillProcess,
        "kill_thread" | "kill" => SeccompAction::KillThread,
        "trap" => SeccompAction::Trap,
        "log" => SeccompAction::Log,
        _ => {
            let e = s.strip_prefix("errno:")?;
            SeccompAction::Errno(e.parse().ok().or_else(|| errno_by_name(e))?)
        }
    })
}

fn validate(l: &Layers, p: &Policy) -> Result<(), PolicyError> {
    check_absolute(l, p)?;
    check_namespace_assertions(l, p)?;
    check_pass_fds(l, p)?;
    check_kvm(l, p)?;
    check_limits(l, p)?;
    check_selectable(l, p)?;
    Ok(())
}

/// Each `selection.selectable` entry names a built-in or an absolute path: a
/// spec's annotation must never reach a file relative to wherever an engine runs.
fn check_selectable(l: &Layers, p: &Policy) -> Result<(), PolicyError> {
    for s in &p.selectable.value {
        match PolicyRef::parse(&s.value) {
            PolicyRef::Builtin(name) if super::builtin(&name).is_none() => {
                let suggestion = closest(&name, BUILTIN.iter().map(|(n, _)| *n)).map(str::to_string);
                return Err(l.err(K::UnknownBuiltin { name, suggestion }, &s.at, "not a built-in policy"));
            }
            PolicyRef::File(path) if !path.is_absolute() => {
                return Err(l
                    .err(
                        K::RelativePath {
                            what: "selection.selectable",
                            path: path.display().to_string(),
                        },
                        &s.at,
                        "relative path",
                    )
                    .with_help("write the full path from /, or a built-in name"));
            }
            _ => {}
        }
    }
    Ok(())
}

fn check_absolute(l: &Layers, p: &Policy) -> Result<(), PolicyError> {
    let mut paths: Vec<(&'static str, &Setting<PathBuf>)> = Vec::new();
    paths.extend(p.root_path.iter().map(|s| ("root.path", s)));
    paths.extend(p.log.iter().map(|s| ("logs.log", s)));
    paths.extend(p.debug_log.iter().map(|s| ("logs.debug_log", s)));
    paths.extend(p.user_log.iter().map(|s| ("logs.user_log", s)));
    paths.extend(p.mount_allowed.value.iter().map(|s| ("mounts.allowed_host_paths", s)));
    let device_paths: Vec<Setting<PathBuf>> = p
        .device_allowed
        .value
        .iter()
        .map(|d| Setting {
            value: d.value.host_path.clone(),
            at: d.at.clone(),
        })
        .collect();
    paths.extend(device_paths.iter().map(|s| ("devices.allowed.host_path", s)));
    for (what, s) in paths {
        if !s.value.is_absolute() {
            return Err(l
                .err(K::RelativePath { what, path: s.value.display().to_string() }, &s.at, "relative path")
                .with_help("write the full path from /; policy paths are host paths and are never resolved against the current directory"));
        }
    }
    Ok(())
}

/// Namespace settings other than cgroup/time assert the seed's rule outcome.
fn check_namespace_assertions(l: &Layers, p: &Policy) -> Result<(), PolicyError> {
    for (kind, s) in &p.namespaces {
        let (rule_value, because, other): (NsChoice, String, Option<&At>) = match *kind {
            "ipc" | "uts" | "mount" => (
                NsChoice::New,
                "the sandbox always gets new ipc, uts and mount namespaces".into(),
                None,
            ),
            "pid" => (
                NsChoice::New,
                format!("platform {} runs in a new PID namespace", serde_name(&p.platform.value)),
                Some(&p.platform.at),
            ),
            "net" => match p.network.value {
                NetworkName::Host => (
                    NsChoice::Host,
                    "network mode host shares the host network namespace".into(),
                    Some(&p.network.at),
                ),
                other => (
                    NsChoice::New,
                    format!(
                        "network mode {} needs a network namespace of its own",
                        serde_name(&other)
                    ),
                    Some(&p.network.at),
                ),
            },
            "user" => match p.network.value {
                NetworkName::Host => (
                    NsChoice::Host,
                    "with host networking the sandbox stays in the caller's (or the spec's) user namespace".into(),
                    Some(&p.network.at),
                ),
                _ => (
                    NsChoice::New,
                    "without host networking the sandbox runs in a new user namespace".into(),
                    Some(&p.network.at),
                ),
            },
            _ => continue, // cgroup, time: free choices
        };
        if s.value != rule_value {
            let mut e = l.err(
                K::Conflict {
                    what: format!("namespaces.{kind} = \"{}\" but {because}", serde_name(&s.value)),
                },
                &s.at,
                "asserted here",
            );
            if let Some(At::File(loc)) = other {
                let src = &l.sources[loc.src];
                e.also.push(crate::diag::Snippet {
                    name: src.name.clone(),
                    text: src.text.clone(),
                    span: Some(loc.span.clone()),
                    label: "the rule follows from this setting".into(),
                });
            }
            return Err(e.with_help(format!(
                "remove namespaces.{kind} or set it to \"{}\"",
                serde_name(&rule_value)
            )));
        }
    }
    Ok(())
}

fn check_pass_fds(l: &Layers, p: &Policy) -> Result<(), PolicyError> {
    let missing = |fd: PassFd| match fd {
        PassFd::Device if p.platform.value != PlatformName::Kvm => {
            Some("the platform has no device fd (only kvm does)")
        }
        PassFd::Log if p.log.is_none() => Some("no logs.log is set"),
        PassFd::UserLog if p.user_log.is_none() => Some("no logs.user_log is set"),
        _ => None,
    };
    for fd in &p.pass_fds.value {
        if let Some(why) = missing(*fd) {
            return Err(l.err(
                K::Conflict {
                    what: format!("workload.pass_fds names \"{}\" but {why}", serde_name(fd)),
                },
                &p.pass_fds.at,
                "passed here",
            ));
        }
    }
    Ok(())
}

/// `[kvm]` keys set under another platform would do nothing: a conflict.
fn check_kvm(l: &Layers, p: &Policy) -> Result<(), PolicyError> {
    if p.platform.value == PlatformName::Kvm {
        return Ok(());
    }
    let set = [("kvm.extensions", &p.kvm_extensions.at), ("kvm.tun", &p.kvm_tun.at)];
    if let Some((key, at)) = set.into_iter().find(|(_, at)| matches!(at, At::File(_))) {
        return Err(l.err(
            K::Conflict {
                what: format!(
                    "{key} is set but the platform is {}, and only kvm opens /dev/kvm",
                    serde_name(&p.platform.value)
                ),
            },
            at,
            "set here",
        ));
    }
    Ok(())
}

fn check_limits(l: &Layers, p: &Policy) -> Result<(), PolicyError> {
    if let Some(s) = &p.pids {
        if s.value <= 0 {
            return Err(l.err(
                K::Range {
                    what: format!("limits.pids must be at least 1, got {}", s.value),
                },
                &s.at,
                "not a task count",
            ));
        }
    }
    if let Some(s) = &p.cpu_period {
        if !(1000..=1_000_000).contains(&s.value) {
            return Err(l.err(
                K::Range {
                    what: format!("limits.cpu_period must be 1000–1000000 µs, got {}", s.value),
                },
                &s.at,
                "out of range",
            ));
        }
    }
    if let Some(s) = &p.cpu_quota {
        if s.value < 1000 {
            return Err(l.err(
                K::Range {
                    what: format!("limits.cpu_quota must be at least 1000 µs, got {}", s.value),
                },
                &s.at,
                "out of range",
            ));
        }
    }
    for s in [&p.memory, &p.memory_swap].into_iter().flatten() {
        if s.value.0 < (1 << 20) {
            return Err(l.err(
                K::Range {
                    what: format!("memory limits below 1MiB cannot run anything, got {}", s.value),
                },
                &s.at,
                "too small",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> Result<Policy, PolicyError> {
        load(
            &[PolicyRef::Text {
                name: "t.toml".into(),
                text: text.into(),
            }],
            Path::new("/"),
        )
    }

    #[test]
    fn seccomp_rules_are_checked_and_located() {
        let p = load_text(
            "[seccomp]\nallow = [\"read\"]\n\n[[seccomp.rules]]\naction = \"errno:ENOSYS\"\nsyscalls = [\"clone3\"]\n\n\
             [[seccomp.rules]]\naction = \"allow\"\nsyscalls = [\"clone\"]\n\
             args = [{ index = 0, op = \"masked_eq\", mask = 0x7E020080, value = 0 }]\n",
        )
        .unwrap();
        let rules = &p.seccomp_rules.value;
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].value.action, SeccompAction::Errno(38));
        assert_eq!(
            p.loc_origin(match &rules[1].at {
                At::File(l) => l,
                At::Default => panic!("located"),
            })
            .to_string(),
            "policy:t.toml:8"
        );
        assert_eq!(
            rules[1].value.args,
            [ArgCond {
                index: 0,
                op: CmpOp::MaskedEq,
                value: 0x7E02_0080,
                value_two: Some(0)
            }]
        );
        let bad = |body: &str| {
            load_text(&format!("[[seccomp.rules]]\n{body}\n"))
                .unwrap_err()
                .kind
                .to_string()
        };
        assert!(bad("action = \"allow\"\nsyscalls = [\"clonee\"]").contains("did you mean \"clone\""));
        assert!(bad("action = \"permit\"\nsyscalls = [\"clone\"]").contains("bad seccomp action"));
        assert!(bad("action = \"allow\"\nsyscalls = []").contains("at least one syscall"));
        let cond = |c: &str| bad(&format!("action = \"allow\"\nsyscalls = [\"clone\"]\nargs = [{c}]"));
        assert!(cond("{ index = 6, op = \"eq\", value = 0 }").contains("index 6"));
        assert!(cond("{ index = 0, op = \"masked_eq\", value = 0 }").contains("needs a `mask`"));
        assert!(cond("{ index = 0, op = \"eq\", mask = 1, value = 0 }").contains("only for op"));
        assert!(cond("{ index = 0, op = \"like\", value = 0 }").contains("unknown variant"));
    }

    /// `[kvm]`: extensions by kvm-ioctls name, located; a name that is none
    /// is refused; the keys under another platform are a conflict.
    #[test]
    fn kvm_keys_are_checked_and_need_the_kvm_platform() {
        let p = load_text("platform = \"kvm\"\n[kvm]\nextensions = [\"Irqfd\", \"Xsave\"]\ntun = true\n").unwrap();
        let want: BTreeSet<_> = [crate::vocab::KvmExtension::Irqfd, crate::vocab::KvmExtension::Xsave].into();
        assert_eq!(p.kvm_extensions.value, want);
        assert!(p.kvm_tun.value);
        assert!(matches!(p.kvm_extensions.at, At::File(_)));
        let d = load_text("platform = \"kvm\"").unwrap();
        assert_eq!(
            d.kvm_extensions.value,
            super::super::DEFAULT_KVM_EXTENSIONS.into_iter().collect()
        );
        assert!(!d.kvm_tun.value && d.kvm_tun.at == At::Default);
        let e = load_text("platform = \"kvm\"\n[kvm]\nextensions = [\"Irqchipp\"]\n").unwrap_err();
        assert!(e.to_string().contains("unknown variant"), "{e}");
        for body in ["[kvm]\ntun = true", "[kvm]\nextensions = []"] {
            let e = load_text(body).unwrap_err().kind.to_string();
            assert!(e.contains("the platform is native, and only kvm opens /dev/kvm"), "{e}");
        }
    }
}
