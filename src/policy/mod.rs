//! The policy model: parse TOML, follow `extends`, merge the chain into one
//! resolved [`Policy`] whose every setting knows its file and line, validate.
//!
//! Reading the policy files is the only I/O here. Built-in policies (the files
//! in `policies/`) are compiled into the binary so the tool works on its own.

pub mod error;
pub mod raw;
mod resolve;
pub mod select;

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};

pub use error::{PolicyError, PolicyErrorKind};
pub use raw::{
    AllowedDevice, DeviceType, IdRange, NetworkName, NsChoice, OnExcess, PassFd, PlatformName, RawPolicy,
    RootChangeName, SeccompNoNewPrivs, SeccompSource, UserMode,
};
pub use resolve::{load, load_resolved};

use crate::plan::{ArgCond, SeccompAction};
use crate::vocab::{Bytes, Cap, Origin, RlimitKind};

/// The policies shipped in `policies/`, by name.
pub const BUILTIN: &[(&str, &str)] = &[
    ("default", include_str!("../../policies/default.toml")),
    ("untrusted", include_str!("../../policies/untrusted.toml")),
    ("network-host", include_str!("../../policies/network-host.toml")),
    ("kvm", include_str!("../../policies/kvm.toml")),
    ("vmm", include_str!("../../policies/vmm.toml")),
    ("container", include_str!("../../policies/container.toml")),
];

/// The text of a built-in policy.
pub fn builtin(name: &str) -> Option<&'static str> {
    BUILTIN.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// One policy file's text, kept for diagnostics and provenance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The name shown to people: the path as given, or `builtin:NAME`.
    pub name: String,
    /// Where `extends` paths in it are resolved from (None for built-ins).
    pub dir: Option<PathBuf>,
    /// The text.
    pub text: String,
}

impl Source {
    /// 1-based line of a byte offset.
    pub fn line_of(&self, offset: usize) -> u32 {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end].iter().filter(|b| **b == b'\n').count() as u32 + 1
    }
}

/// A place in a policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loc {
    /// Index into [`Policy::sources`].
    pub src: usize,
    /// Byte range of the value.
    pub span: Range<usize>,
}

/// Where a setting came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum At {
    /// A policy file.
    File(Loc),
    /// sandboxctl's built-in default.
    Default,
}

/// A resolved setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting<T> {
    /// The value.
    pub value: T,
    /// Where it was set.
    pub at: At,
}

impl<T> Setting<T> {
    /// A built-in default.
    pub fn default_value(value: T) -> Self {
        Setting { value, at: At::Default }
    }
}

/// A resolved policy: the `extends` chain merged, every value located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Source files, base first.
    pub sources: Vec<Source>,
    /// The most derived `description`.
    pub description: Option<Setting<String>>,
    /// Platform.
    pub platform: Setting<PlatformName>,
    /// Network mode.
    pub network: Setting<NetworkName>,
    /// May a spec's netns path be joined.
    pub network_allow_join: Setting<bool>,
    /// Excess handling for network requests.
    pub network_on_excess: Setting<OnExcess>,
    /// Asserted namespace outcomes (user, pid, net, ipc, uts, mount) and the
    /// choices for cgroup and time, by OCI kind name.
    pub namespaces: BTreeMap<&'static str, Setting<NsChoice>>,
    /// The namespace kinds a spec may join by path.
    pub ns_allow_join: Setting<Vec<crate::plan::NsKind>>,
    /// User mode.
    pub user_mode: Setting<UserMode>,
    /// Host id ranges a spec's maps may use.
    pub allowed_host_ids: Setting<Vec<IdRange>>,
    /// May a spec's maps use the host's subordinate ranges too.
    pub allow_subordinate_ids: Setting<bool>,
    /// Excess handling for a spec that asks for the host's pid, ipc, uts or mount namespace.
    pub ns_on_excess: Setting<OnExcess>,
    /// Root for specs that name none.
    pub root_path: Option<Setting<PathBuf>>,
    /// Root change method.
    pub root_change: Setting<RootChangeName>,
    /// Force a read-only root.
    pub root_force_readonly: Setting<bool>,
    /// Capability ceiling, each capability located.
    pub cap_allow: Setting<BTreeMap<Cap, Loc>>,
    /// Excess handling for capabilities.
    pub cap_on_excess: Setting<OnExcess>,
    /// Memory ceiling.
    pub memory: Option<Setting<Bytes>>,
    /// Memory+swap ceiling.
    pub memory_swap: Option<Setting<Bytes>>,
    /// Pids ceiling.
    pub pids: Option<Setting<i64>>,
    /// CPU quota ceiling.
    pub cpu_quota: Option<Setting<i64>>,
    /// CPU period.
    pub cpu_period: Option<Setting<u64>>,
    /// CPU shares ceiling.
    pub cpu_shares: Option<Setting<u64>>,
    /// Excess handling for limits (cgroup and rlimits).
    pub limits_on_excess: Setting<OnExcess>,
    /// Allowed bind sources.
    pub mount_allowed: Setting<Vec<Setting<PathBuf>>>,
    /// Writable binds allowed.
    pub mount_writable: Setting<bool>,
    /// Excess handling for mounts.
    pub mount_on_excess: Setting<OnExcess>,
    /// The device ceiling (default: the OCI default set).
    pub device_allowed: Setting<Vec<Setting<AllowedDevice>>>,
    /// Excess handling for devices.
    pub device_on_excess: Setting<OnExcess>,
    /// Seccomp source.
    pub seccomp_source: Setting<SeccompSource>,
    /// Policy filter default action.
    pub seccomp_default: Setting<SeccompAction>,
    /// Policy filter allow list.
    pub seccomp_allow: Setting<Vec<Setting<String>>>,
    /// Always-denied syscalls.
    pub seccomp_deny: Setting<Vec<Setting<String>>>,
    /// Policy filter rules with actions and argument conditions, each located.
    pub seccomp_rules: Setting<Vec<Setting<PolicySeccompRule>>>,
    /// Whether a filter forces no_new_privs.
    pub seccomp_no_new_privs: Setting<SeccompNoNewPrivs>,
    /// rlimits imposed (ceilings and defaults).
    pub rlimits: BTreeMap<RlimitKind, Setting<(u64, u64)>>,
    /// Log file.
    pub log: Option<Setting<PathBuf>>,
    /// Debug log file.
    pub debug_log: Option<Setting<PathBuf>>,
    /// User log file.
    pub user_log: Option<Setting<PathBuf>>,
    /// Fds passed on to the workload.
    pub pass_fds: Setting<BTreeSet<PassFd>>,
    /// Stdio is /dev/null (`workload.daemonize`).
    pub daemonize: Setting<bool>,
    /// KVM extensions the kvm platform requires.
    pub kvm_extensions: Setting<BTreeSet<crate::vocab::KvmExtension>>,
    /// Make /dev/net/tun on the kvm platform.
    pub kvm_tun: Setting<bool>,
    /// The policies a spec's annotation may pick instead ([`select::ANNOTATION`]).
    pub selectable: Setting<Vec<Setting<String>>>,
    /// May a spec's OCI hooks run.
    pub hooks_allow: Setting<bool>,
}

