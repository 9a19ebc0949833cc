//! The state directory of long-lived sandboxes (`--root DIR`, default
//! `/run/sandboxctl`): one directory per sandbox id, holding its record
//! (`state.json`), its stored plan and its control socket.
//!
//! Every command on an id first takes the id's lock: `flock` on the id's
//! directory itself, shared for readers (`state`, `list`), exclusive for
//! anything that changes the sandbox. `create` makes the directory
//! exclusively (`mkdir` fails on an id in use, touching nothing) and holds
//! the lock until the sandbox is recorded; `delete` empties and removes the
//! directory while holding it, and a command that was waiting for the lock
//! sees the directory unlinked (link count 0) and reports the id as gone.
//! Files are replaced atomically (written to a temporary name, then renamed),
//! so a reader never sees half a record. Ids are validated before any path
//! is built from them.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::proto::{ExitStatus, Status};

/// The default `--root` (where `apply` keeps its pid files too).
pub const DEFAULT_ROOT: &str = crate::exec::state::DEFAULT_ROOT;
/// The longest id, in bytes (podman's and containerd's ids are 64).
pub const MAX_ID_LEN: usize = 128;
/// The sandbox's record, in its directory.
pub const STATE_FILE: &str = "state.json";
/// The plan the sandbox was created from, in its directory.
pub const PLAN_FILE: &str = "plan.json";
/// The control socket, in its directory.
pub const CONTROL_SOCKET: &str = "control.sock";
/// How the workload ended ([`ExitStatus`] as JSON), written by the
/// supervisor through an fd the launcher opened; empty until then.
pub const EXIT_FILE: &str = "exit";
/// The format of [`Record`] (its `format` field).
pub const RECORD_FORMAT: u32 = 1;
/// The largest state or plan file read back.
pub const MAX_STATE_FILE: u64 = 4 * 1024 * 1024;
/// Prefix of temporary files (never a valid id: ids do not start with `.`).
const TMP_PREFIX: &str = ".tmp.";
/// `sun_path`'s size: a socket path must fit in it with its NUL.
const SUN_PATH_LEN: usize = 108;

/// A sandbox id that is safe to use as a path component: 1–128 bytes of
/// ASCII letters, digits, `_`, `+`, `-` and `.`, not starting with `.`
/// (so no `/`, no `..`, no control characters, nothing hidden).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SandboxId(String);

/// Why a string is not a sandbox id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid sandbox id {id:?}: {problem}; an id is 1–{MAX_ID_LEN} bytes of A–Z a–z 0–9 _ + - . and does not start with '.'"
)]
pub struct IdError {
    /// The refused id (cut to 160 bytes for the message).
    pub id: String,
    /// What is wrong with it.
    pub problem: String,
}

impl SandboxId {
    /// Validates `s` as an id.
    pub fn parse(s: &str) -> Result<SandboxId, IdError> {
        let err = |problem: String| {
            let mut cut = s.len().min(160);
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            Err(IdError {
                id: s[..cut].to_string(),
                problem,
            })
        };
        if s.is_empty() {
            return err("it is empty".into());
        }
        if s.len() > MAX_ID_LEN {
            return err(format!("it is {} bytes long", s.len()));
        }
        if s.starts_with('.') {
            return err("it starts with '.'".into());
        }
        if let Some((i, c)) = s
            .char_indices()
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '.')))
        {
            return err(format!("{c:?} at byte {i} is not allowed"));
        }
        Ok(SandboxId(s.to_string()))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for SandboxId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for SandboxId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        SandboxId::parse(s)
    }
}

/// A failure on the state directory.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The id is not valid.
    #[error(transparent)]
    InvalidId(#[from] IdError),
    /// No sandbox with this id (or it was deleted while this command waited).
    #[error("no sandbox \"{id}\" under {root}")]
    NotFound {
        /// The id.
        id: SandboxId,
        /// The state root.
        root: PathBuf,
    },
    /// `create` of an id that exists.
    #[error("sandbox id \"{id}\" is already in use under {root}; nothing was changed")]
    InUse {
        /// The id.
        id: SandboxId,
        /// The state root.
        root: PathBuf,
    },
    /// Another command held the id's lock for longer than this one waits.
    #[error("sandbox \"{id}\" is busy: another sandboxctl command held its lock for {waited:?}")]
    Busy {
        /// The id.
        id: SandboxId,
        /// How long this command waited.
        waited: Duration,
    },
    /// The directory exists but holds no record: a `create` was interrupted
    /// (killed) before recording the sandbox. (`delete` is to remove it.)
    #[error("sandbox \"{id}\" has no record in {dir}: its create was interrupted before recording it")]
    Incomplete {
        /// The id.
        id: SandboxId,
        /// Its directory.
        dir: PathBuf,
    },
    /// A state file that does not parse.
    #[error("reading {path}: {reason}")]
    BadFile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// An I/O operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done ("creating", "locking", ...).
        what: &'static str,
        /// On what.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StateError + 'a {
    move |source| StateError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

fn errno_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(nix::Error) -> StateError + 'a {
    move |e| StateError::Io {
        what,
        path: path.to_path_buf(),
        source: io::Error::from_raw_os_error(e as i32),
    }
}

