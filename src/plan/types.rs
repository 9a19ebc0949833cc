//! The LaunchPlan: an immutable statement of every effect `apply` will have.
//!
//! Built once by [`crate::plan::compile()`], never mutated; fields are public for
//! reading, and the only constructors are the compiler and deserialisation of a
//! printed plan. Every value carries an [`Origin`]. Field order here is the
//! order of the printed plan.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::vocab::{Bytes, Cap, Fd, Gid, Origin, RlimitKind, Uid};

/// The version of the plan format this build writes and reads (2: no `id`;
/// paths that name the sandbox hold [`ID_PLACEHOLDER`]).
pub const PLAN_FORMAT: u32 = 2;

/// Stands for the sandbox id in the plan's paths (its cgroup directories and
/// files, log files): the id is chosen per launch by `apply` (random, or the
/// caller's `--id`), so it is no part of the reviewed plan, its hash or its
/// diff, and one plan can run any number of times at once.
pub const ID_PLACEHOLDER: &str = "{id}";

/// A value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Sourced<T> {
    /// The value.
    pub value: T,
    /// Its provenance.
    pub from: Origin,
}

impl<T> Sourced<T> {
    /// Pairs a value with its origin.
    pub fn new(value: T, from: Origin) -> Self {
        Sourced { value, from }
    }
}

/// Everything `apply` will do, in one value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LaunchPlan {
    /// Plan format version ([`PLAN_FORMAT`]).
    pub format: u32,
    /// The inputs the plan was compiled from (for the reader; not used by apply).
    pub inputs: Inputs,
    /// The platform and what it implies.
    pub platform: Sourced<Platform>,
    /// Network mode.
    pub network: Sourced<NetworkMode>,
    /// One entry per namespace kind.
    pub namespaces: Namespaces,
    /// The policy's ceiling on joining (`namespaces.allow_join`): the kinds of
    /// namespace a spec may join by path, in [`NsKind::ORDER`], from the
    /// policy line (or `default`). Shown so `sandboxctl diff` sees it widen.
    pub namespace_join_ceiling: Sourced<Vec<NsKind>>,
    /// uid/gid maps written for a new user namespace.
    pub id_maps: IdMaps,
    /// The root filesystem and how the sandbox enters it.
    pub root: Root,
    /// Mounts, in the order they are made (before the root change).
    pub mounts: Vec<Mount>,
    /// Paths hidden inside the sandbox (bind of /dev/null or an empty read-only tmpfs).
    pub masked_paths: Vec<Sourced<PathBuf>>,
    /// Paths remounted read-only inside the sandbox.
    pub readonly_paths: Vec<Sourced<PathBuf>>,
    /// Device nodes made available in the sandbox's /dev.
    pub devices: Vec<Device>,
    /// The policy's device ceiling: the device numbers a spec may ask for,
    /// each with the host node bound for it (shown so `sandboxctl diff` sees
    /// the ceiling widen).
    pub device_ceiling: Vec<DeviceRule>,
    /// Hostname set in the new UTS namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<Sourced<String>>,
    /// The cgroup, when the plan makes one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<CgroupPlan>,
    /// Directories the launcher makes, when missing, before it opens the log
    /// files in them (step `open_fds`). Logs and their directories stay after
    /// the run: they are its record.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log_dirs: Vec<LogDir>,
    /// Stdio of the sandbox: the caller's, or a pty (sent over a console
    /// socket, or relayed by the launcher to the caller's stdio).
    pub stdio: Sourced<Stdio>,
    /// The supervisor: pid 1 of the sandbox, holder of the donated fds.
    pub supervisor: Supervisor,
    /// The workload: the spec's process.
    pub workload: Workload,
    /// Symbolic links made in the sandbox's own /dev at step `devices`
    /// (rule `oci-dev-links`: the runtime spec's /dev/fd, /dev/stdin,
    /// /dev/stdout, /dev/stderr and /dev/ptmx).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dev_links: Vec<DevLink>,
    /// The spec's OCI hooks the policy lets run, in the order they run
    /// (phase by phase, each phase in the spec's order). Each runs on the
    /// host as the launching user, outside every namespace of the sandbox.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<Hook>,
    /// Requests that were cut down to the policy's ceiling.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clamps: Vec<Clamp>,
    /// The steps of apply, in order. Derived by the compiler from one static
    /// list; apply walks exactly this list.
    pub steps: Vec<Step>,
}

/// What the plan was compiled from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Inputs {
    /// Policy files, base first (the `extends` chain, flattened).
    pub policies: Vec<String>,
    /// How the policy was chosen: `cli:--policy`, `host:env:SANDBOXCTL_POLICY`,
    /// `host:/etc/sandboxctl/policy.toml`, `default`, or
    /// `spec:annotations["org.sandboxctl.policy"]` (a selectable policy the spec picked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_from: Option<Origin>,
    /// The spec: a path, or `builtin` for the embedded default spec.
    pub spec: String,
    /// The host facts: a path, or `detected`.
    pub host: String,
    /// The bundle directory the spec's relative paths resolved from, absolute:
    /// from `cli:--bundle` or `cli:--spec` (its place on this machine), or
    /// `cli:--target-bundle` (a plan for another machine). Absent for the
    /// embedded spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<Sourced<PathBuf>>,
}

