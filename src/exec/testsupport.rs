//! Test support: host facts for this kind of machine, beside the hand-built
//! plan applied on it ([`crate::plan::sample::Sample::applied`]). Not part of
//! the public API.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use crate::host::{CgroupFacts, CgroupLayout, HostFacts, KvmFacts, RlimitPair};
use crate::vocab::{Bytes, Cap, Gid, RlimitKind, Uid};

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