/// How an id's lock is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Readers (`state`, `list`): many at once.
    Shared,
    /// Anything that changes the sandbox: one at a time, and no readers.
    Exclusive,
}

/// The state root (`--root`).
#[derive(Debug, Clone)]
pub struct StateRoot {
    path: PathBuf,
}

impl StateRoot {
    /// The root at `path` (nothing is touched yet).
    pub fn new(path: impl Into<PathBuf>) -> StateRoot {
        StateRoot { path: path.into() }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes a new sandbox's directory (mode 0700) and holds its lock
    /// exclusively. An id in use is refused without touching it.
    pub fn create(&self, id: &SandboxId) -> Result<SandboxDir, StateError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(&self.path)
            .map_err(io_err("creating the state root", &self.path))?;
        let path = self.path.join(id.as_str());
        match fs::DirBuilder::new().mode(0o700).create(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(StateError::InUse {
                    id: id.clone(),
                    root: self.path.clone(),
                })
            }
            Err(e) => return Err(io_err("creating", &path)(e)),
        }
        // Someone may open and lock it between our mkdir and our lock; they
        // see no record and give up quickly, so a short wait is enough.
        self.lock_dir(id, path, LockMode::Exclusive, Duration::from_secs(5))
    }

    /// Opens an existing sandbox's directory and takes its lock, waiting at
    /// most `timeout`.
    pub fn open(&self, id: &SandboxId, mode: LockMode, timeout: Duration) -> Result<SandboxDir, StateError> {
        self.lock_dir(id, self.path.join(id.as_str()), mode, timeout)
    }

    fn lock_dir(
        &self,
        id: &SandboxId,
        path: PathBuf,
        mode: LockMode,
        timeout: Duration,
    ) -> Result<SandboxDir, StateError> {
        use nix::fcntl::{open, OFlag};
        use nix::sys::stat::Mode;
        let not_found = || StateError::NotFound {
            id: id.clone(),
            root: self.path.clone(),
        };
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let dir = match open(&path, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(nix::Error::ENOENT) | Err(nix::Error::ENOTDIR) | Err(nix::Error::ELOOP) => return Err(not_found()),
            Err(e) => return Err(errno_err("opening", &path)(e)),
        };
        let op = match mode {
            LockMode::Shared => libc::LOCK_SH,
            LockMode::Exclusive => libc::LOCK_EX,
        } | libc::LOCK_NB;
        let start = Instant::now();
        let mut pause = Duration::from_millis(1);
        loop {
            // SAFETY: flock on a valid fd we own; no memory is passed.
            if unsafe { libc::flock(dir.as_raw_fd(), op) } == 0 {
                break;
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EWOULDBLOCK) => {}
                Some(libc::EINTR) => continue,
                _ => return Err(io_err("locking", &path)(e)),
            }
            let waited = start.elapsed();
            if waited >= timeout {
                return Err(StateError::Busy { id: id.clone(), waited });
            }
            std::thread::sleep(pause.min(timeout - waited));
            pause = (pause * 2).min(Duration::from_millis(50));
        }
        // Deleted while we waited: the directory we hold is unlinked.
        let st = nix::sys::stat::fstat(&dir).map_err(errno_err("checking", &path))?;
        if st.st_nlink == 0 {
            return Err(not_found());
        }
        Ok(SandboxDir {
            id: id.clone(),
            path,
            dir,
            mode,
        })
    }

    /// Reads an id's record without taking its lock (`list`): records are
    /// replaced atomically, so what is read is whole, if maybe a moment old.
    pub fn peek(&self, id: &SandboxId) -> Result<Record, StateError> {
        let dir = self.path.join(id.as_str());
        let path = dir.join(STATE_FILE);
        let mut bytes = Vec::new();
        let opened = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path);
        match opened {
            Ok(f) => f
                .take(MAX_STATE_FILE + 1)
                .read_to_end(&mut bytes)
                .map_err(io_err("reading", &path))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound && dir.is_dir() => {
                return Err(StateError::Incomplete { id: id.clone(), dir })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StateError::NotFound {
                    id: id.clone(),
                    root: self.path.clone(),
                })
            }
            Err(e) => return Err(io_err("reading", &path)(e)),
        };
        parse_record(id, &path, &bytes)
    }

    /// Every sandbox id under the root, sorted. Entries that are not
    /// directories or not valid ids (apply's pid files, temporary files) are
    /// skipped; a missing root holds none.
    pub fn list(&self) -> Result<Vec<SandboxId>, StateError> {
        let entries = match fs::read_dir(&self.path) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(io_err("listing", &self.path)(e)),
        };
        let mut ids = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err("listing", &self.path))?;
            let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
            if let (true, Some(name)) = (is_dir, entry.file_name().to_str()) {
                if let Ok(id) = SandboxId::parse(name) {
                    ids.push(id);
                }
            }
        }
        ids.sort();
        Ok(ids)
    }
}

