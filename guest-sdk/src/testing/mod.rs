//! Unit-testing charms natively, without a host: state in, event, state out.
//!
//! A [`Harness`] holds a fake unit (names, leadership, config, status, stored state, log)
//! and fake containers that record layers and track services, and runs your [`Charm`]
//! against them with the same code path the host uses. Like the host, a failed event's
//! status and stored-state changes are discarded, and deferred events are re-delivered
//! before the next one. Only available outside `wasm32` (in `cargo test`).
//!
//! ```
//! use cairn_sdk::prelude::*;
//! use cairn_sdk::testing::Harness;
//!
//! #[derive(Default)]
//! struct Hello;
//!
//! impl Charm for Hello {
//!     fn on_pebble_ready(&mut self, ctx: &mut Context, c: Container) -> Result<()> {
//!         let greeting = ctx.config().require_str("greeting")?;
//!         let svc = Service::new().command("sleep 1000").enabled().env("GREETING", greeting);
//!         c.add_layer("hello", &Layer::new().service("hello", svc), true)?;
//!         c.replan()?;
//!         ctx.set_unit_status(Status::active(""));
//!         Ok(())
//!     }
//! }
//!
//! let mut h = Harness::<Hello>::new("hello")
//!     .with_container("hello")
//!     .with_config("greeting", "hi");
//! h.pebble_ready("hello").unwrap();
//! assert_eq!(h.unit_status(), &Status::active(""));
//! let c = h.container("hello");
//! assert!(c.is_running("hello"));
//! assert_eq!(c.plan().services["hello"].environment["GREETING"], "hi");
//!
//! // A failing event keeps the previous status.
//! h.unset_config("greeting");
//! let err = h.pebble_ready("hello").unwrap_err();
//! assert_eq!(err, "config option \"greeting\" is not set");
//! assert_eq!(h.unit_status(), &Status::active(""));
//! ```

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::charm::{Charm, run_event};
use crate::container::{ServiceInfo, ServiceStartup, ServiceStatus};
use crate::error::{ApiError, Error, Result};
use crate::event::{ActionEvent, CheckInfo, CheckLevel, CheckStatus, Event, Notice, Outcome};
use crate::layer::{Check, Layer, LogTarget, Override, Plan, Service, Startup};
use crate::model::{ConfigValue, LogLevel, Status};

/// The fake unit the native host calls act on while a harness runs an event.
#[derive(Default)]
pub(crate) struct World {
    pub(crate) unit_name: String,
    pub(crate) app_name: String,
    pub(crate) model_name: String,
    pub(crate) leader: bool,
    pub(crate) config: BTreeMap<String, ConfigValue>,
    pub(crate) unit_status: Status,
    pub(crate) app_status: Status,
    pub(crate) stored: BTreeMap<String, Vec<u8>>,
    pub(crate) containers: BTreeMap<String, TestContainer>,
    pub(crate) logs: Vec<(LogLevel, String)>,
    /// The report of the action being run, if any.
    pub(crate) action: Option<ActionOutput>,
}

/// What a charm reported about an action run in the harness.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ActionOutput {
    /// Results set with `set_results`.
    pub results: BTreeMap<String, String>,
    /// Messages of `log`.
    pub log: Vec<String>,
    /// The message of `fail`, if the action failed.
    pub failed: Option<String>,
}

impl World {
    /// The container `name`, or a connection error if it does not answer.
    pub(crate) fn container(&mut self, name: &str) -> Result<&mut TestContainer> {
        let c = self
            .containers
            .get_mut(name)
            .ok_or_else(|| Error::Connection(format!("cannot connect to container {name:?}")))?;
        if !c.can_connect {
            return Err(Error::Connection(format!(
                "cannot connect to container {name:?}: its supervisor does not answer"
            )));
        }
        Ok(c)
    }
}

thread_local! {
    static WORLD: RefCell<Option<World>> = const { RefCell::new(None) };
}

/// Runs `f` on the world of the harness running an event on this thread.
pub(crate) fn with_world<R>(f: impl FnOnce(&mut World) -> R) -> R {
    WORLD.with(|cell| {
        let mut slot = cell.borrow_mut();
        let world = slot.as_mut().unwrap_or_else(|| {
            panic!(
                "cairn-sdk: host calls need a Cairn host (wasm32) or a running \
                 cairn_sdk::testing::Harness"
            )
        });
        f(world)
    })
}

/// Lends a harness's world to the native host calls for one event, and takes it back
/// even if the handler panics.
struct Lent<'a> {
    home: &'a mut World,
}

impl<'a> Lent<'a> {
    fn new(home: &'a mut World) -> Self {
        let world = std::mem::take(home);
        WORLD.with(|cell| *cell.borrow_mut() = Some(world));
        Lent { home }
    }
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        if let Some(world) = WORLD.with(|cell| cell.borrow_mut().take()) {
            *self.home = world;
        }
    }
}

/// A fake container: it records layers, combines them into a plan and tracks which
/// services run, as Pebble would (without running anything).
#[derive(Clone, Debug)]
pub struct TestContainer {
    can_connect: bool,
    layers: Vec<(String, Layer)>,
    services: BTreeMap<String, ServiceState>,
    signals: Vec<(String, String)>,
    check_status: BTreeMap<String, CheckStatus>,
    notices: Vec<Notice>,
    /// Registered exec handlers, by command prefix.
    execs: Vec<(Vec<String>, ExecHandler)>,
    /// Commands the charm ran, in order.
    exec_log: Vec<Vec<String>>,
    /// The fake filesystem: files (with their permissions) and directories.
    files: BTreeMap<String, (Vec<u8>, u32)>,
    dirs: BTreeMap<String, u32>,
}

/// What a command run in a [`TestContainer`] was given (ops' `testing.ExecArgs`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecArgs {
    /// The command and its arguments.
    pub command: Vec<String>,
    /// The options the charm passed.
    pub options: crate::container::ExecOptions,
    /// Everything the charm wrote to stdin before it read output or waited.
    pub stdin: Vec<u8>,
}