/// The platform the workload runs on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase", tag = "kind", deny_unknown_fields)]
pub enum Platform {
    /// Host kernel, namespaces, caps, seccomp, rlimits, cgroups.
    Native,
    /// Under a ptrace supervisor: the supervisor (pid 1 of the sandbox's
    /// own PID namespace) observes every system call of the workload and of
    /// everything it starts, and logs the ones the workload's filter refuses.
    Ptrace,
    /// The workload drives KVM: /dev/kvm is opened, checked and donated.
    Kvm {
        /// Required `KVM_GET_API_VERSION`.
        api_version: i32,
        /// Extensions checked before launch (kvm-ioctls `Cap` names).
        extensions: BTreeSet<String>,
        /// Where the extension list came from (`[kvm] extensions`, or
        /// `default`).
        extensions_from: Origin,
    },
}

impl Platform {
    /// The platform's name.
    pub fn name(&self) -> &'static str {
        match self {
            Platform::Native => "native",
            Platform::Ptrace => "ptrace",
            Platform::Kvm { .. } => "kvm",
        }
    }
}

/// Network mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase", tag = "kind", content = "path", deny_unknown_fields)]
pub enum NetworkMode {
    /// A new network namespace with only `lo`, left down.
    None,
    /// A new network namespace with `lo` brought up.
    Loopback,
    /// The host's network namespace.
    Host,
    /// Join an existing network namespace.
    Join(PathBuf),
}

/// What happens to one namespace kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase", tag = "mode", content = "path", deny_unknown_fields)]
pub enum Namespace {
    /// A new namespace of this kind.
    New,
    /// setns(2) into the namespace at this path.
    Join(PathBuf),
    /// Shared with the host (the caller's).
    Host,
}

/// The eight namespace kinds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Namespaces {
    /// User namespace.
    pub user: Sourced<Namespace>,
    /// PID namespace.
    pub pid: Sourced<Namespace>,
    /// Mount namespace.
    pub mount: Sourced<Namespace>,
    /// Network namespace.
    pub net: Sourced<Namespace>,
    /// IPC namespace.
    pub ipc: Sourced<Namespace>,
    /// UTS namespace.
    pub uts: Sourced<Namespace>,
    /// Cgroup namespace.
    pub cgroup: Sourced<Namespace>,
    /// Time namespace.
    pub time: Sourced<Namespace>,
}

/// The namespace kinds, in the order they are joined or created (user first so
/// the others are owned by it; mount late).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum NsKind {
    User,
    Pid,
    Net,
    Ipc,
    Uts,
    Cgroup,
    Time,
    Mount,
}

impl NsKind {
    /// The one place the namespace order lives.
    pub const ORDER: [NsKind; 8] = [
        NsKind::User,
        NsKind::Pid,
        NsKind::Net,
        NsKind::Ipc,
        NsKind::Uts,
        NsKind::Cgroup,
        NsKind::Time,
        NsKind::Mount,
    ];

    /// The name the plan writes (`mount`), its field in `namespaces`.
    pub fn name(self) -> String {
        snake_name(&self)
    }

    /// The name used in OCI specs and in `/proc/self/ns`.
    pub fn proc_name(self) -> &'static str {
        match self {
            NsKind::User => "user",
            NsKind::Pid => "pid",
            NsKind::Net => "net",
            NsKind::Ipc => "ipc",
            NsKind::Uts => "uts",
            NsKind::Cgroup => "cgroup",
            NsKind::Time => "time",
            NsKind::Mount => "mnt",
        }
    }
}

impl Namespaces {
    /// The entry for one kind.
    pub fn get(&self, kind: NsKind) -> &Sourced<Namespace> {
        match kind {
            NsKind::User => &self.user,
            NsKind::Pid => &self.pid,
            NsKind::Net => &self.net,
            NsKind::Ipc => &self.ipc,
            NsKind::Uts => &self.uts,
            NsKind::Cgroup => &self.cgroup,
            NsKind::Time => &self.time,
            NsKind::Mount => &self.mount,
        }
    }

    /// Every kind with its entry, in [`NsKind::ORDER`].
    pub fn iter(&self) -> impl Iterator<Item = (NsKind, &Sourced<Namespace>)> {
        NsKind::ORDER.into_iter().map(move |k| (k, self.get(k)))
    }
}

/// One line of a uid_map or gid_map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdMap {
    /// First id inside the namespace.
    pub inside: u32,
    /// First id on the host.
    pub host: u32,
    /// Number of ids.
    pub count: u32,
}

/// The maps of a new user namespace (empty when the user namespace is not new).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdMaps {
    /// uid_map lines.
    pub uid: Vec<IdMap>,
    /// gid_map lines.
    pub gid: Vec<IdMap>,
    /// Whether `setgroups` is denied before gid_map is written.
    pub setgroups: SetGroups,
    /// Why these maps.
    pub from: Origin,
}

/// `/proc/PID/setgroups`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SetGroups {
    /// Leave as is (allowed: the writer holds CAP_SETGID in the parent namespace).
    Allow,
    /// Write `deny` before the gid map.
    Deny,
}

