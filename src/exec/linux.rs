//! The real backend: performs each [`Op`] with the system call it names.
//!
//! Raw calls go through [`check`], which turns a -1 return into the OS error, so
//! every failure reaches the interpreter as an `io::Error` with its errno. This
//! file makes no decisions: it is a table from op to syscall. The few ops that
//! are more than one call (sealed memfd, kvm checks, masking, read-only
//! remount that keeps locked flags) are mechanics fixed by the kernel, not
//! choices of the plan.

use std::ffi::CString;
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::backend::{Backend, CapSetKind, Forked, Op, Outcome, Spawned};
use crate::plan::NsKind;

/// Makes the system calls.
#[derive(Debug, Default)]
pub struct LinuxBackend;

/// Turns a libc-style return (-1 and errno) into an `io::Result`.
pub fn check<T: Copy + PartialOrd + From<i8>>(rc: T) -> io::Result<T> {
    if rc == T::from(-1) {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn cpath(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn cstr(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// The clone flag of a namespace kind.
pub fn ns_flag(kind: NsKind) -> libc::c_int {
    match kind {
        NsKind::User => libc::CLONE_NEWUSER,
        NsKind::Pid => libc::CLONE_NEWPID,
        NsKind::Net => libc::CLONE_NEWNET,
        NsKind::Ipc => libc::CLONE_NEWIPC,
        NsKind::Uts => libc::CLONE_NEWUTS,
        NsKind::Cgroup => libc::CLONE_NEWCGROUP,
        NsKind::Time => 0x80, // CLONE_NEWTIME
        NsKind::Mount => libc::CLONE_NEWNS,
    }
}

/// The set the launcher blocks and the supervisor waits for: INT, TERM,
/// HUP, CHLD (the CLI's foreground waits use it too).
pub fn signal_set() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it before use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, owned sigset_t.
    unsafe {
        libc::sigemptyset(&mut set);
        for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGCHLD] {
            libc::sigaddset(&mut set, s);
        }
    }
    set
}

/// Mount flags that are locked on a mount made in a less privileged user
/// namespace and so must be repeated on a remount.
/// `ST_RELATIME` from the kernel's statfs flags (musl's headers, and so the
/// `libc` crate on musl, do not name it).
const ST_RELATIME: libc::c_ulong = 0x1000;

fn locked_flags(path: &Path) -> io::Result<u64> {
    mount_flags(path).map(|(locked, _)| locked)
}

/// The flags of the mount at `path` that a user namespace locks (see
/// [`locked_flags`]), and whether it is read-only.
fn mount_flags(path: &Path) -> io::Result<(u64, bool)> {
    let c = cpath(path)?;
    // SAFETY: statvfs is plain data filled by the kernel.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid C string and `st` a valid out pointer.
    check(unsafe { libc::statvfs(c.as_ptr(), &mut st) })?;
    let mut flags = 0;
    for (st_bit, ms) in [
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (ST_RELATIME, libc::MS_RELATIME),
    ] {
        if st.f_flag & st_bit != 0 {
            flags |= ms;
        }
    }
    Ok((flags, st.f_flag & libc::ST_RDONLY != 0))
}

fn mount(source: Option<&str>, target: &Path, fstype: Option<&str>, flags: u64, data: Option<&str>) -> io::Result<()> {
    let src = source.map(cstr).transpose()?;
    let tgt = cpath(target)?;
    let fst = fstype.map(cstr).transpose()?;
    let dat = data.filter(|d| !d.is_empty()).map(cstr).transpose()?;
    let p = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: every pointer is null or a valid NUL-terminated string that
    // outlives the call.
    check(unsafe { libc::mount(p(&src), tgt.as_ptr(), p(&fst), flags, p(&dat) as *const libc::c_void) })?;
    Ok(())
}

/// Capabilities this kernel knows (the caps crate may know newer ones).
fn kernel_knows(cap: caps::Capability) -> bool {
    // SAFETY: PR_CAPBSET_READ only reads.
    unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap.index() as libc::c_ulong, 0, 0, 0) >= 0 }
}

fn caps_err(e: caps::errors::CapsError) -> io::Error {
    let last = io::Error::last_os_error();
    match last.raw_os_error() {
        Some(n) if n != 0 => last,
        _ => io::Error::other(e.to_string()),
    }
}

/// The kvm-ioctls capability of an extension the plan names.
pub(crate) fn kvm_cap(e: crate::vocab::KvmExtension) -> kvm_ioctls::Cap {
    use crate::vocab::KvmExtension as E;
    use kvm_ioctls::Cap as C;
    match e {
        E::Irqchip => C::Irqchip,
        E::Hlt => C::Hlt,
        E::UserMemory => C::UserMemory,
        E::SetTssAddr => C::SetTssAddr,
        E::ExtCpuid => C::ExtCpuid,
        E::Clocksource => C::Clocksource,
        E::NrVcpus => C::NrVcpus,
        E::NrMemslots => C::NrMemslots,
        E::Pit => C::Pit,
        E::MpState => C::MpState,
        E::CoalescedMmio => C::CoalescedMmio,
        E::SyncMmu => C::SyncMmu,
        E::Iommu => C::Iommu,
        E::UserNmi => C::UserNmi,
        E::IrqRouting => C::IrqRouting,
        E::Irqfd => C::Irqfd,
        E::Pit2 => C::Pit2,
        E::PitState2 => C::PitState2,
        E::Ioeventfd => C::Ioeventfd,
        E::SetIdentityMapAddr => C::SetIdentityMapAddr,
        E::AdjustClock => C::AdjustClock,
        E::VcpuEvents => C::VcpuEvents,
        E::Debugregs => C::Debugregs,
        E::Xsave => C::Xsave,
        E::Xcrs => C::Xcrs,
        E::TscControl => C::TscControl,
        E::TscDeadlineTimer => C::TscDeadlineTimer,
        E::MaxVcpus => C::MaxVcpus,
        E::MaxVcpuId => C::MaxVcpuId,
        E::ReadonlyMem => C::ReadonlyMem,
        E::SplitIrqchip => C::SplitIrqchip,
        E::ImmediateExit => C::ImmediateExit,
        E::SyncRegs => C::SyncRegs,
    }
}

fn open_kvm(api_version: i32, extensions: &[String]) -> io::Result<i32> {
    use std::os::fd::FromRawFd;
    let fd = kvm_ioctls::Kvm::open_with_cloexec(true).map_err(|e| io::Error::from_raw_os_error(e.errno()))?;
    // SAFETY: `fd` was just opened and is owned by nobody else; Kvm closes it on drop.
    let kvm = unsafe { kvm_ioctls::Kvm::from_raw_fd(fd) };
    let v = kvm.get_api_version();
    if v != api_version {
        return Err(io::Error::other(format!(
            "KVM API version is {v}, the plan requires {api_version}"
        )));
    }
    for e in extensions {
        let ext = crate::vocab::KvmExtension::from_name(e)
            .ok_or_else(|| io::Error::other(format!("unknown KVM extension {e}")))?;
        if !kvm.check_extension(kvm_cap(ext)) {
            return Err(io::Error::other(format!("KVM extension {e} is not available")));
        }
    }
    // Keep a close-on-exec copy; `kvm` closes the original.
    // SAFETY: fcntl on an fd we own.
    check(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) })
}

/// `statfs.f_type` of nsfs.
const NSFS_MAGIC: i64 = 0x6e73_6673;
/// `NS_GET_NSTYPE`, `_IO(0xb7, 0x3)`.
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

/// See [`Op::OpenNs`]. The path may be a link (`/proc/PID/ns/net` is one):
/// following it opens nothing, and only an nsfs file is ever opened.
fn open_ns(path: &Path, kind: NsKind) -> io::Result<i32> {
    let c = cpath(path)?;
    // SAFETY: `c` is a valid C string.
    let p = check(unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) })?;
    let r = (|| {
        // SAFETY: statfs is plain data filled by the kernel.
        let mut st: libc::statfs = unsafe { std::mem::zeroed() };
        // SAFETY: `p` is our fd and `st` a valid out pointer.
        check(unsafe { libc::fstatfs(p, &mut st) })?;
        if st.f_type as i64 != NSFS_MAGIC {
            return Err(io::Error::other(format!(
                "not a namespace file (its filesystem is of type {:#x}, not nsfs)",
                st.f_type
            )));
        }
        let again = cstr(&format!("/proc/self/fd/{p}"))?;
        let flags = libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NONBLOCK;
        // SAFETY: `again` is a valid C string.
        let fd = check(unsafe { libc::open(again.as_ptr(), flags) })?;
        // SAFETY: NS_GET_NSTYPE takes no argument.
        let t = unsafe { libc::ioctl(fd, NS_GET_NSTYPE as _) };
        let e = io::Error::last_os_error();
        if t != ns_flag(kind) {
            // SAFETY: closing the fd just opened.
            unsafe { libc::close(fd) };
            if t < 0 {
                return Err(e);
            }
            let is = NsKind::ORDER
                .iter()
                .find(|k| ns_flag(**k) == t)
                .map_or("an unknown", |k| k.proc_name());
            return Err(io::Error::other(format!(
                "a {is} namespace, not a {} namespace",
                kind.proc_name()
            )));
        }
        Ok(fd)
    })();
    // SAFETY: closing our O_PATH fd.
    unsafe { libc::close(p) };
    r
}

