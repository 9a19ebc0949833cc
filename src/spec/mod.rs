//! The workload's OCI runtime spec: loading `config.json` (from a bundle or a
//! file) with JSON-path errors, the embedded default spec used when none is
//! given, and [`locate`], which finds a JSON path's bytes in the text so a
//! diagnostic can point at the line.

mod locate;

use std::path::{Path, PathBuf};

use oci_spec::runtime::{Process, Spec};

pub use locate::{locate, PathSeg};

use crate::diag::Snippet;

/// A loaded spec.
#[derive(Debug, Clone)]
pub struct SpecInput {
    /// The name shown to people (the path as given, or `builtin:default-spec`).
    pub name: String,
    /// The text, for diagnostics (the rendered default for the built-in).
    pub text: String,
    /// The parsed spec, boxed: a `Spec` is several KiB, and every frame a
    /// `SpecInput` is moved through would otherwise hold a copy of it (stack
    /// pages each launch faults in).
    pub spec: Box<Spec>,
    /// The bundle directory: relative paths in the spec (root.path, bind
    /// sources) resolve from it. Absolute and normalised when the loader's
    /// `base` is absolute (the CLI's always is); `--target-bundle` replaces it
    /// with the bundle's place on the machine the plan is for. None for the
    /// built-in spec.
    pub dir: Option<PathBuf>,
    /// Whether this is the embedded default.
    pub builtin: bool,
}

impl SpecInput {
    /// The text diagnostics point into: the file as is, or pretty-printed when
    /// it has lines too long to show (podman writes config.json on one line).
    pub fn diag_text(&self) -> std::borrow::Cow<'_, str> {
        if self.text.lines().all(|l| l.len() <= 400) {
            return std::borrow::Cow::Borrowed(&self.text);
        }
        match serde_json::from_str::<serde_json::Value>(&self.text) {
            Ok(v) => std::borrow::Cow::Owned(serde_json::to_string_pretty(&v).unwrap_or_else(|_| self.text.clone())),
            Err(_) => std::borrow::Cow::Borrowed(&self.text),
        }
    }
}

/// Why a spec could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// Reading failed.
    #[error("reading OCI spec {path}: {error}")]
    Read {
        /// The path.
        path: String,
        /// The OS error.
        error: std::io::Error,
        /// A hint.
        hint: Option<String>,
    },
    /// `--bundle` named a file (most often the bundle's config.json itself).
    #[error("--bundle takes the bundle directory, and {path} is a file")]
    BundleIsFile {
        /// The path given.
        path: String,
        /// What to pass instead.
        hint: String,
    },
    /// Not JSON, or not a spec.
    #[error("parsing OCI spec: {message}")]
    Parse {
        /// What serde said, and at which JSON path.
        message: String,
        /// Where.
        at: Snippet,
        /// A did-you-mean for a misspelt name.
        suggestion: Option<String>,
    },
}

impl SpecError {
    /// Renderable form.
    pub fn to_diag(&self) -> crate::diag::SourceDiag {
        use crate::diag::SourceDiag;
        match self {
            SpecError::Read { hint, .. } => SourceDiag::plain(self.to_string(), hint.clone()),
            SpecError::BundleIsFile { hint, .. } => SourceDiag::plain(self.to_string(), Some(hint.clone())),
            SpecError::Parse { at, suggestion, .. } => {
                let reference = "see the OCI runtime spec (config.json) reference: https://github.com/opencontainers/runtime-spec/blob/main/config.md";
                let help = match suggestion {
                    Some(s) => format!("did you mean \"{s}\"? ({reference})"),
                    None => reference.to_string(),
                };
                SourceDiag::new(self.to_string(), Some(at.clone()), Some(help), vec![])
            }
        }
    }
}

