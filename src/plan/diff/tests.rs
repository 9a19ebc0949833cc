//! Tests of the plan diff: one mutation of the sample plan per widening and
//! narrowing rule, checked in both directions where the rule is symmetric;
//! round trips through TOML and JSON; reordered sets; the renderings.

use super::render;
use super::*;
use crate::plan::classes::{PrivilegeClass as C, CLASSES};
use crate::plan::sample::sample_plan;
use crate::plan::types::*;
use crate::vocab::{Bytes, Cap, Fd, Gid, Origin, RlimitKind, Uid};

use ChangeKind::{Narrows as N, Neutral as Z, Widens as W};

type Mutation = fn(&mut LaunchPlan);

/// One expectation: a named mutation of the sample plan yields a change at
/// `field` of this kind and class; when `symmetric`, undoing it yields the
/// opposite kind.
struct Case {
    name: &'static str,
    mutate: Mutation,
    field: &'static str,
    kind: ChangeKind,
    class: C,
    symmetric: bool,
}

const fn case(
    name: &'static str,
    mutate: Mutation,
    field: &'static str,
    kind: ChangeKind,
    class: C,
    symmetric: bool,
) -> Case {
    Case {
        name,
        mutate,
        field,
        kind,
        class,
        symmetric,
    }
}

fn cap(s: &str) -> Cap {
    s.parse().unwrap()
}

fn mount_mut<'a>(p: &'a mut LaunchPlan, target: &str) -> &'a mut Mount {
    p.mounts.iter_mut().find(|m| m.target.as_os_str() == target).unwrap()
}

fn limits(p: &mut LaunchPlan) -> &mut CgroupLimits {
    &mut p.cgroup.as_mut().unwrap().limits
}

fn seccomp(p: &mut LaunchPlan) -> &mut Seccomp {
    p.workload.seccomp.as_mut().unwrap()
}

fn pol(line: u32) -> Origin {
    Origin::Policy {
        file: "policies/other.toml".into(),
        line,
    }
}

