//! The cgroup: limits (the spec's `linux.resources` cut to the policy's
//! ceilings, the ceilings imposed when the spec sets none), and every
//! directory and file write resolved against the host's hierarchies — v1, v2
//! or hybrid — so the interpreter only makes, writes and removes.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::path::PathBuf;

use super::error::{Anchor, CompileError, CompileErrorKind as K};
use super::Cx;
use crate::host::CgroupHierarchy;
use crate::plan::types::*;
use crate::policy::Setting;
use crate::vocab::{Bytes, Origin};

/// At or above this a memory limit means "unset" (the seed's threshold).
pub const MEMORY_UNSET: u64 = 0x7fff_ffff_ffff_f000;

/// The rule that makes a v1 `freezer` directory for `pause`.
pub const FREEZER_RULE: &str = "cgroup-freezer-for-pause";
/// The files a new v1 cpuset directory copies from its nearest filled
/// ancestor (`rule:cgroup-v1-cpuset-inherit`).
pub const CPUSET_INHERITED: [&str; 2] = ["cpuset.cpus", "cpuset.mems"];
/// The rule of [`CPUSET_INHERITED`].
pub const CPUSET_INHERIT_RULE: &str = "cgroup-v1-cpuset-inherit";
/// The rule an engine's spec (`linux.cgroupsPath`) gets cpu, cpuacct and
/// blkio directories by on v1: engines read statistics and update the CPU
/// share there.
pub const ENGINE_RULE: &str = "cgroup-engine-controllers";

/// A requested limit.
enum Req<T> {
    Value(T),
    Unlimited,
}

/// Cuts one request to its ceiling.
fn limit<T: Copy + PartialOrd + Display>(
    cx: &mut Cx,
    what: &str,
    req: Option<(Req<T>, String)>,
    ceiling: Option<Setting<T>>,
) -> Result<Option<Sourced<T>>, CompileError> {
    let on = cx.policy.limits_on_excess.clone();
    match (req, ceiling) {
        (None, None) | (Some((Req::Unlimited, _)), None) => Ok(None),
        (Some((Req::Value(v), path)), None) => Ok(Some(Sourced::new(v, Origin::Spec(path)))),
        (None, Some(c)) => Ok(Some(Sourced::new(c.value, cx.at(&c.at)))),
        (Some((r, path)), Some(c)) => {
            let (over, shown) = match r {
                Req::Value(v) if v <= c.value => return Ok(Some(Sourced::new(v, Origin::Spec(path)))),
                Req::Value(v) => (true, v.to_string()),
                Req::Unlimited => (true, "unlimited".to_string()),
            };
            debug_assert!(over);
            cx.excess(
                &on,
                &c.at,
                &format!("cgroup.limits.{what}"),
                shown.clone(),
                Anchor::spec(&path, "requested"),
                c.value.to_string(),
                K::LimitAboveCeiling {
                    what: what.into(),
                    requested: shown,
                    ceiling: c.value.to_string(),
                },
            )?;
            Ok(Some(Sourced::new(c.value, cx.at(&c.at))))
        }
    }
}

/// The anchor of a limit's origin: its spec path, or the policy line of
/// `setting`.
fn anchor_of(from: &Origin, setting: Option<&Setting<Bytes>>, label: &str) -> Anchor {
    match (from, setting) {
        (Origin::Spec(p), _) => Anchor::spec(p.clone(), label),
        (_, Some(s)) => Anchor::Policy(s.at.clone(), label.into()),
        _ => Anchor::spec("linux.resources.memory", label),
    }
}

/// The relation of memory and memory+swap (`memory_swap` is memory plus swap,
/// as the OCI spec's `memory.swap` and cgroup v1's memsw are; cgroup v2's
/// `memory.swap.max` is swap alone, memory_swap − memory). The swap allowed is
/// memory_swap − memory, never below zero:
/// - memory+swap without a memory limit is an error (v1 refuses it; the swap
///   allowed is undefined);
/// - memory+swap below memory, both from the spec, is the spec's own
///   contradiction: an error (runc refuses it too);
/// - memory+swap below memory otherwise (a policy that raises `memory` over
///   the `memory_swap` it extends, or a ceiling imposed beside a spec's
///   memory) is raised to the memory limit — no swap — by
///   `rule:memory-swap-at-least-memory`, recorded as a clamp.
fn swap_at_least_memory(
    cx: &mut Cx,
    memory: Option<&Sourced<Bytes>>,
    swap: Option<Sourced<Bytes>>,
) -> Result<Option<Sourced<Bytes>>, CompileError> {
    let Some(s) = swap else {
        return Ok(None);
    };
    let swap_anchor = anchor_of(&s.from, cx.policy.memory_swap.as_ref(), "memory+swap");
    let Some(m) = memory else {
        return Err(CompileError::new(K::SwapWithoutMemory {
            swap: s.value.to_string(),
        })
        .anchor(swap_anchor)
        .help("set a memory limit too (policy limits.memory or the spec's linux.resources.memory.limit)"));
    };
    if s.value >= m.value {
        return Ok(Some(s));
    }
    let mem_anchor = anchor_of(&m.from, cx.policy.memory.as_ref(), "memory");
    if matches!((&s.from, &m.from), (Origin::Spec(_), Origin::Spec(_))) {
        return Err(CompileError::new(K::SwapBelowMemory {
            swap: s.value.to_string(),
            memory: m.value.to_string(),
        })
        .anchor(swap_anchor)
        .anchor(mem_anchor)
        .help(format!(
            "set linux.resources.memory.swap to at least {} (equal to the limit means no swap)",
            m.value.0
        )));
    }
    cx.rule_clamp(
        "cgroup.limits.memory_swap",
        s.value.to_string(),
        swap_anchor,
        m.value.to_string(),
        "memory-swap-at-least-memory",
        "memory+swap cannot be below the memory limit; raised to it, which allows no swap",
    );
    Ok(Some(Sourced::new(m.value, Origin::rule("memory-swap-at-least-memory"))))
}

