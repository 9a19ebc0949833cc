//! sandboxctl: a declarative Linux sandbox launcher.
//!
//! An operator's policy ([`policy`]), a workload's OCI spec ([`spec`]) and host
//! facts ([`host`]) compile ([`plan::compile()`]) into an immutable
//! [`plan::LaunchPlan`], which the interpreter in [`exec`] performs. `policy`
//! and `plan` read their inputs and make no syscalls; `exec` makes the syscalls
//! and no decisions.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, clippy::undocumented_unsafe_blocks)]
// Errors here carry their source snippets for diagnostics; they are built once,
// on a cold path, so their size does not matter.
#![allow(clippy::result_large_err)]

pub mod alloc;
pub mod cli;
pub mod diag;
pub mod exec;
pub mod host;
#[cfg(all(target_env = "musl", target_arch = "x86_64"))]
pub mod memfns;
pub mod plan;
pub mod policy;
pub mod schema;
pub mod spec;
pub mod vocab;