/// A sandbox's directory, with its lock held until this is dropped.
#[derive(Debug)]
pub struct SandboxDir {
    id: SandboxId,
    path: PathBuf,
    dir: OwnedFd,
    mode: LockMode,
}

impl SandboxDir {
    /// The id.
    pub fn id(&self) -> &SandboxId {
        &self.id
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How the lock is held.
    pub fn mode(&self) -> LockMode {
        self.mode
    }

    /// Replaces file `name` in the directory atomically: a temporary file
    /// (mode 0600) is written, then renamed over it. Needs the exclusive lock.
    pub fn write_file(&self, name: &str, bytes: &[u8]) -> Result<(), StateError> {
        debug_assert_eq!(self.mode, LockMode::Exclusive, "writing {name} under a shared lock");
        write_file_at(self.dir.as_fd(), &self.path, name, bytes)
    }

    /// Reads file `name` (at most [`MAX_STATE_FILE`] bytes); `None` when it
    /// does not exist.
    pub fn read_file(&self, name: &str) -> Result<Option<Vec<u8>>, StateError> {
        let path = self.path.join(name);
        let fd = match self.openat(name, libc::O_RDONLY, 0) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("reading", &path)(e)),
        };
        let mut bytes = Vec::new();
        fs::File::from(fd)
            .take(MAX_STATE_FILE + 1)
            .read_to_end(&mut bytes)
            .map_err(io_err("reading", &path))?;
        if bytes.len() as u64 > MAX_STATE_FILE {
            return Err(StateError::BadFile {
                path,
                reason: format!("larger than {MAX_STATE_FILE} bytes"),
            });
        }
        Ok(Some(bytes))
    }

    /// Writes the record (atomically).
    pub fn write_record(&self, record: &Record) -> Result<(), StateError> {
        let mut bytes = serde_json::to_vec_pretty(record).expect("a record always serialises");
        bytes.push(b'\n');
        self.write_file(STATE_FILE, &bytes)
    }

    /// Reads the record; [`StateError::Incomplete`] when there is none.
    pub fn read_record(&self) -> Result<Record, StateError> {
        let path = self.path.join(STATE_FILE);
        let Some(bytes) = self.read_file(STATE_FILE)? else {
            return Err(StateError::Incomplete {
                id: self.id.clone(),
                dir: self.path.clone(),
            });
        };
        parse_record(&self.id, &path, &bytes)
    }

    /// The control socket's path. When the real path does not fit in a
    /// socket address (a long `--root`), a path through this directory's fd
    /// (`/proc/self/fd/N/control.sock`), valid while this value lives.
    pub fn socket_path(&self) -> PathBuf {
        let real = self.path.join(CONTROL_SOCKET);
        if real.as_os_str().len() < SUN_PATH_LEN {
            real
        } else {
            PathBuf::from(format!("/proc/self/fd/{}/{CONTROL_SOCKET}", self.dir.as_raw_fd()))
        }
    }

    /// Binds and listens on the control socket (mode 0600, close-on-exec,
    /// non-blocking), replacing a stale one. The launcher does this and
    /// donates the listener to the supervisor.
    pub fn bind_control_socket(&self) -> Result<OwnedFd, StateError> {
        bind_control_socket_at(self.dir.as_fd(), &self.path)
    }

    /// Gives up the lock's fd (the caller holds the lock while it keeps it).
    pub fn into_fd(self) -> OwnedFd {
        self.dir
    }

    /// Removes everything in the directory and the directory itself, holding
    /// the lock until done. Commands waiting for the lock then find the id
    /// gone.
    pub fn remove(self) -> Result<(), StateError> {
        debug_assert_eq!(self.mode, LockMode::Exclusive, "removing under a shared lock");
        let names: Vec<std::ffi::OsString> = fs::read_dir(&self.path)
            .map_err(io_err("listing", &self.path))?
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        for name in names {
            let Some(s) = name.to_str() else {
                return Err(StateError::BadFile {
                    path: self.path.join(&name),
                    reason: "a name that is not UTF-8 (not made by sandboxctl); left in place".into(),
                });
            };
            self.unlinkat(s, 0).map_err(io_err("removing", &self.path.join(s)))?;
        }
        fs::remove_dir(&self.path).map_err(io_err("removing", &self.path))?;
        Ok(())
    }

    fn openat(&self, name: &str, flags: i32, mode: libc::mode_t) -> io::Result<OwnedFd> {
        openat(self.dir.as_fd(), name, flags, mode)
    }

    fn unlinkat(&self, name: &str, flags: i32) -> io::Result<()> {
        unlinkat(self.dir.as_fd(), name, flags)
    }
}

