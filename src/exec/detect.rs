//! Host fact detection: the one place that asks the running machine what
//! [`HostFacts`] `compile` may rely on.
//!
//! [`detect`] makes the syscalls and reads the `/proc` and `/sys` files; every
//! piece of text it reads is handed to a pure parser in this module
//! ([`parse_mountinfo`], [`cgroup_mounts`], [`parse_cgroup_controllers`],
//! [`parse_meminfo_total`], [`parse_max_user_namespaces`]) so the parsing is
//! unit-tested on captured text from real and synthetic hosts. A failure names
//! the file or syscall and carries the OS error; only `/dev/kvm` is optional
//! (absent or not answering means "no KVM", not an error).

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};

use caps::CapSet;
use nix::errno::Errno;
use nix::sys::resource::{getrlimit, Resource};

use crate::host::{CgroupFacts, CgroupLayout, CgroupV2Facts, HostFacts, KvmFacts, RlimitPair};
use crate::vocab::{Bytes, Cap, Gid, KvmExtension, RlimitKind, Uid};

/// Where the mount table of the calling process is read from.
pub const MOUNTINFO: &str = "/proc/self/mountinfo";
/// Where total memory is read from.
pub const MEMINFO: &str = "/proc/meminfo";
/// The user-namespace limit; `0` means none may be created.
pub const MAX_USER_NAMESPACES: &str = "/proc/sys/user/max_user_namespaces";

/// Why host facts could not be detected.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A file was read but its text was not what the kernel writes.
    #[error("{}:{line}: {reason}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line of the offending text.
        line: usize,
        /// What was wrong.
        reason: String,
    },
    /// A system call failed.
    #[error("{call} failed: {source}")]
    Syscall {
        /// The system call, with its argument where that says more.
        call: &'static str,
        /// The OS error.
        #[source]
        source: Errno,
    },
    /// A capability set could not be read (capget / prctl(PR_CAPBSET_READ)).
    #[error("reading the {set} capability set failed: {source}")]
    Caps {
        /// `effective` or `bounding`.
        set: &'static str,
        /// The error from the caps crate (it names the OS error).
        #[source]
        source: caps::errors::CapsError,
    },
}

/// A parse failure in a pure parser, before the file name is attached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct ParseError {
    /// 1-based line.
    pub line: usize,
    /// What was wrong.
    pub reason: String,
}

impl ParseError {
    fn new(line: usize, reason: impl Into<String>) -> Self {
        ParseError {
            line,
            reason: reason.into(),
        }
    }

    fn in_file(self, path: impl Into<PathBuf>) -> DetectError {
        DetectError::Parse {
            path: path.into(),
            line: self.line,
            reason: self.reason,
        }
    }
}

/// Detects the facts of the machine this process runs on, as this process
/// sees them (its credentials, capability sets, CPU affinity, mount table and
/// resource limits).
///
/// Reads `/proc/self/mountinfo`, `/proc/meminfo`,
/// `/proc/sys/user/max_user_namespaces` and each v2 mount's
/// `cgroup.controllers`; calls uname, getuid, getgid, capget,
/// prctl(PR_CAPBSET_READ), sched_getaffinity and getrlimit; opens `/dev/kvm`
/// (and closes it again) to ask its API version and extensions.
/// Changes nothing on the host.
pub fn detect() -> Result<HostFacts, DetectError> {
    let uts = nix::sys::utsname::uname().map_err(|source| DetectError::Syscall { call: "uname", source })?;
    let kernel = uts.release().to_string_lossy().into_owned();
    let arch = uts.machine().to_string_lossy().into_owned();

    let capabilities = read_caps(CapSet::Effective, "effective")?;
    let bounding = read_caps(CapSet::Bounding, "bounding")?;

    let cpus = detect_cpus()?;

    let meminfo = read(MEMINFO)?;
    let memory = parse_meminfo_total(&meminfo).map_err(|e| e.in_file(MEMINFO))?;

    let user_namespaces = match read_small(Path::new(MAX_USER_NAMESPACES)) {
        Ok(text) => parse_max_user_namespaces(&text).map_err(|e| e.in_file(MAX_USER_NAMESPACES))?,
        // A kernel without CONFIG_USER_NS has no such file.
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(source) => {
            return Err(DetectError::Read {
                path: MAX_USER_NAMESPACES.into(),
                source,
            })
        }
    };

    let mountinfo = read(MOUNTINFO)?;
    let cgroup = cgroup_facts(&mountinfo, |mount| {
        let path = mount.join("cgroup.controllers");
        let text = read(&path)?;
        Ok(parse_cgroup_controllers(&text))
    })?;

    Ok(HostFacts {
        kernel,
        arch,
        uid: Uid(nix::unistd::getuid().as_raw()),
        gid: Gid(nix::unistd::getgid().as_raw()),
        capabilities,
        bounding,
        cpus,
        memory,
        user_namespaces,
        cgroup,
        kvm: detect_kvm(),
        rlimits: detect_rlimits()?,
        // Absent files (most hosts without rootless users) mean no ranges.
        subordinate: crate::host::SubordinateIds {
            uid: crate::host::SubordinateIds::parse(&std::fs::read_to_string("/etc/subuid").unwrap_or_default()),
            gid: crate::host::SubordinateIds::parse(&std::fs::read_to_string("/etc/subgid").unwrap_or_default()),
        },
    })
}