/// What `doctor` checks of the plan's namespace paths, without joining any:
/// each `join PATH` must open as [`Op::OpenNs`] would open it at apply.
pub fn probe_namespace_paths(plan: &crate::plan::LaunchPlan) -> Vec<super::UnmetNeed> {
    plan.namespaces
        .iter()
        .filter_map(|(kind, ns)| match &ns.value {
            crate::plan::Namespace::Join(path) => Some((kind, path, &ns.from)),
            _ => None,
        })
        .filter_map(|(kind, path, from)| match open_ns(path, kind) {
            Ok(fd) => {
                // SAFETY: closing the fd just opened.
                unsafe { libc::close(fd) };
                None
            }
            Err(e) => Some(super::UnmetNeed {
                need: format!(
                    "{} namespace to join at {}: {}",
                    kind.proc_name(),
                    path.display(),
                    super::error::error_text(&e)
                ),
                from: from.clone(),
                fix: "name an existing namespace file of that kind (a bind mount of /proc/PID/ns/KIND, or that link)"
                    .into(),
            }),
        })
        .collect()
}

fn memfd(name: &str) -> io::Result<i32> {
    let n = cstr(name)?;
    // SAFETY: `n` is a valid C string.
    check(unsafe { libc::memfd_create(n.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) })
}

/// Writes all of `data` (a pipe may take it in parts).
fn write_all(fd: i32, data: &[u8]) -> io::Result<()> {
    let mut off = 0;
    while off < data.len() {
        // SAFETY: the slice bounds the write.
        let w = unsafe { libc::write(fd, data[off..].as_ptr().cast(), data.len() - off) };
        if w < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        off += w as usize;
    }
    Ok(())
}

fn fill_sealed(fd: i32, data: &[u8]) -> io::Result<()> {
    write_all(fd, data)?;
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: fcntl on the caller's fd.
    check(unsafe { libc::fcntl(fd, libc::F_ADD_SEALS, seals) }).map(drop)
}

/// open(2), close-on-exec; a file it creates gets exactly `mode` (the umask
/// would otherwise take bits off: a 0664 log would be made 0644). With
/// `O_CREAT` and without `O_EXCL`, an exclusive create is tried first, so the
/// mode is set only on a file made here, never on one that was there.
fn open_exact(path: &Path, flags: i32, mode: u32) -> io::Result<i32> {
    let c = cpath(path)?;
    let flags = flags | libc::O_CLOEXEC;
    let open = |f: i32| {
        // SAFETY: `c` is a valid C string.
        check(unsafe { libc::open(c.as_ptr(), f, mode) })
    };
    if flags & libc::O_CREAT == 0 {
        return open(flags);
    }
    let made = match open(flags | libc::O_EXCL) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) && flags & libc::O_EXCL == 0 => {
            return open(flags & !libc::O_CREAT);
        }
        Err(e) => return Err(e),
    };
    // SAFETY: fchmod on the fd just made.
    if let Err(e) = check(unsafe { libc::fchmod(made, mode) }) {
        // SAFETY: closing the fd just made.
        unsafe { libc::close(made) };
        return Err(e);
    }
    Ok(made)
}

/// mkdir -p where each directory made gets exactly `mode` (chmod after the
/// mkdir: the umask applies to mkdir's mode); existing ones are left alone.
fn make_dirs(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut missing = Vec::new();
    let mut p = Some(path);
    while let Some(d) = p {
        match fs::metadata(d) {
            Ok(m) if m.is_dir() => break,
            Ok(_) => return Err(io::Error::from_raw_os_error(libc::ENOTDIR)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => missing.push(d),
            Err(e) => return Err(e),
        }
        p = d.parent();
    }
    for d in missing.into_iter().rev() {
        match fs::DirBuilder::new().mode(mode).create(d) {
            Ok(()) => fs::set_permissions(d, fs::Permissions::from_mode(mode))?,
            // Made meanwhile by someone else: theirs, left as it is.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A pty pair (master, slave), both close-on-exec and neither becoming the
/// caller's controlling tty.
fn open_pty() -> io::Result<(i32, i32)> {
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: posix_openpt has no memory arguments.
    let m = check(unsafe { libc::posix_openpt(flags) })?;
    let slave = (|| {
        // SAFETY: grantpt/unlockpt on the master just opened.
        check(unsafe { libc::grantpt(m) })?;
        // SAFETY: as above.
        check(unsafe { libc::unlockpt(m) })?;
        let mut name = [0 as libc::c_char; 64];
        // SAFETY: the buffer and its length are valid; ptsname_r NUL-terminates.
        let rc = unsafe { libc::ptsname_r(m, name.as_mut_ptr(), name.len()) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        // SAFETY: `name` is a NUL-terminated path.
        check(unsafe { libc::open(name.as_ptr(), flags) })
    })();
    match slave {
        Ok(s) => Ok((m, s)),
        Err(e) => {
            // SAFETY: closing our own fd.
            unsafe { libc::close(m) };
            Err(e)
        }
    }
}

/// Connects to the unix socket at `path` and sends `fd` with SCM_RIGHTS, with
/// the slave's name as the payload (as runc does).
fn send_fd(path: &Path, fd: i32) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;
    let sock = UnixStream::connect(path)?;
    let mut name = [0 as libc::c_char; 64];
    // SAFETY: valid buffer and length; on failure the payload stays empty.
    let payload: Vec<u8> = if unsafe { libc::ptsname_r(fd, name.as_mut_ptr(), name.len()) } == 0 {
        // SAFETY: ptsname_r NUL-terminated the buffer.
        unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) }.to_bytes().to_vec()
    } else {
        b"/dev/ptmx".to_vec()
    };
    let mut iov = libc::iovec {
        iov_base: payload.as_ptr() as *mut libc::c_void,
        iov_len: payload.len(),
    };
    // u64 storage keeps the control buffer aligned for cmsghdr.
    let mut cbuf = [0u64; 4];
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<i32>() as u32) } as usize;
    // SAFETY: msghdr is plain data; the fields used are set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: the control buffer (32 bytes) holds one cmsghdr with one int;
    // CMSG_FIRSTHDR/CMSG_DATA point inside it.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<i32>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<i32>(), fd);
    }
    // SAFETY: `msg` and everything it points to outlive the call.
    check(unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) }).map(drop)
}

fn loopback_up() -> io::Result<()> {
    // SAFETY: plain socket creation.
    let s = check(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: ifreq is plain data.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (i, b) in b"lo".iter().enumerate() {
        ifr.ifr_name[i] = *b as libc::c_char;
    }
    // SAFETY: `ifr` is a valid ifreq for these ioctls; `s` is our socket.
    let r = (|| unsafe {
        check(libc::ioctl(s, libc::SIOCGIFFLAGS as _, &mut ifr))?;
        ifr.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        check(libc::ioctl(s, libc::SIOCSIFFLAGS as _, &ifr))
    })();
    // SAFETY: closing our own socket.
    unsafe { libc::close(s) };
    r.map(drop)
}

// ----- resolving inside a root, binding from fds, mount attributes ---------

/// `struct open_how` of openat2(2).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_NO_SYMLINKS: u64 = 0x04;
const RESOLVE_IN_ROOT: u64 = 0x10;

/// openat2(2), close-on-exec, with `resolve` (RESOLVE_* flags).
fn openat2(dirfd: i32, path: &std::ffi::CStr, flags: i32, resolve: u64) -> io::Result<i32> {
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve,
    };
    // SAFETY: valid C string and open_how of the size passed.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dirfd,
            path.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    check(fd).map(|fd| fd as i32)
}

/// `path` resolved inside `dirfd` (RESOLVE_IN_ROOT: `..`, absolute links and
/// `/` all stop at `dirfd`; no magic links).
fn openat2_in_root(dirfd: i32, path: &std::ffi::CStr, flags: i32) -> io::Result<i32> {
    openat2(dirfd, path, flags, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
}

/// An absolute `path` opened with RESOLVE_NO_SYMLINKS: ELOOP when any
/// component is a symbolic link.
fn open_no_symlinks(path: &Path, flags: i32) -> io::Result<i32> {
    openat2(
        libc::AT_FDCWD,
        &cpath(path)?,
        flags,
        RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    )
}

/// An fd closed on drop (the helpers' own temporaries).
struct Owned(i32);

impl Drop for Owned {
    fn drop(&mut self) {
        // SAFETY: closing an fd this helper opened and nobody else holds.
        unsafe { libc::close(self.0) };
    }
}

/// `path` relative to the root (leading `/` removed, `.` for the root).
fn rel_in_root(path: &Path) -> io::Result<CString> {
    let rel = path.strip_prefix("/").unwrap_or(path);
    if rel.as_os_str().is_empty() {
        return cstr(".");
    }
    cpath(rel)
}

/// The directory `dir` inside the root, made (0755) where missing, one
/// name at a time in a directory already resolved inside the root.
fn dir_in_root(root: i32, dir: &Path) -> io::Result<Owned> {
    let c = rel_in_root(dir)?;
    match openat2_in_root(root, &c, libc::O_PATH | libc::O_DIRECTORY) {
        Ok(fd) => Ok(Owned(fd)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
            let (parent, name) = split_last(dir)?;
            let pfd = dir_in_root(root, parent)?;
            let rc = mkdir_at(&pfd, &name);
            if rc != 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EEXIST) {
                return Err(io::Error::last_os_error());
            }
            openat2_in_root(root, &c, libc::O_PATH | libc::O_DIRECTORY).map(Owned)
        }
        Err(e) => Err(e),
    }
}

/// mkdirat(2) of a single name (0755) under a directory already inside the root.
fn mkdir_at(parent: &Owned, name: &std::ffi::CStr) -> i32 {
    // SAFETY: a valid fd and C string; mkdirat never follows a link at the name.
    unsafe { libc::mkdirat(parent.0, name.as_ptr(), 0o755) }
}

/// The parent of `p` and its last name, which must be a plain name.
fn split_last(p: &Path) -> io::Result<(&Path, CString)> {
    match (p.parent(), p.components().next_back()) {
        (Some(parent), Some(std::path::Component::Normal(n))) => Ok((parent, cpath(Path::new(n))?)),
        _ => Err(io::Error::from_raw_os_error(libc::EINVAL)),
    }
}

