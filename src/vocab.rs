//! The shared vocabulary of policies, host facts and plans: small newtypes for
//! ids, sizes, fds, capabilities and rlimits, and [`Origin`], the provenance
//! every plan field carries. Everything here parses from and prints to the same
//! string form, so a printed plan loads back to the same value.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Implements `Serialize`/`Deserialize` through `Display`/`FromStr`.
macro_rules! serde_via_str {
    ($t:ty, $desc:literal) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
        impl JsonSchema for $t {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($t).into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({ "type": "string", "description": $desc })
            }
        }
    };
}

/// A user id (host or namespace side is said by the field that holds it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct Uid(pub u32);

/// A group id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct Gid(pub u32);

/// A file descriptor number in the sandbox's FD table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct Fd(pub i32);

/// The uid and gid of user nobody, used by the seed's user-namespace rule.
pub const NOBODY: u32 = 65534;

/// A size in bytes. Parses `"512MiB"`, `"64KiB"`, `"1GiB"`, `"4096"` (bytes) or
/// `"unlimited"`-free plain integers; SI suffixes (`MB`, `GB`) are refused
/// because they are ambiguous in this field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bytes(pub u64);

/// Why a size string did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BytesError {
    /// Empty input.
    #[error("a size is required: write it as a number of bytes or with a binary suffix (KiB, MiB, GiB, TiB), e.g. \"512MiB\"")]
    Empty,
    /// An SI or ambiguous unit such as `MB`.
    #[error("unit \"{unit}\" is not accepted: sizes use binary units KiB, MiB, GiB, TiB (did you mean \"{number}{suggest}\"?)")]
    AmbiguousUnit {
        /// The unit as written.
        unit: String,
        /// The number as written.
        number: String,
        /// The binary unit to use instead.
        suggest: &'static str,
    },
    /// A unit that is not known at all.
    #[error("unknown unit \"{0}\": accepted units are B, KiB, MiB, GiB, TiB (e.g. \"512MiB\")")]
    UnknownUnit(String),
    /// Not a number.
    #[error("\"{0}\" is not a size: write a number of bytes or a number with KiB, MiB, GiB or TiB")]
    NotANumber(String),
    /// Too large for 64 bits.
    #[error("size \"{0}\" does not fit in 64 bits")]
    Overflow(String),
}

impl FromStr for Bytes {
    type Err = BytesError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if t.is_empty() {
            return Err(BytesError::Empty);
        }
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let unit = unit.trim();
        if num.is_empty() {
            return Err(BytesError::NotANumber(t.to_string()));
        }
        let n: u64 = num.parse().map_err(|_| BytesError::Overflow(t.to_string()))?;
        let mult: u64 = match unit {
            "" | "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            "TiB" => 1 << 40,
            _ => {
                let suggest = match unit.to_ascii_lowercase().as_str() {
                    "k" | "kb" | "kib" => Some("KiB"),
                    "m" | "mb" | "mib" => Some("MiB"),
                    "g" | "gb" | "gib" => Some("GiB"),
                    "t" | "tb" | "tib" => Some("TiB"),
                    _ => None,
                };
                return Err(match suggest {
                    Some(suggest) => BytesError::AmbiguousUnit {
                        unit: unit.to_string(),
                        number: num.to_string(),
                        suggest,
                    },
                    None => BytesError::UnknownUnit(unit.to_string()),
                });
            }
        };
        n.checked_mul(mult)
            .map(Bytes)
            .ok_or_else(|| BytesError::Overflow(t.to_string()))
    }
}

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u32); 4] = [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)];
        for (name, shift) in UNITS {
            let unit = 1u64 << shift;
            if self.0 >= unit && self.0 % unit == 0 {
                return write!(f, "{}{}", self.0 / unit, name);
            }
        }
        write!(f, "{}", self.0)
    }
}
serde_via_str!(
    Bytes,
    "A size: bytes, or a number with KiB, MiB, GiB or TiB, e.g. \"512MiB\""
);

/// A Linux capability, written `CAP_NAME` (the `CAP_` prefix is optional on input).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cap(pub caps::Capability);

