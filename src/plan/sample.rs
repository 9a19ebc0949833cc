//! The hand-built sample [`LaunchPlan`]: the one plan the tests that need a
//! whole plan without the compiler share. The diff, check, render and
//! exec-process tests read it; the interpreter's unit tests dry-run it and
//! the privileged suites apply it. It is shaped like what the `untrusted`
//! policy makes of a busybox spec; building it by hand keeps those tests
//! independent of the compiler (the worked examples in docs/ci-review.md
//! come from compiled golden plans instead).
//!
//! [`Sample`] builds it, and a variant is chosen there, before the plan
//! exists: the root and the command it runs, and what it is for
//! ([`Purpose`]): read ([`sample_plan`]) or applied on a test machine
//! ([`Sample::applied`]), which differs from the read plan only where
//! [`Purpose::Apply`] lists.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::plan::types::*;
use crate::vocab::{Bytes, Cap, Fd, Gid, Origin, RlimitKind, Uid, NOBODY};

/// The sample as read, rendered and diffed: [`Sample::new`] built.
pub fn sample_plan() -> LaunchPlan {
    Sample::new().plan()
}

/// What a sample plan is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Read, rendered, stored and diffed, never applied: the whole shape
    /// (an allow-list seccomp filter, a host bind, cpu and cpuset limits, a
    /// log file).
    Review,
    /// Applied on a test machine (root, a static busybox root, hybrid
    /// cgroups): the [`Purpose::Review`] plan with these deliberate
    /// differences, each something a test machine cannot or must not do:
    /// - seccomp: default allow, and `mkdir`/`mkdirat` fail with EXDEV (the
    ///   errno shows the filter from inside), instead of the allow-list that
    ///   would refuse the calls of arbitrary busybox scripts;
    /// - no bind of the host's /var/lib/web/data, which test machines lack;
    /// - the cgroup has the memory and pids controllers only: no cpu or
    ///   cpuset limits (the privileged suites clean up memory and pids, and a
    ///   v1 cpuset child needs cpus and mems its new parent lacks), so its
    ///   cpus are the sample host's two;
    /// - no log file fd (it would be a file on the host, under /var/log).
    Apply,
}

/// The choices a sample plan is built from; [`Sample::plan`] builds it.
#[derive(Debug, Clone)]
pub struct Sample {
    root: PathBuf,
    args: Vec<String>,
    purpose: Purpose,
}

impl Default for Sample {
    fn default() -> Self {
        Sample::new()
    }
}

impl Sample {
    /// The [`Purpose::Review`] sample: the root `/srv/bundle/rootfs`,
    /// running `/bin/sh -c 'httpd -f -p 8080'`.
    pub fn new() -> Self {
        Sample {
            root: "/srv/bundle/rootfs".into(),
            args: Vec::new(),
            purpose: Purpose::Review,
        }
        .script("httpd -f -p 8080")
    }

    /// The [`Purpose::Apply`] sample with its root at `root`, running
    /// `/bin/sh -c true` until [`Sample::script`] or [`Sample::args`] says
    /// otherwise.
    pub fn applied(root: &Path) -> Self {
        Sample {
            root: root.to_path_buf(),
            args: Vec::new(),
            purpose: Purpose::Apply,
        }
        .script("true")
    }

    /// The workload runs `/bin/sh -c script`.
    pub fn script(self, script: &str) -> Self {
        self.args(&["/bin/sh", "-c", script])
    }

