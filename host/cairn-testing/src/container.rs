//! A declared container: the state a test gives one of the unit's containers (can-connect,
//! layers, service statuses, files, exec handlers, check statuses, notices) and what the
//! charm did to it (layers added, services started and stopped, files written, commands
//! run, signals sent).
//!
//! Layers are the host's own (`cairn_plan::Layers`: parsing, combining, validation and
//! their messages), and services start and stop in the host's lanes (`requires` pulls in
//! dependencies), without running anything.

use std::collections::BTreeMap;
use std::sync::Arc;

use cairn_api::types as api;
use cairn_plan::Layers;

pub use cairn_runtime::wasm::ExecOutput;

pub use cairn_supervisor::{CheckStatus, ServiceStatus};

/// What a command run in a declared container was given (ops' `testing.ExecArgs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecArgs {
    /// The command and its arguments.
    pub command: Vec<String>,
    /// Its environment, as the charm gave it.
    pub environment: BTreeMap<String, String>,
    /// Its working directory, when given.
    pub working_dir: Option<String>,
    /// Its user, when given (by name).
    pub user: Option<String>,
    /// Its service context, when given.
    pub service_context: Option<String>,
    /// Everything the charm wrote to its stdin.
    pub stdin: Vec<u8>,
}

/// A handler of commands: gets what the command was given and the container (to change
/// it as the real command would, writing files say) and returns how the command ended.
pub type ExecFn = dyn Fn(&ExecArgs, &mut Container) -> ExecOutput + Send + Sync;

/// How the container answers the commands of one prefix.
#[derive(Clone)]
enum ExecHandler {
    Fixed(ExecOutput),
    Call(Arc<ExecFn>),
}

impl std::fmt::Debug for ExecHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExecHandler::Fixed(o) => f.debug_tuple("Fixed").field(o).finish(),
            ExecHandler::Call(_) => f.write_str("Call(..)"),
        }
    }
}

/// What the container knows of a service.
#[derive(Clone, Debug)]
struct ServiceState {
    status: ServiceStatus,
    /// When `status` last changed (RFC 3339), once the charm changed it.
    since: Option<String>,
    /// The definition it was last started with (`None`: declared by the test, or never
    /// started): replan restarts a service whose definition changed since.
    started: Option<Arc<cairn_plan::Service>>,
    starts: u32,
}

/// One file-system entry.
#[derive(Clone, Debug)]
enum Node {
    Dir { mode: u32 },
    File { data: Vec<u8>, mode: u32 },
}

/// One of the unit's containers, as a test declares it and as the charm leaves it.
///
/// Build it with [`Container::new`] and the builder methods; read it back from the state a
/// run returns with the accessors.
#[derive(Clone, Debug)]
pub struct Container {
    name: String,
    can_connect: bool,
    layers: Layers,
    services: BTreeMap<String, ServiceState>,
    checks: BTreeMap<String, (CheckStatus, u32)>,
    notices: Vec<api::Notice>,
    fs: BTreeMap<String, Node>,
    execs: Vec<(Vec<String>, ExecHandler)>,
    exec_log: Vec<ExecArgs>,
    signals: Vec<(String, String)>,
    /// What `add-layer` may make it hold (set by a run from its budget).
    pub(crate) limits: cairn_supervisor::ContainerLimits,
}

/// The time declared notices and files carry.
const EPOCH: &str = "2026-01-01T00:00:00Z";

