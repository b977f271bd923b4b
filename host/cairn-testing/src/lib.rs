//! State in, event, state out: tests of a charm's **compiled component**, run by Cairn's
//! real runtime.
//!
//! A [`Context`] loads the component once per test process (compiled by the host's engine,
//! cached on disk) and every [`Context::run`] delivers one event to a fresh instance, as
//! the host delivers every event: the real wasmtime engine, the real `cairn:charm`
//! bindings and WIT version, the host's memory limit and deadline, its budgets (stored
//! state, log, status), its config and action checks against charmcraft.yaml. What the
//! charm sees of its unit is a declared [`State`]; its containers are [`Container`]s that
//! keep layers with the host's own plan code (`cairn-plan`), so a layer the host refuses
//! is refused with the host's message. The run returns the state the charm left: status,
//! stored state, layers, services, files, commands run, logs, action results, deferred
//! events.
//!
//! ```no_run
//! use cairn_testing::{Container, Context, Event, State, WorkloadStatus};
//!
//! let ctx = Context::from_charm_dir(env!("CARGO_MANIFEST_DIR")).unwrap();
//! let state = State::new()
//!     .with_config("port", 9090)
//!     .with_container(Container::new("web"));
//! let out = ctx.run(Event::ConfigChanged, state).unwrap();
//! assert_eq!(out.unit_status, WorkloadStatus::Active("serving on port 9090".into()));
//! assert!(out.container("web").is_running("http"));
//! ```
//!
//! The SDK's native `Harness` runs the charm's Rust code in the test process instead: use
//! it to step through a handler in a debugger; use this crate to test what ships.
//!
//! It is also the smallest embedding of Cairn's runtime: [`cairn_runtime::Runtime`]
//! compiles the component and dispatches each event against a [`UnitContext`] whose
//! containers are served by this crate's [`ContainerApi`] implementation (see
//! `examples/embed.rs` for an embedder's own program).

mod component;
mod container;
mod state;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use cairn_charm::CharmMeta;
use cairn_runtime::types::{CheckInfo, Notice, Outcome};
use cairn_runtime::{Charm, Runtime, RuntimeConfig, UnitContext};

pub use cairn_runtime::types::LogLine;
pub use cairn_runtime::{
    ActionReport, Budget, ConfigValue, Event as HostEvent, Failure, WorkloadStatus,
};
pub use container::served::Declared;
pub use container::{CheckStatus, Container, ExecArgs, ExecFn, ExecOutput, ServiceStatus};
pub use state::{Event, Relation, RelationKind, State};

/// Why a context could not be made.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The charm crate did not build.
    #[error("{0}")]
    Build(String),
    /// The component or its metadata could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The metadata is not valid (the host's message).
    #[error("cannot load charm metadata: {0}")]
    Metadata(String),
    /// The runtime could not start or compile the component (the host's message).
    #[error("{0}")]
    Runtime(String),
}

/// Why a run did not return a state.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The state declares a config setting the host would refuse (the host's message).
    #[error("{0}")]
    Config(String),
    /// The action or its parameters would be refused by the host (the host's message).
    #[error("{0}")]
    Action(String),
    /// The state does not hold what the event needs (a container, check or notice).
    #[error("{0}")]
    State(String),
    /// The event failed in the charm, as the host would have failed it: the handler's
    /// error, a trap, the memory limit or the deadline. Nothing the event did is kept
    /// (the host keeps nothing of a failed event either); `logs` is what it logged.
    #[error("{event} failed: {failure}")]
    Failed {
        /// The event's name (`config-changed`, `web-pebble-ready`, …).
        event: String,
        /// Why, as the host records it.
        failure: Failure,
        /// What the event logged before it failed.
        logs: Vec<LogLine>,
    },
}

/// The engine every context of the test process shares: one epoch ticker, one pool.
fn runtime() -> Result<&'static Runtime, Error> {
    static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            let cache_dir = component::target_dir().map(|t| t.join("cairn-testing").join("cache"));
            Runtime::new(RuntimeConfig {
                cache_dir,
                max_instances: 64,
                ..RuntimeConfig::default()
            })
            .map_err(|e| error_chain(&e))
        })
        .as_ref()
        .map_err(|e| Error::Runtime(e.clone()))
}

