//! Platform, network, user namespace and the namespace table: the seed's
//! decision rules, each named (the names appear in the plan as `rule:NAME`).

use std::path::PathBuf;

use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType};

use super::error::{Anchor, CompileError, CompileErrorKind as K};
use super::Cx;
use crate::plan::types::*;
use crate::policy::{At, NetworkName, NsChoice, PlatformName, UserMode};
use crate::vocab::{serde_name, Cap, Gid, Origin, Uid, NOBODY};

/// The rule under which every process of a sandbox runs as nobody in a new
/// user namespace that maps nobody alone (`user.mode = "nobody"`).
pub const NOBODY_RULE: &str = "user-ns-nobody";

/// KVM API version the kvm platform requires.
pub const KVM_API_VERSION: i32 = 12;

pub(crate) fn platform(cx: &mut Cx) -> Result<Sourced<Platform>, CompileError> {
    let p = &cx.policy.platform;
    let from = cx.at(&p.at);
    Ok(match p.value {
        PlatformName::Native => Sourced::new(Platform::Native, from),
        PlatformName::Ptrace => Sourced::new(Platform::Ptrace, from),
        PlatformName::Kvm => {
            if cx.host.kvm.is_none() {
                return Err(CompileError::new(K::NoKvm)
                    .anchor(Anchor::Policy(p.at.clone(), "platform kvm chosen here".into()))
                    .anchor(Anchor::Host("kvm".into()))
                    .help("load the kvm module (modprobe kvm_intel or kvm_amd), or compile against host facts of a machine with /dev/kvm"));
            }
            Sourced::new(
                Platform::Kvm {
                    api_version: KVM_API_VERSION,
                    extensions: cx
                        .policy
                        .kvm_extensions
                        .value
                        .iter()
                        .map(|e| e.name().to_string())
                        .collect(),
                    extensions_from: cx.at(&cx.policy.kvm_extensions.at),
                },
                from,
            )
        }
    })
}

/// A namespace entry of the spec, with its index for the JSON path.
fn spec_ns(cx: &Cx, kind: LinuxNamespaceType) -> Option<(usize, Option<PathBuf>)> {
    cx.linux()?
        .namespaces()
        .as_ref()?
        .iter()
        .enumerate()
        .find(|(_, n)| n.typ() == kind)
        .map(|(i, n)| (i, n.path().clone()))
}

/// Network mode: the policy's mode; a spec netns path is joined only when
/// networking is on (rule `netns-join-needs-network`); a spec with no network
/// namespace asks for the host network.
pub(crate) fn network(cx: &mut Cx) -> Result<Sourced<NetworkMode>, CompileError> {
    let mode = cx.policy.network.clone();
    let mode_from = cx.at(&mode.at);
    let requested = spec_ns(cx, LinuxNamespaceType::Network);
    match (&requested, mode.value) {
        (None, NetworkName::Host) => {}
        (Some((i, None)), NetworkName::Host) => cx.warnings.push(super::Warning {
            message:
                "the spec asks for a network namespace of its own; the policy's network mode host shares the host's"
                    .into(),
            anchors: vec![
                Anchor::spec(format!("linux.namespaces[{i}]"), "new network namespace asked"),
                Anchor::Policy(mode.at.clone(), "network mode host".into()),
            ],
        }),
        (None, _) if !cx.spec.builtin => {
            let on = cx.policy.network_on_excess.clone();
            cx.excess(
                &on,
                &mode.at,
                "network",
                "host".into(),
                Anchor::spec("linux.namespaces", "no network namespace: the host network"),
                serde_name(&mode.value),
                K::HostNetwork {
                    mode: serde_name(&mode.value),
                },
            )?;
        }
        _ => {}
    }
    if let Some((i, Some(path))) = &requested {
        let path_origin = Origin::spec(format!("linux.namespaces[{i}].path"));
        match mode.value {
            NetworkName::None => {
                not_joined(
                    cx,
                    "network",
                    *i,
                    path,
                    "the policy's network mode is none",
                    Some(&mode.at),
                );
                return Ok(Sourced::new(
                    NetworkMode::None,
                    Origin::rule("netns-join-needs-network"),
                ));
            }
            _ if cx.policy.network_allow_join.value => {
                check_abs(path, &format!("linux.namespaces[{i}].path"))?;
                check_join_allowed(cx, NsKind::Net, *i, path)?;
                return Ok(Sourced::new(NetworkMode::Join(path.clone()), path_origin));
            }
            _ => {
                let on = cx.policy.network_on_excess.clone();
                let allow_at = cx.policy.network_allow_join.at.clone();
                cx.excess(
                    &on,
                    &allow_at,
                    "network",
                    format!("join {}", path.display()),
                    Anchor::spec(format!("linux.namespaces[{i}].path"), "asked to join"),
                    serde_name(&mode.value),
                    K::NetnsJoin {
                        path: path.display().to_string(),
                    },
                )?;
            }
        }
    }
    Ok(Sourced::new(
        match mode.value {
            NetworkName::None => NetworkMode::None,
            NetworkName::Loopback => NetworkMode::Loopback,
            NetworkName::Host => NetworkMode::Host,
        },
        mode_from,
    ))
}