    /// The workload runs `args` (argv, `args[0]` the program).
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args = args.iter().map(|a| a.to_string()).collect();
        self
    }

    /// The plan: native platform, every namespace but time new, nobody
    /// mapped to nobody, a read-only root changed to with pivot_root,
    /// proc/dev/devpts/sys/tmp mounts (and a read-only host bind), masked
    /// and read-only paths, three bound devices, a v1 cgroup under
    /// `sandboxctl/{id}` with memory and pids (and cpu and cpuset) limits,
    /// CAP_NET_BIND_SERVICE held (ambient; CAP_KILL bounding only), a seccomp
    /// filter, NOFILE and CORE rlimits, a clamp, and the seed's fd tables.
    pub fn plan(&self) -> LaunchPlan {
        let review = self.purpose == Purpose::Review;
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
            namespaces: namespaces(),
            namespace_join_ceiling: Sourced::new(vec![NsKind::User, NsKind::Net], Origin::Default),
            id_maps: IdMaps {
                uid: nobody_map(),
                gid: nobody_map(),
                setgroups: SetGroups::Deny,
                from: Origin::rule("user-ns-nobody"),
            },
            root: Root {
                path: Sourced::new(self.root.clone(), spec("root.path")),
                change: Sourced::new(RootChange::PivotRoot, Origin::rule("root-change-pivot")),
                readonly: Sourced::new(true, spec("root.readonly")),
            },
            mounts: mounts(review),
            masked_paths: paths(
                &[
                    "/proc/acpi",
                    "/proc/kcore",
                    "/proc/keys",
                    "/proc/timer_list",
                    "/sys/firmware",
                ],
                "linux.maskedPaths",
            ),
            readonly_paths: paths(
                &["/proc/bus", "/proc/fs", "/proc/sys", "/proc/sysrq-trigger"],
                "linux.readonlyPaths",
            ),
            devices: [("/dev/null", 3), ("/dev/zero", 5), ("/dev/urandom", 9)]
                .into_iter()
                .map(|(path, minor)| Device {
                    path: path.into(),
                    source: Some(path.into()),
                    allowed_by: Origin::Default,
                    kind: DeviceKind::Char,
                    major: 1,
                    minor,
                    mode: 0o666,
                    how: DeviceHow::Bind,
                    from: Origin::Default,
                })
                .collect(),
            device_ceiling: DeviceRule::oci_defaults(),
            hostname: Some(Sourced::new("sandbox".into(), spec("hostname"))),
            cgroup: Some(cgroup(review)),
            log_dirs: Vec::new(),
            stdio: Sourced::new(Stdio::Inherit, Origin::Default),
            supervisor: Supervisor {
                credentials: nobody(),
                capabilities: CapSets::default(),
                non_dumpable: true,
                session: Session::NewSession,
                fds: supervisor_fds(review),
            },
            workload: Workload {
                args: Sourced::new(self.args.clone(), spec("process.args")),
                env: Sourced::new(
                    vec![
                        "PATH=/usr/sbin:/usr/bin:/sbin:/bin".into(),
                        "TERM=xterm".into(),
                        "LANG=C.UTF-8".into(),
                    ],
                    spec("process.env"),
                ),
                cwd: Sourced::new("/".into(), spec("process.cwd")),
                credentials: nobody(),
                // As compile makes them for a workload that is not root: it
                // holds after exec only what is ambient (so also inheritable
                // and permitted).
                capabilities: Sourced::new(
                    CapSets {
                        bounding: caps(&["CAP_KILL", "CAP_NET_BIND_SERVICE"]),
                        effective: caps(&["CAP_NET_BIND_SERVICE"]),
                        inheritable: caps(&["CAP_NET_BIND_SERVICE"]),
                        permitted: caps(&["CAP_NET_BIND_SERVICE"]),
                        ambient: caps(&["CAP_NET_BIND_SERVICE"]),
                    },
                    policy(20),
                ),
                no_new_privs: Sourced::new(true, spec("process.noNewPrivileges")),
                umask: Some(Sourced::new(0o022, Origin::Default)),
                oom_score_adj: None,
                rlimits: rlimits(),
                seccomp: Some(if review { allow_list() } else { mkdir_exdev() }),
                fds: [FdRole::Stdin, FdRole::Stdout, FdRole::Stderr]
                    .into_iter()
                    .zip(0..)
                    .map(|(role, n)| fd(n, role, FdSource::Supervisor { fd: Fd(n) }, stdio_rule()))
                    .collect(),
            },
            hooks: Vec::new(),
            dev_links: Vec::new(),
            clamps: vec![Clamp {
                field: "cgroup.limits.pids".into(),
                requested: "1024".into(),
                requested_by: spec("linux.resources.pids.limit"),
                granted: PIDS.to_string(),
                ceiling: policy(14),
            }],
            // Platform native: no `trace` step; no hooks.
            steps: Step::ALL
                .iter()
                .copied()
                .filter(|s| {
                    !matches!(
                        s,
                        Step::Trace | Step::RuntimeHooks | Step::ContainerHooks | Step::SeccompBeforeCredentials
                    )
                })
                .collect(),
        }
    }
}

/// The pids limit (the spec asked 1024; the policy's ceiling granted this).
const PIDS: i64 = 64;

/// The memory limit, from the spec.
const MEMORY: u64 = 64 << 20;