/// How the sandbox enters its root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RootChange {
    /// pivot_root(2) into the root, then detach the old root.
    PivotRoot,
    /// chroot(2) into the root (needs no mount namespace of its own).
    Chroot,
    /// Stay in the caller's root (the seed's test-only mode). Printed loudly.
    None,
}

/// The root filesystem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Root {
    /// Host path of the root: absolute and normalised (a relative root.path
    /// resolves from the bundle directory, `inputs.bundle`), so the plan means
    /// the same wherever apply runs.
    pub path: Sourced<PathBuf>,
    /// How the sandbox enters it.
    pub change: Sourced<RootChange>,
    /// Whether it is remounted read-only after the mounts are made.
    pub readonly: Sourced<bool>,
}

/// A mount flag, as in mount(2) (plus propagation flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum MountFlag {
    Bind,
    Rbind,
    Ro,
    Nosuid,
    Nodev,
    Noexec,
    Sync,
    Dirsync,
    Mand,
    Noatime,
    Nodiratime,
    Relatime,
    Strictatime,
    Private,
    Rprivate,
    Slave,
    Rslave,
    Shared,
    Rshared,
    Unbindable,
    Runbindable,
}

impl MountFlag {
    /// OCI option names and flags.
    pub const NAMES: [(&'static str, MountFlag); 21] = [
        ("bind", MountFlag::Bind),
        ("rbind", MountFlag::Rbind),
        ("ro", MountFlag::Ro),
        ("nosuid", MountFlag::Nosuid),
        ("nodev", MountFlag::Nodev),
        ("noexec", MountFlag::Noexec),
        ("sync", MountFlag::Sync),
        ("dirsync", MountFlag::Dirsync),
        ("mand", MountFlag::Mand),
        ("noatime", MountFlag::Noatime),
        ("nodiratime", MountFlag::Nodiratime),
        ("relatime", MountFlag::Relatime),
        ("strictatime", MountFlag::Strictatime),
        ("private", MountFlag::Private),
        ("rprivate", MountFlag::Rprivate),
        ("slave", MountFlag::Slave),
        ("rslave", MountFlag::Rslave),
        ("shared", MountFlag::Shared),
        ("rshared", MountFlag::Rshared),
        ("unbindable", MountFlag::Unbindable),
        ("runbindable", MountFlag::Runbindable),
    ];

    /// Looks up an OCI mount option.
    pub fn from_option(s: &str) -> Option<MountFlag> {
        Self::NAMES.iter().find(|(n, _)| *n == s).map(|(_, f)| *f)
    }

    /// Whether this is a propagation flag (applied by a separate mount call).
    pub fn is_propagation(self) -> bool {
        matches!(
            self,
            MountFlag::Private
                | MountFlag::Rprivate
                | MountFlag::Slave
                | MountFlag::Rslave
                | MountFlag::Shared
                | MountFlag::Rshared
                | MountFlag::Unbindable
                | MountFlag::Runbindable
        )
    }
}

/// One mount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Mount {
    /// Path inside the sandbox.
    pub target: PathBuf,
    /// Filesystem type (`proc`, `tmpfs`, `bind`, …).
    pub fstype: String,
    /// Source: a host path for binds, a label otherwise.
    pub source: String,
    /// Flags (including propagation).
    pub flags: BTreeSet<MountFlag>,
    /// Filesystem data (`mode=755,size=65536k`).
    pub data: String,
    /// For a spec's bind: the allowed host path (from the policy's
    /// `mounts.allowed_host_paths`) the source must still lie under once
    /// resolved. Apply opens the source once (O_PATH), checks the resolved
    /// path of that fd against this, and mounts from that fd.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_within: Option<Sourced<PathBuf>>,
    /// Where the mount came from.
    pub from: Origin,
}

impl Mount {
    /// Whether this is a bind mount of a host path.
    pub fn is_bind(&self) -> bool {
        self.flags.contains(&MountFlag::Bind) || self.flags.contains(&MountFlag::Rbind)
    }
}

/// A device node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Device {
    /// Path inside the sandbox.
    pub path: PathBuf,
    /// `c` or `b`.
    pub kind: DeviceKind,
    /// Major number.
    pub major: u64,
    /// Minor number.
    pub minor: u64,
    /// File mode bits.
    pub mode: u32,
    /// How the node is made: mknod (needs CAP_MKNOD in the init user namespace)
    /// or a bind mount of the host node (works in a user namespace), made
    /// nosuid and noexec.
    pub how: DeviceHow,
    /// For `how = bind`: the host node bound, from the device ceiling (never
    /// the spec's path); apply checks it is a node of this kind and number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<PathBuf>,
    /// Where it came from.
    pub from: Origin,
    /// The device ceiling entry (or platform setting) that allows it.
    pub allowed_by: Origin,
}

/// A symbolic link in the sandbox's /dev.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DevLink {
    /// The link, inside the sandbox (`/dev/fd`); made only where nothing is.
    pub path: PathBuf,
    /// What it points to (`/proc/self/fd`).
    pub target: PathBuf,
    /// Why it is made.
    pub from: Origin,
}

/// One device number the policy allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceRule {
    /// `c` or `b`.
    pub kind: DeviceKind,
    /// Major number.
    pub major: u64,
    /// Minor number.
    pub minor: u64,
    /// The host's node for it.
    pub host_path: PathBuf,
    /// The policy line (or `default`: the OCI default set).
    pub from: Origin,
}

