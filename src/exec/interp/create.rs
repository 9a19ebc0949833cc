//! `create`'s part of the launch: the launcher's record of a long-lived
//! sandbox and the handshake that hands the sandbox over to its supervisor.
//!
//! The steps are `apply`'s, with three changes. `state_file` makes the
//! sandbox's directory (`<root>/<id>/`, exclusive, locked) instead of a
//! state file; `open_fds` also binds the control socket there and opens the
//! `exit` record, both handed to the supervisor. At `spawn_workload` the
//! supervisor does not spawn: it sends its ready mark on the control
//! socketpair, and the launcher (its `teardown`) writes the stored plan, the
//! record and the pid file, sends its commit mark, checks that the
//! supervisor answers `hello` on the socket, and returns without tearing
//! anything down. Until the commit the supervisor still dies with the
//! launcher; after it, it clears its parent-death signal and serves control
//! calls (`serve.rs`); `start` runs the rest of the steps.

use std::rc::Rc;

use super::{Interp, Undo, COMMIT_MARK, CREATE_RULE, R, READY_MARK, READY_TIMEOUT_MS};
use crate::exec::backend::{Backend, FdRef, Op, Outcome, ProcRef};
use crate::exec::control::state::CONTROL_SOCKET;
use crate::exec::error::StepFailure;
use crate::plan::{Actor, Step};
use crate::vocab::Origin;

impl<B: Backend> Interp<'_, B> {
    /// The supervisor at `spawn_workload` under `create`: ready, committed,
    /// then serving. Does not return when real (the supervisor exits from
    /// its server loop); when recording, goes on with `start`'s part.
    pub(super) fn serve_created(&mut self) -> R<()> {
        self.origin = self.plan.workload.args.from.clone();
        self.await_launcher()?;
        self.origin = Origin::rule(CREATE_RULE);
        let report = self
            .planned_control()
            .ok_or_else(|| self.unsupported("create without a control socket"))?;
        self.op(Op::SendMark {
            fd: report,
            mark: READY_MARK,
        })?;
        if !self.real {
            // Recording: the launcher's part comes here in time.
            self.act(Actor::Launcher);
            self.finish_create()?;
            self.act(Actor::Supervisor);
        }
        self.op(Op::AwaitCommit {
            fd: report,
            mark: COMMIT_MARK,
        })?;
        self.op(Op::ClearDeathSignal)?;
        let listener = self
            .listener
            .ok_or_else(|| self.unsupported("create without a control listener"))?;
        // What the launcher dirtied before the clone is this process's
        // alone once the launcher exits: serve from a fresh address space
        // (reexec.rs); if that fails, from here, with what can be shed.
        // Not when it joined another sandbox's user or PID namespace: that
        // sandbox's processes exist, and could reach it while execve has
        // made it dumpable (docs/security.md).
        self.prepare_start_hooks()?;
        let ns = &self.plan.namespaces;
        let joins = [&ns.user.value, &ns.pid.value]
            .iter()
            .any(|n| matches!(n, crate::plan::Namespace::Join(_)));
        let fresh = if joins {
            Err(self.unsupported("a pod member sharing a user or PID namespace"))
        } else {
            self.exec_self(listener)
        };
        if let Err(f) = fresh {
            tracing::warn!("the supervisor serves without a fresh address space: {f}");
            self.op(Op::ShedMemory)?;
        }
        if !self.real {
            self.op(Op::Serve { listener })?;
            // `start`, as the control call performs it.
            self.step = Step::SpawnWorkload;
            self.start_hooks()?;
            return self.spawn_workload();
        }
        self.serve(listener)
    }

    /// Waits (bounded) for the supervisor's one-byte `mark` on the control
    /// socketpair; its failure report instead is that failure, its end
    /// without one a failure that says so.
    pub(super) fn await_supervisor_mark(&mut self, control: FdRef, sup: ProcRef, mark: u8, what: &str) -> R<()> {
        let got = self.op(Op::AwaitMark {
            fd: control,
            proc: sup,
            timeout_ms: READY_TIMEOUT_MS,
            mark,
        })?;
        match got {
            Outcome::Bytes(b) if b == [mark] => Ok(()),
            Outcome::Bytes(b) if b.is_empty() => Err(self.failure(
                &format!("await the supervisor's {what} mark"),
                format!("the supervisor ended before its {what} mark, without a report"),
            )),
            Outcome::Bytes(b) => Err(serde_json::from_slice(&b).unwrap_or_else(|_| StepFailure {
                step: Step::Wait,
                ..self.failure("supervisor report", String::from_utf8_lossy(&b).into_owned())
            })),
            o => Err(self.odd(o)),
        }
    }

    /// The launcher's end of `create`: waits (bounded) for the supervisor's
    /// ready mark, records the sandbox, commits, checks the socket answers,
    /// and lets go of everything the sandbox keeps (its processes, cgroups
    /// and directory) while closing its own fds.
    pub(super) fn finish_create(&mut self) -> R<()> {
        if self.committed {
            return Ok(());
        }
        self.origin = Origin::rule(CREATE_RULE);
        let (Some(sup), Some(control), Some((dir, path)), Some(creating)) = (
            self.supervisor,
            self.control,
            self.sandbox_dir.clone(),
            self.creating.clone(),
        ) else {
            return Err(self.unsupported("create without its supervisor, socket or directory"));
        };
        self.await_supervisor_mark(control, sup, READY_MARK, "ready")?;
        for (name, data) in &creating.files {
            self.op(Op::WriteStateFile {
                dir,
                path: path.clone(),
                name,
                data: Rc::clone(data),
            })?;
        }
        self.op(Op::WriteRecord {
            dir,
            path: path.clone(),
            record: Rc::new(creating.record.clone()),
            pid: sup.pid,
        })?;
        if let Some(p) = &creating.pid_file {
            self.op(Op::WritePidFile {
                path: p.clone(),
                pid: sup.pid,
            })?;
        }
        self.op(Op::SendMark {
            fd: control,
            mark: COMMIT_MARK,
        })?;
        self.committed = true;
        self.op(Op::AwaitServing {
            path: path.join(CONTROL_SOCKET),
            proc: sup,
            timeout_ms: READY_TIMEOUT_MS,
        })?;
        // The sandbox is recorded and served: what it owns stays (its
        // processes, cgroup directories, state directory); the launcher's
        // own fds and joined namespaces are let go, which also releases the
        // directory's lock.
        self.undo.retain(|u| {
            !matches!(
                u,
                Undo::Child(_) | Undo::CgroupDir { .. } | Undo::SandboxDir(_) | Undo::StateFile(_)
            )
        });
        let left = self.rollback();
        self.status = sup.pid;
        tracing::info!("created sandbox {} (supervisor {})", self.id.as_str(), sup.pid);
        if left.is_empty() {
            Ok(())
        } else {
            Err(self.failure("let go of the launcher's fds", left.join("; ")))
        }
    }
}