fn cases() -> Vec<Case> {
    vec![
        // hooks: a program on the host is a widening; its removal narrows
        case(
            "a poststart hook added",
            |p| {
                p.hooks.push(crate::plan::Hook {
                    phase: crate::plan::HookPhase::Poststart,
                    path: "/usr/bin/hook".into(),
                    args: vec!["hook".into()],
                    env: vec![],
                    timeout_s: Some(5),
                    from: Origin::spec("hooks.poststart[0]"),
                    allowed_by: Origin::Default,
                })
            },
            "hooks",
            W,
            C::Hook,
            true,
        ),
        // identity
        case(
            "spec renamed",
            |p| p.inputs.spec = "other/config.json".into(),
            "inputs.spec",
            Z,
            C::Identity,
            false,
        ),
        // platform
        case(
            "native to kvm",
            |p| {
                p.platform.value = Platform::Kvm {
                    api_version: 12,
                    extensions: Default::default(),
                    extensions_from: Origin::Default,
                }
            },
            "platform",
            W,
            C::Platform,
            true,
        ),
        case(
            "native to ptrace",
            |p| p.platform.value = Platform::Ptrace,
            "platform",
            N,
            C::Platform,
            true,
        ),
        // network
        case(
            "network none to host",
            |p| p.network.value = NetworkMode::Host,
            "network",
            W,
            C::Network,
            true,
        ),
        case(
            "network none to loopback",
            |p| p.network.value = NetworkMode::Loopback,
            "network",
            W,
            C::Network,
            true,
        ),
        // namespaces
        case(
            "pid ns shared with host",
            |p| p.namespaces.pid.value = Namespace::Host,
            "namespaces.pid",
            W,
            C::Namespace,
            true,
        ),
        case(
            "net ns joined",
            |p| p.namespaces.net.value = Namespace::Join("/run/netns/a".into()),
            "namespaces.net",
            W,
            C::Namespace,
            true,
        ),
        // Issue 13: a pod member's joined ipc, uts and pid namespaces.
        case(
            "ipc ns joined (a pod's)",
            |p| p.namespaces.ipc.value = Namespace::Join("/proc/4242/ns/ipc".into()),
            "namespaces.ipc",
            W,
            C::Namespace,
            true,
        ),
        case(
            "pid ns joined (a pod's)",
            |p| p.namespaces.pid.value = Namespace::Join("/proc/4242/ns/pid".into()),
            "namespaces.pid",
            W,
            C::Namespace,
            true,
        ),
        case(
            "time ns made new",
            |p| p.namespaces.time.value = Namespace::New,
            "namespaces.time",
            N,
            C::Namespace,
            true,
        ),
        // namespace join ceiling
        case(
            "join ceiling widened to cgroup",
            |p| p.namespace_join_ceiling.value.push(NsKind::Cgroup),
            "namespace_join_ceiling",
            W,
            C::NamespaceJoinCeiling,
            true,
        ),
        case(
            "join ceiling loses user",
            |p| p.namespace_join_ceiling.value.retain(|k| *k != NsKind::User),
            "namespace_join_ceiling",
            N,
            C::NamespaceJoinCeiling,
            true,
        ),
        // id maps
        case(
            "uid map reaches host root",
            |p| {
                p.id_maps.uid.push(IdMap {
                    inside: 0,
                    host: 0,
                    count: 1,
                })
            },
            "id_maps.uid",
            W,
            C::IdMap,
            true,
        ),
        case(
            "gid map range grows",
            |p| {
                p.id_maps.gid = vec![
                    IdMap {
                        inside: 0,
                        host: 100_000,
                        count: 65536,
                    },
                    IdMap {
                        inside: 65534,
                        host: 65534,
                        count: 1,
                    },
                ]
            },
            "id_maps.gid",
            W,
            C::IdMap,
            true,
        ),
        case(
            "same host ids mapped elsewhere inside",
            |p| {
                p.id_maps.uid = vec![IdMap {
                    inside: 1000,
                    host: 65534,
                    count: 1,
                }]
            },
            "id_maps.uid",
            Z,
            C::IdMap,
            false,
        ),
        case(
            "setgroups allowed",
            |p| p.id_maps.setgroups = SetGroups::Allow,
            "id_maps.setgroups",
            W,
            C::IdMap,
            true,
        ),
        // root
        case(
            "root made writable",
            |p| p.root.readonly.value = false,
            "root.readonly",
            W,
            C::Root,
            true,
        ),
        case(
            "root by chroot",
            |p| p.root.change.value = RootChange::Chroot,
            "root.change",
            W,
            C::Root,
            true,
        ),
        case(
            "root path moves",
            |p| p.root.path.value = "/srv/other".into(),
            "root.path",
            W,
            C::Root,
            false,
        ),
        // mounts
        case(
            "host bind added",
            |p| {
                p.mounts.push(Mount {
                    target: "/srv/secrets".into(),
                    fstype: "bind".into(),
                    source: "/etc/secrets".into(),
                    flags: [MountFlag::Bind].into_iter().collect(),
                    data: String::new(),
                    source_within: None,
                    from: pol(9),
                })
            },
            "mounts[/srv/secrets]",
            W,
            C::Mount,
            true,
        ),
        case(
            "tmpfs added",
            |p| {
                p.mounts.push(Mount {
                    target: "/run".into(),
                    fstype: "tmpfs".into(),
                    source: "tmpfs".into(),
                    flags: [MountFlag::Nosuid].into_iter().collect(),
                    data: String::new(),
                    source_within: None,
                    from: pol(9),
                })
            },
            "mounts[/run]",
            Z,
            C::Mount,
            false,
        ),
        case(
            "mount removed",
            |p| p.mounts.retain(|m| m.target.as_os_str() != "/tmp"),
            "mounts[/tmp]",
            N,
            C::Mount,
            false,
        ),
        case(
            "bind made writable",
            |p| {
                mount_mut(p, "/srv/data").flags.remove(&MountFlag::Ro);
            },
            "mounts[/srv/data].flags",
            W,
            C::Mount,
            true,
        ),
        case(
            "nosuid dropped",
            |p| {
                mount_mut(p, "/tmp").flags.remove(&MountFlag::Nosuid);
            },
            "mounts[/tmp].flags",
            W,
            C::Mount,
            true,
        ),
        case(
            "noexec dropped",
            |p| {
                mount_mut(p, "/proc").flags.remove(&MountFlag::Noexec);
            },
            "mounts[/proc].flags",
            W,
            C::Mount,
            true,
        ),
        case(
            "nodev dropped",
            |p| {
                mount_mut(p, "/tmp").flags.remove(&MountFlag::Nodev);
            },
            "mounts[/tmp].flags",
            W,
            C::Mount,
            true,
        ),
        case(
            "propagation shared",
            |p| {
                let m = mount_mut(p, "/srv/data");
                m.flags.remove(&MountFlag::Rprivate);
                m.flags.insert(MountFlag::Rshared);
            },
            "mounts[/srv/data].flags",
            W,
            C::Mount,
            true,
        ),
        case(
            "bind source moves",
            |p| mount_mut(p, "/srv/data").source = "/".into(),
            "mounts[/srv/data].source",
            W,
            C::Mount,
            false,
        ),
        case(
            "tmpfs size",
            |p| mount_mut(p, "/tmp").data = "size=1g".into(),
            "mounts[/tmp].data",
            Z,
            C::Mount,
            false,
        ),
        case(
            "nested mounts flip",
            |p| p.mounts.swap(1, 2),
            "mounts.order",
            W,
            C::Mount,
            false,
        ),
        case(
            "independent mounts flip",
            |p| p.mounts.swap(0, 3),
            "mounts.order",
            Z,
            C::Mount,
            false,
        ),
        // masked and read-only paths
        case(
            "unmask kcore",
            |p| {
                p.masked_paths.remove(0);
            },
            "masked_paths",
            W,
            C::MaskedPath,
            true,
        ),
        case(
            "proc/sys writable",
            |p| {
                p.readonly_paths.remove(2);
            },
            "readonly_paths",
            W,
            C::ReadonlyPath,
            true,
        ),
        // devices
        case(
            "kvm device added",
            |p| {
                p.devices.push(Device {
                    path: "/dev/kvm".into(),
                    kind: DeviceKind::Char,
                    major: 10,
                    minor: 232,
                    mode: 0o660,
                    how: DeviceHow::Bind,
                    source: Some("/dev/kvm".into()),
                    from: pol(3),
                    allowed_by: pol(3),
                })
            },
            "devices[/dev/kvm]",
            W,
            C::Device,
            true,
        ),
        case(
            "device ceiling widened to a block device",
            |p| {
                p.device_ceiling.push(DeviceRule {
                    kind: DeviceKind::Block,
                    major: 8,
                    minor: 0,
                    host_path: "/dev/sda".into(),
                    from: pol(20),
                })
            },
            "device_ceiling",
            W,
            C::DeviceCeiling,
            true,
        ),
        case(
            "device mode tightened",
            |p| p.devices[0].mode = 0o600,
            "devices[/dev/null].mode",
            N,
            C::Device,
            true,
        ),
        case(
            "device renumbered",
            |p| p.devices[1].minor = 1,
            "devices[/dev/zero].node",
            W,
            C::Device,
            false,
        ),
        case(
            "device made by mknod",
            |p| p.devices[1].how = DeviceHow::Mknod,
            "devices[/dev/zero].how",
            Z,
            C::Device,
            false,
        ),
        // cgroup limits
        case(
            "memory raised",
            |p| limits(p).memory.as_mut().unwrap().value = Bytes(1 << 30),
            "cgroup.limits.memory",
            W,
            C::CgroupLimit,
            true,
        ),
        case(
            "memory limit removed",
            |p| limits(p).memory = None,
            "cgroup.limits.memory",
            W,
            C::CgroupLimit,
            true,
        ),
        case(
            "memory set to the unset value",
            |p| limits(p).memory.as_mut().unwrap().value = Bytes(0x7fff_ffff_ffff_f000),
            "cgroup.limits.memory",
            W,
            C::CgroupLimit,
            true,
        ),
        case(
            "swap limit added",
            |p| limits(p).memory_swap = Some(Sourced::new(Bytes(128 << 20), pol(4))),
            "cgroup.limits.memory_swap",
            N,
            C::CgroupLimit,
            true,
        ),
        case(
            "pids raised",
            |p| limits(p).pids.as_mut().unwrap().value = 4096,
            "cgroup.limits.pids",
            W,
            C::CgroupLimit,
            true,
        ),
        case(
            "pids unlimited",
            |p| limits(p).pids.as_mut().unwrap().value = -1,
            "cgroup.limits.pids",
            W,
            C::CgroupLimit,
            true,
        ),
        case(
            "cpu quota raised",
            |p| limits(p).cpu_quota.as_mut().unwrap().value = 200_000,
            "cgroup.limits.cpu_quota",
            W,
            C::CgroupLimit,
            true,
        ),
        case(
            "cpu period shortened",
            |p| limits(p).cpu_period.as_mut().unwrap().value = 50_000,
            "cgroup.limits.cpu_period",
            W,
            C::CgroupLimit,
            true,
        ),
        case(
            "cpu shares lowered",
            |p| limits(p).cpu_shares.as_mut().unwrap().value = 128,
            "cgroup.limits.cpu_shares",
            N,
            C::CgroupLimit,
            true,
        ),
        case(
            "cpuset grows",
            |p| limits(p).cpuset_cpus.as_mut().unwrap().value = "0-3".into(),
            "cgroup.limits.cpuset_cpus",
            W,
            C::CgroupLimit,
            true,
        ),
        case("cgroup dropped", |p| p.cgroup = None, "cgroup", W, C::CgroupLimit, true),
        case(
            "cgroup path",
            |p| p.cgroup.as_mut().unwrap().path.value = "ci/web-1".into(),
            "cgroup.path",
            Z,
            C::CgroupLayout,
            false,
        ),
        case(
            "cgroup write",
            |p| p.cgroup.as_mut().unwrap().writes[1].value = "129".into(),
            "cgroup.writes[/sys/fs/cgroup/pids/sandboxctl/{id}/pids.max]",
            Z,
            C::CgroupLayout,
            false,
        ),
        // stdio
        case(
            "console pty",
            |p| p.stdio.value = Stdio::ConsoleSocket("/run/console.sock".into()),
            "stdio",
            N,
            C::Stdio,
            true,
        ),
        // capabilities
        case(
            "cap added to bounding",
            |p| {
                p.workload.capabilities.value.bounding.insert(cap("CAP_SYS_ADMIN"));
            },
            "workload.capabilities.bounding",
            W,
            C::Capability,
            true,
        ),
        case(
            "ambient cap added",
            |p| {
                p.workload.capabilities.value.ambient.insert(cap("CAP_KILL"));
            },
            "workload.capabilities.ambient",
            W,
            C::Capability,
            true,
        ),
        case(
            "supervisor keeps a cap",
            |p| {
                p.supervisor.capabilities.permitted.insert(cap("CAP_SYS_PTRACE"));
            },
            "supervisor.capabilities.permitted",
            W,
            C::Capability,
            true,
        ),
        // no_new_privs, non-dumpable
        case(
            "no_new_privs off",
            |p| p.workload.no_new_privs.value = false,
            "workload.no_new_privs",
            W,
            C::NoNewPrivs,
            true,
        ),
        case(
            "supervisor dumpable",
            |p| p.supervisor.non_dumpable = false,
            "supervisor.non_dumpable",
            W,
            C::NonDumpable,
            true,
        ),
        // seccomp
        case(
            "seccomp removed",
            |p| p.workload.seccomp = None,
            "workload.seccomp",
            W,
            C::Seccomp,
            true,
        ),
        case(
            "default action allow",
            |p| seccomp(p).default_action.value = SeccompAction::Allow,
            "workload.seccomp.default_action",
            W,
            C::Seccomp,
            true,
        ),
        case(
            "default action kill",
            |p| seccomp(p).default_action.value = SeccompAction::KillProcess,
            "workload.seccomp.default_action",
            N,
            C::Seccomp,
            true,
        ),
        case(
            "default errno changes number",
            |p| seccomp(p).default_action.value = SeccompAction::Errno(38),
            "workload.seccomp.default_action",
            Z,
            C::Seccomp,
            false,
        ),
        case(
            "syscall allowed",
            |p| seccomp(p).rules[0].syscalls.push("mount".into()),
            "workload.seccomp.syscalls.mount",
            W,
            C::Seccomp,
            true,
        ),
        case(
            "denial removed",
            |p| seccomp(p).rules[2].syscalls.retain(|s| s != "ptrace"),
            "workload.seccomp.syscalls.ptrace",
            W,
            C::Seccomp,
            true,
        ),
        case(
            "conditional allow removed",
            |p| {
                seccomp(p).rules.remove(1);
            },
            "workload.seccomp.syscalls.personality",
            N,
            C::Seccomp,
            true,
        ),
        case(
            "architecture added",
            |p| seccomp(p).architectures.push("SCMP_ARCH_X86".into()),
            "workload.seccomp.architectures",
            W,
            C::Seccomp,
            true,
        ),
        // rlimits
        case(
            "nofile raised",
            |p| p.workload.rlimits.get_mut(&RlimitKind::Nofile).unwrap().hard = 65536,
            "workload.rlimits.RLIMIT_NOFILE",
            W,
            C::Rlimit,
            true,
        ),
        case(
            "core limit removed",
            |p| {
                p.workload.rlimits.remove(&RlimitKind::Core);
            },
            "workload.rlimits.RLIMIT_CORE",
            W,
            C::Rlimit,
            true,
        ),
        // fds
        case(
            "kvm fd donated",
            |p| {
                p.workload.fds.push(FdEntry {
                    fd: Fd(3),
                    role: FdRole::Device,
                    source: FdSource::KvmDevice,
                    from: pol(3),
                })
            },
            "workload.fds[3]",
            W,
            C::Fd,
            true,
        ),
        case(
            "log opened read-write",
            |p| {
                if let FdSource::File { open, .. } = &mut p.supervisor.fds[5].source {
                    *open = OpenMode::ReadWrite;
                }
            },
            "supervisor.fds[5]",
            W,
            C::Fd,
            true,
        ),
        case(
            "stdin from the pty",
            |p| p.supervisor.fds[0].source = FdSource::PtySlave,
            "supervisor.fds[0]",
            N,
            C::Fd,
            true,
        ),
        // credentials
        case(
            "root inside",
            |p| p.workload.credentials.uid = Uid(0),
            "workload.credentials.uid",
            W,
            C::Credentials,
            true,
        ),
        case(
            "host root",
            |p| {
                p.id_maps.uid.push(IdMap {
                    inside: 0,
                    host: 0,
                    count: 1,
                });
                p.workload.credentials.uid = Uid(0);
            },
            "workload.credentials.uid",
            W,
            C::Credentials,
            true,
        ),
        case(
            "group added",
            |p| p.workload.credentials.groups.push(Gid(65534)),
            "workload.credentials.groups",
            W,
            C::Credentials,
            true,
        ),
        case(
            "gid to another host identity",
            |p| {
                p.id_maps.gid = vec![IdMap {
                    inside: 0,
                    host: 1000,
                    count: 65535,
                }];
                p.workload.credentials.gid = Gid(5);
            },
            "workload.credentials.gid",
            W,
            C::Credentials,
            false,
        ),
        // neutral process fields
        case(
            "env changed",
            |p| p.workload.env.value[1] = "TERM=dumb".into(),
            "workload.env.TERM",
            Z,
            C::Process,
            false,
        ),
        case(
            "args changed",
            |p| p.workload.args.value.push("-v".into()),
            "workload.args",
            Z,
            C::Process,
            false,
        ),
        case(
            "cwd changed",
            |p| p.workload.cwd.value = "/srv".into(),
            "workload.cwd",
            Z,
            C::Process,
            false,
        ),
        case(
            "umask changed",
            |p| p.workload.umask = None,
            "workload.umask",
            Z,
            C::Process,
            false,
        ),
        case(
            "hostname changed",
            |p| p.hostname = None,
            "hostname",
            Z,
            C::Process,
            false,
        ),
        case(
            "clamp dropped",
            |p| p.clamps.clear(),
            "clamps[cgroup.limits.pids]",
            Z,
            C::Clamp,
            false,
        ),
        case(
            "steps change",
            |p| p.steps.retain(|s| *s != Step::Hostname),
            "steps",
            Z,
            C::Step,
            false,
        ),
        // provenance only
        case(
            "capabilities from another line",
            |p| p.workload.capabilities.from = pol(21),
            "workload.capabilities.bounding",
            Z,
            C::Provenance,
            false,
        ),
        case(
            "platform from another line",
            |p| p.platform.from = pol(4),
            "platform",
            Z,
            C::Provenance,
            false,
        ),
    ]
}

