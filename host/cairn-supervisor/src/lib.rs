//! Cairn's re-implementation of Pebble's daemon core, embedded as a library.
//!
//! One [`Supervisor`] per container. It owns the container's layers and plan (through
//! `cairn-plan`), its services and their logs, its checks, its notices, and its changes and
//! tasks; it persists layers, changes and notices in the container directory with atomic
//! writes. It knows nothing of wasm or of Pebble's HTTP API: the API server and the wasm
//! runtime both drive it through this API, which follows Pebble's request semantics and
//! error texts; the types it returns are domain types with typed states, which `cairn-api`
//! renders as Pebble's JSON.
//!
//! Every operation that takes time is a change of tasks run by one runner (`runner.rs`):
//! service starts and stops, exec commands and check runs are its handlers, run in lanes
//! as Pebble does, waited on with [`Supervisor::wait_change`] and aborted with
//! [`Supervisor::abort_change`].
//!
//! Locks: the supervisor's state (layers, plan, change book, notices) is under one lock,
//! `Inner::state`. The managers' own locks (services, checks, the runner's running tasks,
//! pending execs, process-group records, the cgroup) are leaves: code holding one of them
//! never takes another lock, so the only nesting is `state` → a manager's lock. The state file's writer
//! (`state::Saver`) and the layer operations' lock come before `state`: `layer_ops` →
//! `writer` → `batch` → `state`. (The records' lock is held across a spawn, which waits for
//! the spawner thread and its reaper registry lock, taking no lock of the supervisor.)

mod cgroup;
pub mod changes;
pub mod checks;
mod command;
mod container;
mod error;
pub mod exec;
pub mod files;
mod forward;
pub mod groups;
pub mod identities;
mod limits;
pub mod lock;
pub mod logs;
mod metrics;
pub mod namespaces;
pub mod notices;
pub mod persist;
pub mod reaper;
mod request;
mod runner;
pub mod sandbox;
pub mod services;
pub mod share;
pub mod spawn;
mod state;
pub mod timefmt;
mod users;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_plan::{CheckLevel, Layer, Plan};
use tokio::sync::watch;

pub use cgroup::{CpuMax, WorkloadLimits, WorkloadUsage};
pub use changes::{ChangeInfo, ChangeSelect, ChangeStatus, TaskInfo};
pub use checks::{CheckFailure, CheckInfo, CheckStatus};
pub use error::{ErrorKind, SupervisorError};
pub use limits::{ContainerLimits, LimitHits, bytes as format_bytes};
pub use logs::{LogBuffer, LogEntry};
pub use notices::{Notice, NoticeFilter};
pub use request::ServicesAction;
pub use services::{ServiceInfo, ServiceStatus, ShutdownRequest};
pub use share::CpuShare;

use container::ContainerEnv;
use runner::{Phase, TaskSpec};
use state::{PersistedState, State};

/// Name of the state file in a container directory (Pebble's is `.pebble.state` too).
pub const STATE_FILE: &str = ".pebble.state";

/// Name of the change history's file in a container directory: written by the background
/// saver apart from the state file, so that what is acknowledged durably (a layer, an
/// identity, a custom notice) does not rewrite a history of thousands of changes.
pub const CHANGES_FILE: &str = ".pebble.changes";

/// Name of the notices' file in a container directory: written when a custom notice is
/// acknowledged and by the background saver, apart from the layers (a change-update
/// notice a change).
pub const NOTICES_FILE: &str = ".pebble.notices";

/// How to open a supervisor.
#[derive(Clone, Debug)]
pub struct SupervisorOptions {
    /// The container directory (`$PEBBLE`): `layers/`, the state file, the socket.
    pub dir: PathBuf,
    /// Extra environment given to every service (on top of the host's own).
    pub env: Vec<(String, String)>,
    /// Whether to persist layers and changes in the state file.
    pub persist: bool,
    /// Whether the layers added over the API are kept in the state file, durably before
    /// the add is acknowledged, and brought back on open: a host's containers keep them, so
    /// that a restarted host has its plans before any event runs (design §4). Off, they
    /// live in memory only and a restart starts from the `layers/` directory, as Pebble's
    /// do (`cairn pebble run`).
    pub keep_layers: bool,
    /// The container's root directory when it is isolated: services, exec and exec checks
    /// run with it as `/`, and the files API resolves paths inside it. `None` for a shared
    /// container, which sees the host's filesystem as Pebble in a pod.
    pub root: Option<PathBuf>,
    /// Strict tenancy (`namespaces.rs`): the isolated container's processes also run in
    /// user, pid (and optionally network) namespaces of their own, as the container's ids.
    /// Needs `root`.
    pub strict: Option<namespaces::StrictOptions>,
    /// Limits on the memory, tasks and CPU of everything the container runs (services,
    /// exec commands, exec checks), enforced through the container's cgroup where the host
    /// lets the supervisor make one.
    pub workload: WorkloadLimits,
    /// The container's budget of API requests (unlimited by default, as Pebble).
    pub limits: ContainerLimits,
    /// Where refusals over the budget are counted (shared by an application's containers).
    pub hits: Arc<LimitHits>,
    /// The tenant's share of the host's CPU, which pays for the container's API requests
    /// and process starts (shared by an application's containers; `None`: unbounded).
    pub cpu_share: Option<Arc<CpuShare>>,
    /// Whether other processes are kept out of the directory by a lock file in it (one
    /// descriptor, held while the supervisor lives). A host whose own lock covers the
    /// directory (the daemon's, on its state directory) turns it off; a second open in this
    /// process is refused either way.
    pub lock_file: bool,
    /// Whether every service's output is also written to this process's stdout, in the
    /// service log's format (`pebble run --verbose`).
    pub echo_output: bool,
}