impl DeviceRule {
    /// The default ceiling: the OCI default devices, from `default`.
    pub fn oci_defaults() -> Vec<DeviceRule> {
        crate::policy::AllowedDevice::oci_defaults()
            .into_iter()
            .map(|d| DeviceRule {
                kind: DeviceKind::Char,
                major: d.major,
                minor: d.minor,
                host_path: d.host_path,
                from: Origin::Default,
            })
            .collect()
    }
}

/// Device node kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum DeviceKind {
    Char,
    Block,
}

/// How a device node is provided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeviceHow {
    /// mknod(2).
    Mknod,
    /// Bind-mount the host's node of the same path.
    Bind,
}

/// The cgroup of the sandbox. The compiler resolves every file the interpreter
/// touches from the host facts, so apply only makes directories, writes files,
/// and removes directories, in the order listed here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CgroupPlan {
    /// Path relative to each hierarchy's root (`sandboxctl/{id}`).
    pub path: Sourced<String>,
    /// The limits, as requested and granted.
    pub limits: CgroupLimits,
    /// Directories made, in order (removed in reverse order at teardown); one
    /// per hierarchy used, plus any missing parents.
    pub dirs: Vec<CgroupDir>,
    /// Limit files written, in order, after the directories exist.
    pub writes: Vec<CgroupWrite>,
    /// Files the supervisor writes `0` to, joining itself to the cgroup before
    /// it does anything else: a v1 hierarchy's `tasks` (which moves the
    /// writing thread — the supervisor has one — without the threadgroup lock
    /// a `cgroup.procs` write takes, and so without that lock's wait for an
    /// RCU grace period), a v2 hierarchy's `cgroup.procs` (v2 moves whole
    /// processes). The launcher opens them before the clone; the kernel checks
    /// the opener's credentials.
    pub join: Vec<PathBuf>,
    /// CPU count handed to the supervisor (derived from the limits).
    pub cpus: Sourced<u32>,
    /// Total memory handed to the supervisor (absent: unset, use the host's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Sourced<Bytes>>,
}

/// A cgroup directory the plan makes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CgroupDir {
    /// Absolute path.
    pub path: PathBuf,
    /// Hierarchy version.
    pub version: CgroupVersion,
    /// A parent on the way (made only if missing, removed only if this plan
    /// made it and it is empty) or the sandbox's own directory.
    pub role: CgroupDirRole,
    /// Controllers this directory is made for.
    pub controllers: Vec<String>,
    /// Files copied into the directory from its nearest ancestor whose copy
    /// is not empty, right after the directory is made, and only when this
    /// launch made it (an existing directory is left as it is): a new v1
    /// cpuset cgroup starts with empty `cpuset.cpus` and `cpuset.mems`, and
    /// neither a limit below it nor a task can be put in it until they are
    /// filled (`rule:cgroup-v1-cpuset-inherit`, as runc does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inherit: Option<CgroupInherit>,
    /// Why the directory is made when no limit asks for it (the v1 `freezer`
    /// directory `pause` needs: `rule:cgroup-freezer-for-pause`); absent for
    /// the directories of the limits, whose writes carry their origins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Origin>,
}

/// Files a new cgroup directory copies from its ancestors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CgroupInherit {
    /// The files, each copied from the nearest ancestor where it is not
    /// empty.
    pub files: Vec<String>,
    /// The hierarchy's root: the last ancestor read (always filled).
    pub root: PathBuf,
    /// Why.
    pub from: Origin,
}

/// What a cgroup directory is to the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CgroupDirRole {
    /// A parent directory, possibly shared with other sandboxes.
    Parent,
    /// The sandbox's own directory.
    Sandbox,
}

/// One file write into a cgroup directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CgroupWrite {
    /// Absolute path of the file.
    pub file: PathBuf,
    /// The text written.
    pub value: String,
    /// Where the value came from.
    pub from: Origin,
}

/// cgroup version of one hierarchy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(missing_docs)]
pub enum CgroupVersion {
    V1,
    V2,
}