/// A handler registered with [`TestContainer::handle_exec`] or `handle_exec_with`.
type ExecFn = dyn FnMut(&ExecArgs, &mut TestContainer) -> crate::container::ExecOutput;

/// How the harness answers one command.
#[derive(Clone)]
pub(crate) enum ExecHandler {
    Fixed(crate::container::ExecOutput),
    Call(std::rc::Rc<RefCell<ExecFn>>),
}

impl std::fmt::Debug for ExecHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExecHandler::Fixed(o) => f.debug_tuple("Fixed").field(o).finish(),
            ExecHandler::Call(_) => f.write_str("Call(..)"),
        }
    }
}

impl ExecHandler {
    /// Runs the command: a fixed result, or the handler on the container.
    pub(crate) fn run(
        &self,
        args: &ExecArgs,
        container: &mut TestContainer,
    ) -> crate::container::ExecOutput {
        match self {
            ExecHandler::Fixed(o) => o.clone(),
            ExecHandler::Call(f) => (f.borrow_mut())(args, container),
        }
    }
}

#[derive(Clone, Debug)]
struct ServiceState {
    current: ServiceStatus,
    started_with: Option<Service>,
    starts: u32,
}

impl Default for TestContainer {
    fn default() -> Self {
        TestContainer {
            can_connect: true,
            layers: Vec::new(),
            services: BTreeMap::new(),
            signals: Vec::new(),
            check_status: BTreeMap::new(),
            notices: Vec::new(),
            execs: Vec::new(),
            exec_log: Vec::new(),
            files: BTreeMap::new(),
            dirs: [("/".to_string(), 0o755)].into(),
        }
    }
}

fn api(code: u16, message: String) -> Error {
    let status = match code {
        404 => "Not Found",
        _ => "Bad Request",
    };
    Error::Api(ApiError {
        code,
        status: status.into(),
        kind: String::new(),
        message,
    })
}

impl TestContainer {
    /// Whether the charm can connect to it.
    pub fn can_connect(&self) -> bool {
        self.can_connect
    }

    /// Sets whether the charm can connect to it.
    pub fn set_can_connect(&mut self, yes: bool) {
        self.can_connect = yes;
    }

    /// The layers added so far, with their labels, in order.
    pub fn layers(&self) -> &[(String, Layer)] {
        &self.layers
    }

    /// The layer labelled `label`.
    pub fn layer(&self, label: &str) -> Option<&Layer> {
        self.layers
            .iter()
            .find(|(l, _)| l == label)
            .map(|(_, layer)| layer)
    }

    /// The combined plan of all layers.
    pub fn plan(&self) -> Plan {
        let mut plan = Plan::default();
        for (_, layer) in &self.layers {
            combine_into(&mut plan.services, &layer.services, merge_service);
            combine_into(&mut plan.checks, &layer.checks, merge_check);
            combine_into(&mut plan.log_targets, &layer.log_targets, merge_log_target);
        }
        plan
    }

    /// The status of service `name` (`inactive` if it never ran).
    pub fn service_status(&self, name: &str) -> ServiceStatus {
        self.services
            .get(name)
            .map_or(ServiceStatus::Inactive, |s| s.current)
    }

    /// Whether service `name` runs.
    pub fn is_running(&self, name: &str) -> bool {
        self.service_status(name) == ServiceStatus::Active
    }

    /// How many times service `name` was started (restarts included).
    pub fn start_count(&self, name: &str) -> u32 {
        self.services.get(name).map_or(0, |s| s.starts)
    }

    /// Sets a check's status (checks of the plan start `up`, or `inactive` when their
    /// startup is disabled), for example to go with a check-failed event.
    pub fn set_check_status(&mut self, name: &str, status: CheckStatus) {
        self.check_status.insert(name.to_string(), status);
    }

    /// Records a custom notice occurrence as a workload would (`pebble notify`); returns
    /// the notice, to deliver with a custom-notice event.
    pub fn add_notice(&mut self, key: &str, data: &[(&str, &str)]) -> Notice {
        let data: BTreeMap<String, String> = data
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let now = "2026-01-01T00:00:00Z".to_string();
        if let Some(n) = self.notices.iter_mut().find(|n| n.key == key) {
            n.occurrences += 1;
            n.last_data = data;
            return n.clone();
        }
        let n = Notice {
            id: (self.notices.len() + 1).to_string(),
            user_id: Some(0),
            kind: "custom".into(),
            key: key.to_string(),
            first_occurred: now.clone(),
            last_occurred: now.clone(),
            last_repeated: now,
            occurrences: 1,
            last_data: data,
            repeat_after: None,
            expire_after: Some(std::time::Duration::from_secs(7 * 24 * 3600)),
        };
        self.notices.push(n.clone());
        n
    }

    pub(crate) fn check_infos(
        &self,
        level: Option<CheckLevel>,
        names: &[String],
    ) -> Vec<CheckInfo> {
        self.plan()
            .checks
            .iter()
            .filter(|(n, c)| {
                (names.is_empty() || names.contains(n)) && (level.is_none() || c.level == level)
            })
            .map(|(n, c)| CheckInfo {
                name: n.clone(),
                level: c.level,
                status: self.check_status.get(n).copied().unwrap_or(
                    if c.startup == Some(Startup::Disabled) {
                        CheckStatus::Inactive
                    } else {
                        CheckStatus::Up
                    },
                ),
                successes: 0,
                failures: 0,
                threshold: c.threshold.unwrap_or(3),
                change_id: None,
            })
            .collect()
    }

    pub(crate) fn checks_action(&mut self, start: bool, names: &[String]) -> Result<Vec<String>> {
        let action = if start { "start" } else { "stop" };
        if names.is_empty() {
            return Err(api(400, format!("must specify checks for {action} action")));
        }
        let plan = self.plan();
        let mut missing: Vec<&String> = names
            .iter()
            .filter(|n| !plan.checks.contains_key(*n))
            .collect();
        if !missing.is_empty() {
            missing.sort();
            let list: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
            return Err(api(
                400,
                format!(
                    "cannot {action} checks: cannot find checks in plan: {}",
                    list.join(", ")
                ),
            ));
        }
        let mut changed = Vec::new();
        for info in self.check_infos(None, names) {
            let running = info.status != CheckStatus::Inactive;
            if running != start {
                let status = if start {
                    CheckStatus::Up
                } else {
                    CheckStatus::Inactive
                };
                self.check_status.insert(info.name.clone(), status);
                changed.push(info.name);
            }
        }
        changed.sort();
        Ok(changed)
    }

