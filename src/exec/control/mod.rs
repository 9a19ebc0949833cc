//! Long-lived sandboxes: the control half of src/exec, beside the launch path
//! (interp/).  A sandbox's supervisor serves calls (start, exec,
//! signal, wait, ps, stats, pause, resume, stacks, destroy, ...) on a Unix
//! stream socket in the sandbox's state directory; the CLI is the client.
//!
//! - [`proto`]: the versioned request/reply protocol, pure (encode, decode);
//! - [`server`]: the supervisor's single-threaded poll loop, dispatching to a
//!   [`server::ControlHandler`];
//! - [`client`]: connect, call, and the bounded readiness wait of `create`;
//! - [`state`]: the `--root` state directory: id rules, the per-id lock,
//!   atomic state files, the OCI state document;
//! - [`features`]: the OCI runtime features document;
//! - [`procfs`]: processes as `ps` and `stacks` report them;
//! - [`stats`]: one sample of a sandbox cgroup's statistics, and [`events`]:
//!   those samples as runc's `events` lines;
//! - [`signals`]: signal names and numbers as `kill` takes them;
//! - [`children`]: the supervisor's bookkeeping of its children for `wait`,
//!   `wait_pid` and `signal_process`.
//!
//! See docs/control.md (the protocol) and docs/lifecycle.md (the state
//! machine and how it maps onto the plan's steps).

pub mod children;
pub mod client;
pub mod events;
pub mod features;
pub mod procfs;
pub mod proto;
pub mod server;
pub mod signals;
pub mod state;
pub mod stats;
mod wire;

/// A fresh temporary directory for unit tests, removed on drop.
#[cfg(test)]
pub(crate) struct TempDir(pub std::path::PathBuf);

#[cfg(test)]
impl TempDir {
    /// `$TMPDIR/sandboxctl-<tag>-<pid>-<n>`, empty.
    pub(crate) fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "sandboxctl-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        TempDir(p)
    }
}

#[cfg(test)]
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
