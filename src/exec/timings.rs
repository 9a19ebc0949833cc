//! `apply --timings`: when each step begins, in milliseconds since sandboxctl
//! started, printed to stderr by the process that performs it (launcher,
//! supervisor or workload), for finding where launch time goes (docs/apply.md,
//! "Speed"). Off, it costs one branch per step.

use std::io::Write;
use std::time::Instant;

use crate::plan::Actor;

/// The instant timings count from.
#[derive(Debug, Clone, Copy)]
pub struct Timings {
    start: Instant,
}

impl Timings {
    /// Timings counted from `start` (the process's start, as the CLI records it).
    pub fn since(start: Instant) -> Self {
        Timings { start }
    }

    /// Prints `sandboxctl: timing    1.234 ms supervisor mounts` to stderr in
    /// one write, so lines of different processes do not interleave.
    pub fn mark(&self, actor: Actor, what: &str) {
        let ms = self.start.elapsed().as_secs_f64() * 1e3;
        let line = format!("sandboxctl: timing {ms:>8.3} ms {:<10} {what}\n", actor.name());
        let _ = std::io::stderr().write_all(line.as_bytes());
    }
}