/// cgroup limits; absent ones are not written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CgroupLimits {
    /// Memory limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Sourced<Bytes>>,
    /// Memory plus swap limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_swap: Option<Sourced<Bytes>>,
    /// Memory soft limit, the spec's `memory.reservation` (v1
    /// memory.soft_limit_in_bytes, v2 memory.low): reclaim pushes the
    /// sandbox back towards it when the host is short of memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_reservation: Option<Sourced<Bytes>>,
    /// Swappiness, 0 to 100 (v1 memory.swappiness; cgroup v2 has none, so a
    /// spec that asks for it on a v2 memory hierarchy is refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_swappiness: Option<Sourced<u64>>,
    /// The OOM killer disabled for the sandbox (v1 memory.oom_control 1: at
    /// its memory limit its tasks wait instead of being killed; v2 has no
    /// such switch, refused there). Present only when the spec disables it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_oom_kill_disable: Option<Sourced<bool>>,
    /// CPU shares (v1 cpu.shares; converted to cpu.weight on v2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_shares: Option<Sourced<u64>>,
    /// CPU quota in µs per period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_quota: Option<Sourced<i64>>,
    /// CPU period in µs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_period: Option<Sourced<u64>>,
    /// CPUs allowed (cpuset list syntax).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpuset_cpus: Option<Sourced<String>>,
    /// Memory nodes allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpuset_mems: Option<Sourced<String>>,
    /// Kernel TCP buffer memory limit, the spec's `memory.kernelTCP` (v1
    /// memory.kmem.tcp.limit_in_bytes, which kernels still enforce; cgroup
    /// v2 has no such file, so a spec that asks for it on a v2 memory
    /// hierarchy is refused). Cut to the memory ceiling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_kernel_tcp: Option<Sourced<Bytes>>,
    /// The v1 `devices` cgroup's rules, written in this order after
    /// `devices.deny a` (every device denied): the spec's
    /// `linux.resources.devices` rules the device ceiling permits, then the
    /// nodes the plan makes and the sandbox's own devpts. Empty: no devices
    /// cgroup (the spec asks for none, or the host has no v1 `devices`
    /// hierarchy; device access is then limited by the nodes made alone).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceCgroupRule>,
    /// Maximum number of tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<Sourced<i64>>,
}

/// One rule of a v1 `devices` cgroup (`devices.allow` or `devices.deny`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceCgroupRule {
    /// Allow (`devices.allow`) or deny (`devices.deny`).
    pub allow: bool,
    /// `a` (every device), `c` or `b`.
    pub kind: DeviceCgroupKind,
    /// Major number; absent: any (`*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub major: Option<u64>,
    /// Minor number; absent: any (`*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minor: Option<u64>,
    /// Access: some of `r` (read), `w` (write), `m` (mknod), in that order.
    pub access: String,
    /// Where the rule came from (a spec path, a plan device's origin, a rule).
    pub from: Origin,
}

impl DeviceCgroupRule {
    /// The rule as the kernel reads it (`c 1:3 rwm`, `a *:* rwm`).
    pub fn line(&self) -> String {
        let n = |v: Option<u64>| v.map_or("*".to_string(), |v| v.to_string());
        let kind = match self.kind {
            DeviceCgroupKind::All => 'a',
            DeviceCgroupKind::Char => 'c',
            DeviceCgroupKind::Block => 'b',
        };
        format!("{kind} {}:{} {}", n(self.major), n(self.minor), self.access)
    }
}

/// The device kind of a devices cgroup rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeviceCgroupKind {
    /// Every device, char and block.
    All,
    /// Character devices.
    Char,
    /// Block devices.
    Block,
}

/// A directory made (with its missing parents) before the log files in it
/// are opened. Each directory made gets exactly `mode` (the umask does not
/// apply); one that exists is left as it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogDir {
    /// Host path (absolute).
    pub path: PathBuf,
    /// Mode of each directory made (octal, e.g. 0o755; decimal in TOML/JSON).
    pub mode: u32,
    /// Why it is made.
    pub from: Origin,
}

/// Stdio of the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", tag = "kind", content = "socket", deny_unknown_fields)]
pub enum Stdio {
    /// The caller's stdin, stdout, stderr.
    Inherit,
    /// A new pty; its master is sent over this unix socket; the slave is
    /// stdio ×3 and the controlling tty.
    ConsoleSocket(PathBuf),
    /// A new pty (the spec's `process.terminal`); the slave is stdio ×3 and
    /// the controlling tty; the launcher keeps the master and relays it to
    /// and from its own stdin and stdout until the sandbox ends (the caller's
    /// terminal, when stdin is one, in raw mode meanwhile; its window size
    /// copied at the start and on SIGWINCH).
    Pty,
    /// `/dev/null` for stdin, stdout and stderr: the sandbox is detached
    /// from the caller's stdio (`workload.daemonize`).
    Null,
}

/// Process credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// uid inside the sandbox's user namespace.
    pub uid: Uid,
    /// gid inside the sandbox's user namespace.
    pub gid: Gid,
    /// Supplementary groups.
    pub groups: Vec<Gid>,
    /// Where they came from.
    pub from: Origin,
}

/// The five capability sets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CapSets {
    /// Bounding set.
    pub bounding: BTreeSet<Cap>,
    /// Effective set.
    pub effective: BTreeSet<Cap>,
    /// Inheritable set.
    pub inheritable: BTreeSet<Cap>,
    /// Permitted set.
    pub permitted: BTreeSet<Cap>,
    /// Ambient set.
    pub ambient: BTreeSet<Cap>,
}

/// How one fd of a process's table is made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", tag = "kind", deny_unknown_fields)]
pub enum FdSource {
    /// The caller's fd of this number (stdin/stdout/stderr, or an I/O fd
    /// passed with `--io-fd`).
    Caller {
        /// The caller's fd.
        fd: Fd,
    },
    /// The pty slave made for the console socket.
    PtySlave,
    /// A file opened by the launcher.
    File {
        /// Host path.
        path: PathBuf,
        /// How it is opened.
        open: OpenMode,
        /// Creation mode (octal, e.g. 0o644) when created.
        mode: u32,
    },
    /// The control socket of the sandbox (a socketpair end; the other end
    /// stays with the launcher).
    ControlSocket,
    /// What the supervisor needs of the plan: the plan itself, canonical JSON,
    /// in a sealed memfd.
    PlanMemfd,
    /// `/dev/kvm`, opened and checked by the launcher.
    KvmDevice,
    /// The supervisor's own fd of this number (the workload's inheritance).
    Supervisor {
        /// The supervisor's fd.
        fd: Fd,
    },
}

