//! The host: applications, their units, and the containers of each unit.
//!
//! [`Host`] deploys charms, changes config, removes apps and reports status. Each unit owns
//! one [`Supervisor`] per declared container (served on its Pebble socket) and one actor
//! delivering its events. All state lives under the host's state directory:
//!
//! ```text
//! <dir>/charms/<sha256>.wasm          components, by content
//! <dir>/cache/*.cwasm                 compiled components (engine-keyed)
//! <dir>/apps/<app>.json               app record: charm, metadata, config settings, units
//! <dir>/units/<app>-<n>/unit.json     unit record: status, stored state, queue, history
//! <dir>/units/<app>-<n>/unit.log      charm log and guest output (8 MiB, then unit.log.1)
//! <dir>/units/<app>-<n>/containers/<name>/   the container's $PEBBLE (layers, state, socket)
//! ```
//!
//! Every file is replaced atomically (temporary file, fsync, rename, fsync of the
//! directory), and operations that touch several records are ordered so that a crash at
//! any point leaves something [`Host::open`] turns back into a consistent state:
//!
//! - deploy writes the charm blob, then the unit's directory and record, and the app
//!   record last: the app record is the commit point. A unit directory no app record
//!   names is debris of an unfinished deploy: on open, whatever its containers left
//!   running is terminated and the directory deleted.
//! - remove first marks the app record `removing`, then stops and deletes the units, and
//!   deletes the app record last. On open, an app marked `removing` is finished off: the
//!   processes its containers left are terminated and its units and record deleted.
//! - config writes the app record before the units hear of the change.
//! - a unit's record has one writer, its actor's saver, which writes in order.
//!
//! A record that cannot be read takes out only what it describes: an app whose record or
//! charm blob is missing or corrupt, or a unit whose record is, shows `error` with the
//! reason (the file is left as it is for the operator) and everything else runs;
//! `cairn remove` clears such an app.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_supervisor::namespaces::{IdAllocator, NetMode, StrictOptions, Tenancy};
use cairn_supervisor::{Supervisor, SupervisorOptions};
use serde::{Deserialize, Serialize};

use super::report::{AppReport, ContainerReport, StatusReport, UnitReport};
use super::unit::{AppView, HistoryEntry, Retry, Unit, UnitRecord, UnitSettings};
use crate::RuntimeError;
use crate::actions::{ActionRecord, ActionStore};
use crate::charm::{CharmMeta, CharmSource};
use crate::types::{ConfigValue, Event, WorkloadStatus};
use crate::wasm::{Charm, Runtime, RuntimeConfig};

/// How the host runs.
#[derive(Clone, Debug)]
pub struct HostConfig {
    /// The state directory.
    pub dir: PathBuf,
    /// The model's name, as charms see it.
    pub model: String,
    /// Engine limits (the cache dir defaults to `<dir>/cache`).
    pub runtime: RuntimeConfig,
    /// Period of `update-status`.
    pub update_status_interval: Duration,
    /// First retry delay of a failed event (doubles up to `retry_max`).
    pub retry_base: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// Whether unit containers share the host's filesystem or each get a root of its own.
    pub containers: ContainerMode,
    /// Whether tenants are kept apart (`strict`: every container isolated and in user, pid
    /// and optionally network namespaces of its own; see cairn-supervisor's `namespaces`).
    pub tenancy: Tenancy,
    /// The network of strict containers.
    pub tenancy_net: NetMode,
    /// The first host id of strict containers' id ranges (each gets
    /// `cairn_supervisor::namespaces::RANGE_SIZE` ids, recorded in `<dir>/id-ranges.json`).
    pub tenancy_id_base: u32,
    /// The budget of every app that does not override it (`cairn run --limit`); its
    /// `memory` and `deadline` are bounded by `runtime`'s.
    pub budget: crate::Budget,
    /// Cargo target directories searched first for a charm directory's built component
    /// (the binary passes `CARGO_TARGET_DIR`); `target/` directories above the charm are
    /// searched after them.
    pub target_dirs: Vec<PathBuf>,
}

/// How unit containers see the filesystem (design §6).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ContainerMode {
    /// Paths are the host's real filesystem, as Pebble inside a pod sees its own.
    #[default]
    Shared,
    /// Each container has a root directory (`<container dir>/root`) that its services,
    /// exec and checks see as `/` and that the files API never leaves; the workload
    /// reaches its Pebble API at [`IN_ROOT_SOCKET`].
    Isolated,
}

/// Where an isolated container's workload finds its Pebble socket (as Juju mounts it).
pub const IN_ROOT_SOCKET: &str = "/charm/container/pebble.socket";

impl HostConfig {
    /// Defaults for a state directory: model `cairn`, update-status every 5 minutes, retries
    /// from 1 s to 60 s.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        HostConfig {
            runtime: RuntimeConfig {
                cache_dir: Some(dir.join("cache")),
                ..RuntimeConfig::default()
            },
            dir,
            model: "cairn".into(),
            update_status_interval: Duration::from_secs(300),
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
            containers: ContainerMode::Shared,
            tenancy: Tenancy::Shared,
            tenancy_net: NetMode::Host,
            tenancy_id_base: cairn_supervisor::namespaces::DEFAULT_ID_BASE,
            budget: crate::Budget::default(),
            target_dirs: Vec::new(),
        }
    }
}

/// An app as persisted in `<dir>/apps/<app>.json` (fields added since the first version
/// have defaults, so that every record Cairn ever wrote loads).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct AppRecord {
    name: String,
    /// Shared by every app whose charm has the same metadata (see [`shared_meta`]).
    meta: Arc<CharmMeta>,
    charm_hash: String,
    #[serde(default, deserialize_with = "settings_without_nulls")]
    settings: BTreeMap<String, ConfigValue>,
    #[serde(default)]
    units: Vec<u32>,
    #[serde(default)]
    next_unit: u32,
    /// Increases with every config change; each unit records the generation it was last
    /// given a `config-changed` for.
    #[serde(default)]
    config_generation: u64,
    /// Set (and persisted) before a removal touches anything: an app found with it on
    /// open has its removal finished.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    removing: bool,
    /// The operator's budget overrides (`key` → value as `cairn deploy --limit` takes it);
    /// keys not named take the host's defaults.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    limits: BTreeMap<String, String>,
    /// The unit that leads the app (one at most; records older than multi-unit apps have
    /// none, and their leader is found from the unit records on open).
    #[serde(default)]
    leader: Option<u32>,
    /// Increases with every refresh; each unit records the generation it was last given an
    /// `upgrade-charm` for (as for config).
    #[serde(default)]
    charm_generation: u64,
}

/// Reads an app's settings, leaving out the `null`s older versions stored for float
/// settings JSON cannot hold (NaN, ±inf): such an option is unset.
fn settings_without_nulls<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, ConfigValue>, D::Error> {
    let raw: BTreeMap<String, Option<ConfigValue>> = BTreeMap::deserialize(d)?;
    Ok(raw
        .into_iter()
        .filter_map(|(k, v)| {
            if v.is_none() {
                tracing::warn!("config option {k:?} was stored as null: treating it as unset");
            }
            Some(k).zip(v)
        })
        .collect())
}

/// What a deploy asks for besides the charm (`cairn deploy` flags).
#[derive(Clone, Debug, Default)]
pub struct DeployOptions {
    /// The app's name (default: the charm's).
    pub name: Option<String>,
    /// Config settings, `key=value` typed by the charm's options.
    pub settings: Vec<(String, String)>,
    /// Budget overrides, `key=value` as `cairn deploy --limit` takes them.
    pub limits: Vec<(String, String)>,
    /// How many units (0 is taken as 1).
    pub units: u32,
}

/// An app's budget as the operator sees it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AppLimits {
    /// Every limit's value (`key` → value as `--limit` takes it).
    pub limits: BTreeMap<String, String>,
    /// The keys the app overrides (the others are the host's defaults).
    pub overridden: Vec<String>,
    /// How often each limit was hit since the host started.
    pub hits: BTreeMap<String, u64>,
}

/// An app whose record or charm could not be loaded: shown as `error`, not run.
struct BrokenApp {
    /// Why it could not be loaded.
    reason: String,
    /// The charm's name, when the record could be read.
    charm: String,
    /// Its units (from the record, or from the unit directories named after it).
    units: Vec<u32>,
}

/// The part of an app's budget its containers are opened with.
struct ContainerBudget {
    /// What each container's supervisor enforces (also on its Pebble API).
    limits: cairn_supervisor::ContainerLimits,
    /// Where refusals are counted (the app's).
    hits: Arc<cairn_supervisor::LimitHits>,
    /// The app's share of the host's CPU.
    share: Arc<cairn_supervisor::CpuShare>,
    /// Memory, CPU and pids of the container's processes, for its cgroup.
    workload: crate::WorkloadLimits,
}

