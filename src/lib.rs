//! sandboxctl: a declarative Linux sandbox launcher.
//!
//! An operator's policy ([`policy`]), a workload's OCI spec ([`spec`]) and host
//! facts ([`host`]) compile ([`plan::compile`]) into an immutable
//! [`plan::LaunchPlan`], which the interpreter in [`exec`] performs. `policy`
//! and `plan` read their inputs and make no syscalls; `exec` makes the syscalls
//! and no decisions.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, clippy::undocumented_unsafe_blocks)]

pub mod exec;
pub mod host;
pub mod plan;
pub mod policy;
pub mod vocab;