impl SupervisorOptions {
    /// Options for `dir` with persistence on and no extra environment.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        SupervisorOptions {
            dir: dir.into(),
            env: Vec::new(),
            persist: true,
            keep_layers: true,
            root: None,
            strict: None,
            workload: WorkloadLimits::default(),
            limits: ContainerLimits::UNLIMITED,
            hits: Arc::default(),
            cpu_share: None,
            lock_file: true,
            echo_output: false,
        }
    }
}

/// The supervisor of one container: plan, services, checks, notices, changes.
#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

/// The supervisor's shared state; the managers are its fields.
pub(crate) struct Inner {
    dir: PathBuf,
    persist: bool,
    /// See [`SupervisorOptions::keep_layers`].
    keep_layers: bool,
    /// Layers, plan, changes and notices: the one state lock.
    state: Mutex<State>,
    /// Environment and root shared by services, exec and checks.
    container: Arc<ContainerEnv>,
    /// Bumped on every change or task update (wakes change waiters).
    version: watch::Sender<u64>,
    services: Arc<services::ServiceManager>,
    checks: checks::CheckManager,
    /// Sends service output to the plan's log targets.
    forwarder: Arc<forward::Forwarder>,
    runner: runner::Runner,
    /// Execs waiting for (or running with) their I/O, by task id.
    execs: Mutex<HashMap<u64, exec::Pending>>,
    /// Bumped when a notice is added or repeated (wakes long-polls).
    notices_version: watch::Sender<u64>,
    /// Wakes the background saver: bursts of change updates become one write.
    dirty: Arc<tokio::sync::Notify>,
    /// The one writer of the state file.
    saver: state::Saver,
    /// Serialises the operations that replace the layers, so that one whose snapshot
    /// cannot be persisted is rolled back without undoing another's.
    layer_ops: Mutex<()>,
    /// The container's budget (a leaf lock; the operator may change it at any time).
    limits: Mutex<ContainerLimits>,
    /// Refusals over the budget, counted by limit.
    hits: Arc<LimitHits>,
    /// Execs admitted and not yet ended (what the `execs` limit counts).
    execs_running: std::sync::atomic::AtomicUsize,
    /// The container directory's lock: one supervisor per container. Last, so that it is
    /// released after the managers (and the processes they kill) are gone.
    _lock: lock::DirLock,
}