fn epoch() -> time::OffsetDateTime {
    time::OffsetDateTime::parse(EPOCH, &time::format_description::well_known::Rfc3339)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

impl Container {
    /// Container `name`, connectable, with no layers, files, handlers or notices.
    pub fn new(name: &str) -> Self {
        Container {
            name: name.to_string(),
            can_connect: true,
            layers: Layers::default(),
            services: BTreeMap::new(),
            checks: BTreeMap::new(),
            notices: Vec::new(),
            fs: [("/".to_string(), Node::Dir { mode: 0o755 })].into(),
            execs: Vec::new(),
            exec_log: Vec::new(),
            signals: Vec::new(),
            limits: cairn_supervisor::ContainerLimits::UNLIMITED,
        }
    }

    /// Whether the charm can connect to it (Pebble is up); when not, every call fails
    /// with a connection error, as on the host.
    pub fn can_connect(mut self, yes: bool) -> Self {
        self.can_connect = yes;
        self
    }

    /// A layer already added (label, YAML), as `add-layer` would add it (panics with the
    /// host's message if the host would refuse it).
    pub fn layer(mut self, label: &str, yaml: &str) -> Self {
        if let Err(e) = self.layers.add_yaml(label, yaml.as_bytes(), true, false) {
            panic!(
                "cairn-testing: layer {label:?} of container {:?}: {e}",
                self.name
            );
        }
        self
    }

    /// A service's status (a service declared `Active` counts as running with the plan's
    /// definition, so a replan leaves it be unless its definition changes).
    pub fn service_status(mut self, name: &str, status: ServiceStatus) -> Self {
        let started = self.layers.plan().services.get(name).cloned();
        self.services.insert(
            name.to_string(),
            ServiceState {
                status,
                since: None,
                started: (status == ServiceStatus::Active)
                    .then_some(started)
                    .flatten(),
                starts: 0,
            },
        );
        self
    }

    /// A check's status and consecutive failures (checks of the plan are otherwise `up`,
    /// or `inactive` when their startup is disabled).
    pub fn check(mut self, name: &str, status: CheckStatus, failures: u32) -> Self {
        self.checks.insert(name.to_string(), (status, failures));
        self
    }

    /// A custom notice the workload recorded (`pebble notify key k=v …`), occurring
    /// `occurrences` times; its ID is its place among the container's notices.
    pub fn notice(mut self, key: &str, data: &[(&str, &str)], occurrences: u64) -> Self {
        let last_data = data
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.notices.retain(|n| n.key != key);
        self.notices.push(api::Notice {
            id: (self.notices.len() + 1).to_string(),
            user_id: Some(0),
            type_: "custom".into(),
            key: key.to_string(),
            first_occurred: epoch(),
            last_occurred: epoch(),
            last_repeated: epoch(),
            occurrences: occurrences.max(1),
            last_data,
            repeat_after: String::new(),
            expire_after: "168h0m0s".into(),
        });
        self
    }

    /// A file with `data` (its parent directories made).
    pub fn file(mut self, path: &str, data: impl AsRef<[u8]>) -> Self {
        self.put_file(path, data.as_ref(), 0o644);
        self
    }

    /// A directory (its parents made).
    pub fn dir(mut self, path: &str) -> Self {
        self.make_parents(&format!("{}/x", path.trim_end_matches('/')));
        self
    }

    /// Commands starting with `prefix` "run" with this output (the longest matching
    /// prefix wins), as ops' `Container(execs={Exec(...)})`. A command no prefix matches
    /// is a program the container does not have: it fails as on the host
    /// (`cannot find executable "…"`), and is in [`exec_log`](Self::exec_log).
    pub fn exec(mut self, prefix: &[&str], output: ExecOutput) -> Self {
        self.execs
            .push((strings(prefix), ExecHandler::Fixed(output)));
        self
    }

    /// Commands starting with `prefix` run `handler` when the charm has given them their
    /// stdin: it may change the container as the real command would.
    pub fn exec_with(
        mut self,
        prefix: &[&str],
        handler: impl Fn(&ExecArgs, &mut Container) -> ExecOutput + Send + Sync + 'static,
    ) -> Self {
        self.execs
            .push((strings(prefix), ExecHandler::Call(Arc::new(handler))));
        self
    }

    /// Writes a file (its parent directories made): what an exec handler does for the
    /// files its real command would write.
    pub fn write_file(&mut self, path: &str, data: impl AsRef<[u8]>) {
        self.put_file(path, data.as_ref(), 0o644);
    }

    /// The container's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the charm can connect to it.
    pub fn connectable(&self) -> bool {
        self.can_connect
    }

    /// The layers added so far, with their labels, in order, as YAML.
    pub fn layers(&self) -> Vec<(String, String)> {
        self.layers
            .layers()
            .iter()
            .map(|l| (l.label.clone(), l.to_yaml()))
            .collect()
    }

    /// The layer labelled `label`, as the host keeps it.
    pub fn get_layer(&self, label: &str) -> Option<&cairn_plan::Layer> {
        self.layers.layers().iter().find(|l| l.label == label)
    }

    /// The combined plan.
    pub fn plan(&self) -> &cairn_plan::Plan {
        self.layers.plan()
    }

    /// The combined plan as the host renders it (`pebble plan`).
    pub fn plan_yaml(&self) -> String {
        self.layers.plan().to_yaml()
    }

    /// The status of service `name` (`Inactive` if it never ran).
    pub fn status_of(&self, name: &str) -> ServiceStatus {
        self.services
            .get(name)
            .map_or(ServiceStatus::Inactive, |s| s.status)
    }

    /// Whether service `name` runs.
    pub fn is_running(&self, name: &str) -> bool {
        self.status_of(name) == ServiceStatus::Active
    }

    /// How many times the charm started service `name` (restarts included).
    pub fn start_count(&self, name: &str) -> u32 {
        self.services.get(name).map_or(0, |s| s.starts)
    }

    /// The status of check `name` of the plan (`None` if the plan has no such check).
    pub fn check_status(&self, name: &str) -> Option<CheckStatus> {
        self.check_infos(None, &[name.to_string()])
            .first()
            .map(|(status, _)| *status)
    }

    /// The content of file `path`.
    pub fn read(&self, path: &str) -> Option<&[u8]> {
        match self.fs.get(path) {
            Some(Node::File { data, .. }) => Some(data),
            _ => None,
        }
    }

    /// Whether `path` is a directory.
    pub fn is_dir(&self, path: &str) -> bool {
        matches!(self.fs.get(path), Some(Node::Dir { .. }))
    }

    /// The commands the charm ran, in order, with what they were given.
    pub fn exec_log(&self) -> &[ExecArgs] {
        &self.exec_log
    }

    /// Signals sent, as (service, signal with its `SIG` prefix), in order.
    pub fn signals(&self) -> &[(String, String)] {
        &self.signals
    }

    /// The container's notices.
    pub fn notices(&self) -> &[api::Notice] {
        &self.notices
    }

    /// The notice of `key`, if the container has one.
    pub(crate) fn notice_by_key(&self, key: &str) -> Option<&api::Notice> {
        self.notices.iter().find(|n| n.key == key)
    }

    /// Check `name`'s state as a check event carries it: (status, failures, threshold,
    /// level).
    pub(crate) fn check_event_info(
        &self,
        name: &str,
        status: CheckStatus,
    ) -> Option<(u32, u32, cairn_plan::CheckLevel)> {
        let check = self.layers.plan().checks.get(name)?;
        let threshold = check.effective_threshold();
        let failures = match status {
            CheckStatus::Down => self
                .checks
                .get(name)
                .map(|(_, f)| *f)
                .filter(|f| *f >= threshold)
                .unwrap_or(threshold),
            _ => 0,
        };
        Some((failures, threshold, check.level))
    }

    /// Sets a check's status (a check event's effect on the container).
    pub(crate) fn set_check(&mut self, name: &str, status: CheckStatus, failures: u32) {
        self.checks.insert(name.to_string(), (status, failures));
    }

    fn check_infos(
        &self,
        level: Option<cairn_plan::CheckLevel>,
        names: &[String],
    ) -> Vec<(CheckStatus, api::CheckInfo)> {
        self.layers
            .plan()
            .checks
            .iter()
            .filter(|(n, _)| names.is_empty() || names.contains(n))
            .filter(|(_, c)| level.is_none_or(|l| c.level == l))
            .map(|(n, c)| {
                let (status, failures) =
                    self.checks
                        .get(n)
                        .copied()
                        .unwrap_or(if c.starts_enabled() {
                            (CheckStatus::Up, 0)
                        } else {
                            (CheckStatus::Inactive, 0)
                        });
                let info = api::CheckInfo {
                    name: n.clone(),
                    level: match c.level {
                        cairn_plan::CheckLevel::Unset => String::new(),
                        cairn_plan::CheckLevel::Alive => "alive".into(),
                        cairn_plan::CheckLevel::Ready => "ready".into(),
                    },
                    startup: if c.starts_enabled() {
                        "enabled"
                    } else {
                        "disabled"
                    }
                    .into(),
                    status: status.as_str().into(),
                    successes: 0,
                    failures,
                    threshold: c.effective_threshold(),
                    // A running check has a change, as on the host.
                    change_id: match status {
                        CheckStatus::Inactive => String::new(),
                        _ => format!("check-{n}"),
                    },
                    prev_change_id: String::new(),
                };
                (status, info)
            })
            .collect()
    }

    fn put_file(&mut self, path: &str, data: &[u8], mode: u32) {
        self.make_parents(path);
        self.fs.insert(
            path.to_string(),
            Node::File {
                data: data.to_vec(),
                mode,
            },
        );
    }

    /// Makes every missing directory above `path`.
    fn make_parents(&mut self, path: &str) {
        let mut parent = parent_of(path);
        while let Some(p) = parent {
            self.fs
                .entry(p.to_string())
                .or_insert(Node::Dir { mode: 0o755 });
            parent = parent_of(p);
        }
    }
}

fn strings(words: &[&str]) -> Vec<String> {
    words.iter().map(|s| s.to_string()).collect()
}

/// The directory holding `path` (`None` for `/`).
fn parent_of(path: &str) -> Option<&str> {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return None;
    }
    match trimmed.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => Some(&trimmed[..i]),
        None => None,
    }
}

