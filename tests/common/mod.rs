//! Helpers shared by the integration tests that run the sandboxctl binary.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
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

/// A scratch directory under the system's temporary directory, removed on drop.
#[allow(dead_code)] // not every test crate that includes this module uses it
pub struct Scratch(pub PathBuf);

#[allow(dead_code)]
impl Scratch {
    /// Makes (or empties) `sandboxctl-NAME-PID`.
    pub fn new(name: &str) -> Scratch {
        let p = std::env::temp_dir().join(format!("sandboxctl-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