    pub(crate) fn find_notices(&self, filter: &crate::container::NoticeFilter) -> Vec<Notice> {
        self.notices
            .iter()
            .filter(|n| filter.types.is_empty() || filter.types.contains(&n.kind))
            .filter(|n| filter.keys.is_empty() || filter.keys.contains(&n.key))
            .cloned()
            .collect()
    }

    pub(crate) fn notice(&self, id: &str) -> Result<Notice> {
        self.notices
            .iter()
            .find(|n| n.id == id)
            .cloned()
            .ok_or_else(|| api(404, format!("cannot find notice with ID {id:?}")))
    }

    /// Makes commands starting with `prefix` "run" with this exit code and output (the
    /// longest matching prefix wins), as ops' `Harness.handle_exec`.
    pub fn handle_exec(&mut self, prefix: &[&str], exit_code: i32, stdout: &str, stderr: &str) {
        self.execs.push((
            prefix.iter().map(|s| s.to_string()).collect(),
            ExecHandler::Fixed(crate::container::ExecOutput {
                exit_code,
                stdout: stdout.as_bytes().to_vec(),
                stderr: stderr.as_bytes().to_vec(),
            }),
        ));
    }

    /// Makes commands starting with `prefix` run `handler` (ops' `handle_exec` with a
    /// handler): it gets the command, its options and the stdin the charm wrote, may change
    /// this container (write the files a real command would), and returns the exit code and
    /// output. It runs when the charm first reads output or waits.
    pub fn handle_exec_with(
        &mut self,
        prefix: &[&str],
        handler: impl FnMut(&ExecArgs, &mut TestContainer) -> crate::container::ExecOutput + 'static,
    ) {
        self.execs.push((
            prefix.iter().map(|s| s.to_string()).collect(),
            ExecHandler::Call(std::rc::Rc::new(RefCell::new(handler))),
        ));
    }

    /// The commands the charm ran, in order.
    pub fn exec_log(&self) -> &[Vec<String>] {
        &self.exec_log
    }

    /// Finds the handler of a command the charm starts, or Pebble's error for a missing
    /// executable.
    pub(crate) fn fake_exec(&mut self, command: &[String]) -> Result<ExecHandler> {
        self.exec_log.push(command.to_vec());
        self.execs
            .iter()
            .filter(|(p, _)| command.starts_with(p))
            .max_by_key(|(p, _)| p.len())
            .map(|(_, h)| h.clone())
            .ok_or_else(|| {
                api(
                    400,
                    format!(
                        "cannot find executable {:?} (no handle_exec registered for it)",
                        command.first().map(String::as_str).unwrap_or("")
                    ),
                )
            })
    }

    /// The content of a file in the fake filesystem (what the charm pushed, or what the
    /// test put there with [`TestContainer::put_file`]).
    pub fn file(&self, path: &str) -> Option<&[u8]> {
        self.files.get(path).map(|(d, _)| d.as_slice())
    }

    /// Puts a file into the fake filesystem, creating its parent directories.
    pub fn put_file(&mut self, path: &str, data: impl AsRef<[u8]>) {
        let mut parent = parent_of(path);
        while let Some(p) = parent {
            self.dirs.entry(p.to_string()).or_insert(0o755);
            parent = parent_of(p);
        }
        self.files
            .insert(path.to_string(), (data.as_ref().to_vec(), 0o644));
    }

    fn path_err(kind: &str, message: String) -> Error {
        Error::Path(crate::error::PathError {
            kind: kind.into(),
            message,
        })
    }

    fn absolute(path: &str) -> Result<()> {
        if path.starts_with('/') {
            Ok(())
        } else {
            Err(Self::path_err(
                "generic-file-error",
                format!("paths must be absolute, got {path:?}"),
            ))
        }
    }

    /// `Some(true)` for a directory, `Some(false)` for a file, `None` if absent.
    pub(crate) fn fs_kind(&self, path: &str) -> Option<bool> {
        if self.dirs.contains_key(path) {
            Some(true)
        } else if self.files.contains_key(path) {
            Some(false)
        } else {
            None
        }
    }

    pub(crate) fn fs_push(
        &mut self,
        path: &str,
        data: &[u8],
        o: &crate::container::FileOptions,
    ) -> Result<()> {
        Self::absolute(path)?;
        let parent = parent_of(path).unwrap_or("/");
        if !self.dirs.contains_key(parent) {
            if !o.make_parents {
                return Err(Self::path_err(
                    "not-found",
                    format!("open {path}: no such file or directory"),
                ));
            }
            self.put_file(path, b"");
        }
        self.files.insert(
            path.to_string(),
            (data.to_vec(), o.permissions.unwrap_or(0o644)),
        );
        Ok(())
    }

    pub(crate) fn fs_pull(&self, path: &str) -> Result<Vec<u8>> {
        Self::absolute(path)?;
        match self.fs_kind(path) {
            Some(false) => Ok(self.files[path].0.clone()),
            Some(true) => Err(Self::path_err(
                "generic-file-error",
                format!("can only read a regular file: {path:?}"),
            )),
            None => Err(Self::path_err(
                "not-found",
                format!("stat {path}: no such file or directory"),
            )),
        }
    }