/// The limits, then the directories and writes. `devices` are the devices
/// cgroup's rules ([`device_rules`], or a running sandbox's under `update`).
pub(crate) fn cgroup(cx: &mut Cx, devices: Vec<DeviceCgroupRule>) -> Result<Option<CgroupPlan>, CompileError> {
    let mut limits = limits(cx)?;
    limits.devices = devices;
    if limits == CgroupLimits::default() {
        // No cgroup is made, but a path that leaves the hierarchy is still
        // refused: the spec is wrong either way.
        if let Some(p) = cx.linux().and_then(|l| l.cgroups_path().clone()) {
            let s = p.display().to_string();
            if !s.contains(':') {
                normalise_cgroup_path(&s)?;
            }
        }
        return Ok(None);
    }
    let path = match cx.linux().and_then(|l| l.cgroups_path().clone()) {
        Some(p) => {
            let s = p.display().to_string();
            if s.contains(':') {
                return Err(CompileError::new(K::Unsupported {
                    what: format!("systemd cgroup path \"{s}\" is not supported: sandboxctl manages cgroupfs directly"),
                })
                .anchor(Anchor::spec("linux.cgroupsPath", "systemd slice:prefix:name form"))
                .help("use a path like /mygroup/mycontainer, or drop linux.cgroupsPath to get sandboxctl/<id>"));
            }
            Sourced::new(normalise_cgroup_path(&s)?, Origin::spec("linux.cgroupsPath"))
        }
        None => Sourced::new(
            format!("sandboxctl/{ID_PLACEHOLDER}"),
            Origin::rule("cgroup-under-sandboxctl"),
        ),
    };
    layout(cx, path, limits)
}

/// The spec's `linux.resources` cut to the policy's ceilings (the ceilings
/// imposed where the spec asks nothing).
fn limits(cx: &mut Cx) -> Result<CgroupLimits, CompileError> {
    let res = cx.linux().and_then(|l| l.resources().clone());
    if let Some(r) = &res {
        unapplied(cx, r)?;
    }
    let mem = res.as_ref().and_then(|r| *r.memory());
    let cpu = res.as_ref().and_then(|r| r.cpu().clone());
    let pids = res.as_ref().and_then(|r| *r.pids());
    let base = "linux.resources";

    let bytes_req = |v: Option<i64>, path: &str| -> Option<(Req<Bytes>, String)> {
        v.map(|v| {
            // Negative is unlimited; at or above the seed's threshold is "unset".
            let r = if v < 0 || v as u64 >= MEMORY_UNSET {
                Req::Unlimited
            } else {
                Req::Value(Bytes(v as u64))
            };
            (r, format!("{base}.{path}"))
        })
    };
    let memory = limit(
        cx,
        "memory",
        bytes_req(mem.as_ref().and_then(|m| m.limit()), "memory.limit"),
        cx.policy.memory.clone(),
    )?;
    let memory_swap = limit(
        cx,
        "memory_swap",
        bytes_req(mem.as_ref().and_then(|m| m.swap()), "memory.swap"),
        cx.policy.memory_swap.clone(),
    )?;
    let memory_swap = swap_at_least_memory(cx, memory.as_ref(), memory_swap)?;
    // The soft limit, swappiness and the OOM switch take no ceiling: none
    // lets the sandbox use more than its limits allow.
    let memory_reservation = match bytes_req(mem.as_ref().and_then(|m| m.reservation()), "memory.reservation") {
        Some((Req::Value(v), path)) => Some(Sourced::new(v, Origin::Spec(path))),
        Some((Req::Unlimited, _)) | None => None,
    };
    let memory_swappiness = match mem.as_ref().and_then(|m| m.swappiness()) {
        Some(v) if v > 100 => {
            return Err(CompileError::new(K::Unsupported {
                what: format!("memory swappiness {v} (the kernel takes 0 to 100)"),
            })
            .anchor(Anchor::spec(format!("{base}.memory.swappiness"), "above 100"))
            .help("set linux.resources.memory.swappiness between 0 and 100, or drop it"))
        }
        Some(v) => Some(Sourced::new(v, Origin::spec(format!("{base}.memory.swappiness")))),
        None => None,
    };
    let memory_oom_kill_disable = mem
        .as_ref()
        .and_then(|m| m.disable_oom_killer())
        .filter(|d| *d)
        .map(|d| Sourced::new(d, Origin::spec(format!("{base}.memory.disableOOMKiller"))));
    // Kernel TCP buffers count against their own v1 counter, not the
    // memory limit: cut to the memory ceiling (a sandbox may not hold more
    // socket memory than memory), never imposed when the spec asks none.
    let memory_kernel_tcp = match bytes_req(mem.as_ref().and_then(|m| m.kernel_tcp()), "memory.kernelTCP") {
        Some(req) => limit(cx, "memory_kernel_tcp", Some(req), cx.policy.memory.clone())?,
        None => None,
    };
    let pids = limit(
        cx,
        "pids",
        pids.map(|p| {
            (
                if p.limit() <= 0 {
                    Req::Unlimited
                } else {
                    Req::Value(p.limit())
                },
                format!("{base}.pids.limit"),
            )
        }),
        cx.policy.pids.clone(),
    )?;
    let cpu_shares = limit(
        cx,
        "cpu_shares",
        cpu.as_ref()
            .and_then(|c| c.shares())
            .map(|s| (Req::Value(s), format!("{base}.cpu.shares"))),
        cx.policy.cpu_shares.clone(),
    )?;
    // The period first: the quota ceiling is a share of CPU time, so it is
    // scaled to the period the plan will use before it is compared.
    const DEFAULT_PERIOD: u64 = 100_000;
    let policy_period = cx.policy.cpu_period.as_ref().map(|p| p.value).unwrap_or(DEFAULT_PERIOD);
    let spec_quota = cpu.as_ref().and_then(|c| c.quota());
    let cpu_period = match (cpu.as_ref().and_then(|c| c.period()), &cx.policy.cpu_period) {
        (Some(p), _) if p > 0 => Some(Sourced::new(p, Origin::spec(format!("{base}.cpu.period")))),
        (_, Some(p)) => Some(Sourced::new(p.value, cx.at(&p.at))),
        _ if spec_quota.is_some() || cx.policy.cpu_quota.is_some() => {
            Some(Sourced::new(DEFAULT_PERIOD, Origin::Default))
        }
        _ => None,
    };
    let ceiling = cx.policy.cpu_quota.clone().map(|c| {
        let period = cpu_period.as_ref().map(|p| p.value).unwrap_or(DEFAULT_PERIOD);
        Setting {
            value: (c.value as i128 * period as i128 / policy_period as i128) as i64,
            at: c.at,
        }
    });
    let cpu_quota = limit(
        cx,
        "cpu_quota",
        spec_quota.map(|q| {
            (
                if q <= 0 { Req::Unlimited } else { Req::Value(q) },
                format!("{base}.cpu.quota"),
            )
        }),
        ceiling,
    )?;
    let string = |v: Option<String>, p: &str| {
        v.filter(|s| !s.is_empty())
            .map(|s| Sourced::new(s, Origin::spec(format!("{base}.{p}"))))
    };
    Ok(CgroupLimits {
        memory,
        memory_swap,
        memory_reservation,
        memory_swappiness,
        memory_oom_kill_disable,
        cpu_shares,
        cpu_quota,
        cpu_period,
        cpuset_cpus: string(cpu.as_ref().and_then(|c| c.cpus().clone()), "cpu.cpus"),
        cpuset_mems: string(cpu.as_ref().and_then(|c| c.mems().clone()), "cpu.mems"),
        pids,
        memory_kernel_tcp,
        devices: Vec::new(),
    })
}

