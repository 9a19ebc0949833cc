//! The field-by-field comparison behind [`super::diff`]: one function per plan
//! section, each deciding the direction of its changes. The class of each
//! change is looked up in [`crate::plan::classes::CLASSES`] from its field path.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::{Change, ChangeKind};
use crate::plan::classes::PrivilegeClass;
use crate::plan::types::*;
use crate::vocab::{Cap, Gid, Origin, RlimitKind, NOBODY};

/// A memory limit at or above this means "unset" (the seed's rule).
const MEMORY_UNSET: u64 = 0x7fff_ffff_ffff_f000;
/// The CFS period when a plan sets a quota and no period.
const DEFAULT_CPU_PERIOD: u64 = 100_000;
/// cgroup v1 `cpu.shares` when unset.
const DEFAULT_CPU_SHARES: u64 = 1024;

/// Collects changes.
struct Cx {
    changes: Vec<Change>,
    /// While set, unchanged values with moved origins are not reported (the
    /// parts of a mount or device, whose origin is reported once for the whole).
    quiet_moves: bool,
}

/// Text of an optional value.
fn show_opt<T>(v: Option<&T>, show: &impl Fn(&T) -> String) -> Option<String> {
    v.map(show)
}

impl Cx {
    /// Records a change of `field`; the class comes from the table, and a class
    /// the table calls always neutral forces the kind to neutral.
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        field: String,
        kind: ChangeKind,
        old: Option<String>,
        new: Option<String>,
        old_from: Option<&Origin>,
        new_from: Option<&Origin>,
        note: Option<String>,
    ) {
        let class = PrivilegeClass::for_field(&field);
        let kind = if class.always_neutral() {
            ChangeKind::Neutral
        } else if class == PrivilegeClass::Unclassified {
            ChangeKind::Widens
        } else {
            kind
        };
        self.changes.push(Change {
            field,
            kind,
            class,
            old,
            new,
            old_from: old_from.cloned(),
            new_from: new_from.cloned(),
            note,
        });
    }

    /// Records that a value stayed and its origin moved.
    fn moved(&mut self, field: String, value: String, old_from: &Origin, new_from: &Origin) {
        self.changes.push(Change {
            field,
            kind: ChangeKind::Neutral,
            class: PrivilegeClass::Provenance,
            old: Some(value.clone()),
            new: Some(value),
            old_from: Some(old_from.clone()),
            new_from: Some(new_from.clone()),
            note: None,
        });
    }

    /// Compares one value on each side (either may be absent); `dir` decides the
    /// direction when the values differ.
    #[allow(clippy::too_many_arguments)]
    fn value<T: PartialEq>(
        &mut self,
        field: impl Into<String>,
        old: Option<&T>,
        new: Option<&T>,
        old_from: Option<&Origin>,
        new_from: Option<&Origin>,
        show: impl Fn(&T) -> String,
        dir: impl FnOnce(Option<&T>, Option<&T>) -> ChangeKind,
    ) {
        let field = field.into();
        if old == new {
            if self.quiet_moves {
                return;
            }
            if let (Some(v), Some(of), Some(nf)) = (old, old_from, new_from) {
                if of != nf {
                    self.moved(field, show(v), of, nf);
                }
            }
            return;
        }
        let kind = dir(old, new);
        self.push(
            field,
            kind,
            show_opt(old, &show),
            show_opt(new, &show),
            old_from,
            new_from,
            None,
        );
    }

    /// Compares two sourced values that are always present.
    fn sourced<T: PartialEq>(
        &mut self,
        field: impl Into<String>,
        old: &Sourced<T>,
        new: &Sourced<T>,
        show: impl Fn(&T) -> String,
        dir: impl FnOnce(&T, &T) -> ChangeKind,
    ) {
        self.value(
            field,
            Some(&old.value),
            Some(&new.value),
            Some(&old.from),
            Some(&new.from),
            show,
            |o, n| match (o, n) {
                (Some(o), Some(n)) => dir(o, n),
                _ => ChangeKind::Widens,
            },
        );
    }

    /// Compares two optional sourced values.
    fn opt_sourced<T: PartialEq>(
        &mut self,
        field: impl Into<String>,
        old: Option<&Sourced<T>>,
        new: Option<&Sourced<T>>,
        show: impl Fn(&T) -> String,
        dir: impl FnOnce(Option<&T>, Option<&T>) -> ChangeKind,
    ) {
        self.value(
            field,
            old.map(|s| &s.value),
            new.map(|s| &s.value),
            old.map(|s| &s.from),
            new.map(|s| &s.from),
            show,
            dir,
        );
    }

    /// Compares two sets of items that carry their own origin: an item added
    /// gets `added`, an item removed gets `removed`.
    fn set<K: Ord + Clone>(
        &mut self,
        field: &str,
        old: impl IntoIterator<Item = (K, Origin)>,
        new: impl IntoIterator<Item = (K, Origin)>,
        show: impl Fn(&K) -> String,
        added: ChangeKind,
        removed: ChangeKind,
    ) {
        for (k, (o, n)) in pair_up(old, new) {
            self.value(
                field.to_string(),
                o.as_ref().map(|_| &k),
                n.as_ref().map(|_| &k),
                o.as_ref(),
                n.as_ref(),
                &show,
                |o, _| {
                    if o.is_none() {
                        added
                    } else {
                        removed
                    }
                },
            );
        }
    }
}

/// Pairs up two keyed collections (the first value of a key wins).
fn pair_up<K: Ord, V>(
    old: impl IntoIterator<Item = (K, V)>,
    new: impl IntoIterator<Item = (K, V)>,
) -> BTreeMap<K, (Option<V>, Option<V>)> {
    let mut m: BTreeMap<K, (Option<V>, Option<V>)> = BTreeMap::new();
    for (k, v) in old {
        let e = m.entry(k).or_insert((None, None));
        if e.0.is_none() {
            e.0 = Some(v);
        }
    }
    for (k, v) in new {
        let e = m.entry(k).or_insert((None, None));
        if e.1.is_none() {
            e.1 = Some(v);
        }
    }
    m
}

/// Every difference between two plans, in plan field order.
pub(super) fn compare(old: &LaunchPlan, new: &LaunchPlan) -> Vec<Change> {
    let mut cx = Cx {
        changes: Vec::new(),
        quiet_moves: false,
    };
    identity(&mut cx, old, new);
    cx.sourced("platform", &old.platform, &new.platform, show_platform, |o, n| {
        ChangeKind::of_ranks(platform_rank(o), platform_rank(n))
    });
    cx.sourced("network", &old.network, &new.network, show_network, |o, n| {
        let k = ChangeKind::of_ranks(network_rank(o), network_rank(n));
        if k == ChangeKind::Neutral {
            ChangeKind::Widens // two different joined namespaces: not comparable
        } else {
            k
        }
    });
    namespaces(&mut cx, old, new);
    let join = |c: &Sourced<Vec<NsKind>>| c.value.iter().map(|k| (*k, c.from.clone())).collect::<Vec<_>>();
    cx.set(
        "namespace_join_ceiling",
        join(&old.namespace_join_ceiling),
        join(&new.namespace_join_ceiling),
        |k| k.name(),
        ChangeKind::Widens,
        ChangeKind::Narrows,
    );
    id_maps(&mut cx, old, new);
    root(&mut cx, &old.root, &new.root);
    mounts(&mut cx, &old.mounts, &new.mounts);
    cx.set(
        "masked_paths",
        old.masked_paths.iter().map(|p| (p.value.clone(), p.from.clone())),
        new.masked_paths.iter().map(|p| (p.value.clone(), p.from.clone())),
        |p| p.display().to_string(),
        ChangeKind::Narrows,
        ChangeKind::Widens,
    );
    cx.set(
        "readonly_paths",
        old.readonly_paths.iter().map(|p| (p.value.clone(), p.from.clone())),
        new.readonly_paths.iter().map(|p| (p.value.clone(), p.from.clone())),
        |p| p.display().to_string(),
        ChangeKind::Narrows,
        ChangeKind::Widens,
    );
    devices(&mut cx, &old.devices, &new.devices);
    dev_links(&mut cx, &old.dev_links, &new.dev_links);
    let rule = |r: &DeviceRule| {
        let kind = if r.kind == DeviceKind::Char { 'c' } else { 'b' };
        (
            format!("{kind} {}:{} {}", r.major, r.minor, r.host_path.display()),
            r.from.clone(),
        )
    };
    cx.set(
        "device_ceiling",
        old.device_ceiling.iter().map(rule),
        new.device_ceiling.iter().map(rule),
        String::clone,
        ChangeKind::Widens,
        ChangeKind::Narrows,
    );
    cx.opt_sourced(
        "hostname",
        old.hostname.as_ref(),
        new.hostname.as_ref(),
        String::clone,
        |_, _| ChangeKind::Neutral,
    );
    cgroup(&mut cx, old.cgroup.as_ref(), new.cgroup.as_ref());
    cx.set(
        "log_dirs",
        old.log_dirs.iter().map(|d| ((d.path.clone(), d.mode), d.from.clone())),
        new.log_dirs.iter().map(|d| ((d.path.clone(), d.mode), d.from.clone())),
        |(p, m)| format!("{} {m:#o}", p.display()),
        ChangeKind::Neutral,
        ChangeKind::Neutral,
    );
    cx.sourced("stdio", &old.stdio, &new.stdio, show_stdio, |o, n| {
        ChangeKind::of_ranks(stdio_rank(o), stdio_rank(n))
    });
    supervisor(&mut cx, old, new);
    workload(&mut cx, old, new);
    cx.set(
        "hooks",
        old.hooks.iter().map(|h| (show_hook(h), h.from.clone())),
        new.hooks.iter().map(|h| (show_hook(h), h.from.clone())),
        String::clone,
        ChangeKind::Widens,
        ChangeKind::Narrows,
    );
    clamps(&mut cx, &old.clamps, &new.clamps);
    steps(&mut cx, &old.steps, &new.steps);
    cx.changes
}

