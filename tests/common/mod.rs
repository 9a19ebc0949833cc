//! Support shared by the test programs: running the sandboxctl binary, scratch
//! directories, and finding (or fetching) a static busybox to build test root
//! filesystems from.
//!
//! The tests never download images. Their root filesystems are made from
//! Debian's `busybox-static`: the binary named by `SANDBOXCTL_BUSYBOX`, else
//! `/bin/busybox` when it is statically linked, else a copy unpacked under the
//! build's target directory. When none is there and the tests run as root, the
//! package is fetched with `apt-get download` (after one `apt-get update` if
//! apt's lists are empty, as on a fresh machine) and unpacked with
//! `dpkg-deb -x`: nothing is installed on the host.

#![allow(dead_code)]

pub mod frames;

use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where a fetched busybox-static is unpacked (kept between runs).
fn cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("busybox-static")
}

/// Whether `path` is an ELF executable without a program interpreter, that is
/// statically linked (a dynamic busybox would need its libraries in the rootfs).
pub fn is_static_elf(path: &Path) -> bool {
    let mut head = Vec::new();
    let Ok(f) = fs::File::open(path) else { return false };
    if f.take(64 * 1024).read_to_end(&mut head).is_err() || head.len() < 64 || &head[..4] != b"\x7fELF" {
        return false;
    }
    // 64-bit little-endian only (x86_64, the only target).
    if head[4] != 2 || head[5] != 1 {
        return false;
    }
    let u16_at = |o: usize| u16::from_le_bytes([head[o], head[o + 1]]) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(head[o..o + 8].try_into().unwrap()) as usize;
    let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    (0..phnum).all(|i| {
        let at = phoff + i * phentsize;
        // PT_INTERP = 3; a header past what was read counts as "not static".
        at + 4 <= head.len() && u32::from_le_bytes(head[at..at + 4].try_into().unwrap()) != 3
    })
}

/// A static busybox to copy into test root filesystems, or why there is none
/// (one line saying what to do).
pub fn busybox() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("SANDBOXCTL_BUSYBOX") {
        let p = PathBuf::from(p);
        return if is_static_elf(&p) {
            Ok(p)
        } else {
            Err(format!("SANDBOXCTL_BUSYBOX={} is not a static executable", p.display()))
        };
    }
    let system = Path::new("/bin/busybox");
    if is_static_elf(system) {
        return Ok(system.to_path_buf());
    }
    let cached = cache_dir().join("bin/busybox");
    if is_static_elf(&cached) {
        return Ok(cached);
    }
    fetch()?;
    if is_static_elf(&cached) {
        Ok(cached)
    } else {
        Err(format!(
            "unpacked busybox-static, but {} is not a static executable",
            cached.display()
        ))
    }
}

/// Fetches Debian's busybox-static into [`cache_dir`] without installing it.
fn fetch() -> Result<(), String> {
    const HINT: &str = "install Debian's busybox-static (apt-get install busybox-static) or set SANDBOXCTL_BUSYBOX";
    let dir = cache_dir();
    let dl = dir.join("download");
    fs::create_dir_all(&dl).map_err(|e| format!("creating {}: {e}; {HINT}", dl.display()))?;
    let download = || {
        Command::new("apt-get")
            .args(["download", "-qq", "busybox-static"])
            .current_dir(&dl)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !download() {
        // A fresh machine has no package lists yet.
        let updated = Command::new("apt-get")
            .args(["update", "-qq"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !updated || !download() {
            return Err(format!(
                "no static busybox here and `apt-get download busybox-static` failed; {HINT}"
            ));
        }
    }
    let deb = fs::read_dir(&dl)
        .map_err(|e| format!("reading {}: {e}", dl.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or_else(|| format!("apt-get download left no .deb in {}; {HINT}", dl.display()))?;
    let ok = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&dir)
        .status()
        .is_ok_and(|s| s.success());
    let _ = fs::remove_dir_all(&dl);
    if ok {
        Ok(())
    } else {
        Err(format!("dpkg-deb -x {} failed; {HINT}", deb.display()))
    }
}

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
pub struct Scratch(pub PathBuf);

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
