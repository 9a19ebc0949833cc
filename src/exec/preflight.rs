//! Preflight: compares what a plan needs with what the host facts say, before
//! any effect. Pure: the same plan and facts give the same answer anywhere.
//! Every unmet need is named at once, each with what to do about it.

use std::fmt;

use caps::Capability as C;

use crate::host::HostFacts;
use crate::plan::{DeviceHow, FdSource, LaunchPlan, Namespace, Platform, RootChange, SetGroups, Stdio, Step};
use crate::vocab::{Cap, Origin};

/// One need of the plan the host does not meet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnmetNeed {
    /// What the plan needs.
    pub need: String,
    /// The plan field that needs it.
    pub from: Origin,
    /// What to do about it.
    pub fix: String,
}

impl fmt::Display for UnmetNeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (needed by {}): {}", self.need, self.from, self.fix)
    }
}

fn need(v: &mut Vec<UnmetNeed>, need: impl Into<String>, from: &Origin, fix: impl Into<String>) {
    v.push(UnmetNeed {
        need: need.into(),
        from: from.clone(),
        fix: fix.into(),
    });
}

fn missing_caps(host: &HostFacts, caps: &[C]) -> Vec<String> {
    caps.iter()
        .filter(|c| !host.capabilities.contains(&Cap(**c)))
        .map(|c| c.to_string())
        .collect()
}

/// [`preflight`] and [`host_paths`]: every unmet need, as `doctor` prints
/// them and `apply` refuses on (the one list both use, so they agree).
pub fn check(plan: &LaunchPlan, host: &HostFacts) -> Vec<UnmetNeed> {
    let mut v = preflight(plan, host);
    v.extend(host_paths(plan));
    v.extend(super::log::unmet_log_paths(plan));
    v.extend(super::device_needs(plan));
    v.extend(super::linux::probe_namespace_paths(plan));
    v.extend(yama_needs(plan));
    v
}

/// What a foreground `apply` cannot do that `create`, `start` and `delete`
/// can: run OCI hooks (their phases are moments of the long-lived
/// lifecycle: `poststart` after `start`, `poststop` at `delete`). `apply`
/// and `doctor` both name it.
pub fn foreground_needs(plan: &LaunchPlan) -> Vec<UnmetNeed> {
    let Some(first) = plan.hooks.first() else {
        return Vec::new();
    };
    let mut v = Vec::new();
    need(
        &mut v,
        format!(
            "{} OCI hook(s) run at create, start and delete, which a foreground apply does not have",
            plan.hooks.len()
        ),
        &first.from,
        "run the spec with `sandboxctl run` (create, start, wait, delete), or create/start/delete as engines do",
    );
    v
}

/// The plan's host paths that this machine lacks: the root must be an
/// existing directory, given as an absolute path. Not pure (it stats the
/// path), unlike [`preflight`]: host facts do not describe arbitrary paths.
pub fn host_paths(plan: &LaunchPlan) -> Vec<UnmetNeed> {
    let mut v = Vec::new();
    let root = &plan.root.path;
    if !root.value.is_absolute() {
        need(
            &mut v,
            format!("root {} is a relative path", root.value.display()),
            &root.from,
            "compile the plan again: plans hold absolute paths (a relative one depends on where apply runs)",
        );
    } else {
        match std::fs::metadata(&root.value) {
            Ok(m) if m.is_dir() => {
                // apply opens the root with RESOLVE_NO_SYMLINKS: name a link
                // on its path now, as apply would refuse it (ELOOP).
                if let Some(link) = root
                    .value
                    .ancestors()
                    .find(|a| std::fs::symlink_metadata(a).is_ok_and(|m| m.file_type().is_symlink()))
                {
                    need(
                        &mut v,
                        format!(
                            "root {}: {} is a symbolic link, and apply enters the root without following any",
                            root.value.display(),
                            link.display()
                        ),
                        &root.from,
                        "compile the plan again where the bundle is (plan resolves links in the bundle's path and a linked rootfs), or name the real directory",
                    );
                }
            }
            Ok(_) => need(
                &mut v,
                format!("root {} is not a directory", root.value.display()),
                &root.from,
                "point root.path at the bundle's root filesystem directory",
            ),
            Err(e) => need(
                &mut v,
                format!("root {}: {e}", root.value.display()),
                &root.from,
                match &plan.inputs.bundle {
                    Some(b) => format!(
                        "the plan resolved the spec's root.path from bundle {} ({}); put the bundle there, or compile the plan again where the bundle is",
                        b.value.display(),
                        b.from
                    ),
                    None => "create the root directory, or fix root.path".to_string(),
                },
            ),
        }
    }
    v
}

