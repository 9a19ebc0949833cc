//! Helpers shared by the integration tests that run the sandboxctl binary.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_sandboxctl")
}

/// What a run of the binary gave.
pub struct Run {
    /// Exit status (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error (diagnostics are plain: NO_COLOR is set).
    pub stderr: String,
}

/// Runs the binary in `dir` with `args`, without colour.
pub fn run<S: AsRef<OsStr>>(dir: &Path, args: &[S]) -> Run {
    let out = Command::new(bin())
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .args(args)
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}