/// The syscalls the review sample's filter allows unconditionally.
const ALLOWED: &[&str] = &[
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

fn policy(line: u32) -> Origin {
    Origin::Policy {
        file: "policies/untrusted.toml".into(),
        line,
    }
}

fn spec(path: &str) -> Origin {
    Origin::spec(path)
}

fn stdio_rule() -> Origin {
    Origin::rule("stdio-inherit")
}

fn caps(names: &[&str]) -> BTreeSet<Cap> {
    names.iter().filter_map(|n| n.parse().ok()).collect()
}

fn nobody_map() -> Vec<IdMap> {
    vec![IdMap {
        inside: NOBODY,
        host: NOBODY,
        count: 1,
    }]
}

fn nobody() -> Credentials {
    Credentials {
        uid: Uid(NOBODY),
        gid: Gid(NOBODY),
        groups: vec![],
        from: Origin::rule("user-ns-nobody"),
    }
}

fn namespaces() -> Namespaces {
    let new = |o: Origin| Sourced::new(Namespace::New, o);
    Namespaces {
        user: new(Origin::rule("user-ns-nobody")),
        pid: new(Origin::rule("pid-ns-always-new")),
        mount: new(Origin::rule("mount-ns-always")),
        net: new(Origin::rule("net-ns-unless-host")),
        ipc: new(Origin::rule("ipc-ns-always")),
        uts: new(Origin::rule("uts-ns-always")),
        cgroup: new(policy(7)),
        time: Sourced::new(Namespace::Host, Origin::Default),
    }
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

/// The spec's proc, dev, devpts and sys, the policy's /tmp, and (to review)
/// the spec's read-only bind of a host directory.
fn mounts(review: bool) -> Vec<Mount> {
    use MountFlag::*;
    let mut m = vec![
        mount("/proc", "proc", "proc", &[Nosuid, Noexec, Nodev], "", spec("mounts[0]")),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &[Nosuid, Strictatime],
            "mode=755,size=65536k",
            spec("mounts[1]"),
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[Nosuid, Noexec],
            "newinstance,ptmxmode=0666,mode=0620",
            spec("mounts[2]"),
        ),
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &[Nosuid, Noexec, Nodev, Ro],
            "",
            spec("mounts[3]"),
        ),
        mount(
            "/tmp",
            "tmpfs",
            "tmpfs",
            &[Nosuid, Nodev],
            "mode=1777,size=64m",
            policy(12),
        ),
    ];
    if review {
        m.push(mount(
            "/srv/data",
            "bind",
            "/var/lib/web/data",
            &[Rbind, Ro, Nosuid, Nodev, Rprivate],
            "",
            spec("mounts[4]"),
        ));
    }
    m
}

fn paths(paths: &[&str], field: &str) -> Vec<Sourced<PathBuf>> {
    paths
        .iter()
        .enumerate()
        .map(|(i, p)| Sourced::new(p.into(), spec(&format!("{field}[{i}]"))))
        .collect()
}