/// Replaces file `name` in the directory open at `dir` (whose path is
/// `dir_path`, for messages) atomically: a temporary file (mode 0600) is
/// written, then renamed over it. The caller holds the exclusive lock.
pub fn write_file_at(dir: BorrowedFd<'_>, dir_path: &Path, name: &str, bytes: &[u8]) -> Result<(), StateError> {
    let tmp = format!("{TMP_PREFIX}{name}");
    let final_path = dir_path.join(name);
    let fd = openat(dir, &tmp, libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC, 0o600)
        .map_err(io_err("writing", &final_path))?;
    let mut f = fs::File::from(fd);
    if let Err(e) = f.write_all(bytes) {
        let _ = unlinkat(dir, &tmp, 0);
        return Err(io_err("writing", &final_path)(e));
    }
    drop(f);
    let (from, to) = (cstr(&tmp), cstr(name));
    // SAFETY: both names are NUL-terminated and outlive the call; the dir fd
    // is borrowed for the call.
    let r = unsafe { libc::renameat(dir.as_raw_fd(), from.as_ptr(), dir.as_raw_fd(), to.as_ptr()) };
    if r != 0 {
        let e = io::Error::last_os_error();
        let _ = unlinkat(dir, &tmp, 0);
        return Err(io_err("replacing", &final_path)(e));
    }
    Ok(())
}

/// Binds and listens on `control.sock` in the directory open at `dir`
/// (whose path is `dir_path`): mode 0600, close-on-exec, non-blocking,
/// replacing a stale socket. The launcher does this and donates the
/// listener to the supervisor.
pub fn bind_control_socket_at(dir: BorrowedFd<'_>, dir_path: &Path) -> Result<OwnedFd, StateError> {
    use nix::sys::socket::{bind, listen, socket, AddressFamily, Backlog, SockFlag, SockType, UnixAddr};
    let real = dir_path.join(CONTROL_SOCKET);
    match unlinkat(dir, CONTROL_SOCKET, 0) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("removing the stale socket", &real)(e)),
    }
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )
    .map_err(errno_err("making the control socket", &real))?;
    let addr_path = if real.as_os_str().len() < SUN_PATH_LEN {
        real.clone()
    } else {
        PathBuf::from(format!("/proc/self/fd/{}/{CONTROL_SOCKET}", dir.as_raw_fd()))
    };
    let addr = UnixAddr::new(&addr_path).map_err(errno_err("addressing", &real))?;
    bind(fd.as_raw_fd(), &addr).map_err(errno_err("binding", &real))?;
    let name = cstr(CONTROL_SOCKET);
    // SAFETY: NUL-terminated name that outlives the call; a borrowed dir fd.
    if unsafe { libc::fchmodat(dir.as_raw_fd(), name.as_ptr(), 0o600, 0) } != 0 {
        return Err(io_err("setting the mode of", &real)(io::Error::last_os_error()));
    }
    listen(&fd, Backlog::new(64).expect("64 is a valid backlog")).map_err(errno_err("listening on", &real))?;
    Ok(fd)
}