/// Open mode of a file fd.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OpenMode {
    /// O_RDONLY.
    Read,
    /// O_WRONLY|O_CREAT|O_APPEND.
    AppendCreate,
    /// O_RDWR.
    ReadWrite,
}

/// One planned fd.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FdEntry {
    /// Number in the process.
    pub fd: Fd,
    /// What it is, in a word (`stdin`, `log`, `control`, `kvm`…).
    pub role: FdRole,
    /// How it is made.
    pub source: FdSource,
    /// Why it is here.
    pub from: Origin,
}

/// The role of a donated fd (the seed's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum FdRole {
    Stdin,
    Stdout,
    Stderr,
    Log,
    DebugLog,
    Control,
    Spec,
    Io,
    Device,
    StdioIn,
    StdioOut,
    StdioErr,
    UserLog,
}

/// The supervisor process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Supervisor {
    /// Its credentials inside the sandbox.
    pub credentials: Credentials,
    /// It drops every capability after setting up the sandbox.
    pub capabilities: CapSets,
    /// prctl(PR_SET_DUMPABLE, 0).
    pub non_dumpable: bool,
    /// setsid(2); with a console, the pty becomes the controlling tty.
    pub session: Session,
    /// Its FD table; every other fd is closed.
    pub fds: Vec<FdEntry>,
}

/// Session handling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Session {
    /// setsid(2) only.
    NewSession,
    /// setsid(2) and TIOCSCTTY on fd 0.
    NewSessionWithControllingTty,
}

/// The spec's process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// argv.
    pub args: Sourced<Vec<String>>,
    /// Environment, `KEY=VALUE`, in the spec's order.
    pub env: Sourced<Vec<String>>,
    /// Working directory inside the sandbox.
    pub cwd: Sourced<PathBuf>,
    /// Credentials.
    pub credentials: Credentials,
    /// Capability sets and where they came from.
    pub capabilities: Sourced<CapSets>,
    /// PR_SET_NO_NEW_PRIVS.
    pub no_new_privs: Sourced<bool>,
    /// umask.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub umask: Option<Sourced<u32>>,
    /// The sandbox's OOM score adjustment (-1000..=1000), written by the
    /// launcher to the supervisor's `/proc/PID/oom_score_adj` before the
    /// release: every process of the sandbox inherits it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<Sourced<i32>>,
    /// Resource limits.
    pub rlimits: BTreeMap<RlimitKind, Rlimit>,
    /// The seccomp filter, loaded just before exec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp: Option<Seccomp>,
    /// Its FD table; every other fd is closed.
    pub fds: Vec<FdEntry>,
}

/// One rlimit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rlimit {
    /// Soft limit (`"unlimited"` for RLIM_INFINITY).
    #[serde(with = "crate::vocab::u64_wide")]
    #[schemars(with = "serde_json::Value")]
    pub soft: u64,
    /// Hard limit (`"unlimited"` for RLIM_INFINITY).
    #[serde(with = "crate::vocab::u64_wide")]
    #[schemars(with = "serde_json::Value")]
    pub hard: u64,
    /// Where it came from.
    pub from: Origin,
}

/// A seccomp action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", tag = "action", content = "value")]
pub enum SeccompAction {
    /// Allow.
    Allow,
    /// Fail with this errno.
    Errno(u32),
    /// Kill the thread.
    KillThread,
    /// Kill the process.
    KillProcess,
    /// SIGSYS.
    Trap,
    /// Allow and log.
    Log,
    /// Notify a tracer with this data.
    Trace(u32),
}

impl SeccompAction {
    /// How much this action lets through: higher is looser. Used to say whether a
    /// change softens a filter.
    pub fn looseness(self) -> u8 {
        match self {
            SeccompAction::KillProcess => 0,
            SeccompAction::KillThread => 1,
            SeccompAction::Trap => 2,
            SeccompAction::Errno(_) => 3,
            SeccompAction::Trace(_) => 4,
            SeccompAction::Log => 5,
            SeccompAction::Allow => 6,
        }
    }
}

/// An argument comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    MaskedEq,
}

/// A condition on one syscall argument.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ArgCond {
    /// Argument index (0–5).
    pub index: u8,
    /// Comparison.
    pub op: CmpOp,
    /// Value (for masked_eq: the mask).
    #[serde(with = "crate::vocab::u64_wide")]
    #[schemars(with = "serde_json::Value")]
    pub value: u64,
    /// Second value (for masked_eq: the expected value).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::vocab::u64_wide::option"
    )]
    #[schemars(with = "Option<serde_json::Value>")]
    pub value_two: Option<u64>,
}

/// A seccomp rule: these syscalls, when all conditions hold, get this action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SeccompRule {
    /// Action when matched.
    #[serde(flatten)]
    pub action: SeccompAction,
    /// Syscall names (resolved for x86_64; names unknown there are listed in
    /// [`Seccomp::unknown_syscalls`]).
    pub syscalls: Vec<String>,
    /// All must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<ArgCond>,
    /// Where the rule came from.
    pub from: Origin,
}

