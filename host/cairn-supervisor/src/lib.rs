//! Cairn's re-implementation of Pebble's daemon core, embedded as a library.
//!
//! One [`Supervisor`] per container. It owns the container's layers and plan (through
//! `cairn-plan`), its services and their logs, and its changes and tasks; it persists
//! layers and changes in the container directory with atomic writes. It knows nothing of
//! wasm or HTTP: the API server and the wasm runtime both drive it through this API, which
//! follows Pebble's request semantics and error texts (`POST /v1/services` and friends).
//!
//! Every operation that takes time is a change of tasks, run in lanes as Pebble does, and
//! can be waited on with [`Supervisor::wait_change`].

pub mod changes;
pub mod checks;
pub mod exec;
pub mod files;
pub mod groups;
pub mod logs;
mod metrics;
pub mod notices;
pub mod persist;
pub mod reaper;
pub mod sandbox;
pub mod services;
pub mod timefmt;
mod users;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_plan::{Layer, Layers, Plan, PlanError};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

pub use changes::{ChangeInfo, ChangeSelect, Status, TaskInfo};
pub use checks::{CheckFailure, CheckInfo};
pub use logs::{LogBuffer, LogEntry};
pub use notices::{Notice, NoticeFilter};
pub use services::{ServiceInfo, ServiceStatus, ShutdownRequest};

/// Name of the state file in a container directory (Pebble's is `.pebble.state` too).
pub const STATE_FILE: &str = ".pebble.state";

/// Errors of supervisor operations, with Pebble's API texts.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// The request is malformed or refused (HTTP 400 in the API).
    #[error("{0}")]
    BadRequest(String),
    /// `autostart` with no `startup: enabled` services (kind `no-default-services`).
    #[error("no default services")]
    NoDefaultServices,
    /// A change or other object does not exist (HTTP 404).
    #[error("{0}")]
    NotFound(String),
    /// Waiting timed out (HTTP 504).
    #[error("{0}")]
    Timeout(String),
    /// The supervisor could not do what was asked (HTTP 500).
    #[error("{0}")]
    Internal(String),
    /// A layer was rejected.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The container's state could not be read or written.
    #[error("cannot {action}: {source}")]
    Io {
        action: String,
        #[source]
        source: std::io::Error,
    },
}

/// How to open a supervisor.
#[derive(Clone, Debug)]
pub struct SupervisorOptions {
    /// The container directory (`$PEBBLE`): `layers/`, the state file, the socket.
    pub dir: PathBuf,
    /// Extra environment given to every service (on top of the host's own).
    pub env: Vec<(String, String)>,
    /// Whether to persist layers and changes in the state file.
    pub persist: bool,
    /// The container's root directory when it is isolated (design §6): services, exec
    /// and exec checks run with it as `/`, and the files API resolves paths inside it.
    /// `None` for a shared container, which sees the host's filesystem as Pebble in a pod.
    pub root: Option<PathBuf>,
}

impl SupervisorOptions {
    /// Options for `dir` with persistence on and no extra environment.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        SupervisorOptions {
            dir: dir.into(),
            env: Vec::new(),
            persist: true,
            root: None,
        }
    }
}

#[derive(Serialize, Deserialize, Default)]
struct PersistedLayer {
    order: u32,
    label: String,
    yaml: String,
}

#[derive(Serialize, Deserialize, Default)]
struct PersistedState {
    #[serde(default)]
    layers: Vec<PersistedLayer>,
    #[serde(default)]
    changes: changes::ChangeBook,
    #[serde(default)]
    notices: notices::NoticeBook,
}