fn identity(cx: &mut Cx, old: &LaunchPlan, new: &LaunchPlan) {
    cx.value(
        "format",
        Some(&old.format),
        Some(&new.format),
        None,
        None,
        u32::to_string,
        |_, _| ChangeKind::Neutral,
    );
    let neutral = |_: Option<&String>, _: Option<&String>| ChangeKind::Neutral;
    cx.value(
        "inputs.policies",
        Some(&old.inputs.policies.join(", ")),
        Some(&new.inputs.policies.join(", ")),
        None,
        None,
        String::clone,
        neutral,
    );
    cx.value(
        "inputs.spec",
        Some(&old.inputs.spec),
        Some(&new.inputs.spec),
        None,
        None,
        String::clone,
        neutral,
    );
    cx.value(
        "inputs.host",
        Some(&old.inputs.host),
        Some(&new.inputs.host),
        None,
        None,
        String::clone,
        neutral,
    );
}

// ---------------------------------------------------------------- platform, network, namespaces

fn platform_rank(p: &Platform) -> u8 {
    match p {
        Platform::Ptrace => 0,
        Platform::Native => 1,
        Platform::Kvm { .. } => 2,
    }
}

fn show_platform(p: &Platform) -> String {
    match p {
        Platform::Kvm {
            api_version,
            extensions,
            extensions_from,
        } => {
            let ext: Vec<&str> = extensions.iter().map(String::as_str).collect();
            format!(
                "kvm (api {api_version}; extensions {}, from {extensions_from})",
                if ext.is_empty() { "none".into() } else { ext.join(", ") }
            )
        }
        other => other.name().to_string(),
    }
}

fn network_rank(n: &NetworkMode) -> u8 {
    match n {
        NetworkMode::None => 0,
        NetworkMode::Loopback => 1,
        NetworkMode::Join(_) => 2,
        NetworkMode::Host => 3,
    }
}

fn show_network(n: &NetworkMode) -> String {
    match n {
        NetworkMode::None => "none".into(),
        NetworkMode::Loopback => "loopback".into(),
        NetworkMode::Host => "host".into(),
        NetworkMode::Join(p) => format!("join {}", p.display()),
    }
}

fn namespace_rank(n: &Namespace) -> u8 {
    match n {
        Namespace::New => 0,
        Namespace::Join(_) => 1,
        Namespace::Host => 2,
    }
}

fn show_namespace(n: &Namespace) -> String {
    match n {
        Namespace::New => "new".into(),
        Namespace::Join(p) => format!("join {}", p.display()),
        Namespace::Host => "host".into(),
    }
}

fn namespaces(cx: &mut Cx, old: &LaunchPlan, new: &LaunchPlan) {
    for kind in NsKind::ORDER {
        cx.sourced(
            format!("namespaces.{}", kind.name()),
            old.namespaces.get(kind),
            new.namespaces.get(kind),
            show_namespace,
            |o, n| {
                let k = ChangeKind::of_ranks(namespace_rank(o), namespace_rank(n));
                if k == ChangeKind::Neutral {
                    ChangeKind::Widens // joins a different namespace
                } else {
                    k
                }
            },
        );
    }
}

// ---------------------------------------------------------------- id maps

/// Half-open intervals of host ids, merged and sorted.
type Coverage = Vec<(u64, u64)>;