impl Supervisor {
    /// Opens the supervisor of the container at `opts.dir`: reads `layers/` and the state
    /// file (restoring API-added layers and the change history). Must run inside tokio.
    pub fn open(opts: SupervisorOptions) -> Result<Self, SupervisorError> {
        let io = |action: &str| {
            let action = action.to_string();
            move |source| SupervisorError::Io { action, source }
        };
        std::fs::create_dir_all(&opts.dir).map_err(io("create container directory"))?;
        // Before anything else: a second supervisor must not terminate the first's work.
        let lock = lock::DirLock::take(&opts.dir, opts.lock_file)
            .map_err(|e| SupervisorError::Internal(format!("cannot open container: {e}")))?;
        if opts.persist {
            // Writes interrupted by a crash leave their temporary files: this supervisor is
            // the one writer of these files, so any temp of theirs is stale.
            // (Earlier versions wrote the groups record through `.cairn-groups.tmp{pid}`.)
            for name in [
                STATE_FILE,
                CHANGES_FILE,
                groups::GROUPS_FILE,
                "cairn-groups",
            ] {
                for p in persist::remove_stale_temps(&opts.dir, name) {
                    tracing::info!("Removed {} left by an interrupted write", p.display());
                }
            }
        }
        // A previous supervisor of this container killed outright may have left services
        // running: terminate them before anything starts anew.
        let left = if opts.persist {
            groups::terminate_recorded(&opts.dir)
        } else {
            Vec::new()
        };
        if !left.is_empty() {
            tracing::warn!("Terminated services left running by a previous run: {left:?}");
        }
        let root = match (&opts.root, opts.strict) {
            (Some(dir), None) => {
                Some(sandbox::Root::prepare(dir).map_err(io("prepare container root"))?)
            }
            (Some(dir), Some(strict)) => Some(
                sandbox::Root::prepare_strict(dir, strict).map_err(io("prepare container root"))?,
            ),
            (None, Some(_)) => {
                return Err(SupervisorError::BadRequest(
                    "cannot open container: strict tenancy needs an isolated root".into(),
                ));
            }
            (None, None) => None,
        };
        let mut persisted = if opts.persist {
            PersistedState::read(&opts.dir)
        } else {
            PersistedState::default()
        };
        if !opts.keep_layers {
            persisted.layers.clear();
        }
        let layers = state::assemble_layers(&opts.dir, &persisted.layers)?;
        persisted.changes.interrupt_unfinished();
        let cgroup = cgroup::Cgroup::create(cgroup::Layout::host(), &opts.dir, &opts.workload);
        let unenforced = cgroup::unenforceable(&opts.workload);
        if !unenforced.is_empty()
            || (cgroup.is_none() && opts.workload != WorkloadLimits::default())
        {
            tracing::warn!(
                "The workload limits of {} are not enforced here (no cgroup {} controller available to cairn)",
                opts.dir.display(),
                unenforced.join(", ")
            );
        }
        let forwarder = Arc::new(forward::Forwarder::new(opts.echo_output));
        let container = Arc::new(ContainerEnv {
            env: opts.env,
            root,
            cgroup: cgroup.map(Mutex::new),
            limits: Mutex::new(opts.workload),
            share: opts.cpu_share,
        });
        let sup = Supervisor {
            inner: Arc::new(Inner {
                dir: opts.dir.clone(),
                persist: opts.persist,
                keep_layers: opts.keep_layers,
                state: Mutex::new(State {
                    plan: Arc::new(layers.plan().clone()),
                    layers,
                    book: persisted.changes,
                    notices: persisted.notices,
                    identities: Arc::new(persisted.identities),
                }),
                container: container.clone(),
                version: watch::channel(0).0,
                services: services::ServiceManager::new(
                    container,
                    opts.persist.then_some(opts.dir.as_path()),
                    forwarder.clone(),
                ),
                checks: checks::CheckManager::default(),
                forwarder,
                runner: runner::Runner::default(),
                execs: Mutex::new(HashMap::new()),
                notices_version: watch::channel(0).0,
                dirty: Arc::new(tokio::sync::Notify::new()),
                saver: state::Saver::default(),
                layer_ops: Mutex::new(()),
                limits: Mutex::new(opts.limits),
                hits: opts.hits,
                execs_running: std::sync::atomic::AtomicUsize::new(0),
                _lock: lock,
            }),
        };
        if !left.is_empty() {
            sup.warn(&format!(
                "processes of {} left running by a previous run were terminated",
                left.join(", ")
            ));
        }
        // Checks start as soon as the plan is loaded, whatever `--hold` says (as Pebble).
        let plan = sup.plan();
        sup.inner.plan_changed(&plan);
        sup.inner.save_logged();
        if sup.inner.persist {
            state::spawn_saver(Arc::downgrade(&sup.inner), sup.inner.dirty.clone());
        }
        Ok(sup)
    }

    /// The container directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Kills every process of a strict container at once, those that left their process
    /// group and session included (its pid namespace's init, and with it the namespace);
    /// nothing for other containers. For removal, after the services were stopped.
    pub fn kill_namespace(&self) {
        if let Some(st) = self.inner.container.strict() {
            st.kill_all();
        }
    }

    /// The root of an isolated container (`None` when shared): what the files functions
    /// resolve paths in.
    pub fn root(&self) -> Option<&sandbox::Root> {
        self.inner.container.root.as_ref()
    }

    /// The current combined plan.
    pub fn plan(&self) -> Arc<Plan> {
        self.inner.plan()
    }

    /// The layers in order.
    pub fn layers(&self) -> Vec<Layer> {
        self.inner.state.lock().unwrap().layers.layers().to_vec()
    }