/// [`Op::OpenInRoot`](super::backend::Op::OpenInRoot).
fn open_in_root(root: i32, path: &Path, make: super::backend::Make) -> io::Result<i32> {
    use super::backend::Make;
    let c = rel_in_root(path)?;
    let dir = |fd: i32| -> io::Result<bool> {
        // SAFETY: fstat into a zeroed stat of our own.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: valid fd and out pointer.
        check(unsafe { libc::fstat(fd, &mut st) })?;
        Ok(st.st_mode & libc::S_IFMT == libc::S_IFDIR)
    };
    if !matches!(make, Make::Node { .. }) {
        match openat2_in_root(root, &c, libc::O_PATH) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) && make != Make::Nothing => {}
            Ok(fd) => {
                let fd = Owned(fd);
                if let Make::Like(src) = make {
                    let (is, want) = (dir(fd.0)?, dir(src.raw)?);
                    if is != want {
                        let kind = |d: bool| if d { "a directory" } else { "not a directory" };
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidInput,
                            format!(
                                "{} inside the root is {}, the source is {} (EINVAL)",
                                path.display(),
                                kind(is),
                                kind(want)
                            ),
                        ));
                    }
                }
                let raw = fd.0;
                std::mem::forget(fd);
                return Ok(raw);
            }
            Err(e) => return Err(e),
        }
    }
    let (parent, name) = split_last(path)?;
    let pfd = dir_in_root(root, parent)?;
    let tolerate = |rc: i32| {
        if rc < 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EEXIST) {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    };
    match make {
        Make::Nothing => return Err(io::Error::from_raw_os_error(libc::ENOENT)),
        Make::Dir => tolerate(mkdir_at(&pfd, &name))?,
        Make::Like(src) if dir(src.raw)? => tolerate(mkdir_at(&pfd, &name))?,
        Make::Like(_) => {
            let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
            // SAFETY: a valid fd and C string: a single name under a
            // directory inside the root; O_EXCL|O_NOFOLLOW never follow a link.
            let fd = unsafe { libc::openat(pfd.0, name.as_ptr(), flags, 0o644) };
            tolerate(fd)?;
            if fd >= 0 {
                drop(Owned(fd));
            }
        }
        Make::Node {
            kind,
            mode,
            major,
            minor,
        } => {
            let t = if kind == crate::plan::DeviceKind::Char {
                libc::S_IFCHR
            } else {
                libc::S_IFBLK
            };
            let dev = libc::makedev(major as u32, minor as u32);
            // SAFETY: a valid fd and C string: a single name under a
            // directory inside the root; mknodat never follows a link, and an
            // existing entry is an error (EEXIST).
            check(unsafe { libc::mknodat(pfd.0, name.as_ptr(), t | mode, dev) })?;
        }
    }
    openat2_in_root(root, &c, libc::O_PATH)
}

/// The path an fd resolves to (readlink of /proc/self/fd/N).
fn fd_path(fd: i32) -> io::Result<std::path::PathBuf> {
    fs::read_link(format!("/proc/self/fd/{fd}"))
}

/// [`Op::OpenBindSource`](super::backend::Op::OpenBindSource).
fn open_bind_source(path: &Path, within: Option<&Path>) -> io::Result<i32> {
    let c = cpath(path)?;
    // SAFETY: valid C string.
    let fd = Owned(check(unsafe {
        libc::open(c.as_ptr(), libc::O_PATH | libc::O_CLOEXEC)
    })?);
    if let Some(within) = within {
        let w = cpath(within)?;
        // SAFETY: valid C string.
        let wfd = Owned(check(unsafe {
            libc::open(w.as_ptr(), libc::O_PATH | libc::O_CLOEXEC)
        })?);
        let (real, allowed) = (fd_path(fd.0)?, fd_path(wfd.0)?);
        if !real.starts_with(&allowed) {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{} resolves to {}, outside the allowed host path {} (EACCES)",
                    path.display(),
                    real.display(),
                    allowed.display()
                ),
            ));
        }
    }
    let raw = fd.0;
    std::mem::forget(fd);
    Ok(raw)
}

/// Whether `path` is the host node of `kind major:minor`, by the same check
/// [`Op::OpenDevice`] makes at apply (for
/// `sandboxctl doctor`).
pub fn check_device(path: &Path, kind: crate::plan::DeviceKind, major: u64, minor: u64) -> io::Result<()> {
    open_device(path, kind, major, minor).map(|fd| drop(Owned(fd)))
}

/// [`Op::OpenDevice`](super::backend::Op::OpenDevice).
fn open_device(path: &Path, kind: crate::plan::DeviceKind, major: u64, minor: u64) -> io::Result<i32> {
    let c = cpath(path)?;
    // SAFETY: valid C string.
    let fd = Owned(check(unsafe {
        libc::open(c.as_ptr(), libc::O_PATH | libc::O_CLOEXEC)
    })?);
    // SAFETY: fstat into a zeroed stat of our own.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and out pointer.
    check(unsafe { libc::fstat(fd.0, &mut st) })?;
    let want = if kind == crate::plan::DeviceKind::Char {
        libc::S_IFCHR
    } else {
        libc::S_IFBLK
    };
    let (maj, min) = (libc::major(st.st_rdev) as u64, libc::minor(st.st_rdev) as u64);
    if st.st_mode & libc::S_IFMT != want || (maj, min) != (major, minor) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} is not the device {} {major}:{minor} (it is {}) (ENODEV)",
                path.display(),
                if want == libc::S_IFCHR { "c" } else { "b" },
                match st.st_mode & libc::S_IFMT {
                    libc::S_IFCHR => format!("c {maj}:{min}"),
                    libc::S_IFBLK => format!("b {maj}:{min}"),
                    libc::S_IFDIR => "a directory".into(),
                    libc::S_IFLNK => "a symlink".into(),
                    _ => "not a device node".into(),
                }
            ),
        ));
    }
    let raw = fd.0;
    std::mem::forget(fd);
    Ok(raw)
}

const OPEN_TREE_CLONE: u32 = 1;
const MOVE_MOUNT_F_EMPTY_PATH: u32 = 0x04;
const MOVE_MOUNT_T_EMPTY_PATH: u32 = 0x40;
const MOUNT_ATTR_RDONLY: u64 = 0x01;
const MOUNT_ATTR_NOSUID: u64 = 0x02;
const MOUNT_ATTR_NODEV: u64 = 0x04;
const MOUNT_ATTR_NOEXEC: u64 = 0x08;
const MOUNT_ATTR__ATIME: u64 = 0x70;
const MOUNT_ATTR_RELATIME: u64 = 0x00;
const MOUNT_ATTR_NOATIME: u64 = 0x10;
const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
const MOUNT_ATTR_NODIRATIME: u64 = 0x80;

/// `struct mount_attr` of mount_setattr(2).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `MS_*` flags as mount_setattr attributes (set, clear). An atime mode
/// clears the others.
fn mount_attrs(set: u64, clear: u64) -> (u64, u64) {
    let map = |f: u64| {
        let mut a = 0;
        for (ms, attr) in [
            (libc::MS_RDONLY, MOUNT_ATTR_RDONLY),
            (libc::MS_NOSUID, MOUNT_ATTR_NOSUID),
            (libc::MS_NODEV, MOUNT_ATTR_NODEV),
            (libc::MS_NOEXEC, MOUNT_ATTR_NOEXEC),
            (libc::MS_NODIRATIME, MOUNT_ATTR_NODIRATIME),
        ] {
            if f & ms != 0 {
                a |= attr;
            }
        }
        a
    };
    let (mut s, mut c) = (map(set), map(clear));
    for (ms, attr) in [
        (libc::MS_NOATIME, MOUNT_ATTR_NOATIME),
        (libc::MS_STRICTATIME, MOUNT_ATTR_STRICTATIME),
        (libc::MS_RELATIME, MOUNT_ATTR_RELATIME),
    ] {
        if set & ms != 0 {
            s |= attr;
            c |= MOUNT_ATTR__ATIME;
        }
    }
    (s, c)
}

/// Whether an error is the kernel lacking a call (before Linux 5.12 for
/// mount_setattr).
fn is_enosys(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOSYS)
}

/// mount_setattr(2) of `MS_*`-named attributes on the mount at `dirfd`/`path`.
/// Fault-injection builds can make it fail with ENOSYS
/// (`SANDBOXCTL_NO_MOUNT_SETATTR`), as on a kernel without it, to test the
/// fallback ([`remount_tree`]).
fn mount_setattr(dirfd: i32, path: &std::ffi::CStr, set: u64, clear: u64, recursive: bool) -> io::Result<()> {
    let (attr_set, attr_clr) = mount_attrs(set, clear);
    if attr_set == 0 && attr_clr == 0 {
        return Ok(());
    }
    #[cfg(feature = "fault-injection")]
    if std::env::var_os("SANDBOXCTL_NO_MOUNT_SETATTR").is_some() {
        return Err(io::Error::from_raw_os_error(libc::ENOSYS));
    }
    let attr = MountAttr {
        attr_set,
        attr_clr,
        propagation: 0,
        userns_fd: 0,
    };
    let mut flags = if path.is_empty() { libc::AT_EMPTY_PATH } else { 0 };
    if recursive {
        flags |= libc::AT_RECURSIVE;
    }
    // SAFETY: valid C string and mount_attr of the size passed.
    check(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            dirfd,
            path.as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })
    .map(drop)
}