/// A unit as the host holds it: the unit and its containers' API servers.
struct UnitHandle {
    unit: Unit,
    /// Each container's Pebble API on `<container dir>/.pebble.socket`.
    apis: Vec<cairn_api::ServerHandle>,
}

impl UnitHandle {
    fn stop_apis(&mut self) {
        for api in self.apis.drain(..) {
            api.stop();
        }
    }
}

struct AppEntry {
    record: AppRecord,
    view: Arc<Mutex<AppView>>,
    units: BTreeMap<u32, UnitHandle>,
    /// Units whose record could not be loaded, with the reason (shown as `error`).
    broken_units: BTreeMap<u32, String>,
}

/// The metadata of the apps that are open, by charm name: thousands of apps of one charm
/// hold one copy (a few KiB each otherwise).
static METAS: Mutex<BTreeMap<String, Vec<std::sync::Weak<CharmMeta>>>> =
    Mutex::new(BTreeMap::new());

/// `meta`, or an equal metadata another app already holds.
fn shared_meta(meta: Arc<CharmMeta>) -> Arc<CharmMeta> {
    let mut metas = METAS.lock().unwrap_or_else(|e| e.into_inner());
    let same_name = metas.entry(meta.name.clone()).or_default();
    same_name.retain(|w| w.strong_count() > 0);
    if let Some(kept) = same_name
        .iter()
        .filter_map(std::sync::Weak::upgrade)
        .find(|m| **m == *meta)
    {
        return kept;
    }
    same_name.push(Arc::downgrade(&meta));
    meta
}

impl AppEntry {
    fn new(mut record: AppRecord, charm: Charm, budget: crate::Budget) -> Self {
        record.meta = shared_meta(record.meta);
        let hits = Arc::new(cairn_supervisor::LimitHits::default());
        let share = cairn_supervisor::CpuShare::new(budget.host_cpu, Some(hits.clone()));
        let view = Arc::new(Mutex::new(AppView {
            config: record.meta.effective_config(&record.settings),
            charm: Arc::new(charm),
            budget,
            hits,
            share,
        }));
        AppEntry {
            record,
            view,
            units: BTreeMap::new(),
            broken_units: BTreeMap::new(),
        }
    }
}

/// What opening an app record gave.
enum Restored {
    /// The app runs.
    Live(Box<AppEntry>),
    /// It was being removed; its removal is now finished.
    Removed,
    /// It could not be loaded.
    Broken(BrokenApp),
}

/// The charm host: runtime plus model.
#[derive(Clone)]
pub struct Host {
    inner: Arc<HostInner>,
}

struct HostInner {
    config: HostConfig,
    runtime: Arc<Runtime>,
    apps: tokio::sync::Mutex<BTreeMap<String, AppEntry>>,
    /// Apps that could not be loaded (locked after `apps` when both are held).
    broken: Mutex<BTreeMap<String, BrokenApp>>,
    actions: Arc<ActionStore>,
    /// Per-tenant counters (`cairn metrics`).
    metrics: super::metrics::Metrics,
    /// Strict containers' host id ranges, by container directory (relative to the state
    /// directory).
    ids: IdAllocator,
    /// Relations and their databags (`<dir>/relations.json`).
    relations: Arc<super::relations::RelationStore>,
    /// Woken whenever a unit has finished (and persisted) a delivery: what `wait_config`
    /// waits on.
    progress: Arc<tokio::sync::Notify>,
}

/// The most units one deploy or add-unit starts (each has its containers, sockets and
/// actor; a typo like `-n 100000` is refused rather than filling the host).
const MAX_UNITS_PER_CALL: u32 = 1000;

/// A new unit's record: its name, leadership and the events Juju gives a new unit (install,
/// leader-elected for the leader, config-changed, start, pebble-ready per container).
fn first_record(
    app: &AppRecord,
    idx: u32,
    relations: Option<&relate::FirstRelationEvents>,
) -> UnitRecord {
    let leader = app.leader == Some(idx);
    let mut queue = std::collections::VecDeque::from([Event::Install]);
    if let Some(r) = relations {
        queue.extend(r.after_install.iter().cloned());
    }
    if leader {
        queue.push_back(Event::LeaderElected);
    }
    queue.extend([Event::ConfigChanged, Event::Start]);
    for c in app.meta.containers.keys() {
        queue.push_back(Event::PebbleReady {
            container: c.clone(),
        });
    }
    if let Some(r) = relations {
        queue.extend(r.after_start.iter().cloned());
    }
    UnitRecord {
        name: format!("{}/{idx}", app.name),
        leader,
        queue,
        config_generation: app.config_generation,
        charm_generation: app.charm_generation,
        ..Default::default()
    }
}

fn valid_app_name(name: &str) -> bool {
    follows_juju_name_rule(name) && name.len() <= 64
}

/// Juju's application name rule: lowercase letters, digits and single hyphens, starting with
/// a letter, not ending with a hyphen or a hyphen followed by digits only.
fn follows_juju_name_rule(name: &str) -> bool {
    let bytes = name.as_bytes();
    if bytes.is_empty()
        || !bytes[0].is_ascii_lowercase()
        || name.ends_with('-')
        || name.contains("--")
    {
        return false;
    }
    if !bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
    {
        return false;
    }
    name.split('-')
        .skip(1)
        .all(|part| !part.chars().all(|c| c.is_ascii_digit()))
}

impl Host {
    /// Opens the host on its state directory, bringing back every app and unit: their
    /// records, containers (layers restored) and pending events; `pebble-ready` fires again
    /// for every container. Interrupted deploys and removals are completed or undone, and
    /// an app or unit whose records cannot be loaded is shown in error rather than failing
    /// the host (see the module's documentation).
    pub async fn open(config: HostConfig) -> Result<Self, RuntimeError> {
        for sub in ["apps", "units", "charms"] {
            let p = config.dir.join(sub);
            std::fs::create_dir_all(&p).map_err(|e| RuntimeError::io("create", &p, e))?;
        }
        // The daemon holds the directory's lock: temporary files are of writes a crash cut.
        for sub in ["apps", "charms", "actions"] {
            for p in cairn_supervisor::persist::remove_all_stale_temps(&config.dir.join(sub)) {
                tracing::info!("removed {}, left by an interrupted write", p.display());
            }
        }
        let rt_config = config.runtime.clone();
        let runtime = tokio::task::spawn_blocking(move || Runtime::new(rt_config))
            .await
            .map_err(|e| RuntimeError::Engine(e.into()))??;
        let actions = Arc::new(ActionStore::open(config.dir.join("actions"))?);
        let ids = IdAllocator::new(config.dir.join("id-ranges.json"), config.tenancy_id_base);
        let config_dir = config.dir.clone();
        let host = Host {
            inner: Arc::new(HostInner {
                ids,
                config,
                runtime: Arc::new(runtime),
                apps: tokio::sync::Mutex::new(BTreeMap::new()),
                broken: Mutex::new(BTreeMap::new()),
                actions,
                metrics: super::metrics::Metrics::default(),
                relations: Arc::new(super::relations::RelationStore::open(&config_dir)),
                progress: Arc::default(),
            }),
        };
        host.restore().await?;
        Ok(host)
    }