/// The user namespace decision.
pub(crate) struct UserNs {
    pub ns: Sourced<Namespace>,
    pub maps: IdMaps,
    /// Workload credentials.
    pub creds: Credentials,
    /// Whether the spec's caps are applied to the supervisor too (host network rule).
    pub apply_caps_to_supervisor: bool,
    /// Whether this is the test-only mode.
    pub test_only: bool,
}

/// The seed's user namespace rule.
pub(crate) fn user(cx: &mut Cx, network: &Sourced<NetworkMode>) -> Result<UserNs, CompileError> {
    let spec_user = spec_ns(cx, LinuxNamespaceType::User);
    let host_net = matches!(network.value, NetworkMode::Host)
        || (matches!(network.value, NetworkMode::Join(_)) && cx.policy.network.value == NetworkName::Host);
    if host_net {
        return user_host_network(cx, spec_user, Origin::rule("host-network-stays-in-caller-user-ns"));
    }
    if cx.policy.user_mode.value == UserMode::Spec {
        // As runc: the spec's user namespace, or the caller's when it lists none.
        let from = cx.at(&cx.policy.user_mode.at);
        return user_host_network(cx, spec_user, from);
    }
    if let Some((i, Some(p))) = &spec_user {
        let at = cx.policy.network.at.clone();
        not_joined(
            cx,
            "user",
            *i,
            p,
            "without host networking the sandbox makes its own",
            Some(&at),
        );
    }
    if cx.policy.user_mode.value == UserMode::Current {
        let uid = cx.host.uid.0;
        let gid = cx.host.gid.0;
        let from = cx.at(&cx.policy.user_mode.at);
        cx.warnings.push(super::Warning {
            message: format!(
                "TEST-ONLY MODE (user.mode = \"current\"): the sandbox runs as the caller (uid {uid}) with no root change. This is only safe in tests!"
            ),
            anchors: vec![Anchor::Policy(cx.policy.user_mode.at.clone(), "test-only mode".into())],
        });
        return Ok(UserNs {
            ns: Sourced::new(Namespace::New, from.clone()),
            maps: IdMaps {
                uid: vec![IdMap {
                    inside: uid,
                    host: uid,
                    count: 1,
                }],
                gid: vec![IdMap {
                    inside: gid,
                    host: gid,
                    count: 1,
                }],
                setgroups: SetGroups::Deny,
                from: from.clone(),
            },
            creds: Credentials {
                uid: Uid(uid),
                gid: Gid(gid),
                groups: vec![],
                from,
            },
            apply_caps_to_supervisor: false,
            test_only: true,
        });
    }
    // A spec that brings its own maps keeps them when the policy allows their host ranges.
    let linux = cx.linux();
    let uid_maps = linux.and_then(|l| l.uid_mappings().clone()).unwrap_or_default();
    let gid_maps = linux.and_then(|l| l.gid_mappings().clone()).unwrap_or_default();
    if let (Some((i, _)), false) = (&spec_user, uid_maps.is_empty()) {
        check_maps(cx, "uid", "linux.uidMappings", &uid_maps)?;
        check_maps(cx, "gid", "linux.gidMappings", &gid_maps)?;
        let creds = spec_creds(cx)?;
        check_mapped("uid", creds.uid.0, &uid_maps, "process.user.uid")?;
        check_mapped("gid", creds.gid.0, &gid_maps, "process.user.gid")?;
        return Ok(UserNs {
            ns: Sourced::new(Namespace::New, Origin::spec(format!("linux.namespaces[{i}]"))),
            maps: IdMaps {
                uid: uid_maps.iter().map(to_map).collect(),
                gid: gid_maps.iter().map(to_map).collect(),
                setgroups: SetGroups::Allow,
                from: Origin::spec("linux.uidMappings"),
            },
            creds,
            apply_caps_to_supervisor: false,
            test_only: false,
        });
    }
    // The nobody rule.
    let need = [caps::Capability::CAP_SETUID, caps::Capability::CAP_SETGID];
    if !cx.host.holds(&need) {
        let missing: Vec<String> = need
            .iter()
            .filter(|c| !cx.host.capabilities.contains(&Cap(**c)))
            .map(|c| c.to_string())
            .collect();
        return Err(CompileError::new(K::NobodyNeedsSetid { missing: missing.join(" and ") })
            .anchor(Anchor::Policy(cx.policy.user_mode.at.clone(), "user mode nobody".into()))
            .anchor(Anchor::Host("capabilities".into()))
            .help("run sandboxctl as root (or with CAP_SETUID and CAP_SETGID), or use user.mode = \"current\" in a test-only policy"));
    }
    let from = Origin::rule(NOBODY_RULE);
    Ok(UserNs {
        ns: Sourced::new(Namespace::New, Origin::rule("user-ns-new-without-host-network")),
        maps: IdMaps {
            uid: vec![IdMap {
                inside: NOBODY,
                host: NOBODY,
                count: 1,
            }],
            gid: vec![IdMap {
                inside: NOBODY,
                host: NOBODY,
                count: 1,
            }],
            setgroups: SetGroups::Deny,
            from: from.clone(),
        },
        creds: Credentials {
            uid: Uid(NOBODY),
            gid: Gid(NOBODY),
            groups: vec![],
            from,
        },
        apply_caps_to_supervisor: false,
        test_only: false,
    })
}