impl Cap {
    /// Every capability this build knows, in kernel order.
    pub fn all() -> Vec<Cap> {
        let mut v: Vec<Cap> = caps::all().into_iter().map(Cap).collect();
        v.sort();
        v
    }
}

impl PartialOrd for Cap {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Cap {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.index().cmp(&other.0.index())
    }
}

/// An unknown capability name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown capability \"{name}\"{}", did_you_mean(.suggestion))]
pub struct CapError {
    /// The name as written.
    pub name: String,
    /// The closest known name, if any is close.
    pub suggestion: Option<String>,
}

impl FromStr for Cap {
    type Err = CapError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let upper = s.trim().to_ascii_uppercase();
        let full = if upper.starts_with("CAP_") {
            upper
        } else {
            format!("CAP_{upper}")
        };
        caps::Capability::from_str(&full).map(Cap).map_err(|_| {
            let names: Vec<String> = Cap::all().iter().map(|c| c.to_string()).collect();
            CapError {
                name: s.to_string(),
                suggestion: closest(&full, names.iter().map(String::as_str)).map(str::to_string),
            }
        })
    }
}

impl fmt::Display for Cap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // caps prints CAP_NAME already.
        write!(f, "{}", self.0)
    }
}
serde_via_str!(Cap, "A Linux capability, e.g. \"CAP_NET_BIND_SERVICE\"");

/// A process resource limit, named as in setrlimit(2) (`RLIMIT_NOFILE`, or `NOFILE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[allow(missing_docs)]
pub enum RlimitKind {
    Cpu,
    Fsize,
    Data,
    Stack,
    Core,
    Rss,
    Nproc,
    Nofile,
    Memlock,
    As,
    Locks,
    Sigpending,
    Msgqueue,
    Nice,
    Rtprio,
    Rttime,
}

impl RlimitKind {
    /// All kinds with their kernel names.
    pub const ALL: [(RlimitKind, &'static str); 16] = [
        (RlimitKind::Cpu, "RLIMIT_CPU"),
        (RlimitKind::Fsize, "RLIMIT_FSIZE"),
        (RlimitKind::Data, "RLIMIT_DATA"),
        (RlimitKind::Stack, "RLIMIT_STACK"),
        (RlimitKind::Core, "RLIMIT_CORE"),
        (RlimitKind::Rss, "RLIMIT_RSS"),
        (RlimitKind::Nproc, "RLIMIT_NPROC"),
        (RlimitKind::Nofile, "RLIMIT_NOFILE"),
        (RlimitKind::Memlock, "RLIMIT_MEMLOCK"),
        (RlimitKind::As, "RLIMIT_AS"),
        (RlimitKind::Locks, "RLIMIT_LOCKS"),
        (RlimitKind::Sigpending, "RLIMIT_SIGPENDING"),
        (RlimitKind::Msgqueue, "RLIMIT_MSGQUEUE"),
        (RlimitKind::Nice, "RLIMIT_NICE"),
        (RlimitKind::Rtprio, "RLIMIT_RTPRIO"),
        (RlimitKind::Rttime, "RLIMIT_RTTIME"),
    ];

    /// The kernel name, `RLIMIT_…`.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(k, _)| *k == self)
            .map(|(_, n)| *n)
            .unwrap_or("RLIMIT_?")
    }
}

/// An unknown rlimit name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown rlimit \"{name}\"{}", did_you_mean(.suggestion))]
pub struct RlimitError {
    /// The name as written.
    pub name: String,
    /// The closest known name.
    pub suggestion: Option<String>,
}

impl FromStr for RlimitKind {
    type Err = RlimitError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let upper = s.trim().to_ascii_uppercase();
        let full = if upper.starts_with("RLIMIT_") {
            upper
        } else {
            format!("RLIMIT_{upper}")
        };
        Self::ALL
            .iter()
            .find(|(_, n)| *n == full)
            .map(|(k, _)| *k)
            .ok_or_else(|| RlimitError {
                name: s.to_string(),
                suggestion: closest(&full, Self::ALL.iter().map(|(_, n)| *n)).map(str::to_string),
            })
    }
}
impl fmt::Display for RlimitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
serde_via_str!(RlimitKind, "A resource limit name, e.g. \"RLIMIT_NOFILE\"");