/// Loads `config.json` from a bundle directory. A file given as the bundle is
/// refused with what to pass instead: its directory when it is a
/// `config.json`, else `--spec`.
pub fn load_bundle(dir: &Path, base: &Path) -> Result<SpecInput, SpecError> {
    if base.join(dir).is_file() {
        let hint = match (dir.file_name(), dir.parent()) {
            (Some(name), Some(parent)) if name == "config.json" => {
                let parent = if parent.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    parent
                };
                format!("did you mean --bundle {}?", parent.display())
            }
            _ => format!(
                "a bundle is a directory holding config.json and its rootfs; to read {} as the spec, pass --spec {0}",
                dir.display()
            ),
        };
        return Err(SpecError::BundleIsFile {
            path: dir.display().to_string(),
            hint,
        });
    }
    let path = dir.join("config.json");
    let mut s = load_file(&path, base).map_err(|e| match e {
        SpecError::Read { path, error, .. } => SpecError::Read {
            path,
            error,
            hint: Some(format!(
                "a bundle is a directory holding config.json and its rootfs; `runc spec` in {} writes a default one",
                dir.display()
            )),
        },
        other => other,
    })?;
    s.dir = Some(crate::policy::normalize(&base.join(dir)));
    Ok(s)
}

/// Loads a spec file; relative paths in it resolve from its directory. A
/// relative `path` is read from `base` and keeps its name.
pub fn load_file(path: &Path, base: &Path) -> Result<SpecInput, SpecError> {
    let (name, text, spec) = read_json::<Spec>(path, base)?;
    Ok(SpecInput {
        name,
        text,
        spec: Box::new(spec),
        dir: Some(crate::policy::normalize(
            &base.join(path).parent().map(Path::to_path_buf).unwrap_or_default(),
        )),
        builtin: false,
    })
}

/// Loads a process.json (as `runc exec --process` takes).
pub fn load_process(path: &Path, base: &Path) -> Result<(String, String, Process), SpecError> {
    read_json::<Process>(path, base)
}

/// Reads `base/path` and parses it; returns the name shown (the path as
/// given), the text and the value.
fn read_json<T: serde::de::DeserializeOwned>(path: &Path, base: &Path) -> Result<(String, String, T), SpecError> {
    let text = crate::vocab::read_input(&base.join(path)).map_err(|error| SpecError::Read {
        path: path.display().to_string(),
        error,
        hint: None,
    })?;
    let name = path.display().to_string();
    let value = parse_json::<T>(&name, &text)?;
    Ok((name, text, value))
}

/// Parses JSON into `T`, reporting the JSON path and line of the first error.
///
/// The plain serde_json parse runs first: tracking the path of every value
/// costs on each of them, and only a failure needs it. On a failure the text
/// is parsed again with the path tracked, which finds the same first error
/// (parsing is deterministic) and names where it is. Neither pass checks for
/// text after the value (`serde_json::from_str` would), as before.
pub fn parse_json<T: serde::de::DeserializeOwned>(name: &str, text: &str) -> Result<T, SpecError> {
    match <T as serde::Deserialize>::deserialize(&mut serde_json::Deserializer::from_str(text)) {
        Ok(value) => Ok(value),
        Err(_) => parse_json_tracked(name, text),
    }
}

/// [`parse_json`] with the JSON path tracked: its diagnostic on failure.
/// Out of line and cold: its large frames stay off the stack of a good parse.
#[cold]
#[inline(never)]
fn parse_json_tracked<T: serde::de::DeserializeOwned>(name: &str, text: &str) -> Result<T, SpecError> {
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize::<_, T>(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let (line, col) = (inner.line(), inner.column());
        let offset = offset_of(text, line, col);
        let message = if path == "." || path.is_empty() || inner.is_syntax() || inner.is_eof() {
            inner.to_string()
        } else {
            format!("at {path}: {inner}")
        };
        let suggestion = ["variant", "field"].iter().find_map(|what| {
            let (name, expected) = crate::vocab::serde_unknown(&message, what)?;
            crate::vocab::closest(&name, expected.iter().map(String::as_str)).map(str::to_string)
        });
        SpecError::Parse {
            message,
            suggestion,
            at: Snippet {
                name: name.to_string(),
                text: text.to_string(),
                span: Some(offset..offset + 1),
                label: if inner.is_syntax() || inner.is_eof() {
                    "not valid JSON".into()
                } else {
                    "bad value".into()
                },
            },
        }
    })
}

fn offset_of(text: &str, line: usize, col: usize) -> usize {
    let mut off = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            return (off + col.saturating_sub(1)).min(text.len().saturating_sub(1));
        }
        off += l.len();
    }
    text.len().saturating_sub(1)
}

