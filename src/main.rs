//! The `sandboxctl` binary: parses arguments and hands them to the library.
//!
//! `main` is the C `main` (`#![no_main]`), not Rust's: std's runtime start
//! would, before our first line, read `/proc/self/maps` to find the main
//! thread's stack and map and install an alternate signal stack for its
//! stack-overflow message — syscalls and page faults on every launch, which
//! is the one thing this binary must do fast (see docs/apply.md, "Speed").
//! [`sandboxctl::cli::process_start`] keeps the rest of what std does there
//! (stdio fds 0–2 held open, SIGPIPE ignored so writes to a closed pipe fail
//! with EPIPE). The arguments come from `main`'s own `argv`: musl, unlike
//! glibc, does not hand them to std's initialiser, so `std::env::args` would
//! be empty there. Under `cargo test` the test harness brings its own `main`.

#![cfg_attr(not(test), no_main)]

#[cfg(not(test))]
use clap::Parser;

/// The process entry point, called by glibc's start code.
#[cfg(not(test))]
#[no_mangle]
extern "C" fn main(argc: std::ffi::c_int, argv: *const *const std::ffi::c_char) -> std::ffi::c_int {
    sandboxctl::cli::process_start();
    ALLOC.register();
    // SAFETY: as below.
    if let Some(fd) = unsafe { sandboxctl::cli::supervisor_handover(argc, argv) } {
        // A created sandbox's supervisor, re-executed to serve.
        sandboxctl::exec::interp::resume_supervisor(fd);
    }
    // SAFETY: argc and argv are what the C runtime passed to main: argc
    // valid, NUL-terminated strings that live as long as the process.
    let args = unsafe { sandboxctl::cli::c_args(argc, argv) };
    let cli = sandboxctl::cli::Cli::parse_from(args);
    std::process::exit(sandboxctl::cli::run(cli));
}

/// Every build allocates with dlmalloc behind `sandboxctl::alloc` (musl's
/// own allocator is slow here, and on any libc the workload's vfork child
/// must never take the heap's lock: `sandboxctl::alloc` switches the child
/// to its own arena, which only this allocator knows about).
#[cfg(not(test))]
#[global_allocator]
static ALLOC: sandboxctl::alloc::Allocator = sandboxctl::alloc::Allocator::new();
