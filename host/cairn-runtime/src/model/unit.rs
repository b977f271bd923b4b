//! One actor per unit: delivers its events one at a time, in order, as Juju does.
//!
//! The unit's record (status, stored state, queue, deferred events, history) is persisted
//! with an atomic write before an event is acknowledged, so after a crash every
//! unacknowledged event is delivered again. A failed event puts the unit in `error`, keeps
//! its place at the head of the queue and is retried with backoff (or at once when a new
//! event arrives); the status and stored-state changes of a failed event are discarded.
//!
//! Removal interrupts: the event running is stopped at once, the queue and the deferred
//! events are dropped, and the charm gets `stop` and `remove` under a short deadline of
//! their own ([`REMOVAL_HOOK_DEADLINE`]), so no charm can hold its removal up.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_supervisor::Supervisor;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};

use super::relations::RelationStore;
use crate::RuntimeError;
use crate::actions::{ActionStatus, ActionStore};
use crate::types::{ConfigValue, Event, LogLine, Outcome, WorkloadStatus};
use crate::wasm::{
    ActionReport, Charm, ContainerBackend, Failure, Interrupt, Runtime, UnitContext,
};

/// History entries kept per unit.
const MAX_HISTORY: usize = 500;

/// The size at which `unit.log` is moved to `unit.log.1` and a new one begun (see
/// [`append_log_file`]): each event adds at most its `log-bytes`, but a tenant can make
/// events without end (its workload's notices), and the host's disk is shared.
const UNIT_LOG_ROTATE: u64 = 8 << 20;

/// The deadline of each of the `stop` and `remove` events of a unit being removed (or the
/// event deadline, if shorter): the host stops the unit's services itself afterwards, so
/// these hooks are for quick tidying, and a charm cannot delay its removal with them.
pub(crate) const REMOVAL_HOOK_DEADLINE: Duration = Duration::from_millis(500);

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

/// Everything persisted about a unit (a field missing from a record an older version
/// wrote takes its default).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct UnitRecord {
    /// `app/N`.
    pub name: String,
    /// Whether it leads its app.
    pub leader: bool,
    /// Workload status, as last committed by the charm.
    pub status: WorkloadStatus,
    /// Application status (meaningful for the leader).
    pub app_status: WorkloadStatus,
    /// The failure holding the queue, if any.
    pub error: Option<String>,
    /// The event whose failure holds the queue (the head of the queue, or a deferred
    /// event delivered before it): what `cairn resolve --no-retry` drops.
    pub failed_event: Option<Event>,
    /// Stored state (each value base64 in the file: bytes as JSON numbers took up to four
    /// bytes each).
    #[serde(with = "stored_values")]
    pub stored: BTreeMap<String, Vec<u8>>,
    /// Events not yet acknowledged, in arrival order.
    pub queue: VecDeque<Event>,
    /// Deferred events, re-delivered before the next event.
    pub deferred: Vec<Event>,
    /// The history a record of an older version carried; moved to [`HISTORY_FILE`] on
    /// load. A unit's deliveries are kept in that file alone (one line appended per
    /// entry; [`UnitShared::history`] reads it): in memory, the last [`MAX_HISTORY`] of
    /// every idle unit would cost tens of KiB each.
    #[serde(rename = "history", skip_serializing)]
    pub(crate) legacy_history: Vec<HistoryEntry>,
    /// Entries recorded but not yet appended to [`HISTORY_FILE`] (the next save does).
    #[serde(skip)]
    pub(crate) unwritten: Vec<HistoryEntry>,
    /// The lines [`HISTORY_FILE`] had when the record was loaded.
    #[serde(skip)]
    pub(crate) history_file_lines: usize,
    /// Set once `remove` was asked for: the actor exits when the queue is empty.
    pub removing: bool,
    /// The app's config generation this unit was last given a `config-changed` for (the
    /// host queues one on open when the app's record is newer: a crash came between the
    /// two writes).
    pub config_generation: u64,
    /// The app's charm generation this unit was last given an `upgrade-charm` for (the
    /// host queues one on open when the app's record is newer).
    pub charm_generation: u64,
    /// The config generation of the last `config-changed` the charm ran without failing
    /// (what `cairn config --wait` waits for).
    pub config_handled: u64,
}

/// Stored-state values as base64 strings; a record an older version wrote (arrays of
/// numbers) is still read.
mod stored_values {
    use std::collections::BTreeMap;

    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    /// One value as it may be found in a record.
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Stored {
        Base64(String),
        Numbers(Vec<u8>),
    }

    pub(super) fn serialize<S: Serializer>(
        map: &BTreeMap<String, Vec<u8>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_map(map.iter().map(|(k, v)| (k, STANDARD.encode(v))))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, Vec<u8>>, D::Error> {
        BTreeMap::<String, Stored>::deserialize(d)?
            .into_iter()
            .map(|(k, v)| match v {
                Stored::Numbers(bytes) => Ok((k, bytes)),
                Stored::Base64(text) => STANDARD
                    .decode(text)
                    .map(|bytes| (k, bytes))
                    .map_err(serde::de::Error::custom),
            })
            .collect()
    }
}

impl UnitRecord {
    /// The status to show: `error` while an event is failing, else the charm's.
    pub fn display_status(&self) -> WorkloadStatus {
        match &self.error {
            Some(e) => WorkloadStatus::Error(e.clone()),
            None => self.status.clone(),
        }
    }

    /// Reads the record a unit left in its directory (and how long its history file is).
    pub(crate) fn load(dir: &Path) -> Result<Self, RuntimeError> {
        let path = dir.join(RECORD_FILE);
        let data = std::fs::read(&path).map_err(|e| RuntimeError::io("read", &path, e))?;
        let mut rec: UnitRecord =
            serde_json::from_slice(&data).map_err(|source| RuntimeError::Record {
                action: "parse",
                path,
                source,
            })?;
        let history = dir.join(HISTORY_FILE);
        match std::fs::read(&history) {
            Ok(data) => {
                rec.history_file_lines = if data.last().is_some_and(|b| *b != b'\n') {
                    // A line a crash cut short: the next save rewrites the file rather
                    // than append to that line.
                    2 * MAX_HISTORY + 1
                } else {
                    data.iter().filter(|b| **b == b'\n').count()
                };
                rec.legacy_history = Vec::new();
            }
            // A record an older version wrote carries its history: it moves to the file.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                rec.unwritten = std::mem::take(&mut rec.legacy_history);
            }
            Err(e) => return Err(RuntimeError::io("read", &history, e)),
        }
        Ok(rec)
    }

    /// Adds `h` to the history: the next save appends it to the history file. (Should
    /// saves keep failing, only the newest [`MAX_HISTORY`] entries wait for one.)
    pub(crate) fn record_history(&mut self, h: HistoryEntry) {
        if self.unwritten.len() >= MAX_HISTORY {
            self.unwritten.remove(0);
        }
        self.unwritten.push(h);
    }
}

/// The app-level facts a unit's events need; the host updates them (config) in place.
pub(crate) struct AppView {
    /// Effective config (defaults plus settings).
    pub(crate) config: BTreeMap<String, ConfigValue>,
    /// The app's compiled charm.
    pub(crate) charm: Arc<Charm>,
    /// The app's budget (its `memory`, `deadline`, per-event limits, `queue`, `deferred`).
    pub(crate) budget: crate::Budget,
    /// Where the app's limit hits are counted.
    pub(crate) hits: Arc<cairn_supervisor::LimitHits>,
    /// The app's share of the host's CPU (`host-cpu`), shared by its containers.
    pub(crate) share: Arc<cairn_supervisor::CpuShare>,
}

