//! The one change/task runner, as Pebble's `TaskRunner`: every operation that takes time
//! (services, exec, checks) is a change whose tasks are handlers run here.
//!
//! A change is a list of *phases*; a phase is a set of *lanes* run concurrently; a lane is a
//! list of tasks run one after the other. A failing task puts the rest of its lane on hold,
//! and a phase with any task not `Done` puts every later phase on hold (services stop
//! before they start). Aborting a change puts tasks not started on hold and aborts running
//! ones: their status becomes `Abort` and their handler's [`TaskCtx::cancelled`] fires, so
//! a running exec command or check ends at once, whatever kind of task it is.
//!
//! The runner owns the change book's task transitions (`Do` → `Doing` → `Done`/`Error`/…);
//! handlers only log, set data and return an [`Outcome`].

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::watch;

use crate::Inner;
use crate::changes::ChangeStatus;

/// How a task's handler ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Succeeded (also what an aborted task ends as when its handler stops cleanly, as in
    /// Pebble: an aborted exec records its exit code and ends `Done`, a stopped or
    /// replaced check's change ends `Done`).
    Done,
    /// Failed: the text is logged on the task and shows in the change's `err`.
    Error(String),
}

/// The future a handler returns.
pub(crate) type HandlerFuture = Pin<Box<dyn Future<Output = Outcome> + Send>>;

/// The work of one task, given its context when the runner starts it.
pub(crate) type Handler = Box<dyn FnOnce(TaskCtx) -> HandlerFuture + Send>;

/// One task of a change: its kind and summary (as the API shows them) and its handler.
pub(crate) struct TaskSpec {
    pub(crate) kind: String,
    pub(crate) summary: String,
    pub(crate) handler: Handler,
}

impl TaskSpec {
    /// A task of `kind` with `summary`, run by `handler`.
    pub(crate) fn new<F, Fut>(kind: &str, summary: String, handler: F) -> Self
    where
        F: FnOnce(TaskCtx) -> Fut + Send + 'static,
        Fut: Future<Output = Outcome> + Send + 'static,
    {
        TaskSpec {
            kind: kind.to_string(),
            summary,
            handler: Box::new(move |ctx| Box::pin(handler(ctx))),
        }
    }
}

/// Tasks run one after another.
pub(crate) type Lane = Vec<TaskSpec>;
/// Lanes run concurrently.
pub(crate) type Phase = Vec<Lane>;

/// What a running handler may do: log on its task, set its data, and learn that it was
/// aborted.
pub(crate) struct TaskCtx {
    /// The task's id.
    pub(crate) id: u64,
    inner: Weak<Inner>,
    cancel: watch::Receiver<bool>,
}

impl TaskCtx {
    /// Appends an INFO line to the task's log.
    pub(crate) fn log(&self, msg: &str) {
        if let Some(inner) = self.inner.upgrade() {
            inner.state.lock().unwrap().book.task_log(self.id, msg);
            inner.changed();
        }
    }

    /// Appends an ERROR line to the task's log without failing it (a check's failed run).
    pub(crate) fn log_error(&self, msg: &str) {
        if let Some(inner) = self.inner.upgrade() {
            inner.state.lock().unwrap().book.task_error(self.id, msg);
            inner.changed();
        }
    }

    /// Sets a key of the task's data (an exec's `exit-code`).
    pub(crate) fn set_data(&self, key: &str, value: serde_json::Value) {
        if let Some(inner) = self.inner.upgrade() {
            inner
                .state
                .lock()
                .unwrap()
                .book
                .set_task_data(self.id, key, value);
        }
    }

    /// Resolves when the task's change is aborted, or when the supervisor is gone (its
    /// runner, holding the sender, was dropped).
    pub(crate) async fn cancelled(&self) {
        let mut rx = self.cancel.clone();
        let _ = rx.wait_for(|c| *c).await;
    }

    /// The supervisor, while it lives.
    pub(crate) fn inner(&self) -> Option<Arc<Inner>> {
        self.inner.upgrade()
    }
}

