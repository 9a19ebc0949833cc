//! Test support: hand-built plans (the compiler lives elsewhere) and host
//! facts for this kind of machine. Not part of the public API.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::host::{CgroupFacts, CgroupLayout, HostFacts, KvmFacts, RlimitPair};
use crate::plan::*;
use crate::vocab::{Bytes, Cap, Fd, Gid, Origin, RlimitKind, Uid};

fn d<T>(v: T) -> Sourced<T> {
    Sourced::new(v, Origin::Default)
}

fn p<T>(v: T, line: u32) -> Sourced<T> {
    Sourced::new(
        v,
        Origin::Policy {
            file: "untrusted.toml".into(),
            line,
        },
    )
}

fn mount(target: &str, fstype: &str, flags: &[MountFlag], data: &str, i: usize) -> Mount {
    Mount {
        target: target.into(),
        fstype: fstype.into(),
        source: fstype.into(),
        flags: flags.iter().copied().collect(),
        data: data.into(),
        source_within: None,
        from: Origin::spec(format!("mounts[{i}]")),
    }
}

fn fd(n: i32, role: FdRole, source: FdSource) -> FdEntry {
    FdEntry {
        fd: Fd(n),
        role,
        source,
        from: Origin::rule("seed-fd-table"),
    }
}

/// A full plan: every namespace new, nobody→nobody, pivot_root into `rootfs`,
/// proc/dev/devpts/sys/tmp mounts, masked and read-only paths, all caps
/// dropped, a seccomp rule (mkdir/mkdirat → EXDEV), NOFILE 1024, a v1
/// memory+pids cgroup under `sandboxctl/{id}` (the id is the launch's, see
/// [`super::state::LaunchId`]), running `sh -c script`.
pub fn sample_plan(rootfs: &Path, script: &str) -> LaunchPlan {
    use MountFlag::*;
    let cg = |ctrl: &str| PathBuf::from(format!("/sys/fs/cgroup/{ctrl}/sandboxctl"));
    let leaf = |ctrl: &str| cg(ctrl).join(ID_PLACEHOLDER);
    let nobody = |from: Origin| Credentials {
        uid: Uid(65534),
        gid: Gid(65534),
        groups: vec![],
        from,
    };
    let mut rlimits = BTreeMap::new();
    rlimits.insert(
        RlimitKind::Nofile,
        Rlimit {
            soft: 1024,
            hard: 1024,
            from: Origin::spec("process.rlimits[0]"),
        },
    );
    LaunchPlan {
        format: PLAN_FORMAT,
        inputs: Inputs {
            policy_from: None,
            policies: vec!["untrusted.toml".into()],
            spec: "builtin".into(),
            host: "detected".into(),
            bundle: None,
        },
        platform: p(Platform::Native, 3),
        network: p(NetworkMode::None, 5),
        namespaces: Namespaces {
            user: Sourced::new(Namespace::New, Origin::rule("user-ns-nobody")),
            pid: d(Namespace::New),
            mount: d(Namespace::New),
            net: p(Namespace::New, 5),
            ipc: d(Namespace::New),
            uts: d(Namespace::New),
            cgroup: d(Namespace::New),
            time: d(Namespace::Host),
        },
        namespace_join_ceiling: Sourced::new(vec![NsKind::User, NsKind::Net], Origin::Default),
        id_maps: IdMaps {
            uid: vec![IdMap {
                inside: 65534,
                host: 65534,
                count: 1,
            }],
            gid: vec![IdMap {
                inside: 65534,
                host: 65534,
                count: 1,
            }],
            setgroups: SetGroups::Deny,
            from: Origin::rule("user-ns-nobody"),
        },
        root: Root {
            path: Sourced::new(rootfs.to_path_buf(), Origin::spec("root.path")),
            change: Sourced::new(RootChange::PivotRoot, Origin::rule("chroot")),
            readonly: Sourced::new(true, Origin::spec("root.readonly")),
        },
        mounts: vec![
            mount("/proc", "proc", &[Nosuid, Noexec, Nodev], "", 0),
            mount("/dev", "tmpfs", &[Nosuid, Strictatime], "mode=755,size=65536k", 1),
            mount(
                "/dev/pts",
                "devpts",
                &[Nosuid, Noexec],
                "newinstance,ptmxmode=0666,mode=0620",
                2,
            ),
            mount("/sys", "sysfs", &[Nosuid, Noexec, Nodev, Ro], "", 3),
            mount("/tmp", "tmpfs", &[Nosuid, Nodev], "mode=1777,size=16m", 4),
        ],
        masked_paths: ["/proc/kcore", "/proc/timer_list", "/proc/acpi", "/sys/firmware"]
            .iter()
            .map(|s| Sourced::new(PathBuf::from(s), Origin::spec("linux.maskedPaths")))
            .collect(),
        readonly_paths: ["/proc/sys", "/proc/sysrq-trigger", "/proc/bus"]
            .iter()
            .map(|s| Sourced::new(PathBuf::from(s), Origin::spec("linux.readonlyPaths")))
            .collect(),
        devices: [("/dev/null", 1, 3), ("/dev/zero", 1, 5), ("/dev/urandom", 1, 9)]
            .iter()
            .map(|(path, major, minor)| Device {
                path: path.into(),
                kind: DeviceKind::Char,
                major: *major,
                minor: *minor,
                mode: 0o666,
                how: DeviceHow::Bind,
                source: Some(path.into()),
                from: Origin::rule("default-devices"),
                allowed_by: Origin::Default,
            })
            .collect(),
        device_ceiling: DeviceRule::oci_defaults(),
        hostname: Some(Sourced::new("sandbox".into(), Origin::spec("hostname"))),
        cgroup: Some(CgroupPlan {
            path: Sourced::new(format!("sandboxctl/{ID_PLACEHOLDER}"), Origin::rule("cgroup-path")),
            limits: CgroupLimits {
                memory: Some(p(Bytes(64 << 20), 12)),
                pids: Some(p(64, 14)),
                ..Default::default()
            },
            dirs: vec![
                CgroupDir {
                    path: cg("memory"),
                    version: CgroupVersion::V1,
                    role: CgroupDirRole::Parent,
                    controllers: vec!["memory".into()],
                    inherit: None,
                    from: None,
                },
                CgroupDir {
                    path: leaf("memory"),
                    version: CgroupVersion::V1,
                    role: CgroupDirRole::Sandbox,
                    controllers: vec!["memory".into()],
                    inherit: None,
                    from: None,
                },
                CgroupDir {
                    path: cg("pids"),
                    version: CgroupVersion::V1,
                    role: CgroupDirRole::Parent,
                    controllers: vec!["pids".into()],
                    inherit: None,
                    from: None,
                },
                CgroupDir {
                    path: leaf("pids"),
                    version: CgroupVersion::V1,
                    role: CgroupDirRole::Sandbox,
                    controllers: vec!["pids".into()],
                    inherit: None,
                    from: None,
                },
            ],
            writes: vec![
                CgroupWrite {
                    file: leaf("memory").join("memory.limit_in_bytes"),
                    value: (64u64 << 20).to_string(),
                    from: Origin::Policy {
                        file: "untrusted.toml".into(),
                        line: 12,
                    },
                },
                CgroupWrite {
                    file: leaf("pids").join("pids.max"),
                    value: "64".into(),
                    from: Origin::Policy {
                        file: "untrusted.toml".into(),
                        line: 14,
                    },
                },
            ],
            join: vec![leaf("memory").join("tasks"), leaf("pids").join("tasks")],
            cpus: d(2),
            memory: Some(p(Bytes(64 << 20), 12)),
        }),
        log_dirs: Vec::new(),
        stdio: d(Stdio::Inherit),
        supervisor: Supervisor {
            credentials: nobody(Origin::rule("user-ns-nobody")),
            capabilities: CapSets::default(),
            non_dumpable: true,
            session: Session::NewSession,
            fds: vec![
                fd(0, FdRole::Stdin, FdSource::Caller { fd: Fd(0) }),
                fd(1, FdRole::Stdout, FdSource::Caller { fd: Fd(1) }),
                fd(2, FdRole::Stderr, FdSource::Caller { fd: Fd(2) }),
                fd(3, FdRole::Control, FdSource::ControlSocket),
            ],
        },
        workload: Workload {
            args: Sourced::new(
                vec!["/bin/sh".into(), "-c".into(), script.into()],
                Origin::spec("process.args"),
            ),
            env: Sourced::new(vec!["PATH=/bin".into(), "HOME=/".into()], Origin::spec("process.env")),
            cwd: Sourced::new("/".into(), Origin::spec("process.cwd")),
            credentials: nobody(Origin::rule("user-ns-nobody")),
            capabilities: Sourced::new(
                CapSets::default(),
                Origin::Policy {
                    file: "untrusted.toml".into(),
                    line: 20,
                },
            ),
            no_new_privs: Sourced::new(true, Origin::spec("process.noNewPrivileges")),
            umask: Some(Sourced::new(0o022, Origin::Default)),
            oom_score_adj: None,
            rlimits,
            seccomp: Some(Seccomp {
                default_action: Sourced::new(SeccompAction::Allow, Origin::spec("linux.seccomp.defaultAction")),
                architectures: vec!["SCMP_ARCH_X86_64".into()],
                rules: vec![SeccompRule {
                    action: SeccompAction::Errno(libc::EXDEV as u32),
                    syscalls: vec!["mkdir".into(), "mkdirat".into()],
                    args: vec![],
                    from: Origin::spec("linux.seccomp.syscalls[0]"),
                }],
                unknown_syscalls: vec![],
            }),
            fds: (0..3)
                .map(|n| {
                    fd(
                        n,
                        [FdRole::Stdin, FdRole::Stdout, FdRole::Stderr][n as usize],
                        FdSource::Supervisor { fd: Fd(n) },
                    )
                })
                .collect(),
        },
        hooks: Vec::new(),
        dev_links: Vec::new(),
        clamps: vec![],
        // Platform native: no `trace` step.
        steps: Step::ALL
            .iter()
            .copied()
            .filter(|s| !matches!(s, Step::Trace | Step::RuntimeHooks))
            .collect(),
    }
}