fn opposite(k: ChangeKind) -> ChangeKind {
    match k {
        W => N,
        N => W,
        Z => Z,
    }
}

fn expected_exit(k: ChangeKind) -> u8 {
    match k {
        W => EXIT_WIDENED,
        N | Z => EXIT_CHANGED,
    }
}

fn check_case(c: &Case, old: &LaunchPlan, new: &LaunchPlan, kind: ChangeKind) {
    let d = diff(old, new);
    assert!(
        d.changes
            .iter()
            .any(|x| x.field == c.field && x.kind == kind && x.class == c.class),
        "{}: expected {} {:?} at {}, got:\n{}",
        c.name,
        kind,
        c.class,
        c.field,
        render::text(&d, false)
    );
    // No change of the case points the other way, and the exit status follows.
    if kind != Z {
        assert!(
            !d.changes.iter().any(|x| x.kind == opposite(kind)),
            "{}: mixed directions:\n{}",
            c.name,
            render::text(&d, false)
        );
    }
    assert_eq!(
        d.exit_code(),
        expected_exit(kind),
        "{}: exit status\n{}",
        c.name,
        render::text(&d, false)
    );
    assert!(
        d.changes.iter().all(|x| x.class != C::Unclassified),
        "{}: unclassified change",
        c.name
    );
}