/// The seccomp filter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Seccomp {
    /// Action for syscalls no rule matches.
    pub default_action: Sourced<SeccompAction>,
    /// Architectures the filter accepts (others are killed).
    pub architectures: Vec<String>,
    /// Rules, in the order given.
    pub rules: Vec<SeccompRule>,
    /// Syscall names that x86_64 does not have (ignored, as libseccomp does).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unknown_syscalls: Vec<String>,
}

/// When an OCI hook runs (runtime-spec config.md, "POSIX-platform Hooks").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum HookPhase {
    /// At `create`, once the sandbox's namespaces and mounts are made,
    /// before its root change (deprecated by the spec; runs just before
    /// `createRuntime`).
    Prestart,
    /// At `create`, once the sandbox's namespaces and mounts are made,
    /// before its root change.
    CreateRuntime,
    /// At `create`, after `createRuntime`, before the root change: the
    /// path resolved on the host (opened by the launcher), executed by the
    /// supervisor in the sandbox's namespaces (step `container_hooks`).
    CreateContainer,
    /// At `start`, before the workload's exec: the path resolved and
    /// executed in the sandbox's namespaces, by the supervisor.
    StartContainer,
    /// At `start`, once the workload is started (a failure is a warning).
    Poststart,
    /// At `delete`, once the sandbox is gone (a failure is a warning).
    Poststop,
}

impl HookPhase {
    /// Every phase, in the order they run.
    pub const ALL: [HookPhase; 6] = [
        HookPhase::Prestart,
        HookPhase::CreateRuntime,
        HookPhase::CreateContainer,
        HookPhase::StartContainer,
        HookPhase::Poststart,
        HookPhase::Poststop,
    ];

    /// The spec's name of the phase (`createRuntime`).
    pub fn name(self) -> String {
        snake_name(&self)
    }

    /// Whether hooks of this phase run inside the sandbox's namespaces
    /// (`createContainer`, `startContainer`: exec'd by the supervisor with
    /// the workload's credentials, capabilities, no_new_privs and seccomp
    /// filter) rather than on the host (the others).
    pub fn in_sandbox(self) -> bool {
        matches!(self, HookPhase::CreateContainer | HookPhase::StartContainer)
    }

    /// Whether a failing hook of this phase fails the command (and `create`
    /// or `start` is rolled back); otherwise it is a warning.
    pub fn fatal(self) -> bool {
        !matches!(self, HookPhase::Poststart | HookPhase::Poststop)
    }
}

/// One OCI hook the plan runs: a program given the sandbox's OCI state JSON
/// on its stdin; on the host, or in the sandbox's namespaces for the
/// container's phases ([`HookPhase::in_sandbox`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Hook {
    /// When it runs.
    pub phase: HookPhase,
    /// The executable, an absolute path: the host's (`createContainer`
    /// too: opened on the host), the sandbox's for `startContainer`.
    pub path: PathBuf,
    /// argv, exactly as the spec gives it (`args[0]` is argv\[0\]; empty:
    /// the path alone).
    pub args: Vec<String>,
    /// Its whole environment, `KEY=VALUE` (nothing else is inherited).
    pub env: Vec<String>,
    /// Seconds before it is killed (SIGKILL) and counted as failed; none:
    /// waited for without limit, as the spec says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<u32>,
    /// Where it was asked (`spec:hooks.createRuntime[0]`).
    pub from: Origin,
    /// The policy line that lets hooks run (`[hooks] allow`).
    pub allowed_by: Origin,
}

/// A request cut down to the policy's ceiling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Clamp {
    /// The plan field (`cgroup.limits.pids`).
    pub field: String,
    /// What was asked.
    pub requested: String,
    /// Where it was asked.
    pub requested_by: Origin,
    /// What the plan holds instead.
    pub granted: String,
    /// The policy line that set the ceiling, or the kernel's rule (`rule:NAME`)
    /// that compile applied so apply cannot fail on it.
    pub ceiling: Origin,
}

impl Step {
    /// The steps whose state this one takes over: the fds `open_fds` opens
    /// are what `clone` hands the supervisor; `supervisor_ids` opens the
    /// host sources and the root that mounts, devices and the container's
    /// hooks use; the supervisor's and the workload's steps run in the
    /// processes `clone` and `spawn_workload` make. A plan file (hand-edited,
    /// or from elsewhere) whose `steps` keep a step but drop what it needs is
    /// refused when loaded ([`missing_prerequisite`]).
    pub fn needs(self) -> &'static [Step] {
        match self.actor() {
            Actor::Workload => &[Step::SpawnWorkload],
            _ => match self {
                Step::Clone => &[Step::OpenFds],
                Step::Mounts | Step::Devices | Step::ContainerHooks => &[Step::Clone, Step::SupervisorIds],
                Step::IdMaps | Step::RuntimeHooks => &[Step::Clone],
                s if s.actor() == Actor::Supervisor => &[Step::Clone],
                _ => &[],
            },
        }
    }
}

