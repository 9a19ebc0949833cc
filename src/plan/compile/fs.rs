//! The sandbox's filesystem: root, mounts (checked against the policy's
//! allowed host paths), masked and read-only paths, device nodes, hostname.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::error::{Anchor, CompileError, CompileErrorKind as K};
use super::ns::{check_abs, UserNs};
use super::Cx;
use crate::plan::types::*;
use crate::policy::{normalize, DeviceType, RootChangeName};
use crate::vocab::Origin;

/// Root path, how it is entered (pivot_root or chroot need CAP_SYS_ADMIN and
/// CAP_SYS_CHROOT in the host facts; user.mode current stays put), read-only.
pub(crate) fn root(cx: &mut Cx, user: &UserNs) -> Result<Root, CompileError> {
    let (path, path_from) = if cx.spec.builtin {
        match &cx.policy.root_path {
            Some(s) => (s.value.clone(), cx.at(&s.at)),
            None => (PathBuf::from("/"), Origin::Default),
        }
    } else {
        let Some(r) = cx.spec.spec.root() else {
            return Err(CompileError::new(K::Missing { what: "root".into() })
                .anchor(Anchor::spec("root", "required"))
                .help("add \"root\": {\"path\": \"rootfs\"} to config.json"));
        };
        let p = r.path();
        let abs = if p.is_absolute() {
            p.clone()
        } else {
            normalize(&cx.spec.dir.clone().unwrap_or_default().join(p))
        };
        if !abs.is_absolute() {
            return Err(CompileError::new(K::Unsupported {
                what: format!(
                    "root.path resolves to {}, a relative path: plans hold absolute host paths so they mean the same wherever they are applied",
                    abs.display()
                ),
            })
            .anchor(Anchor::spec("root.path", "relative, and the bundle directory is too"))
            .help("load the spec with an absolute base directory (the command line does), or pass --target-bundle"));
        }
        (abs, Origin::spec("root.path"))
    };
    let change = if user.test_only {
        Sourced::new(RootChange::None, cx.at(&cx.policy.user_mode.at))
    } else {
        let need = [caps::Capability::CAP_SYS_ADMIN, caps::Capability::CAP_SYS_CHROOT];
        let (how, change) = match cx.policy.root_change.value {
            RootChangeName::PivotRoot => ("pivot_root", RootChange::PivotRoot),
            RootChangeName::Chroot => ("chroot", RootChange::Chroot),
        };
        if !cx.host.holds(&need) {
            let missing: Vec<String> = need
                .iter()
                .filter(|c| !cx.host.capabilities.contains(&crate::vocab::Cap(**c)))
                .map(|c| c.to_string())
                .collect();
            return Err(CompileError::new(K::RootChangeNeedsCaps {
                how: how.into(),
                missing: missing.join(" and "),
            })
            .anchor(Anchor::Policy(cx.policy.root_change.at.clone(), "root change".into()))
            .anchor(Anchor::Host("capabilities".into()))
            .help("run sandboxctl as root, or use user.mode = \"current\" in a test-only policy"));
        }
        Sourced::new(change, cx.at(&cx.policy.root_change.at))
    };
    let spec_ro = cx.spec.spec.root().as_ref().and_then(|r| r.readonly()).unwrap_or(false);
    let readonly = if cx.policy.root_force_readonly.value {
        Sourced::new(true, cx.at(&cx.policy.root_force_readonly.at))
    } else {
        Sourced::new(spec_ro, Origin::spec("root.readonly"))
    };
    Ok(Root {
        path: Sourced::new(path, path_from),
        change,
        readonly,
    })
}