/// An error and its sources, joined as `a: b: c`.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// A loaded charm: its component, prepared once, and its metadata.
struct Loaded {
    charm: Charm,
    meta: CharmMeta,
}

/// Loaded charms by component path and metadata text.
type LoadedMap = BTreeMap<(PathBuf, String), Arc<Loaded>>;

/// The charms loaded in this process, by component path (compiled once per process).
fn loaded(wasm: &Path, charmcraft: &str) -> Result<Arc<Loaded>, Error> {
    static LOADED: OnceLock<Mutex<LoadedMap>> = OnceLock::new();
    let key = (wasm.to_path_buf(), charmcraft.to_string());
    let mut map = LOADED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(l) = map.get(&key) {
        return Ok(l.clone());
    }
    let meta = CharmMeta::parse(charmcraft).map_err(|e| Error::Metadata(e.to_string()))?;
    let charm = runtime()?
        .load_file(wasm)
        .map_err(|e| Error::Runtime(error_chain(&e)))?;
    let l = Arc::new(Loaded { charm, meta });
    map.insert(key, l.clone());
    Ok(l)
}

/// The charm directories built in this process, and what each build gave.
fn built(dir: &Path) -> Result<PathBuf, Error> {
    static BUILT: OnceLock<Mutex<BTreeMap<PathBuf, PathBuf>>> = OnceLock::new();
    let mut map = BUILT
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(p) = map.get(dir) {
        return Ok(p.clone());
    }
    let wasm = component::build(dir)?;
    map.insert(dir.to_path_buf(), wasm.clone());
    Ok(wasm)
}

/// One charm, loaded once, to run events against declared states.
#[derive(Clone)]
pub struct Context {
    loaded: Arc<Loaded>,
    unit: String,
    model: String,
    budget: Budget,
}

impl Context {
    /// The charm crate in `dir` (such as `env!("CARGO_MANIFEST_DIR")`): builds it for
    /// `wasm32-wasip2` (once per test process), loads the component, reads its
    /// `charmcraft.yaml`.
    pub fn from_charm_dir(dir: impl AsRef<Path>) -> Result<Self, Error> {
        let dir = dir.as_ref();
        let wasm = built(dir)?;
        Self::from_component(wasm, dir.join("charmcraft.yaml"))
    }

    /// A component already built, with the charm's `charmcraft.yaml`.
    pub fn from_component(
        wasm: impl AsRef<Path>,
        charmcraft: impl AsRef<Path>,
    ) -> Result<Self, Error> {
        let path = charmcraft.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let loaded = loaded(wasm.as_ref(), &text)?;
        let unit = format!("{}/0", loaded.meta.name);
        Ok(Context {
            loaded,
            unit,
            model: "test-model".into(),
            budget: Budget::default(),
        })
    }

    /// Runs under `budget` instead of the host's default one (a lower `memory` or
    /// `deadline`, say, to see the charm fail as the host would fail it).
    pub fn with_budget(mut self, budget: Budget) -> Self {
        self.budget = budget;
        self
    }

    /// The charm's metadata.
    pub fn meta(&self) -> &CharmMeta {
        &self.loaded.meta
    }