    pub(crate) fn fs_list(
        &self,
        path: &str,
        pattern: Option<&str>,
        itself: bool,
    ) -> Result<Vec<crate::container::FileInfo>> {
        Self::absolute(path)?;
        let info = |p: &str| {
            let dir = self.dirs.get(p);
            crate::container::FileInfo {
                path: p.to_string(),
                name: p
                    .rsplit('/')
                    .next()
                    .filter(|n| !n.is_empty())
                    .unwrap_or("/")
                    .to_string(),
                kind: if dir.is_some() { "directory" } else { "file" }.into(),
                size: self.files.get(p).map(|(d, _)| d.len() as u64),
                permissions: dir
                    .copied()
                    .or(self.files.get(p).map(|(_, m)| *m))
                    .unwrap_or(0),
                last_modified: "2026-01-01T00:00:00Z".into(),
                user_id: Some(0),
                user: Some("root".into()),
                group_id: Some(0),
                group: Some("root".into()),
            }
        };
        let Some(is_dir) = self.fs_kind(path) else {
            return Err(Self::path_err(
                "not-found",
                format!("stat {path}: no such file or directory"),
            ));
        };
        let matches = |name: &str| match pattern {
            None | Some("") => true,
            Some(p) => glob(p, name),
        };
        if !is_dir || itself {
            let i = info(path);
            return Ok(if matches(&i.name) { vec![i] } else { vec![] });
        }
        let children = self
            .dirs
            .keys()
            .chain(self.files.keys())
            .filter(|p| p.as_str() != path && parent_of(p) == Some(path))
            .map(|p| info(p))
            .filter(|i| matches(&i.name));
        let mut out: Vec<_> = children.collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    pub(crate) fn fs_make_dir(
        &mut self,
        path: &str,
        o: &crate::container::FileOptions,
    ) -> Result<()> {
        Self::absolute(path)?;
        let mode = o.permissions.unwrap_or(0o755);
        if self.fs_kind(path).is_some() {
            if o.make_parents && self.fs_kind(path) == Some(true) {
                return Ok(());
            }
            return Err(Self::path_err(
                "generic-file-error",
                format!("mkdir {path}: file exists"),
            ));
        }
        let parent = parent_of(path).unwrap_or("/");
        if !self.dirs.contains_key(parent) {
            if !o.make_parents {
                return Err(Self::path_err(
                    "not-found",
                    format!("mkdir {path}: no such file or directory"),
                ));
            }
            self.fs_make_dir(parent, o)?;
        }
        self.dirs.insert(path.to_string(), mode);
        Ok(())
    }

    pub(crate) fn fs_remove(&mut self, path: &str, recursive: bool) -> Result<()> {
        Self::absolute(path)?;
        let under = |p: &String| p.starts_with(&format!("{}/", path.trim_end_matches('/')));
        if recursive {
            self.files.retain(|p, _| p != path && !under(p));
            self.dirs.retain(|p, _| p != path && !under(p));
            return Ok(());
        }
        match self.fs_kind(path) {
            None => Err(Self::path_err(
                "not-found",
                format!("remove {path}: no such file or directory"),
            )),
            Some(true) if self.files.keys().chain(self.dirs.keys()).any(under) => {
                Err(Self::path_err(
                    "generic-file-error",
                    format!("remove {path}: directory not empty"),
                ))
            }
            Some(_) => {
                self.files.remove(path);
                self.dirs.remove(path);
                Ok(())
            }
        }
    }

    /// Signals sent so far, as (service, signal with its `SIG` prefix), in order.
    pub fn signals(&self) -> &[(String, String)] {
        &self.signals
    }

    pub(crate) fn send_signal(&mut self, signal: &str, names: &[String]) -> Result<()> {
        if names.is_empty() {
            return Err(api(400, "must specify one or more services".into()));
        }
        let signal = if signal.starts_with("SIG") {
            signal.to_string()
        } else {
            format!("SIG{signal}")
        };
        let errors: Vec<String> = names
            .iter()
            .filter(|n| !self.is_running(n))
            .map(|n| format!("cannot send signal to {n:?}: service is not running"))
            .collect();
        if !errors.is_empty() {
            return Err(api(400, errors.join("; ")));
        }
        for n in names {
            self.signals.push((n.clone(), signal.clone()));
        }
        Ok(())
    }

    /// Sets a service's status, for example to simulate a crash (`ServiceStatus::Error`).
    pub fn set_service_status(&mut self, name: &str, status: ServiceStatus) {
        self.services
            .entry(name.to_string())
            .or_insert(ServiceState {
                current: status,
                started_with: None,
                starts: 0,
            })
            .current = status;
    }

    pub(crate) fn add_layer(&mut self, label: &str, yaml: &str, combine: bool) -> Result<()> {
        if label.starts_with("pebble-") {
            return Err(api(
                400,
                "cannot use reserved label prefix \"pebble-\"".into(),
            ));
        }
        let layer: Layer = serde_yaml::from_str(if yaml.trim().is_empty() { "{}" } else { yaml })
            .map_err(|e| api(400, format!("cannot parse layer {label:?}: {e}")))?;
        let missing = |kind: &str, name: &str| {
            api(
                400,
                format!("layer {label:?} must define \"override\" for {kind} {name:?}"),
            )
        };
        for (name, s) in &layer.services {
            if name == "pebble" {
                return Err(api(
                    400,
                    "cannot use reserved service name \"pebble\"".into(),
                ));
            }
            if s.override_.is_none() {
                return Err(missing("service", name));
            }
        }
        for (name, c) in &layer.checks {
            if c.override_.is_none() {
                return Err(missing("check", name));
            }
        }
        for (name, t) in &layer.log_targets {
            if t.override_.is_none() {
                return Err(missing("log target", name));
            }
        }
        let before = self.layers.clone();
        match self.layers.iter_mut().find(|(l, _)| l == label) {
            Some(_) if !combine => return Err(api(400, format!("layer {label:?} already exists"))),
            Some((_, existing)) => {
                if layer.summary.is_some() {
                    existing.summary = layer.summary.clone();
                }
                if layer.description.is_some() {
                    existing.description = layer.description.clone();
                }
                combine_into(&mut existing.services, &layer.services, merge_service);
                combine_into(&mut existing.checks, &layer.checks, merge_check);
                combine_into(
                    &mut existing.log_targets,
                    &layer.log_targets,
                    merge_log_target,
                );
            }
            None => self.layers.push((label.to_string(), layer)),
        }
        if let Err(e) = validate(&self.plan()) {
            self.layers = before;
            return Err(e);
        }
        Ok(())
    }

    pub(crate) fn replan(&mut self) -> Result<()> {
        for (name, svc) in self.plan().services {
            let running = self.is_running(&name);
            let changed = self
                .services
                .get(&name)
                .and_then(|s| s.started_with.as_ref())
                != Some(&svc);
            if (running && changed) || (!running && svc.startup == Some(Startup::Enabled)) {
                self.run_service(&name, svc);
            }
        }
        Ok(())
    }

    pub(crate) fn autostart(&mut self) -> Result<()> {
        for (name, svc) in self.plan().services {
            if svc.startup == Some(Startup::Enabled) && !self.is_running(&name) {
                self.run_service(&name, svc);
            }
        }
        Ok(())
    }

    fn planned(&self, names: &[String]) -> Result<Vec<(String, Service)>> {
        if names.is_empty() {
            return Err(api(400, "no services specified".into()));
        }
        let plan = self.plan();
        names
            .iter()
            .map(|n| {
                plan.services
                    .get(n)
                    .map(|s| (n.clone(), s.clone()))
                    .ok_or_else(|| api(400, format!("service {n:?} does not exist")))
            })
            .collect()
    }

    pub(crate) fn start(&mut self, names: &[String]) -> Result<()> {
        for (name, svc) in self.planned(names)? {
            if !self.is_running(&name) {
                self.run_service(&name, svc);
            }
        }
        Ok(())
    }

    pub(crate) fn stop(&mut self, names: &[String]) -> Result<()> {
        for (name, _) in self.planned(names)? {
            if let Some(s) = self.services.get_mut(&name) {
                s.current = ServiceStatus::Inactive;
            }
        }
        Ok(())
    }

    pub(crate) fn restart(&mut self, names: &[String]) -> Result<()> {
        for (name, svc) in self.planned(names)? {
            self.run_service(&name, svc);
        }
        Ok(())
    }

    pub(crate) fn services(&self, names: &[String]) -> Vec<ServiceInfo> {
        self.plan()
            .services
            .into_iter()
            .filter(|(n, _)| names.is_empty() || names.contains(n))
            .map(|(name, svc)| ServiceInfo {
                current: self.service_status(&name),
                startup: svc.startup.unwrap_or(ServiceStartup::Disabled),
                current_since: None,
                name,
            })
            .collect()
    }

    fn run_service(&mut self, name: &str, svc: Service) {
        let state = self
            .services
            .entry(name.to_string())
            .or_insert(ServiceState {
                current: ServiceStatus::Inactive,
                started_with: None,
                starts: 0,
            });
        state.current = ServiceStatus::Active;
        state.started_with = Some(svc);
        state.starts += 1;
    }
}

fn validate(plan: &Plan) -> Result<()> {
    for (name, s) in &plan.services {
        if s.command.as_deref().is_none_or(|c| c.trim().is_empty()) {
            return Err(api(
                400,
                format!("plan must define \"command\" for service {name:?}"),
            ));
        }
    }
    for (name, c) in &plan.checks {
        let kinds = [c.http.is_some(), c.tcp.is_some(), c.exec.is_some()];
        if kinds.iter().filter(|k| **k).count() != 1 {
            return Err(api(
                400,
                format!(
                    "plan must specify one of \"http\", \"tcp\", or \"exec\" for check {name:?}"
                ),
            ));
        }
    }
    Ok(())
}

trait Overridable: Clone {
    fn how(&self) -> Option<Override>;
}

impl Overridable for Service {
    fn how(&self) -> Option<Override> {
        self.override_
    }
}

impl Overridable for Check {
    fn how(&self) -> Option<Override> {
        self.override_
    }
}

impl Overridable for LogTarget {
    fn how(&self) -> Option<Override> {
        self.override_
    }
}

/// Pebble's layer combination: `replace` swaps the entry, `merge` merges field by field.
fn combine_into<T: Overridable>(
    into: &mut BTreeMap<String, T>,
    from: &BTreeMap<String, T>,
    merge: fn(&mut T, &T),
) {
    for (name, new) in from {
        match (new.how(), into.get_mut(name)) {
            (Some(Override::Merge), Some(old)) => merge(old, new),
            _ => {
                into.insert(name.clone(), new.clone());
            }
        }
    }
}

fn set<T: Clone>(old: &mut Option<T>, new: &Option<T>) {
    if new.is_some() {
        old.clone_from(new);
    }
}

fn merge_service(old: &mut Service, new: &Service) {
    set(&mut old.override_, &new.override_);
    set(&mut old.summary, &new.summary);
    set(&mut old.description, &new.description);
    set(&mut old.command, &new.command);
    set(&mut old.startup, &new.startup);
    old.after.extend(new.after.iter().cloned());
    old.before.extend(new.before.iter().cloned());
    old.requires.extend(new.requires.iter().cloned());
    old.environment.extend(new.environment.clone());
    set(&mut old.user, &new.user);
    set(&mut old.user_id, &new.user_id);
    set(&mut old.group, &new.group);
    set(&mut old.group_id, &new.group_id);
    set(&mut old.working_dir, &new.working_dir);
    set(&mut old.on_success, &new.on_success);
    set(&mut old.on_failure, &new.on_failure);
    old.on_check_failure.extend(new.on_check_failure.clone());
    set(&mut old.backoff_delay, &new.backoff_delay);
    set(&mut old.backoff_factor, &new.backoff_factor);
    set(&mut old.backoff_limit, &new.backoff_limit);
    set(&mut old.kill_delay, &new.kill_delay);
}

fn merge_check(old: &mut Check, new: &Check) {
    set(&mut old.override_, &new.override_);
    set(&mut old.level, &new.level);
    set(&mut old.startup, &new.startup);
    set(&mut old.period, &new.period);
    set(&mut old.timeout, &new.timeout);
    set(&mut old.threshold, &new.threshold);
    if let Some(n) = &new.http {
        let o = old.http.get_or_insert_with(Default::default);
        if !n.url.is_empty() {
            o.url.clone_from(&n.url);
        }
        o.headers.extend(n.headers.clone());
    }
    if let Some(n) = &new.tcp {
        let o = old.tcp.get_or_insert_with(Default::default);
        set(&mut o.port, &n.port);
        set(&mut o.host, &n.host);
    }
    if let Some(n) = &new.exec {
        let o = old.exec.get_or_insert_with(Default::default);
        if !n.command.is_empty() {
            o.command.clone_from(&n.command);
        }
        set(&mut o.service_context, &n.service_context);
        o.environment.extend(n.environment.clone());
        set(&mut o.user, &n.user);
        set(&mut o.user_id, &n.user_id);
        set(&mut o.group, &n.group);
        set(&mut o.group_id, &n.group_id);
        set(&mut o.working_dir, &n.working_dir);
    }
}

fn merge_log_target(old: &mut LogTarget, new: &LogTarget) {
    set(&mut old.override_, &new.override_);
    set(&mut old.type_, &new.type_);
    set(&mut old.location, &new.location);
    old.services.extend(new.services.iter().cloned());
    old.labels.extend(new.labels.clone());
}

/// Runs a [`Charm`] natively against a fake unit and fake containers.
///
/// Build one with [`new`](Self::new) or [`from_charmcraft`](Self::from_charmcraft), set
/// the state in with the `with_*`/`set_*` methods, deliver events, and inspect the state
/// out (status, stored state, layers, services, log).
pub struct Harness<C: Charm> {
    world: World,
    deferred: Vec<Event>,
    history: Vec<(String, core::result::Result<Outcome, String>)>,
    _charm: PhantomData<fn() -> C>,
}

impl<C: Charm> Harness<C> {
    /// A harness for unit `<app>/0` of application `app`, not leader, with no config and
    /// no containers.
    pub fn new(app: &str) -> Self {
        Harness {
            world: World {
                unit_name: format!("{app}/0"),
                app_name: app.to_string(),
                model_name: "test-model".into(),
                ..World::default()
            },
            deferred: Vec::new(),
            history: Vec::new(),
            _charm: PhantomData,
        }
    }

