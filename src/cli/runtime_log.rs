//! runc's global flags as container engines use them: `--log FILE` with
//! `--log-format text|json` (podman reads a failed runtime call's reason from
//! the log's last `error` line and shows it to its user), `--debug`, and
//! `--systemd-cgroup`, which sandboxctl does not support and refuses with
//! what to configure instead.

use std::io::Write;
use std::path::Path;

use super::args::{LogFormat, RuntimeFlags};
use super::Failure;

/// Log levels written to `--log`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// A failed command.
    Error,
    /// `--debug` lines.
    Debug,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Debug => "debug",
        }
    }
}

/// One log line in `format`: runc's JSON (`{"level":..,"msg":..,"time":..}`)
/// or its logrus text form (`time="…" level=error msg="…"`); `time` is RFC 3339 UTC.
pub fn line(format: LogFormat, level: Level, msg: &str, time: &str) -> String {
    match format {
        LogFormat::Json => {
            let v = serde_json::json!({ "level": level.name(), "msg": msg, "time": time });
            format!("{v}\n")
        }
        LogFormat::Text => format!(
            "time={} level={} msg={}\n",
            serde_json::Value::from(time),
            level.name(),
            serde_json::Value::from(msg)
        ),
    }
}

/// Refuses what sandboxctl cannot do before any command runs: `--systemd-cgroup`.
pub fn check(flags: &RuntimeFlags) -> Result<(), Failure> {
    if flags.systemd_cgroup {
        return Err(Failure::other(
            "--systemd-cgroup: sandboxctl manages cgroups through cgroupfs only, not through systemd; \
             configure the engine for cgroupfs (podman: cgroup_manager = \"cgroupfs\" in containers.conf; \
             containerd: SystemdCgroup = false in the runc options)"
                .into(),
        ));
    }
    Ok(())
}

/// Appends one line to `--log` (or, for `--debug` without `--log`, to
/// stderr). A log that cannot be written is reported on stderr, once, and
/// never changes the command's outcome.
pub fn write(flags: &RuntimeFlags, level: Level, msg: &str) {
    if level == Level::Debug && !flags.debug {
        return;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let text = line(flags.log_format, level, msg, &super::sandbox::rfc3339(now));
    match &flags.log {
        Some(path) => {
            if let Err(e) = append(path, &text) {
                eprintln!("sandboxctl: writing --log {}: {e}", path.display());
            }
        }
        None if level == Level::Debug => {
            let _ = std::io::stderr().write_all(text.as_bytes());
        }
        None => {}
    }
}

fn append(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o644)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)?;
    f.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_are_runcs() {
        let l = line(LogFormat::Json, Level::Error, "no \"x\"\nhere", "2026-12-01T20:00:00Z");
        assert_eq!(
            l,
            "{\"level\":\"error\",\"msg\":\"no \\\"x\\\"\\nhere\",\"time\":\"2026-12-01T20:00:00Z\"}\n"
        );
        let v: serde_json::Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["msg"], "no \"x\"\nhere");
    }

    #[test]
    fn text_lines_are_logfmt() {
        let l = line(LogFormat::Text, Level::Debug, "a b", "2026-12-01T20:00:00Z");
        assert_eq!(l, "time=\"2026-12-01T20:00:00Z\" level=debug msg=\"a b\"\n");
    }

    #[test]
    fn systemd_cgroup_is_refused_with_what_to_configure() {
        let f = RuntimeFlags {
            systemd_cgroup: true,
            ..Default::default()
        };
        let e = check(&f).unwrap_err();
        assert_eq!(e.code, 1);
        assert!(e.diag.to_string().contains("cgroup_manager = \"cgroupfs\""));
        assert!(check(&RuntimeFlags::default()).is_ok());
    }
}
