//! A created sandbox's supervisor starts serving in a fresh address space.
//!
//! The supervisor is a clone of the launcher: every page the launcher
//! dirtied before the clone (reading the spec and the policy, compiling the
//! plan, rendering `plan.json`) is copied into it, and once the launcher
//! exits those pages are the supervisor's alone — about 330 KiB of private
//! memory for a sandbox that then idles for days. So once `create` has
//! committed, the supervisor re-executes this binary (through an fd on it
//! opened before the root change, `execveat(AT_EMPTY_PATH)`), handing over
//! in a sealed memfd what its serving half needs: the plan, the seccomp
//! programs the launcher sent, the sandbox's id and state root, the owner's
//! uid, and the numbers of the fds it keeps (the listener, the `exit`
//! record; the planned fds stay at their planned numbers). Its capabilities
//! cross the exec in the ambient set and are taken out of it (and out of
//! inheritable) as the new image's first acts after becoming non-dumpable
//! again (execve resets the flag; no process of the sandbox exists yet).
//! If the exec fails the supervisor serves from where it is, with a warning.

use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::rc::Rc;

use serde::{Deserialize, Serialize};

use super::{Interp, CREATE_RULE, R};
use crate::exec::backend::{Backend, CapSetKind, FdRef, FdTag, Op};
use crate::exec::state::LaunchId;
use crate::exec::ApplyError;
use crate::plan::{Actor, LaunchPlan, Step};
use crate::vocab::Origin;

/// The re-executed supervisor's `argv[0]`: `main` sends a process started
/// with it to [`resume`] instead of the command line.
pub const SUPERVISOR_ARGV0: &str = "sandboxctl-supervisor";

/// What the supervisor hands to its re-executed image (a JSON line, then
/// the seccomp programs as the launcher sent them).
#[derive(Serialize, Deserialize)]
struct Handover {
    plan: LaunchPlan,
    id: String,
    state_root: PathBuf,
    owner_uid: u32,
    listener: i32,
    exit_file: Option<i32>,
    supervisor_pid: Option<i32>,
    /// The state the `startContainer` hooks read (JSON), when it has some.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    start_hook_state: Option<String>,
}

impl<B: Backend> Interp<'_, B> {
    /// Re-executes this binary with the handover (see the module's doc).
    /// Returns only if that failed (or when recording).
    pub(super) fn exec_self(&mut self, listener: FdRef) -> R<()> {
        let Some(exe) = self.self_exe.take() else {
            return Err(self.unsupported("re-exec without an fd on this binary"));
        };
        let handover = Handover {
            plan: for_serving(self.plan),
            id: self.id.as_str().to_string(),
            state_root: self.state_root.clone(),
            owner_uid: self.owner_uid,
            listener: listener.raw,
            exit_file: self.exit_file.map(|f| f.raw),
            supervisor_pid: self.supervisor_pid,
            start_hook_state: self
                .start_hook_state
                .as_ref()
                .map(|s| String::from_utf8_lossy(s).into_owned()),
        };
        let mut data = serde_json::to_vec(&handover).map_err(|e| self.failure("encode the handover", e.to_string()))?;
        data.push(b'\n');
        if let Some(f) = &self.launcher_filters {
            data.extend_from_slice(f);
        }
        drop(handover);
        let tag = FdTag::Internal("handover");
        let fd = self.op_fd(
            Op::Memfd {
                name: "sandboxctl-handover",
                tag,
            },
            tag,
        )?;
        self.op(Op::FillSealed {
            fd,
            data: Rc::new(data),
        })?;
        let mut keep = vec![fd.raw, listener.raw];
        keep.extend(self.exit_file.map(|f| f.raw));
        let r = self.op(Op::ExecSelf {
            exe,
            handover: fd,
            keep,
        });
        // Back here: the exec failed (or this is a recording).
        self.op(Op::Close { fd })?;
        self.op(Op::Close { fd: exe })?;
        r.map(drop)
    }
}

/// The plan less what serving never reads again: the steps already done
/// (mounts, devices, masked and read-only paths, the cgroup: the host's
/// commands do `pause`, `update` and `events`), the record of clamps, and —
/// unless the ptrace platform's tracer names the rules a refused call broke
/// — the seccomp rules, which the launcher's programs already hold. What the
/// sandbox got stays in `plan.json`; this is the supervisor's working copy.
fn for_serving(plan: &LaunchPlan) -> LaunchPlan {
    let mut p = plan.clone();
    p.mounts.clear();
    p.devices.clear();
    p.device_ceiling.clear();
    p.masked_paths.clear();
    p.readonly_paths.clear();
    p.clamps.clear();
    p.cgroup = None;
    p.log_dirs.clear();
    if !p.steps.contains(&Step::Trace) {
        if let Some(s) = &mut p.workload.seccomp {
            s.rules.clear();
            s.unknown_syscalls.clear();
        }
    }
    p
}

/// The re-executed supervisor: reads the handover from `fd` and serves
/// control calls until the sandbox ends. Never returns.
pub fn resume(fd: i32) -> ! {
    // Non-dumpable first of all: execve made this process dumpable again.
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    // Its name as before the exec (execveat through an fd names it after
    // the fd's number).
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"sandboxctl".as_ptr(), 0, 0, 0) };
    let code = match serve_handover(fd) {
        Ok(never) => match never {},
        Err(e) => {
            tracing::error!("the re-executed supervisor cannot serve: {e}");
            eprintln!("sandboxctl supervisor: {e}");
            super::CHILD_FAILED
        }
    };
    // SAFETY: _exit ends this process at once.
    unsafe { libc::_exit(code) }
}