#[test]
fn every_case_is_classified_with_its_exit_status() {
    let base = sample_plan();
    for c in cases() {
        let mut new = base.clone();
        (c.mutate)(&mut new);
        assert_ne!(new, base, "{}: the mutation changed nothing", c.name);
        check_case(&c, &base, &new, c.kind);
        if c.symmetric {
            check_case(&c, &new, &base, opposite(c.kind));
        }
    }
}

#[test]
fn every_class_that_can_widen_or_narrow_is_covered() {
    let all = cases();
    for r in CLASSES {
        if r.class == C::Unclassified {
            continue; // not reachable from a known field; covered by classes::tests
        }
        let has = |k: ChangeKind| {
            all.iter()
                .any(|c| c.class == r.class && (c.kind == k || (c.symmetric && opposite(c.kind) == k)))
        };
        if r.widens.is_some() {
            assert!(has(W), "no widening case for class {}", r.name);
        }
        if r.narrows.is_some() {
            assert!(has(N), "no narrowing case for class {}", r.name);
        }
        if r.widens.is_none() && r.narrows.is_none() {
            assert!(has(Z), "no case for neutral class {}", r.name);
        }
    }
}

#[test]
fn a_donated_fd_that_renumbers_stdio_is_one_widening() {
    // As the kvm platform does: /dev/kvm at fd 0 of the supervisor's table
    // pushes stdio up by one, and the workload's stdio follows.
    let base = sample_plan();
    let mut new = base.clone();
    for e in new.supervisor.fds.iter_mut() {
        e.fd = Fd(e.fd.0 + 1);
    }
    new.supervisor.fds.insert(
        0,
        FdEntry {
            fd: Fd(0),
            role: FdRole::Device,
            source: FdSource::KvmDevice,
            from: pol(3),
        },
    );
    for e in new.workload.fds.iter_mut() {
        if let FdSource::Supervisor { fd } = &mut e.source {
            *fd = Fd(fd.0 + 1);
        }
    }
    let d = diff(&base, &new);
    let widen: Vec<&Change> = d.changes.iter().filter(|c| c.kind == W).collect();
    assert_eq!(widen.len(), 1, "{}", render::text(&d, false));
    assert_eq!(widen[0].field, "supervisor.fds[0]");
    assert!(d.changes.iter().all(|c| c.kind != N), "{}", render::text(&d, false));
    // Six supervisor fds renumbered, the workload's unchanged in what they are.
    assert_eq!(
        d.changes
            .iter()
            .filter(|c| c.note.as_deref() == Some("the same fd under another number"))
            .count(),
        6
    );
    assert!(
        !d.changes.iter().any(|c| c.field.starts_with("workload.fds")),
        "{}",
        render::text(&d, false)
    );
}