/// How a unit retries a failed event: after `base`, doubling up to `max`, or at once when
/// a new event arrives.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Retry {
    /// The first delay.
    pub(crate) base: Duration,
    /// The longest delay.
    pub(crate) max: Duration,
}

/// Everything a unit is given when the host starts it, handed over once.
pub(crate) struct UnitSettings {
    /// The app the unit belongs to.
    pub(crate) app_name: String,
    /// The model's name, as charms see it.
    pub(crate) model: String,
    /// Where its record and log live.
    pub(crate) dir: PathBuf,
    /// Its containers, opened by the host.
    pub(crate) containers: BTreeMap<String, Supervisor>,
    /// The app's config and charm.
    pub(crate) app: Arc<Mutex<AppView>>,
    /// How failed events are retried.
    pub(crate) retry: Retry,
    /// Period of `update-status`.
    pub(crate) update_status_interval: Duration,
    /// The host's action records.
    pub(crate) actions: Arc<ActionStore>,
    /// The app's counters (events, failures, limit hits).
    pub(crate) metrics: Arc<super::metrics::AppMetrics>,
    /// The host's relations: what events see of them, and where their writes go.
    pub(crate) relations: Arc<RelationStore>,
    /// The host's: woken after each delivery the unit finished and persisted.
    pub(crate) progress: Arc<Notify>,
}

/// The file of a unit's record in its directory.
pub(crate) const RECORD_FILE: &str = "unit.json";

/// The file of a unit's history in its directory: one JSON entry per line, appended to;
/// rewritten with the last [`MAX_HISTORY`] entries once it holds twice as many.
pub(crate) const HISTORY_FILE: &str = "history.jsonl";

/// The newest [`MAX_HISTORY`] entries of a history file; a line a crash cut short (or any
/// line that does not parse) is skipped.
fn parse_history(data: &[u8]) -> VecDeque<HistoryEntry> {
    let mut out: VecDeque<HistoryEntry> = data
        .split(|b| *b == b'\n')
        .filter_map(|line| serde_json::from_slice(line).ok())
        .collect();
    while out.len() > MAX_HISTORY {
        out.pop_front();
    }
    out
}

/// A running unit: its state, its actor, and the tasks that feed its queue (the
/// update-status ticker and one notice and one shutdown watcher per container).
pub(crate) struct Unit {
    shared: Arc<UnitShared>,
    /// The actor, until it was waited for.
    actor: Option<JoinHandle<()>>,
    feeders: JoinSet<()>,
}

impl Unit {
    /// Persists `record` and starts the unit's actor and feeders; the actor delivers what
    /// the record's queue holds at once.
    pub(crate) fn start(settings: UnitSettings, record: UnitRecord, runtime: Arc<Runtime>) -> Self {
        // What each event is lent for the containers: the embedded supervisors, built once.
        let backends = settings
            .containers
            .iter()
            .map(|(n, s)| (n.clone(), ContainerBackend::Embedded(s.clone())))
            .collect();
        let history_lines = record.history_file_lines;
        let shared = Arc::new(UnitShared {
            settings,
            backends,
            record: Mutex::new(record),
            writer: Mutex::new(Writer::Open { history_lines }),
            wake: Notify::new(),
            interrupt: Interrupt::new(),
            resolve: Mutex::new(None),
        });
        shared.save();
        let name = shared.name();
        shared.settings.relations.register(name, &shared);
        let actor = tokio::spawn(run_actor(shared.clone(), runtime));
        let mut feeders = JoinSet::new();
        let every = shared.settings.update_status_interval;
        let ticked = Arc::downgrade(&shared);
        feeders.spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            loop {
                tick.tick().await;
                match ticked.upgrade() {
                    Some(unit) => unit.enqueue(Event::UpdateStatus),
                    None => return,
                }
            }
        });
        for (c, sup) in &shared.settings.containers {
            let weak = Arc::downgrade(&shared);
            feeders.spawn(super::watch::watch_shutdown(
                weak.clone(),
                c.clone(),
                sup.clone(),
            ));
            feeders.spawn(super::watch::watch_notices(weak, c.clone(), sup.clone()));
        }
        Unit {
            shared,
            actor: Some(actor),
            feeders,
        }
    }

    /// Queues an event (persisted) and wakes the actor; refused events are logged.
    pub(crate) fn enqueue(&self, event: Event) {
        self.shared.enqueue(event);
    }

    /// Queues an event, or says why the unit's queue budget refuses it.
    pub(crate) fn try_enqueue(&self, event: Event) -> Result<(), String> {
        self.shared.try_enqueue(event)
    }

    /// Queues `config-changed` for the app's config `generation`. Not written now: the
    /// app's record (already written) holds the generation, and a unit found behind it on
    /// open is given `config-changed` again; the record's next write (after the event, at
    /// the latest) has both. So `cairn config --wait` waits for one durable write, not two.
    pub(crate) fn config_changed(&self, generation: u64) {
        self.shared.record.lock().unwrap().config_generation = generation;
        if let Err(e) = self.shared.push_all(vec![Event::ConfigChanged], false) {
            tracing::warn!("{e}");
        }
    }

    /// Queues `upgrade-charm` for the app's charm `generation` (persisted together).
    pub(crate) fn upgrade_charm(&self, generation: u64) {
        self.shared.record.lock().unwrap().charm_generation = generation;
        self.shared.enqueue(Event::UpgradeCharm);
    }

    /// Makes the unit its app's leader, carrying the app's status over from the previous
    /// leader, and queues `leader-elected` (persisted together).
    pub(crate) fn become_leader(&self, app_status: WorkloadStatus) {
        {
            let mut rec = self.shared.record.lock().unwrap();
            rec.leader = true;
            rec.app_status = app_status;
        }
        self.shared.enqueue(Event::LeaderElected);
    }

    /// Takes the leadership away (the app record names another leader), persisted.
    pub(crate) fn lose_leadership(&self) {
        self.shared.record.lock().unwrap().leader = false;
        self.shared.save();
    }

    /// `app/N`.
    pub(crate) fn name(&self) -> String {
        self.shared.name()
    }

    /// Asks the actor to retry or drop the event the unit is failing on; refused, as
    /// Juju's `resolve` is, when the unit is not in error.
    pub(crate) fn resolve(&self, how: Resolve) -> Result<(), String> {
        {
            let rec = self.shared.record.lock().unwrap();
            if rec.error.is_none() {
                return Err(format!("unit {:?} is not in an error state", rec.name));
            }
        }
        *self.shared.resolve.lock().unwrap() = Some(how);
        self.shared.wake.notify_one();
        Ok(())
    }

    /// The unit's containers.
    pub(crate) fn containers(&self) -> &BTreeMap<String, Supervisor> {
        &self.shared.settings.containers
    }

    /// The unit's directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.shared.settings.dir
    }

    /// A look at the unit's record.
    pub(crate) fn with_record<T>(&self, f: impl FnOnce(&UnitRecord) -> T) -> T {
        f(&self.shared.record.lock().unwrap())
    }

    /// The unit's event history, newest last (read from its file).
    pub(crate) fn history(&self) -> VecDeque<HistoryEntry> {
        self.shared.history()
    }

    /// Starts the unit's removal: the event running is interrupted, the queue and deferred
    /// events are replaced by `leaving` (its relations' departed and broken events), `stop`
    /// and `remove` (persisted), and the actor ends once they ran (each under
    /// [`REMOVAL_HOOK_DEADLINE`]; a failing one does not hold it).
    pub(crate) fn begin_removal(&self, leaving: Vec<Event>) {
        {
            let mut rec = self.shared.record.lock().unwrap();
            rec.removing = true;
            rec.queue = leaving.into_iter().collect();
            rec.queue.extend([Event::Stop, Event::Remove]);
            rec.deferred.clear();
        }
        self.shared.save();
        self.shared.interrupt.interrupt();
        self.shared.wake.notify_one();
    }

    /// Waits for the actor to end (after `begin_removal`); the feeders stop first. Once it
    /// returns nothing writes the unit's record any more: its directory can be deleted.
    pub(crate) async fn finish_removal(&mut self) {
        self.feeders.abort_all();
        while self.feeders.join_next().await.is_some() {}
        if let Some(actor) = self.actor.take() {
            let _ = actor.await;
        }
        self.shared.close();
    }

    /// Stops the actor and the feeders and waits for them (the queue stays as last
    /// persisted); after it nothing writes the unit's record.
    pub(crate) async fn stop(&mut self) {
        self.abort();
        self.finish_removal().await;
    }

    /// Stops the actor and the feeders now; the queue stays persisted.
    pub(crate) fn abort(&mut self) {
        if let Some(actor) = &self.actor {
            actor.abort();
        }
        self.feeders.abort_all();
    }
}

