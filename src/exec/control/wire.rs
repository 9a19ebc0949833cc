//! Bytes and file descriptors on a control connection: one `recvmsg` and one
//! `sendmsg` wrapper (SCM_RIGHTS, close-on-exec, no SIGPIPE), shared by the
//! server and the client. Every fd that arrives is owned at once, so none can
//! leak, even when more arrive than a frame may carry.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use super::proto::MAX_FDS;

/// Space for one SCM_RIGHTS message of [`MAX_FDS`] fds (8-aligned; u64s).
const CMSG_WORDS: usize = 8;

/// Fds received with a frame, owned; extras beyond [`MAX_FDS`] are closed on
/// arrival and remembered as an overflow.
#[derive(Debug, Default)]
pub(super) struct FdSet {
    fds: [Option<OwnedFd>; MAX_FDS],
    len: usize,
    overflow: bool,
}

impl FdSet {
    /// Keeps `fd`, or closes it when the set is full.
    fn push(&mut self, fd: OwnedFd) {
        if self.len < MAX_FDS {
            self.fds[self.len] = Some(fd);
            self.len += 1;
        } else {
            self.overflow = true;
        }
    }

    /// How many arrived (more than [`MAX_FDS`] counts as `MAX_FDS + 1`).
    pub(super) fn count(&self) -> usize {
        self.len + usize::from(self.overflow)
    }

    /// Takes the fds, leaving the set empty.
    pub(super) fn take(&mut self) -> [Option<OwnedFd>; MAX_FDS] {
        self.len = 0;
        self.overflow = false;
        std::mem::take(&mut self.fds)
    }

    /// Closes every fd held.
    pub(super) fn clear(&mut self) {
        drop(self.take());
    }
}

/// One non-blocking `recvmsg` into `buf`; fds that come with the bytes go to
/// `fds`. Returns the byte count (0 at end of stream).
pub(super) fn recv(fd: RawFd, buf: &mut [u8], fds: &mut FdSet) -> io::Result<usize> {
    let mut cmsg = [0u64; CMSG_WORDS];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: an all-zero msghdr is a valid empty one; fields are set below.
    let mut msg: libc::msghdr = unsafe { MaybeUninit::zeroed().assume_init() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&cmsg) as _;
    // SAFETY: msg points at `iov` (which points at `buf`) and `cmsg`, all live
    // and writable for the call, with their lengths.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // Own every fd the kernel installed, even when the control data was cut
    // short (MSG_CTRUNC: the fds that did not fit were never installed).
    // SAFETY: msg was filled by recvmsg; CMSG_FIRSTHDR/NXTHDR stay within
    // msg_controllen, and each SCM_RIGHTS payload holds whole ints.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(c).cast::<RawFd>();
                let count = ((*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize) / std::mem::size_of::<RawFd>();
                for i in 0..count {
                    fds.push(OwnedFd::from_raw_fd(data.add(i).read_unaligned()));
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        fds.overflow = true;
    }
    Ok(n as usize)
}

/// One non-blocking `sendmsg` of `buf` (MSG_NOSIGNAL: a gone peer is EPIPE,
/// not a signal), with `fds` attached when not empty. Returns bytes sent.
pub(super) fn send(fd: RawFd, buf: &[u8], fds: &[RawFd]) -> io::Result<usize> {
    assert!(fds.len() <= MAX_FDS, "at most {MAX_FDS} fds per frame");
    let mut cmsg = [0u64; CMSG_WORDS];
    let mut iov = libc::iovec {
        iov_base: buf.as_ptr() as *mut _,
        iov_len: buf.len(),
    };
    // SAFETY: an all-zero msghdr is a valid empty one; fields are set below.
    let mut msg: libc::msghdr = unsafe { MaybeUninit::zeroed().assume_init() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        let bytes = std::mem::size_of_val(fds);
        msg.msg_control = cmsg.as_mut_ptr().cast();
        // SAFETY: CMSG_SPACE is a pure computation.
        msg.msg_controllen = unsafe { libc::CMSG_SPACE(bytes as u32) } as _;
        // SAFETY: msg_control points at `cmsg`, which is larger than
        // CMSG_SPACE(3 ints); the header and data written stay inside it.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(bytes as u32) as _;
            std::ptr::copy_nonoverlapping(fds.as_ptr().cast::<u8>(), libc::CMSG_DATA(c), bytes);
        }
    }
    // SAFETY: msg points at live `iov` (over `buf`, only read) and `cmsg`.
    let n = unsafe { libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// Waits until `fd` is ready for `events` or `timeout_ms` passes (-1:
/// forever). Returns the revents (0 on timeout); EINTR is retried by the
/// caller's loop.
pub(super) fn poll_one(fd: RawFd, events: i16, timeout_ms: i32) -> io::Result<i16> {
    let mut p = libc::pollfd { fd, events, revents: 0 };
    // SAFETY: one valid pollfd, live for the call.
    let n = unsafe { libc::poll(&mut p, 1, timeout_ms) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(if n == 0 { 0 } else { p.revents })
}