/// Whether a spec value asks for anything: not null, not an empty list or
/// map, not a map of such.
fn is_set(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Null => false,
        serde_json::Value::Array(a) => !a.is_empty(),
        serde_json::Value::Object(m) => m.values().any(is_set),
        _ => true,
    }
}

/// The spec's resource settings sandboxctl does not apply. A restriction
/// the spec asks for and the sandbox would not get is refused: `blockIO`
/// (weights and throttles), `network` (net_cls/net_prio), `rdma`, and the
/// CPU's realtime budget. Those engines fill in on their own are set aside
/// with a warning naming them: `hugepageLimits` (the kubelet lists every page
/// size), `unified` (raw v2 files), and the deprecated kernel memory limit
/// `memory.kernel`, which kernels ignore since 5.16 (v1
/// `memory.kmem.limit_in_bytes` takes a write and stays unlimited).
/// `memory.kernelTCP` is applied (v1 `memory.kmem.tcp.limit_in_bytes` is
/// still enforced). Before, all of them were dropped unseen.
fn unapplied(cx: &mut Cx, res: &oci_spec::runtime::LinuxResources) -> Result<(), CompileError> {
    let v = serde_json::to_value(res).unwrap_or_default();
    let refused = [
        "blockIO",
        "network",
        "rdma",
        "cpu/realtimeRuntime",
        "cpu/realtimePeriod",
    ];
    let warned = ["hugepageLimits", "unified", "memory/kernel"];
    for key in refused {
        if v.pointer(&format!("/{key}")).is_some_and(is_set) {
            let path = format!("linux.resources.{}", key.replace('/', "."));
            return Err(CompileError::new(K::Unsupported {
                what: format!("{path} is not applied by sandboxctl (it sets memory, cpu, cpuset and pids limits)"),
            })
            .anchor(Anchor::spec(&path, "not applied"))
            .help(format!(
                "drop {path} from the spec: the sandbox would not get the restriction it asks for"
            )));
        }
    }
    for key in warned {
        if v.pointer(&format!("/{key}")).is_some_and(is_set) {
            let path = format!("linux.resources.{}", key.replace('/', "."));
            let why = if key == "memory/kernel" {
                "the kernel ignores kernel memory limits (since Linux 5.16: memory.kmem.limit_in_bytes takes the write and stays unlimited)"
            } else {
                "sandboxctl sets memory, cpu, cpuset, pids and devices limits"
            };
            cx.warnings.push(super::Warning {
                message: format!("{path} is not applied: {why}"),
                anchors: vec![Anchor::spec(&path, "not applied")],
            });
        }
    }
    Ok(())
}

/// The rule that makes a v1 `devices` cgroup deny every device before its
/// allow rules are written.
pub const DEVICES_DENY_RULE: &str = "devices-cgroup-deny-all";

/// The rule that leaves out runc's default devices cgroup rules beyond the
/// device ceiling.
pub const RUNTIME_DEFAULTS_RULE: &str = "devices-cgroup-runtime-defaults";

/// runc's default char device rules (libcontainer's AllowedDevices, which
/// containerd's default spec repeats) that name a device: /dev/console,
/// /dev/net/tun, /dev/pts/ptmx, /dev/pts/*.
const RUNTIME_DEFAULT_RULES: [(Option<u64>, Option<u64>); 4] = [
    (Some(5), Some(1)),
    (Some(10), Some(200)),
    (Some(5), Some(2)),
    (Some(136), None),
];