    /// A harness set up from a `charmcraft.yaml`: its name, containers and config defaults.
    pub fn from_charmcraft(yaml: &str) -> Result<Self> {
        #[derive(serde::Deserialize)]
        struct Meta {
            name: String,
            #[serde(default)]
            containers: BTreeMap<String, serde_yaml::Value>,
            #[serde(default)]
            config: ConfigSection,
        }
        #[derive(serde::Deserialize, Default)]
        struct ConfigSection {
            #[serde(default)]
            options: BTreeMap<String, OptionSpec>,
        }
        #[derive(serde::Deserialize)]
        struct OptionSpec {
            #[serde(rename = "type")]
            kind: String,
            #[serde(default)]
            default: Option<serde_yaml::Value>,
        }
        let meta: Meta = serde_yaml::from_str(yaml)
            .map_err(|e| Error::msg(format!("cannot parse charmcraft.yaml: {e}")))?;
        let mut h = Harness::new(&meta.name);
        for name in meta.containers.keys() {
            h = h.with_container(name);
        }
        for (key, opt) in meta.config.options {
            let Some(d) = opt.default else { continue };
            let bad = || {
                Error::Config(format!(
                    "config option {key:?}: default {d:?} is not {}",
                    opt.kind
                ))
            };
            let value = match opt.kind.as_str() {
                "int" => ConfigValue::Int(d.as_i64().ok_or_else(bad)?),
                "float" => ConfigValue::Float(d.as_f64().ok_or_else(bad)?),
                "boolean" => ConfigValue::Bool(d.as_bool().ok_or_else(bad)?),
                _ => ConfigValue::String(d.as_str().ok_or_else(bad)?.to_string()),
            };
            h.world.config.insert(key, value);
        }
        Ok(h)
    }

