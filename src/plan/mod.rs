//! The LaunchPlan: its type, the compiler that builds it, its renderings, its hash.

pub mod check;
pub mod classes;
pub mod diff;
pub mod sample;
pub mod syscalls_x86_64;
pub mod types;

pub use types::*;