/// The embedded default spec: `args` run with the host root (or the policy's
/// root) read-only, fresh /proc, /dev, /dev/pts, /dev/shm, /tmp, /run (so the
/// host's sockets and state there stay out of sight) and /sys, no capabilities.
pub fn builtin(args: &[String]) -> SpecInput {
    let spec_json = serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": { "uid": 0, "gid": 0 },
            "args": args,
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm", "HOME=/"],
            "cwd": "/",
            "capabilities": { "bounding": [], "effective": [], "permitted": [], "inheritable": [], "ambient": [] },
            "noNewPrivileges": true
        },
        "root": { "path": "/", "readonly": true },
        "hostname": "sandbox",
        "mounts": [
            { "destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"] },
            { "destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] },
            { "destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"] },
            { "destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
            { "destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777", "size=65536k"] },
            { "destination": "/run", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "noexec", "mode=755", "size=65536k"] },
            { "destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"] }
        ],
        "linux": {
            "namespaces": [
                { "type": "pid" }, { "type": "network" }, { "type": "ipc" }, { "type": "uts" }, { "type": "mount" }
            ],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    });
    let text = serde_json::to_string_pretty(&spec_json).expect("a json! value always serialises");
    let spec: Spec = serde_json::from_str(&text).expect("the built-in spec is a valid OCI spec");
    SpecInput {
        name: "builtin:default-spec".into(),
        text,
        spec: Box::new(spec),
        dir: None,
        builtin: true,
    }
}

/// Makes `spec` join the namespaces of the process `pid` (another sandbox's
/// supervisor: `create --sandbox`) for each kind in `kinds` (the policy's
/// `namespaces.allow_join`): `/proc/PID/ns/KIND`, replacing what the spec
/// says of that kind. Other kinds stay as the spec has them.
pub fn join_namespaces_of(spec: &mut Spec, pid: i32, kinds: &[crate::plan::NsKind]) {
    use crate::plan::NsKind;
    use oci_spec::runtime::{LinuxNamespaceBuilder, LinuxNamespaceType as T};
    let mut linux = spec.linux().clone().unwrap_or_default();
    let mut nss = linux.namespaces().clone().unwrap_or_default();
    for kind in kinds {
        let typ = match kind {
            NsKind::User => T::User,
            NsKind::Pid => T::Pid,
            NsKind::Net => T::Network,
            NsKind::Ipc => T::Ipc,
            NsKind::Uts => T::Uts,
            NsKind::Cgroup => T::Cgroup,
            NsKind::Time => T::Time,
            NsKind::Mount => T::Mount,
        };
        nss.retain(|n| n.typ() != typ);
        if let Ok(n) = LinuxNamespaceBuilder::default()
            .typ(typ)
            .path(format!("/proc/{pid}/ns/{}", kind.proc_name()))
            .build()
        {
            nss.push(n);
        }
    }
    linux.set_namespaces(Some(nss));
    spec.set_linux(Some(linux));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_parses_and_keeps_args() {
        let s = builtin(&["/bin/sh".into(), "-c".into(), "id".into()]);
        assert_eq!(s.spec.process().as_ref().unwrap().args().as_ref().unwrap()[2], "id");
    }

    #[test]
    fn bad_json_points_at_line() {
        let e =
            parse_json::<Spec>("c.json", "{\n  \"ociVersion\": \"1\",\n  \"process\": {\"args\": 3}\n}").unwrap_err();
        match e {
            SpecError::Parse { message, at, .. } => {
                assert!(message.contains("process.args"), "{message}");
                assert_eq!(at.line_col().unwrap().0, 3);
            }
            other => panic!("{other}"),
        }
    }

    /// The fast first pass and the path-tracking second one accept and refuse
    /// the same texts: text after the value is not looked at by either.
    #[test]
    fn both_passes_agree_on_trailing_text() {
        let v: Process = parse_json("p.json", r#"{"cwd": "/", "user": {"uid": 0, "gid": 0}} trailing"#).unwrap();
        assert_eq!(v.cwd(), std::path::Path::new("/"));
        let tracked: Process =
            parse_json_tracked("p.json", r#"{"cwd": "/", "user": {"uid": 0, "gid": 0}} trailing"#).unwrap();
        assert_eq!(tracked, v);
    }
}