/// [`Op::BindAt`](super::backend::Op::BindAt).
fn bind_at(source: i32, target: i32, recursive: bool, flags: u64) -> io::Result<()> {
    let empty = c"";
    let mut how = OPEN_TREE_CLONE | libc::O_CLOEXEC as u32 | libc::AT_EMPTY_PATH as u32;
    if recursive {
        how |= libc::AT_RECURSIVE as u32;
    }
    // SAFETY: an fd and the empty string.
    let tree = Owned(check(unsafe { libc::syscall(libc::SYS_open_tree, source, empty.as_ptr(), how) })? as i32);
    // Every mount of the copy, before it is attached anywhere.
    let fallback = match mount_setattr(tree.0, empty, flags, 0, true) {
        Err(e) if is_enosys(&e) => true,
        other => other.map(|()| false)?,
    };
    // SAFETY: two fds and empty strings.
    check(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.0,
            empty.as_ptr(),
            target,
            empty.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    })?;
    if fallback {
        // Attached without its flags until this walk, before the workload exists.
        remount_tree(&fd_path(target)?, flags, 0, true)?;
    }
    Ok(())
}

/// [`Op::ExecSelf`](super::backend::Op::ExecSelf): returns only on failure,
/// with the capability sets as they were.
fn exec_self(exe: i32, handover: i32, keep: &[i32]) -> io::Error {
    let permitted = match caps::read(None, caps::CapSet::Permitted) {
        Ok(p) => p,
        Err(e) => return caps_err(e),
    };
    let inheritable = caps::read(None, caps::CapSet::Inheritable).unwrap_or_default();
    let restore = |e: io::Error| {
        let _ = caps::clear(None, caps::CapSet::Ambient);
        let _ = caps::set(None, caps::CapSet::Inheritable, &inheritable);
        e
    };
    if let Err(e) = caps::set(None, caps::CapSet::Inheritable, &permitted) {
        return restore(caps_err(e));
    }
    for c in &permitted {
        if let Err(e) = caps::raise(None, caps::CapSet::Ambient, *c) {
            return restore(caps_err(e));
        }
    }
    for fd in keep {
        // SAFETY: F_SETFD with an integer argument on an fd of ours.
        if let Err(e) = check(unsafe { libc::fcntl(*fd, libc::F_SETFD, 0) }) {
            return restore(e);
        }
    }
    let argv0 = match CString::new(super::interp::SUPERVISOR_ARGV0) {
        Ok(a) => a,
        Err(e) => return restore(io::Error::new(io::ErrorKind::InvalidInput, e)),
    };
    let arg1 = match CString::new(handover.to_string()) {
        Ok(a) => a,
        Err(e) => return restore(io::Error::new(io::ErrorKind::InvalidInput, e)),
    };
    let argv = [argv0.as_ptr(), arg1.as_ptr(), std::ptr::null()];
    let empty = c"";
    extern "C" {
        static environ: *const *const libc::c_char;
    }
    // SAFETY: valid fd, empty path with AT_EMPTY_PATH, NULL-terminated
    // argv of live C strings, and the process's own environment.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            exe,
            empty.as_ptr(),
            argv.as_ptr(),
            environ,
            libc::AT_EMPTY_PATH,
        )
    };
    let e = io::Error::last_os_error();
    for fd in keep {
        // SAFETY: as above.
        unsafe { libc::fcntl(*fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    restore(e)
}

/// [`Op::BindOntoItself`](super::backend::Op::BindOntoItself): a recursive
/// copy of the mount tree at `fd`, attached over the directory `fd` names;
/// returns the copy's fd (its root, now attached). No path is walked, so
/// the caller needs no search permission above the directory.
fn bind_onto_itself(fd: i32) -> io::Result<i32> {
    let empty = c"";
    let how = OPEN_TREE_CLONE | libc::O_CLOEXEC as u32 | libc::AT_EMPTY_PATH as u32 | libc::AT_RECURSIVE as u32;
    // SAFETY: an fd and the empty string.
    let tree = Owned(check(unsafe { libc::syscall(libc::SYS_open_tree, fd, empty.as_ptr(), how) })? as i32);
    // SAFETY: two fds and empty strings.
    check(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.0,
            empty.as_ptr(),
            fd,
            empty.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    })?;
    let raw = tree.0;
    std::mem::forget(tree);
    Ok(raw)
}

/// Sets `MS_*`-named attributes on every mount at (and, when `recursive`,
/// under) the mount at `path`, or falls back to [`remount_tree`] on a
/// kernel without mount_setattr.
fn set_mount_attr(path: &Path, set: u64, clear: u64, recursive: bool) -> io::Result<()> {
    let c = cpath(path)?;
    match mount_setattr(libc::AT_FDCWD, &c, set, clear, recursive) {
        // The fallback walks mountinfo by path: an fd's path is its target.
        Err(e) if is_enosys(&e) && path.starts_with("/proc/self/fd") => {
            remount_tree(&fs::read_link(path)?, set, clear, recursive)
        }
        Err(e) if is_enosys(&e) => remount_tree(path, set, clear, recursive),
        other => other,
    }
}

/// The fallback for mount_setattr: a bind remount of the mount at `path`
/// and, when `recursive`, of every mount under it listed in
/// /proc/self/mountinfo, each keeping the flags a user namespace locks
/// (and its read-only state, unless `set` or `clear` changes it).
fn remount_tree(path: &Path, set: u64, clear: u64, recursive: bool) -> io::Result<()> {
    let base = if path.is_absolute() {
        crate::policy::normalize(path)
    } else {
        crate::policy::normalize(&std::env::current_dir()?.join(path))
    };
    let info = fs::read_to_string("/proc/self/mountinfo")?;
    let mut points: Vec<std::path::PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mountinfo)
        .filter(|p| *p == base || (recursive && p.starts_with(&base)))
        .collect();
    points.dedup();
    let atime = libc::MS_NOATIME | libc::MS_RELATIME | libc::MS_STRICTATIME;
    let attrs = libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC | libc::MS_NODIRATIME | atime;
    for p in points {
        let (mut keep, ro) = mount_flags(&p)?;
        if set & atime != 0 {
            keep &= !atime;
        }
        let mut flags = (keep | (set & attrs)) & !clear;
        if ro && clear & libc::MS_RDONLY == 0 {
            flags |= libc::MS_RDONLY;
        }
        mount(None, &p, None, libc::MS_BIND | libc::MS_REMOUNT | flags, None)?;
    }
    Ok(())
}

/// A mount point as /proc/self/mountinfo writes it (`\040` for a space).
fn unescape_mountinfo(field: &str) -> std::path::PathBuf {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b
            .get(i + 1..i + 4)
            .filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match oct {
            Some(d) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    let s: std::ffi::OsString = std::os::unix::ffi::OsStringExt::from_vec(out);
    std::path::PathBuf::from(s)
}

fn mask_path(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
        Ok(m) if m.is_dir() => mount(
            Some("tmpfs"),
            path,
            Some("tmpfs"),
            libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            Some("size=0,mode=555"),
        ),
        Ok(_) => mount(Some("/dev/null"), path, None, libc::MS_BIND, None),
    }
}

/// Set by the vfork child just before each `execve`, cleared when it
/// returns: still set when the parent resumes means the child's last act was
/// the `execve` (the parent, suspended until then, reads it first).
static AT_EXEC: AtomicBool = AtomicBool::new(false);

/// Allocates nothing: runs in the vfork child after its seccomp filter.
fn exec(p: &super::backend::PreparedExec) -> io::Error {
    let mut last = io::Error::from_raw_os_error(libc::ENOENT);
    for c in &p.candidates {
        AT_EXEC.store(true, Ordering::SeqCst);
        // SAFETY: argv and envp are NULL-terminated arrays of valid C strings
        // that live until execve returns (it returns only on failure).
        unsafe { libc::execve(c.as_ptr(), p.argv_ptr(), p.envp_ptr()) };
        AT_EXEC.store(false, Ordering::SeqCst);
        last = io::Error::last_os_error();
        if !matches!(last.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) {
            break;
        }
    }
    last
}

fn wait_status(status: libc::c_int) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        255
    }
}

/// Stack for a [`LinuxBackend::spawn`] child (the workload's steps up to
/// exec), above one guard page. Only the pages it touches are ever faulted in.
const SPAWN_STACK: usize = 256 * 1024;
const GUARD: usize = 4096;

/// Where a spawned child starts: `arg` is the `&mut dyn FnMut` that
/// [`LinuxBackend::spawn`] passed. It never returns: `child` ends in exec or
/// `_exit` (its `Infallible` result cannot exist).
#[allow(unreachable_code)]
extern "C" fn spawn_entry(arg: *mut libc::c_void) -> libc::c_int {
    // First of all: this child shares the supervisor's heap, and must never
    // take its allocator's lock (see `crate::alloc`).
    crate::alloc::enter_child();
    // SAFETY: `arg` points at the `&mut dyn FnMut` on the parent's stack,
    // which stays valid: the parent is suspended (CLONE_VFORK) until this
    // child execs or exits, and this child shares its memory (CLONE_VM).
    let child = unsafe { &mut *arg.cast::<&mut dyn FnMut() -> std::convert::Infallible>() };
    match child() {}
}

impl Backend for LinuxBackend {
    fn forks(&self) -> bool {
        true
    }

