//! One sample of a sandbox cgroup's statistics (the `stats` call, which
//! `events` polls), read from the directories the plan made: v1 hierarchies
//! (memory, cpuacct, cpu, pids, blkio) and v2 (memory, cpu, pids, io), on v1,
//! v2 and hybrid hosts alike. Each directory contributes the files it has; a
//! value no directory provides stays absent. Parsing is separate from
//! reading, so the formats are tested on fixtures.

use std::fs;
use std::path::Path;

use super::proto::{BlkioEntry, Stats};
use crate::plan::{CgroupDir, CgroupDirRole, CgroupVersion};

/// A v1 limit at or above this means "no limit" (the kernel's page-rounded
/// `PAGE_COUNTER_MAX`, as the seed treats it).
const V1_UNLIMITED: u64 = 0x7fff_ffff_ffff_f000;
/// `cpuacct.stat` counts USER_HZ ticks: 100 per second on Linux.
const NS_PER_USER_HZ_TICK: u64 = 10_000_000;

/// One sample from the sandbox's own directories among `dirs` (parents are
/// skipped: they hold other sandboxes too).
pub fn sample(dirs: &[CgroupDir]) -> Stats {
    let mut s = Stats::default();
    for d in dirs.iter().filter(|d| d.role == CgroupDirRole::Sandbox) {
        match d.version {
            CgroupVersion::V1 => read_v1(&d.path, &mut s),
            CgroupVersion::V2 => read_v2(&d.path, &mut s),
        }
    }
    s
}

fn read(dir: &Path, file: &str) -> Option<String> {
    fs::read_to_string(dir.join(file)).ok()
}

fn number(dir: &Path, file: &str) -> Option<u64> {
    read(dir, file)?.trim().parse().ok()
}

/// A v2 limit file: `max` is no limit.
fn limit_v2(dir: &Path, file: &str) -> Option<u64> {
    let t = read(dir, file)?;
    match t.trim() {
        "max" => None,
        n => n.parse().ok(),
    }
}

/// `key value` lines (cpu.stat, memory.events, cpuacct.stat, memory.oom_control).
pub fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let mut it = l.split_ascii_whitespace();
        (it.next()? == key).then(|| it.next()?.parse().ok())?
    })
}

/// v1 `blkio.throttle.io_service_bytes`: `MAJ:MIN Op VALUE` lines and a
/// `Total` line (dropped).
pub fn parse_blkio_v1(text: &str) -> Vec<BlkioEntry> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_ascii_whitespace();
            let (maj, min) = it.next()?.split_once(':')?;
            Some(BlkioEntry {
                major: maj.parse().ok()?,
                minor: min.parse().ok()?,
                op: it.next()?.to_string(),
                value: it.next()?.parse().ok()?,
            })
        })
        .collect()
}

/// v2 `io.stat`: `MAJ:MIN rbytes=N wbytes=N ...` lines, as runc reports
/// them (`Read` and `Write` bytes).
pub fn parse_io_v2(text: &str) -> Vec<BlkioEntry> {
    let mut out = Vec::new();
    for l in text.lines() {
        let mut it = l.split_ascii_whitespace();
        let Some((maj, min)) = it.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (maj.parse(), min.parse()) else {
            continue;
        };
        for kv in it {
            let op = match kv.split_once('=') {
                Some(("rbytes", v)) => ("Read", v),
                Some(("wbytes", v)) => ("Write", v),
                _ => continue,
            };
            if let Ok(value) = op.1.parse() {
                out.push(BlkioEntry {
                    major,
                    minor,
                    op: op.0.into(),
                    value,
                });
            }
        }
    }
    out
}

