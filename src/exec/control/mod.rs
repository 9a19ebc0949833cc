//! Long-lived sandboxes: the control half of src/exec, beside the launch path
//! (interp.rs and friends). A sandbox's supervisor serves calls (start, exec,
//! signal, wait, ps, stats, pause, resume, stacks, destroy, ...) on a Unix
//! stream socket in the sandbox's state directory; the CLI is the client.
//!
//! - [`proto`]: the versioned request/reply protocol, pure (encode, decode);
//! - [`server`]: the supervisor's single-threaded poll loop, dispatching to a
//!   [`server::ControlHandler`];
//! - [`client`]: connect, call, and the bounded readiness wait of `create`;
//! - [`state`]: the `--root` state directory: id rules, the per-id lock,
//!   atomic state files, the OCI state document;
//! - [`features`]: the OCI runtime features document.
//!
//! See docs/control.md (the protocol) and docs/lifecycle.md (the state
//! machine and how it maps onto the plan's steps).

pub mod client;
pub mod features;
pub mod proto;
pub mod server;
pub mod state;
mod wire;