    /// The runtime (for benchmarks and embedding).
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.inner.runtime
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.inner.config.dir
    }

    async fn restore(&self) -> Result<(), RuntimeError> {
        let apps_dir = self.inner.config.dir.join("apps");
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&apps_dir)
            .map_err(|e| RuntimeError::io("read", &apps_dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .filter(|p| {
                !p.file_name()
                    .is_some_and(|n| n.as_encoded_bytes().starts_with(b"."))
            })
            .collect();
        entries.sort();
        let mut apps = self.inner.apps.lock().await;
        for path in entries {
            let Some(name) = path
                .file_stem()
                .and_then(|s| s.to_str())
                .map(str::to_string)
            else {
                continue;
            };
            match self.restore_app(&path, &name).await {
                Restored::Live(entry) => {
                    tracing::info!("restored app {name} with {} unit(s)", entry.units.len());
                    apps.insert(name, *entry);
                }
                Restored::Removed => tracing::info!("finished removing {name}"),
                Restored::Broken(broken) => {
                    tracing::error!("app {name} is in error: {}", broken.reason);
                    self.inner.broken.lock().unwrap().insert(name, broken);
                }
            }
        }
        // Unit directories no app record names: an unfinished deploy's (or removal's).
        let units_dir = self.inner.config.dir.join("units");
        let dirs =
            std::fs::read_dir(&units_dir).map_err(|e| RuntimeError::io("read", &units_dir, e))?;
        let mut debris = Vec::new();
        {
            let broken = self.inner.broken.lock().unwrap();
            for d in dirs.flatten() {
                let file_name = d.file_name();
                let Some((app, idx)) = file_name.to_str().and_then(parse_unit_dir) else {
                    tracing::warn!("ignoring {}: not a unit directory", d.path().display());
                    continue;
                };
                let known = apps.get(app).is_some_and(|e| e.record.units.contains(&idx))
                    || broken.get(app).is_some_and(|b| b.units.contains(&idx));
                if !known {
                    debris.push(d.path());
                }
            }
        }
        for dir in debris {
            tracing::warn!(
                "removing {}: no app record names it (an interrupted deploy or removal)",
                dir.display()
            );
            discard_unit_dir(dir).await;
        }
        self.tidy_relations(&apps);
        // Action runs no unit will deliver fail now rather than stay pending forever; a
        // unit in error keeps its runs pending (its record, with its queue, may come back).
        let broken = self.inner.broken.lock().unwrap();
        self.inner.actions.fail_orphans(|unit, id| {
            let (app, idx) = parse_unit_name(unit)?;
            if broken.contains_key(app) {
                return Some(true);
            }
            let entry = apps.get(app)?;
            if entry.broken_units.contains_key(&idx) {
                return Some(true);
            }
            let u = entry.units.get(&idx)?;
            Some(u.unit.with_record(|r| {
                r.queue
                    .iter()
                    .any(|e| matches!(e, Event::Action { id: queued, .. } if queued == id))
            }))
        });
        Ok(())
    }

    /// Opens one app record (`path`, named `name`) and starts its units.
    async fn restore_app(&self, path: &Path, name: &str) -> Restored {
        let units_named = || self.unit_dirs_of(name);
        let broken = |reason: String, charm: String, units: Vec<u32>| {
            Restored::Broken(BrokenApp {
                reason,
                charm,
                units,
            })
        };
        let record: AppRecord = match std::fs::read(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))
            .and_then(|d| {
                serde_json::from_slice(&d)
                    .map_err(|e| format!("cannot parse {}: {e}", path.display()))
            }) {
            Ok(r) => r,
            Err(reason) => return broken(reason, String::new(), units_named()),
        };
        if record.name != name || !valid_app_name(name) {
            return broken(
                format!(
                    "cannot use {}: it names application {:?}",
                    path.display(),
                    record.name
                ),
                record.meta.name.clone(),
                units_named(),
            );
        }
        if let Some(bad) = record
            .meta
            .containers
            .keys()
            .find(|c| !cairn_charm::valid_container_name(c))
        {
            // An older version let such a name through; it would be a path outside the
            // unit's directory.
            return broken(
                format!(
                    "cannot use {}: invalid container name {bad:?}",
                    path.display()
                ),
                record.meta.name.clone(),
                units_named(),
            );
        }
        if record.removing {
            // Removal was under way: finish it (the charm's stop and remove already ran
            // or were interrupted; the processes go, then the records).
            for idx in record.units.iter().copied().chain(units_named()) {
                discard_unit_dir(self.unit_dir(name, idx)).await;
            }
            match std::fs::remove_file(path) {
                Ok(()) => {
                    sync_dir(path.parent());
                    return Restored::Removed;
                }
                Err(e) => {
                    return broken(
                        format!(
                            "cannot finish removing: cannot remove {}: {e}",
                            path.display()
                        ),
                        record.meta.name.clone(),
                        Vec::new(),
                    );
                }
            }
        }
        if record.charm_hash.is_empty() || !record.charm_hash.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return broken(
                format!("cannot use {}: bad charm hash", path.display()),
                record.meta.name.clone(),
                record.units.clone(),
            );
        }
        let wasm_path = self.charm_path(&record.charm_hash);
        let charm = match std::fs::read(&wasm_path) {
            Ok(wasm) => self.load_charm(wasm).await,
            Err(e) => Err(RuntimeError::io("read", &wasm_path, e)),
        };
        let charm = match charm {
            Ok(c) => c,
            Err(e) => {
                let units = record.units.clone();
                for idx in &units {
                    terminate_left_in(&self.unit_dir(name, *idx));
                }
                return broken(error_chain(&e), record.meta.name.clone(), units);
            }
        };
        let budget = self.restored_budget(name, &record.limits);
        let mut entry = AppEntry::new(record.clone(), charm, budget);
        for idx in &record.units {
            match self.start_unit(&entry, *idx, None).await {
                Ok(handle) => {
                    let (seen, charm_seen) = handle
                        .unit
                        .with_record(|r| (r.config_generation, r.charm_generation));
                    if charm_seen < record.charm_generation {
                        tracing::warn!(
                            "{name}/{idx} missed a refresh (interrupted): queueing upgrade-charm"
                        );
                        handle.unit.upgrade_charm(record.charm_generation);
                        handle.unit.config_changed(record.config_generation);
                    } else if seen < record.config_generation {
                        tracing::warn!(
                            "{name}/{idx} missed a config change (interrupted): queueing config-changed"
                        );
                        handle.unit.config_changed(record.config_generation);
                    }
                    for c in handle.unit.containers().keys() {
                        handle.unit.enqueue(Event::PebbleReady {
                            container: c.clone(),
                        });
                    }
                    entry.units.insert(*idx, handle);
                }
                Err(e) => {
                    let reason = error_chain(&e);
                    tracing::error!("unit {name}/{idx} is in error: {reason}");
                    terminate_left_in(&self.unit_dir(name, *idx));
                    entry.broken_units.insert(*idx, reason);
                }
            }
        }
        self.settle_leadership(&mut entry);
        Restored::Live(Box::new(entry))
    }

    /// The units whose directories are named after `app`.
    fn unit_dirs_of(&self, app: &str) -> Vec<u32> {
        let units_dir = self.inner.config.dir.join("units");
        let mut out: Vec<u32> = std::fs::read_dir(units_dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|d| {
                let n = d.file_name();
                let (a, idx) = parse_unit_dir(n.to_str()?)?;
                (a == app).then_some(idx)
            })
            .collect();
        out.sort();
        out
    }

    fn charm_path(&self, hash: &str) -> PathBuf {
        self.inner
            .config
            .dir
            .join("charms")
            .join(format!("{hash}.wasm"))
    }

    async fn load_charm(&self, wasm: Vec<u8>) -> Result<Charm, RuntimeError> {
        let rt = self.inner.runtime.clone();
        tokio::task::spawn_blocking(move || rt.load(&wasm))
            .await
            .map_err(|e| RuntimeError::Engine(e.into()))?
    }

    fn unit_dir(&self, app: &str, idx: u32) -> PathBuf {
        self.inner
            .config
            .dir
            .join("units")
            .join(format!("{app}-{idx}"))
    }

    fn save_app(&self, record: &AppRecord) -> Result<(), RuntimeError> {
        let path = self
            .inner
            .config
            .dir
            .join("apps")
            .join(format!("{}.json", record.name));
        let data = serde_json::to_vec_pretty(record).map_err(|source| RuntimeError::Record {
            action: "encode",
            path: path.clone(),
            source,
        })?;
        cairn_supervisor::persist::atomic_write(&path, &data)
            .map_err(|e| RuntimeError::io("write", &path, e))
    }

    /// Opens (or creates, from `fresh`) a unit: its record, its containers, its actor. On
    /// failure nothing of it is left running.
    async fn start_unit(
        &self,
        app: &AppEntry,
        idx: u32,
        fresh: Option<UnitRecord>,
    ) -> Result<UnitHandle, RuntimeError> {
        let name = format!("{}/{idx}", app.record.name);
        let dir = self.unit_dir(&app.record.name, idx);
        let record = match fresh {
            Some(r) => {
                std::fs::create_dir_all(&dir).map_err(|e| RuntimeError::io("create", &dir, e))?;
                sync_dir(dir.parent());
                r
            }
            None => {
                // Before the unit's one writer starts: its temps are of a write a crash cut.
                cairn_supervisor::persist::remove_stale_temps(&dir, super::unit::RECORD_FILE);
                cairn_supervisor::persist::remove_stale_temps(&dir, super::unit::HISTORY_FILE);
                UnitRecord::load(&dir)?
            }
        };
        let mut containers = BTreeMap::new();
        let mut apis = Vec::new();
        let budget = {
            let view = app.view.lock().unwrap();
            ContainerBudget {
                limits: view.budget.container_limits(),
                hits: view.hits.clone(),
                share: view.share.clone(),
                workload: view.budget.workload,
            }
        };
        for c in app.record.meta.containers.keys() {
            match self
                .open_container(&name, &dir, c, &budget, &mut apis)
                .await
            {
                Ok(sup) => {
                    containers.insert(c.clone(), sup);
                }
                Err(e) => {
                    for api in apis {
                        api.stop();
                    }
                    for sup in containers.values() {
                        sup.stop_all().await;
                    }
                    return Err(e);
                }
            }
        }
        let config = &self.inner.config;
        let settings = UnitSettings {
            app_name: app.record.name.clone(),
            model: config.model.clone(),
            dir,
            containers,
            app: app.view.clone(),
            retry: Retry {
                base: config.retry_base,
                max: config.retry_max,
            },
            update_status_interval: config.update_status_interval,
            actions: self.inner.actions.clone(),
            metrics: self.inner.metrics.app(&app.record.name),
            relations: self.inner.relations.clone(),
            progress: self.inner.progress.clone(),
        };
        let unit = Unit::start(settings, record, self.inner.runtime.clone());
        Ok(UnitHandle { unit, apis })
    }

    /// Stops a unit for good: its actor (after `begin_removal`, once its queue is done),
    /// its APIs, its services; then deletes its directory.
    async fn discard_unit(&self, mut u: UnitHandle, graceful: bool) {
        if graceful {
            u.unit.finish_removal().await;
        } else {
            u.unit.stop().await;
        }
        u.stop_apis();
        for sup in u.unit.containers().values() {
            sup.stop_all().await;
            let checks: Vec<String> = sup.checks(None, &[]).into_iter().map(|c| c.name).collect();
            let _ = sup.stop_checks(&checks);
            // A service change still in flight (asked for just before, or a container
            // restart the unit's watcher began) may start a service after the stop: let it
            // end, then stop again.
            let starting = sup
                .changes(cairn_supervisor::ChangeSelect::InProgress, None)
                .into_iter()
                .filter(|c| {
                    matches!(
                        c.kind.as_str(),
                        "start" | "restart" | "replan" | "autostart"
                    )
                });
            let mut waited = false;
            for ch in starting {
                let _ = sup.wait_change(&ch.id, Some(Duration::from_secs(30))).await;
                waited = true;
            }
            if waited {
                sup.stop_all().await;
            }
            // A strict container's processes that left their groups go with its namespace.
            sup.kill_namespace();
        }
        discard_unit_dir(u.unit.dir().to_path_buf()).await;
        self.inner.relations.forget_unit(&u.unit.name());
        for sup in u.unit.containers().values() {
            if sup.root().and_then(|r| r.ids()).is_some()
                && let Err(e) = self.inner.ids.release(&self.id_key(sup.dir()))
            {
                tracing::warn!(
                    "cannot release the host ids of {}: {e}",
                    sup.dir().display()
                );
            }
        }
    }

    /// The key of a container's id range: its directory relative to the state directory.
    fn id_key(&self, cdir: &Path) -> String {
        cdir.strip_prefix(&self.inner.config.dir)
            .unwrap_or(cdir)
            .display()
            .to_string()
    }

    /// Opens one container of a unit: its supervisor on `<unit dir>/containers/<name>`,
    /// its Pebble API on the container's socket and, in an isolated container, on the
    /// socket inside its root (the servers are added to `apis`).
    async fn open_container(
        &self,
        unit: &str,
        unit_dir: &Path,
        c: &str,
        budget: &ContainerBudget,
        apis: &mut Vec<cairn_api::ServerHandle>,
    ) -> Result<Supervisor, RuntimeError> {
        let cdir = unit_dir.join("containers").join(c);
        let socket = cdir.join(".pebble.socket");
        let strict = self.inner.config.tenancy == Tenancy::Strict;
        let isolated = self.inner.config.containers == ContainerMode::Isolated || strict;
        // The workload's view of its Pebble: the host path, or the socket in its root.
        let (pebble, pebble_socket) = if isolated {
            let s = Path::new(IN_ROOT_SOCKET);
            (s.parent().unwrap_or(s).to_path_buf(), s.to_path_buf())
        } else {
            (cdir.clone(), socket.clone())
        };
        let opts = SupervisorOptions {
            env: vec![
                ("PEBBLE".into(), pebble.display().to_string()),
                ("PEBBLE_SOCKET".into(), pebble_socket.display().to_string()),
                ("JUJU_UNIT_NAME".into(), unit.to_string()),
            ],
            root: isolated.then(|| cdir.join("root")),
            strict: if strict {
                let ids = self.inner.ids.allocate(&self.id_key(&cdir)).map_err(|e| {
                    RuntimeError::Container {
                        what: format!("allocate host ids for container {c:?} of {unit}"),
                        source: e.into(),
                    }
                })?;
                Some(StrictOptions {
                    ids,
                    net: self.inner.config.tenancy_net,
                })
            } else {
                None
            },
            limits: budget.limits.clone(),
            hits: budget.hits.clone(),
            cpu_share: Some(budget.share.clone()),
            // The daemon's lock on the state directory keeps other hosts out of every
            // container under it (and `pebble run` checks it): no descriptor per container.
            lock_file: false,
            workload: cairn_supervisor::WorkloadLimits {
                memory_max: budget.workload.memory,
                pids_max: budget.workload.pids,
                cpu_max: budget
                    .workload
                    .cpu_millis
                    .map(cairn_supervisor::CpuMax::millicores),
            },
            ..SupervisorOptions::new(&cdir)
        };
        let sup = Supervisor::open(opts).map_err(|e| RuntimeError::Container {
            what: format!("open container {c:?} of {unit}"),
            source: e.into(),
        })?;
        let serve = |socket: PathBuf| {
            let server = cairn_api::ApiServer::new(sup.clone(), None);
            async move {
                cairn_api::serve(server, &socket, None)
                    .await
                    .map_err(|e| RuntimeError::io("serve the API on", &socket, e))
            }
        };
        apis.push(serve(socket.clone()).await?);
        let tenant_root = sup.root().and_then(|r| r.ids()).map(|m| m.base);
        if tenant_root.is_some() {
            // Strict: the host-side socket is the operator's only.
            restrict_socket(&socket, None)?;
        }
        if let Some(root) = sup.root() {
            // The workload's socket: bound on the host side, then moved into the root
            // through it (a directory or link the container put on the way is not
            // followed out of the root).
            let inside = Path::new(IN_ROOT_SOCKET);
            let parent = inside.parent().unwrap_or(inside).display().to_string();
            cairn_supervisor::files::make_dir(
                Some(root),
                &parent,
                true,
                &cairn_supervisor::files::Ownership::default(),
            )
            .map_err(|e| RuntimeError::Container {
                what: format!("create {parent}"),
                source: e.into(),
            })?;
            let staged = cdir.join(".pebble.socket.root");
            apis.push(serve(staged.clone()).await?);
            if let Some(owner) = tenant_root {
                // Strict: the tenant's socket is its root's (and the operator's) only.
                restrict_socket(&staged, Some(owner))?;
            }
            root.move_in(&staged, inside)
                .map_err(|e| RuntimeError::Container {
                    what: "put the Pebble socket in the root".into(),
                    source: e.into(),
                })?;
        }
        Ok(sup)
    }

    /// Deploys the charm at `source` as an app (named after the charm unless `name` is given)
    /// with one unit, applying `settings` (`key=value` by the options' types). Queues
    /// install, leader-elected, config-changed, start and pebble-ready per container.
    pub async fn deploy(
        &self,
        source: &Path,
        name: Option<&str>,
        settings: &[(String, String)],
    ) -> Result<String, RuntimeError> {
        let opts = DeployOptions {
            name: name.map(str::to_string),
            settings: settings.to_vec(),
            ..DeployOptions::default()
        };
        self.deploy_with(source, &opts).await
    }

    /// Deploys the charm at `source` as `opts` say: its name, settings, budget and number
    /// of units (unit 0 leads). Each unit gets install, leader-elected (the leader),
    /// config-changed, start and pebble-ready per container.
    pub async fn deploy_with(
        &self,
        source: &Path,
        opts: &DeployOptions,
    ) -> Result<String, RuntimeError> {
        let src = CharmSource::locate(source, &self.inner.config.target_dirs)?;
        let app_name = opts.name.clone().unwrap_or_else(|| src.meta.name.clone());
        if !valid_app_name(&app_name) {
            return Err(RuntimeError::Config(format!(
                "invalid application name {app_name:?}"
            )));
        }
        let n = opts.units.max(1);
        if n > MAX_UNITS_PER_CALL {
            return Err(RuntimeError::Config(format!(
                "cannot deploy {n} units at once: at most {MAX_UNITS_PER_CALL}"
            )));
        }
        let mut parsed = BTreeMap::new();
        for (k, v) in &opts.settings {
            parsed.insert(k.clone(), src.meta.parse_setting(k, v)?);
        }
        let limits = crate::budget::normalize_overrides(&BTreeMap::new(), &opts.limits)
            .map_err(RuntimeError::Config)?;
        let budget = self.budget_of(&limits).map_err(RuntimeError::Config)?;
        let wasm = std::fs::read(&src.wasm).map_err(|e| RuntimeError::io("read", &src.wasm, e))?;
        let mut apps = self.inner.apps.lock().await;
        if apps.contains_key(&app_name) || self.inner.broken.lock().unwrap().contains_key(&app_name)
        {
            return Err(RuntimeError::Config(format!(
                "application {app_name:?} already exists"
            )));
        }
        let charm = self.load_charm(wasm.clone()).await?;
        let stored = self.charm_path(&charm.hash);
        if !stored.exists() {
            cairn_supervisor::persist::atomic_write(&stored, &wasm)
                .map_err(|e| RuntimeError::io("write", &stored, e))?;
        }
        let record = AppRecord {
            name: app_name.clone(),
            meta: Arc::new(src.meta.clone()),
            charm_hash: charm.hash.clone(),
            settings: parsed,
            units: Vec::new(),
            next_unit: 0,
            config_generation: 0,
            removing: false,
            limits,
            leader: Some(0),
            charm_generation: 0,
        };
        let mut entry = AppEntry::new(record, charm, budget);
        // Its peer relations, then the units; the app record, written last, commits the
        // deploy (peer relations of an app never committed are deleted on open).
        let peers = self.add_peer_relations(&entry)?;
        let new: Vec<u32> = (0..n).collect();
        let joining = self.joining(&apps, &app_name, &[], &new);
        let started = match self.start_new_units(&entry, n, &joining).await {
            Ok(s) => s,
            Err(e) => {
                let _ = self.inner.relations.delete(&peers);
                return Err(e);
            }
        };
        entry.record.units = started.iter().map(|(idx, _)| *idx).collect();
        entry.record.next_unit = n;
        if let Err(e) = self.save_app(&entry.record) {
            for (_, handle) in started {
                self.discard_unit(handle, false).await;
            }
            let _ = self.inner.relations.delete(&peers);
            return Err(e);
        }
        entry.units.extend(started);
        apps.insert(app_name.clone(), entry);
        tracing::info!("deployed {app_name} with {n} unit(s)");
        Ok(app_name)
    }

    /// Starts `n` new units of `app`, numbered from its `next_unit`, each with its first
    /// events queued (`leader-elected` for the one the record names leader). Nothing is
    /// recorded in the app's record (the caller commits them there); on failure the units
    /// started are discarded and nothing of them is left.
    async fn start_new_units(
        &self,
        app: &AppEntry,
        n: u32,
        joining: &relate::Joining,
    ) -> Result<Vec<(u32, UnitHandle)>, RuntimeError> {
        let mut started = Vec::new();
        for idx in app.record.next_unit..app.record.next_unit + n {
            let rec = first_record(&app.record, idx, joining.first.get(&idx));
            let unit_dir = self.unit_dir(&app.record.name, idx);
            if unit_dir.exists() {
                discard_unit_dir(unit_dir.clone()).await;
            }
            match self.start_unit(app, idx, Some(rec)).await {
                Ok(h) => started.push((idx, h)),
                Err(e) => {
                    discard_unit_dir(unit_dir).await;
                    for (_, handle) in started {
                        self.discard_unit(handle, false).await;
                    }
                    return Err(e);
                }
            }
        }
        Ok(started)
    }

    /// Changes an app's config (`key=value` settings; `reset` keys go back to their
    /// defaults) and queues `config-changed` on every unit when anything changed.
    pub async fn set_config(
        &self,
        app: &str,
        settings: &[(String, String)],
        reset: &[String],
    ) -> Result<bool, RuntimeError> {
        let mut apps = self.inner.apps.lock().await;
        let entry = live_app(&mut apps, app)?;
        let mut next = entry.record.settings.clone();
        for (k, v) in settings {
            next.insert(k.clone(), entry.record.meta.parse_setting(k, v)?);
        }
        for k in reset {
            if !entry.record.meta.config.options.contains_key(k) {
                return Err(RuntimeError::Config(format!("unknown option {k:?}")));
            }
            next.remove(k);
        }
        let old = entry.record.meta.effective_config(&entry.record.settings);
        let new = entry.record.meta.effective_config(&next);
        let mut record = entry.record.clone();
        record.settings = next;
        if old != new {
            record.config_generation += 1;
        }
        // The app record first: a crash before the units queue `config-changed` is made
        // up for on open (their generation is behind the record's).
        self.save_app(&record)?;
        entry.record = record;
        if old == new {
            return Ok(false);
        }
        entry.view.lock().unwrap().config = new;
        for u in entry.units.values() {
            u.unit.config_changed(entry.record.config_generation);
        }
        Ok(true)
    }

    /// The budget of an app with `overrides`, checked against the engine's maxima.
    fn budget_of(&self, overrides: &BTreeMap<String, String>) -> Result<crate::Budget, String> {
        let config = &self.inner.config;
        let budget = config.budget.with_overrides(overrides)?;
        budget.check_maxima(
            config.runtime.memory_limit as u64,
            config.runtime.event_deadline,
        )?;
        Ok(budget)
    }

    /// The budget of a restored app: its overrides, or the host's defaults for all of them
    /// when they no longer fit (the host's maxima were lowered since), logged.
    fn restored_budget(&self, app: &str, overrides: &BTreeMap<String, String>) -> crate::Budget {
        self.budget_of(overrides).unwrap_or_else(|e| {
            tracing::error!("app {app}: {e}; using the host's default limits");
            self.inner.config.budget.clone()
        })
    }

    /// Changes an app's budget overrides (`key=value`; a value of `default` removes one):
    /// persisted in its record, then applied to its units' next events and at once to its
    /// containers. Returns the app's whole budget.
    pub async fn set_limits(
        &self,
        app: &str,
        settings: &[(String, String)],
    ) -> Result<BTreeMap<String, String>, RuntimeError> {
        let mut apps = self.inner.apps.lock().await;
        let entry = live_app(&mut apps, app)?;
        let overrides = crate::budget::normalize_overrides(&entry.record.limits, settings)
            .map_err(RuntimeError::Config)?;
        let budget = self.budget_of(&overrides).map_err(RuntimeError::Config)?;
        let mut record = entry.record.clone();
        record.limits = overrides;
        self.save_app(&record)?;
        entry.record = record;
        let limits = budget.container_limits();
        for u in entry.units.values() {
            for sup in u.unit.containers().values() {
                sup.set_limits(limits.clone());
            }
        }
        let shown = budget.to_map();
        let mut view = entry.view.lock().unwrap();
        view.share.set_millicores(budget.host_cpu);
        view.budget = budget;
        Ok(shown)
    }

    /// An app's budget (every key) and its limit hits so far.
    pub async fn limits(&self, app: &str) -> Result<AppLimits, RuntimeError> {
        let apps = self.inner.apps.lock().await;
        let entry = apps
            .get(app)
            .ok_or_else(|| RuntimeError::NotFound(format!("application {app:?} not found")))?;
        let view = entry.view.lock().unwrap();
        Ok(AppLimits {
            limits: view.budget.to_map(),
            overridden: entry.record.limits.keys().cloned().collect(),
            hits: view.hits.snapshot(),
        })
    }

    /// Limit hits so far, by app and limit name (what the tenant metrics expose).
    pub async fn limit_hits(&self) -> BTreeMap<String, BTreeMap<String, u64>> {
        let apps = self.inner.apps.lock().await;
        apps.iter()
            .map(|(name, e)| (name.clone(), e.view.lock().unwrap().hits.snapshot()))
            .collect()
    }

    /// An app's effective config.
    pub async fn get_config(
        &self,
        app: &str,
    ) -> Result<BTreeMap<String, ConfigValue>, RuntimeError> {
        let apps = self.inner.apps.lock().await;
        let entry = apps
            .get(app)
            .ok_or_else(|| RuntimeError::NotFound(format!("application {app:?} not found")))?;
        Ok(entry.record.meta.effective_config(&entry.record.settings))
    }

    /// Removes an app: marks its record `removing`, interrupts each unit's running event and
    /// replaces its queue with `stop` and `remove` (short deadlines, see
    /// `unit::REMOVAL_HOOK_DEADLINE`), waits for them, stops every service, deletes the
    /// units' state and last the app record. An app in error (its record or charm unreadable) is cleared: whatever
    /// its units left running is terminated and its files deleted.
    pub async fn remove(&self, app: &str) -> Result<(), RuntimeError> {
        let (units, broken_units) = {
            let mut apps = self.inner.apps.lock().await;
            if !apps.contains_key(app) {
                // The name stays taken (a deploy of it is refused) until the files are gone.
                let units = self
                    .inner
                    .broken
                    .lock()
                    .unwrap()
                    .get(app)
                    .map(|b| b.units.clone());
                drop(apps);
                let Some(units) = units else {
                    return Err(RuntimeError::NotFound(format!(
                        "application {app:?} not found"
                    )));
                };
                for idx in units.into_iter().chain(self.unit_dirs_of(app)) {
                    discard_unit_dir(self.unit_dir(app, idx)).await;
                }
                let apps = self.inner.apps.lock().await;
                self.delete_app_record(app)?;
                self.inner.broken.lock().unwrap().remove(app);
                self.tidy_relations(&apps);
                tracing::info!("removed {app} (it was in error)");
                return Ok(());
            }
            let entry = live_app(&mut apps, app)?;
            let mut record = entry.record.clone();
            record.removing = true;
            self.save_app(&record)?;
            entry.record = record;
            let mut leaving = self.app_leaving(&apps, app);
            let entry = apps
                .get_mut(app)
                .ok_or_else(|| RuntimeError::NotFound(format!("application {app:?} not found")))?;
            let units = std::mem::take(&mut entry.units);
            for (idx, u) in &units {
                u.unit
                    .begin_removal(leaving.remove(idx).unwrap_or_default());
            }
            (units, std::mem::take(&mut entry.broken_units))
        };
        for (_, u) in units {
            self.discard_unit(u, true).await;
        }
        for idx in broken_units.keys() {
            discard_unit_dir(self.unit_dir(app, *idx)).await;
        }
        let mut apps = self.inner.apps.lock().await;
        self.delete_app_record(app)?;
        apps.remove(app);
        self.tidy_relations(&apps);
        self.inner.metrics.forget(app);
        tracing::info!("removed {app}");
        Ok(())
    }

    /// Every tenant's counters and its containers' resource use, as an OpenMetrics page.
    pub async fn metrics(&self) -> String {
        let apps = self.inner.apps.lock().await;
        let mut workloads = Vec::new();
        for (app, entry) in apps.iter() {
            for u in entry.units.values() {
                let unit = u.unit.with_record(|r| r.name.clone());
                for (container, sup) in u.unit.containers() {
                    let Some(usage) = sup.workload_usage() else {
                        continue;
                    };
                    workloads.push(super::metrics::WorkloadUsage {
                        app: app.clone(),
                        unit: unit.clone(),
                        container: container.clone(),
                        usage,
                    });
                }
            }
        }
        drop(apps);
        let hits = self.limit_hits().await;
        super::metrics::render(&self.inner.metrics.snapshot(), &hits, &workloads)
    }

    /// Deletes `<dir>/apps/<app>.json` (durably).
    fn delete_app_record(&self, app: &str) -> Result<(), RuntimeError> {
        let path = self
            .inner
            .config
            .dir
            .join("apps")
            .join(format!("{app}.json"));
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(RuntimeError::io("remove", &path, e)),
        }
        sync_dir(path.parent());
        Ok(())
    }

    /// Queues an event on a unit (`app/N`).
    pub async fn emit(&self, unit: &str, event: Event) -> Result<(), RuntimeError> {
        let apps = self.inner.apps.lock().await;
        find_unit(&apps, unit)?.enqueue(event);
        Ok(())
    }

    /// The model's status.
    pub async fn status(&self) -> StatusReport {
        self.status_of(&[]).await
    }

    /// The status of the applications named in `only` (every one when empty), as `juju
    /// status APP...` narrows it: an operator (or a probe) watching one tenant pays for
    /// that tenant's report only, not for every other tenant's services. Relations are those
    /// with an end among them; a name matching nothing gives nothing.
    pub async fn status_of(&self, only: &[String]) -> StatusReport {
        let wanted = |app: &str| only.is_empty() || only.iter().any(|a| a == app);
        let apps = self.inner.apps.lock().await;
        let mut out = Vec::new();
        for (name, broken) in self.inner.broken.lock().unwrap().iter() {
            if !wanted(name) {
                continue;
            }
            out.push(AppReport {
                name: name.clone(),
                charm: broken.charm.clone(),
                status: WorkloadStatus::Error(broken.reason.clone()),
                units: broken
                    .units
                    .iter()
                    .map(|idx| broken_unit_report(name, *idx, &broken.reason))
                    .collect(),
            });
        }
        for (name, entry) in apps.iter().filter(|(name, _)| wanted(name)) {
            let mut units = Vec::new();
            let mut app_status = WorkloadStatus::Unknown;
            for u in entry.units.values() {
                let (name, status, leader, leader_app_status, queued) = u.unit.with_record(|r| {
                    (
                        r.name.clone(),
                        r.display_status(),
                        r.leader,
                        r.app_status.clone(),
                        r.queue.len(),
                    )
                });
                if leader {
                    app_status = leader_app_status;
                }
                let containers = u
                    .unit
                    .containers()
                    .iter()
                    .map(|(c, sup)| ContainerReport {
                        name: c.clone(),
                        services: sup.services(&[]).into_iter().map(Into::into).collect(),
                    })
                    .collect();
                units.push(UnitReport {
                    name,
                    status,
                    leader,
                    queued,
                    containers,
                });
            }
            for (idx, reason) in &entry.broken_units {
                units.push(broken_unit_report(name, *idx, reason));
            }
            units.sort_by_key(|u| unit_index(&u.name));
            if entry.record.removing {
                app_status = WorkloadStatus::Maintenance("removing".into());
            }
            if app_status == WorkloadStatus::Unknown {
                // As Juju: without a status set by the leader, the app shows its units'
                // most severe status.
                app_status = units
                    .iter()
                    .map(|u| u.status.clone())
                    .max_by_key(WorkloadStatus::severity)
                    .unwrap_or_default();
            }
            out.push(AppReport {
                name: name.clone(),
                charm: entry.record.meta.name.clone(),
                status: app_status,
                units,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        let end_wanted = |end: &str| wanted(end.split(':').next().unwrap_or(end));
        let mut relations = self.inner.relations.report();
        relations.retain(|r| end_wanted(&r.provider) || end_wanted(&r.requirer));
        StatusReport {
            model: self.inner.config.model.clone(),
            apps: out,
            relations,
        }
    }

    /// A unit's event history, newest last (at most `n` entries).
    pub async fn events(
        &self,
        unit: &str,
        n: Option<usize>,
    ) -> Result<Vec<HistoryEntry>, RuntimeError> {
        let apps = self.inner.apps.lock().await;
        let history = find_unit(&apps, unit)?.history();
        let skip = n.map_or(0, |n| history.len().saturating_sub(n));
        Ok(history.into_iter().skip(skip).collect())
    }

    /// Queues an action on a unit after checking its parameters against the charm's
    /// `actions:` schema (a bad parameter is refused before the charm runs).
    pub async fn run_action(
        &self,
        unit: &str,
        action: &str,
        settings: &[(String, String)],
    ) -> Result<ActionRecord, RuntimeError> {
        let apps = self.inner.apps.lock().await;
        let target = find_unit(&apps, unit)?;
        let app = unit.split_once('/').map(|(a, _)| a).unwrap_or(unit);
        let meta = &apps[app].record.meta;
        let params = crate::actions::validate_params(meta, action, settings)?;
        let mut rec = self.inner.actions.create(unit, action, params.clone())?;
        let queued = target.try_enqueue(Event::Action {
            id: rec.id.clone(),
            name: action.to_string(),
            params_json: params.to_string(),
        });
        if let Err(e) = queued {
            // The run is recorded as failed: it will never be delivered.
            rec.status = crate::ActionStatus::Failed;
            rec.message = e.clone();
            rec.completed = crate::now();
            let _ = self.inner.actions.save(&rec);
            return Err(RuntimeError::Config(e));
        }
        Ok(rec)
    }

    /// An action run's record.
    pub fn show_action(&self, id: &str) -> Result<ActionRecord, RuntimeError> {
        self.inner.actions.get(id)
    }

    /// Waits (up to `timeout`) for an action run to finish; returns its record.
    pub async fn wait_action(
        &self,
        id: &str,
        timeout: Duration,
    ) -> Result<ActionRecord, RuntimeError> {
        self.inner.actions.wait(id, timeout).await
    }

    /// A unit's container supervisor (`app/N`, container name).
    pub async fn container(&self, unit: &str, container: &str) -> Result<Supervisor, RuntimeError> {
        let apps = self.inner.apps.lock().await;
        let target = find_unit(&apps, unit)?;
        target.containers().get(container).cloned().ok_or_else(|| {
            RuntimeError::NotFound(format!("unit {unit} has no container {container:?}"))
        })
    }

    /// Stops the host cleanly: unit actors end (their queues stay persisted) and every
    /// service of every container is stopped.
    pub async fn shutdown(&self) {
        let mut apps = self.inner.apps.lock().await;
        for entry in apps.values_mut() {
            for u in entry.units.values_mut() {
                u.unit.abort();
            }
            for u in entry.units.values_mut() {
                // Ended, and no longer writing its record.
                u.unit.stop().await;
            }
            for u in entry.units.values_mut() {
                u.stop_apis();
                for sup in u.unit.containers().values() {
                    sup.stop_all().await;
                }
            }
        }
    }
}

/// The unit named `app/N`.
fn find_unit<'a>(
    apps: &'a BTreeMap<String, AppEntry>,
    unit: &str,
) -> Result<&'a Unit, RuntimeError> {
    let (app, idx) = parse_unit_name(unit)
        .ok_or_else(|| RuntimeError::Config(format!("invalid unit name {unit:?}")))?;
    apps.get(app)
        .and_then(|e| e.units.get(&idx))
        .map(|u| &u.unit)
        .ok_or_else(|| RuntimeError::NotFound(format!("unit {unit:?} not found")))
}