/// The handover, decoded, and what is made of it before serving.
struct Resumed {
    handover: Handover,
    prep: super::Prepared,
    id: LaunchId,
}

/// Serves from the handover. Its frame, and those above it, stay on the
/// stack for the supervisor's life: the decoding happens in [`read`]'s
/// (dead once it returns, and given back), and what lives is boxed.
#[inline(never)]
fn serve_handover(fd: i32) -> Result<std::convert::Infallible, ApplyError> {
    let r = read(fd)?;
    let h = &r.handover;
    let mut backend = crate::exec::linux::LinuxBackend;
    let mut it = Box::new(Interp::new(&h.plan, &mut backend, r.prep));
    it.launch_as(r.id, h.state_root.clone());
    it.fail_at(crate::exec::fault_injection_step());
    it.start_hook_state = h.start_hook_state.as_ref().map(|s| Rc::new(s.clone().into_bytes()));
    it.resume_serving(h.owner_uid, h.exit_file, h.supervisor_pid)
        // The decoding's dead stack frames and freed heap top.
        .and_then(|()| it.op(Op::ShedMemory).map(drop))
        .and_then(|()| it.serve(FdRef::num(h.listener)))
        .map_err(|failure| ApplyError::Step {
            failure,
            leftovers: Vec::new(),
        })?;
    unreachable!("serve returns only when recording")
}

/// Reads and decodes the handover memfd `fd` (closing it), sets up the
/// logs, prepares the plan.
#[inline(never)]
fn read(fd: i32) -> Result<Box<Resumed>, ApplyError> {
    let bad = |what: &str, m: String| ApplyError::Prepare {
        what: format!("supervisor handover: {what}"),
        message: m,
    };
    // The handover is read where it lies (a private read-only mapping of
    // the memfd, unmapped after decoding): copied into the heap, its bytes
    // would stay there as a freed block for the supervisor's lifetime.
    // SAFETY: fd is the handover memfd the old image named in argv and
    // nothing else in this process uses; owned (closed) here.
    let file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    let len = file.metadata().map_err(|e| bad("read", e.to_string()))?.len() as usize;
    if len == 0 {
        return Err(bad("read", "empty".into()));
    }
    // SAFETY: a fresh private read-only mapping of `len` bytes of a sealed
    // memfd (its size cannot change); unmapped below, after its last use.
    let map = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_PRIVATE,
            std::os::fd::AsRawFd::as_raw_fd(&file),
            0,
        )
    };
    if map == libc::MAP_FAILED {
        return Err(bad("map", std::io::Error::last_os_error().to_string()));
    }
    drop(file);
    // SAFETY: the mapping is `len` readable bytes, alive until the munmap.
    let data = unsafe { std::slice::from_raw_parts(map.cast::<u8>(), len) };
    let decoded = decode(data, &bad);
    // SAFETY: unmapping the mapping made above; `data` is not used again.
    unsafe { libc::munmap(map, len) };
    let (handover, filters) = decoded?;
    let plan = &handover.plan;
    super::super::log::install(plan);
    super::super::log::set_actor(Actor::Supervisor);
    for e in &plan.supervisor.fds {
        if let Some(kind) = super::super::log::LogKind::of_role(e.role) {
            super::super::log::set_fd(kind, e.fd.0);
        }
    }
    let mut prep = super::prepare(plan)?;
    prep.filters = filters;
    let id = LaunchId::given(&handover.id, Origin::rule(CREATE_RULE)).map_err(|e| bad("id", e.to_string()))?;
    Ok(Box::new(Resumed { handover, prep, id }))
}

/// The handover's JSON line and the seccomp programs after it.
#[allow(clippy::type_complexity)]
fn decode(
    data: &[u8],
    bad: &dyn Fn(&str, String) -> ApplyError,
) -> Result<(Handover, Vec<Rc<crate::exec::backend::PreparedFilter>>), ApplyError> {
    let nl = data
        .iter()
        .position(|b| *b == b'\n')
        .ok_or_else(|| bad("decode", "no end of line".into()))?;
    let h: Handover = serde_json::from_slice(&data[..nl]).map_err(|e| bad("decode", e.to_string()))?;
    let filters = crate::exec::seccomp::decode(&data[nl + 1..], h.plan.workload.seccomp.is_some())
        .map_err(|m| bad("seccomp programs", m))?;
    Ok((h, filters))
}

impl<B: Backend> Interp<'_, B> {
    /// The re-executed supervisor's state: what `create` had reached.
    fn resume_serving(&mut self, owner_uid: u32, exit_file: Option<i32>, supervisor_pid: Option<i32>) -> R<()> {
        self.me = Actor::Supervisor;
        self.step = Step::SpawnWorkload;
        self.cursor = self
            .plan
            .steps
            .iter()
            .position(|s| *s == Step::SpawnWorkload)
            .ok_or_else(|| self.unsupported("a plan without spawn_workload"))?;
        self.origin = Origin::rule(CREATE_RULE);
        self.owner_uid = owner_uid;
        self.exit_file = exit_file.map(|raw| FdRef {
            raw,
            tag: FdTag::Internal("exit"),
        });
        self.supervisor_pid = supervisor_pid;
        self.report = self.planned_control();
        // The capabilities crossed the exec in the ambient set; they stay
        // in permitted and effective, and leave ambient and inheritable
        // (each spawned process sets its own sets).
        self.op(Op::SetAmbient {
            caps: Default::default(),
        })?;
        self.op(Op::CapSet {
            set: CapSetKind::Inheritable,
            caps: Default::default(),
        })?;
        Ok(())
    }
}
