//! The LaunchPlan: its type, the compiler that builds it, its renderings and
//! hash, and the semantic diff and golden check that CI review runs on it.

pub mod check;
pub mod classes;
pub mod compile;
pub mod diff;
pub mod exec_process;
pub mod render;
pub mod sample;
pub mod syscalls;
pub mod syscalls_x86_64;
pub mod types;

pub use compile::{compile, CompileError, CompileOptions, Compiled};
pub use types::*;
