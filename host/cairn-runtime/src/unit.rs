//! One actor per unit: delivers its events one at a time, in order, as Juju does.
//!
//! The unit's record (status, stored state, queue, deferred events, history) is persisted
//! with an atomic write before an event is acknowledged, so after a crash every
//! unacknowledged event is delivered again. A failed event puts the unit in `error`, keeps
//! its place at the head of the queue and is retried with backoff (or at once when a new
//! event arrives); the status and stored-state changes of a failed event are discarded.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_supervisor::Supervisor;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::bindings::UnitContext;
use crate::engine::{Charm, Runtime};
use crate::types::{ConfigValue, Event, LogLine, Outcome, Status};

/// History entries kept per unit.
const MAX_HISTORY: usize = 500;

/// One delivered event, as `cairn events` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// When delivery finished (RFC 3339).
    pub time: String,
    /// The event's name (`config-changed`, `web-pebble-ready`).
    pub event: String,
    /// `handled`, `deferred` or `error: <why>`.
    pub outcome: String,
    /// Wall time of the dispatch, in microseconds.
    pub duration_us: u64,
}

/// Everything persisted about a unit.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct UnitRecord {
    /// `app/N`.
    pub name: String,
    /// Whether it leads its app.
    pub leader: bool,
    /// Workload status, as last committed by the charm.
    pub status: Status,
    /// Application status (meaningful for the leader).
    pub app_status: Status,
    /// The failure holding the queue, if any.
    pub error: Option<String>,
    /// Stored state.
    pub stored: BTreeMap<String, Vec<u8>>,
    /// Events not yet acknowledged, in arrival order.
    pub queue: VecDeque<Event>,
    /// Deferred events, re-delivered before the next event.
    pub deferred: Vec<Event>,
    /// Recent deliveries.
    pub history: VecDeque<HistoryEntry>,
    /// Set once `remove` was asked for: the actor exits when the queue is empty.
    pub removing: bool,
}

impl UnitRecord {
    /// The status to show: `error` while an event is failing, else the charm's.
    pub fn display_status(&self) -> Status {
        match &self.error {
            Some(e) => Status::Error(e.clone()),
            None => self.status.clone(),
        }
    }
}

/// The app-level facts a unit's events need.
pub(crate) struct AppView {
    pub(crate) config: BTreeMap<String, ConfigValue>,
    pub(crate) charm: Arc<Charm>,
}

/// State shared between a unit's actor and the host.
pub(crate) struct UnitShared {
    pub(crate) app_name: String,
    pub(crate) model: String,
    pub(crate) dir: PathBuf,
    pub(crate) record: Mutex<UnitRecord>,
    pub(crate) wake: Notify,
    pub(crate) containers: BTreeMap<String, Supervisor>,
    pub(crate) app: Arc<Mutex<AppView>>,
    pub(crate) retry_base: Duration,
    pub(crate) retry_max: Duration,
    pub(crate) actions: Arc<crate::actions::ActionStore>,
}

impl UnitShared {
    /// Persists the record atomically.
    pub(crate) fn save(&self) {
        let data = {
            let rec = self.record.lock().unwrap();
            serde_json::to_vec(&*rec)
        };
        match data {
            Ok(d) => {
                if let Err(e) =
                    cairn_supervisor::persist::atomic_write(&self.dir.join("unit.json"), &d)
                {
                    tracing::error!("cannot write unit state: {e}");
                }
            }
            Err(e) => tracing::error!("cannot encode unit state: {e}"),
        }
    }

    /// Queues an event (persisted) and wakes the actor.
    pub(crate) fn enqueue(&self, event: Event) {
        {
            let mut rec = self.record.lock().unwrap();
            if event == Event::UpdateStatus && rec.queue.contains(&Event::UpdateStatus) {
                return;
            }
            rec.queue.push_back(event);
        }
        self.save();
        self.wake.notify_one();
    }

    fn append_log(&self, logs: &[LogLine]) {
        if logs.is_empty() {
            return;
        }
        use std::io::Write;
        for l in logs {
            tracing::info!(target: "cairn::unit", "{}", l.message);
        }
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("unit.log"))
        {
            for l in logs {
                let _ = writeln!(f, "{} {:?} {}", l.time, l.level, l.message);
            }
        }
    }
}

