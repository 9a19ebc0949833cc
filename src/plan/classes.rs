//! The privilege classification of plan fields: one table, [`CLASSES`].
//!
//! Every change the plan diff reports belongs to exactly one class, found by
//! matching its dotted field path against the table's patterns in table order
//! (first match wins). The table also says, in words, when a change of that
//! class widens or narrows the sandbox; a class that can do neither is always
//! neutral, and the diff enforces that. docs/ci-review.md carries a copy of
//! this table between marker comments, rendered by [`render_markdown_table`];
//! a test keeps the two equal.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The privilege class of a plan change (a row of [`CLASSES`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PrivilegeClass {
    /// Plan format, input names.
    Identity,
    /// The platform.
    Platform,
    /// The network mode.
    Network,
    /// One namespace kind.
    Namespace,
    /// The policy's ceiling on joining (namespace kinds a spec may join by path).
    NamespaceJoinCeiling,
    /// uid/gid maps and setgroups.
    IdMap,
    /// The root filesystem.
    Root,
    /// A mount, its source, type, flags or order.
    Mount,
    /// A masked path.
    MaskedPath,
    /// A read-only path.
    ReadonlyPath,
    /// A device node.
    Device,
    /// The policy's device ceiling (device numbers a spec may ask for).
    DeviceCeiling,
    /// A cgroup limit, or the cgroup as a whole.
    CgroupLimit,
    /// How the cgroup limits are written (paths, files, handed-in values).
    CgroupLayout,
    /// Stdio of the sandbox.
    Stdio,
    /// A capability of the workload or the supervisor.
    Capability,
    /// `no_new_privs`.
    NoNewPrivs,
    /// The supervisor's non-dumpable flag.
    NonDumpable,
    /// The seccomp filter.
    Seccomp,
    /// A resource limit.
    Rlimit,
    /// A donated file descriptor.
    Fd,
    /// A process's uid, gid or supplementary groups.
    Credentials,
    /// Arguments, environment, working directory, umask, hostname, session.
    Process,
    /// An OCI hook: a program the launcher runs on the host.
    Hook,
    /// A request cut down to the policy's ceiling.
    Clamp,
    /// The steps of apply.
    Step,
    /// A value that stayed the same but now comes from somewhere else.
    Provenance,
    /// A field this build does not know how to rank.
    Unclassified,
}

impl PrivilegeClass {
    /// The class's name as written in the table and in JSON (`cgroup-limit`).
    pub fn name(self) -> &'static str {
        rule(self).name
    }

    /// The class of a changed value at `field` (a dotted path such as
    /// `workload.capabilities.bounding`): the first row of [`CLASSES`] with a
    /// pattern that matches. [`PrivilegeClass::Provenance`] is never returned:
    /// the diff assigns it when only an origin changed.
    pub fn for_field(field: &str) -> PrivilegeClass {
        CLASSES
            .iter()
            .filter(|r| r.class != PrivilegeClass::Provenance)
            .find(|r| r.fields.iter().any(|p| glob_match(p, field)))
            .map(|r| r.class)
            .unwrap_or(PrivilegeClass::Unclassified)
    }

    /// Whether changes of this class are neutral whatever they do (the table
    /// names no widening and no narrowing condition).
    pub fn always_neutral(self) -> bool {
        let r = rule(self);
        r.widens.is_none() && r.narrows.is_none()
    }
}

impl fmt::Display for PrivilegeClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One row of the classification table.
#[derive(Debug, Clone, Copy)]
pub struct ClassRule {
    /// The class.
    pub class: PrivilegeClass,
    /// Its name (kebab-case, as serialised).
    pub name: &'static str,
    /// Field patterns: dotted paths where `*` stands for any run of characters.
    pub fields: &'static [&'static str],
    /// When a change widens the sandbox, in words (`None`: never).
    pub widens: Option<&'static str>,
    /// When a change narrows the sandbox, in words (`None`: never).
    pub narrows: Option<&'static str>,
}