/// Host facts of this kind of machine (hybrid cgroups, root without
/// CAP_SYS_RESOURCE, hard NOFILE 20000, /dev/kvm API 12).
pub fn sample_host() -> HostFacts {
    let caps: BTreeSet<Cap> = Cap::all()
        .into_iter()
        .filter(|c| c.0 != caps::Capability::CAP_SYS_RESOURCE)
        .collect();
    let v1 = [
        "blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "memory", "pids",
    ]
    .iter()
    .map(|c| (c.to_string(), PathBuf::from(format!("/sys/fs/cgroup/{c}"))))
    .collect();
    let mut rlimits = BTreeMap::new();
    rlimits.insert(
        RlimitKind::Nofile,
        RlimitPair {
            soft: 1024,
            hard: 20000,
        },
    );
    HostFacts {
        kernel: "6.1.0".into(),
        arch: "x86_64".into(),
        uid: Uid(0),
        gid: Gid(0),
        capabilities: caps.clone(),
        bounding: caps,
        cpus: 2,
        memory: Bytes(4 << 30),
        user_namespaces: true,
        cgroup: CgroupFacts {
            layout: CgroupLayout::Hybrid,
            v1,
            v2: Some(crate::host::CgroupV2Facts {
                mount: "/sys/fs/cgroup/unified".into(),
                controllers: ["hugetlb".to_string()].into(),
            }),
        },
        kvm: Some(KvmFacts {
            api_version: 12,
            extensions: BTreeSet::new(),
        }),
        rlimits,
        subordinate: Default::default(),
    }
}
