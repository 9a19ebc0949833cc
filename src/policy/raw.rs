//! The policy file as written: every key optional, every value spanned so a
//! diagnostic or a plan's provenance can point at its line. This is also the
//! type the JSON Schema (schema/policy.schema.json) is generated from.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::vocab::{Bytes, Cap, RlimitKind};

/// A policy file.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "sandboxctl policy",
    description = "An operator's sandbox policy: the ceiling a workload's OCI spec is cut down to. See docs/policy.md."
)]
pub struct RawPolicy {
    /// The policy this one builds on: a built-in name (`default`, `untrusted`,
    /// `network-host`, `kvm`, `vmm`) or a path to a `.toml` file, relative to this file.
    #[schemars(with = "Option<String>")]
    pub extends: Option<Spanned<String>>,
    /// A one-line description shown in `sandboxctl validate`.
    #[schemars(with = "Option<String>")]
    pub description: Option<Spanned<String>>,
    /// The platform the workload runs on.
    #[schemars(with = "Option<PlatformName>")]
    pub platform: Option<Spanned<PlatformName>>,
    /// Networking.
    #[serde(default)]
    pub network: RawNetwork,
    /// Namespaces the rules leave to the operator.
    #[serde(default)]
    pub namespaces: RawNamespaces,
    /// Who the workload runs as.
    #[serde(default)]
    pub user: RawUser,
    /// The root filesystem.
    #[serde(default)]
    pub root: RawRoot,
    /// The capability ceiling.
    #[serde(default)]
    pub capabilities: RawCapabilities,
    /// Resource limits: ceilings, and defaults imposed when the spec sets none.
    #[serde(default)]
    pub limits: RawLimits,
    /// Which host paths may be mounted.
    #[serde(default)]
    pub mounts: RawMounts,
    /// Which device nodes a spec may ask for.
    #[serde(default)]
    pub devices: RawDevices,
    /// The seccomp filter.
    #[serde(default)]
    pub seccomp: RawSeccomp,
    /// Resource limits (setrlimit) imposed on the workload, by name.
    #[serde(default)]
    #[schemars(with = "std::collections::BTreeMap<RlimitKind, RawRlimit>")]
    pub rlimits: std::collections::BTreeMap<String, Spanned<RawRlimit>>,
    /// Log files donated to the supervisor.
    #[serde(default)]
    pub logs: RawLogs,
    /// What the workload inherits beyond stdio.
    #[serde(default)]
    pub workload: RawWorkload,
    /// The kvm platform: what `/dev/kvm` must offer, `/dev/net/tun`.
    #[serde(default)]
    pub kvm: RawKvm,
    /// Which other policies a spec may pick by annotation.
    #[serde(default)]
    pub selection: RawSelection,
    /// Whether a spec's OCI hooks may run.
    #[serde(default)]
    pub hooks: RawHooks,
}

/// `[kvm]`: what the kvm platform checks and adds (only with `platform = "kvm"`).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawKvm {
    /// The KVM extensions `/dev/kvm` must report (`KVM_CHECK_EXTENSION`),
    /// by kvm-ioctls `Cap` name; checked by preflight and again on the
    /// opened device. Default: `Irqchip`, `UserMemory`, `SetTssAddr`.
    #[schemars(with = "Option<Vec<crate::vocab::KvmExtension>>")]
    pub extensions: Option<Spanned<Vec<crate::vocab::KvmExtension>>>,
    /// Make `/dev/net/tun` (char 10:200) in the sandbox's `/dev`, as the
    /// host's node bound (a virtual machine monitor's network devices).
    #[schemars(with = "Option<bool>")]
    pub tun: Option<Spanned<bool>>,
}

/// `[hooks]`: OCI hooks (prestart, createRuntime, createContainer,
/// startContainer, poststart, poststop) run on the host, as the engine's
/// user, outside the sandbox.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHooks {
    /// `false` (default): a spec with any hook is refused, naming the hook and
    /// this line. `true`: the spec's prestart, createRuntime, poststart and
    /// poststop hooks run (createContainer and startContainer are refused:
    /// this build runs hooks on the host only).
    #[schemars(with = "Option<bool>")]
    pub allow: Option<Spanned<bool>>,
}

