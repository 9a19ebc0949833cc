//! The compiler: `compile(policy, spec, host, options) -> LaunchPlan`.
//!
//! Pure: it reads only its arguments — no syscalls, no clock, no environment —
//! so the same inputs give a byte-identical plan on any machine. Each section
//! of the plan is decided in its own submodule, by small named rules; a
//! request above the policy's ceiling is an error that points at both the spec
//! field and the policy line, or, where the policy says `clamp`, a recorded
//! [`Clamp`] and a warning.

mod cgroup;
mod error;
mod fds;
mod fs;
mod hooks;
mod ns;

pub use ns::NOBODY_RULE;
mod process;
mod seccomp;

use std::path::PathBuf;

pub use cgroup::{recompile_cgroup, Recompiled, FREEZER_RULE};
pub use error::{Anchor, CompileError, CompileErrorKind, Warning};
pub use fs::host_bind_instead;

use super::types::*;
use crate::host::HostFacts;
use crate::policy::{At, OnExcess, Policy, Setting};
use crate::spec::SpecInput;
use crate::vocab::Origin;

/// What the command line adds to policy, spec and host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompileOptions {
    /// `--console-socket`: a pty's master is sent over this socket.
    pub console_socket: Option<PathBuf>,
    /// `--io-fd`: caller fds donated to the supervisor as I/O fds.
    pub io_fds: Vec<i32>,
    /// How the host facts were obtained (`detected` or a path), for the plan's header.
    pub host_name: String,
    /// Where the spec's directory (`SpecInput::dir`) came from: `cli:--bundle`
    /// or `cli:--spec`, or `cli:--target-bundle` for a plan for another machine.
    pub bundle_from: Option<Origin>,
    /// How the policy was chosen (`cli:--policy`, the environment, the host
    /// file, `default`, or the spec's annotation), for the plan's header.
    pub policy_from: Option<Origin>,
}

/// A compiled plan and the warnings made on the way.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// The plan.
    pub plan: LaunchPlan,
    /// Warnings (clamps, test-only modes, ignored requests).
    pub warnings: Vec<Warning>,
}

/// Compiles the inputs into a plan.
pub fn compile(
    policy: &Policy,
    spec: &SpecInput,
    host: &HostFacts,
    opts: &CompileOptions,
) -> Result<Compiled, CompileError> {
    let mut cx = Cx {
        policy,
        spec,
        host,
        opts,
        clamps: Vec::new(),
        warnings: Vec::new(),
    };
    let hooks = hooks::hooks(&cx)?;
    let platform = ns::platform(&mut cx)?;
    let network = ns::network(&mut cx)?;
    let userns = ns::user(&mut cx, &network)?;
    let namespaces = ns::namespaces(&mut cx, &network, &userns)?;
    let namespace_join_ceiling = ns::join_ceiling(&cx);
    let root = fs::root(&mut cx, &userns)?;
    let mounts = fs::mounts(&mut cx, &namespaces, &userns.maps)?;
    let (masked_paths, readonly_paths) = fs::masked_and_readonly(&cx);
    let device_ceiling = fs::device_ceiling(&cx);
    let devices = fs::devices(&mut cx, &platform, &namespaces, &device_ceiling)?;
    let dev_links = fs::dev_links(&mounts, &devices);
    let hostname = fs::hostname(&cx);
    let device_rules = cgroup::device_rules(&mut cx, &devices, &mounts, &device_ceiling)?;
    let cgroup = cgroup::cgroup(&mut cx, device_rules)?;
    let stdio = fds::stdio(&mut cx)?;
    let supervisor_fds = fds::supervisor_fds(&cx, &platform, &stdio);
    let workload_fds = fds::workload_fds(&cx, &supervisor_fds)?;
    let log_dirs = fds::log_dirs(&supervisor_fds);
    let workload = process::workload(&mut cx, &userns, workload_fds)?;
    let supervisor = process::supervisor(&userns, &workload, &stdio, supervisor_fds);
    let steps = steps(
        &namespaces,
        &cgroup,
        &root,
        &mounts,
        &masked_paths,
        &readonly_paths,
        &devices,
        &dev_links,
        &hostname,
        &network,
        &workload,
        &platform,
        &hooks,
    );
    let inputs = Inputs {
        policies: policy.chain(),
        policy_from: opts.policy_from.clone(),
        spec: spec.name.clone(),
        host: opts.host_name.clone(),
        bundle: match (&spec.dir, &opts.bundle_from) {
            (Some(d), Some(from)) if !spec.builtin => Some(Sourced::new(d.clone(), from.clone())),
            _ => None,
        },
    };
    let plan = LaunchPlan {
        format: PLAN_FORMAT,
        inputs,
        platform,
        network,
        namespaces,
        namespace_join_ceiling,
        id_maps: userns.maps,
        root,
        mounts,
        masked_paths,
        readonly_paths,
        devices,
        device_ceiling,
        dev_links,
        hostname,
        cgroup,
        log_dirs,
        stdio,
        supervisor,
        workload,
        hooks,
        clamps: cx.clamps,
        steps,
    };
    Ok(Compiled {
        plan,
        warnings: cx.warnings,
    })
}

/// The compiler's working state: the inputs, and the clamps and warnings made
/// so far (moved into the plan at the end).
pub(crate) struct Cx<'a> {
    pub policy: &'a Policy,
    pub spec: &'a SpecInput,
    pub host: &'a HostFacts,
    pub opts: &'a CompileOptions,
    pub clamps: Vec<Clamp>,
    pub warnings: Vec<Warning>,
}

impl Cx<'_> {
    /// The origin of a policy setting.
    pub fn at(&self, at: &At) -> Origin {
        self.policy.origin(at)
    }

    /// An excess: error under `deny`, recorded clamp and warning under `clamp`.
    #[allow(clippy::too_many_arguments)]
    pub fn excess(
        &mut self,
        on_excess: &Setting<OnExcess>,
        ceiling: &At,
        field: &str,
        requested: String,
        requested_by: Anchor,
        granted: String,
        kind: CompileErrorKind,
    ) -> Result<(), CompileError> {
        match on_excess.value {
            OnExcess::Deny => Err(CompileError::new(kind)
                .anchor(requested_by)
                .anchor(Anchor::Policy(ceiling.clone(), "the policy's ceiling".into()))
                .help(format!(
                    "ask for less in the spec, raise the ceiling in the policy, or set `on_excess = \"clamp\"` there{}",
                    match &on_excess.at {
                        At::File(_) => format!(" ({})", self.at(&on_excess.at)),
                        At::Default => String::new(),
                    }
                ))),
            OnExcess::Clamp => {
                let requested_origin = requested_by.origin();
                self.warnings.push(Warning {
                    message: format!("{field}: clamped {requested} to {granted} ({kind})"),
                    anchors: vec![requested_by, Anchor::Policy(ceiling.clone(), "ceiling".into())],
                });
                self.clamps.push(Clamp {
                    field: field.to_string(),
                    requested,
                    requested_by: requested_origin,
                    granted,
                    ceiling: self.at(ceiling),
                });
                Ok(())
            }
        }
    }

    /// A request the kernel (not the policy) would not grant as asked: always
    /// recorded as a clamp whose ceiling is the rule, with a warning, never an
    /// error (the request is legal; what compile decides is what apply can do).
    #[allow(clippy::too_many_arguments)]
    pub fn rule_clamp(
        &mut self,
        field: &str,
        requested: String,
        requested_by: Anchor,
        granted: String,
        rule: &str,
        why: &str,
    ) {
        self.warnings.push(Warning {
            message: format!("{field}: {requested} → {granted} (rule {rule}: {why})"),
            anchors: vec![requested_by.clone()],
        });
        let requested_by = match &requested_by {
            Anchor::Policy(at, _) => self.at(at),
            other => other.origin(),
        };
        self.clamps.push(Clamp {
            field: field.to_string(),
            requested,
            requested_by,
            granted,
            ceiling: Origin::rule(rule),
        });
    }

    /// The spec's `linux` section, or an empty one.
    pub fn linux(&self) -> Option<&oci_spec::runtime::Linux> {
        self.spec.spec.linux().as_ref()
    }
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