/// The host ids a plan's workload can act as: the maps of a new user
/// namespace, or every id when the user namespace is the host's or joined
/// (identity, or maps this plan does not know).
fn coverage(plan: &LaunchPlan, maps: &[IdMap]) -> Coverage {
    if plan.namespaces.user.value != Namespace::New {
        return vec![(0, 1 << 32)];
    }
    let mut v: Vec<(u64, u64)> = maps
        .iter()
        .filter(|m| m.count > 0)
        .map(|m| (u64::from(m.host), u64::from(m.host) + u64::from(m.count)))
        .collect();
    v.sort_unstable();
    let mut out: Coverage = Vec::new();
    for (a, b) in v {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// Whether `a` holds an id that `b` does not.
fn covers_more(a: &Coverage, b: &Coverage) -> bool {
    a.iter().any(|&(s, e)| {
        // Walk [s, e) against b's intervals; any gap is an id only `a` holds.
        let mut at = s;
        for &(bs, be) in b {
            if be <= at {
                continue;
            }
            if bs > at {
                return true;
            }
            at = be;
            if at >= e {
                return false;
            }
        }
        at < e
    })
}

fn covers(c: &Coverage, id: u64) -> bool {
    c.iter().any(|&(s, e)| s <= id && id < e)
}

fn show_maps(user_ns: &Namespace, maps: &[IdMap]) -> String {
    if *user_ns != Namespace::New {
        return format!("none (user namespace {})", show_namespace(user_ns));
    }
    if maps.is_empty() {
        return "none".into();
    }
    maps.iter()
        .map(|m| format!("{}→{} ×{}", m.inside, m.host, m.count))
        .collect::<Vec<_>>()
        .join(", ")
}

fn id_maps(cx: &mut Cx, old: &LaunchPlan, new: &LaunchPlan) {
    type Pick = fn(&IdMaps) -> &Vec<IdMap>;
    let picks: [(&str, Pick); 2] = [("uid", |m| &m.uid), ("gid", |m| &m.gid)];
    for (name, pick) in picks {
        let (om, nm) = (pick(&old.id_maps), pick(&new.id_maps));
        let (ons, nns) = (&old.namespaces.user.value, &new.namespaces.user.value);
        let (os, ns) = (show_maps(ons, om), show_maps(nns, nm));
        let (oc, nc) = (coverage(old, om), coverage(new, nm));
        if os == ns {
            if old.id_maps.from != new.id_maps.from {
                cx.moved(format!("id_maps.{name}"), os, &old.id_maps.from, &new.id_maps.from);
            }
            continue;
        }
        let (kind, note) = if covers_more(&nc, &oc) {
            let root = covers(&nc, 0) && !covers(&oc, 0);
            (
                ChangeKind::Widens,
                Some(if root {
                    format!("host {name} 0 (root) is now mapped")
                } else {
                    format!("new host {name}s are mapped")
                }),
            )
        } else if covers_more(&oc, &nc) {
            (ChangeKind::Narrows, None)
        } else {
            (ChangeKind::Neutral, Some("same host ids, mapped differently".into()))
        };
        cx.push(
            format!("id_maps.{name}"),
            kind,
            Some(os),
            Some(ns),
            Some(&old.id_maps.from),
            Some(&new.id_maps.from),
            note,
        );
    }
    cx.value(
        "id_maps.setgroups",
        Some(&old.id_maps.setgroups),
        Some(&new.id_maps.setgroups),
        Some(&old.id_maps.from),
        Some(&new.id_maps.from),
        |s| match s {
            SetGroups::Allow => "allow".into(),
            SetGroups::Deny => "deny".into(),
        },
        |_, n| {
            if n == Some(&SetGroups::Allow) {
                ChangeKind::Widens
            } else {
                ChangeKind::Narrows
            }
        },
    );
}

// ---------------------------------------------------------------- root, mounts, paths, devices

fn root(cx: &mut Cx, old: &Root, new: &Root) {
    cx.sourced(
        "root.path",
        &old.path,
        &new.path,
        |p| p.display().to_string(),
        |_, _| ChangeKind::Widens,
    );
    cx.sourced(
        "root.change",
        &old.change,
        &new.change,
        |c| {
            match c {
                RootChange::PivotRoot => "pivot_root",
                RootChange::Chroot => "chroot",
                RootChange::None => "none",
            }
            .to_string()
        },
        |o, n| {
            let rank = |c: &RootChange| match c {
                RootChange::PivotRoot => 0,
                RootChange::Chroot => 1,
                RootChange::None => 2,
            };
            ChangeKind::of_ranks(rank(o), rank(n))
        },
    );
    cx.sourced(
        "root.readonly",
        &old.readonly,
        &new.readonly,
        |r| {
            if *r {
                "read-only".into()
            } else {
                "writable".into()
            }
        },
        |_, n| {
            if *n {
                ChangeKind::Narrows
            } else {
                ChangeKind::Widens
            }
        },
    );
}

fn flag_name(f: MountFlag) -> &'static str {
    MountFlag::NAMES
        .iter()
        .find(|(_, g)| *g == f)
        .map(|(n, _)| *n)
        .unwrap_or("?")
}

fn show_flags(flags: &BTreeSet<MountFlag>) -> String {
    flags.iter().map(|f| flag_name(*f)).collect::<Vec<_>>().join(",")
}

fn show_mount(m: &Mount) -> String {
    let mut s = format!("{} {} on {}", m.fstype, m.source, m.target.display());
    if !m.flags.is_empty() {
        s.push_str(&format!(" ({})", show_flags(&m.flags)));
    }
    if !m.data.is_empty() {
        s.push_str(&format!(" {}", m.data));
    }
    s
}

/// The direction of adding a mount flag (removing it is the opposite).
fn flag_added(f: MountFlag) -> ChangeKind {
    use MountFlag::*;
    match f {
        Ro | Nosuid | Nodev | Noexec | Private | Rprivate | Unbindable | Runbindable => ChangeKind::Narrows,
        Bind | Rbind | Shared | Rshared | Slave | Rslave => ChangeKind::Widens,
        Sync | Dirsync | Mand | Noatime | Nodiratime | Relatime | Strictatime => ChangeKind::Neutral,
    }
}

fn opposite(k: ChangeKind) -> ChangeKind {
    match k {
        ChangeKind::Widens => ChangeKind::Narrows,
        ChangeKind::Narrows => ChangeKind::Widens,
        ChangeKind::Neutral => ChangeKind::Neutral,
    }
}

/// A mount's key: its target, and which mount on that target it is (a target
/// may be mounted over more than once).
fn mount_keys(mounts: &[Mount]) -> Vec<(PathBuf, usize)> {
    let mut seen: BTreeMap<&Path, usize> = BTreeMap::new();
    mounts
        .iter()
        .map(|m| {
            let n = seen.entry(&m.target).or_insert(0);
            *n += 1;
            (m.target.clone(), *n)
        })
        .collect()
}

fn mount_field(key: &(PathBuf, usize)) -> String {
    if key.1 == 1 {
        format!("mounts[{}]", key.0.display())
    } else {
        format!("mounts[{}#{}]", key.0.display(), key.1)
    }
}

fn mounts(cx: &mut Cx, old: &[Mount], new: &[Mount]) {
    let (ok, nk) = (mount_keys(old), mount_keys(new));
    let pairs = pair_up(ok.iter().cloned().zip(old), nk.iter().cloned().zip(new));
    for (key, (o, n)) in &pairs {
        let field = mount_field(key);
        match (o, n) {
            (Some(o), Some(n)) => mount_changed(cx, &field, o, n),
            _ => cx.value(
                field,
                *o,
                *n,
                o.map(|m| &m.from),
                n.map(|m| &m.from),
                show_mount,
                |o, n| match (o, n) {
                    (None, Some(n)) if !n.is_bind() && n.fstype == "tmpfs" => ChangeKind::Neutral,
                    (None, Some(_)) => ChangeKind::Widens,
                    _ => ChangeKind::Narrows,
                },
            ),
        }
    }
    // Order: only mounts on both sides; a flip between nested targets changes
    // what shadows what.
    let common: BTreeSet<&(PathBuf, usize)> = ok.iter().filter(|k| nk.contains(k)).collect();
    let oo: Vec<&(PathBuf, usize)> = ok.iter().filter(|k| common.contains(k)).collect();
    let no: Vec<&(PathBuf, usize)> = nk.iter().filter(|k| common.contains(k)).collect();
    if oo != no {
        let pos: BTreeMap<&(PathBuf, usize), usize> = no.iter().enumerate().map(|(i, k)| (*k, i)).collect();
        let nested_flip = oo.iter().enumerate().any(|(i, a)| {
            oo[i + 1..]
                .iter()
                .any(|b| pos[a] > pos[b] && (a.0.starts_with(&b.0) || b.0.starts_with(&a.0)))
        });
        let show = |v: &Vec<&(PathBuf, usize)>| {
            v.iter()
                .map(|k| k.0.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let note = nested_flip.then(|| "nested mounts change order: what shadows what changes".to_string());
        cx.push(
            "mounts.order".into(),
            if nested_flip {
                ChangeKind::Widens
            } else {
                ChangeKind::Neutral
            },
            Some(show(&oo)),
            Some(show(&no)),
            None,
            None,
            note,
        );
    }
}

fn mount_changed(cx: &mut Cx, field: &str, o: &Mount, n: &Mount) {
    let (of, nf) = (Some(&o.from), Some(&n.from));
    cx.quiet_moves = true;
    let bind = o.is_bind() || n.is_bind();
    cx.value(
        format!("{field}.source"),
        Some(&o.source),
        Some(&n.source),
        of,
        nf,
        String::clone,
        |_, _| {
            if bind {
                ChangeKind::Widens
            } else {
                ChangeKind::Neutral
            }
        },
    );
    cx.value(
        format!("{field}.source_within"),
        o.source_within.as_ref().map(|w| &w.value),
        n.source_within.as_ref().map(|w| &w.value),
        o.source_within.as_ref().map(|w| &w.from),
        n.source_within.as_ref().map(|w| &w.from),
        |p| p.display().to_string(),
        |o, n| match (o, n) {
            (Some(o), Some(n)) if n.starts_with(o) => ChangeKind::Narrows,
            (None, Some(_)) => ChangeKind::Narrows,
            _ => ChangeKind::Widens,
        },
    );
    cx.value(
        format!("{field}.fstype"),
        Some(&o.fstype),
        Some(&n.fstype),
        of,
        nf,
        String::clone,
        |_, _| ChangeKind::Widens,
    );
    for f in o.flags.symmetric_difference(&n.flags) {
        let added = n.flags.contains(f);
        let kind = if added {
            flag_added(*f)
        } else {
            opposite(flag_added(*f))
        };
        let name = Some(flag_name(*f).to_string());
        let (old, new) = if added { (None, name) } else { (name, None) };
        let note = match (f, added) {
            (MountFlag::Ro, false) => Some("made writable".to_string()),
            _ => None,
        };
        cx.push(format!("{field}.flags"), kind, old, new, of, nf, note);
    }
    cx.value(
        format!("{field}.data"),
        Some(&o.data),
        Some(&n.data),
        of,
        nf,
        String::clone,
        |_, _| ChangeKind::Neutral,
    );
    cx.quiet_moves = false;
    if o == n || o.from == n.from {
        return;
    }
    // Same mount, other origin.
    let mut o2 = o.clone();
    o2.from = n.from.clone();
    if &o2 == n {
        cx.moved(field.to_string(), show_mount(n), &o.from, &n.from);
    }
}

fn show_device(d: &Device) -> String {
    let kind = match d.kind {
        DeviceKind::Char => 'c',
        DeviceKind::Block => 'b',
    };
    format!("{kind} {}:{}", d.major, d.minor)
}

/// A link into the process's own fds (or its devpts) opens nothing: every
/// change is neutral, and shown.
fn dev_links(cx: &mut Cx, old: &[DevLink], new: &[DevLink]) {
    let pairs = pair_up(
        old.iter().map(|l| (l.path.clone(), l)),
        new.iter().map(|l| (l.path.clone(), l)),
    );
    for (path, (o, n)) in pairs {
        cx.value(
            format!("dev_links[{}]", path.display()),
            o.map(|l| &l.target),
            n.map(|l| &l.target),
            o.map(|l| &l.from),
            n.map(|l| &l.from),
            |t| format!("-> {}", t.display()),
            |_, _| ChangeKind::Neutral,
        );
    }
}

fn devices(cx: &mut Cx, old: &[Device], new: &[Device]) {
    let pairs = pair_up(
        old.iter().map(|d| (d.path.clone(), d)),
        new.iter().map(|d| (d.path.clone(), d)),
    );
    for (path, (o, n)) in pairs {
        let field = format!("devices[{}]", path.display());
        let (o, n) = match (o, n) {
            (Some(o), Some(n)) => (o, n),
            (o, n) => {
                cx.value(
                    field,
                    o,
                    n,
                    o.map(|d| &d.from),
                    n.map(|d| &d.from),
                    |d| format!("{} mode {:o} ({})", show_device(d), d.mode, show_how(d.how)),
                    |o, _| {
                        if o.is_none() {
                            ChangeKind::Widens
                        } else {
                            ChangeKind::Narrows
                        }
                    },
                );
                continue;
            }
        };
        let (of, nf) = (Some(&o.from), Some(&n.from));
        cx.quiet_moves = true;
        cx.value(
            format!("{field}.node"),
            Some(&show_device(o)),
            Some(&show_device(n)),
            of,
            nf,
            String::clone,
            |_, _| ChangeKind::Widens,
        );
        cx.value(
            format!("{field}.mode"),
            Some(&o.mode),
            Some(&n.mode),
            of,
            nf,
            |m| format!("{m:o}"),
            |o, n| {
                let (o, n) = (o.copied().unwrap_or(0), n.copied().unwrap_or(0));
                if n & !o != 0 {
                    ChangeKind::Widens
                } else {
                    ChangeKind::Narrows
                }
            },
        );
        cx.value(
            format!("{field}.how"),
            Some(&o.how),
            Some(&n.how),
            of,
            nf,
            |h| show_how(*h).into(),
            |_, _| ChangeKind::Neutral,
        );
        cx.quiet_moves = false;
        if o.from != n.from {
            let mut o2 = o.clone();
            o2.from = n.from.clone();
            if &o2 == n {
                cx.moved(field, show_device(n), &o.from, &n.from);
            }
        }
    }
}

fn show_how(h: DeviceHow) -> &'static str {
    match h {
        DeviceHow::Mknod => "mknod",
        DeviceHow::Bind => "bind",
    }
}

// ---------------------------------------------------------------- cgroup

/// A limit where `None` is "no limit".
fn bound_dir(o: Option<u128>, n: Option<u128>) -> ChangeKind {
    match (o, n) {
        (None, None) => ChangeKind::Neutral,
        (Some(_), None) => ChangeKind::Widens,
        (None, Some(_)) => ChangeKind::Narrows,
        (Some(o), Some(n)) => ChangeKind::of_ranks(o, n),
    }
}

fn memory_bound(b: Option<&crate::vocab::Bytes>) -> Option<u128> {
    b.filter(|b| b.0 < MEMORY_UNSET).map(|b| u128::from(b.0))
}

/// CPU share as a fraction quota/period; `None` is unlimited.
fn cpu_ratio(l: &CgroupLimits) -> Option<(u128, u128)> {
    let quota = l.cpu_quota.as_ref().map(|q| q.value).filter(|q| *q > 0)?;
    let period = l
        .cpu_period
        .as_ref()
        .map(|p| p.value)
        .filter(|p| *p > 0)
        .unwrap_or(DEFAULT_CPU_PERIOD);
    Some((quota as u128, u128::from(period)))
}

fn cpu_ratio_dir(o: &CgroupLimits, n: &CgroupLimits) -> ChangeKind {
    match (cpu_ratio(o), cpu_ratio(n)) {
        (None, None) => ChangeKind::Neutral,
        (Some(_), None) => ChangeKind::Widens,
        (None, Some(_)) => ChangeKind::Narrows,
        (Some((oq, op)), Some((nq, np))) => ChangeKind::of_ranks(oq * np, nq * op),
    }
}

/// Parses a cpuset list (`0-3,8`); `None` when it does not parse.
fn cpuset(s: &str) -> Option<BTreeSet<u32>> {
    let mut out = BTreeSet::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
                if b < a || b - a > 65536 {
                    return None;
                }
                out.extend(a..=b);
            }
            None => {
                out.insert(part.parse().ok()?);
            }
        }
    }
    Some(out)
}