/// `[selection]`: the policies a spec's `org.sandboxctl.policy` annotation may
/// pick instead of this one (Kubernetes sets spec annotations from the pod's).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSelection {
    /// Built-in names or absolute paths of `.toml` files; the annotation's value
    /// must be one of them, exactly. Unset or empty: the annotation is refused.
    #[schemars(with = "Option<Vec<String>>")]
    pub selectable: Option<Spanned<Vec<Spanned<String>>>>,
}

/// Platform names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PlatformName {
    /// Host kernel with namespaces, caps, seccomp, cgroups.
    Native,
    /// Under a ptrace supervisor that observes and logs the workload's system calls.
    Ptrace,
    /// The workload drives /dev/kvm, which the launcher opens and donates.
    Kvm,
}

/// What to do with a request above the ceiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnExcess {
    /// Refuse to compile; the diagnostic points at the spec field and the policy line.
    Deny,
    /// Cut the request down to the ceiling, record the clamp in the plan, warn.
    Clamp,
}

/// `[network]`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawNetwork {
    /// `none` (empty netns, lo down), `loopback` (lo up) or `host`.
    #[schemars(with = "Option<NetworkName>")]
    pub mode: Option<Spanned<NetworkName>>,
    /// Whether a network namespace path named by the spec may be joined
    /// (only when `mode` is not `none`).
    #[schemars(with = "Option<bool>")]
    pub allow_join: Option<Spanned<bool>>,
    /// What to do when the spec asks for the host network (no network namespace
    /// entry) or a netns path the policy does not allow.
    #[schemars(with = "Option<OnExcess>")]
    pub on_excess: Option<Spanned<OnExcess>>,
}

/// Network modes a policy can choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NetworkName {
    /// New network namespace, nothing configured.
    None,
    /// New network namespace, loopback up.
    Loopback,
    /// The host's network namespace.
    Host,
}

/// `[namespaces]`: `cgroup` and `time` are the operator's choice; the other
/// kinds follow the seed's rules, and setting one here asserts the rule's
/// outcome (a disagreement is a conflict error).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawNamespaces {
    /// Assert the user namespace outcome.
    #[schemars(with = "Option<NsChoice>")]
    pub user: Option<Spanned<NsChoice>>,
    /// Always new (every platform); `host` is a conflict.
    #[schemars(with = "Option<NsChoice>")]
    pub pid: Option<Spanned<NsChoice>>,
    /// Assert the network namespace outcome (`host` only with network host).
    #[schemars(with = "Option<NsChoice>")]
    pub net: Option<Spanned<NsChoice>>,
    /// Always new; `host` is a conflict.
    #[schemars(with = "Option<NsChoice>")]
    pub ipc: Option<Spanned<NsChoice>>,
    /// Always new; `host` is a conflict.
    #[schemars(with = "Option<NsChoice>")]
    pub uts: Option<Spanned<NsChoice>>,
    /// Always new; `host` is a conflict.
    #[schemars(with = "Option<NsChoice>")]
    pub mount: Option<Spanned<NsChoice>>,
    /// Cgroup namespace: `new` or `host`.
    #[schemars(with = "Option<NsChoice>")]
    pub cgroup: Option<Spanned<NsChoice>>,
    /// Time namespace: `new` or `host`.
    #[schemars(with = "Option<NsChoice>")]
    pub time: Option<Spanned<NsChoice>>,
    /// The namespace kinds a spec may join by path (`linux.namespaces[].path`):
    /// any of `user`, `net`, `cgroup`, `time`, `pid`, `ipc`, `uts`, `mount`.
    /// A `user`, `net`, `cgroup` or `time` path of a kind not listed is a
    /// compile error; a `pid`, `ipc`, `uts` or `mount` path of a kind not
    /// listed is not joined (the sandbox makes its own, with a warning).
    /// Unset: `["net", "user"]` (a netns is joined only when
    /// `network.allow_join` allows it too; a user namespace only under the
    /// host network or `user.mode = "spec"`).
    #[schemars(with = "Option<Vec<crate::plan::NsKind>>")]
    pub allow_join: Option<Spanned<Vec<crate::plan::NsKind>>>,
    /// A spec without a `pid`, `ipc`, `uts` or `mount` entry asks for the
    /// host's namespace (`podman --pid=host`...). `clamp` (default): the
    /// sandbox makes its own anyway. `deny`: refuse, naming this line.
    #[schemars(with = "Option<OnExcess>")]
    pub on_excess: Option<Spanned<OnExcess>>,
}