/// The access letters of a devices cgroup rule, in the kernel's order;
/// absent or empty is all three.
fn device_access(s: Option<&str>, path: &str) -> Result<String, CompileError> {
    let s = s.unwrap_or("");
    if let Some(bad) = s.chars().find(|c| !"rwm".contains(*c)) {
        return Err(CompileError::new(K::Unsupported {
            what: format!("devices cgroup access \"{s}\" (`{bad}` is not r, w or m)"),
        })
        .anchor(Anchor::spec(format!("{path}.access"), "access"))
        .help("use some of r, w and m"));
    }
    if s.is_empty() {
        return Ok("rwm".into());
    }
    Ok("rwm".chars().filter(|c| s.contains(*c)).collect())
}

/// The v1 `devices` cgroup's rules, when the spec has
/// `linux.resources.devices` (engines always do: a deny-all rule first).
/// In order: the spec's rules the device ceiling permits, then an allow
/// rule for each device node the plan makes (`rule:devices-cgroup-nodes`)
/// and, when the sandbox mounts a devpts, for its ptmx and ptys
/// (`rule:devices-cgroup-devpts`) — what the sandbox needs to use what it is
/// given. A spec allow rule with read or write access must name one device
/// the ceiling (or the plan's nodes) allows; one that names more (a `*`, type
/// `a`) or another is excess under `[devices] on_excess`: refused, or clamped
/// to the allowed devices it covers. A rule with mknod access alone is
/// kept as asked: making a node opens nothing, and opening it needs read or
/// write access, which only the rules above grant. Deny rules only narrow,
/// and are kept in their place.
///
/// Without a v1 `devices` hierarchy (cgroup v2, where runc and crun load a
/// BPF_CGROUP_DEVICE program, which sandboxctl does not), nothing is made
/// and a warning says so when the spec allows any device: the sandbox then
/// reaches the nodes the plan makes, and no others.
pub(crate) fn device_rules(
    cx: &mut Cx,
    devices: &[Device],
    mounts: &[Mount],
    ceiling: &[DeviceRule],
) -> Result<Vec<DeviceCgroupRule>, CompileError> {
    use oci_spec::runtime::LinuxDeviceType as T;
    let spec_rules = cx
        .linux()
        .and_then(|l| l.resources().as_ref().and_then(|r| r.devices().clone()))
        .unwrap_or_default();
    if spec_rules.is_empty() {
        return Ok(Vec::new());
    }
    let devpts = mounts.iter().any(|m| m.fstype == "devpts");
    // The devices the sandbox may reach: the ceiling's and the plan's nodes.
    let mut reachable: Vec<(DeviceCgroupKind, u64, u64)> = ceiling
        .iter()
        .map(|r| (cg_kind(r.kind), r.major, r.minor))
        .chain(devices.iter().map(|d| (cg_kind(d.kind), d.major, d.minor)))
        .collect();
    reachable.sort();
    reachable.dedup();
    let devpts_rule = |kind: DeviceCgroupKind, major: Option<u64>, minor: Option<u64>| {
        devpts && kind == DeviceCgroupKind::Char && matches!((major, minor), (Some(5), Some(2)) | (Some(136), _))
    };
    let mut out: Vec<DeviceCgroupRule> = Vec::new();
    let mut allows_any = false;
    for (i, r) in spec_rules.iter().enumerate() {
        let jp = format!("linux.resources.devices[{i}]");
        let kind = match r.typ() {
            None | Some(T::A) => DeviceCgroupKind::All,
            Some(T::C) | Some(T::U) => DeviceCgroupKind::Char,
            Some(T::B) => DeviceCgroupKind::Block,
            Some(other) => {
                return Err(CompileError::new(K::Unsupported {
                    what: format!("devices cgroup type {other:?} (only a, c, u and b)"),
                })
                .anchor(Anchor::spec(format!("{jp}.type"), "device type")))
            }
        };
        let num = |v: Option<i64>| v.filter(|v| *v >= 0).map(|v| v as u64);
        let (major, minor) = if kind == DeviceCgroupKind::All {
            (None, None)
        } else {
            (num(r.major()), num(r.minor()))
        };
        let access = device_access(r.access().as_deref(), &jp)?;
        let rule = DeviceCgroupRule {
            allow: r.allow(),
            kind,
            major,
            minor,
            access,
            from: Origin::spec(jp.clone()),
        };
        if !rule.allow {
            // Nothing is allowed before the first allow rule: a deny-all
            // there is the deny-all every devices cgroup starts with.
            if kind == DeviceCgroupKind::All && out.iter().all(|r| !r.allow) {
                continue;
            }
            out.push(rule);
            continue;
        }
        let opens = rule.access != "m";
        allows_any |= opens;
        let one = match (major, minor) {
            (Some(a), Some(b)) if kind != DeviceCgroupKind::All => reachable.contains(&(kind, a, b)),
            _ => false,
        };
        if !opens || one || devpts_rule(kind, major, minor) {
            out.push(rule);
            continue;
        }
        // runc's own default rules, which containerd copies into every spec
        // (the console, tun, and a devpts's ptmx and ptys): not a request
        // for a device, so not an excess; beyond the ceiling they are left
        // out, by rule (the sandbox has no node for them).
        if kind == DeviceCgroupKind::Char && RUNTIME_DEFAULT_RULES.contains(&(major, minor)) {
            cx.rule_clamp(
                &format!("cgroup.limits.devices[{i}]"),
                rule.line(),
                Anchor::spec(&jp, "runc's default rule"),
                "(rule dropped)".into(),
                RUNTIME_DEFAULTS_RULE,
                "a runtime's default devices cgroup rule for a device the ceiling does not allow is left out",
            );
            continue;
        }
        // Excess: the allowed devices the rule covers, for a clamp.
        let covered: Vec<DeviceCgroupRule> = reachable
            .iter()
            .filter(|(k, a, b)| {
                (kind == DeviceCgroupKind::All || kind == *k)
                    && major.is_none_or(|m| m == *a)
                    && minor.is_none_or(|m| m == *b)
            })
            .map(|(k, a, b)| DeviceCgroupRule {
                kind: *k,
                major: Some(*a),
                minor: Some(*b),
                ..rule.clone()
            })
            .collect();
        let on = cx.policy.device_on_excess.clone();
        let at = cx.policy.device_allowed.at.clone();
        let granted = if covered.is_empty() {
            "(rule dropped)".to_string()
        } else {
            covered
                .iter()
                .map(DeviceCgroupRule::line)
                .collect::<Vec<_>>()
                .join(", ")
        };
        cx.excess(
            &on,
            &at,
            &format!("cgroup.limits.devices[{i}]"),
            rule.line(),
            Anchor::spec(&jp, "devices cgroup rule"),
            granted,
            K::DeviceRuleNotAllowed { rule: rule.line() },
        )?;
        out.extend(covered);
    }
    if cx
        .host
        .cgroup_hierarchy("devices")
        .is_none_or(|h| matches!(h, CgroupHierarchy::V2(_)))
    {
        if allows_any {
            cx.warnings.push(super::Warning {
                message: "linux.resources.devices is not applied as a cgroup: this host has no v1 devices \
                          hierarchy (cgroup v2 needs a BPF_CGROUP_DEVICE program, which sandboxctl does not load); \
                          the sandbox reaches the device nodes the plan makes, and no others"
                    .into(),
                anchors: vec![Anchor::spec("linux.resources.devices", "not applied as a cgroup")],
            });
        }
        return Ok(Vec::new());
    }
    let add = |out: &mut Vec<DeviceCgroupRule>, kind, major: u64, minor: Option<u64>, rule: &str| {
        let has = out
            .iter()
            .any(|r| r.allow && r.kind == kind && r.major == Some(major) && r.minor == minor && r.access == "rwm");
        if !has {
            out.push(DeviceCgroupRule {
                allow: true,
                kind,
                major: Some(major),
                minor,
                access: "rwm".into(),
                from: Origin::rule(rule),
            });
        }
    };
    for d in devices {
        add(
            &mut out,
            cg_kind(d.kind),
            d.major,
            Some(d.minor),
            "devices-cgroup-nodes",
        );
    }
    if devpts {
        add(&mut out, DeviceCgroupKind::Char, 5, Some(2), "devices-cgroup-devpts");
        add(&mut out, DeviceCgroupKind::Char, 136, None, "devices-cgroup-devpts");
    }
    Ok(out)
}