/// Host networking (or `user.mode = "spec"`): join the spec's user namespace
/// (path) or stay in the caller's (`stay` says why); the spec's capabilities
/// apply to the sandbox itself.
fn user_host_network(
    cx: &mut Cx,
    spec_user: Option<(usize, Option<PathBuf>)>,
    stay: Origin,
) -> Result<UserNs, CompileError> {
    let creds = spec_creds(cx)?;
    let empty_maps = |from: Origin| IdMaps {
        uid: vec![],
        gid: vec![],
        setgroups: SetGroups::Allow,
        from,
    };
    let (ns, maps) = match spec_user {
        Some((i, Some(path))) => {
            check_abs(&path, &format!("linux.namespaces[{i}].path"))?;
            check_join_allowed(cx, NsKind::User, i, &path)?;
            let from = Origin::spec(format!("linux.namespaces[{i}].path"));
            (
                Sourced::new(Namespace::Join(path), from.clone()),
                empty_maps(Origin::rule("user-ns-joined-keeps-its-maps")),
            )
        }
        Some((i, None)) => {
            let linux = cx.linux();
            let uid_maps = linux.and_then(|l| l.uid_mappings().clone()).unwrap_or_default();
            let gid_maps = linux.and_then(|l| l.gid_mappings().clone()).unwrap_or_default();
            check_maps(cx, "uid", "linux.uidMappings", &uid_maps)?;
            check_maps(cx, "gid", "linux.gidMappings", &gid_maps)?;
            (
                Sourced::new(Namespace::New, Origin::spec(format!("linux.namespaces[{i}]"))),
                IdMaps {
                    uid: uid_maps.iter().map(to_map).collect(),
                    gid: gid_maps.iter().map(to_map).collect(),
                    setgroups: SetGroups::Allow,
                    from: Origin::spec("linux.uidMappings"),
                },
            )
        }
        None => (Sourced::new(Namespace::Host, stay.clone()), empty_maps(stay)),
    };
    Ok(UserNs {
        ns,
        maps,
        creds,
        apply_caps_to_supervisor: true,
        test_only: false,
    })
}