/// A v1 cgroup `sandboxctl/{id}` in each controller (under its parent
/// `sandboxctl`): memory and pids, and to review cpu and cpuset too.
fn cgroup(review: bool) -> CgroupPlan {
    let dir = |ctrl: &str| PathBuf::from(format!("/sys/fs/cgroup/{ctrl}/sandboxctl"));
    let leaf = |ctrl: &str| dir(ctrl).join(ID_PLACEHOLDER);
    let memory = || Sourced::new(Bytes(MEMORY), spec("linux.resources.memory.limit"));
    let mut limits = CgroupLimits {
        memory: Some(memory()),
        pids: Some(Sourced::new(PIDS, policy(14))),
        ..Default::default()
    };
    let write = |ctrl: &str, file: &str, value: String, from: &Origin| CgroupWrite {
        file: leaf(ctrl).join(file),
        value,
        from: from.clone(),
    };
    let mut writes = vec![
        write("memory", "memory.limit_in_bytes", MEMORY.to_string(), &memory().from),
        write("pids", "pids.max", PIDS.to_string(), &policy(14)),
    ];
    let mut controllers = vec!["memory", "pids"];
    let mut cpus = Sourced::new(2, Origin::Default);
    if review {
        let shares = Sourced::new(512, spec("linux.resources.cpu.shares"));
        let quota = Sourced::new(50_000, policy(16));
        let period = Sourced::new(100_000, policy(17));
        let cpuset = Sourced::new("0-1".to_string(), spec("linux.resources.cpu.cpus"));
        writes.extend([
            write("cpu", "cpu.shares", shares.value.to_string(), &shares.from),
            write("cpu", "cpu.cfs_period_us", period.value.to_string(), &period.from),
            write("cpu", "cpu.cfs_quota_us", quota.value.to_string(), &quota.from),
            write("cpuset", "cpuset.cpus", cpuset.value.clone(), &cpuset.from),
        ]);
        limits.cpu_shares = Some(shares);
        limits.cpu_quota = Some(quota);
        limits.cpu_period = Some(period);
        limits.cpuset_cpus = Some(cpuset);
        controllers = vec!["memory", "cpu", "cpuset", "pids"];
        cpus = Sourced::new(1, Origin::rule("cpus-from-quota"));
    }
    CgroupPlan {
        path: Sourced::new(format!("sandboxctl/{ID_PLACEHOLDER}"), Origin::rule("cgroup-path")),
        limits,
        dirs: controllers
            .iter()
            .flat_map(|c| {
                [(dir(c), CgroupDirRole::Parent), (leaf(c), CgroupDirRole::Sandbox)].map(|(path, role)| CgroupDir {
                    path,
                    version: CgroupVersion::V1,
                    role,
                    controllers: vec![c.to_string()],
                    // A new v1 cpuset directory starts empty (as compile
                    // plans it, rule cgroup-v1-cpuset-inherit).
                    inherit: (*c == "cpuset").then(|| CgroupInherit {
                        files: vec!["cpuset.cpus".into(), "cpuset.mems".into()],
                        root: "/sys/fs/cgroup/cpuset".into(),
                        from: Origin::rule("cgroup-v1-cpuset-inherit"),
                    }),
                    from: None,
                })
            })
            .collect(),
        writes,
        join: controllers.iter().map(|c| leaf(c).join("tasks")).collect(),
        cpus,
        memory: Some(memory()),
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

/// The caller's stdio, the control socket, the plan memfd, and (to review)
/// a log file.
fn supervisor_fds(review: bool) -> Vec<FdEntry> {
    let mut fds: Vec<FdEntry> = [FdRole::Stdin, FdRole::Stdout, FdRole::Stderr]
        .into_iter()
        .zip(0..)
        .map(|(role, n)| fd(n, role, FdSource::Caller { fd: Fd(n) }, stdio_rule()))
        .collect();
    fds.push(fd(
        3,
        FdRole::Control,
        FdSource::ControlSocket,
        Origin::rule("fd-control"),
    ));
    fds.push(fd(4, FdRole::Spec, FdSource::PlanMemfd, Origin::rule("fd-plan")));
    if review {
        let log = FdSource::File {
            path: format!("/var/log/sandboxctl/{ID_PLACEHOLDER}.log").into(),
            open: OpenMode::AppendCreate,
            mode: 0o644,
        };
        fds.push(fd(5, FdRole::Log, log, policy(22)));
    }
    fds
}

fn rlimits() -> BTreeMap<RlimitKind, Rlimit> {
    let mut r = BTreeMap::new();
    r.insert(
        RlimitKind::Nofile,
        Rlimit {
            soft: 1024,
            hard: 1024,
            from: spec("process.rlimits[0]"),
        },
    );
    r.insert(
        RlimitKind::Core,
        Rlimit {
            soft: 0,
            hard: 0,
            from: policy(31),
        },
    );
    r
}

/// The review filter: an allow-list (default EPERM) with one conditional
/// rule, and two calls that kill.
fn allow_list() -> Seccomp {
    Seccomp {
        default_action: Sourced::new(SeccompAction::Errno(1), spec("linux.seccomp.defaultAction")),
        architectures: vec!["SCMP_ARCH_X86_64".into()],
        rules: vec![
            SeccompRule {
                action: SeccompAction::Allow,
                syscalls: ALLOWED.iter().map(|s| s.to_string()).collect(),
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
    }
}

/// The applied filter: everything allowed but `mkdir` and `mkdirat`, which
/// fail with EXDEV.
fn mkdir_exdev() -> Seccomp {
    Seccomp {
        default_action: Sourced::new(SeccompAction::Allow, spec("linux.seccomp.defaultAction")),
        architectures: vec!["SCMP_ARCH_X86_64".into()],
        rules: vec![SeccompRule {
            action: SeccompAction::Errno(libc::EXDEV as u32),
            syscalls: vec!["mkdir".into(), "mkdirat".into()],
            args: vec![],
            from: spec("linux.seccomp.syscalls[0]"),
        }],
        unknown_syscalls: vec![],
    }
}