    /// Adds a layer given as YAML, with Pebble's `combine`/`inner` rules and texts; a bad
    /// layer is rejected whole and changes nothing. Returns once the layer is on disk: a
    /// layer that cannot be persisted is an error and is rolled back, so that what the
    /// supervisor runs is what it comes back with after a restart.
    pub fn add_layer(
        &self,
        label: &str,
        yaml: &[u8],
        combine: bool,
        inner: bool,
    ) -> Result<(), SupervisorError> {
        let bad = |e: cairn_plan::PlanError| SupervisorError::BadRequest(e.to_string());
        let limits = self.limits();
        limits
            .check_layer_request(yaml.len())
            .map_err(|e| self.inner.refused(e))?;
        // Parsed outside the lock; adding changes nothing on error.
        let layer = cairn_plan::parse_added_layer(label, yaml).map_err(bad)?;
        // Layer operations are serialised; the combine and validation of a big plan runs on
        // a copy outside the state lock, so that other requests go on meanwhile.
        let _ops = self
            .inner
            .layer_ops
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let before = self.inner.state.lock().unwrap().layers.clone();
        let after = limits
            .after_add(&before, layer, combine, inner)
            .map_err(|e| self.inner.refused(e))?;
        let apply = |state: &mut State| {
            state.set_layers(after);
            let undo: state::Undo = Box::new(move |s: &mut State| s.set_layers(before));
            Ok((state.plan.clone(), Some(undo)))
        };
        let plan = if self.inner.keep_layers {
            self.inner.apply_durably(state::Files::STATE, apply)
        } else {
            apply(&mut self.inner.state.lock().unwrap()).map(|(plan, _)| plan)
        }
        .inspect_err(|e| {
            if e.kind() == ErrorKind::Internal {
                tracing::error!("Cannot persist layer {label:?}, not adding it: {e}");
            }
        })?;
        self.inner.plan_changed(&plan);
        Ok(())
    }

    /// The container's identities (Pebble's `/v1/identities`), secrets included; shared,
    /// not copied (every API request reads them).
    pub fn identities(&self) -> Arc<identities::Identities> {
        self.inner.state.lock().unwrap().identities.clone()
    }

    /// Changes the identities as `POST /v1/identities` asks (`given`: `None` is a `null`),
    /// with Pebble's rules and texts; returns once the change is on disk.
    pub fn change_identities(
        &self,
        action: identities::IdentitiesAction,
        given: BTreeMap<String, Option<identities::Identity>>,
    ) -> Result<(), SupervisorError> {
        identities::check_request(action, &given).map_err(SupervisorError::BadRequest)?;
        self.inner.apply_durably(state::Files::STATE, |state| {
            let before = state.identities.clone();
            identities::apply(Arc::make_mut(&mut state.identities), action, given)
                .map_err(SupervisorError::BadRequest)?;
            let undo: state::Undo = Box::new(move |s: &mut State| s.identities = before);
            Ok(((), Some(undo)))
        })
    }

    /// The container's budget.
    pub fn limits(&self) -> ContainerLimits {
        self.inner.limits.lock().unwrap().clone()
    }

    /// Replaces the container's budget (what is already there stays; later requests are
    /// checked against the new one).
    pub fn set_limits(&self, limits: ContainerLimits) {
        *self.inner.limits.lock().unwrap() = limits;
    }

    /// The tenant's share of the host's CPU, if bounded: what the container's API server
    /// charges its requests to.
    pub fn cpu_share(&self) -> Option<&Arc<CpuShare>> {
        self.inner.container.share.as_ref()
    }

    /// Refusals over the budget so far, by limit (shared with whoever opened it).
    pub fn limit_hits(&self) -> &Arc<LimitHits> {
        &self.inner.hits
    }

    /// Replaces the `[ default args ]` of services, as `pebble run --args` does: a reserved
    /// `pebble-service-args` layer on top, never persisted (the owner re-applies it each run).
    pub fn set_service_args(
        &self,
        args: &BTreeMap<String, Vec<String>>,
    ) -> Result<(), SupervisorError> {
        let _ops = self
            .inner
            .layer_ops
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mut state = self.inner.state.lock().unwrap();
        let mut layers = state.layers.clone();
        layers
            .set_service_args(args)
            .map_err(|e| SupervisorError::BadRequest(e.to_string()))?;
        state.set_layers(layers);
        Ok(())
    }

    /// Services in the plan (all if `names` is empty), sorted by name.
    pub fn services(&self, names: &[String]) -> Vec<ServiceInfo> {
        self.inner.services.infos(&self.plan(), names)
    }

    /// The main pid of a running service.
    pub fn service_pid(&self, name: &str) -> Option<i32> {
        self.inner.services.pid(name)
    }

    /// Recent output of the named services (all services with output if empty), oldest first,
    /// at most `n` lines (all for `None`).
    pub fn logs(&self, names: &[String], n: Option<usize>) -> Vec<LogEntry> {
        let mut all: Vec<LogEntry> = self
            .log_buffers(names)
            .iter()
            .flat_map(|b| b.last(n))
            .collect();
        all.sort_by_key(|e| e.time);
        if let Some(n) = n {
            let skip = all.len().saturating_sub(n);
            all.drain(..skip);
        }
        all
    }