fn cg_kind(k: DeviceKind) -> DeviceCgroupKind {
    match k {
        DeviceKind::Char => DeviceCgroupKind::Char,
        DeviceKind::Block => DeviceCgroupKind::Block,
    }
}

/// What [`recompile_cgroup`] gives.
#[derive(Debug, Clone)]
pub struct Recompiled {
    /// The cgroup (none when the request leaves no limit at all).
    pub cgroup: Option<CgroupPlan>,
    /// The requests cut to the ceiling (`on_excess = "clamp"`).
    pub clamps: Vec<Clamp>,
    /// The warnings for them.
    pub warnings: Vec<super::Warning>,
}

/// The cgroup a running sandbox's limits become under `update`: `spec`
/// carries the request as `linux.resources` (and the sandbox's
/// `linux.cgroupsPath` when it had one), cut to `policy`'s ceiling exactly as
/// [`crate::plan::compile`] cuts a spec's (an excess refused or clamped per
/// `on_excess`, the clamps returned), and laid out on `host` as at creation.
/// `devices` are the sandbox's devices cgroup rules, kept as they are
/// (`update` changes no device). Pure.
pub fn recompile_cgroup(
    policy: &crate::policy::Policy,
    spec: &crate::spec::SpecInput,
    host: &crate::host::HostFacts,
    devices: Vec<DeviceCgroupRule>,
) -> Result<Recompiled, CompileError> {
    let opts = super::CompileOptions::default();
    let mut cx = Cx {
        policy,
        spec,
        host,
        opts: &opts,
        clamps: Vec::new(),
        warnings: Vec::new(),
    };
    let cgroup = cgroup(&mut cx, devices)?;
    Ok(Recompiled {
        cgroup,
        clamps: cx.clamps,
        warnings: cx.warnings,
    })
}

/// The spec's cgroup path made relative to the hierarchy's root, lexically:
/// empty and `.` components dropped, `..` taking back the one before it. A
/// `..` above the root (which would make the launcher, as root, create
/// directories anywhere on the host: `/../../../../tmp/x`) or a path that
/// ends at the root itself is refused, here, before anything is done: apply
/// only ever makes directories under a hierarchy's mount, so its errors say
/// nothing about host paths.
pub(crate) fn normalise_cgroup_path(s: &str) -> Result<String, CompileError> {
    let refuse = |why: &'static str, label: &str| {
        CompileError::new(K::CgroupPathOutside { path: s.into(), why })
            .anchor(Anchor::spec("linux.cgroupsPath", label))
            .help("name a path inside the cgroup hierarchy, like /mygroup/mycontainer, without `..` above its start")
    };
    let mut parts: Vec<&str> = Vec::new();
    for c in s.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(refuse(
                        "leaves the cgroup hierarchy (`..` above its root)",
                        "leaves the hierarchy",
                    ));
                }
            }
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        return Err(refuse(
            "names the root of the cgroup hierarchy, not a cgroup of its own",
            "the hierarchy's root",
        ));
    }
    Ok(parts.join("/"))
}