/// A kernel filesystem the spec mounts fresh that the kernel would refuse in
/// this sandbox, and the host path bound (recursively, read-only) in its
/// place, with the rule that says why; `None` when the mount works as asked.
///
/// - `sysfs` in the host's network namespace: a sysfs mount shows the
///   mounter's network namespace, so it would be the host's own sysfs
///   superblock, and the kernel refuses to mount a superblock over a mount of
///   itself (EBUSY, the root `/` case: the host's `/sys` is already there); in
///   a network namespace the sandbox's new user namespace does not own (one
///   joined), a fresh sysfs is refused outright (EPERM). runc and crun bind
///   the host's `/sys` then, as this does.
/// - `cgroup` (v1) from a new user namespace cannot be mounted at all; and on
///   a host with v1 hierarchies a `cgroup` mount without controller options
///   asks for every v1 controller in one hierarchy, which the kernel refuses
///   (EBUSY) where they are mounted one by one. The host's `/sys/fs/cgroup`
///   is bound instead.
///
/// Shared by the compiler (which makes the substitution) and preflight
/// (which names such a mount in a plan file as a need this host cannot meet).
pub fn host_bind_instead(
    fstype: &str,
    ns: &Namespaces,
    host: &crate::host::HostFacts,
) -> Option<(&'static str, &'static str)> {
    match fstype {
        "sysfs" => match (&ns.net.value, &ns.user.value) {
            (Namespace::Host, _) => Some(("/sys", "sysfs-in-host-netns-is-ro-bind")),
            (Namespace::Join(_), Namespace::New) => Some(("/sys", "sysfs-of-unowned-netns-is-ro-bind")),
            _ => None,
        },
        "cgroup" if ns.user.value != Namespace::Host => Some(("/sys/fs/cgroup", "cgroup-mount-in-user-ns-is-ro-bind")),
        "cgroup" if !host.cgroup.v1.is_empty() => Some(("/sys/fs/cgroup", "cgroup-v1-mount-is-ro-bind")),
        _ => None,
    }
}

/// Capabilities that would undo chroot mode (rule
/// chroot-mode-drops-chroot-and-admin): CAP_SYS_CHROOT climbs out of a
/// chroot, CAP_SYS_ADMIN could unmount the root moved over the old one.
/// Removed from every set in that mode, with a warning.
pub(crate) fn chroot_mode_caps(cx: &mut Cx, user: &UserNs, caps: Sourced<CapSets>) -> Sourced<CapSets> {
    if user.test_only || cx.policy.root_change.value != RootChangeName::Chroot {
        return caps;
    }
    let gone = [
        crate::vocab::Cap(caps::Capability::CAP_SYS_CHROOT),
        crate::vocab::Cap(caps::Capability::CAP_SYS_ADMIN),
    ];
    let Sourced { mut value, from } = caps;
    let mut removed = BTreeSet::new();
    for set in [
        &mut value.bounding,
        &mut value.effective,
        &mut value.inheritable,
        &mut value.permitted,
        &mut value.ambient,
    ] {
        for c in &gone {
            if set.remove(c) {
                removed.insert(c.to_string());
            }
        }
    }
    if removed.is_empty() {
        return Sourced::new(value, from);
    }
    cx.warnings.push(super::Warning {
        message: format!(
            "root.change = \"chroot\": {} removed from the workload's capabilities (they would undo the chroot)",
            removed.into_iter().collect::<Vec<_>>().join(" and ")
        ),
        anchors: vec![
            Anchor::spec("process.capabilities", "requested"),
            Anchor::Policy(cx.policy.root_change.at.clone(), "chroot mode".into()),
        ],
    });
    Sourced::new(value, Origin::rule("chroot-mode-drops-chroot-and-admin"))
}

