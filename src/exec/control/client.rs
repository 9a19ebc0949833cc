//! The CLI's side of the control socket: connect with a timeout, call, read
//! the reply (bounded by [`MAX_REPLY`] and a deadline), and the readiness
//! wait of `create` (poll until the supervisor answers the handshake, 10 s at
//! most, as the seed does).
//!
//! A connection's first call is preceded by `hello` in the same burst: the
//! client sends both frames and then reads both replies, so the handshake
//! costs no extra round trip.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::proto::{
    decode_reply_body, encode_request, parse_header, ErrorKind, ProtocolError, Reply, Request, Status, HEADER_LEN,
    MAX_REPLY, PROTOCOL_VERSION,
};
use super::wire::{self, FdSet};

/// How long `create` waits for a new supervisor to answer (the seed's 10 s).
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a call waits for its reply by default (`wait` waits as long as
/// the process runs).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// What the supervisor said in the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelloInfo {
    /// Its program and version.
    pub server: String,
    /// The sandbox id it serves.
    pub sandbox: String,
    /// The sandbox's status.
    pub status: Status,
}

/// A failed call, from the client's side.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket would not connect.
    #[error("connecting to the control socket {path}: {source}")]
    Connect {
        /// The socket.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Sending or receiving failed.
    #[error("{what} on the control socket: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// No reply in time.
    #[error("{call}: no reply from the supervisor within {after:?}")]
    Timeout {
        /// The call.
        call: &'static str,
        /// How long it waited.
        after: Duration,
    },
    /// The supervisor closed the connection before replying (it exited or
    /// was killed).
    #[error("{call}: the supervisor closed the connection without replying (it exited or was killed)")]
    Closed {
        /// The call.
        call: &'static str,
    },
    /// The reply is not a valid frame.
    #[error("{call}: invalid reply: {source}")]
    Protocol {
        /// The call.
        call: &'static str,
        /// Why.
        source: ProtocolError,
    },
    /// The supervisor answered with an error.
    #[error("{call}: {message}")]
    Remote {
        /// The call.
        call: &'static str,
        /// The error's kind.
        kind: ErrorKind,
        /// The supervisor's message.
        message: String,
    },
    /// A reply of the wrong type for the call.
    #[error("{call}: unexpected reply {got}")]
    Unexpected {
        /// The call.
        call: &'static str,
        /// What came.
        got: String,
    },
    /// The request could not be encoded (too large).
    #[error("{call}: {source}")]
    Request {
        /// The call.
        call: &'static str,
        /// Why.
        source: ProtocolError,
    },
    /// The supervisor never answered the handshake within the readiness wait.
    #[error("the supervisor did not answer on {path} within {waited:?} (last: {last})")]
    NotReady {
        /// The socket.
        path: PathBuf,
        /// How long the wait lasted.
        waited: Duration,
        /// The last attempt's failure.
        last: Box<ClientError>,
    },
    /// The supervisor ended during the readiness wait.
    #[error("the supervisor exited before it answered on {path}")]
    SupervisorGone {
        /// The socket.
        path: PathBuf,
    },
}

impl ClientError {
    /// The error kind when the supervisor answered with an error.
    pub fn remote_kind(&self) -> Option<ErrorKind> {
        match self {
            ClientError::Remote { kind, .. } => Some(*kind),
            _ => None,
        }
    }
}

/// A connection to one sandbox's supervisor.
#[derive(Debug)]
pub struct Client {
    fd: OwnedFd,
    hello: Option<HelloInfo>,
    timeout: Duration,
}

