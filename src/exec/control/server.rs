//! The supervisor's side of the control socket: one single-threaded `poll`
//! loop over the listening socket, the connected clients and one event fd
//! (a signalfd or pidfd telling that a child ended). No threads, no async
//! runtime.
//!
//! Each connection is a small state machine — reading one frame (with a
//! deadline), parked (a `wait` until a process ends), or writing one reply
//! (with a deadline) — over buffers it owns, so a slow, silent or vanished
//! client costs the others nothing and leaves no fd behind. Requests are
//! read frame by frame and never past the current frame, so pipelined calls
//! are answered in order. The peer's credentials (SO_PEERCRED) are checked
//! on accept: root or the sandbox's creator only. What a call does is the
//! [`ControlHandler`]'s business (the interpreter's control half; tests use
//! a fake). Idle, the loop sleeps in `poll` with nothing allocated: the
//! vectors it polls from are sized once, for [`ServerConfig::max_clients`].

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use super::proto::{
    self, encode_reply, parse_header, ErrorKind, Reply, Request, SandboxPid, Status, HEADER_LEN, MAX_FDS, MAX_REQUEST,
    PROTOCOL_VERSION,
};
use super::wire::{self, FdSet};

/// The credentials of a connected client (SO_PEERCRED, taken at connect).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// Its pid (in the supervisor's PID namespace; 0 when outside it).
    pub pid: i32,
    /// Its uid.
    pub uid: u32,
    /// Its gid.
    pub gid: u32,
}

/// What a parked call waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitFor {
    /// The workload (`wait`).
    Workload,
    /// One process (`wait_pid`).
    Pid(SandboxPid),
}

/// What the handler answers to one call.
#[derive(Debug)]
pub enum Outcome {
    /// Reply now.
    Reply(Reply),
    /// Reply now, with an fd attached (an `exec`'s pty master).
    ReplyWithFd(Reply, OwnedFd),
    /// Reply later, when [`ControlHandler::poll_wait`] has the answer.
    Park(WaitFor),
}

/// One call, as the handler receives it.
#[derive(Debug)]
pub struct Call<'a> {
    /// The request (already validated; `hello` is answered by the server).
    pub request: Request,
    /// Who asks.
    pub peer: &'a Peer,
    /// The fds that came with it: exactly [`Request::fds_expected`], in
    /// order (stdin, stdout, stderr for an attached `exec`).
    pub fds: [Option<OwnedFd>; MAX_FDS],
    /// Connected clients, this one included (for `stacks`).
    pub clients: u32,
    /// Parked calls (for `stacks`).
    pub parked: u32,
}

/// The supervisor's answers to control calls. The server handles framing,
/// credentials, deadlines and the handshake; this does the calls.
pub trait ControlHandler {
    /// The sandbox's id and status, for the `hello` reply.
    fn hello(&mut self) -> (String, Status);
    /// Performs one call.
    fn handle(&mut self, call: Call<'_>) -> Outcome;
    /// The answer to a parked call, once there is one (called after every
    /// loop turn for each parked call).
    fn poll_wait(&mut self, wait: WaitFor) -> Option<Reply>;
    /// Called before the loop sleeps in `poll`: a supervisor gives back the
    /// stack pages its last call dirtied below the loop (see
    /// `exec::linux::shed_stack`).
    fn before_wait(&mut self) {}
    /// The event fd is readable: reap children, read the signalfd. Returns
    /// whether to keep watching it (a pidfd stays readable after its exit).
    fn on_event(&mut self) -> bool {
        false
    }
    /// Whether the supervisor is done (destroyed, or the workload ended and
    /// every waiter has its answer): the loop flushes pending replies and
    /// returns.
    fn finished(&self) -> bool;
}

/// Who may connect, as the server's own user namespace sees uids.
///
/// SO_PEERCRED reports the peer's uid translated into the user namespace of
/// the process that asks, and a uid that namespace does not map reads as the
/// overflow uid (65534). A supervisor inside the sandbox's user namespace
/// therefore sees host root as 65534 unless host root is mapped, and with
/// the default nobody mapping (65534→65534) it cannot tell host root or the
/// creator from host nobody. The rule is written in the server's view
/// ([`PeerRule::in_user_namespace`]); the fence that tells them apart in that
/// case is the socket file (mode 0600 in a 0700 directory of the creator),
/// checked by the kernel in the host's view at connect. See docs/control.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerRule {
    /// The uids served (root's and the creator's, as the server sees them).
    pub uids: [u32; 2],
}