/// Where a plan value came from: the answer to a reviewer's "why is this here?".
///
/// Printed (and parsed) as `policy:FILE:LINE`, `spec:JSON.PATH`, `host:FACT`,
/// `rule:NAME`, `cli:FLAG` or `default`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Origin {
    /// A line of a policy file.
    Policy {
        /// The policy file as named on the command line or by `extends`.
        file: String,
        /// 1-based line.
        line: u32,
    },
    /// A field of the OCI spec, as a JSON path (`process.capabilities.bounding`).
    Spec(String),
    /// A detected (or loaded) host fact.
    Host(String),
    /// One of the seed's decision rules, by name (see docs/plan.md).
    Rule(String),
    /// A command-line flag.
    Cli(String),
    /// A built-in default of sandboxctl.
    Default,
}

impl Origin {
    /// Shorthand for a spec JSON path.
    pub fn spec(path: impl Into<String>) -> Self {
        Origin::Spec(path.into())
    }
    /// Shorthand for a rule name.
    pub fn rule(name: impl Into<String>) -> Self {
        Origin::Rule(name.into())
    }
    /// Shorthand for a host fact.
    pub fn host(fact: impl Into<String>) -> Self {
        Origin::Host(fact.into())
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Policy { file, line } => write!(f, "policy:{file}:{line}"),
            Origin::Spec(p) => write!(f, "spec:{p}"),
            Origin::Host(p) => write!(f, "host:{p}"),
            Origin::Rule(p) => write!(f, "rule:{p}"),
            Origin::Cli(p) => write!(f, "cli:{p}"),
            Origin::Default => f.write_str("default"),
        }
    }
}

impl FromStr for Origin {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "default" {
            return Ok(Origin::Default);
        }
        let (kind, rest) = s
            .split_once(':')
            .ok_or_else(|| format!("bad origin \"{s}\": expected KIND:VALUE"))?;
        Ok(match kind {
            "policy" => {
                let (file, line) = rest
                    .rsplit_once(':')
                    .ok_or_else(|| format!("bad policy origin \"{s}\": expected policy:FILE:LINE"))?;
                Origin::Policy {
                    file: file.to_string(),
                    line: line.parse().map_err(|_| format!("bad line number in origin \"{s}\""))?,
                }
            }
            "spec" => Origin::Spec(rest.to_string()),
            "host" => Origin::Host(rest.to_string()),
            "rule" => Origin::Rule(rest.to_string()),
            "cli" => Origin::Cli(rest.to_string()),
            _ => {
                return Err(format!(
                    "bad origin kind \"{kind}\" in \"{s}\": expected policy, spec, host, rule, cli or default"
                ))
            }
        })
    }
}
serde_via_str!(
    Origin,
    "Where a value came from: policy:FILE:LINE, spec:PATH, host:FACT, rule:NAME, cli:FLAG or default"
);

/// Picks apart serde's "unknown field `x`, expected one of `a`, `b`" (or
/// "unknown variant …", with `what` = "variant"): the name and the accepted ones.
pub fn serde_unknown(msg: &str, what: &str) -> Option<(String, Vec<String>)> {
    let start = msg.find(&format!("unknown {what} `"))?;
    let rest = &msg[start + what.len() + 10..];
    let (key, rest) = rest.split_once('`')?;
    let rest = rest.split(" at line ").next().unwrap_or(rest);
    let expected = rest
        .split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s.to_string())
        .collect();
    Some((key.to_string(), expected))
}

/// Formats an optional did-you-mean suffix.
pub fn did_you_mean(s: &Option<String>) -> String {
    match s {
        Some(x) => format!(" (did you mean \"{x}\"?)"),
        None => String::new(),
    }
}