fn read(path: impl AsRef<Path>) -> Result<String, DetectError> {
    let path = path.as_ref();
    read_small(path).map_err(|source| DetectError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// What [`read_small`] reads at first: all of meminfo and of a small host's
/// mountinfo.
const SMALL_READ: usize = 4096;

/// Reads a whole `/proc` or `/sys` file as text in as few system calls as it
/// can: open, one read per [`SMALL_READ`] bytes (the buffer grows as needed),
/// one read that finds the end, close. `std::fs::read_to_string` asks the
/// file's size first (0 for these) and then reads from 32 bytes up, doubling,
/// which is about eight reads for meminfo.
fn read_small(path: &Path) -> io::Result<String> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::with_capacity(SMALL_READ);
    // `Take` reads through the generic loop: no size query, no probe reads
    // while the buffer has room.
    file.take(u64::MAX).read_to_end(&mut bytes)?;
    // The error std's read_to_string gives for such text.
    String::from_utf8(bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "stream did not contain valid UTF-8"))
}

fn read_caps(set: CapSet, name: &'static str) -> Result<BTreeSet<Cap>, DetectError> {
    caps::read(None, set)
        .map(|s| s.into_iter().map(Cap).collect())
        .map_err(|source| DetectError::Caps { set: name, source })
}