/// The privilege classification: the single source for the diff and for
/// docs/ci-review.md. Order matters: the first row whose pattern matches a
/// field decides its class.
pub const CLASSES: &[ClassRule] = &[
    ClassRule {
        class: PrivilegeClass::Identity,
        name: "identity",
        fields: &["format", "inputs.*"],
        widens: None,
        narrows: None,
    },
    ClassRule {
        class: PrivilegeClass::Platform,
        name: "platform",
        fields: &["platform"],
        widens: Some("moves up the order ptrace < native < kvm"),
        narrows: Some("moves down that order"),
    },
    ClassRule {
        class: PrivilegeClass::Network,
        name: "network",
        fields: &["network"],
        widens: Some("moves up the order none < loopback < join < host, or joins a different namespace"),
        narrows: Some("moves down that order"),
    },
    ClassRule {
        class: PrivilegeClass::Namespace,
        name: "namespace",
        fields: &["namespaces.*"],
        widens: Some("a kind moves from new to joined or host, or from joined to host, or joins a different path"),
        narrows: Some("a kind moves from host to joined or new, or from joined to new"),
    },
    ClassRule {
        class: PrivilegeClass::NamespaceJoinCeiling,
        name: "namespace-join-ceiling",
        fields: &["namespace_join_ceiling"],
        widens: Some("a namespace kind a spec may join by path is added"),
        narrows: Some("a namespace kind a spec may join by path is removed"),
    },
    ClassRule {
        class: PrivilegeClass::IdMap,
        name: "id-map",
        fields: &["id_maps.*"],
        widens: Some("a host id is reachable that was not (host root 0 is called out); setgroups deny → allow"),
        narrows: Some("fewer host ids are reachable; setgroups allow → deny"),
    },
    ClassRule {
        class: PrivilegeClass::Root,
        name: "root",
        fields: &["root.*"],
        widens: Some("another host directory becomes the root; pivot_root → chroot → none; read-only → writable"),
        narrows: Some("none → chroot → pivot_root; writable → read-only"),
    },
    ClassRule {
        class: PrivilegeClass::Mount,
        name: "mount",
        fields: &["mounts[*]", "mounts[*].*", "mounts.order"],
        widens: Some(
            "a mount is added (other than a tmpfs); a bind source or fstype changes; ro, nosuid, nodev, noexec, \
             private or unbindable is removed; bind → rbind; shared or slave propagation is added; \
             nested mounts change order",
        ),
        narrows: Some("a mount is removed; ro, nosuid, nodev, noexec, private or unbindable is added"),
    },
    ClassRule {
        class: PrivilegeClass::MaskedPath,
        name: "masked-path",
        fields: &["masked_paths"],
        widens: Some("a path is no longer masked"),
        narrows: Some("a path is masked"),
    },
    ClassRule {
        class: PrivilegeClass::ReadonlyPath,
        name: "readonly-path",
        fields: &["readonly_paths"],
        widens: Some("a path is no longer read-only"),
        narrows: Some("a path is made read-only"),
    },
    ClassRule {
        class: PrivilegeClass::Device,
        name: "device",
        fields: &["devices[*]", "devices[*].*", "dev_links[*]"],
        widens: Some("a device is added, points at another device number, or gains mode bits"),
        narrows: Some("a device is removed or loses mode bits"),
    },
    ClassRule {
        class: PrivilegeClass::DeviceCeiling,
        name: "device-ceiling",
        fields: &["device_ceiling"],
        widens: Some("a device number is allowed that was not, or its host node changes"),
        narrows: Some("a device number is no longer allowed"),
    },
    ClassRule {
        class: PrivilegeClass::CgroupLimit,
        name: "cgroup-limit",
        fields: &["cgroup", "cgroup.limits.*"],
        widens: Some("a limit is raised or removed (cpu quota as quota/period; cpusets as sets); the cgroup is dropped"),
        narrows: Some("a limit is lowered or added; a cgroup is made"),
    },
    ClassRule {
        class: PrivilegeClass::CgroupLayout,
        name: "cgroup-layout",
        fields: &["cgroup.*"],
        widens: None,
        narrows: None,
    },
    ClassRule {
        class: PrivilegeClass::Stdio,
        name: "stdio",
        fields: &["stdio"],
        widens: Some(
            "console pty → relayed pty → the caller's stdio (the workload can reach the caller's stdio, then its terminal)",
        ),
        narrows: Some("the caller's stdio → relayed pty → console pty"),
    },
    ClassRule {
        class: PrivilegeClass::Capability,
        name: "capability",
        fields: &["workload.capabilities.*", "supervisor.capabilities.*"],
        widens: Some("a capability is added to a set"),
        narrows: Some("a capability is removed from a set"),
    },
    ClassRule {
        class: PrivilegeClass::NoNewPrivs,
        name: "no-new-privs",
        fields: &["workload.no_new_privs"],
        widens: Some("turned off"),
        narrows: Some("turned on"),
    },
    ClassRule {
        class: PrivilegeClass::NonDumpable,
        name: "non-dumpable",
        fields: &["supervisor.non_dumpable"],
        widens: Some("turned off (the workload could ptrace the supervisor)"),
        narrows: Some("turned on"),
    },
    ClassRule {
        class: PrivilegeClass::Seccomp,
        name: "seccomp",
        fields: &["workload.seccomp", "workload.seccomp.*"],
        widens: Some(
            "the filter is removed; the default action softens; a syscall's effective action softens \
             (allowed added, denial removed); an architecture is added",
        ),
        narrows: Some("a filter is added; the default or a syscall's action hardens; an architecture is removed"),
    },
    ClassRule {
        class: PrivilegeClass::Rlimit,
        name: "rlimit",
        fields: &["workload.rlimits.*"],
        widens: Some("a soft or hard limit is raised, or the limit is removed"),
        narrows: Some("limits are lowered, or a limit is added"),
    },
    ClassRule {
        class: PrivilegeClass::Fd,
        name: "fd",
        fields: &["workload.fds[*]", "supervisor.fds[*]"],
        widens: Some("an fd is donated, or an fd now refers to something else or opens with more access"),
        narrows: Some("an fd is no longer donated, or opens with less access"),
    },
    ClassRule {
        class: PrivilegeClass::Credentials,
        name: "credentials",
        fields: &["workload.credentials.*", "supervisor.credentials.*"],
        widens: Some(
            "uid/gid becomes 0 inside, or maps to host root, or to another host identity; a supplementary group is added",
        ),
        narrows: Some("uid/gid moves to host nobody or stops being 0; a supplementary group is removed"),
    },
    ClassRule {
        class: PrivilegeClass::Process,
        name: "process",
        fields: &[
            "workload.args",
            "workload.env.*",
            "workload.cwd",
            "workload.umask",
            "workload.oom_score_adj",
            "hostname",
            "supervisor.session",
            "log_dirs",
        ],
        widens: None,
        narrows: None,
    },
    ClassRule {
        class: PrivilegeClass::Hook,
        name: "hook",
        fields: &["hooks"],
        widens: Some("a hook is added, or what a hook runs changes (path, argv, env, timeout, phase)"),
        narrows: Some("a hook is removed"),
    },
    ClassRule {
        class: PrivilegeClass::Clamp,
        name: "clamp",
        fields: &["clamps[*]"],
        widens: None,
        narrows: None,
    },
    ClassRule {
        class: PrivilegeClass::Step,
        name: "step",
        fields: &["steps"],
        widens: None,
        narrows: None,
    },
    ClassRule {
        class: PrivilegeClass::Provenance,
        name: "provenance",
        fields: &["*"],
        widens: None,
        narrows: None,
    },
    ClassRule {
        class: PrivilegeClass::Unclassified,
        name: "unclassified",
        fields: &["*"],
        widens: Some("always: a change this build cannot rank is treated as widening"),
        narrows: None,
    },
];