/// The app that runs (not one being removed) named `app`.
fn live_app<'a>(
    apps: &'a mut BTreeMap<String, AppEntry>,
    app: &str,
) -> Result<&'a mut AppEntry, RuntimeError> {
    let entry = apps
        .get_mut(app)
        .ok_or_else(|| RuntimeError::NotFound(format!("application {app:?} not found")))?;
    if entry.record.removing {
        return Err(RuntimeError::Config(format!(
            "application {app:?} is being removed"
        )));
    }
    Ok(entry)
}

/// Juju's unit name, `<app>/<n>` (`n` without leading zeros): the app and the number.
fn parse_unit_name(unit: &str) -> Option<(&str, u32)> {
    let (app, n) = unit.split_once('/')?;
    Some((app, parse_index(n)?)).filter(|(a, _)| valid_app_name(a))
}

/// A unit number: digits, no sign, no leading zero.
fn parse_index(n: &str) -> Option<u32> {
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) || (n.len() > 1 && n.starts_with('0'))
    {
        return None;
    }
    n.parse().ok()
}

/// A unit directory's name, `<app>-<n>`: the app and the number.
fn parse_unit_dir(name: &str) -> Option<(&str, u32)> {
    let (app, n) = name.rsplit_once('-')?;
    Some((app, parse_index(n)?)).filter(|(a, _)| valid_app_name(a))
}