/// One file to write: controller, v1 file, v2 file, value for each.
struct Knob {
    controller: &'static str,
    what: &'static str,
    v1: Option<(&'static str, String)>,
    v2: Option<(&'static str, String)>,
    /// v2 has no file for this (and no other knob does its work there): a
    /// v2 hierarchy refuses it rather than leave it undone.
    v1_only: bool,
    from: Origin,
}

/// The directories from `mount` down `rel` for one controller: parents,
/// then the sandbox's own (the last).
fn dir_chain<'a>(
    version: CgroupVersion,
    mount: &std::path::Path,
    rel: &'a [&'a str],
    controller: &'a str,
    from: Option<Origin>,
) -> impl Iterator<Item = CgroupDir> + 'a {
    let mut p = mount.to_path_buf();
    rel.iter().enumerate().map(move |(i, part)| {
        p.push(part);
        CgroupDir {
            path: p.clone(),
            version,
            role: if i + 1 == rel.len() {
                CgroupDirRole::Sandbox
            } else {
                CgroupDirRole::Parent
            },
            controllers: vec![controller.into()],
            inherit: None,
            from: from.clone(),
        }
    })
}

fn knobs(l: &CgroupLimits) -> Vec<Knob> {
    let mut k = Vec::new();
    if let Some(m) = &l.memory {
        k.push(Knob {
            controller: "memory",
            what: "memory",
            v1: Some(("memory.limit_in_bytes", m.value.0.to_string())),
            v2: Some(("memory.max", m.value.0.to_string())),
            v1_only: false,
            from: m.from.clone(),
        });
    }
    if let Some(s) = &l.memory_swap {
        // v1: memory+swap; v2: swap alone. compile made sure memory is set
        // and not above memory+swap (`swap_at_least_memory`).
        let swap_only = l.memory.as_ref().map_or(0, |m| s.value.0.saturating_sub(m.value.0));
        k.push(Knob {
            controller: "memory",
            what: "memory_swap",
            v1: Some(("memory.memsw.limit_in_bytes", s.value.0.to_string())),
            v2: Some(("memory.swap.max", swap_only.to_string())),
            v1_only: false,
            from: s.from.clone(),
        });
    }
    if let Some(r) = &l.memory_reservation {
        k.push(Knob {
            controller: "memory",
            what: "memory_reservation",
            v1: Some(("memory.soft_limit_in_bytes", r.value.0.to_string())),
            v2: Some(("memory.low", r.value.0.to_string())),
            v1_only: false,
            from: r.from.clone(),
        });
    }
    if let Some(s) = &l.memory_swappiness {
        k.push(Knob {
            controller: "memory",
            what: "memory_swappiness",
            v1: Some(("memory.swappiness", s.value.to_string())),
            v2: None,
            v1_only: true,
            from: s.from.clone(),
        });
    }
    if let Some(o) = &l.memory_oom_kill_disable {
        k.push(Knob {
            controller: "memory",
            what: "memory_oom_kill_disable",
            v1: Some(("memory.oom_control", "1".into())),
            v2: None,
            v1_only: true,
            from: o.from.clone(),
        });
    }
    if let Some(t) = &l.memory_kernel_tcp {
        k.push(Knob {
            controller: "memory",
            what: "memory_kernel_tcp",
            v1: Some(("memory.kmem.tcp.limit_in_bytes", t.value.0.to_string())),
            v2: None,
            v1_only: true,
            from: t.from.clone(),
        });
    }
    if let Some(s) = &l.cpu_shares {
        // runc's conversion, in u128 and capped at cgroup v2's 10000: a
        // spec's shares can be any u64 (fuzz_spec found the overflow).
        let weight = (1 + (u128::from(s.value.saturating_sub(2)) * 9999) / 262_142).min(10_000);
        k.push(Knob {
            controller: "cpu",
            what: "cpu_shares",
            v1: Some(("cpu.shares", s.value.to_string())),
            v2: Some(("cpu.weight", weight.to_string())),
            v1_only: false,
            from: s.from.clone(),
        });
    }
    match (&l.cpu_quota, &l.cpu_period) {
        (Some(q), Some(p)) => {
            k.push(Knob {
                controller: "cpu",
                what: "cpu_period",
                v1: Some(("cpu.cfs_period_us", p.value.to_string())),
                v2: None,
                v1_only: false,
                from: p.from.clone(),
            });
            k.push(Knob {
                controller: "cpu",
                what: "cpu_quota",
                v1: Some(("cpu.cfs_quota_us", q.value.to_string())),
                v2: Some(("cpu.max", format!("{} {}", q.value, p.value))),
                v1_only: false,
                from: q.from.clone(),
            });
        }
        (None, Some(p)) => {
            k.push(Knob {
                controller: "cpu",
                what: "cpu_period",
                v1: Some(("cpu.cfs_period_us", p.value.to_string())),
                v2: Some(("cpu.max", format!("max {}", p.value))),
                v1_only: false,
                from: p.from.clone(),
            });
        }
        _ => {}
    }
    if let Some(c) = &l.cpuset_cpus {
        k.push(Knob {
            controller: "cpuset",
            what: "cpuset_cpus",
            v1: Some(("cpuset.cpus", c.value.clone())),
            v2: Some(("cpuset.cpus", c.value.clone())),
            v1_only: false,
            from: c.from.clone(),
        });
    }
    if let Some(c) = &l.cpuset_mems {
        k.push(Knob {
            controller: "cpuset",
            what: "cpuset_mems",
            v1: Some(("cpuset.mems", c.value.clone())),
            v2: Some(("cpuset.mems", c.value.clone())),
            v1_only: false,
            from: c.from.clone(),
        });
    }
    if let Some(p) = &l.pids {
        k.push(Knob {
            controller: "pids",
            what: "pids",
            v1: Some(("pids.max", p.value.to_string())),
            v2: Some(("pids.max", p.value.to_string())),
            v1_only: false,
            from: p.from.clone(),
        });
    }
    k
}