/// CPUs this process may run on (its affinity mask), which is what a sandbox
/// started from here can use.
fn detect_cpus() -> Result<u32, DetectError> {
    use nix::sched::{sched_getaffinity, CpuSet};
    let set = sched_getaffinity(nix::unistd::Pid::from_raw(0)).map_err(|source| DetectError::Syscall {
        call: "sched_getaffinity",
        source,
    })?;
    let n = (0..CpuSet::count()).filter(|&i| set.is_set(i).unwrap_or(false)).count();
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

/// `/dev/kvm`'s API version and which of every [`KvmExtension`] a plan can
/// require it reports (by name);
/// `None` when the device is absent or cannot be opened.
fn detect_kvm() -> Option<KvmFacts> {
    let kvm = kvm_ioctls::Kvm::new().ok()?;
    let api_version = kvm.get_api_version();
    let extensions = KvmExtension::ALL
        .iter()
        .filter(|e| kvm.check_extension(super::linux::kvm_cap(**e)))
        .map(|e| e.name().to_string())
        .collect();
    Some(KvmFacts {
        api_version,
        extensions,
    })
}

fn resource(kind: RlimitKind) -> Resource {
    match kind {
        RlimitKind::Cpu => Resource::RLIMIT_CPU,
        RlimitKind::Fsize => Resource::RLIMIT_FSIZE,
        RlimitKind::Data => Resource::RLIMIT_DATA,
        RlimitKind::Stack => Resource::RLIMIT_STACK,
        RlimitKind::Core => Resource::RLIMIT_CORE,
        RlimitKind::Rss => Resource::RLIMIT_RSS,
        RlimitKind::Nproc => Resource::RLIMIT_NPROC,
        RlimitKind::Nofile => Resource::RLIMIT_NOFILE,
        RlimitKind::Memlock => Resource::RLIMIT_MEMLOCK,
        RlimitKind::As => Resource::RLIMIT_AS,
        RlimitKind::Locks => Resource::RLIMIT_LOCKS,
        RlimitKind::Sigpending => Resource::RLIMIT_SIGPENDING,
        RlimitKind::Msgqueue => Resource::RLIMIT_MSGQUEUE,
        RlimitKind::Nice => Resource::RLIMIT_NICE,
        RlimitKind::Rtprio => Resource::RLIMIT_RTPRIO,
        RlimitKind::Rttime => Resource::RLIMIT_RTTIME,
    }
}

fn detect_rlimits() -> Result<BTreeMap<RlimitKind, RlimitPair>, DetectError> {
    RlimitKind::ALL
        .iter()
        .map(|&(kind, _)| {
            let (soft, hard) = getrlimit(resource(kind)).map_err(|source| DetectError::Syscall {
                call: "getrlimit",
                source,
            })?;
            Ok((
                kind,
                RlimitPair {
                    soft: rlimit_value(soft),
                    hard: rlimit_value(hard),
                },
            ))
        })
        .collect()
}

/// A raw `rlim_t` as recorded in host facts: `RLIM_INFINITY` becomes `u64::MAX`.
pub fn rlimit_value(raw: libc::rlim_t) -> u64 {
    if raw == libc::RLIM_INFINITY {
        u64::MAX
    } else {
        raw
    }
}

/// One line of `/proc/<pid>/mountinfo` (see proc(5)), with the fields host
/// detection needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    /// The directory of the mounted filesystem that is the root of this mount
    /// (`/` unless it is a bind mount of a subdirectory).
    pub root: PathBuf,
    /// Where it is mounted, with the kernel's octal escapes undone.
    pub mount_point: PathBuf,
    /// Filesystem type (`cgroup`, `cgroup2`, `ext4`, …).
    pub fstype: String,
    /// Per-superblock options, comma-separated in the file.
    pub super_options: Vec<String>,
}

/// Parses `/proc/<pid>/mountinfo` text.
///
/// Each line is `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL…] - FSTYPE
/// SOURCE SUPEROPTIONS`; a line without the `-` separator or with too few
/// fields is an error naming its line.
pub fn parse_mountinfo(text: &str) -> Result<Vec<MountInfo>, ParseError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let lineno = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split_ascii_whitespace().collect();
        if fields.len() < 7 {
            return Err(ParseError::new(
                lineno,
                format!("expected at least 9 fields, found {}", fields.len()),
            ));
        }
        let sep = fields[6..]
            .iter()
            .position(|f| *f == "-")
            .map(|p| p + 6)
            .ok_or_else(|| ParseError::new(lineno, "no \" - \" separator before the filesystem type"))?;
        let after = &fields[sep + 1..];
        if after.len() < 2 {
            return Err(ParseError::new(
                lineno,
                "expected FSTYPE SOURCE [SUPEROPTIONS] after \" - \"",
            ));
        }
        out.push(MountInfo {
            root: PathBuf::from(unescape(fields[3])),
            mount_point: PathBuf::from(unescape(fields[4])),
            fstype: after[0].to_string(),
            super_options: after
                .get(2)
                .map(|s| s.split(',').map(str::to_string).collect())
                .unwrap_or_default(),
        });
    }
    Ok(out)
}

/// Undoes the kernel's `\ooo` octal escapes (space, tab, newline, backslash).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            let v = (b[i + 1] - b'0') as u32 * 64 + (b[i + 2] - b'0') as u32 * 8 + (b[i + 3] - b'0') as u32;
            if let Ok(byte) = u8::try_from(v) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Super options of a cgroup v1 mount that are flags, not controllers.