fn to_map(m: &LinuxIdMapping) -> IdMap {
    IdMap {
        inside: m.container_id(),
        host: m.host_id(),
        count: m.size(),
    }
}

fn spec_creds(cx: &Cx) -> Result<Credentials, CompileError> {
    let Some(p) = cx.spec.spec.process() else {
        return Err(
            CompileError::new(K::Missing { what: "process".into() }).anchor(Anchor::spec("process", "required"))
        );
    };
    let u = p.user();
    Ok(Credentials {
        uid: Uid(u.uid()),
        gid: Gid(u.gid()),
        groups: u
            .additional_gids()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(Gid)
            .collect(),
        from: Origin::spec("process.user"),
    })
}

fn check_maps(cx: &Cx, kind: &'static str, path: &str, maps: &[LinuxIdMapping]) -> Result<(), CompileError> {
    let allowed = &cx.policy.allowed_host_ids;
    // The host's subordinate ranges for this kind, when the policy lets maps use them.
    let subordinate: &[crate::policy::IdRange] = match (cx.policy.allow_subordinate_ids.value, kind) {
        (false, _) => &[],
        (true, "uid") => &cx.host.subordinate.uid,
        (true, _) => &cx.host.subordinate.gid,
    };
    for (i, m) in maps.iter().enumerate() {
        let (h, n) = (m.host_id() as u64, m.size() as u64);
        let ok = n > 0
            && allowed
                .value
                .iter()
                .chain(subordinate)
                .any(|r| h >= r.start as u64 && h + n <= r.start as u64 + r.count as u64);
        if !ok {
            return Err(CompileError::new(K::IdMapNotAllowed {
                kind,
                inside: m.container_id(),
                inside_end: m.container_id() as u64 + n,
                host: m.host_id(),
                host_end: h + n,
                root: if h == 0 { " (this maps host root into the sandbox)" } else { "" },
            })
            .anchor(Anchor::spec(format!("{path}[{i}]"), "mapping"))
            .anchor(Anchor::Policy(allowed.at.clone(), "allowed host ids".into()))
            .anchor(Anchor::Host(format!("subordinate.{kind}")))
            .help(if cx.policy.allow_subordinate_ids.value {
                "add the host range to user.allowed_host_ids or to the host's /etc/subuid and /etc/subgid, or drop the spec's user namespace maps"
            } else {
                "add the host range to user.allowed_host_ids (or set user.allow_subordinate_ids = true to allow /etc/subuid and /etc/subgid), or drop the spec's user namespace maps"
            }));
        }
    }
    Ok(())
}

fn check_mapped(kind: &'static str, id: u32, maps: &[LinuxIdMapping], path: &str) -> Result<(), CompileError> {
    if maps
        .iter()
        .any(|m| id >= m.container_id() && (id as u64) < m.container_id() as u64 + m.size() as u64)
    {
        Ok(())
    } else {
        Err(CompileError::new(K::UserNotMapped { kind, id }).anchor(Anchor::spec(path, "not mapped")))
    }
}

/// Warns that the spec's namespace path `path` (at `linux.namespaces[i]`) is
/// not joined, and why; `policy` is the setting that decided it, if any.
fn not_joined(cx: &mut Cx, kind: &str, i: usize, path: &std::path::Path, why: &str, policy: Option<&At>) {
    let mut anchors = vec![Anchor::spec(format!("linux.namespaces[{i}].path"), "not joined")];
    anchors.extend(policy.map(|at| Anchor::Policy(at.clone(), "decided by".into())));
    cx.warnings.push(super::Warning {
        message: format!(
            "the spec's {kind} namespace path {} is not joined: {why}",
            path.display()
        ),
        anchors,
    });
}

/// The policy's ceiling on joining, as the plan shows it: the kinds of
/// `namespaces.allow_join` once each, in [`NsKind::ORDER`].
pub(crate) fn join_ceiling(cx: &Cx) -> Sourced<Vec<NsKind>> {
    let allow = &cx.policy.ns_allow_join;
    let kinds = NsKind::ORDER.into_iter().filter(|k| allow.value.contains(k)).collect();
    Sourced::new(kinds, cx.at(&allow.at))
}