/// The first kernel with every call the mounts and devices steps need
/// (openat2 5.6, open_tree/move_mount 5.2; without mount_setattr, 5.12, a
/// remount walk of /proc/self/mountinfo does its work).
pub const MOUNT_API_KERNEL: (u32, u32) = (5, 6);

/// The oldest kernel the ptrace platform's tracer runs on
/// (`PTRACE_GET_SYSCALL_INFO`).
pub const TRACE_KERNEL: (u32, u32) = (5, 3);

/// Platform ptrace: the workload's `PTRACE_TRACEME` fails (EPERM) when Yama
/// forbids every attach (`kernel.yama.ptrace_scope = 3`). Not pure: host
/// facts do not hold the setting.
pub fn yama_needs(plan: &LaunchPlan) -> Vec<UnmetNeed> {
    yama_needs_at(plan, std::path::Path::new("/proc/sys/kernel/yama/ptrace_scope"))
}

fn yama_needs_at(plan: &LaunchPlan, file: &std::path::Path) -> Vec<UnmetNeed> {
    let mut v = Vec::new();
    if plan.platform.value != Platform::Ptrace {
        return v;
    }
    if let Ok(scope) = std::fs::read_to_string(file) {
        if scope.trim() == "3" {
            need(
                &mut v,
                "the workload asks the supervisor to trace it (PTRACE_TRACEME), and Yama forbids every ptrace attach (kernel.yama.ptrace_scope = 3)",
                &plan.platform.from,
                "use another platform: scope 3 cannot be lowered without a reboot",
            );
        }
    }
    v
}

/// Whether a kernel release (`6.18.44-fc`) is older than `want`; an
/// unreadable release counts as new enough (apply then names the call).
fn kernel_below(release: &str, want: (u32, u32)) -> bool {
    let mut it = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse::<u32>().ok());
    match (it.next().flatten(), it.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) < want,
        _ => false,
    }
}