/// New or host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NsChoice {
    /// A new namespace.
    New,
    /// The host's.
    Host,
}

/// `[user]`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawUser {
    /// `nobody`: new user namespace mapping 65534→65534, run as nobody (the
    /// seed's rule; a spec's own maps are kept when `allowed_host_ids` covers
    /// them). `current`: test-only, run as the caller with no root change.
    #[schemars(with = "Option<UserMode>")]
    pub mode: Option<Spanned<UserMode>>,
    /// Host id ranges a spec's uid/gid maps may use.
    #[serde(default)]
    #[schemars(with = "Option<Vec<IdRange>>")]
    pub allowed_host_ids: Option<Spanned<Vec<IdRange>>>,
    /// `true`: a spec's maps may also use the host's subordinate ranges
    /// (/etc/subuid for uid maps, /etc/subgid for gid maps), as `podman
    /// --userns=auto` and `--uidmap` do. Default false.
    #[schemars(with = "Option<bool>")]
    pub allow_subordinate_ids: Option<Spanned<bool>>,
}

/// User modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum UserMode {
    /// The seed's rule.
    Nobody,
    /// Test-only: the caller's uid, no root change. Printed loudly.
    Current,
    /// As runc: the spec's user (root unless it says otherwise); the spec's
    /// user namespace with its maps (checked against the allowed ranges), or
    /// none, the host's, when the spec lists none. For container engines.
    Spec,
}

/// A host id range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdRange {
    /// First host id.
    pub start: u32,
    /// Number of ids.
    pub count: u32,
}

/// `[root]`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRoot {
    /// Root used when the spec names none (the embedded default spec): an absolute host path.
    #[schemars(with = "Option<PathBuf>")]
    pub path: Option<Spanned<PathBuf>>,
    /// `pivot_root` or `chroot`.
    #[schemars(with = "Option<RootChangeName>")]
    pub change: Option<Spanned<RootChangeName>>,
    /// `true` forces a read-only root whatever the spec says.
    #[schemars(with = "Option<bool>")]
    pub force_readonly: Option<Spanned<bool>>,
}

/// Root change methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RootChangeName {
    /// pivot_root(2).
    PivotRoot,
    /// chroot(2).
    Chroot,
}

/// `[capabilities]`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCapabilities {
    /// The ceiling: capabilities a workload may hold in any set.
    #[schemars(with = "Option<Vec<Cap>>")]
    pub allow: Option<Spanned<Vec<Spanned<String>>>>,
    /// What to do with a requested capability outside `allow`.
    #[schemars(with = "Option<OnExcess>")]
    pub on_excess: Option<Spanned<OnExcess>>,
}

/// `[limits]`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// Memory ceiling (and default).
    #[schemars(with = "Option<Bytes>")]
    pub memory: Option<Spanned<Bytes>>,
    /// Memory+swap ceiling (and default).
    #[schemars(with = "Option<Bytes>")]
    pub memory_swap: Option<Spanned<Bytes>>,
    /// Task count ceiling (and default).
    #[schemars(with = "Option<i64>")]
    pub pids: Option<Spanned<i64>>,
    /// CPU quota ceiling in µs per `cpu_period` (and default).
    #[schemars(with = "Option<i64>")]
    pub cpu_quota: Option<Spanned<i64>>,
    /// CPU period in µs used with `cpu_quota` (default 100000).
    #[schemars(with = "Option<u64>")]
    pub cpu_period: Option<Spanned<u64>>,
    /// CPU shares ceiling.
    #[schemars(with = "Option<u64>")]
    pub cpu_shares: Option<Spanned<u64>>,
    /// What to do with a request above a ceiling.
    #[schemars(with = "Option<OnExcess>")]
    pub on_excess: Option<Spanned<OnExcess>>,
}

