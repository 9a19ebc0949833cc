//! The OCI runtime features document (`sandboxctl features`): what this
//! build of sandboxctl recognises, built from the same tables the compiler
//! uses (namespace kinds, capabilities, mount flags, seccomp actions and
//! operators), so it cannot claim what the compiler refuses. Absent fields
//! mean "unknown", as the runtime spec defines; output is deterministic.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::plan::{MountFlag, NsKind};
use crate::vocab::Cap;

/// The oldest runtime spec version sandboxctl reads.
pub const OCI_VERSION_MIN: &str = "1.0.0";

/// The features document (runtime-spec `features.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Features {
    /// Oldest spec version recognised.
    pub oci_version_min: String,
    /// Newest spec version recognised.
    pub oci_version_max: String,
    /// The hook phases this build runs, when the policy allows hooks
    /// (`[hooks] allow`; refused otherwise).
    pub hooks: Vec<String>,
    /// Mount options recognised (not filesystem-specific data).
    pub mount_options: Vec<String>,
    /// Linux specifics.
    pub linux: LinuxFeatures,
    /// Implementation-specific facts.
    pub annotations: BTreeMap<String, String>,
    /// Annotations in config.json that change behaviour: none.
    pub potentially_unsafe_config_annotations: Vec<String>,
}

/// The `linux` object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LinuxFeatures {
    /// Namespace types, OCI names.
    pub namespaces: Vec<String>,
    /// Capabilities, `CAP_` names.
    pub capabilities: Vec<String>,
    /// cgroup drivers.
    pub cgroup: CgroupFeatures,
    /// seccomp.
    pub seccomp: SeccompFeatures,
    /// AppArmor: not supported.
    pub apparmor: Enabled,
    /// SELinux: not supported.
    pub selinux: Enabled,
    /// Intel RDT: not supported.
    pub intel_rdt: Enabled,
    /// Mount extensions.
    pub mount_extensions: MountExtensions,
}

/// `{"enabled": bool}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Enabled {
    /// Whether support is compiled in.
    pub enabled: bool,
}

/// The `cgroup` object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CgroupFeatures {
    /// cgroup v1 (and hybrid hosts).
    pub v1: bool,
    /// cgroup v2.
    pub v2: bool,
    /// systemd's cgroup driver (`slice:prefix:name` paths): no.
    pub systemd: bool,
    /// systemd's user driver: no.
    pub systemd_user: bool,
    /// The rdma controller: no.
    pub rdma: bool,
}

/// The `seccomp` object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeccompFeatures {
    /// seccomp filters are supported.
    pub enabled: bool,
    /// Actions, `SCMP_ACT_` names.
    pub actions: Vec<String>,
    /// Argument comparisons, `SCMP_CMP_` names.
    pub operators: Vec<String>,
    /// Architectures filters are built for.
    pub archs: Vec<String>,
    /// Filter flags recognised: none.
    pub known_flags: Vec<String>,
    /// Filter flags supported: none.
    pub supported_flags: Vec<String>,
}

/// The `mountExtensions` object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MountExtensions {
    /// Id-mapped mounts: no.
    pub idmap: Enabled,
}

/// The OCI name of a namespace kind (`network`, not `net`).
fn oci_namespace(k: NsKind) -> &'static str {
    match k {
        NsKind::User => "user",
        NsKind::Pid => "pid",
        NsKind::Net => "network",
        NsKind::Ipc => "ipc",
        NsKind::Uts => "uts",
        NsKind::Cgroup => "cgroup",
        NsKind::Time => "time",
        NsKind::Mount => "mount",
    }
}

/// Seccomp actions the compiler maps (src/plan/compile/seccomp.rs).
const SECCOMP_ACTIONS: [&str; 8] = [
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_LOG",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_TRAP",
];

/// Argument comparisons the compiler maps.
const SECCOMP_OPERATORS: [&str; 7] = [
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_LE",
    "SCMP_CMP_LT",
    "SCMP_CMP_MASKED_EQ",
    "SCMP_CMP_NE",
];