    /// The `cairn:charm` contract the component targets (`0.1.0`, `0.2.0`).
    pub fn contract(&self) -> &'static str {
        self.loaded.charm.contract()
    }

    /// Delivers `event` to a fresh instance of the charm with the unit in `state`, after
    /// the state's deferred events (as the host does), and returns the state the charm
    /// left. Blocks on a runtime of the calling thread's own: call
    /// [`run_async`](Self::run_async) from async code.
    pub fn run(&self, event: Event, state: State) -> Result<State, RunError> {
        thread_local! {
            static RT: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("cannot start a tokio runtime");
        }
        RT.with(|rt| rt.block_on(self.run_async(event, state)))
    }

    /// [`run`](Self::run), on the caller's tokio runtime.
    pub async fn run_async(&self, event: Event, mut state: State) -> Result<State, RunError> {
        let meta = &self.loaded.meta;
        // Each setting as the operator's `key=value` would be typed by the host.
        let mut settings = BTreeMap::new();
        for (key, value) in &state.config {
            let typed = meta
                .parse_setting(key, &value.to_string())
                .map_err(|e| RunError::Config(e.to_string()))?;
            settings.insert(key.clone(), typed);
        }
        if let Some(name) = state
            .containers
            .keys()
            .find(|n| !meta.containers.contains_key(*n))
        {
            return Err(RunError::State(format!(
                "container {name:?} is not declared in charmcraft.yaml"
            )));
        }
        for name in meta.containers.keys() {
            if !state.containers.contains_key(name) {
                state.containers.insert(name.clone(), Container::new(name));
            }
        }
        for r in state.relations.relations.values_mut() {
            let (_, spec) = meta.endpoint(&r.endpoint).ok_or_else(|| {
                RunError::State(format!(
                    "relation {} is on endpoint {:?}, which charmcraft.yaml does not declare",
                    r.id, r.endpoint
                ))
            })?;
            r.interface = spec.interface.clone();
        }
        let event = self.host_event(event, &mut state)?;
        let limits = self.budget.container_limits();
        let served: BTreeMap<String, Declared> = std::mem::take(&mut state.containers)
            .into_iter()
            .map(|(n, mut c)| {
                c.limits = limits.clone();
                (n, Declared::new(c))
            })
            .collect();
        let mut ctx = UnitContext::new(&self.unit, &meta.name, &self.model);
        ctx.containers = served
            .iter()
            .map(|(n, s)| (n.clone(), s.backend()))
            .collect();
        ctx.config = meta.effective_config(&settings);
        ctx.unit_status = std::mem::take(&mut state.unit_status);
        ctx.app_status = std::mem::take(&mut state.app_status);
        ctx.leader = state.leader;
        ctx.stored = std::mem::take(&mut state.stored);
        ctx.relations = std::mem::take(&mut state.relations);
        ctx.budget = self.budget.clone();
        let is_action = matches!(event, cairn_runtime::Event::Action { .. });
        let rt = runtime().map_err(|e| RunError::State(e.to_string()))?;
        let mut logs = Vec::new();
        // Deferred events first, then the event, as the host's unit delivers them.
        let mut still_deferred = Vec::new();
        let deferred = std::mem::take(&mut state.deferred);
        let count = deferred.len();
        for (i, ev) in deferred.into_iter().chain([event]).enumerate() {
            ctx.action = (is_action && i == count).then(ActionReport::default);
            ctx.relations.written.clear();
            let d = rt.dispatch(&self.loaded.charm, ctx, &ev).await;
            logs.extend(d.logs);
            match d.outcome {
                Ok(Outcome::Handled) => {}
                Ok(Outcome::Deferred) => {
                    // As the host keeps them: once each, the oldest dropped past the
                    // app's budget of deferred events.
                    if !still_deferred.contains(&ev) {
                        still_deferred.push(ev);
                        if still_deferred.len() as u64 > self.budget.deferred {
                            still_deferred.remove(0);
                        }
                    }
                }
                Err(failure) => {
                    return Err(RunError::Failed {
                        event: ev.name(),
                        failure,
                        logs,
                    });
                }
            }
            ctx = d.ctx;
        }
        state.unit_status = ctx.unit_status;
        state.app_status = ctx.app_status;
        state.stored = ctx.stored;
        state.relations = ctx.relations;
        state.action = ctx.action;
        state.deferred = still_deferred;
        state.logs = logs;
        drop(ctx.containers);
        state.containers = served
            .into_iter()
            .map(|(n, s)| {
                let c = match Arc::try_unwrap(s.0) {
                    Ok(m) => m.into_inner().unwrap_or_else(|e| e.into_inner()),
                    Err(shared) => shared.lock().unwrap_or_else(|e| e.into_inner()).clone(),
                };
                (n, c)
            })
            .collect();
        Ok(state)
    }

    /// The host's event for a test's, with what the state declares (a check's counts, a
    /// notice, checked action parameters); a check event also sets the check's status in
    /// the state, as Pebble's would be when the charm runs.
    fn host_event(
        &self,
        event: Event,
        state: &mut State,
    ) -> Result<cairn_runtime::Event, RunError> {
        use cairn_runtime::Event as H;
        let check_event = |state: &mut State, name: &str, check: &str, status: CheckStatus| {
            let c = state.containers.get_mut(name).ok_or_else(|| {
                RunError::State(format!(
                    "container {name:?} is not declared in charmcraft.yaml"
                ))
            })?;
            let (failures, threshold, level) =
                c.check_event_info(check, status).ok_or_else(|| {
                    RunError::State(format!(
                        "container {name:?} has no check {check:?} in its plan"
                    ))
                })?;
            c.set_check(check, status, failures);
            Ok::<_, RunError>(CheckInfo {
                name: check.to_string(),
                level,
                status,
                successes: 0,
                failures,
                threshold,
                change_id: None,
            })
        };
        Ok(match event {
            Event::Install => H::Install,
            Event::Start => H::Start,
            Event::Stop => H::Stop,
            Event::Remove => H::Remove,
            Event::ConfigChanged => H::ConfigChanged,
            Event::UpgradeCharm => H::UpgradeCharm,
            Event::UpdateStatus => H::UpdateStatus,
            Event::LeaderElected => H::LeaderElected,
            Event::PebbleReady(container) => {
                if !state.containers.contains_key(&container) {
                    return Err(RunError::State(format!(
                        "container {container:?} is not declared in charmcraft.yaml"
                    )));
                }
                H::PebbleReady { container }
            }
            Event::CheckFailed { container, check } => {
                let info = check_event(state, &container, &check, CheckStatus::Down)?;
                H::PebbleCheckFailed { container, info }
            }
            Event::CheckRecovered { container, check } => {
                let info = check_event(state, &container, &check, CheckStatus::Up)?;
                H::PebbleCheckRecovered { container, info }
            }
            Event::CustomNotice { container, key } => {
                let c = state.containers.get(&container).ok_or_else(|| {
                    RunError::State(format!(
                        "container {container:?} is not declared in charmcraft.yaml"
                    ))
                })?;
                let n = c.notice_by_key(&key).ok_or_else(|| {
                    RunError::State(format!(
                        "container {container:?} has no notice of key {key:?}: declare it with Container::notice"
                    ))
                })?;
                let time = |t: time::OffsetDateTime| cairn_supervisor::timefmt::rfc3339(t);
                H::PebbleCustomNotice {
                    container,
                    notice: Notice {
                        id: n.id.clone(),
                        user_id: n.user_id,
                        r#type: n.type_.clone(),
                        key: n.key.clone(),
                        first_occurred: time(n.first_occurred),
                        last_occurred: time(n.last_occurred),
                        last_repeated: time(n.last_repeated),
                        occurrences: u32::try_from(n.occurrences).unwrap_or(u32::MAX),
                        last_data: n.last_data.clone(),
                        repeat_after_ms: None,
                        expire_after_ms: Some(7 * 24 * 3600 * 1000),
                    },
                }
            }
            Event::Action { name, params } => {
                let settings = state::action_settings(&params).map_err(RunError::Action)?;
                let params = self
                    .loaded
                    .meta
                    .validate_params(&name, &settings)
                    .map_err(|e| RunError::Action(e.to_string()))?;
                H::Action {
                    id: "1".into(),
                    name,
                    params_json: params.to_string(),
                }
            }
            Event::Relation { kind, id, unit } => {
                let r =
                    state.relations.relations.get(&id).ok_or_else(|| {
                        RunError::State(format!("the state has no relation {id}"))
                    })?;
                let payload = cairn_runtime::types::RelationEvent {
                    relation_id: id,
                    endpoint: r.endpoint.clone(),
                    remote_app: r.remote_app.clone(),
                    remote_unit: unit.clone(),
                    departing_unit: (kind == RelationKind::Departed).then_some(unit).flatten(),
                };
                match kind {
                    RelationKind::Created => H::RelationCreated(payload),
                    RelationKind::Joined => H::RelationJoined(payload),
                    RelationKind::Changed => H::RelationChanged(payload),
                    RelationKind::Departed => H::RelationDeparted(payload),
                    RelationKind::Broken => H::RelationBroken(payload),
                }
            }
            Event::Host(e) => e,
        })
    }
}