/// The KVM extensions the kvm platform requires when no `[kvm] extensions`
/// is set: what creating a VM with an in-kernel irqchip and guest memory needs.
pub const DEFAULT_KVM_EXTENSIONS: [crate::vocab::KvmExtension; 3] = [
    crate::vocab::KvmExtension::Irqchip,
    crate::vocab::KvmExtension::UserMemory,
    crate::vocab::KvmExtension::SetTssAddr,
];

/// A resolved `[[seccomp.rules]]` entry, checked: known syscalls, a valid
/// action, argument indexes 0–5, a mask exactly with `masked_eq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySeccompRule {
    /// Action when matched.
    pub action: SeccompAction,
    /// x86_64 syscall names.
    pub syscalls: Vec<String>,
    /// Conditions, all of which must hold (as the plan writes them: for
    /// `masked_eq`, `value` is the mask and `value_two` the expected value).
    pub args: Vec<ArgCond>,
}

impl Policy {
    /// The provenance of a setting, for the plan.
    pub fn origin(&self, at: &At) -> Origin {
        match at {
            At::Default => Origin::Default,
            At::File(loc) => self.loc_origin(loc),
        }
    }

    /// The provenance of a location.
    pub fn loc_origin(&self, loc: &Loc) -> Origin {
        let src = &self.sources[loc.src];
        Origin::Policy {
            file: src.name.clone(),
            line: src.line_of(loc.span.start),
        }
    }

    /// The names of the chain, base first.
    pub fn chain(&self) -> Vec<String> {
        self.sources.iter().map(|s| s.name.clone()).collect()
    }
}

/// How a policy is named on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyRef {
    /// A built-in policy by name.
    Builtin(String),
    /// A file.
    File(PathBuf),
    /// Policy text held in memory (tests, embedding); `extends` may name
    /// built-ins and absolute paths only.
    Text {
        /// Name shown in diagnostics and provenance.
        name: String,
        /// The TOML.
        text: String,
    },
}

impl PolicyRef {
    /// `default`, `untrusted`… are built-ins; anything with a `/` or ending in
    /// `.toml` is a path.
    pub fn parse(s: &str) -> PolicyRef {
        if !s.contains('/') && !s.ends_with(".toml") {
            PolicyRef::Builtin(s.to_string())
        } else {
            PolicyRef::File(PathBuf::from(s))
        }
    }

    /// Resolves an `extends` value written in a file in `dir`.
    pub fn resolve_extends(s: &str, dir: Option<&Path>) -> PolicyRef {
        match PolicyRef::parse(s) {
            PolicyRef::File(p) if p.is_relative() => match dir {
                Some(d) => PolicyRef::File(normalize(&d.join(p))),
                None => PolicyRef::File(p),
            },
            other => other,
        }
    }
}

/// Lexically normalises `a/b/../c` to `a/c` (no filesystem access).
pub fn normalize(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out: Vec<Component> = Vec::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => match out.last() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir) => {}
                _ => out.push(c),
            },
            _ => out.push(c),
        }
    }
    if out.is_empty() {
        return PathBuf::from(".");
    }
    out.iter().collect()
}