/// This build's features.
pub fn features() -> Features {
    let mut mount_options: Vec<String> = MountFlag::NAMES.iter().map(|(n, _)| n.to_string()).collect();
    mount_options.extend(["defaults".to_string(), "rw".to_string()]);
    mount_options.sort();
    Features {
        oci_version_min: OCI_VERSION_MIN.into(),
        oci_version_max: oci_spec::runtime::VERSION.into(),
        hooks: crate::plan::HookPhase::ALL.into_iter().map(|p| p.name()).collect(),
        mount_options,
        linux: LinuxFeatures {
            namespaces: NsKind::ORDER.iter().map(|k| oci_namespace(*k).to_string()).collect(),
            capabilities: Cap::all().iter().map(|c| c.to_string()).collect(),
            cgroup: CgroupFeatures {
                v1: true,
                v2: true,
                systemd: false,
                systemd_user: false,
                rdma: false,
            },
            seccomp: SeccompFeatures {
                enabled: true,
                actions: SECCOMP_ACTIONS.iter().map(|s| s.to_string()).collect(),
                operators: SECCOMP_OPERATORS.iter().map(|s| s.to_string()).collect(),
                archs: vec!["SCMP_ARCH_X86_64".into()],
                known_flags: vec![],
                supported_flags: vec![],
            },
            apparmor: Enabled { enabled: false },
            selinux: Enabled { enabled: false },
            intel_rdt: Enabled { enabled: false },
            mount_extensions: MountExtensions {
                idmap: Enabled { enabled: false },
            },
        },
        annotations: BTreeMap::from([
            ("io.sandboxctl.version".into(), env!("CARGO_PKG_VERSION").into()),
            (
                "io.sandboxctl.control.protocol".into(),
                super::proto::PROTOCOL_VERSION.to_string(),
            ),
        ]),
        potentially_unsafe_config_annotations: vec![],
    }
}

/// The document as pretty JSON with a final newline.
pub fn features_json() -> String {
    let mut s = serde_json::to_string_pretty(&features()).expect("features always serialise");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{Arch, LinuxNamespaceType, LinuxSeccompAction, LinuxSeccompOperator};

    fn parse<T: serde::de::DeserializeOwned>(s: &str) -> T {
        serde_json::from_value(serde_json::Value::String(s.into())).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn names_are_oci_names() {
        let f = features();
        for n in &f.linux.namespaces {
            let _: LinuxNamespaceType = parse(n);
        }
        assert_eq!(f.linux.namespaces.len(), 8);
        for a in &f.linux.seccomp.actions {
            let _: LinuxSeccompAction = parse(a);
        }
        for o in &f.linux.seccomp.operators {
            let _: LinuxSeccompOperator = parse(o);
        }
        for a in &f.linux.seccomp.archs {
            let _: Arch = parse(a);
        }
        assert!(f.linux.capabilities.iter().all(|c| c.starts_with("CAP_")));
        assert!(f.linux.capabilities.contains(&"CAP_SYS_ADMIN".to_string()));
    }

    #[test]
    fn every_mount_option_listed_is_one_the_compiler_takes() {
        for o in features().mount_options {
            assert!(
                MountFlag::from_option(&o).is_some() || o == "rw" || o == "defaults",
                "{o}"
            );
        }
    }

    #[test]
    fn it_parses_as_oci_specs_features_and_is_deterministic() {
        let text = features_json();
        assert_eq!(text, features_json());
        let f: oci_spec::runtime::Features = serde_json::from_str(&text).unwrap();
        assert_eq!(f.oci_version_max(), oci_spec::runtime::VERSION);
        assert_eq!(
            f.hooks().as_deref(),
            Some(
                &[
                    "prestart",
                    "createRuntime",
                    "createContainer",
                    "startContainer",
                    "poststart",
                    "poststop"
                ]
                .map(String::from)[..]
            )
        );
        let cg = f.linux().as_ref().unwrap().cgroup().as_ref().unwrap();
        assert_eq!(
            (*cg.v1(), *cg.v2(), *cg.systemd()),
            (Some(true), Some(true), Some(false))
        );
    }
}