    /// The log rings of the named services (all that have one if empty), for following.
    pub fn log_buffers(&self, names: &[String]) -> Vec<Arc<LogBuffer>> {
        let plan = self.plan();
        plan.services
            .keys()
            .filter(|n| names.is_empty() || names.contains(n))
            .filter_map(|n| self.inner.services.log_buffer(n))
            .collect()
    }

    /// Watch for a service's exit action asking the container to shut down.
    pub fn shutdown_requests(&self) -> watch::Receiver<Option<ShutdownRequest>> {
        self.inner.services.shutdown_requests()
    }

    /// Performs a services action as `POST /v1/services` does, returning the id of the
    /// change that carries it out.
    pub fn services_action(
        &self,
        action: ServicesAction,
        names: &[String],
    ) -> Result<String, SupervisorError> {
        let plan = self.plan();
        let planned = request::plan_services(action, names, &plan, || {
            // A replan also starts enabled checks that are not running.
            self.inner.replan_checks();
            self.inner.services.replan_changed(&plan)
        })?;
        let tasks = |lanes: Vec<Vec<String>>, start: bool| -> Phase {
            lanes
                .into_iter()
                .map(|lane| {
                    lane.into_iter()
                        .map(|name| self.inner.service_task(name, start))
                        .collect()
                })
                .collect()
        };
        let has_tasks = planned
            .stop_lanes
            .iter()
            .chain(&planned.start_lanes)
            .any(|l| !l.is_empty());
        let mut data = Vec::new();
        if !planned.names.is_empty() && has_tasks {
            data.push(("service-names", serde_json::json!(planned.names)));
        }
        let phases: Vec<Phase> = [
            tasks(planned.stop_lanes, false),
            tasks(planned.start_lanes, true),
        ]
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect();
        let (id, _) = self
            .inner
            .spawn_change(action.as_str(), &planned.summary, data, phases);
        Ok(id.to_string())
    }

    /// A change's current info.
    pub fn change(&self, id: &str) -> Result<ChangeInfo, SupervisorError> {
        let state = self.inner.state.lock().unwrap();
        id.parse()
            .ok()
            .and_then(|n| state.book.change_info(n))
            .ok_or_else(|| SupervisorError::NotFound(format!("cannot find change with id {id:?}")))
    }

    /// Changes matching `select`, optionally only those acting on `service`.
    pub fn changes(&self, select: ChangeSelect, service: Option<&str>) -> Vec<ChangeInfo> {
        self.inner
            .state
            .lock()
            .unwrap()
            .book
            .changes(select, service)
    }