#[test]
fn steps_show_what_was_added_and_dropped() {
    let base = sample_plan();
    let mut new = base.clone();
    new.steps.retain(|s| *s != Step::Hostname);
    new.steps.insert(5, Step::Trace);
    let d = diff(&base, &new);
    let c = d.changes.iter().find(|c| c.field == "steps").unwrap();
    assert_eq!(c.old.as_deref(), Some("dropped hostname"));
    assert_eq!(c.new.as_deref(), Some("added trace"));
}

#[test]
fn a_changed_mount_reports_its_origin_once() {
    let base = sample_plan();
    let mut new = base.clone();
    let m = mount_mut(&mut new, "/tmp");
    m.flags.remove(&MountFlag::Nodev);
    m.from = pol(70);
    let d = diff(&base, &new);
    assert_eq!(d.changes.len(), 1, "{}", render::text(&d, false));
    assert_eq!(d.changes[0].new_from, Some(pol(70)));
}

#[test]
fn identical_plans_diff_empty_with_exit_zero() {
    let d = diff(&sample_plan(), &sample_plan());
    assert!(d.is_empty(), "{}", render::text(&d, false));
    assert_eq!(d.exit_code(), EXIT_UNCHANGED);
}

#[test]
fn host_root_mapping_is_called_out() {
    let base = sample_plan();
    let mut new = base.clone();
    new.id_maps.uid.push(IdMap {
        inside: 0,
        host: 0,
        count: 1,
    });
    let d = diff(&base, &new);
    let c = d.changes.iter().find(|c| c.field == "id_maps.uid").unwrap();
    assert_eq!(c.note.as_deref(), Some("host uid 0 (root) is now mapped"));
}

