//! A hand-built [`LaunchPlan`] shaped like what the `untrusted` policy makes
//! of a busybox spec: the fixture of the diff and check tests and of the worked
//! examples in docs/ci-review.md, until those are generated from compiled
//! golden plans. Building it by hand keeps the diff independent of the
//! compiler.

use std::collections::{BTreeMap, BTreeSet};

use crate::plan::types::*;
use crate::vocab::{Bytes, Cap, Fd, Gid, Origin, RlimitKind, Uid, NOBODY};

fn policy(line: u32) -> Origin {
    Origin::Policy {
        file: "policies/untrusted.toml".into(),
        line,
    }
}

fn spec(path: &str) -> Origin {
    Origin::spec(path)
}

fn caps(names: &[&str]) -> BTreeSet<Cap> {
    names.iter().filter_map(|n| n.parse().ok()).collect()
}

fn mount(target: &str, fstype: &str, source: &str, flags: &[MountFlag], data: &str, from: Origin) -> Mount {
    Mount {
        target: target.into(),
        fstype: fstype.into(),
        source: source.into(),
        flags: flags.iter().copied().collect(),
        data: data.into(),
        source_within: None,
        from,
    }
}

fn fd(n: i32, role: FdRole, source: FdSource, from: Origin) -> FdEntry {
    FdEntry {
        fd: Fd(n),
        role,
        source,
        from,
    }
}

/// The syscalls the sample filter allows unconditionally.
pub const SAMPLE_ALLOWED: &[&str] = &[
    "arch_prctl",
    "brk",
    "close",
    "execve",
    "exit",
    "exit_group",
    "fstat",
    "futex",
    "getdents64",
    "getpid",
    "ioctl",
    "lseek",
    "mmap",
    "mprotect",
    "munmap",
    "newfstatat",
    "openat",
    "read",
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "set_tid_address",
    "wait4",
    "write",
];