/// The spec's mounts, in order, checked against the policy.
pub(crate) fn mounts(cx: &mut Cx, ns: &Namespaces, maps: &IdMaps) -> Result<Vec<Mount>, CompileError> {
    let spec_mounts = cx.spec.spec.mounts().clone().unwrap_or_default();
    let mut out = Vec::with_capacity(spec_mounts.len());
    for (i, m) in spec_mounts.iter().enumerate() {
        let jp = format!("mounts[{i}]");
        check_dest(m.destination(), &format!("{jp}.destination"))?;
        let mut flags = BTreeSet::new();
        let mut data = Vec::new();
        for o in m.options().clone().unwrap_or_default() {
            match MountFlag::from_option(&o) {
                Some(f) => {
                    flags.insert(f);
                }
                None if o == "rw" || o == "defaults" => {}
                // runc's and crun's extension (podman sets it on the tmpfs
                // of `--read-only`): copy the image's directory into the new
                // tmpfs. Not a kernel option (the kernel refuses it); this
                // build does not copy, and says so.
                None if o == "tmpcopyup" => cx.warnings.push(super::Warning {
                    message: format!(
                        "{jp}: option \"tmpcopyup\" (copy the image's {} into the tmpfs) is not supported; the \
                         tmpfs starts empty",
                        m.destination().display()
                    ),
                    anchors: vec![Anchor::spec(format!("{jp}.options"), "tmpcopyup")],
                }),
                None => data.push(o),
            }
        }
        let mut fstype = m.typ().clone().unwrap_or_else(|| "none".into());
        let mut source = m
            .source()
            .as_ref()
            .map(|s| s.display().to_string())
            .unwrap_or_else(|| fstype.clone());
        if fstype == "bind" {
            flags.insert(MountFlag::Bind);
        }
        let mut from = Origin::spec(&jp);
        if let Some((host_path, rule)) = host_bind_instead(&fstype, ns, cx.host) {
            fstype = "bind".into();
            source = host_path.into();
            flags.insert(MountFlag::Rbind);
            flags.insert(MountFlag::Ro);
            data.clear();
            from = Origin::rule(rule);
        }
        // devpts' gid= names a group of the sandbox's user namespace; one the
        // maps leave out makes the mount fail (EINVAL), so it is dropped and
        // the kernel's default (the mounter's gid) applies.
        if fstype == "devpts" && ns.user.value == Namespace::New {
            let mapped = |g: u32| {
                maps.gid
                    .iter()
                    .any(|m| g >= m.inside && (g as u64) < m.inside as u64 + m.count as u64)
            };
            let before = data.len();
            data.retain(|o| o.strip_prefix("gid=").and_then(|g| g.parse().ok()).is_none_or(mapped));
            if data.len() != before {
                from = Origin::rule("devpts-gid-unmapped-dropped");
            }
        }
        let mut mount = Mount {
            target: m.destination().clone(),
            fstype,
            source,
            flags,
            data: data.join(","),
            source_within: None,
            from,
        };
        if mount.is_bind() && mount.from == Origin::spec(&jp) {
            let src = PathBuf::from(&mount.source);
            // `..` after a symlink is resolved by the kernel from the link's
            // target, not lexically: refuse it rather than guess.
            no_parent(&src, &format!("{jp}.source"))?;
            let src = if src.is_absolute() {
                src
            } else {
                normalize(&cx.spec.dir.clone().unwrap_or_default().join(src))
            };
            mount.source = src.display().to_string();
            let Some(within) = allowed_host_path(cx, &src) else {
                let on = cx.policy.mount_on_excess.clone();
                let ceiling = cx.policy.mount_allowed.at.clone();
                cx.excess(
                    &on,
                    &ceiling,
                    &format!("mounts[{}]", mount.target.display()),
                    format!("bind {}", src.display()),
                    Anchor::spec(format!("{jp}.source"), "host path"),
                    "(mount dropped)".into(),
                    K::HostPathNotAllowed {
                        host_path: src.display().to_string(),
                        target: mount.target.display().to_string(),
                    },
                )?;
                continue;
            };
            mount.source_within = Some(within);
            if !mount.flags.contains(&MountFlag::Ro) && !cx.policy.mount_writable.value {
                let on = cx.policy.mount_on_excess.clone();
                let ceiling = cx.policy.mount_writable.at.clone();
                cx.excess(
                    &on,
                    &ceiling,
                    &format!("mounts[{}]", mount.target.display()),
                    "writable bind".into(),
                    Anchor::spec(format!("{jp}.options"), "no \"ro\" option"),
                    "read-only bind".into(),
                    K::WritableBind {
                        host_path: src.display().to_string(),
                        target: mount.target.display().to_string(),
                    },
                )?;
                mount.flags.insert(MountFlag::Ro);
            }
        }
        out.push(mount);
    }
    Ok(out)
}

/// The policy's allowed host path `p` lies under (by path components; `p`
/// has no `..`), with its policy line. Apply checks the resolved source
/// against it again.
fn allowed_host_path(cx: &Cx, p: &Path) -> Option<Sourced<PathBuf>> {
    let p = normalize(p);
    cx.policy
        .mount_allowed
        .value
        .iter()
        .find(|a| p.starts_with(&a.value))
        .map(|a| Sourced::new(normalize(&a.value), cx.at(&a.at)))
}

/// A destination inside the sandbox's root: absolute, and without `..`
/// (apply resolves it inside the root as well, without following links out).
fn check_dest(p: &Path, json_path: &str) -> Result<(), CompileError> {
    check_abs(p, json_path)?;
    no_parent(p, json_path)
}

/// Refuses a path with a `..` component, located at `json_path` in the spec.
fn no_parent(p: &Path, json_path: &str) -> Result<(), CompileError> {
    if p.components().any(|c| c == std::path::Component::ParentDir) {
        return Err(CompileError::new(K::ParentComponent {
            what: json_path.to_string(),
            path: p.display().to_string(),
        })
        .anchor(Anchor::spec(json_path, "\"..\" here"))
        .help("write the path without \"..\": destinations are resolved inside the root and bind sources under the allowed host paths"));
    }
    Ok(())
}