/// The number of a unit named `app/N`, for ordering.
fn unit_index(unit: &str) -> u32 {
    parse_unit_name(unit).map_or(u32::MAX, |(_, i)| i)
}

/// How a unit that could not be loaded shows in the status.
fn broken_unit_report(app: &str, idx: u32, reason: &str) -> UnitReport {
    UnitReport {
        name: format!("{app}/{idx}"),
        status: WorkloadStatus::Error(reason.to_string()),
        leader: false,
        queued: 0,
        containers: Vec::new(),
    }
}

/// An error with its causes, `cannot X: reason`, as the status shows it.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Terminates what the containers of the unit in `dir` left running (per the records of
/// their process groups).
fn terminate_left_in(dir: &Path) {
    let Ok(containers) = std::fs::read_dir(dir.join("containers")) else {
        return;
    };
    for c in containers.flatten() {
        let left = cairn_supervisor::groups::terminate_recorded(&c.path());
        if !left.is_empty() {
            tracing::warn!(
                "terminated services {left:?} left running in {}",
                c.path().display()
            );
        }
    }
}

/// Makes an API socket reachable by root (and, when given, by `owner`, its uid and gid)
/// only: mode 0600.
fn restrict_socket(socket: &Path, owner: Option<u32>) -> Result<(), RuntimeError> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(id) = owner {
        std::os::unix::fs::chown(socket, Some(id), Some(id))
            .map_err(|e| RuntimeError::io("chown", socket, e))?;
    }
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| RuntimeError::io("chmod", socket, e))
}