/// The runner's record of running tasks: how to abort each.
#[derive(Default)]
pub(crate) struct Runner {
    running: Mutex<HashMap<u64, Running>>,
}

struct Running {
    kind: String,
    cancel: watch::Sender<bool>,
}

impl Runner {
    /// Aborts the running task `id`, if it runs. Returns whether it did.
    pub(crate) fn cancel(&self, id: u64) -> bool {
        match self.running.lock().unwrap().get(&id) {
            Some(r) => {
                let _ = r.cancel.send(true);
                true
            }
            None => false,
        }
    }

    /// Aborts every running task of `kind` (the supervisor is stopping its execs).
    pub(crate) fn cancel_kind(&self, kind: &str) {
        for r in self.running.lock().unwrap().values() {
            if r.kind == kind {
                let _ = r.cancel.send(true);
            }
        }
    }
}

impl Inner {
    /// Records a change of `kind` with `summary` and its tasks, sets its `data`, and runs it
    /// in the background. Returns the change id and the task ids in order (phase by phase,
    /// lane by lane).
    pub(crate) fn spawn_change(
        self: &Arc<Self>,
        kind: &str,
        summary: &str,
        data: Vec<(&str, serde_json::Value)>,
        phases: Vec<Phase>,
    ) -> (u64, Vec<u64>) {
        let specs: Vec<(String, String)> = phases
            .iter()
            .flatten()
            .flatten()
            .map(|t| (t.kind.clone(), t.summary.clone()))
            .collect();
        let first_lanes: Vec<usize> = phases
            .first()
            .map(|phase| phase.iter().map(Vec::len).collect())
            .unwrap_or_default();
        let (id, tids) = {
            let mut state = self.state.lock().unwrap();
            let (id, tids) = state.book.new_change(kind, summary, &specs);
            for (key, value) in data {
                state.book.set_change_data(id, key, value);
            }
            // The first task of each lane of the first phase is running from the start, as
            // soon as the change is visible.
            let mut at = 0;
            for len in first_lanes {
                if len > 0 {
                    state.book.set_task_status(tids[at], ChangeStatus::Doing);
                }
                at += len;
            }
            (id, tids)
        };
        self.changed();
        let mut ids = tids.iter().copied();
        let phases: Vec<Vec<Vec<(u64, TaskSpec)>>> = phases
            .into_iter()
            .map(|phase| {
                phase
                    .into_iter()
                    .map(|lane| {
                        lane.into_iter()
                            .map(|t| (ids.next().expect("one id per task"), t))
                            .collect()
                    })
                    .collect()
            })
            .collect();
        if !phases.is_empty() {
            // The driver holds the supervisor weakly: a dropped supervisor cancels its
            // running tasks (their runner goes with it) and the driver then stops.
            let inner = Arc::downgrade(self);
            tokio::spawn(async move {
                let mut ok = true;
                for phase in phases {
                    if ok {
                        ok = run_phase(&inner, phase).await;
                    } else if let Some(this) = inner.upgrade() {
                        let ids: Vec<u64> = phase.iter().flatten().map(|(id, _)| *id).collect();
                        this.hold(&ids);
                    }
                }
            });
        }
        (id, tids)
    }

    /// Aborts change `id`: tasks waiting to run are put on hold, running ones move to
    /// `Abort` and their handlers are cancelled. Returns the change as the abort left it.
    pub(crate) fn abort(&self, id: u64) -> Option<crate::ChangeInfo> {
        let mut cancel = Vec::new();
        let info = {
            let mut state = self.state.lock().unwrap();
            for t in state.book.change_tasks(id) {
                match state.book.task_status(t) {
                    Some(ChangeStatus::Do) => state.book.set_task_status(t, ChangeStatus::Hold),
                    Some(ChangeStatus::Doing) => {
                        state.book.set_task_status(t, ChangeStatus::Abort);
                        cancel.push(t);
                    }
                    _ => {}
                }
            }
            // The change as the abort left it (its tasks may end at once after).
            state.book.change_info(id)
        };
        for t in cancel {
            self.runner.cancel(t);
        }
        self.changed();
        info
    }