fn openat(dir: BorrowedFd<'_>, name: &str, flags: i32, mode: libc::mode_t) -> io::Result<OwnedFd> {
    let c = cstr(name);
    // SAFETY: NUL-terminated name that outlives the call; a borrowed dir fd;
    // the returned fd is checked before it is owned.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c.as_ptr(),
            flags | libc::O_CLOEXEC | libc::O_NOFOLLOW,
            mode,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: openat just returned it; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn unlinkat(dir: BorrowedFd<'_>, name: &str, flags: i32) -> io::Result<()> {
    let c = cstr(name);
    // SAFETY: NUL-terminated name that outlives the call; a borrowed dir fd.
    if unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), flags) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl AsFd for SandboxDir {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.dir.as_fd()
    }
}

/// A record's bytes, checked to be this id's and of this format.
fn parse_record(id: &SandboxId, path: &Path, bytes: &[u8]) -> Result<Record, StateError> {
    if bytes.len() as u64 > MAX_STATE_FILE {
        return Err(StateError::BadFile {
            path: path.to_path_buf(),
            reason: format!("larger than {MAX_STATE_FILE} bytes"),
        });
    }
    let record: Record = serde_json::from_slice(bytes).map_err(|e| StateError::BadFile {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if record.format != RECORD_FORMAT || record.id != id.as_str() {
        return Err(StateError::BadFile {
            path: path.to_path_buf(),
            reason: format!(
                "record format {} for id \"{}\" (expected format {RECORD_FORMAT} for \"{}\")",
                record.format, record.id, id
            ),
        });
    }
    Ok(record)
}

/// A file name as a C string (names here are fixed or validated ids: no NUL).
fn cstr(name: &str) -> CString {
    CString::new(name).expect("state file names hold no NUL")
}

/// A process, identified so that a recycled pid is not mistaken for it: its
/// pid, its start time (clock ticks after boot, `/proc/PID/stat` field 22)
/// and the boot it started in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcRef {
    /// Host pid.
    pub pid: i32,
    /// Start time in clock ticks after boot.
    pub start_ticks: u64,
    /// `/proc/sys/kernel/random/boot_id` when it was recorded.
    pub boot_id: String,
}

impl ProcRef {
    /// The process `pid` as it is now; `None` if there is no such process.
    pub fn of(pid: i32) -> Option<ProcRef> {
        Some(ProcRef {
            pid,
            start_ticks: host_stat(pid)?.start_ticks,
            boot_id: boot_id()?,
        })
    }

    /// Whether this very process still exists: same boot, same pid, same
    /// start time, and not a zombie.
    pub fn is_alive(&self) -> bool {
        boot_id().as_deref() == Some(self.boot_id.as_str())
            && host_stat(self.pid)
                .is_some_and(|f| f.start_ticks == self.start_ticks && f.state != 'Z' && f.state != 'X')
    }
}

/// The host's `/proc/PID/stat` of `pid`.
fn host_stat(pid: i32) -> Option<super::procfs::Stat> {
    super::procfs::stat(Path::new("/proc"), pid)
}

fn boot_id() -> Option<String> {
    Some(
        fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .ok()?
            .trim()
            .to_string(),
    )
}

/// What `state.json` holds: everything a later command needs to find and
/// judge the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// [`RECORD_FORMAT`].
    pub format: u32,
    /// The id (the directory's name).
    pub id: String,
    /// The status last recorded (see [`Record::live_status`]).
    pub status: Status,
    /// The OCI bundle, absolute.
    pub bundle: PathBuf,
    /// The uid that created it (besides root, the only peer the control
    /// socket serves).
    pub owner_uid: u32,
    /// When it was created, seconds since the epoch.
    pub created_unix: u64,
    /// The supervisor (the pid the OCI state reports and `--pid-file` holds).
    pub supervisor: Option<ProcRef>,
    /// The spec's annotations.
    pub annotations: BTreeMap<String, String>,
    /// How the workload ended, once the supervisor recorded it.
    pub exit: Option<ExitStatus>,
    /// The stored plan's hash (`sha256:…`).
    pub plan_hash: Option<String>,
}

impl Record {
    /// The status as it really is: the recorded one, unless the supervisor is
    /// gone (killed, or the host rebooted), which makes it `stopped`.
    pub fn live_status(&self) -> Status {
        match self.status {
            Status::Stopped => Status::Stopped,
            s if self.supervisor.as_ref().is_some_and(ProcRef::is_alive) => s,
            _ => Status::Stopped,
        }
    }

