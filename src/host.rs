//! Host facts: everything `compile` may know about the machine, as a plain value.
//!
//! `sandboxctl host` detects them (in `exec::detect`, which makes the syscalls)
//! and prints them as TOML; `--host FILE` loads them back. The compiler reads
//! only this value, never the machine, so a plan compiled against a host file is
//! byte-identical everywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::vocab::{Bytes, Cap, Gid, RlimitKind, Uid};

/// What the launcher knows about the machine it will run on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HostFacts {
    /// Kernel release (`uname -r`).
    pub kernel: String,
    /// Architecture (`x86_64`).
    pub arch: String,
    /// Real uid of the caller.
    pub uid: Uid,
    /// Real gid of the caller.
    pub gid: Gid,
    /// Capabilities in the caller's effective set.
    pub capabilities: BTreeSet<Cap>,
    /// Capabilities in the caller's bounding set.
    pub bounding: BTreeSet<Cap>,
    /// Online CPUs.
    pub cpus: u32,
    /// Total memory.
    pub memory: Bytes,
    /// Whether unprivileged or privileged user namespaces can be created
    /// (`/proc/sys/user/max_user_namespaces` > 0).
    pub user_namespaces: bool,
    /// The cgroup hierarchies.
    pub cgroup: CgroupFacts,
    /// `/dev/kvm`, when present and answering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kvm: Option<KvmFacts>,
    /// The caller's resource limits (soft, hard); `u64::MAX` is unlimited.
    #[serde(default)]
    pub rlimits: BTreeMap<RlimitKind, RlimitPair>,
    /// The subordinate id ranges of /etc/subuid and /etc/subgid (every
    /// user's): what `user.allow_subordinate_ids` lets a spec's maps use.
    #[serde(default, skip_serializing_if = "SubordinateIds::is_empty")]
    pub subordinate: SubordinateIds,
}

/// The host's subordinate id ranges (`NAME:START:COUNT` lines).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubordinateIds {
    /// From /etc/subuid.
    #[serde(default)]
    pub uid: Vec<crate::policy::IdRange>,
    /// From /etc/subgid.
    #[serde(default)]
    pub gid: Vec<crate::policy::IdRange>,
}

impl SubordinateIds {
    /// No ranges at all.
    pub fn is_empty(&self) -> bool {
        self.uid.is_empty() && self.gid.is_empty()
    }

    /// Parses the text of /etc/subuid or /etc/subgid: `NAME:START:COUNT`
    /// lines; comments, blank and malformed lines are skipped.
    pub fn parse(text: &str) -> Vec<crate::policy::IdRange> {
        text.lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .filter_map(|l| {
                let mut f = l.trim().split(':');
                let (_name, start, count) = (f.next()?, f.next()?, f.next()?);
                Some(crate::policy::IdRange {
                    start: start.parse().ok()?,
                    count: count.parse().ok()?,
                })
            })
            .collect()
    }
}

/// A soft/hard limit pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RlimitPair {
    /// Soft limit (`"unlimited"` for RLIM_INFINITY).
    #[serde(with = "crate::vocab::u64_wide")]
    #[schemars(with = "serde_json::Value")]
    pub soft: u64,
    /// Hard limit (`"unlimited"` for RLIM_INFINITY).
    #[serde(with = "crate::vocab::u64_wide")]
    #[schemars(with = "serde_json::Value")]
    pub hard: u64,
}

/// How cgroups are mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CgroupLayout {
    /// Only v1 controller hierarchies.
    V1,
    /// Only the unified v2 hierarchy.
    V2,
    /// v1 controllers plus a v2 mount (systemd's hybrid layout).
    Hybrid,
    /// No cgroup filesystem mounted.
    None,
}

/// The cgroup hierarchies of the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CgroupFacts {
    /// The layout.
    pub layout: CgroupLayout,
    /// v1 controllers and the mount point of each.
    #[serde(default)]
    pub v1: BTreeMap<String, PathBuf>,
    /// The v2 mount, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v2: Option<CgroupV2Facts>,
}

/// The unified hierarchy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CgroupV2Facts {
    /// Where it is mounted.
    pub mount: PathBuf,
    /// Controllers it offers (`cgroup.controllers` of the root).
    pub controllers: BTreeSet<String>,
}

/// `/dev/kvm` as found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KvmFacts {
    /// `KVM_GET_API_VERSION`.
    pub api_version: i32,
    /// Extensions checked present (names as in kvm-ioctls' `Cap`).
    pub extensions: BTreeSet<String>,
}

impl HostFacts {
    /// Whether the caller holds every capability in `caps`.
    pub fn holds(&self, caps: &[caps::Capability]) -> bool {
        caps.iter().all(|c| self.capabilities.contains(&Cap(*c)))
    }

    /// The mount point of the hierarchy holding `controller`: a v1 hierarchy if
    /// there is one, else v2 if it offers it.
    pub fn cgroup_hierarchy(&self, controller: &str) -> Option<CgroupHierarchy> {
        if let Some(p) = self.cgroup.v1.get(controller) {
            return Some(CgroupHierarchy::V1(p.clone()));
        }
        match &self.cgroup.v2 {
            Some(v2) if v2.controllers.contains(controller) => Some(CgroupHierarchy::V2(v2.mount.clone())),
            _ => None,
        }
    }
}

/// One hierarchy a controller lives in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupHierarchy {
    /// A v1 hierarchy mounted at this path.
    V1(PathBuf),
    /// The v2 hierarchy mounted at this path.
    V2(PathBuf),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hybrid_prefers_v1_controller() {
        let h: HostFacts = toml::from_str(include_str!("../tests/golden/hosts/hybrid-root.toml")).unwrap();
        assert_eq!(h.cgroup.layout, CgroupLayout::Hybrid);
        assert_eq!(
            h.cgroup_hierarchy("memory"),
            Some(CgroupHierarchy::V1("/sys/fs/cgroup/memory".into()))
        );
        // On this host hugetlb has no v1 hierarchy: only the cgroup2 mount at
        // /sys/fs/cgroup/unified offers it, so the lookup falls through to v2.
        assert_eq!(
            h.cgroup_hierarchy("hugetlb"),
            Some(CgroupHierarchy::V2("/sys/fs/cgroup/unified".into()))
        );
        assert_eq!(h.cgroup_hierarchy("nonexistent"), None);
    }
}