/// Runs a unit's events until it is removed and its queue is empty.
pub(crate) async fn run_actor(unit: Arc<UnitShared>, runtime: Arc<Runtime>) {
    let mut retry = unit.retry_base;
    loop {
        let next = {
            let rec = unit.record.lock().unwrap();
            if rec.queue.is_empty() && rec.removing {
                return;
            }
            rec.queue.front().cloned()
        };
        let Some(head) = next else {
            unit.wake.notified().await;
            continue;
        };
        // Deferred events go first, then the new one.
        let deferred: Vec<Event> = unit.record.lock().unwrap().deferred.clone();
        let mut failed = false;
        let mut still_deferred = Vec::new();
        for ev in deferred {
            match deliver(&unit, &runtime, &ev).await {
                Ok(Outcome::Deferred) => still_deferred.push(ev),
                Ok(Outcome::Handled) => {}
                Err(()) => {
                    failed = true;
                    break;
                }
            }
        }
        if !failed {
            unit.record.lock().unwrap().deferred = still_deferred;
            match deliver(&unit, &runtime, &head).await {
                Ok(outcome) => {
                    let mut rec = unit.record.lock().unwrap();
                    rec.queue.pop_front();
                    if outcome == Outcome::Deferred {
                        rec.deferred.push(head);
                    }
                }
                Err(()) => failed = true,
            }
            unit.save();
        }
        if failed {
            unit.save();
            let removing = unit.record.lock().unwrap().removing;
            if removing {
                // A unit being removed does not wait on a failing charm.
                let mut rec = unit.record.lock().unwrap();
                rec.queue.pop_front();
                drop(rec);
                unit.save();
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep(retry) => {}
                _ = unit.wake.notified() => {}
            }
            retry = (retry * 2).min(unit.retry_max);
        } else {
            retry = unit.retry_base;
        }
    }
}

/// Delivers one event; on success commits status and stored state, on failure records the
/// error; either way records history and persists.
async fn deliver(
    unit: &Arc<UnitShared>,
    runtime: &Arc<Runtime>,
    event: &Event,
) -> Result<Outcome, ()> {
    let (ctx, charm) = {
        let rec = unit.record.lock().unwrap();
        let app = unit.app.lock().unwrap();
        (
            UnitContext {
                unit_name: rec.name.clone(),
                app_name: unit.app_name.clone(),
                model_name: unit.model.clone(),
                containers: unit.containers.clone(),
                config: app.config.clone(),
                unit_status: rec.status.clone(),
                app_status: rec.app_status.clone(),
                leader: rec.leader,
                stored: rec.stored.clone(),
                handle: Some(tokio::runtime::Handle::current()),
                action: None,
            },
            app.charm.clone(),
        )
    };
    let mut ctx = ctx;
    // An action run: mark it running; the charm's report goes into its record.
    let mut action = match event {
        Event::Action { id, .. } => match unit.actions.get(id) {
            Ok(mut a) => {
                a.status = "running".into();
                a.started = crate::now();
                let _ = unit.actions.save(&a);
                ctx.action = Some(crate::bindings::ActionReport::default());
                Some(a)
            }
            Err(e) => {
                tracing::warn!("action {id} has no record: {e}");
                None
            }
        },
        _ => None,
    };
    let rt = runtime.clone();
    let ev = event.clone();
    let done = tokio::task::spawn_blocking(move || rt.dispatch(&charm, ctx, &ev)).await;
    let done = match done {
        Ok(d) => d,
        Err(e) => {
            tracing::error!("dispatch task failed: {e}");
            return Err(());
        }
    };
    unit.append_log(&done.logs);
    if let Some(a) = action.as_mut() {
        let report = done.ctx.action.clone().unwrap_or_default();
        a.results = report.results;
        a.log = report.log;
        a.completed = crate::now();
        match (&done.outcome, report.failed) {
            (Ok(_), None) => a.status = "completed".into(),
            (Ok(_), Some(msg)) => {
                a.status = "failed".into();
                a.message = msg;
            }
            (Err(msg), _) => {
                a.status = "failed".into();
                a.message = msg.clone();
            }
        }
        if let Err(e) = unit.actions.save(a) {
            tracing::error!("cannot record action {}: {e}", a.id);
        }
    }
    let name = event.name();
    let entry = |outcome: String| HistoryEntry {
        time: crate::now(),
        event: name.clone(),
        outcome,
        duration_us: done.duration.as_micros() as u64,
    };
    let mut rec = unit.record.lock().unwrap();
    let (result, h) = match &done.outcome {
        Ok(o) => {
            rec.status = done.ctx.unit_status.clone();
            rec.app_status = done.ctx.app_status.clone();
            rec.stored = done.ctx.stored.clone();
            rec.error = None;
            let label = if *o == Outcome::Handled {
                "handled"
            } else {
                "deferred"
            };
            (Ok(*o), entry(label.into()))
        }
        // A failing action fails that run only, as in Juju: the unit is not in error and
        // the action is not retried.
        Err(msg) if action.is_some() => {
            tracing::warn!("{}: {name} failed: {msg}", rec.name);
            (Ok(Outcome::Handled), entry(format!("error: {msg}")))
        }
        Err(msg) => {
            tracing::warn!("{}: {name} failed: {msg}", rec.name);
            rec.error = Some(format!("hook failed: {name:?}: {msg}"));
            (Err(()), entry(format!("error: {msg}")))
        }
    };
    rec.history.push_back(h);
    while rec.history.len() > MAX_HISTORY {
        rec.history.pop_front();
    }
    result
}