#[test]
fn sharing_the_host_user_namespace_widens_the_maps() {
    let base = sample_plan();
    let mut new = base.clone();
    new.namespaces.user.value = Namespace::Host;
    new.id_maps.uid.clear();
    new.id_maps.gid.clear();
    let d = diff(&base, &new);
    for f in ["namespaces.user", "id_maps.uid", "id_maps.gid"] {
        assert!(
            d.changes.iter().any(|c| c.field == f && c.kind == W),
            "{f}:\n{}",
            render::text(&d, false)
        );
    }
    assert!(!d.changes.iter().any(|c| c.kind == N), "{}", render::text(&d, false));
}

#[test]
fn a_changed_condition_is_one_removal_and_one_addition() {
    let base = sample_plan();
    let mut new = base.clone();
    seccomp(&mut new).rules[1].args[0].value = 8;
    let d = diff(&base, &new);
    let p: Vec<_> = d
        .changes
        .iter()
        .filter(|c| c.field == "workload.seccomp.syscalls.personality")
        .collect();
    assert_eq!(p.len(), 2, "{}", render::text(&d, false));
    // Removing the old allowance narrows; the new allowance widens.
    assert!(p
        .iter()
        .any(|c| c.kind == N && c.new.is_none() && c.old.as_deref() == Some("allow when arg0 == 0x0")));
    assert!(p
        .iter()
        .any(|c| c.kind == W && c.old.is_none() && c.new.as_deref() == Some("allow when arg0 == 0x8")));
    assert_eq!(d.exit_code(), EXIT_WIDENED);
}

#[test]
fn seccomp_rule_order_and_grouping_do_not_matter() {
    let base = sample_plan();
    let mut new = base.clone();
    let s = seccomp(&mut new);
    s.rules.reverse();
    // Split the allow-list into one rule per syscall, in reverse order.
    let allow = s.rules.iter().position(|r| r.syscalls.len() > 3).unwrap();
    let big = s.rules.remove(allow);
    for name in big.syscalls.iter().rev() {
        s.rules.push(SeccompRule {
            syscalls: vec![name.clone()],
            ..big.clone()
        });
    }
    let d = diff(&base, &new);
    assert!(d.is_empty(), "{}", render::text(&d, false));
}

#[test]
fn a_stricter_duplicate_rule_wins_whatever_its_position() {
    let base = sample_plan();
    let mut new = base.clone();
    // ptrace is also listed as allowed, after the kill rule: the kill stays.
    seccomp(&mut new).rules.push(SeccompRule {
        action: SeccompAction::Allow,
        syscalls: vec!["ptrace".into()],
        args: vec![],
        from: pol(50),
    });
    let d = diff(&base, &new);
    assert!(d.is_empty(), "{}", render::text(&d, false));
}

#[test]
fn set_and_map_order_in_the_plan_value_does_not_matter() {
    let base = sample_plan();
    let mut new = base.clone();
    new.masked_paths.reverse();
    new.readonly_paths.reverse();
    new.devices.reverse();
    new.supervisor.fds.reverse();
    new.workload.fds.reverse();
    new.workload.env.value.reverse();
    new.cgroup.as_mut().unwrap().writes.reverse();
    let d = diff(&base, &new);
    assert!(d.is_empty(), "{}", render::text(&d, false));
}

#[test]
fn toml_and_json_round_trips_diff_empty() {
    let base = sample_plan();
    let t = toml::to_string_pretty(&base).unwrap();
    let from_toml = crate::plan::render::load(&t).unwrap();
    assert!(diff(&base, &from_toml).is_empty());
    let j = serde_json::to_string(&base).unwrap();
    let from_json = crate::plan::render::load(&j).unwrap();
    assert!(diff(&base, &from_json).is_empty());
    // And across formats.
    assert!(diff(&from_toml, &from_json).is_empty());
}

/// Reverses every array in a JSON value whose elements are order-free in the
/// plan, and rebuilds every object with its keys in reverse order.
fn reorder_json(v: &mut serde_json::Value, path: &str) {
    use serde_json::Value;
    const ORDER_FREE: &[&str] = &[
        ".masked_paths",
        ".readonly_paths",
        ".devices",
        ".flags",
        ".bounding",
        ".effective",
        ".permitted",
        ".fds",
        ".rules",
        ".syscalls",
        ".writes",
        ".clamps",
        ".extensions",
    ];
    match v {
        Value::Array(a) => {
            if ORDER_FREE.iter().any(|s| path.ends_with(s)) {
                a.reverse();
            }
            for x in a.iter_mut() {
                reorder_json(x, path);
            }
        }
        Value::Object(o) => {
            let mut entries: Vec<(String, Value)> = std::mem::take(o).into_iter().collect();
            entries.reverse();
            for (k, mut x) in entries {
                reorder_json(&mut x, &format!("{path}.{k}"));
                o.insert(k, x);
            }
        }
        _ => {}
    }
}