    /// Adds a container the charm can connect to.
    pub fn with_container(mut self, name: &str) -> Self {
        self.world
            .containers
            .insert(name.to_string(), TestContainer::default());
        self
    }

    /// Sets a config option.
    pub fn with_config(mut self, key: &str, value: impl Into<ConfigValue>) -> Self {
        self.set_config(key, value);
        self
    }

    /// Sets leadership.
    pub fn with_leader(mut self, leader: bool) -> Self {
        self.world.leader = leader;
        self
    }

    /// Sets raw stored state.
    pub fn with_state(mut self, key: &str, value: impl AsRef<[u8]>) -> Self {
        self.set_state(key, value);
        self
    }

    /// Sets the unit's status, as if an earlier event had set it.
    pub fn with_unit_status(mut self, status: Status) -> Self {
        self.world.unit_status = status;
        self
    }

    /// Sets a config option (deliver [`config_changed`](Self::config_changed) to tell the charm).
    pub fn set_config(&mut self, key: &str, value: impl Into<ConfigValue>) {
        self.world.config.insert(key.to_string(), value.into());
    }

    /// Removes a config option's value.
    pub fn unset_config(&mut self, key: &str) {
        self.world.config.remove(key);
    }

    /// Sets leadership (deliver [`leader_elected`](Self::leader_elected) to tell the charm).
    pub fn set_leader(&mut self, leader: bool) {
        self.world.leader = leader;
    }

    /// Sets raw stored state.
    pub fn set_state(&mut self, key: &str, value: impl AsRef<[u8]>) {
        self.world
            .stored
            .insert(key.to_string(), value.as_ref().to_vec());
    }

    /// Stores `value` as JSON, as [`StoredState::save`](crate::StoredState::save) does.
    pub fn save_state<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) {
        let bytes = serde_json::to_vec(value).expect("value serializes to JSON");
        self.set_state(key, bytes);
    }

    /// Sets whether the charm can connect to container `name`.
    pub fn set_can_connect(&mut self, name: &str, yes: bool) {
        self.container_mut(name).set_can_connect(yes);
    }

    /// The container `name` (panics if the harness has none).
    pub fn container(&self, name: &str) -> &TestContainer {
        self.world
            .containers
            .get(name)
            .unwrap_or_else(|| panic!("the harness has no container {name:?}"))
    }

    /// The container `name`, to change it (panics if the harness has none).
    pub fn container_mut(&mut self, name: &str) -> &mut TestContainer {
        self.world
            .containers
            .get_mut(name)
            .unwrap_or_else(|| panic!("the harness has no container {name:?}"))
    }