    fn spawn(child: &mut dyn FnMut() -> std::convert::Infallible) -> io::Result<Spawned> {
        let len = SPAWN_STACK + GUARD;
        // SAFETY: a fresh private anonymous mapping; nothing else refers to it.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        AT_EXEC.store(false, Ordering::SeqCst);
        // SAFETY: the lowest page of our own mapping becomes the guard.
        let r = check(unsafe { libc::mprotect(base, GUARD, libc::PROT_NONE) }).and_then(|_| {
            let mut child = child;
            // SAFETY: the child runs `spawn_entry` on the new stack (its top;
            // x86-64 stacks grow down) with a pointer to `child`. With
            // CLONE_VM|CLONE_VFORK this process is suspended until the child
            // execs or exits, so the child is the only one using our memory
            // meanwhile, and it never returns into our frames: `child` ends in
            // exec or _exit. No other threads exist to be disturbed.
            check(unsafe {
                libc::clone(
                    spawn_entry,
                    base.cast::<u8>().add(len).cast(),
                    libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
                    (&mut child as *mut &mut dyn FnMut() -> std::convert::Infallible).cast(),
                )
            })
        });
        // Resumed: the child has exec'd or died. Back to our own allocator
        // before anything else (the child switched it to its arena).
        crate::alloc::leave_child();
        let reached_exec = AT_EXEC.load(Ordering::SeqCst);
        // SAFETY: the child has exec'd or exited: the stack is no longer used.
        unsafe { libc::munmap(base, len) };
        r.map(|pid| Spawned { pid, reached_exec })
    }