/// The supervisor of one container: plan, services, changes.
#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    persist: bool,
    layers: Mutex<Layers>,
    plan: Mutex<Arc<Plan>>,
    book: Mutex<changes::ChangeBook>,
    version: watch::Sender<u64>,
    services: Arc<services::ServiceManager>,
    checks: checks::CheckManager,
    notices: Mutex<notices::NoticeBook>,
    /// Execs waiting for (or running with) their I/O, by task id.
    execs: Mutex<std::collections::HashMap<u64, exec::Pending>>,
    /// How to kill each exec still running, by task id ([`Supervisor::stop_all`]).
    exec_kills: Mutex<std::collections::HashMap<u64, Arc<tokio::sync::Notify>>>,
    /// Bumped when a notice is added or repeated (wakes long-polls).
    notices_version: watch::Sender<u64>,
    /// Wakes the background saver: bursts of change updates become one write.
    dirty: Arc<tokio::sync::Notify>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum TaskKind {
    Start,
    Stop,
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
        let root = match &opts.root {
            Some(dir) => Some(sandbox::Root::prepare(dir).map_err(io("prepare container root"))?),
            None => None,
        };
        let state_path = opts.dir.join(STATE_FILE);
        let mut state = PersistedState::default();
        if opts.persist && state_path.exists() {
            let data = std::fs::read(&state_path).map_err(io("read state"))?;
            state = serde_json::from_slice(&data).map_err(|e| SupervisorError::Io {
                action: "parse state".into(),
                source: std::io::Error::other(e),
            })?;
        }
        let layers = assemble_layers(&opts.dir, &state.layers)?;
        let plan = Arc::new(layers.plan().clone());
        state.changes.interrupt_unfinished();
        let sup = Supervisor {
            inner: Arc::new(Inner {
                dir: opts.dir.clone(),
                persist: opts.persist,
                layers: Mutex::new(layers),
                plan: Mutex::new(plan),
                book: Mutex::new(state.changes),
                version: watch::channel(0).0,
                services: services::ServiceManager::new(
                    opts.env,
                    root,
                    opts.persist.then_some(opts.dir.as_path()),
                ),
                dirty: Arc::new(tokio::sync::Notify::new()),
                checks: checks::CheckManager::default(),
                notices: Mutex::new(state.notices),
                execs: Mutex::new(std::collections::HashMap::new()),
                exec_kills: Mutex::new(std::collections::HashMap::new()),
                notices_version: watch::channel(0).0,
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
        sup.inner.checks_plan_changed(&plan);
        sup.inner.save();
        if sup.inner.persist {
            let weak = Arc::downgrade(&sup.inner);
            let dirty = sup.inner.dirty.clone();
            tokio::spawn(async move {
                loop {
                    dirty.notified().await;
                    // Transitions within a few milliseconds of each other (an exec's
                    // change, its task and their notices) are saved together.
                    tokio::time::sleep(SAVE_DELAY).await;
                    // The write (with its fsyncs) runs off the async workers, so that a
                    // burst of changes never stalls request handling.
                    match weak.upgrade() {
                        Some(inner) => {
                            let _ = tokio::task::spawn_blocking(move || inner.save()).await;
                        }
                        None => return,
                    }
                }
            });
        }
        Ok(sup)
    }

    /// The container directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The root of an isolated container (`None` when shared): what the files functions
    /// resolve paths in.
    pub fn root(&self) -> Option<&sandbox::Root> {
        self.inner.services.root.as_ref()
    }

    /// The current combined plan.
    pub fn plan(&self) -> Arc<Plan> {
        self.inner.plan.lock().unwrap().clone()
    }

    /// The layers in order.
    pub fn layers(&self) -> Vec<Layer> {
        self.inner.layers.lock().unwrap().layers().to_vec()
    }

    /// Adds a layer given as YAML, with Pebble's `combine`/`inner` rules; a bad layer is
    /// rejected whole and changes nothing.
    pub fn add_layer(
        &self,
        label: &str,
        yaml: &[u8],
        combine: bool,
        inner: bool,
    ) -> Result<(), SupervisorError> {
        if label.is_empty() {
            return Err(SupervisorError::BadRequest("label must be set".into()));
        }
        let layer = cairn_plan::parse_layer(0, label, yaml).map_err(|e| {
            let msg = e.to_string();
            // Pebble reports override problems when combining, without the parse prefix;
            // cairn-plan finds them while parsing.
            if msg.contains("\"override\" for service")
                || msg.contains("\"override\" value for")
                || msg.contains("\"override\" for check")
                || msg.contains("\"override\" for log target")
            {
                SupervisorError::BadRequest(msg)
            } else {
                SupervisorError::BadRequest(format!("cannot parse layer YAML: {msg}"))
            }
        })?;
        {
            let mut layers = self.inner.layers.lock().unwrap();
            layers
                .add(layer, combine, inner)
                .map_err(|e| SupervisorError::BadRequest(e.to_string()))?;
            *self.inner.plan.lock().unwrap() = Arc::new(layers.plan().clone());
        }
        self.inner.save();
        let plan = self.plan();
        self.inner.checks_plan_changed(&plan);
        Ok(())
    }

    /// Replaces the `[ default args ]` of services, as `pebble run --args` does: a reserved
    /// `pebble-service-args` layer on top, never persisted (the owner re-applies it each run).
    pub fn set_service_args(
        &self,
        args: &std::collections::BTreeMap<String, Vec<String>>,
    ) -> Result<(), SupervisorError> {
        let mut layers = self.inner.layers.lock().unwrap();
        layers
            .set_service_args(args)
            .map_err(|e| SupervisorError::BadRequest(e.to_string()))?;
        *self.inner.plan.lock().unwrap() = Arc::new(layers.plan().clone());
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

    /// Performs a services action (`start`, `stop`, `restart`, `replan`, `autostart`) as
    /// `POST /v1/services` does, returning the id of the change that carries it out.
    pub fn services_action(
        &self,
        action: &str,
        names: &[String],
    ) -> Result<String, SupervisorError> {
        let plan = self.plan();
        let mut names = names.to_vec();
        match action {
            "replan" | "autostart" if !names.is_empty() => {
                return Err(SupervisorError::BadRequest(format!(
                    "{action} accepts no service names"
                )));
            }
            "autostart" => {
                let defaults = plan.default_services();
                let lanes = plan.start_lanes(&defaults).map_err(|e| {
                    SupervisorError::BadRequest(format!("cannot {action} services: {e}"))
                })?;
                names = lanes.into_iter().flatten().collect();
                if names.is_empty() {
                    return Err(SupervisorError::NoDefaultServices);
                }
            }
            "replan" => {}
            _ if names.is_empty() => {
                return Err(SupervisorError::BadRequest(format!(
                    "must specify services for {action} action"
                )));
            }
            _ => {}
        }
        let order_err =
            |e: PlanError| SupervisorError::BadRequest(format!("cannot {action} services: {e}"));
        let (stop_lanes, start_lanes): (Vec<Vec<String>>, Vec<Vec<String>>) = match action {
            "start" | "autostart" => (vec![], plan.start_lanes(&names).map_err(order_err)?),
            "stop" => (plan.stop_lanes(&names).map_err(order_err)?, vec![]),
            "restart" => {
                let stop = plan.stop_lanes(&names).map_err(order_err)?;
                let stop = stop
                    .into_iter()
                    .map(|lane| {
                        lane.into_iter()
                            .filter(|n| names.contains(n))
                            .collect::<Vec<_>>()
                    })
                    .filter(|lane| !lane.is_empty())
                    .collect();
                (stop, plan.start_lanes(&names).map_err(order_err)?)
            }
            "replan" => {
                // A replan also starts enabled checks that are not running.
                self.inner.replan_checks();
                let changed = self.inner.services.replan_changed(&plan);
                let mut start: Vec<String> = plan
                    .services
                    .iter()
                    .filter(|(n, s)| {
                        changed.contains(n) || s.startup == cairn_plan::ServiceStartup::Enabled
                    })
                    .map(|(n, _)| n.clone())
                    .collect();
                start.sort();
                let stop_lanes = plan.stop_lanes(&changed).map_err(order_err)?;
                let start_lanes = plan.start_lanes(&start).map_err(order_err)?;
                let mut all: Vec<String> = stop_lanes
                    .iter()
                    .chain(start_lanes.iter())
                    .flatten()
                    .cloned()
                    .collect();
                all.sort();
                all.dedup();
                names = all;
                (stop_lanes, start_lanes)
            }
            _ => {
                return Err(SupervisorError::BadRequest(format!(
                    "invalid action {action:?}"
                )));
            }
        };
        let title = {
            let mut c = action.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        };
        let resolved = if action == "replan" {
            names.len()
        } else {
            stop_lanes
                .iter()
                .chain(start_lanes.iter())
                .map(Vec::len)
                .sum::<usize>()
                - if action == "restart" {
                    stop_lanes.iter().map(Vec::len).sum()
                } else {
                    0
                }
        };
        let task_count = stop_lanes
            .iter()
            .chain(start_lanes.iter())
            .map(Vec::len)
            .sum::<usize>();
        let summary = if task_count == 0 {
            format!("{title} - no services")
        } else if resolved <= 1 {
            format!("{title} service {:?}", names[0])
        } else {
            format!("{title} service {:?} and {} more", names[0], resolved - 1)
        };
        Ok(self
            .inner
            .clone()
            .spawn_change(action, &summary, &names, stop_lanes, start_lanes))
    }

    /// A change's current info.
    pub fn change(&self, id: &str) -> Result<ChangeInfo, SupervisorError> {
        let book = self.inner.book.lock().unwrap();
        parse_id(id)
            .and_then(|n| book.change_info(n))
            .ok_or_else(|| SupervisorError::NotFound(format!("cannot find change with id {id:?}")))
    }

    /// Changes matching `select`, optionally only those acting on `service`.
    pub fn changes(&self, select: ChangeSelect, service: Option<&str>) -> Vec<ChangeInfo> {
        self.inner.book.lock().unwrap().changes(select, service)
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
        match timeout {
            None => wait.await,
            Some(t) => tokio::time::timeout(t, wait).await.unwrap_or_else(|_| {
                Err(SupervisorError::Timeout(format!(
                    "timed out waiting for change after {}",
                    cairn_plan::format_duration(t)
                )))
            }),
        }
    }

    /// Runs a services action and waits for its change, failing with the change's error.
    pub async fn run_action(
        &self,
        action: &str,
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

    /// Aborts a change: tasks not yet started are put on hold (a running task finishes).
    pub fn abort_change(&self, id: &str) -> Result<ChangeInfo, SupervisorError> {
        let info = self.change(id)?;
        if info.ready {
            return Err(SupervisorError::BadRequest(format!(
                "cannot abort change {id} with nothing pending"
            )));
        }
        {
            let mut book = self.inner.book.lock().unwrap();
            for t in book.change_tasks(info.id.parse().unwrap_or(0)) {
                if book.task_status(t) == Some(Status::Do) {
                    book.set_task_status(t, Status::Hold);
                }
            }
        }
        self.inner.changed();
        self.change(id)
    }

    /// Brings the container back after a service's exit action shut it down, as Kubernetes
    /// restarts a container whose Pebble exited: every service is stopped and forgotten, the
    /// layers are read again (directory plus API-added ones), the change history stays, and
    /// nothing is started (the charm replans on `pebble-ready`, as with `pebble run --hold`).
    pub async fn restart(&self) -> Result<(), SupervisorError> {
        self.inner.checks.stop_all();
        self.stop_all().await;
        self.inner.services.reset();
        let persisted: Vec<PersistedLayer> = self
            .layers()
            .iter()
            .map(|l| PersistedLayer {
                order: l.order,
                label: l.label.clone(),
                yaml: l.to_yaml(),
            })
            .collect();
        let layers = assemble_layers(&self.inner.dir, &persisted)?;
        {
            let mut current = self.inner.layers.lock().unwrap();
            *self.inner.plan.lock().unwrap() = Arc::new(layers.plan().clone());
            *current = layers;
        }
        self.inner.save();
        self.inner.changed();
        let plan = self.plan();
        self.inner.checks_plan_changed(&plan);
        Ok(())
    }

    /// Checks (all, or those named), filtered by level (`alive`, `ready` or empty), as
    /// `GET /v1/checks`; sorted by name.
    pub fn checks(&self, level: &str, names: &[String]) -> Vec<CheckInfo> {
        self.inner
            .checks
            .infos()
            .into_iter()
            .filter(|c| level.is_empty() || c.level == level)
            .filter(|c| names.is_empty() || names.contains(&c.name))
            .collect()
    }

    /// `GET /v1/health`: false when any matching check is down. `ready` includes `alive`
    /// checks (a workload that is not alive is not ready either).
    pub fn healthy(&self, level: &str, names: &[String]) -> bool {
        !self.inner.checks.infos().iter().any(|c| {
            let level_match =
                level.is_empty() || c.level == level || (level == "ready" && c.level == "alive");
            let name_match = names.is_empty() || names.contains(&c.name);
            level_match && name_match && c.status == "down"
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
    pub fn exec(&self, mut args: exec::ExecArgs) -> Result<exec::ExecStarted, SupervisorError> {
        let Some(program) = args.command.first().cloned() else {
            return Err(SupervisorError::BadRequest("must specify command".into()));
        };
        // As Pebble (Go's exec.LookPath at request time): argv0 is resolved on the
        // supervisor's own PATH.
        let own_path = std::env::var("PATH").unwrap_or_default();
        let root = self.inner.services.root.clone();
        let Some(resolved) = exec::look_path(&program, &own_path, root.as_ref()) else {
            return Err(SupervisorError::BadRequest(format!(
                "cannot find executable {program:?}"
            )));
        };
        let (env, dir) = exec::resolve(&args, &self.inner.services.env, root.as_ref())
            .map_err(|e| SupervisorError::Internal(format!("cannot call exec: {e}")))?;
        args.command[0] = resolved;
        let summary = format!("Execute command {program:?}");
        let (change, task) = {
            let mut book = self.inner.book.lock().unwrap();
            let (id, tids) = book.new_change("exec", &summary, &[("exec".into(), summary.clone())]);
            book.set_task_status(tids[0], Status::Doing);
            (id, tids[0])
        };
        self.inner.changed();
        let kill = Arc::new(tokio::sync::Notify::new());
        let (pending, ends) = exec::channels(args.split_stderr, kill.clone());
        self.inner.execs.lock().unwrap().insert(task, pending);
        self.inner.exec_kills.lock().unwrap().insert(task, kill);
        let inner = self.inner.clone();
        let (env2, dir2) = (env.clone(), dir.clone());
        tokio::spawn(async move {
            let started = std::sync::Mutex::new(None);
            let on_start = |pid: i32| {
                inner.services.exec_started(pid, task);
                *started.lock().unwrap() = Some(pid);
            };
            let done = exec::run(args, env2, dir2, task, ends, root, &on_start).await;
            inner.execs.lock().unwrap().remove(&task);
            inner.exec_kills.lock().unwrap().remove(&task);
            {
                let mut book = inner.book.lock().unwrap();
                book.set_task_data(task, "exit-code", done.exit_code.into());
                match done.error {
                    Some(e) => {
                        book.task_error(task, &e);
                        book.set_task_status(task, Status::Error);
                    }
                    None => book.set_task_status(task, Status::Done),
                }
            }
            inner.changed();
            // After the waiters are woken: the record only matters if the host crashes.
            if let Some(pid) = started.into_inner().unwrap() {
                inner.services.exec_exited(pid);
            }
        });
        Ok(exec::ExecStarted {
            change_id: change.to_string(),
            task_id: task.to_string(),
            environment: env,
            working_dir: dir,
        })
    }

    /// Connects one I/O endpoint (`stdio`, `stderr`, `control`) of a running exec task.
    pub fn exec_connect(&self, task_id: &str, id: &str) -> Result<exec::Endpoint, SupervisorError> {
        let tid: u64 = task_id.parse().unwrap_or(0);
        let kind = {
            let book = self.inner.book.lock().unwrap();
            book.task_kind(tid)
        };
        match kind.as_deref() {
            None => {
                return Err(SupervisorError::NotFound(format!(
                    "cannot find task {task_id:?}"
                )));
            }
            Some("exec") => {}
            Some(other) => {
                return Err(SupervisorError::BadRequest(format!(
                    "{other:?} tasks do not have websockets"
                )));
            }
        }
        let mut execs = self.inner.execs.lock().unwrap();
        let Some(p) = execs.get_mut(&tid) else {
            return Err(SupervisorError::NotFound(format!(
                "cannot find {id} websocket for task {task_id:?}"
            )));
        };
        p.connect(id).map_err(|e| {
            if e.ends_with("not found") {
                SupervisorError::NotFound(format!(
                    "cannot find {id} websocket for task {task_id:?}"
                ))
            } else {
                SupervisorError::BadRequest(e)
            }
        })
    }

    /// Records a `custom` notice for `user_id` (`POST /v1/notices`, `pebble notify`), with
    /// Pebble's key and data checks; returns the notice's id.
    pub fn notify(
        &self,
        user_id: Option<u32>,
        key: &str,
        data: std::collections::BTreeMap<String, String>,
        repeat_after: Option<Duration>,
    ) -> Result<String, SupervisorError> {
        if !notices::valid_custom_key(key) {
            return Err(SupervisorError::BadRequest(format!(
                "invalid key {key:?} (must be in \"example.com/path\" format)"
            )));
        }
        if key.len() > notices::MAX_KEY_LEN {
            return Err(SupervisorError::BadRequest(format!(
                "key must be {} bytes or less",
                notices::MAX_KEY_LEN
            )));
        }
        let size = serde_json::to_vec(&data).map(|v| v.len()).unwrap_or(0);
        if size > notices::MAX_DATA_SIZE {
            return Err(SupervisorError::BadRequest(format!(
                "total size of data must be {} bytes or less",
                notices::MAX_DATA_SIZE
            )));
        }
        Ok(self
            .inner
            .add_notice(user_id, "custom", key, data, repeat_after))
    }

    /// Records a `warning` notice (repeating at most daily).
    pub fn warn(&self, message: &str) {
        self.inner.add_notice(
            None,
            "warning",
            message,
            Default::default(),
            Some(notices::WARNING_REPEAT_AFTER),
        );
    }

    /// Notices matching `filter`, oldest repeat first.
    pub fn notices(&self, filter: &notices::NoticeFilter) -> Vec<notices::Notice> {
        self.inner
            .notices
            .lock()
            .unwrap()
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
            .notices
            .lock()
            .unwrap()
            .get(id, time::OffsetDateTime::now_utc())
    }

    /// Pebble's metrics in OpenMetrics text (`GET /v1/metrics`).
    pub fn metrics(&self) -> String {
        let mut out = String::new();
        self.inner.services.write_metrics(&mut out);
        self.inner.checks.write_metrics(&mut out);
        out
    }

    /// Stops every running service in stop order ("Stop all running services"), waiting at
    /// most Pebble's stop timeout, and kills the commands of execs still running (as
    /// Pebble's exit ends them), so none outlives the supervisor.
    pub async fn stop_all(&self) {
        for kill in self.inner.exec_kills.lock().unwrap().values() {
            kill.notify_one();
        }
        let names = self.inner.services.active_names();
        if names.is_empty() {
            return;
        }
        let timeout = self.inner.services.stop_timeout();
        let plan = self.plan();
        let lanes = plan
            .stop_lanes(&names)
            .unwrap_or_else(|_| vec![names.clone()]);
        let id = self.inner.clone().spawn_change(
            "stop",
            "Stop all running services",
            &names,
            lanes,
            vec![],
        );
        let _ = self.wait_change(&id, Some(timeout)).await;
        self.inner.save();
    }
}

/// The layers of a container: those of its `layers/` directory, then the given persisted
/// (API-added) ones whose labels the directory does not have. Reserved `pebble-*` layers are
/// derived state, re-applied by their owner.
fn assemble_layers(dir: &Path, persisted: &[PersistedLayer]) -> Result<Layers, SupervisorError> {
    let layers_dir = dir.join("layers");
    let mut layers = if layers_dir.is_dir() {
        cairn_plan::read_layers_dir(&layers_dir)?
    } else {
        Vec::new()
    };
    for p in persisted {
        if p.label.starts_with("pebble-") || layers.iter().any(|l| l.label == p.label) {
            continue;
        }
        layers.push(cairn_plan::parse_layer(
            p.order,
            &p.label,
            p.yaml.as_bytes(),
        )?);
    }
    layers.sort_by_key(|l| l.order);
    Ok(Layers::new(layers)?)
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

/// How long the background saver waits after a change before writing, so that the
/// transitions of one operation become one write.
const SAVE_DELAY: Duration = Duration::from_millis(10);

fn parse_id(id: &str) -> Option<u64> {
    id.parse().ok()
}

impl Inner {
    fn bump(&self) {
        self.version.send_modify(|v| *v += 1);
    }

    fn save(&self) {
        if !self.persist {
            return;
        }
        // A snapshot under the locks; the encoding, the slow part, after they are released.
        let state = {
            let layers = self.layers.lock().unwrap();
            let book = self.book.lock().unwrap();
            let layers = layers
                .layers()
                .iter()
                .filter(|l| !l.label.starts_with("pebble-"))
                .map(|l| PersistedLayer {
                    order: l.order,
                    label: l.label.clone(),
                    yaml: l.to_yaml(),
                })
                .collect();
            let notices = self.notices.lock().unwrap();
            PersistedState {
                layers,
                changes: book.clone(),
                notices: notices.clone(),
            }
        };
        match serde_json::to_vec(&state) {
            Ok(data) => {
                if let Err(e) = persist::atomic_write(&self.dir.join(STATE_FILE), &data) {
                    tracing::warn!("Cannot write state file: {e}");
                }
            }
            Err(e) => tracing::warn!("Cannot encode state: {e}"),
        }
    }

    fn spawn_change(
        self: Arc<Self>,
        kind: &str,
        summary: &str,
        names: &[String],
        stop_lanes: Vec<Vec<String>>,
        start_lanes: Vec<Vec<String>>,
    ) -> String {
        let mut specs = Vec::new();
        for lane in &stop_lanes {
            for n in lane {
                specs.push(("stop".to_string(), format!("Stop service {n:?}")));
            }
        }
        for lane in &start_lanes {
            for n in lane {
                specs.push(("start".to_string(), format!("Start service {n:?}")));
            }
        }
        let (id, tids) = {
            let mut book = self.book.lock().unwrap();
            let (id, tids) = book.new_change(kind, summary, &specs);
            if !names.is_empty() && !specs.is_empty() {
                book.set_change_data(id, "service-names", serde_json::json!(names));
            }
            (id, tids)
        };
        self.changed();
        let mut it = tids.into_iter();
        let mut attach =
            |lanes: Vec<Vec<String>>, kind: TaskKind| -> Vec<Vec<(u64, String, TaskKind)>> {
                lanes
                    .into_iter()
                    .map(|lane| {
                        lane.into_iter()
                            .map(|n| (it.next().unwrap(), n, kind))
                            .collect()
                    })
                    .collect()
            };
        let stop = attach(stop_lanes, TaskKind::Stop);
        let start = attach(start_lanes, TaskKind::Start);
        if !stop.is_empty() || !start.is_empty() {
            tokio::spawn(async move {
                let ok = self.clone().run_lanes(stop).await;
                if ok {
                    self.run_lanes(start).await;
                } else {
                    for lane in start {
                        self.hold(&lane);
                    }
                }
            });
        }
        id.to_string()
    }

    async fn run_lanes(self: Arc<Self>, lanes: Vec<Vec<(u64, String, TaskKind)>>) -> bool {
        let handles: Vec<_> = lanes
            .into_iter()
            .map(|lane| tokio::spawn(self.clone().run_lane(lane)))
            .collect();
        let mut ok = true;
        for h in handles {
            ok &= h.await.unwrap_or(false);
        }
        ok
    }

    async fn run_lane(self: Arc<Self>, lane: Vec<(u64, String, TaskKind)>) -> bool {
        for (i, (tid, name, kind)) in lane.iter().enumerate() {
            if self.book.lock().unwrap().task_status(*tid) != Some(Status::Do) {
                // Aborted: this task and the rest of its lane stay on hold.
                self.hold(&lane[i..]);
                return false;
            }
            self.set_status(*tid, Status::Doing);
            let log = |msg: &str| {
                self.book.lock().unwrap().task_log(*tid, msg);
            };
            let config = self.plan.lock().unwrap().services.get(name).cloned();
            let result = match kind {
                TaskKind::Start => match config {
                    Some(config) => self.services.do_start(&config, &log).await,
                    None => Err(format!("cannot find service {name:?} in plan")),
                },
                TaskKind::Stop => self.services.do_stop(name, &log).await,
            };
            match result {
                Ok(()) => self.set_status(*tid, Status::Done),
                Err(e) => {
                    self.book.lock().unwrap().task_error(*tid, &e);
                    self.set_status(*tid, Status::Error);
                    self.hold(&lane[i + 1..]);
                    return false;
                }
            }
        }
        true
    }

    fn hold(&self, tasks: &[(u64, String, TaskKind)]) {
        for (tid, _, _) in tasks {
            self.book
                .lock()
                .unwrap()
                .set_task_status(*tid, Status::Hold);
        }
        self.changed();
    }

    fn set_status(&self, tid: u64, status: Status) {
        self.book.lock().unwrap().set_task_status(tid, status);
        self.changed();
    }

    /// Wakes waiters and schedules a state write (coalesced with others in flight);
    /// records the `change-update` notices of the status transitions since the last call.
    fn changed(&self) {
        let pending = self.book.lock().unwrap().take_notices();
        if !pending.is_empty() {
            let now = time::OffsetDateTime::now_utc();
            let mut repeated = false;
            {
                let mut notices = self.notices.lock().unwrap();
                for (id, data) in pending {
                    repeated |= notices
                        .add(None, "change-update", &id.to_string(), data, None, now)
                        .1;
                }
            }
            if repeated {
                self.notices_version.send_modify(|v| *v += 1);
            }
        }
        self.dirty.notify_one();
        self.bump();
    }

    /// Records a notice occurrence and wakes long-polls if it is new or repeated.
    fn add_notice(
        &self,
        user_id: Option<u32>,
        type_: &str,
        key: &str,
        data: std::collections::BTreeMap<String, String>,
        repeat_after: Option<Duration>,
    ) -> String {
        let (id, repeated) = self.notices.lock().unwrap().add(
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
#[cfg(test)]
mod tests_checks;
#[cfg(test)]
mod tests_exec;
#[cfg(test)]
mod tests_sandbox;

/// Waits until process group `pgid` has `n` live members; returns them.
#[cfg(test)]
async fn wait_for_members(pgid: i32, n: usize) -> Vec<i32> {
    for _ in 0..200 {
        let m = groups::member_pids(pgid);
        if m.len() >= n {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("process group {pgid} never had {n} members");
}