    /// The OCI state document (`sandboxctl state ID`).
    pub fn oci_state(&self) -> OciState {
        let status = self.live_status();
        OciState {
            oci_version: oci_spec::runtime::VERSION.to_string(),
            id: self.id.clone(),
            status,
            pid: match status {
                Status::Stopped => None,
                _ => self.supervisor.as_ref().map(|s| s.pid),
            },
            bundle: self.bundle.clone(),
            annotations: self.annotations.clone(),
        }
    }
}

/// The OCI runtime state of a sandbox, as `state` prints it (deterministic:
/// annotations sorted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OciState {
    /// The runtime spec version.
    pub oci_version: String,
    /// The id.
    pub id: String,
    /// created, running, paused or stopped.
    pub status: Status,
    /// The supervisor's host pid while it lives.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pid: Option<i32>,
    /// The bundle.
    pub bundle: PathBuf,
    /// The spec's annotations.
    pub annotations: BTreeMap<String, String>,
}

/// Writes `--pid-file`: the pid in decimal, no newline (as runc writes it),
/// replaced atomically (a temporary file beside it, then a rename), so an
/// engine polling for the file never reads it half written.
pub fn write_pid_file(path: &Path, pid: i32) -> Result<(), StateError> {
    let name = path
        .file_name()
        .ok_or_else(|| io_err("writing the pid file", path)(io::Error::from(io::ErrorKind::InvalidInput)))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp.{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let write = || -> io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_CLOEXEC)
            .open(&tmp)?;
        f.write_all(pid.to_string().as_bytes())?;
        fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io_err("writing the pid file", path)(e)
    })
}