/// A realistic plan: native platform, every namespace new, nobody mapped to
/// nobody, a read-only busybox root, proc/dev/tmp mounts and one read-only
/// host bind, a cgroup with memory, pids and CPU limits, an allow-list seccomp
/// filter with one conditional rule, two rlimits, and the seed's FD tables.
pub fn sample_plan() -> LaunchPlan {
    let nobody_map = vec![IdMap {
        inside: NOBODY,
        host: NOBODY,
        count: 1,
    }];
    let new_ns = |o: Origin| Sourced::new(Namespace::New, o);
    let steps = vec![
        Step::Preflight,
        Step::StateFile,
        Step::CgroupCreate,
        Step::CgroupLimits,
        Step::OpenFds,
        Step::Clone,
        Step::IdMaps,
        Step::CgroupJoin,
        Step::SupervisorFds,
        Step::Hostname,
        Step::Network,
        Step::MountPropagation,
        Step::Mounts,
        Step::Devices,
        Step::RootChange,
        Step::MaskedPaths,
        Step::ReadonlyPaths,
        Step::RootReadonly,
        Step::Session,
        Step::SpawnWorkload,
        Step::WorkloadFds,
        Step::Rlimits,
        Step::Credentials,
        Step::Capabilities,
        Step::NoNewPrivs,
        Step::Seccomp,
        Step::Exec,
        Step::SupervisorCredentials,
        Step::Wait,
        Step::Teardown,
    ];
    let mut rlimits = BTreeMap::new();
    rlimits.insert(
        RlimitKind::Nofile,
        Rlimit {
            soft: 1024,
            hard: 1024,
            from: spec("process.rlimits[0]"),
        },
    );
    rlimits.insert(
        RlimitKind::Core,
        Rlimit {
            soft: 0,
            hard: 0,
            from: policy(31),
        },
    );
    let cg_root = "/sys/fs/cgroup";
    LaunchPlan {
        format: PLAN_FORMAT,
        inputs: Inputs {
            policy_from: None,
            policies: vec!["policies/default.toml".into(), "policies/untrusted.toml".into()],
            spec: "bundle/config.json".into(),
            host: "host.toml".into(),
            bundle: Some(Sourced::new("/srv/bundle".into(), Origin::Cli("--spec".into()))),
        },
        platform: Sourced::new(Platform::Native, policy(3)),
        network: Sourced::new(NetworkMode::None, policy(5)),
        namespaces: Namespaces {
            user: new_ns(Origin::rule("user-ns-nobody")),
            pid: new_ns(Origin::rule("pid-ns-always-new")),
            mount: new_ns(Origin::rule("mount-ns-always")),
            net: new_ns(Origin::rule("net-ns-unless-host")),
            ipc: new_ns(Origin::rule("ipc-ns-always")),
            uts: new_ns(Origin::rule("uts-ns-always")),
            cgroup: new_ns(policy(7)),
            time: Sourced::new(Namespace::Host, Origin::Default),
        },
        namespace_join_ceiling: Sourced::new(vec![NsKind::User, NsKind::Net], Origin::Default),
        id_maps: IdMaps {
            uid: nobody_map.clone(),
            gid: nobody_map,
            setgroups: SetGroups::Deny,
            from: Origin::rule("user-ns-nobody"),
        },
        root: Root {
            path: Sourced::new("/srv/bundle/rootfs".into(), spec("root.path")),
            change: Sourced::new(RootChange::PivotRoot, Origin::rule("root-change-pivot")),
            readonly: Sourced::new(true, spec("root.readonly")),
        },
        mounts: vec![
            mount(
                "/proc",
                "proc",
                "proc",
                &[MountFlag::Nosuid, MountFlag::Noexec, MountFlag::Nodev],
                "",
                spec("mounts[0]"),
            ),
            mount(
                "/dev",
                "tmpfs",
                "tmpfs",
                &[MountFlag::Nosuid, MountFlag::Strictatime],
                "mode=755,size=65536k",
                spec("mounts[1]"),
            ),
            mount(
                "/dev/pts",
                "devpts",
                "devpts",
                &[MountFlag::Nosuid, MountFlag::Noexec],
                "newinstance,ptmxmode=0666,mode=0620",
                spec("mounts[2]"),
            ),
            mount(
                "/tmp",
                "tmpfs",
                "tmpfs",
                &[MountFlag::Nosuid, MountFlag::Nodev],
                "size=64m",
                policy(12),
            ),
            mount(
                "/srv/data",
                "bind",
                "/var/lib/web/data",
                &[
                    MountFlag::Rbind,
                    MountFlag::Ro,
                    MountFlag::Nosuid,
                    MountFlag::Nodev,
                    MountFlag::Rprivate,
                ],
                "",
                spec("mounts[3]"),
            ),
        ],
        masked_paths: ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"]
            .iter()
            .enumerate()
            .map(|(i, p)| Sourced::new(p.into(), spec(&format!("linux.maskedPaths[{i}]"))))
            .collect(),
        readonly_paths: ["/proc/bus", "/proc/fs", "/proc/sys", "/proc/sysrq-trigger"]
            .iter()
            .enumerate()
            .map(|(i, p)| Sourced::new(p.into(), spec(&format!("linux.readonlyPaths[{i}]"))))
            .collect(),
        devices: vec![
            Device {
                path: "/dev/null".into(),
                source: Some("/dev/null".into()),
                allowed_by: Origin::Default,
                kind: DeviceKind::Char,
                major: 1,
                minor: 3,
                mode: 0o666,
                how: DeviceHow::Bind,
                from: Origin::Default,
            },
            Device {
                path: "/dev/zero".into(),
                source: Some("/dev/zero".into()),
                allowed_by: Origin::Default,
                kind: DeviceKind::Char,
                major: 1,
                minor: 5,
                mode: 0o666,
                how: DeviceHow::Bind,
                from: Origin::Default,
            },
            Device {
                path: "/dev/urandom".into(),
                source: Some("/dev/urandom".into()),
                allowed_by: Origin::Default,
                kind: DeviceKind::Char,
                major: 1,
                minor: 9,
                mode: 0o666,
                how: DeviceHow::Bind,
                from: Origin::Default,
            },
        ],
        device_ceiling: DeviceRule::oci_defaults(),
        hostname: Some(Sourced::new("web".into(), spec("hostname"))),
        cgroup: Some(CgroupPlan {
            path: Sourced::new("sandboxctl/{id}".into(), Origin::rule("cgroup-path")),
            limits: CgroupLimits {
                memory: Some(Sourced::new(Bytes(64 << 20), spec("linux.resources.memory.limit"))),
                memory_swap: None,
                memory_reservation: None,
                memory_swappiness: None,
                memory_oom_kill_disable: None,
                cpu_shares: Some(Sourced::new(512, spec("linux.resources.cpu.shares"))),
                cpu_quota: Some(Sourced::new(50_000, policy(16))),
                cpu_period: Some(Sourced::new(100_000, policy(17))),
                cpuset_cpus: Some(Sourced::new("0-1".into(), spec("linux.resources.cpu.cpus"))),
                cpuset_mems: None,
                pids: Some(Sourced::new(128, policy(14))),
                memory_kernel_tcp: None,
                devices: Vec::new(),
            },
            dirs: ["memory", "cpu", "cpuset", "pids"]
                .iter()
                .map(|c| CgroupDir {
                    path: format!("{cg_root}/{c}/sandboxctl/{{id}}").into(),
                    version: CgroupVersion::V1,
                    role: CgroupDirRole::Sandbox,
                    controllers: vec![c.to_string()],
                    inherit: None,
                    from: None,
                })
                .collect(),
            writes: vec![
                CgroupWrite {
                    file: format!("{cg_root}/memory/sandboxctl/{{id}}/memory.limit_in_bytes").into(),
                    value: (64u64 << 20).to_string(),
                    from: spec("linux.resources.memory.limit"),
                },
                CgroupWrite {
                    file: format!("{cg_root}/pids/sandboxctl/{{id}}/pids.max").into(),
                    value: "128".into(),
                    from: policy(14),
                },
            ],
            join: ["memory", "cpu", "cpuset", "pids"]
                .iter()
                .map(|c| format!("{cg_root}/{c}/sandboxctl/{{id}}/tasks").into())
                .collect(),
            cpus: Sourced::new(1, Origin::rule("cpus-from-quota")),
            memory: Some(Sourced::new(Bytes(64 << 20), spec("linux.resources.memory.limit"))),
        }),
        log_dirs: Vec::new(),
        stdio: Sourced::new(Stdio::Inherit, Origin::Default),
        supervisor: Supervisor {
            credentials: Credentials {
                uid: Uid(NOBODY),
                gid: Gid(NOBODY),
                groups: vec![],
                from: Origin::rule("user-ns-nobody"),
            },
            capabilities: CapSets::default(),
            non_dumpable: true,
            session: Session::NewSession,
            fds: vec![
                fd(
                    0,
                    FdRole::StdioIn,
                    FdSource::Caller { fd: Fd(0) },
                    Origin::rule("stdio-inherit"),
                ),
                fd(
                    1,
                    FdRole::StdioOut,
                    FdSource::Caller { fd: Fd(1) },
                    Origin::rule("stdio-inherit"),
                ),
                fd(
                    2,
                    FdRole::StdioErr,
                    FdSource::Caller { fd: Fd(2) },
                    Origin::rule("stdio-inherit"),
                ),
                fd(3, FdRole::Control, FdSource::ControlSocket, Origin::rule("fd-control")),
                fd(4, FdRole::Spec, FdSource::PlanMemfd, Origin::rule("fd-plan")),
                fd(
                    5,
                    FdRole::Log,
                    FdSource::File {
                        path: "/var/log/sandboxctl/{{id}}.log".into(),
                        open: OpenMode::AppendCreate,
                        mode: 0o644,
                    },
                    policy(22),
                ),
            ],
        },
        workload: Workload {
            args: Sourced::new(
                vec!["/bin/sh".into(), "-c".into(), "httpd -f -p 8080".into()],
                spec("process.args"),
            ),
            env: Sourced::new(
                vec![
                    "PATH=/usr/sbin:/usr/bin:/sbin:/bin".into(),
                    "TERM=xterm".into(),
                    "LANG=C.UTF-8".into(),
                ],
                spec("process.env"),
            ),
            cwd: Sourced::new("/".into(), spec("process.cwd")),
            credentials: Credentials {
                uid: Uid(NOBODY),
                gid: Gid(NOBODY),
                groups: vec![],
                from: Origin::rule("user-ns-nobody"),
            },
            capabilities: Sourced::new(
                CapSets {
                    bounding: caps(&["CAP_KILL", "CAP_NET_BIND_SERVICE"]),
                    effective: caps(&["CAP_NET_BIND_SERVICE"]),
                    inheritable: BTreeSet::new(),
                    permitted: caps(&["CAP_NET_BIND_SERVICE"]),
                    ambient: BTreeSet::new(),
                },
                policy(20),
            ),
            no_new_privs: Sourced::new(true, spec("process.noNewPrivileges")),
            umask: Some(Sourced::new(0o022, Origin::Default)),
            oom_score_adj: None,
            rlimits,
            seccomp: Some(Seccomp {
                default_action: Sourced::new(SeccompAction::Errno(1), spec("linux.seccomp.defaultAction")),
                architectures: vec!["SCMP_ARCH_X86_64".into()],
                rules: vec![
                    SeccompRule {
                        action: SeccompAction::Allow,
                        syscalls: SAMPLE_ALLOWED.iter().map(|s| s.to_string()).collect(),
                        args: vec![],
                        from: spec("linux.seccomp.syscalls[0]"),
                    },
                    SeccompRule {
                        action: SeccompAction::Allow,
                        syscalls: vec!["personality".into()],
                        args: vec![ArgCond {
                            index: 0,
                            op: CmpOp::Eq,
                            value: 0,
                            value_two: None,
                        }],
                        from: spec("linux.seccomp.syscalls[1]"),
                    },
                    SeccompRule {
                        action: SeccompAction::KillProcess,
                        syscalls: vec!["kexec_load".into(), "ptrace".into()],
                        args: vec![],
                        from: policy(40),
                    },
                ],
                unknown_syscalls: vec![],
            }),
            fds: vec![
                fd(
                    0,
                    FdRole::Stdin,
                    FdSource::Supervisor { fd: Fd(0) },
                    Origin::rule("stdio-inherit"),
                ),
                fd(
                    1,
                    FdRole::Stdout,
                    FdSource::Supervisor { fd: Fd(1) },
                    Origin::rule("stdio-inherit"),
                ),
                fd(
                    2,
                    FdRole::Stderr,
                    FdSource::Supervisor { fd: Fd(2) },
                    Origin::rule("stdio-inherit"),
                ),
            ],
        },
        hooks: Vec::new(),
        dev_links: Vec::new(),
        clamps: vec![Clamp {
            field: "cgroup.limits.pids".into(),
            requested: "1024".into(),
            requested_by: spec("linux.resources.pids.limit"),
            granted: "128".into(),
            ceiling: policy(14),
        }],
        steps,
    }
}