fn read_v1(dir: &Path, s: &mut Stats) {
    let m = &mut s.memory;
    m.usage = m.usage.or(number(dir, "memory.usage_in_bytes"));
    m.max_usage = m.max_usage.or(number(dir, "memory.max_usage_in_bytes"));
    m.limit = m
        .limit
        .or(number(dir, "memory.limit_in_bytes").filter(|l| *l < V1_UNLIMITED));
    m.failcnt = m.failcnt.or(number(dir, "memory.failcnt"));
    m.oom_kills = m
        .oom_kills
        .or(read(dir, "memory.oom_control").and_then(|t| keyed(&t, "oom_kill")));
    let c = &mut s.cpu;
    c.total_ns = c.total_ns.or(number(dir, "cpuacct.usage"));
    if let Some(t) = read(dir, "cpuacct.stat") {
        c.user_ns = c.user_ns.or(keyed(&t, "user").map(|v| v * NS_PER_USER_HZ_TICK));
        c.kernel_ns = c.kernel_ns.or(keyed(&t, "system").map(|v| v * NS_PER_USER_HZ_TICK));
    }
    if let Some(t) = read(dir, "cpu.stat") {
        c.throttled_periods = c.throttled_periods.or(keyed(&t, "nr_throttled"));
        c.throttled_ns = c.throttled_ns.or(keyed(&t, "throttled_time"));
    }
    s.pids.current = s.pids.current.or(number(dir, "pids.current"));
    s.pids.limit = s.pids.limit.or(limit_v2(dir, "pids.max"));
    if s.blkio.is_empty() {
        if let Some(t) = read(dir, "blkio.throttle.io_service_bytes") {
            s.blkio = parse_blkio_v1(&t);
        }
    }
}