/// `[mounts]`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMounts {
    /// Host paths (absolute) under which bind-mount sources may lie.
    #[schemars(with = "Option<Vec<PathBuf>>")]
    pub allowed_host_paths: Option<Spanned<Vec<Spanned<PathBuf>>>>,
    /// Whether host binds may be writable (else they are an excess).
    #[schemars(with = "Option<bool>")]
    pub allow_writable_binds: Option<Spanned<bool>>,
    /// Deny: refuse. Clamp: drop a bind of a path outside the list, make a
    /// writable bind read-only.
    #[schemars(with = "Option<OnExcess>")]
    pub on_excess: Option<Spanned<OnExcess>>,
}

/// `[devices]`: the device ceiling.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawDevices {
    /// Device nodes a spec's `linux.devices` may ask for, by type and number;
    /// each names the host node that is bind-mounted for it in a new user
    /// namespace. Default: the OCI default set (null, zero, full, random,
    /// urandom, tty).
    #[schemars(with = "Option<Vec<AllowedDevice>>")]
    pub allowed: Option<Spanned<Vec<Spanned<AllowedDevice>>>>,
    /// Deny: refuse a device outside the list. Clamp: drop it (recorded).
    #[schemars(with = "Option<OnExcess>")]
    pub on_excess: Option<Spanned<OnExcess>>,
}

/// One device of the ceiling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AllowedDevice {
    /// `c` (character) or `b` (block); a spec's `u` is `c`.
    #[serde(rename = "type")]
    pub kind: DeviceType,
    /// Major number.
    pub major: u64,
    /// Minor number.
    pub minor: u64,
    /// The host's node for this device (absolute): the bind source in a new
    /// user namespace, checked at apply to be a node of this type and number.
    pub host_path: PathBuf,
}

/// Device node types in the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DeviceType {
    /// Character device.
    #[serde(rename = "c")]
    Char,
    /// Block device.
    #[serde(rename = "b")]
    Block,
}

impl AllowedDevice {
    /// The OCI default devices: what a policy allows when it sets no
    /// `devices.allowed`.
    pub fn oci_defaults() -> Vec<AllowedDevice> {
        [
            ("/dev/null", 1, 3),
            ("/dev/zero", 1, 5),
            ("/dev/full", 1, 7),
            ("/dev/random", 1, 8),
            ("/dev/urandom", 1, 9),
            ("/dev/tty", 5, 0),
        ]
        .into_iter()
        .map(|(p, major, minor)| AllowedDevice {
            kind: DeviceType::Char,
            major,
            minor,
            host_path: p.into(),
        })
        .collect()
    }
}

/// `[seccomp]`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSeccomp {
    /// `spec` (use the spec's filter; the policy's allow list when it has none),
    /// `policy` (always the policy's filter), or `none` (no filter).
    #[schemars(with = "Option<SeccompSource>")]
    pub source: Option<Spanned<SeccompSource>>,
    /// Default action of the policy's filter: `allow`, `errno:NAME` (e.g.
    /// `errno:EPERM`), `kill_process`, `kill_thread`, `trap`, `log`.
    #[schemars(with = "Option<String>")]
    pub default_action: Option<Spanned<String>>,
    /// Syscalls the policy's filter allows.
    #[schemars(with = "Option<Vec<String>>")]
    pub allow: Option<Spanned<Vec<Spanned<String>>>>,
    /// Syscalls always refused with EPERM, whichever filter is used.
    #[schemars(with = "Option<Vec<String>>")]
    pub deny: Option<Spanned<Vec<Spanned<String>>>>,
    /// Rules of the policy's filter with an action and argument conditions
    /// (`[[seccomp.rules]]`), after the `allow` list: a syscall gets the
    /// strictest action among the rules that match it, else `default_action`.
    #[schemars(with = "Option<Vec<RawSeccompRule>>")]
    pub rules: Option<Spanned<Vec<Spanned<RawSeccompRule>>>>,
    /// Whether a filter forces no_new_privs: `forced` (the default: with a
    /// filter, no_new_privs is set whatever the spec says, and the filter is
    /// loaded last, after the capability drop) or `spec` (the spec's
    /// `process.noNewPrivileges` decides; when it is false the filter is
    /// loaded while the workload still holds CAP_SYS_ADMIN in its user
    /// namespace, before its credentials and capabilities are set, as runc
    /// and crun do).
    #[schemars(with = "Option<SeccompNoNewPrivs>")]
    pub no_new_privs: Option<Spanned<SeccompNoNewPrivs>>,
}