    fn perform(&mut self, op: &Op) -> io::Result<Outcome> {
        use Op::*;
        let done = Ok(Outcome::Done);
        match op {
            MkdirAll { path } => mkdir_all(path).map(Outcome::Made),
            MakeDirs { path, mode } => make_dirs(path, *mode).and(done),
            Mkdir { path, mode } => fs::DirBuilder::new().mode(*mode).create(path).and(done),
            WriteFile { path, data } => {
                let mut f = fs::OpenOptions::new().write(true).open(path)?;
                f.write_all(data.as_bytes()).and(done)
            }
            CreateState { path, record, .. } => create_state(path, record).map(Outcome::Fd),
            WritePid { fd, proc } => {
                let text = crate::exec::state::supervisor_line(proc.pid);
                // SAFETY: writes `text`'s bytes, which live across the call, to an fd.
                let n = check(unsafe { libc::write(fd.raw, text.as_ptr().cast(), text.len()) })?;
                if n as usize == text.len() {
                    Ok(Outcome::Done)
                } else {
                    Err(io::Error::new(io::ErrorKind::WriteZero, "short write"))
                }
            }
            JoinCgroup { fd, .. } => {
                // SAFETY: writes one byte from a static buffer to an fd.
                let n = check(unsafe { libc::write(fd.raw, b"0".as_ptr().cast(), 1) })?;
                if n == 1 {
                    Ok(Outcome::Done)
                } else {
                    Err(io::Error::new(io::ErrorKind::WriteZero, "short write"))
                }
            }
            WriteProcFile { proc, name, data } => {
                let mut f = fs::OpenOptions::new()
                    .write(true)
                    .open(format!("/proc/{}/{name}", proc.pid))?;
                f.write_all(data.as_bytes()).and(done)
            }
            Rmdir { path } => {
                let start = Instant::now();
                loop {
                    match fs::remove_dir(path) {
                        Ok(()) => return done,
                        // A cgroup whose last tasks are still exiting is busy
                        // for a moment; one with child cgroups (a shared
                        // parent another sandbox uses) stays busy: no wait.
                        Err(e)
                            if e.raw_os_error() == Some(libc::EBUSY)
                                && start.elapsed() < Duration::from_secs(2)
                                && !has_subdirectory(path) =>
                        {
                            std::thread::sleep(Duration::from_micros(500))
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            Unlink { path } => fs::remove_file(path).and(done),
            ReadFile { path } => fs::read(path).map(Outcome::Bytes),
            Open { path, flags, mode, .. } => open_exact(path, *flags, *mode).map(Outcome::Fd),
            OpenRootDir { path, .. } => open_no_symlinks(path, libc::O_PATH | libc::O_DIRECTORY).map(Outcome::Fd),
            BindOntoItself { fd, .. } => bind_onto_itself(fd.raw).map(Outcome::Fd),
            ExecSelf { exe, handover, keep } => Err(exec_self(exe.raw, handover.raw, keep)),
            SymlinkAt { dir, name, target } => {
                let (n, t) = (cpath(Path::new(name))?, cpath(target)?);
                // SAFETY: two valid C strings and an fd.
                match check(unsafe { libc::symlinkat(t.as_ptr(), dir.raw, n.as_ptr()) }) {
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) => done,
                    r => r.and(done),
                }
            }
            OpenNs { path, kind, .. } => open_ns(path, *kind).map(Outcome::Fd),
            SocketPair { .. } => {
                let mut fds = [0; 2];
                // SAFETY: `fds` is a valid out array of two ints.
                check(unsafe {
                    libc::socketpair(
                        libc::AF_UNIX,
                        libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                        0,
                        fds.as_mut_ptr(),
                    )
                })?;
                Ok(Outcome::Pair(fds[0], fds[1]))
            }
            Pipe { .. } => {
                let mut fds = [0; 2];
                // SAFETY: `fds` is a valid out array of two ints.
                check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
                Ok(Outcome::Pair(fds[0], fds[1]))
            }
            Memfd { name, .. } => memfd(name).map(Outcome::Fd),
            FillSealed { fd, data } => fill_sealed(fd.raw, data).and(done),
            OpenPty => open_pty().map(|(m, s)| Outcome::Pair(m, s)),
            TtyRaw { fd } => Ok(match super::pty::make_raw(fd.raw)? {
                Some(saved) => Outcome::Bytes(saved),
                None => Outcome::Done,
            }),
            TtyRestore { fd, saved } => super::pty::restore(fd.raw, saved).and(done),
            CopyWinsize { master } => super::pty::copy_winsize(master.raw).and(done),
            RelayPty { master, stdin } => super::pty::relay(master.raw, *stdin),
            DrainPty { master } => super::pty::drain(master.raw).and(done),
            SendFd { path, fd } => send_fd(path, fd.raw).and(done),
            OpenKvm {
                api_version,
                extensions,
                ..
            } => open_kvm(*api_version, extensions).map(Outcome::Fd),
            Close { fd } => {
                // SAFETY: closing an fd the interpreter owns.
                check(unsafe { libc::close(fd.raw) }).and(done)
            }
            DupHigh { fd, min } => {
                // SAFETY: fcntl on an fd the interpreter owns.
                check(unsafe { libc::fcntl(fd.raw, libc::F_DUPFD_CLOEXEC, *min) }).map(Outcome::Fd)
            }
            Dup2 { from, to } => {
                // SAFETY: dup2 on fds the interpreter owns; `to` is planned.
                check(unsafe { libc::dup2(from.raw, *to) })?;
                // dup2 onto the same number keeps close-on-exec: clear it.
                // SAFETY: fcntl on the fd just made.
                check(unsafe { libc::fcntl(*to, libc::F_SETFD, 0) }).and(done)
            }
            CloseAllExcept { keep } => {
                let mut keep = keep.clone();
                keep.sort_unstable();
                let mut lo: u32 = 0;
                for k in keep.iter().map(|k| *k as u32) {
                    if k > lo {
                        // SAFETY: closes a range of this process's fds; none is in use by Rust objects.
                        check(unsafe { libc::syscall(libc::SYS_close_range, lo, k - 1, 0) })?;
                    }
                    lo = k + 1;
                }
                // SAFETY: as above.
                check(unsafe { libc::syscall(libc::SYS_close_range, lo, u32::MAX, 0) }).and(done)
            }
            SetNs { fd, kind } => {
                // SAFETY: setns on an open namespace fd.
                check(unsafe { libc::setns(fd.raw, ns_flag(*kind)) }).and(done)
            }
            Unshare { kinds } => {
                let flags = kinds.iter().fold(0, |a, k| a | ns_flag(*k));
                // SAFETY: unshare has no memory arguments.
                check(unsafe { libc::unshare(flags) }).and(done)
            }
            BlockSignals => {
                let set = signal_set();
                // SAFETY: valid set pointer, null old set.
                check(unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) }).and(done)
            }
            UnblockSignals => {
                let set = signal_set();
                // SAFETY: valid set pointer, null old set.
                check(unsafe { libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) }).and(done)
            }
            ResetSignals => {
                // SAFETY: sigset_t is plain data; sigemptyset initialises it.
                let mut empty: libc::sigset_t = unsafe { std::mem::zeroed() };
                // SAFETY: valid pointers; SIG_DFL is a valid disposition.
                unsafe {
                    libc::sigemptyset(&mut empty);
                    check(libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut()))?;
                    libc::signal(libc::SIGPIPE, libc::SIG_DFL);
                }
                done
            }
            Clone { new, .. } => {
                let flags = new.iter().fold(libc::SIGCHLD, |a, k| a | ns_flag(*k)) as libc::c_ulong;
                // SAFETY: clone without CLONE_VM and with a null stack behaves
                // like fork: the child gets a copy of the address space. The
                // launcher has no other threads.
                let pid = check(unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) })?;
                Ok(Outcome::Forked(if pid == 0 {
                    Forked::Child
                } else {
                    Forked::Parent(pid as i32)
                }))
            }
            Release { fd } => {
                // SAFETY: one-byte write from a valid buffer.
                check(unsafe { libc::write(fd.raw, b"g".as_ptr().cast(), 1) }).and(done)
            }
            AwaitRelease { fd } => {
                let mut b = [0u8; 1];
                loop {
                    // SAFETY: one-byte read into a valid buffer.
                    let n = unsafe { libc::read(fd.raw, b.as_mut_ptr().cast(), 1) };
                    match n {
                        1 => return done,
                        0 => return Err(io::Error::from_raw_os_error(libc::EPIPE)),
                        _ if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) => continue,
                        _ => return Err(io::Error::last_os_error()),
                    }
                }
            }
            Yield => {
                // SAFETY: sched_yield has no arguments and cannot fail on Linux.
                unsafe { libc::sched_yield() };
                done
            }
            AwaitEof { fd } => {
                let mut out = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    // SAFETY: read into a valid buffer.
                    let n = unsafe { libc::read(fd.raw, buf.as_mut_ptr().cast(), buf.len()) };
                    match n {
                        0 => return Ok(Outcome::Bytes(out)),
                        n if n > 0 => out.extend_from_slice(&buf[..n as usize]),
                        _ if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) => continue,
                        _ => return Err(io::Error::last_os_error()),
                    }
                }
            }
            SendFilters { fd, data, .. } => write_all(fd.raw, data).and(done),
            SendReport { fd, data } => {
                // SAFETY: write from a valid buffer.
                check(unsafe { libc::write(fd.raw, data.as_ptr().cast(), data.len()) }).and(done)
            }
            RecvReport { fd } => {
                let mut out = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    // SAFETY: recv into a valid buffer; MSG_DONTWAIT keeps a
                    // socket from blocking (pipes ignore flags via read below).
                    let n = unsafe { libc::recv(fd.raw, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
                    let n = if n < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOTSOCK) {
                        // SAFETY: read into a valid buffer.
                        unsafe { libc::read(fd.raw, buf.as_mut_ptr().cast(), buf.len()) }
                    } else {
                        n
                    };
                    match n {
                        0 => break,
                        n if n > 0 => {
                            out.extend_from_slice(&buf[..n as usize]);
                            if out.starts_with(b"{") && out.ends_with(b"}") {
                                break;
                            }
                        }
                        _ => match io::Error::last_os_error().raw_os_error() {
                            Some(libc::EINTR) => continue,
                            Some(libc::EAGAIN) => break,
                            _ => return Err(io::Error::last_os_error()),
                        },
                    }
                }
                Ok(Outcome::Bytes(out))
            }
            WaitSignal => {
                let set = signal_set();
                loop {
                    // SAFETY: valid set; null info.
                    let s = unsafe { libc::sigwaitinfo(&set, std::ptr::null_mut()) };
                    if s >= 0 {
                        return Ok(Outcome::Signal(s));
                    }
                    let e = io::Error::last_os_error();
                    if e.raw_os_error() != Some(libc::EINTR) {
                        return Err(e);
                    }
                }
            }
            Reap { proc } => {
                let mut status = 0;
                // SAFETY: valid status pointer.
                let pid = check(unsafe { libc::waitpid(proc.pid, &mut status, libc::WNOHANG) })?;
                Ok(Outcome::Reaped((pid > 0).then(|| (pid, wait_status(status)))))
            }
            WaitExit { proc } => {
                let mut status = 0;
                loop {
                    // SAFETY: valid status pointer.
                    let pid = unsafe { libc::waitpid(proc.pid, &mut status, 0) };
                    if pid >= 0 {
                        return Ok(Outcome::Reaped(Some((pid, wait_status(status)))));
                    }
                    let e = io::Error::last_os_error();
                    if e.raw_os_error() != Some(libc::EINTR) {
                        return Err(e);
                    }
                }
            }
            Kill { proc, signal } => {
                // SAFETY: kill has no memory arguments.
                check(unsafe { libc::kill(proc.pid, *signal) }).and(done)
            }
            Spawn { .. } => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "spawn is performed by Backend::spawn",
            )),
            Exit { code } => {
                // SAFETY: _exit ends the child without running the parent's
                // destructors or atexit handlers.
                unsafe { libc::_exit(*code) }
            }
            CreateSandboxDir { root, id, .. } => lifecycle::create_dir(root, id).map(Outcome::Fd),
            BindControlSocket { dir, path, .. } => lifecycle::bind(dir.raw, path).map(Outcome::Fd),
            WriteStateFile { dir, path, name, data } => lifecycle::write(dir.raw, path, name, data).and(done),
            WriteRecord { dir, path, record, pid } => lifecycle::write_record(dir.raw, path, record, *pid).and(done),
            WritePidFile { path, pid } => crate::exec::control::state::write_pid_file(path, *pid)
                .map_err(|e| io::Error::other(e.to_string()))
                .and(done),
            SendMark { fd, mark } => {
                // SAFETY: one-byte write from a valid buffer.
                check(unsafe { libc::write(fd.raw, std::ptr::from_ref(mark).cast(), 1) }).and(done)
            }
            AwaitMark {
                fd, proc, timeout_ms, ..
            } => lifecycle::await_mark(fd.raw, proc.pid, *timeout_ms).map(Outcome::Bytes),
            AwaitCommit { fd, mark } => lifecycle::await_commit(fd.raw, *mark).and(done),
            AwaitServing { path, proc, timeout_ms } => lifecycle::await_serving(path, proc.pid, *timeout_ms).and(done),
            ClearDeathSignal => {
                // SAFETY: prctl with integer arguments.
                check(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, 0 as libc::c_ulong, 0, 0, 0) }).and(done)
            }
            SignalFd { .. } => {
                let set = signal_set();
                // SAFETY: a valid set; -1 makes a new signalfd.
                check(unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) }).map(Outcome::Fd)
            }
            RunHook {
                hook, state, inside, ..
            } => super::hooks::run(hook, state, inside.as_deref()).and(done),
            Serve { .. } => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "serving is the control half's loop, not an op",
            )),
            OpenPtyIn { ptmx } => {
                let c = cpath(ptmx)?;
                // SAFETY: a valid C string.
                let m = check(unsafe { libc::open(c.as_ptr(), libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) })?;
                let unlock: libc::c_int = 0;
                // SAFETY: TIOCSPTLCK takes a pointer to an int; TIOCGPTPEER an open flag.
                let sl = check(unsafe { libc::ioctl(m, libc::TIOCSPTLCK, &unlock) }).and_then(|_| {
                    // SAFETY: TIOCGPTPEER takes open flags and returns a new fd.
                    check(unsafe { libc::ioctl(m, libc::TIOCGPTPEER, libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) })
                });
                match sl {
                    Ok(sl) => Ok(Outcome::Pair(m, sl)),
                    Err(e) => {
                        // SAFETY: closing the master just opened.
                        unsafe { libc::close(m) };
                        Err(e)
                    }
                }
            }
            ShedMemory => {
                crate::alloc::trim();
                shed_stack();
                done
            }
            RemoveSandboxDir { path } => fs::remove_dir_all(path).and(done),
            ReapRaw => {
                let mut status = 0;
                // SAFETY: valid status pointer.
                let pid = check(unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) })?;
                Ok(Outcome::ReapedRaw((pid > 0).then_some((pid, status))))
            }
            Rewrite { fd, data } => {
                // SAFETY: pwrite from a valid buffer at offset 0.
                let n = check(unsafe { libc::pwrite(fd.raw, data.as_ptr().cast(), data.len(), 0) })?;
                if n as usize != data.len() {
                    return Err(io::Error::new(io::ErrorKind::WriteZero, "short write"));
                }
                // SAFETY: ftruncate of an fd we hold.
                check(unsafe { libc::ftruncate(fd.raw, data.len() as libc::off_t) }).and(done)
            }
            SetHostname { name } => {
                // SAFETY: pointer and length of a valid buffer.
                check(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) }).and(done)
            }
            LoopbackUp => loopback_up().and(done),
            MaskPath { path } => mask_path(path).and(done),
            MountPoint { path, like } => {
                let dir = match &like {
                    Some(l) => fs::metadata(l)?.is_dir(),
                    None => true,
                };
                if dir {
                    return match fs::symlink_metadata(path) {
                        Ok(_) => done,
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {
                            fs::DirBuilder::new().recursive(true).mode(0o755).create(path).and(done)
                        }
                        Err(e) => Err(e),
                    };
                }
                // A file: created exclusively, without following a symlink,
                // so whatever is there already (file, node, symlink) is left
                // as it is and mounted over; parents are made only when
                // missing. One open instead of stat, mkdir and open.
                let create = || {
                    fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o644)
                        .custom_flags(libc::O_NOFOLLOW)
                        .open(path)
                };
                match create() {
                    Ok(_) => done,
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => done,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        if let Some(parent) = path.parent() {
                            fs::DirBuilder::new().recursive(true).mode(0o755).create(parent)?;
                        }
                        match create() {
                            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(e),
                            _ => done,
                        }
                    }
                    Err(e) => Err(e),
                }
            }
            Mount {
                source,
                target,
                fstype,
                flags,
                data,
            } => mount(source.as_deref(), target, fstype.as_deref(), *flags, data.as_deref()).and(done),
            ReadonlyPath { path } => match fs::symlink_metadata(path) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => done,
                Err(e) => Err(e),
                Ok(_) => {
                    mount(path.to_str(), path, None, libc::MS_BIND | libc::MS_REC, None)?;
                    // Read-only on every submount the bind brought along.
                    set_mount_attr(path, libc::MS_RDONLY, 0, true).and(done)
                }
            },
            RemountReadonly { target } => {
                let keep = locked_flags(target)?;
                mount(
                    None,
                    target,
                    None,
                    libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | keep,
                    None,
                )
                .and(done)
            }
            Umount { target, flags } => {
                let c = cpath(target)?;
                // SAFETY: valid C string.
                check(unsafe { libc::umount2(c.as_ptr(), *flags) }).and(done)
            }
            PivotRoot { new_root, put_old } => {
                let (n, o) = (cpath(new_root)?, cpath(put_old)?);
                // SAFETY: valid C strings.
                check(unsafe { libc::syscall(libc::SYS_pivot_root, n.as_ptr(), o.as_ptr()) }).and(done)
            }
            Chroot { path } => {
                let c = cpath(path)?;
                // SAFETY: valid C string.
                check(unsafe { libc::chroot(c.as_ptr()) }).and(done)
            }
            Chdir { path } => {
                let c = cpath(path)?;
                // SAFETY: valid C string.
                check(unsafe { libc::chdir(c.as_ptr()) }).and(done)
            }
            OpenInRoot { root, path, make, .. } => open_in_root(root.raw, path, *make).map(Outcome::Fd),
            OpenBindSource { path, within, .. } => open_bind_source(path, within.as_deref()).map(Outcome::Fd),
            OpenDevice {
                path,
                kind,
                major,
                minor,
                ..
            } => open_device(path, *kind, *major, *minor).map(Outcome::Fd),
            BindAt {
                source,
                target,
                recursive,
                flags,
            } => bind_at(source.raw, target.raw, *recursive, *flags).and(done),
            SetMountAttr {
                target,
                set,
                clear,
                recursive,
            } => set_mount_attr(target, *set, *clear, *recursive).and(done),
            SetSid => {
                // SAFETY: no arguments.
                check(unsafe { libc::setsid() }).and(done)
            }
            SetControllingTty { fd } => {
                // SAFETY: TIOCSCTTY takes an int argument.
                check(unsafe { libc::ioctl(fd.raw, libc::TIOCSCTTY, 0) }).and(done)
            }
            DieWithParent { link } => die_with_parent(*link).and(done),
            // SAFETY: getpid has no arguments and cannot fail.
            GetPid => Ok(Outcome::Pid(unsafe { libc::getpid() })),
            NonDumpable => {
                // SAFETY: prctl with integer arguments.
                check(unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) }).and(done)
            }
            SetRlimit { kind, soft, hard } => {
                let r = libc::rlimit {
                    rlim_cur: *soft,
                    rlim_max: *hard,
                };
                // SAFETY: valid rlimit pointer.
                check(unsafe { libc::setrlimit(rlimit_resource(*kind), &r) }).and(done)
            }
            SetGroups { groups } => {
                let g: Vec<libc::gid_t> = groups.iter().map(|g| g.0).collect();
                // SAFETY: pointer and length of a valid array.
                check(unsafe { libc::setgroups(g.len(), g.as_ptr()) }).and(done)
            }
            SetResGid { gid } => {
                // SAFETY: raw syscall (per thread; the process has one thread).
                check(unsafe { libc::syscall(libc::SYS_setresgid, gid.0, gid.0, gid.0) }).and(done)
            }
            SetResUid { uid } => {
                // SAFETY: raw syscall (per thread; the process has one thread).
                check(unsafe { libc::syscall(libc::SYS_setresuid, uid.0, uid.0, uid.0) }).and(done)
            }
            KeepCaps { on } => {
                // SAFETY: prctl with integer arguments.
                check(unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, libc::c_ulong::from(*on), 0, 0, 0) }).and(done)
            }
            RaiseEffective => {
                let p = caps::read(None, caps::CapSet::Permitted).map_err(caps_err)?;
                caps::set(None, caps::CapSet::Effective, &p).map_err(caps_err).and(done)
            }
            DropBounding { caps } => {
                // Only what is still there: dropping needs CAP_SETPCAP even for
                // a capability gone already (an `exec`'d process of a
                // supervisor that dropped everything has nothing to drop).
                let held = |c: &&crate::vocab::Cap| caps::has_cap(None, caps::CapSet::Bounding, c.0).unwrap_or(true);
                for c in caps.iter().filter(|c| kernel_knows(c.0)).filter(held) {
                    caps::drop(None, caps::CapSet::Bounding, c.0).map_err(caps_err)?;
                }
                done
            }
            CapSet { set, caps } => {
                let s = match set {
                    CapSetKind::Effective => caps::CapSet::Effective,
                    CapSetKind::Permitted => caps::CapSet::Permitted,
                    CapSetKind::Inheritable => caps::CapSet::Inheritable,
                };
                let v: caps::CapsHashSet = caps.iter().map(|c| c.0).collect();
                caps::set(None, s, &v).map_err(caps_err).and(done)
            }
            SetAmbient { caps } => {
                caps::clear(None, caps::CapSet::Ambient).map_err(caps_err)?;
                for c in caps {
                    caps::raise(None, caps::CapSet::Ambient, c.0).map_err(caps_err)?;
                }
                done
            }
            Umask { mask } => {
                // SAFETY: umask cannot fail.
                unsafe { libc::umask(*mask) };
                done
            }
            TraceMe => {
                // SAFETY: PTRACE_TRACEME takes no pointer arguments.
                check(unsafe { libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) }).and(done)
            }
            NoNewPrivs => {
                // SAFETY: prctl with integer arguments.
                check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) }).and(done)
            }
            SeccompLoad { filter } => {
                let prog = libc::sock_fprog {
                    len: filter.program.len() as u16,
                    filter: filter.program.as_ptr() as *mut libc::sock_filter,
                };
                // SAFETY: seccompiler's sock_filter is repr(C) with libc's
                // layout; the kernel copies the program during the call.
                check(unsafe {
                    libc::syscall(
                        libc::SYS_seccomp,
                        libc::SECCOMP_SET_MODE_FILTER,
                        0,
                        &prog as *const libc::sock_fprog,
                    )
                })
                .and(done)
            }
            Exec { prepared } => Err(exec(prepared)),
        }
    }
}