#[test]
fn reordered_sets_in_serialised_text_diff_empty() {
    let base = sample_plan();
    // JSON: reversed arrays and keys.
    let mut v = serde_json::to_value(&base).unwrap();
    reorder_json(&mut v, "");
    let text = serde_json::to_string_pretty(&v).unwrap();
    assert_ne!(text, serde_json::to_string_pretty(&base).unwrap());
    let back: LaunchPlan = serde_json::from_str(&text).unwrap();
    assert_ne!(back, base, "the reordering changed nothing");
    let d = diff(&base, &back);
    assert!(d.is_empty(), "{}", render::text(&d, false));
    // TOML: the same value written as TOML (toml sorts table keys, which is a
    // reordering of its own).
    let t = toml::to_string(&back).unwrap();
    let from_toml: LaunchPlan = toml::from_str(&t).unwrap();
    let d = diff(&base, &from_toml);
    assert!(d.is_empty(), "{}", render::text(&d, false));
}

#[test]
fn toml_text_with_reordered_keys_and_arrays_diffs_empty() {
    let base = sample_plan();
    let t = toml::to_string_pretty(&base).unwrap();
    // Swap two lines of a table and reverse a capability array by hand.
    let swapped = t.replacen("soft = 1024\nhard = 1024\n", "hard = 1024\nsoft = 1024\n", 1);
    assert_ne!(swapped, t);
    let reversed = swapped.replacen(
        "bounding = [\n    \"CAP_KILL\",\n    \"CAP_NET_BIND_SERVICE\",\n]",
        "bounding = [\"CAP_NET_BIND_SERVICE\", \"CAP_KILL\"]",
        1,
    );
    assert_ne!(reversed, swapped);
    let back: LaunchPlan = toml::from_str(&reversed).unwrap();
    let d = diff(&base, &back);
    assert!(d.is_empty(), "{}", render::text(&d, false));
}

#[test]
fn provenance_only_changes_are_neutral_and_count_as_changed() {
    let base = sample_plan();
    let mut new = base.clone();
    new.root.readonly.from = pol(2);
    let d = diff(&base, &new);
    assert_eq!(d.changes.len(), 1);
    let c = &d.changes[0];
    assert_eq!((c.kind, c.class), (Z, C::Provenance));
    assert_eq!(c.old, c.new);
    assert_eq!(c.new_from, Some(pol(2)));
    assert_eq!(d.exit_code(), EXIT_CHANGED);
}

/// The KVM extensions' origin is part of what the diff shows: the same
/// extensions asked by another line are a neutral change naming both lines,
/// not an entry whose two sides read the same.
#[test]
fn kvm_extensions_show_where_they_were_asked() {
    let kvm = |from: Origin| {
        let mut p = sample_plan();
        p.platform.value = Platform::Kvm {
            api_version: 12,
            extensions: ["Irqchip".to_string()].into(),
            extensions_from: from,
        };
        p
    };
    let d = diff(&kvm(Origin::Default), &kvm(pol(40)));
    assert_eq!(d.changes.len(), 1, "{:?}", d.changes);
    let c = &d.changes[0];
    assert_eq!((c.field.as_str(), c.kind), ("platform", Z));
    assert_ne!(c.old, c.new);
    assert!(
        c.new.as_deref().unwrap().ends_with(&format!("from {})", pol(40))),
        "{c:?}"
    );
}

#[test]
fn changes_carry_provenance_of_both_sides() {
    let base = sample_plan();
    let mut new = base.clone();
    new.cgroup.as_mut().unwrap().limits.pids = Some(Sourced::new(256, pol(30)));
    let d = diff(&base, &new);
    let c = d.changes.iter().find(|c| c.field == "cgroup.limits.pids").unwrap();
    assert_eq!(c.old.as_deref(), Some("64"));
    assert_eq!(c.new.as_deref(), Some("256"));
    assert_eq!(
        c.old_from,
        Some(Origin::Policy {
            file: "policies/untrusted.toml".into(),
            line: 14
        })
    );
    assert_eq!(c.new_from, Some(pol(30)));
}

fn mixed_diff() -> PlanDiff {
    let base = sample_plan();
    let mut new = base.clone();
    new.network.value = NetworkMode::Host;
    new.namespaces.net = Sourced::new(Namespace::Host, Origin::rule("net-ns-unless-host"));
    new.workload.capabilities.value.bounding.remove(&cap("CAP_KILL"));
    new.workload.env.value.push("DEBUG=1".into());
    new.platform.from = pol(4);
    diff(&base, &new)
}