/// The steps of apply: one static order, filtered to what this plan does.
#[allow(clippy::too_many_arguments)]
fn steps(
    ns: &Namespaces,
    cgroup: &Option<CgroupPlan>,
    root: &Root,
    mounts: &[Mount],
    masked: &[Sourced<PathBuf>],
    readonly: &[Sourced<PathBuf>],
    devices: &[Device],
    dev_links: &[DevLink],
    hostname: &Option<Sourced<String>>,
    network: &Sourced<NetworkMode>,
    w: &Workload,
    platform: &Sourced<Platform>,
    hooks: &[Hook],
) -> Vec<Step> {
    use Step::*;

    // A joined mount namespace is made private too: the root's mounts made
    // in it must not propagate to its peers (the host's, when its owner
    // shares them). This changes the owner's namespace, as runc does; only
    // a policy that lists `mount` in `namespaces.allow_join` gets here.
    let mount_ns_own = matches!(ns.mount.value, Namespace::New | Namespace::Join(_));
    Step::ALL
        .iter()
        .copied()
        .filter(|s| match s {
            CgroupCreate | CgroupLimits | CgroupJoin => cgroup.is_some(),
            JoinNamespaces => ns.iter().any(|(_, n)| matches!(n.value, Namespace::Join(_))),
            IdMaps => ns.user.value == Namespace::New,
            RuntimeHooks => hooks
                .iter()
                .any(|h| matches!(h.phase, HookPhase::Prestart | HookPhase::CreateRuntime)),
            ContainerHooks => hooks.iter().any(|h| h.phase == HookPhase::CreateContainer),
            Hostname => hostname.is_some() && ns.uts.value == Namespace::New,
            Network => network.value == NetworkMode::Loopback,
            MountPropagation => mount_ns_own,
            Mounts => !mounts.is_empty(),
            Devices => !devices.is_empty() || !dev_links.is_empty(),
            RootChange => root.change.value != super::types::RootChange::None,
            MaskedPaths => !masked.is_empty(),
            ReadonlyPaths => !readonly.is_empty(),
            RootReadonly => root.readonly.value,
            Rlimits => !w.rlimits.is_empty(),
            NoNewPrivs => w.no_new_privs.value,
            // Without no_new_privs a filter can be loaded only while the
            // workload holds CAP_SYS_ADMIN: before the capability drop.
            SeccompBeforeCredentials => w.seccomp.is_some() && !w.no_new_privs.value,
            Seccomp => w.seccomp.is_some() && w.no_new_privs.value,
            Trace => platform.value == Platform::Ptrace,
            _ => true,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::policy::{self, PolicyRef};
    use crate::vocab::{Cap, Fd};

    #[test]
    fn hex_is_lowercase_two_digits_per_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(hex(&[]), "");
    }

    fn host(name: &str) -> HostFacts {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden/hosts")
            .join(name);
        toml::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    }

    fn policy(text: &str) -> Policy {
        policy::load(
            &[PolicyRef::Text {
                name: "test.toml".into(),
                text: text.into(),
            }],
            Path::new("."),
        )
        .unwrap()
    }

    fn sh() -> SpecInput {
        crate::spec::builtin(&["/bin/sh".into()])
    }

    fn plan(policy_text: &str, host_name: &str, opts: &CompileOptions) -> Result<Compiled, CompileError> {
        compile(&policy(policy_text), &sh(), &host(host_name), opts)
    }

    #[test]
    fn same_inputs_same_plan() {
        let a = plan(
            "extends = \"untrusted\"",
            "hybrid-root.toml",
            &CompileOptions::default(),
        )
        .unwrap();
        let b = plan(
            "extends = \"untrusted\"",
            "hybrid-root.toml",
            &CompileOptions::default(),
        )
        .unwrap();
        assert_eq!(a.plan, b.plan);
        assert_eq!(crate::plan::render::hash(&a.plan), crate::plan::render::hash(&b.plan));
        let c = plan("extends = \"default\"", "hybrid-root.toml", &CompileOptions::default()).unwrap();
        assert_ne!(a.plan, c.plan);
    }

    /// Issue 15: under ptrace the supervisor is pid 1 of a new PID namespace
    /// (the host's made any spec that mounts /proc fail with EPERM), and the
    /// workload asks to be traced (step `trace`) before its filter loads.
    #[test]
    fn ptrace_gets_a_new_pid_namespace_and_a_trace_step() {
        let p = plan(
            "extends = \"default\"\nplatform = \"ptrace\"",
            "hybrid-root.toml",
            &Default::default(),
        )
        .unwrap()
        .plan;
        assert_eq!(p.namespaces.pid.value, Namespace::New);
        assert_eq!(p.namespaces.pid.from, Origin::rule("pid-ns-always-new"));
        let at = |s: Step| p.steps.iter().position(|x| *x == s);
        assert!(at(Step::Trace).is_some());
        assert!(at(Step::Trace) < at(Step::Seccomp) && at(Step::Trace) > at(Step::Capabilities));
        let n = plan("extends = \"default\"", "hybrid-root.toml", &Default::default())
            .unwrap()
            .plan;
        assert_eq!(n.namespaces.pid.value, Namespace::New);
        assert!(!n.steps.contains(&Step::Trace));
    }

    #[test]
    fn nobody_rule_needs_setuid_and_setgid() {
        let e = plan(
            "extends = \"default\"",
            "hybrid-root-no-setuid.toml",
            &Default::default(),
        )
        .unwrap_err();
        assert!(matches!(e.kind, CompileErrorKind::NobodyNeedsSetid { .. }), "{e}");
        let p = plan("extends = \"default\"", "hybrid-root.toml", &Default::default())
            .unwrap()
            .plan;
        assert_eq!(
            p.id_maps.uid,
            vec![IdMap {
                inside: 65534,
                host: 65534,
                count: 1
            }]
        );
        assert_eq!(p.workload.credentials.uid.0, 65534);
    }

    #[test]
    fn host_network_stays_in_caller_user_ns_and_applies_caps_to_supervisor() {
        let p = plan("extends = \"network-host\"", "hybrid-root.toml", &Default::default())
            .unwrap()
            .plan;
        assert_eq!(p.namespaces.user.value, Namespace::Host);
        assert_eq!(p.namespaces.net.value, Namespace::Host);
        assert!(p.id_maps.uid.is_empty());
        assert_eq!(p.supervisor.capabilities, p.workload.capabilities.value);
    }

    /// podman's config.json (tests/golden/inputs/podman.json).
    fn podman_spec() -> SpecInput {
        crate::spec::load_file(
            Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/inputs/podman.json")),
            Path::new("."),
        )
        .unwrap()
    }

    /// The container policy: as runc, the spec's user in the host's user
    /// namespace when the spec lists none; a spec's maps only inside the
    /// host's subordinate ranges (uid maps in /etc/subuid's, gid maps in
    /// /etc/subgid's), and only while `user.allow_subordinate_ids` is on.
    #[test]
    fn container_policy_runs_the_specs_user_and_maps_only_within_subordinate_ranges() {
        let p = compile(
            &policy("extends = \"container\""),
            &podman_spec(),
            &host("hybrid-root.toml"),
            &Default::default(),
        )
        .unwrap()
        .plan;
        assert_eq!(p.namespaces.user.value, Namespace::Host);
        assert!(matches!(&p.namespaces.user.from, Origin::Policy { file, .. } if file == "builtin:container.toml"));
        assert_eq!((p.workload.credentials.uid.0, p.workload.credentials.gid.0), (0, 0));
        assert!(matches!(p.namespaces.net.value, Namespace::Join(_)));

        let mut mapped = podman_spec();
        let mut linux = mapped.spec.linux().clone().unwrap();
        let mut ns = linux.namespaces().clone().unwrap();
        ns.push(
            oci_spec::runtime::LinuxNamespaceBuilder::default()
                .typ(oci_spec::runtime::LinuxNamespaceType::User)
                .build()
                .unwrap(),
        );
        linux.set_namespaces(Some(ns));
        let map = |host_id: u32| {
            vec![oci_spec::runtime::LinuxIdMappingBuilder::default()
                .container_id(0u32)
                .host_id(host_id)
                .size(65536u32)
                .build()
                .unwrap()]
        };
        linux.set_uid_mappings(Some(map(100_000)));
        linux.set_gid_mappings(Some(map(200_000)));
        mapped.spec.set_linux(Some(linux));
        let range = |start| crate::policy::IdRange { start, count: 65536 };
        let mut sub = host("hybrid-root.toml");
        sub.subordinate.uid = vec![range(100_000)];
        sub.subordinate.gid = vec![range(200_000)];
        let ok = compile(&policy("extends = \"container\""), &mapped, &sub, &Default::default())
            .unwrap()
            .plan;
        assert_eq!(ok.namespaces.user.value, Namespace::New);
        assert_eq!(
            ok.id_maps.uid,
            vec![IdMap {
                inside: 0,
                host: 100_000,
                count: 65536
            }]
        );
        assert_eq!(
            ok.id_maps.gid,
            vec![IdMap {
                inside: 0,
                host: 200_000,
                count: 65536
            }]
        );
        // The gid range is not in /etc/subuid: a uid map there is refused.
        let mut swapped = sub.clone();
        swapped.subordinate.uid = vec![range(200_000)];
        let e = compile(
            &policy("extends = \"container\""),
            &mapped,
            &swapped,
            &Default::default(),
        )
        .unwrap_err();
        assert!(
            matches!(e.kind, CompileErrorKind::IdMapNotAllowed { kind: "uid", .. }),
            "{e}"
        );
        // Without subordinate ranges on the host, or with the key off: refused.
        let e = compile(
            &policy("extends = \"container\""),
            &mapped,
            &host("hybrid-root.toml"),
            &Default::default(),
        )
        .unwrap_err();
        assert!(matches!(e.kind, CompileErrorKind::IdMapNotAllowed { .. }), "{e}");
        let off = "extends = \"container\"\n[user]\nallow_subordinate_ids = false\n";
        let e = compile(&policy(off), &mapped, &sub, &Default::default()).unwrap_err();
        assert!(matches!(e.kind, CompileErrorKind::IdMapNotAllowed { .. }), "{e}");
    }

    fn hook(path: &str, args: &[&str], timeout: Option<i64>) -> oci_spec::runtime::Hook {
        let mut b = oci_spec::runtime::HookBuilder::default()
            .path(path)
            .args(args.iter().map(|a| a.to_string()).collect::<Vec<_>>())
            .env(vec!["PATH=/bin".to_string()]);
        if let Some(t) = timeout {
            b = b.timeout(t);
        }
        b.build().unwrap()
    }

    /// A spec's hooks are refused unless the policy allows them; the refusal
    /// names the spec's first hook and the policy line, on one line.
    #[test]
    fn hooks_are_refused_unless_the_policy_allows_them() {
        let mut spec = podman_spec();
        let hooks = oci_spec::runtime::HooksBuilder::default()
            .poststart(vec![hook("/bin/true", &[], None)])
            .create_runtime(vec![hook("/bin/true", &[], None), hook("/bin/true", &[], None)])
            .build()
            .unwrap();
        let host = host("hybrid-root.toml");
        let ok = compile(&policy("extends = \"container\""), &spec, &host, &Default::default());
        assert!(ok.is_ok(), "no hooks, compiles: {:?}", ok.err());
        assert!(ok.unwrap().plan.hooks.is_empty());
        spec.spec.set_hooks(Some(hooks));
        for base in ["default", "untrusted", "container"] {
            let e = compile(
                &policy(&format!("extends = \"{base}\"")),
                &spec,
                &host,
                &Default::default(),
            )
            .unwrap_err();
            let CompileErrorKind::HooksNotAllowed {
                first,
                count,
                kinds,
                policy,
            } = &e.kind
            else {
                panic!("{base}: {e}");
            };
            assert_eq!(
                (first.as_str(), *count, kinds.as_str()),
                ("hooks.createRuntime[0]", 3, "createRuntime, poststart")
            );
            assert!(
                policy.starts_with(&format!("policy:builtin:{base}.toml:"))
                    || (base != "container" && policy.starts_with("policy:builtin:default.toml:")),
                "{base}: names the policy line: {policy}"
            );
            let line = e.to_string();
            assert!(
                !line.contains('\n') && line.contains("hooks.createRuntime[0]") && line.contains(policy.as_str()),
                "{line}"
            );
            assert_eq!(e.anchors[0].origin(), Origin::spec("hooks.createRuntime[0]"));
        }
    }

    /// Allowed hooks become the plan's `hooks`, in phase order then spec
    /// order, each exactly as asked, with its spec path and the policy line;
    /// the launcher's step for them is in the plan only when needed.
    #[test]
    fn allowed_hooks_are_planned_in_the_order_they_run() {
        let mut spec = podman_spec();
        let hooks = oci_spec::runtime::HooksBuilder::default()
            .poststop(vec![hook("/usr/bin/stop", &["stop", "-x"], Some(3))])
            .poststart(vec![hook("/usr/bin/post", &[], None)])
            .create_runtime(vec![hook("/usr/bin/cr", &["cr0", "a"], Some(5))])
            .prestart(vec![
                hook("/usr/bin/pre", &["pre"], None),
                hook("/usr/bin/pre2", &[], Some(1)),
            ])
            .build()
            .unwrap();
        spec.spec.set_hooks(Some(hooks));
        let host = host("hybrid-root.toml");
        let allow = policy("extends = \"container\"\n[hooks]\nallow = true\n");
        let plan = compile(&allow, &spec, &host, &Default::default()).unwrap().plan;
        let got: Vec<String> = plan
            .hooks
            .iter()
            .map(|h| {
                format!(
                    "{} {} {:?} {:?} {}",
                    h.phase.name(),
                    h.path.display(),
                    h.args,
                    h.timeout_s,
                    h.from
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                r#"prestart /usr/bin/pre ["pre"] None spec:hooks.prestart[0]"#,
                r#"prestart /usr/bin/pre2 [] Some(1) spec:hooks.prestart[1]"#,
                r#"createRuntime /usr/bin/cr ["cr0", "a"] Some(5) spec:hooks.createRuntime[0]"#,
                r#"poststart /usr/bin/post [] None spec:hooks.poststart[0]"#,
                r#"poststop /usr/bin/stop ["stop", "-x"] Some(3) spec:hooks.poststop[0]"#,
            ]
        );
        assert!(plan
            .hooks
            .iter()
            .all(|h| h.env == ["PATH=/bin"] && h.allowed_by.to_string().starts_with("policy:")));
        let at = plan
            .steps
            .iter()
            .position(|s| *s == Step::RuntimeHooks)
            .expect("runtime_hooks planned");
        assert!(plan.steps[at - 1] < Step::RuntimeHooks && plan.steps[at + 1] > Step::RuntimeHooks);
        // Only poststart/poststop: no launcher step at create.
        let mut late = podman_spec();
        late.spec.set_hooks(Some(
            oci_spec::runtime::HooksBuilder::default()
                .poststop(vec![hook("/bin/true", &[], None)])
                .build()
                .unwrap(),
        ));
        let plan = compile(&allow, &late, &host, &Default::default()).unwrap().plan;
        assert_eq!(plan.hooks.len(), 1);
        assert!(!plan.steps.contains(&Step::RuntimeHooks));
    }

    /// The container's hooks are planned like the others: `createContainer`
    /// brings the supervisor's step `container_hooks` (after the runtime
    /// hooks, before the root change), `startContainer` no step of `create`
    /// (`start` runs it).
    #[test]
    fn container_hooks_are_planned_with_their_step() {
        let host = host("hybrid-root.toml");
        let allow = policy("extends = \"container\"\n[hooks]\nallow = true\n");
        let b = oci_spec::runtime::HooksBuilder::default;
        let plan_with = |h: oci_spec::runtime::Hooks| {
            let mut spec = podman_spec();
            spec.spec.set_hooks(Some(h));
            compile(&allow, &spec, &host, &Default::default()).unwrap().plan
        };
        let plan = plan_with(
            b().start_container(vec![hook("/bin/true", &["start"], Some(2))])
                .create_container(vec![hook("/usr/bin/cc", &[], None)])
                .create_runtime(vec![hook("/usr/bin/cr", &[], None)])
                .build()
                .unwrap(),
        );
        let got: Vec<String> = plan
            .hooks
            .iter()
            .map(|h| format!("{} {} {}", h.phase.name(), h.path.display(), h.from))
            .collect();
        assert_eq!(
            got,
            [
                "createRuntime /usr/bin/cr spec:hooks.createRuntime[0]",
                "createContainer /usr/bin/cc spec:hooks.createContainer[0]",
                "startContainer /bin/true spec:hooks.startContainer[0]",
            ]
        );
        let at = |s: Step| plan.steps.iter().position(|x| *x == s).unwrap();
        assert_eq!(at(Step::ContainerHooks), at(Step::RuntimeHooks) + 1);
        assert_eq!(at(Step::RootChange), at(Step::ContainerHooks) + 1);
        let plan = plan_with(b().start_container(vec![hook("/bin/true", &[], None)]).build().unwrap());
        assert_eq!(plan.hooks.len(), 1);
        assert!(!plan.steps.contains(&Step::ContainerHooks) && !plan.steps.contains(&Step::RuntimeHooks));
    }

    /// Relative paths and bad timeouts are refused.
    #[test]
    fn hooks_this_build_cannot_run_as_asked_are_refused() {
        let host = host("hybrid-root.toml");
        let allow = policy("extends = \"container\"\n[hooks]\nallow = true\n");
        let with = |h: oci_spec::runtime::Hooks| {
            let mut spec = podman_spec();
            spec.spec.set_hooks(Some(h));
            compile(&allow, &spec, &host, &Default::default()).unwrap_err()
        };
        let b = oci_spec::runtime::HooksBuilder::default;
        let e = with(b().poststop(vec![hook("bin/true", &[], None)]).build().unwrap());
        assert!(matches!(e.kind, CompileErrorKind::RelativePath { .. }), "{e}");
        for t in [0, -1] {
            let e = with(b().prestart(vec![hook("/bin/true", &[], Some(t))]).build().unwrap());
            assert_eq!(
                e.kind,
                CompileErrorKind::HookTimeout {
                    at: "hooks.prestart[0].timeout".into(),
                    timeout: t
                }
            );
        }
    }

    /// `namespaces.on_excess`: a spec without a pid/ipc/uts/mount namespace
    /// is refused under `deny` (the container policy), given its own under the
    /// default `clamp`, as before.
    #[test]
    fn host_pid_ipc_uts_namespaces_are_refused_only_under_deny() {
        for kind in [
            oci_spec::runtime::LinuxNamespaceType::Pid,
            oci_spec::runtime::LinuxNamespaceType::Ipc,
            oci_spec::runtime::LinuxNamespaceType::Uts,
            oci_spec::runtime::LinuxNamespaceType::Mount,
        ] {
            let mut spec = podman_spec();
            let mut linux = spec.spec.linux().clone().unwrap();
            let ns: Vec<_> = linux
                .namespaces()
                .clone()
                .unwrap()
                .into_iter()
                .filter(|n| n.typ() != kind)
                .collect();
            linux.set_namespaces(Some(ns));
            spec.spec.set_linux(Some(linux));
            let e = compile(
                &policy("extends = \"container\""),
                &spec,
                &host("hybrid-root.toml"),
                &Default::default(),
            )
            .unwrap_err();
            assert!(
                matches!(e.kind, CompileErrorKind::HostNamespace { .. }),
                "{kind:?}: {e}"
            );
            let p = compile(
                &policy("extends = \"network-host\""),
                &spec,
                &host("hybrid-root.toml"),
                &Default::default(),
            )
            .unwrap()
            .plan;
            assert_eq!(p.namespaces.pid.value, Namespace::New);
        }
    }

    /// A podman spec whose `kinds` namespaces carry a path (a pod's pause
    /// container's), and whose user namespace is `user` (none, new, or a path).
    fn pod_spec(kinds: &[oci_spec::runtime::LinuxNamespaceType], user: Option<Option<&str>>) -> SpecInput {
        use oci_spec::runtime::{LinuxNamespaceBuilder, LinuxNamespaceType as T};
        let mut spec = podman_spec();
        let mut linux = spec.spec.linux().clone().unwrap();
        let mut ns: Vec<_> = linux
            .namespaces()
            .clone()
            .unwrap()
            .into_iter()
            .filter(|n| !kinds.contains(&n.typ()) && n.typ() != T::User)
            .collect();
        for k in kinds {
            let name = match k {
                T::Mount => "mnt".to_string(),
                k => format!("{k:?}").to_lowercase(),
            };
            ns.push(
                LinuxNamespaceBuilder::default()
                    .typ(*k)
                    .path(format!("/proc/4242/ns/{name}"))
                    .build()
                    .unwrap(),
            );
        }
        if let Some(path) = user {
            let mut b = LinuxNamespaceBuilder::default().typ(T::User);
            if let Some(p) = path {
                b = b.path(p);
            }
            ns.push(b.build().unwrap());
        }
        linux.set_namespaces(Some(ns));
        spec.spec.set_linux(Some(linux));
        spec
    }

    /// Issue 13: a pod's containers join the pause container's ipc, uts and
    /// pid namespaces by path under the container policy (its `allow_join`),
    /// each with its spec path as origin; `default` keeps making its own, by
    /// the seed's rules, and warns naming `allow_join`; `mount` is joined only
    /// where a policy lists it.
    #[test]
    fn pod_namespaces_are_joined_where_allow_join_lists_them() {
        use oci_spec::runtime::LinuxNamespaceType as T;
        let spec = pod_spec(&[T::Ipc, T::Uts, T::Pid, T::Mount], None);
        let host = host("hybrid-root.toml");
        let c = compile(&policy("extends = \"container\""), &spec, &host, &Default::default()).unwrap();
        let joined = |n: &Sourced<Namespace>, name: &str| {
            assert!(
                matches!(&n.value, Namespace::Join(p) if p == Path::new(&format!("/proc/4242/ns/{name}"))),
                "{name}: {n:?}"
            );
            assert!(
                matches!(&n.from, Origin::Spec(path) if path.ends_with(".path")),
                "{n:?}"
            );
        };
        joined(&c.plan.namespaces.ipc, "ipc");
        joined(&c.plan.namespaces.uts, "uts");
        joined(&c.plan.namespaces.pid, "pid");
        assert_eq!(c.plan.namespaces.mount.value, Namespace::New);
        assert_eq!(c.plan.namespaces.mount.from, Origin::rule("mount-ns-always-new"));
        assert!(c
            .warnings
            .iter()
            .any(|w| w.message.contains("mount namespace path")
                && w.message.contains("allow_join does not list \"mount\"")));
        assert!(c.plan.steps.contains(&Step::JoinNamespaces));
        for k in [NsKind::Ipc, NsKind::Uts, NsKind::Pid] {
            assert!(c.plan.namespace_join_ceiling.value.contains(&k), "{k:?}");
        }

        let d = compile(&policy("extends = \"default\""), &spec, &host, &Default::default()).unwrap();
        for (n, rule) in [
            (&d.plan.namespaces.ipc, "ipc-ns-always-new"),
            (&d.plan.namespaces.uts, "uts-ns-always-new"),
            (&d.plan.namespaces.pid, "pid-ns-always-new"),
            (&d.plan.namespaces.mount, "mount-ns-always-new"),
        ] {
            assert_eq!(n.value, Namespace::New);
            assert_eq!(n.from, Origin::rule(rule));
        }
        assert_eq!(
            d.warnings
                .iter()
                .filter(|w| w.message.contains("allow_join does not list"))
                .count(),
            4
        );

        let m = compile(
            &policy("extends = \"container\"\n[namespaces]\nallow_join = [\"net\", \"mount\"]\n"),
            &spec,
            &host,
            &Default::default(),
        )
        .unwrap();
        joined(&m.plan.namespaces.mount, "mnt");
        assert_eq!(m.plan.namespaces.ipc.value, Namespace::New);
    }

    /// A joined pid or mount namespace (or a joined uts with a hostname)
    /// under the sandbox's own new user namespace: the sandbox would hold no
    /// capability there, so it is refused at compile; joining the owning user
    /// namespace too makes it work.
    #[test]
    fn joined_pid_and_mount_need_their_user_namespace() {
        use oci_spec::runtime::LinuxNamespaceType as T;
        let all = "extends = \"container\"\n[namespaces]\nallow_join = [\"net\", \"user\", \"pid\", \"ipc\", \"uts\", \"mount\"]\n";
        let host = host("hybrid-root.toml");
        for (k, ok) in [(T::Pid, false), (T::Mount, false), (T::Ipc, true)] {
            let r = compile(&policy(all), &pod_spec(&[k], Some(None)), &host, &Default::default());
            match ok {
                true => assert!(r.is_ok(), "{k:?}"),
                false => assert!(
                    matches!(
                        r.as_ref().unwrap_err().kind,
                        CompileErrorKind::JoinedNsOutsideUserNs { .. }
                    ),
                    "{k:?}"
                ),
            }
            let joined = compile(
                &policy(all),
                &pod_spec(&[k], Some(Some("/proc/4242/ns/user"))),
                &host,
                &Default::default(),
            )
            .unwrap();
            assert!(matches!(joined.plan.namespaces.user.value, Namespace::Join(_)));
        }
    }

    /// The mount that replaced the spec's one of `fstype` at `target`.
    fn mount_at<'p>(p: &'p LaunchPlan, target: &str) -> &'p Mount {
        p.mounts
            .iter()
            .find(|m| m.target == Path::new(target))
            .unwrap_or_else(|| panic!("no mount at {target}: {:?}", p.mounts))
    }

    /// Item 6 of issue 11: in the host's network namespace a fresh sysfs is
    /// the host's own superblock (EBUSY over the host's /sys, EPERM from an
    /// unowned user namespace), and a v1 `cgroup` mount without controllers
    /// is refused on a host whose controllers are mounted one by one (EBUSY):
    /// both become read-only recursive binds of the host's tree, with the
    /// rule; where the kernel would take them they stay as asked.
    #[test]
    fn kernel_filesystems_refused_here_become_ro_binds_of_the_host() {
        let runc = crate::spec::load_file(
            Path::new(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/golden/inputs/runc-spec.json"
            )),
            Path::new("."),
        )
        .unwrap();
        let host_net_on = |facts: &str| {
            compile(
                &policy("extends = \"network-host\""),
                &runc,
                &host(facts),
                &Default::default(),
            )
            .unwrap()
            .plan
        };
        let host_net = host_net_on("hybrid-root.toml");
        let sys = mount_at(&host_net, "/sys");
        assert_eq!((sys.fstype.as_str(), sys.source.as_str()), ("bind", "/sys"));
        assert!(sys.flags.contains(&MountFlag::Rbind) && sys.flags.contains(&MountFlag::Ro));
        assert_eq!(sys.from, Origin::rule("sysfs-in-host-netns-is-ro-bind"));
        let cg = mount_at(&host_net, "/sys/fs/cgroup");
        assert_eq!((cg.fstype.as_str(), cg.source.as_str()), ("bind", "/sys/fs/cgroup"));
        assert_eq!(cg.from, Origin::rule("cgroup-v1-mount-is-ro-bind"));
        // v2 only: the cgroup mount is left as the spec asks.
        let v2 = host_net_on("v2-root.toml");
        assert_eq!(mount_at(&v2, "/sys/fs/cgroup").fstype, "cgroup");
        // A new network namespace gets a sysfs of its own.
        let own = plan("extends = \"default\"", "hybrid-root.toml", &Default::default())
            .unwrap()
            .plan;
        assert_eq!(mount_at(&own, "/sys").fstype, "sysfs");
        // Preflight names such a mount in a plan file compiled elsewhere.
        let mut stale = host_net.clone();
        stale.mounts = own.mounts.clone();
        let unmet = crate::exec::preflight(&stale, &host("hybrid-root.toml"));
        assert!(
            unmet
                .iter()
                .any(|u| u.need.contains("fresh sysfs mount at /sys")
                    && u.fix.contains("sysfs-in-host-netns-is-ro-bind")),
            "{unmet:?}"
        );
        assert!(crate::exec::preflight(&host_net, &host("hybrid-root.toml")).is_empty());
    }

    #[test]
    fn console_socket_puts_the_pty_on_all_stdio() {
        let opts = CompileOptions {
            policy_from: None,
            console_socket: Some("/run/c.sock".into()),
            ..Default::default()
        };
        let p = plan("extends = \"default\"", "hybrid-root.toml", &opts).unwrap().plan;
        let ptys = p
            .supervisor
            .fds
            .iter()
            .filter(|e| e.source == FdSource::PtySlave)
            .count();
        assert_eq!(ptys, 6, "0-2 and the three stdio fds");
        assert_eq!(p.supervisor.session, Session::NewSessionWithControllingTty);
    }

    /// The built-in spec with `process.terminal` set.
    fn terminal_spec() -> SpecInput {
        let mut spec = sh();
        let mut process = spec.spec.process().clone().expect("the built-in spec has a process");
        process.set_terminal(Some(true));
        spec.spec.set_process(Some(process));
        spec
    }

    #[test]
    fn terminal_gives_a_relayed_pty_unless_a_console_socket_is_given() {
        let (pol, h) = (policy("extends = \"default\""), host("hybrid-root.toml"));
        let p = compile(&pol, &terminal_spec(), &h, &Default::default()).unwrap().plan;
        assert_eq!(p.stdio, Sourced::new(Stdio::Pty, Origin::spec("process.terminal")));
        assert_eq!(p.supervisor.session, Session::NewSessionWithControllingTty);
        let ptys: Vec<i32> = p
            .supervisor
            .fds
            .iter()
            .filter(|e| e.source == FdSource::PtySlave)
            .map(|e| e.fd.0)
            .collect();
        assert_eq!(ptys, [0, 1, 2, 5, 6, 7], "0-2 and the three stdio fds");
        let opts = CompileOptions {
            policy_from: None,
            console_socket: Some("/run/c.sock".into()),
            ..Default::default()
        };
        let c = compile(&pol, &terminal_spec(), &h, &opts).unwrap().plan;
        assert_eq!(c.stdio.value, Stdio::ConsoleSocket("/run/c.sock".into()));
        let n = compile(&pol, &sh(), &h, &Default::default()).unwrap().plan;
        assert_eq!(n.stdio.value, Stdio::Inherit, "terminal unset: the caller's stdio");
        assert_eq!(n.supervisor.session, Session::NewSession);
    }

    #[test]
    fn log_dirs_are_the_log_files_directories_once_in_fd_order() {
        let p = plan(
            "extends = \"default\"\n[logs]\nlog = \"/var/log/sbx/{id}.log\"\ndebug_log = \"/var/log/sbx/{id}.debug\"\nuser_log = \"/var/log/user/{id}.log\"\n",
            "hybrid-root.toml",
            &Default::default(),
        )
        .unwrap()
        .plan;
        let dirs: Vec<(&Path, u32)> = p.log_dirs.iter().map(|d| (d.path.as_path(), d.mode)).collect();
        assert_eq!(
            dirs,
            [(Path::new("/var/log/sbx"), 0o755), (Path::new("/var/log/user"), 0o755)]
        );
        assert!(p
            .log_dirs
            .iter()
            .all(|d| d.from == Origin::rule("log-dir-made-if-missing")));
        let none = plan("extends = \"default\"", "hybrid-root.toml", &Default::default())
            .unwrap()
            .plan;
        assert!(none.log_dirs.is_empty());
    }

    #[test]
    fn kvm_device_is_donated_after_io_fds_and_before_stdio() {
        let opts = CompileOptions {
            policy_from: None,
            io_fds: vec![9],
            ..Default::default()
        };
        let p = plan("extends = \"kvm\"", "hybrid-root.toml", &opts).unwrap().plan;
        let roles: Vec<(i32, FdRole)> = p.supervisor.fds.iter().map(|e| (e.fd.0, e.role)).collect();
        assert_eq!(
            &roles[3..],
            &[
                (3, FdRole::Control),
                (4, FdRole::Spec),
                (5, FdRole::Io),
                (6, FdRole::Device),
                (7, FdRole::StdioIn),
                (8, FdRole::StdioOut),
                (9, FdRole::StdioErr)
            ]
        );
        let dev = p.workload.fds.iter().find(|e| e.role == FdRole::Device).unwrap();
        assert_eq!((dev.fd, &dev.source), (Fd(3), &FdSource::Supervisor { fd: Fd(6) }));
        assert!(p
            .devices
            .iter()
            .any(|d| d.path == Path::new("/dev/kvm") && d.major == 10 && d.minor == 232));
    }

    /// The `vmm` built-in: the jailer's elements, each from its line.
    #[test]
    fn vmm_policy_jails_a_vmm_as_the_jailer_does() {
        let p = plan("extends = \"vmm\"", "hybrid-root.toml", &Default::default())
            .unwrap()
            .plan;
        let Platform::Kvm {
            extensions,
            extensions_from,
            ..
        } = &p.platform.value
        else {
            panic!("vmm is on the kvm platform: {:?}", p.platform)
        };
        assert!(extensions.contains("Irqfd") && extensions.contains("Ioeventfd") && extensions.len() == 14);
        assert!(
            extensions_from.to_string().starts_with("policy:builtin:vmm.toml:"),
            "{extensions_from}"
        );
        assert_eq!(p.root.change.value, RootChange::Chroot);
        assert_eq!(p.namespaces.pid.value, Namespace::New);
        assert_eq!(p.network.value, NetworkMode::Loopback);
        let tun = p.devices.iter().find(|d| d.path == Path::new("/dev/net/tun")).unwrap();
        assert_eq!((tun.major, tun.minor, tun.how), (10, 200, DeviceHow::Bind));
        assert!(
            tun.from.to_string().starts_with("policy:builtin:vmm.toml:"),
            "{}",
            tun.from
        );
        let nofile = &p.workload.rlimits[&crate::vocab::RlimitKind::Nofile];
        assert_eq!((nofile.soft, nofile.hard), (2048, 2048));
        assert!(p.workload.rlimits.contains_key(&crate::vocab::RlimitKind::Fsize));
        assert_eq!(p.stdio.value, Stdio::Inherit);
        // Without `[kvm] tun` (the kvm built-in) there is no tun node, and the
        // extension list is the default one.
        let k = plan("extends = \"kvm\"", "hybrid-root.toml", &Default::default())
            .unwrap()
            .plan;
        assert!(!k.devices.iter().any(|d| d.path == Path::new("/dev/net/tun")));
        assert!(
            matches!(&k.platform.value, Platform::Kvm { extensions_from: Origin::Default, extensions, .. } if extensions.len() == 3)
        );
    }

    /// `workload.daemonize`: stdio is /dev/null from the policy line; a
    /// spec's terminal is clamped (recorded), a console socket is refused.
    #[test]
    fn daemonize_makes_stdio_dev_null_and_clamps_a_terminal() {
        let text = "extends = \"vmm\"\n[workload]\npass_fds = [\"device\"]\ndaemonize = true";
        let p = plan(text, "hybrid-root.toml", &Default::default()).unwrap().plan;
        assert_eq!(p.stdio.value, Stdio::Null);
        assert_eq!(p.stdio.from.to_string(), "policy:test.toml:4");
        for e in p.supervisor.fds.iter().filter(|e| {
            matches!(
                e.role,
                FdRole::Stdin | FdRole::Stdout | FdRole::Stderr | FdRole::StdioIn | FdRole::StdioOut | FdRole::StdioErr
            )
        }) {
            assert_eq!(
                e.source,
                FdSource::File {
                    path: "/dev/null".into(),
                    open: OpenMode::ReadWrite,
                    mode: 0
                },
                "{e:?}"
            );
        }
        assert_eq!(p.supervisor.session, Session::NewSession);
        let c = compile(
            &policy(text),
            &runc_spec(|_| {}),
            &host("hybrid-root.toml"),
            &Default::default(),
        )
        .unwrap();
        assert_eq!(c.plan.stdio.value, Stdio::Null);
        let k = c.plan.clamps.iter().find(|k| k.field == "stdio").unwrap();
        assert_eq!((k.requested.as_str(), k.granted.as_str()), ("pty", "/dev/null"));
        let opts = CompileOptions {
            console_socket: Some("/tmp/console.sock".into()),
            ..Default::default()
        };
        let e = plan(text, "hybrid-root.toml", &opts).unwrap_err();
        assert!(e.to_string().contains("daemonize"), "{e}");
    }

    #[test]
    fn capability_above_ceiling_is_refused_or_clamped() {
        let mut spec = sh();
        let caps = oci_spec::runtime::LinuxCapabilitiesBuilder::default()
            .bounding(
                [
                    oci_spec::runtime::Capability::SysAdmin,
                    oci_spec::runtime::Capability::Kill,
                ]
                .into_iter()
                .collect::<oci_spec::runtime::Capabilities>(),
            )
            .build()
            .unwrap();
        let mut process = spec.spec.process().clone().unwrap();
        process.set_capabilities(Some(caps));
        spec.spec.set_process(Some(process));
        let deny = compile(
            &policy("extends = \"default\""),
            &spec,
            &host("hybrid-root.toml"),
            &Default::default(),
        )
        .unwrap_err();
        assert!(matches!(deny.kind, CompileErrorKind::CapabilityNotAllowed { .. }));
        let clamp = compile(
            &policy("extends = \"default\"\n[capabilities]\non_excess = \"clamp\""),
            &spec,
            &host("hybrid-root.toml"),
            &Default::default(),
        )
        .unwrap();
        let bounding = &clamp.plan.workload.capabilities.value.bounding;
        assert!(bounding.contains(&Cap(caps::Capability::CAP_KILL)));
        assert!(!bounding.contains(&Cap(caps::Capability::CAP_SYS_ADMIN)));
        let by_policy = |c: &&Clamp| matches!(c.ceiling, Origin::Policy { .. });
        assert_eq!(clamp.plan.clamps.iter().filter(by_policy).count(), 1);
        assert_eq!(clamp.warnings.len(), clamp.plan.clamps.len());
    }

    fn runc_spec(edit: impl FnOnce(&mut serde_json::Value)) -> SpecInput {
        input_with("runc-spec.json", edit)
    }

    /// tests/golden/inputs/`name` with `edit` applied.
    fn input_with(name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> SpecInput {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden/inputs")
            .join(name);
        let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        edit(&mut v);
        let mut s = crate::spec::load_file(&path, Path::new("/")).unwrap();
        s.spec = Box::new(serde_json::from_value(v).unwrap());
        s
    }

    fn caps_of(names: &[&str]) -> std::collections::BTreeSet<Cap> {
        names.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn clamped(c: &Compiled, rule: &str) -> Vec<(String, String)> {
        c.plan
            .clamps
            .iter()
            .filter(|k| k.ceiling == Origin::rule(rule))
            .map(|k| (k.field.clone(), k.requested.clone()))
            .collect()
    }

    const RUNC_CAPS: [&str; 3] = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

    /// runc's spec lists ambient capabilities but no inheritable ones: under
    /// the default policy (nobody, not root) the workload holds nothing but
    /// its bounding set, and the plan says why, rule by rule, with no error.
    #[test]
    fn runc_spec_ambient_without_inheritable_is_dropped_by_rule_not_refused() {
        for policy_name in ["default", "kvm"] {
            let c = compile(
                &policy(&format!("extends = \"{policy_name}\"")),
                &runc_spec(|_| {}),
                &host("hybrid-root.toml"),
                &Default::default(),
            )
            .unwrap();
            let w = &c.plan.workload.capabilities;
            assert_eq!(w.value.bounding, caps_of(&RUNC_CAPS));
            assert!(w.value.ambient.is_empty() && w.value.effective.is_empty() && w.value.permitted.is_empty());
            assert_eq!(w.from, Origin::rule("cap-kernel-rules"));
            let amb = clamped(&c, "cap-ambient-needs-permitted-and-inheritable");
            assert_eq!(amb.len(), 3, "{amb:?}");
            assert!(amb.iter().all(|(f, _)| f == "workload.capabilities.ambient"));
            let exec = clamped(&c, "cap-exec-non-root-keeps-ambient");
            assert_eq!(exec.len(), 6, "effective and permitted, 3 each: {exec:?}");
            assert_eq!(c.warnings.len(), c.plan.clamps.len());
        }
    }

    /// With an inheritable set the ambient capabilities are raised, and a
    /// non-root workload holds exactly them after exec.
    #[test]
    fn ambient_with_inheritable_is_what_a_non_root_workload_holds() {
        let spec = runc_spec(|v| {
            v["process"]["capabilities"]["inheritable"] = serde_json::json!(["CAP_NET_BIND_SERVICE", "CAP_SYS_ADMIN"]);
            v["process"]["capabilities"]["ambient"] = serde_json::json!(["CAP_NET_BIND_SERVICE"]);
        });
        let c = compile(
            &policy("extends = \"default\"\n[capabilities]\non_excess = \"clamp\""),
            &spec,
            &host("hybrid-root.toml"),
            &Default::default(),
        )
        .unwrap();
        let w = &c.plan.workload.capabilities.value;
        let nbs = caps_of(&["CAP_NET_BIND_SERVICE"]);
        assert_eq!(
            (&w.ambient, &w.inheritable, &w.effective, &w.permitted),
            (&nbs, &nbs, &nbs, &nbs)
        );
        // CAP_SYS_ADMIN: above the policy's ceiling (a policy clamp), not a rule.
        assert!(c
            .plan
            .clamps
            .iter()
            .any(|k| k.requested == "CAP_SYS_ADMIN" && matches!(k.ceiling, Origin::Policy { .. })));
    }

    /// Inheritable outside bounding and effective outside permitted are what
    /// capset refuses: dropped at compile time, never an EPERM at apply.
    #[test]
    fn capset_rules_are_applied_at_compile_time() {
        let spec = runc_spec(|v| {
            let c = &mut v["process"]["capabilities"];
            c["bounding"] = serde_json::json!(["CAP_KILL"]);
            c["inheritable"] = serde_json::json!(["CAP_KILL", "CAP_CHOWN"]);
            c["permitted"] = serde_json::json!(["CAP_KILL"]);
            c["effective"] = serde_json::json!(["CAP_KILL", "CAP_CHOWN"]);
            c["ambient"] = serde_json::json!([]);
        });
        let c = compile(
            &policy("extends = \"default\""),
            &spec,
            &host("hybrid-root.toml"),
            &Default::default(),
        )
        .unwrap();
        assert_eq!(
            clamped(&c, "cap-inheritable-within-bounding"),
            vec![("workload.capabilities.inheritable".to_string(), "CAP_CHOWN".to_string())]
        );
        assert_eq!(
            clamped(&c, "cap-effective-within-permitted"),
            vec![("workload.capabilities.effective".to_string(), "CAP_CHOWN".to_string())]
        );
    }

    /// Root in its user namespace (host networking keeps the spec's uid 0):
    /// execve makes permitted and effective the bounding set; what the spec
    /// left out of them is recorded as granted by that rule; and in the
    /// caller's user namespace nothing the caller lacks is planned.
    #[test]
    fn root_workload_holds_its_bounding_set() {
        let spec = runc_spec(|v| {
            let c = &mut v["process"]["capabilities"];
            c["bounding"] = serde_json::json!(["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SYS_RESOURCE"]);
            c["effective"] = serde_json::json!(["CAP_KILL"]);
        });
        let c = compile(
            &policy("extends = \"network-host\"\n[capabilities]\nallow = [\"CAP_KILL\", \"CAP_NET_BIND_SERVICE\", \"CAP_AUDIT_WRITE\", \"CAP_SYS_RESOURCE\"]"),
            &spec,
            &host("hybrid-root.toml"),
            &Default::default(),
        )
        .unwrap();
        let w = &c.plan.workload.capabilities.value;
        let two = caps_of(&["CAP_KILL", "CAP_NET_BIND_SERVICE"]);
        assert_eq!((&w.bounding, &w.effective, &w.permitted), (&two, &two, &two));
        assert_eq!(
            clamped(&c, "cap-exec-root-gains-bounding"),
            vec![(
                "workload.capabilities.effective".to_string(),
                "(not requested)".to_string()
            )]
        );
        assert!(clamped(&c, "cap-held-by-caller")
            .iter()
            .any(|(f, r)| f == "workload.capabilities.bounding" && r == "CAP_SYS_RESOURCE"));
        assert_eq!(c.plan.supervisor.capabilities, *w);
    }

    fn write_of(p: &LaunchPlan, file: &str) -> Option<String> {
        let c = p.cgroup.as_ref()?;
        c.writes
            .iter()
            .find(|w| w.file.ends_with(file))
            .map(|w| w.value.clone())
    }

    /// memory_swap is memory plus swap (v1 memsw); v2's swap.max is swap alone.
    #[test]
    fn memory_and_swap_keep_their_relation() {
        // docs/policy.md's first example: untrusted's 256MiB memory+swap under
        // a raised 1GiB memory is raised to it (no swap), by rule and recorded.
        for (h, file, value) in [
            ("v1-root.toml", "memory.memsw.limit_in_bytes", "1073741824"),
            ("v2-root.toml", "memory.swap.max", "0"),
        ] {
            let c = plan(
                "extends = \"untrusted\"\n[limits]\nmemory = \"1GiB\"",
                h,
                &Default::default(),
            )
            .unwrap();
            let l = &c.plan.cgroup.as_ref().unwrap().limits;
            let swap = l.memory_swap.as_ref().unwrap();
            assert_eq!(
                (swap.value.0, &swap.from),
                (1 << 30, &Origin::rule("memory-swap-at-least-memory"))
            );
            assert_eq!(write_of(&c.plan, file).as_deref(), Some(value), "{h}");
            let k = c
                .plan
                .clamps
                .iter()
                .find(|k| k.field == "cgroup.limits.memory_swap")
                .unwrap();
            assert_eq!((k.requested.as_str(), k.granted.as_str()), ("256MiB", "1GiB"));
            assert!(matches!(&k.requested_by, Origin::Policy { file, .. } if file.contains("untrusted")));
        }
        // Swap above memory: v1 writes the sum, v2 the difference.
        let p = "extends = \"default\"\n[limits]\nmemory = \"1GiB\"\nmemory_swap = \"1536MiB\"";
        let v1 = plan(p, "v1-root.toml", &Default::default()).unwrap().plan;
        assert_eq!(
            write_of(&v1, "memory.memsw.limit_in_bytes").as_deref(),
            Some("1610612736")
        );
        let v2 = plan(p, "v2-root.toml", &Default::default()).unwrap().plan;
        assert_eq!(write_of(&v2, "memory.swap.max").as_deref(), Some("536870912"));
        assert!(v2.clamps.is_empty());
        // memory+swap without memory: refused at compile time, not EINVAL at apply.
        let e = plan(
            "extends = \"default\"\n[limits]\nmemory_swap = \"1GiB\"",
            "v1-root.toml",
            &Default::default(),
        )
        .unwrap_err();
        assert!(matches!(e.kind, CompileErrorKind::SwapWithoutMemory { .. }), "{e}");
    }

    /// runtime-tools' linux_cgroups_memory: the spec's memory reservation,
    /// swappiness and disableOOMKiller are written (they were dropped
    /// unseen); v2 takes the reservation as memory.low and refuses the two
    /// it has no file for.
    #[test]
    fn memory_reservation_swappiness_and_oom_switch_are_applied() {
        // The container policy, a runc spec whose linux.resources.memory is `mem`.
        let on = |host_name: &str, mem: serde_json::Value| {
            let s = runc_spec(|v| v["linux"]["resources"] = serde_json::json!({ "memory": mem }));
            compile(
                &policy("extends = \"container\""),
                &s,
                &host(host_name),
                &Default::default(),
            )
        };
        let full = serde_json::json!({
            "limit": 50593792, "reservation": 40000000, "swappiness": 10, "disableOOMKiller": true
        });
        let p = on("v1-root.toml", full).unwrap().plan;
        for (file, value) in [
            ("memory.limit_in_bytes", "50593792"),
            ("memory.soft_limit_in_bytes", "40000000"),
            ("memory.swappiness", "10"),
            ("memory.oom_control", "1"),
        ] {
            assert_eq!(write_of(&p, file).as_deref(), Some(value), "{file}");
        }
        let writes = &p.cgroup.as_ref().unwrap().writes;
        let w = writes.iter().find(|w| w.file.ends_with("memory.oom_control")).unwrap();
        assert_eq!(w.from, Origin::spec("linux.resources.memory.disableOOMKiller"));
        // disableOOMKiller false and an unlimited reservation write nothing.
        let none = serde_json::json!({ "limit": 50593792, "reservation": -1, "disableOOMKiller": false });
        let p = on("v1-root.toml", none).unwrap().plan;
        assert_eq!(write_of(&p, "memory.oom_control"), None);
        assert_eq!(write_of(&p, "memory.soft_limit_in_bytes"), None);
        // v2: the reservation is memory.low; swappiness, which v2 lacks, is refused.
        let p = on(
            "v2-root.toml",
            serde_json::json!({ "limit": 50593792, "reservation": 40000000 }),
        );
        assert_eq!(write_of(&p.unwrap().plan, "memory.low").as_deref(), Some("40000000"));
        let e = on(
            "v2-root.toml",
            serde_json::json!({ "limit": 50593792, "swappiness": 10 }),
        )
        .unwrap_err();
        assert!(matches!(e.kind, CompileErrorKind::Unsupported { .. }), "{e}");
        // Swappiness is 0 to 100.
        let e = on(
            "v1-root.toml",
            serde_json::json!({ "limit": 50593792, "swappiness": 101 }),
        )
        .unwrap_err();
        assert!(e.to_string().contains("swappiness 101"), "{e}");
    }

    /// runtime-tools' linux_cgroups_blkio and ..._memory: resource settings
    /// sandboxctl does not apply were dropped unseen (a blkio throttle asked
    /// for, none set). A restriction is refused at its spec path; what
    /// engines fill in on their own, and the kernel memory limits kernels no
    /// longer enforce, get a warning naming them; an empty section is nothing.
    #[test]
    fn resources_not_applied_are_refused_or_named() {
        let on = |res: serde_json::Value| {
            let s = runc_spec(|v| v["linux"]["resources"] = res);
            compile(
                &policy("extends = \"container\""),
                &s,
                &host("v1-root.toml"),
                &Default::default(),
            )
        };
        for (res, path) in [
            (
                serde_json::json!({"blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 102400}]}}),
                "linux.resources.blockIO",
            ),
            (
                serde_json::json!({"blockIO": {"weight": 500}}),
                "linux.resources.blockIO",
            ),
            (
                serde_json::json!({"network": {"classID": 1}}),
                "linux.resources.network",
            ),
            (
                serde_json::json!({"cpu": {"realtimeRuntime": 1000}}),
                "linux.resources.cpu.realtimeRuntime",
            ),
        ] {
            let e = on(res).unwrap_err();
            assert!(
                matches!(&e.anchors[0], Anchor::Spec { path: p, .. } if p == path),
                "{path}: {e}"
            );
            assert!(e.to_string().contains("not applied"), "{e}");
        }
        let c = on(serde_json::json!({
            "memory": {"limit": 50593792, "kernel": 50593792, "kernelTCP": 50593792},
            "hugepageLimits": [{"pageSize": "2MB", "limit": 0}]
        }))
        .unwrap();
        let warned: Vec<_> = c
            .warnings
            .iter()
            .filter(|w| w.message.contains("is not applied"))
            .collect();
        assert_eq!(warned.len(), 2, "hugepageLimits and memory.kernel: {warned:?}");
        assert!(
            warned
                .iter()
                .any(|w| w.message.contains("memory.kernel is not applied: the kernel ignores")),
            "{warned:?}"
        );
        assert!(on(serde_json::json!({"blockIO": {}, "network": {"priorities": []}})).is_ok());
    }

    /// runtime-tools' linux_cgroups_memory: the spec's `memory.kernelTCP` is
    /// written to v1 `memory.kmem.tcp.limit_in_bytes` (it was set aside with
    /// a warning; kernels still enforce it), cut to the memory ceiling like
    /// any limit, never imposed; v2, which has no such file, refuses it.
    #[test]
    fn kernel_tcp_memory_is_applied_on_v1_within_the_memory_ceiling() {
        let on = |pol: &str, host_name: &str, mem: serde_json::Value| {
            let s = runc_spec(|v| v["linux"]["resources"] = serde_json::json!({ "memory": mem }));
            compile(&policy(pol), &s, &host(host_name), &Default::default())
        };
        let c = on(
            "extends = \"container\"",
            "v1-root.toml",
            serde_json::json!({"limit": 50593792, "kernelTCP": 10485760}),
        )
        .unwrap();
        assert_eq!(
            write_of(&c.plan, "memory.kmem.tcp.limit_in_bytes").as_deref(),
            Some("10485760")
        );
        let l = &c.plan.cgroup.as_ref().unwrap().limits;
        let t = l.memory_kernel_tcp.as_ref().unwrap();
        assert_eq!(t.from, Origin::spec("linux.resources.memory.kernelTCP"));
        assert!(
            c.warnings.iter().all(|w| !w.message.contains("kernelTCP")),
            "{:?}",
            c.warnings
        );
        // Above the memory ceiling: refused, or clamped to it.
        let deny = "extends = \"container\"\n[limits]\nmemory = \"64MiB\"\non_excess = \"deny\"";
        let e = on(deny, "v1-root.toml", serde_json::json!({"kernelTCP": 1073741824})).unwrap_err();
        assert!(matches!(e.kind, CompileErrorKind::LimitAboveCeiling { .. }), "{e}");
        let clamp = "extends = \"container\"\n[limits]\nmemory = \"64MiB\"\non_excess = \"clamp\"";
        let c = on(clamp, "v1-root.toml", serde_json::json!({"kernelTCP": 1073741824})).unwrap();
        assert_eq!(
            write_of(&c.plan, "memory.kmem.tcp.limit_in_bytes").as_deref(),
            Some("67108864")
        );
        assert!(c
            .plan
            .clamps
            .iter()
            .any(|k| k.field == "cgroup.limits.memory_kernel_tcp"));
        // Not asked: not imposed, though the policy has a memory ceiling.
        let c = on(clamp, "v1-root.toml", serde_json::json!({"limit": 1048576})).unwrap();
        assert_eq!(write_of(&c.plan, "memory.kmem.tcp.limit_in_bytes"), None);
        // v2 has no such file.
        let e = on(
            "extends = \"container\"",
            "v2-root.toml",
            serde_json::json!({"kernelTCP": 10485760}),
        )
        .unwrap_err();
        assert!(e.to_string().contains("memory_kernel_tcp on cgroup v2"), "{e}");
    }

    /// runtime-tools' linux_cgroups_devices: the spec's
    /// `linux.resources.devices` become a v1 devices cgroup (none was made),
    /// deny-all first, the spec's rules in their order, then the plan's
    /// nodes; a rule beyond the device ceiling is excess.
    #[test]
    fn devices_cgroup_rules_are_cut_to_the_device_ceiling() {
        let on = |pol: &str, host_name: &str, rules: serde_json::Value| {
            let s = runc_spec(|v| v["linux"]["resources"] = serde_json::json!({ "devices": rules }));
            compile(&policy(pol), &s, &host(host_name), &Default::default())
        };
        let fuse = "extends = \"container\"\n[devices]\nallowed = [\n\
            { type = \"c\", major = 1, minor = 3, host_path = \"/dev/null\" },\n\
            { type = \"c\", major = 10, minor = 229, host_path = \"/dev/fuse\" },\n]";
        let engine = serde_json::json!([
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rwm"},
            {"allow": true, "type": "c", "access": "m"},
            {"allow": true, "type": "c", "major": 136, "access": "rwm"},
        ]);
        let c = on(fuse, "hybrid-root.toml", engine.clone()).unwrap();
        let cg = c.plan.cgroup.as_ref().unwrap();
        let lines: Vec<(String, String)> = cg
            .writes
            .iter()
            .filter(|w| w.file.parent() == Some(Path::new("/sys/fs/cgroup/devices/sandboxctl/{id}")))
            .map(|w| {
                (
                    w.file.file_name().unwrap().to_string_lossy().into_owned(),
                    w.value.clone(),
                )
            })
            .collect();
        let want: Vec<(String, String)> = [
            ("devices.deny", "a"),
            ("devices.allow", "c 10:229 rwm"),
            ("devices.allow", "c *:* m"),
            ("devices.allow", "c 136:* rwm"),
            ("devices.allow", "c 1:3 rwm"),
            ("devices.allow", "c 5:2 rwm"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(lines, want);
        assert_eq!(
            cg.writes.iter().find(|w| w.value == "a").unwrap().from,
            Origin::rule("devices-cgroup-deny-all")
        );
        let d = cg
            .dirs
            .iter()
            .find(|d| d.controllers == ["devices"] && d.role == CgroupDirRole::Sandbox)
            .unwrap();
        assert!(cg.join.contains(&d.path.join("tasks")), "the supervisor joins it");
        // The container policy's ceiling lacks 10:229: refused, or (clamp) dropped.
        let e = on("extends = \"container\"", "hybrid-root.toml", engine.clone()).unwrap_err();
        assert!(matches!(e.kind, CompileErrorKind::DeviceRuleNotAllowed { .. }), "{e}");
        assert!(
            matches!(&e.anchors[0], Anchor::Spec { path, .. } if path == "linux.resources.devices[1]"),
            "{e}"
        );
        // containerd's spec: runc's default rules; those beyond the ceiling
        // (the console, tun) are left out by rule, not refused.
        let ctr = serde_json::json!([
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "access": "m"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": true, "type": "c", "major": 5, "minor": 1, "access": "rwm"},
            {"allow": true, "type": "c", "major": 10, "minor": 200, "access": "rwm"},
            {"allow": true, "type": "c", "major": 136, "access": "rwm"},
            {"allow": true, "type": "c", "major": 5, "minor": 2, "access": "rwm"},
        ]);
        let c = on("extends = \"container\"", "hybrid-root.toml", ctr).unwrap();
        let got: Vec<String> = c
            .plan
            .cgroup
            .as_ref()
            .unwrap()
            .limits
            .devices
            .iter()
            .map(|r| r.line())
            .collect();
        assert!(
            !got.iter().any(|l| l.starts_with("c 5:1") || l.starts_with("c 10:200")),
            "{got:?}"
        );
        let dropped: Vec<&str> = c
            .plan
            .clamps
            .iter()
            .map(|k| k.field.as_str())
            .filter(|f| f.starts_with("cgroup."))
            .collect();
        assert_eq!(dropped, ["cgroup.limits.devices[3]", "cgroup.limits.devices[4]"]);
        // A wildcard with read/write access, clamped: cut to the allowed numbers.
        let clamp = format!("{fuse}\non_excess = \"clamp\"");
        let c = on(
            &clamp,
            "hybrid-root.toml",
            serde_json::json!([{"allow": true, "type": "c", "access": "rw"}]),
        )
        .unwrap();
        let l = &c.plan.cgroup.as_ref().unwrap().limits.devices;
        let got: Vec<String> = l.iter().map(|r| r.line()).collect();
        assert_eq!(got[..2], ["c 1:3 rw".to_string(), "c 10:229 rw".to_string()], "{got:?}");
        assert!(c
            .plan
            .clamps
            .iter()
            .any(|k| k.field == "cgroup.limits.devices[0]" && k.requested == "c *:* rw"));
        // No spec rules: no devices cgroup. v2: none either, and a warning.
        let c = on("extends = \"container\"", "hybrid-root.toml", serde_json::json!([])).unwrap();
        assert!(c.plan.cgroup.is_none());
        let c = on(fuse, "v2-root.toml", engine).unwrap();
        assert!(c.plan.cgroup.as_ref().is_none_or(|cg| cg.limits.devices.is_empty()));
        assert!(
            c.warnings.iter().any(|w| w.message.contains("BPF_CGROUP_DEVICE")),
            "{:?}",
            c.warnings
        );
    }

    /// runtime-tools' linux_cgroups_relative_cpus: a v1 cpuset directory
    /// apply makes copies cpuset.cpus and cpuset.mems down (it starts empty,
    /// and then nothing can be limited below it).
    #[test]
    fn new_v1_cpuset_directories_inherit_cpus_and_mems() {
        let s = runc_spec(|v| {
            v["linux"]["cgroupsPath"] = serde_json::json!("testdir/cgrouptest/x");
            v["linux"]["resources"] = serde_json::json!({"cpu": {"cpus": "0"}});
        });
        let c = compile(
            &policy("extends = \"container\""),
            &s,
            &host("hybrid-root.toml"),
            &Default::default(),
        )
        .unwrap();
        let cg = c.plan.cgroup.unwrap();
        let cpuset: Vec<_> = cg
            .dirs
            .iter()
            .filter(|d| d.path.starts_with("/sys/fs/cgroup/cpuset"))
            .collect();
        assert_eq!(cpuset.len(), 3, "{:?}", cg.dirs);
        for d in cpuset {
            let i = d.inherit.as_ref().unwrap();
            assert_eq!(i.files, ["cpuset.cpus", "cpuset.mems"]);
            assert_eq!(i.root, Path::new("/sys/fs/cgroup/cpuset"));
            assert_eq!(i.from, Origin::rule("cgroup-v1-cpuset-inherit"));
        }
        assert!(cg
            .dirs
            .iter()
            .filter(|d| !d.path.starts_with("/sys/fs/cgroup/cpuset"))
            .all(|d| d.inherit.is_none()));
    }

    #[test]
    fn a_v1_freezer_directory_is_made_for_pause() {
        let p = "extends = \"default\"\n[limits]\nmemory = \"1GiB\"";
        for h in ["hybrid-root.toml", "v1-root.toml"] {
            let cg = plan(p, h, &Default::default()).unwrap().plan.cgroup.unwrap();
            let freezer: Vec<_> = cg.dirs.iter().filter(|d| d.controllers == ["freezer"]).collect();
            assert_eq!(freezer.len(), 2, "{h}: the parent and the sandbox's own: {:?}", cg.dirs);
            let own = freezer[1];
            assert_eq!(own.path, Path::new("/sys/fs/cgroup/freezer/sandboxctl/{id}"));
            assert_eq!((own.role, own.version), (CgroupDirRole::Sandbox, CgroupVersion::V1));
            assert_eq!(own.from, Some(Origin::rule(FREEZER_RULE)));
            assert!(cg.join.contains(&own.path.join("tasks")), "the supervisor joins it");
            let text = crate::plan::render::render(
                &plan(p, h, &Default::default()).unwrap().plan,
                crate::plan::render::Format::Text,
            );
            assert!(text.contains("freezer/sandboxctl/{id}/ made for freezer"), "{text}");
        }
        // v2: every cgroup has cgroup.freeze; nothing extra.
        let cg = plan(p, "v2-root.toml", &Default::default())
            .unwrap()
            .plan
            .cgroup
            .unwrap();
        assert!(cg.dirs.iter().all(|d| d.from.is_none()), "{:?}", cg.dirs);
        // doctor and apply agree: a host without the freezer (a plan made
        // for another machine) is named before apply would fail at mkdir.
        let compiled = plan(p, "hybrid-root.toml", &Default::default()).unwrap().plan;
        let mut h = host("hybrid-root.toml");
        h.cgroup.v1.remove("freezer");
        let unmet: Vec<String> = crate::exec::preflight(&compiled, &h)
            .iter()
            .map(|u| u.to_string())
            .collect();
        assert!(
            unmet
                .iter()
                .any(|u| u.contains("cgroup hierarchy for /sys/fs/cgroup/freezer/sandboxctl")
                    && u.contains(FREEZER_RULE)),
            "{unmet:#?}"
        );
        // No limits (the default policy, the embedded spec): no cgroup at all.
        let c = plan("extends = \"default\"", "hybrid-root.toml", &Default::default()).unwrap();
        assert!(c.plan.cgroup.is_none());
    }

    #[test]
    fn recompiling_the_cgroup_cuts_a_request_to_the_ceiling_as_compile_does() {
        let spec = |res: &str| SpecInput {
            name: "update request".into(),
            text: format!("{{\"ociVersion\":\"1.0.2\",\"linux\":{{\"resources\":{res}}}}}"),
            spec: Box::new(
                serde_json::from_str(&format!(
                    "{{\"ociVersion\":\"1.0.2\",\"linux\":{{\"resources\":{res}}}}}"
                ))
                .unwrap(),
            ),
            dir: None,
            builtin: false,
        };
        let h = host("hybrid-root.toml");
        let deny = policy("extends = \"default\"\n[limits]\nmemory = \"1GiB\"\npids = 100\non_excess = \"deny\"");
        let Recompiled {
            cgroup: cg, warnings, ..
        } = recompile_cgroup(&deny, &spec(r#"{"memory":{"limit":536870912}}"#), &h, Vec::new()).unwrap();
        let cg = cg.unwrap();
        assert_eq!(cg.limits.memory.as_ref().unwrap().value.0, 512 << 20);
        assert_eq!(
            cg.limits.pids.as_ref().unwrap().value,
            100,
            "the ceiling where nothing is asked"
        );
        assert!(warnings.is_empty());
        let e = recompile_cgroup(&deny, &spec(r#"{"pids":{"limit":1000}}"#), &h, Vec::new()).unwrap_err();
        assert!(matches!(e.kind, CompileErrorKind::LimitAboveCeiling { .. }), "{e}");
        let clamp = policy("extends = \"default\"\n[limits]\npids = 100\non_excess = \"clamp\"");
        let Recompiled {
            cgroup: cg,
            clamps,
            warnings,
        } = recompile_cgroup(&clamp, &spec(r#"{"pids":{"limit":1000}}"#), &h, Vec::new()).unwrap();
        assert_eq!(cg.unwrap().limits.pids.unwrap().value, 100);
        assert_eq!((warnings.len(), clamps.len()), (1, 1));
    }

    /// podman's spec (no `noNewPrivileges`: false) with `edit` applied.
    fn podman_spec_with(edit: impl FnOnce(&mut serde_json::Value)) -> SpecInput {
        input_with("podman.json", edit)
    }

    /// `spec` under a policy of `text`, on this kind of host.
    fn under(text: &str, spec: &SpecInput) -> Result<Compiled, CompileError> {
        compile(&policy(text), spec, &host("hybrid-root.toml"), &Default::default())
    }

    fn step_at(p: &LaunchPlan, s: Step) -> Option<usize> {
        p.steps.iter().position(|x| *x == s)
    }

    /// Issue 13: `[seccomp] no_new_privs` decides whether a spec may leave
    /// no_new_privs off with a filter. `container` lets it (the filter is
    /// then loaded before the credential and capability steps); `default`
    /// and `untrusted` force it, and say so with their line.
    #[test]
    fn no_new_privs_off_with_a_filter_only_where_the_policy_lets_the_spec_decide() {
        let spec = podman_spec_with(|_| {});
        assert_eq!(spec.spec.process().as_ref().unwrap().no_new_privileges(), None);
        let c = under("extends = \"container\"", &spec).unwrap().plan;
        assert!(c.workload.seccomp.is_some());
        assert!(!c.workload.no_new_privs.value);
        let Origin::Policy { file, .. } = &c.workload.no_new_privs.from else {
            panic!("{}", c.workload.no_new_privs.from)
        };
        assert_eq!(file, "builtin:container.toml");
        let early = step_at(&c, Step::SeccompBeforeCredentials).expect("early load");
        assert!(early < step_at(&c, Step::Credentials).unwrap() && early > step_at(&c, Step::SpawnWorkload).unwrap());
        assert_eq!(step_at(&c, Step::Seccomp), None);
        assert_eq!(step_at(&c, Step::NoNewPrivs), None);

        for (name, text) in [
            ("default", "extends = \"default\""),
            ("untrusted", "extends = \"untrusted\""),
        ] {
            let p = under(text, &spec).unwrap().plan;
            assert!(p.workload.no_new_privs.value, "{name}");
            let from = p.workload.no_new_privs.from.to_string();
            assert!(
                from.starts_with(&format!("policy:builtin:{name}.toml:")),
                "{name}: {from}"
            );
            assert!(step_at(&p, Step::NoNewPrivs) < step_at(&p, Step::Seccomp), "{name}");
            assert_eq!(step_at(&p, Step::SeccompBeforeCredentials), None, "{name}");
        }

        // The spec asking for it gets it under every policy, from the spec.
        let on = podman_spec_with(|v| v["process"]["noNewPrivileges"] = true.into());
        let p = under("extends = \"container\"", &on).unwrap().plan;
        assert!(p.workload.no_new_privs.value);
        assert_eq!(p.workload.no_new_privs.from, Origin::spec("process.noNewPrivileges"));
        assert_eq!(step_at(&p, Step::SeccompBeforeCredentials), None);

        // A policy file that does not set the key: the rule.
        let bare = policy("[capabilities]\non_excess = \"clamp\"\n[seccomp]\nsource = \"policy\"\nallow = [\"read\"]");
        let runc = runc_spec(|v| v["process"]["noNewPrivileges"] = false.into());
        let p = compile(&bare, &runc, &host("hybrid-root.toml"), &Default::default()).unwrap();
        assert!(p.plan.workload.no_new_privs.value);
        assert_eq!(
            p.plan.workload.no_new_privs.from,
            Origin::rule(process::NNP_FORCED_RULE)
        );
    }

    /// A filter loaded before the credential steps applies to them: one that
    /// would refuse their calls is refused at compile time, naming the calls
    /// and what refuses each.
    #[test]
    fn a_filter_that_would_refuse_the_setup_calls_is_refused_when_loaded_early() {
        let spec = podman_spec_with(|v| {
            v["linux"]["seccomp"] = serde_json::json!({
                "defaultAction": "SCMP_ACT_ERRNO",
                "syscalls": [
                    {"names": ["read", "write", "execve", "exit_group", "umask", "setgroups", "setresgid",
                               "setresuid", "chdir", "capget", "capset"], "action": "SCMP_ACT_ALLOW"},
                    {"names": ["prctl"], "action": "SCMP_ACT_ALLOW",
                     "args": [{"index": 0, "value": 38, "op": "SCMP_CMP_EQ"}]},
                ]
            });
        });
        let e = under("extends = \"container\"", &spec).unwrap_err();
        assert!(matches!(e.kind, CompileErrorKind::SeccompRefusesSetup { .. }), "{e}");
        let msg = e.to_string();
        assert!(msg.contains("prctl (allowed only with argument conditions"), "{msg}");
        assert!(!msg.contains("setresuid"), "{msg}");
        // podman's spec has no noNewPrivileges: the policy line is the anchor.
        assert!(
            matches!(e.anchors[..], [Anchor::Policy(At::File(_), _)]),
            "{:?}",
            e.anchors
        );
        // The same filter with no_new_privs is loaded last: no refusal.
        let on = podman_spec_with(|v| {
            v["process"]["noNewPrivileges"] = true.into();
            v["linux"]["seccomp"] = serde_json::json!({"defaultAction": "SCMP_ACT_ERRNO",
                "syscalls": [{"names": ["execve"], "action": "SCMP_ACT_ALLOW"}]});
        });
        under("extends = \"container\"", &on).unwrap();
    }

    /// In the caller's user namespace without CAP_SYS_ADMIN the filter cannot
    /// be loaded without no_new_privs: set by a rule, recorded as a clamp.
    #[test]
    fn without_cap_sys_admin_no_new_privs_stays_on_by_rule() {
        let pol = policy("extends = \"container\"");
        let spec = podman_spec_with(|_| {});
        let mut h = host("hybrid-root.toml");
        h.capabilities.remove(&Cap(caps::Capability::CAP_SYS_ADMIN));
        let opts = CompileOptions::default();
        let mut cx = Cx {
            policy: &pol,
            spec: &spec,
            host: &h,
            opts: &opts,
            clamps: Vec::new(),
            warnings: Vec::new(),
        };
        let user = |ns: Namespace| ns::UserNs {
            ns: Sourced::new(ns, Origin::Default),
            maps: IdMaps {
                uid: vec![],
                gid: vec![],
                setgroups: SetGroups::Allow,
                from: Origin::Default,
            },
            creds: Credentials {
                uid: crate::vocab::Uid(0),
                gid: crate::vocab::Gid(0),
                groups: vec![],
                from: Origin::Default,
            },
            apply_caps_to_supervisor: false,
            test_only: false,
        };
        let filter = seccomp::seccomp(&mut cx).unwrap().unwrap();
        let p = spec.spec.process().clone().unwrap();
        let n = process::no_new_privs(&mut cx, &user(Namespace::Host), &p, Some(&filter)).unwrap();
        assert!(n.value);
        assert_eq!(n.from, Origin::rule(process::NNP_NEEDS_ADMIN_RULE));
        assert_eq!(cx.clamps.len(), 1);
        assert_eq!(cx.clamps[0].field, "workload.no_new_privs");
        // In a user namespace of its own the workload holds it whatever the host's.
        let n = process::no_new_privs(&mut cx, &user(Namespace::New), &p, Some(&filter)).unwrap();
        assert!(!n.value);
    }
}
