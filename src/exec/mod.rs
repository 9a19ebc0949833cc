//! The interpreter: performs a plan's steps. Makes syscalls, decides nothing.

pub mod detect;