#[test]
fn text_lists_widenings_first_and_colours_only_when_told() {
    let d = mixed_diff();
    let plain = render::text(&d, false);
    assert!(!plain.contains('\x1b'));
    let w = plain.find("WIDENS").unwrap();
    let n = plain.find("NARROWS").unwrap();
    let z = plain.find("NEUTRAL").unwrap();
    let p = plain.find("PROVENANCE ONLY").unwrap();
    assert!(w < n && n < z && z < p, "{plain}");
    assert!(plain.contains("network  none → host  [network]"), "{plain}");
    assert!(plain.contains("from policy:policies/untrusted.toml:5"), "{plain}");
    let coloured = render::text(&d, true);
    assert!(coloured.contains("\x1b[31mnetwork\x1b[0m"), "{coloured}");
    assert_eq!(render::text(&PlanDiff::default(), true), "plan diff: no changes\n");
}

#[test]
fn markdown_has_summary_and_tables_in_order() {
    let d = mixed_diff();
    let md = render::markdown(&d, "cases/web");
    let first = md.lines().nth(2).unwrap();
    assert_eq!(
        first,
        "**2** widen · **1** narrow · **1** neutral · 1 provenance only — **widens the sandbox: needs a security review** (exit 3)"
    );
    let w = md.find("#### Widens (2)").unwrap();
    let n = md.find("#### Narrows (1)").unwrap();
    let z = md.find("#### Neutral (1)").unwrap();
    assert!(w < n && n < z, "{md}");
    assert!(md.contains("| `workload.capabilities.bounding` | capability | `CAP_KILL` | — | `policy:policies/untrusted.toml:20` | `policy:policies/untrusted.toml:20` |"), "{md}");
    assert!(md.contains("<details><summary>Provenance only (1)</summary>"), "{md}");
}

#[test]
fn markdown_escapes_pipes() {
    let base = sample_plan();
    let mut new = base.clone();
    new.workload.args.value = vec!["sh".into(), "-c".into(), "a | b".into()];
    let md = render::markdown(&diff(&base, &new), "x");
    assert!(md.contains("a \\| b"), "{md}");
}

#[test]
fn json_round_trips_and_carries_the_exit_code() {
    let d = mixed_diff();
    let j = render::json(&d).unwrap();
    let v: serde_json::Value = serde_json::from_str(&j).unwrap();
    assert_eq!(v["exit_code"], 3);
    assert_eq!(v["summary"]["widens"], 2);
    let changes: Vec<Change> = serde_json::from_value(v["changes"].clone()).unwrap();
    assert_eq!(changes, d.changes);
    // Plan order: the platform's moved origin, then the network.
    assert_eq!(v["changes"][0]["class"], "provenance");
    assert_eq!(v["changes"][1]["field"], "network");
    assert_eq!(v["changes"][1]["kind"], "widens");
    assert_eq!(v["changes"][1]["class"], "network");
    assert_eq!(v["changes"][1]["old_from"], "policy:policies/untrusted.toml:5");
}

/// Twelve clamps over four fields (three capabilities dropped from each of
/// four sets, as untrusted does to runc's spec): each is its own change.
fn capability_clamps() -> Vec<Clamp> {
    let mut v = Vec::new();
    for set in ["bounding", "effective", "permitted", "ambient"] {
        for cap in ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE"] {
            v.push(Clamp {
                field: format!("workload.capabilities.{set}"),
                requested: cap.into(),
                requested_by: Origin::spec(format!("process.capabilities.{set}")),
                granted: "(dropped)".into(),
                ceiling: pol(18),
            });
        }
    }
    v
}

#[test]
fn every_clamp_change_is_shown() {
    let mut old = sample_plan();
    old.clamps = capability_clamps();
    let mut new = old.clone();
    new.clamps.clear();
    let d = diff(&old, &new);
    let removed: Vec<&Change> = d.changes.iter().filter(|c| c.class == C::Clamp).collect();
    assert_eq!(removed.len(), 12, "{removed:#?}");
    assert!(removed.iter().all(|c| c.kind == Z && c.new.is_none()));
    for cap in ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE"] {
        let n = removed
            .iter()
            .filter(|c| {
                c.old
                    .as_deref()
                    .is_some_and(|o| o.contains(&format!("requested {cap} ")))
            })
            .count();
        assert_eq!(n, 4, "{cap} is dropped from four sets");
    }
    // And back: twelve added.
    let added = diff(&new, &old);
    assert_eq!(added.changes.iter().filter(|c| c.class == C::Clamp).count(), 12);
    // One of them gone: one change.
    let mut one = old.clone();
    one.clamps.remove(4);
    let d = diff(&old, &one);
    assert_eq!(d.changes.len(), 1, "{:#?}", d.changes);
    assert_eq!(d.changes[0].field, "clamps[workload.capabilities.effective]");
}

#[test]
fn a_scalar_clamp_whose_request_moved_is_one_change() {
    let old = sample_plan();
    let mut new = old.clone();
    new.clamps[0].requested = "2048".into();
    let d = diff(&old, &new);
    assert_eq!(d.changes.len(), 1, "{:#?}", d.changes);
    let c = &d.changes[0];
    assert_eq!(c.field, "clamps[cgroup.limits.pids]");
    assert!(c.old.as_deref().unwrap().contains("requested 1024"));
    assert!(c.new.as_deref().unwrap().contains("requested 2048"));
}