/// Terminates what a unit's containers left running and deletes its directory (retried
/// a few times, in case something was still writing into it).
async fn discard_unit_dir(dir: PathBuf) {
    let done = tokio::task::spawn_blocking(move || {
        terminate_left_in(&dir);
        for attempt in 1..=5 {
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(e) if attempt == 5 => {
                    tracing::error!("cannot remove {}: {e}", dir.display());
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20 * attempt)),
            }
        }
        sync_dir(dir.parent());
    })
    .await;
    if let Err(e) = done {
        tracing::error!("cannot remove a unit directory: {e}");
    }
}

/// Makes a directory's entries durable (after a create, rename or delete in it).
fn sync_dir(dir: Option<&Path>) {
    if let Some(d) = dir
        && let Ok(f) = std::fs::File::open(d)
    {
        let _ = f.sync_all();
    }
}

mod refresh;
mod relate;
mod scale;
#[cfg(test)]
mod test_support;

#[cfg(test)]
mod tests {
    #[test]
    fn unit_names_and_directories_follow_juju_rules() {
        assert_eq!(super::parse_unit_name("web/0"), Some(("web", 0)));
        assert_eq!(super::parse_unit_name("my-app/12"), Some(("my-app", 12)));
        for bad in [
            "web/+1", "web/01", "web/-1", "web/", "/0", "../x/0", "web/0/1", "Web/0",
        ] {
            assert_eq!(super::parse_unit_name(bad), None, "{bad}");
        }
        assert_eq!(super::parse_unit_dir("my-app-3"), Some(("my-app", 3)));
        assert_eq!(super::parse_unit_dir("web-2b-0"), Some(("web-2b", 0)));
        assert_eq!(super::parse_unit_dir("web"), None);
        assert_eq!(super::parse_unit_dir(".web-0.tmp"), None);
    }

