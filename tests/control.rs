//! The control server and client, in process: a real Unix socket in a
//! temporary directory, the real server loop, the real client, and a fake
//! handler in place of the interpreter. Tests that count this process's
//! open fds hold one lock, so no other test of this file opens fds meanwhile.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::frames::{mutate_frame, Rng};
use sandboxctl::exec::control::client::{self, Client, ClientError};
use sandboxctl::exec::control::proto::{
    self, encode_request, ErrorKind, ExecStdio, ExitStatus, ProcessInfo, Reply, Request, Stats, Status,
    SupervisorState, HEADER_LEN, MAX_REPLY, MAX_REQUEST,
};
use sandboxctl::exec::control::server::{Call, ControlHandler, Outcome, PeerRule, Server, ServerConfig, WaitFor};

static SERIAL: Mutex<()> = Mutex::new(());

/// Counts allocations made by the current thread (the server's, when a test
/// drives it in its own thread).
struct Counting;

thread_local! {
    static ALLOCS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

fn count() {
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: defers to the system allocator; the counter is a thread-local Cell
// without a destructor, so counting never allocates or reenters.
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: std::alloc::Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's contract, passed on.
        unsafe { std::alloc::System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: std::alloc::Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { std::alloc::System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: std::alloc::Layout, n: usize) -> *mut u8 {
        count();
        // SAFETY: the caller's contract, passed on.
        unsafe { std::alloc::System.realloc(p, l, n) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn allocs() -> u64 {
    ALLOCS.with(|c| c.get())
}

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn pipe() -> (fs::File, fs::File) {
    let (r, w) = nix::unistd::pipe().unwrap();
    (r.into(), w.into())
}

fn open_fds() -> usize {
    fs::read_dir("/proc/self/fd").unwrap().count()
}

/// A temporary directory, removed on drop.
struct TempDir(PathBuf);
impl TempDir {
    fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "sandboxctl-control-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn sock(&self) -> PathBuf {
        self.0.join("control.sock")
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The fake supervisor: a tiny state machine over the calls, with a log of
/// what it performed.
struct Fake {
    status: Status,
    exit: Option<ExitStatus>,
    execs: Vec<(i32, Option<ExitStatus>)>,
    finished: bool,
    log: Arc<Mutex<Vec<String>>>,
    child: Option<std::process::Child>,
}

impl Fake {
    fn new() -> (Fake, Arc<Mutex<Vec<String>>>) {
        let log = Arc::new(Mutex::new(Vec::new()));
        (
            Fake {
                status: Status::Created,
                exit: None,
                execs: vec![],
                finished: false,
                log: log.clone(),
                child: None,
            },
            log,
        )
    }
    fn wrong(&self, what: &str) -> Outcome {
        Outcome::Reply(Reply::error(
            ErrorKind::WrongState,
            format!("{what}: the sandbox is {}", self.status),
        ))
    }
}

impl ControlHandler for Fake {
    fn hello(&mut self) -> (String, Status) {
        ("fake".into(), self.status)
    }

    fn handle(&mut self, call: Call<'_>) -> Outcome {
        self.log.lock().unwrap().push(call.request.name().into());
        let done = Outcome::Reply(Reply::Done);
        match call.request {
            Request::State {} => Outcome::Reply(Reply::State {
                status: self.status,
                workload_pid: (self.status != Status::Created).then_some(2),
                exit: self.exit,
            }),
            Request::Start {} if self.status == Status::Created => {
                self.status = Status::Running;
                done
            }
            Request::Start {} => self.wrong("start"),
            Request::Exec { stdio, process } if self.status == Status::Running => {
                let pid = 100 + self.execs.len() as i32;
                self.execs.push((pid, None));
                match stdio {
                    ExecStdio::Attached => {
                        let [_, out, _] = call.fds;
                        let mut out = fs::File::from(out.expect("stdout came"));
                        let args = process.args().clone().unwrap_or_default().join(" ");
                        writeln!(out, "ran {args}").unwrap();
                        Outcome::Reply(Reply::Exec { pid })
                    }
                    ExecStdio::Pty => {
                        let (r, mut w) = pipe();
                        w.write_all(b"pty master").unwrap();
                        Outcome::ReplyWithFd(Reply::Exec { pid }, OwnedFd::from(r))
                    }
                    ExecStdio::Null => Outcome::Reply(Reply::Exec { pid }),
                }
            }
            Request::Exec { .. } => self.wrong("exec"),
            Request::SignalContainer { signal, .. } if self.status == Status::Running => {
                self.exit = Some(ExitStatus::Signaled {
                    signal,
                    core_dumped: false,
                });
                self.status = Status::Stopped;
                done
            }
            Request::SignalProcess { pid, signal, .. } => match self.execs.iter_mut().find(|(p, _)| *p == pid) {
                Some((_, e)) => {
                    *e = Some(ExitStatus::Signaled {
                        signal,
                        core_dumped: false,
                    });
                    done
                }
                None => Outcome::Reply(Reply::error(ErrorKind::NoSuchProcess, format!("no process {pid}"))),
            },
            Request::SignalContainer { .. } => self.wrong("kill"),
            Request::Wait {} => match self.exit {
                Some(exit) => Outcome::Reply(Reply::Exited { pid: 2, exit }),
                None => Outcome::Park(WaitFor::Workload),
            },
            Request::WaitPid { pid } if self.execs.iter().any(|(p, _)| *p == pid) => Outcome::Park(WaitFor::Pid(pid)),
            Request::WaitPid { pid } => Outcome::Reply(Reply::error(ErrorKind::NoSuchProcess, format!("no process {pid}"))),
            Request::Ps {} => Outcome::Reply(Reply::Processes {
                processes: vec![ProcessInfo {
                    pid: 1,
                    ppid: 0,
                    uid: 0,
                    state: "S".into(),
                    args: vec!["supervisor".into()],
                }],
            }),
            Request::Stats {} => Outcome::Reply(Reply::Stats { stats: Stats::default() }),
            Request::Pause {} if self.status == Status::Running => {
                self.status = Status::Paused;
                done
            }
            Request::Pause {} => self.wrong("pause"),
            Request::Resume {} if self.status == Status::Paused => {
                self.status = Status::Running;
                done
            }
            Request::Resume {} => self.wrong("resume"),
            Request::Stacks {} => Outcome::Reply(Reply::Stacks {
                supervisor: SupervisorState {
                    status: self.status,
                    clients: call.clients,
                    parked: call.parked,
                    children: 0,
                },
                processes: vec![],
            }),
            Request::Checkpoint { .. } | Request::Restore { .. } => Outcome::Reply(Reply::error(
                ErrorKind::Unsupported,
                "checkpoint: criu check failed (vdso: Unexpected rt vDSO area bounds); a CRIU that runs on this kernel is needed; nothing changed",
            )),
            Request::Destroy {} => {
                self.finished = true;
                self.status = Status::Stopped;
                done
            }
            Request::Hello { .. } => unreachable!("the server answers hello"),
        }
    }

    fn poll_wait(&mut self, wait: WaitFor) -> Option<Reply> {
        match wait {
            WaitFor::Workload => self.exit.map(|exit| Reply::Exited { pid: 2, exit }),
            WaitFor::Pid(pid) => self
                .execs
                .iter()
                .find(|(p, _)| *p == pid)
                .and_then(|(_, e)| *e)
                .map(|exit| Reply::Exited { pid, exit }),
        }
    }

    fn on_event(&mut self) -> bool {
        let child = self.child.as_mut().expect("an event fd only with a child");
        match child.try_wait().unwrap() {
            Some(st) => {
                use std::os::unix::process::ExitStatusExt;
                self.exit = ExitStatus::from_raw(st.into_raw());
                self.status = Status::Stopped;
                self.child = None;
                false
            }
            None => true,
        }
    }

    fn finished(&self) -> bool {
        self.finished
    }
}

fn listen(dir: &TempDir) -> OwnedFd {
    OwnedFd::from(UnixListener::bind(dir.sock()).unwrap())
}

fn cfg() -> ServerConfig {
    // SAFETY: geteuid has no preconditions.
    ServerConfig::new(PeerRule::host(unsafe { libc::geteuid() }))
}

/// Runs a server with `handler` in a thread until the handler is finished.
fn spawn(dir: &TempDir, handler: Fake, events: Option<OwnedFd>, cfg: ServerConfig) -> JoinHandle<()> {
    let l = listen(dir);
    std::thread::spawn(move || {
        let mut s = Server::new(l, events, handler, cfg).unwrap();
        s.run().unwrap();
        assert_eq!(s.connections(), 0, "every connection closed at the end");
    })
}

fn client(dir: &TempDir) -> Client {
    Client::connect(&dir.sock(), Duration::from_secs(5)).unwrap()
}

/// Destroys the fake sandbox (retrying while the server is full, until it has
/// seen a test's clients go) and waits for the server to end.
fn destroy(dir: &TempDir, t: JoinHandle<()>) {
    let start = Instant::now();
    loop {
        match client(dir).call(&Request::Destroy {}) {
            Ok(_) => break,
            Err(e) if e.remote_kind() == Some(ErrorKind::Busy) && start.elapsed() < Duration::from_secs(2) => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(e) => panic!("destroy: {e}"),
        }
    }
    t.join().unwrap();
}

fn fd_list() -> Vec<String> {
    fs::read_dir("/proc/self/fd")
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            format!("{:?} -> {:?}", e.file_name(), fs::read_link(e.path()).ok())
        })
        .collect()
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut f = b"SBX\x01".to_vec();
    f.extend_from_slice(&(body.len() as u32).to_be_bytes());
    f.extend_from_slice(body);
    f
}

fn req(r: &Request) -> Vec<u8> {
    let mut out = Vec::new();
    encode_request(r, &mut out).unwrap();
    out
}

fn hello() -> Vec<u8> {
    req(&Request::Hello { client: "test".into() })
}

/// A raw connection with a 3 s read timeout.
fn raw(dir: &TempDir) -> UnixStream {
    let s = UnixStream::connect(dir.sock()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s
}

/// Reads one reply frame; `None` at end of stream.
fn read_reply(s: &mut UnixStream) -> Option<Reply> {
    let mut h = [0u8; HEADER_LEN];
    if let Err(e) = s.read_exact(&mut h) {
        // Closed; a reset when the server closed with bytes of ours unread.
        assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
            ),
            "{e}"
        );
        return None;
    }
    let len = proto::parse_header(&h, MAX_REPLY).unwrap();
    let mut body = vec![0; len];
    s.read_exact(&mut body).unwrap();
    Some(proto::decode_reply_body(&body).unwrap())
}

fn error_kind(r: Option<Reply>) -> ErrorKind {
    match r {
        Some(Reply::Error { kind, .. }) => kind,
        other => panic!("not an error reply: {other:?}"),
    }
}

#[test]
fn lifecycle_calls_through_the_client() {
    let _g = serial();
    let dir = TempDir::new("calls");
    let (fake, log) = Fake::new();
    let t = spawn(&dir, fake, None, cfg());
    let mut c = client(&dir);
    assert_eq!(c.hello().unwrap().status, Status::Created);
    assert_eq!(c.hello_info().unwrap().sandbox, "fake");
    c.call(&Request::Start {}).unwrap();
    let e = c.call(&Request::Start {}).unwrap_err();
    assert_eq!(e.remote_kind(), Some(ErrorKind::WrongState), "{e}");
    assert_eq!(e.to_string(), "start: start: the sandbox is running");
    c.call(&Request::Pause {}).unwrap();
    assert_eq!(
        c.call(&Request::State {}).unwrap(),
        Reply::State {
            status: Status::Paused,
            workload_pid: Some(2),
            exit: None
        }
    );
    assert_eq!(
        c.call(&Request::Pause {}).unwrap_err().remote_kind(),
        Some(ErrorKind::WrongState)
    );
    let e = c
        .call(&Request::Checkpoint {
            image_path: "/tmp/x".into(),
            leave_running: false,
        })
        .unwrap_err();
    assert_eq!(e.remote_kind(), Some(ErrorKind::Unsupported));
    assert!(e.to_string().contains("criu check failed"), "{e}");
    c.call(&Request::Resume {}).unwrap();
    let Reply::Stacks { supervisor, .. } = c.call(&Request::Stacks {}).unwrap() else {
        panic!()
    };
    assert_eq!((supervisor.clients, supervisor.parked), (1, 0));
    // A fresh connection greets first, in the same burst as its first call.
    let mut c2 = client(&dir);
    assert!(matches!(c2.call(&Request::Ps {}).unwrap(), Reply::Processes { .. }));
    assert_eq!(c2.hello_info().unwrap().status, Status::Running);
    drop((c, c2));
    destroy(&dir, t);
    assert_eq!(
        *log.lock().unwrap(),
        [
            "start",
            "start",
            "pause",
            "state",
            "pause",
            "checkpoint",
            "resume",
            "stacks",
            "ps",
            "destroy"
        ]
    );
}

#[test]
fn calls_before_hello_and_hello_twice_are_out_of_order() {
    let _g = serial();
    let dir = TempDir::new("order");
    let (fake, log) = Fake::new();
    let t = spawn(&dir, fake, None, cfg());
    let mut s = raw(&dir);
    s.write_all(&req(&Request::Start {})).unwrap();
    assert_eq!(error_kind(read_reply(&mut s)), ErrorKind::OutOfOrder);
    // The connection stays usable: the frame boundary is intact.
    s.write_all(&hello()).unwrap();
    assert!(matches!(read_reply(&mut s), Some(Reply::Hello { protocol: 1, .. })));
    s.write_all(&hello()).unwrap();
    assert_eq!(error_kind(read_reply(&mut s)), ErrorKind::OutOfOrder);
    s.write_all(&req(&Request::State {})).unwrap();
    assert!(matches!(read_reply(&mut s), Some(Reply::State { .. })));
    drop(s);
    destroy(&dir, t);
    assert_eq!(
        *log.lock().unwrap(),
        ["state", "destroy"],
        "start before hello was not performed"
    );
}

#[test]
fn pipelined_calls_are_answered_in_order() {
    let _g = serial();
    let dir = TempDir::new("pipe");
    let (fake, _) = Fake::new();
    let t = spawn(&dir, fake, None, cfg());
    let mut s = raw(&dir);
    let mut burst = hello();
    burst.extend(req(&Request::Start {}));
    burst.extend(req(&Request::Start {}));
    burst.extend(req(&Request::State {}));
    s.write_all(&burst).unwrap();
    assert!(matches!(read_reply(&mut s), Some(Reply::Hello { .. })));
    assert_eq!(read_reply(&mut s), Some(Reply::Done));
    assert_eq!(error_kind(read_reply(&mut s)), ErrorKind::WrongState);
    assert!(matches!(
        read_reply(&mut s),
        Some(Reply::State {
            status: Status::Running,
            ..
        })
    ));
    drop(s);
    destroy(&dir, t);
}

#[test]
fn bad_frames_get_an_error_reply() {
    let _g = serial();
    let dir = TempDir::new("bad");
    let (fake, log) = Fake::new();
    let t = spawn(&dir, fake, None, cfg());
    // Framing errors: the reply, then the connection is closed.
    let oversize = {
        let mut f = b"SBX\x01".to_vec();
        f.extend_from_slice(&((MAX_REQUEST + 1) as u32).to_be_bytes());
        f
    };
    let huge = {
        let mut f = b"SBX\x01".to_vec();
        f.extend_from_slice(&u32::MAX.to_be_bytes());
        f
    };
    for (bytes, kind) in [
        (oversize, ErrorKind::Oversized),
        (huge, ErrorKind::Oversized),
        (b"SBX\x02\0\0\0\x02{}".to_vec(), ErrorKind::UnsupportedVersion),
        (b"GET / HTTP/1.1\r\n\r\n".to_vec(), ErrorKind::Malformed),
    ] {
        let mut s = raw(&dir);
        s.write_all(&bytes).unwrap();
        assert_eq!(error_kind(read_reply(&mut s)), kind);
        assert_eq!(read_reply(&mut s), None, "closed after a framing error");
    }
    // Body errors: the reply, and the connection stays usable.
    let mut s = raw(&dir);
    s.write_all(&hello()).unwrap();
    read_reply(&mut s).unwrap();
    for (body, kind) in [
        (&b"{"[..], ErrorKind::Malformed),
        (b"{\"call\":\"start\",\"now\":true}", ErrorKind::Malformed),
        (b"{\"call\":\"update\"}", ErrorKind::UnknownCall),
        (b"{\"call\":\"wait_pid\",\"pid\":0}", ErrorKind::InvalidArgument),
        (b"", ErrorKind::Malformed),
    ] {
        s.write_all(&frame(body)).unwrap();
        assert_eq!(
            error_kind(read_reply(&mut s)),
            kind,
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    s.write_all(&req(&Request::State {})).unwrap();
    assert!(matches!(read_reply(&mut s), Some(Reply::State { .. })));
    // Truncated: half a frame, then the client half-closes.
    let mut s = raw(&dir);
    let f = hello();
    s.write_all(&f[..f.len() - 3]).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(error_kind(read_reply(&mut s)), ErrorKind::Truncated);
    assert_eq!(read_reply(&mut s), None);
    destroy(&dir, t);
    assert_eq!(*log.lock().unwrap(), ["state", "destroy"]);
}

#[test]
fn a_slow_client_times_out_without_holding_up_others() {
    let _g = serial();
    let dir = TempDir::new("slow");
    let (fake, _) = Fake::new();
    let cfg = ServerConfig {
        read_timeout: Duration::from_millis(1000),
        ..cfg()
    };
    let t = spawn(&dir, fake, None, cfg);
    let start = Instant::now();
    let mut slow = raw(&dir);
    slow.write_all(&hello()[..5]).unwrap();
    let mut silent = raw(&dir);
    // Meanwhile another client is served at once.
    let mut c = client(&dir);
    c.call(&Request::State {}).unwrap();
    assert!(start.elapsed() < Duration::from_millis(800), "{:?}", start.elapsed());
    let r = read_reply(&mut slow);
    let waited = start.elapsed();
    match r {
        Some(Reply::Error { kind, message }) => {
            assert_eq!(kind, ErrorKind::Timeout);
            assert!(message.contains("5 of 8 bytes"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        waited >= Duration::from_millis(1000) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    assert_eq!(read_reply(&mut slow), None, "closed after the timeout");
    assert_eq!(error_kind(read_reply(&mut silent)), ErrorKind::Timeout);
    // The fast client was idle for longer than the read timeout too: its
    // next call finds the connection closed, and the server's reason.
    std::thread::sleep(Duration::from_millis(1100));
    let e = c.call(&Request::State {}).unwrap_err();
    assert_eq!(e.remote_kind(), Some(ErrorKind::Timeout), "{e}");
    destroy(&dir, t);
}

/// Driven in this thread, turn by turn: clients that vanish mid-request,
/// mid-reply or while parked leave no connection and no fd behind, and no
/// call is performed for a request that did not arrive whole.
#[test]
fn disconnects_leak_nothing_and_change_nothing() {
    let _g = serial();
    let dir = TempDir::new("disc");
    let before = open_fds();
    {
        let (fake, log) = Fake::new();
        let mut s = Server::new(listen(&dir), None, fake, cfg()).unwrap();
        let turns = |s: &mut Server<Fake>| {
            for _ in 0..5 {
                s.turn(Some(Duration::from_millis(10))).unwrap();
            }
        };
        // Mid-request: half a frame, then gone.
        let mut a = UnixStream::connect(dir.sock()).unwrap();
        let mut f = hello();
        f.extend(req(&Request::Start {}));
        a.write_all(&f[..f.len() - 4]).unwrap();
        turns(&mut s);
        assert_eq!(s.connections(), 1);
        drop(a);
        turns(&mut s);
        assert_eq!(s.connections(), 0);
        // With fds in flight (an exec's stdio, never completed).
        let mut b = UnixStream::connect(dir.sock()).unwrap();
        b.write_all(&hello()).unwrap();
        turns(&mut s);
        let exec = req(&Request::Exec {
            process: serde_json::from_str(r#"{"args":["true"],"cwd":"/","user":{"uid":0,"gid":0}}"#).unwrap(),
            stdio: ExecStdio::Attached,
        });
        let (r, w) = pipe();
        let fds = [w.as_raw_fd(); 3];
        send_with_fds(&b, &exec[..10], &fds);
        drop(w);
        turns(&mut s);
        drop(b);
        turns(&mut s);
        assert_eq!(s.connections(), 0);
        assert_pipe_closed(r);
        // Parked on wait, then gone.
        let mut c = UnixStream::connect(dir.sock()).unwrap();
        let mut f = hello();
        f.extend(req(&Request::Start {}));
        f.extend(req(&Request::Wait {}));
        c.write_all(&f).unwrap();
        turns(&mut s);
        assert_eq!(s.connections(), 1);
        drop(c);
        turns(&mut s);
        assert_eq!(s.connections(), 0);
        // Gone while its replies back up: 2000 pipelined calls whose replies
        // it never reads, so the server ends up blocked writing one.
        let d = UnixStream::connect(dir.sock()).unwrap();
        let d2 = d.try_clone().unwrap();
        let writer = std::thread::spawn(move || {
            let mut f = hello();
            for _ in 0..2000 {
                f.extend(req(&Request::Stacks {}));
            }
            let _ = (&d2).write_all(&f);
        });
        for _ in 0..50 {
            s.turn(Some(Duration::from_millis(10))).unwrap();
        }
        let served = log.lock().unwrap().len();
        assert!(
            served < 2000,
            "the server's writes never blocked ({served} calls served)"
        );
        d.shutdown(std::net::Shutdown::Both).unwrap();
        drop(d);
        writer.join().unwrap();
        turns(&mut s);
        assert_eq!(s.connections(), 0);
        assert_eq!(
            *log.lock().unwrap().first().unwrap(),
            "start",
            "only whole requests were performed"
        );
        assert!(log
            .lock()
            .unwrap()
            .iter()
            .all(|c| c == "start" || c == "wait" || c == "stacks"));
    }
    assert_eq!(open_fds(), before, "no fd left behind");
}

fn send_with_fds(s: &UnixStream, bytes: &[u8], fds: &[i32]) {
    let cmsg = nix::sys::socket::ControlMessage::ScmRights(fds);
    nix::sys::socket::sendmsg::<()>(
        s.as_raw_fd(),
        &[std::io::IoSlice::new(bytes)],
        &[cmsg],
        nix::sys::socket::MsgFlags::empty(),
        None,
    )
    .unwrap();
}

/// The read end sees EOF: nobody (the server included) holds the write end.
fn assert_pipe_closed(r: fs::File) {
    let mut p = libc::pollfd {
        fd: r.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut p, 1, 2000) };
    assert_eq!(n, 1, "the write end is still open somewhere");
    let mut buf = [0u8; 16];
    assert_eq!((&r).read(&mut buf).unwrap(), 0);
}

#[test]
fn exec_fds_travel_both_ways_and_a_wrong_count_is_refused() {
    let _g = serial();
    let dir = TempDir::new("fds");
    let before = open_fds();
    let (fake, _) = Fake::new();
    let t = spawn(&dir, fake, None, cfg());
    let mut c = client(&dir);
    c.call(&Request::Start {}).unwrap();
    let process: Box<oci_spec::runtime::Process> =
        serde_json::from_str(r#"{"args":["echo","hi"],"cwd":"/","user":{"uid":0,"gid":0}}"#).unwrap();
    // Attached: stdin, stdout, stderr go with the request.
    let (r, w) = pipe();
    let exec = Request::Exec {
        process: process.clone(),
        stdio: ExecStdio::Attached,
    };
    let (reply, fd) = c.call_with_fds(&exec, &[w.as_fd(), w.as_fd(), w.as_fd()]).unwrap();
    assert_eq!(reply, Reply::Exec { pid: 100 });
    assert!(fd.is_none());
    drop(w);
    let mut out = String::new();
    (&r).read_to_string(&mut out).unwrap();
    assert_eq!(out, "ran echo hi\n", "the handler wrote to the stdout that was sent");
    drop(r);
    // One fd where three are needed: refused, and the fd is not kept.
    let (r, w) = pipe();
    let e = c.call_with_fds(&exec, &[w.as_fd()]).unwrap_err();
    assert_eq!(e.remote_kind(), Some(ErrorKind::FdMismatch), "{e}");
    drop(w);
    assert_pipe_closed(r);
    // Fds with a call that takes none: refused too.
    let (r, w) = pipe();
    let e = c.call_with_fds(&Request::State {}, &[w.as_fd()]).unwrap_err();
    assert_eq!(e.remote_kind(), Some(ErrorKind::FdMismatch), "{e}");
    drop(w);
    assert_pipe_closed(r);
    // Pty: the master comes back with the reply.
    let mut process = process;
    process.set_terminal(Some(true));
    let (reply, fd) = c
        .call_with_fds(
            &Request::Exec {
                process,
                stdio: ExecStdio::Pty,
            },
            &[],
        )
        .unwrap();
    assert_eq!(reply, Reply::Exec { pid: 101 });
    let mut got = String::new();
    fs::File::from(fd.expect("a pty master"))
        .read_to_string(&mut got)
        .unwrap();
    assert_eq!(got, "pty master");
    drop(c);
    destroy(&dir, t);
    assert_eq!(open_fds(), before, "no fd left behind: {:?}", fd_list());
}

#[test]
fn waits_park_until_the_process_ends_while_others_are_served() {
    let _g = serial();
    let dir = TempDir::new("wait");
    let (mut fake, _) = Fake::new();
    // A real child; its pidfd is the server's event fd.
    let child = std::process::Command::new("/bin/sleep").arg("1").spawn().unwrap();
    // SAFETY: pidfd_open with a pid we own and no flags.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, child.id() as libc::pid_t, 0) };
    assert!(pidfd >= 0, "pidfd_open: {}", std::io::Error::last_os_error());
    // SAFETY: the syscall just returned this fd.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as i32) };
    fake.child = Some(child);
    let t = spawn(&dir, fake, Some(pidfd), cfg());
    let mut c = client(&dir);
    c.call(&Request::Start {}).unwrap();
    c.call(&Request::Exec {
        process: serde_json::from_str(r#"{"args":["x"],"cwd":"/","user":{"uid":0,"gid":0}}"#).unwrap(),
        stdio: ExecStdio::Null,
    })
    .unwrap();
    let path = dir.sock();
    let waiter = std::thread::spawn(move || {
        let mut w = Client::connect(&path, Duration::from_secs(5)).unwrap();
        let start = Instant::now();
        (w.call(&Request::Wait {}), start.elapsed())
    });
    let path = dir.sock();
    let pid_waiter = std::thread::spawn(move || {
        Client::connect(&path, Duration::from_secs(5))
            .unwrap()
            .call(&Request::WaitPid { pid: 100 })
    });
    // Both waiters parked (they connect in their own time), and this
    // connection is served meanwhile.
    let start = Instant::now();
    loop {
        let Reply::Stacks { supervisor, .. } = c.call(&Request::Stacks {}).unwrap() else {
            panic!()
        };
        if (supervisor.clients, supervisor.parked) == (3, 2) {
            break;
        }
        assert!(start.elapsed() < Duration::from_millis(800), "{supervisor:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        c.call(&Request::WaitPid { pid: 7 }).unwrap_err().remote_kind(),
        Some(ErrorKind::NoSuchProcess)
    );
    c.call(&Request::SignalProcess {
        pid: 100,
        signal: 15,
        foreground: false,
    })
    .unwrap();
    assert_eq!(
        pid_waiter.join().unwrap().unwrap(),
        Reply::Exited {
            pid: 100,
            exit: ExitStatus::Signaled {
                signal: 15,
                core_dumped: false
            }
        }
    );
    let (r, waited) = waiter.join().unwrap();
    assert_eq!(
        r.unwrap(),
        Reply::Exited {
            pid: 2,
            exit: ExitStatus::Exited { code: 0 }
        },
        "the child's real exit, seen through its pidfd"
    );
    assert!(waited >= Duration::from_millis(150), "{waited:?}");
    drop(c);
    destroy(&dir, t);
}

#[test]
fn many_clients_at_once_and_the_limit() {
    let _g = serial();
    let dir = TempDir::new("many");
    let (fake, log) = Fake::new();
    let t = spawn(&dir, fake, None, cfg());
    let threads: Vec<_> = (0..16)
        .map(|_| {
            let path = dir.sock();
            std::thread::spawn(move || {
                for _ in 0..25 {
                    let mut c = Client::connect(&path, Duration::from_secs(5)).unwrap();
                    assert!(matches!(c.call(&Request::State {}).unwrap(), Reply::State { .. }));
                    assert!(matches!(c.call(&Request::Ps {}).unwrap(), Reply::Processes { .. }));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(log.lock().unwrap().len(), 16 * 25 * 2);
    destroy(&dir, t);

    let dir = TempDir::new("limit");
    let (fake, _) = Fake::new();
    let t = spawn(
        &dir,
        fake,
        None,
        ServerConfig {
            max_clients: 2,
            ..cfg()
        },
    );
    let mut a = client(&dir);
    a.hello().unwrap();
    let mut b = client(&dir);
    b.hello().unwrap();
    let e = client(&dir).hello().unwrap_err();
    assert_eq!(e.remote_kind(), Some(ErrorKind::Busy), "{e}");
    drop(a);
    // A slot is free again once the server has seen the close.
    let start = Instant::now();
    loop {
        match client(&dir).hello() {
            Ok(_) => break,
            Err(e) if start.elapsed() < Duration::from_secs(2) => assert_eq!(e.remote_kind(), Some(ErrorKind::Busy)),
            Err(e) => panic!("{e}"),
        }
    }
    drop(b);
    destroy(&dir, t);
}

/// Forks a child that becomes uid/gid 65534 and sends a handshake to
/// `path`; returns its exit status: 0 when the answer held `expect`.
fn as_nobody(path: &Path, expect: &'static [u8]) -> i32 {
    let addr = nix::sys::socket::UnixAddr::new(path).unwrap();
    let f = hello();
    // SAFETY: the child only makes async-signal-safe raw syscalls on memory
    // prepared before the fork, then _exits.
    unsafe {
        let pid = libc::fork();
        assert!(pid >= 0);
        if pid == 0 {
            if libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>()) != 0
                || libc::syscall(libc::SYS_setgid, 65534) != 0
                || libc::syscall(libc::SYS_setuid, 65534) != 0
            {
                libc::_exit(10);
            }
            let s = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
            if libc::connect(
                s,
                nix::sys::socket::SockaddrLike::as_ptr(&addr),
                nix::sys::socket::SockaddrLike::len(&addr),
            ) != 0
            {
                libc::_exit(11);
            }
            // Refused peers are answered at once, maybe before this send:
            // its failure is not the test's business, the answer is.
            libc::send(s, f.as_ptr().cast(), f.len(), libc::MSG_NOSIGNAL);
            let mut buf = [0u8; 512];
            let mut n = 0usize;
            loop {
                let r = libc::read(s, buf.as_mut_ptr().add(n).cast(), buf.len() - n);
                if r <= 0 {
                    break;
                }
                n += r as usize;
            }
            let got = &buf[..n];
            let found = got.windows(expect.len()).any(|w| w == expect);
            libc::_exit(if found { 0 } else { 13 });
        }
        let mut status = 0;
        assert_eq!(libc::waitpid(pid, &mut status, 0), pid);
        libc::WEXITSTATUS(status)
    }
}

#[test]
fn only_root_and_the_creator_are_served() {
    let _g = serial();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED only_root_and_the_creator_are_served: needs root to become another uid");
        return;
    }
    let dir = TempDir::new("peer");
    fs::set_permissions(&dir.0, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // Created by root (owner 0): nobody is refused.
    let (fake, log) = Fake::new();
    let l = listen(&dir);
    fs::set_permissions(dir.sock(), std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    let t = std::thread::spawn(move || {
        Server::new(l, None, fake, ServerConfig::new(PeerRule::host(0)))
            .unwrap()
            .run()
            .unwrap()
    });
    assert_eq!(as_nobody(&dir.sock(), b"\"kind\":\"permission_denied\""), 0);
    destroy(&dir, t);
    assert_eq!(*log.lock().unwrap(), ["destroy"]);
    // Created by nobody: nobody is served (and root still is).
    fs::remove_file(dir.sock()).unwrap();
    let (fake, _) = Fake::new();
    let l = listen(&dir);
    fs::set_permissions(dir.sock(), std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    let t = std::thread::spawn(move || {
        Server::new(l, None, fake, ServerConfig::new(PeerRule::host(65534)))
            .unwrap()
            .run()
            .unwrap()
    });
    assert_eq!(as_nobody(&dir.sock(), b"\"reply\":\"hello\""), 0);
    destroy(&dir, t);
    // And a 0600 socket keeps others out before any credential check.
    fs::remove_file(dir.sock()).unwrap();
    let (fake, _) = Fake::new();
    let l = listen(&dir);
    fs::set_permissions(dir.sock(), std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let t = std::thread::spawn(move || {
        Server::new(l, None, fake, ServerConfig::new(PeerRule::host(0)))
            .unwrap()
            .run()
            .unwrap()
    });
    assert_eq!(as_nobody(&dir.sock(), b"\"reply\""), 11, "connect refused");
    destroy(&dir, t);
}

#[test]
fn readiness_wait() {
    let _g = serial();
    let dir = TempDir::new("ready");
    // The supervisor binds its socket late: the wait polls until it answers.
    let path = dir.sock();
    let late = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(150));
        let (fake, _) = Fake::new();
        let l = OwnedFd::from(UnixListener::bind(&path).unwrap());
        let mut s = Server::new(l, None, fake, cfg()).unwrap();
        s.run().unwrap();
    });
    let start = Instant::now();
    let h = client::wait_ready(&dir.sock(), Duration::from_secs(10), &mut || true).unwrap();
    assert!(start.elapsed() >= Duration::from_millis(150));
    assert_eq!((h.sandbox.as_str(), h.status), ("fake", Status::Created));
    destroy(&dir, late);
    // Nobody ever answers: bounded.
    let none = dir.0.join("none.sock");
    let start = Instant::now();
    let e = client::wait_ready(&none, Duration::from_millis(200), &mut || true).unwrap_err();
    assert!(matches!(e, ClientError::NotReady { .. }), "{e}");
    assert!(start.elapsed() < Duration::from_secs(2));
    assert!(e.to_string().contains("did not answer"), "{e}");
    // The supervisor died: the wait stops at once.
    let start = Instant::now();
    let e = client::wait_ready(&none, Duration::from_secs(10), &mut || false).unwrap_err();
    assert!(matches!(e, ClientError::SupervisorGone { .. }), "{e}");
    assert!(start.elapsed() < Duration::from_secs(1));
    // A socket that accepts but never answers: bounded by the timeout too.
    let mute = dir.0.join("mute.sock");
    let _l = UnixListener::bind(&mute).unwrap();
    let start = Instant::now();
    let e = client::wait_ready(&mute, Duration::from_millis(300), &mut || true).unwrap_err();
    assert!(matches!(e, ClientError::NotReady { .. }), "{e}");
    assert!(start.elapsed() < Duration::from_secs(2), "{:?}", start.elapsed());
}

#[test]
fn a_supervisor_that_dies_mid_call_is_a_clear_client_error() {
    let _g = serial();
    let dir = TempDir::new("dies");
    let l = UnixListener::bind(dir.sock()).unwrap();
    let t = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut buf = [0u8; 64];
        let _ = s.read(&mut buf).unwrap();
        // Gone without a word.
    });
    let e = client(&dir).call(&Request::State {}).unwrap_err();
    assert!(matches!(e, ClientError::Closed { .. }), "{e}");
    t.join().unwrap();
}

/// Idle means no allocation: turns with no client, and with a client parked
/// on `wait`, allocate nothing. One `state` call's cost is printed.
#[test]
fn idle_turns_allocate_nothing() {
    let _g = serial();
    let dir = TempDir::new("idle");
    let (fake, _) = Fake::new();
    let mut s = Server::new(listen(&dir), None, fake, cfg()).unwrap();
    let idle = |s: &mut Server<Fake>| {
        s.turn(Some(Duration::from_millis(1))).unwrap();
        let before = allocs();
        for _ in 0..50 {
            s.turn(Some(Duration::from_millis(1))).unwrap();
        }
        allocs() - before
    };
    assert_eq!(idle(&mut s), 0, "idle with no client");
    let mut c = UnixStream::connect(dir.sock()).unwrap();
    let mut f = hello();
    f.extend(req(&Request::Wait {}));
    c.write_all(&f).unwrap();
    for _ in 0..5 {
        s.turn(Some(Duration::from_millis(5))).unwrap();
    }
    assert_eq!(s.connections(), 1);
    assert_eq!(idle(&mut s), 0, "idle with a parked wait");
    // What one call costs (reported in docs/control.md, not a limit).
    let mut d = UnixStream::connect(dir.sock()).unwrap();
    d.write_all(&hello()).unwrap();
    for _ in 0..3 {
        s.turn(Some(Duration::from_millis(5))).unwrap();
    }
    let before = allocs();
    d.write_all(&req(&Request::State {})).unwrap();
    s.turn(Some(Duration::from_millis(100))).unwrap();
    let per_call = allocs() - before;
    d.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    read_reply(&mut d).unwrap();
    assert!(matches!(read_reply(&mut d), Some(Reply::State { .. })));
    eprintln!("allocations for one state call, read to written: {per_call}");
}

/// Every call, reply and error kind is in docs/control.md as `name`.
#[test]
fn every_call_reply_and_error_kind_is_documented() {
    // Serial too: reading the doc opens an fd, which the fd-counting tests
    // on other threads would see (one failed so: "no fd left behind").
    let _g = serial();
    let doc = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/control.md")).unwrap();
    let names = Request::CALLS
        .iter()
        .chain(Reply::NAMES.iter())
        .copied()
        .chain(ErrorKind::ALL.iter().map(|k| k.name()));
    let missing: Vec<&str> = names.filter(|n| !doc.contains(&format!("`{n}`"))).collect();
    assert!(missing.is_empty(), "docs/control.md does not mention {missing:?}");
}

/// 300 connections, each a handshake and then a mutated frame
/// ([`common::frames::mutate_frame`]: bytes flipped, inserted, removed, cut;
/// a length rewritten), then a half-close:
/// every answer is a well-formed reply, every connection ends, the server
/// keeps serving, and no fd is left behind.
#[test]
fn mutated_frames_on_the_socket_never_stop_the_server() {
    let _g = serial();
    let dir = TempDir::new("mut");
    let before = open_fds();
    let (fake, _) = Fake::new();
    let t = spawn(&dir, fake, None, cfg());
    let seeds: Vec<Vec<u8>> = [
        Request::State {},
        Request::Start {},
        Request::SignalProcess {
            pid: 100,
            signal: 9,
            foreground: false,
        },
        Request::WaitPid { pid: 3 },
        Request::Exec {
            process: serde_json::from_str(r#"{"args":["x"],"cwd":"/","user":{"uid":0,"gid":0}}"#).unwrap(),
            stdio: ExecStdio::Null,
        },
        Request::Checkpoint {
            image_path: "/i".into(),
            leave_running: true,
        },
    ]
    .iter()
    .map(req)
    .collect();
    let mut rng = Rng(0xc0ff_ee00_d15e_a5e5);
    let mut replies = 0;
    for round in 0..300 {
        let mut f = seeds[rng.below(seeds.len())].clone();
        mutate_frame(&mut f, &mut rng);
        let mut s = raw(&dir);
        s.write_all(&hello()).unwrap();
        assert!(matches!(read_reply(&mut s), Some(Reply::Hello { .. })), "round {round}");
        let _ = s.write_all(&f);
        let _ = s.shutdown(std::net::Shutdown::Write);
        // Each answer decodes (read_reply unwraps it); then the server closes.
        while read_reply(&mut s).is_some() {
            replies += 1;
        }
    }
    assert!(replies >= 300, "every round got at least one answer ({replies})");
    let mut c = client(&dir);
    assert!(matches!(c.call(&Request::State {}).unwrap(), Reply::State { .. }));
    drop(c);
    destroy(&dir, t);
    assert_eq!(open_fds(), before, "no fd left behind: {:?}", fd_list());
}

/// Why `PeerRule` is written in the server's view: inside a new user
/// namespace that maps nothing, SO_PEERCRED reports a root peer as the
/// overflow uid. Checked in a forked child (unshare needs one thread).
#[test]
fn peer_credentials_are_translated_into_the_readers_user_namespace() {
    let _g = serial();
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    let overflow: u32 = fs::read_to_string("/proc/sys/kernel/overflowuid")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: the child makes raw syscalls only (no allocation), then _exits.
    unsafe {
        let pid = libc::fork();
        assert!(pid >= 0);
        if pid == 0 {
            if libc::unshare(libc::CLONE_NEWUSER) != 0 {
                libc::_exit(10);
            }
            let mut cred: libc::ucred = std::mem::zeroed();
            let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
            if libc::getsockopt(
                b.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PEERCRED,
                (&mut cred as *mut libc::ucred).cast(),
                &mut len,
            ) != 0
            {
                libc::_exit(11);
            }
            libc::_exit(if cred.uid == overflow { 0 } else { 12 });
        }
        let mut status = 0;
        assert_eq!(libc::waitpid(pid, &mut status, 0), pid);
        match libc::WEXITSTATUS(status) {
            10 => eprintln!("SKIPPED peer_credentials_are_translated...: unshare(CLONE_NEWUSER) not allowed here"),
            code => assert_eq!(
                code, 0,
                "uid {me} was not reported as the overflow uid {overflow} inside"
            ),
        }
    }
    drop(a);
    // Outside, the same peer is itself.
    let p = sandboxctl::exec::control::server::peer_credentials(&b).unwrap();
    assert_eq!(p.uid, me);
}