/// The first step of `steps` that is out of apply's order, repeated, or
/// lacks a step it needs ([`Step::needs`]), with what is wrong.
pub fn missing_prerequisite(steps: &[Step]) -> Option<(Step, String)> {
    for w in steps.windows(2) {
        if w[0] >= w[1] {
            return Some((
                w[1],
                format!(
                    "comes after {} (apply's order: docs/apply.md)",
                    crate::vocab::serde_name(&w[0])
                ),
            ));
        }
    }
    steps.iter().find_map(|s| {
        s.needs().iter().find(|n| !steps.contains(n)).map(|n| {
            (
                *s,
                format!("needs step {}, which the plan leaves out", crate::vocab::serde_name(n)),
            )
        })
    })
}

/// Declares [`Step`] from one list, grouped by the process that performs each
/// step, so the enum's order, [`Step::ALL`] and [`Step::actor`] cannot drift
/// apart.
macro_rules! steps {
    ($( $actor:ident: [ $( $(#[$doc:meta])* $step:ident ),* $(,)? ] )*) => {
        /// One step of apply, in plan order. See docs/apply.md.
        ///
        /// The plan's `steps` list is one total order; each step runs in one process
        /// ([`Step::actor`]), so the list read per actor is that process's program.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
        #[serde(rename_all = "snake_case")]
        #[allow(missing_docs)]
        pub enum Step {
            $( $( $(#[$doc])* $step, )* )*
        }

        impl Step {
            /// Every step, in apply's order (the order of the enum).
            pub const ALL: &'static [Step] = &[ $( $( Step::$step, )* )* ];

            /// Which process performs this step.
            pub fn actor(self) -> Actor {
                match self {
                    $( $( Step::$step => Actor::$actor, )* )*
                }
            }
        }
    };
}

steps! {
    // before the sandbox exists
    Launcher: [Preflight, StateFile, CgroupCreate, CgroupLimits, OpenFds, JoinNamespaces, Clone]
    // while the child waits
    Launcher: [IdMaps]
    // pid 1 of the sandbox
    Supervisor: [
        /// The supervisor joins its cgroup itself, first of all.
        CgroupJoin,
        /// The supervisor takes its planned uid/gid, keeping its capabilities
        /// (files it creates, e.g. mount points in a tmpfs, need a mapped owner).
        SupervisorIds,
        SupervisorFds,
        Hostname,
        Network,
        MountPropagation,
        Mounts,
        Devices,
    ]
    // while the supervisor waits, its mounts made (`create` only)
    Launcher: [
        /// The spec's `prestart` and `createRuntime` hooks, on the host, in
        /// order (`plan.hooks`): the supervisor has made the sandbox's
        /// namespaces and mounts and waits before its root change.
        RuntimeHooks,
    ]
    Supervisor: [
        /// The spec's `createContainer` hooks, in order (`plan.hooks`): each
        /// exec'd by the supervisor, in the sandbox's namespaces and cgroup,
        /// from an fd the launcher opened on the host path (step
        /// `open_fds`), with the workload's credentials, capabilities,
        /// no_new_privs and seccomp filter; its mounts made, before its root
        /// change.
        ContainerHooks,
        RootChange,
        MaskedPaths,
        ReadonlyPaths,
        RootReadonly,
        Session,
        SpawnWorkload,
    ]
    // between fork and exec
    Workload: [
        WorkloadFds,
        Rlimits,
        /// The seccomp filter, loaded without no_new_privs (the plan's
        /// `workload.no_new_privs` is false): while the workload still holds
        /// CAP_SYS_ADMIN in its user namespace, which the kernel then
        /// requires, before its credentials and capabilities are set. The
        /// filter applies to those steps (compile checked it lets them
        /// through). With no_new_privs the filter is loaded at `seccomp`.
        SeccompBeforeCredentials,
        Credentials,
        Capabilities,
        NoNewPrivs,
        /// Platform ptrace: the workload asks to be traced by the supervisor
        /// (`PTRACE_TRACEME`), before its filter is loaded (which may refuse
        /// ptrace) and before its exec (which stops it for the supervisor).
        Trace,
        Seccomp,
        Exec,
    ]
    // after the workload is started
    Supervisor: [SupervisorCredentials, Wait]
    // after the supervisor exits (or on any failure)
    Launcher: [Teardown]
}

/// The process a step runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Actor {
    /// `sandboxctl apply` itself, outside the sandbox.
    Launcher,
    /// pid 1 inside the sandbox.
    Supervisor,
    /// The workload, between fork and exec.
    Workload,
}

impl Step {
    /// The step's name as the plan writes it (`cgroup_limits`).
    pub fn name(self) -> String {
        snake_name(&self)
    }
}

impl Actor {
    /// The actor's name as the plan writes it (`supervisor`).
    pub fn name(self) -> String {
        snake_name(&self)
    }
}

/// A unit enum variant's serde name.
fn snake_name(v: &(impl Serialize + std::fmt::Debug)) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{v:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_all_is_in_enum_order() {
        assert!(
            Step::ALL.windows(2).all(|w| w[0] < w[1]),
            "Step::ALL must follow the enum's order"
        );
        assert_eq!(Step::ALL[0], Step::Preflight);
        assert_eq!(Step::ALL[Step::ALL.len() - 1], Step::Teardown);
    }
}
