//! `events`' output in runc's format: JSON lines of type `stats` (the
//! `stats` call's sample, in runc's field layout) and `oom` (when the cgroup's
//! OOM-kill count rises between two samples). The CLI polls `stats` at its
//! interval and feeds each sample here; the supervisor keeps no stream state.

use serde::Serialize;

use super::proto::Stats;

/// One event line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// `stats` or `oom`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The sandbox id.
    pub id: String,
    /// The sample, for `stats`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<RuncStats>,
}

impl Event {
    /// The event as one line of JSON, with its newline.
    pub fn line(&self) -> String {
        let mut s = serde_json::to_string(self).expect("events always serialise");
        s.push('\n');
        s
    }
}

fn zero(n: &u64) -> bool {
    *n == 0
}

/// runc's `stats` data (libcontainer's events types): zero values are left
/// out where runc leaves them out (`omitempty`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RuncStats {
    /// CPU.
    pub cpu: RuncCpu,
    /// Memory.
    pub memory: RuncMemory,
    /// Processes.
    pub pids: RuncPids,
    /// Block I/O.
    pub blkio: RuncBlkio,
}

/// runc's `cpu`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RuncCpu {
    /// Usage.
    pub usage: RuncCpuUsage,
    /// Throttling.
    pub throttling: RuncThrottling,
}

/// runc's `cpu.usage` (ns).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RuncCpuUsage {
    /// Total.
    #[serde(skip_serializing_if = "zero")]
    pub total: u64,
    /// Kernel.
    pub kernel: u64,
    /// User.
    pub user: u64,
}

/// runc's `cpu.throttling`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuncThrottling {
    /// Periods throttled.
    #[serde(skip_serializing_if = "zero")]
    pub throttled_periods: u64,
    /// Time throttled, ns.
    #[serde(skip_serializing_if = "zero")]
    pub throttled_time: u64,
}

/// runc's `memory`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RuncMemory {
    /// Usage, max, limit, failcnt.
    pub usage: RuncMemoryEntry,
}

/// runc's memory entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RuncMemoryEntry {
    /// The limit; 0 when unlimited or unknown.
    pub limit: u64,
    /// Bytes in use.
    #[serde(skip_serializing_if = "zero")]
    pub usage: u64,
    /// Peak.
    #[serde(skip_serializing_if = "zero")]
    pub max: u64,
    /// Times the limit was hit.
    pub failcnt: u64,
}

/// runc's `pids`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RuncPids {
    /// Processes now.
    #[serde(skip_serializing_if = "zero")]
    pub current: u64,
    /// The limit (0: none).
    #[serde(skip_serializing_if = "zero")]
    pub limit: u64,
}

/// runc's `blkio`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuncBlkio {
    /// Bytes per device and operation.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_service_bytes_recursive: Vec<super::proto::BlkioEntry>,
}

impl From<&Stats> for RuncStats {
    fn from(s: &Stats) -> RuncStats {
        RuncStats {
            cpu: RuncCpu {
                usage: RuncCpuUsage {
                    total: s.cpu.total_ns.unwrap_or(0),
                    kernel: s.cpu.kernel_ns.unwrap_or(0),
                    user: s.cpu.user_ns.unwrap_or(0),
                },
                throttling: RuncThrottling {
                    throttled_periods: s.cpu.throttled_periods.unwrap_or(0),
                    throttled_time: s.cpu.throttled_ns.unwrap_or(0),
                },
            },
            memory: RuncMemory {
                usage: RuncMemoryEntry {
                    limit: s.memory.limit.unwrap_or(0),
                    usage: s.memory.usage.unwrap_or(0),
                    max: s.memory.max_usage.unwrap_or(0),
                    failcnt: s.memory.failcnt.unwrap_or(0),
                },
            },
            pids: RuncPids {
                current: s.pids.current.unwrap_or(0),
                limit: s.pids.limit.unwrap_or(0),
            },
            blkio: RuncBlkio {
                io_service_bytes_recursive: s.blkio.clone(),
            },
        }
    }
}

/// Turns successive samples into events.
#[derive(Debug, Clone, Default)]
pub struct EventStream {
    oom_kills: Option<u64>,
}

impl EventStream {
    /// The events for a new sample: an `oom` first when the OOM-kill count
    /// rose since the last sample (not on the first: kills before `events`
    /// started are not news), then the `stats` line when `with_stats`.
    pub fn on_sample(&mut self, id: &str, s: &Stats, with_stats: bool) -> Vec<Event> {
        let mut out = Vec::new();
        if let (Some(before), Some(now)) = (self.oom_kills, s.memory.oom_kills) {
            if now > before {
                out.push(Event {
                    kind: "oom",
                    id: id.into(),
                    data: None,
                });
            }
        }
        self.oom_kills = s.memory.oom_kills.or(self.oom_kills);
        if with_stats {
            out.push(Event {
                kind: "stats",
                id: id.into(),
                data: Some(RuncStats::from(s)),
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_line_in_runcs_layout() {
        let mut s = Stats::default();
        s.cpu.total_ns = Some(5);
        s.cpu.user_ns = Some(3);
        s.memory.usage = Some(4096);
        s.memory.failcnt = Some(0);
        s.pids.current = Some(2);
        let line = EventStream::default().on_sample("web", &s, true)[0].line();
        assert_eq!(
            line,
            "{\"type\":\"stats\",\"id\":\"web\",\"data\":{\"cpu\":{\"usage\":{\"total\":5,\"kernel\":0,\"user\":3},\"throttling\":{}},\"memory\":{\"usage\":{\"limit\":0,\"usage\":4096,\"failcnt\":0}},\"pids\":{\"current\":2},\"blkio\":{}}}\n"
        );
    }

    #[test]
    fn oom_when_the_kill_count_rises() {
        let mut st = EventStream::default();
        let mut s = Stats::default();
        s.memory.oom_kills = Some(2);
        assert!(st.on_sample("x", &s, false).is_empty(), "earlier kills are not news");
        assert!(st.on_sample("x", &s, false).is_empty());
        s.memory.oom_kills = Some(3);
        let ev = st.on_sample("x", &s, true);
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[0].line(), "{\"type\":\"oom\",\"id\":\"x\"}\n");
        assert_eq!(ev[1].kind, "stats");
        // A sample without the count (file unreadable) forgets nothing.
        s.memory.oom_kills = None;
        assert!(st.on_sample("x", &s, false).is_empty());
        s.memory.oom_kills = Some(4);
        assert_eq!(st.on_sample("x", &s, false).len(), 1);
    }
}
