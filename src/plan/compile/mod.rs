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
mod ns;
mod process;
mod seccomp;

use std::path::PathBuf;

use sha2::{Digest, Sha256};

pub use error::{Anchor, CompileError, CompileErrorKind, Warning};

use super::types::*;
use crate::host::HostFacts;
use crate::policy::{At, OnExcess, Policy, Setting};
use crate::spec::SpecInput;
use crate::vocab::Origin;

/// What the command line adds to policy, spec and host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompileOptions {
    /// `--id`: the sandbox id (default: derived from the inputs' hash).
    pub id: Option<String>,
    /// `--console-socket`: a pty's master is sent over this socket.
    pub console_socket: Option<PathBuf>,
    /// `--io-fd`: caller fds donated to the supervisor as I/O fds.
    pub io_fds: Vec<i32>,
    /// How the host facts were obtained (`detected` or a path), for the plan's header.
    pub host_name: String,
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
    let id = sandbox_id(&cx);
    let platform = ns::platform(&mut cx)?;
    let network = ns::network(&mut cx)?;
    let userns = ns::user(&mut cx, &network)?;
    let namespaces = ns::namespaces(&mut cx, &platform, &network, &userns)?;
    let root = fs::root(&mut cx, &userns)?;
    let mounts = fs::mounts(&mut cx, &namespaces, &userns.maps)?;
    let (masked_paths, readonly_paths) = fs::masked_and_readonly(&cx);
    let device_ceiling = fs::device_ceiling(&cx);
    let devices = fs::devices(&mut cx, &platform, &namespaces, &device_ceiling)?;
    let hostname = fs::hostname(&cx);
    let cgroup = cgroup::cgroup(&mut cx, &id.value)?;
    let stdio = fds::stdio(&cx);
    let supervisor_fds = fds::supervisor_fds(&cx, &id.value, &platform, &stdio);
    let workload_fds = fds::workload_fds(&cx, &supervisor_fds)?;
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
        &hostname,
        &network,
        &workload,
    );
    let inputs = Inputs {
        policies: policy.chain(),
        spec: spec.name.clone(),
        host: opts.host_name.clone(),
    };
    let plan = LaunchPlan {
        format: PLAN_FORMAT,
        id,
        inputs,
        platform,
        network,
        namespaces,
        id_maps: userns.maps,
        root,
        mounts,
        masked_paths,
        readonly_paths,
        devices,
        device_ceiling,
        hostname,
        cgroup,
        stdio,
        supervisor,
        workload,
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

    /// The spec's `linux` section, or an empty one.
    pub fn linux(&self) -> Option<&oci_spec::runtime::Linux> {
        self.spec.spec.linux().as_ref()
    }
}

/// `--id`, or `sbx-` and 12 hex digits of the inputs' hash: stable for the same
/// inputs, different for different ones.
fn sandbox_id(cx: &Cx) -> Sourced<String> {
    if let Some(id) = &cx.opts.id {
        return Sourced::new(id.clone(), Origin::Cli("--id".into()));
    }
    let mut h = Sha256::new();
    for s in &cx.policy.sources {
        h.update(s.name.as_bytes());
        h.update(s.text.as_bytes());
    }
    h.update(cx.spec.text.as_bytes());
    let hex = hex(&h.finalize());
    Sourced::new(format!("sbx-{}", &hex[..12]), Origin::rule("id-from-inputs-hash"))
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
    hostname: &Option<Sourced<String>>,
    network: &Sourced<NetworkMode>,
    w: &Workload,
) -> Vec<Step> {
    use Step::*;

    let mount_ns_new = ns.mount.value == Namespace::New;
    Step::ALL
        .iter()
        .copied()
        .filter(|s| match s {
            CgroupCreate | CgroupLimits | CgroupJoin => cgroup.is_some(),
            JoinNamespaces => ns.iter().any(|(_, n)| matches!(n.value, Namespace::Join(_))),
            IdMaps => ns.user.value == Namespace::New,
            Hostname => hostname.is_some() && ns.uts.value == Namespace::New,
            Network => network.value == NetworkMode::Loopback,
            MountPropagation => mount_ns_new,
            Mounts => !mounts.is_empty(),
            Devices => !devices.is_empty(),
            RootChange => root.change.value != super::types::RootChange::None,
            MaskedPaths => !masked.is_empty(),
            ReadonlyPaths => !readonly.is_empty(),
            RootReadonly => root.readonly.value,
            Rlimits => !w.rlimits.is_empty(),
            NoNewPrivs => w.no_new_privs.value,
            Seccomp => w.seccomp.is_some(),
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
        assert_ne!(a.plan.id, c.plan.id, "different inputs, different ids");
    }

    #[test]
    fn ptrace_keeps_host_pid_namespace() {
        let p = plan(
            "extends = \"default\"\nplatform = \"ptrace\"",
            "hybrid-root.toml",
            &Default::default(),
        )
        .unwrap()
        .plan;
        assert_eq!(p.namespaces.pid.value, Namespace::Host);
        assert_eq!(p.namespaces.pid.from, Origin::rule("ptrace-keeps-host-pid-ns"));
        let n = plan("extends = \"default\"", "hybrid-root.toml", &Default::default())
            .unwrap()
            .plan;
        assert_eq!(n.namespaces.pid.value, Namespace::New);
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

    #[test]
    fn console_socket_puts_the_pty_on_all_stdio() {
        let opts = CompileOptions {
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

    #[test]
    fn kvm_device_is_donated_after_io_fds_and_before_stdio() {
        let opts = CompileOptions {
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
        assert_eq!(clamp.plan.clamps.len(), 1);
        assert_eq!(clamp.warnings.len(), 1);
    }
}
