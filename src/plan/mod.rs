//! The LaunchPlan: its type, the compiler that builds it, its renderings, its hash.

pub mod syscalls;
pub mod syscalls_x86_64;
pub mod types;

pub use types::*;
pub mod compile;
pub mod render;

pub use compile::{compile, CompileError, CompileOptions, Compiled};