/// The candidate closest to `word` by edit distance, if it is close enough to
/// be a likely typo.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let w = word.to_ascii_lowercase();
    let w_len = w.chars().count();
    candidates
        .into_iter()
        .filter_map(|c| {
            let limit = (c.len().max(3) / 3).max(2);
            // The distance is at least the difference in length: a word far
            // longer than every candidate (a fuzzer's 100 KiB name) costs
            // nothing instead of a quadratic comparison with each.
            if w_len.abs_diff(c.chars().count()) > limit {
                return None;
            }
            let d = edit_distance(&w, &c.to_ascii_lowercase());
            (d <= limit).then_some((d, c))
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_is_quick_on_huge_words() {
        assert_eq!(closest("wirte", ["write", "read"]), Some("write"));
        let huge = "x".repeat(1 << 20);
        let t = std::time::Instant::now();
        assert_eq!(
            closest(&huge, crate::plan::syscalls_x86_64::SYSCALLS.iter().map(|(n, _)| *n)),
            None
        );
        assert!(t.elapsed() < std::time::Duration::from_millis(100), "{:?}", t.elapsed());
    }

    #[test]
    fn bytes_parse_and_print() {
        assert_eq!("512MiB".parse::<Bytes>().unwrap(), Bytes(512 << 20));
        assert_eq!("4096".parse::<Bytes>().unwrap(), Bytes(4096));
        assert_eq!(Bytes(64 << 20).to_string(), "64MiB");
        assert_eq!(Bytes(1000).to_string(), "1000");
        let e = "512MB".parse::<Bytes>().unwrap_err();
        assert!(e.to_string().contains("did you mean \"512MiB\""), "{e}");
        assert!(matches!("12 parsecs".parse::<Bytes>(), Err(BytesError::UnknownUnit(_))));
        assert!(matches!("MiB".parse::<Bytes>(), Err(BytesError::NotANumber(_))));
    }

    #[test]
    fn caps_parse_with_suggestion() {
        assert_eq!("net_admin".parse::<Cap>().unwrap().to_string(), "CAP_NET_ADMIN");
        let e = "CAP_NET_ADMN".parse::<Cap>().unwrap_err();
        assert_eq!(e.suggestion.as_deref(), Some("CAP_NET_ADMIN"));
    }

    #[test]
    fn origin_round_trips() {
        for s in [
            "policy:a/b.toml:12",
            "spec:mounts[3].source",
            "host:capabilities",
            "rule:user-ns-nobody",
            "default",
            "cli:--id",
        ] {
            assert_eq!(s.parse::<Origin>().unwrap().to_string(), s);
        }
    }

    #[test]
    fn rlimit_names() {
        assert_eq!("nofile".parse::<RlimitKind>().unwrap(), RlimitKind::Nofile);
        assert_eq!(
            "RLIMIT_NOFLE".parse::<RlimitKind>().unwrap_err().suggestion.as_deref(),
            Some("RLIMIT_NOFILE")
        );
    }
}

/// Serde for `u64` fields that may exceed TOML's signed 64-bit integers: written
/// as an integer when it fits, as `"unlimited"` for `u64::MAX`, else as a
/// decimal string; read back from any of these.
pub mod u64_wide {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialises.
    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        if *v == u64::MAX {
            s.serialize_str("unlimited")
        } else if *v <= i64::MAX as u64 {
            s.serialize_i64(*v as i64)
        } else {
            s.collect_str(v)
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Wide {
        Int(u64),
        Str(String),
    }

    /// Deserialises.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        match Wide::deserialize(d)? {
            Wide::Int(v) => Ok(v),
            Wide::Str(s) if s == "unlimited" => Ok(u64::MAX),
            Wide::Str(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }

    /// For `Option<u64>`.
    pub mod option {
        use serde::{Deserialize, Deserializer, Serializer};

        /// Serialises.
        pub fn serialize<S: Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
            match v {
                Some(v) => super::serialize(v, s),
                None => s.serialize_none(),
            }
        }

        /// Deserialises.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
            #[derive(Deserialize)]
            struct W(#[serde(with = "super")] u64);
            Ok(Option::<W>::deserialize(d)?.map(|w| w.0))
        }
    }
}

/// The serde (lowercase) name of a unit enum variant, e.g. `pivot_root`.
pub fn serde_name<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(serde_json::Value::Object(m)) => m
            .values()
            .next()
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .unwrap_or_default(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod serde_unknown_tests {
    use super::*;

    #[test]
    fn picks_apart_serde_messages() {
        let (v, e) = serde_unknown(
            "unknown variant `kvmm`, expected one of `native`, `kvm` at line 2 column 3",
            "variant",
        )
        .unwrap();
        assert_eq!(v, "kvmm");
        assert_eq!(e, vec!["native", "kvm"]);
        assert_eq!(closest(&v, e.iter().map(String::as_str)), Some("kvm"));
        assert!(serde_unknown("invalid type: string", "field").is_none());
    }
}

/// The largest input file sandboxctl reads (policy, spec, process, plan, host
/// facts): 16 MiB, hundreds of times any real one (podman's spec with its
/// whole seccomp profile is about 30 KiB). A bigger file, or an endless one
/// such as `/dev/zero` named by `extends` or `--spec`, is refused instead of
/// read until memory runs out.
pub const MAX_INPUT: u64 = 16 << 20;

/// Reads a whole input file as UTF-8 text, refusing one above [`MAX_INPUT`].
pub fn read_input(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::{Error, ErrorKind, Read};
    let mut bytes = Vec::new();
    std::fs::File::open(path)?.take(MAX_INPUT + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_INPUT {
        return Err(Error::new(
            ErrorKind::InvalidData,
            format!(
                "larger than {} MiB, the most sandboxctl reads from an input file",
                MAX_INPUT >> 20
            ),
        ));
    }
    // The error std's read_to_string gives for such text.
    String::from_utf8(bytes).map_err(|_| Error::new(ErrorKind::InvalidData, "stream did not contain valid UTF-8"))
}

#[cfg(test)]
mod read_input_tests {
    use super::*;

    #[test]
    fn endless_files_are_refused() {
        let e = read_input(std::path::Path::new("/dev/zero")).unwrap_err();
        assert!(e.to_string().contains("larger than 16 MiB"), "{e}");
        let dir = std::env::temp_dir().join(format!("sbx-read-input-{}", std::process::id()));
        std::fs::write(&dir, "a = 1\n").unwrap();
        assert_eq!(read_input(&dir).unwrap(), "a = 1\n");
        let _ = std::fs::remove_file(&dir);
    }
}

/// Defines [`KvmExtension`] and its list from one list of names.
macro_rules! kvm_extensions {
    ($($name:ident),* $(,)?) => {
        /// A KVM capability a plan can require (`KVM_CHECK_EXTENSION`), by its
        /// kvm-ioctls `Cap` name: the x86_64 capabilities a virtual machine
        /// monitor asks about. Policies name them (`[kvm] extensions`), plans
        /// and host facts list them by name, apply checks them on the opened
        /// `/dev/kvm`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
        pub enum KvmExtension {
            $(
                #[doc = concat!("`KVM_CAP_` for kvm-ioctls `Cap::", stringify!($name), "`.")]
                $name,
            )*
        }

        impl KvmExtension {
            /// Every extension, in declaration order.
            pub const ALL: &'static [KvmExtension] = &[$(KvmExtension::$name),*];

            /// The kvm-ioctls `Cap` name (`Irqchip`), as plans and host facts write it.
            pub fn name(self) -> &'static str {
                match self {
                    $(KvmExtension::$name => stringify!($name),)*
                }
            }

            /// The extension of a name written by [`KvmExtension::name`].
            pub fn from_name(name: &str) -> Option<KvmExtension> {
                Self::ALL.iter().copied().find(|e| e.name() == name)
            }
        }
    };
}

kvm_extensions!(
    Irqchip,
    Hlt,
    UserMemory,
    SetTssAddr,
    ExtCpuid,
    Clocksource,
    NrVcpus,
    NrMemslots,
    Pit,
    MpState,
    CoalescedMmio,
    SyncMmu,
    Iommu,
    UserNmi,
    IrqRouting,
    Irqfd,
    Pit2,
    PitState2,
    Ioeventfd,
    SetIdentityMapAddr,
    AdjustClock,
    VcpuEvents,
    Debugregs,
    Xsave,
    Xcrs,
    TscControl,
    TscDeadlineTimer,
    MaxVcpus,
    MaxVcpuId,
    ReadonlyMem,
    SplitIrqchip,
    ImmediateExit,
    SyncRegs,
);