const V1_FLAG_OPTIONS: &[&str] = &[
    "rw",
    "ro",
    "none",
    "noprefix",
    "clone_children",
    "xattr",
    "cpuset_v2_mode",
    "favordynmods",
];

/// The cgroup hierarchies found in a mount table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CgroupMounts {
    /// Each v1 controller and the mount point of its hierarchy. Named
    /// hierarchies without a controller (`name=systemd`) are not recorded.
    pub v1: BTreeMap<String, PathBuf>,
    /// The mount point of the unified (v2) hierarchy.
    pub v2: Option<PathBuf>,
}

/// Finds the cgroup hierarchies in parsed mountinfo.
///
/// A v1 mount's controllers are its super options minus flags and `key=value`
/// options, so `cpu,cpuacct` maps both `cpu` and `cpuacct` to one mount point.
/// When a hierarchy is mounted more than once, a mount of its root (`ROOT` =
/// `/`) wins over a bind mount of a subdirectory, and otherwise the first in
/// the table wins; the same rule picks the v2 mount.
pub fn cgroup_mounts(mounts: &[MountInfo]) -> CgroupMounts {
    let mut v1: BTreeMap<String, (bool, PathBuf)> = BTreeMap::new();
    let mut v2: Option<(bool, PathBuf)> = None;
    let better = |old: &Option<(bool, PathBuf)>, is_root: bool| match old {
        None => true,
        Some((old_root, _)) => is_root && !old_root,
    };
    for m in mounts {
        let is_root = m.root == Path::new("/");
        match m.fstype.as_str() {
            "cgroup" => {
                for opt in &m.super_options {
                    if opt.is_empty() || opt.contains('=') || V1_FLAG_OPTIONS.contains(&opt.as_str()) {
                        continue;
                    }
                    let old = v1.get(opt).cloned();
                    if better(&old, is_root) {
                        v1.insert(opt.clone(), (is_root, m.mount_point.clone()));
                    }
                }
            }
            "cgroup2" if better(&v2, is_root) => v2 = Some((is_root, m.mount_point.clone())),
            _ => {}
        }
    }
    CgroupMounts {
        v1: v1.into_iter().map(|(k, (_, p))| (k, p)).collect(),
        v2: v2.map(|(_, p)| p),
    }
}

/// The layout named by which hierarchies exist: v1 controllers and a v2 mount
/// is hybrid. A v2 mount beside only named v1 hierarchies is `V2` as far as
/// controllers go.
pub fn cgroup_layout(v1_controllers: bool, v2_mount: bool) -> CgroupLayout {
    match (v1_controllers, v2_mount) {
        (true, true) => CgroupLayout::Hybrid,
        (true, false) => CgroupLayout::V1,
        (false, true) => CgroupLayout::V2,
        (false, false) => CgroupLayout::None,
    }
}

/// Parses a `cgroup.controllers` file: controller names separated by spaces.
pub fn parse_cgroup_controllers(text: &str) -> BTreeSet<String> {
    text.split_ascii_whitespace().map(str::to_string).collect()
}

/// Builds [`CgroupFacts`] from mountinfo text; `controllers` is asked for the
/// controllers of the v2 mount (given its mount point) when there is one.
pub fn cgroup_facts(
    mountinfo: &str,
    controllers: impl FnOnce(&Path) -> Result<BTreeSet<String>, DetectError>,
) -> Result<CgroupFacts, DetectError> {
    let mounts = parse_mountinfo(mountinfo).map_err(|e| e.in_file(MOUNTINFO))?;
    let found = cgroup_mounts(&mounts);
    let v2 = match found.v2 {
        Some(mount) => Some(CgroupV2Facts {
            controllers: controllers(&mount)?,
            mount,
        }),
        None => None,
    };
    Ok(CgroupFacts {
        layout: cgroup_layout(!found.v1.is_empty(), v2.is_some()),
        v1: found.v1,
        v2,
    })
}