/// [`Op::CreateState`]: an unnamed file in the state directory, locked and
/// filled, then linked to its name; the fd (close-on-exec) holds the lock.
fn create_state(path: &Path, record: &str) -> io::Result<i32> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    let c = cpath(dir)?;
    // SAFETY: `c` is a valid C string.
    let fd = check(unsafe { libc::open(c.as_ptr(), libc::O_TMPFILE | libc::O_WRONLY | libc::O_CLOEXEC, 0o600) })?;
    let linked = (|| {
        // SAFETY: flock on the fd just opened.
        check(unsafe { libc::flock(fd, libc::LOCK_EX) })?;
        write_all(fd, record.as_bytes())?;
        let from = std::ffi::CString::new(format!("/proc/self/fd/{fd}")).expect("no NUL in a number");
        let to = cpath(path)?;
        // SAFETY: valid C strings; AT_SYMLINK_FOLLOW links the file the
        // /proc link names (an O_TMPFILE file may be linked once).
        check(unsafe {
            libc::linkat(
                libc::AT_FDCWD,
                from.as_ptr(),
                libc::AT_FDCWD,
                to.as_ptr(),
                libc::AT_SYMLINK_FOLLOW,
            )
        })
    })();
    match linked {
        Ok(_) => Ok(fd),
        Err(e) => {
            // SAFETY: closing the fd opened above.
            unsafe { libc::close(fd) };
            Err(e)
        }
    }
}

/// [`Op::DieWithParent`]: SIGKILL on the parent's exit, then the check that
/// the parent had not exited already (ESRCH if it had).
/// mkdir -p, mode 0700 for each part made (the umask applies); returns the
/// parts made, outermost first. The common case, `path` already there, is
/// one mkdir(2). A failure part-way removes what this call made.
fn mkdir_all(path: &Path) -> io::Result<Vec<PathBuf>> {
    let mkdir = |p: &Path| match fs::DirBuilder::new().mode(0o700).create(p) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && p.is_dir() => Ok(false),
        Err(e) => Err(e),
    };
    match mkdir(path) {
        Ok(made) => return Ok(if made { vec![path.to_path_buf()] } else { Vec::new() }),
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        Err(_) => {}
    }
    let mut missing: Vec<&Path> = path
        .ancestors()
        .take_while(|p| !p.as_os_str().is_empty() && !p.exists())
        .collect();
    missing.reverse();
    let mut made = Vec::new();
    for p in missing {
        match mkdir(p) {
            Ok(true) => made.push(p.to_path_buf()),
            Ok(false) => {}
            Err(e) => {
                for d in made.iter().rev() {
                    let _ = fs::remove_dir(d);
                }
                return Err(e);
            }
        }
    }
    Ok(made)
}

fn die_with_parent(link: super::backend::ParentLink) -> io::Result<()> {
    use super::backend::ParentLink;
    // SAFETY: prctl with integer arguments.
    check(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) })?;
    let revents = |fd: super::backend::FdRef| -> io::Result<i16> {
        let mut p = libc::pollfd {
            fd: fd.raw,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd; a zero timeout only looks.
        check(unsafe { libc::poll(&mut p, 1, 0) })?;
        Ok(p.revents)
    };
    let gone = match link {
        ParentLink::SyncPipe(fd) => {
            let r = revents(fd)?;
            r & libc::POLLHUP != 0 && r & libc::POLLIN == 0
        }
        ParentLink::HangsUp(fd) => revents(fd)? & (libc::POLLHUP | libc::POLLERR) != 0,
        // SAFETY: getppid has no arguments and cannot fail.
        ParentLink::Pid(pid) => (unsafe { libc::getppid() }) != pid,
    };
    if gone {
        return Err(io::Error::from_raw_os_error(libc::ESRCH));
    }
    Ok(())
}

/// The type glibc and musl give `setrlimit`'s resource argument.
#[cfg(target_env = "gnu")]
type Resource = libc::__rlimit_resource_t;
#[cfg(not(target_env = "gnu"))]
type Resource = libc::c_int;