fn cpuset_dir(o: Option<&String>, n: Option<&String>) -> ChangeKind {
    match (o, n) {
        (Some(_), None) => ChangeKind::Widens,
        (None, Some(_)) => ChangeKind::Narrows,
        (Some(o), Some(n)) => match (cpuset(o), cpuset(n)) {
            (Some(o), Some(n)) if n.is_subset(&o) => ChangeKind::Narrows,
            (Some(o), Some(n)) if o == n => ChangeKind::Neutral,
            _ => ChangeKind::Widens,
        },
        (None, None) => ChangeKind::Neutral,
    }
}

/// Writes keyed by file and occurrence (1 for a file's first write).
fn keyed_writes(ws: &[CgroupWrite]) -> Vec<((PathBuf, usize), &CgroupWrite)> {
    let mut seen: BTreeMap<PathBuf, usize> = BTreeMap::new();
    ws.iter()
        .map(|w| {
            let n = seen.entry(w.file.clone()).or_insert(0);
            *n += 1;
            ((w.file.clone(), *n), w)
        })
        .collect()
}

/// A devices cgroup change: an allow rule added or a deny rule removed
/// widens (the sandbox may reach a device it could not); the reverse
/// narrows; no devices cgroup at all allows what the nodes allow.
fn devices_dir(o: &[DeviceCgroupRule], n: &[DeviceCgroupRule]) -> ChangeKind {
    let lines = |v: &[DeviceCgroupRule], allow: bool| -> BTreeSet<String> {
        v.iter()
            .filter(|r| r.allow == allow)
            .map(DeviceCgroupRule::line)
            .collect()
    };
    let (oa, na, od, nd) = (lines(o, true), lines(n, true), lines(o, false), lines(n, false));
    if o.is_empty() != n.is_empty() {
        return if n.is_empty() {
            ChangeKind::Widens
        } else {
            ChangeKind::Narrows
        };
    }
    if !na.is_subset(&oa) || !od.is_subset(&nd) {
        ChangeKind::Widens
    } else if na != oa || od != nd {
        ChangeKind::Narrows
    } else {
        ChangeKind::Neutral
    }
}

