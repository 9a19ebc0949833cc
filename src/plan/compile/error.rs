//! Compile errors and warnings: one variant per broken rule, carrying the
//! values that broke it, and anchors — the policy line, the spec JSON path, the
//! host fact — that the edge turns into located diagnostics.

use crate::diag::{Snippet, SourceDiag};
use crate::policy::{At, Policy};
use crate::spec::{locate, SpecInput};
use crate::vocab::Origin;

/// A place an error or warning points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Anchor {
    /// A policy setting, with a label.
    Policy(At, String),
    /// A spec field by JSON path; `needle` narrows the span to a string inside it.
    Spec {
        /// JSON path.
        path: String,
        /// A string to find inside the value (an element of a set).
        needle: Option<String>,
        /// Label.
        label: String,
    },
    /// A host fact.
    Host(String),
    /// A command-line flag.
    Cli(String),
}

impl Anchor {
    /// A spec field.
    pub fn spec(path: impl Into<String>, label: impl Into<String>) -> Self {
        Anchor::Spec {
            path: path.into(),
            needle: None,
            label: label.into(),
        }
    }

    /// The plan origin this anchor stands for (policy anchors resolve at the edge).
    pub fn origin(&self) -> Origin {
        match self {
            Anchor::Policy(_, _) => Origin::Default,
            Anchor::Spec { path, .. } => Origin::Spec(path.clone()),
            Anchor::Host(f) => Origin::Host(f.clone()),
            Anchor::Cli(f) => Origin::Cli(f.clone()),
        }
    }
}