/// What the bindings call: the declared container behind a lock, shared by the run's
/// backend and the state it returns.
pub(crate) mod served {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex, MutexGuard};

    use cairn_api::types as api;
    use cairn_runtime::wasm::{Command, ContainerApi, ContainerError, ExecOutput, NoticeQuery};
    use cairn_supervisor::ServicesAction;
    use cairn_supervisor::files::Ownership;

    use super::{Container, ExecArgs, ExecHandler, Node, ServiceState, ServiceStatus, parent_of};

    /// A declared container served as a container backend: what [`Context::run`] lends the
    /// charm for each container, for an embedder or a test that builds its own
    /// [`UnitContext`](cairn_runtime::UnitContext) and dispatches itself.
    ///
    /// [`Context::run`]: crate::Context::run
    #[derive(Clone)]
    pub struct Declared(pub(crate) Arc<Mutex<Container>>);

    impl Declared {
        /// Serves `container`.
        pub fn new(container: Container) -> Self {
            Declared(Arc::new(Mutex::new(container)))
        }

        /// The backend to put in a unit context's `containers`.
        pub fn backend(&self) -> cairn_runtime::ContainerBackend {
            let api: Arc<dyn ContainerApi> = Arc::new(self.clone());
            cairn_runtime::ContainerBackend::Custom(api)
        }

        /// The container as the calls so far left it.
        pub fn container(&self) -> Container {
            self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
        }

        fn lock(&self) -> Result<MutexGuard<'_, Container>, ContainerError> {
            let c = self.0.lock().unwrap_or_else(|e| e.into_inner());
            if !c.can_connect {
                return Err(ContainerError::Connection(format!(
                    "cannot connect to container {:?}: the test declares it unreachable",
                    c.name
                )));
            }
            Ok(c)
        }
    }

    /// Now, as the API writes times.
    fn now() -> String {
        cairn_supervisor::timefmt::rfc3339(time::OffsetDateTime::now_utc())
    }

    fn path_err(kind: &str, message: String) -> ContainerError {
        ContainerError::path(kind, message)
    }

    fn absolute(path: &str) -> Result<(), ContainerError> {
        if path.starts_with('/') {
            Ok(())
        } else {
            Err(path_err(
                "generic-file-error",
                format!("paths must be absolute, got {path:?}"),
            ))
        }
    }

    /// The mode a charm asked for, read as the host reads it.
    fn mode(owner: &Ownership, default: u32) -> Result<u32, ContainerError> {
        cairn_supervisor::files::parse_permissions(&owner.permissions, default)
            .map_err(|e| path_err("generic-file-error", e.message))
    }

    fn not_found(op: &str, path: &str) -> ContainerError {
        path_err(
            "not-found",
            format!("{op} {path}: no such file or directory"),
        )
    }

    impl Container {
        /// Restarts services whose definition changed since they started and starts the
        /// `startup: enabled` ones, with their requirements, as the host's replan does.
        fn replan(&mut self) -> Result<(), ContainerError> {
            let plan = self.layers.plan();
            let changed: Vec<String> = self
                .services
                .iter()
                .filter(|(name, s)| {
                    s.status == ServiceStatus::Active
                        && s.started
                            .as_ref()
                            .is_some_and(|started| plan.services.get(*name) != Some(started))
                })
                .map(|(name, _)| name.clone())
                .collect();
            let lanes = plan
                .replan_lanes(&changed)
                .map_err(|e| ContainerError::bad_request(format!("cannot replan services: {e}")))?;
            stop_all(&mut self.services, lanes.stop.iter().flatten());
            start_all(&mut self.services, plan, lanes.start.iter().flatten());
            Ok(())
        }

        /// The lanes of a start, stop or restart of `names`, with the host's messages.
        fn lanes(
            &self,
            action: &str,
            names: &[String],
            stop: bool,
        ) -> Result<Vec<Vec<String>>, ContainerError> {
            if names.is_empty() {
                return Err(ContainerError::bad_request(format!(
                    "must specify services for {action} action"
                )));
            }
            let plan = self.layers.plan();
            if stop {
                plan.stop_lanes(names)
            } else {
                plan.start_lanes(names)
            }
            .map_err(|e| ContainerError::bad_request(format!("cannot {action} services: {e}")))
        }

        fn info(&self, p: &str) -> api::FileInfo {
            let (type_, size, mode) = match self.fs.get(p) {
                Some(Node::Dir { mode }) => ("directory", None, *mode),
                Some(Node::File { data, mode }) => ("file", Some(data.len() as u64), *mode),
                None => ("unknown", None, 0),
            };
            api::FileInfo {
                path: p.to_string(),
                name: p
                    .rsplit('/')
                    .next()
                    .filter(|n| !n.is_empty())
                    .unwrap_or("/")
                    .to_string(),
                type_: type_.into(),
                size,
                permissions: format!("{mode:03o}"),
                last_modified: super::EPOCH.into(),
                user_id: Some(0),
                user: "root".into(),
                group_id: Some(0),
                group: "root".into(),
            }
        }

        fn make_dir_at(
            &mut self,
            path: &str,
            parents: bool,
            mode: u32,
        ) -> Result<(), ContainerError> {
            match self.fs.get(path) {
                Some(Node::File { .. }) => {
                    return Err(path_err(
                        "generic-file-error",
                        format!("mkdir {path}: not a directory"),
                    ));
                }
                Some(Node::Dir { .. }) if parents => return Ok(()),
                Some(Node::Dir { .. }) => {
                    return Err(path_err(
                        "generic-file-error",
                        format!("mkdir {path}: file exists"),
                    ));
                }
                None => {}
            }
            let parent = parent_of(path).unwrap_or("/");
            if !self.is_dir(parent) {
                if !parents {
                    // The host makes the directory under a temporary name first.
                    return Err(not_found("mkdir", &format!("{path}.mkdir-new")));
                }
                self.make_dir_at(parent, true, mode)?;
            }
            self.fs.insert(path.to_string(), Node::Dir { mode });
            Ok(())
        }
    }

    /// Starts each named service of `plan` that is not running.
    fn start_all<'a>(
        services: &mut BTreeMap<String, ServiceState>,
        plan: &cairn_plan::Plan,
        names: impl IntoIterator<Item = &'a String>,
    ) {
        for name in names {
            let Some(config) = plan.services.get(name) else {
                continue;
            };
            let state = services.entry(name.clone()).or_insert(ServiceState {
                status: ServiceStatus::Inactive,
                since: None,
                started: None,
                starts: 0,
            });
            if state.status == ServiceStatus::Active {
                continue;
            }
            state.status = ServiceStatus::Active;
            state.since = Some(now());
            state.started = Some(config.clone());
            state.starts += 1;
        }
    }

    /// Stops each named service.
    fn stop_all<'a>(
        services: &mut BTreeMap<String, ServiceState>,
        names: impl IntoIterator<Item = &'a String>,
    ) {
        for name in names {
            if let Some(s) = services.get_mut(name) {
                s.status = ServiceStatus::Inactive;
                s.since = Some(now());
            }
        }
    }

    /// A command accepted by a declared container: runs its handler on the container.
    struct Accepted {
        container: Arc<Mutex<Container>>,
        handler: ExecHandler,
        args: ExecArgs,
    }

    impl Command for Accepted {
        fn run(self: Box<Self>, stdin: Vec<u8>) -> Result<ExecOutput, ContainerError> {
            let mut args = self.args;
            args.stdin = stdin;
            let mut c = self.container.lock().unwrap_or_else(|e| e.into_inner());
            let out = match &self.handler {
                ExecHandler::Fixed(o) => o.clone(),
                ExecHandler::Call(f) => f(&args, &mut c),
            };
            c.exec_log.push(args);
            Ok(out)
        }
    }

    impl ContainerApi for Declared {
        fn can_connect(&self) -> bool {
            self.0.lock().unwrap_or_else(|e| e.into_inner()).can_connect
        }

        fn add_layer(&self, label: &str, yaml: &str, combine: bool) -> Result<(), ContainerError> {
            let mut c = self.lock()?;
            let c = &mut *c;
            // The host's add-layer under the container's budget (layer bytes, layers,
            // services, checks, check periods, log targets), with its texts.
            c.limits
                .add_layer_to(&mut c.layers, label, yaml.as_bytes(), combine, false)
                .map_err(|e| {
                    let api = cairn_api::ApiError::from(&e);
                    ContainerError::Api {
                        code: api.code,
                        kind: api.kind.into(),
                        message: api.message,
                    }
                })
        }

        fn plan(&self) -> Result<cairn_plan::Plan, ContainerError> {
            Ok(self.lock()?.layers.plan().clone())
        }

        fn services_action(
            &self,
            action: ServicesAction,
            names: &[String],
        ) -> Result<(), ContainerError> {
            let mut c = self.lock()?;
            match action {
                ServicesAction::Replan => c.replan(),
                ServicesAction::Autostart => {
                    let c = &mut *c;
                    let plan = c.layers.plan();
                    let lanes = plan.start_lanes(&plan.default_services()).map_err(|e| {
                        ContainerError::bad_request(format!("cannot autostart services: {e}"))
                    })?;
                    if lanes.iter().all(Vec::is_empty) {
                        return Err(ContainerError::Api {
                            code: 400,
                            kind: "no-default-services".into(),
                            message: "no default services".into(),
                        });
                    }
                    start_all(&mut c.services, plan, lanes.iter().flatten());
                    Ok(())
                }
                ServicesAction::Start => {
                    let lanes = c.lanes("start", names, false)?;
                    let c = &mut *c;
                    start_all(&mut c.services, c.layers.plan(), lanes.iter().flatten());
                    Ok(())
                }
                ServicesAction::Stop => {
                    let lanes = c.lanes("stop", names, true)?;
                    stop_all(&mut c.services, lanes.iter().flatten());
                    Ok(())
                }
                ServicesAction::Restart => {
                    let stop = c.lanes("restart", names, true)?;
                    let start = c.lanes("restart", names, false)?;
                    let c = &mut *c;
                    stop_all(
                        &mut c.services,
                        stop.iter().flatten().filter(|n| names.contains(n)),
                    );
                    start_all(&mut c.services, c.layers.plan(), start.iter().flatten());
                    Ok(())
                }
            }
        }

        fn services(&self, names: &[String]) -> Result<Vec<api::ServiceInfo>, ContainerError> {
            let c = self.lock()?;
            Ok(c.layers
                .plan()
                .services
                .iter()
                .filter(|(n, _)| names.is_empty() || names.contains(n))
                .map(|(name, svc)| api::ServiceInfo {
                    name: name.clone(),
                    startup: if svc.startup == cairn_plan::ServiceStartup::Enabled {
                        "enabled"
                    } else {
                        "disabled"
                    }
                    .into(),
                    current: c.status_of(name).as_str().into(),
                    current_since: c.services.get(name).and_then(|s| s.since.clone()),
                })
                .collect())
        }

        fn send_signal(&self, signal: &str, names: &[String]) -> Result<(), ContainerError> {
            let mut c = self.lock()?;
            if names.is_empty() {
                return Err(ContainerError::bad_request(
                    "must specify one or more services",
                ));
            }
            let valid = signal.parse::<nix::sys::signal::Signal>().is_ok();
            let errors: Vec<String> = names
                .iter()
                .filter_map(|n| match (c.is_running(n), valid) {
                    (false, _) => Some(format!(
                        "cannot send signal to {n:?}: service is not running"
                    )),
                    (true, false) => Some(format!(
                        "cannot send signal to {n:?}: invalid signal name {signal:?}"
                    )),
                    (true, true) => None,
                })
                .collect();
            if !errors.is_empty() {
                return Err(ContainerError::Api {
                    code: 500,
                    kind: String::new(),
                    message: errors.join("; "),
                });
            }
            for n in names {
                c.signals.push((n.clone(), signal.to_string()));
            }
            Ok(())
        }

        fn checks(
            &self,
            level: Option<cairn_plan::CheckLevel>,
            names: &[String],
        ) -> Result<Vec<api::CheckInfo>, ContainerError> {
            Ok(self
                .lock()?
                .check_infos(level, names)
                .into_iter()
                .map(|(_, i)| i)
                .collect())
        }

        fn checks_action(
            &self,
            start: bool,
            names: &[String],
        ) -> Result<Vec<String>, ContainerError> {
            let mut c = self.lock()?;
            let action = if start { "start" } else { "stop" };
            if names.is_empty() {
                return Err(ContainerError::bad_request(format!(
                    "must specify checks for {action} action"
                )));
            }
            let mut missing: Vec<&str> = names
                .iter()
                .filter(|n| !c.layers.plan().checks.contains_key(*n))
                .map(String::as_str)
                .collect();
            if !missing.is_empty() {
                missing.sort();
                return Err(ContainerError::bad_request(format!(
                    "cannot {action} checks: cannot find checks in plan: {}",
                    missing.join(", ")
                )));
            }
            let mut changed = Vec::new();
            for (status, info) in c.check_infos(None, names) {
                if (status != super::CheckStatus::Inactive) != start {
                    let to = if start {
                        super::CheckStatus::Up
                    } else {
                        super::CheckStatus::Inactive
                    };
                    c.checks.insert(info.name.clone(), (to, 0));
                    changed.push(info.name);
                }
            }
            changed.sort();
            Ok(changed)
        }

        fn notices(&self, query: &NoticeQuery) -> Result<Vec<api::Notice>, ContainerError> {
            let after = match query.after.as_deref() {
                None | Some("") => None,
                Some(t) => Some(cairn_supervisor::timefmt::parse_rfc3339_go(t).map_err(|e| {
                    ContainerError::bad_request(format!("invalid \"after\" timestamp: {e}"))
                })?),
            };
            Ok(self
                .lock()?
                .notices
                .iter()
                .filter(|n| query.types.is_empty() || query.types.contains(&n.type_))
                .filter(|n| query.keys.is_empty() || query.keys.contains(&n.key))
                .filter(|n| after.is_none_or(|a| n.last_repeated > a))
                .cloned()
                .collect())
        }

        fn notice(&self, id: &str) -> Result<api::Notice, ContainerError> {
            self.lock()?
                .notices
                .iter()
                .find(|n| n.id == id)
                .cloned()
                .ok_or_else(|| {
                    ContainerError::not_found(format!("cannot find notice with ID {id:?}"))
                })
        }

        fn push(
            &self,
            path: &str,
            data: &[u8],
            make_dirs: bool,
            owner: &Ownership,
        ) -> Result<(), ContainerError> {
            let mut c = self.lock()?;
            absolute(path)?;
            if c.is_dir(path) {
                // As the host's atomic write: the temporary file cannot replace a directory.
                return Err(path_err(
                    "generic-file-error",
                    format!("rename {path}.1~ {path}: file exists"),
                ));
            }
            let parent = parent_of(path).unwrap_or("/");
            if !c.is_dir(parent) {
                if !make_dirs {
                    // As the host's atomic write, which opens a temporary file beside it.
                    return Err(not_found("open", &format!("{path}.1~")));
                }
                c.make_dir_at(parent, true, 0o755).map_err(|e| match e {
                    ContainerError::Path { kind, message } => ContainerError::Path {
                        kind,
                        message: format!("cannot create directory: {message}"),
                    },
                    e => e,
                })?;
            }
            let mode = mode(owner, 0o644)?;
            c.put_file(path, data, mode);
            Ok(())
        }

        fn pull(&self, path: &str) -> Result<Vec<u8>, ContainerError> {
            let c = self.lock()?;
            absolute(path)?;
            match c.fs.get(path) {
                Some(Node::File { data, .. }) => Ok(data.clone()),
                Some(Node::Dir { .. }) => Err(path_err(
                    "generic-file-error",
                    format!("can only read a regular file: {path:?}"),
                )),
                None => Err(not_found("stat", path)),
            }
        }

        fn list_files(
            &self,
            path: &str,
            pattern: Option<&str>,
            itself: bool,
        ) -> Result<Vec<api::FileInfo>, ContainerError> {
            let c = self.lock()?;
            absolute(path)?;
            let Some(node) = c.fs.get(path) else {
                return Err(not_found("stat", path));
            };
            let matches = |name: &str| match pattern {
                None | Some("") => Ok(true),
                Some(p) => cairn_plan::glob_match(p, name)
                    .map_err(|_| path_err("generic-file-error", "syntax error in pattern".into())),
            };
            if !matches!(node, Node::Dir { .. }) || itself {
                let i = c.info(path);
                return Ok(if matches(&i.name)? { vec![i] } else { vec![] });
            }
            let mut out = Vec::new();
            for p in c.fs.keys() {
                if p.as_str() != path && parent_of(p) == Some(path) {
                    let i = c.info(p);
                    if matches(&i.name)? {
                        out.push(i);
                    }
                }
            }
            out.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(out)
        }

        fn make_dir(
            &self,
            path: &str,
            make_parents: bool,
            owner: &Ownership,
        ) -> Result<(), ContainerError> {
            let mut c = self.lock()?;
            absolute(path)?;
            let mode = mode(owner, 0o755)?;
            c.make_dir_at(path, make_parents, mode)
        }

        fn remove_path(&self, path: &str, recursive: bool) -> Result<(), ContainerError> {
            let mut c = self.lock()?;
            absolute(path)?;
            let prefix = format!("{}/", path.trim_end_matches('/'));
            let under = |p: &String| p.starts_with(&prefix);
            if recursive {
                c.fs.retain(|p, _| p == "/" || (p != path && !under(p)));
                return Ok(());
            }
            match c.fs.get(path) {
                None => Err(not_found("remove", path)),
                Some(Node::Dir { .. }) if c.fs.keys().any(under) => Err(path_err(
                    "generic-file-error",
                    format!("remove {path}: directory not empty"),
                )),
                Some(_) => {
                    c.fs.remove(path);
                    Ok(())
                }
            }
        }

        fn exec(
            &self,
            options: &cairn_api::ExecOptions,
        ) -> Result<Box<dyn Command>, ContainerError> {
            let mut c = self.lock()?;
            // As the host: the service context first, then the command, then the
            // working directory.
            let overrides = cairn_plan::ContextOptions {
                environment: options.environment.clone(),
                user_id: options.user_id,
                user: options.user.clone().unwrap_or_default(),
                group_id: options.group_id,
                group: options.group.clone().unwrap_or_default(),
                working_dir: options.working_dir.clone().unwrap_or_default(),
            };
            let merged = c
                .layers
                .plan()
                .merge_service_context(options.service_context.as_deref().unwrap_or(""), overrides)
                .map_err(|e| ContainerError::bad_request(e.to_string()))?;
            let command = &options.command;
            if command.is_empty() {
                return Err(ContainerError::bad_request("must specify command"));
            }
            let handler = c
                .execs
                .iter()
                .filter(|(p, _)| command.starts_with(p))
                .max_by_key(|(p, _)| p.len())
                .map(|(_, h)| h.clone());
            let non_empty = |s: String| (!s.is_empty()).then_some(s);
            let working_dir = non_empty(merged.working_dir);
            let args = ExecArgs {
                command: command.clone(),
                environment: merged.environment,
                working_dir: working_dir.clone(),
                user: non_empty(merged.user),
                service_context: options.service_context.clone(),
                stdin: Vec::new(),
            };
            let Some(handler) = handler else {
                // A command the test declares no handler for is a program the container
                // does not have, and fails as one does on the host.
                c.exec_log.push(args);
                return Err(ContainerError::bad_request(format!(
                    "cannot find executable {:?}",
                    command[0]
                )));
            };
            if let Some(dir) = &working_dir
                && !c.is_dir(dir)
            {
                return Err(ContainerError::Api {
                    code: 500,
                    kind: String::new(),
                    message: format!("cannot call exec: working directory {dir:?} does not exist"),
                });
            }
            Ok(Box::new(Accepted {
                container: self.0.clone(),
                handler,
                args,
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use cairn_runtime::wasm::{ContainerApi, ContainerError};
    use cairn_supervisor::files::{self, FileError, Ownership, WriteItem};

    use super::Container;
    use super::served::Declared;

    /// The host's error, with the random name of an atomic write's temporary file
    /// (`<path>.<digits>~`, as Pebble's) taken back to the path itself.
    fn host_err(e: FileError) -> ContainerError {
        ContainerError::path(e.kind.as_str(), untemp(&e.message))
    }

    /// `message` without the `.<digits>~` of temporary names.
    fn untemp(message: &str) -> String {
        let mut out = message.to_string();
        while let Some(end) = out.find('~') {
            match out[..end].rfind('.') {
                Some(start) if out[start + 1..end].bytes().all(|b| b.is_ascii_digit()) => {
                    out.replace_range(start..end + 1, "")
                }
                _ => break,
            }
        }
        out
    }

    /// The same file calls on a declared container and on the host's own file code over a
    /// real directory fail with the same kind and message.
    #[test]
    fn file_errors_are_the_hosts() {
        let tmp = std::env::temp_dir().join(format!("cairn-testing-fs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(tmp.join("full")).unwrap();
        std::fs::write(tmp.join("full/f"), b"x").unwrap();
        std::fs::write(tmp.join("file"), b"x").unwrap();
        let t = tmp.display().to_string();
        let declared = Declared(Arc::new(Mutex::new(
            Container::new("c")
                .dir(&t)
                .file(&format!("{t}/full/f"), "x")
                .file(&format!("{t}/file"), "x"),
        )));
        let own = Ownership::default();
        let p = |rel: &str| format!("{t}/{rel}");

        let push = |path: String| {
            let item = WriteItem {
                path: path.clone(),
                make_dirs: false,
                ownership: Ownership::default(),
            };
            (
                files::write(None, &item, &mut &b"data"[..]).map_err(host_err),
                declared
                    .push(&path, b"data", false, &own)
                    .map_err(|e| match e {
                        ContainerError::Path { kind, message } => {
                            ContainerError::path(&kind, untemp(&message))
                        }
                        e => e,
                    }),
            )
        };
        type Case = (
            &'static str,
            Result<(), ContainerError>,
            Result<(), ContainerError>,
        );
        let cases: Vec<Case> = vec![
            {
                let (a, b) = push(p("missing/a.txt"));
                ("push without parents", a, b)
            },
            {
                let (a, b) = push(p("full"));
                ("push over a directory", a, b)
            },
            (
                "pull a missing file",
                files::open_read(None, &p("nope"))
                    .map(|_| ())
                    .map_err(host_err),
                declared.pull(&p("nope")).map(|_| ()),
            ),
            (
                "pull a directory",
                files::open_read(None, &p("full"))
                    .map(|_| ())
                    .map_err(host_err),
                declared.pull(&p("full")).map(|_| ()),
            ),
            (
                "make an existing directory",
                files::make_dir(None, &p("full"), false, &own).map_err(host_err),
                declared.make_dir(&p("full"), false, &own),
            ),
            (
                "make a directory over a file",
                files::make_dir(None, &p("file"), true, &own).map_err(host_err),
                declared.make_dir(&p("file"), true, &own),
            ),
            (
                "make a directory without parents",
                files::make_dir(None, &p("a/b"), false, &own).map_err(host_err),
                declared.make_dir(&p("a/b"), false, &own),
            ),
            (
                "remove a directory that is not empty",
                files::remove(None, &p("full"), false).map_err(host_err),
                declared.remove_path(&p("full"), false),
            ),
            (
                "remove a missing path",
                files::remove(None, &p("nope"), false).map_err(host_err),
                declared.remove_path(&p("nope"), false),
            ),
            (
                "list a missing path",
                files::list(None, &p("nope"), "", false)
                    .map(|_| ())
                    .map_err(host_err),
                declared.list_files(&p("nope"), None, false).map(|_| ()),
            ),
            (
                "a relative path",
                files::open_read(None, "rel").map(|_| ()).map_err(host_err),
                declared.pull("rel").map(|_| ()),
            ),
        ];
        let _ = std::fs::remove_dir_all(&tmp);
        let differ: Vec<String> = cases
            .into_iter()
            .filter(|(_, host, ours)| host.is_ok() || ours != host)
            .map(|(what, host, ours)| format!("{what}: host {host:?}, declared {ours:?}"))
            .collect();
        assert!(differ.is_empty(), "{differ:#?}");
    }
}