    /// The unit's status.
    pub fn unit_status(&self) -> &Status {
        &self.world.unit_status
    }

    /// The application's status.
    pub fn app_status(&self) -> &Status {
        &self.world.app_status
    }

    /// The config the charm sees.
    pub fn config(&self) -> &BTreeMap<String, ConfigValue> {
        &self.world.config
    }

    /// Raw stored state under `key`.
    pub fn state(&self, key: &str) -> Option<&[u8]> {
        self.world.stored.get(key).map(Vec::as_slice)
    }

    /// Stored state under `key` decoded from JSON (panics if it does not decode).
    pub fn load_state<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        self.state(key).map(|b| {
            serde_json::from_slice(b)
                .unwrap_or_else(|e| panic!("stored state {key:?} does not decode: {e}"))
        })
    }

    /// Every line the charm logged, oldest first.
    pub fn logs(&self) -> &[(LogLevel, String)] {
        &self.world.logs
    }

    /// Events deferred and waiting to be re-delivered.
    pub fn deferred(&self) -> &[Event] {
        &self.deferred
    }

    /// Every delivery so far: event name and outcome (`Err` holds the failure message).
    pub fn history(&self) -> &[(String, core::result::Result<Outcome, String>)] {
        &self.history
    }

    /// Delivers `event`, after re-delivering deferred events as the host does.
    ///
    /// If a re-delivered event fails, its error is returned, it stays deferred, and
    /// `event` is not delivered.
    pub fn run(&mut self, event: Event) -> core::result::Result<Outcome, String> {
        let mut pending = std::mem::take(&mut self.deferred).into_iter();
        while let Some(old) = pending.next() {
            match self.deliver(&old) {
                Ok(Outcome::Handled) => {}
                Ok(Outcome::Deferred) => self.deferred.push(old),
                Err(e) => {
                    let name = old.name();
                    self.deferred.push(old);
                    self.deferred.extend(pending);
                    return Err(format!("deferred {name}: {e}"));
                }
            }
        }
        let outcome = self.deliver(&event)?;
        if outcome == Outcome::Deferred {
            self.deferred.push(event);
        }
        Ok(outcome)
    }

    fn deliver(&mut self, event: &Event) -> core::result::Result<Outcome, String> {
        let before = (
            self.world.unit_status.clone(),
            self.world.app_status.clone(),
            self.world.stored.clone(),
        );
        let result = {
            let _lent = Lent::new(&mut self.world);
            run_event::<C>(event.clone())
        };
        if result.is_err() {
            (
                self.world.unit_status,
                self.world.app_status,
                self.world.stored,
            ) = before;
        }
        self.history.push((event.name(), result.clone()));
        result
    }

    /// The events of a deploy, as the host delivers them: `install`, `leader-elected`
    /// (if leader), `config-changed`, `start`, then `pebble-ready` for each container
    /// that can connect. Stops at the first failure.
    pub fn deploy(&mut self) -> core::result::Result<(), String> {
        let mut events = vec![Event::Install];
        if self.world.leader {
            events.push(Event::LeaderElected);
        }
        events.extend([Event::ConfigChanged, Event::Start]);
        for (name, c) in &self.world.containers {
            if c.can_connect {
                events.push(Event::PebbleReady(name.clone()));
            }
        }
        for e in events {
            self.run(e)?;
        }
        Ok(())
    }

    /// Delivers `install`.
    pub fn install(&mut self) -> core::result::Result<Outcome, String> {
        self.run(Event::Install)
    }

    /// Delivers `start`.
    pub fn start(&mut self) -> core::result::Result<Outcome, String> {
        self.run(Event::Start)
    }

    /// Delivers `stop`.
    pub fn stop(&mut self) -> core::result::Result<Outcome, String> {
        self.run(Event::Stop)
    }

    /// Delivers `remove`.
    pub fn remove(&mut self) -> core::result::Result<Outcome, String> {
        self.run(Event::Remove)
    }

    /// Delivers `config-changed`.
    pub fn config_changed(&mut self) -> core::result::Result<Outcome, String> {
        self.run(Event::ConfigChanged)
    }

    /// Sets a config option, then delivers `config-changed`.
    pub fn update_config(
        &mut self,
        key: &str,
        value: impl Into<ConfigValue>,
    ) -> core::result::Result<Outcome, String> {
        self.set_config(key, value);
        self.config_changed()
    }

    /// Delivers `upgrade-charm`.
    pub fn upgrade_charm(&mut self) -> core::result::Result<Outcome, String> {
        self.run(Event::UpgradeCharm)
    }

    /// Delivers `update-status`.
    pub fn update_status(&mut self) -> core::result::Result<Outcome, String> {
        self.run(Event::UpdateStatus)
    }

    /// Delivers `leader-elected`.
    pub fn leader_elected(&mut self) -> core::result::Result<Outcome, String> {
        self.run(Event::LeaderElected)
    }

    /// Delivers `<container>-pebble-ready`.
    pub fn pebble_ready(&mut self, container: &str) -> core::result::Result<Outcome, String> {
        self.run(Event::PebbleReady(container.to_string()))
    }

    /// Delivers `<name>-action` with parameters given as a JSON object.
    pub fn action(
        &mut self,
        name: &str,
        params_json: &str,
    ) -> core::result::Result<Outcome, String> {
        self.run_action(name, params_json).map(|_| Outcome::Handled)
    }

    /// Runs action `name` with JSON parameters and returns what the charm reported
    /// (results, log, failure); `Err` if the handler itself failed.
    pub fn run_action(
        &mut self,
        name: &str,
        params_json: &str,
    ) -> core::result::Result<ActionOutput, String> {
        let id = (self.history.len() + 1).to_string();
        self.world.action = Some(ActionOutput::default());
        let r = self.run(Event::Action(ActionEvent {
            id,
            name: name.to_string(),
            params_json: params_json.to_string(),
        }));
        let out = self.world.action.take().unwrap_or_default();
        r.map(|_| out)
    }
}