/// Resolves directories and writes against the host's hierarchies.
fn layout(cx: &mut Cx, path: Sourced<String>, limits: CgroupLimits) -> Result<Option<CgroupPlan>, CompileError> {
    let knobs = knobs(&limits);
    // controller -> hierarchy, in first-use order of the knobs.
    let mut dirs: Vec<CgroupDir> = Vec::new();
    let mut writes = Vec::new();
    let mut v2_controllers: Vec<String> = Vec::new();
    let mut hier_of: BTreeMap<&str, CgroupHierarchy> = BTreeMap::new();
    for k in &knobs {
        let h = match cx.host.cgroup_hierarchy(k.controller) {
            Some(h) => h,
            None => {
                return Err(CompileError::new(K::NoController {
                    what: k.what.into(),
                    controller: k.controller.into(),
                })
                .anchor(match &k.from {
                    Origin::Spec(p) => Anchor::spec(p.clone(), "limit requested"),
                    _ => Anchor::Host("cgroup".into()),
                })
                .anchor(Anchor::Host(format!("cgroup (layout {:?})", cx.host.cgroup.layout)))
                .help(format!(
                    "mount the {} controller (v1) or enable it in the v2 root's cgroup.subtree_control",
                    k.controller
                )))
            }
        };
        if k.v1_only && matches!(h, CgroupHierarchy::V2(_)) {
            return Err(CompileError::new(K::Unsupported {
                what: format!("{} on cgroup v2 (it has no such setting; only v1 does)", k.what),
            })
            .anchor(match &k.from {
                Origin::Spec(p) => Anchor::spec(p.clone(), "v1 only"),
                _ => Anchor::Host("cgroup".into()),
            })
            .anchor(Anchor::Host(format!("cgroup (layout {:?})", cx.host.cgroup.layout)))
            .help("drop it from the spec's linux.resources.memory"));
        }
        hier_of.insert(k.controller, h);
    }
    // Parents and sandbox directories, one chain per distinct mount.
    let rel: Vec<&str> = path.value.split('/').filter(|s| !s.is_empty()).collect();
    let mut seen_mounts: Vec<PathBuf> = Vec::new();
    for k in &knobs {
        let (mount, version) = match &hier_of[k.controller] {
            CgroupHierarchy::V1(m) => (m.clone(), CgroupVersion::V1),
            CgroupHierarchy::V2(m) => (m.clone(), CgroupVersion::V2),
        };
        if version == CgroupVersion::V2 && !v2_controllers.iter().any(|c| c == k.controller) {
            v2_controllers.push(k.controller.to_string());
        }
        if seen_mounts.contains(&mount) {
            if let Some(d) = dirs
                .iter_mut()
                .rev()
                .find(|d| d.path.starts_with(&mount) && d.role == CgroupDirRole::Sandbox)
            {
                if !d.controllers.iter().any(|c| c == k.controller) {
                    d.controllers.push(k.controller.to_string());
                }
            }
            continue;
        }
        seen_mounts.push(mount.clone());
        dirs.extend(dir_chain(version, &mount, &rel, k.controller, None));
    }
    // The devices cgroup (its rules exist only on a v1 devices hierarchy).
    let devices_mount = match cx.host.cgroup_hierarchy("devices") {
        Some(CgroupHierarchy::V1(m)) if !limits.devices.is_empty() => Some(m),
        _ => None,
    };
    if let Some(mount) = &devices_mount {
        if !seen_mounts.contains(mount) {
            seen_mounts.push(mount.clone());
            dirs.extend(dir_chain(CgroupVersion::V1, mount, &rel, "devices", None));
        }
    }
    // `pause` freezes the sandbox from the host. On a v2 hierarchy every
    // cgroup has `cgroup.freeze`; on v1 the freezer is a controller of its
    // own, which no limit asks for: its directory is made for pause. A
    // container engine (the spec names `linux.cgroupsPath`) also reads the
    // sandbox's statistics and updates its CPU share at that path in the
    // cpu, cpuacct and blkio hierarchies, whether or not a limit asked for
    // them: on v1 those directories are made too.
    let from_spec = matches!(path.from, Origin::Spec(_));
    let extra: [(&str, &str, bool); 4] = [
        ("freezer", FREEZER_RULE, true),
        ("cpu", ENGINE_RULE, from_spec),
        ("cpuacct", ENGINE_RULE, from_spec),
        ("blkio", ENGINE_RULE, from_spec),
    ];
    for (controller, rule, wanted) in extra {
        if !wanted || dirs.iter().any(|d| d.version == CgroupVersion::V2) {
            continue;
        }
        if let Some(CgroupHierarchy::V1(mount)) = cx.host.cgroup_hierarchy(controller) {
            if seen_mounts.contains(&mount) {
                continue;
            }
            seen_mounts.push(mount.clone());
            dirs.extend(dir_chain(
                CgroupVersion::V1,
                &mount,
                &rel,
                controller,
                Some(Origin::rule(rule)),
            ));
        }
    }
    // A new v1 cpuset cgroup starts empty: each one this launch makes gets
    // its nearest filled ancestor's CPUs and memory nodes, or nothing can
    // be limited or run below it.
    if let Some(CgroupHierarchy::V1(m)) = cx.host.cgroup_hierarchy("cpuset") {
        for d in dirs.iter_mut().filter(|d| d.path.starts_with(&m)) {
            d.inherit = Some(CgroupInherit {
                files: CPUSET_INHERITED.iter().map(|f| f.to_string()).collect(),
                root: m.clone(),
                from: Origin::rule(CPUSET_INHERIT_RULE),
            });
        }
    }
    // v2: enable the controllers down the chain before writing limits.
    if let Some(v2) = &cx.host.cgroup.v2 {
        if !v2_controllers.is_empty() {
            let value = v2_controllers
                .iter()
                .map(|c| format!("+{c}"))
                .collect::<Vec<_>>()
                .join(" ");
            let mut p = v2.mount.clone();
            for part in rel.iter().take(rel.len().saturating_sub(1)) {
                writes.push(CgroupWrite {
                    file: p.join("cgroup.subtree_control"),
                    value: value.clone(),
                    from: Origin::rule("cgroup-v2-enable-controllers"),
                });
                p.push(part);
            }
            writes.push(CgroupWrite {
                file: p.join("cgroup.subtree_control"),
                value,
                from: Origin::rule("cgroup-v2-enable-controllers"),
            });
        }
    }
    let sandbox_dir = |controller: &str| -> PathBuf {
        let mount = match &hier_of[controller] {
            CgroupHierarchy::V1(m) | CgroupHierarchy::V2(m) => m.clone(),
        };
        rel.iter().fold(mount, |p, part| p.join(part))
    };
    for k in &knobs {
        let file = match &hier_of[k.controller] {
            CgroupHierarchy::V1(_) => &k.v1,
            CgroupHierarchy::V2(_) => &k.v2,
        };
        if let Some((name, value)) = file {
            writes.push(CgroupWrite {
                file: sandbox_dir(k.controller).join(name),
                value: value.clone(),
                from: k.from.clone(),
            });
        }
    }
    if let Some(mount) = &devices_mount {
        let dir = rel.iter().fold(mount.clone(), |p, part| p.join(part));
        writes.push(CgroupWrite {
            file: dir.join("devices.deny"),
            value: "a".into(),
            from: Origin::rule(DEVICES_DENY_RULE),
        });
        for r in &limits.devices {
            writes.push(CgroupWrite {
                file: dir.join(if r.allow { "devices.allow" } else { "devices.deny" }),
                value: r.line(),
                from: r.from.clone(),
            });
        }
    }
    let join = dirs
        .iter()
        .filter(|d| d.role == CgroupDirRole::Sandbox)
        .map(|d| match d.version {
            CgroupVersion::V1 => d.path.join("tasks"),
            CgroupVersion::V2 => d.path.join("cgroup.procs"),
        })
        .collect();
    let cpus = handed_cpus(cx, &limits);
    let memory = limits
        .memory
        .as_ref()
        .filter(|m| m.value.0 < MEMORY_UNSET)
        .map(|m| Sourced::new(m.value, m.from.clone()));
    Ok(Some(CgroupPlan {
        path,
        limits,
        dirs,
        writes,
        join,
        cpus,
        memory,
    }))
}