/// The policy's ceiling on joining: a spec's path for namespace `kind` (at
/// `linux.namespaces[i].path`) is joined only when `namespaces.allow_join`
/// lists the kind.
fn check_join_allowed(cx: &Cx, kind: NsKind, i: usize, path: &std::path::Path) -> Result<(), CompileError> {
    let allow = &cx.policy.ns_allow_join;
    if allow.value.contains(&kind) {
        return Ok(());
    }
    Err(CompileError::new(K::NsJoinNotAllowed {
        kind: kind.proc_name().into(),
        path: path.display().to_string(),
    })
    .anchor(Anchor::spec(format!("linux.namespaces[{i}].path"), "asked to join"))
    .anchor(Anchor::Policy(allow.at.clone(), "kinds a spec may join".into()))
    .help(format!(
        "add \"{}\" to namespaces.allow_join in the policy{} if specs may join such namespaces, or drop the path from the spec",
        kind.name(),
        if allow.at == At::Default { " (unset, it is [\"net\", \"user\"])" } else { "" }
    )))
}

/// A spec without an entry for `pid`, `ipc`, `uts` or `mount` asks for the
/// host's namespace of that kind (`podman --pid=host`, `--ipc=host`,
/// `--uts=host`). The sandbox always makes its own; under `namespaces.on_excess
/// = "deny"` the request is refused instead, naming that policy line.
fn host_namespace_requests(cx: &Cx) -> Result<(), CompileError> {
    let on = &cx.policy.ns_on_excess;
    if cx.spec.builtin || on.value != crate::policy::OnExcess::Deny {
        return Ok(());
    }
    for (kind, name) in [
        (LinuxNamespaceType::Pid, "pid"),
        (LinuxNamespaceType::Ipc, "ipc"),
        (LinuxNamespaceType::Uts, "uts"),
        (LinuxNamespaceType::Mount, "mount"),
    ] {
        if spec_ns(cx, kind).is_none() {
            return Err(CompileError::new(K::HostNamespace { kind: name })
                .anchor(Anchor::spec("linux.namespaces", format!("no {name} namespace: the host's")))
                .anchor(Anchor::Policy(on.at.clone(), "host namespaces refused".into()))
                .help(format!(
                    "add {{\"type\": \"{name}\"}} to linux.namespaces (drop --{}=host), or run it under a policy that allows it",
                    if name == "mount" { "mount" } else { name }
                )));
        }
    }
    Ok(())
}

pub(crate) fn check_abs(p: &std::path::Path, path: &str) -> Result<(), CompileError> {
    if p.is_absolute() {
        Ok(())
    } else {
        Err(CompileError::new(K::RelativePath {
            what: path.to_string(),
            path: p.display().to_string(),
        })
        .anchor(Anchor::spec(path, "relative path")))
    }
}

/// A pid, ipc, uts or mount namespace: joined at the spec's path when the
/// policy's `namespaces.allow_join` lists the kind (a Kubernetes pod's
/// containers join the pause container's ipc and uts, and pid with
/// `shareProcessNamespace`), else new by the seed's rule `rule`, with a
/// warning for a path not joined that names the policy line.
///
/// A joined namespace belongs to the user namespace its owner made it in.
/// Under the sandbox's own new user namespace the sandbox holds no
/// capability there: a joined pid namespace's /proc and a joined mount
/// namespace's mounts would fail with EPERM, and so would a hostname in a
/// joined uts namespace; refused here rather than at apply.
fn seed_new_or_joined(
    cx: &mut Cx,
    user: &UserNs,
    kind: NsKind,
    oci: LinuxNamespaceType,
    rule: &str,
) -> Result<Sourced<Namespace>, CompileError> {
    let new = Sourced::new(Namespace::New, Origin::rule(rule));
    let Some((i, Some(path))) = spec_ns(cx, oci) else {
        return Ok(new);
    };
    let allow = cx.policy.ns_allow_join.clone();
    if !allow.value.contains(&kind) {
        not_joined(
            cx,
            &kind.name(),
            i,
            &path,
            &format!(
                "namespaces.allow_join does not list \"{}\", so the sandbox makes its own",
                kind.name()
            ),
            Some(&allow.at),
        );
        return Ok(new);
    }
    let at = format!("linux.namespaces[{i}].path");
    check_abs(&path, &at)?;
    let fails = match kind {
        NsKind::Pid => Some("mounting its /proc"),
        NsKind::Mount => Some("building the root in it"),
        NsKind::Uts if cx.spec.spec.hostname().as_ref().is_some_and(|h| !h.is_empty()) => {
            Some("setting the spec's hostname")
        }
        _ => None,
    };
    if let (Namespace::New, Some(fails)) = (&user.ns.value, fails) {
        return Err(CompileError::new(K::JoinedNsOutsideUserNs {
            kind: kind.proc_name().into(),
            path: path.display().to_string(),
            rule: user.ns.from.to_string(),
            fails,
        })
        .anchor(Anchor::spec(at, "asked to join"))
        .anchor(Anchor::spec("linux.namespaces", "no user namespace path to join"))
        .help("join the user namespace that owns it too (a linux.namespaces entry of type user with its path, under a policy whose user mode keeps the spec's), or drop the path"));
    }
    if kind == NsKind::Uts {
        if let Some(h) = cx.spec.spec.hostname().as_ref().filter(|h| !h.is_empty()) {
            cx.warnings.push(super::Warning {
                message: format!(
                    "the spec's hostname {h:?} is not set: the uts namespace is joined, and its hostname is its owner's"
                ),
                anchors: vec![
                    Anchor::spec("hostname", "not set"),
                    Anchor::spec(at.clone(), "uts namespace joined"),
                ],
            });
        }
    }
    Ok(Sourced::new(Namespace::Join(path), Origin::spec(at)))
}

