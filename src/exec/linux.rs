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
use std::path::Path;
use std::time::{Duration, Instant};

use super::backend::{Backend, CapSetKind, Forked, Op, Outcome};
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

fn signal_set() -> libc::sigset_t {
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
    Ok(flags)
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

fn kvm_cap(name: &str) -> Option<kvm_ioctls::Cap> {
    use kvm_ioctls::Cap::*;
    [
        Irqchip,
        Hlt,
        UserMemory,
        SetTssAddr,
        ExtCpuid,
        Clocksource,
        NrVcpus,
        NrMemslots,
        Pit,
        MpState,
        CoalescedMmio,
        SyncMmu,
        Iommu,
        UserNmi,
        Pit2,
        SetIdentityMapAddr,
        Irqfd,
        Ioeventfd,
        ImmediateExit,
        Xsave,
        Xcrs,
        TscControl,
        Debugregs,
        AdjustClock,
        SplitIrqchip,
        MaxVcpus,
        MaxVcpuId,
        ReadonlyMem,
        IrqRouting,
    ]
    .into_iter()
    .find(|c| format!("{c:?}") == name)
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
        let cap = kvm_cap(e).ok_or_else(|| io::Error::other(format!("unknown KVM extension {e}")))?;
        if !kvm.check_extension(cap) {
            return Err(io::Error::other(format!("KVM extension {e} is not available")));
        }
    }
    // Keep a close-on-exec copy; `kvm` closes the original.
    // SAFETY: fcntl on an fd we own.
    check(unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) })
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

fn exec(p: &super::backend::PreparedExec) -> io::Error {
    let argv: Vec<*const libc::c_char> = p.argv.iter().map(|c| c.as_ptr()).chain([std::ptr::null()]).collect();
    let envp: Vec<*const libc::c_char> = p.envp.iter().map(|c| c.as_ptr()).chain([std::ptr::null()]).collect();
    let mut last = io::Error::from_raw_os_error(libc::ENOENT);
    for c in &p.candidates {
        // SAFETY: argv and envp are NULL-terminated arrays of valid C strings
        // that live until execve returns (it returns only on failure).
        unsafe { libc::execve(c.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
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

    fn spawn(child: &mut dyn FnMut() -> std::convert::Infallible) -> io::Result<i32> {
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
        // SAFETY: the child has exec'd or exited: the stack is no longer used.
        unsafe { libc::munmap(base, len) };
        r
    }

    fn perform(&mut self, op: &Op) -> io::Result<Outcome> {
        use Op::*;
        let done = Ok(Outcome::Done);
        match op {
            MkdirAll { path } => fs::DirBuilder::new().recursive(true).mode(0o700).create(path).and(done),
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
                        Err(e) if e.raw_os_error() == Some(libc::EBUSY) && start.elapsed() < Duration::from_secs(2) => {
                            std::thread::sleep(Duration::from_micros(500))
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            Unlink { path } => fs::remove_file(path).and(done),
            Open { path, flags, mode, .. } => open_exact(path, *flags, *mode).map(Outcome::Fd),
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
                    let keep = locked_flags(path)?;
                    mount(
                        None,
                        path,
                        None,
                        libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | keep,
                        None,
                    )
                    .and(done)
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
            Mknod {
                path,
                kind,
                mode,
                major,
                minor,
            } => {
                let c = cpath(path)?;
                let t = if *kind == crate::plan::DeviceKind::Char {
                    libc::S_IFCHR
                } else {
                    libc::S_IFBLK
                };
                let dev = libc::makedev(*major as u32, *minor as u32);
                // SAFETY: valid C string.
                check(unsafe { libc::mknod(c.as_ptr(), t | mode, dev) }).and(done)
            }
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
                for c in caps.iter().filter(|c| kernel_knows(c.0)) {
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