/// The broken rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompileErrorKind {
    /// The spec asks for one of the host's namespaces the policy refuses.
    #[error("the spec asks for the host's {kind} namespace (it lists no {kind} namespace), which the policy refuses")]
    HostNamespace {
        /// The namespace kind.
        kind: &'static str,
    },
    /// The spec has OCI hooks, which the policy does not let run.
    #[error("the spec's {first} is one of {count} OCI hook(s) ({kinds}), programs the spec names that run on the host as the engine's user (createContainer and startContainer: in the container's namespaces); the policy does not allow hooks (hooks.allow = false, {policy})")]
    HooksNotAllowed {
        /// The spec's first hook (`hooks.createRuntime[0]`).
        first: String,
        /// How many.
        count: usize,
        /// Which phases.
        kinds: String,
        /// The policy line that decides (`policy:builtin:default.toml:70`,
        /// or `default`).
        policy: String,
    },
    /// A hook timeout that is not a positive number of seconds.
    #[error("{at} is {timeout}: a hook's timeout must be a positive number of seconds (runtime spec)")]
    HookTimeout {
        /// The spec's field.
        at: String,
        /// The value.
        timeout: i64,
    },
    /// A spec annotation picks a policy the operator did not make selectable.
    #[error("the spec's annotation org.sandboxctl.policy picks policy \"{name}\", which the operator's policy does not list as selectable")]
    PolicyNotSelectable {
        /// The annotation's value.
        name: String,
    },
    /// A capability above the ceiling.
    #[error("the spec asks for capability {cap} in the {set} set, which the policy does not allow")]
    CapabilityNotAllowed {
        /// The capability.
        cap: String,
        /// The set.
        set: String,
    },
    /// A limit above the ceiling.
    #[error("the spec asks for {what} = {requested}, above the policy's ceiling of {ceiling}")]
    LimitAboveCeiling {
        /// Which limit.
        what: String,
        /// Requested.
        requested: String,
        /// Ceiling.
        ceiling: String,
    },
    /// A bind mount of a host path outside the allowed list.
    #[error("the spec bind-mounts host path {host_path} at {target}, outside the policy's allowed host paths")]
    HostPathNotAllowed {
        /// Host path.
        host_path: String,
        /// Target.
        target: String,
    },
    /// A device number outside the policy's device ceiling.
    #[error(
        "the spec asks for device {path} ({kind} {major}:{minor}), which the policy's device ceiling does not allow"
    )]
    DeviceNotAllowed {
        /// Path inside the sandbox.
        path: String,
        /// `c` or `b`.
        kind: char,
        /// Major number.
        major: u64,
        /// Minor number.
        minor: u64,
    },
    /// A devices cgroup rule reaching devices outside the device ceiling.
    #[error(
        "the spec's devices cgroup rule `{rule}` allows devices the policy's device ceiling does not (a rule with read or write access must name one device the ceiling allows)"
    )]
    DeviceRuleNotAllowed {
        /// The rule as the kernel reads it (`c *:* rwm`).
        rule: String,
    },
    /// A path with a `..` component where the path must stay inside a root.
    #[error("{what} must not contain \"..\" components, got \"{path}\"")]
    ParentComponent {
        /// Which field.
        what: String,
        /// The path.
        path: String,
    },
    /// A writable bind mount when the policy allows only read-only ones.
    #[error("the spec bind-mounts host path {host_path} writable at {target}; the policy allows read-only binds only")]
    WritableBind {
        /// Host path.
        host_path: String,
        /// Target.
        target: String,
    },
    /// Host network asked for, not allowed.
    #[error(
        "the spec asks for the host network (it has no network namespace), but the policy's network mode is {mode}"
    )]
    HostNetwork {
        /// Policy mode.
        mode: String,
    },
    /// A netns path the policy does not let the sandbox join.
    #[error("the spec names network namespace {path} to join, but the policy does not allow joining (network.allow_join = false)")]
    NetnsJoin {
        /// The path.
        path: String,
    },
    /// Nobody mapping without CAP_SETUID/CAP_SETGID.
    #[error("can't run the sandbox as user nobody: the host facts lack {missing}")]
    NobodyNeedsSetid {
        /// Missing capabilities.
        missing: String,
    },
    /// Root change without CAP_SYS_ADMIN/CAP_SYS_CHROOT.
    #[error("can't change the sandbox's root ({how}): the host facts lack {missing}")]
    RootChangeNeedsCaps {
        /// pivot_root or chroot.
        how: String,
        /// Missing capabilities.
        missing: String,
    },
    /// Spec uid/gid maps outside the allowed host ranges.
    #[error("the spec maps {kind} {inside}..{inside_end} to host {host}..{host_end}, outside the policy's allowed host ids{root}")]
    IdMapNotAllowed {
        /// uid or gid.
        kind: &'static str,
        /// First id inside.
        inside: u32,
        /// End inside.
        inside_end: u64,
        /// First host id.
        host: u32,
        /// End on host.
        host_end: u64,
        /// Mentions host root.
        root: &'static str,
    },
    /// The spec's user is not mapped in its own maps.
    #[error("the spec's process runs as {kind} {id}, which its {kind} maps do not map")]
    UserNotMapped {
        /// uid or gid.
        kind: &'static str,
        /// The id.
        id: u32,
    },
    /// kvm platform without /dev/kvm.
    #[error("platform kvm needs /dev/kvm, and the host facts show none")]
    NoKvm,
    /// A cgroup controller the host does not have.
    #[error("the plan limits {what}, but the host has no {controller} cgroup controller")]
    NoController {
        /// The limit.
        what: String,
        /// The controller.
        controller: String,
    },
    /// The spec asks for memory+swap below its own memory limit.
    #[error(
        "the spec asks for memory+swap {swap} (linux.resources.memory.swap), below its memory limit {memory}: swap is memory plus swap, so it cannot be less than the memory limit"
    )]
    SwapBelowMemory {
        /// memory+swap asked.
        swap: String,
        /// memory asked.
        memory: String,
    },
    /// A memory+swap limit with no memory limit.
    #[error(
        "the plan limits memory+swap to {swap} but sets no memory limit: the swap allowed is memory+swap minus memory, which needs a memory limit (cgroup v1 refuses memsw above an unlimited memory limit)"
    )]
    SwapWithoutMemory {
        /// memory+swap.
        swap: String,
    },
    /// A required spec field is missing or empty.
    #[error("the spec has no {what}")]
    Missing {
        /// What.
        what: String,
    },
    /// A relative path where an absolute one is required.
    #[error("{what} must be an absolute path, got \"{path}\"")]
    RelativePath {
        /// Which field.
        what: String,
        /// The path.
        path: String,
    },
    /// A spec value that sandboxctl cannot carry out.
    #[error("{what}")]
    Unsupported {
        /// What.
        what: String,
    },
    /// A spec namespace path of a kind the policy does not let specs join.
    #[error("the spec asks to join the {kind} namespace {path}, but the policy does not let a spec join {kind} namespaces (namespaces.allow_join)")]
    NsJoinNotAllowed {
        /// The kind.
        kind: String,
        /// The path.
        path: String,
    },
    /// A joined pid or mount namespace (or a joined uts namespace given a
    /// hostname) under the sandbox's own new user namespace: the joined one
    /// belongs to another user namespace, where the sandbox holds no
    /// capability, so mounting /proc, the root or setting the hostname would
    /// fail with EPERM.
    #[error("the spec asks to join the {kind} namespace {path} while the sandbox makes its own user namespace ({rule}): the sandbox would hold no capability in the joined namespace, and {fails} would fail")]
    JoinedNsOutsideUserNs {
        /// The kind.
        kind: String,
        /// The path.
        path: String,
        /// The rule that made the user namespace new.
        rule: String,
        /// What would fail.
        fails: &'static str,
    },
    /// A cgroup path that leaves the cgroup hierarchy (or names its root).
    #[error("linux.cgroupsPath \"{path}\" {why}")]
    CgroupPathOutside {
        /// The path as the spec wrote it.
        path: String,
        /// Leaves the hierarchy, or is its root.
        why: &'static str,
    },
    /// A filter loaded without no_new_privs that would refuse the
    /// workload's own setup calls (made after it is loaded).
    #[error(
        "the spec leaves no_new_privs off, so the seccomp filter is loaded before the workload's credentials and \
         capabilities are set and must let those calls through, but it does not surely allow: {calls}"
    )]
    SeccompRefusesSetup {
        /// Each call with what decides it.
        calls: String,
    },
    /// A spec namespace path for a kind that cannot be joined here.
    #[error("conflicting settings: {what}")]
    Conflict {
        /// The conflict.
        what: String,
    },
}