    /// Puts tasks on hold (they will not run).
    fn hold(&self, ids: &[u64]) {
        if ids.is_empty() {
            return;
        }
        {
            let mut state = self.state.lock().unwrap();
            for id in ids {
                state.book.set_task_status(*id, ChangeStatus::Hold);
            }
        }
        self.changed();
    }
}

/// Runs one phase: its lanes together; whether every task ended `Done`.
async fn run_phase(inner: &Weak<Inner>, phase: Vec<Vec<(u64, TaskSpec)>>) -> bool {
    let handles: Vec<_> = phase
        .into_iter()
        .map(|lane| tokio::spawn(run_lane(inner.clone(), lane)))
        .collect();
    let mut ok = true;
    for h in handles {
        ok &= h.await.unwrap_or(false);
    }
    ok
}

/// Runs one lane's tasks in order; the supervisor is held only between handlers.
async fn run_lane(inner: Weak<Inner>, lane: Vec<(u64, TaskSpec)>) -> bool {
    let mut tasks = lane.into_iter();
    while let Some((id, spec)) = tasks.next() {
        let Some(this) = inner.upgrade() else {
            return false;
        };
        let rest = |tasks: std::vec::IntoIter<(u64, TaskSpec)>| -> Vec<u64> {
            tasks.map(|(id, _)| id).collect()
        };
        let (tx, rx) = watch::channel(false);
        {
            let mut state = this.state.lock().unwrap();
            match state.book.task_status(id) {
                Some(ChangeStatus::Do) => state.book.set_task_status(id, ChangeStatus::Doing),
                Some(ChangeStatus::Doing) => {}
                // Aborted once running, before its handler started: the handler starts
                // cancelled, and ends as it does when aborted.
                Some(ChangeStatus::Abort) => {
                    let _ = tx.send(true);
                }
                _ => {
                    // Aborted before it started: it and the rest of its lane stay on hold.
                    drop(state);
                    let mut ids = vec![id];
                    ids.extend(rest(tasks));
                    this.hold(&ids);
                    return false;
                }
            }
            this.runner.running.lock().unwrap().insert(
                id,
                Running {
                    kind: spec.kind.clone(),
                    cancel: tx,
                },
            );
        }
        this.changed();
        let ctx = TaskCtx {
            id,
            inner: inner.clone(),
            cancel: rx,
        };
        drop(this);
        let outcome = (spec.handler)(ctx).await;
        let Some(this) = inner.upgrade() else {
            return false;
        };
        this.runner.running.lock().unwrap().remove(&id);
        let ok = {
            let mut state = this.state.lock().unwrap();
            match outcome {
                Outcome::Done => {
                    // An aborted task that finished anyway is undone first, as Pebble's
                    // task runner does ("it was actually Done"), and with nothing to undo
                    // it ends Done: the change's notices see Undo, then Done.
                    if state.book.task_status(id) == Some(ChangeStatus::Abort) {
                        state.book.set_task_status(id, ChangeStatus::Undo);
                    }
                    state.book.set_task_status(id, ChangeStatus::Done);
                    true
                }
                Outcome::Error(e) => {
                    // As Pebble's task runner: the lane is aborted first (the failing task
                    // Abort, the rest of the lane on hold), then the task is set Error; the
                    // change's notices see Abort, then Error.
                    state.book.set_task_status(id, ChangeStatus::Abort);
                    for held in rest(std::mem::take(&mut tasks)) {
                        state.book.set_task_status(held, ChangeStatus::Hold);
                    }
                    state.book.task_error(id, &e);
                    state.book.set_task_status(id, ChangeStatus::Error);
                    false
                }
            }
        };
        this.changed();
        if !ok {
            return false;
        }
    }
    true
}