fn rlimit_resource(kind: crate::vocab::RlimitKind) -> Resource {
    use crate::vocab::RlimitKind::*;
    match kind {
        Cpu => libc::RLIMIT_CPU,
        Fsize => libc::RLIMIT_FSIZE,
        Data => libc::RLIMIT_DATA,
        Stack => libc::RLIMIT_STACK,
        Core => libc::RLIMIT_CORE,
        Rss => libc::RLIMIT_RSS,
        Nproc => libc::RLIMIT_NPROC,
        Nofile => libc::RLIMIT_NOFILE,
        Memlock => libc::RLIMIT_MEMLOCK,
        As => libc::RLIMIT_AS,
        Locks => libc::RLIMIT_LOCKS,
        Sigpending => libc::RLIMIT_SIGPENDING,
        Msgqueue => libc::RLIMIT_MSGQUEUE,
        Nice => libc::RLIMIT_NICE,
        Rtprio => libc::RLIMIT_RTPRIO,
        Rttime => libc::RLIMIT_RTTIME,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape_mountinfo("/a\\040b/c"), Path::new("/a b/c"));
        assert_eq!(unescape_mountinfo("/plain"), Path::new("/plain"));
        assert_eq!(unescape_mountinfo("/x\\9"), Path::new("/x\\9"));
    }

    #[test]
    fn atime_modes_clear_the_others() {
        assert_eq!(
            mount_attrs(libc::MS_RDONLY | libc::MS_NOSUID, 0),
            (MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID, 0)
        );
        assert_eq!(mount_attrs(0, libc::MS_RDONLY), (0, MOUNT_ATTR_RDONLY));
        assert_eq!(
            mount_attrs(libc::MS_NOATIME, 0),
            (MOUNT_ATTR_NOATIME, MOUNT_ATTR__ATIME)
        );
    }

    use crate::plan::{Namespace, Sourced};
    use crate::vocab::Origin;

    /// Issue 10 item 10: what doctor says of namespace paths agrees with
    /// apply's join step: a FIFO (answered at once, not opened), a regular
    /// file and a namespace of another kind are named; a real one passes.
    #[test]
    fn doctor_probes_namespace_paths_as_apply_opens_them() {
        let dir = std::env::temp_dir().join(format!("sbx-nsprobe-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("fifo");
        let c = cpath(&fifo).unwrap();
        // SAFETY: valid C string.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        fs::write(dir.join("file"), "").unwrap();
        let probe = |path: &Path| {
            let mut p = crate::plan::sample::Sample::applied(Path::new("/r")).plan();
            p.namespaces.net = Sourced::new(Namespace::Join(path.into()), Origin::spec("linux.namespaces[1].path"));
            probe_namespace_paths(&p)
        };
        for (path, want) in [
            (fifo.clone(), "not a namespace file"),
            (dir.join("file"), "not a namespace file"),
            ("/proc/self/ns/ipc".into(), "a ipc namespace, not a net namespace"),
            (dir.join("missing"), "ENOENT"),
        ] {
            let unmet = probe(&path);
            assert_eq!(unmet.len(), 1, "{path:?}");
            assert!(unmet[0].to_string().contains(want), "{}", unmet[0]);
        }
        assert!(probe(Path::new("/proc/self/ns/net")).is_empty());
        // Issue 13: a pod member's ipc, uts and pid paths, probed alike (the
        // pid one as runtime-tools names it, `pid_for_children` too).
        let mut p = crate::plan::sample::Sample::applied(Path::new("/r")).plan();
        p.namespaces.ipc = Sourced::new(
            Namespace::Join("/proc/self/ns/uts".into()),
            Origin::spec("linux.namespaces[2].path"),
        );
        p.namespaces.uts = Sourced::new(
            Namespace::Join("/proc/self/ns/uts".into()),
            Origin::spec("linux.namespaces[3].path"),
        );
        p.namespaces.pid = Sourced::new(
            Namespace::Join("/proc/self/ns/pid_for_children".into()),
            Origin::spec("linux.namespaces[0].path"),
        );
        let unmet = probe_namespace_paths(&p);
        assert_eq!(unmet.len(), 1, "{unmet:?}");
        assert!(
            unmet[0].to_string().contains("a uts namespace, not a ipc namespace"),
            "{}",
            unmet[0]
        );
        let _ = fs::remove_dir_all(&dir);
    }
}

/// The ops of long-lived sandboxes (`create`): the state directory, the
/// control socket, and the launcher's and supervisor's handshake.
mod lifecycle {
    use std::io;
    use std::os::fd::{BorrowedFd, IntoRawFd};
    use std::path::Path;
    use std::time::{Duration, Instant};

    use crate::exec::control::state::{self, Record, SandboxId, StateRoot};

    fn other(e: impl std::fmt::Display) -> io::Error {
        io::Error::other(e.to_string())
    }

    /// [`super::Op::CreateSandboxDir`].
    pub fn create_dir(root: &Path, id: &str) -> io::Result<i32> {
        let id = SandboxId::parse(id).map_err(other)?;
        match StateRoot::new(root).create(&id) {
            Ok(dir) => Ok(dir.into_fd().into_raw_fd()),
            Err(state::StateError::InUse { .. }) => Err(io::Error::from_raw_os_error(libc::EEXIST)),
            Err(e) => Err(other(e)),
        }
    }

    fn dir(fd: i32) -> BorrowedFd<'static> {
        // SAFETY: the interpreter holds `fd` open for the whole op.
        unsafe { BorrowedFd::borrow_raw(fd) }
    }

    /// [`super::Op::BindControlSocket`].
    pub fn bind(fd: i32, path: &Path) -> io::Result<i32> {
        let dir_path = path.parent().unwrap_or(path);
        state::bind_control_socket_at(dir(fd), dir_path)
            .map(IntoRawFd::into_raw_fd)
            .map_err(other)
    }

    /// [`super::Op::WriteStateFile`].
    pub fn write(fd: i32, path: &Path, name: &str, data: &[u8]) -> io::Result<()> {
        state::write_file_at(dir(fd), path, name, data).map_err(other)
    }

    /// [`super::Op::WriteRecord`].
    pub fn write_record(fd: i32, path: &Path, record: &Record, pid: i32) -> io::Result<()> {
        let mut r = record.clone();
        r.supervisor = Some(state::ProcRef::of(pid).ok_or_else(|| io::Error::from_raw_os_error(libc::ESRCH))?);
        let mut bytes = serde_json::to_vec_pretty(&r).map_err(other)?;
        bytes.push(b'\n');
        write(fd, path, state::STATE_FILE, &bytes)
    }

    /// [`super::Op::AwaitMark`]: polls `fd` in slices of 10 ms so the
    /// supervisor's death (a zombie: the launcher is its parent and has not
    /// reaped it) ends the wait too.
    pub fn await_mark(fd: i32, pid: i32, timeout_ms: u64) -> io::Result<Vec<u8>> {
        let end = Instant::now() + Duration::from_millis(timeout_ms);
        loop {
            let mut p = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let n = unsafe { libc::poll(&mut p, 1, 10) };
            if n > 0 {
                let mut buf = vec![0u8; 64 * 1024];
                // SAFETY: recv into a valid buffer of its length.
                let got = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
                if got >= 0 {
                    buf.truncate(got as usize);
                    return Ok(buf);
                }
                let e = io::Error::last_os_error();
                if !matches!(e.raw_os_error(), Some(libc::EINTR | libc::EAGAIN)) {
                    return Err(e);
                }
            } else if n < 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::EINTR) {
                    return Err(e);
                }
            }
            if has_exited(pid) {
                return Ok(Vec::new());
            }
            if Instant::now() >= end {
                return Err(io::Error::from_raw_os_error(libc::ETIMEDOUT));
            }
        }
    }

    /// Whether child `pid` has exited (it is left to be reaped: WNOWAIT).
    fn has_exited(pid: i32) -> bool {
        // SAFETY: siginfo_t is plain data; all zeroes is a valid value.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid with a valid siginfo pointer; WNOWAIT only looks.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        // SAFETY: si_pid is valid to read after waitid filled it (zero otherwise).
        r == 0 && unsafe { info.si_pid() } == pid
    }

    /// [`super::Op::AwaitCommit`].
    pub fn await_commit(fd: i32, mark: u8) -> io::Result<()> {
        let mut b = [0u8; 1];
        loop {
            // SAFETY: one-byte read into a valid buffer (blocking).
            let n = unsafe { libc::recv(fd, b.as_mut_ptr().cast(), 1, 0) };
            match n {
                1 if b[0] == mark => return Ok(()),
                1 => return Err(io::Error::from_raw_os_error(libc::EPROTO)),
                0 => return Err(io::Error::from_raw_os_error(libc::EPIPE)),
                _ if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) => continue,
                _ => return Err(io::Error::last_os_error()),
            }
        }
    }

    /// [`super::Op::AwaitServing`].
    pub fn await_serving(path: &Path, pid: i32, timeout_ms: u64) -> io::Result<()> {
        let mut alive = || !has_exited(pid);
        crate::exec::control::client::wait_ready(path, Duration::from_millis(timeout_ms), &mut alive)
            .map(drop)
            .map_err(other)
    }
}

/// [`Op::ShedMemory`]'s stack part: the pages from 1 MiB below this frame up
/// to 8 KiB below it (dead frames: the launcher's compile, the handover's
/// decoding) are dropped (8 KiB: ample for this frame's madvise call);
/// the kernel skips what is not mapped (ENOMEM, ignored). Only for the
/// main thread of a single-threaded process (the supervisor): below another
/// thread's frame could lie a live stack.
#[inline(never)]
pub(crate) fn shed_stack() {
    let marker = 0u8;
    let sp = std::ptr::addr_of!(marker) as usize;
    let top = (sp - 8 * 1024) & !4095;
    let len = 1024 * 1024;
    // SAFETY: every page in [top - len, top) lies below this frame, in the
    // stack's dead part (or unmapped): nothing live is there; MADV_DONTNEED
    // makes touched ones read as zero pages again.
    unsafe { libc::madvise((top - len) as *mut libc::c_void, len, libc::MADV_DONTNEED) };
}

/// Whether directory `path` holds a directory (a cgroup with child cgroups).
fn has_subdirectory(path: &Path) -> bool {
    fs::read_dir(path).is_ok_and(|rd| rd.flatten().any(|e| e.file_type().is_ok_and(|t| t.is_dir())))
}
