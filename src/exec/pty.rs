//! The launcher's side of a relayed pty (`stdio = pty`, the spec's
//! `process.terminal` without a console socket): the caller's terminal in raw
//! mode, its window size copied to the pty, and the relay between the
//! caller's stdin/stdout and the pty master. The mechanics of
//! [`super::backend::Op::TtyRaw`], [`super::backend::Op::TtyRestore`],
//! [`super::backend::Op::CopyWinsize`], [`super::backend::Op::RelayPty`] and
//! [`super::backend::Op::DrainPty`]; the real backend calls these, and they
//! decide nothing the plan does not say.
//!
//! No threads: one `poll` over the caller's stdin, the master and a
//! `signalfd` of the launcher's blocked signals (plus SIGWINCH). A signal
//! other than SIGWINCH ends one relay call and is returned to the
//! interpreter, which forwards it or reaps, as it does without a pty.

use std::io;

use super::backend::Outcome;
use super::linux::check;

/// Size of the relay's buffer (one read or write of the pty at a time).
const CHUNK: usize = 4096;

/// How long [`drain`] waits for more output once the pty has none.
const DRAIN_QUIET_MS: i32 = 200;

/// Makes `fd` raw when it is a terminal; returns its previous mode as bytes
/// (for [`restore`]), or `None` when `fd` is not a terminal.
pub fn make_raw(fd: i32) -> io::Result<Option<Vec<u8>>> {
    // SAFETY: isatty has no memory arguments.
    if unsafe { libc::isatty(fd) } == 0 {
        return Ok(None);
    }
    // SAFETY: termios is plain data, filled by tcgetattr before use.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: `t` is a valid termios to fill.
    check(unsafe { libc::tcgetattr(fd, &mut t) })?;
    let saved = termios_bytes(&t);
    let mut raw = t;
    // SAFETY: `raw` is a valid termios.
    unsafe { libc::cfmakeraw(&mut raw) };
    // SAFETY: `raw` is a valid termios.
    check(unsafe { libc::tcsetattr(fd, libc::TCSANOW, &raw) })?;
    Ok(Some(saved))
}

/// Puts back a mode saved by [`make_raw`].
pub fn restore(fd: i32, saved: &[u8]) -> io::Result<()> {
    if saved.len() != std::mem::size_of::<libc::termios>() {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: `saved` holds exactly one termios, copied out by make_raw;
    // termios is plain data with no invalid bit patterns.
    let t: libc::termios = unsafe { std::ptr::read_unaligned(saved.as_ptr().cast()) };
    // SAFETY: `t` is a valid termios.
    check(unsafe { libc::tcsetattr(fd, libc::TCSANOW, &t) }).map(drop)
}

fn termios_bytes(t: &libc::termios) -> Vec<u8> {
    // SAFETY: a termios is plain data; its bytes are read within its size.
    unsafe {
        std::slice::from_raw_parts(
            (t as *const libc::termios).cast::<u8>(),
            std::mem::size_of::<libc::termios>(),
        )
    }
    .to_vec()
}

/// Copies the window size of the caller's stdin (else stdout) to `master`,
/// when one of them is a terminal. Setting it on the master sends SIGWINCH
/// to the pty's foreground process group.
pub fn copy_winsize(master: i32) -> io::Result<()> {
    for fd in [0, 1] {
        // SAFETY: winsize is plain data, filled by the ioctl.
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        // SAFETY: TIOCGWINSZ writes one winsize into `ws`.
        if unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } == 0 {
            // SAFETY: TIOCSWINSZ reads one winsize from `ws`.
            return check(unsafe { libc::ioctl(master, libc::TIOCSWINSZ, &ws) }).map(drop);
        }
    }
    Ok(())
}

/// The launcher's blocked signals, and SIGWINCH.
fn relay_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, owned sigset_t.
    unsafe {
        libc::sigemptyset(&mut set);
        for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGCHLD, libc::SIGWINCH] {
            libc::sigaddset(&mut set, s);
        }
    }
    set
}

/// Writes all of `data` to `fd`; false when `fd` refuses it (the bytes are
/// dropped: a closed stdout must not stop the sandbox's supervision).
fn put(fd: i32, data: &[u8]) -> bool {
    let mut off = 0;
    while off < data.len() {
        // SAFETY: the slice bounds the write.
        let w = unsafe { libc::write(fd, data[off..].as_ptr().cast(), data.len() - off) };
        if w < 0 {
            if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return false;
        }
        off += w as usize;
    }
    true
}