/// Lists every need of `plan` that `host` does not meet (empty: go).
pub fn preflight(plan: &LaunchPlan, host: &HostFacts) -> Vec<UnmetNeed> {
    let mut v = Vec::new();
    let ns = &plan.namespaces;
    let new_user = ns.user.value == Namespace::New;

    if new_user && !host.user_namespaces {
        need(&mut v, "a new user namespace", &ns.user.from, "enable user namespaces (sysctl user.max_user_namespaces > 0), or use a policy that keeps the host user namespace");
    }
    if new_user && (!plan.id_maps.uid.is_empty() || !plan.id_maps.gid.is_empty()) {
        let m = missing_caps(host, &[C::CAP_SETUID, C::CAP_SETGID]);
        if !m.is_empty() {
            need(
                &mut v,
                format!("writing uid/gid maps for other ids needs {}", m.join(", ")),
                &plan.id_maps.from,
                "run apply as root (or with those capabilities), or map only your own uid",
            );
        }
    }
    if let Some(o) = plan.workload.oom_score_adj.as_ref().filter(|o| o.value < 0) {
        if !missing_caps(host, &[C::CAP_SYS_RESOURCE]).is_empty() {
            need(
                &mut v,
                format!("lowering the OOM score to {} needs CAP_SYS_RESOURCE", o.value),
                &o.from,
                "run sandboxctl with CAP_SYS_RESOURCE, or leave process.oomScoreAdj at 0 or above",
            );
        }
    }
    let joins = ns.iter().any(|(_, n)| matches!(n.value, Namespace::Join(_)));
    if joins && !missing_caps(host, &[C::CAP_SYS_ADMIN]).is_empty() {
        need(
            &mut v,
            "setns into a named namespace needs CAP_SYS_ADMIN",
            &ns.net.from,
            "run apply as root",
        );
    }
    if !new_user {
        let mounts = !plan.mounts.is_empty() || plan.root.change.value != RootChange::None;
        let mut caps = Vec::new();
        if mounts {
            caps.push(C::CAP_SYS_ADMIN);
        }
        if plan.root.change.value != RootChange::None {
            caps.push(C::CAP_SYS_CHROOT);
        }
        let m = missing_caps(host, &caps);
        if !m.is_empty() {
            need(
                &mut v,
                format!(
                    "mounts and the root change without a new user namespace need {}",
                    m.join(", ")
                ),
                &plan.root.change.from,
                "run apply as root, or use a new user namespace",
            );
        }
    }
    if ns.user.value == Namespace::Host && !missing_caps(host, &[C::CAP_SETPCAP]).is_empty() {
        need(
            &mut v,
            "dropping capabilities from the bounding set in the caller's user namespace needs CAP_SETPCAP",
            &plan.workload.capabilities.from,
            "run apply as root, or use a policy with a new user namespace",
        );
    }
    // A joined mount namespace is the policy's choice (`namespaces.allow_join`
    // lists `mount`): its owner's mounts change, as the plan says. The
    // host's own never.
    if plan.steps.contains(&Step::MountPropagation) && ns.mount.value == Namespace::Host {
        need(
            &mut v,
            "making / private in the caller's mount namespace would change the host's mounts",
            &ns.mount.from,
            "plan a new mount namespace (or join one by path)",
        );
    }
    for m in &plan.mounts {
        if let Some((host_path, rule)) = crate::plan::compile::host_bind_instead(&m.fstype, ns, host) {
            need(
                &mut v,
                format!(
                    "a fresh {} mount at {}, which the kernel refuses in this sandbox's namespaces on this host",
                    m.fstype,
                    m.target.display()
                ),
                &m.from,
                format!(
                    "recompile the plan: the compiler binds the host's {host_path} read-only instead (rule:{rule})"
                ),
            );
        }
    }
    if (plan.steps.contains(&Step::Mounts) || plan.steps.contains(&Step::Devices))
        && kernel_below(&host.kernel, MOUNT_API_KERNEL)
    {
        need(
            &mut v,
            format!(
                "Linux {}.{} or later: destinations are resolved inside the root with openat2 and binds made \
                 with open_tree/move_mount (host kernel {})",
                MOUNT_API_KERNEL.0, MOUNT_API_KERNEL.1, host.kernel
            ),
            &plan.root.path.from,
            "run on a newer kernel",
        );
    }
    for d in &plan.devices {
        if d.how == DeviceHow::Mknod {
            if new_user {
                need(
                    &mut v,
                    format!("mknod {} inside a new user namespace", d.path.display()),
                    &d.from,
                    "bind the host's node instead (device how = bind)",
                );
            } else if !missing_caps(host, &[C::CAP_MKNOD]).is_empty() {
                need(
                    &mut v,
                    format!("mknod {} needs CAP_MKNOD", d.path.display()),
                    &d.from,
                    "run apply as root, or bind the host's node",
                );
            }
        }
    }
    if new_user && plan.id_maps.setgroups == SetGroups::Deny && !plan.workload.credentials.groups.is_empty() {
        need(
            &mut v,
            "supplementary groups with setgroups denied",
            &plan.workload.credentials.from,
            "allow setgroups in the plan, or drop the groups",
        );
    }

    if let Some(cg) = &plan.cgroup {
        for d in &cg.dirs {
            let known = host.cgroup.v1.values().any(|m| d.path.starts_with(m))
                || host.cgroup.v2.as_ref().is_some_and(|v2| d.path.starts_with(&v2.mount));
            if !known {
                need(
                    &mut v,
                    format!("cgroup hierarchy for {}", d.path.display()),
                    d.from.as_ref().unwrap_or(&cg.path.from),
                    format!(
                        "mount the {} controller(s), or compile the plan against these host facts",
                        d.controllers.join(",")
                    ),
                );
            }
        }
        if host.uid.0 != 0 && !missing_caps(host, &[C::CAP_DAC_OVERRIDE]).is_empty() {
            need(
                &mut v,
                "writing cgroup files",
                &cg.path.from,
                "run apply as root, or delegate a cgroup subtree to your user",
            );
        }
    }

    if plan.platform.value == Platform::Ptrace && kernel_below(&host.kernel, TRACE_KERNEL) {
        need(
            &mut v,
            format!(
                "the ptrace platform's tracer reads each call with PTRACE_GET_SYSCALL_INFO (Linux {}.{}; host has {})",
                TRACE_KERNEL.0, TRACE_KERNEL.1, host.kernel
            ),
            &plan.platform.from,
            "use a newer kernel, or another platform",
        );
    }

    if let Platform::Kvm {
        api_version,
        extensions,
        extensions_from,
    } = &plan.platform.value
    {
        match &host.kvm {
            None => need(
                &mut v,
                "/dev/kvm",
                &plan.platform.from,
                "load the kvm module (kvm_intel or kvm_amd) and give the caller access to /dev/kvm",
            ),
            Some(k) => {
                if k.api_version != *api_version {
                    need(
                        &mut v,
                        format!("KVM API version {api_version} (host has {})", k.api_version),
                        &plan.platform.from,
                        "use a kernel with this KVM API (every kernel since 2.6.22 has 12)",
                    );
                }
                for e in extensions.difference(&k.extensions) {
                    need(
                        &mut v,
                        format!("KVM extension {e} (KVM_CHECK_EXTENSION says the host's /dev/kvm lacks it)"),
                        extensions_from,
                        "use a host (kernel, CPU, nested virtualization setting) whose KVM offers it, or drop it from the policy's [kvm] extensions",
                    );
                }
            }
        }
    }

    if !host.capabilities.contains(&Cap(C::CAP_SYS_RESOURCE)) {
        for (kind, r) in &plan.workload.rlimits {
            if let Some(h) = host.rlimits.get(kind) {
                if r.hard > h.hard || r.soft > r.hard {
                    need(&mut v, format!("{kind} {}/{} above the caller's hard limit {}", r.soft, r.hard, h.hard), &r.from, format!("the caller lacks CAP_SYS_RESOURCE, so a hard limit cannot be raised: lower the limit to at most {} in the policy or spec, or raise the caller's hard limit", h.hard));
                }
            }
        }
    }

    for e in plan.supervisor.fds.iter() {
        match e.source {
            FdSource::Supervisor { .. } => need(
                &mut v,
                format!("supervisor fd {} from {:?}", e.fd.0, e.source),
                &e.from,
                "not supported: supervisor fds come from the caller or the launcher",
            ),
            FdSource::PtySlave if plan.stdio.value == Stdio::Inherit => need(
                &mut v,
                format!("supervisor fd {}: a pty slave without a pty", e.fd.0),
                &e.from,
                "give a console socket (stdio console_socket) or a relayed pty (stdio pty), or take the fd from the caller",
            ),
            _ => {}
        }
    }
    for e in plan.workload.fds.iter() {
        if !matches!(e.source, FdSource::Supervisor { .. }) {
            need(
                &mut v,
                format!("workload fd {} not inherited from the supervisor", e.fd.0),
                &e.from,
                "workload fds must name a supervisor fd",
            );
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::testsupport::sample_host;
    use crate::plan::sample::Sample;

    fn ptrace_plan() -> LaunchPlan {
        let mut p = Sample::applied(std::path::Path::new("/r")).plan();
        p.platform.value = Platform::Ptrace;
        p
    }

    /// Issue 15: doctor names what the tracer needs, as apply would fail on it.
    #[test]
    fn ptrace_names_an_old_kernel_and_yama_scope_3() {
        let mut host = sample_host();
        host.kernel = "5.2.0".into();
        let v = preflight(&ptrace_plan(), &host);
        assert!(v.iter().any(|u| u.need.contains("PTRACE_GET_SYSCALL_INFO")), "{v:?}");
        host.kernel = "6.1.0".into();
        assert!(preflight(&ptrace_plan(), &host).is_empty());
        let dir = std::env::temp_dir().join(format!("sbx-yama-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("ptrace_scope");
        std::fs::write(&f, "3\n").unwrap();
        let v = yama_needs_at(&ptrace_plan(), &f);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].need.contains("ptrace_scope = 3"));
        let native = Sample::applied(std::path::Path::new("/r")).plan();
        assert!(yama_needs_at(&native, &f).is_empty());
        std::fs::write(&f, "1\n").unwrap();
        assert!(yama_needs_at(&ptrace_plan(), &f).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