impl Client {
    /// Connects to the socket at `path`, waiting at most `timeout` for a
    /// full backlog to make room. `timeout` is also each call's default
    /// deadline.
    pub fn connect(path: &Path, timeout: Duration) -> Result<Client, ClientError> {
        use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};
        let err = |e: nix::Error| ClientError::Connect {
            path: path.to_path_buf(),
            source: io::Error::from_raw_os_error(e as i32),
        };
        let addr = UnixAddr::new(path).map_err(err)?;
        let fd = socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            None,
        )
        .map_err(err)?;
        let deadline = Instant::now() + timeout;
        loop {
            match connect(fd.as_raw_fd(), &addr) {
                Ok(()) => break,
                Err(nix::Error::EINTR) => continue,
                // A Unix socket's backlog is full: EAGAIN, not EINPROGRESS.
                Err(nix::Error::EAGAIN) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(2)),
                Err(e) => return Err(err(e)),
            }
        }
        Ok(Client {
            fd,
            hello: None,
            timeout,
        })
    }

    /// The handshake's answer, once a call was made.
    pub fn hello_info(&self) -> Option<&HelloInfo> {
        self.hello.as_ref()
    }

    /// Performs the handshake alone (the readiness probe).
    pub fn hello(&mut self) -> Result<HelloInfo, ClientError> {
        if self.hello.is_none() {
            let deadline = Instant::now() + self.timeout;
            self.send_hello()?;
            self.read_hello(Some(deadline))?;
        }
        Ok(self.hello.clone().expect("set by read_hello"))
    }

    /// One call, with its default deadline (none for `wait` and `wait_pid`,
    /// which last as long as the process). An error reply is
    /// [`ClientError::Remote`].
    pub fn call(&mut self, req: &Request) -> Result<Reply, ClientError> {
        self.call_with_fds(req, &[]).map(|(r, _)| r)
    }

    /// One call with fds attached (an `exec`'s stdio), returning the fd that
    /// came with the reply, if any (an `exec`'s pty master).
    pub fn call_with_fds(
        &mut self,
        req: &Request,
        fds: &[BorrowedFd<'_>],
    ) -> Result<(Reply, Option<OwnedFd>), ClientError> {
        let deadline = match req {
            Request::Wait {} | Request::WaitPid { .. } => None,
            _ => Some(Instant::now() + self.timeout),
        };
        self.call_until(req, fds, deadline)
    }

    /// One call that may take up to `limit` (`None`: as long as it takes),
    /// instead of the default: `start` when the supervisor runs
    /// `startContainer` hooks first.
    pub fn call_within(&mut self, req: &Request, limit: Option<Duration>) -> Result<Reply, ClientError> {
        self.call_until(req, &[], limit.map(|l| Instant::now() + l))
            .map(|(r, _)| r)
    }

    fn call_until(
        &mut self,
        req: &Request,
        fds: &[BorrowedFd<'_>],
        deadline: Option<Instant>,
    ) -> Result<(Reply, Option<OwnedFd>), ClientError> {
        let call = req.name();
        let mut frame = Vec::new();
        encode_request(req, &mut frame).map_err(|source| ClientError::Request { call, source })?;
        let greet = self.hello.is_none();
        if greet {
            // Its own sendmsg, so the request's fds are not taken as the
            // handshake's.
            self.send_hello()?;
        }
        let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
        self.send_all(&frame, &raw, call, deadline)?;
        if greet {
            self.read_hello(deadline)?;
        }
        let (reply, mut got) = self.read_reply(call, deadline)?;
        if let Reply::Error { kind, message } = reply {
            return Err(ClientError::Remote { call, kind, message });
        }
        let [first, ..] = got.take();
        let fd = first;
        Ok((reply, fd))
    }

    fn send_hello(&mut self) -> Result<(), ClientError> {
        let mut frame = Vec::new();
        let hello = Request::Hello {
            client: concat!("sandboxctl ", env!("CARGO_PKG_VERSION")).into(),
        };
        encode_request(&hello, &mut frame).expect("hello is small");
        self.send_all(&frame, &[], "hello", Some(Instant::now() + self.timeout))
    }

    fn read_hello(&mut self, deadline: Option<Instant>) -> Result<(), ClientError> {
        match self.read_reply("hello", deadline)?.0 {
            Reply::Hello {
                protocol,
                server,
                sandbox,
                status,
            } if protocol == PROTOCOL_VERSION => {
                self.hello = Some(HelloInfo {
                    server,
                    sandbox,
                    status,
                });
                Ok(())
            }
            Reply::Error { kind, message } => Err(ClientError::Remote {
                call: "hello",
                kind,
                message,
            }),
            other => Err(ClientError::Unexpected {
                call: "hello",
                got: format!("{other:?}"),
            }),
        }
    }

    fn send_all(
        &mut self,
        mut buf: &[u8],
        mut fds: &[RawFd],
        call: &'static str,
        deadline: Option<Instant>,
    ) -> Result<(), ClientError> {
        while !buf.is_empty() {
            match wire::send(self.fd.as_raw_fd(), buf, fds) {
                Ok(n) => {
                    buf = &buf[n..];
                    fds = &[];
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.wait_for(libc::POLLOUT, call, deadline)?,
                Err(e) if matches!(e.raw_os_error(), Some(libc::EPIPE) | Some(libc::ECONNRESET)) => {
                    return Err(self.refusal(call))
                }
                Err(source) => {
                    return Err(ClientError::Io {
                        what: "sending",
                        source,
                    })
                }
            }
        }
        Ok(())
    }

    /// The supervisor closed before taking the request: it may have said
    /// why first (a refused peer, too many clients). That answer, if any.
    fn refusal(&mut self, call: &'static str) -> ClientError {
        match self.read_reply(call, Some(Instant::now() + Duration::from_millis(100))) {
            Ok((Reply::Error { kind, message }, _)) => ClientError::Remote { call, kind, message },
            _ => ClientError::Closed { call },
        }
    }

    fn wait_for(&self, events: i16, call: &'static str, deadline: Option<Instant>) -> Result<(), ClientError> {
        loop {
            let ms = match deadline {
                None => -1,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(ClientError::Timeout {
                            call,
                            after: self.timeout,
                        });
                    }
                    i32::try_from(left.as_millis() + 1).unwrap_or(i32::MAX)
                }
            };
            match wire::poll_one(self.fd.as_raw_fd(), events, ms) {
                Ok(0) => continue,
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(ClientError::Io {
                        what: "waiting",
                        source,
                    })
                }
            }
        }
    }

    /// Reads one reply frame: the header (checked against [`MAX_REPLY`]
    /// before anything is allocated for the body), then the body.
    fn read_reply(&mut self, call: &'static str, deadline: Option<Instant>) -> Result<(Reply, FdSet), ClientError> {
        let mut fds = FdSet::default();
        let mut header = [0u8; HEADER_LEN];
        self.read_exact(&mut header, &mut fds, call, deadline)?;
        let len = parse_header(&header, MAX_REPLY).map_err(|source| ClientError::Protocol { call, source })?;
        let mut body = vec![0u8; len];
        self.read_exact(&mut body, &mut fds, call, deadline)?;
        let reply = decode_reply_body(&body).map_err(|source| ClientError::Protocol { call, source })?;
        Ok((reply, fds))
    }

    fn read_exact(
        &mut self,
        buf: &mut [u8],
        fds: &mut FdSet,
        call: &'static str,
        deadline: Option<Instant>,
    ) -> Result<(), ClientError> {
        let mut got = 0;
        while got < buf.len() {
            match wire::recv(self.fd.as_raw_fd(), &mut buf[got..], fds) {
                Ok(0) => return Err(ClientError::Closed { call }),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.wait_for(libc::POLLIN, call, deadline)?,
                Err(e) if e.raw_os_error() == Some(libc::ECONNRESET) => return Err(ClientError::Closed { call }),
                Err(source) => {
                    return Err(ClientError::Io {
                        what: "receiving",
                        source,
                    })
                }
            }
        }
        Ok(())
    }
}

/// `create`'s readiness wait: tries the handshake on `path` until it is
/// answered, for at most `timeout`, pausing a little longer each time (1 ms
/// up to 20 ms). `alive` is asked between tries; once it says the
/// supervisor is gone, waiting stops. An error answer (a refused peer, a
/// version this client does not speak) ends the wait at once.
pub fn wait_ready(path: &Path, timeout: Duration, alive: &mut dyn FnMut() -> bool) -> Result<HelloInfo, ClientError> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        let left = timeout.saturating_sub(start.elapsed());
        let attempt = Client::connect(path, left.max(Duration::from_millis(1))).and_then(|mut c| c.hello());
        let last = match attempt {
            Ok(h) => return Ok(h),
            Err(e @ (ClientError::Remote { .. } | ClientError::Protocol { .. } | ClientError::Unexpected { .. })) => {
                return Err(e)
            }
            Err(e) => e,
        };
        if !alive() {
            return Err(ClientError::SupervisorGone {
                path: path.to_path_buf(),
            });
        }
        let waited = start.elapsed();
        if waited >= timeout {
            return Err(ClientError::NotReady {
                path: path.to_path_buf(),
                waited,
                last: Box::new(last),
            });
        }
        std::thread::sleep(pause.min(timeout - waited));
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}