    #[test]
    fn app_names_follow_juju_rules() {
        for ok in ["web", "pause", "my-app", "a1", "web-2b"] {
            assert!(super::valid_app_name(ok), "{ok}");
        }
        for bad in ["", "Web", "1web", "web-", "web--x", "web-2", "we_b"] {
            assert!(!super::valid_app_name(bad), "{bad}");
        }
    }

    mod recovery {
        //! Opening a state directory an interrupted or damaged run left: a real host, the
        //! real `misbehave` guest, real containers (no services are started by it).

        use std::path::PathBuf;

        use cairn_testutil::TempDir;

        use super::super::*;
        use crate::actions::ActionStatus;

        const META: &str = "name: misbehave\ncontainers:\n  work:\n    resource: r\nconfig:\n  options:\n    mode:\n      type: string\n      default: ok\n    ratio:\n      type: float\n      default: 0.5\n";

        /// A charm directory (`charmcraft.yaml` with `meta`, the misbehave component).
        fn charm_dir(dir: &TempDir, meta: &str) -> PathBuf {
            let c = dir.path().join("charm");
            std::fs::create_dir_all(&c).unwrap();
            std::fs::write(c.join("charmcraft.yaml"), meta).unwrap();
            std::fs::copy(cairn_test_programs::MISBEHAVE_WASM, c.join("charm.wasm")).unwrap();
            c
        }

        async fn open(state: &Path) -> Result<Host, RuntimeError> {
            let mut config = HostConfig::new(state);
            config.runtime.max_instances = 4;
            Host::open(config).await
        }

        /// A host on `dir/state` with apps `names` deployed, shut down again.
        async fn deployed(dir: &TempDir, names: &[&str]) -> PathBuf {
            let state = dir.path().join("state");
            let host = open(&state).await.unwrap();
            let charm = charm_dir(dir, META);
            for n in names {
                host.deploy(&charm, Some(n), &[]).await.unwrap();
            }
            host.shutdown().await;
            state
        }

        fn edit_record(state: &Path, app: &str, f: impl FnOnce(&mut serde_json::Value)) {
            let path = state.join("apps").join(format!("{app}.json"));
            let mut v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            f(&mut v);
            std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
        }