/// The pty's end-of-file character (the slave's `VEOF`, ^D by default) when
/// the slave is in canonical mode: what a terminal sends on ^D.
fn eof_char(master: i32) -> Option<u8> {
    // SAFETY: termios is plain data, filled by tcgetattr.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: on a pty master, TCGETS reads the slave's termios into `t`.
    if unsafe { libc::tcgetattr(master, &mut t) } != 0 {
        return Some(4);
    }
    (t.c_lflag & libc::ICANON != 0).then_some(t.c_cc[libc::VEOF])
}

/// Relays until a signal other than SIGWINCH arrives (returned as
/// [`Outcome::Signal`]) or stdin ends ([`Outcome::StdinClosed`], after
/// sending the pty's end-of-file character).
pub fn relay(master: i32, stdin: bool) -> io::Result<Outcome> {
    let set = relay_signals();
    // SAFETY: valid set pointer, null old set (SIGWINCH joins the blocked set).
    check(unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) })?;
    // SAFETY: valid set pointer; a new signalfd.
    let sfd = check(unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) })?;
    let r = relay_loop(master, stdin, sfd);
    // SAFETY: closing the signalfd made above.
    unsafe { libc::close(sfd) };
    r
}

fn relay_loop(master: i32, stdin: bool, sfd: i32) -> io::Result<Outcome> {
    let mut buf = [0u8; CHUNK];
    let mut master_open = true;
    loop {
        let mut fds = [
            libc::pollfd {
                fd: if master_open { master } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: if stdin { 0 } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: sfd,
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: three valid pollfds.
        if unsafe { libc::poll(fds.as_mut_ptr(), 3, -1) } < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        if fds[0].revents != 0 {
            // SAFETY: read into a valid buffer.
            let n = unsafe { libc::read(master, buf.as_mut_ptr().cast(), buf.len()) };
            if n > 0 {
                put(1, &buf[..n as usize]);
            } else if n == 0
                || !matches!(
                    io::Error::last_os_error().raw_os_error(),
                    Some(libc::EINTR | libc::EAGAIN)
                )
            {
                // EIO: every slave is closed (the sandbox is ending); the
                // supervisor's SIGCHLD follows.
                master_open = false;
            }
        }
        if fds[1].revents != 0 {
            // SAFETY: read into a valid buffer.
            let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
            if n > 0 {
                put(master, &buf[..n as usize]);
            } else if n == 0
                || !matches!(
                    io::Error::last_os_error().raw_os_error(),
                    Some(libc::EINTR | libc::EAGAIN)
                )
            {
                if let Some(c) = eof_char(master) {
                    put(master, &[c]);
                }
                return Ok(Outcome::StdinClosed);
            }
        }
        if fds[2].revents != 0 {
            // SAFETY: signalfd_siginfo is plain data, filled by the read.
            let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
            let size = std::mem::size_of::<libc::signalfd_siginfo>();
            // SAFETY: reads at most one signalfd_siginfo into `info`.
            let n = unsafe { libc::read(sfd, (&mut info as *mut libc::signalfd_siginfo).cast(), size) };
            if n as usize == size {
                let sig = info.ssi_signo as i32;
                if sig == libc::SIGWINCH {
                    copy_winsize(master)?;
                } else {
                    return Ok(Outcome::Signal(sig));
                }
            }
        }
    }
}

/// Copies what is left in `master` to stdout: until EIO (every slave
/// closed), or until nothing came for [`DRAIN_QUIET_MS`] (a process outside
/// the sandbox's PID namespace may still hold the slave).
pub fn drain(master: i32) -> io::Result<()> {
    // SAFETY: fcntl on our own fd.
    let fl = check(unsafe { libc::fcntl(master, libc::F_GETFL) })?;
    // SAFETY: as above.
    check(unsafe { libc::fcntl(master, libc::F_SETFL, fl | libc::O_NONBLOCK) })?;
    let mut buf = [0u8; CHUNK];
    loop {
        // SAFETY: read into a valid buffer.
        let n = unsafe { libc::read(master, buf.as_mut_ptr().cast(), buf.len()) };
        if n > 0 {
            put(1, &buf[..n as usize]);
            continue;
        }
        match io::Error::last_os_error().raw_os_error() {
            _ if n == 0 => return Ok(()),
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) => {
                let mut p = libc::pollfd {
                    fd: master,
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd.
                if unsafe { libc::poll(&mut p, 1, DRAIN_QUIET_MS) } <= 0 {
                    return Ok(());
                }
            }
            // EIO: every slave is closed and everything was read.
            _ => return Ok(()),
        }
    }
}