impl PeerRule {
    /// A server in the initial user namespace: root and `owner`.
    pub fn host(owner: u32) -> PeerRule {
        PeerRule { uids: [0, owner] }
    }

    /// A server inside a user namespace with `uid_map` lines (inside, host,
    /// count): host root and the host `owner` as that namespace sees them,
    /// `overflow` (`/proc/sys/kernel/overflowuid`) for either that it does
    /// not map.
    pub fn in_user_namespace(uid_map: &[(u32, u32, u32)], owner: u32, overflow: u32) -> PeerRule {
        let inside = |host: u32| {
            uid_map
                .iter()
                .find(|(_, h, n)| host >= *h && host - *h < *n)
                .map_or(overflow, |(i, h, _)| i + (host - h))
        };
        PeerRule {
            uids: [inside(0), inside(owner)],
        }
    }

    /// Whether `uid` (as the server sees it) is served.
    pub fn allows(&self, uid: u32) -> bool {
        self.uids.contains(&uid)
    }
}

/// Limits of the server.
#[derive(Debug, Clone, Copy)]
pub struct ServerConfig {
    /// Who is served.
    pub peers: PeerRule,
    /// How long a client has to deliver a whole request once the server
    /// waits for one (after accept, and after each reply).
    pub read_timeout: Duration,
    /// How long a client has to take its reply.
    pub write_timeout: Duration,
    /// Connections at once; more are told `busy` and closed.
    pub max_clients: usize,
}

impl ServerConfig {
    /// The defaults for a server that serves `peers`: 2 s to send a request,
    /// 2 s to take a reply, 32 clients.
    pub fn new(peers: PeerRule) -> ServerConfig {
        ServerConfig {
            peers,
            read_timeout: Duration::from_secs(2),
            write_timeout: Duration::from_secs(2),
            max_clients: 32,
        }
    }
}

/// Where a connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading a request (deadline applies).
    Reading,
    /// A call waits for a process to end (no deadline; a hang-up ends it).
    Parked(WaitFor),
    /// Writing a reply (deadline applies).
    Writing,
}

#[derive(Debug)]
struct Conn {
    fd: OwnedFd,
    peer: Peer,
    greeted: bool,
    phase: Phase,
    deadline: Instant,
    /// The frame being read: header, then body.
    inbuf: Vec<u8>,
    /// Bytes the current frame needs in `inbuf` (HEADER_LEN until the
    /// header is checked).
    need: usize,
    /// Whether the current frame's header was checked (`need` is then the
    /// whole frame's length).
    header_checked: bool,
    fds: FdSet,
    out: Vec<u8>,
    sent: usize,
    out_fd: Option<OwnedFd>,
    close_after: bool,
}

/// What polling slot `i` belongs to.
#[derive(Debug, Clone, Copy)]
enum Slot {
    Listener,
    Events,
    Conn(usize),
}

/// The control server. See the module documentation.
pub struct Server<H: ControlHandler> {
    listener: OwnedFd,
    events: Option<OwnedFd>,
    handler: H,
    cfg: ServerConfig,
    conns: Vec<Option<Conn>>,
    pollfds: Vec<libc::pollfd>,
    slots: Vec<Slot>,
    accept_paused_until: Option<Instant>,
}

/// Connections accepted per loop turn, at most.
const ACCEPTS_PER_TURN: usize = 64;
/// Largest single read (a stack buffer; requests are at most 64 KiB).
const CHUNK: usize = 4096;
/// A reply buffer above this is freed after use, not kept.
const KEEP_OUT: usize = 64 * 1024;

impl<H: ControlHandler> Server<H> {
    /// A server on `listener` (a listening Unix stream socket; made
    /// non-blocking here), watching `events` (optional) for child exits.
    pub fn new(listener: OwnedFd, events: Option<OwnedFd>, handler: H, cfg: ServerConfig) -> io::Result<Self> {
        set_nonblocking(listener.as_raw_fd())?;
        let max = cfg.max_clients.max(1);
        Ok(Server {
            listener,
            events,
            handler,
            cfg: ServerConfig {
                max_clients: max,
                ..cfg
            },
            conns: (0..max).map(|_| None).collect(),
            pollfds: Vec::with_capacity(max + 2),
            slots: Vec::with_capacity(max + 2),
            accept_paused_until: None,
        })
    }