/// Masked and read-only paths from the spec.
pub(crate) fn masked_and_readonly(cx: &Cx) -> (Vec<Sourced<PathBuf>>, Vec<Sourced<PathBuf>>) {
    let list = |v: Option<&Vec<String>>, key: &str| -> Vec<Sourced<PathBuf>> {
        v.map(|v| {
            v.iter()
                .enumerate()
                .map(|(i, p)| Sourced::new(PathBuf::from(p), Origin::spec(format!("linux.{key}[{i}]"))))
                .collect()
        })
        .unwrap_or_default()
    };
    let l = cx.linux();
    (
        list(l.and_then(|l| l.masked_paths().as_ref()), "maskedPaths"),
        list(l.and_then(|l| l.readonly_paths().as_ref()), "readonlyPaths"),
    )
}

/// The OCI default devices every container gets (as far as the device
/// ceiling allows them).
const DEFAULT_DEVICES: [(&str, u64, u64); 6] = [
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

/// The policy's device ceiling, as the plan shows it.
pub(crate) fn device_ceiling(cx: &Cx) -> Vec<DeviceRule> {
    cx.policy
        .device_allowed
        .value
        .iter()
        .map(|d| DeviceRule {
            kind: match d.value.kind {
                DeviceType::Char => DeviceKind::Char,
                DeviceType::Block => DeviceKind::Block,
            },
            major: d.value.major,
            minor: d.value.minor,
            host_path: d.value.host_path.clone(),
            from: cx.at(&d.at),
        })
        .collect()
}

/// Device nodes: the OCI defaults, the spec's, and /dev/kvm (and
/// /dev/net/tun with `[kvm] tun`) on the kvm platform, each allowed by the device ceiling (or the platform). Inside a
/// user namespace mknod is not allowed, so nodes are bind mounts of the
/// host node the ceiling names for that number (`how = bind`, checked at
/// apply to be that device); with the host's user namespace, mknod.
/// The links the runtime spec asks every runtime to make in a /dev of its
/// own (a tmpfs mounted at /dev): /dev/fd, /dev/stdin, /dev/stdout,
/// /dev/stderr, and /dev/ptmx → pts/ptmx when a devpts is mounted at
/// /dev/pts. None where a planned mount or device already is. Programs rely
/// on them (images link their logs to /dev/stdout, shells use /dev/fd).
pub(crate) fn dev_links(mounts: &[Mount], devices: &[Device]) -> Vec<DevLink> {
    let mounted = |target: &str, fstype: &str| {
        mounts
            .iter()
            .any(|m| m.target == Path::new(target) && m.fstype == fstype && !m.is_bind())
    };
    if !mounted("/dev", "tmpfs") {
        return Vec::new();
    }
    let mut links = vec![
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
    ];
    if mounted("/dev/pts", "devpts") {
        links.push(("/dev/ptmx", "pts/ptmx"));
    }
    let taken = |p: &Path| mounts.iter().any(|m| m.target == p) || devices.iter().any(|d| d.path == p);
    links
        .into_iter()
        .filter(|(p, _)| !taken(Path::new(p)))
        .map(|(p, t)| DevLink {
            path: p.into(),
            target: t.into(),
            from: Origin::rule("oci-dev-links"),
        })
        .collect()
}

pub(crate) fn devices(
    cx: &mut Cx,
    platform: &Sourced<Platform>,
    ns: &Namespaces,
    ceiling: &[DeviceRule],
) -> Result<Vec<Device>, CompileError> {
    let how = if ns.user.value == Namespace::Host {
        DeviceHow::Mknod
    } else {
        DeviceHow::Bind
    };
    let allowed = |kind: DeviceKind, major: u64, minor: u64| {
        ceiling
            .iter()
            .find(|r| r.kind == kind && r.major == major && r.minor == minor)
    };
    let source = |r: &DeviceRule| (how == DeviceHow::Bind).then(|| r.host_path.clone());
    let mut out: Vec<Device> = DEFAULT_DEVICES
        .iter()
        .filter_map(|(p, major, minor)| {
            let rule = allowed(DeviceKind::Char, *major, *minor)?;
            Some(Device {
                path: p.into(),
                kind: DeviceKind::Char,
                major: *major,
                minor: *minor,
                mode: 0o666,
                how,
                source: source(rule),
                from: Origin::rule("oci-default-devices"),
                allowed_by: rule.from.clone(),
            })
        })
        .collect();
    let spec_devs = cx.linux().and_then(|l| l.devices().clone()).unwrap_or_default();
    for (i, d) in spec_devs.iter().enumerate() {
        let jp = format!("linux.devices[{i}]");
        check_dest(d.path(), &format!("{jp}.path"))?;
        let kind = match d.typ() {
            oci_spec::runtime::LinuxDeviceType::B => DeviceKind::Block,
            oci_spec::runtime::LinuxDeviceType::C | oci_spec::runtime::LinuxDeviceType::U => DeviceKind::Char,
            other => {
                return Err(CompileError::new(K::Unsupported {
                    what: format!("device type {other:?} is not supported (only c, u and b)"),
                })
                .anchor(Anchor::spec(format!("{jp}.type"), "device type")))
            }
        };
        let (major, minor) = (d.major() as u64, d.minor() as u64);
        let Some(rule) = allowed(kind, major, minor) else {
            let on = cx.policy.device_on_excess.clone();
            let at = cx.policy.device_allowed.at.clone();
            let letter = if kind == DeviceKind::Char { 'c' } else { 'b' };
            cx.excess(
                &on,
                &at,
                &format!("devices[{}]", d.path().display()),
                format!("{letter} {major}:{minor}"),
                Anchor::spec(jp, "device"),
                "(device dropped)".into(),
                K::DeviceNotAllowed {
                    path: d.path().display().to_string(),
                    kind: letter,
                    major,
                    minor,
                },
            )?;
            continue;
        };
        out.retain(|x| x.path != *d.path());
        out.push(Device {
            path: d.path().clone(),
            kind,
            major,
            minor,
            mode: d.file_mode().unwrap_or(0o666) & 0o777,
            how,
            source: source(rule),
            from: Origin::spec(jp),
            allowed_by: rule.from.clone(),
        });
    }
    if let Platform::Kvm { .. } = platform.value {
        let tun = &cx.policy.kvm_tun;
        let tun = tun.value.then(|| ("/dev/net/tun", 200, 0o666, cx.at(&tun.at)));
        let kvm = Some(("/dev/kvm", 232, 0o660, platform.from.clone()));
        for (path, minor, mode, from) in kvm.into_iter().chain(tun) {
            out.retain(|x| x.path != Path::new(path));
            out.push(Device {
                path: path.into(),
                kind: DeviceKind::Char,
                major: 10,
                minor,
                mode,
                how,
                source: (how == DeviceHow::Bind).then(|| path.into()),
                from: from.clone(),
                allowed_by: from,
            });
        }
    }
    Ok(out)
}

/// The spec's hostname.
pub(crate) fn hostname(cx: &Cx) -> Option<Sourced<String>> {
    cx.spec
        .spec
        .hostname()
        .as_ref()
        .filter(|h| !h.is_empty())
        .map(|h| Sourced::new(h.clone(), Origin::spec("hostname")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(target: &str, fstype: &str) -> Mount {
        Mount {
            target: target.into(),
            fstype: fstype.into(),
            source: fstype.into(),
            flags: BTreeSet::new(),
            data: String::new(),
            source_within: None,
            from: Origin::spec("mounts[0]"),
        }
    }

    #[test]
    fn dev_links_only_in_a_dev_of_the_sandbox_own() {
        let links = |m: &[Mount]| -> Vec<String> {
            dev_links(m, &[])
                .iter()
                .map(|l| format!("{} -> {}", l.path.display(), l.target.display()))
                .collect()
        };
        assert!(links(&[mount("/proc", "proc")]).is_empty(), "no /dev tmpfs: none");
        assert_eq!(
            links(&[mount("/dev", "tmpfs")]),
            [
                "/dev/fd -> /proc/self/fd",
                "/dev/stdin -> /proc/self/fd/0",
                "/dev/stdout -> /proc/self/fd/1",
                "/dev/stderr -> /proc/self/fd/2"
            ]
        );
        let with_pts = links(&[mount("/dev", "tmpfs"), mount("/dev/pts", "devpts")]);
        assert_eq!(with_pts.last().unwrap(), "/dev/ptmx -> pts/ptmx");
        // Where a planned mount already is, no link.
        let taken = links(&[mount("/dev", "tmpfs"), mount("/dev/stdout", "tmpfs")]);
        assert!(!taken.iter().any(|l| l.starts_with("/dev/stdout")), "{taken:?}");
    }
}