/// Whether a unit's record may still be written.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Writer {
    /// Saves go to `unit.json` and `history.jsonl`, which has `history_lines` lines.
    Open { history_lines: usize },
    /// The unit was stopped or removed: saves are dropped (its directory may be gone).
    Closed,
}

/// State shared between a unit's actor, its feeders and the host.
pub(crate) struct UnitShared {
    settings: UnitSettings,
    /// The containers as events see them (every one embedded).
    backends: BTreeMap<String, ContainerBackend>,
    record: Mutex<UnitRecord>,
    /// Held across taking a snapshot of the record and writing it, so that `unit.json` is
    /// written by one saver at a time, in snapshot order (an older snapshot never lands
    /// after a newer one).
    writer: Mutex<Writer>,
    wake: Notify,
    /// Given when removal begins: ends the event running (and any the actor would still
    /// start outside removal's own `stop` and `remove`).
    interrupt: Interrupt,
    /// What the operator asked of the failing event (`cairn resolve`), for the actor to take.
    resolve: Mutex<Option<Resolve>>,
}

/// What `cairn resolve` does with the event a unit is failing on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolve {
    /// Deliver it again now.
    Retry,
    /// Drop it and go on with the queue (`--no-retry`).
    Skip,
}

impl UnitShared {
    /// `app/N`.
    pub(crate) fn name(&self) -> String {
        self.record.lock().unwrap().name.clone()
    }

    /// Persists the record atomically, then appends the new history entries: the one
    /// writer of `unit.json` and `history.jsonl`.
    fn save(&self) {
        let mut writer = self.writer.lock().unwrap();
        let lines = match &mut *writer {
            Writer::Closed => return,
            Writer::Open { history_lines } => history_lines,
        };
        let (data, unwritten) = {
            let mut rec = self.record.lock().unwrap();
            let unwritten = std::mem::take(&mut rec.unwritten);
            (serde_json::to_vec(&*rec), unwritten)
        };
        match data {
            Ok(d) => {
                let path = self.settings.dir.join(RECORD_FILE);
                if let Err(e) = cairn_supervisor::persist::atomic_write(&path, &d) {
                    tracing::error!("cannot write unit state: {e}");
                }
            }
            Err(e) => tracing::error!("cannot encode unit state: {e}"),
        }
        if unwritten.is_empty() {
            return;
        }
        let path = self.settings.dir.join(HISTORY_FILE);
        // Rewritten whole, to what is kept, once twice as long as that.
        let written = if *lines + unwritten.len() > 2 * MAX_HISTORY {
            let mut kept = read_history(&path);
            kept.extend(unwritten);
            let kept = kept.make_contiguous();
            let kept = &kept[kept.len().saturating_sub(MAX_HISTORY)..];
            write_history(&path, kept, false).map(|()| kept.len())
        } else {
            write_history(&path, &unwritten, true).map(|()| *lines + unwritten.len())
        };
        match written {
            Ok(n) => *lines = n,
            Err(e) => tracing::error!("cannot write unit history: {e}"),
        }
    }

    /// The unit's history, newest last: the file, then what the next save appends to it
    /// (read while no save is under way, so that no entry is seen twice or missed).
    pub(crate) fn history(&self) -> VecDeque<HistoryEntry> {
        let _writer = self.writer.lock().unwrap();
        let unwritten = self.record.lock().unwrap().unwritten.clone();
        let mut all = read_history(&self.settings.dir.join(HISTORY_FILE));
        all.extend(unwritten);
        while all.len() > MAX_HISTORY {
            all.pop_front();
        }
        all
    }

    /// Drops the event the unit is failing on (`cairn resolve --no-retry`), from the
    /// deferred events or the head of the queue, and clears the error; false when the unit
    /// is no longer in error (the retry in flight succeeded).
    fn skip_failed(&self) -> bool {
        let mut rec = self.record.lock().unwrap();
        if rec.error.is_none() {
            return false;
        }
        let failed = rec.failed_event.take();
        let dropped = match failed {
            Some(ev) if rec.queue.front() != Some(&ev) => {
                let at = rec.deferred.iter().position(|d| *d == ev);
                at.map(|i| rec.deferred.remove(i))
            }
            _ => rec.queue.pop_front(),
        };
        rec.error = None;
        if let Some(ev) = dropped {
            tracing::info!(
                "{}: {} dropped (resolved with --no-retry)",
                rec.name,
                ev.name()
            );
            rec.record_history(HistoryEntry {
                time: crate::now(),
                event: ev.name(),
                outcome: "skipped: resolved with --no-retry".into(),
                duration_us: 0,
            });
        }
        true
    }

    /// Stops all writes of the record (waiting for one in progress).
    fn close(&self) {
        *self.writer.lock().unwrap() = Writer::Closed;
    }

    /// Queues an event (persisted) and wakes the actor; one the queue budget refuses is
    /// logged (and counted).
    pub(crate) fn enqueue(&self, event: Event) {
        if let Err(e) = self.try_enqueue(event) {
            tracing::warn!("{e}");
        }
    }

    /// Queues an event (persisted) and wakes the actor. An `update-status`, or a
    /// `config-changed` or `pebble-ready` already waiting behind the head, is not queued
    /// twice (the one waiting sees the latest config). Actions, notices and check events
    /// are refused past the app's `queue` budget (counted); lifecycle events never are.
    pub(crate) fn try_enqueue(&self, event: Event) -> Result<(), String> {
        self.try_enqueue_all(vec![event])
    }

    /// Queues `events` together (one write, nothing queued between them), each as
    /// [`UnitShared::try_enqueue`] would; the first refusal is returned after the others
    /// are queued.
    pub(crate) fn try_enqueue_all(&self, events: Vec<Event>) -> Result<(), String> {
        self.push_all(events, true)
    }