    /// The handler.
    pub fn handler(&self) -> &H {
        &self.handler
    }

    /// Connections open now.
    pub fn connections(&self) -> usize {
        self.conns.iter().filter(|c| c.is_some()).count()
    }

    /// Serves until the handler is finished, then flushes the replies still
    /// being written (each within its deadline) and returns.
    pub fn run(&mut self) -> io::Result<()> {
        while !self.handler.finished() {
            self.turn(None)?;
        }
        self.drain()
    }

    /// One turn of the loop: waits (at most `max_wait`, or until the next
    /// deadline, or forever) for something to happen and handles it.
    pub fn turn(&mut self, max_wait: Option<Duration>) -> io::Result<()> {
        let now = Instant::now();
        self.build_pollfds(now, true);
        let timeout = self.poll_timeout(now, max_wait);
        self.handler.before_wait();
        // SAFETY: `pollfds` is a live, initialised array of its length.
        let n = unsafe { libc::poll(self.pollfds.as_mut_ptr(), self.pollfds.len() as libc::nfds_t, timeout) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(())
            } else {
                Err(e)
            };
        }
        for i in 0..self.pollfds.len() {
            let revents = self.pollfds[i].revents;
            if revents == 0 {
                continue;
            }
            match self.slots[i] {
                Slot::Listener => self.accept_all(),
                Slot::Events => {
                    if !self.handler.on_event() {
                        self.events = None;
                    }
                }
                Slot::Conn(c) => self.service(c, revents),
            }
        }
        self.expire(Instant::now());
        self.answer_parked();
        Ok(())
    }

    fn build_pollfds(&mut self, now: Instant, accepting: bool) {
        self.pollfds.clear();
        self.slots.clear();
        let mut push = |fd: RawFd, events: i16, slot: Slot, pollfds: &mut Vec<libc::pollfd>| {
            pollfds.push(libc::pollfd { fd, events, revents: 0 });
            self.slots.push(slot);
        };
        if self.accept_paused_until.is_some_and(|t| t <= now) {
            self.accept_paused_until = None;
        }
        if accepting && self.accept_paused_until.is_none() {
            push(
                self.listener.as_raw_fd(),
                libc::POLLIN,
                Slot::Listener,
                &mut self.pollfds,
            );
        }
        if let Some(e) = &self.events {
            push(e.as_raw_fd(), libc::POLLIN, Slot::Events, &mut self.pollfds);
        }
        for (i, c) in self.conns.iter().enumerate() {
            if let Some(c) = c {
                // Hang-ups (POLLHUP, POLLERR) are always reported.
                let events = match c.phase {
                    Phase::Reading => libc::POLLIN,
                    Phase::Parked(_) => 0,
                    Phase::Writing => libc::POLLOUT,
                };
                push(c.fd.as_raw_fd(), events, Slot::Conn(i), &mut self.pollfds);
            }
        }
    }

    fn poll_timeout(&self, now: Instant, max_wait: Option<Duration>) -> i32 {
        let mut wait = max_wait;
        let deadlines = self
            .conns
            .iter()
            .flatten()
            .filter(|c| !matches!(c.phase, Phase::Parked(_)))
            .map(|c| c.deadline)
            .chain(self.accept_paused_until);
        for d in deadlines {
            let left = d.saturating_duration_since(now);
            wait = Some(wait.map_or(left, |w| w.min(left)));
        }
        match wait {
            None => -1,
            // Round up so a deadline is past when poll returns.
            Some(w) => i32::try_from(w.as_millis() + 1).unwrap_or(i32::MAX),
        }
    }

    /// Accepts what is waiting, at most [`ACCEPTS_PER_TURN`] per turn so a
    /// stream of connections cannot keep the loop from serving the others.
    fn accept_all(&mut self) {
        for _ in 0..ACCEPTS_PER_TURN {
            // SAFETY: accept4 on our listening fd with no address buffers.
            let fd = unsafe {
                libc::accept4(
                    self.listener.as_raw_fd(),
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                )
            };
            if fd < 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EINTR) | Some(libc::ECONNABORTED) => continue,
                    // Out of fds: stop polling the listener for a moment
                    // instead of spinning on it.
                    Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOBUFS) | Some(libc::ENOMEM) => {
                        self.accept_paused_until = Some(Instant::now() + Duration::from_millis(100));
                    }
                    _ => {}
                }
                return;
            }
            // SAFETY: accept4 just returned this fd; nothing else owns it.
            let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
            self.admit(fd);
        }
    }

    /// A new connection: checked, then given a slot (or refused with a reply).
    fn admit(&mut self, fd: OwnedFd) {
        let now = Instant::now();
        let peer = match peer_credentials(&fd) {
            Ok(p) => p,
            Err(_) => return, // gone already: dropping it closes it
        };
        let refusal = if !self.cfg.peers.allows(peer.uid) {
            Some(Reply::error(
                ErrorKind::PermissionDenied,
                format!(
                    "uid {} may not control this sandbox (only root and its creator: uids {} and {} as the supervisor sees them)",
                    peer.uid, self.cfg.peers.uids[0], self.cfg.peers.uids[1]
                ),
            ))
        } else {
            None
        };
        let free = self.conns.iter().position(Option::is_none);
        let (refusal, slot) = match (refusal, free) {
            (Some(r), _) => (Some(r), None),
            (None, None) => (
                Some(Reply::error(
                    ErrorKind::Busy,
                    format!("{} clients are connected already; try again", self.cfg.max_clients),
                )),
                None,
            ),
            (None, Some(i)) => (None, Some(i)),
        };
        if let Some(r) = refusal {
            // Best effort, never blocking: the reply fits the socket buffer.
            let mut out = Vec::new();
            encode_reply(&r, &mut out);
            let _ = wire::send(fd.as_raw_fd(), &out, &[]);
            return;
        }
        let i = slot.expect("a free slot");
        self.conns[i] = Some(Conn {
            fd,
            peer,
            greeted: false,
            phase: Phase::Reading,
            deadline: now + self.cfg.read_timeout,
            inbuf: Vec::new(),
            need: HEADER_LEN,
            header_checked: false,
            fds: FdSet::default(),
            out: Vec::new(),
            sent: 0,
            out_fd: None,
            close_after: false,
        });
    }

    fn service(&mut self, i: usize, revents: i16) {
        let Some(c) = self.conns[i].as_mut() else { return };
        match c.phase {
            Phase::Reading if revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 => self.read(i),
            Phase::Writing if revents & (libc::POLLOUT | libc::POLLHUP | libc::POLLERR) != 0 => self.write(i),
            // A hang-up while parked: the call is dropped, nothing changes.
            Phase::Parked(_) if revents & (libc::POLLHUP | libc::POLLERR) != 0 => self.close(i),
            _ => {}
        }
    }

    /// Reads what is there of the current frame; dispatches it once whole.
    fn read(&mut self, i: usize) {
        let mut chunk = [0u8; CHUNK];
        loop {
            let c = self.conns[i].as_mut().expect("reading a live connection");
            let want = (c.need - c.inbuf.len()).min(CHUNK);
            let n = match wire::recv(c.fd.as_raw_fd(), &mut chunk[..want], &mut c.fds) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => return self.close(i),
            };
            if n == 0 {
                // End of stream: between frames it is a goodbye; inside one
                // the client half-closed mid-frame and may still read why.
                if c.inbuf.is_empty() && c.fds.count() == 0 {
                    return self.close(i);
                }
                let need = c.need;
                let have = c.inbuf.len();
                let e = proto::ProtocolError::Truncated { have, need };
                return self.reply_and_close(i, e.to_reply());
            }
            c.inbuf.extend_from_slice(&chunk[..n]);
            if c.inbuf.len() < c.need {
                continue;
            }
            if !c.header_checked {
                let header: &[u8; HEADER_LEN] = c.inbuf[..].try_into().expect("exactly a header");
                match parse_header(header, MAX_REQUEST) {
                    Ok(len) => {
                        c.need = HEADER_LEN + len;
                        c.header_checked = true;
                    }
                    Err(e) => return self.reply_and_close(i, e.to_reply()),
                }
            }
            if c.inbuf.len() == c.need {
                return self.dispatch(i);
            }
        }
    }

    /// Decodes the whole frame in `inbuf` and answers it.
    fn dispatch(&mut self, i: usize) {
        let clients = self.connections() as u32;
        let parked = self.parked() as u32;
        let c = self.conns[i].as_mut().expect("dispatching a live connection");
        let decoded = proto::decode_request_body(&c.inbuf[HEADER_LEN..]);
        c.inbuf.clear();
        c.need = HEADER_LEN;
        c.header_checked = false;
        let fds = c.fds.count();
        let mut fdset = c.fds.take();
        let req = match decoded {
            Ok(r) => r,
            // The header was fine, so the next frame can still be found.
            Err(e) => return self.reply(i, e.to_reply()),
        };
        if fds != req.fds_expected() {
            let msg = format!(
                "{} takes {} fds with its frame, {fds} came",
                req.name(),
                req.fds_expected()
            );
            drop(fdset);
            return self.reply(i, Reply::error(ErrorKind::FdMismatch, msg));
        }
        match (&req, c.greeted) {
            (Request::Hello { .. }, true) => {
                return self.reply(i, Reply::error(ErrorKind::OutOfOrder, "hello twice on one connection"))
            }
            (Request::Hello { .. }, false) => {
                c.greeted = true;
                let (sandbox, status) = self.handler.hello();
                let hello = Reply::Hello {
                    protocol: PROTOCOL_VERSION,
                    server: concat!("sandboxctl ", env!("CARGO_PKG_VERSION")).into(),
                    sandbox,
                    status,
                };
                return self.reply(i, hello);
            }
            (_, false) => {
                let msg = format!("{} before hello: a connection starts with the handshake", req.name());
                return self.reply(i, Reply::error(ErrorKind::OutOfOrder, msg));
            }
            (_, true) => {}
        }
        let peer = c.peer;
        let call = Call {
            request: req,
            peer: &peer,
            fds: std::mem::take(&mut fdset),
            clients,
            parked,
        };
        match self.handler.handle(call) {
            Outcome::Reply(r) => self.reply(i, r),
            Outcome::ReplyWithFd(r, fd) => {
                self.conns[i].as_mut().expect("live").out_fd = Some(fd);
                self.reply(i, r)
            }
            Outcome::Park(w) => self.conns[i].as_mut().expect("live").phase = Phase::Parked(w),
        }
    }

    /// Queues a reply and tries to write it at once.
    fn reply(&mut self, i: usize, r: Reply) {
        let c = self.conns[i].as_mut().expect("replying on a live connection");
        c.out.clear();
        c.sent = 0;
        encode_reply(&r, &mut c.out);
        c.phase = Phase::Writing;
        c.deadline = Instant::now() + self.cfg.write_timeout;
        self.write(i);
    }

    /// Queues a last reply: the connection closes once it is written (or its
    /// deadline passes). For failures that lose the frame boundary.
    fn reply_and_close(&mut self, i: usize, r: Reply) {
        let c = self.conns[i].as_mut().expect("replying on a live connection");
        c.close_after = true;
        c.fds.clear();
        self.reply(i, r);
    }

    fn write(&mut self, i: usize) {
        loop {
            let c = self.conns[i].as_mut().expect("writing a live connection");
            let fd_raw = c.out_fd.as_ref().map(|f| f.as_raw_fd());
            let fds: &[RawFd] = match (&fd_raw, c.sent) {
                (Some(f), 0) => std::slice::from_ref(f),
                _ => &[],
            };
            match wire::send(c.fd.as_raw_fd(), &c.out[c.sent..], fds) {
                Ok(n) => {
                    c.sent += n;
                    if n > 0 {
                        c.out_fd = None;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => return self.close(i),
            }
            if c.sent == c.out.len() {
                if c.close_after {
                    return self.close(i);
                }
                if c.out.capacity() > KEEP_OUT {
                    c.out = Vec::new();
                } else {
                    c.out.clear();
                }
                c.sent = 0;
                c.phase = Phase::Reading;
                c.deadline = Instant::now() + self.cfg.read_timeout;
                // A pipelined request may already be waiting: the next poll
                // reports it (level-triggered). Reading it here would recurse
                // once per pipelined call, and a client could overflow the
                // stack with a burst of them.
                return;
            }
        }
    }

    fn close(&mut self, i: usize) {
        // Dropping the connection closes its socket, any fds that came with
        // a half-read frame and any fd a reply was to carry.
        self.conns[i] = None;
    }

    /// Deadlines: a request not read in time gets a `timeout` reply (and the
    /// connection is closed); a reply not taken in time is dropped.
    fn expire(&mut self, now: Instant) {
        for i in 0..self.conns.len() {
            let Some(c) = &self.conns[i] else { continue };
            if c.deadline > now || matches!(c.phase, Phase::Parked(_)) {
                continue;
            }
            match c.phase {
                Phase::Reading => {
                    let msg = if c.inbuf.is_empty() {
                        format!("no request within {:?}", self.cfg.read_timeout)
                    } else {
                        format!(
                            "request not complete within {:?} ({} of {} bytes)",
                            self.cfg.read_timeout,
                            c.inbuf.len(),
                            c.need
                        )
                    };
                    self.reply_and_close(i, Reply::error(ErrorKind::Timeout, msg));
                }
                _ => self.close(i),
            }
        }
    }

    fn parked(&self) -> usize {
        self.conns
            .iter()
            .flatten()
            .filter(|c| matches!(c.phase, Phase::Parked(_)))
            .count()
    }

    fn answer_parked(&mut self) {
        for i in 0..self.conns.len() {
            let Some(Phase::Parked(w)) = self.conns[i].as_ref().map(|c| c.phase) else {
                continue;
            };
            if let Some(r) = self.handler.poll_wait(w) {
                self.reply(i, r);
            }
        }
    }

    /// The end: parked calls get their answer (or an error), half-read
    /// requests are dropped, replies being written get until their deadline.
    fn drain(&mut self) -> io::Result<()> {
        self.answer_parked();
        for i in 0..self.conns.len() {
            match self.conns[i].as_ref().map(|c| c.phase) {
                Some(Phase::Parked(_)) => {
                    self.reply_and_close(i, Reply::error(ErrorKind::Failed, "the supervisor is exiting"));
                }
                Some(Phase::Reading) => self.close(i),
                _ => {}
            }
        }
        for c in self.conns.iter_mut().flatten() {
            c.close_after = true;
        }
        while self.conns.iter().any(Option::is_some) {
            let now = Instant::now();
            self.build_pollfds(now, false);
            let timeout = self.poll_timeout(now, None);
            // SAFETY: `pollfds` is a live, initialised array of its length.
            let n = unsafe { libc::poll(self.pollfds.as_mut_ptr(), self.pollfds.len() as libc::nfds_t, timeout) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            for k in 0..self.pollfds.len() {
                if let (Slot::Conn(i), r) = (self.slots[k], self.pollfds[k].revents) {
                    if r != 0 {
                        self.write(i);
                    }
                }
            }
            let now = Instant::now();
            for i in 0..self.conns.len() {
                if self.conns[i].as_ref().is_some_and(|c| c.deadline <= now) {
                    self.close(i);
                }
            }
        }
        Ok(())
    }
}

fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a valid fd with integer arguments only.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// SO_PEERCRED of a connected Unix socket.
pub fn peer_credentials(fd: &impl AsFd) -> io::Result<Peer> {
    let c = nix::sys::socket::getsockopt(fd, nix::sys::socket::sockopt::PeerCredentials)
        .map_err(|e| io::Error::from_raw_os_error(e as i32))?;
    Ok(Peer {
        pid: c.pid(),
        uid: c.uid(),
        gid: c.gid(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_rule_in_a_user_namespace() {
        // The default nobody mapping: neither host root nor a creator uid
        // 1000 is mapped; both read as the overflow uid.
        let nobody = PeerRule::in_user_namespace(&[(65534, 65534, 1)], 1000, 65534);
        assert_eq!(nobody.uids, [65534, 65534]);
        // Root mapped to 0, the creator in a range.
        let r = PeerRule::in_user_namespace(&[(0, 0, 1), (1, 100_000, 65536)], 100_005, 65534);
        assert_eq!(r.uids, [0, 6]);
        assert!(r.allows(0) && r.allows(6) && !r.allows(65534) && !r.allows(5));
        // The range's end is exclusive.
        let r = PeerRule::in_user_namespace(&[(0, 1000, 10)], 1010, 65534);
        assert_eq!(r.uids, [65534, 65534]);
        assert_eq!(PeerRule::host(1000).uids, [0, 1000]);
    }

    /// The server's fixed heap (connection slots and poll vectors, allocated
    /// once) is a small part of the supervisor's 100 KiB idle budget.
    #[test]
    fn the_fixed_allocation_is_small() {
        let n = ServerConfig::new(PeerRule::host(0)).max_clients;
        let total = std::mem::size_of::<Option<Conn>>() * n
            + (std::mem::size_of::<libc::pollfd>() + std::mem::size_of::<Slot>()) * (n + 2);
        eprintln!("server slots for {n} clients: {total} bytes");
        assert!(total <= 12 * 1024, "{total} bytes");
    }
}