/// A compile error: the broken rule and where to look.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}")]
pub struct CompileError {
    /// The rule.
    pub kind: CompileErrorKind,
    /// Places involved, most relevant first.
    pub anchors: Vec<Anchor>,
    /// What to do.
    pub help: Option<String>,
}

impl CompileError {
    /// A new error with no anchors yet.
    pub fn new(kind: CompileErrorKind) -> Self {
        CompileError {
            kind,
            anchors: Vec::new(),
            help: None,
        }
    }

    /// Adds an anchor.
    pub fn anchor(mut self, a: Anchor) -> Self {
        self.anchors.push(a);
        self
    }

    /// Sets help.
    pub fn help(mut self, h: impl Into<String>) -> Self {
        self.help = Some(h.into());
        self
    }

    /// Renders against the inputs: the first anchor is the main snippet, the
    /// others are related snippets.
    pub fn to_diag(&self, policy: &Policy, spec: &SpecInput) -> SourceDiag {
        render(self.kind.to_string(), &self.anchors, self.help.clone(), policy, spec)
    }
}

/// A warning: a clamp, a test-only mode, a request that was set aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The message.
    pub message: String,
    /// Places involved.
    pub anchors: Vec<Anchor>,
}

impl Warning {
    /// Renders against the inputs.
    pub fn to_diag(&self, policy: &Policy, spec: &SpecInput) -> SourceDiag {
        render(self.message.clone(), &self.anchors, None, policy, spec).with_severity(miette::Severity::Warning)
    }

    /// One line: the message and, in brackets, the origin of each place
    /// involved (`spec:process.capabilities.bounding; policy:untrusted.toml:18`).
    pub fn line(&self, policy: &Policy) -> String {
        let places: Vec<String> = self
            .anchors
            .iter()
            .map(|a| match a {
                Anchor::Policy(at, _) => policy.origin(at).to_string(),
                other => other.origin().to_string(),
            })
            .collect();
        if places.is_empty() {
            self.message.clone()
        } else {
            format!("{} [{}]", self.message, places.join("; "))
        }
    }
}

fn render(message: String, anchors: &[Anchor], help: Option<String>, policy: &Policy, spec: &SpecInput) -> SourceDiag {
    let mut snippets = anchors.iter().filter_map(|a| snippet(a, policy, spec));
    let main = snippets.next();
    let related = snippets.map(SourceDiag::note).collect();
    let extra: Vec<String> = anchors
        .iter()
        .filter_map(|a| match a {
            Anchor::Host(f) => Some(format!("host fact: {f}")),
            Anchor::Cli(f) => Some(format!("command line: {f}")),
            _ => None,
        })
        .collect();
    let help = match (help, extra.is_empty()) {
        (h, true) => h,
        (Some(h), false) => Some(format!("{h}\n({})", extra.join("; "))),
        (None, false) => Some(format!("({})", extra.join("; "))),
    };
    SourceDiag::new(message, main, help, related)
}

fn snippet(a: &Anchor, policy: &Policy, spec: &SpecInput) -> Option<Snippet> {
    match a {
        Anchor::Policy(At::File(loc), label) => {
            let src = &policy.sources[loc.src];
            Some(Snippet {
                name: src.name.clone(),
                text: src.text.clone(),
                span: Some(loc.span.clone()),
                label: label.clone(),
            })
        }
        Anchor::Policy(At::Default, _) => None,
        Anchor::Spec { path, needle, label } => {
            let text = spec.diag_text();
            let mut p = path.as_str();
            let mut span = locate(&text, p);
            while span.is_none() {
                match p.rfind(['.', '[']) {
                    Some(i) => {
                        p = &p[..i];
                        span = locate(&text, p);
                    }
                    None => break,
                }
            }
            if let (Some(r), Some(n)) = (&span, needle) {
                let quoted = format!("\"{n}\"");
                if let Some(off) = text[r.clone()].find(&quoted) {
                    span = Some(r.start + off..r.start + off + quoted.len());
                }
            }
            let name = if text.len() == spec.text.len() {
                spec.name.clone()
            } else {
                format!("{} (pretty-printed)", spec.name)
            };
            Some(Snippet {
                name,
                text: text.into_owned(),
                span,
                label: format!("{label} ({path})"),
            })
        }
        Anchor::Host(_) | Anchor::Cli(_) => None,
    }
}