    /// Queues `events`, written to the record when `persist` (else with the record's next
    /// write: for an event the host makes up for on open when a crash lost it).
    fn push_all(&self, events: Vec<Event>, persist: bool) -> Result<(), String> {
        let (cap, hits) = {
            let app = self.settings.app.lock().unwrap();
            (app.budget.queue, app.hits.clone())
        };
        let mut refused = Ok(());
        let mut pushed = false;
        {
            let mut rec = self.record.lock().unwrap();
            for event in events {
                match push_event(&mut rec, event, cap, &hits) {
                    Ok(p) => pushed |= p,
                    Err(e) => refused = refused.and(Err(e)),
                }
            }
        }
        if pushed {
            // The actor may start on the event while it is being written: the record it
            // saves after the event is the newer snapshot, and the one writer keeps the
            // order, so the write is off the event's path.
            self.wake.notify_one();
            if persist {
                self.save();
            }
        }
        refused
    }

    /// What one event is lent: the unit's identity, containers, config, statuses, stored
    /// state and relations as they are now, and the app's charm.
    fn context(&self, event: &Event) -> (UnitContext, Arc<Charm>, u64) {
        let name = self.name();
        let relations = self
            .settings
            .relations
            .snapshot(&name, &self.settings.app_name, event);
        let rec = self.record.lock().unwrap();
        let app = self.settings.app.lock().unwrap();
        let ctx = UnitContext {
            unit_name: rec.name.clone(),
            app_name: self.settings.app_name.clone(),
            model_name: self.settings.model.clone(),
            containers: self.backends.clone(),
            config: app.config.clone(),
            unit_status: rec.status.clone(),
            app_status: rec.app_status.clone(),
            leader: rec.leader,
            stored: rec.stored.clone(),
            relations,
            action: None,
            budget: app.budget.clone(),
            hits: app.hits.clone(),
            facts: None,
        };
        (ctx, app.charm.clone(), rec.config_generation)
    }

    fn append_log(&self, logs: &[LogLine]) {
        if logs.is_empty() {
            return;
        }
        for l in logs {
            tracing::info!(target: "cairn::unit", "{}", l.message);
        }
        let path = self.settings.dir.join("unit.log");
        if let Err(e) = append_log_file(&path, logs, UNIT_LOG_ROTATE) {
            tracing::warn!("cannot write {}: {e}", path.display());
        }
    }
}

/// Appends `logs` to the log file at `path`, first moving it to `<path>.1` (replacing the
/// one there) when it has reached `rotate` bytes: however many events a unit has, its log
/// takes at most twice `rotate` plus one event's lines.
/// The history file's entries (none when it cannot be read, which is logged).
fn read_history(path: &Path) -> VecDeque<HistoryEntry> {
    match std::fs::read(path) {
        Ok(data) => parse_history(&data),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => VecDeque::new(),
        Err(e) => {
            tracing::error!("cannot read unit history {}: {e}", path.display());
            VecDeque::new()
        }
    }
}

/// Appends `entries` to the history file at `path` (`append`), or replaces it with them
/// atomically. Appends are not synced: a crash may lose the last entries, or cut the last
/// line short, which a reader skips.
fn write_history(path: &Path, entries: &[HistoryEntry], append: bool) -> std::io::Result<()> {
    let mut data = Vec::new();
    for h in entries {
        serde_json::to_writer(&mut data, h)?;
        data.push(b'\n');
    }
    if !append {
        return cairn_supervisor::persist::atomic_write(path, &data);
    }
    use std::io::Write;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?
        .write_all(&data)
}