/// The CPU count the supervisor is told: from the quota, else the cpuset,
/// else the host's.
fn handed_cpus(cx: &Cx, l: &CgroupLimits) -> Sourced<u32> {
    if let (Some(q), Some(p)) = (&l.cpu_quota, &l.cpu_period) {
        if p.value > 0 {
            let n = (q.value as u64).div_ceil(p.value).clamp(1, cx.host.cpus.max(1) as u64) as u32;
            return Sourced::new(n, Origin::rule("cpus-from-cpu-quota"));
        }
    }
    if let Some(c) = &l.cpuset_cpus {
        if let Some(n) = count_cpuset(&c.value) {
            return Sourced::new(n, Origin::rule("cpus-from-cpuset"));
        }
    }
    Sourced::new(cx.host.cpus, Origin::host("cpus"))
}

/// Counts a cpuset list like `0-3,8`.
fn count_cpuset(s: &str) -> Option<u32> {
    let mut n = 0;
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => n += b.parse::<u32>().ok()?.checked_sub(a.parse::<u32>().ok()?)? + 1,
            None => {
                part.parse::<u32>().ok()?;
                n += 1
            }
        }
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 10 item 8: `..` above the hierarchy's root is refused with the
    /// spec's JSON path; harmless forms are normalised.
    #[test]
    fn cgroups_path_is_normalised_and_kept_inside() {
        for (given, want) in [
            ("/a/b", "a/b"),
            ("a//b/./c/", "a/b/c"),
            ("/a/../b", "b"),
            ("/a/b/../../c", "c"),
        ] {
            assert_eq!(normalise_cgroup_path(given).unwrap(), want, "{given}");
        }
        for bad in ["/../../../../tmp/x/leaf", "..", "/a/../../b", "/", "", "/a/..", "./."] {
            let e = normalise_cgroup_path(bad).unwrap_err();
            assert!(matches!(e.kind, K::CgroupPathOutside { .. }), "{bad}: {e}");
            assert!(
                matches!(&e.anchors[0], Anchor::Spec { path, .. } if path == "linux.cgroupsPath"),
                "{bad}"
            );
        }
    }

    /// v2's cpu.weight from any u64 of shares: runc's conversion, capped
    /// at 10000 (u64::MAX overflowed the multiplication: found by fuzz_spec).
    #[test]
    fn shares_become_a_weight_without_overflow() {
        let weight = |shares: u64| {
            let l = CgroupLimits {
                cpu_shares: Some(Sourced::new(shares, Origin::Default)),
                ..Default::default()
            };
            knobs(&l)
                .into_iter()
                .find(|k| k.what == "cpu_shares")
                .and_then(|k| k.v2)
                .map(|(_, v)| v)
                .unwrap()
        };
        assert_eq!(weight(2), "1");
        assert_eq!(weight(1024), "39");
        assert_eq!(weight(262_144), "10000");
        assert_eq!(weight(u64::MAX), "10000");
    }

    #[test]
    fn cpuset_counts() {
        assert_eq!(count_cpuset("0-3,8"), Some(5));
        assert_eq!(count_cpuset("1"), Some(1));
        assert_eq!(count_cpuset("3-1"), None);
    }
}