    /// Waits until a change is ready (or `timeout`, if given, elapses: Pebble's 504 text).
    pub async fn wait_change(
        &self,
        id: &str,
        timeout: Option<Duration>,
    ) -> Result<ChangeInfo, SupervisorError> {
        let mut rx = self.inner.version.subscribe();
        let wait = async {
            loop {
                let info = self.change(id)?;
                if info.ready {
                    return Ok(info);
                }
                if rx.changed().await.is_err() {
                    return Err(SupervisorError::NotFound(format!(
                        "cannot find change with id {id:?}"
                    )));
                }
            }
        };
        let Some(t) = timeout else {
            return wait.await;
        };
        // The timer runs as a task of the runtime rather than inside this future: when the
        // runtime shuts down (a daemon exiting while a charm waits on a change from a
        // blocking thread), its tasks are dropped, which ends the wait with an error, where
        // a timer polled here would panic on the stopped time driver.
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|_| SupervisorError::Internal("cannot wait for change: no runtime".into()))?;
        let (fire, fired) = tokio::sync::oneshot::channel::<()>();
        let timer = handle.spawn(async move {
            tokio::time::sleep(t).await;
            let _ = fire.send(());
        });
        let result = tokio::select! {
            r = wait => r,
            f = fired => match f {
                Ok(()) => Err(SupervisorError::Timeout(format!(
                    "timed out waiting for change after {}",
                    cairn_plan::format_duration(t)
                ))),
                Err(_) => Err(SupervisorError::Internal(
                    "cannot wait for change: the runtime is stopping".into(),
                )),
            },
        };
        timer.abort();
        result
    }

    /// Runs a services action and waits for its change.
    pub async fn run_services_action(
        &self,
        action: ServicesAction,
        names: &[String],
    ) -> Result<ChangeInfo, SupervisorError> {
        let id = self.services_action(action, names)?;
        self.wait_change(&id, None).await
    }

    /// Sends a signal (by name, such as `SIGHUP`) to the main process of the named
    /// services, with Pebble's per-service errors joined by `; `.
    pub fn send_signal(&self, signal: &str, names: &[String]) -> Result<(), SupervisorError> {
        if names.is_empty() {
            return Err(SupervisorError::BadRequest(
                "must specify one or more services".into(),
            ));
        }
        self.inner
            .services
            .send_signal(signal, names)
            .map_err(SupervisorError::BadRequest)
    }

    /// Aborts a change, as Pebble does: tasks not yet started are put on hold, running
    /// tasks of every kind are aborted (an exec's command is killed, a check stops).
    pub fn abort_change(&self, id: &str) -> Result<ChangeInfo, SupervisorError> {
        let info = self.change(id)?;
        if info.ready {
            return Err(SupervisorError::BadRequest(format!(
                "cannot abort change {id} with nothing pending"
            )));
        }
        // As Pebble answers: the change as the abort marked it, whatever its aborted tasks
        // do next (a killed command's task may end a moment later).
        match self.inner.abort(info.id.parse().unwrap_or(0)) {
            Some(info) => Ok(info),
            None => self.change(id),
        }
    }

    /// Brings the container back after a service's exit action shut it down, as Kubernetes
    /// restarts a container whose Pebble exited: every service is stopped and forgotten, the
    /// layers are read again (directory plus API-added ones), the change history stays, and
    /// nothing is started (the charm replans on `pebble-ready`, as with `pebble run --hold`).
    pub async fn restart(&self) -> Result<(), SupervisorError> {
        self.inner.stop_all_checks();
        self.stop_all().await;
        self.inner.services.reset();
        let plan = {
            let _ops = self
                .inner
                .layer_ops
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let persisted = self.inner.persisted_layers();
            let layers = state::assemble_layers(&self.inner.dir, &persisted)?;
            let mut state = self.inner.state.lock().unwrap();
            state.set_layers(layers);
            state.plan.clone()
        };
        self.inner.save_logged();
        self.inner.changed();
        self.inner.plan_changed(&plan);
        Ok(())
    }

    /// Checks (all, or those named) at `level` (all levels for `None`), as `GET /v1/checks`;
    /// sorted by name.
    pub fn checks(&self, level: Option<CheckLevel>, names: &[String]) -> Vec<CheckInfo> {
        self.inner
            .checks
            .infos()
            .into_iter()
            .filter(|c| level.is_none_or(|l| c.level == l))
            .filter(|c| names.is_empty() || names.contains(&c.name))
            .collect()
    }

    /// `GET /v1/health`: false when any matching check is down. `ready` includes `alive`
    /// checks (a workload that is not alive is not ready either).
    pub fn healthy(&self, level: Option<CheckLevel>, names: &[String]) -> bool {
        !self.inner.checks.infos().iter().any(|c| {
            let level_match = match level {
                None => true,
                Some(CheckLevel::Ready) => {
                    c.level == CheckLevel::Ready || c.level == CheckLevel::Alive
                }
                Some(l) => c.level == l,
            };
            let name_match = names.is_empty() || names.contains(&c.name);
            level_match && name_match && c.status == CheckStatus::Down
        })
    }

    /// Starts the named checks that are not running; returns those started, sorted.
    pub fn start_checks(&self, names: &[String]) -> Result<Vec<String>, SupervisorError> {
        self.inner.start_checks(names)
    }

    /// Stops the named running checks; returns those stopped, sorted.
    pub fn stop_checks(&self, names: &[String]) -> Result<Vec<String>, SupervisorError> {
        self.inner.stop_checks(names)
    }

    /// Runs a check now (`POST /v1/checks/refresh`): its info and the run's error, if any.
    pub async fn refresh_check(
        &self,
        name: &str,
    ) -> Result<(CheckInfo, Option<String>), SupervisorError> {
        self.inner.refresh_check(name).await
    }

    /// Starts an exec (`POST /v1/exec`): an `exec` change whose task runs the command once
    /// its I/O is connected with [`Supervisor::exec_connect`].
    pub fn exec(&self, args: exec::ExecArgs) -> Result<exec::ExecStarted, SupervisorError> {
        self.inner.start_exec(args)
    }

    /// Connects one I/O endpoint (`stdio`, `stderr`, `control`) of a running exec task.
    pub fn exec_connect(&self, task_id: &str, id: &str) -> Result<exec::Endpoint, SupervisorError> {
        self.inner.exec_connect(task_id, id)
    }

    /// Records a `custom` notice for `user_id` (`POST /v1/notices`, `pebble notify`), with
    /// Pebble's key and data checks; returns the notice's id once it is on disk (an error
    /// if it cannot be persisted: the client must not count on it).
    pub fn notify(
        &self,
        user_id: Option<u32>,
        key: &str,
        data: BTreeMap<String, String>,
        repeat_after: Option<Duration>,
    ) -> Result<String, SupervisorError> {
        notices::validate_custom(key, &data).map_err(SupervisorError::BadRequest)?;
        // Taken back if it cannot be persisted: the notice is put back as it was.
        let custom = notices::NoticeType::Custom;
        let (id, repeated) = self.inner.apply_durably(state::Files::NOTICES, |state| {
            let prior = state.notices.find(user_id, custom, key);
            let added = state.notices.add(
                user_id,
                custom,
                key,
                data,
                repeat_after,
                time::OffsetDateTime::now_utc(),
            );
            let key = key.to_string();
            let undo: state::Undo =
                Box::new(move |s: &mut State| s.notices.restore(user_id, custom, &key, prior));
            Ok((added, Some(undo)))
        })?;
        if repeated {
            self.inner.notices_version.send_modify(|v| *v += 1);
        }
        Ok(id)
    }

    /// Records a `warning` notice (repeating at most daily).
    pub fn warn(&self, message: &str) {
        self.inner.add_notice(
            None,
            notices::NoticeType::Warning,
            message,
            Default::default(),
            Some(notices::WARNING_REPEAT_AFTER),
        );
    }

    /// Notices matching `filter`, oldest repeat first.
    pub fn notices(&self, filter: &notices::NoticeFilter) -> Vec<notices::Notice> {
        self.inner
            .state
            .lock()
            .unwrap()
            .notices
            .list(filter, time::OffsetDateTime::now_utc())
    }

    /// Like [`Supervisor::notices`], but when none match, waits up to `timeout` for one to
    /// be added or repeated (`GET /v1/notices?timeout=`); empty if none came.
    pub async fn wait_notices(
        &self,
        filter: &notices::NoticeFilter,
        timeout: Duration,
    ) -> Vec<notices::Notice> {
        let mut rx = self.inner.notices_version.subscribe();
        let wait = async {
            loop {
                let found = self.notices(filter);
                if !found.is_empty() {
                    return found;
                }
                if rx.changed().await.is_err() {
                    return Vec::new();
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .unwrap_or_default()
    }

    /// The notice with `id`.
    pub fn notice(&self, id: &str) -> Option<notices::Notice> {
        self.inner
            .state
            .lock()
            .unwrap()
            .notices
            .get(id, time::OffsetDateTime::now_utc())
    }

    /// Pebble's metrics in OpenMetrics text (`GET /v1/metrics`).
    pub fn metrics(&self) -> String {
        let mut out = String::new();
        self.inner.services.write_metrics(&mut out);
        self.inner.checks.write_metrics(&mut out);
        out
    }

    /// What the container's processes use (memory, CPU, tasks), read from its cgroup; None
    /// where the host gave it none. For the tenant's metrics.
    pub fn workload_usage(&self) -> Option<WorkloadUsage> {
        let cg = self.inner.container.cgroup.as_ref()?;
        Some(cg.lock().unwrap_or_else(|e| e.into_inner()).usage())
    }

    /// The workload limits asked for (whether or not the host enforces them).
    pub fn workload_limits(&self) -> WorkloadLimits {
        *self.inner.container.limits.lock().unwrap()
    }

    /// Changes the workload limits of the container's processes, running ones included
    /// (a memory limit below what they hold makes the kernel reclaim, then OOM-kill).
    /// A limit the host cannot enforce is an error naming it; the others are applied.
    pub fn set_workload_limits(&self, limits: WorkloadLimits) -> Result<(), SupervisorError> {
        *self.inner.container.limits.lock().unwrap() = limits;
        let fail = |e: String| SupervisorError::Internal(format!("cannot limit workloads: {e}"));
        match &self.inner.container.cgroup {
            Some(cg) => cg
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .set_limits(&limits)
                .map_err(fail),
            None if limits == WorkloadLimits::default() => Ok(()),
            None => Err(fail("no cgroup is available to cairn here".into())),
        }
    }

    /// Stops every running service in stop order ("Stop all running services"), waiting at
    /// most Pebble's stop timeout, and kills the commands of execs still running (as
    /// Pebble's exit ends them); then every process left in the container's cgroup (a
    /// daemon a service or an exec started with `setsid`, an exec check) is killed, so none
    /// outlives the supervisor.
    pub async fn stop_all(&self) {
        self.inner.kill_execs();
        self.stop_all_services().await;
        // Then the checks, as Pebble's check manager stops them: their changes end Done and
        // are saved so, rather than found unfinished by the next supervisor.
        let checks = self.inner.end_all_checks();
        for change in &checks {
            let _ = self
                .wait_change(&change.to_string(), Some(Duration::from_secs(1)))
                .await;
        }
        if !checks.is_empty() {
            self.inner.save_logged();
        }
        // The services' last lines go out before the targets stop.
        self.inner.forwarder.stop().await;
        let container = self.inner.container.clone();
        let _ = tokio::task::spawn_blocking(move || container.kill_cgroup()).await;
    }

    /// The services part of [`Supervisor::stop_all`].
    async fn stop_all_services(&self) {
        let names = self.inner.services.active_names();
        if names.is_empty() {
            return;
        }
        let timeout = self.inner.services.stop_timeout();
        let plan = self.plan();
        let lanes = plan
            .stop_lanes(&names)
            .unwrap_or_else(|_| vec![names.clone()]);
        let phase: Phase = lanes
            .into_iter()
            .map(|lane| {
                lane.into_iter()
                    .map(|n| self.inner.service_task(n, false))
                    .collect()
            })
            .collect();
        let data = vec![("service-names", serde_json::json!(names))];
        let (id, _) =
            self.inner
                .spawn_change("stop", "Stop all running services", data, vec![phase]);
        let _ = self.wait_change(&id.to_string(), Some(timeout)).await;
        self.inner.save_logged();
    }
}

/// Pebble's `NormalizeUidGid`: the uid and gid a user/group specification means, with
/// Pebble's messages (for the API's exec requests).
pub fn users_normalize(
    user_id: Option<u32>,
    group_id: Option<u32>,
    user: &str,
    group: &str,
) -> Result<Option<(u32, u32)>, String> {
    users::normalize(user_id, group_id, user, group)
}

/// Go's lowercase text of an OS error (`no such file or directory`), as Pebble's messages
/// carry it.
pub(crate) fn errno_text(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => {
            let desc = nix::errno::Errno::from_raw(code).desc();
            let mut c = desc.chars();
            c.next()
                .map(|f| f.to_lowercase().chain(c).collect())
                .unwrap_or_default()
        }
        None => e.to_string(),
    }
}

impl Inner {
    /// Tells the managers that follow the plan (checks, log forwarding) that it changed.
    fn plan_changed(self: &Arc<Self>, plan: &Arc<Plan>) {
        self.checks_plan_changed(plan);
        self.forwarder.plan_changed(plan);
    }

    /// Counts a refusal over the budget (any other error passes through).
    pub(crate) fn refused(&self, e: SupervisorError) -> SupervisorError {
        if let Some(limit) = e.limit() {
            self.hits.hit(limit);
        }
        e
    }

    /// The current combined plan.
    fn plan(&self) -> Arc<Plan> {
        self.state.lock().unwrap().plan.clone()
    }

    /// A `start` or `stop` task for service `name`: a handler of the runner.
    fn service_task(&self, name: String, start: bool) -> TaskSpec {
        let (kind, verb) = if start {
            ("start", "Start")
        } else {
            ("stop", "Stop")
        };
        TaskSpec::new(
            kind,
            format!("{verb} service {name:?}"),
            move |ctx| async move {
                let Some(inner) = ctx.inner() else {
                    return runner::Outcome::Error("the supervisor is stopping".into());
                };
                let log = |msg: &str| ctx.log(msg);
                let result = if start {
                    match inner.plan().services.get(&name).cloned() {
                        Some(config) => inner.services.do_start(&config, &log).await,
                        None => Err(format!("cannot find service {name:?} in plan")),
                    }
                } else {
                    inner.services.do_stop(&name, &log).await
                };
                match result {
                    Ok(()) => runner::Outcome::Done,
                    Err(e) => runner::Outcome::Error(e),
                }
            },
        )
    }

    /// Wakes waiters and schedules a state write (coalesced with others in flight);
    /// records the `change-update` notices of the status transitions since the last call.
    fn changed(&self) {
        let repeated = {
            let mut state = self.state.lock().unwrap();
            let pending = state.book.take_notices();
            let now = time::OffsetDateTime::now_utc();
            let mut repeated = false;
            for (id, data) in pending {
                repeated |= state
                    .notices
                    .add(
                        None,
                        notices::NoticeType::ChangeUpdate,
                        &id.to_string(),
                        data,
                        None,
                        now,
                    )
                    .1;
            }
            repeated
        };
        if repeated {
            self.notices_version.send_modify(|v| *v += 1);
        }
        self.dirty.notify_one();
        self.version.send_modify(|v| *v += 1);
    }

    /// Records a notice occurrence and wakes long-polls if it is new or repeated.
    fn add_notice(
        &self,
        user_id: Option<u32>,
        type_: notices::NoticeType,
        key: &str,
        data: BTreeMap<String, String>,
        repeat_after: Option<Duration>,
    ) -> String {
        let (id, repeated) = self.state.lock().unwrap().notices.add(
            user_id,
            type_,
            key,
            data,
            repeat_after,
            time::OffsetDateTime::now_utc(),
        );
        if repeated {
            self.notices_version.send_modify(|v| *v += 1);
        }
        self.dirty.notify_one();
        id
    }
}

#[cfg(test)]
mod tests;