fn append_log_file(path: &Path, logs: &[LogLine], rotate: u64) -> std::io::Result<()> {
    use std::io::Write;
    if std::fs::metadata(path).is_ok_and(|m| m.len() >= rotate) {
        let mut previous = path.as_os_str().to_owned();
        previous.push(".1");
        std::fs::rename(path, previous)?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let mut f = std::io::BufWriter::new(file);
    for l in logs {
        writeln!(f, "{} {:?} {}", l.time, l.level, l.message)?;
    }
    f.flush()
}

/// Puts `event` at the end of `rec`'s queue by [`UnitShared::try_enqueue`]'s rules (`cap`
/// is the app's `queue` budget, counted in `hits`); false when an equal event already
/// waits.
fn push_event(
    rec: &mut UnitRecord,
    event: Event,
    cap: u64,
    hits: &cairn_supervisor::LimitHits,
) -> Result<bool, String> {
    let waiting = |rec: &UnitRecord, skip: usize| rec.queue.iter().skip(skip).any(|e| *e == event);
    match &event {
        Event::UpdateStatus if waiting(rec, 0) => return Ok(false),
        Event::ConfigChanged | Event::PebbleReady { .. } | Event::RelationChanged(_)
            if waiting(rec, 1) =>
        {
            return Ok(false);
        }
        Event::Action { .. }
        | Event::PebbleCustomNotice { .. }
        | Event::PebbleCheckFailed { .. }
        | Event::PebbleCheckRecovered { .. }
            if rec.queue.len() as u64 >= cap =>
        {
            hits.hit("queue");
            return Err(format!(
                "cannot queue {} on {}: {} events are waiting, the app's budget (queue={cap})",
                event.name(),
                rec.name,
                rec.queue.len()
            ));
        }
        _ => {}
    }
    rec.queue.push_back(event);
    Ok(true)
}

/// Runs a unit's events until it is removed and its queue is empty.
async fn run_actor(unit: Arc<UnitShared>, runtime: Arc<Runtime>) {
    let mut retry = unit.settings.retry.base;
    loop {
        let (next, removing) = {
            let rec = unit.record.lock().unwrap();
            if rec.queue.is_empty() && rec.removing {
                return;
            }
            (rec.queue.front().cloned(), rec.removing)
        };
        let Some(head) = next else {
            unit.wake.notified().await;
            continue;
        };
        // Boxed: a step's state is kilobytes, which an idle unit's actor (all it does is
        // wait for its next event) would otherwise carry.
        Box::pin(step(&unit, &runtime, head, removing, &mut retry)).await;
    }
}

/// One turn of the actor: the deferred events, then `head` (the queue's first event);
/// after a failure, the wait before the retry (`retry` is the backoff).
async fn step(
    unit: &Arc<UnitShared>,
    runtime: &Arc<Runtime>,
    head: Event,
    removing: bool,
    retry: &mut Duration,
) {
    let policy = unit.settings.retry;
    if let Some(how) = unit.resolve.lock().unwrap().take() {
        // `cairn resolve`: retried now, or dropped; either way the backoff starts over.
        *retry = policy.base;
        if how == Resolve::Skip && unit.skip_failed() {
            unit.save();
            return;
        }
    }
    // Removal's own events run under their short deadline and are not interrupted;
    // any other event is interrupted when removal begins.
    let bounds = if removing {
        Bounds {
            deadline: REMOVAL_HOOK_DEADLINE.min(runtime.config().event_deadline),
            interrupt: Interrupt::new(),
        }
    } else {
        Bounds {
            deadline: runtime.config().event_deadline,
            interrupt: unit.interrupt.clone(),
        }
    };
    // Deferred events go first, then the new one.
    let deferred: Vec<Event> = unit.record.lock().unwrap().deferred.clone();
    let mut failed = false;
    let mut still_deferred = Vec::new();
    for ev in deferred {
        match deliver(unit, runtime, &ev, &bounds).await {
            Ok(Outcome::Deferred) => still_deferred.push(ev),
            Ok(Outcome::Handled) => {}
            Err(()) => {
                unit.record.lock().unwrap().failed_event = Some(ev);
                failed = true;
                break;
            }
        }
    }
    if !removing && unit.interrupt.is_interrupted() {
        // Removal began meanwhile and replaced the queue and the deferred events.
        unit.save();
        return;
    }
    if !failed {
        unit.record.lock().unwrap().deferred = still_deferred;
        let delivered = deliver(unit, runtime, &head, &bounds).await;
        if !removing && unit.interrupt.is_interrupted() {
            unit.save();
            return;
        }
        match delivered {
            Ok(outcome) => {
                let (cap, hits) = {
                    let app = unit.settings.app.lock().unwrap();
                    (app.budget.deferred, app.hits.clone())
                };
                let mut rec = unit.record.lock().unwrap();
                rec.queue.pop_front();
                if rec.queue.is_empty() {
                    // An idle unit keeps no room for a burst of events it had once.
                    rec.queue.shrink_to_fit();
                }
                if outcome == Outcome::Deferred
                    && let Some(dropped) = defer(&mut rec, head, cap)
                {
                    hits.hit("deferred");
                    let message = format!(
                        "{}: deferred {} dropped: over the app's budget of {cap} deferred events",
                        rec.name,
                        dropped.name()
                    );
                    tracing::warn!("{message}");
                    rec.record_history(HistoryEntry {
                        time: crate::now(),
                        event: dropped.name(),
                        outcome: format!("dropped: over the budget of {cap} deferred events"),
                        duration_us: 0,
                    });
                    drop(rec);
                    unit.append_log(&[LogLine {
                        time: crate::now(),
                        level: crate::types::LogLevel::Warning,
                        message,
                    }]);
                }
            }
            Err(()) => {
                unit.record.lock().unwrap().failed_event = Some(head);
                failed = true;
            }
        }
        unit.save();
    }
    if failed {
        unit.save();
    }
    // Whatever it was, it is on disk: who waits for the unit's progress may look.
    unit.settings.progress.notify_waiters();
    if failed {
        if removing {
            // A unit being removed does not wait on a failing charm.
            let mut rec = unit.record.lock().unwrap();
            rec.queue.pop_front();
            drop(rec);
            unit.save();
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(*retry) => {}
            _ = unit.wake.notified() => {}
        }
        *retry = (*retry * 2).min(policy.max);
    } else {
        *retry = policy.base;
    }
}

/// Keeps a deferred event: one equal to an event already deferred is not kept twice, and
/// past `cap` the oldest is dropped (and returned).
fn defer(rec: &mut UnitRecord, event: Event, cap: u64) -> Option<Event> {
    if rec.deferred.contains(&event) {
        return None;
    }
    rec.deferred.push(event);
    (rec.deferred.len() as u64 > cap).then(|| rec.deferred.remove(0))
}

/// How long one event may run and what ends it early.
struct Bounds {
    deadline: Duration,
    interrupt: Interrupt,
}

/// Delivers one event; on success commits status and stored state, on failure records the
/// error; either way records history and persists.
async fn deliver(
    unit: &Arc<UnitShared>,
    runtime: &Arc<Runtime>,
    event: &Event,
    bounds: &Bounds,
) -> Result<Outcome, ()> {
    let name = event.name();
    if let Some(r) = event.relation() {
        let me = unit.name();
        if !unit
            .settings
            .relations
            .deliverable(r.relation_id, &me, &unit.settings.app_name)
        {
            // The relation went while the event waited (Juju drops such hooks too).
            let mut rec = unit.record.lock().unwrap();
            rec.record_history(HistoryEntry {
                time: crate::now(),
                event: name,
                outcome: format!("skipped: relation {} is gone", r.relation_id),
                duration_us: 0,
            });
            return Ok(Outcome::Handled);
        }
    }
    // A tenant whose workload or events took more than its share of the host (a flood of
    // notices or execs through its socket) waits for it here, not its neighbours; the
    // event's deadline starts after. Removal still interrupts the wait. (The unit's record
    // writes are the host's bookkeeping, not charged: a tenant whose operator changes its
    // config often would pay for them.)
    let share = unit.settings.app.lock().unwrap().share.clone();
    tokio::select! {
        biased;
        _ = bounds.interrupt.interrupted() => {}
        _ = share.wait() => {}
    }
    let (mut ctx, charm, generation) = unit.context(event);
    // An action run: mark it running; the charm's report goes into its record.
    let mut action = match event {
        Event::Action { id, .. } => match unit.settings.actions.get(id) {
            Ok(mut a) => {
                a.status = ActionStatus::Running;
                a.started = crate::now();
                let _ = unit.settings.actions.save(&a);
                ctx.action = Some(ActionReport::default());
                Some(a)
            }
            Err(e) => {
                tracing::warn!("action {id} has no record: {e}");
                None
            }
        },
        _ => None,
    };
    // On an event thread of its own (`threads.rs`), driving the event's future: the guest's
    // computing competes with other units' events under the OS scheduler, rather than for
    // the runtime's few worker threads (where a spinning guest, yielding only at each
    // 10 ms tick, slowed a neighbour's event 3×), and past its CPU allowance at a low
    // priority. Deadline and interrupt still end the future wherever it waits.
    let handle = tokio::runtime::Handle::current();
    let (rt, ev, deadline, interrupt) = (
        runtime.clone(),
        event.clone(),
        bounds.deadline,
        bounds.interrupt.clone(),
    );
    let done = crate::threads::run(move || {
        handle.block_on(rt.dispatch_with(&charm, ctx, &ev, deadline, &interrupt))
    })
    .await;
    let Some(done) = done else {
        tracing::error!("dispatch task failed: its thread panicked");
        return Err(());
    };
    unit.append_log(&done.logs);
    unit.settings.metrics.record_event(
        done.duration,
        done.memory_peak as u64,
        done.outcome.as_ref().err(),
    );
    if let Some(a) = action.as_mut() {
        let report = done.ctx.action.clone().unwrap_or_default();
        a.results = report.results;
        a.log = report.log;
        a.completed = crate::now();
        match (&done.outcome, report.failed) {
            (Ok(_), None) => a.status = ActionStatus::Completed,
            (Ok(_), Some(msg)) => {
                a.status = ActionStatus::Failed;
                a.message = msg;
            }
            (Err(failure), _) => {
                a.status = ActionStatus::Failed;
                a.message = failure.to_string();
            }
        }
        if let Err(e) = unit.settings.actions.save(a) {
            tracing::error!("cannot record action {}: {e}", a.id);
        }
    }
    // Relation data and membership are committed first (a crash after is harmless: the
    // event is delivered again and commits the same), and only for a handler that
    // succeeded.
    let mut outcome = done.outcome;
    let mut sends = Vec::new();
    if outcome.is_ok() {
        let me = unit.name();
        match unit.settings.relations.commit(
            &me,
            &unit.settings.app_name,
            event,
            &done.ctx.relations,
        ) {
            Ok(s) => sends = s,
            Err(e) => outcome = Err(Failure::Commit(format!("cannot commit relation data: {e}"))),
        }
    }
    let entry = |outcome: String| HistoryEntry {
        time: crate::now(),
        event: name.clone(),
        outcome,
        duration_us: done.duration.as_micros() as u64,
    };
    let mut rec = unit.record.lock().unwrap();
    let (result, h) = match &outcome {
        Ok(o) => {
            rec.status = done.ctx.unit_status.clone();
            rec.app_status = done.ctx.app_status.clone();
            rec.stored = done.ctx.stored.clone();
            rec.error = None;
            rec.failed_event = None;
            if *event == Event::ConfigChanged {
                rec.config_handled = rec.config_handled.max(generation);
            }
            let label = match (o, action.as_ref()) {
                // `action-fail`: the run failed, as `cairn show-action` says.
                (_, Some(a)) if a.status == ActionStatus::Failed => {
                    format!("failed: {}", a.message)
                }
                (Outcome::Handled, _) => "handled".into(),
                (Outcome::Deferred, _) => "deferred".into(),
            };
            (Ok(*o), entry(label))
        }
        // A failing action fails that run only, as in Juju: the unit is not in error and
        // the action is not retried.
        Err(failure) if action.is_some() => {
            tracing::warn!("{}: {name} failed: {failure}", rec.name);
            (Ok(Outcome::Handled), entry(format!("error: {failure}")))
        }
        // Interrupted by removal: recorded, but the unit is not put in error for it.
        Err(failure @ Failure::Interrupted) => {
            tracing::info!("{}: {name} interrupted", rec.name);
            (Err(()), entry(format!("error: {failure}")))
        }
        Err(failure) => {
            tracing::warn!("{}: {name} failed: {failure}", rec.name);
            rec.error = Some(format!("hook failed: {name:?}: {failure}"));
            (Err(()), entry(format!("error: {failure}")))
        }
    };
    rec.record_history(h);
    drop(rec);
    unit.settings.relations.send(sends);
    result
}

#[cfg(test)]
mod tests {
    //! The actor's delivery rules, through a real runtime and the `misbehave` guest, without
    //! a daemon or containers.

    use super::*;

    use cairn_testutil::TempDir;

    #[test]
    fn stored_state_is_written_compactly_and_old_records_still_read() {
        let mut rec = UnitRecord::default();
        rec.stored.insert("bin".into(), vec![0, 255, 10, 27]);
        rec.stored.insert("big".into(), vec![b'x'; 3000]);
        let json = serde_json::to_string(&rec).unwrap();
        assert!(json.contains(r#""bin":"AP8KGw==""#), "{json}");
        // 4,000 bytes of base64 and the other fields; numbers took 12,000.
        assert!(json.len() < 4500, "{} bytes", json.len());
        let back: UnitRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(back.stored, rec.stored);
        let old: UnitRecord = serde_json::from_str(r#"{"stored":{"handled":[49,50]}}"#).unwrap();
        assert_eq!(old.stored["handled"], b"12");
        let bad = serde_json::from_str::<UnitRecord>(r#"{"stored":{"k":"not base64!"}}"#);
        assert!(bad.is_err());
    }

    #[test]
    fn the_unit_log_is_rotated_into_one_previous_file() {
        let dir = TempDir::new("unit-log");
        let path = dir.path().join("unit.log");
        let line = |i: usize| LogLine {
            time: crate::now(),
            level: crate::types::LogLevel::Info,
            message: format!("t/0: line {i} {}", "x".repeat(40)),
        };
        for i in 0..100 {
            append_log_file(&path, &[line(2 * i), line(2 * i + 1)], 1000).unwrap();
        }
        let current = std::fs::read_to_string(&path).unwrap();
        let previous = std::fs::read_to_string(dir.path().join("unit.log.1")).unwrap();
        // Each file holds under the threshold plus one batch of two lines (< 200 bytes).
        assert!(current.len() < 1200 && previous.len() < 1200);
        assert!(previous.len() >= 1000, "{previous}");
        assert!(current.ends_with(&format!("line 199 {}\n", "x".repeat(40))));
        // The previous file ends where the current one begins.
        let last_before: usize = previous
            .lines()
            .last()
            .unwrap()
            .split(' ')
            .nth(4)
            .unwrap()
            .parse()
            .unwrap();
        let first_now: usize = current
            .lines()
            .next()
            .unwrap()
            .split(' ')
            .nth(4)
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(first_now, last_before + 1);
        let files = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(files, 2, "only unit.log and unit.log.1");
    }

    /// A unit `t/0` of the misbehave charm in `mode`, with `queue` to deliver; the app view
    /// is returned so a test can change the config.
    fn start(dir: &TempDir, mode: &str, queue: &[Event]) -> (Unit, Arc<Mutex<AppView>>) {
        start_with_retry(dir, mode, queue, Duration::from_millis(20))
    }

    /// [`start`] with the first retry after `retry_base` (doubling up to four times it).
    fn start_with_retry(
        dir: &TempDir,
        mode: &str,
        queue: &[Event],
        retry_base: Duration,
    ) -> (Unit, Arc<Mutex<AppView>>) {
        let runtime = Runtime::new(crate::wasm::RuntimeConfig {
            max_instances: 4,
            ..Default::default()
        })
        .unwrap();
        let wasm = cairn_test_programs::read(cairn_test_programs::MISBEHAVE_WASM);
        let charm = Arc::new(runtime.load(&wasm).unwrap());
        let app = Arc::new(Mutex::new(AppView {
            config: BTreeMap::from([("mode".to_string(), ConfigValue::String(mode.into()))]),
            charm,
            budget: crate::Budget::default(),
            hits: Arc::default(),
            share: cairn_supervisor::CpuShare::new(None, None),
        }));
        let settings = UnitSettings {
            app_name: "t".into(),
            model: "m".into(),
            dir: dir.path().join("unit"),
            containers: BTreeMap::new(),
            app: app.clone(),
            retry: Retry {
                base: retry_base,
                max: retry_base * 4,
            },
            update_status_interval: Duration::from_secs(3600),
            actions: Arc::new(ActionStore::open(dir.path().join("actions")).unwrap()),
            metrics: Default::default(),
            relations: Arc::new(RelationStore::open(dir.path())),
            progress: Arc::default(),
        };
        std::fs::create_dir_all(&settings.dir).unwrap();
        let record = UnitRecord {
            name: "t/0".into(),
            leader: true,
            queue: queue.iter().cloned().collect(),
            ..Default::default()
        };
        (Unit::start(settings, record, Arc::new(runtime)), app)
    }

    /// Waits (up to 30 s) until the unit's record and history satisfy `cond`.
    async fn until(unit: &Unit, what: &str, cond: impl Fn(&UnitRecord, &[HistoryEntry]) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !{
            let mut h = unit.history();
            unit.with_record(|r| cond(r, h.make_contiguous()))
        } {
            if tokio::time::Instant::now() > deadline {
                panic!("{what}: {:#?}", unit.with_record(Clone::clone));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The outcomes of the history, as `event outcome`.
    fn history(h: &[HistoryEntry]) -> Vec<String> {
        h.iter()
            .map(|h| format!("{} {}", h.event, h.outcome))
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_event_holds_the_queue_and_is_retried_until_it_succeeds() {
        let dir = TempDir::new("retry");
        let (mut unit, app) = start(&dir, "error", &[Event::ConfigChanged]);
        let failed = "config-changed error: misbehave: error requested";
        until(&unit, "retried with backoff", |_, hist| {
            history(hist).iter().filter(|h| *h == failed).count() >= 3
        })
        .await;
        unit.with_record(|r| {
            assert_eq!(
                r.error.as_deref(),
                Some("hook failed: \"config-changed\": misbehave: error requested")
            );
            assert_eq!(
                r.display_status(),
                WorkloadStatus::Error(r.error.clone().unwrap())
            );
            // Still at the head of the queue; the failed events' state changes discarded.
            assert_eq!(r.queue.front(), Some(&Event::ConfigChanged));
            assert!(!r.stored.contains_key("handled"), "{:?}", r.stored);
        });
        // A new event wakes the actor, which retries the failed one first.
        app.lock()
            .unwrap()
            .config
            .insert("mode".into(), ConfigValue::String("ok".into()));
        unit.enqueue(Event::UpdateStatus);
        until(&unit, "queue drained", |r, _| r.queue.is_empty()).await;
        let hist = Vec::from(unit.history());
        unit.with_record(|r| {
            assert_eq!(r.error, None);
            assert_eq!(r.status, WorkloadStatus::Active("handled 1".into()));
            assert_eq!(r.stored.get("handled").map(Vec::as_slice), Some(&b"1"[..]));
            let h = history(&hist);
            assert_eq!(
                h[h.len() - 2..],
                [
                    "config-changed handled".to_string(),
                    "update-status handled".to_string()
                ]
            );
        });
        // The record on disk follows the one in memory (it is written after the update).
        let saved = cairn_testutil::eventually(Duration::from_secs(5), || {
            UnitRecord::load(&dir.path().join("unit"))
                .ok()
                .filter(|r| r.queue.is_empty() && r.error.is_none())
        });
        assert!(saved.is_some(), "the record on disk never caught up");
        unit.abort();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_deferred_event_is_delivered_again_before_the_next_one() {
        let dir = TempDir::new("defer");
        let (mut unit, _app) = start(&dir, "defer", &[Event::ConfigChanged]);
        until(&unit, "deferred", |r, hist| {
            r.queue.is_empty() && !hist.is_empty()
        })
        .await;
        let hist = Vec::from(unit.history());
        unit.with_record(|r| {
            assert_eq!(r.deferred, [Event::ConfigChanged]);
            assert_eq!(history(&hist), ["config-changed deferred"]);
        });
        unit.enqueue(Event::UpdateStatus);
        until(&unit, "delivered", |r, hist| {
            r.queue.is_empty() && hist.len() == 3
        })
        .await;
        let hist = Vec::from(unit.history());
        unit.with_record(|r| {
            assert!(r.deferred.is_empty());
            assert_eq!(
                history(&hist),
                [
                    "config-changed deferred",
                    "config-changed handled",
                    "update-status handled"
                ]
            );
            assert_eq!(r.status, WorkloadStatus::Active("handled 2".into()));
        });
        unit.abort();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_saves_never_show_a_torn_record_and_leave_the_newest() {
        let dir = TempDir::new("saves");
        let (mut unit, _app) = start(&dir, "ok", &[]);
        until(&unit, "started", |r, _| r.queue.is_empty()).await;
        let shared = unit.shared.clone();
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (done, path) = (done.clone(), dir.path().join("unit"));
            std::thread::spawn(move || {
                let mut torn = Vec::new();
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    if let Err(e) = UnitRecord::load(&path) {
                        torn.push(e.to_string());
                    }
                }
                torn
            })
        };
        let writers: Vec<_> = (0..4)
            .map(|t| {
                let shared = shared.clone();
                std::thread::spawn(move || {
                    for i in 0..300 {
                        shared
                            .record
                            .lock()
                            .unwrap()
                            .stored
                            .insert(format!("w{t}"), vec![b'x'; 1000 + i]);
                        shared.save();
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let torn = reader.join().unwrap();
        assert!(
            torn.is_empty(),
            "{} torn reads: {:?}",
            torn.len(),
            &torn[..torn.len().min(3)]
        );
        let on_disk = UnitRecord::load(&dir.path().join("unit")).unwrap();
        let in_memory = unit.with_record(Clone::clone);
        assert_eq!(on_disk.stored, in_memory.stored);
        let mut files: Vec<String> = std::fs::read_dir(dir.path().join("unit"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        assert_eq!(files, ["unit.json"]);
        unit.abort();
    }

    #[test]
    fn deferred_events_are_kept_once_each_and_the_oldest_dropped_past_the_budget() {
        let mut rec = UnitRecord::default();
        let notice = |key: &str| Event::Action {
            id: key.into(),
            name: "a".into(),
            params_json: "{}".into(),
        };
        assert_eq!(defer(&mut rec, Event::ConfigChanged, 2), None);
        assert_eq!(defer(&mut rec, Event::ConfigChanged, 2), None);
        assert_eq!(defer(&mut rec, notice("1"), 2), None);
        assert_eq!(rec.deferred.len(), 2);
        assert_eq!(defer(&mut rec, notice("2"), 2), Some(Event::ConfigChanged));
        assert_eq!(rec.deferred, [notice("1"), notice("2")]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_queue_budget_refuses_actions_but_never_lifecycle_events() {
        let dir = TempDir::new("queue");
        let (mut unit, app) = start(&dir, "error", &[Event::ConfigChanged]);
        app.lock().unwrap().budget.queue = 2;
        until(&unit, "failed once", |r, _| r.error.is_some()).await;
        let action = |id: &str| Event::Action {
            id: id.into(),
            name: "echo".into(),
            params_json: "{}".into(),
        };
        unit.try_enqueue(action("1")).unwrap();
        let e = unit.try_enqueue(action("2")).unwrap_err();
        assert_eq!(
            e,
            "cannot queue echo-action on t/0: 2 events are waiting, the app's budget (queue=2)"
        );
        // Waiting behind the head, a second config-changed or update-status is not queued.
        unit.try_enqueue(Event::ConfigChanged).unwrap();
        unit.try_enqueue(Event::ConfigChanged).unwrap();
        unit.try_enqueue(Event::UpdateStatus).unwrap();
        unit.try_enqueue(Event::UpdateStatus).unwrap();
        unit.with_record(|r| {
            assert_eq!(
                r.queue,
                [
                    Event::ConfigChanged,
                    action("1"),
                    Event::ConfigChanged,
                    Event::UpdateStatus
                ]
            )
        });
        assert_eq!(app.lock().unwrap().hits.snapshot()["queue"], 1);
        unit.abort();
    }

    #[test]
    fn records_of_older_versions_load_with_defaults() {
        let dir = TempDir::new("old");
        std::fs::write(
            dir.path().join(RECORD_FILE),
            r#"{"name":"t/0","leader":true,"status":{"status":"unknown"}}"#,
        )
        .unwrap();
        let r = UnitRecord::load(dir.path()).unwrap();
        assert_eq!(r.name, "t/0");
        assert!(r.queue.is_empty() && !r.removing);
    }

    fn entry(i: usize) -> HistoryEntry {
        HistoryEntry {
            time: "2026-12-03T00:00:00Z".into(),
            event: format!("e{i}"),
            outcome: "handled".into(),
            duration_us: i as u64,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn history_is_appended_beside_the_record_and_rewritten_to_what_is_kept() {
        let dir = TempDir::new("history");
        let (mut unit, _app) = start(&dir, "ok", &[]);
        until(&unit, "started", |r, _| r.queue.is_empty()).await;
        unit.abort();
        let shared = unit.shared.clone();
        let n = 2 * MAX_HISTORY + 10;
        for i in 0..n {
            shared.record.lock().unwrap().record_history(entry(i));
            shared.save();
        }
        let path = dir.path().join("unit");
        let record = std::fs::read_to_string(path.join(RECORD_FILE)).unwrap();
        assert!(!record.contains("\"history\""), "{record}");
        let file = std::fs::read_to_string(path.join(HISTORY_FILE)).unwrap();
        let lines = file.lines().count();
        assert!(
            (MAX_HISTORY..=2 * MAX_HISTORY).contains(&lines),
            "{lines} lines"
        );
        let history = shared.history();
        assert_eq!(history.len(), MAX_HISTORY);
        assert_eq!(history.back(), Some(&entry(n - 1)));
        assert_eq!(history.front(), Some(&entry(n - MAX_HISTORY)));
        // A line a crash cut short is skipped, and not appended to.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(path.join(HISTORY_FILE))
            .unwrap();
        std::io::Write::write_all(&mut f, br#"{"time":"2026-12-"#).unwrap();
        assert_eq!(shared.history().back(), Some(&entry(n - 1)));
        let loaded = UnitRecord::load(&path).unwrap();
        *shared.record.lock().unwrap() = loaded;
        *shared.writer.lock().unwrap() = Writer::Open {
            history_lines: shared.record.lock().unwrap().history_file_lines,
        };
        shared.record.lock().unwrap().record_history(entry(n));
        shared.save();
        let history = shared.history();
        assert_eq!(history.back(), Some(&entry(n)));
        assert_eq!(history.len(), MAX_HISTORY);
    }

    #[test]
    fn a_record_carrying_its_history_moves_it_to_the_history_file() {
        let dir = TempDir::new("old-history");
        let old = serde_json::json!({"name": "t/0", "history": [entry(1), entry(2)]});
        std::fs::write(dir.path().join(RECORD_FILE), old.to_string()).unwrap();
        let r = UnitRecord::load(dir.path()).unwrap();
        assert!(r.legacy_history.is_empty());
        assert_eq!(r.unwritten, [entry(1), entry(2)]);
        assert!(!dir.path().join(HISTORY_FILE).exists());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_unit_being_removed_does_not_wait_on_a_failing_event() {
        let dir = TempDir::new("remove");
        let (mut unit, _app) = start(&dir, "error", &[Event::ConfigChanged]);
        until(&unit, "failed once", |r, _| r.error.is_some()).await;
        unit.begin_removal(Vec::new());
        tokio::time::timeout(Duration::from_secs(30), unit.finish_removal())
            .await
            .expect("the actor did not end");
        let hist = Vec::from(unit.history());
        unit.with_record(|r| {
            assert!(r.queue.is_empty(), "{:?}", r.queue);
            let h = history(&hist);
            assert_eq!(h[h.len() - 2..], ["stop handled", "remove handled"]);
        });
    }

    /// Sets the unit's `mode` in place, as a config change would without queueing
    /// `config-changed` (so only a retry sees it).
    fn set_mode(app: &Mutex<AppView>, mode: &str) {
        app.lock()
            .unwrap()
            .config
            .insert("mode".into(), ConfigValue::String(mode.into()));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn resolve_retries_the_failing_event_now_and_is_refused_when_nothing_fails() {
        let dir = TempDir::new("resolve");
        let hour = Duration::from_secs(3600);
        let (mut unit, app) = start_with_retry(&dir, "error", &[Event::ConfigChanged], hour);
        until(&unit, "failed", |r, _| r.error.is_some()).await;
        assert_eq!(
            unit.with_record(|r| r.failed_event.clone()),
            Some(Event::ConfigChanged)
        );
        set_mode(&app, "ok");
        unit.resolve(Resolve::Retry).unwrap();
        // Retried at once, not an hour later.
        until(&unit, "retried", |r, _| r.queue.is_empty()).await;
        let hist = Vec::from(unit.history());
        unit.with_record(|r| {
            assert_eq!(r.error, None);
            assert_eq!(r.failed_event, None);
            let h = history(&hist);
            assert_eq!(h.last().unwrap(), "config-changed handled");
        });
        assert_eq!(
            unit.resolve(Resolve::Retry).unwrap_err(),
            "unit \"t/0\" is not in an error state"
        );
        unit.abort();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn resolve_without_retry_drops_only_the_failing_event() {
        let dir = TempDir::new("resolve-skip");
        let actions = ActionStore::open(dir.path().join("actions")).unwrap();
        let run = actions
            .create("t/0", "echo", serde_json::json!({"message": "hi"}))
            .unwrap();
        let echo = Event::Action {
            id: run.id.clone(),
            name: "echo".into(),
            params_json: r#"{"message":"hi","times":1}"#.into(),
        };
        let queue = [Event::ConfigChanged, echo.clone(), Event::UpdateStatus];
        let hour = Duration::from_secs(3600);
        let (mut unit, app) = start_with_retry(&dir, "error", &queue, hour);
        until(&unit, "failed", |r, _| r.error.is_some()).await;
        set_mode(&app, "ok");
        unit.resolve(Resolve::Skip).unwrap();
        until(&unit, "drained", |r, _| r.queue.is_empty()).await;
        let hist = Vec::from(unit.history());
        unit.with_record(|r| {
            assert_eq!(r.error, None);
            // The failing config-changed never ran again; what waited behind it did.
            assert_eq!(
                history(&hist),
                [
                    "config-changed error: misbehave: error requested",
                    "config-changed skipped: resolved with --no-retry",
                    "echo-action handled",
                    "update-status handled",
                ]
            );
            // Its state changes were never committed.
            assert!(!r.stored.contains_key("handled"), "{:?}", r.stored);
        });
        unit.abort();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn resolve_without_retry_drops_a_failing_deferred_event_and_keeps_the_head() {
        let dir = TempDir::new("resolve-deferred");
        let hour = Duration::from_secs(3600);
        // Deferred once, then failing when re-delivered before the next event.
        let (mut unit, app) = start_with_retry(&dir, "defer", &[Event::ConfigChanged], hour);
        until(&unit, "deferred", |r, _| r.deferred.len() == 1).await;
        set_mode(&app, "error");
        unit.enqueue(Event::UpdateStatus);
        until(&unit, "failed", |r, _| r.error.is_some()).await;
        set_mode(&app, "ok");
        unit.resolve(Resolve::Skip).unwrap();
        until(&unit, "drained", |r, _| r.queue.is_empty()).await;
        let hist = Vec::from(unit.history());
        unit.with_record(|r| {
            assert!(r.deferred.is_empty());
            let h = history(&hist);
            assert_eq!(
                h[h.len() - 2..],
                [
                    "config-changed skipped: resolved with --no-retry".to_string(),
                    "update-status handled".to_string()
                ]
            );
        });
        unit.abort();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_action_shows_failed_in_the_history() {
        let dir = TempDir::new("action-fail");
        let actions = ActionStore::open(dir.path().join("actions")).unwrap();
        let rec = actions
            .create("t/0", "fail", serde_json::json!({}))
            .unwrap();
        let fail = Event::Action {
            id: rec.id.clone(),
            name: "fail".into(),
            params_json: "{}".into(),
        };
        let (mut unit, _app) = start(&dir, "ok", &[fail]);
        until(&unit, "ran", |r, hist| {
            r.queue.is_empty() && !hist.is_empty()
        })
        .await;
        let hist = Vec::from(unit.history());
        unit.with_record(|r| {
            assert_eq!(history(&hist), ["fail-action failed: asked to fail"]);
            assert_eq!(r.error, None);
        });
        unit.abort();
    }
}
