//! The exec manager (Pebble's `cmdstate`): an exec is a change with one `exec` task, a
//! handler of the runner that starts the command once its I/O is connected. Aborting the
//! change kills the command's process group; the task records the exit code and ends
//! `Done`, as Pebble's does.

use std::sync::{Arc, Mutex};

use crate::exec::{self, ConnectError, Endpoint, ExecArgs, ExecStarted};
use crate::runner::{Outcome, TaskSpec};
use crate::{Inner, SupervisorError};

/// The task kind of an exec.
pub(crate) const EXEC_KIND: &str = "exec";

impl Inner {
    /// Starts an exec (`POST /v1/exec`).
    pub(crate) fn start_exec(
        self: &Arc<Self>,
        mut args: ExecArgs,
    ) -> Result<ExecStarted, SupervisorError> {
        let Some(program) = args.command.first().cloned() else {
            return Err(SupervisorError::BadRequest("must specify command".into()));
        };
        // A slot of the container's budget of concurrent execs, given back when the task
        // ends (or now, if the exec does not start).
        let slot = ExecSlot::take(self)?;
        // As Pebble (Go's exec.LookPath at request time): argv0 is resolved on the
        // supervisor's own PATH.
        let own_path = std::env::var("PATH").unwrap_or_default();
        let root = self.container.root.as_ref();
        let Some(resolved) = exec::look_path(&program, &own_path, root) else {
            return Err(SupervisorError::BadRequest(format!(
                "cannot find executable {program:?}"
            )));
        };
        let (env, dir) = exec::resolve(&args, &self.container.base_env(), root)
            .map_err(|e| SupervisorError::Internal(format!("cannot call exec: {e}")))?;
        args.command[0] = resolved;
        let summary = format!("Execute command {program:?}");
        let kill = Arc::new(tokio::sync::Notify::new());
        let (pending, ends) = exec::channels(args.split_stderr, kill.clone());
        let (env2, dir2) = (env.clone(), dir.clone());
        let spec = TaskSpec::new(EXEC_KIND, summary.clone(), move |ctx| async move {
            let Some(inner) = ctx.inner() else {
                return Outcome::Error("cannot run command: the supervisor is stopping".into());
            };
            inner.container.wait_share().await;
            let started = Mutex::new(None);
            let label = format!("exec {}", ctx.id);
            let spawn = |cmd: crate::spawn::Command| {
                let spawned =
                    inner
                        .services
                        .spawn_recorded(cmd, &label, crate::services::KILL_DELAY_DEFAULT);
                if let Ok((child, _)) = &spawned {
                    *started.lock().unwrap() = Some(child.id() as i32);
                }
                spawned
            };
            let container = inner.container.clone();
            let done = {
                let run = exec::run(
                    args,
                    env2,
                    dir2,
                    ctx.id,
                    ends,
                    container.root.clone(),
                    &spawn,
                );
                tokio::pin!(run);
                tokio::select! {
                    done = &mut run => done,
                    _ = ctx.cancelled() => {
                        kill.notify_one();
                        run.await
                    }
                }
            };
            inner.execs.lock().unwrap().remove(&ctx.id);
            drop(slot);
            ctx.set_data("exit-code", done.exit_code.into());
            // The group record only matters if the host crashes: it is dropped once the
            // task's waiters have been woken.
            if let Some(pid) = started.into_inner().unwrap() {
                let services = inner.services.clone();
                tokio::spawn(async move { services.exec_exited(pid) });
            }
            match done.error {
                Some(e) => Outcome::Error(e),
                None => Outcome::Done,
            }
        });
        let (change, tasks) =
            self.spawn_change(EXEC_KIND, &summary, vec![], vec![vec![vec![spec]]]);
        self.execs.lock().unwrap().insert(tasks[0], pending);
        Ok(ExecStarted {
            change_id: change.to_string(),
            task_id: tasks[0].to_string(),
            environment: env,
            working_dir: dir,
        })
    }

    /// Connects one I/O endpoint (`stdio`, `stderr`, `control`) of a running exec task.
    pub(crate) fn exec_connect(
        &self,
        task_id: &str,
        id: &str,
    ) -> Result<Endpoint, SupervisorError> {
        let tid: u64 = task_id.parse().unwrap_or(0);
        let kind = self.state.lock().unwrap().book.task_kind(tid);
        match kind.as_deref() {
            None => {
                return Err(SupervisorError::NotFound(format!(
                    "cannot find task {task_id:?}"
                )));
            }
            Some(EXEC_KIND) => {}
            Some(other) => {
                return Err(SupervisorError::BadRequest(format!(
                    "{other:?} tasks do not have websockets"
                )));
            }
        }
        let not_found = || {
            SupervisorError::NotFound(format!("cannot find {id} websocket for task {task_id:?}"))
        };
        let mut execs = self.execs.lock().unwrap();
        let Some(p) = execs.get_mut(&tid) else {
            return Err(not_found());
        };
        p.connect(id).map_err(|e| match e {
            ConnectError::NotFound => not_found(),
            ConnectError::AlreadyConnected => {
                SupervisorError::BadRequest(format!("{id} websocket already connected"))
            }
        })
    }

    /// Kills the commands of every running exec (the supervisor is stopping).
    pub(crate) fn kill_execs(&self) {
        self.runner.cancel_kind(EXEC_KIND);
    }
}

/// One exec's place in the container's budget of concurrent execs, released on drop.
struct ExecSlot {
    inner: std::sync::Weak<Inner>,
}

impl ExecSlot {
    /// Takes a slot, or refuses (counted) when the budget's slots are all taken.
    fn take(inner: &Arc<Inner>) -> Result<Self, SupervisorError> {
        use std::sync::atomic::Ordering;
        let limit = inner.limits.lock().unwrap().clone();
        let mut running = inner.execs_running.load(Ordering::Relaxed);
        loop {
            limit.check_exec(running).map_err(|e| inner.refused(e))?;
            match inner.execs_running.compare_exchange_weak(
                running,
                running + 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    return Ok(ExecSlot {
                        inner: Arc::downgrade(inner),
                    });
                }
                Err(now) => running = now,
            }
        }
    }
}

impl Drop for ExecSlot {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.upgrade() {
            inner
                .execs_running
                .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        }
    }
}
