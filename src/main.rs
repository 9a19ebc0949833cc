//! The `sandboxctl` binary: parses arguments and hands them to the library.
//!
//! `main` is the C `main` (`#![no_main]`), not Rust's: std's runtime start
//! would, before our first line, read `/proc/self/maps` to find the main
//! thread's stack and map and install an alternate signal stack for its
//! stack-overflow message — syscalls and page faults on every launch, which
//! is the one thing this binary must do fast (see docs/apply.md, "Speed").
//! [`sandboxctl::cli::process_start`] keeps the rest of what std does there
//! (stdio fds 0–2 held open, SIGPIPE ignored so writes to a closed pipe fail
//! with EPIPE). `std::env::args` still works: glibc hands argv to std's
//! initialiser. Under `cargo test` the test harness brings its own `main`.

#![cfg_attr(not(test), no_main)]

#[cfg(not(test))]
use clap::Parser;

/// The process entry point, called by glibc's start code.
#[cfg(not(test))]
#[no_mangle]
pub extern "C" fn main(_argc: std::ffi::c_int, _argv: *const *const std::ffi::c_char) -> std::ffi::c_int {
    sandboxctl::cli::process_start();
    let cli = sandboxctl::cli::Cli::parse();
    std::process::exit(sandboxctl::cli::run(cli));
}
