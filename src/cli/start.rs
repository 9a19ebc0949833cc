//! Process start-up for the binary, which uses C's `main` instead of std's
//! runtime start (see `src/main.rs`): the parts of std's start-up that
//! change behaviour, kept, and the stack-overflow handler (a read of
//! `/proc/self/maps`, an mmap and an mprotect per launch), left out. A stack
//! overflow is then a plain SIGSEGV instead of a message and SIGABRT.

use std::sync::OnceLock;
use std::time::Instant;

static STARTED: OnceLock<Instant> = OnceLock::new();

/// When [`process_start`] ran (the first thing `main` does); now, if it never
/// did (a test harness). What `apply --timings` counts from.
pub fn started() -> Instant {
    *STARTED.get_or_init(Instant::now)
}

/// The process's arguments, from C `main`'s `argc` and `argv`.
///
/// # Safety
/// `argv` must point to `argc` valid, NUL-terminated C strings that outlive
/// the returned iterator (as the C runtime's `argv` does).
pub unsafe fn c_args(
    argc: std::ffi::c_int,
    argv: *const *const std::ffi::c_char,
) -> impl Iterator<Item = std::ffi::OsString> {
    use std::os::unix::ffi::OsStrExt;
    (0..usize::try_from(argc).unwrap_or(0)).map(move |i| {
        // SAFETY: i < argc, and the caller guarantees argv[i] is a valid
        // NUL-terminated string.
        let arg = unsafe { std::ffi::CStr::from_ptr(*argv.add(i)) };
        std::ffi::OsStr::from_bytes(arg.to_bytes()).to_owned()
    })
}

/// The handover fd when this process is a created sandbox's supervisor,
/// re-executed to serve (`argv` is `[SUPERVISOR_ARGV0, FD]`; see
/// `exec/interp/reexec.rs`); `None` for a command line.
///
/// # Safety
/// As [`c_args`].
pub unsafe fn supervisor_handover(argc: std::ffi::c_int, argv: *const *const std::ffi::c_char) -> Option<i32> {
    if argc != 2 {
        return None;
    }
    // SAFETY: argc is 2: argv[0] and argv[1] are valid C strings.
    let (a0, a1) = unsafe { (std::ffi::CStr::from_ptr(*argv), std::ffi::CStr::from_ptr(*argv.add(1))) };
    if a0.to_bytes() != crate::exec::interp::SUPERVISOR_ARGV0.as_bytes() {
        return None;
    }
    a1.to_str().ok()?.parse().ok()
}

/// Does what std's runtime does before `main` that the rest of sandboxctl
/// relies on: file descriptors 0, 1 and 2 are open (each closed one is
/// opened on `/dev/null`, so no file this process opens lands on a standard
/// stream's number), and SIGPIPE is ignored (a write to a closed pipe fails
/// with EPIPE instead of killing the process). Call it once, first thing.
pub fn process_start() {
    started();
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    loop {
        // SAFETY: `fds` is a valid array of 3 pollfd structs that poll may write.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 0) };
        if r != -1 {
            break;
        }
        match std::io::Error::last_os_error().raw_os_error() {
            Some(libc::EINTR) => continue,
            // poll refused (as std does then): ask each fd with fcntl instead.
            _ => {
                for p in &mut fds {
                    // SAFETY: F_GETFD only reads the descriptor's flags.
                    if unsafe { libc::fcntl(p.fd, libc::F_GETFD) } == -1 {
                        p.revents = libc::POLLNVAL;
                    }
                }
                break;
            }
        }
    }
    for p in &fds {
        if p.revents & libc::POLLNVAL != 0 {
            // SAFETY: the path is a NUL-terminated string; the lowest free fd,
            // the closed one, is what open returns.
            if unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR, 0) } == -1 {
                std::process::abort();
            }
        }
    }
    // SAFETY: setting a signal's disposition to SIG_IGN has no preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}