/// The namespace table.
pub(crate) fn namespaces(
    cx: &mut Cx,
    network: &Sourced<NetworkMode>,
    user: &UserNs,
) -> Result<Namespaces, CompileError> {
    let net = match &network.value {
        NetworkMode::Host => Sourced::new(Namespace::Host, network.from.clone()),
        NetworkMode::Join(p) => Sourced::new(Namespace::Join(p.clone()), network.from.clone()),
        NetworkMode::None | NetworkMode::Loopback => Sourced::new(Namespace::New, network.from.clone()),
    };
    let free = |cx: &Cx, kind: &'static str, oci: LinuxNamespaceType| -> Result<Sourced<Namespace>, CompileError> {
        if let Some((i, path)) = spec_ns(cx, oci) {
            return match path {
                Some(p) => {
                    check_abs(&p, &format!("linux.namespaces[{i}].path"))?;
                    let k = if kind == "cgroup" { NsKind::Cgroup } else { NsKind::Time };
                    check_join_allowed(cx, k, i, &p)?;
                    Ok(Sourced::new(
                        Namespace::Join(p),
                        Origin::spec(format!("linux.namespaces[{i}].path")),
                    ))
                }
                None => Ok(Sourced::new(
                    Namespace::New,
                    Origin::spec(format!("linux.namespaces[{i}]")),
                )),
            };
        }
        Ok(match cx.policy.namespaces.get(kind) {
            Some(s) => Sourced::new(
                if s.value == NsChoice::New {
                    Namespace::New
                } else {
                    Namespace::Host
                },
                cx.at(&s.at),
            ),
            None => Sourced::new(Namespace::Host, Origin::Default),
        })
    };
    host_namespace_requests(cx)?;
    // Every platform: without a path to join, the supervisor is pid 1 of a
    // new PID namespace (on ptrace too, where it traces the workload from
    // inside it; the seed kept the host's, where mounting /proc fails with
    // EPERM).
    use LinuxNamespaceType as T;
    let ipc = seed_new_or_joined(cx, user, NsKind::Ipc, T::Ipc, "ipc-ns-always-new")?;
    let uts = seed_new_or_joined(cx, user, NsKind::Uts, T::Uts, "uts-ns-always-new")?;
    let mount = seed_new_or_joined(cx, user, NsKind::Mount, T::Mount, "mount-ns-always-new")?;
    let pid = seed_new_or_joined(cx, user, NsKind::Pid, T::Pid, "pid-ns-always-new")?;
    let cgroup = free(cx, "cgroup", LinuxNamespaceType::Cgroup)?;
    let time = free(cx, "time", LinuxNamespaceType::Time)?;
    Ok(Namespaces {
        user: user.ns.clone(),
        pid,
        mount,
        net,
        ipc,
        uts,
        cgroup,
        time,
    })
}