/// The new origins of the limits that differ between two plans.
fn changed_limit_origins<'a>(o: &'a CgroupLimits, n: &'a CgroupLimits) -> Vec<&'a Origin> {
    fn changed<'a, T: PartialEq>(o: &Option<Sourced<T>>, n: &'a Option<Sourced<T>>) -> Option<&'a Origin> {
        match (o, n) {
            (Some(o), Some(n)) if o.value != n.value => Some(&n.from),
            _ => None,
        }
    }
    [
        changed(&o.memory, &n.memory),
        changed(&o.memory_swap, &n.memory_swap),
        changed(&o.memory_reservation, &n.memory_reservation),
        changed(&o.memory_swappiness, &n.memory_swappiness),
        changed(&o.memory_oom_kill_disable, &n.memory_oom_kill_disable),
        changed(&o.cpu_shares, &n.cpu_shares),
        changed(&o.cpu_quota, &n.cpu_quota),
        changed(&o.cpu_period, &n.cpu_period),
        changed(&o.cpuset_cpus, &n.cpuset_cpus),
        changed(&o.cpuset_mems, &n.cpuset_mems),
        changed(&o.pids, &n.pids),
        changed(&o.memory_kernel_tcp, &n.memory_kernel_tcp),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn cgroup(cx: &mut Cx, old: Option<&CgroupPlan>, new: Option<&CgroupPlan>) {
    let (o, n) = match (old, new) {
        (Some(o), Some(n)) => (o, n),
        (None, None) => return,
        (o, n) => {
            let show = |c: &CgroupPlan| format!("{} ({})", c.path.value, show_limits(&c.limits));
            cx.value(
                "cgroup",
                o,
                n,
                o.map(|c| &c.path.from),
                n.map(|c| &c.path.from),
                show,
                added_narrows,
            );
            return;
        }
    };
    cx.sourced("cgroup.path", &o.path, &n.path, String::clone, |_, _| {
        ChangeKind::Neutral
    });
    let (ol, nl) = (&o.limits, &n.limits);
    let bytes = |b: &crate::vocab::Bytes| b.to_string();
    cx.opt_sourced(
        "cgroup.limits.memory",
        ol.memory.as_ref(),
        nl.memory.as_ref(),
        bytes,
        |o, n| bound_dir(memory_bound(o), memory_bound(n)),
    );
    cx.opt_sourced(
        "cgroup.limits.memory_swap",
        ol.memory_swap.as_ref(),
        nl.memory_swap.as_ref(),
        bytes,
        |o, n| bound_dir(memory_bound(o), memory_bound(n)),
    );
    // A larger soft limit claims more of the host's memory under pressure.
    cx.opt_sourced(
        "cgroup.limits.memory_reservation",
        ol.memory_reservation.as_ref(),
        nl.memory_reservation.as_ref(),
        bytes,
        |o, n| ChangeKind::of_ranks(o.map_or(0, |b| b.0), n.map_or(0, |b| b.0)),
    );
    cx.opt_sourced(
        "cgroup.limits.memory_swappiness",
        ol.memory_swappiness.as_ref(),
        nl.memory_swappiness.as_ref(),
        u64::to_string,
        |_, _| ChangeKind::Neutral,
    );
    // Without the OOM killer, a sandbox at its limit is never killed.
    cx.opt_sourced(
        "cgroup.limits.memory_oom_kill_disable",
        ol.memory_oom_kill_disable.as_ref(),
        nl.memory_oom_kill_disable.as_ref(),
        bool::to_string,
        |o, n| ChangeKind::of_ranks(o.copied().unwrap_or(false), n.copied().unwrap_or(false)),
    );
    cx.opt_sourced(
        "cgroup.limits.cpu_shares",
        ol.cpu_shares.as_ref(),
        nl.cpu_shares.as_ref(),
        u64::to_string,
        |o, n| {
            ChangeKind::of_ranks(
                o.copied().unwrap_or(DEFAULT_CPU_SHARES),
                n.copied().unwrap_or(DEFAULT_CPU_SHARES),
            )
        },
    );
    let ratio = cpu_ratio_dir(ol, nl);
    cx.opt_sourced(
        "cgroup.limits.cpu_quota",
        ol.cpu_quota.as_ref(),
        nl.cpu_quota.as_ref(),
        i64::to_string,
        |_, _| ratio,
    );
    cx.opt_sourced(
        "cgroup.limits.cpu_period",
        ol.cpu_period.as_ref(),
        nl.cpu_period.as_ref(),
        u64::to_string,
        |_, _| ratio,
    );
    cx.opt_sourced(
        "cgroup.limits.cpuset_cpus",
        ol.cpuset_cpus.as_ref(),
        nl.cpuset_cpus.as_ref(),
        String::clone,
        cpuset_dir,
    );
    cx.opt_sourced(
        "cgroup.limits.cpuset_mems",
        ol.cpuset_mems.as_ref(),
        nl.cpuset_mems.as_ref(),
        String::clone,
        cpuset_dir,
    );
    cx.opt_sourced(
        "cgroup.limits.pids",
        ol.pids.as_ref(),
        nl.pids.as_ref(),
        i64::to_string,
        |o, n| {
            let b = |v: Option<&i64>| v.copied().filter(|v| *v > 0).map(|v| v as u128);
            bound_dir(b(o), b(n))
        },
    );
    cx.opt_sourced(
        "cgroup.limits.memory_kernel_tcp",
        ol.memory_kernel_tcp.as_ref(),
        nl.memory_kernel_tcp.as_ref(),
        bytes,
        |o, n| bound_dir(memory_bound(o), memory_bound(n)),
    );
    cx.value(
        "cgroup.limits.devices",
        Some(&ol.devices),
        Some(&nl.devices),
        None,
        None,
        |d| {
            if d.is_empty() {
                "no devices cgroup".into()
            } else {
                d.iter()
                    .map(|r| format!("{} {}", if r.allow { "allow" } else { "deny" }, r.line()))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        },
        |o, n| devices_dir(o.map_or(&[][..], |v| v), n.map_or(&[][..], |v| v)),
    );
    // The mechanics: neutral, shown so a reviewer can check them.
    cx.value(
        "cgroup.dirs",
        Some(&o.dirs),
        Some(&n.dirs),
        None,
        None,
        |d| {
            d.iter()
                .map(|d| d.path.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        },
        |_, _| ChangeKind::Neutral,
    );
    // Keyed by file and its occurrence: a devices cgroup writes one rule
    // per write to the same file.
    let writes = pair_up(keyed_writes(&o.writes), keyed_writes(&n.writes));
    // A write whose value changed along with the limit it carries (same
    // origin as a limit that changed) is that limit's change, reported once
    // above; a write that appears, disappears or changes on its own is shown.
    let changed_limits = changed_limit_origins(ol, nl);
    for ((file, nth), (ow, nw)) in writes {
        if let (Some(ow), Some(nw)) = (ow, nw) {
            if ow.value != nw.value && changed_limits.contains(&&nw.from) {
                continue;
            }
        }
        cx.value(
            if nth == 1 {
                format!("cgroup.writes[{}]", file.display())
            } else {
                format!("cgroup.writes[{}#{nth}]", file.display())
            },
            ow.map(|w| &w.value),
            nw.map(|w| &w.value),
            ow.map(|w| &w.from),
            nw.map(|w| &w.from),
            String::clone,
            |_, _| ChangeKind::Neutral,
        );
    }
    cx.value(
        "cgroup.join",
        Some(&o.join),
        Some(&n.join),
        None,
        None,
        |p| p.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
        |_, _| ChangeKind::Neutral,
    );
    cx.sourced("cgroup.cpus", &o.cpus, &n.cpus, u32::to_string, |_, _| {
        ChangeKind::Neutral
    });
    cx.opt_sourced("cgroup.memory", o.memory.as_ref(), n.memory.as_ref(), bytes, |_, _| {
        ChangeKind::Neutral
    });
}

fn show_limits(l: &CgroupLimits) -> String {
    let mut v = Vec::new();
    if let Some(m) = &l.memory {
        v.push(format!("memory {}", m.value));
    }
    if let Some(p) = &l.pids {
        v.push(format!("pids {}", p.value));
    }
    if let Some(q) = &l.cpu_quota {
        v.push(format!("cpu quota {}", q.value));
    }
    if v.is_empty() {
        "no limits".into()
    } else {
        v.join(", ")
    }
}

// ---------------------------------------------------------------- stdio, processes

fn stdio_rank(s: &Stdio) -> u8 {
    match s {
        Stdio::ConsoleSocket(_) => 0,
        // The workload reaches the caller's stdin and stdout through the
        // relay, but not the caller's terminal itself (no ioctls on it).
        Stdio::Pty => 1,
        Stdio::Inherit => 2,
        // Nothing of the caller's: below a console socket, whose pty the
        // caller's side drives.
        Stdio::Null => 0,
    }
}

fn show_stdio(s: &Stdio) -> String {
    match s {
        Stdio::Inherit => "the caller's stdio".into(),
        Stdio::Null => "/dev/null (daemonized)".into(),
        Stdio::ConsoleSocket(p) => format!("pty via console socket {}", p.display()),
        Stdio::Pty => "pty relayed to the caller's stdio".into(),
    }
}

fn supervisor(cx: &mut Cx, old: &LaunchPlan, new: &LaunchPlan) {
    let (o, n) = (&old.supervisor, &new.supervisor);
    credentials(cx, "supervisor", old, new, &o.credentials, &n.credentials);
    capabilities(cx, "supervisor", &o.capabilities, &n.capabilities, None, None);
    cx.value(
        "supervisor.non_dumpable",
        Some(&o.non_dumpable),
        Some(&n.non_dumpable),
        None,
        None,
        |b| if *b { "on".into() } else { "off".into() },
        |_, n| {
            if n == Some(&true) {
                ChangeKind::Narrows
            } else {
                ChangeKind::Widens
            }
        },
    );
    cx.value(
        "supervisor.session",
        Some(&o.session),
        Some(&n.session),
        None,
        None,
        |s| match s {
            Session::NewSession => "new session".into(),
            Session::NewSessionWithControllingTty => "new session with controlling tty".into(),
        },
        |_, _| ChangeKind::Neutral,
    );
    fds(cx, "supervisor", (&o.fds, &[]), (&n.fds, &[]));
}

fn workload(cx: &mut Cx, old: &LaunchPlan, new: &LaunchPlan) {
    let (o, n) = (&old.workload, &new.workload);
    cx.sourced(
        "workload.args",
        &o.args,
        &n.args,
        |a| show_args(a),
        |_, _| ChangeKind::Neutral,
    );
    env(cx, &o.env, &n.env);
    cx.sourced(
        "workload.cwd",
        &o.cwd,
        &n.cwd,
        |p| p.display().to_string(),
        |_, _| ChangeKind::Neutral,
    );
    credentials(cx, "workload", old, new, &o.credentials, &n.credentials);
    capabilities(
        cx,
        "workload",
        &o.capabilities.value,
        &n.capabilities.value,
        Some(&o.capabilities.from),
        Some(&n.capabilities.from),
    );
    cx.sourced(
        "workload.no_new_privs",
        &o.no_new_privs,
        &n.no_new_privs,
        |b| if *b { "on".into() } else { "off".into() },
        |_, n| {
            if *n {
                ChangeKind::Narrows
            } else {
                ChangeKind::Widens
            }
        },
    );
    cx.opt_sourced(
        "workload.umask",
        o.umask.as_ref(),
        n.umask.as_ref(),
        |u| format!("{u:04o}"),
        |_, _| ChangeKind::Neutral,
    );
    cx.opt_sourced(
        "workload.oom_score_adj",
        o.oom_score_adj.as_ref(),
        n.oom_score_adj.as_ref(),
        |v| v.to_string(),
        |_, _| ChangeKind::Neutral,
    );
    rlimits(cx, &o.rlimits, &n.rlimits);
    seccomp(cx, o.seccomp.as_ref(), n.seccomp.as_ref());
    fds(
        cx,
        "workload",
        (&o.fds, &old.supervisor.fds),
        (&n.fds, &new.supervisor.fds),
    );
}

fn show_args(a: &[String]) -> String {
    a.iter()
        .map(|s| {
            if s.is_empty() || s.contains(|c: char| c.is_whitespace() || c == '"') {
                format!("{s:?}")
            } else {
                s.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The environment as a map; the first definition of a name wins (as getenv).
fn env_map(env: &[String]) -> BTreeMap<&str, &str> {
    let mut m = BTreeMap::new();
    for e in env {
        let (k, v) = e.split_once('=').unwrap_or((e.as_str(), ""));
        m.entry(k).or_insert(v);
    }
    m
}

fn env(cx: &mut Cx, old: &Sourced<Vec<String>>, new: &Sourced<Vec<String>>) {
    let pairs = pair_up(env_map(&old.value), env_map(&new.value));
    for (k, (o, n)) in pairs {
        cx.value(
            format!("workload.env.{k}"),
            o.as_ref(),
            n.as_ref(),
            Some(&old.from),
            Some(&new.from),
            |v| format!("{k}={v}"),
            |_, _| ChangeKind::Neutral,
        );
    }
}

/// The rank of an id by the host identity it stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum HostRank {
    /// Host nobody, or unmapped (the kernel's overflow id).
    Nobody,
    /// Some other host id.
    Other,
    /// Host root.
    Root,
}

/// The host id an inside id stands for: through the maps of a new user
/// namespace, or itself otherwise. `None`: unmapped.
fn host_id(plan: &LaunchPlan, maps: &[IdMap], inside: u32) -> Option<u64> {
    if plan.namespaces.user.value != Namespace::New {
        return Some(u64::from(inside));
    }
    maps.iter()
        .find(|m| inside >= m.inside && u64::from(inside) < u64::from(m.inside) + u64::from(m.count))
        .map(|m| u64::from(m.host) + u64::from(inside - m.inside))
}

fn host_rank(h: Option<u64>) -> HostRank {
    match h {
        None => HostRank::Nobody,
        Some(0) => HostRank::Root,
        Some(h) if h == u64::from(NOBODY) => HostRank::Nobody,
        Some(_) => HostRank::Other,
    }
}

/// Direction of a uid or gid change: widens when it becomes 0 inside, maps to
/// a higher host rank, or maps to another host identity of the same middle
/// rank; narrows when it only goes down.
fn id_dir(old: (u32, Option<u64>), new: (u32, Option<u64>)) -> (ChangeKind, Option<String>) {
    let (or, nr) = (host_rank(old.1), host_rank(new.1));
    let to_inside_root = new.0 == 0 && old.0 != 0;
    let from_inside_root = old.0 == 0 && new.0 != 0;
    if nr == HostRank::Root && or != HostRank::Root {
        return (ChangeKind::Widens, Some("now host root".into()));
    }
    if nr > or || to_inside_root || (nr == HostRank::Other && or == HostRank::Other && old.1 != new.1) {
        let note = if to_inside_root {
            "now 0 (root) inside the sandbox"
        } else {
            "now acts as another host identity"
        };
        return (ChangeKind::Widens, Some(note.into()));
    }
    if nr < or || from_inside_root {
        return (ChangeKind::Narrows, None);
    }
    (ChangeKind::Neutral, Some("same host identity".into()))
}

fn show_id(inside: u32, host: Option<u64>) -> String {
    match host {
        Some(h) if h == u64::from(inside) => format!("{inside}"),
        Some(h) => format!("{inside} (host {h})"),
        None => format!("{inside} (unmapped on the host)"),
    }
}

fn credentials(cx: &mut Cx, who: &str, old: &LaunchPlan, new: &LaunchPlan, o: &Credentials, n: &Credentials) {
    let (of, nf) = (Some(&o.from), Some(&n.from));
    /// An id on each side, with the maps that place it on the host.
    type IdPair<'a> = (&'a str, u32, u32, &'a [IdMap], &'a [IdMap]);
    let ids: [IdPair; 2] = [
        ("uid", o.uid.0, n.uid.0, &old.id_maps.uid, &new.id_maps.uid),
        ("gid", o.gid.0, n.gid.0, &old.id_maps.gid, &new.id_maps.gid),
    ];
    for (name, oi, ni, om, nm) in ids {
        let (oh, nh) = (host_id(old, om, oi), host_id(new, nm, ni));
        let field = format!("{who}.credentials.{name}");
        if (oi, oh) == (ni, nh) {
            if o.from != n.from {
                cx.moved(field, show_id(ni, nh), &o.from, &n.from);
            }
            continue;
        }
        let (kind, note) = id_dir((oi, oh), (ni, nh));
        cx.push(field, kind, Some(show_id(oi, oh)), Some(show_id(ni, nh)), of, nf, note);
    }
    let gids = |c: &Credentials, plan: &LaunchPlan| -> Vec<((u32, Option<u64>), Origin)> {
        c.groups
            .iter()
            .map(|Gid(g)| ((*g, host_id(plan, &plan.id_maps.gid, *g)), c.from.clone()))
            .collect()
    };
    cx.set(
        &format!("{who}.credentials.groups"),
        gids(o, old),
        gids(n, new),
        |(g, h)| show_id(*g, *h),
        ChangeKind::Widens,
        ChangeKind::Narrows,
    );
}

fn capabilities(cx: &mut Cx, who: &str, o: &CapSets, n: &CapSets, of: Option<&Origin>, nf: Option<&Origin>) {
    type Pick = fn(&CapSets) -> &BTreeSet<Cap>;
    let sets: [(&str, Pick); 5] = [
        ("bounding", |c| &c.bounding),
        ("effective", |c| &c.effective),
        ("inheritable", |c| &c.inheritable),
        ("permitted", |c| &c.permitted),
        ("ambient", |c| &c.ambient),
    ];
    for (name, pick) in sets {
        let field = format!("{who}.capabilities.{name}");
        let (os, ns) = (pick(o), pick(n));
        for cap in os.symmetric_difference(ns) {
            let added = ns.contains(cap);
            let v = Some(cap.to_string());
            let (old, new, kind) = if added {
                (None, v, ChangeKind::Widens)
            } else {
                (v, None, ChangeKind::Narrows)
            };
            cx.push(field.clone(), kind, old, new, of, nf, None);
        }
        if let (Some(a), Some(b)) = (of, nf) {
            if a != b && !os.is_empty() && os == ns {
                cx.moved(
                    field,
                    os.iter().map(Cap::to_string).collect::<Vec<_>>().join(", "),
                    a,
                    b,
                );
            }
        }
    }
}

fn show_rlimit(r: &Rlimit) -> String {
    let v = |x: u64| {
        if x == u64::MAX {
            "unlimited".to_string()
        } else {
            x.to_string()
        }
    };
    format!("{}/{}", v(r.soft), v(r.hard))
}

fn rlimits(cx: &mut Cx, old: &BTreeMap<RlimitKind, Rlimit>, new: &BTreeMap<RlimitKind, Rlimit>) {
    for (kind, (o, n)) in pair_up(old.iter(), new.iter()) {
        let field = format!("workload.rlimits.{}", kind.name());
        let (ov, nv) = (o.map(|r| (r.soft, r.hard)), n.map(|r| (r.soft, r.hard)));
        if ov == nv {
            if let (Some(o), Some(n)) = (o, n) {
                if o.from != n.from {
                    cx.moved(field, show_rlimit(n), &o.from, &n.from);
                }
            }
            continue;
        }
        let kind = match (ov, nv) {
            (Some(_), None) => ChangeKind::Widens,
            (None, Some(_)) => ChangeKind::Narrows,
            (Some((os, oh)), Some((ns, nh))) if ns > os || nh > oh => ChangeKind::Widens,
            _ => ChangeKind::Narrows,
        };
        let note = (o.is_some() && n.is_none()).then(|| "no longer set: the caller's limit applies".to_string());
        cx.push(
            field,
            kind,
            o.map(show_rlimit),
            n.map(show_rlimit),
            o.map(|r| &r.from),
            n.map(|r| &r.from),
            note,
        );
    }
}

// ---------------------------------------------------------------- seccomp

fn errno_name(e: u32) -> String {
    match e {
        1 => "EPERM".into(),
        13 => "EACCES".into(),
        38 => "ENOSYS".into(),
        _ => e.to_string(),
    }
}

fn show_action(a: &SeccompAction) -> String {
    match a {
        SeccompAction::Allow => "allow".into(),
        SeccompAction::Errno(e) => format!("errno({})", errno_name(*e)),
        SeccompAction::KillThread => "kill_thread".into(),
        SeccompAction::KillProcess => "kill_process".into(),
        SeccompAction::Trap => "trap".into(),
        SeccompAction::Log => "log".into(),
        SeccompAction::Trace(d) => format!("trace({d})"),
    }
}

/// `arg0 & 0x7e020080 == 0x0 && arg1 == 0x2`: a rule's conditions, as the
/// diff and the text plan show them.
pub(crate) fn show_conds(conds: &[ArgCond]) -> String {
    conds
        .iter()
        .map(|c| {
            let op = match c.op {
                CmpOp::Eq => "==",
                CmpOp::Ne => "!=",
                CmpOp::Lt => "<",
                CmpOp::Le => "<=",
                CmpOp::Gt => ">",
                CmpOp::Ge => ">=",
                CmpOp::MaskedEq => "&",
            };
            match (c.op, c.value_two) {
                (CmpOp::MaskedEq, Some(v2)) => {
                    format!("arg{} & {:#x} == {:#x}", c.index, c.value, v2)
                }
                _ => format!("arg{} {op} {:#x}", c.index, c.value),
            }
        })
        .collect::<Vec<_>>()
        .join(" && ")
}

/// What a filter does with one syscall: its unconditional action, and its
/// actions under argument conditions. Where several rules give one case an
/// action, the strictest wins (the kernel's rule for stacked filters), ties
/// broken by the action's own order, so rule order never matters.
#[derive(Default)]
struct Profile {
    always: Option<(SeccompAction, Origin)>,
    when: BTreeMap<Vec<ArgCond>, (SeccompAction, Origin)>,
}

fn stricter(a: &(SeccompAction, Origin), b: &(SeccompAction, Origin)) -> bool {
    (a.0.looseness(), a.0, &a.1) < (b.0.looseness(), b.0, &b.1)
}

fn profiles(s: &Seccomp) -> BTreeMap<&str, Profile> {
    let mut m: BTreeMap<&str, Profile> = BTreeMap::new();
    for r in &s.rules {
        let mut conds = r.args.clone();
        conds.sort();
        conds.dedup();
        let cand = (r.action, r.from.clone());
        for name in &r.syscalls {
            let p = m.entry(name.as_str()).or_default();
            if conds.is_empty() {
                if p.always.as_ref().is_none_or(|cur| stricter(&cand, cur)) {
                    p.always = Some(cand.clone());
                }
            } else {
                let e = p.when.entry(conds.clone()).or_insert_with(|| cand.clone());
                if stricter(&cand, e) {
                    *e = cand.clone();
                }
            }
        }
    }
    m
}

fn seccomp(cx: &mut Cx, old: Option<&Seccomp>, new: Option<&Seccomp>) {
    let (o, n) = match (old, new) {
        (Some(o), Some(n)) => (o, n),
        (None, None) => return,
        (o, n) => {
            let show = |s: &Seccomp| {
                format!(
                    "default {}, {} rules",
                    show_action(&s.default_action.value),
                    s.rules.len()
                )
            };
            cx.value(
                "workload.seccomp",
                o,
                n,
                o.map(|s| &s.default_action.from),
                n.map(|s| &s.default_action.from),
                show,
                added_narrows,
            );
            return;
        }
    };
    cx.sourced(
        "workload.seccomp.default_action",
        &o.default_action,
        &n.default_action,
        show_action,
        |o, n| ChangeKind::of_ranks(o.looseness(), n.looseness()),
    );
    let arches = |s: &Seccomp| {
        s.architectures
            .iter()
            .map(|a| (a.clone(), s.default_action.from.clone()))
            .collect::<Vec<_>>()
    };
    // An architecture's origin is the filter's; only additions and removals matter.
    for (a, (x, y)) in pair_up(arches(o), arches(n)) {
        if x.is_some() != y.is_some() {
            let added = y.is_some();
            cx.push(
                "workload.seccomp.architectures".into(),
                if added { ChangeKind::Widens } else { ChangeKind::Narrows },
                (!added).then(|| a.clone()),
                added.then(|| a.clone()),
                x.as_ref(),
                y.as_ref(),
                None,
            );
        }
    }
    let (op, np) = (profiles(o), profiles(n));
    let empty = Profile::default();
    let names: BTreeSet<&str> = op.keys().chain(np.keys()).copied().collect();
    for name in names {
        let (a, b) = (op.get(name).unwrap_or(&empty), np.get(name).unwrap_or(&empty));
        let field = format!("workload.seccomp.syscalls.{name}");
        // Unconditional effective action: the rule's, or the default.
        let eff = |p: &Profile, s: &Seccomp| {
            p.always
                .clone()
                .map(|x| (x, true))
                .unwrap_or_else(|| ((s.default_action.value, s.default_action.from.clone()), false))
        };
        let (((oa, of), oexp), ((na, nf), nexp)) = (eff(a, o), eff(b, n));
        if oa != na {
            let tag = |act: &SeccompAction, explicit: bool| {
                if explicit {
                    show_action(act)
                } else {
                    format!("{} (default)", show_action(act))
                }
            };
            cx.push(
                field.clone(),
                ChangeKind::of_ranks(oa.looseness(), na.looseness()),
                Some(tag(&oa, oexp)),
                Some(tag(&na, nexp)),
                Some(&of),
                Some(&nf),
                None,
            );
        } else if oexp && nexp && of != nf {
            cx.moved(field.clone(), show_action(&na), &of, &nf);
        }
        // Conditional cases, each against the fallback of its own side.
        for (conds, (x, y)) in pair_up(a.when.iter(), b.when.iter()) {
            let show = |(act, _): &(SeccompAction, Origin)| format!("{} when {}", show_action(act), show_conds(conds));
            let kind = match (x, y) {
                (None, Some(y)) => ChangeKind::of_ranks(na.looseness(), y.0.looseness()),
                (Some(x), None) => ChangeKind::of_ranks(x.0.looseness(), oa.looseness()),
                (Some(x), Some(y)) => ChangeKind::of_ranks(x.0.looseness(), y.0.looseness()),
                (None, None) => ChangeKind::Neutral,
            };
            cx.value(field.clone(), x, y, x.map(|v| &v.1), y.map(|v| &v.1), show, |_, _| kind);
        }
    }
    let unknown = |s: &Seccomp| {
        let mut v = s.unknown_syscalls.clone();
        v.sort();
        v.dedup();
        v
    };
    cx.value(
        "workload.seccomp.unknown_syscalls",
        Some(&unknown(o)),
        Some(&unknown(n)),
        None,
        None,
        |v| v.join(", "),
        |_, _| ChangeKind::Neutral,
    );
}

// ---------------------------------------------------------------- fds, clamps, steps

fn show_fd(e: &FdEntry) -> String {
    let role = serde_json::to_value(e.role)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let src = match &e.source {
        FdSource::Caller { fd } => format!("the caller's fd {}", fd.0),
        FdSource::PtySlave => "the pty slave".into(),
        FdSource::File { path, open, mode } => {
            let open = match open {
                OpenMode::Read => "read",
                OpenMode::AppendCreate => "append,create",
                OpenMode::ReadWrite => "read-write",
            };
            format!("{} ({open}, {mode:04o})", path.display())
        }
        FdSource::ControlSocket => "the control socket".into(),
        FdSource::PlanMemfd => "the plan (sealed memfd)".into(),
        FdSource::KvmDevice => "/dev/kvm".into(),
        FdSource::Supervisor { fd } => format!("the supervisor's fd {}", fd.0),
    };
    format!("{role}: {src}")
}

/// Direction of an fd whose source changed.
fn fd_source_dir(o: &FdSource, n: &FdSource) -> ChangeKind {
    match (o, n) {
        (
            FdSource::File {
                path: a,
                open: oa,
                mode: ma,
            },
            FdSource::File {
                path: b,
                open: ob,
                mode: mb,
            },
        ) if a == b => {
            let rank = |m: &OpenMode| match m {
                OpenMode::Read => 0,
                OpenMode::AppendCreate => 1,
                OpenMode::ReadWrite => 2,
            };
            match ChangeKind::of_ranks(rank(oa), rank(ob)) {
                ChangeKind::Neutral if mb & !ma != 0 => ChangeKind::Widens,
                ChangeKind::Neutral if ma & !mb != 0 => ChangeKind::Narrows,
                k => k,
            }
        }
        (FdSource::Caller { .. }, FdSource::PtySlave) => ChangeKind::Narrows,
        (FdSource::PtySlave, FdSource::Caller { .. }) => ChangeKind::Widens,
        _ if o == n => ChangeKind::Neutral,
        _ => ChangeKind::Widens,
    }
}

/// What an fd is, independent of its number: its role and source, with a
/// reference to a supervisor fd resolved to what that fd is.
fn fd_identity(e: &FdEntry, supervisor: &[FdEntry]) -> String {
    match &e.source {
        FdSource::Supervisor { fd } => match supervisor.iter().find(|s| s.fd == *fd) {
            Some(s) => format!("{:?}: via supervisor {}", e.role, fd_identity(s, &[])),
            None => format!("{:?}: via supervisor fd {}", e.role, fd.0),
        },
        _ => format!("{:?}: {:?}", e.role, e.source),
    }
}

/// Compares two FD tables. Entries are matched by what they are (so a table
/// renumbered around a new fd shows one added fd and neutral renumberings),
/// then by number (an fd whose source changed); what is left was added or
/// removed.
fn fds(cx: &mut Cx, who: &str, old: (&[FdEntry], &[FdEntry]), new: (&[FdEntry], &[FdEntry])) {
    let ((old, old_sup), (new, new_sup)) = (old, new);
    let mut left_old: Vec<&FdEntry> = Vec::new();
    let mut left_new: Vec<&FdEntry> = new.iter().collect();
    let mut renumbered: Vec<(&FdEntry, &FdEntry)> = Vec::new();
    for o in old {
        let id = fd_identity(o, old_sup);
        match left_new.iter().position(|n| fd_identity(n, new_sup) == id) {
            Some(i) => {
                let n = left_new.remove(i);
                if o.fd == n.fd {
                    if o.from != n.from {
                        cx.moved(format!("{who}.fds[{}]", n.fd.0), show_fd(n), &o.from, &n.from);
                    }
                } else {
                    renumbered.push((o, n));
                }
            }
            None => left_old.push(o),
        }
    }
    // Renumbered: neutral, under the new number.
    for (o, n) in renumbered {
        let show = |e: &FdEntry| format!("fd {}: {}", e.fd.0, show_fd(e));
        cx.push(
            format!("{who}.fds[{}]", n.fd.0),
            ChangeKind::Neutral,
            Some(show(o)),
            Some(show(n)),
            Some(&o.from),
            Some(&n.from),
            Some("the same fd under another number".into()),
        );
    }
    let pairs = pair_up(left_old.iter().map(|e| (e.fd, *e)), left_new.iter().map(|e| (e.fd, *e)));
    for (fd, (o, n)) in pairs {
        let kind = match (o, n) {
            (None, Some(_)) => ChangeKind::Widens,
            (Some(_), None) => ChangeKind::Narrows,
            (Some(o), Some(n)) => fd_source_dir(&o.source, &n.source),
            (None, None) => ChangeKind::Neutral,
        };
        let note = (o.is_none() && n.is_some()).then(|| "a new fd crosses into the process".to_string());
        cx.push(
            format!("{who}.fds[{}]", fd.0),
            kind,
            o.map(show_fd),
            n.map(show_fd),
            o.map(|e| &e.from),
            n.map(|e| &e.from),
            note,
        );
    }
}

/// A hook as the diff shows it: everything it runs, so any change to one
/// is a hook removed and a hook added.
fn show_hook(h: &crate::plan::Hook) -> String {
    format!(
        "{} {} argv {:?} env {:?} timeout {}",
        h.phase.name(),
        h.path.display(),
        h.args,
        h.env,
        h.timeout_s.map_or("none".to_string(), |t| format!("{t} s"))
    )
}

fn show_clamp(c: &Clamp) -> String {
    format!(
        "requested {} by {}, granted {} (ceiling {})",
        c.requested, c.requested_by, c.granted, c.ceiling
    )
}

/// Compares the clamps. A field can hold several clamps (one per capability
/// dropped from a set), so clamps are matched by field and request first, then
/// what is left by field alone, in order (a scalar clamp whose request moved);
/// every clamp that is left was added or removed. Each clamp is its own change.
fn clamps(cx: &mut Cx, old: &[Clamp], new: &[Clamp]) {
    let mut left_new: Vec<&Clamp> = new.iter().collect();
    let mut left_old: Vec<&Clamp> = Vec::new();
    let mut pairs: Vec<(Option<&Clamp>, Option<&Clamp>)> = Vec::new();
    for o in old {
        match left_new
            .iter()
            .position(|n| n.field == o.field && n.requested == o.requested)
        {
            Some(i) => pairs.push((Some(o), Some(left_new.remove(i)))),
            None => left_old.push(o),
        }
    }
    for o in left_old {
        match left_new.iter().position(|n| n.field == o.field) {
            Some(i) => pairs.push((Some(o), Some(left_new.remove(i)))),
            None => pairs.push((Some(o), None)),
        }
    }
    pairs.extend(left_new.into_iter().map(|n| (None, Some(n))));
    for (o, n) in pairs {
        let field = o.or(n).map(|c| c.field.as_str()).unwrap_or_default();
        cx.value(format!("clamps[{field}]"), o, n, None, None, show_clamp, |_, _| {
            ChangeKind::Neutral
        });
    }
}

/// Steps: the ones dropped and the ones added; the whole lists when only the
/// order changed.
fn steps(cx: &mut Cx, old: &[Step], new: &[Step]) {
    if old == new {
        return;
    }
    let names = |v: &mut dyn Iterator<Item = &Step>| v.map(|s| s.name()).collect::<Vec<_>>().join(", ");
    let removed = names(&mut old.iter().filter(|s| !new.contains(s)));
    let added = names(&mut new.iter().filter(|s| !old.contains(s)));
    let (o, n, note) = if removed.is_empty() && added.is_empty() {
        (
            Some(names(&mut old.iter())),
            Some(names(&mut new.iter())),
            Some("same steps, another order".to_string()),
        )
    } else {
        let o = (!removed.is_empty()).then(|| format!("dropped {removed}"));
        let n = (!added.is_empty()).then(|| format!("added {added}"));
        (o, n, None)
    };
    cx.push("steps".into(), ChangeKind::Neutral, o, n, None, None, note);
}

/// A section that appears narrows (a cgroup, a filter: something is now
/// limited); one that disappears widens.
fn added_narrows<T>(old: Option<&T>, _new: Option<&T>) -> ChangeKind {
    if old.is_none() {
        ChangeKind::Narrows
    } else {
        ChangeKind::Widens
    }
}