/// Total memory from `/proc/meminfo` text (`MemTotal: N kB`).
pub fn parse_meminfo_total(text: &str) -> Result<Bytes, ParseError> {
    for (i, line) in text.lines().enumerate() {
        let Some(rest) = line.strip_prefix("MemTotal:") else {
            continue;
        };
        let mut it = rest.split_ascii_whitespace();
        let n: u64 = it
            .next()
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| ParseError::new(i + 1, format!("MemTotal is not a number: {:?}", rest.trim())))?;
        let mult = match it.next() {
            Some("kB") => 1024,
            None => 1,
            Some(u) => {
                return Err(ParseError::new(
                    i + 1,
                    format!("MemTotal has unknown unit {u:?} (expected kB)"),
                ))
            }
        };
        return n
            .checked_mul(mult)
            .map(Bytes)
            .ok_or_else(|| ParseError::new(i + 1, "MemTotal does not fit in 64 bits"));
    }
    Err(ParseError::new(text.lines().count().max(1), "no MemTotal line"))
}

/// Whether user namespaces may be created, from
/// `/proc/sys/user/max_user_namespaces` text (a count; `0` forbids them).
pub fn parse_max_user_namespaces(text: &str) -> Result<bool, ParseError> {
    let t = text.trim();
    t.parse::<u64>()
        .map(|n| n > 0)
        .map_err(|_| ParseError::new(1, format!("expected a number, found {t:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = include_str!("../../tests/data/host/mountinfo-hybrid");
    const V1: &str = include_str!("../../tests/data/host/mountinfo-v1");
    const V2: &str = include_str!("../../tests/data/host/mountinfo-v2");

    fn facts(text: &str, v2_controllers: &str) -> CgroupFacts {
        cgroup_facts(text, |_| Ok(parse_cgroup_controllers(v2_controllers))).unwrap()
    }

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    #[test]
    fn this_machine_is_hybrid_with_hugetlb_only_on_v2() {
        let f = facts(HYBRID, "hugetlb\n");
        assert_eq!(f.layout, CgroupLayout::Hybrid);
        let names: Vec<&str> = f.v1.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            ["blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "memory", "pids"]
        );
        assert_eq!(f.v1["memory"], p("/sys/fs/cgroup/memory"));
        assert_eq!(f.v1["cpuacct"], p("/sys/fs/cgroup/cpuacct"));
        assert!(!f.v1.contains_key("systemd") && !f.v1.contains_key("name=systemd"));
        let v2 = f.v2.unwrap();
        assert_eq!(v2.mount, p("/sys/fs/cgroup/unified"));
        assert_eq!(v2.controllers, BTreeSet::from(["hugetlb".to_string()]));
    }

    #[test]
    fn v1_joined_controllers_share_a_mount_and_root_mount_wins() {
        let f = facts(V1, "unused");
        assert_eq!(f.layout, CgroupLayout::V1);
        assert!(f.v2.is_none());
        assert_eq!(f.v1["cpu"], p("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(f.v1["cpuacct"], p("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(f.v1["net_cls"], p("/sys/fs/cgroup/net_cls,net_prio"));
        assert_eq!(f.v1["net_prio"], p("/sys/fs/cgroup/net_cls,net_prio"));
        // The later bind mount of /docker does not replace the root mount.
        assert_eq!(f.v1["memory"], p("/sys/fs/cgroup/memory"));
        // Flags, key=value options and the named hierarchy are not controllers.
        for not in [
            "clone_children",
            "xattr",
            "rw",
            "systemd",
            "name=systemd",
            "release_agent",
        ] {
            assert!(
                !f.v1.keys().any(|k| k.starts_with(not)),
                "{not} recorded: {:?}",
                f.v1.keys()
            );
        }
        assert_eq!(f.v1.len(), 12, "{:?}", f.v1.keys());
    }

    #[test]
    fn v2_only_with_controllers_and_escaped_bind_mount() {
        let f = facts(V2, "cpuset cpu io memory hugetlb pids rdma misc\n");
        assert_eq!(f.layout, CgroupLayout::V2);
        assert!(f.v1.is_empty());
        let v2 = f.v2.unwrap();
        assert_eq!(v2.mount, p("/sys/fs/cgroup"));
        assert_eq!(v2.controllers.len(), 8);
        assert!(v2.controllers.contains("memory"));

        let mounts = parse_mountinfo(V2).unwrap();
        let bind = mounts.iter().find(|m| m.root == p("/user.slice")).unwrap();
        assert_eq!(bind.mount_point, p("/srv/cg bind"));
        assert_eq!(bind.super_options, ["rw", "nsdelegate", "memory_recursiveprot"]);
    }

    #[test]
    fn no_cgroups_is_none() {
        let f = facts("22 27 0:21 / /proc rw,relatime - proc proc rw\n", "");
        assert_eq!(f.layout, CgroupLayout::None);
        assert!(f.v1.is_empty() && f.v2.is_none());
    }

    #[test]
    fn named_only_v1_beside_v2_is_v2() {
        let text = "40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n\
                    41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
        assert_eq!(facts(text, "").layout, CgroupLayout::V2);
    }

    #[test]
    fn controllers_reader_error_propagates() {
        let e = cgroup_facts(V2, |m| {
            Err(DetectError::Read {
                path: m.join("cgroup.controllers"),
                source: io::Error::from_raw_os_error(13),
            })
        })
        .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("/sys/fs/cgroup/cgroup.controllers") && msg.contains("ermission denied"),
            "{msg}"
        );
    }

    #[test]
    fn bad_mountinfo_names_the_line() {
        let e = parse_mountinfo("22 27 0:21 / /proc rw - proc proc rw\nthis is not mountinfo at all\n").unwrap_err();
        assert_eq!(e.line, 2);
        let e = parse_mountinfo("1 2 3\n").unwrap_err();
        assert_eq!(e.line, 1);
        let d = e.in_file(MOUNTINFO).to_string();
        assert!(d.starts_with("/proc/self/mountinfo:1: "), "{d}");
    }

    #[test]
    fn unescape_octal() {
        assert_eq!(unescape(r"/a\040b\011c\134d"), "/a b\tc\\d");
        assert_eq!(unescape(r"/trailing\04"), r"/trailing\04");
        assert_eq!(unescape(r"/not\999"), r"/not\999");
    }

    #[test]
    fn meminfo() {
        let captured = include_str!("../../tests/data/host/meminfo");
        let b = parse_meminfo_total(captured).unwrap();
        assert!(b.0 > 0 && b.0 % 1024 == 0);
        assert_eq!(
            parse_meminfo_total("MemFree: 1 kB\nMemTotal:     2048 kB\n").unwrap(),
            Bytes(2 << 20)
        );
        assert_eq!(
            parse_meminfo_total("MemFree: 1 kB\n").unwrap_err().reason,
            "no MemTotal line"
        );
        assert_eq!(parse_meminfo_total("MemTotal: lots kB\n").unwrap_err().line, 1);
        assert!(parse_meminfo_total("MemTotal: 1 MB\n")
            .unwrap_err()
            .reason
            .contains("unknown unit"));
    }

    #[test]
    fn user_namespaces() {
        assert!(parse_max_user_namespaces("63413\n").unwrap());
        assert!(!parse_max_user_namespaces("0\n").unwrap());
        assert!(parse_max_user_namespaces("many").is_err());
    }

    #[test]
    fn rlimit_infinity_is_max() {
        assert_eq!(rlimit_value(libc::RLIM_INFINITY), u64::MAX);
        assert_eq!(rlimit_value(20000), 20000);
    }

    /// The host fixtures in tests/golden/hosts: each loads, is in the exact
    /// form `toml::to_string` writes (so regenerating gives no diff), has a
    /// layout that matches its hierarchies, and differs from the detected
    /// hybrid-root.toml in the way its name says.
    #[test]
    fn host_fixtures() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/hosts");
        let load = |name: &str| -> HostFacts {
            let text = std::fs::read_to_string(dir.join(name)).unwrap();
            let h: HostFacts = toml::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(toml::to_string(&h).unwrap(), text, "{name} is not in canonical form");
            let layout = cgroup_layout(!h.cgroup.v1.is_empty(), h.cgroup.v2.is_some());
            assert_eq!(h.cgroup.layout, layout, "{name}: layout disagrees with its hierarchies");
            h
        };
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".toml"))
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "hybrid-nocaps.toml",
                "hybrid-root-no-setuid.toml",
                "hybrid-root-no-sysadmin.toml",
                "hybrid-root-nokvm.toml",
                "hybrid-root.toml",
                "v1-root.toml",
                "v2-root.toml"
            ]
        );
        let base = load("hybrid-root.toml");
        assert_eq!(base.cgroup.layout, CgroupLayout::Hybrid);
        assert_eq!(base.uid, Uid(0));
        assert!(base.kvm.is_some());
        let without = |caps: &[&str]| {
            let mut h = base.clone();
            for c in caps {
                let c: Cap = c.parse().unwrap();
                h.capabilities.remove(&c);
                h.bounding.remove(&c);
            }
            h
        };
        assert_eq!(
            load("hybrid-root-no-setuid.toml"),
            without(&["CAP_SETUID", "CAP_SETGID"])
        );
        assert_eq!(
            load("hybrid-root-no-sysadmin.toml"),
            without(&["CAP_SYS_ADMIN", "CAP_SYS_CHROOT"])
        );
        assert_eq!(
            load("hybrid-root-nokvm.toml"),
            HostFacts {
                kvm: None,
                ..base.clone()
            }
        );
        let nocaps = load("hybrid-nocaps.toml");
        assert_eq!(
            nocaps,
            HostFacts {
                uid: Uid(1000),
                gid: Gid(1000),
                capabilities: BTreeSet::new(),
                bounding: BTreeSet::new(),
                ..base.clone()
            }
        );
        let v1 = load("v1-root.toml");
        assert_eq!(v1.cgroup.layout, CgroupLayout::V1);
        assert_eq!(v1.cgroup.v1["cpu"], v1.cgroup.v1["cpuacct"]);
        assert_eq!(
            HostFacts {
                cgroup: base.cgroup.clone(),
                ..v1
            },
            base
        );
        let v2 = load("v2-root.toml");
        assert_eq!(v2.cgroup.layout, CgroupLayout::V2);
        let c = &v2.cgroup.v2.as_ref().unwrap().controllers;
        for want in ["cpu", "cpuset", "io", "memory", "pids", "hugetlb"] {
            assert!(c.contains(want), "v2-root lacks {want}");
        }
        assert_eq!(
            HostFacts {
                cgroup: base.cgroup.clone(),
                ..v2
            },
            base
        );
    }

    /// Runs the real detection and checks it against what this process can
    /// see another way; needs no privilege.
    #[test]
    fn detect_on_this_machine() {
        let h = detect().expect("detect");
        assert_eq!(h.uid, Uid(nix::unistd::getuid().as_raw()));
        assert_eq!(h.gid, Gid(nix::unistd::getgid().as_raw()));
        assert!(
            !h.kernel.is_empty() && h.arch == std::env::consts::ARCH,
            "{} {}",
            h.kernel,
            h.arch
        );
        assert!(h.cpus >= 1);
        assert!(h.memory.0 > 0);
        assert_eq!(h.rlimits.len(), RlimitKind::ALL.len());
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let from_status = |key: &str| -> BTreeSet<Cap> {
            let line = status.lines().find_map(|l| l.strip_prefix(key)).unwrap();
            let mask = u64::from_str_radix(line.trim(), 16).unwrap();
            Cap::all()
                .into_iter()
                .filter(|c| mask & (1u64 << c.0.index()) != 0)
                .collect()
        };
        assert_eq!(h.capabilities, from_status("CapEff:"));
        assert_eq!(h.bounding, from_status("CapBnd:"));
        if let Some(k) = &h.kvm {
            assert_eq!(k.api_version, 12, "KVM_API_VERSION is 12 on every kernel since 2.6.22");
        } else {
            assert!(
                std::fs::File::open("/dev/kvm").is_err(),
                "/dev/kvm opens but detect said no KVM"
            );
        }
        let text = toml::to_string(&h).unwrap();
        let back: HostFacts = toml::from_str(&text).unwrap();
        assert_eq!(back, h);
    }
}