        /// Each unit's name and status, as `cairn status` lists them.
        async fn statuses(host: &Host) -> Vec<(String, WorkloadStatus)> {
            let st = host.status().await;
            st.apps
                .iter()
                .flat_map(|a| a.units.iter().map(|u| (u.name.clone(), u.status.clone())))
                .collect()
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_missing_or_garbage_unit_record_puts_only_that_unit_in_error() {
            let dir = TempDir::new("unit-record");
            let state = deployed(&dir, &["gone", "garbage", "fine"]).await;
            std::fs::remove_file(state.join("units/gone-0/unit.json")).unwrap();
            std::fs::write(state.join("units/garbage-0/unit.json"), b"{\"name\": 1").unwrap();
            let host = open(&state).await.expect("the host opens");
            let st = statuses(&host).await;
            assert_eq!(st.len(), 3, "{st:?}");
            let reason = |u: &str| match &st.iter().find(|(n, _)| n == u).unwrap().1 {
                WorkloadStatus::Error(m) => m.clone(),
                other => panic!("{u} is {other:?}"),
            };
            assert!(reason("gone/0").contains("unit.json"), "{st:?}");
            assert!(reason("garbage/0").contains("cannot parse"), "{st:?}");
            assert!(
                !matches!(
                    st.iter().find(|(n, _)| n == "fine/0").unwrap().1,
                    WorkloadStatus::Error(_)
                ),
                "{st:?}"
            );
            // The healthy app still takes events.
            host.emit("fine/0", Event::UpdateStatus).await.unwrap();
            // The damaged files are left for the operator; removing the app clears them.
            assert!(state.join("units/garbage-0/unit.json").exists());
            host.remove("garbage").await.unwrap();
            assert!(!state.join("units/garbage-0").exists());
            host.shutdown().await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_garbage_app_record_or_missing_charm_puts_only_that_app_in_error() {
            let dir = TempDir::new("app-record");
            let state = deployed(&dir, &["garbage", "nocharm", "fine"]).await;
            std::fs::write(state.join("apps/garbage.json"), b"\x00\x01 not json").unwrap();
            edit_record(&state, "nocharm", |v| v["charm_hash"] = "00ff".into());
            let host = open(&state).await.expect("the host opens");
            let st = host.status().await;
            let app = |n: &str| st.apps.iter().find(|a| a.name == n).unwrap().clone();
            assert_eq!(app("garbage").status.name(), "error", "{st:?}");
            assert!(
                app("garbage").status.message().contains("garbage.json"),
                "{st:?}"
            );
            assert_eq!(app("garbage").units[0].name, "garbage/0");
            assert_eq!(app("nocharm").status.name(), "error", "{st:?}");
            assert!(
                app("nocharm").status.message().contains("00ff.wasm"),
                "{st:?}"
            );
            assert_ne!(app("fine").status.name(), "error", "{st:?}");
            // The unit directories of an app in error are not mistaken for debris.
            assert!(state.join("units/garbage-0").exists());
            // A broken app's name stays taken until it is removed; removing it clears it.
            let charm = charm_dir(&dir, META);
            assert!(host.deploy(&charm, Some("garbage"), &[]).await.is_err());
            host.remove("garbage").await.unwrap();
            assert!(!state.join("apps/garbage.json").exists());
            assert!(!state.join("units/garbage-0").exists());
            host.deploy(&charm, Some("garbage"), &[]).await.unwrap();
            host.shutdown().await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn unit_directories_no_app_record_names_are_deleted_on_open() {
            let dir = TempDir::new("debris");
            let state = deployed(&dir, &["half", "fine"]).await;
            // A deploy killed before its commit point: the unit, no app record.
            std::fs::remove_file(state.join("apps/half.json")).unwrap();
            let host = open(&state).await.unwrap();
            assert!(!state.join("units/half-0").exists());
            assert!(state.join("units/fine-0").exists());
            assert_eq!(statuses(&host).await.len(), 1);
            // The name is free again.
            host.deploy(&charm_dir(&dir, META), Some("half"), &[])
                .await
                .unwrap();
            host.shutdown().await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn an_action_recorded_but_never_queued_fails_on_open_and_a_corrupt_one_is_an_error() {
            let dir = TempDir::new("actions");
            let state = dir.path().join("state");
            let host = open(&state).await.unwrap();
            let meta = format!(
                "{META}actions:\n  echo:\n    params:\n      message:\n        type: string\n"
            );
            host.deploy(&charm_dir(&dir, &meta), Some("a"), &[])
                .await
                .unwrap();
            host.shutdown().await;
            drop(host);
            // As a kill between recording the run and queueing it leaves it: pending, in no
            // unit's queue.
            let store = ActionStore::open(state.join("actions")).unwrap();
            let orphan = store.create("a/0", "echo", serde_json::json!({})).unwrap();
            std::fs::write(state.join("actions/77.json"), b"{\"id\": \"77\", \"unit").unwrap();
            drop(store);
            let host = open(&state).await.expect("the host opens");
            let rec = host.show_action(&orphan.id).unwrap();
            assert_eq!(rec.status, ActionStatus::Failed, "{rec:?}");
            assert_eq!(rec.message, "the host stopped before the action was queued");
            let e = host.show_action("77").unwrap_err();
            assert!(e.to_string().starts_with("cannot parse"), "{e}");
            assert!(e.to_string().contains("77.json"), "{e}");
            // New runs are numbered after every record, readable or not.
            let next = host.run_action("a/0", "echo", &[]).await.unwrap();
            assert_eq!(next.id, "78");
            host.shutdown().await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_config_change_its_units_never_queued_is_delivered_after_open() {
            let dir = TempDir::new("config-gap");
            let state = deployed(&dir, &["c"]).await;
            // As a kill between writing the app record and queueing config-changed leaves
            // it: the record has the new setting, the unit's queue knows nothing.
            edit_record(&state, "c", |v| {
                v["settings"] = serde_json::json!({"mode": "defer"});
                v["config_generation"] = 1.into();
            });
            let host = open(&state).await.unwrap();
            let delivered = cairn_testutil::eventually(Duration::from_secs(30), || {
                let apps = host.inner.apps.try_lock().ok()?;
                let unit = &apps["c"].units[&0].unit;
                let history = unit.history();
                unit.with_record(|r| {
                    (r.queue.is_empty()
                        && history
                            .iter()
                            .filter(|h| h.event == "config-changed")
                            .count()
                            >= 2)
                        .then_some(r.config_generation)
                })
            });
            assert_eq!(delivered, Some(1), "no config-changed after open");
            host.shutdown().await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_record_with_a_container_name_outside_the_unit_is_in_error_on_open() {
            let dir = TempDir::new("old-escape");
            let state = deployed(&dir, &["esc"]).await;
            edit_record(&state, "esc", |v| {
                v["meta"]["containers"] = serde_json::json!({"../../../../escaped": {}});
            });
            let host = open(&state).await.expect("the host opens");
            let st = host.status().await;
            assert_eq!(st.apps[0].status.name(), "error", "{st:?}");
            assert!(
                st.apps[0]
                    .status
                    .message()
                    .contains("invalid container name"),
                "{st:?}"
            );
            assert!(!dir.path().join("escaped").exists());
            host.shutdown().await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn an_app_marked_removing_is_removed_on_open() {
            let dir = TempDir::new("removing");
            let state = deployed(&dir, &["going", "fine"]).await;
            edit_record(&state, "going", |v| v["removing"] = true.into());
            let host = open(&state).await.unwrap();
            let st = statuses(&host).await;
            assert_eq!(
                st.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
                ["fine/0"]
            );
            assert!(!state.join("apps/going.json").exists());
            assert!(!state.join("units/going-0").exists());
            host.shutdown().await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn records_of_older_versions_load_and_a_null_setting_is_unset() {
            let dir = TempDir::new("old-record");
            let state = deployed(&dir, &["old"]).await;
            // As an older version wrote it: no `removing`, a NaN stored as null.
            edit_record(&state, "old", |v| {
                v["settings"] = serde_json::json!({"ratio": null, "mode": "defer"});
                v.as_object_mut().unwrap().remove("removing");
            });
            let host = open(&state).await.expect("the host opens");
            let config = host.get_config("old").await.unwrap();
            assert_eq!(config["ratio"], ConfigValue::Float(0.5));
            assert_eq!(config["mode"], ConfigValue::String("defer".into()));
            host.shutdown().await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_float_setting_json_cannot_hold_is_refused_and_nothing_changes() {
            let dir = TempDir::new("nan");
            let state = deployed(&dir, &["f"]).await;
            let host = open(&state).await.unwrap();
            for bad in ["nan", "inf", "-inf"] {
                let e = host
                    .set_config("f", &[("ratio".into(), bad.into())], &[])
                    .await
                    .unwrap_err();
                assert_eq!(
                    e.to_string(),
                    format!("option \"ratio\" expected float, got {bad:?}")
                );
            }
            host.shutdown().await;
            drop(host);
            let host = open(&state).await.expect("the host opens again");
            assert_eq!(
                host.get_config("f").await.unwrap()["ratio"],
                ConfigValue::Float(0.5)
            );
            host.shutdown().await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn container_names_that_would_leave_the_state_directory_are_refused() {
            let dir = TempDir::new("escape");
            let state = dir.path().join("state");
            let host = open(&state).await.unwrap();
            for (i, bad) in ["../../../../escaped", "/tmp/escaped-abs"]
                .iter()
                .enumerate()
            {
                let meta = format!("name: evil\ncontainers:\n  {bad:?}:\n    resource: r\n");
                let charm = charm_dir(&dir, &meta);
                let e = host
                    .deploy(&charm, Some(&format!("evil{}", ["a", "b"][i])), &[])
                    .await
                    .unwrap_err();
                assert!(e.to_string().starts_with("invalid container name"), "{e}");
            }
            assert!(!dir.path().join("escaped").exists());
            assert!(!Path::new("/tmp/escaped-abs").exists());
            assert_eq!(std::fs::read_dir(state.join("units")).unwrap().count(), 0);
            assert_eq!(std::fs::read_dir(state.join("apps")).unwrap().count(), 0);
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_deploy_that_fails_leaves_no_app_and_the_host_opens_again() {
            let dir = TempDir::new("failed-deploy");
            // Deep enough that the container's socket path is longer than a unix socket
            // address holds (unless the API server binds such paths some other way).
            let state = dir.path().join("s".repeat(60));
            let host = open(&state).await.unwrap();
            let charm = charm_dir(&dir, META);
            let deployed = host.deploy(&charm, Some("long"), &[]).await;
            if deployed.is_err() {
                assert!(!state.join("apps/long.json").exists());
                assert!(!state.join("units/long-0").exists());
            }
            host.shutdown().await;
            drop(host);
            let host = open(&state).await.expect("the host opens");
            let st = statuses(&host).await;
            match deployed {
                Err(_) => assert!(st.is_empty(), "{st:?}"),
                Ok(_) => assert_eq!(st.len(), 1, "{st:?}"),
            }
            host.shutdown().await;
        }
    }
}