/// Seconds since the epoch, now.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::exec::control::TempDir;

    fn root(t: &TempDir) -> StateRoot {
        StateRoot::new(&t.0)
    }

    fn id(s: &str) -> SandboxId {
        SandboxId::parse(s).unwrap()
    }

    fn record(id: &str) -> Record {
        Record {
            format: RECORD_FORMAT,
            id: id.into(),
            status: Status::Created,
            bundle: "/b".into(),
            owner_uid: 0,
            created_unix: 1,
            supervisor: ProcRef::of(std::process::id() as i32),
            annotations: BTreeMap::from([("z".into(), "1".into()), ("a".into(), "2".into())]),
            exit: None,
            plan_hash: None,
        }
    }

    #[test]
    fn ids() {
        for ok in ["a", "web-1", "A_b+c.d", &"x".repeat(MAX_ID_LEN), "a..b", "0"] {
            assert_eq!(SandboxId::parse(ok).unwrap().as_str(), ok);
        }
        for (bad, problem) in [
            ("", "empty"),
            (".", "starts with '.'"),
            ("..", "starts with '.'"),
            (".hidden", "starts with '.'"),
            ("a/b", "'/' at byte 1"),
            ("../x", "starts with '.'"),
            ("a\nb", "'\\n' at byte 1"),
            ("a\u{7f}", "'\\u{7f}' at byte 1"),
            ("tab\t", "'\\t' at byte 3"),
            ("sp ace", "' ' at byte 2"),
            ("é", "'é' at byte 0"),
            ("a\0", "'\\0' at byte 1"),
            (&"x".repeat(MAX_ID_LEN + 1), "129 bytes long"),
        ] {
            let e = SandboxId::parse(bad).unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains(problem), "{bad:?}: {msg}");
            assert!(msg.starts_with("invalid sandbox id "), "{msg}");
            assert!(!msg.contains('\n') && !msg.contains('\0'), "one clean line: {msg:?}");
        }
        let long = SandboxId::parse(&"é".repeat(200)).unwrap_err();
        assert!(long.id.len() <= 160);
    }

    #[test]
    fn create_write_read_list_remove() {
        let t = TempDir::new("crud");
        let root = root(&t);
        assert_eq!(root.list().unwrap(), vec![], "a missing root holds none");
        let d = root.create(&id("b")).unwrap();
        let mode = fs::metadata(d.path()).unwrap().permissions();
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o700);
        assert!(matches!(d.read_record(), Err(StateError::Incomplete { .. })));
        d.write_record(&record("b")).unwrap();
        assert_eq!(d.read_record().unwrap(), record("b"));
        drop(d);
        root.create(&id("a")).unwrap().write_record(&record("a")).unwrap();
        // Not sandboxes: apply's pid file, a temporary file, an invalid name.
        fs::write(t.0.join("a.pid"), "1").unwrap();
        fs::create_dir(t.0.join(".tmp.x")).unwrap();
        assert_eq!(root.list().unwrap(), vec![id("a"), id("b")]);
        // Peeking needs no lock, even while another command holds it.
        let held = root
            .open(&id("b"), LockMode::Exclusive, Duration::from_secs(1))
            .unwrap();
        assert_eq!(root.peek(&id("b")).unwrap(), record("b"));
        drop(held);
        assert!(matches!(root.peek(&id("zz")), Err(StateError::NotFound { .. })));
        fs::create_dir(t.0.join("half")).unwrap();
        assert!(matches!(root.peek(&id("half")), Err(StateError::Incomplete { .. })));
        fs::remove_dir(t.0.join("half")).unwrap();

        let d = root
            .open(&id("b"), LockMode::Exclusive, Duration::from_secs(1))
            .unwrap();
        d.write_file(PLAN_FILE, b"{}").unwrap();
        let names: Vec<_> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "no temporary file left: {names:?}");
        d.remove().unwrap();
        assert!(!t.0.join("b").exists());
        assert!(matches!(
            root.open(&id("b"), LockMode::Shared, Duration::from_secs(1)),
            Err(StateError::NotFound { .. })
        ));
        assert_eq!(root.list().unwrap(), vec![id("a")]);
    }

    #[test]
    fn create_of_an_id_in_use_touches_nothing() {
        let t = TempDir::new("inuse");
        let root = root(&t);
        let d = root.create(&id("x")).unwrap();
        d.write_record(&record("x")).unwrap();
        drop(d);
        let before = fs::read(t.0.join("x").join(STATE_FILE)).unwrap();
        let e = root.create(&id("x")).unwrap_err();
        assert!(matches!(e, StateError::InUse { .. }), "{e}");
        assert!(e.to_string().contains("already in use"), "{e}");
        assert_eq!(fs::read(t.0.join("x").join(STATE_FILE)).unwrap(), before);
    }

    #[test]
    fn locks_serialise_writers_and_share_readers() {
        let t = TempDir::new("lock");
        let root = root(&t);
        let x = id("x");
        let held = root.create(&x).unwrap();
        held.write_record(&record("x")).unwrap();
        // Exclusive held: others wait, then give up with a clear error.
        let start = Instant::now();
        let e = root.open(&x, LockMode::Shared, Duration::from_millis(60)).unwrap_err();
        assert!(matches!(e, StateError::Busy { .. }), "{e}");
        assert!(start.elapsed() >= Duration::from_millis(60));
        assert!(e.to_string().contains("busy"), "{e}");
        drop(held);
        // Readers share.
        let r1 = root.open(&x, LockMode::Shared, Duration::from_millis(50)).unwrap();
        let r2 = root.open(&x, LockMode::Shared, Duration::from_millis(50)).unwrap();
        assert!(root.open(&x, LockMode::Exclusive, Duration::from_millis(20)).is_err());
        drop((r1, r2));
        // A waiter gets the lock when the holder lets go.
        let held = root.open(&x, LockMode::Exclusive, Duration::from_millis(50)).unwrap();
        let path = t.0.clone();
        let waiter = std::thread::spawn(move || {
            StateRoot::new(path)
                .open(&id("x"), LockMode::Exclusive, Duration::from_secs(5))
                .map(|d| d.read_record().unwrap().status)
        });
        std::thread::sleep(Duration::from_millis(30));
        let mut rec = record("x");
        rec.status = Status::Running;
        held.write_record(&rec).unwrap();
        drop(held);
        assert_eq!(
            waiter.join().unwrap().unwrap(),
            Status::Running,
            "saw the holder's write"
        );
    }

    #[test]
    fn a_waiter_on_a_deleted_id_finds_it_gone() {
        let t = TempDir::new("gone");
        let root = root(&t);
        let held = root.create(&id("x")).unwrap();
        let path = t.0.clone();
        let waiter = std::thread::spawn(move || {
            StateRoot::new(path)
                .open(&id("x"), LockMode::Shared, Duration::from_secs(5))
                .map(|_| ())
        });
        std::thread::sleep(Duration::from_millis(30));
        held.remove().unwrap();
        let r = waiter.join().unwrap();
        assert!(matches!(r, Err(StateError::NotFound { .. })), "{r:?}");
    }

    #[test]
    fn a_bad_or_foreign_record_is_an_error_not_a_panic() {
        let t = TempDir::new("bad");
        let d = root(&t).create(&id("x")).unwrap();
        for bytes in [&b"{"[..], b"null", b"{\"format\":1}"] {
            d.write_file(STATE_FILE, bytes).unwrap();
            assert!(matches!(d.read_record(), Err(StateError::BadFile { .. })));
        }
        d.write_record(&record("other")).unwrap();
        let e = d.read_record().unwrap_err();
        assert!(e.to_string().contains("for id \"other\""), "{e}");
        // A symlink in place of the record is not followed.
        fs::remove_file(d.path().join(STATE_FILE)).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.path().join(STATE_FILE)).unwrap();
        assert!(matches!(d.read_record(), Err(StateError::Io { .. })));
        // A symlink in place of the sandbox directory is not followed either.
        std::os::unix::fs::symlink("/etc", t.0.join("y")).unwrap();
        assert!(matches!(
            root(&t).open(&id("y"), LockMode::Shared, Duration::from_millis(10)),
            Err(StateError::NotFound { .. })
        ));
    }

    #[test]
    fn live_status_and_oci_state() {
        let mut r = record("x");
        assert_eq!(r.live_status(), Status::Created, "this test process is alive");
        let s = r.oci_state();
        assert_eq!(s.pid, Some(std::process::id() as i32));
        let json = serde_json::to_string(&s).unwrap();
        assert!(
            json.starts_with(&format!(
                "{{\"ociVersion\":\"{}\",\"id\":\"x\",\"status\":\"created\",\"pid\":",
                oci_spec::runtime::VERSION
            )),
            "{json}"
        );
        assert!(
            json.ends_with("\"bundle\":\"/b\",\"annotations\":{\"a\":\"2\",\"z\":\"1\"}}"),
            "{json}"
        );
        // Same pid, another start time: a recycled pid, so stopped.
        r.supervisor.as_mut().unwrap().start_ticks += 1;
        assert_eq!(r.live_status(), Status::Stopped);
        assert_eq!(r.oci_state().pid, None);
        // Another boot: stopped.
        r.supervisor = ProcRef::of(std::process::id() as i32);
        r.supervisor.as_mut().unwrap().boot_id = "00000000-0000-0000-0000-000000000000".into();
        assert_eq!(r.live_status(), Status::Stopped);
        // No supervisor recorded, or a pid that does not exist: stopped.
        r.supervisor = None;
        assert_eq!(r.live_status(), Status::Stopped);
        assert!(ProcRef::of(-1).is_none());
        assert!(ProcRef::of(i32::MAX).is_none());
    }

    #[test]
    fn a_reaped_child_is_not_alive_and_a_zombie_is_not_either() {
        let mut child = std::process::Command::new("/bin/sh")
            .args(["-c", "exit 0"])
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let r = ProcRef::of(pid);
        // Wait for it to become a zombie (not yet reaped).
        let start = Instant::now();
        while host_stat(pid).is_some_and(|f| f.state != 'Z') && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(2));
        }
        if let Some(r) = &r {
            assert!(!r.is_alive(), "a zombie is not alive");
        }
        child.wait().unwrap();
        if let Some(r) = r {
            assert!(!r.is_alive());
        }
    }

    #[test]
    fn pid_file_is_written_whole() {
        let t = TempDir::new("pidfile");
        fs::create_dir_all(&t.0).unwrap();
        let p = t.0.join("ctr.pid");
        write_pid_file(&p, 4242).unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "4242");
        write_pid_file(&p, 7).unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "7", "replaced");
        assert_eq!(fs::read_dir(&t.0).unwrap().count(), 1, "no temporary file left");
        let e = write_pid_file(&t.0.join("missing/x.pid"), 1).unwrap_err();
        assert!(e.to_string().starts_with("writing the pid file "), "{e}");
        assert!(write_pid_file(Path::new("/"), 1).is_err());
    }

    #[test]
    fn socket_path_falls_back_to_the_dir_fd_when_too_long() {
        let t = TempDir::new("sock");
        let long = t.0.join("d".repeat(90));
        let root = StateRoot::new(&long);
        let d = root.create(&id(&"s".repeat(40))).unwrap();
        let p = d.socket_path();
        assert!(p.starts_with("/proc/self/fd/"), "{}", p.display());
        let l = d.bind_control_socket().unwrap();
        let st = fs::symlink_metadata(d.path().join(CONTROL_SOCKET)).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&st.permissions()) & 0o777,
            0o600
        );
        // It answers through the short path.
        let c = std::os::unix::net::UnixStream::connect(&p).unwrap();
        drop((c, l));
        // Binding again replaces the stale socket.
        let _l = d.bind_control_socket().unwrap();
        let short = StateRoot::new(&t.0).create(&id("short")).unwrap();
        assert_eq!(short.socket_path(), t.0.join("short").join(CONTROL_SOCKET));
    }
}