fn read_v2(dir: &Path, s: &mut Stats) {
    let m = &mut s.memory;
    m.usage = m.usage.or(number(dir, "memory.current"));
    m.max_usage = m.max_usage.or(number(dir, "memory.peak"));
    m.limit = m.limit.or(limit_v2(dir, "memory.max"));
    if let Some(t) = read(dir, "memory.events") {
        m.failcnt = m.failcnt.or(keyed(&t, "max"));
        m.oom_kills = m.oom_kills.or(keyed(&t, "oom_kill"));
    }
    if let Some(t) = read(dir, "cpu.stat") {
        let c = &mut s.cpu;
        let us = |k| keyed(&t, k).map(|v| v * 1000);
        c.total_ns = c.total_ns.or(us("usage_usec"));
        c.user_ns = c.user_ns.or(us("user_usec"));
        c.kernel_ns = c.kernel_ns.or(us("system_usec"));
        c.throttled_periods = c.throttled_periods.or(keyed(&t, "nr_throttled"));
        c.throttled_ns = c.throttled_ns.or(us("throttled_usec"));
    }
    s.pids.current = s.pids.current.or(number(dir, "pids.current"));
    s.pids.limit = s.pids.limit.or(limit_v2(dir, "pids.max"));
    if s.blkio.is_empty() {
        if let Some(t) = read(dir, "io.stat") {
            s.blkio = parse_io_v2(&t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::control::TempDir;
    use std::path::PathBuf;

    fn dir(files: &[(&str, &str)]) -> TempDir {
        let d = TempDir::new("stats");
        fs::create_dir_all(&d.0).unwrap();
        for (f, t) in files {
            fs::write(d.0.join(f), t).unwrap();
        }
        d
    }

    fn cg(path: PathBuf, version: CgroupVersion, role: CgroupDirRole) -> CgroupDir {
        CgroupDir {
            path,
            version,
            role,
            controllers: vec![],
            inherit: None,
            from: None,
        }
    }

    #[test]
    fn parsers() {
        let t = "usage_usec 2500\nuser_usec 2000\nsystem_usec 500\nnr_periods 4\nnr_throttled 1\nthrottled_usec 30\n";
        assert_eq!(keyed(t, "usage_usec"), Some(2500));
        assert_eq!(keyed(t, "nr_periods"), Some(4));
        assert_eq!(keyed(t, "usage"), None, "whole keys only");
        assert_eq!(
            keyed("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n", "oom_kill"),
            Some(3)
        );
        assert_eq!(
            parse_blkio_v1("8:0 Read 4096\n8:0 Write 512\n8:0 Sync 0\nTotal 4608\n"),
            vec![
                BlkioEntry {
                    major: 8,
                    minor: 0,
                    op: "Read".into(),
                    value: 4096
                },
                BlkioEntry {
                    major: 8,
                    minor: 0,
                    op: "Write".into(),
                    value: 512
                },
                BlkioEntry {
                    major: 8,
                    minor: 0,
                    op: "Sync".into(),
                    value: 0
                },
            ]
        );
        let io = parse_io_v2("259:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\nbad line\n");
        assert_eq!(io.len(), 2);
        assert_eq!(
            (io[0].major, io[0].minor, io[0].op.as_str(), io[0].value),
            (259, 0, "Read", 100)
        );
        assert_eq!((io[1].op.as_str(), io[1].value), ("Write", 200));
    }

    #[test]
    fn a_hybrid_sandbox_from_its_directories() {
        let mem = dir(&[
            ("memory.usage_in_bytes", "1048576\n"),
            ("memory.max_usage_in_bytes", "2097152\n"),
            ("memory.limit_in_bytes", "9223372036854771712\n"),
            ("memory.failcnt", "0\n"),
            ("memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n"),
        ]);
        let acct = dir(&[("cpuacct.usage", "123456789\n"), ("cpuacct.stat", "user 7\nsystem 3\n")]);
        let pids = dir(&[("pids.current", "3\n"), ("pids.max", "128\n")]);
        let v2 = dir(&[("cpu.stat", "usage_usec 1\n"), ("pids.current", "99\n")]);
        let parent = dir(&[("pids.current", "1000\n")]);
        let s = sample(&[
            cg(parent.0.clone(), CgroupVersion::V1, CgroupDirRole::Parent),
            cg(mem.0.clone(), CgroupVersion::V1, CgroupDirRole::Sandbox),
            cg(acct.0.clone(), CgroupVersion::V1, CgroupDirRole::Sandbox),
            cg(pids.0.clone(), CgroupVersion::V1, CgroupDirRole::Sandbox),
            cg(v2.0.clone(), CgroupVersion::V2, CgroupDirRole::Sandbox),
        ]);
        assert_eq!(s.memory.usage, Some(1 << 20));
        assert_eq!(s.memory.max_usage, Some(2 << 20));
        assert_eq!(s.memory.limit, None, "v1's huge limit means unlimited");
        assert_eq!((s.memory.failcnt, s.memory.oom_kills), (Some(0), Some(1)));
        assert_eq!(
            s.cpu.total_ns,
            Some(123_456_789),
            "the first directory that has it wins"
        );
        assert_eq!((s.cpu.user_ns, s.cpu.kernel_ns), (Some(70_000_000), Some(30_000_000)));
        assert_eq!(
            (s.pids.current, s.pids.limit),
            (Some(3), Some(128)),
            "the parent is not read"
        );
    }

    #[test]
    fn a_v2_sandbox() {
        let d = dir(&[
            ("memory.current", "4096\n"),
            ("memory.peak", "8192\n"),
            ("memory.max", "max\n"),
            ("memory.events", "low 0\nhigh 0\nmax 2\noom 1\noom_kill 1\n"),
            (
                "cpu.stat",
                "usage_usec 2500\nuser_usec 2000\nsystem_usec 500\nnr_periods 4\nnr_throttled 1\nthrottled_usec 30\n",
            ),
            ("pids.current", "2\n"),
            ("pids.max", "max\n"),
            ("io.stat", "8:16 rbytes=1 wbytes=2 rios=1 wios=1 dbytes=0 dios=0\n"),
        ]);
        let s = sample(&[cg(d.0.clone(), CgroupVersion::V2, CgroupDirRole::Sandbox)]);
        assert_eq!(
            (s.memory.usage, s.memory.max_usage, s.memory.limit),
            (Some(4096), Some(8192), None)
        );
        assert_eq!((s.memory.failcnt, s.memory.oom_kills), (Some(2), Some(1)));
        assert_eq!(
            (s.cpu.total_ns, s.cpu.user_ns, s.cpu.kernel_ns),
            (Some(2_500_000), Some(2_000_000), Some(500_000))
        );
        assert_eq!((s.cpu.throttled_periods, s.cpu.throttled_ns), (Some(1), Some(30_000)));
        assert_eq!((s.pids.current, s.pids.limit), (Some(2), None));
        assert_eq!(s.blkio.len(), 2);
    }

    #[test]
    fn missing_directories_give_an_empty_sample() {
        let s = sample(&[cg("/nonexistent/x".into(), CgroupVersion::V1, CgroupDirRole::Sandbox)]);
        assert_eq!(s, Stats::default());
    }
}