/// The row of a class.
pub fn rule(class: PrivilegeClass) -> &'static ClassRule {
    // Every class has a row (checked by a test); fall back to the last row,
    // which is the most cautious one, rather than panic.
    CLASSES
        .iter()
        .find(|r| r.class == class)
        .unwrap_or(&CLASSES[CLASSES.len() - 1])
}

/// Whether `field` matches `pattern`, where `*` stands for any run of
/// characters (including none).
pub fn glob_match(pattern: &str, field: &str) -> bool {
    let p = pattern.as_bytes();
    let f = field.as_bytes();
    let (mut pi, mut fi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while fi < f.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, fi));
            pi += 1;
        } else if pi < p.len() && p[pi] == f[fi] {
            pi += 1;
            fi += 1;
        } else if let Some((sp, sf)) = star {
            pi = sp + 1;
            fi = sf + 1;
            star = Some((sp, sf + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// The table as Markdown, exactly as docs/ci-review.md carries it between
/// `<!-- classes:begin -->` and `<!-- classes:end -->`.
pub fn render_markdown_table() -> String {
    let mut out = String::from("| Class | Fields | Widens when | Narrows when |\n|---|---|---|---|\n");
    for r in CLASSES {
        let fields = if r.class == PrivilegeClass::Provenance {
            "any field whose value is unchanged".to_string()
        } else if r.class == PrivilegeClass::Unclassified {
            "any other field".to_string()
        } else {
            r.fields.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", ")
        };
        let cell = |c: Option<&str>| c.unwrap_or("never").replace('|', "\\|");
        let widens = if r.class.always_neutral() {
            "never (always neutral)".to_string()
        } else {
            cell(r.widens)
        };
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            r.name,
            fields,
            widens,
            cell(r.narrows)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_has_exactly_one_row_and_matching_name() {
        let all = [
            PrivilegeClass::Identity,
            PrivilegeClass::Platform,
            PrivilegeClass::Network,
            PrivilegeClass::Namespace,
            PrivilegeClass::NamespaceJoinCeiling,
            PrivilegeClass::IdMap,
            PrivilegeClass::Root,
            PrivilegeClass::Mount,
            PrivilegeClass::MaskedPath,
            PrivilegeClass::ReadonlyPath,
            PrivilegeClass::Device,
            PrivilegeClass::DeviceCeiling,
            PrivilegeClass::CgroupLimit,
            PrivilegeClass::CgroupLayout,
            PrivilegeClass::Stdio,
            PrivilegeClass::Capability,
            PrivilegeClass::NoNewPrivs,
            PrivilegeClass::NonDumpable,
            PrivilegeClass::Seccomp,
            PrivilegeClass::Rlimit,
            PrivilegeClass::Fd,
            PrivilegeClass::Credentials,
            PrivilegeClass::Process,
            PrivilegeClass::Hook,
            PrivilegeClass::Clamp,
            PrivilegeClass::Step,
            PrivilegeClass::Provenance,
            PrivilegeClass::Unclassified,
        ];
        assert_eq!(all.len(), CLASSES.len());
        for c in all {
            assert_eq!(CLASSES.iter().filter(|r| r.class == c).count(), 1, "{c:?}");
            // The table's name is the serde name.
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(json, format!("\"{}\"", c.name()));
        }
    }

    #[test]
    fn glob_matches_dotted_paths() {
        assert!(glob_match("cgroup.limits.*", "cgroup.limits.pids"));
        assert!(!glob_match("cgroup.limits.*", "cgroup.limits"));
        assert!(glob_match("mounts[*].*", "mounts[/a.b].flags"));
        assert!(glob_match("mounts[*]", "mounts[/data]"));
        assert!(!glob_match("mounts[*]", "mounts.order"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("platform", "platforms"));
    }

    #[test]
    fn fields_find_their_class_first_match_wins() {
        assert_eq!(PrivilegeClass::for_field("cgroup"), PrivilegeClass::CgroupLimit);
        assert_eq!(
            PrivilegeClass::for_field("cgroup.limits.memory"),
            PrivilegeClass::CgroupLimit
        );
        assert_eq!(
            PrivilegeClass::for_field("cgroup.writes[/x]"),
            PrivilegeClass::CgroupLayout
        );
        assert_eq!(PrivilegeClass::for_field("workload.seccomp"), PrivilegeClass::Seccomp);
        assert_eq!(PrivilegeClass::for_field("workload.fds[3]"), PrivilegeClass::Fd);
        assert_eq!(
            PrivilegeClass::for_field("workload.nonsense"),
            PrivilegeClass::Unclassified
        );
        assert!(PrivilegeClass::Process.always_neutral());
        assert!(!PrivilegeClass::Unclassified.always_neutral());
    }
}