/// The parent of an absolute path (`None` for `/`).
fn parent_of(path: &str) -> Option<&str> {
    let t = path.trim_end_matches('/');
    if t.is_empty() {
        return None;
    }
    match t.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => Some(&t[..i]),
        None => None,
    }
}

/// A small glob for the fake filesystem, as Go's `path.Match` reads one: `*`, `?` and
/// classes (`[abc]`, `[a-z]`, `[^x]`).
fn glob(pattern: &str, name: &str) -> bool {
    /// Whether `c` is in the class that starts `p` (after its `[`), and the class's length.
    fn class(p: &[char], c: char) -> Option<(bool, usize)> {
        let (negate, mut i) = match p.first() {
            Some('^') | Some('!') => (true, 1),
            _ => (false, 0),
        };
        let mut hit = false;
        let start = i;
        while i < p.len() && (p[i] != ']' || i == start) {
            if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
                hit |= p[i] <= c && c <= p[i + 2];
                i += 3;
            } else {
                hit |= p[i] == c;
                i += 1;
            }
        }
        (i < p.len()).then_some((hit != negate, i + 1))
    }
    fn go(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len()).any(|k| go(&p[1..], &n[k..])),
            Some('?') => !n.is_empty() && go(&p[1..], &n[1..]),
            Some('[') => match (n.first(), class(&p[1..], *n.first().unwrap_or(&'\0'))) {
                (Some(_), Some((true, len))) => go(&p[1 + len..], &n[1..]),
                _ => false,
            },
            Some(c) => n.first() == Some(c) && go(&p[1..], &n[1..]),
        }
    }
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    go(&p, &n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Context;

    #[derive(Default)]
    struct Counter;

    impl Charm for Counter {
        fn on_config_changed(&mut self, ctx: &mut Context) -> Result<()> {
            let n: u64 = ctx.state().load_or_default("n")?;
            ctx.state().save("n", &(n + 1))?;
            match ctx.config().get_str("mode").as_deref() {
                Some("defer") => ctx.defer(),
                Some("fail") => {
                    ctx.set_unit_status(Status::maintenance("about to fail"));
                    return Err(Error::msg("failing"));
                }
                _ => {}
            }
            ctx.set_unit_status(Status::active(format!("n={}", n + 1)));
            crate::info!("handled {}", n + 1);
            Ok(())
        }
    }

    #[test]
    fn the_fake_glob_reads_classes_as_go_does() {
        assert!(glob("*.conf", "a.conf") && !glob("*.conf", "a.cfg"));
        assert!(glob("[ab]?.txt", "b1.txt") && !glob("[ab]?.txt", "c1.txt"));
        assert!(glob("x[0-9]", "x7") && !glob("x[0-9]", "xa"));
        assert!(glob("[^a]*", "bc") && !glob("[^a]*", "ac"));
        assert!(!glob("[ab", "a"), "an unclosed class matches nothing");
    }

    #[test]
    fn failed_events_discard_state_and_status() {
        let mut h = Harness::<Counter>::new("c");
        assert_eq!(h.config_changed(), Ok(Outcome::Handled));
        assert_eq!(h.load_state::<u64>("n"), Some(1));
        h.set_config("mode", "fail");
        assert_eq!(h.config_changed(), Err("failing".into()));
        assert_eq!(h.load_state::<u64>("n"), Some(1));
        assert_eq!(h.unit_status(), &Status::active("n=1"));
        assert_eq!(h.logs(), &[(LogLevel::Info, "handled 1".to_string())]);
    }

    #[test]
    fn deferred_events_come_back_first() {
        let mut h = Harness::<Counter>::new("c").with_config("mode", "defer");
        assert_eq!(h.config_changed(), Ok(Outcome::Deferred));
        assert_eq!(h.deferred().len(), 1);
        h.set_config("mode", "ok");
        assert_eq!(h.update_status(), Ok(Outcome::Handled));
        assert!(h.deferred().is_empty());
        let names: Vec<&str> = h.history().iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["config-changed", "config-changed", "update-status"]);
        assert_eq!(h.load_state::<u64>("n"), Some(2));
    }

    #[test]
    fn containers_combine_layers_and_track_services() {
        let mut c = TestContainer::default();
        let base =
            Layer::new().service("a", Service::new().command("a --x").enabled().env("K", "1"));
        c.add_layer("base", &base.to_yaml(), false).unwrap();
        assert!(c.add_layer("base", &base.to_yaml(), false).is_err());
        c.autostart().unwrap();
        assert!(c.is_running("a"));
        let more = Layer::new().service(
            "a",
            Service::new()
                .with_override(Override::Merge)
                .env("L", "2")
                .after("b"),
        );
        c.add_layer("base", &more.to_yaml(), true).unwrap();
        let plan = c.plan();
        assert_eq!(plan.services["a"].environment.len(), 2);
        assert_eq!(plan.services["a"].command.as_deref(), Some("a --x"));
        c.replan().unwrap();
        assert_eq!(c.start_count("a"), 2, "changed service restarted on replan");
        c.replan().unwrap();
        assert_eq!(c.start_count("a"), 2, "unchanged service left alone");
        let err = c.add_layer("x", "services:\n  b:\n    override: replace\n", false);
        assert!(
            err.unwrap_err()
                .to_string()
                .contains("must define \"command\"")
        );
        assert!(
            c.add_layer("y", "services:\n  b:\n    command: x\n", false)
                .is_err()
        );
        c.stop(&["a".into()]).unwrap();
        assert_eq!(c.services(&[])[0].current, ServiceStatus::Inactive);
        assert!(c.start(&["nope".into()]).is_err());
    }

    #[test]
    fn from_charmcraft_reads_containers_and_defaults() {
        let h = Harness::<Counter>::from_charmcraft(
            "name: web\ncontainers:\n  web:\n    resource: web-image\nconfig:\n  options:\n    \
             port:\n      type: int\n      default: 8080\n    debug:\n      type: boolean\n",
        )
        .unwrap();
        assert_eq!(h.config()["port"], ConfigValue::Int(8080));
        assert!(!h.config().contains_key("debug"));
        assert!(h.container("web").can_connect());
    }
}