/// One `[[seccomp.rules]]` entry: these syscalls, when every condition holds,
/// get this action.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSeccompRule {
    /// `allow`, `errno:NAME`, `kill_process`, `kill_thread`, `trap` or `log`
    /// (as `default_action`).
    #[schemars(with = "String")]
    pub action: Spanned<String>,
    /// x86_64 syscall names.
    #[schemars(with = "Vec<String>")]
    pub syscalls: Vec<Spanned<String>>,
    /// Conditions on the arguments, all of which must hold (none: always).
    #[serde(default)]
    pub args: Vec<RawArgCond>,
}

/// A condition on one syscall argument: `arg[index] OP value`, or for
/// `masked_eq`, `arg[index] & mask == value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawArgCond {
    /// Argument index, 0–5.
    pub index: u8,
    /// `eq`, `ne`, `lt`, `le`, `gt`, `ge` or `masked_eq` (unsigned 64-bit comparisons).
    pub op: crate::plan::CmpOp,
    /// The value compared with (after masking, for `masked_eq`).
    pub value: u64,
    /// The mask, for `masked_eq` only.
    #[serde(default)]
    pub mask: Option<u64>,
}

/// Where the filter comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SeccompSource {
    /// The spec's filter; the policy's own when the spec has none.
    Spec,
    /// The policy's filter, always.
    Policy,
    /// No filter (only the `deny` list, if any).
    None,
}

/// Whether a seccomp filter forces no_new_privs (`[seccomp] no_new_privs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SeccompNoNewPrivs {
    /// A filter sets no_new_privs, whatever the spec says.
    Forced,
    /// The spec's `process.noNewPrivileges` decides; the filter is loaded
    /// before the capability drop when it is false.
    Spec,
}

/// One rlimit in `[rlimits]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRlimit {
    /// Soft limit (a number, or `"unlimited"`).
    #[serde(with = "crate::vocab::u64_wide")]
    #[schemars(with = "serde_json::Value")]
    pub soft: u64,
    /// Hard limit (a number, or `"unlimited"`).
    #[serde(with = "crate::vocab::u64_wide")]
    #[schemars(with = "serde_json::Value")]
    pub hard: u64,
}

/// `[logs]`: files opened by the launcher and donated to the supervisor.
/// `{id}` is replaced by the sandbox id.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLogs {
    /// The log file (append, create, write-only, 0644).
    #[schemars(with = "Option<PathBuf>")]
    pub log: Option<Spanned<PathBuf>>,
    /// The debug log (append, create, write-only, 0644).
    #[schemars(with = "Option<PathBuf>")]
    pub debug_log: Option<Spanned<PathBuf>>,
    /// The user log (append, create, write-only, 0664).
    #[schemars(with = "Option<PathBuf>")]
    pub user_log: Option<Spanned<PathBuf>>,
}

/// `[workload]`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawWorkload {
    /// Donated fds the workload also receives: `device` (the platform device,
    /// e.g. /dev/kvm), `log`, `user_log`.
    #[schemars(with = "Option<Vec<PassFd>>")]
    pub pass_fds: Option<Spanned<Vec<Spanned<PassFd>>>>,
    /// Detach the sandbox from the caller's stdio: stdin, stdout and stderr
    /// are `/dev/null` (the supervisor is a session leader in any case), as
    /// Firecracker's jailer `--daemonize` does.
    #[schemars(with = "Option<bool>")]
    pub daemonize: Option<Spanned<bool>>,
}

/// Fds a policy may pass to the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PassFd {
    /// The platform device (/dev/kvm).
    Device,
    /// The log file.
    Log,
    /// The user log file.
    UserLog,
}
