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
//! <dir>/units/<app>-<n>/unit.log      charm log and guest output
//! <dir>/units/<app>-<n>/containers/<name>/   the container's $PEBBLE (layers, state, socket)
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
            target_dirs: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct AppRecord {
    name: String,
    meta: CharmMeta,
    charm_hash: String,
    settings: BTreeMap<String, ConfigValue>,
    units: Vec<u32>,
    next_unit: u32,
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
    actions: Arc<ActionStore>,
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
    /// for every container.
    pub async fn open(config: HostConfig) -> Result<Self, RuntimeError> {
        for sub in ["apps", "units", "charms"] {
            let p = config.dir.join(sub);
            std::fs::create_dir_all(&p).map_err(|e| RuntimeError::io("create", &p, e))?;
        }
        let rt_config = config.runtime.clone();
        let runtime = tokio::task::spawn_blocking(move || Runtime::new(rt_config))
            .await
            .map_err(|e| RuntimeError::Engine(e.into()))??;
        let actions = Arc::new(ActionStore::open(config.dir.join("actions"))?);
        let host = Host {
            inner: Arc::new(HostInner {
                config,
                runtime: Arc::new(runtime),
                apps: tokio::sync::Mutex::new(BTreeMap::new()),
                actions,
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
            .collect();
        entries.sort();
        let mut apps = self.inner.apps.lock().await;
        for path in entries {
            let data = std::fs::read(&path).map_err(|e| RuntimeError::io("read", &path, e))?;
            let record: AppRecord =
                serde_json::from_slice(&data).map_err(|source| RuntimeError::Record {
                    action: "parse",
                    path: path.clone(),
                    source,
                })?;
            let wasm_path = self.charm_path(&record.charm_hash);
            let wasm =
                std::fs::read(&wasm_path).map_err(|e| RuntimeError::io("read", &wasm_path, e))?;
            let charm = self.load_charm(wasm).await?;
            let view = Arc::new(Mutex::new(AppView {
                config: record.meta.effective_config(&record.settings),
                charm: Arc::new(charm),
            }));
            let mut entry = AppEntry {
                record: record.clone(),
                view,
                units: BTreeMap::new(),
            };
            for idx in &record.units {
                let handle = self.start_unit(&entry, *idx, None).await?;
                for c in handle.unit.containers().keys() {
                    handle.unit.enqueue(Event::PebbleReady {
                        container: c.clone(),
                    });
                }
                entry.units.insert(*idx, handle);
            }
            tracing::info!(
                "restored app {} with {} unit(s)",
                record.name,
                entry.units.len()
            );
            apps.insert(record.name.clone(), entry);
        }
        Ok(())
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

    /// Opens (or creates, from `fresh`) a unit: its record, its containers, its actor.
    async fn start_unit(
        &self,
        app: &AppEntry,
        idx: u32,
        fresh: Option<UnitRecord>,
    ) -> Result<UnitHandle, RuntimeError> {
        let name = format!("{}/{idx}", app.record.name);
        let dir = self.unit_dir(&app.record.name, idx);
        std::fs::create_dir_all(&dir).map_err(|e| RuntimeError::io("create", &dir, e))?;
        let record = match fresh {
            Some(r) => r,
            None => UnitRecord::load(&dir)?,
        };
        let mut containers = BTreeMap::new();
        let mut apis = Vec::new();
        for c in app.record.meta.containers.keys() {
            let sup = self.open_container(&name, &dir, c, &mut apis).await?;
            containers.insert(c.clone(), sup);
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
        };
        let unit = Unit::start(settings, record, self.inner.runtime.clone());
        Ok(UnitHandle { unit, apis })
    }

    /// Opens one container of a unit: its supervisor on `<unit dir>/containers/<name>`,
    /// its Pebble API on the container's socket and, in an isolated container, on the
    /// socket inside its root (the servers are added to `apis`).
    async fn open_container(
        &self,
        unit: &str,
        unit_dir: &Path,
        c: &str,
        apis: &mut Vec<cairn_api::ServerHandle>,
    ) -> Result<Supervisor, RuntimeError> {
        let cdir = unit_dir.join("containers").join(c);
        let socket = cdir.join(".pebble.socket");
        let isolated = self.inner.config.containers == ContainerMode::Isolated;
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
        apis.push(serve(socket).await?);
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
        let src = CharmSource::locate(source, &self.inner.config.target_dirs)?;
        let app_name = name.unwrap_or(&src.meta.name).to_string();
        if !valid_app_name(&app_name) {
            return Err(RuntimeError::Config(format!(
                "invalid application name {app_name:?}"
            )));
        }
        let mut parsed = BTreeMap::new();
        for (k, v) in settings {
            parsed.insert(k.clone(), src.meta.parse_setting(k, v)?);
        }
        let wasm = std::fs::read(&src.wasm).map_err(|e| RuntimeError::io("read", &src.wasm, e))?;
        let mut apps = self.inner.apps.lock().await;
        if apps.contains_key(&app_name) {
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
            meta: src.meta.clone(),
            charm_hash: charm.hash.clone(),
            settings: parsed,
            units: vec![0],
            next_unit: 1,
        };
        let view = Arc::new(Mutex::new(AppView {
            config: record.meta.effective_config(&record.settings),
            charm: Arc::new(charm),
        }));
        self.save_app(&record)?;
        let mut entry = AppEntry {
            record,
            view,
            units: BTreeMap::new(),
        };
        let mut queue: std::collections::VecDeque<Event> = [
            Event::Install,
            Event::LeaderElected,
            Event::ConfigChanged,
            Event::Start,
        ]
        .into();
        for c in src.meta.containers.keys() {
            queue.push_back(Event::PebbleReady {
                container: c.clone(),
            });
        }
        let rec = UnitRecord {
            name: format!("{app_name}/0"),
            leader: true,
            queue,
            ..Default::default()
        };
        let handle = self.start_unit(&entry, 0, Some(rec)).await?;
        entry.units.insert(0, handle);
        apps.insert(app_name.clone(), entry);
        tracing::info!("deployed {app_name}");
        Ok(app_name)
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
        let entry = apps
            .get_mut(app)
            .ok_or_else(|| RuntimeError::NotFound(format!("application {app:?} not found")))?;
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
        entry.record.settings = next;
        self.save_app(&entry.record)?;
        if old == new {
            return Ok(false);
        }
        entry.view.lock().unwrap().config = new;
        for u in entry.units.values() {
            u.unit.enqueue(Event::ConfigChanged);
        }
        Ok(true)
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

    /// Removes an app: queues `stop` and `remove` on each unit, waits for them, stops every
    /// service and deletes the units' state.
    pub async fn remove(&self, app: &str) -> Result<(), RuntimeError> {
        let entry = {
            let mut apps = self.inner.apps.lock().await;
            apps.remove(app)
                .ok_or_else(|| RuntimeError::NotFound(format!("application {app:?} not found")))?
        };
        for u in entry.units.values() {
            u.unit.begin_removal();
        }
        for (_, mut u) in entry.units {
            u.unit.finish_removal().await;
            u.stop_apis();
            for sup in u.unit.containers().values() {
                sup.stop_all().await;
            }
            let _ = std::fs::remove_dir_all(u.unit.dir());
        }
        let path = self
            .inner
            .config
            .dir
            .join("apps")
            .join(format!("{app}.json"));
        let _ = std::fs::remove_file(&path);
        tracing::info!("removed {app}");
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
        let apps = self.inner.apps.lock().await;
        let mut out = Vec::new();
        for (name, entry) in apps.iter() {
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
        StatusReport {
            model: self.inner.config.model.clone(),
            apps: out,
        }
    }

    /// A unit's event history, newest last (at most `n` entries).
    pub async fn events(
        &self,
        unit: &str,
        n: Option<usize>,
    ) -> Result<Vec<HistoryEntry>, RuntimeError> {
        let apps = self.inner.apps.lock().await;
        Ok(find_unit(&apps, unit)?.with_record(|rec| {
            let skip = n.map_or(0, |n| rec.history.len().saturating_sub(n));
            rec.history.iter().skip(skip).cloned().collect()
        }))
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
        let rec = self.inner.actions.create(unit, action, params.clone())?;
        target.enqueue(Event::Action {
            id: rec.id.clone(),
            name: action.to_string(),
            params_json: params.to_string(),
        });
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
    let (app, idx) = unit
        .split_once('/')
        .and_then(|(a, i)| i.parse::<u32>().ok().map(|i| (a, i)))
        .ok_or_else(|| RuntimeError::Config(format!("invalid unit name {unit:?}")))?;
    apps.get(app)
        .and_then(|e| e.units.get(&idx))
        .map(|u| &u.unit)
        .ok_or_else(|| RuntimeError::NotFound(format!("unit {unit:?} not found")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn app_names_follow_juju_rules() {
        for ok in ["web", "pause", "my-app", "a1", "web-2b"] {
            assert!(super::valid_app_name(ok), "{ok}");
        }
        for bad in ["", "Web", "1web", "web-", "web--x", "web-2", "we_b"] {
            assert!(!super::valid_app_name(bad), "{bad}");
        }
    }
}
